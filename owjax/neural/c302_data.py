"""c302's own networks and parameter values, captured into the repository.

owjax takes every parameter value and connection from c302 itself, not from hand-typed copies:
``python -m owjax.neural.c302_data capture`` (needs the ``reference`` extra) runs c302's configuration
scripts for each parameter set and stores the NeuroML it generates, gzip-compressed, under
``owjax/data/c302/<c302 version>/<SET>_<Config>/``, together with ``parameters.json`` (c302's
BioParameter list of each set: name, value with unit, source, certainty). The default install
reads these files and needs neither c302 nor Java; ``tests/test_c302_capture.py`` regenerates
them with c302 and checks they are unchanged.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import io
import json
import shutil
import sys
import tempfile
from contextlib import redirect_stdout
from functools import lru_cache
from pathlib import Path

from owjax.neural.neuroml import read_network
from owjax.neural.spec import NetworkSpec, unknown_name_message

__all__ = [
    "C302_VERSION",
    "PARAMETER_SETS",
    "CONFIGS",
    "DATA_DIR",
    "load_c302_network",
    "c302_parameters",
    "generate_with_c302",
    "capture",
]

C302_VERSION = "0.12.1"
PARAMETER_SETS = ("C0", "C1", "C2")
CONFIGS = ("Full", "Muscles", "IClamp", "Syns", "Oscillator", "Social")
DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "c302" / C302_VERSION


class UnknownConfigError(ValueError):
    """An unknown c302 parameter set or config name."""


def _check(parameter_set: str, config: str) -> None:
    if parameter_set not in PARAMETER_SETS:
        raise UnknownConfigError(unknown_name_message("c302 parameter set", parameter_set, PARAMETER_SETS))
    if config not in CONFIGS:
        raise UnknownConfigError(unknown_name_message("c302 config", config, CONFIGS))


def network_dir(parameter_set: str, config: str, root: Path = DATA_DIR) -> Path:
    return root / f"{parameter_set}_{config}"


@lru_cache(maxsize=32)
def load_c302_network(parameter_set: str = "C1", config: str = "Full") -> NetworkSpec:
    """The network c302 generates for a parameter set and config, read from the captured files.

    Arguments:
        parameter_set: one of :data:`PARAMETER_SETS` (``"C0"``, ``"C1"``, ``"C2"``).
        config: one of :data:`CONFIGS` (``"Full"``, ``"Muscles"``, ``"IClamp"``, ``"Syns"``,
            ``"Oscillator"``, ``"Social"``).

    Returns:
        The :class:`~owjax.neural.spec.NetworkSpec` (cells, connections with weights, pulse inputs, and
        every component parameter), identical to c302 |version|'s NeuroML.
    """
    _check(parameter_set, config)
    path = network_dir(parameter_set, config) / f"c302_{parameter_set}_{config}.net.nml.gz"
    net = read_network(path)
    net.metadata.update(parameter_set=parameter_set, config=config, c302_version=C302_VERSION)
    return net


def c302_parameters(parameter_set: str = "C1") -> list[dict]:
    """c302's BioParameters of a parameter set: ``name, value, source, certainty`` (as captured)."""
    _check(parameter_set, "Full")
    data = json.loads((DATA_DIR / "parameters.json").read_text())
    return data["parameter_sets"][parameter_set]


# ---------------------------------------------------------------------------- capture (c302)
def _require_c302():
    try:
        import c302  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "this needs c302, which comes with the reference extra: pip install -e '.[reference]'"
        ) from e
    import c302

    if c302.__version__ != C302_VERSION:
        raise RuntimeError(f"owjax captures c302 {C302_VERSION}, but c302 {c302.__version__} is installed")
    return c302


def generate_with_c302(
    parameter_set: str,
    config: str,
    target_directory: str | Path,
    duration_ms: float | None = None,
    dt_ms: float = 0.05,
) -> Path:
    """Run c302's config script ``c302_<config>.setup`` and return the ``.net.nml`` it wrote.

    Needs the ``reference`` extra. c302's chatter goes to a log file beside the network.
    """
    _check(parameter_set, config)
    _require_c302()
    target = Path(target_directory)
    target.mkdir(parents=True, exist_ok=True)
    mod = importlib.import_module(f"c302.c302_{config}")
    kwargs = dict(generate=True, dt=dt_ms, target_directory=str(target), verbose=False)
    if duration_ms is not None:
        kwargs["duration"] = duration_ms
    buf = io.StringIO()
    with redirect_stdout(buf):
        mod.setup(parameter_set, **kwargs)
    (target / "c302_generate.log").write_text(buf.getvalue())
    out = target / f"c302_{parameter_set}_{config}.net.nml"
    if not out.exists():
        raise RuntimeError(f"c302 did not write {out}; its output:\n{buf.getvalue()[-3000:]}")
    return out


def _bioparameters(parameter_set: str) -> list[dict]:
    mod = importlib.import_module(f"c302.parameters_{parameter_set}")
    buf = io.StringIO()
    with redirect_stdout(buf):
        params = mod.ParameterisedModel()
    return [
        dict(name=b.name, value=b.value, source=b.source, certainty=b.certainty)
        for b in sorted(params.bioparameters, key=lambda b: b.name)
    ]


def _gzip_to(src: Path, dst: Path) -> None:
    with open(dst, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
        gz.write(src.read_bytes())


def capture(root: Path = DATA_DIR, parameter_sets=PARAMETER_SETS, configs=CONFIGS) -> list[Path]:
    """Regenerate every captured file under ``root`` from c302. Returns the files written."""
    c302 = _require_c302()
    written = []
    root.mkdir(parents=True, exist_ok=True)
    for ps in parameter_sets:
        for cfg in configs:
            with tempfile.TemporaryDirectory() as tmp:
                net = generate_with_c302(ps, cfg, tmp)
                d = network_dir(ps, cfg, root)
                if d.exists():
                    shutil.rmtree(d)
                d.mkdir(parents=True)
                for f in sorted(Path(tmp).iterdir()):
                    if f.suffix in (".nml", ".xml") and not f.name.startswith("LEMS_"):
                        _gzip_to(f, d / (f.name + ".gz"))
                        written.append(d / (f.name + ".gz"))
                read_network(d / (net.name + ".gz"))  # everything captured must be readable
    params = {
        "c302_version": c302.__version__,
        "units": "as written by c302 (value strings carry their NeuroML unit)",
        "regenerate": "python -m owjax.neural.c302_data capture",
        "parameter_sets": {ps: _bioparameters(ps) for ps in parameter_sets},
    }
    (root / "parameters.json").write_text(json.dumps(params, indent=1, sort_keys=True) + "\n")
    written.append(root / "parameters.json")
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m owjax.neural.c302_data", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture", help="regenerate owjax/data/c302 from c302 (reference extra)")
    c.add_argument("--root", type=Path, default=DATA_DIR)
    sub.add_parser("list", help="list captured networks with their counts")
    a = p.parse_args(argv)
    if a.cmd == "capture":
        for f in capture(a.root):
            print(f)
    else:
        for ps in PARAMETER_SETS:
            for cfg in CONFIGS:
                print(f"{ps:3s} {cfg:11s} {load_c302_network(ps, cfg).counts()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m owjax.reference``: run a c302 network in NEURON or jNML and store it as an owjax traces file.

The reference simulators are the ones OpenWorm uses: c302 generates the network (NeuroML + a LEMS
simulation file), then either

* **NEURON** (``--simulator neuron``): ``jnml LEMS.xml -neuron -nogui`` exports it, ``nrnivmodl``
  compiles the mechanisms and the exported script runs in NEURON's fixed-step implicit Euler. owjax
  runs that script through a small driver that records every ``--dt-out-ms`` at full double
  precision (instead of the script's per-step text output, which would be gigabytes at small dt);
  the network, the integration and the stimulus are the exported script's own; or
* **jNML** (``--simulator jnml``): ``jnml LEMS.xml -nogui`` runs jLEMS (forward Euler) and writes
  the ``.dat`` files of the LEMS ``<OutputFile>`` blocks (minutes for the small configs, ≈13 min
  for C1 Full: use it for IClamp, Syns, Social, Oscillator).

The result is converted into the traces file of DESIGN.md (V in mV, Ca in mM, neurons and
muscles) with attributes ``simulator``, ``dt_ms``, ``dt_out_ms``, ``duration_ms``,
``parameter_set``, ``config``, ``c302_version``, ``simulator_version``, ``sim_time_s`` (the
simulator's own time for the run: NEURON's ``h.run()``, jLEMS's reported "Finished … steps in"),
``wall_time_s`` (end to end: generation, export, compilation, run, conversion) and ``cache_key``.

Results are cached in ``~/.cache/owjax/reference`` (or ``$OWJAX_CACHE/reference``, or
``--cache-dir``), keyed by a hash of (c302 version, parameter set, config, dt, duration, output
interval, simulator), so asking again is instant. Compiled NEURON mechanisms are cached too (keyed by the contents of the
``.mod`` files), so a convergence study over dt compiles once.

Examples::

    python -m owjax.reference --parameter-set C1 --config IClamp --simulator neuron --dt-ms 0.05 \\
        --duration-ms 1000 --out iclamp_neuron.h5
    python -m owjax.reference --parameter-set C1 --config Syns --simulator jnml --duration-ms 500
    python -m owjax.reference --parameter-set C1 --config Full --dt-ms 0.001 --dt-out-ms 0.05 \\
        --out full_converged.h5 --compact --out-dt-ms 0.25          # small float32 copy
    python -m owjax.reference --parameter-set C1 --config Syns --dt-ms 0.0005 --duration-ms 3600 \\
        --richardson --out syns_truth.h5     # runs dt and 2·dt, writes 2·X(dt) − X(2·dt)

NEURON's implicit Euler is first order: halving dt halves its error, and ``--richardson``
(:func:`run_richardson_reference`) cancels that term. docs/equivalence.md uses such extrapolations
of dt = 0.0005–0.002 ms runs as the converged truth.

Python::

    from owjax.reference.runner import run_reference
    path = run_reference("C1", "IClamp", simulator="neuron", dt_ms=0.05, duration_ms=500)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np

__all__ = [
    "run_reference",
    "reference_key",
    "default_cache_dir",
    "ReferenceToolError",
    "SIMULATORS",
    "write_compact",
    "load_dat_outputs",
    "richardson",
    "run_richardson_reference",
]

SIMULATORS = ("neuron", "jnml")
#: bump when the conversion changes, so that old cache entries are not reused
REFERENCE_FORMAT = 1
_LOG_TAIL = 4000
#: DD002 muscle activation = min(1, Ca / 4e-7 mM), as owjax.simulate writes it
_MUSCLE_MAX_CA_mM = 4e-7


class ReferenceToolError(RuntimeError):
    """An external tool (c302, jnml, nrnivmodl, NEURON) failed; the message has the tail of its log."""


# ---------------------------------------------------------------------------- environment
def _venv_bin() -> Path:
    return Path(sys.executable).parent


def _tool_env() -> dict[str, str]:
    """Environment for jnml / nrnivmodl / NEURON: venv bin on PATH, NEURON_HOME, Java heap."""
    env = dict(os.environ)
    vbin = _venv_bin()
    env["PATH"] = f"{vbin}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("JNML_MAX_MEMORY_LOCAL", "4G")
    env.setdefault("NEURON_HOME", str(vbin.parent))
    env.setdefault("VIRTUAL_ENV", str(vbin.parent))
    env.pop("DISPLAY", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _which(tool: str) -> str:
    vb = _venv_bin() / tool
    if vb.exists():
        return str(vb)
    found = shutil.which(tool)
    if not found:
        raise ReferenceToolError(
            f"{tool!r} not found (neither in {_venv_bin()} nor on PATH); install the reference extra: "
            "pip install -e '.[reference]'"
        )
    return found


def _run_tool(cmd: list[str], cwd: Path, log_name: str, timeout_s: float | None = None) -> tuple[str, float]:
    """Run ``cmd`` in ``cwd`` with its output in ``cwd/log_name``; raise with the log's tail on failure."""
    log = cwd / log_name
    t0 = time.perf_counter()
    with open(log, "w") as f:
        try:
            p = subprocess.run(cmd, cwd=cwd, env=_tool_env(), stdout=f, stderr=subprocess.STDOUT,
                               timeout=timeout_s)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        except OSError as e:
            raise ReferenceToolError(f"could not start {cmd[0]!r}: {e}") from e
    dt = time.perf_counter() - t0
    text = log.read_text(errors="replace")
    failed = rc != 0 or "Exception running NEURON" in text or "Exception saving results" in text
    if failed:
        raise ReferenceToolError(
            f"`{' '.join(cmd)}` failed (exit status {rc}) in {cwd}; last lines of {log_name}:\n"
            + text[-_LOG_TAIL:]
        )
    return text, dt


# ---------------------------------------------------------------------------- cache
def default_cache_dir() -> Path:
    """``$OWJAX_CACHE`` (its ``reference`` subfolder) or ``~/.cache/owjax/reference``."""
    root = os.environ.get("OWJAX_CACHE")
    if root:
        return Path(root).expanduser() / "reference"
    return Path("~/.cache/owjax/reference").expanduser()


def _fmt(x: float | None) -> str:
    return "default" if x is None else repr(float(x))


def reference_key(parameter_set: str, config: str, simulator: str, dt_ms: float,
                  duration_ms: float | None, dt_out_ms: float) -> str:
    """The cache key: a readable prefix plus a hash of everything that determines the result."""
    from owjax.neural.c302_data import C302_VERSION

    payload = json.dumps(
        dict(c302=C302_VERSION, ps=parameter_set, cfg=config, sim=simulator, dt=_fmt(dt_ms),
             T=_fmt(duration_ms), dt_out=_fmt(dt_out_ms), fmt=REFERENCE_FORMAT),
        sort_keys=True,
    )
    h = hashlib.sha256(payload.encode()).hexdigest()[:12]
    dur = "Tdef" if duration_ms is None else f"T{float(duration_ms):g}"
    return f"{simulator}_{parameter_set}_{config}_dt{float(dt_ms):g}_{dur}_{h}"


def _default_dt_out(dt_ms: float) -> float:
    """0.05 ms when that is a whole number of steps (and ≥ dt), else dt."""
    k = 0.05 / dt_ms
    if k >= 1 and abs(k - round(k)) < 1e-9:
        return 0.05
    return float(dt_ms)


# ---------------------------------------------------------------------------- LEMS outputs
def lems_outputs(lems_path: Path) -> list[dict]:
    """The ``<OutputFile>`` blocks of a LEMS file: ``[{id, file, columns: [(cell, var), …]}]``.

    ``var`` is ``V`` (quantity ``…/v``) or ``Ca`` (``…/caConc``); ``cell`` the population's name.
    """
    root = ET.parse(lems_path).getroot()
    out = []
    for of in root.iter("OutputFile"):
        cols = []
        for oc in of.iter("OutputColumn"):
            q = oc.attrib["quantity"]
            parts = q.split("/")
            var = {"v": "V", "caConc": "Ca"}.get(parts[-1])
            if var is None:
                raise ValueError(f"unsupported recorded quantity {q!r} in {lems_path}")
            cols.append((parts[0], var))
        out.append(dict(id=of.attrib["id"], file=of.attrib["fileName"], columns=cols))
    return out


def load_dat_outputs(workdir: Path, lems_path: Path, dt_ms: float, dt_out_ms: float,
                     duration_ms: float) -> tuple[np.ndarray, dict[tuple[str, str], np.ndarray]]:
    """Read the ``.dat`` files of a LEMS run (SI units) into ms / mV / mM, every ``dt_out_ms``."""
    stride = int(round(dt_out_ms / dt_ms))
    n_out = int(round(duration_ms / dt_out_ms)) + 1
    data: dict[tuple[str, str], np.ndarray] = {}
    t = None
    for of in lems_outputs(lems_path):
        arr = np.loadtxt(workdir / of["file"], ndmin=2)
        rows = arr[::stride][:n_out]
        if t is None:
            t = rows[:, 0] * 1e3
        for j, (cell, var) in enumerate(of["columns"]):
            col = rows[:, j + 1]
            data[(cell, var)] = col * 1e3 if var == "V" else col  # V: volt -> mV; Ca: mol/m³ = mM
    if t is None:
        raise ReferenceToolError(f"{lems_path} has no <OutputFile> blocks")
    return t, data


# ---------------------------------------------------------------------------- NEURON
_DRIVER = r'''
"""owjax driver: runs jnml's exported NEURON script, recording every DT_OUT ms in double precision."""
import importlib.util, json, sys, time
import numpy as np

script, tstop, dt, dt_out, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
spec = importlib.util.spec_from_file_location("owjax_nrn_model", script)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
from neuron import h
t0 = time.perf_counter()
ns = mod.NeuronSimulation(tstop=tstop, dt=dt, seed=123456789)
setup = time.perf_counter() - t0
print("owjax: NEURON dt=%g ms, secondorder=%d, tstop=%g ms" % (h.dt, int(h.secondorder), h.tstop), flush=True)
t0 = time.perf_counter()
h.run()
sim = time.perf_counter() - t0
print("owjax: NEURON run finished in %.3f s at t=%g ms" % (sim, h.t), flush=True)
columns = json.loads(open("owjax_columns.json").read())
arrays = {"t": np.array(h.owjax_t.to_python())}
for i, (quantity, vec, ref) in enumerate(columns):
    arrays["c%d" % i] = np.array(getattr(h, vec).to_python())
# Vector.record(&x, Dt) can miss the sample at tstop by round-off in t: take it from the final state
n_expected = int(round(tstop / dt_out)) + 1
if len(arrays["t"]) == n_expected - 1 and abs(h.t - tstop) < 0.5 * dt:
    h("owjax_x = 0")
    arrays["t"] = np.append(arrays["t"], h.t)
    for i, (quantity, vec, ref) in enumerate(columns):
        h("owjax_x = %s" % ref)
        arrays["c%d" % i] = np.append(arrays["c%d" % i], h.owjax_x)
    print("owjax: appended the final sample at t=%g ms" % h.t, flush=True)
np.savez(out, **arrays)
json.dump(dict(sim_time_s=sim, setup_time_s=setup, dt=float(h.dt), t_end=float(h.t),
               neuron_version=__import__("neuron").__version__), open(out + ".json", "w"))
'''

_COL_RE = re.compile(r"# Column: (\S+)\s*\n\s*h\(' objectvar (\w+) '\)")
_REC_RE = re.compile(r"(\{ \w+\.record\()(&.*?)(\) \} '\))")
_RESIZE_RE = re.compile(r"\(h\.tstop \* h\.steps_per_ms\) \+ 1")


def _patch_neuron_script(src: str, dt_out_ms: float) -> tuple[str, list[tuple[str, str, str]]]:
    """Record every ``dt_out_ms`` (not every step), no per-step preallocation, a time vector."""
    cols = [(q, v) for q, v in _COL_RE.findall(src) if q != "time"]
    refs = {m.group(1).split("{ ")[1].split(".record")[0]: m.group(2)[1:] for m in _REC_RE.finditer(src)}
    columns = [(q, v, refs.get(v)) for q, v in cols]
    if not columns or any(r is None for _, _, r in columns):
        raise ReferenceToolError(
            "the NEURON script exported by jnml has an unexpected layout (recorded columns not found); "
            "owjax.reference expects org.neuroml.export 1.11 (pyneuroml 1.3.22)"
        )
    src = _REC_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}, {dt_out_ms!r}{m.group(3)}", src)
    src = _RESIZE_RE.sub("0", src)
    src = src.replace(
        "trec.record(h._ref_t)",
        f"trec.record(h._ref_t, {dt_out_ms!r}); h('objref owjax_t'); h.owjax_t = trec",
    )
    if "h.owjax_t = trec" not in src:
        raise ReferenceToolError("could not find the time recording in the exported NEURON script")
    return src, columns


def _mod_hash(workdir: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(workdir.glob("*.mod")):
        h.update(f.name.encode())
        # the generator's comment header carries no model content but may carry versions; keep it
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _compile_mechanisms(workdir: Path, cache_dir: Path) -> tuple[float, bool]:
    """``nrnivmodl`` in ``workdir``, reusing a cached build of identical .mod files."""
    key = _mod_hash(workdir)
    cached = cache_dir / "nrnmech" / key
    arch = "x86_64" if os.uname().machine in ("x86_64", "AMD64") else os.uname().machine
    if (cached / arch).is_dir():
        shutil.copytree(cached / arch, workdir / arch, symlinks=True)
        return 0.0, True
    _, t = _run_tool([_which("nrnivmodl")], workdir, "nrnivmodl.log")
    if (workdir / arch).is_dir():
        tmp = cache_dir / "nrnmech" / f"{key}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        shutil.copytree(workdir / arch, tmp / arch, symlinks=True)
        try:
            os.replace(tmp, cached)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    return t, False


def _run_neuron(workdir: Path, lems: Path, dt_ms: float, dt_out_ms: float, duration_ms: float,
                cache_dir: Path, timeout_s: float | None) -> dict:
    _run_tool([_which("jnml"), lems.name, "-neuron", "-nogui"], workdir, "jnml_export.log", timeout_s)
    script = workdir / (lems.stem + "_nrn.py")
    if not script.exists():
        raise ReferenceToolError(f"jnml did not write {script.name}; see {workdir / 'jnml_export.log'}")
    compile_s, reused = _compile_mechanisms(workdir, cache_dir)
    src, columns = _patch_neuron_script(script.read_text(), dt_out_ms)
    (workdir / "owjax_nrn_model.py").write_text(src)
    (workdir / "owjax_columns.json").write_text(json.dumps(columns))
    (workdir / "owjax_driver.py").write_text(_DRIVER)
    out = workdir / "owjax_neuron_out.npz"
    _run_tool([sys.executable, "owjax_driver.py", "owjax_nrn_model.py", repr(float(duration_ms)),
               repr(float(dt_ms)), repr(float(dt_out_ms)), str(out)], workdir, "neuron_run.log", timeout_s)
    meta = json.loads(Path(str(out) + ".json").read_text())
    z = np.load(out)
    data = {}
    for i, (quantity, _vec, _ref) in enumerate(columns):
        parts = quantity.split("/")
        var = {"v": "V", "caConc": "Ca"}[parts[-1]]
        data[(parts[0], var)] = z[f"c{i}"]  # NEURON's own units: mV, mM
    return dict(t=z["t"], data=data, sim_time_s=meta["sim_time_s"], setup_time_s=meta["setup_time_s"],
                simulator_version=f"NEURON {meta['neuron_version']}", compile_time_s=compile_s,
                mechanisms_cached=reused, integrator="NEURON fixed-step implicit Euler (secondorder=0)")


def _run_jnml(workdir: Path, lems: Path, dt_ms: float, dt_out_ms: float, duration_ms: float,
              timeout_s: float | None) -> dict:
    text, wall = _run_tool([_which("jnml"), lems.name, "-nogui"], workdir, "jnml_run.log", timeout_s)
    m = re.search(r"Finished (\d+) steps in ([0-9.]+) seconds", text)
    sim = float(m.group(2)) if m else wall
    vm = re.search(r"jNeuroML v(\S+)", text)
    t, data = load_dat_outputs(workdir, lems, dt_ms, dt_out_ms, duration_ms)
    return dict(t=t, data=data, sim_time_s=sim, setup_time_s=float("nan"),
                simulator_version=f"jNeuroML {vm.group(1)}" if vm else "jNeuroML",
                compile_time_s=0.0, mechanisms_cached=False, integrator="jLEMS forward Euler")


def _lems_duration(lems: Path) -> tuple[float, float]:
    sim = next(ET.parse(lems).getroot().iter("Simulation"))
    from owjax.core.units import parse_quantity

    return parse_quantity(sim.attrib["length"], "time"), parse_quantity(sim.attrib["step"], "time")


def _set_lems_length(lems: Path, duration_ms: float) -> None:
    src = lems.read_text()
    new, n = re.subn(r'(<Simulation\b[^>]*?\blength=")[^"]*(")', lambda m: f"{m.group(1)}{duration_ms:g}ms{m.group(2)}",
                     src, count=1)
    if n != 1:
        raise ReferenceToolError(f"no <Simulation length=...> in {lems}")
    lems.write_text(new)


# ---------------------------------------------------------------------------- conversion
def _to_traces(t: np.ndarray, data: dict, attrs: dict):
    from owjax.neural.spec import is_body_wall_muscle
    from owjax.traces import Traces

    cells = list(dict.fromkeys(c for c, _ in data))
    pops = {}
    for pop, sel in (("neurons", lambda c: not is_body_wall_muscle(c)), ("muscles", is_body_wall_muscle)):
        names = [c for c in cells if sel(c)]
        if not names:
            continue
        arrays = {"names": np.array(names)}
        for var in ("V", "Ca"):
            if all((c, var) in data for c in names):
                arrays[var] = np.stack([np.asarray(data[(c, var)], dtype=np.float64) for c in names])
        if pop == "muscles" and "Ca" in arrays:
            arrays["activation"] = np.minimum(1.0, arrays["Ca"] / _MUSCLE_MAX_CA_mM)
        pops[pop] = arrays
    return Traces(t_ms=np.asarray(t, dtype=np.float64), populations=pops, attrs=attrs)


def _round_mantissa(x: np.ndarray, bits: int) -> np.ndarray:
    """float32 with the mantissa rounded to ``bits`` bits (relative precision 2^-bits; compresses well)."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).copy()
    drop = 23 - int(bits)
    if drop <= 0:
        return b.view(np.float32)
    b = ((b + np.uint32(1 << (drop - 1))) >> np.uint32(drop)) << np.uint32(drop)
    return b.view(np.float32)


def write_compact(traces, path: str | os.PathLike, out_dt_ms: float | None = None, float32: bool = True,
                  extra_attrs: dict | None = None, cell_stride: int = 1, mantissa_bits: int | None = None) -> Path:
    """Write ``traces`` small: every ``out_dt_ms`` (a multiple of its interval), float32, gzip 9.

    Same layout as :func:`owjax.traces.write_traces` (readable by :func:`~owjax.traces.read_traces`);
    for reference data checked into the repository. ``cell_stride`` keeps every n-th cell of each
    population; ``mantissa_bits`` rounds the float32 mantissa (16 bits: relative precision 1.5e-5,
    i.e. < 0.001 mV for V) so that gzip compresses the traces about twice as well.
    """
    from owjax import __version__

    t = np.asarray(traces.t_ms)
    stride = 1
    if out_dt_ms is not None:
        dt = float(np.median(np.diff(t)))
        stride = int(round(out_dt_ms / dt))
        if stride < 1 or abs(stride * dt - out_dt_ms) > 1e-6 * out_dt_ms:
            raise ValueError(f"out_dt_ms={out_dt_ms} is not a multiple of the traces' interval {dt:g} ms")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    dtype = np.float32 if float32 else np.float64
    attrs = {"owjax_version": __version__, **traces.attrs, **(extra_attrs or {})}
    if out_dt_ms is not None:
        attrs["dt_out_ms"] = float(out_dt_ms)
    if cell_stride > 1:
        attrs["cell_stride"] = int(cell_stride)
    if mantissa_bits is not None:
        attrs["mantissa_bits"] = int(mantissa_bits)
    with h5py.File(tmp, "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v if isinstance(v, (int, float, np.number, bool)) else str(v)
        f.create_dataset("t", data=t[::stride].astype(np.float64), compression="gzip", compression_opts=9)
        for pop, arrays in traces.populations.items():
            g = f.create_group(pop)
            rows = slice(None, None, max(1, int(cell_stride)))
            for k, v in arrays.items():
                if k == "names":
                    g.create_dataset("names", data=np.array([str(n) for n in np.asarray(v)[rows]],
                                                            dtype=h5py.string_dtype()))
                elif k == "activation":
                    continue  # derived from Ca; not needed in compact files
                else:
                    x = np.asarray(v)[rows, ::stride].astype(dtype)
                    if mantissa_bits is not None and float32:
                        x = _round_mantissa(x, mantissa_bits)
                    g.create_dataset(k, data=x, compression="gzip", compression_opts=9, shuffle=True)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------- API
def run_reference(
    parameter_set: str = "C1",
    config: str = "IClamp",
    simulator: str = "neuron",
    dt_ms: float = 0.05,
    duration_ms: float | None = None,
    dt_out_ms: float | None = None,
    cache_dir: str | os.PathLike | None = None,
    force: bool = False,
    keep_workdir: bool = False,
    timeout_s: float | None = None,
    verbose: bool = False,
) -> Path:
    """Simulate a c302 network in NEURON or jNML and return the path of its (cached) traces file.

    Arguments:
        parameter_set: c302 parameter set (``C0``, ``C1``, ``C2``).
        config: c302 config (``Full``, ``Muscles``, ``IClamp``, ``Syns``, ``Oscillator``, ``Social``).
        simulator: ``neuron`` (jnml export + nrnivmodl + NEURON) or ``jnml`` (jLEMS).
        dt_ms: the simulator's fixed time step (ms).
        duration_ms: simulated time (ms); ``None`` keeps the config's c302 default.
        dt_out_ms: output interval (ms), a multiple of ``dt_ms``; default 0.05 ms when that is a
            multiple of ``dt_ms``, else ``dt_ms``.
        cache_dir: cache folder (default :func:`default_cache_dir`).
        force: rerun even when a cached result exists.
        keep_workdir: keep the generated files (NeuroML, LEMS, mod, logs) beside the result.
        timeout_s: limit for each external tool run.
        verbose: print progress.

    Returns:
        Path of the traces file (DESIGN.md layout) in the cache.

    Raises:
        ValueError: unknown simulator, parameter set or config, or inconsistent time steps.
        ReferenceToolError: c302, jnml, nrnivmodl or NEURON failed (the message has their log's tail).
    """
    from owjax.neural.c302_data import C302_VERSION, _check, generate_with_c302
    from owjax.traces import write_traces
    from owjax.neural.spec import unknown_name_message

    if simulator not in SIMULATORS:
        raise ValueError(unknown_name_message("simulator", simulator, SIMULATORS))
    _check(parameter_set, config)
    if not (np.isfinite(dt_ms) and dt_ms > 0):
        raise ValueError(f"dt_ms must be positive, got {dt_ms!r}")
    if duration_ms is not None and not (np.isfinite(duration_ms) and duration_ms > 0):
        raise ValueError(f"duration_ms must be positive, got {duration_ms!r}")
    dt_out_ms = _default_dt_out(dt_ms) if dt_out_ms is None else float(dt_out_ms)
    stride = dt_out_ms / dt_ms
    if stride < 1 - 1e-9 or abs(stride - round(stride)) > 1e-6:
        raise ValueError(f"dt_out_ms={dt_out_ms} must be a whole multiple of dt_ms={dt_ms}")

    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = reference_key(parameter_set, config, simulator, dt_ms, duration_ms, dt_out_ms)
    result = cache / f"{key}.h5"
    if result.exists() and not force:
        if verbose:
            print(f"owjax.reference: cached {result}")
        return result

    say = print if verbose else (lambda *a, **k: None)
    t_start = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=cache))
    try:
        say(f"owjax.reference: generating c302 {parameter_set} {config} in {workdir}")
        try:
            generate_with_c302(parameter_set, config, workdir, duration_ms=duration_ms, dt_ms=dt_ms)
        except ReferenceToolError:
            raise
        except Exception as e:
            log = workdir / "c302_generate.log"
            tail = log.read_text()[-_LOG_TAIL:] if log.exists() else ""
            raise ReferenceToolError(f"c302 failed to generate {parameter_set} {config}: {e!r}\n{tail}") from e
        lems = workdir / f"LEMS_c302_{parameter_set}_{config}.xml"
        if duration_ms is not None:  # some configs (Syns) fix their own length: run what was asked
            _set_lems_length(lems, float(duration_ms))
        duration, step = _lems_duration(lems)
        if abs(step - dt_ms) > 1e-9 * dt_ms:
            raise ReferenceToolError(f"c302 wrote step={step} ms into {lems.name}, expected {dt_ms}")
        n_out = int(round(duration / dt_out_ms))
        if abs(n_out * dt_out_ms - duration) > 1e-6 * dt_out_ms:
            raise ValueError(f"duration {duration} ms is not a multiple of dt_out_ms={dt_out_ms}")
        say(f"owjax.reference: running {simulator} (dt {dt_ms} ms, {duration} ms)")
        if simulator == "neuron":
            r = _run_neuron(workdir, lems, dt_ms, dt_out_ms, duration, cache, timeout_s)
        else:
            r = _run_jnml(workdir, lems, dt_ms, dt_out_ms, duration, timeout_s)
        t = np.asarray(r["t"])
        t_expected = np.arange(n_out + 1) * dt_out_ms
        if len(t) < n_out + 1:
            raise ReferenceToolError(f"{simulator} stopped early: {len(t)} samples, expected {n_out + 1} "
                                     f"(last t={t[-1] if len(t) else 'none'} ms); logs in {workdir}")
        # a sample one step off would be off by dt; round-off and jLEMS's 8-digit times are far below
        if np.max(np.abs(t[: n_out + 1] - t_expected)) > 0.1 * dt_ms:
            raise ReferenceToolError(f"{simulator} sample times are off the {dt_out_ms} ms grid; logs in {workdir}")
        data = {k: np.asarray(v)[: n_out + 1] for k, v in r["data"].items()}
        attrs = dict(
            model=f"c302_{parameter_set}",
            network=f"c302_{parameter_set}_{config}",
            parameter_set=parameter_set,
            config=config,
            simulator=simulator,
            simulator_version=r["simulator_version"],
            solver=r["integrator"],
            dt_ms=float(dt_ms),
            dt_out_ms=float(dt_out_ms),
            duration_ms=float(duration),
            duration_requested_ms=_fmt(duration_ms),
            c302_version=C302_VERSION,
            sim_time_s=float(r["sim_time_s"]),
            setup_time_s=float(r["setup_time_s"]),
            compile_time_s=float(r["compile_time_s"]),
            mechanisms_cached=bool(r["mechanisms_cached"]),
            cache_key=key,
            units="t ms, V mV, Ca mM",
            command=(f"python -m owjax.reference --parameter-set {parameter_set} --config {config} "
                     f"--simulator {simulator} --dt-ms {dt_ms:g} --dt-out-ms {dt_out_ms:g}"
                     + (f" --duration-ms {duration_ms:g}" if duration_ms is not None else "")),
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
        traces = _to_traces(t_expected, data, attrs)
        traces.attrs["wall_time_s"] = float(time.perf_counter() - t_start)
        write_traces(result, traces)
        say(f"owjax.reference: wrote {result} (sim {r['sim_time_s']:.2f} s, "
            f"wall {traces.attrs['wall_time_s']:.1f} s)")
    except BaseException:
        if not keep_workdir:
            say(f"owjax.reference: failed; files kept in {workdir}")
        raise
    else:
        if keep_workdir:
            dest = cache / f"{key}.files"
            shutil.rmtree(dest, ignore_errors=True)
            for junk in workdir.glob("x86_64"):
                shutil.rmtree(junk, ignore_errors=True)
            os.replace(workdir, dest)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def richardson(fine, coarse, ratio: float = 2.0):
    """Richardson extrapolation of two first-order (implicit or forward Euler) runs.

    ``(r·X_fine − X_coarse)/(r − 1)`` for every array (V, Ca, …) on the common grid, where
    ``r = dt_coarse/dt_fine``: the O(dt) error terms cancel, leaving O(dt²). Valid while the two
    runs are close (pointwise errors small against the traces' features, spike shifts small against
    spike widths); in a chaotic regime it is only meaningful before the runs diverge.
    """
    from owjax.traces import Traces

    if len(fine.t_ms) != len(coarse.t_ms) or np.max(np.abs(fine.t_ms - coarse.t_ms)) > 1e-6:
        raise ValueError("Richardson extrapolation needs both runs on the same output grid")
    pops = {}
    for pop, arrays in fine.populations.items():
        other = coarse.populations[pop]
        if list(arrays["names"]) != list(other["names"]):
            raise ValueError(f"population {pop}: the two runs list different cells")
        pops[pop] = {}
        for k, v in arrays.items():
            if k == "names":
                pops[pop][k] = v
            elif k == "activation":
                continue
            else:
                pops[pop][k] = (ratio * np.asarray(v, float) - np.asarray(other[k], float)) / (ratio - 1.0)
    attrs = dict(fine.attrs)
    attrs.update(
        solver=f"Richardson extrapolation of {fine.attrs.get('solver', '?')} at dt and {ratio:g}·dt",
        dt_coarse_ms=float(fine.attrs.get("dt_ms", float("nan"))) * ratio,
        richardson=True,
        sim_time_s=float(fine.attrs.get("sim_time_s", 0.0)) + float(coarse.attrs.get("sim_time_s", 0.0)),
        wall_time_s=float(fine.attrs.get("wall_time_s", 0.0)) + float(coarse.attrs.get("wall_time_s", 0.0)),
    )
    return Traces(t_ms=np.asarray(fine.t_ms, float), populations=pops, attrs=attrs)


def run_richardson_reference(parameter_set: str, config: str, simulator: str = "neuron", dt_ms: float = 0.0005,
                             duration_ms: float | None = None, dt_out_ms: float | None = None, **kwargs):
    """Run at ``dt_ms`` and ``2·dt_ms`` (cached like :func:`run_reference`) and return the
    Richardson extrapolation (:func:`richardson`) as :class:`~owjax.traces.Traces`."""
    from owjax.traces import read_traces

    dt_out_ms = _default_dt_out(2 * dt_ms) if dt_out_ms is None else dt_out_ms
    fine = run_reference(parameter_set, config, simulator, dt_ms, duration_ms, dt_out_ms, **kwargs)
    coarse = run_reference(parameter_set, config, simulator, 2 * dt_ms, duration_ms, dt_out_ms, **kwargs)
    tr = richardson(read_traces(fine), read_traces(coarse), 2.0)
    tr.attrs["command"] = str(tr.attrs.get("command", "")) + " --richardson"
    return tr


# ---------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    from owjax.neural.c302_data import CONFIGS, PARAMETER_SETS
    from owjax.traces import read_traces

    p = argparse.ArgumentParser(prog="python -m owjax.reference", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parameter-set", default="C1", choices=PARAMETER_SETS)
    p.add_argument("--config", default="IClamp", choices=CONFIGS)
    p.add_argument("--simulator", default="neuron", choices=SIMULATORS)
    p.add_argument("--dt-ms", type=float, default=0.05, help="simulator time step (ms)")
    p.add_argument("--duration-ms", type=float, default=None, help="simulated time (default: c302's)")
    p.add_argument("--dt-out-ms", type=float, default=None,
                   help="recording interval, a multiple of dt (default 0.05 ms where possible)")
    p.add_argument("--out", type=Path, default=None, help="copy the traces file here")
    p.add_argument("--richardson", action="store_true",
                   help="also run at 2·dt and write the Richardson extrapolation (needs --out)")
    p.add_argument("--compact", action="store_true",
                   help="write --out small: float32, gzip 9 (with --out-dt-ms: subsampled)")
    p.add_argument("--out-dt-ms", type=float, default=None, help="subsampling interval of --compact (ms)")
    p.add_argument("--cell-stride", type=int, default=1, help="--compact: keep every n-th cell of each population")
    p.add_argument("--mantissa-bits", type=int, default=None,
                   help="--compact: round the float32 mantissa to this many bits (16: < 0.001 mV)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="cache folder (default $OWJAX_CACHE/reference or ~/.cache/owjax/reference)")
    p.add_argument("--force", action="store_true", help="ignore a cached result")
    p.add_argument("--keep-workdir", action="store_true", help="keep generated NeuroML/LEMS/mod/log files")
    p.add_argument("--timeout-s", type=float, default=None, help="limit per external tool run")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    regenerate = " ".join(["python -m owjax.reference", *(argv if argv is not None else sys.argv[1:])])
    if a.out_dt_ms is not None and not a.compact:
        print("error: --out-dt-ms needs --compact", file=sys.stderr)
        return 2
    if a.richardson:
        if a.out is None:
            print("error: --richardson needs --out", file=sys.stderr)
            return 2
        try:
            tr = run_richardson_reference(a.parameter_set, a.config, a.simulator, a.dt_ms, a.duration_ms,
                                          a.dt_out_ms, cache_dir=a.cache_dir, force=a.force,
                                          keep_workdir=a.keep_workdir, timeout_s=a.timeout_s,
                                          verbose=not a.quiet)
        except (ValueError, ReferenceToolError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        a.out.parent.mkdir(parents=True, exist_ok=True)
        if a.compact:
            write_compact(tr, a.out, a.out_dt_ms, extra_attrs={"regenerate": regenerate},
                          cell_stride=a.cell_stride, mantissa_bits=a.mantissa_bits)
        else:
            from owjax.traces import write_traces

            write_traces(a.out, tr)
        print(f"{a.out}\n  {tr.attrs.get('solver')}")
        return 0
    try:
        path = run_reference(a.parameter_set, a.config, a.simulator, a.dt_ms, a.duration_ms, a.dt_out_ms,
                             a.cache_dir, a.force, a.keep_workdir, a.timeout_s, verbose=not a.quiet)
    except (ValueError, ReferenceToolError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        if a.compact:
            write_compact(read_traces(path), a.out, a.out_dt_ms, extra_attrs={"regenerate": regenerate},
                          cell_stride=a.cell_stride, mantissa_bits=a.mantissa_bits)
        else:
            shutil.copyfile(path, a.out)
        path = a.out
    tr = read_traces(path)
    at = tr.attrs
    print(f"{path}\n  {at.get('simulator_version')} {at.get('network')} dt {at.get('dt_ms')} ms, "
          f"{at.get('duration_ms')} ms: sim {float(at.get('sim_time_s', float('nan'))):.2f} s, "
          f"end to end {float(at.get('wall_time_s', float('nan'))):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

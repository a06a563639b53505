"""Summary table of a fitting sweep: one row per run, its overrides and its metrics.

``python -m owjax.fit -m +experiment=NAME seed=0,1,2 optim.lr=1e-3,1e-2`` writes one run directory
per combination under ``multirun/fit/NAME/``; when the sweep ends, :class:`SweepSummaryCallback`
(configured in ``conf/fit.yaml``) writes ``summary.csv`` and ``summary.md`` there. The same table
from the shell, for any sweep directory (also one run on a cluster)::

    python -m owjax.fitting.summary multirun/fit/param_recovery
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["collect_runs", "write_summary", "SweepSummaryCallback", "main"]

#: metrics shown in the table when present (others are ignored: lists, dicts)
COLUMNS = (
    "status", "final_loss", "initial_loss", "n_steps", "wall_time_s", "max_rel_error_identifiable",
    "n_identifiable", "initial_period_s", "period_s", "all_in_bounds", "params_in_bounds",
)


#: overrides that do not change a run's result (left out of the table)
_NOT_SHOWN = ("progress", "figures", "resume")


def _overrides(run: Path) -> dict[str, str]:
    f = run / ".hydra" / "overrides.yaml"
    if not f.exists():
        return {}
    import yaml

    out = {}
    for item in yaml.safe_load(f.read_text()) or []:
        k, _, v = str(item).partition("=")
        k = k.lstrip("+~")
        if k == "experiment" or k in _NOT_SHOWN or k.split(".")[0] in ("checkpoint", "test_hooks", "hydra"):
            continue
        out[k] = v
    return out


def collect_runs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Every run below ``sweep_dir`` that has a ``metrics.json`` (or at least a config): one dict each.

    Runs still in progress or killed appear with ``status`` ``incomplete``.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory not found: {sweep_dir}")
    rows = []
    for cfg in sorted(sweep_dir.rglob(".hydra/config.yaml")):
        run = cfg.parent.parent
        row: dict[str, Any] = {"run_dir": str(run.relative_to(sweep_dir)) or "."}
        row.update(_overrides(run))
        m = run / "metrics.json"
        if m.exists():
            metrics = json.loads(m.read_text())
            for k in COLUMNS:
                if k in metrics:
                    row[k] = metrics[k]
            if "non_identifiable" in metrics:
                row["n_non_identifiable"] = len(metrics["non_identifiable"])
        else:
            row["status"] = "incomplete"
        rows.append(row)
    return rows


def write_summary(sweep_dir: str | Path) -> tuple[Path, Path]:
    """Write ``summary.csv`` and ``summary.md`` into ``sweep_dir`` (atomically). Returns both paths."""
    from owjax.core.checkpoint import atomic_write_text

    sweep_dir = Path(sweep_dir)
    rows = collect_runs(sweep_dir)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    for r in rows:
        w.writerow(r)
    csv_path = atomic_write_text(sweep_dir / "summary.csv", buf.getvalue())

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k)) for k in keys) + " |" for r in rows]
    md_path = atomic_write_text(sweep_dir / "summary.md", f"# Sweep summary: {sweep_dir}\n\n" + "\n".join(lines) + "\n")
    return csv_path, md_path


try:
    from hydra.experimental.callback import Callback

    class SweepSummaryCallback(Callback):
        """Hydra callback: write the sweep's summary table when a multirun ends."""

        def on_multirun_end(self, config, **kwargs) -> None:
            try:
                csv_path, _ = write_summary(config.hydra.sweep.dir)
                print(f"owjax.fit: sweep summary in {csv_path.parent}/summary.{{csv,md}}", file=sys.stderr)
            except Exception as e:  # a summary must never fail the sweep
                print(f"owjax.fit: could not write the sweep summary: {e}", file=sys.stderr)

except ImportError:  # pragma: no cover
    SweepSummaryCallback = None  # type: ignore[assignment,misc]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m owjax.fitting.summary", description=__doc__.split("\n\n")[0])
    p.add_argument("sweep_dir", help="a multirun directory, e.g. multirun/fit/param_recovery")
    a = p.parse_args(argv)
    try:
        _, md = write_summary(a.sweep_dir)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

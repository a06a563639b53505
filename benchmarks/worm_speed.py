"""The whole worm (c302 C1 Full + 20-cell intestine, ``+scenario=worm``) before and after the speed work.

    python -m benchmarks.worm_speed [--duration-ms 200000] [--runs coupled:tsit5,multirate:exponential]

Each run is ``strategy:preset`` of :func:`owjax.worm.solve_worm` on the same worm (float64, output
every 10 ms, V and Ca of all 397 cells saved). The first run is the baseline: the others are compared
with it (max |ΔV| over all cells and times, DVB/AVL separately, Ca relative to its range) and the
DD009 metrics of every run are reported (defecation period, wave direction, cycles).

Writes ``benchmarks/results/worm_speed.json`` and ``benchmarks/results/worm_speed.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from owjax.core.solve import get_solver  # noqa: E402
from owjax.neural.build import build_model, build_spec  # noqa: E402
from owjax.organs.intestine_run import build_intestine, intestine_population  # noqa: E402
from owjax.worm import DifferentiableWorm, solve_worm  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}, "
            f"jax {jax.__version__}, load average at start {os.getloadavg()[0]:.1f}")


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        return "unknown"


def run(runs: list[tuple[str, str]], duration_ms: float, max_steps: int = 2_000_000) -> dict:
    worm = DifferentiableWorm(build_model(build_spec("C1", "Full")), build_intestine({}))
    out, sols = [], []
    for strategy, preset in runs:
        cfg = get_solver({"preset": preset, "max_steps": max_steps})
        t0 = time.perf_counter()
        s = solve_worm(worm, duration_ms, 10.0, cfg, strategy=strategy)
        wall = time.perf_counter() - t0
        _, metrics = intestine_population(s.t_ms, s.intestine)
        row = dict(strategy=strategy, preset=preset, method=cfg.method, rtol=cfg.rtol, wall_s=wall,
                   network_compile_s=s.compile_time_s, stats=s.stats,
                   defecation_period_s=metrics["defecation_period_s"], wave_direction=metrics["wave_direction"],
                   n_cycles=metrics["n_cycles"], all_cells_oscillate=metrics["all_cells_oscillate"],
                   int1_peak_times_s=metrics["int1_peak_times_s"])
        if sols:
            base = sols[0]
            names = list(worm.network.cell_names)
            dv = np.abs(s.network["V"] - base.network["V"])
            ca_range = np.ptp(base.network["Ca"], axis=0)
            row.update(
                max_abs_dV_mV=float(dv.max()),
                max_abs_dV_trigger_cells_mV=float(dv[:, [names.index("DVB"), names.index("AVL")]].max()),
                max_Ca_err_rel_range=float((np.abs(s.network["Ca"] - base.network["Ca"]).max(0)
                                            / np.maximum(ca_range, 1e-30)).max()),
                speedup_wall=out[0]["wall_s"] / wall,
            )
        out.append(row)
        sols.append(s)
        print(json.dumps({k: v for k, v in row.items() if k != "int1_peak_times_s"}), flush=True)
    return dict(machine=machine(), commit=commit(), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                duration_ms=duration_ms, runs=out)


def write(res: dict, name: str = "worm_speed") -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=2))
    lines = [
        f"The whole worm (c302 C1 Full + intestine), {res['duration_ms'] / 1000:g} s, float64, output every 10 ms.",
        f"Machine: {res['machine']}; {res['date']}, commit {res['commit']}.",
        "Wall time includes compilation (the network's compile time is listed separately). "
        "Differences are against the first row.",
        "",
        "| strategy | preset | wall (s) | network compile (s) | network steps | intestine steps | speed-up | "
        "max abs ΔV (mV) | DVB/AVL max abs ΔV (mV) | max Ca err / range | period (s) | wave | cycles |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["runs"]:
        st = r["stats"]
        net = st.get("network_num_steps", st.get("num_steps"))
        lines.append(
            f"| {r['strategy']} | {r['preset']} ({r['method']}, rtol {r['rtol']:g}) | {r['wall_s']:.1f} | "
            f"{r['network_compile_s']:.1f} | {net} | {st.get('intestine_num_steps', '(shared)')} | "
            f"{r.get('speedup_wall', 1.0):.1f}× | {r.get('max_abs_dV_mV', 0.0):.3g} | "
            f"{r.get('max_abs_dV_trigger_cells_mV', 0.0):.3g} | {r.get('max_Ca_err_rel_range', 0.0):.3g} | "
            f"{r['defecation_period_s']:.2f} | {r['wave_direction']} | {r['n_cycles']} |")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration-ms", type=float, default=200_000.0)
    p.add_argument("--runs", default="coupled:tsit5,multirate:exponential",
                   help="comma-separated strategy:preset pairs; the first is the baseline")
    p.add_argument("--name", default="worm_speed", help="results file stem")
    a = p.parse_args(argv)
    runs = [tuple(r.split(":")) for r in a.runs.split(",")]
    bad = [r for r in runs if len(r) != 2]
    if bad:
        raise SystemExit(f"--runs: each entry is strategy:preset, got {bad}")
    write(run(runs, a.duration_ms), a.name)


if __name__ == "__main__":
    main()

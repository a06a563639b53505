"""Accuracy and speed of every solver preset on c302 C1 Full (1 s), against a converged solution.

    python -m benchmarks.solver_presets [--duration-ms 1000] [--presets tsit5,fast_f32,dopri5,...]

The reference is owjax's own converged solve (Dormand–Prince 8(7), rtol = atol = 1e-10, float64);
equivalence with NEURON is measured separately (docs/equivalence.md). The network is excitable, so
a small error can move a spike by a fraction of a millisecond, which then shows as a large pointwise
voltage error: besides max |ΔV| we report the spike-time error of matched spikes and the first time
any cell deviates by more than 1 mV. Every run saves V and Ca of every cell every 0.05 ms (what the
NEURON runs record), as ``make bench`` does.

Writes ``benchmarks/results/solver_presets.json`` and ``benchmarks/results/solver_presets.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from owjax.neural.c302_data import load_c302_network  # noqa: E402
from owjax.neural.network import NetworkModel  # noqa: E402
from owjax.core.solve import solve  # noqa: E402
from owjax.validate import spike_times  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    import os

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}, jax {jax.__version__}"


def spike_error(t, va, vb):
    """(max |Δt| of matched spikes in ms, count mismatches) over all cells."""
    worst, mismatched = 0.0, 0
    for i in range(va.shape[1]):
        a, b = spike_times(t, va[:, i]), spike_times(t, vb[:, i])
        if len(a) != len(b):
            mismatched += 1
            n = min(len(a), len(b))
            a, b = a[:n], b[:n]
        if len(a):
            worst = max(worst, float(np.abs(a - b).max()))
    return worst, mismatched


def run(presets, duration_ms, dt_out_ms=0.05, repeats=2):
    spec = load_c302_network("C1", "Full")
    m64 = NetworkModel.from_spec(spec, jnp.float64)
    t0 = time.perf_counter()
    ref = solve(m64, duration_ms, dt_out_ms, "dopri8", save=("V", "Ca"))
    ref_wall = time.perf_counter() - t0
    vr, car = ref.ys["V"], ref.ys["Ca"]
    v_range = np.maximum(vr.max(0) - vr.min(0), 1.0)
    records = []
    for name in presets:
        dtype = jnp.float32 if name.endswith("_f32") else jnp.float64
        preset = name.removesuffix("_f32")
        m = NetworkModel.from_spec(spec, dtype)
        walls, compile_s = [], 0.0
        # the implicit presets take minutes per second of network time: timed once (compile included
        # in the first call is subtracted by solve itself)
        for _ in range(1 if preset in ("kvaerno5", "kencarp4") else repeats):
            s = solve(m, duration_ms, dt_out_ms, preset, save=("V", "Ca"))
            walls.append(s.wall_time_s - s.compile_time_s)
            compile_s = max(compile_s, s.compile_time_s)
        v = s.ys["V"].astype(np.float64)
        ca = s.ys["Ca"].astype(np.float64)
        err = np.abs(v - vr)
        dev = np.nonzero((err > 1.0).any(1))[0]
        st_err, st_mis = spike_error(s.t_ms, v, vr)
        rec = dict(
            case=f"C1_Full_{int(duration_ms)}ms_{name}",
            preset=preset,
            dtype=str(np.dtype(dtype)),
            owjax_s=float(min(walls)),
            compile_s=float(compile_s),
            steps=int(s.stats["num_steps"]),
            rejected=int(s.stats.get("num_rejected_steps", 0)),
            max_abs_err_V_mV=float(err.max()),
            median_cell_max_err_V_mV=float(np.median(err.max(0))),
            max_rel_err_vs_converged=float((err / v_range).max()),
            frac_cells_within_1pct=float(((err / v_range).max(0) <= 0.01).mean()),
            max_abs_err_Ca_nM=float(np.abs(ca - car).max()),
            first_time_1mV_off_ms=float(s.t_ms[dev[0]]) if len(dev) else None,
            max_spike_time_err_ms=st_err,
            cells_spike_count_mismatch=st_mis,
            machine=machine(),
        )
        records.append(rec)
        print(json.dumps(rec))
    return records, dict(reference="dopri8 rtol=atol=1e-10 float64", reference_wall_s=ref_wall)


def to_markdown(records, meta) -> str:
    lines = [
        f"Solver presets on c302 C1 Full (302 neurons + 95 muscles), reference: {meta['reference']}.",
        f"Machine: {records[0]['machine'] if records else '?'}.",
        "",
        "| preset | dtype | wall (s) | compile (s) | steps | max abs ΔV (mV) | median cell max ΔV (mV) "
        "| cells within 1% | max spike-time err (ms) | cells w/ spike-count mismatch | first >1 mV (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['preset']} | {r['dtype']} | {r['owjax_s']:.2f} | {r['compile_s']:.1f} | {r['steps']} "
            f"| {r['max_abs_err_V_mV']:.3g} | {r['median_cell_max_err_V_mV']:.3g} "
            f"| {100 * r['frac_cells_within_1pct']:.0f}% | {r['max_spike_time_err_ms']:.3g} "
            f"| {r['cells_spike_count_mismatch']} | {r['first_time_1mV_off_ms']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration-ms", type=float, default=1000.0)
    p.add_argument("--presets", default="tsit5,tsit5_f32,fast_f32,dopri5,exponential,kvaerno5,kencarp4,heun,euler",
                   help="comma-separated preset names; a suffix _f32 runs the preset in float32")
    a = p.parse_args(argv)
    records, meta = run(a.presets.split(","), a.duration_ms)
    RESULTS.mkdir(parents=True, exist_ok=True)
    # presets not rerun keep their earlier records (a partial rerun updates the table, not replaces it)
    old = RESULTS / "solver_presets.json"
    if old.exists():
        new_cases = {r["case"] for r in records}
        kept = [r for r in json.loads(old.read_text())["records"] if r["case"] not in new_cases]
        records = kept + records
    (RESULTS / "solver_presets.json").write_text(json.dumps(dict(meta=meta, records=records), indent=1) + "\n")
    (RESULTS / "solver_presets.md").write_text(to_markdown(records, meta))
    print(to_markdown(records, meta))


if __name__ == "__main__":
    main()

"""How small an error can the checked-in converged-NEURON reference resolve? (issue 16, Jaxley targets)

    python -m benchmarks.reference_floor [--presets imex,tsit5,imex_fast]

The accuracy column of ``bench.md`` and ``jaxley_compare.md`` is ``max_rel_err_vs_converged``: the
largest |ΔV| over cells and times, divided by the cell's converged V range (at least 1 mV), against
the checked-in Richardson-extrapolated NEURON traces of C1 Full (``tests/c302_vs_neuron/data``, every
3rd cell, 0.5-ms samples). This script solves C1 Full (1 s) with Tsit5 at rtol = atol = 1e-6, 1e-8 and
1e-10 in float64: if the error against the reference stops falling as the tolerance does, what is left
is the reference's own resolution (NEURON's residual error after extrapolation, the stored precision,
or a real difference between the two models — this script cannot tell which). It also reports every
preset's error against owjax's own converged solve (Tsit5 at 1e-10, the same cells and metric): the
preset's solver error alone. Writes ``benchmarks/results/reference_floor.{json,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
REFERENCE = Path(__file__).parents[1] / "tests" / "c302_vs_neuron" / "data" / "C1_Full.h5"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="imex,tsit5,imex_fast,fast",
                   help="solver presets whose own solver error is reported (float32 for *_fast/fast)")
    a = p.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from benchmarks.run_all import errors_vs
    from owjax.core.solve import get_solver, solve
    from owjax.neural.c302_data import load_c302_network
    from owjax.neural.network import NetworkModel
    from owjax.traces import read_traces

    ref = read_traces(REFERENCE)
    spec = load_c302_network("C1", "Full")
    m64 = NetworkModel.from_spec(spec, jnp.float64)
    ref_names = set()
    for pop in ref.populations.values():
        ref_names |= {str(n) for n in pop["names"]}
    cols = [j for j, n in enumerate(m64.cell_names) if n in ref_names]

    def run(model, cfg):
        t0 = time.perf_counter()
        s = solve(model, 1000.0, 0.05, cfg, save=("V",))
        return np.asarray(s.t_ms, np.float64), np.asarray(s.ys["V"], np.float64), time.perf_counter() - t0

    rows, converged = [], None
    for tol in (1e-6, 1e-8, 1e-10):
        cfg = dataclasses.replace(get_solver("tsit5"), rtol=tol, atol=tol)
        t, v, wall = run(m64, cfg)
        e = errors_vs(ref, t, v, m64.cell_names)
        rows.append(dict(kind="tolerance sweep", solver=f"tsit5 rtol=atol={tol:g} (float64)",
                         max_rel_err_vs_reference=e["max_rel_err_vs_converged"], max_abs_err_V_mV=e["max_abs_err_V_mV"],
                         max_spike_time_err_ms=e["max_spike_time_err_ms"], cells_compared=e["cells_compared"]))
        print(json.dumps(rows[-1]), flush=True)
        converged = (t, v)
    t_c, v_c = converged
    truth = v_c[:, cols]
    scale = np.maximum(np.ptp(truth, axis=0), 1.0)
    for preset in [x for x in a.presets.split(",") if x]:
        cfg = get_solver(preset)
        model = m64 if not preset.endswith("fast") else NetworkModel.from_spec(spec, jnp.float32)
        t, v, wall = run(model, cfg)
        if not np.allclose(t, t_c):
            raise RuntimeError(f"{preset}: output times differ from the converged solve's")
        solver_err = float((np.abs(v[:, cols] - truth).max(axis=0) / scale).max())
        e = errors_vs(ref, t, v, m64.cell_names)
        rows.append(dict(kind="preset", solver=f"{preset} ({cfg.method}, rtol {cfg.rtol:g}, {model.dtype})",
                         max_rel_err_vs_reference=e["max_rel_err_vs_converged"], max_rel_err_vs_converged_owjax=solver_err,
                         max_abs_err_V_mV=e["max_abs_err_V_mV"], max_spike_time_err_ms=e["max_spike_time_err_ms"],
                         cells_compared=e["cells_compared"]))
        print(json.dumps(rows[-1]), flush=True)
    floor = rows[2]["max_rel_err_vs_reference"]
    out = dict(reference=str(REFERENCE.relative_to(Path(__file__).parents[1])), rows=rows, reference_floor=floor,
               machine_note="values, not timings: independent of the machine")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reference_floor.json").write_text(json.dumps(out, indent=1) + "\n")
    md = ["# What the converged-NEURON reference can resolve (`python -m benchmarks.reference_floor`)", "",
          "C1 Full, 1 s; metric of bench.md (max over the 133 stored cells and 0.5-ms samples of |ΔV| / the "
          "cell's converged V range, ≥ 1 mV).", "",
          "| solver | error vs checked-in converged NEURON | error vs owjax's converged solve (tsit5 1e-10) | "
          "max spike-time difference vs NEURON (ms) |", "|---|---|---|---|"]
    for r in rows:
        own = r.get("max_rel_err_vs_converged_owjax")
        md.append(f"| {r['solver']} | {r['max_rel_err_vs_reference']:.3g} | {'—' if own is None else f'{own:.3g}'} | "
                  f"{r['max_spike_time_err_ms']:.3g} |")
    md += ["", f"The error against the reference stops at **{floor:.3g}** as the tolerance falls from 1e-8 to 1e-10: "
               "that is the smallest error this reference can show. An error ratio against another simulator "
               "(Jaxley's) measured on it is therefore at most that simulator's error / "
               f"{floor:.3g}, whatever owjax's own error (right column)."]
    (RESULTS / "reference_floor.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())

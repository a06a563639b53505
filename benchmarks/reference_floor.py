"""How small an error can the checked-in converged-NEURON reference resolve? (issue 16, Jaxley targets)

    python -m benchmarks.reference_floor [--presets imex,tsit5,imex_fast] [--reference FILE …]
        [--traces NAME=NPZ …]

The accuracy column of ``bench.md`` and ``jaxley_compare.md`` is ``max_rel_err_vs_converged``: the
largest |ΔV| over cells and times, divided by the cell's converged V range (at least 1 mV), against
the checked-in Richardson-extrapolated NEURON traces of C1 Full (``tests/c302_vs_neuron/data``, every
3rd cell, 0.5-ms samples). This script solves C1 Full (1 s) with Tsit5 at rtol = atol = 1e-6, 1e-8 and
1e-10 in float64: if the error against the reference stops falling as the tolerance does, what is left
is the reference's own resolution (NEURON's residual error after extrapolation, the stored precision,
or a real difference between the two models — this script cannot tell which). It also reports every
preset's error against owjax's own converged solve (Tsit5 at 1e-10, the same cells and metric): the
preset's solver error alone. ``--reference`` adds more reference files (e.g. a finer NEURON run from
``python -m owjax.reference --richardson``), each a column; ``--traces`` adds saved runs of other
simulators (npz with ``t``, ``V`` (T, N), ``names``, as ``benchmarks.jaxley_compare case forward
--save`` writes), each a row. Writes ``benchmarks/results/reference_floor.{json,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
DATA = Path(__file__).parents[1] / "tests" / "c302_vs_neuron" / "data"
REFERENCE = DATA / "C1_Full.h5"  # what bench.md and jaxley_compare.md measure against
FINER = DATA / "C1_Full_dt0.00025.h5"  # NEURON at dt 0.00025 ms (and 0.0005), extrapolated
FINEST = DATA / "C1_Full_dt0.000125.h5"  # NEURON at dt 0.000125 ms (and 0.00025), extrapolated


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="imex,tsit5,imex_fast,fast,imex@1e-6",
                   help="solver presets whose own solver error is reported (float32 for *_fast/fast); "
                        "PRESET@TOL sets rtol = atol = TOL")
    p.add_argument("--reference", action="append", type=Path, default=None,
                   help="reference traces file(s) (default: the checked-in C1 Full file and its finer siblings); "
                        "the first sets the cells")
    p.add_argument("--traces", action="append", default=[], metavar="NAME=NPZ",
                   help="another simulator's saved run (npz: t, V, names) to score as a row")
    a = p.parse_args(argv)
    refs = a.reference or [r for r in (REFERENCE, FINER, FINEST) if r.exists()]
    extra = []
    for item in a.traces:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            p.error(f"--traces wants NAME=NPZ with an existing file, got {item!r}")
        extra.append((name, Path(path)))

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from benchmarks.run_all import errors_vs, repository_path
    from owjax.core.solve import get_solver, solve
    from owjax.neural.c302_data import load_c302_network
    from owjax.neural.network import NetworkModel
    from owjax.traces import read_traces

    references = [(repository_path(r), read_traces(r)) for r in refs]
    spec = load_c302_network("C1", "Full")
    m64 = NetworkModel.from_spec(spec, jnp.float64)
    ref_names = set()
    for pop in references[0][1].populations.values():
        ref_names |= {str(n) for n in pop["names"]}
    cols = [j for j, n in enumerate(m64.cell_names) if n in ref_names]

    def run(model, cfg):
        s = solve(model, 1000.0, 0.05, cfg, save=("V",))
        run.steps = int(s.stats["num_steps"])
        return np.asarray(s.t_ms, np.float64), np.asarray(s.ys["V"], np.float64)

    def scores(t, v, names):
        out = {}
        for label, ref in references:
            e = errors_vs(ref, t, v, names)
            out[label] = dict(max_rel_err=e["max_rel_err_vs_converged"], max_abs_err_V_mV=e["max_abs_err_V_mV"],
                              max_spike_time_err_ms=e["max_spike_time_err_ms"], cells_compared=e["cells_compared"],
                              spike_count_mismatches=e["cells_spike_count_mismatch"])
        return out

    rows, converged = [], None
    for tol in (1e-6, 1e-8, 1e-10):
        cfg = dataclasses.replace(get_solver("tsit5"), rtol=tol, atol=tol)
        t, v = run(m64, cfg)
        rows.append(dict(kind="tolerance sweep", solver=f"owjax tsit5 rtol=atol={tol:g} (float64)",
                         vs_reference=scores(t, v, m64.cell_names)))
        print(json.dumps(rows[-1]), flush=True)
        converged = (t, v)
    t_c, v_c = converged
    names64 = list(m64.cell_names)
    truth = v_c[:, cols]
    scale = np.maximum(np.ptp(truth, axis=0), 1.0)

    def own_error(t, v, names):
        """Max relative error against owjax's converged solve on the reference's cells (interpolated
        onto its 0.05-ms grid)."""
        idx = {str(n): k for k, n in enumerate(names)}
        vv = np.stack([np.interp(t_c, t, v[:, idx[names64[j]]]) for j in cols], axis=1)
        return float((np.abs(vv - truth).max(axis=0) / scale).max())

    for item in [x for x in a.presets.split(",") if x]:
        preset, _, tol = item.partition("@")
        cfg = get_solver(preset)
        if tol:
            cfg = dataclasses.replace(cfg, rtol=float(tol), atol=float(tol))
        model = m64 if not preset.endswith("fast") else NetworkModel.from_spec(spec, jnp.float32)
        t, v = run(model, cfg)
        rows.append(dict(kind="preset", solver=f"owjax {preset} ({cfg.method}, rtol {cfg.rtol:g}, {model.dtype})",
                         vs_reference=scores(t, v, m64.cell_names), vs_converged_owjax=own_error(t, v, m64.cell_names),
                         steps=run.steps))
        print(json.dumps(rows[-1]), flush=True)
    for name, path in extra:
        with np.load(path) as z:
            t, v, names = np.asarray(z["t"], np.float64), np.asarray(z["V"], np.float64), [str(x) for x in z["names"]]
        rows.append(dict(kind="other simulator", solver=name, vs_reference=scores(t, v, names),
                         vs_converged_owjax=own_error(t, v, names)))
        print(json.dumps(rows[-1]), flush=True)
    floors = {label: rows[2]["vs_reference"][label]["max_rel_err"] for label, _ in references}
    out = dict(references=[label for label, _ in references], rows=rows, reference_floor=floors,
               note="values, not timings: independent of the machine")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reference_floor.json").write_text(json.dumps(out, indent=1) + "\n")
    labels = [label for label, _ in references]
    md = ["# What the converged-NEURON reference can resolve (`python -m benchmarks.reference_floor`)", "",
          "C1 Full, 1 s; metric of bench.md (max over the reference's cells and samples of |ΔV| / the cell's "
          "converged V range, ≥ 1 mV). References: " + "; ".join(f"({k + 1}) `{lab}`" for k, lab in enumerate(labels))
          + ".", "",
          "| solver | " + " | ".join(f"error vs reference ({k + 1})" for k in range(len(labels)))
          + " | error vs owjax's converged solve (tsit5 1e-10) |",
          "|---|" + "---|" * (len(labels) + 1)]
    for r in rows:
        own = r.get("vs_converged_owjax")
        md.append(f"| {r['solver']} | " + " | ".join(f"{r['vs_reference'][lab]['max_rel_err']:.3g}" for lab in labels)
                  + f" | {'—' if own is None else f'{own:.3g}'} |")
    md += ["", "Floor (owjax tsit5 at 1e-10 against each reference): "
           + ", ".join(f"({k + 1}) **{floors[lab]:.3g}**" for k, lab in enumerate(labels))
           + ". Where the error stops falling as the tolerance does, that is the smallest error the reference "
             "can show, and an error ratio against another simulator measured on it is at most that "
             "simulator's error / the floor."]
    (RESULTS / "reference_floor.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())

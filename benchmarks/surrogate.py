"""The body surrogate against the body physics, side by side on this machine (DD017's 1000× bar).

    python -m benchmarks.surrogate [--surrogate STEM] [--also STEM ...] [--physics-batch 1 4 16 64]
                                   [--physics-samples 64] [--surrogate-batch 256] [--processes N]

Both run batched on the same inputs: seeded travelling-wave activations (5 s, the data's 0.02-s grid)
in random media. Measured, after compilation, best of ``--repeats``:

* ``physics``: owjax's body (Tsit5, rtol = atol = 1e-5, float64 — the settings the training data
  were generated with), the same ``--physics-samples`` inputs run in vmapped batches of each
  ``--physics-batch`` size; the fastest per sample is the reference. (An adaptive solve vmapped over a
  batch takes as many steps as its slowest member, and a solve's cost depends on its input, so the
  batch size and the inputs both matter: timing only the first ``batch`` inputs, as this benchmark did
  before 2026-12-06, confounds the two.)
* ``surrogate``: the FNO (float32), vmapped over ``--surrogate-batch`` samples, on the training grid
  (0.04 s) and on the data grid (0.02 s), and at batches 16, 32 and 64;
* ``auto``: the prediction with the error estimate that ``backend="auto"`` adds (the mirrored
  prediction, the latent summary, nearest neighbours in NumPy), per sample.
* **one process per core** (since 2026-12-07; :mod:`owjax.surrogate.throughput`): the same physics
  inputs solved one at a time by ``--processes`` worker processes, each pinned to its own core, and
  the surrogate's ``--surrogate-batch`` inputs split between as many pinned processes. An unbatched
  solve uses one core and the surrogate's batched products use all of them, so timing each in one
  process (as this benchmark did before) compared the physics on one core with the surrogate on two.
  The speed-up is the fastest surrogate row against the fastest physics row, whichever way each ran;
  the ratio of the two one-process bests is reported beside it for comparison with earlier runs.

``--also``: other surrogates timed in the same run on the same inputs (training grid, same batches),
so that two models are compared against one measurement of the physics.

Reported per sample and per simulated second; the speed-up is physics / surrogate, and also the
ratio to Sibernetic's ≈ 23 min of CPU per simulated second on a 2-core machine (DESIGN.md).
Writes ``benchmarks/results/surrogate.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
SIBERNETIC_CPU_S_PER_SIM_S = 23 * 60.0


def _best(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--surrogate", default=None, help="surrogate stem (default: the shipped one)")
    p.add_argument("--also", nargs="*", default=[], help="more surrogate stems, timed side by side (training grid)")
    p.add_argument("--physics-batch", type=int, nargs="+", default=[1, 4, 16, 64],
                   help="physics batch sizes tried (each a divisor of --physics-samples); the fastest is the reference")
    p.add_argument("--physics-samples", type=int, default=64, help="inputs the physics is timed on")
    p.add_argument("--surrogate-batch", type=int, default=256, help="also timed: batches 16, 32 and 64")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--processes", type=int, default=None,
                   help="worker processes for the per-core rows (default: every core; 0: no per-core rows)")
    p.add_argument("--out", default=str(RESULTS / "surrogate"))
    a = p.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from benchmarks.run_all import machine
    from owjax.body.integrate import BodySolver
    from owjax.core.checkpoint import atomic_write_json, atomic_write_text
    from owjax.surrogate import families as F
    from owjax.surrogate.component import BodySurrogate, indicators
    from owjax.surrogate.data import PhysicsRunner
    from owjax.surrogate.evaluate import physics_seconds_per_sample, predict_batch
    from owjax.surrogate.throughput import available_cores, per_core_seconds_per_sample

    sur = BodySurrogate.load(a.surrogate)
    dur, dt_data, dt_train = (sur.settings[k] for k in ("duration_s", "dt_data_s", "dt_train_s"))
    bad = [b for b in a.physics_batch if b < 1 or a.physics_samples % b]
    if bad or a.physics_samples < 1:
        raise SystemExit(f"--physics-batch {bad}: each must divide --physics-samples {a.physics_samples}")
    n_proc = len(available_cores()) if a.processes is None else a.processes
    if n_proc < 0 or n_proc > len(available_cores()) or (n_proc and (a.physics_samples % n_proc
                                                                        or a.surrogate_batch % n_proc)):
        raise SystemExit(f"--processes {n_proc}: 0, or up to the {len(available_cores())} core(s) this process may use, "
                         f"dividing --physics-samples {a.physics_samples} and --surrogate-batch {a.surrogate_batch}")
    n = max(a.physics_samples, a.surrogate_batch, 64)  # inputs enough for every timed batch (16, 32, 64, --surrogate-batch)
    t = F.time_grid(dur, dt_data)
    params = [F.draw_params("wave", 2026, i) for i in range(n)]
    acts = np.stack([F.make_activation("wave", q, t) for q in params])
    med = np.array([q["medium"] for q in params])
    load0 = os.getloadavg()

    runner = PhysicsRunner(dur, dt_data, BodySolver(rtol=1e-5, atol=1e-5), jnp.float64)
    ns = a.physics_samples
    phys_rows, phys_compile = physics_seconds_per_sample(runner, acts[:ns], med[:ns], a.physics_batch, a.repeats)
    for b, v in phys_rows.items():
        print(f"physics, batch {b}: {v:.4g} s per sample over {ns} inputs", flush=True)
    pb = min(phys_rows, key=phys_rows.get)
    phys_one_process = phys_rows[pb]

    phys_per_core = None
    if n_proc:
        phys_per_core = per_core_seconds_per_sample("physics", acts[:ns], med[:ns], processes=n_proc, repeats=a.repeats,
                                                    duration_s=dur, dt_s=dt_data)
        print(f"physics, one process per core ({n_proc}): {phys_per_core['s_per_sample']:.4g} s per sample "
              f"(each process {', '.join(f'{v:.4g}' for v in phys_per_core['worker_s_per_sample'])})", flush=True)
    phys = min([phys_one_process] + ([phys_per_core["s_per_sample"]] if phys_per_core else []))
    phys_mode = "one process per core" if phys_per_core and phys < phys_one_process else f"one process, batch {pb}"

    rows = {}
    stride = int(round(dt_train / dt_data))
    cases = [(f"train grid, batch {b}", t[::stride], acts[:, ::stride], b) for b in sorted({16, 32, 64, a.surrogate_batch})]
    cases.append((f"data grid, batch {a.surrogate_batch}", t, acts, a.surrogate_batch))
    for label, ts, act, bs in cases:
        x = act[:bs]
        predict_batch(sur.model, ts, x, med[:bs], batch_size=bs)  # compile
        s = _best(lambda: predict_batch(sur.model, ts, x, med[:bs], batch_size=bs), a.repeats * 2) / bs
        rows[label] = {"s_per_sample": s, "s_per_simulated_s": s / dur, "speedup_vs_physics": phys / s,
                       "dt_s": float(ts[1] - ts[0]), "batch": bs}
    others = {}
    for stem in a.also:
        other = BodySurrogate.load(stem)
        if float(other.settings["dt_train_s"]) != float(dt_train):
            raise SystemExit(f"--also {stem}: trained on dt {other.settings['dt_train_s']} s, not {dt_train} s")
        h = other.settings.get("hyperparameters", {})
        others[stem] = {"hyperparameters": h, "rows": {}}
        for label, ts, act, bs in cases[:-1]:
            x = act[:bs]
            predict_batch(other.model, ts, x, med[:bs], batch_size=bs)
            s_o = _best(lambda: predict_batch(other.model, ts, x, med[:bs], batch_size=bs), a.repeats * 2) / bs
            others[stem]["rows"][label] = {"s_per_sample": s_o, "speedup_vs_physics": phys / s_o, "batch": bs}
    best_one_process = min((k for k in rows if k.startswith("train grid")), key=lambda k: rows[k]["s_per_sample"])
    ratio_one_process = phys_one_process / rows[best_one_process]["s_per_sample"]
    if n_proc:
        sc = per_core_seconds_per_sample("surrogate", acts[:a.surrogate_batch, ::stride], med[:a.surrogate_batch],
                                         processes=n_proc, repeats=a.repeats * 2, surrogate_stem=a.surrogate,
                                         t_s=t[::stride])
        label = f"train grid, one process per core ({n_proc}), batch {a.surrogate_batch // n_proc} each"
        rows[label] = {"s_per_sample": sc["s_per_sample"], "s_per_simulated_s": sc["s_per_sample"] / dur,
                       "speedup_vs_physics": phys / sc["s_per_sample"], "dt_s": float(t[stride] - t[0]),
                       "batch": f"{a.surrogate_batch // n_proc} × {n_proc}", "processes": n_proc,
                       "worker_s_per_sample": sc["worker_s_per_sample"]}
        print(f"surrogate, {label}: {sc['s_per_sample']:.3g} s per sample", flush=True)
    best_label = min((k for k in rows if k.startswith("train grid")), key=lambda k: rows[k]["s_per_sample"])
    xa, ma, ta = acts[:a.surrogate_batch, ::stride], med[:a.surrogate_batch], t[::stride]

    def auto():
        ind = indicators(sur.model, ta, xa, ma)
        return sur.estimate_from_indicators(ta, xa, ma, ind)

    auto()
    auto_s = _best(auto, a.repeats) / a.surrogate_batch
    best = rows[best_label]
    feats = auto_s - rows[f"train grid, batch {a.surrogate_batch}"]["s_per_sample"]
    out = {
        "machine": machine(), "load_average_before": list(load0), "load_average_after": list(os.getloadavg()),
        "jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
        "duration_s": dur, "inputs": "seeded travelling waves (family 'wave', seed 2026), media in [0, 1]",
        "physics": {"s_per_sample": phys, "s_per_simulated_s": phys / dur, "mode": phys_mode, "batch": pb,
                    "dtype": "float64", "one_process_s_per_sample": phys_one_process,
                    "per_core": phys_per_core,
                    "solver": "tsit5 rtol=atol=1e-5", "samples": ns,
                    "s_per_sample_by_batch": {str(b): v for b, v in phys_rows.items()},
                    "compile_plus_first_run_s": {str(b): v for b, v in phys_compile.items()}},
        "surrogate": rows,
        "auto_s_per_sample": auto_s, "auto_ensemble_members": len(sur.members), "auto_overhead_s_per_sample": feats,
        "speedup_vs_physics": best["speedup_vs_physics"], "speedup_best_case": best_label,
        "speedup_one_process_each": ratio_one_process, "speedup_one_process_each_case": best_one_process,
        "speedup_vs_physics_with_auto_estimate": phys / auto_s,
        "speedup_vs_sibernetic_cpu": SIBERNETIC_CPU_S_PER_SIM_S / best["s_per_simulated_s"],
        "surrogate_stem": str(a.surrogate or "shipped"), "also": others,
        "hyperparameters": sur.settings.get("hyperparameters", {}),
        "command": "python -m benchmarks.surrogate " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
    stem = Path(a.out)
    atomic_write_json(stem.with_suffix(".json"), out)
    lines = [
        "# Body surrogate vs body physics (benchmarks/surrogate.py)", "",
        f"Machine: {out['machine']}; load average {load0[0]:.1f} before, {out['load_average_after'][0]:.1f} after "
        f"(shared machine); JAX {jax.__version__} on {out['devices'][0]}; {out['date']}.", "",
        f"Inputs: {out['inputs']}, {dur:g} s each; the physics timed on the first {ns}, the surrogate on the first {a.surrogate_batch}.", "",
        f"Surrogate: `{out['surrogate_stem']}` (width {out['hyperparameters'].get('width')}, "
        f"{out['hyperparameters'].get('modes')} modes, operator stride {out['hyperparameters'].get('operator_stride', 1)}, "
        f"rod stride {out['hyperparameters'].get('rod_stride', 1)}).", "",
        "| backend | batch | grid dt (s) | s per sample | s per simulated s | speed-up vs physics |",
        "|---|---|---|---|---|---|",
    ]
    for b, v in phys_rows.items():
        ref = b == pb and phys_mode.startswith("one process,")
        lines.append(f"| physics (Tsit5 1e-5, float64){' — the reference (fastest)' if ref else ''} | {b} | "
                     f"{dt_data:g} | {v:.4g} | {v / dur:.4g} | {'1' if ref else f'{phys / v:.2f}'} |")
    if phys_per_core:
        v = phys_per_core["s_per_sample"]
        ref = phys_mode == "one process per core"
        lines.append(f"| physics, one process per core ({n_proc}), each solving its share one at a time"
                     f"{' — the reference (fastest)' if ref else ''} | 1 per process | {dt_data:g} | {v:.4g} | "
                     f"{v / dur:.4g} | {'1' if ref else f'{phys / v:.2f}'} |")
    for label, r in rows.items():
        lines.append(f"| surrogate ({label}) | {r['batch']} | {r['dt_s']:g} | {r['s_per_sample']:.3g} | "
                     f"{r['s_per_simulated_s']:.3g} | **{r['speedup_vs_physics']:.0f}×** |")
    for other_stem, o in others.items():
        h = o["hyperparameters"]
        for label, r in o["rows"].items():
            lines.append(f"| `{other_stem}` (width {h.get('width')}, operator stride {h.get('operator_stride', 1)}, rod stride "
                         f"{h.get('rod_stride', 1)}; {label}) | {r['batch']} | {dt_train:g} | {r['s_per_sample']:.3g} | "
                         f"{r['s_per_sample'] / dur:.3g} | **{r['speedup_vs_physics']:.0f}×** |")
    lines += ["", f"Best surrogate throughput: {best_label} ({best['speedup_vs_physics']:.0f}×) against the physics' best "
              f"({phys_mode}). Each side in one process (the physics' best unbatched, on one core; the surrogate's "
              f"batched products on every core), as this benchmark measured before 2026-12-07: {ratio_one_process:.0f}×. "
              "Timings on a shared, loaded machine vary by 2× or more between runs; both sides were measured in this run.",
              f"`auto` (prediction + error estimate: a mirrored second pass, the latent summary, nearest neighbours"
              f"{f', {len(sur.members)} ensemble members' if sur.members else ''}) "
              f"costs {auto_s:.3g} s per sample at batch {a.surrogate_batch} → "
              f"{out['speedup_vs_physics_with_auto_estimate']:.0f}× when nothing falls back.",
              f"Against Sibernetic (≈ 23 min CPU per simulated second): {out['speedup_vs_sibernetic_cpu']:.3g}×.", ""]
    atomic_write_text(stem.with_suffix(".md"), "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

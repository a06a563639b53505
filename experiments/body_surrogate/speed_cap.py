"""How fast could any surrogate of the shipped design be on this CPU? The shipped model against the same
model with its operator replaced by a nearly free one (width 4, 2 modes, 1 layer, random weights), with
and without the resistive-force kinematics, each timed on one pinned core; and the physics, one pinned
process per core, for the ratio.

    python experiments/body_surrogate/speed_cap.py [--batch 128] [--physics-samples 32] [--out results/speed_cap]

The accuracy of the variants is not the question (a random operator predicts nothing): the question is
the floor their cost sets. One pinned process per core is how both sides use the machine
(owjax/surrogate/throughput.py), so the machine's time per sample is the one-core time ÷ the number of
cores; the shipped model's row is checked against a real per-core measurement in the same run.
Writes ``--out``.json and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _time_variants(x, medium, t, batch: int, repeats: int, q) -> None:
    """In a spawned process started pinned to one core: one-core seconds per sample of each variant."""
    try:
        import jax

        from owjax.surrogate.component import BodySurrogate
        from owjax.surrogate.evaluate import predict_batch
        from owjax.surrogate.fno import FNO1d

        m0 = BodySurrogate.load(None, ensemble=False).model
        f = m0.fno
        tiny = FNO1d(f.in_channels, f.out_channels, width=4, modes=2, n_layers=1, key=jax.random.PRNGKey(0))
        variants = {
            "shipped (width 32, 24 modes, 4 layers; kinematics on 13 rods)": m0,
            "nearly free operator, kinematics on 13 rods": dataclasses.replace(m0, fno=tiny),
            "nearly free operator, kinematics on 7 rods": dataclasses.replace(m0, fno=tiny, rod_stride=8),
            "shipped operator, no kinematics (motion=direct)": dataclasses.replace(m0, motion="direct"),
            "nearly free operator, no kinematics": dataclasses.replace(m0, fno=tiny, motion="direct"),
        }
        out = {}
        for name, model in variants.items():
            predict_batch(model, t, x, medium, batch_size=batch)
            best = np.inf
            for _ in range(repeats):
                t0 = time.perf_counter()
                predict_batch(model, t, x, medium, batch_size=batch)
                best = min(best, time.perf_counter() - t0)
            out[name] = best / batch
        q.put(out)
    except BaseException as e:
        q.put(f"{type(e).__name__}: {e}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=128, help="surrogate batch per core")
    p.add_argument("--physics-samples", type=int, default=32, help="physics inputs (a multiple of the cores)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", default=str(HERE / "results" / "speed_cap"))
    a = p.parse_args(argv)

    from owjax.surrogate.throughput import available_cores, per_core_seconds_per_sample, start_pinned

    cores = available_cores()
    n_cores = len(cores)
    from owjax.surrogate import families as F
    from owjax.surrogate.component import BodySurrogate

    sur = BodySurrogate.load(None, ensemble=False)
    dur, dt_data, dt_train = (float(sur.settings[k]) for k in ("duration_s", "dt_data_s", "dt_train_s"))
    stride = int(round(dt_train / dt_data))
    t_data = F.time_grid(dur, dt_data)
    n = max(a.batch * n_cores, a.physics_samples)
    params = [F.draw_params("wave", 2026, i) for i in range(n)]
    acts = np.stack([F.make_activation("wave", q, t_data) for q in params])
    med = np.array([q["medium"] for q in params])
    t = t_data[::stride]
    x_all = acts[:a.batch, ::stride]

    # the physics and the shipped surrogate, one pinned process per core (the fair machine throughput)
    phys = per_core_seconds_per_sample("physics", acts[:a.physics_samples], med[:a.physics_samples],
                                       processes=n_cores, duration_s=dur, dt_s=dt_data)
    shipped_pc = per_core_seconds_per_sample("surrogate", acts[:a.batch * n_cores, ::stride], med[:a.batch * n_cores],
                                             processes=n_cores, repeats=3, t_s=t)  # a batch of a.batch per core
    # the variants, in a fresh process pinned to one core before it starts JAX (a process's affinity
    # set later does not move the threads XLA has already started)
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_time_variants, args=(x_all, med[:a.batch], t, a.batch, a.repeats, q))
    start_pinned(proc, cores[0])
    timings = q.get(timeout=900)
    proc.join()
    if isinstance(timings, str):
        raise SystemExit(f"timing the variants failed: {timings}")
    rows = {}
    for name, one_core in timings.items():
        machine = one_core / n_cores
        rows[name] = {"one_core_s_per_sample": one_core, "machine_s_per_sample": machine,
                      "speedup_vs_physics": phys["s_per_sample"] / machine}
        print(f"{name}: {one_core * 1e6:.1f} µs per sample on one core → {rows[name]['speedup_vs_physics']:.0f}×",
              flush=True)
    out = {"cores": n_cores, "batch": a.batch, "grid_dt_s": float(t[1] - t[0]),
           "physics_machine_s_per_sample": phys["s_per_sample"], "physics_per_core": phys,
           "shipped_machine_s_per_sample_measured": shipped_pc["s_per_sample"],
           "shipped_speedup_measured": phys["s_per_sample"] / shipped_pc["s_per_sample"],
           "variants": rows, "load_average_after": list(os.getloadavg()),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": "python experiments/body_surrogate/speed_cap.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    stem = Path(a.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1))
    lines = ["# What any surrogate of the shipped design can cost on this CPU (speed_cap.py)", "",
             f"{out['date']}; {n_cores} cores; surrogate batch {a.batch} on one pinned core, training grid "
             f"({out['grid_dt_s']:g} s); machine time = one-core time ÷ {n_cores}. Physics: "
             f"{phys['s_per_sample']:.4g} s per 5-s sample of machine time (one pinned process per core, each "
             f"solving its share one at a time). The shipped model measured per core in the same run: "
             f"{shipped_pc['s_per_sample'] * 1e6:.1f} µs per sample → {out['shipped_speedup_measured']:.0f}×.", "",
             "| variant | µs per sample, one core | machine µs per sample | speed-up vs physics |", "|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['one_core_s_per_sample'] * 1e6:.1f} | {r['machine_s_per_sample'] * 1e6:.1f} | "
                     f"{r['speedup_vs_physics']:.0f}× |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Speed of the closed thermotaxis loop (issue 17): one training step, a 20-minute 64-worm evaluation,
and what the conductance-based c302 head circuit would cost instead of its graded reduction.

    python -m benchmarks.thermotaxis [--quick]

1. **Training step**: value and gradient (BPTT through the whole episode) of the ``thermotaxis``
   loss at the experiment's full size (``owjax/conf/experiment/thermotaxis.yaml``: 120-s episodes,
   9 worms, Euler at Δ = 10 ms), after compilation; float32.
2. **Evaluation**: 64 worms × 1200 s, vmapped, float32, after compilation.
3. **Full c302**: the same 28 cells as c302 C1's conductance-based NetworkModel, 1 s simulated with
   tsit5 (rtol = atol = 1e-6, the default preset) and with ``fast`` (Ralston, 1e-4), float64; the
   seconds per simulated second, extrapolated to 20 min × 64 worms.

Writes ``benchmarks/results/thermotaxis.json`` and ``.md`` (machine and load at the start included).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import time
from pathlib import Path

import jax

RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}, "
            f"jax {jax.__version__}, load average at start {load:.1f}")


def _timed(f, *a, repeat=2):
    jax.block_until_ready(f(*a))  # compile
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*a))
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="8 worms × 120 s evaluation, 0.2 s of c302")
    a = p.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from omegaconf import OmegaConf

    from owjax.core.checkpoint import atomic_write_json, atomic_write_text
    from owjax.core.solve import solve_ys
    from owjax.fitting.tasks.thermotaxis import ThermotaxisTask
    from owjax.navigation.circuit import head_circuit_spec
    from owjax.navigation.evaluate import _solve_chunk
    from owjax.navigation.setup import draw_worms, make_loop
    from owjax.neural.network import NetworkModel

    out = {"machine": machine(), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    cfg = OmegaConf.to_container(OmegaConf.load(Path(__file__).parents[1] / "owjax/conf/experiment/thermotaxis.yaml"))
    task = ThermotaxisTask(cfg, 0)
    raw = task.init(jax.random.PRNGKey(0))
    batch = task.batches(0, jax.random.PRNGKey(1))
    step = jax.jit(jax.value_and_grad(lambda r, b: task.loss(r, b, None)[0]))
    out["training_step_s"] = round(_timed(step, raw, batch), 3)
    out["training_episode"] = {k: cfg["episode"][k] for k in ("duration_s", "n_worms")}

    n, dur = (8, 120.0) if a.quick else (64, 1200.0)
    loop = make_loop(task.field, task.body, task.values(raw), duration_s=dur)
    w = draw_worms(jax.random.PRNGKey(2), n, task.field, [20.0], dur)
    t = _timed(lambda: _solve_chunk(loop, w["xy"], w["heading"], w["noise"], w["tc"], dur, 1.0), repeat=1)
    out["evaluation"] = {"n_worms": n, "duration_s": dur, "wall_s": round(t, 3)}

    spec = head_circuit_spec("C1")
    full = NetworkModel.from_spec(spec, jnp.float64)
    sim_ms = 200.0 if a.quick else 1000.0
    out["full_c302"] = {}
    for preset in ("tsit5", "fast"):
        f = jax.jit(lambda m: solve_ys(m, sim_ms, sim_ms, solver=preset, save=("V",)).ys["V"])
        tc = _timed(f, full, repeat=1)
        per_s = tc / (sim_ms / 1000.0)
        out["full_c302"][preset] = {"simulated_ms": sim_ms, "wall_s": round(tc, 3), "wall_s_per_simulated_s": round(per_s, 3),
                                    "extrapolated_20min_64worms_h": round(per_s * 1200 * 64 / 3600, 2)}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "thermotaxis.json", out)
    md = [f"# thermotaxis loop speed ({out['date']})", "", f"Machine: {out['machine']}", "",
          "| what | wall time |", "|---|---|",
          f"| one training step (value + BPTT gradient, {out['training_episode']['n_worms']} worms × "
          f"{out['training_episode']['duration_s']:g} s, float32) | {out['training_step_s']} s |",
          f"| evaluation, {n} worms × {dur:g} s (float32, vmapped) | {out['evaluation']['wall_s']} s |"]
    for k, v in out["full_c302"].items():
        md.append(f"| conductance-based c302 head circuit (28 cells, {k}), per simulated s, one worm | "
                  f"{v['wall_s_per_simulated_s']} s (20 min × 64 worms ≈ {v['extrapolated_20min_64worms_h']} h) |")
    atomic_write_text(RESULTS / "thermotaxis.md", "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

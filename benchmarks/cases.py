"""One benchmark case per process (so compile caches and peak memory are the case's own).

    python -m benchmarks.cases forward --config Full --dtype float64 --preset tsit5 [--rtol ..]
    python -m benchmarks.cases batch --config Full --batch 32
    python -m benchmarks.cases gradient --config Full

Prints one JSON line: timings (s), solver steps, peak resident memory (MB) and, for ``forward``,
the traces in a temporary ``.npz`` for the caller to compare against references.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv=None) -> int:
    t_proc = time.perf_counter()
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=("forward", "batch", "gradient"))
    p.add_argument("--parameter-set", default="C1")
    p.add_argument("--config", default="Full")
    p.add_argument("--duration-ms", type=float, default=1000.0)
    p.add_argument("--dt-out-ms", type=float, default=0.05)
    p.add_argument("--dtype", default="float64")
    p.add_argument("--preset", default="tsit5")
    p.add_argument("--rtol", type=float, default=None)
    p.add_argument("--atol", type=float, default=None)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--checkpoints", type=int, default=None, help="gradient: states kept by the reverse pass")
    p.add_argument("--adjoint", choices=("diffrax", "discrete", "discrete-held"), default="diffrax",
                   help="gradient: diffrax's reverse mode or owjax's discrete adjoint (owjax.core.discrete_adjoint; "
                        "'discrete-held': imex4 with each step's decay rates held in the reverse pass)")
    p.add_argument("--save", default=None, help="npz file for the forward traces")
    p.add_argument("--device", default=None, help="cpu or gpu (default: JAX's default)")
    a = p.parse_args(argv)

    import jax

    if a.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    if a.device:
        jax.config.update("jax_platforms", a.device if a.device != "gpu" else "cuda")
    import dataclasses

    import equinox as eqx
    import jax.numpy as jnp

    from owjax.neural.c302_data import load_c302_network
    from owjax.neural.network import NetworkModel
    from owjax.core.solve import get_solver, solve, solve_ys

    cfg = get_solver(a.preset)
    if a.rtol is not None:
        cfg = dataclasses.replace(cfg, rtol=a.rtol, atol=a.atol if a.atol is not None else a.rtol)
    dtype = jnp.float64 if a.dtype == "float64" else jnp.float32
    model = NetworkModel.from_spec(load_c302_network(a.parameter_set, a.config), dtype)
    t_import = time.perf_counter() - t_proc
    out = dict(kind=a.kind, config=f"{a.parameter_set}_{a.config}", dtype=a.dtype, preset=cfg.method,
               rtol=cfg.rtol, atol=cfg.atol, duration_ms=a.duration_ms, device=str(jax.devices()[0]),
               import_and_build_s=t_import)

    if a.kind == "forward":
        # V and Ca of every cell at every output time: what the NEURON run records
        s1 = solve(model, a.duration_ms, a.dt_out_ms, cfg, save=("V", "Ca"))
        s2 = solve(model, a.duration_ms, a.dt_out_ms, cfg, save=("V", "Ca"))
        out.update(compile_s=s1.compile_time_s, run_s=min(s1.wall_time_s - s1.compile_time_s, s2.wall_time_s),
                   first_call_s=s1.wall_time_s, steps=s1.stats["num_steps"])
        if a.save:
            np.savez(a.save, t=s1.t_ms, V=s1.ys["V"].astype(np.float64), Ca=s1.ys["Ca"].astype(np.float64) * 1e-6,
                     names=np.array(model.cell_names))
    elif a.kind == "batch":
        scales = jnp.linspace(0.9, 1.1, a.batch, dtype=dtype)

        def one(s):
            m = eqx.tree_at(lambda m: m.graded.g_nS, model, model.graded.g_nS * s)
            return solve_ys(m, a.duration_ms, a.dt_out_ms, cfg, throw=False, save=("V",)).ys["V"][-1]

        fn = jax.jit(jax.vmap(one))
        t0 = time.perf_counter()
        comp = fn.lower(scales).compile()
        t_c = time.perf_counter() - t0
        times = []
        for _ in range(2 if a.batch <= 32 else 1):
            t0 = time.perf_counter()
            jax.block_until_ready(comp(scales))
            times.append(time.perf_counter() - t0)
        out.update(batch=a.batch, compile_s=t_c, run_s=min(times), per_member_s=min(times) / a.batch)
    else:
        params, static = eqx.partition(model, eqx.is_inexact_array)
        gcfg = dataclasses.replace(cfg, max_steps=int(16 * a.duration_ms), checkpoints=a.checkpoints)

        da_steps = None
        if a.adjoint.startswith("discrete"):
            from owjax.core.discrete_adjoint import step_buffer_size

            da_steps = step_buffer_size(solve(model, a.duration_ms, a.dt_out_ms, cfg, save=("V",)).stats["num_steps"])

        def loss(params):
            m = eqx.combine(params, static)
            if a.adjoint.startswith("discrete"):
                from owjax.core.discrete_adjoint import solve_ys_discrete_adjoint

                # every accepted step's state is stored in a buffer sized from a forward solve
                ys = solve_ys_discrete_adjoint(m, a.duration_ms, a.dt_out_ms, gcfg, save=("V", "Ca"),
                                               max_steps=da_steps, hold_decay_rates=a.adjoint == "discrete-held")
            else:
                ys = solve_ys(m, a.duration_ms, a.dt_out_ms, gcfg, save=("V", "Ca")).ys
            return jnp.mean(ys["V"]) + jnp.mean(ys["Ca"])

        fwd = jax.jit(loss)
        grad = jax.jit(jax.grad(loss))
        t0 = time.perf_counter()
        fwd_c = fwd.lower(params).compile()
        t_fc = time.perf_counter() - t0
        t0 = time.perf_counter()
        grad_c = grad.lower(params).compile()
        t_gc = time.perf_counter() - t0
        jax.block_until_ready(fwd_c(params))
        t0 = time.perf_counter()
        jax.block_until_ready(fwd_c(params))
        t_f = time.perf_counter() - t0
        jax.block_until_ready(grad_c(params))
        t0 = time.perf_counter()
        jax.block_until_ready(grad_c(params))
        t_g = time.perf_counter() - t0
        out.update(forward_s=t_f, gradient_s=t_g, gradient_over_forward=t_g / t_f,
                   forward_compile_s=t_fc, gradient_compile_s=t_gc, max_steps=gcfg.max_steps,
                   checkpoints=gcfg.checkpoints, adjoint=a.adjoint, discrete_adjoint_max_steps=da_steps)
    out["peak_rss_mb"] = _peak_mb()
    out["process_wall_s"] = time.perf_counter() - t_proc
    print("BENCH " + json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the cost of a gradient through a C1 Full solve goes (docs/gradients.md, "Cost of a gradient").

    python -m benchmarks.gradient_cost [--steps 4092]

Measures, in float64 on the CPU, each number inside one compiled loop (so dispatch overhead does
not count):

* ``vector_field_us``: one evaluation of the C1 Full vector field;
* ``vjp_us``: one vector–Jacobian product of it with respect to (parameters, state), forward included;
* ``linear_forward_us_per_step`` / ``linear_gradient_us_per_step``: a Tsit5 solve of dy/dt = a·y with a
  state as large as C1 Full's (5 610 numbers, fixed step, ``--steps`` steps, output every 4 steps):
  diffrax's own per-step cost forward and in reverse mode, whatever the vector field; the same
  for the exponential integrator (``etd2``, two evaluations per step instead of six);
* ``network``: the real thing, per ``--network-presets``: a 1-s C1 Full solve (V saved every ms)
  and the gradient of the mean V with respect to every parameter, each timed after compilation
  (best of two), with their ratio; for ``tsit5`` and ``imex`` also the same gradient by owjax's
  discrete adjoint (``owjax.core.discrete_adjoint``, rows ``… + discrete adjoint``; for ``imex`` also
  with each step's decay rates held in the reverse pass, ``hold_decay_rates=True``; its step buffer
  sized to the next power of two above 1.25× the forward's steps; and, decay rates held, with respect
  to the synaptic weights only, ``… synaptic weights only``, where the other parameters' cotangents
  are skipped);
* ``tsit5_step_us`` / ``tsit5_step_vjp_us``: one Tsit5 step of C1 Full unrolled (six field
  evaluations) and its VJP with the forward recomputed (the state read from a buffer, so nothing is
  hoisted out of the loop): what any adjoint that recomputes the stages pays per step at least.

Writes ``benchmarks/results/gradient_cost.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _best(fn, *args, repeats: int = 3) -> float:
    import jax

    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return min(times)


def linear_tsit5_loss(n_state: int, steps: int, adjoint=None):
    """mean(y) of a fixed-step (0.05) Tsit5 solve of dy/dt = r·y from ones, ``steps`` steps, output
    every 4 steps, as a function of the rate vector r (n_state,); ``adjoint``: diffrax's (default:
    ``RecursiveCheckpointAdjoint()``). The solver machinery's cost with a vector field that costs nothing."""
    import diffrax as dfx
    import jax.numpy as jnp

    t1 = steps * 0.05
    adjoint = dfx.RecursiveCheckpointAdjoint() if adjoint is None else adjoint

    def loss(r):
        sol = dfx.diffeqsolve(
            dfx.ODETerm(lambda t, y, r: r * y), dfx.Tsit5(), 0.0, t1, 0.05, jnp.ones(n_state), args=r,
            saveat=dfx.SaveAt(ts=jnp.linspace(0.0, t1, steps // 4 + 1)),
            stepsize_controller=dfx.ConstantStepSize(), max_steps=2 * steps, adjoint=adjoint,
        )
        return jnp.mean(sol.ys)

    return loss


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=4092, help="steps of the linear test solve (C1 Full 1 s: 4092)")
    p.add_argument("--loops", type=int, default=2000, help="vector-field evaluations per timing")
    p.add_argument("--network-presets", default="tsit5,imex,exponential",
                   help="solver presets for the whole-network gradient/forward ratio ('' to skip)")
    p.add_argument("--network-duration-ms", type=float, default=1000.0)
    a = p.parse_args(argv)

    import os

    import jax
    import numpy as np

    load_at_start = os.getloadavg()[0]
    jax.config.update("jax_enable_x64", True)
    import diffrax as dfx
    import equinox as eqx
    import jax.numpy as jnp

    from benchmarks.run_all import machine
    from owjax.neural.c302_data import load_c302_network
    from owjax.neural.network import NetworkModel

    model = NetworkModel.from_spec(load_c302_network("C1", "Full"), jnp.float64)
    y0 = model.initial_state()
    params, static = eqx.partition(model, eqx.is_inexact_array)
    n_state = sum(int(v.size) for v in jax.tree.leaves(y0))
    tmap = jax.tree.map
    n = a.loops

    def f(p, y):
        return eqx.combine(p, static).vector_field(jnp.asarray(10.0), y, None)

    @jax.jit
    def loop_forward(p, y):
        return jax.lax.fori_loop(0, n, lambda i, y: tmap(lambda u, d: u + 1e-6 * d, y, f(p, y)), y)

    def make_loop_vjp(static):
        def field(p, y):
            return eqx.combine(p, static).vector_field(jnp.asarray(10.0), y, None)

        @jax.jit
        def loop_vjp(p, y):
            def body(i, c):
                ct, gp = c
                # the state moves with the cotangent, so that XLA cannot hoist the forward out of the loop
                # (with a loop-invariant state it did: the row then timed the reverse pass alone)
                _, pullback = jax.vjp(field, p, tmap(lambda u, d: u + 1e-9 * d, y, ct))
                g_p, g_y = pullback(ct)
                return tmap(lambda u, d: 0.999 * u + 1e-6 * d, ct, g_y), tmap(jnp.add, gp, g_p)

            return jax.lax.fori_loop(0, n, body, (tmap(jnp.ones_like, y), tmap(jnp.zeros_like, p)))

        return loop_vjp

    vf_us = _best(loop_forward, params, y0) / n * 1e6
    # the field's derivative three ways (NetworkModel.derivative): JAX's own, the hand-written
    # forward-mode rule transposed by JAX (the default), the hand-written reverse pass (the discrete adjoint's)
    vjp_by = {}
    for d in ("jax", "hand", "hand_reverse_only"):
        p_d, static_d = eqx.partition(dataclasses.replace(model, derivative=d), eqx.is_inexact_array)
        vjp_by[d] = _best(make_loop_vjp(static_d), p_d, y0) / n * 1e6
    vjp_us = vjp_by["hand"]

    from owjax.core.discrete_adjoint import unrolled_rk_step

    def tsit5_step(p, y, h):  # the discrete adjoint's step (the field at t = 10 ms throughout, as above)
        return unrolled_rk_step(lambda t, yy, args: f(p, yy), dfx.Tsit5.tableau, 0.0, h, y)[0]

    n_step = max(n // 4, 10)
    ybuf = tmap(lambda a: jnp.broadcast_to(a, (n_step,) + a.shape) + 0.0, y0)

    @jax.jit
    def loop_step(p, ybuf):
        return jax.lax.fori_loop(0, n_step, lambda i, acc: tmap(
            lambda a, b: a + b, acc, tsit5_step(p, tmap(lambda a: a[i], ybuf), 1e-4)), tmap(jnp.zeros_like, y0))

    @jax.jit
    def loop_step_vjp(p, ybuf):
        def body(i, c):
            lam, g = c
            _, pull = jax.vjp(lambda pp, yy: tsit5_step(pp, yy, 1e-4), p, tmap(lambda a: a[n_step - 1 - i], ybuf))
            gp, ly = pull(lam)
            return tmap(lambda a: 0.999 * a, ly), tmap(jnp.add, g, gp)

        return jax.lax.fori_loop(0, n_step, body, (tmap(jnp.ones_like, y0), tmap(jnp.zeros_like, p)))

    step_us = _best(loop_step, params, ybuf) / n_step * 1e6
    step_vjp_us = _best(loop_step_vjp, params, ybuf) / n_step * 1e6

    rate = -jnp.linspace(0.5, 2.0, n_state)
    t1 = a.steps * 0.05

    linear_loss = linear_tsit5_loss(n_state, a.steps)
    lin_f = _best(jax.jit(linear_loss), rate) / a.steps * 1e6
    lin_g = _best(jax.jit(jax.grad(linear_loss)), rate) / a.steps * 1e6

    from owjax.core.exponential import ExponentialRK2, LinearDecayTerm

    def linear_loss_etd2(r):
        sol = dfx.diffeqsolve(
            LinearDecayTerm(lambda t, y, r: (r * y, -r)), ExponentialRK2(), 0.0, t1, 0.05, jnp.ones(n_state), args=r,
            saveat=dfx.SaveAt(ts=jnp.linspace(0.0, t1, a.steps // 4 + 1)),
            stepsize_controller=dfx.ConstantStepSize(), max_steps=2 * a.steps,
        )
        return jnp.mean(sol.ys)

    exp_f = _best(jax.jit(linear_loss_etd2), rate) / a.steps * 1e6
    exp_g = _best(jax.jit(jax.grad(linear_loss_etd2)), rate) / a.steps * 1e6

    from owjax.core.discrete_adjoint import DISCRETE_ADJOINT_METHODS, solve_ys_discrete_adjoint, step_buffer_size
    from owjax.core.solve import get_solver, solve_ys

    network = []
    for preset in [x for x in a.network_presets.split(",") if x]:
        cfg = get_solver(preset)

        def net_loss(m, cfg=cfg):
            sol = solve_ys(m, a.network_duration_ms, 1.0, cfg, save=("V",))
            return jnp.mean(sol.ys["V"]), sol.stats["num_steps"]

        fwd = eqx.filter_jit(net_loss)
        grad = eqx.filter_jit(eqx.filter_grad(lambda m: net_loss(m)[0]))
        steps = int(fwd(model)[1])
        t_f = _best(lambda m: fwd(m)[0], model, repeats=2)
        t_g = _best(lambda m: jax.tree.leaves(grad(m)), model, repeats=2)
        row = dict(preset=preset, method=cfg.method, rtol=cfg.rtol, duration_ms=a.network_duration_ms, steps=steps,
                   forward_s=t_f, gradient_s=t_g, gradient_over_forward=t_g / t_f)
        print(json.dumps(row), flush=True)
        network.append(row)
        if cfg.method in DISCRETE_ADJOINT_METHODS:
            # the stored states fill a max_steps-long buffer: sized from the forward's step count
            da_steps = step_buffer_size(steps)

            g_ref_tree = grad(model)  # diffrax's gradient: what every discrete-adjoint row is compared with
            g_ref = np.concatenate([np.ravel(x) for x in jax.tree.leaves(g_ref_tree)])
            # imex4 also with each step's decay rates held in the reverse pass (hold_decay_rates)
            for hold in (False, True) if cfg.method == "imex4" else (False,):

                def da_loss(m, cfg=cfg, da_steps=da_steps, hold=hold):
                    return jnp.mean(solve_ys_discrete_adjoint(m, a.network_duration_ms, 1.0, cfg, save=("V",),
                                                              max_steps=da_steps, hold_decay_rates=hold)["V"])

                grad_da = eqx.filter_jit(eqx.filter_grad(da_loss))
                t_da = _best(lambda m: jax.tree.leaves(grad_da(m)), model, repeats=2)
                g_da = np.concatenate([np.ravel(x) for x in jax.tree.leaves(grad_da(model))])
                label = f"{preset} + discrete adjoint" + (", decay rates held" if hold else "")
                row_da = dict(row, preset=label, gradient_s=t_da, gradient_over_forward=t_da / t_f, max_steps=da_steps,
                              gradient_rel_diff_vs_diffrax=float(np.linalg.norm(g_da - g_ref) / np.linalg.norm(g_ref)))
                print(json.dumps(row_da), flush=True)
                network.append(row_da)
                if hold:
                    # the same with JAX differentiating the network field op by op (NetworkModel.derivative="jax"),
                    # instead of the hand-written reverse pass the discrete adjoint uses (owjax.neural.uniform_field)
                    m_jax = dataclasses.replace(model, derivative="jax")
                    t_jax = _best(lambda m: jax.tree.leaves(grad_da(m)), m_jax, repeats=2)
                    row_jax = dict(row_da, preset=label + ", field differentiated by JAX", gradient_s=t_jax,
                                   gradient_over_forward=t_jax / t_f)
                    print(json.dumps(row_jax), flush=True)
                    network.append(row_jax)
                    # what a fit of the synaptic weights pays: only those leaves get cotangents
                    # (the other parameters are an argument, not constants folded into the program)
                    def weights_loss(w, p, da_loss=da_loss):
                        p = eqx.tree_at(lambda mm: (mm.graded.weight, mm.gaps.weight), p, w)
                        return da_loss(eqx.combine(p, static))

                    grad_w = jax.jit(jax.grad(weights_loss))
                    wts = (params.graded.weight, params.gaps.weight)
                    t_w = _best(lambda w: grad_w(w, params), wts, repeats=2)
                    g_w = np.concatenate([np.ravel(x) for x in grad_w(wts, params)])
                    g_w_ref = np.concatenate([np.ravel(g_ref_tree.graded.weight), np.ravel(g_ref_tree.gaps.weight)])
                    row_w = dict(row_da, preset=label + ", synaptic weights only",
                                 gradient_s=t_w, gradient_over_forward=t_w / t_f, n_parameters=int(g_w.size),
                                 gradient_rel_diff_vs_diffrax=float(np.linalg.norm(g_w - g_w_ref) / np.linalg.norm(g_w_ref)))
                    print(json.dumps(row_w), flush=True)
                    network.append(row_w)
    rec = dict(
        case="gradient_cost_C1_Full_f64", machine=machine(), n_state=n_state, load_average_at_start=load_at_start,
        vector_field_us=vf_us, vjp_us=vjp_us, vjp_over_vector_field=vjp_us / vf_us, vjp_us_by_derivative=vjp_by,
        tsit5_step_us=step_us, tsit5_step_vjp_us=step_vjp_us,
        linear_forward_us_per_step=lin_f, linear_gradient_us_per_step=lin_g,
        linear_gradient_over_forward=lin_g / lin_f, linear_steps=a.steps,
        etd2_linear_forward_us_per_step=exp_f, etd2_linear_gradient_us_per_step=exp_g,
        etd2_linear_gradient_over_forward=exp_g / exp_f, network=network, jax_version=jax.__version__,
        diffrax_version=dfx.__version__ if hasattr(dfx, "__version__") else "?",
    )
    print(json.dumps(rec, indent=1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gradient_cost.json").write_text(json.dumps([rec], indent=1) + "\n")
    (RESULTS / "gradient_cost.md").write_text(
        f"Gradient cost breakdown, C1 Full, float64, {rec['machine']}, load average at start "
        f"{load_at_start:.1f} (`python -m benchmarks.gradient_cost`).\n\n"
        "| quantity | value |\n|---|---|\n"
        f"| state size | {n_state} |\n"
        f"| vector field, one evaluation | {vf_us:.1f} µs |\n"
        f"| its VJP (forward included), hand-written forward-mode rule transposed (the default) | {vjp_us:.1f} µs ({vjp_us / vf_us:.2f}×) |\n"
        f"| … with JAX's own derivative (`derivative=\"jax\"`) | {vjp_by['jax']:.1f} µs ({vjp_by['jax'] / vf_us:.2f}×) |\n"
        f"| … with the hand-written reverse pass (`\"hand_reverse_only\"`, the discrete adjoint's) | {vjp_by['hand_reverse_only']:.1f} µs ({vjp_by['hand_reverse_only'] / vf_us:.2f}×) |\n"
        f"| one Tsit5 step of C1 Full, unrolled (6 evaluations) | {step_us:.1f} µs |\n"
        f"| its VJP, stages recomputed (what a recomputing adjoint pays per step) | {step_vjp_us:.1f} µs "
        f"({step_vjp_us / step_us:.2f}×: a recomputing adjoint's gradient costs ≈ {1 + step_vjp_us / step_us:.1f}× the forward) |\n"
        f"| Tsit5 on dy/dt = a·y (same state size), forward | {lin_f:.1f} µs per step |\n"
        f"| the same, reverse mode (`RecursiveCheckpointAdjoint`) | {lin_g:.1f} µs per step ({lin_g / lin_f:.1f}×) |\n"
        f"| exponential RK2 (`etd2`) on the same problem, forward | {exp_f:.1f} µs per step |\n"
        f"| the same, reverse mode | {exp_g:.1f} µs per step ({exp_g / exp_f:.1f}×) |\n"
        + ("\nWhole network: C1 Full, gradient of the mean V (saved every ms) with respect to every parameter "
           "(34 242; the row '… synaptic weights only': with respect to the 2 831 graded-synapse and 1 084 "
           "gap-junction weights, what a fit of the weights differentiates).\n\n"
           "| preset | method | simulated (ms) | steps | forward (s) | gradient (s) | gradient / forward | "
           "relative difference from diffrax's gradient |\n"
           "|---|---|---|---|---|---|---|---|\n" if network else "")
        + "".join(f"| {r['preset']} | {r['method']} rtol {r['rtol']:g} | {r['duration_ms']:g} | {r['steps']} | "
                  f"{r['forward_s']:.2f} | {r['gradient_s']:.2f} | {r['gradient_over_forward']:.1f}× | "
                  + (f"{r['gradient_rel_diff_vs_diffrax']:.1e}" if "gradient_rel_diff_vs_diffrax" in r else "—")
                  + " |\n" for r in network)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

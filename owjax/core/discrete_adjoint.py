"""Gradients of an adaptive explicit solve by a hand-written discrete adjoint.

diffrax's reverse mode (``RecursiveCheckpointAdjoint``) costs 6–8× a forward solve on c302
networks, and on a field that costs nothing it is still 7× (``benchmarks/results/adjoints.md``).
This module differentiates the same solve another way: on 1-s C1 Full 2.8× the forward with Tsit5,
2.7× with ``imex`` and the decay rates held, 3.2× exact (``benchmarks/results/gradient_cost.md``,
docs/gradients.md). The forward pass is diffrax's adaptive solve, unchanged, which also stores
the state after every accepted step. The backward pass walks those steps in reverse, and for each
step takes one vector–Jacobian product of that step's Runge–Kutta map
``y_{k+1} = Φ(y_k; t_k, t_{k+1}, θ)`` (stages recomputed from the stored ``y_k``, step sizes held
at the values the controller chose) and of the dense interpolation that produced the outputs
inside the step (the last, first-same-as-last stage is not re-evaluated: it is the next step's
first stage scaled by h_k/h_{k+1}, so its cotangent joins that one). That is the exact gradient of the computed discrete trajectory with the accepted
step sequence held fixed ("discretise-then-optimise"); diffrax's own reverse mode differentiates
the same map, so the two agree to rounding where the step sequence does not change, and both agree
with finite differences to the solver's tolerance (``tests/test_discrete_adjoint.py``).

Two things make the backward pass cheaper than a plain loop of VJPs (docs/speed.md): components
swap in their hand-written reverse passes (:meth:`~owjax.core.component.AbstractComponent.for_reverse_mode`;
the c302 network's is :mod:`owjax.neural.uniform_field`), and the loop is software-pipelined: while
step k's pullback runs, step k − 1's stages are recomputed and linearised, two independent pieces of
work that XLA runs on two cores side by side (≈ 20 % less wall time on the 2-core CPU, the same CPU time).

Memory: the state at every accepted step, ``max_steps × state size`` (C1 Full, 1 s: 4 092 steps ×
5 610 numbers ≈ 180 MB in float64). The methods are ``tsit5`` and ``dopri5`` (explicit, FSAL,
with dense output; each step is re-run unrolled from diffrax's own Butcher tableau).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import diffrax as dfx
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jaxtyping import Array, Float, PyTree

from owjax.core.component import AbstractComponent
from owjax.core.imex import imex_stages

__all__ = ["DISCRETE_ADJOINT_METHODS", "solve_ys_discrete_adjoint", "step_buffer_size", "step_end_times",
           "unrolled_rk_step"]

DISCRETE_ADJOINT_METHODS = ("tsit5", "dopri5", "imex4")  # the ones tested (tests/test_discrete_adjoint.py)


def _for_reverse_mode(tree):
    """``tree`` with every component that tunes itself for reverse mode
    (:meth:`~owjax.core.component.AbstractComponent.for_reverse_mode`) replaced by that variant."""

    def tuned(x):
        return isinstance(x, AbstractComponent) and type(x).for_reverse_mode is not AbstractComponent.for_reverse_mode

    return jax.tree.map(lambda x: x.for_reverse_mode() if tuned(x) else x, tree, is_leaf=tuned)


def step_buffer_size(forward_steps: int) -> int:
    """A ``max_steps`` for :func:`solve_ys_discrete_adjoint` from the steps a forward solve took: the next
    power of two at or above 1.25× that count.

    The stored-state buffer is allocated and filled at ``max_steps`` whatever the solve takes (1-s C1
    Full with ``imex``: 1 325 steps; the default 16 384 makes its gradient 4.4× the forward instead
    of 3.6×), so it should be sized from the solve it will hold.
    """
    return int(2 ** math.ceil(math.log2(1.25 * max(int(forward_steps), 1))))


def step_end_times(saved_t: Float[Array, " k"], jump_ts: Float[Array, " j"] | None) -> Float[Array, " k"]:
    """Where each accepted step really ended, from the times diffrax saves with ``SaveAt(steps=True)``.

    diffrax saves, after each accepted step, the time the *next* step starts from. That is the
    step's end, except at a jump time τ: a step that reaches a jump ends one float before it
    (``prevbefore(τ)``) and the next one starts one float after it (``nextafter(τ)``), which is the
    time saved (diffrax's ``ClipStepSizeController``). The reverse pass must re-run each step on
    exactly its interval, stages on the correct side of the discontinuity.

    Arguments:
        saved_t: the saved times (ms), one per accepted step.
        jump_ts: the controller's jump times (ms), or None.

    Returns:
        the end time of each step (ms); the start of step k + 1 is ``saved_t[k]``.
    """
    if jump_ts is None or jump_ts.size == 0:
        return saved_t
    jump_ts = jnp.asarray(jump_ts)
    after = saved_t[:, None] == eqxi.nextafter(jump_ts)[None, :]
    end_before = jnp.max(jnp.where(after, eqxi.prevbefore(jump_ts)[None, :], -jnp.inf), axis=1)
    return jnp.where(jnp.any(after, axis=1), end_before, saved_t)


def unrolled_rk_step(f, tableau: dfx.ButcherTableau, t0, t1, y: PyTree, args=None) -> tuple[PyTree, PyTree]:
    """One step of an explicit, first-same-as-last Runge–Kutta method, unrolled stage by stage from
    its Butcher ``tableau`` (zero coefficients skipped).

    Arguments:
        f: the vector field ``f(t, y, args)``.
        tableau: diffrax's tableau of the method (``dfx.Tsit5.tableau``, ``dfx.Dopri5.tableau``).
        t0, t1: the step's interval.
        y: the state at ``t0``.
        args: passed to ``f``.

    Returns:
        ``(y1, ks)``: the state at ``t1`` and the stage increments k_i = h f(t_i, y_i) that produce
        it, stacked along a leading axis. The last (first-same-as-last) stage h f(t1, y1), which only
        feeds the dense output and the error estimate, is not evaluated.
    """
    n_stages = len(tableau.c)
    h = t1 - t0

    def combo(base, coeffs, ks):
        terms = [(float(c), k) for c, k in zip(coeffs, ks) if float(c) != 0.0]
        return jax.tree.map(lambda b, *kk: b + sum(c * x for (c, _), x in zip(terms, kk)), base,
                            *[k for _, k in terms])

    ks = [jax.tree.map(lambda v: h * v, f(t0, y, args))]
    for i in range(n_stages - 1):
        yi = combo(y, tableau.a_lower[i], ks)
        ti = t1 if float(tableau.c[i]) == 1.0 else t0 + float(tableau.c[i]) * h
        ks.append(jax.tree.map(lambda v: h * v, f(ti, yi, args)))
    y1 = combo(y, tableau.a_lower[n_stages - 1], ks)
    return y1, jax.tree.map(lambda *kk: jnp.stack(kk), *ks)


def _tree_at(tree, k):
    return jax.tree.map(lambda a: a[k], tree)


def solve_ys_discrete_adjoint(
    model: AbstractComponent,
    duration_ms: float,
    dt_out_ms: float,
    solver: Any = "tsit5",
    y0: PyTree | None = None,
    save: Sequence[str] | None = None,
    inputs: dict | None = None,
    max_steps: int = 16_384,
    hold_decay_rates: bool = False,
) -> PyTree:
    """The states saved every ``dt_out_ms`` of an adaptive explicit solve, differentiable by a
    discrete adjoint (module docstring) with respect to every float array of ``model``, ``y0`` and
    ``inputs``.

    The forward values are exactly those of :func:`owjax.core.solve.solve_ys` with the same
    arguments (the same diffrax solve); only reverse mode differs. Safe under ``jax.jit`` and
    ``jax.grad``/``jax.vjp`` (first derivatives; forward mode and ``vmap`` of the gradient are not
    supported by the custom rule).

    Arguments:
        model: any owjax component.
        duration_ms: simulated time (ms), a positive multiple of ``dt_out_ms``.
        dt_out_ms: output interval (ms).
        solver: a preset name or :class:`~owjax.core.solve.SolverConfig` whose method is one of
            :data:`DISCRETE_ADJOINT_METHODS` (tolerances, ``dt_ms`` are honoured).
        y0: initial state (default: the model's).
        save: state variables kept at the outputs, as in ``solve_ys`` (default: all).
        inputs: constant external inputs of the vector field.
        max_steps: the most steps (accepted and rejected) the solve may take; the states of the
            accepted ones are stored for the reverse pass (memory ≈ ``max_steps`` × state size).
            Exceeding it raises, as in ``solve_ys``.
        hold_decay_rates: ``imex4`` only. If True, each step's decay rates Λ (frozen at the step's
            start by the method) are held fixed in the reverse pass, as the controller's step sizes
            are: the gradient is then the exact derivative of the computed trajectory with every
            step's method choices (h_k, Λ_k) held, and skips one vector–Jacobian product of the
            decay rates per step (≈ 8 % of the gradient on 1-s C1 Full). Any Λ gives a consistent
            fourth-order method, so the difference from the default (Λ differentiated) is of the
            order of the solver's error: 2e-4 relative on 1-s C1 Full at the ``imex`` preset's
            1e-5, and both agree with finite differences (``tests/test_discrete_adjoint.py``).

    Returns:
        the saved states, a pytree of arrays with a leading time axis (T + 1 outputs, from 0).
    """
    from owjax.core.solve import _build, _check_save, _controller, _select_state, get_solver, jump_times_ms

    cfg = get_solver(solver)
    if cfg.method not in DISCRETE_ADJOINT_METHODS:
        raise ValueError(
            f"the discrete adjoint needs an explicit or diagonal-IMEX Runge-Kutta method with dense output, one of "
            f"{DISCRETE_ADJOINT_METHODS}; got solver method {cfg.method!r}"
        )
    if hold_decay_rates and cfg.method != "imex4":
        raise ValueError(f"hold_decay_rates applies to the imex4 method only (its per-step decay rates); "
                         f"got solver method {cfg.method!r}")
    if not isinstance(model, AbstractComponent):
        raise TypeError(f"solve_ys_discrete_adjoint needs an owjax component, got {type(model).__name__}")
    if int(max_steps) < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps!r}")
    n_out = int(round(duration_ms / dt_out_ms))
    if n_out < 1 or not np.isclose(n_out * dt_out_ms, duration_ms):
        raise ValueError(f"duration_ms={duration_ms} must be a positive multiple of dt_out_ms={dt_out_ms}")
    if inputs:
        from owjax.core.component import check_inputs

        check_inputs(model, inputs)
    y0 = model.initial_state() if y0 is None else y0
    keys = _check_save(save, y0) if save is not None else None

    def select(t, y, args):
        return y if keys is None else _select_state(t, y, args, keys)

    # constants as numpy arrays: the reverse rule may run outside the trace that built them
    dtype = np.dtype(model.dtype)
    ts = np.linspace(0.0, duration_ms, n_out + 1).astype(dtype)
    t_start, t_end = np.asarray(0.0, dtype), np.asarray(duration_ms, dtype)
    jumps = jump_times_ms(model, duration_ms)
    jump_ts = np.asarray(jumps, dtype) if jumps else None
    method = _build(model, cfg)[1]
    # float arrays (differentiated), other arrays (index arrays, masks: passed through, never closed
    # over, since they may be tracers of an enclosing jit/scan) and the static rest
    diff, rest = eqx.partition((model, y0, inputs), eqx.is_inexact_array)
    other, static = eqx.partition(rest, eqx.is_array)

    def unpack(d, a, reverse_only=False):
        m, y, args = eqx.combine(d, a, static)
        if reverse_only:  # the backward pass: components' hand-written reverse passes (same values)
            m = _for_reverse_mode(m)
        return _build(m, cfg)[0], y, args

    def forward(d, a):
        term, y, args = unpack(d, a)
        # built here, not outside: its jump times must not be tracers of an enclosing trace
        controller = _controller(model, cfg, duration_ms)
        saveat = dfx.SaveAt(subs=[dfx.SubSaveAt(ts=ts, fn=select), dfx.SubSaveAt(steps=True)])
        sol = dfx.diffeqsolve(term, method, t_start, t_end, jnp.asarray(cfg.dt_ms, dtype), y, args=args,
                              saveat=saveat, stepsize_controller=controller, max_steps=int(max_steps), throw=True)
        return sol.ys[0], (sol.ts[1], sol.ys[1], sol.stats["num_accepted_steps"])

    if cfg.method == "imex4":
        # the step's stages are recomputed from y_k alone (f and the decay rates at y_k included);
        # its dense output is the cubic Hermite through h f(y_k) (returned as the one "stage") and
        # h f(y_{k+1}) (the last, first-same-as-last stage)
        n_stages = 1

        def rk_step(d, a, y, t0, t1):
            term, _, args = unpack(d, a, reverse_only=True)
            f0, lam = term.vf_and_decay(t0, y, args)
            if hold_decay_rates:  # a method choice of the step, like h_k (docstring)
                lam = jax.lax.stop_gradient(lam)
            y1, _ = imex_stages(term.vf, t0, t1, y, args, f0, lam)
            return y1, jax.tree.map(lambda v: ((t1 - t0) * v)[None], f0)

        def dense_kwargs(dn):
            return dict(y0=dn["y0"], y1=dn["y1"], k0=_tree_at(dn["k"], 0), k1=_tree_at(dn["k"], 1))
    else:
        tableau = method.tableau
        n_stages = len(tableau.c)  # stages after the first; the last one is evaluated at y1 (FSAL)

        def rk_step(d, a, y, t0, t1):
            term, _, args = unpack(d, a, reverse_only=True)
            return unrolled_rk_step(term.vf, tableau, t0, t1, y, args)

        def dense_kwargs(dn):
            return dn

    def last_stage(d, a, y1, t0, t1):
        """The FSAL stage h f(t1, y1) of a step."""
        term, _, args = unpack(d, a, reverse_only=True)
        return jax.tree.map(lambda v: (t1 - t0) * v, term.vf(t1, y1, args))

    # which float leaves the enclosing derivative asks for (custom_vjp's symbolic zeros): only those
    # get a cotangent in the reverse pass, so a gradient with respect to a few parameters (the
    # synaptic weights of a fit) skips the others' vector-Jacobian products; set when run_fwd is traced
    perturbed: dict = {}

    @jax.custom_vjp
    def run(d, a):
        return forward(d, a)[0]

    def run_fwd(d, a):
        flags = jax.tree.map(lambda x: bool(x.perturbed), d)
        d, a = jax.tree.map(lambda x: x.value, d), jax.tree.map(lambda x: x.value, a)
        perturbed["flags"] = flags
        out, res = forward(d, a)
        return out, (d, a, res)

    def run_bwd(residuals, ct_out):
        d_all, a_other, (t_saved, y_ends, n_acc) = residuals
        _, y_init, _ = unpack(d_all, a_other)
        flags = perturbed["flags"]
        # d: the perturbed float leaves (None elsewhere), differentiated; d_fixed: the rest, held
        d = jax.tree.map(lambda x, f: x if f else None, d_all, flags)
        d_fixed = jax.tree.map(lambda x, f: None if f else x, d_all, flags)
        ct_out = jax.tree.map(
            lambda c: jnp.zeros(c.shape, c.dtype) if isinstance(c, SymbolicZero) else c, ct_out,
            is_leaf=lambda c: isinstance(c, SymbolicZero))

        def full(dd):
            return eqx.combine(dd, d_fixed)
        ts_j = jnp.asarray(ts)
        t_starts = jnp.concatenate([jnp.asarray(t_start)[None], t_saved[:-1]])
        t_ends = step_end_times(t_saved, jump_ts)
        # output j lies in the first step whose end is at or after it (padded steps end at +inf)
        step_of_out = jnp.searchsorted(t_ends, ts_j, side="left")
        step_ids = jnp.arange(t_ends.shape[0], dtype=step_of_out.dtype)
        first_out = jnp.searchsorted(step_of_out, step_ids, side="left")
        last_out = jnp.searchsorted(step_of_out, step_ids, side="right")
        zeros_d = jax.tree.map(jnp.zeros_like, d)
        zeros_y = jax.tree.map(jnp.zeros_like, y_init)
        zeros_dense = dict(y0=zeros_y, y1=zeros_y,
                           k=jax.tree.map(lambda a: jnp.zeros((n_stages + 1,) + a.shape, a.dtype), y_init))

        def outputs_cotangent(k, active=True):
            """Cotangent of step k's dense-output coefficients from the outputs inside it (the
            interpolation is linear in them, so it does not need their values); zero if not ``active``."""
            t0, t1 = t_starts[k], t_ends[k]

            def add_output(j, acc):
                def out_of(dn):
                    interp = method.interpolation_cls(t0=t0, t1=t1, **dense_kwargs(dn))
                    return select(ts_j[j], interp.evaluate(ts_j[j]), None)

                _, pull_out = jax.vjp(out_of, zeros_dense)
                (c,) = pull_out(_tree_at(ct_out, j))
                return jax.tree.map(jnp.add, acc, c)

            return jax.lax.fori_loop(first_out[k], jnp.where(active, last_out[k], first_out[k]), add_output, zeros_dense)

        # Step k's FSAL stage h_k f(t1_k, y_{k+1}) is step k+1's first stage scaled by h_k/h_{k+1},
        # whose cotangent goes in with step k+1; after the last step and at a step that ends at a
        # jump time it is not, and its VJP is taken on its own. Those steps are at most one per jump
        # time plus the last, so the reverse loop runs in segments that each start at one of them:
        # no conditional inside the loop over steps (one cost ≈ 6 % of the reverse pass on C1 Full).
        n_buf = t_ends.shape[0]
        ks = jnp.arange(n_buf)
        own_last = (ks < n_acc) & ((ks == n_acc - 1) | (t_starts[jnp.minimum(ks + 1, n_buf - 1)] != t_ends))
        max_segments = 1 + (0 if jump_ts is None else int(jump_ts.size))
        seg_end = jnp.nonzero(own_last, size=max_segments, fill_value=-1)[0]  # ascending, then -1
        n_seg = eqx.error_if(jnp.sum(own_last), jnp.sum(own_last) > max_segments,
                             "discrete adjoint: more steps end at a jump time than there are jump times")

        def linearise(k):
            """Step k's map linearised at its stored start state: the leaves of its pullback."""
            t0, t1 = t_starts[k], t_ends[k]
            y_k = jax.tree.map(lambda a, b: jnp.where(k > 0, a[jnp.maximum(k - 1, 0)], b), y_ends, y_init)
            _, pull = jax.vjp(lambda dd, yy: rk_step(full(dd), a_other, yy, t0, t1), d, y_k)
            return pull

        # software pipelining: while step k's pullback runs, step k-1 is linearised (its stages
        # recomputed). The two do not depend on each other, so XLA runs them side by side on two
        # cores; the pullback is carried to the next iteration as its leaves (its structure is the
        # same for every step)
        pull_first = linearise(n_acc - 1)
        pull_tree = jax.tree.structure(pull_first)

        def body(i, carry):
            lam, g, pending, pull_leaves = carry  # pending: step k's output cotangent, computed one iteration early
            k = n_acc - 1 - i
            t0, t1 = t_starts[k], t_ends[k]
            pull = jax.tree.unflatten(pull_tree, pull_leaves)
            ct_y1 = jax.tree.map(jnp.add, lam, pending["y1"])
            # the previous step's outputs: their FSAL-stage cotangent joins this step's first stage
            prev = outputs_cotangent(jnp.maximum(k - 1, 0), k > 0)
            t0_prev = t_starts[jnp.maximum(k - 1, 0)]
            shared = (k > 0) & (t_ends[jnp.maximum(k - 1, 0)] == t0)
            ratio = jnp.where(shared, (t0 - t0_prev) / (t1 - t0), 0.0)
            ct_stages = jax.tree.map(lambda p, q: p[:n_stages].at[0].add(ratio * q[n_stages]), pending["k"], prev["k"])
            g_d, lam_prev = pull((ct_y1, ct_stages))
            lam_prev = jax.tree.map(jnp.add, lam_prev, pending["y0"])
            next_leaves = jax.tree.leaves(linearise(jnp.maximum(k - 1, 0)))
            return lam_prev, jax.tree.map(jnp.add, g, g_d), prev, next_leaves

        def segment(s, carry):
            lam, g, pending, pull_leaves = carry
            hi = seg_end[n_seg - 1 - s]  # the segment's last step, whose FSAL stage is its own
            lo = jnp.where(n_seg - 2 - s >= 0, seg_end[jnp.maximum(n_seg - 2 - s, 0)] + 1, 0)
            _, pull = jax.vjp(lambda dd, yy: last_stage(full(dd), a_other, yy, t_starts[hi], t_ends[hi]), d,
                              _tree_at(y_ends, hi))
            g_last, lam_last = pull(jax.tree.map(lambda a: a[n_stages], pending["k"]))
            carry = (jax.tree.map(jnp.add, lam, lam_last), jax.tree.map(jnp.add, g, g_last), pending, pull_leaves)
            return jax.lax.fori_loop(n_acc - 1 - hi, n_acc - lo, body, carry)

        lam0 = jax.tree.map(jnp.zeros_like, y_init)
        pending0 = outputs_cotangent(n_acc - 1)
        lam, g, _, _ = jax.lax.fori_loop(0, n_seg, segment, (lam0, zeros_d, pending0, jax.tree.leaves(pull_first)))
        # the first step was pulled back with respect to its start state: that is y0's gradient
        g_model, g_y0, g_in = g
        g_y0 = jax.tree.map(lambda gy, ly: None if gy is None else gy + ly, g_y0, eqx.filter(lam, eqx.is_inexact_array),
                            is_leaf=lambda x: x is None)
        no_grad = jax.tree.map(lambda x: np.zeros(x.shape, jax.dtypes.float0), a_other)
        return (g_model, g_y0, g_in), no_grad

    run.defvjp(run_fwd, run_bwd, symbolic_zeros=True)
    return run(diff, other)

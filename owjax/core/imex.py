"""An adaptive IMEX Runge–Kutta method whose implicit part is each variable's own linear decay.

Written per entry, every variable of a c302 network relaxes linearly in its own state
(:mod:`owjax.core.exponential`):

    dy_i/dt = f_i(y) = a_i(y) − λ_i(y)·y_i,      λ_i = −∂f_i/∂y_i ≥ 0.

Explicit Runge–Kutta methods must keep λ·h small for the largest λ (c302's 0.1-ms Ca activation
gate, λ = 10/ms), which caps a Tsit5 step of C1 Full near 0.25 ms even when nothing moves: 4 092 steps
for 1 s, whatever the tolerance. This module splits each step's field into

    f(y) = [f(y) + Λ·y] + [−Λ·y],       Λ = diag(λ(y_n)) frozen at the start of the step,

an exact rewriting of the same field for the duration of the step. The first bracket is integrated
explicitly, the second implicitly, by the additive Runge–Kutta pair ARK4(3)6L[2]SA of Kennedy &
Carpenter (2003; diffrax's ``KenCarp4`` tableaux, read from diffrax): order 4 with an embedded order-3
error estimate, an L-stable, stiffly accurate ESDIRK implicit part. Because the implicit part is
linear and diagonal, each implicit stage is solved exactly, elementwise, with no Newton iteration and
no linear solver:

    Y_i = (y_n + h Σ_{j<i} (a^E_ij·f^E_j + a^I_ij·f^I_j)) / (1 + γ·h·Λ),     γ = 1/4.

So a stiff gate with λh ≫ 1 is damped towards its target instead of making the step unstable, and the
step size is set by the accuracy of what moves (on C1 Full ≈ 3× fewer steps than Tsit5). A step costs
five field evaluations plus one field-and-decay evaluation at the accepted point, which is reused by
the next step (first same as last); the dense output is the cubic Hermite interpolant through both ends
and their slopes (as :class:`~owjax.core.exponential.ExponentialRK2`).

Use with a :class:`~owjax.core.exponential.LinearDecayTerm` (a component's
:meth:`~owjax.core.component.AbstractComponent.field_and_decay`); it is a diffrax solver, so it works
with ``PIDController`` (tolerances, jump times), ``SaveAt``, ``jit``, ``vmap`` and ``grad``, and is
reached through the solver presets of :mod:`owjax.core.solve` (method ``imex4``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ClassVar

import diffrax as dfx
import jax
import jax.tree_util as jtu
import numpy as np
from jaxtyping import PyTree

from owjax.core.exponential import LinearDecayTerm, vf_and_decay

__all__ = ["DiagonalIMEXKenCarp4", "imex_stages"]


@functools.cache
def _kencarp4_tableaux():
    """(explicit a, implicit a (lower, with the diagonal), b, b_error, c) of ARK4(3)6L[2]SA, from diffrax."""
    explicit, implicit = dfx.KenCarp4.tableau.tableaus
    s = len(explicit.c) + 1
    a_e, a_i = np.zeros((s, s)), np.zeros((s, s))
    for i, (re, ri) in enumerate(zip(explicit.a_lower, implicit.a_lower), start=1):
        a_e[i, :i] = re
        a_i[i, :i] = ri
    a_i[np.arange(s), np.arange(s)] = implicit.a_diagonal
    if not (np.allclose(explicit.b_sol, implicit.b_sol) and np.allclose(explicit.c, implicit.c)):
        raise RuntimeError("diffrax's KenCarp4 tableaux no longer share b and c; owjax's IMEX step assumes they do")
    return a_e, a_i, np.asarray(explicit.b_sol), np.asarray(explicit.b_error), np.concatenate([[0.0], explicit.c])


def imex_stages(f: Callable, t0, t1, y0: PyTree, args, f0: PyTree, lam: PyTree) -> tuple[PyTree, PyTree]:
    """One step of the diagonal IMEX ARK4(3) from ``y0`` over ``[t0, t1]`` (module docstring).

    Arguments:
        f: the vector field ``f(t, y, args)``.
        t0, t1: the step's interval (the last stage is evaluated at ``t1`` itself).
        y0: the state at ``t0``.
        args: passed to ``f``.
        f0, lam: the field at ``(t0, y0)`` and each variable's decay rate there (frozen for the step).

    Returns:
        ``(y1, y_error)``: the fourth-order solution at ``t1`` and the embedded error estimate.
        Five evaluations of ``f``.
    """
    a_e, a_i, b, b_err, c = _kencarp4_tableaux()
    h = t1 - t0
    # per stage: the explicit part f + Λ·y and the implicit part −Λ·y; their sum is f at the stage
    f_exp = [jtu.tree_map(lambda f, rate, y: f + rate * y, f0, lam, y0)]
    f_imp = [jtu.tree_map(lambda rate, y: -rate * y, lam, y0)]
    stage_f = [f0]
    for i in range(1, len(c)):

        def stage(y, rate, *fs, i=i):
            fe, fi = fs[:i], fs[i:]
            acc = y
            for j in range(i):
                if a_e[i, j] != 0.0:
                    acc = acc + (h * float(a_e[i, j])) * fe[j]
                if a_i[i, j] != 0.0:
                    acc = acc + (h * float(a_i[i, j])) * fi[j]
            return acc / (1.0 + (float(a_i[i, i]) * h) * rate)

        yi = jtu.tree_map(stage, y0, lam, *f_exp, *f_imp)
        fi_full = f(t1 if float(c[i]) == 1.0 else t0 + float(c[i]) * h, yi, args)
        f_exp.append(jtu.tree_map(lambda f, rate, y: f + rate * y, fi_full, lam, yi))
        f_imp.append(jtu.tree_map(lambda rate, y: -rate * y, lam, yi))
        stage_f.append(fi_full)

    def combine(y, *fs, weights):
        out = y
        for w, fk in zip(weights, fs):
            if w != 0.0:
                out = out + (h * float(w)) * fk
        return out

    y1 = jtu.tree_map(lambda y, *fs: combine(y, *fs, weights=b), y0, *stage_f)
    y_error = jtu.tree_map(lambda y, *fs: combine(y, *fs, weights=b_err) - y, y0, *stage_f)
    return y1, y_error


class DiagonalIMEXKenCarp4(dfx.AbstractAdaptiveSolver):
    """Adaptive IMEX ARK4(3)6L[2]SA with each variable's own linear decay (frozen per step) implicit.

    Use with a :class:`~owjax.core.exponential.LinearDecayTerm`; see the module docstring for the
    method. Order 4 (error estimate of order 3), six field evaluations per step, the last one (with
    the decay rates) shared with the next step; cubic Hermite dense output.
    """

    term_structure: ClassVar = LinearDecayTerm
    interpolation_cls: ClassVar[Callable[..., dfx.ThirdOrderHermitePolynomialInterpolation]] = (
        dfx.ThirdOrderHermitePolynomialInterpolation
    )

    def order(self, terms):
        return 4

    def error_order(self, terms):
        return 3

    def init(self, terms: LinearDecayTerm, t0, t1, y0: PyTree, args):
        return vf_and_decay(terms, t0, y0, args, solver="DiagonalIMEXKenCarp4")

    def step(self, terms: LinearDecayTerm, t0, t1, y0: PyTree, args, solver_state, made_jump):
        f0, lam = jax.lax.cond(
            made_jump, lambda: vf_and_decay(terms, t0, y0, args, solver="DiagonalIMEXKenCarp4"), lambda: solver_state
        )
        h = terms.contr(t0, t1)
        y1, y_error = imex_stages(terms.vf, t0, t1, y0, args, f0, lam)
        f_new, lam_new = vf_and_decay(terms, t1, y1, args, solver="DiagonalIMEXKenCarp4")
        dense_info = dict(y0=y0, y1=y1, k0=jtu.tree_map(lambda v: h * v, f0), k1=jtu.tree_map(lambda v: h * v, f_new))
        return y1, y_error, dense_info, (f_new, lam_new), dfx.RESULTS.successful

    def func(self, terms: LinearDecayTerm, t0, y0, args):
        return terms.vf(t0, y0, args)

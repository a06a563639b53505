"""An adaptive exponential integrator for fields that are linear in each variable's own state.

Every state variable of a c302 network relaxes towards a target that depends on the *other*
variables: an HH gate towards x∞(V) with rate 1/τ, a synaptic activation towards s∞(V_pre), Ca
towards its rest plus the Ca influx, and V itself towards the conductance-weighted mean of the
reversal potentials with rate g_total/C. Written per entry,

    dy_i/dt = f_i(y) = a_i(y) − λ_i(y)·y_i,      λ_i = −∂f_i/∂y_i ≥ 0,

where ``a_i`` does not depend on ``y_i``. Explicit Runge–Kutta methods must resolve the fastest
λ (c302's 0.1-ms Ca activation gate) even when nothing moves; an exponential method integrates the
``−λ·y`` part exactly and only the (mild) coupling between variables explicitly.

:class:`ExponentialRK2` is the second-order exponential time-differencing Runge–Kutta method of
Cox & Matthews (2002, "ETD2RK") with the linear part frozen at the start of each step (a diagonal
exponential-Rosenbrock step, the Rush–Larsen idea taken to second order and applied to every
variable), made adaptive by its embedded first-order exponential-Euler solution:

    y₁ = y₀ + h·φ₁(λ₀h)·f(y₀)                                 (exponential Euler, order 1)
    y₂ = y₁ + h·φ₂(λ₀h)·[f(y₁) − f(y₀) + λ₀·(y₁ − y₀)]         (ETD2RK, order 2)
    error estimate y₂ − y₁;    φ₁(z) = (1 − e^{−z})/z,   φ₂(z) = (z − 1 + e^{−z})/z²

For λ = 0 it is exactly Heun's method (explicit trapezoid) with an Euler error estimate; for a
gate with λh ≫ 1 it returns x∞ at the new voltage instead of oscillating. f and λ at the accepted
point are reused by the next step (first-same-as-last), so a step costs two evaluations of the
field; the dense output is the cubic Hermite interpolant through both ends and their slopes.

A component supplies λ through :meth:`owjax.core.component.AbstractComponent.field_and_decay`
(default: λ = 0, i.e. Heun). It is a diffrax solver (:class:`diffrax.AbstractAdaptiveSolver`): it
works with ``PIDController`` (tolerances, jump times), ``SaveAt``, ``jit``, ``vmap`` and ``grad``,
and is reached through the solver presets of :mod:`owjax.core.solve`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import diffrax as dfx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, ArrayLike, Float, PyTree

__all__ = ["LinearDecayTerm", "ExponentialRK2", "phi_functions", "vf_and_decay"]

#: below |z| = λh of this size φ₁ and φ₂ are taken from their Taylor series (relative error < 1e-13)
_SERIES_BELOW = 0.05


def phi_functions(z: Float[ArrayLike, "*n"]) -> tuple[Float[Array, "*n"], Float[Array, "*n"]]:
    """φ₁(z) = (1 − e^{−z})/z and φ₂(z) = (z − 1 + e^{−z})/z², accurate and differentiable at z → 0.

    Arguments:
        z: λ·h (dimensionless): decay rate times step.

    Returns:
        ``(φ₁, φ₂)``, elementwise; φ₁(0) = 1, φ₂(0) = 1/2.
    """
    z = jnp.asarray(z)
    small = jnp.abs(z) < _SERIES_BELOW
    zs = jnp.where(small, 1.0, z)  # keeps the unused branch (and its gradient) finite
    em1 = jnp.expm1(-zs)  # e^{−z} − 1
    p1_direct = -em1 / zs
    p2_direct = (zs + em1) / (zs * zs)
    # Σ (−z)^k/(k+1)!  and  Σ (−z)^k/(k+2)!, k = 0…6
    p1_series = 1 + z * (-1 / 2 + z * (1 / 6 + z * (-1 / 24 + z * (1 / 120 + z * (-1 / 720 + z / 5040)))))
    p2_series = 1 / 2 + z * (-1 / 6 + z * (1 / 24 + z * (-1 / 120 + z * (1 / 720 + z * (-1 / 5040 + z / 40320)))))
    return jnp.where(small, p1_series, p1_direct), jnp.where(small, p2_series, p2_direct)


class LinearDecayTerm(dfx.AbstractTerm):
    """The term ``f(t, y, args) dt`` together with each entry's own decay rate λ = −∂f_i/∂y_i.

    Arguments:
        field_and_decay: ``(t, y, args) -> (f, λ)``, two pytrees shaped like ``y``; λ in 1/(time
            unit of ``t``), 0 where a variable has no linear part of its own.

    ``vf`` returns ``f`` only, so the term behaves like :class:`diffrax.ODETerm` everywhere else.
    """

    field_and_decay: Callable

    def vf(self, t, y, args):
        return self.field_and_decay(t, y, args)[0]

    def vf_and_decay(self, t, y, args):
        f, lam = self.field_and_decay(t, y, args)
        if jtu.tree_structure(f) != jtu.tree_structure(y) or jtu.tree_structure(lam) != jtu.tree_structure(y):
            raise ValueError("field_and_decay must return (f, λ), each a pytree with the structure of the state")
        return f, lam

    def contr(self, t0, t1, **kwargs):
        return t1 - t0

    def prod(self, vf, control):
        return jtu.tree_map(lambda v: control * v, vf)


def vf_and_decay(terms, t, y, args, solver: str = "ExponentialRK2"):
    """(f, λ) of a :class:`LinearDecayTerm`, also when diffrax has wrapped it (``WrapTerm``: time direction).

    Arguments:
        terms: the term handed to the solver's ``step``.
        t, y, args: where to evaluate.
        solver: the calling solver's name, for the error raised when ``terms`` is not a LinearDecayTerm.

    Returns:
        ``(f, λ)``, each a pytree shaped like ``y``.
    """
    if isinstance(terms, LinearDecayTerm):
        return terms.vf_and_decay(t, y, args)
    inner, direction = getattr(terms, "term", None), getattr(terms, "direction", None)
    if isinstance(inner, LinearDecayTerm) and direction is not None:
        return inner.vf_and_decay(t * direction, y, args)
    raise TypeError(f"{solver} needs a LinearDecayTerm (the field and its decay rates), got {type(terms).__name__}")


def _axpy(y, a, x):
    return jtu.tree_map(lambda yi, ai, xi: yi + ai * xi, y, a, x)


class ExponentialRK2(dfx.AbstractAdaptiveSolver):
    """Adaptive diagonal exponential Runge–Kutta 2(1) (ETD2RK with an exponential-Euler error estimate).

    Use with a :class:`LinearDecayTerm`; see the module docstring for the method. Order 2, two
    field evaluations per step (first same as last), cubic Hermite dense output.
    """

    term_structure: ClassVar = LinearDecayTerm
    interpolation_cls: ClassVar[Callable[..., dfx.ThirdOrderHermitePolynomialInterpolation]] = (
        dfx.ThirdOrderHermitePolynomialInterpolation
    )

    def order(self, terms):
        return 2

    def init(self, terms: LinearDecayTerm, t0, t1, y0: PyTree, args):
        return vf_and_decay(terms, t0, y0, args)

    def step(self, terms: LinearDecayTerm, t0, t1, y0: PyTree, args, solver_state, made_jump):
        f0, lam0 = jax.lax.cond(made_jump, lambda: vf_and_decay(terms, t0, y0, args), lambda: solver_state)
        h = terms.contr(t0, t1)
        p1 = jtu.tree_map(lambda lam: h * phi_functions(lam * h)[0], lam0)
        p2 = jtu.tree_map(lambda lam: h * phi_functions(lam * h)[1], lam0)
        y_euler = _axpy(y0, p1, f0)
        f1 = terms.vf(t1, y_euler, args)
        corr = jtu.tree_map(lambda a, b, lam, ye, yy: a - b + lam * (ye - yy), f1, f0, lam0, y_euler, y0)
        y1 = _axpy(y_euler, p2, corr)
        y_error = jtu.tree_map(lambda a, b: a - b, y1, y_euler)
        f_new, lam_new = vf_and_decay(terms, t1, y1, args)
        dense_info = dict(y0=y0, y1=y1, k0=jtu.tree_map(lambda v: h * v, f0), k1=jtu.tree_map(lambda v: h * v, f_new))
        return y1, y_error, dense_info, (f_new, lam_new), dfx.RESULTS.successful

    def func(self, terms: LinearDecayTerm, t0, y0, args):
        return terms.vf(t0, y0, args)

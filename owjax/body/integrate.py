"""Integrating body scenarios with diffrax (the body's own solver choice; see docs/body.md).

The body's right-hand side already solves its force balance, so the state equations are an ordinary
ODE with the stiffest rate k_DE/D_DE = 100 s⁻¹ (internal damping bounds it, whatever the medium).
Measured on this machine (docs/body.md): an explicit adaptive Tsitouras 5(4) beats implicit
Kvaerno and fixed-step schemes; the default is Tsit5 with PID control at rtol = atol = 1e-5 (mm,
rad), float64 (water needs it: C_perp/D_DE ≈ 1e-6 makes float32 velocities noisy).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from owjax.core.component import AbstractComponent

__all__ = ["BodySolver", "BODY_SOLVERS", "integrate", "IntegrationResult", "BodyStepsExhausted"]


class BodyStepsExhausted(RuntimeError):
    """The solver ran out of steps before the end time."""


@dataclass(frozen=True)
class BodySolver:
    """Solver settings for body scenarios.

    Attributes:
        method: ``tsit5`` (default), ``bosh3``, ``ralston``, ``dopri8`` (adaptive explicit) or
            ``kvaerno5`` (implicit, dense Newton; measured slower, kept for comparison).
        rtol, atol: PID tolerances (atol in each state's unit: mm, rad, 1).
        dt0_s: first step (s).
        max_steps: step budget.
    """

    method: str = "tsit5"
    rtol: float = 1e-5
    atol: float = 1e-5
    dt0_s: float = 1e-3
    max_steps: int = 200_000


_METHODS = {"tsit5": dfx.Tsit5, "bosh3": dfx.Bosh3, "ralston": dfx.Ralston, "dopri8": dfx.Dopri8,
            "kvaerno5": dfx.Kvaerno5}
BODY_SOLVERS = tuple(_METHODS)


def _solver(method: str):
    if method not in _METHODS:
        raise ValueError(f"unknown body solver {method!r}; allowed: {list(_METHODS)}")
    return _METHODS[method]()


@dataclass
class IntegrationResult:
    """Saved states and solver statistics.

    Attributes:
        t_s: output times (s).
        ys: state pytree with a leading time axis.
        num_steps, num_rejected: accepted/rejected steps.
        wall_s: wall time of the (compiled) solve, or None when not measured.
    """

    t_s: np.ndarray
    ys: dict
    num_steps: int
    num_rejected: int
    wall_s: float | None = None


def solve_component(component: AbstractComponent, t_out_s, y0, solver: BodySolver, inputs=None):
    """Pure, jit/vmap/grad-able solve of ``component`` through owjax's one solve
    (:func:`owjax.core.solve.solve_ys`, in ms) saved at ``t_out_s``; returns (ys, steps, rejected, result)."""
    from owjax.core.solve import SolverConfig, solve_ys

    cfg = SolverConfig(solver.method, rtol=solver.rtol, atol=solver.atol, dt_ms=solver.dt0_s * 1000.0,
                       max_steps=solver.max_steps)
    sol = solve_ys(component, None, None, cfg, y0=y0, throw=False, inputs=inputs,
                   ts_ms=jnp.asarray(t_out_s) * 1000.0)
    return sol.ys, sol.stats["num_steps"], sol.stats["num_rejected_steps"], sol.result


@eqx.filter_jit
def _solve_jit(component, t_out_s, y0, solver):
    return solve_component(component, t_out_s, y0, solver)


def integrate(component: AbstractComponent, duration_s: float, dt_out_s: float, solver: BodySolver | None = None,
              y0=None, time_it: bool = False) -> IntegrationResult:
    """Integrate ``component`` from its initial state (or ``y0``) for ``duration_s`` seconds.

    Arguments:
        component: any owjax component (the body, a composite of drive/circuit + body).
        duration_s: simulated time (s), > 0.
        dt_out_s: output interval (s), > 0 and ≤ duration.
        solver: :class:`BodySolver` (default Tsit5, 1e-5).
        y0: initial state (default ``component.initial_state()``).
        time_it: run once to compile, then time a second run (wall_s).

    Returns:
        :class:`IntegrationResult`.

    Raises:
        ValueError: bad times. BodyStepsExhausted: step budget too small.
    """
    solver = solver or BodySolver()
    if not (np.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be a positive number, got {duration_s!r}")
    if not (np.isfinite(dt_out_s) and 0 < dt_out_s <= duration_s):
        raise ValueError(f"dt_out_s must be in (0, duration_s={duration_s}], got {dt_out_s!r}")
    n = int(round(duration_s / dt_out_s)) + 1
    dtype = component.dtype
    t_out = np.linspace(0.0, n - 1, n) * dt_out_s
    y0 = component.initial_state() if y0 is None else y0
    t_arr = jnp.asarray(t_out, dtype)
    run = lambda c, y: _solve_jit(c, t_arr, y, solver)  # noqa: E731  (compiled once per structure)
    ys, steps, rej, result = run(component, y0)
    jax.block_until_ready(ys)
    wall = None
    if time_it:
        t0 = time.perf_counter()
        ys, steps, rej, result = run(component, y0)
        jax.block_until_ready(ys)
        wall = time.perf_counter() - t0
    if result != dfx.RESULTS.successful:
        msg = dfx.RESULTS[result] if hasattr(dfx.RESULTS, "__getitem__") else str(result)
        if int(steps) >= solver.max_steps:
            raise BodyStepsExhausted(f"body solver used all max_steps={solver.max_steps} before t={duration_s} s; "
                                     "raise solver.max_steps or loosen rtol/atol")
        raise RuntimeError(f"body solve failed: {msg}")
    ys = jax.tree_util.tree_map(np.asarray, ys)
    return IntegrationResult(t_out, ys, int(steps), int(rej), wall)

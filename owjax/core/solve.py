"""One solve for every component (network, intestine, worm, body …): named presets, errors, progress.

Any :class:`~owjax.core.component.AbstractComponent` is solved here, in ms (components with
another time unit are rescaled by :func:`~owjax.core.component.field_per_ms`). A preset is honoured
exactly as named: a method the component cannot use (``kencarp4`` needs the component's IMEX
split) is an :class:`UnsupportedSolverError`, never a silent substitution.

Presets (``conf/solver/*.yaml`` mirror them; ``SOLVER_PRESETS`` is the source of truth):

==============  ==========================================================================
name            what it is
==============  ==========================================================================
``tsit5``       explicit adaptive Tsitouras 5(4), PID control rtol = atol = 1e-6 (the library
                functions' default; ``python -m owjax.simulate`` defaults to ``imex``)
``dopri5``      explicit adaptive Dormand–Prince 5(4), same tolerances
``dopri8``      explicit adaptive Dormand–Prince 8(7), rtol = atol = 1e-10: the converged
                reference owjax measures the others against
``kvaerno5``    stiff: ESDIRK Kvaerno 5(4) with a Jacobian-free Newton–Krylov solve (GMRES
                on Jacobian-vector products), so the 0.4 %-dense Jacobian is never formed
``kencarp4``    stiff IMEX (Kennedy–Carpenter 4): gates and synaptic activations implicit,
                membrane potential and Ca explicit; GMRES linear solves
``euler``       fixed-step forward Euler, dt = 0.05 ms (what jLEMS does)
``heun``        fixed-step Heun (RK2), dt = 0.05 ms
``fast``        explicit adaptive Ralston 2(1), rtol = atol = 1e-4, meant for float32. The
                network's stiffness (a 0.1-ms Ca gate) caps the step of any explicit method near
                0.25 ms; per right-hand-side evaluation Ralston's stability interval is the
                longest, so at this tolerance it is the cheapest accurate explicit choice
                (C1 Full 1 s: about 2.5e-3 of each trace's range from converged NEURON, the same
                as ``tsit5`` at 1e-6; benchmarks/results/bench.md)
``exponential`` adaptive exponential Runge–Kutta 2(1) (ETD2RK, :mod:`owjax.core.exponential`),
                rtol = atol = 1e-6: every variable's own linear decay (gates, synapses, Ca, V)
                is integrated exactly, so the stiffness that caps explicit steps near 0.25 ms is
                gone and a network at rest takes steps of seconds; during spiking it is a
                second-order method and takes more (cheaper) steps than ``tsit5``. For long,
                mostly quiet runs (the 200-s worm); docs/speed.md
``imex``        adaptive IMEX Runge–Kutta 4(3) (Kennedy–Carpenter ARK4(3)6L[2]SA,
                :mod:`owjax.core.imex`), rtol = atol = 1e-5: each variable's own linear decay
                (frozen per step) implicit, solved exactly and elementwise; the rest explicit.
                The 0.1-ms gate no longer caps the step: C1 Full 1 s takes 1 325 steps instead
                of Tsit5's 4 092, and its error against converged NEURON stays inside the
                bounds the default's equivalence tests guard (docs/speed.md); the default of
                ``python -m owjax.simulate``
``imex_fast``   the same method at rtol = atol = 3e-5, meant for float32: the fastest preset
                that passes the converged-NEURON criteria on all six checked-in cases
                (C1 Full 1 s: 937 steps)
==============  ==========================================================================

Pulse on/off times are passed to the step-size controller as jump times, so adaptive steps land on
the discontinuities. Running out of steps raises :class:`SolverStepsExhausted`, never a silently
truncated trace.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx
import numpy as np

from owjax.core.component import AbstractComponent, field_per_ms, resolve_path
from owjax.core.errors import unknown_name_message

State = dict

__all__ = [
    "SolverConfig",
    "SOLVER_PRESETS",
    "get_solver",
    "solve",
    "solve_ys",
    "Solution",
    "SolverStepsExhausted",
    "UnsupportedSolverError",
    "CompiledSolves",
    "DEFAULT_COMPILED_SOLVES",
]


class SolverStepsExhausted(RuntimeError):
    """The solver hit ``max_steps`` before the end time."""


class UnsupportedSolverError(ValueError):
    """The requested solver method cannot be used with this component."""


@dataclass(frozen=True)
class SolverConfig:
    """Which diffrax solver and controller to use.

    Attributes:
        method: ``tsit5``, ``dopri5``, ``dopri8``, ``ralston``, ``bosh3``, ``kvaerno5``, ``kencarp4``,
            ``euler``, ``heun``, ``etd2`` (exponential, :mod:`owjax.core.exponential`), ``imex4``
            (diagonal IMEX, :mod:`owjax.core.imex`).
        rtol, atol: PID controller tolerances (adaptive methods). ``atol`` applies to every state
            variable in its own unit: mV, nM (Ca), dimensionless gates/activations.
        dt_ms: fixed step (fixed-step methods) or the first step (adaptive).
        max_steps: step budget; with ``checkpoints=None`` it also sets the number of checkpoints of
            the gradient (diffrax's default, ≈ log(max_steps): little memory, each step recomputed
            several times in the backward pass).
        checkpoints: number of solver states the reverse pass keeps (``RecursiveCheckpointAdjoint``).
            ``None`` = diffrax's default; a number ≥ the steps taken stores every step (memory
            ≈ checkpoints × state size, e.g. 5000 × 45 kB for C1 Full in float64) and each step is
            recomputed once in the reverse pass instead of several times; on C1 Full (1 s, 4 092 steps) it made no consistent
            difference to the gradient time (benchmarks/results/bench.md).
        krylov_rtol, krylov_atol: GMRES tolerances of the implicit methods.
    """

    method: str = "tsit5"
    rtol: float = 1e-6
    atol: float = 1e-6
    dt_ms: float = 0.05
    max_steps: int = 200_000
    checkpoints: int | None = None
    krylov_rtol: float = 1e-6
    krylov_atol: float = 1e-6
    newton_rtol: float = 1e-6
    newton_atol: float = 1e-6

    @property
    def adaptive(self) -> bool:
        return self.method not in ("euler", "heun")


SOLVER_PRESETS: dict[str, SolverConfig] = {
    "tsit5": SolverConfig("tsit5"),
    "dopri5": SolverConfig("dopri5"),
    "dopri8": SolverConfig("dopri8", rtol=1e-10, atol=1e-10, dt_ms=0.001, max_steps=2_000_000),
    "kvaerno5": SolverConfig("kvaerno5", rtol=1e-6, atol=1e-6),
    "kencarp4": SolverConfig("kencarp4", rtol=1e-6, atol=1e-6),
    "euler": SolverConfig("euler", dt_ms=0.05, max_steps=10_000_000),
    "heun": SolverConfig("heun", dt_ms=0.05, max_steps=10_000_000),
    "fast": SolverConfig("ralston", rtol=1e-4, atol=1e-4),
    "exponential": SolverConfig("etd2", rtol=1e-6, atol=1e-6, max_steps=2_000_000),
    "imex": SolverConfig("imex4", rtol=1e-5, atol=1e-5),
    "imex_fast": SolverConfig("imex4", rtol=3e-5, atol=3e-5),
}

_EXPLICIT = {
    "tsit5": dfx.Tsit5,
    "dopri5": dfx.Dopri5,
    "dopri8": dfx.Dopri8,
    "ralston": dfx.Ralston,
    "bosh3": dfx.Bosh3,
    "euler": dfx.Euler,
    "heun": dfx.Heun,
}
_METHODS = tuple(_EXPLICIT) + ("kvaerno5", "kencarp4", "etd2", "imex4")


def get_solver(config: SolverConfig | str | dict) -> SolverConfig:
    """A :class:`SolverConfig` from a preset name, a mapping of its fields, or itself."""
    if isinstance(config, SolverConfig):
        cfg = config
    elif isinstance(config, str):
        if config not in SOLVER_PRESETS:
            raise ValueError(unknown_name_message("solver preset", config, tuple(SOLVER_PRESETS)))
        cfg = SOLVER_PRESETS[config]
    else:
        d = dict(config)
        base = SOLVER_PRESETS.get(d.pop("preset", d.get("method", "tsit5")), SolverConfig())
        fields = {f.name for f in dataclasses.fields(SolverConfig)}
        bad = sorted(set(d) - fields - {"name"})
        if bad:
            raise ValueError(f"unknown solver option(s) {bad}; allowed: {sorted(fields)}")
        d.pop("name", None)
        for k, v in d.items():  # YAML may hand numbers over as strings ("1e-06")
            default = getattr(base, k)
            if k == "checkpoints":
                if v is None or str(v).lower() in ("none", "null"):
                    d[k] = None
                    continue
                default = 0
            try:
                d[k] = type(default)(float(v)) if isinstance(default, (int, float)) else str(v)
            except (TypeError, ValueError):
                raise ValueError(f"solver option {k}={v!r} is not a number") from None
        cfg = dataclasses.replace(base, **d)
    if cfg.method not in _METHODS:
        raise ValueError(unknown_name_message("solver method", cfg.method, _METHODS))
    for k in ("rtol", "atol", "dt_ms"):
        v = getattr(cfg, k)
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"solver {k} must be a positive finite number, got {v!r}")
    if cfg.max_steps < 1:
        raise ValueError(f"solver max_steps must be >= 1, got {cfg.max_steps}")
    if cfg.checkpoints is not None and cfg.checkpoints < 1:
        raise ValueError(f"solver checkpoints must be None or >= 1, got {cfg.checkpoints}")
    return cfg


def _build(component: AbstractComponent, cfg: SolverConfig):
    if cfg.method in ("etd2", "imex4"):  # the solvers that take each variable's own decay rate
        from owjax.core.component import field_and_decay_per_ms
        from owjax.core.exponential import ExponentialRK2, LinearDecayTerm
        from owjax.core.imex import DiagonalIMEXKenCarp4

        solver = ExponentialRK2() if cfg.method == "etd2" else DiagonalIMEXKenCarp4()
        return LinearDecayTerm(field_and_decay_per_ms(component)), solver
    f = field_per_ms(component)
    if cfg.method in _EXPLICIT:
        return dfx.ODETerm(f), _EXPLICIT[cfg.method]()
    # Newton with a matrix-free GMRES: each Krylov iteration is one Jacobian-vector product, so
    # the (N x N, 0.4 % dense) Jacobian is never materialised or factorised.
    root = optx.Newton(
        rtol=cfg.newton_rtol,
        atol=cfg.newton_atol,
        linear_solver=lx.GMRES(rtol=cfg.krylov_rtol, atol=cfg.krylov_atol, restart=20, stagnation_iters=20),
    )
    if cfg.method == "kvaerno5":
        return dfx.ODETerm(f), dfx.Kvaerno5(root_finder=root)
    split = component.imex_split()
    if split is None:
        raise UnsupportedSolverError(
            f"solver {cfg.method!r} needs an IMEX split, which {type(component).__name__} does not declare; "
            f"use one of {[m for m in _METHODS if m != 'kencarp4']}"
        )
    scale = float(component.time_unit_ms)
    ex, im = split
    if scale != 1.0:
        ex0, im0 = ex, im
        ex = lambda t, y, a: jax.tree_util.tree_map(lambda v: v / scale, ex0(t / scale, y, a))  # noqa: E731
        im = lambda t, y, a: jax.tree_util.tree_map(lambda v: v / scale, im0(t / scale, y, a))  # noqa: E731
    return dfx.MultiTerm(dfx.ODETerm(ex), dfx.ODETerm(im)), dfx.KenCarp4(root_finder=root)


def jump_times_ms(component: AbstractComponent, t1: float | None) -> list[float]:
    """The component's jump times in ms, sorted, strictly inside (0, ``t1``) (``t1=None``: no end)."""
    scale = float(component.time_unit_ms)
    return sorted({float(t) * scale for t in component.jump_times()
                   if 0.0 < float(t) * scale and (t1 is None or float(t) * scale < t1)})


def _controller(component: AbstractComponent, cfg: SolverConfig, t1: float):
    jumps = jump_times_ms(component, t1)
    if cfg.adaptive:
        return dfx.PIDController(
            rtol=cfg.rtol,
            atol=cfg.atol,
            jump_ts=jnp.asarray(jumps, dtype=component.dtype) if jumps else None,
            dtmin=None,
        )
    return dfx.ConstantStepSize()


def solve_ys(
    model: AbstractComponent,
    duration_ms: float,
    dt_out_ms: float,
    solver: SolverConfig | str = "tsit5",
    y0: State | None = None,
    adjoint: dfx.AbstractAdjoint | None = None,
    progress: bool = False,
    throw: bool = True,
    save: Sequence[str] | None = None,
    inputs: dict | None = None,
    dense: bool = False,
    ts_ms: Any = None,
) -> dfx.Solution:
    """The differentiable core: solve any component and return diffrax's Solution (saved every ``dt_out_ms``).

    ``model`` is any :class:`~owjax.core.component.AbstractComponent` (network, intestine, worm,
    body …); time is in ms whatever the component's own unit. ``inputs`` are constant external
    inputs passed to the vector field (names from ``model.input_names``); ``dense=True`` also keeps
    the dense interpolant (``sol.evaluate(t_ms)``). ``ts_ms`` (an increasing array, may be traced)
    replaces the uniform output grid: the solve runs from ``ts_ms[0]`` to ``ts_ms[-1]`` and
    ``duration_ms``/``dt_out_ms`` are not used.

    Safe under ``jax.jit``, ``jax.vmap`` and ``jax.grad``; with ``throw=True`` step exhaustion raises
    inside JAX (an ``EqxRuntimeError`` mentioning ``max_steps``).

    ``save`` names the state variables kept at the output times (e.g. ``("V", "Ca")``, or dotted
    paths into a composite's state such as ``("network.V", "intestine")``; default: all).
    Saving only what is used matters: the full C1 Full state is 5 610 numbers, V and Ca 794, so a
    1-s run saved every 0.05 ms holds 900 MB of output in float64 instead of 127 MB.
    """
    cfg = get_solver(solver)
    if ts_ms is None:
        n_out = int(round(duration_ms / dt_out_ms))
        if n_out < 1 or not np.isclose(n_out * dt_out_ms, duration_ms):
            raise ValueError(
                f"duration_ms={duration_ms} must be a positive multiple of dt_out_ms={dt_out_ms}"
            )
    if not isinstance(model, AbstractComponent):
        raise TypeError(f"solve_ys needs an owjax component (AbstractComponent), got {type(model).__name__}")
    if inputs:
        from owjax.core.component import check_inputs

        check_inputs(model, inputs)
    if ts_ms is None:
        ts = jnp.linspace(0.0, duration_ms, n_out + 1, dtype=model.dtype)
        t_start, t_end, t_end_static = jnp.asarray(0.0, model.dtype), jnp.asarray(duration_ms, model.dtype), duration_ms
    else:
        ts = jnp.asarray(ts_ms, model.dtype)
        t_start, t_end, t_end_static = ts[0], ts[-1], None
    term, method = _build(model, cfg)
    y0 = model.initial_state() if y0 is None else y0
    saveat = dfx.SaveAt(ts=ts, dense=dense)
    if save is not None:
        keys = _check_save(save, y0)
        saveat = dfx.SaveAt(ts=ts, fn=functools.partial(_select_state, keys=keys), dense=dense)
    return dfx.diffeqsolve(
        term,
        method,
        t0=t_start,
        t1=t_end,
        dt0=jnp.asarray(cfg.dt_ms, model.dtype),
        y0=y0,
        args=inputs,
        saveat=saveat,
        stepsize_controller=_controller(model, cfg, t_end_static),
        max_steps=cfg.max_steps,
        adjoint=adjoint if adjoint is not None else dfx.RecursiveCheckpointAdjoint(checkpoints=cfg.checkpoints),
        throw=throw,
        progress_meter=dfx.TqdmProgressMeter(refresh_steps=200) if progress else dfx.NoProgressMeter(),
    )


def _state_paths(y, prefix=""):
    out = []
    if isinstance(y, dict):
        for k, v in y.items():
            out.append(prefix + k)
            out += _state_paths(v, prefix + k + ".")
    return out


def _get_path(y, path: str):
    for part in path.split("."):
        y = y[part]
    return y


def _check_save(save: Sequence[str], y0: State) -> tuple[str, ...]:
    keys = (save,) if isinstance(save, str) else tuple(save)
    valid = _state_paths(y0)
    bad = [k for k in keys if k not in valid]
    if bad or not keys:
        raise ValueError(f"save={list(keys)}: unknown or no state variable(s) {bad}; allowed: {valid}")
    return keys


def _select_state(t, y, args, keys):
    out: dict = {}
    for k in keys:
        parts = k.split(".")
        d = out
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = _get_path(y, k)
    return out


@dataclass
class Solution:
    """A finished simulation.

    Attributes:
        t_ms: output times (T,).
        ys: state at the output times, one array (T, …) per state variable (Ca in nM).
        stats: solver statistics (steps, rejected steps, function evaluations).
        wall_time_s: wall time of the solve including compilation; ``compile_time_s`` separately
            (0 when an identical solve was compiled before in this process).
    """

    t_ms: np.ndarray
    ys: dict
    stats: dict[str, Any]
    wall_time_s: float
    compile_time_s: float
    solver: SolverConfig


def solve(
    model: AbstractComponent,
    duration_ms: float,
    dt_out_ms: float = 0.5,
    solver: SolverConfig | str = "tsit5",
    y0: State | None = None,
    progress: bool = False,
    save: Sequence[str] | None = None,
    cache: "CompiledSolves | None" = None,
) -> Solution:
    """Simulate ``model`` for ``duration_ms`` and return the traces as NumPy arrays.

    Arguments:
        model: any component (:class:`owjax.neural.network.NetworkModel`, the intestine, a worm …).
        duration_ms: simulated time (ms).
        dt_out_ms: output interval (ms); the solver's own steps are adaptive.
        solver: preset name or :class:`SolverConfig`.
        y0: initial state (default: the model's NeuroML initial conditions).
        progress: show a progress bar of simulated time.
        save: state variables to keep (e.g. ``("V", "Ca")``); default all (see :func:`solve_ys`).
        cache: compiled-solve cache (default :data:`DEFAULT_COMPILED_SOLVES`).

    Returns:
        A :class:`Solution`.

    Raises:
        SolverStepsExhausted: ``max_steps`` was reached before ``duration_ms``; the message says
            how far the solve got and how to raise the budget.
    """
    cfg = get_solver(solver)
    if not (np.isfinite(duration_ms) and duration_ms > 0):
        raise ValueError(f"duration_ms must be positive and finite, got {duration_ms!r}")
    bad = [p for p in model.parameter_info() if not bool(jnp.all(jnp.isfinite(resolve_path(model, p))))]
    if bad:
        raise ValueError(f"model parameters contain NaN/Inf: {bad[:10]}")

    y0 = model.initial_state() if y0 is None else y0
    save = None if save is None else _check_save(save, y0)
    cache = DEFAULT_COMPILED_SOLVES if cache is None else cache
    compiled, t_comp = cache.get(model, y0, float(duration_ms), float(dt_out_ms), cfg, bool(progress), save)
    t0 = time.perf_counter()
    sol = compiled(model, y0)
    jax.block_until_ready(sol.ys)
    wall = time.perf_counter() - t0 + t_comp
    if sol.result != dfx.RESULTS.successful:
        ts = np.asarray(sol.ts)
        first = np.asarray(jax.tree_util.tree_leaves(sol.ys)[0])
        ok = np.isfinite(first.reshape(first.shape[0], -1)).all(axis=-1)
        reached = float(ts[ok][-1]) if ok.any() else 0.0
        msg = dfx.RESULTS[sol.result] if hasattr(dfx.RESULTS, "__getitem__") else str(sol.result)
        raise SolverStepsExhausted(
            f"solver {cfg.method!r} stopped at t≈{reached:.3f} ms of {duration_ms} ms after "
            f"{int(sol.stats['num_steps'])} steps ({msg}). Raise solver.max_steps (now {cfg.max_steps}), "
            "loosen rtol/atol, or pick a stiff preset (kvaerno5)."
        )
    stats = {k: int(v) for k, v in sol.stats.items() if np.ndim(v) == 0}
    return Solution(
        t_ms=np.asarray(sol.ts, dtype=np.float64),
        ys=jax.tree_util.tree_map(np.asarray, sol.ys),
        stats=stats,
        wall_time_s=wall,
        compile_time_s=t_comp,
        solver=cfg,
    )


class CompiledSolves:
    """An owned cache of ahead-of-time compiled solves, keyed by (structure, shapes, dtypes, settings).

    :func:`solve` uses :data:`DEFAULT_COMPILED_SOLVES` unless given its own ``cache=``; a long-running
    program (a sweep, a server) can hold one per job and :meth:`clear` it.

    Arguments:
        max_entries: compiled solves kept (oldest dropped first).
    """

    def __init__(self, max_entries: int = 32):
        self.max_entries = int(max_entries)
        self._entries: dict = {}

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def get(self, model, y0, duration_ms, dt_out_ms, cfg, progress, save=None):
        """The compiled function and the compile time of this call (0 when cached)."""
        leaves, treedef = jax.tree_util.tree_flatten((model, y0))
        key = (
            treedef,
            tuple((np.shape(x), str(getattr(x, "dtype", type(x)))) for x in leaves),
            duration_ms, dt_out_ms, cfg, progress, save,
        )
        if key in self._entries:
            return self._entries[key], 0.0

        def run(m, y):
            return solve_ys(m, duration_ms, dt_out_ms, cfg, y, progress=progress, throw=False, save=save)

        t0 = time.perf_counter()
        compiled = eqx.filter_jit(run).lower(model, y0).compile()
        t = time.perf_counter() - t0
        if len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = compiled
        return compiled, t


#: the cache :func:`solve` uses by default
DEFAULT_COMPILED_SOLVES = CompiledSolves()

"""``DifferentiableWorm``: neurons + body-wall muscles + intestine as one model (DD017: DD001+DD002+DD009).

One pytree state with named populations::

    {"network":   {"V", "Ca", "gates", "s", "s2"},   # c302 neurons and muscles (ms, mV, nM)
     "intestine": {"V", "Ca", "Ca_ER", "IP3", "h"}}  # 20 intestinal cells (mV, µM)

Time is in ms throughout; the intestine's own vector field is in 1/s and is divided by 1000 here.
The coupling is the DD009 trigger: the Ca of int1 (the anterior-most cell) drives a current into
DVB and AVL (:meth:`owjax.intestine.IntestineOscillator.trigger_current`, 5 pA at full activation,
half-maximal at 0.4 µM). Muscle activation is read out from muscle Ca (DD002, :mod:`owjax.muscles`).

Time scales run from 0.1 ms (the Ca channel's e gate) to ~50 s (the intestinal cycle). Two solve
strategies are provided (:func:`solve_worm`):

* ``"coupled"`` (default) — the whole state in one diffrax solve (explicit Tsit5). Every step is paid
  at the neural step size (~0.25 ms), but the 100 intestinal states add almost nothing to a step of
  the 5600-state network, so this is as fast as the network alone.
* ``"sequential"`` — the intestine is solved first on its own time scale (8 steps per 300 ms instead
  of ~1500), then the network with the int1 trigger current as a known input (the intestine's dense
  output). Nothing feeds back from the neurons to the intestine in this model, so the split is
  exact (a reordering, not an approximation); it agrees with ``"coupled"`` to 1e-3 mV. It is slower
  on a CPU because every network RHS evaluation interpolates the intestine's solution; it is
  the strategy to use when the intestine alone is wanted on its own grid or solver.
  If a feedback path is added later (e.g. the DMP motor output acting on the intestine), only
  ``"coupled"`` is valid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int

from .intestine import IntestineOscillator
from .muscles import MuscleActivation
from .network import NetworkModel
from .solve import SolverConfig, SolverStepsExhausted, get_solver

__all__ = ["DifferentiableWorm", "solve_worm", "WormSolution", "TRIGGER_CELLS"]

#: neurons receiving the intestinal trigger (DD009: the DMP starts from DVB and AVL)
TRIGGER_CELLS = ("DVB", "AVL")


class DifferentiableWorm(eqx.Module):
    """Neurons + muscles (``network``) and the intestine in one differentiable model.

    Attributes:
        network: the c302 network (may be ``None`` for an intestine-only model).
        intestine: the intestinal oscillator (may be ``None``).
        muscles: Ca → activation → force of the body-wall muscles.
        trigger_cells: indices in ``network`` of the cells receiving the int1 trigger current.
    """

    network: NetworkModel | None
    intestine: IntestineOscillator | None
    muscles: MuscleActivation
    trigger_cells: Int[Array, " k"]

    def __init__(self, network=None, intestine=None, muscles=None, trigger_cells=TRIGGER_CELLS):
        if network is None and intestine is None:
            raise ValueError("a DifferentiableWorm needs a network, an intestine, or both")
        self.network = network
        if intestine is not None and network is not None:  # one dtype for the whole state
            dt = network.dtype
            intestine = jax.tree_util.tree_map(
                lambda x: x.astype(dt) if eqx.is_inexact_array(x) else x, intestine
            )
        self.intestine = intestine
        self.muscles = MuscleActivation() if muscles is None else muscles
        if network is not None and intestine is not None:
            missing = [c for c in trigger_cells if c not in network.cell_names]
            if missing:
                raise ValueError(
                    f"trigger cells {missing} are not in the network {network.name!r}; the intestine "
                    "needs DVB and AVL (use network=full, or network.cells including them)"
                )
            self.trigger_cells = jnp.asarray([network.index(c) for c in trigger_cells], dtype=jnp.int32)
        else:
            self.trigger_cells = jnp.zeros((0,), jnp.int32)

    @property
    def dtype(self):
        return self.network.dtype if self.network is not None else jnp.result_type(float)

    def initial_state(self) -> dict:
        y = {}
        if self.network is not None:
            y["network"] = self.network.initial_state()
        if self.intestine is not None:
            y["intestine"] = {k: jnp.asarray(v, self.dtype) for k, v in self.intestine.initial_state().items()}
        return y

    def trigger_current(self, ca_int1_uM) -> Array:
        """Current (pA) into each trigger cell from the int1 Ca (µM)."""
        return self.intestine.trigger_current(ca_int1_uM)

    def _network_field(self, t, y_net, i_trigger):
        n = self.network.n_cells
        i_ext = jnp.zeros((n,), y_net["V"].dtype).at[self.trigger_cells].add(i_trigger)
        return self.network.vector_field(t, y_net, {"i_ext_pA": i_ext})

    def intestine_field(self, t, y_int: dict) -> dict:
        """d/dt of the intestine per ms (its own field is per s)."""
        d = self.intestine.vector_field(t / 1000.0, y_int)
        return jax.tree_util.tree_map(lambda v: v / 1000.0, d)

    def vector_field(self, t, y: dict, args=None) -> dict:
        """d/dt of the whole worm (per ms)."""
        out = {}
        if self.intestine is not None:
            out["intestine"] = self.intestine_field(t, y["intestine"])
        if self.network is not None:
            if self.intestine is not None:
                i_trig = self.trigger_current(y["intestine"]["Ca"][0])
                out["network"] = self._network_field(t, y["network"], i_trig)
            else:
                out["network"] = self.network.vector_field(t, y["network"], args)
        return out


def _saved(t, y, args):
    """What is kept at the output times: V and Ca of the network (not gates or synaptic states, which
    would multiply the memory of a 200-s run by 14), everything of the intestine."""
    out = dict(y)
    if "network" in y:
        out["network"] = {"V": y["network"]["V"], "Ca": y["network"]["Ca"]}
    return out


@dataclass
class WormSolution:
    """Output of :func:`solve_worm`: times (ms) and per-population state arrays (T, …)."""

    t_ms: np.ndarray
    network: dict[str, np.ndarray] | None
    intestine: dict[str, np.ndarray] | None  #: rows (T, 20): V mV, Ca/Ca_ER/IP3 µM, h
    stats: dict
    wall_time_s: float
    strategy: str


def _check(sol, what, max_steps):
    if sol.result != dfx.RESULTS.successful:
        raise SolverStepsExhausted(
            f"{what}: the solver stopped early after {int(sol.stats['num_steps'])} steps "
            f"(max_steps={max_steps}); raise solver.max_steps"
        )


def solve_worm(
    worm: DifferentiableWorm,
    duration_ms: float,
    dt_out_ms: float = 10.0,
    solver: SolverConfig | str = "tsit5",
    strategy: str = "coupled",
    intestine_dt_out_ms: float | None = None,
    progress: bool = False,
) -> WormSolution:
    """Simulate the whole worm.

    Arguments:
        worm: the model.
        duration_ms: simulated time (ms); the intestine needs ≥ 150 000 ms for 3 cycles.
        dt_out_ms: output interval of the network (ms).
        solver: preset or :class:`~owjax.solve.SolverConfig` for the network (and the coupled solve).
        strategy: ``"coupled"`` (default) or ``"sequential"`` (exact for the one-way coupling).
        intestine_dt_out_ms: output interval of the intestine (default ``max(dt_out_ms, 100)``).
        progress: progress bar.

    Returns:
        A :class:`WormSolution`.
    """
    if strategy not in ("sequential", "coupled"):
        raise ValueError(f"strategy must be 'sequential' or 'coupled', got {strategy!r}")
    cfg = get_solver(solver)
    n_out = int(round(duration_ms / dt_out_ms))
    if n_out < 1 or not np.isclose(n_out * dt_out_ms, duration_ms):
        raise ValueError(f"duration_ms={duration_ms} must be a positive multiple of dt_out_ms={dt_out_ms}")
    dtype = worm.dtype
    ts = jnp.linspace(0.0, duration_ms, n_out + 1, dtype=dtype)
    meter = dfx.TqdmProgressMeter(refresh_steps=500) if progress else dfx.NoProgressMeter()
    t0 = time.perf_counter()
    y0 = worm.initial_state()
    stats: dict = {}
    if strategy == "coupled" or worm.intestine is None or worm.network is None:
        jumps = [t for t in (worm.network.stimulus_times_ms if worm.network is not None else ()) if 0 < t < duration_ms]

        @eqx.filter_jit
        def run(w, y0):
            return dfx.diffeqsolve(
                dfx.ODETerm(w.vector_field), dfx.Tsit5() if cfg.method == "tsit5" else dfx.Dopri5(),
                jnp.asarray(0.0, dtype), jnp.asarray(duration_ms, dtype), jnp.asarray(cfg.dt_ms, dtype), y0,
                saveat=dfx.SaveAt(ts=ts, fn=_saved),
                stepsize_controller=dfx.PIDController(rtol=cfg.rtol, atol=cfg.atol,
                                                      jump_ts=jnp.asarray(jumps, dtype) if jumps else None),
                max_steps=cfg.max_steps if worm.network is not None else 100_000,
                throw=False, progress_meter=meter,
            )

        sol = run(worm, y0)
        jax.block_until_ready(sol.ys)
        _check(sol, "whole-worm solve", cfg.max_steps)
        stats["num_steps"] = int(sol.stats["num_steps"])
        net = {k: np.asarray(v) for k, v in sol.ys["network"].items()} if "network" in sol.ys else None
        intest = {k: np.asarray(v) for k, v in sol.ys["intestine"].items()} if "intestine" in sol.ys else None
        t_out = np.asarray(sol.ts, np.float64)
        return WormSolution(t_out, net, intest, stats, time.perf_counter() - t0, strategy if worm.network is not None and worm.intestine is not None else "single")

    # ---- sequential: intestine first (its own time scale), then the network with the trigger input
    idt = intestine_dt_out_ms or max(dt_out_ms, 100.0)
    n_int = int(round(duration_ms / idt))
    ts_int = jnp.linspace(0.0, duration_ms, n_int + 1, dtype=dtype)

    @eqx.filter_jit
    def run_intestine(w, y0):
        f = lambda t, y, a: w.intestine_field(t, y)  # noqa: E731
        return dfx.diffeqsolve(
            dfx.ODETerm(f), dfx.Tsit5(), jnp.asarray(0.0, dtype), jnp.asarray(duration_ms, dtype),
            jnp.asarray(10.0, dtype), y0["intestine"],
            saveat=dfx.SaveAt(ts=ts_int, dense=True),
            stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-8),
            max_steps=1_000_000, throw=False,
        )

    isol = run_intestine(worm, y0)
    jax.block_until_ready(isol.ys)
    _check(isol, "intestine solve", 1_000_000)
    stats["intestine_num_steps"] = int(isol.stats["num_steps"])
    jumps = [t for t in worm.network.stimulus_times_ms if 0 < t < duration_ms]

    @eqx.filter_jit
    def run_network(w, y0, isol):
        def f(t, y, a):
            ca1 = isol.evaluate(t)["Ca"][0]
            return w._network_field(t, y, w.trigger_current(ca1))

        return dfx.diffeqsolve(
            dfx.ODETerm(f), dfx.Tsit5() if cfg.method == "tsit5" else dfx.Dopri5(),
            jnp.asarray(0.0, dtype), jnp.asarray(duration_ms, dtype), jnp.asarray(cfg.dt_ms, dtype),
            y0["network"], saveat=dfx.SaveAt(ts=ts, fn=lambda t, y, a: _saved(t, {"network": y}, a)["network"]),
            stepsize_controller=dfx.PIDController(rtol=cfg.rtol, atol=cfg.atol,
                                                  jump_ts=jnp.asarray(jumps, dtype) if jumps else None),
            max_steps=cfg.max_steps, throw=False, progress_meter=meter,
        )

    nsol = run_network(worm, y0, isol)
    jax.block_until_ready(nsol.ys)
    _check(nsol, "network solve", cfg.max_steps)
    stats["network_num_steps"] = int(nsol.stats["num_steps"])
    # intestine on the network's output grid too (cheap: dense interpolation)
    intest = {k: np.asarray(v) for k, v in jax.vmap(isol.evaluate)(ts).items()}
    return WormSolution(np.asarray(ts, np.float64), {k: np.asarray(v) for k, v in nsol.ys.items()}, intest,
                        stats, time.perf_counter() - t0, "sequential")

"""``DifferentiableWorm``: neurons + body-wall muscles + intestine as one model (DD017: DD001+DD002+DD009).

One pytree state with named populations::

    {"network":   {"V", "Ca", "gates", "s", "s2"},   # c302 neurons and muscles (ms, mV, nM)
     "intestine": {"V", "Ca", "Ca_ER", "IP3", "h"}}  # 20 intestinal cells (mV, µM)

The worm is a component (:mod:`owjax.core.component`): a :class:`~owjax.core.component.Composite`
of the network and the intestine joined by the :class:`IntestinalTrigger` coupling, solved by the one
solve of :mod:`owjax.core.solve` (and differentiable through :func:`owjax.core.solve.solve_ys`).
Time is in ms throughout; the intestine's own time unit (s) is rescaled by the composite.
The coupling is the DD009 trigger: the Ca of int1 (the anterior-most cell) drives a current into
DVB and AVL (:meth:`owjax.organs.intestine.IntestineOscillator.trigger_current`, 5 pA at full activation,
half-maximal at 0.4 µM). Muscle activation is read out from muscle Ca (DD002, :mod:`owjax.organs.muscles`).

Time scales run from 0.1 ms (the Ca channel's e gate) to ~50 s (the intestinal cycle). Two solve
strategies are provided (:func:`solve_worm`):

* ``"coupled"`` (default) — the whole state in one solve (:func:`owjax.core.solve.solve`, with the
  preset exactly as named). Every step is paid
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
* ``"multirate"`` — as ``"sequential"`` (the intestine on its own step sequence, seconds), but the
  network reads the int1 trigger current from a uniform grid (``coupling_dt_ms``, default 1 ms)
  with linear interpolation, which costs one index computation per network evaluation. With the
  ``exponential`` preset the network at rest takes steps of seconds, so the worm's cost is the
  cost of its activity. The grid adds an interpolation error of order (grid step / intestinal
  time scale)²; measured against ``"coupled"`` in ``docs/speed.md``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from owjax.core.component import AbstractComponent, AbstractSource, AbstractCoupling, Composite, ParameterInfo, StateVariable
from owjax.core.solve import SolverConfig, get_solver, solve, solve_ys
from owjax.organs.intestine import IntestineOscillator
from owjax.organs.muscles import MuscleActivation
from owjax.neural.network import NetworkModel

__all__ = ["DifferentiableWorm", "IntestinalTrigger", "IntestineTrace", "SampledTrigger", "solve_worm", "WormSolution",
           "TRIGGER_CELLS"]

#: neurons receiving the intestinal trigger (DD009: the DMP starts from DVB and AVL)
TRIGGER_CELLS = ("DVB", "AVL")


class IntestinalTrigger(AbstractCoupling):
    """int1 Ca → trigger current (pA) into the trigger cells of the network (DD009).

    The current itself is the intestine's output ``trigger_pA`` (its threshold, width and maximum
    are intestine parameters); this coupling places it on the trigger cells.
    """

    cells: Int[Array, " k"]
    n_cells: int = eqx.field(static=True)
    source: str = eqx.field(static=True)
    target: str = eqx.field(static=True)
    target_input: str = eqx.field(static=True)

    def __init__(self, cells, n_cells: int, source: str = "intestine", target: str = "network"):
        self.cells = jnp.asarray(cells, jnp.int32)
        self.n_cells = int(n_cells)
        self.source, self.target, self.target_input = source, target, "i_ext_pA"

    def __call__(self, t, source_outputs):
        i = source_outputs["trigger_pA"]
        return jnp.zeros((self.n_cells,), i.dtype).at[self.cells].add(i)


class IntestineTrace(AbstractSource):
    """A solved intestine replayed as a stateless component (its dense output), for the
    ``sequential`` strategy: outputs ``trigger_pA`` and ``Ca_uM`` at any time (ms)."""

    solution: eqx.Module
    intestine: IntestineOscillator

    def outputs(self, t, state) -> dict[str, Array]:
        ca = self.solution.evaluate(t)["Ca"]
        return {"Ca_uM": ca, "trigger_pA": self.intestine.trigger_current(ca[0])}

    def parameter_info(self) -> dict[str, ParameterInfo]:
        return {}


class SampledTrigger(AbstractSource):
    """The intestine's trigger current sampled on a uniform time grid, replayed by linear
    interpolation (the ``multirate`` strategy): output ``trigger_pA`` at any time (ms).

    Arguments:
        trigger_pA: the current at ``t0_ms + k·dt_ms``, k = 0…K−1 (pA).
        t0_ms, dt_ms: the grid (ms); times outside it are clamped to its ends.
    """

    trigger_pA: Float[Array, " k"]
    t0_ms: float = eqx.field(static=True)
    dt_ms: float = eqx.field(static=True)

    def outputs(self, t, state) -> dict[str, Array]:
        n = self.trigger_pA.shape[0]
        x = jnp.clip((t - self.t0_ms) / self.dt_ms, 0.0, n - 1.0)
        k = jnp.clip(jnp.floor(x).astype(jnp.int32), 0, n - 2)
        w = x - k
        return {"trigger_pA": (1.0 - w) * self.trigger_pA[k] + w * self.trigger_pA[k + 1]}

    def parameter_info(self) -> dict[str, ParameterInfo]:
        return {}


class DifferentiableWorm(AbstractComponent):
    """Neurons + muscles (``network``) and the intestine as one component.

    Arguments:
        network: the c302 network (may be ``None`` for an intestine-only model).
        intestine: the intestinal oscillator (may be ``None``).
        body: the body (:class:`owjax.body.RodBody`, may be ``None``); needs the network, whose muscle
            Ca drives it through :class:`owjax.body.drive.C302MusclesToBody`.
        muscles: Ca → activation → force of the body-wall muscles.
        trigger_cells: names of the network cells receiving the int1 trigger current.

    The state is ``{"network": …, "intestine": …}`` (whichever are present); parameters are
    reached as ``worm.organs.components["network"]…`` (``worm.network`` and ``worm.intestine`` are
    shortcuts).
    """

    organs: Composite
    muscles: MuscleActivation

    def __init__(self, network=None, intestine=None, muscles=None, trigger_cells=TRIGGER_CELLS, body=None):
        if network is None and intestine is None:
            raise ValueError("a DifferentiableWorm needs a network, an intestine, or both")
        components: dict[str, AbstractComponent] = {}
        couplings = []
        if network is not None:
            components["network"] = network
        if intestine is not None:
            if network is not None:  # one dtype for the whole state
                dt = network.dtype
                intestine = jax.tree_util.tree_map(
                    lambda x: x.astype(dt) if eqx.is_inexact_array(x) else x, intestine
                )
            components["intestine"] = intestine
        if network is not None and intestine is not None:
            missing = [c for c in trigger_cells if c not in network.cell_names]
            if missing:
                raise ValueError(
                    f"trigger cells {missing} are not in the network {network.name!r}; the intestine "
                    "needs DVB and AVL (use network=full, or network.cells including them)"
                )
            cells = jnp.asarray([network.index(c) for c in trigger_cells], dtype=jnp.int32)
            couplings.append(IntestinalTrigger(cells, network.n_cells))
        self.muscles = MuscleActivation() if muscles is None else muscles
        if body is not None:
            if network is None:
                raise ValueError("a body needs the network: c302's muscles drive it")
            from owjax.body.drive import C302MusclesToBody

            rows = [i for i, c in enumerate(network.cell_names) if network.muscle_mask[i]]
            if not rows:
                raise ValueError(f"the network {network.name!r} has no body-wall muscles to drive the body "
                                 "(use network=full or network=muscles)")
            body = jax.tree_util.tree_map(lambda x: x.astype(network.dtype) if eqx.is_inexact_array(x) else x, body)
            components["body"] = body
            couplings.append(C302MusclesToBody(rows, [network.cell_names[i] for i in rows],
                                               max_ca_mM=float(self.muscles.max_ca_mM), dtype=network.dtype))
        self.organs = Composite(components, couplings)

    # ---------------------------------------------------------------- views
    @property
    def network(self) -> NetworkModel | None:
        return self.organs.components.get("network")

    @property
    def intestine(self) -> IntestineOscillator | None:
        return self.organs.components.get("intestine")

    @property
    def body(self):
        return self.organs.components.get("body")

    @property
    def dtype(self):
        return self.organs.dtype

    # ---------------------------------------------------------------- component protocol
    def initial_state(self) -> dict:
        return self.organs.initial_state()

    def vector_field(self, t, y: dict, inputs=None) -> dict:
        """d/dt of the whole worm (per ms)."""
        return self.organs.vector_field(t, y, inputs)

    def outputs(self, t, y) -> dict[str, Array]:
        out = self.organs.outputs(t, y)
        if "network.Ca_mM" in out:
            out["network.muscle_activation"] = self.muscles.activation(out["network.Ca_mM"])
        return out

    @property
    def input_names(self) -> dict[str, str]:
        return self.organs.input_names

    def jump_times(self) -> tuple[float, ...]:
        return self.organs.jump_times()

    def state_variables(self) -> dict[str, StateVariable]:
        return self.organs.state_variables()

    def parameter_info(self) -> dict[str, ParameterInfo]:
        out = {f"organs.{k}": ParameterInfo(f"organs.{k}", v.unit, v.bounds, v.rows, v.description,
                                            v.bounds_source, v.trainable)
               for k, v in self.organs.parameter_info().items()}
        out["muscles.max_ca_mM"] = ParameterInfo("muscles.max_ca_mM", "mM", (0.0, float("inf")), "global",
                                                 "Ca at which muscle activation saturates (DD002)")
        out["muscles.max_force"] = ParameterInfo("muscles.max_force", "1", (0.0, float("inf")), "global",
                                                 "muscle force at full activation (Sibernetic units)")
        return out

    def trigger_current(self, ca_int1_uM) -> Array:
        """Current (pA) into each trigger cell from the int1 Ca (µM)."""
        return self.intestine.trigger_current(ca_int1_uM)


@dataclass
class WormSolution:
    """Output of :func:`solve_worm`: times (ms) and per-population state arrays (T, …)."""

    t_ms: np.ndarray
    network: dict[str, np.ndarray] | None
    intestine: dict[str, np.ndarray] | None  #: rows (T, 20): V mV, Ca/Ca_ER/IP3 µM, h
    stats: dict
    wall_time_s: float
    strategy: str
    compile_time_s: float = 0.0
    body: dict[str, np.ndarray] | None = None  #: x, y (mm), phi (rad), (T, 49)


#: the intestine's own solve in the sequential strategy (its time scale is seconds)
INTESTINE_SOLVER = SolverConfig("tsit5", rtol=1e-6, atol=1e-8, dt_ms=10.0, max_steps=20_000)


def _saved(worm: DifferentiableWorm) -> tuple[str, ...]:
    """What is kept at the output times: V and Ca of the network (not gates or synaptic states, which
    would multiply the memory of a 200-s run by 14), everything of the intestine."""
    keys = []
    if worm.network is not None:
        keys += ["network.V", "network.Ca"]
    if worm.intestine is not None:
        keys.append("intestine")
    if worm.body is not None:
        keys.append("body")
    return tuple(keys)


def solve_worm(
    worm: DifferentiableWorm,
    duration_ms: float,
    dt_out_ms: float = 10.0,
    solver: SolverConfig | str = "tsit5",
    strategy: str = "coupled",
    intestine_dt_out_ms: float | None = None,
    progress: bool = False,
    coupling_dt_ms: float = 1.0,
) -> WormSolution:
    """Simulate the whole worm (NumPy traces; for gradients use :func:`owjax.core.solve.solve_ys`).

    Arguments:
        worm: the model.
        duration_ms: simulated time (ms); the intestine needs ≥ 150 000 ms for 3 cycles.
        dt_out_ms: output interval (ms).
        solver: preset or :class:`~owjax.core.solve.SolverConfig`, used exactly as named for the
            whole worm (``coupled``) or the network (``sequential``).
        strategy: ``"coupled"`` (default), ``"sequential"`` (exact for the one-way coupling) or
            ``"multirate"`` (intestine on its own steps, trigger replayed from a grid; see the
            module docstring).
        intestine_dt_out_ms: output interval of the intestine's own solve in ``sequential``
            (default ``max(dt_out_ms, 100)``).
        progress: progress bar.
        coupling_dt_ms: grid step of the trigger current in ``multirate`` (ms); the duration
            must be a multiple of it.

    Returns:
        A :class:`WormSolution`.
    """
    if strategy not in ("sequential", "coupled", "multirate"):
        raise ValueError(f"strategy must be 'coupled', 'sequential' or 'multirate', got {strategy!r}")
    if not (np.isfinite(coupling_dt_ms) and coupling_dt_ms > 0):
        raise ValueError(f"coupling_dt_ms must be a positive number of ms, got {coupling_dt_ms!r}")
    cfg = get_solver(solver)
    t0 = time.perf_counter()
    both = worm.network is not None and worm.intestine is not None
    if strategy in ("sequential", "multirate") and worm.body is not None and both:
        raise ValueError(f"strategy={strategy!r} replays the intestine into the network only; with a body use 'coupled'")
    if strategy == "coupled" or not both:
        sol = solve(worm, duration_ms, dt_out_ms, cfg, progress=progress, save=_saved(worm))
        return WormSolution(sol.t_ms, sol.ys.get("network"), sol.ys.get("intestine"),
                            {"num_steps": int(sol.stats["num_steps"])}, time.perf_counter() - t0,
                            strategy if both else "single", sol.compile_time_s, sol.ys.get("body"))

    if strategy == "multirate":
        return _solve_multirate(worm, duration_ms, dt_out_ms, cfg, coupling_dt_ms, progress, t0)

    # ---- sequential: intestine first (its own time scale), then the network with the trigger input
    idt = intestine_dt_out_ms or max(dt_out_ms, 100.0)
    intestine_solve = eqx.filter_jit(
        lambda m: solve_ys(m, duration_ms, idt, INTESTINE_SOLVER, dense=True, throw=True)
    )
    isol = intestine_solve(worm.intestine)
    trace = IntestineTrace(isol, worm.intestine)
    replay = Composite({"network": worm.network, "intestine": trace}, worm.organs.couplings)
    nsol = solve(replay, duration_ms, dt_out_ms, cfg, progress=progress, save=("network.V", "network.Ca"))
    ts = jnp.asarray(nsol.t_ms, worm.dtype)
    intest = {k: np.asarray(v) for k, v in jax.vmap(isol.evaluate)(ts).items()}
    stats = {"intestine_num_steps": int(isol.stats["num_steps"]), "network_num_steps": int(nsol.stats["num_steps"])}
    return WormSolution(nsol.t_ms, nsol.ys["network"], intest, stats, time.perf_counter() - t0, "sequential",
                        nsol.compile_time_s)


def _solve_multirate(worm, duration_ms, dt_out_ms, cfg, coupling_dt_ms, progress, t_start):
    """Intestine on its own step sequence; network with the trigger read from a uniform grid."""
    n_grid = int(round(duration_ms / coupling_dt_ms))
    if n_grid < 1 or not np.isclose(n_grid * coupling_dt_ms, duration_ms):
        raise ValueError(f"multirate: duration_ms={duration_ms} must be a multiple of coupling_dt_ms={coupling_dt_ms}")
    intestine = worm.intestine

    @eqx.filter_jit
    def intestine_solve(m):
        fine = solve_ys(m, duration_ms, coupling_dt_ms, INTESTINE_SOLVER, throw=True, save=("Ca",))
        out = solve_ys(m, duration_ms, dt_out_ms, INTESTINE_SOLVER, throw=True)
        return out.ys, m.trigger_current(fine.ys["Ca"][:, 0]), fine.stats["num_steps"]

    iys, trig, isteps = intestine_solve(intestine)
    trace = SampledTrigger(trig, 0.0, float(coupling_dt_ms))
    replay = Composite({"network": worm.network, "intestine": trace}, worm.organs.couplings)
    nsol = solve(replay, duration_ms, dt_out_ms, cfg, progress=progress, save=("network.V", "network.Ca"))
    intest = {k: np.asarray(v) for k, v in iys.items()}
    stats = {"intestine_num_steps": int(isteps), "network_num_steps": int(nsol.stats["num_steps"]),
             "num_steps": int(nsol.stats["num_steps"])}
    return WormSolution(nsol.t_ms, nsol.ys["network"], intest, stats, time.perf_counter() - t_start, "multirate",
                        nsol.compile_time_s)

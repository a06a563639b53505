"""The Randi et al. 2023 stimulation protocol in simulation: stimulate one neuron, read every other.

In the atlas, neuron *j* is activated optogenetically and the calcium (GCaMP ΔF/F) of every
other imaged neuron *i* is summarised as one number, the mean response ``dFF[i, j]``. Here a square
current pulse into *j* stands in for the optogenetic drive, and the response of *i* is turned into
the same kind of statistic:

``response[j, i] = mean over the window of (x_i(t) − x_i(0)) / scale``

* ``x`` is the readout: ``"ca"`` — intracellular Ca (the solver's nM); ``"v"`` — membrane
  potential (mV).
* ``x_i(0)`` is the resting value: every run starts from the same resting state, computed once by
  simulating the unstimulated network for ``settle_ms`` (:func:`resting_state`).
* ``scale`` makes the number dimensionless, as ΔF/F is. c302's resting Ca is ≈ 7e-7 nM, i.e. zero,
  so a ratio to the baseline (ΔF/F₀ proper) is meaningless; instead the response is divided by a
  fixed reference (``ca_scale_nM`` or ``v_scale_mV``). With an indicator whose baseline
  fluorescence is F_min at zero Ca, ΔF/F₀ = (F_max/F_min − 1)·Ca/(Ca + K_d) — linear in Ca for
  Ca ≪ K_d — so a linear, scaled ΔCa is the ΔF/F of an unsaturated indicator up to a constant
  factor. Losses and metrics that compare with the atlas are scale-invariant (Pearson r, sign,
  or an MSE after the best scale factor), so the reference only sets the units.
* Ca cannot fall below its (zero) resting level in c302, so a Ca readout can never produce the
  *negative* responses (inhibition) the atlas reports for ~13 % of its significant pairs; the
  ``"v"`` readout can. This is a limit of the model's Ca dynamics, not of the protocol.

The window mean rather than the peak: the atlas' dFF is a mean over a post-stimulus window, and a
mean of saved samples is smooth in the parameters (a peak is not).

Batching: the stimulated neurons are run one after another inside one compiled function
(``jax.lax.map``; ``chunk`` > 1 vmaps chunks). On the 2-core CPU owjax is developed on, a ``vmap``
of 8 adaptive solves takes 2–3× longer than running them in sequence (every member runs the
slowest member's steps, and batched gathers/scatters are slow in XLA:CPU), so sequential is the
default; on a GPU a larger ``chunk`` is the better choice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from owjax.neural.network import NetworkModel, State
from owjax.core.solve import SolverConfig, get_solver, solve_ys
from owjax.neural.spec import NetworkSpec, PulseInput, is_body_wall_muscle

__all__ = [
    "AtlasProtocol",
    "protocol_model",
    "resting_state",
    "settled_state",
    "stimulus_amplitudes",
    "simulate_responses",
    "simulate_traces",
    "readout_signal",
    "responses_jit",
    "READOUTS",
]

READOUTS = ("ca", "v")


@dataclass(frozen=True)
class AtlasProtocol:
    """How a stimulation trial is simulated and summarised.

    Attributes:
        amplitude_pA: the current pulse into the stimulated neuron (10 pA drives a c302 C1 neuron
            to spike; ~3 pA stays subthreshold).
        stim_delay_ms, stim_duration_ms: the pulse, relative to the start of the trial.
        duration_ms: simulated time of a trial.
        dt_out_ms: output grid (the response statistic is a mean over these samples).
        window_ms: (start, end) of the response window; ``end=None`` = end of the trial.
        readout: ``"ca"`` or ``"v"`` (see the module docstring).
        ca_scale_nM, v_scale_mV: reference scales that make the response dimensionless.
        settle_ms: length of the unstimulated run that gives the resting state.
        solver: diffrax solver settings (Tsit5, tolerances, ``max_steps``). Keep rtol = atol = 1e-6:
            at 1e-4 the forward responses agree to ~0.2 % but the gradients through the adaptive step
            controller explode (|∂/∂w| ~ 1e11 instead of ~20 on a spiking trial; fixed-step Heun at
            0.05 ms and Tsit5 at 1e-6 agree with each other).
        chunk: stimulated neurons vmapped together inside the sequential map (1 = sequential).
        checkpoints: checkpoints of the gradient's ``RecursiveCheckpointAdjoint`` (None: diffrax's
            default, O(log max_steps) memory; more checkpoints = less recomputation).
        adjoint: how a trial's gradient is taken: ``"diffrax"`` (its reverse mode, with
            ``checkpoints``) or ``"discrete"`` (:mod:`owjax.core.discrete_adjoint`: the same gradient,
            cheaper on C1 Full: 3.0 s against 3.75 s for four 150-ms trials; stores every accepted
            step, up to ``discrete_max_steps`` of them per trial, ≈ 90 MB each for C1 Full in float32).
        discrete_max_steps: the most steps a trial may take with ``adjoint="discrete"`` (a 150-ms
            C1 Full trial takes ≈ 1 000); exceeding it is an error, as with ``solver.max_steps``.
    """

    amplitude_pA: float = 10.0
    stim_delay_ms: float = 0.0
    stim_duration_ms: float = 100.0
    duration_ms: float = 150.0
    dt_out_ms: float = 5.0
    window_ms: tuple[float, float | None] = (0.0, None)
    readout: str = "ca"
    ca_scale_nM: float = 0.1
    v_scale_mV: float = 10.0
    settle_ms: float = 2000.0
    solver: SolverConfig = field(default_factory=lambda: SolverConfig("tsit5", rtol=1e-6, atol=1e-6, max_steps=20_000))
    chunk: int = 1
    checkpoints: int | None = None
    adjoint: str = "diffrax"
    discrete_max_steps: int = 4096

    def __post_init__(self):
        if self.readout not in READOUTS:
            from owjax.neural.spec import unknown_name_message

            raise ValueError(unknown_name_message("readout", self.readout, READOUTS))
        for k in ("duration_ms", "dt_out_ms", "ca_scale_nM", "v_scale_mV", "settle_ms"):
            v = getattr(self, k)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"AtlasProtocol.{k} must be positive and finite, got {v!r}")
        if self.chunk < 1:
            raise ValueError(f"AtlasProtocol.chunk must be >= 1, got {self.chunk}")
        if self.adjoint not in ("diffrax", "discrete"):
            raise ValueError(f"AtlasProtocol.adjoint must be 'diffrax' or 'discrete', got {self.adjoint!r}")
        if self.discrete_max_steps < 1:
            raise ValueError(f"AtlasProtocol.discrete_max_steps must be >= 1, got {self.discrete_max_steps}")
        lo, hi = self.window_ms
        hi = self.duration_ms if hi is None else hi
        if not (0 <= lo < hi <= self.duration_ms):
            raise ValueError(f"window_ms={self.window_ms} must lie inside [0, duration_ms={self.duration_ms}]")

    @classmethod
    def from_dict(cls, d: dict | None) -> "AtlasProtocol":
        d = dict(d or {})
        if "solver" in d:
            d["solver"] = get_solver(d["solver"])
        if "window_ms" in d:
            d["window_ms"] = tuple(d["window_ms"])
        fields = set(cls.__dataclass_fields__)
        bad = sorted(set(d) - fields)
        if bad:
            raise ValueError(f"unknown protocol option(s) {bad}; allowed: {sorted(fields)}")
        return cls(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["window_ms"] = list(self.window_ms)
        return d

    @property
    def window_index(self) -> tuple[int, int]:
        """Slice of the output samples (0 … duration/dt_out) averaged by the statistic."""
        lo, hi = self.window_ms
        hi = self.duration_ms if hi is None else hi
        return int(round(lo / self.dt_out_ms)), int(round(hi / self.dt_out_ms)) + 1

    @property
    def scale(self) -> float:
        return self.ca_scale_nM if self.readout == "ca" else self.v_scale_mV

    def with_(self, **kw) -> "AtlasProtocol":
        return replace(self, **kw)


def protocol_model(spec: NetworkSpec, protocol: AtlasProtocol, dtype=jnp.float32, neurons_only: bool = True) -> NetworkModel:
    """The network prepared for the protocol: one (zero-amplitude) pulse row per cell, in cell order.

    Arguments:
        spec: the network (e.g. ``load_c302_network("C1", "Full")``).
        protocol: gives the pulse timing.
        dtype: parameter dtype (float32 is ~2× faster; see DESIGN.md for its error).
        neurons_only: drop body-wall muscles (they do not feed back onto neurons in c302).

    Returns:
        A :class:`~owjax.neural.network.NetworkModel` whose ``stimuli.cell`` is ``arange(n_cells)``, so a
        trial is set by one amplitude vector (:func:`stimulus_amplitudes`).
    """
    if neurons_only:
        spec = spec.subset([c for c in spec.cell_names if not is_body_wall_muscle(c)], name=spec.name)
    inputs = [PulseInput(c, protocol.stim_delay_ms, protocol.stim_duration_ms, 0.0, id="atlas_stim")
              for c in spec.cell_names]
    return NetworkModel.from_spec(spec.with_inputs(inputs), dtype)


def _check_protocol_model(model: NetworkModel) -> None:
    n = model.n_cells
    cell = model.stimuli.cell
    bad = cell.shape != (n,)
    if not bad and not isinstance(cell, jax.core.Tracer):
        bad = not np.array_equal(np.asarray(cell), np.arange(n))
    if bad:
        raise ValueError("the model has not been prepared with protocol_model() (one pulse row per cell needed)")


def stimulus_amplitudes(model: NetworkModel, stimulated, amplitude_pA: float) -> jnp.ndarray:
    """(S, N) amplitude matrix: ``amplitude_pA`` into ``stimulated[s]`` in trial ``s``.

    ``stimulated`` may be cell names or indices.
    """
    idx = np.array([model.index(s) if isinstance(s, str) else int(s) for s in stimulated], dtype=int)
    amps = np.zeros((len(idx), model.n_cells))
    amps[np.arange(len(idx)), idx] = amplitude_pA
    return jnp.asarray(amps, dtype=model.dtype)


def _no_stimulus(model: NetworkModel) -> NetworkModel:
    return eqx.tree_at(lambda m: m.stimuli.amplitude_pA, model, jnp.zeros_like(model.stimuli.amplitude_pA))


def resting_state(model: NetworkModel, protocol: AtlasProtocol) -> State:
    """The state after ``settle_ms`` without stimulus (from NeuroML's initial conditions).

    c302 C1 neurons settle at ≈ −58 mV with Ca ≈ 7e-7 nM; there synaptic activations are ≈ 1e-5, so
    the resting state hardly depends on the synaptic weights (a fit may reuse the c302 resting state;
    evaluations recompute it).
    """
    return _rest_fn(protocol.settle_ms, protocol.solver)(_no_stimulus(model))


def settled_state(model: NetworkModel, start: State, protocol: AtlasProtocol) -> State:
    """The state after ``protocol.settle_ms`` without stimulus from ``start``, as a constant for
    differentiation (the gradient is stopped: nothing flows through the settling). Pure JAX, for use
    inside a loss: a fit that changes the network can start its trials from the network's own
    resting state instead of a fixed one. If the settling runs out of solver steps (an oscillating
    network), the last state saved before that is returned (saved every ``settle_ms`` / 10)."""
    frozen = jax.tree.map(lambda x: jax.lax.stop_gradient(x) if eqx.is_inexact_array(x) else x,
                          _no_stimulus(model))
    start = jax.tree.map(jax.lax.stop_gradient, start)
    sol = solve_ys(frozen, protocol.settle_ms, protocol.settle_ms / 10.0, protocol.solver, y0=start, throw=False)
    ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x), axis=tuple(range(1, x.ndim))) for x in jax.tree.leaves(sol.ys)]), 0)
    last = jnp.max(jnp.where(ok, jnp.arange(ok.shape[0]), 0))
    return jax.tree.map(lambda x: x[last], sol.ys)


@lru_cache(maxsize=8)
def _rest_fn(settle_ms: float, solver: SolverConfig):
    @eqx.filter_jit
    def run(m):
        sol = solve_ys(m, settle_ms, settle_ms / 10.0, solver)
        return jax.tree.map(lambda x: x[-1], sol.ys)

    return run


def readout_signal(ys: State, readout: str) -> jnp.ndarray:
    """(T, N) readout from a solution's states."""
    return ys["Ca"] if readout == "ca" else ys["V"]


def _adjoint(protocol: AtlasProtocol):
    if protocol.checkpoints is None:
        return dfx.RecursiveCheckpointAdjoint()
    return dfx.RecursiveCheckpointAdjoint(checkpoints=int(protocol.checkpoints))


def _trial(model: NetworkModel, amps, y0: State, protocol: AtlasProtocol):
    m = eqx.tree_at(lambda m: m.stimuli.amplitude_pA, model, amps)
    if protocol.adjoint == "discrete":
        from owjax.core.discrete_adjoint import solve_ys_discrete_adjoint

        ys = solve_ys_discrete_adjoint(m, protocol.duration_ms, protocol.dt_out_ms, protocol.solver, y0=y0,
                                       save=("V", "Ca"), max_steps=protocol.discrete_max_steps)
        return readout_signal(ys, protocol.readout)
    sol = solve_ys(m, protocol.duration_ms, protocol.dt_out_ms, protocol.solver, y0=y0, adjoint=_adjoint(protocol),
                   save=("V", "Ca"))
    return readout_signal(sol.ys, protocol.readout)


def _map(fn, xs, chunk: int):
    if chunk <= 1:
        return jax.lax.map(fn, xs)
    return jax.lax.map(fn, xs, batch_size=chunk)


def simulate_traces(model: NetworkModel, amps, y0: State, protocol: AtlasProtocol) -> jnp.ndarray:
    """(S, T, N) readout traces of the trials given by the amplitude rows ``amps`` (pure JAX)."""
    _check_protocol_model(model)
    return _map(lambda a: _trial(model, a, y0, protocol), amps, protocol.chunk)


def simulate_responses(model: NetworkModel, amps, y0: State, protocol: AtlasProtocol) -> jnp.ndarray:
    """(S, N) response statistic: ``R[s, i]`` = response of neuron ``i`` in trial ``s``.

    Pure JAX (jit / grad safe); the stimulated neuron's own response is included (row s, column of
    the stimulated neuron). See the module docstring for the statistic.
    """
    _check_protocol_model(model)
    lo, hi = protocol.window_index
    scale = protocol.scale

    def one(a):
        x = _trial(model, a, y0, protocol)
        return jnp.mean(x[lo:hi] - x[0], axis=0) / scale

    return _map(one, amps, protocol.chunk)


@lru_cache(maxsize=8)
def _responses_fn(protocol: AtlasProtocol):
    return eqx.filter_jit(lambda m, a, y: simulate_responses(m, a, y, protocol))


def responses_jit(model: NetworkModel, amps, y0: State, protocol: AtlasProtocol) -> jnp.ndarray:
    """:func:`simulate_responses`, jit-compiled once per protocol (and array shapes)."""
    return _responses_fn(protocol)(model, amps, y0)

"""The transducer as a component: solved with the c302 network in one diffrax solve, one ``jax.grad``.

:class:`GRUTransducer` is the continuous-time form of :mod:`owjax.sensory.transducer`'s discrete model
(time in **seconds**, ``time_unit_ms = 1000``)::

    d u_fast/dt = (u(t) − u_fast)/τ_rate      d u_slow/dt = (u(t) − u_slow)/τ_a
    d h/dt      = (G(h, x(t)) − h) / Δ         x(t) = features(u(t), u_fast, u_slow),  Δ = spec.dt_s

where G is the stacked flax GRU map (:func:`owjax.sensory.transducer.gru_map`). One forward-Euler step
of length Δ from a sample time t_k is exactly the discrete step used in training:
h + Δ·(G(h, x) − h)/Δ = G(h, x) and u_f + Δ·(u_k − u_f)/τ = the discrete filter (a test checks it), so
the trained weights carry over unchanged; adaptive solvers integrate the same ODE more accurately
(between samples the stimulus is linearly interpolated).

**Where flax meets equinox.** ``GRUTransducer.params`` is the plain pytree of arrays produced by flax's
``GRUCell.init``; ``GRUTransducer`` (equinox) calls the flax cells functionally
(``cell.apply({"params": …})``) inside its vector field. ``jax.grad`` of any loss of the composite
reaches the GRU weights, the readout, τ_a and the coupling's gain/offset through the same solve.

:class:`TransducerDrive` is the calibrated map response → current (pA, inward positive) into the
sensory cells of a network (AFDL/AFDR, BAGL/BAGR): ``I = gain_pA · y + offset_pA`` with ``y`` the
normalised response (response / ``resp_scale``). :func:`sensory_worm` builds the
:class:`~owjax.core.component.Composite`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from owjax.core.component import AbstractComponent, AbstractCoupling, Composite, ParameterInfo, StateVariable
from owjax.sensory.records import MODALITIES
from owjax.sensory.transducer import TransducerSpec, _features, filter_rates, gru_map, initial_carry, readout

__all__ = ["GRUTransducer", "TransducerDrive", "sensory_worm"]


class GRUTransducer(AbstractComponent):
    """A trained transducer as a component (see the module docstring).

    Arguments:
        spec: the transducer's hyperparameters.
        params: its parameters (flax GRU params, readout, ``log_tau_adapt_s``).
        stimulus_times_s: (K,) times of a prescribed stimulus, s (``None``: read the input ``stimulus``).
        stimulus_values: (K,) the prescribed stimulus (°C or % O2), linearly interpolated, held outside.

    State ``{"filters": (2,) [u_fast, u_slow], "h": (depth, hidden)}``; outputs ``response`` (% ΔR/R or
    ΔF/F), ``response_norm`` (response / resp_scale) and ``stimulus``.
    """

    params: PyTree[Array]
    stimulus_times_s: Float[Array, " K"] | None
    stimulus_values: Float[Array, " K"] | None
    spec: TransducerSpec = eqx.field(static=True)
    time_unit_ms: ClassVar[float] = 1000.0

    def __init__(self, spec: TransducerSpec, params, stimulus_times_s=None, stimulus_values=None):
        self.spec = spec
        self.params = params
        if (stimulus_times_s is None) != (stimulus_values is None):
            raise ValueError("GRUTransducer: give both stimulus_times_s and stimulus_values, or neither")
        if stimulus_times_s is not None:
            ts = jnp.asarray(stimulus_times_s, params["readout"]["w"].dtype)
            vs = jnp.asarray(stimulus_values, ts.dtype)
            if ts.ndim != 1 or ts.shape != vs.shape or ts.size < 2:
                raise ValueError(f"GRUTransducer: stimulus_times_s {ts.shape} and stimulus_values {vs.shape} "
                                 "must be 1-D of equal length ≥ 2")
            concrete = not isinstance(stimulus_times_s, jax.core.Tracer) and not isinstance(stimulus_values,
                                                                                            jax.core.Tracer)
            if concrete:  # checked on the host (a traced stimulus, e.g. inside jit, cannot be checked here)
                if not np.all(np.diff(np.asarray(stimulus_times_s)) > 0):
                    raise ValueError("GRUTransducer: stimulus_times_s must be strictly increasing")
                if not np.all(np.isfinite(np.asarray(stimulus_values))):
                    raise ValueError("GRUTransducer: stimulus_values must be finite")
            self.stimulus_times_s, self.stimulus_values = ts, vs
        else:
            self.stimulus_times_s = self.stimulus_values = None

    @property
    def input_names(self) -> dict[str, str]:
        return {} if self.stimulus_values is not None else {"stimulus": MODALITIES[self.spec.modality]["stimulus_unit"]}

    def stimulus_at(self, t, inputs: Mapping[str, Array] | None = None):
        """The stimulus at ``t`` (s): the prescribed series, or the input ``stimulus``."""
        if self.stimulus_values is not None:
            return jnp.interp(t, self.stimulus_times_s, self.stimulus_values)
        if not inputs or "stimulus" not in inputs:
            raise ValueError("GRUTransducer without a prescribed stimulus needs the input 'stimulus' "
                             f"({self.input_names['stimulus']}) from a coupling or inputs=")
        return jnp.asarray(inputs["stimulus"], self.params["readout"]["w"].dtype)

    def initial_state(self) -> dict:
        """Steady state of the stimulus at t = 0 (the recording starts after a hold)."""
        if self.stimulus_values is None:
            raise ValueError("GRUTransducer.initial_state needs a prescribed stimulus; for a coupled stimulus "
                             "use initial_carry(spec, params, u0) from owjax.sensory.transducer")
        filt, hs = initial_carry(self.spec, self.params, self.stimulus_values[0])
        return {"filters": filt, "h": hs}

    def vector_field(self, t, state, inputs=None) -> dict:
        """d state/dt per second (see the module docstring)."""
        u = self.stimulus_at(t, inputs)
        filt, hs = state["filters"], state["h"]
        x = _features(self.spec, self.params, filt, u)
        return {"filters": filter_rates(self.spec, self.params, filt, u),
                "h": (gru_map(self.spec, self.params, hs, x) - hs) / self.spec.dt_s}

    def outputs(self, t, state) -> dict[str, Array]:
        y = readout(self.spec, self.params, state["h"])
        out = {"response_norm": y, "response": y * self.spec.resp_scale}
        if self.stimulus_values is not None:
            out["stimulus"] = jnp.interp(t, self.stimulus_times_s, self.stimulus_values)
        return out

    def state_variables(self) -> dict[str, StateVariable]:
        unit = MODALITIES[self.spec.modality]["stimulus_unit"]
        return {"filters": StateVariable("filters", unit, "low-passed stimulus: [u_fast (τ_rate), u_slow (τ_a)]",
                                         "filter"),
                "h": StateVariable("h", "1", "GRU hidden states", "layer × unit")}

    def parameter_info(self) -> dict[str, ParameterInfo]:
        return {"params": ParameterInfo("params", "1", None, "weight",
                                        "flax GRU weights, readout (w, b) and log τ_a (log s)",
                                        "learnt (owjax.sensory.training)")}


class TransducerDrive(AbstractCoupling):
    """Response → current into the sensory cells: ``I = gain_pA · y + offset_pA`` (pA, same into each cell).

    Arguments:
        source: name of the transducer component.
        target: name of the network component.
        cell_index: indices of the driven cells in the network (e.g. AFDL, AFDR).
        n_cells: number of cells in the network.
        gain_pA: pA per unit of normalised response (response / resp_scale).
        offset_pA: pA at zero response.
    """

    gain_pA: Float[Array, ""]
    offset_pA: Float[Array, ""]
    source: str = eqx.field(static=True)
    target: str = eqx.field(static=True)
    cell_index: tuple[int, ...] = eqx.field(static=True)
    n_cells: int = eqx.field(static=True)
    target_input: str = eqx.field(static=True)

    def __init__(self, gain_pA, offset_pA, source: str, target: str, cell_index: Sequence[int], n_cells: int):
        self.gain_pA = jnp.asarray(gain_pA)
        self.offset_pA = jnp.asarray(offset_pA)
        self.source, self.target, self.target_input = source, target, "i_ext_pA"
        self.cell_index = tuple(int(i) for i in cell_index)
        self.n_cells = int(n_cells)

    def __call__(self, t, source_outputs) -> Array:
        i = self.gain_pA * source_outputs["response_norm"] + self.offset_pA
        idx = jnp.asarray(self.cell_index)
        return jnp.zeros((self.n_cells,), jnp.result_type(i)).at[idx].add(i)

    def parameter_info(self) -> dict[str, ParameterInfo]:
        return {"gain_pA": ParameterInfo("gain_pA", "pA", None, "coupling",
                                         "current per unit of normalised response", "calibration"),
                "offset_pA": ParameterInfo("offset_pA", "pA", None, "coupling", "current at zero response",
                                           "calibration")}


def sensory_worm(network: AbstractComponent, transducer: GRUTransducer, cells: Sequence[str] | None = None,
                 gain_pA: float = 1.0, offset_pA: float = 0.0, name: str | None = None) -> Composite:
    """The network driven by a transducer: ``Composite({"network", name}, [TransducerDrive])``.

    Arguments:
        network: a network component with input ``i_ext_pA`` and ``cell_names`` / ``index(cell)``.
        transducer: the transducer (with a prescribed stimulus).
        cells: driven cells (default: the modality's pair, e.g. AFDL/AFDR); missing cells raise.
        gain_pA, offset_pA: the response → current map.
        name: component name of the transducer (default ``"<modality>_transducer"``).

    Returns:
        The composite (time in ms; state ``{"network": …, name: …}``).
    """
    cells = tuple(cells or MODALITIES[transducer.spec.modality]["cells"])
    if "i_ext_pA" not in network.input_names:
        raise ValueError(f"{type(network).__name__} has no input 'i_ext_pA'; inputs: {sorted(network.input_names)}")
    idx = tuple(int(network.index(c)) for c in cells)
    name = name or f"{transducer.spec.modality}_transducer"
    dtype = network.dtype
    drive = TransducerDrive(jnp.asarray(gain_pA, dtype), jnp.asarray(offset_pA, dtype), source=name,
                            target="network", cell_index=idx, n_cells=len(network.cell_names))
    return Composite({"network": network, name: transducer}, [drive])

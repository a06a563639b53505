"""The fast adaptation of a phasic–tonic sensory neuron, as a band-pass of its transducer's response.

AFD responds to temperature *changes*: its thermotransduction current adapts within seconds, so the cell
signals warming and cooling as transients on top of a tonic level (Clark et al. 2006, J Neurosci 26:7444;
Ramot et al. 2008, Nat Neurosci 11:908). The learned AFD transducer (:mod:`owjax.sensory.transducer`)
was fitted to 2-Hz recordings of slow ramps (Bryant et al. 2022), which do not resolve that sub-second
adaptation, and its response follows the temperature's level. :class:`PhasicResponse` adds the missing
channel as an explicit, switchable assumption: two first-order low-pass filters of the normalised response
``y`` (time in **seconds**, ``time_unit_ms = 1000``)::

    d y_fast/dt = (y − y_fast)/τ_fast      d y_slow/dt = (y − y_slow)/τ_slow      phasic = y_fast − y_slow

(τ_fast < τ_slow: a band-pass, ≈ the response's rate of change over τ_slow, zero at any steady state).
:class:`ResponseToPhasic` feeds it the transducer's response and :class:`PhasicDrive` injects
``gain_pA · phasic`` into the sensory cells, beside :class:`~owjax.sensory.component.TransducerDrive`'s
tonic ``gain · y + offset`` (currents arriving at one input are summed). Neither τ is constrained by the
recordings; the thermotaxis loop sets them (``owjax.navigation``; see experiments/thermotaxis/README.md,
"Eleventh attempt", for why the circuit needs the channel).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from owjax.core.component import AbstractComponent, AbstractCoupling, ParameterInfo, StateVariable

__all__ = ["PhasicResponse", "ResponseToPhasic", "PhasicDrive"]


class PhasicResponse(AbstractComponent):
    """Band-pass of a transducer's normalised response (see the module docstring).

    Arguments:
        tau_fast_s: the fast filter's time constant, s (> 0).
        tau_slow_s: the slow filter's time constant, s (> ``tau_fast_s``).
        start: the response the filters start at (their steady state there: ``phasic`` = 0); the loop
            replaces the state with the response at its start (:meth:`steady_state`).

    State ``{"fast": (), "slow": ()}`` (normalised response units); input ``response``; output
    ``phasic`` = fast − slow.
    """

    tau_fast_s: Float[Array, ""]
    tau_slow_s: Float[Array, ""]
    start: Float[Array, ""]
    time_unit_ms: ClassVar[float] = 1000.0

    def __init__(self, tau_fast_s: ArrayLike, tau_slow_s: ArrayLike, start: ArrayLike = 0.0, dtype=jnp.float32):
        tf, ts = float(tau_fast_s), float(tau_slow_s)
        if not 0.0 < tf < ts:
            raise ValueError(f"PhasicResponse: need 0 < tau_fast_s < tau_slow_s (s), got {tf} and {ts}")
        self.tau_fast_s = jnp.asarray(tf, dtype)
        self.tau_slow_s = jnp.asarray(ts, dtype)
        self.start = jnp.asarray(start, dtype)

    def steady_state(self, response: ArrayLike) -> dict:
        """Both filters at ``response`` (the state after a long hold there; ``phasic`` = 0)."""
        y = jnp.asarray(response, self.start.dtype)
        return {"fast": y, "slow": y}

    def initial_state(self) -> dict:
        return self.steady_state(self.start)

    @property
    def input_names(self) -> dict[str, str]:
        return {"response": "1"}

    def vector_field(self, t, state, inputs=None) -> dict:
        """d state/dt per second."""
        y = (inputs or {}).get("response", self.start)
        return {"fast": (y - state["fast"]) / self.tau_fast_s, "slow": (y - state["slow"]) / self.tau_slow_s}

    def field_and_decay(self, t, state, inputs=None):
        return self.vector_field(t, state, inputs), {"fast": jnp.ones_like(state["fast"]) / self.tau_fast_s,
                                                     "slow": jnp.ones_like(state["slow"]) / self.tau_slow_s}

    def outputs(self, t, state) -> dict[str, Array]:
        return {"phasic": state["fast"] - state["slow"]}

    def state_variables(self) -> dict[str, StateVariable]:
        return {"fast": StateVariable("fast", "1", "response low-passed with τ_fast", ""),
                "slow": StateVariable("slow", "1", "response low-passed with τ_slow", "")}

    def parameter_info(self) -> dict[str, ParameterInfo]:
        return {"tau_fast_s": ParameterInfo("tau_fast_s", "s", (0.01, 10.0), "", "fast adaptation filter",
                                            "assumed (not resolved by the 2-Hz recordings)"),
                "tau_slow_s": ParameterInfo("tau_slow_s", "s", (0.05, 60.0), "", "slow adaptation filter",
                                            "assumed (not resolved by the 2-Hz recordings)"),
                "start": ParameterInfo("start", "1", None, "", "response the filters start at", "initial condition",
                                       trainable=False)}


class ResponseToPhasic(AbstractCoupling):
    """The transducer's normalised response (``response_norm`` of ``source``) → ``response`` of ``target``."""

    source: str = eqx.field(static=True)
    target: str = eqx.field(static=True)
    target_input: str = eqx.field(static=True)

    def __init__(self, source: str, target: str):
        self.source, self.target, self.target_input = source, target, "response"

    def __call__(self, t, source_outputs) -> Array:
        return source_outputs["response_norm"]


class PhasicDrive(AbstractCoupling):
    """Phasic response → current into the sensory cells: ``I = gain_pA · phasic`` (pA, same into each cell).

    Arguments:
        gain_pA: pA per unit of the band-passed normalised response.
        source: name of the :class:`PhasicResponse` component.
        target: name of the network component.
        cell_index: indices of the driven cells (e.g. AFDL, AFDR).
        n_cells: number of cells in the network.
    """

    gain_pA: Float[Array, ""]
    source: str = eqx.field(static=True)
    target: str = eqx.field(static=True)
    cell_index: tuple[int, ...] = eqx.field(static=True)
    n_cells: int = eqx.field(static=True)
    target_input: str = eqx.field(static=True)

    def __init__(self, gain_pA, source: str, target: str, cell_index: Sequence[int], n_cells: int):
        self.gain_pA = jnp.asarray(gain_pA)
        self.source, self.target, self.target_input = source, target, "i_ext_pA"
        self.cell_index = tuple(int(i) for i in cell_index)
        self.n_cells = int(n_cells)

    def __call__(self, t, source_outputs) -> Array:
        i = self.gain_pA * source_outputs["phasic"]
        return jnp.zeros((self.n_cells,), jnp.result_type(i)).at[jnp.asarray(self.cell_index)].add(i)

    def parameter_info(self) -> dict[str, ParameterInfo]:
        return {"gain_pA": ParameterInfo("gain_pA", "pA", None, "coupling",
                                         "current per unit of the band-passed normalised response", "calibration")}

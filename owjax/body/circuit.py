"""The neuromechanical loop of Boyle, Berri & Cohen (2012) as an owjax neural component.

No central pattern generator: 12 repeating units along the ventral nerve cord, each with a dorsal
and a ventral B-class motor neuron (DB, VB), driven tonically by AVB (``I_on``) and gated by
proprioception — the stretch of the lateral body elements in the unit's receptive field. Each
B-class neuron is bistable with hysteresis (switches on above 0.5 + H/2, off below 0.5 − H/2).
Dorsal B activity inhibits the ventral B neuron of its unit through the VD class (the
``I_bias − S_DB`` term) and the two sides of each segment inhibit each other at the muscles (D-class
cross-inhibition: V_dorsal = w_NMJ (S_DB − S_VB)). Muscles low-pass filter this with T = 0.1 s and
activate as max(V, 0). Undulation emerges from the body–circuit loop, and because the body bends
more slowly under higher drag, frequency and wavelength fall from water to agar.

Reference: OpenSourceBrain/CelegansNeuromechanicalGaitModulation ``WormSim/Model/worm.cc``
(``update_neurons``, ``update_SR``, ``update_muscles``); all constants below are that file's.

What differs (docs/body.md): BBC update neurons and muscles once per 1-ms tick between IDA calls,
with a hard threshold. Here the B neurons are continuous-time, ``τ_n dS/dt = σ((I − θ(S))/w) − S``
with θ(S) = 0.5 + H/2 − H·S, a steep sigmoid (w = 0.01) and τ_n = 5 ms, so the loop is one ODE an
adaptive solver can integrate, and it has (steep) gradients. As w, τ_n → 0 it is BBC's switch. The
receptive field follows the reference code: unit i reads the stretch of its own segments and those
of the next five units towards the tail (BBC's posterior-facing B-class processes).

**Two optional inputs** let a head circuit drive this loop (the mechanical body level of the
navigation loop, :mod:`owjax.navigation.mechanical`); unfed, they are zero and the model is BBC's:

* ``reversal`` in [0, 1]: the fraction of the AVB drive withdrawn, I_on · (1 − reversal). BBC's model
  has B-class neurons only, so the circuit's reversal command can stop forward crawling but cannot
  make the body crawl backwards.
* ``steer`` (dimensionless, the head circuit's dorsal − ventral neck signal): a bias
  ``neck_amplitude · tanh(steer)`` added to the dorsal and subtracted from the ventral muscle drive of
  the first ``neck_segments`` segments, tapering linearly to zero (the head and neck muscles the
  SMD/RMD motor neurons innervate), low-passed by the muscles like the B-class drive.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from owjax.body import geometry as geo
from owjax.core.component import AbstractComponent, AbstractCoupling, ParameterInfo, StateVariable

__all__ = ["BBCCircuit", "BodyToStretchReceptors", "ActivationToBody", "receptive_field"]

N_UNITS = 12


def receptive_field(n_units: int = N_UNITS, n_segments: int = geo.N_SEGMENTS, n_sr_units: int = 6) -> np.ndarray:
    """(units, segments) weights: unit i sums the stretch receptors of units i … i+5 (fewer near the
    tail), with worm.cc's tail compensation sqrt(−(N_SR / (i − N_units))) using C integer division."""
    per = n_segments // n_units
    rf = np.zeros((n_units, n_segments))
    for i in range(n_units):
        for j in range(n_sr_units):
            if i + j < n_units:
                rf[i, (i + j) * per:(i + j + 1) * per] = 1.0
        if i >= n_units - n_sr_units + 1:
            q = int(n_sr_units / (i - n_units))  # C truncation towards zero
            rf[i] *= np.sqrt(-q)
    return rf


class BBCCircuit(AbstractComponent):
    """BBC 2012 B-class/D-class motor circuit with stretch-receptor feedback and muscles (time s).

    State: ``neuron`` (2, 12) B-class activity in [0, 1] (row 0 DB, row 1 VB, column 0 at the head);
    ``muscle`` (2, 48) muscle "voltage" (activation = max(V, 0)). Input ``lateral_length_mm`` (2, 48)
    from :class:`~owjax.body.mechanics.RodBody`. Output ``muscle_activation`` (2, 48) in [0, 0.7].
    """

    time_unit_ms = 1000.0

    avb_current: Float[Array, ""]
    hysteresis: Float[Array, ""]
    vd_bias: Float[Array, ""]
    sr_weight: Float[Array, " units"]
    nmj_weight: Float[Array, " seg"]
    muscle_time_constant_s: Float[Array, ""]
    neuron_time_constant_s: Float[Array, ""]
    threshold_width: Float[Array, ""]
    sr_compensation: Float[Array, " seg"]
    lateral_rest_mm: Float[Array, " seg"]
    field: Float[Array, "units seg"]
    neck_amplitude: Float[Array, ""]
    segment_length_mm: float = eqx.field(static=True)
    neck_segments: int = eqx.field(static=True)

    def __init__(self, avb_current: float = 0.675, neuron_time_constant_s: float = 0.005,
                 threshold_width: float = 0.01, neck_amplitude: float = 0.3, neck_segments: int = 8, dtype=None):
        dt = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
        arr = lambda v: jnp.asarray(v, dt)  # noqa: E731
        n_seg, n_units = geo.N_SEGMENTS, N_UNITS
        per = n_seg // n_units
        radii = geo.rod_radii_mm()
        self.avb_current = arr(avb_current)
        self.hysteresis = arr(0.5)
        self.vd_bias = arr(0.5)
        self.sr_weight = arr(0.65 * (0.4 + 0.08 * np.arange(n_units)) * (n_units / 12.0) * (2.0 / per))
        nmj = 0.7 * (1.0 - np.arange(n_seg) * 0.6 / n_seg)
        nmj[0] /= 1.5
        self.nmj_weight = arr(nmj)
        self.muscle_time_constant_s = arr(geo.BBC_CONSTANTS.muscle_time_constant_s)
        if not neuron_time_constant_s > 0 or not threshold_width > 0:
            raise ValueError("neuron_time_constant_s and threshold_width must be > 0, got "
                             f"{neuron_time_constant_s!r}, {threshold_width!r}")
        self.neuron_time_constant_s = arr(neuron_time_constant_s)
        self.threshold_width = arr(threshold_width)
        self.sr_compensation = arr(geo.DIAMETER_MM / (radii[:-1] + radii[1:]))
        self.lateral_rest_mm = arr(geo.lateral_rest_length_mm(radii))
        self.field = arr(receptive_field(n_units, n_seg))
        self.segment_length_mm = float(geo.SEGMENT_LENGTH_MM)
        if not 0.0 <= float(neck_amplitude) <= 0.3:
            raise ValueError(f"neck_amplitude must be in [0, 0.3] (with BBC's drive ≤ 0.7 the muscles stay ≤ 1), "
                             f"got {neck_amplitude!r}")
        if int(neck_segments) != neck_segments or not 1 <= neck_segments <= n_seg:
            raise ValueError(f"neck_segments must be an integer in [1, {n_seg}], got {neck_segments!r}")
        self.neck_amplitude = arr(neck_amplitude)
        self.neck_segments = int(neck_segments)

    def initial_state(self) -> dict[str, Array]:
        """BBC's start: every dorsal B neuron on, ventral off, muscles at rest."""
        dt = self.avb_current.dtype
        n_units, n_seg = self.field.shape
        return {"neuron": jnp.stack([jnp.ones(n_units, dt), jnp.zeros(n_units, dt)]),
                "muscle": jnp.zeros((2, n_seg), dt)}

    def state_variables(self) -> dict[str, StateVariable]:
        return {"neuron": StateVariable("neuron", "1", "B-class activity (DB row 0, VB row 1)", "unit"),
                "muscle": StateVariable("muscle", "1", "low-passed muscle drive (activation = max(V, 0))", "segment")}

    @property
    def input_names(self) -> dict[str, str]:
        return {"lateral_length_mm": "mm", "reversal": "1", "steer": "1"}

    def neck_profile(self) -> Float[Array, " seg"]:
        """Weight of the neck bias per segment: 1 at the head, tapering linearly to 0 after ``neck_segments``."""
        n_seg = self.nmj_weight.shape[0]
        k = np.arange(n_seg)
        return jnp.asarray(np.clip(1.0 - k / self.neck_segments, 0.0, 1.0), self.nmj_weight.dtype)

    def parameter_info(self) -> dict[str, ParameterInfo]:
        P, src = ParameterInfo, "BBC 2012 worm.cc"
        return {
            "avb_current": P("avb_current", "1", (0.0, 2.0), "", "AVB drive I_on", src),
            "hysteresis": P("hysteresis", "1", (0.0, 1.0), "", "B-neuron hysteresis H", src),
            "vd_bias": P("vd_bias", "1", (0.0, 1.0), "", "bias compensating one-way VD inhibition", src),
            "sr_weight": P("sr_weight", "1", (0.0, 2.0), "unit", "stretch-receptor gain per unit", src),
            "nmj_weight": P("nmj_weight", "1", (0.0, 1.0), "segment", "NMJ strength gradient", src),
            "muscle_time_constant_s": P("muscle_time_constant_s", "s", (0.01, 1.0), "", "muscle low-pass T", src),
            "neuron_time_constant_s": P("neuron_time_constant_s", "s", (1e-4, 0.05), "", "B-neuron switching time (owjax)", "owjax"),
            "threshold_width": P("threshold_width", "1", (1e-3, 0.1), "", "sigmoid width of the threshold (owjax)", "owjax"),
            "neck_amplitude": P("neck_amplitude", "1", (0.0, 0.3), "", "largest neck muscle bias from the `steer` input "
                                "(owjax's head-circuit coupling)", "owjax"),
            "sr_compensation": P("sr_compensation", "1", None, "segment", "D/(R_i+R_{i+1}) shape compensation", src, False),
            "lateral_rest_mm": P("lateral_rest_mm", "mm", None, "segment", "lateral rest length", src, False),
            "field": P("field", "1", None, "unit", "receptive field", src, False),
        }

    def stretch_current(self, lateral_length_mm: Float[Array, "2 seg"]) -> Float[Array, "2 units"]:
        """Stretch-receptor input per unit (before the unit gain), from lateral element lengths."""
        l0 = self.lateral_rest_mm
        strain = (lateral_length_mm - l0) / l0
        # worm.cc's bilinear dorsal receptor (0.8 stretched beyond L_seg, 1.2 otherwise) helps go straight
        dorsal_gain = jnp.where(lateral_length_mm[0] > self.segment_length_mm, 0.8, 1.2)
        sr = self.sr_compensation * jnp.stack([strain[0] * dorsal_gain, strain[1]])
        return sr @ self.field.T

    def vector_field(self, t, state, inputs=None) -> dict[str, Array]:
        s = state["neuron"]
        inputs = inputs or {}
        lengths = inputs.get("lateral_length_mm")
        if lengths is None:
            lengths = jnp.broadcast_to(self.lateral_rest_mm, (2,) + self.lateral_rest_mm.shape)
        sr = self.stretch_current(lengths) * self.sr_weight
        reversal = inputs.get("reversal")
        i_on = self.avb_current if reversal is None else self.avb_current * (1.0 - reversal)
        i_d = i_on + sr[0]
        i_v = (self.vd_bias - s[0]) + i_on + sr[1]
        current = jnp.stack([i_d, i_v])
        threshold = 0.5 + self.hysteresis / 2 - self.hysteresis * s
        ds = (jax.nn.sigmoid((current - threshold) / self.threshold_width) - s) / self.neuron_time_constant_s
        per = self.nmj_weight.shape[0] // s.shape[1]
        drive = jnp.repeat(s[0] - s[1], per) * self.nmj_weight
        steer = inputs.get("steer")
        if steer is not None:
            drive = drive + self.neck_amplitude * jnp.tanh(steer) * self.neck_profile()
        v_neuron = jnp.stack([drive, -drive])
        dv = (v_neuron - state["muscle"]) / self.muscle_time_constant_s
        return {"neuron": ds, "muscle": dv}

    def outputs(self, t, state) -> dict[str, Array]:
        return {"muscle_activation": jnp.maximum(state["muscle"], 0.0), "neuron": state["neuron"]}


class BodyToStretchReceptors(AbstractCoupling):
    """Body lateral element lengths → the circuit's stretch receptors (identity, mm)."""

    source: str = "body"
    target: str = "circuit"
    target_input: str = "lateral_length_mm"

    def __call__(self, t, source_outputs):
        return source_outputs["lateral_length_mm"]


class ActivationToBody(AbstractCoupling):
    """A source's ``muscle_activation`` output → the body's ``muscle_activation`` input."""

    source: str = "circuit"
    target: str = "body"
    target_input: str = "muscle_activation"

    def __call__(self, t, source_outputs):
        return source_outputs["muscle_activation"]

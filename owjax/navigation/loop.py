"""The closed loop as one component: arena → AFD transducer → head circuit → body → arena.

:func:`build_loop` returns a :class:`~owjax.core.component.Composite` of three components —
``"afd"`` (the shipped :class:`~owjax.sensory.component.GRUTransducer`, reading its stimulus through
a coupling), ``"circuit"`` (:class:`~owjax.navigation.circuit.GradedHeadCircuit`) and ``"body"``
(:class:`~owjax.navigation.body.NavigationBody`) — and four couplings:

* :class:`ArenaAtHead` (body → afd ``stimulus``): the arena field at the head position (°C);
* :class:`~owjax.sensory.component.TransducerDrive` (afd → circuit ``i_ext_pA``): response → current
  into AFDL/AFDR (pA);
* :class:`NeckSteering` (circuit → body ``steer``): ``gain · (mean dorsal − mean ventral neck V)/10 mV``;
* :class:`ReversalCommand` (circuit → body ``reversal``): ``σ(gain · ((AVA − AVB) − threshold)/10 mV)``;
* with ``edge_wall=True``, :class:`PlateEdge` (body → body ``edge``): the plate's edge as a soft wall;
* with ``afd_phasic``, a fourth component ``"afd_phasic"`` (:class:`~owjax.sensory.phasic.PhasicResponse`,
  AFD's fast adaptation: a band-pass of the response) and two couplings, afd → afd_phasic and
  :class:`~owjax.sensory.phasic.PhasicDrive` (afd_phasic → circuit ``i_ext_pA``, added to the tonic current).

One :func:`owjax.core.solve.solve_ys` integrates all of it (time in ms; the transducer and the body
run in s and are rescaled by the composite); :func:`simulate_worms` vmaps it over a batch of worms
(start positions, headings, noise, cultivation temperatures). The transducer's slow adaptation
state (the ``adapted`` feature's filter; in the loop τ_a = 4 h, :data:`owjax.navigation.setup.CULTIVATION_MEMORY_TAU_S`)
starts at the **cultivation temperature**: that memory of the holding temperature is what sets the worm's
preferred temperature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from owjax.core.component import AbstractCoupling, Composite, ParameterInfo
from owjax.navigation.arena import AbstractField
from owjax.navigation.body import NavigationBody
from owjax.navigation.circuit import (DORSAL_NECK, FORWARD_CELLS, REVERSAL_CELLS, VENTRAL_NECK,
                                      GradedHeadCircuit)

__all__ = ["ArenaAtHead", "NeckSteering", "ReversalCommand", "PlateEdge", "build_loop", "circuit_couplings",
           "with_afd_phasic", "phasic_initial_state", "AFD_PHASIC_KEYS", "check_afd_phasic",
           "loop_initial_state",
           "adapted_transducer_state", "simulate_worms", "head_temperature", "LOOP_SAVE"]

#: state variables kept at the output times by :func:`simulate_worms`
LOOP_SAVE = ("body.pos", "body.heading", "body.phase")


class ArenaAtHead(AbstractCoupling):
    """The arena field at the head (body → transducer ``stimulus``), in the field's unit."""

    field: AbstractField
    source: str = eqx.field(static=True)
    target: str = eqx.field(static=True)
    target_input: str = eqx.field(static=True)

    def __init__(self, field: AbstractField, source: str = "body", target: str = "afd"):
        self.field, self.source, self.target, self.target_input = field, source, target, "stimulus"

    def __call__(self, t, source_outputs) -> Array:
        h = source_outputs["head_xy_cm"]
        return self.field(h[0], h[1])


class NeckSteering(AbstractCoupling):
    """Neck motor neurons → steering: ``gain · (mean V_dorsal − mean V_ventral)/10 mV`` (dimensionless)."""

    gain: Float[Array, ""]
    dorsal: tuple[int, ...] = eqx.field(static=True)
    ventral: tuple[int, ...] = eqx.field(static=True)
    source: str = eqx.field(static=True)
    target: str = eqx.field(static=True)
    target_input: str = eqx.field(static=True)

    def __init__(self, gain, dorsal: Sequence[int], ventral: Sequence[int], source="circuit", target="body"):
        self.gain = jnp.asarray(gain)
        self.dorsal, self.ventral = tuple(int(i) for i in dorsal), tuple(int(i) for i in ventral)
        self.source, self.target, self.target_input = source, target, "steer"

    def __call__(self, t, source_outputs) -> Array:
        v = source_outputs["V_mV"]
        d = jnp.mean(v[jnp.asarray(self.dorsal)]) - jnp.mean(v[jnp.asarray(self.ventral)])
        return self.gain * d / 10.0

    def parameter_info(self) -> dict[str, ParameterInfo]:
        return {"gain": ParameterInfo("gain", "1", (0.0, 20.0), "coupling",
                                      "steering per 10 mV of dorsal − ventral neck potential", "choice")}


class ReversalCommand(AbstractCoupling):
    """AVA vs AVB → pirouette drive: ``σ(gain · ((mean V_AVA − mean V_AVB) − threshold_mV)/10 mV)`` in [0, 1]."""

    gain: Float[Array, ""]
    threshold_mV: Float[Array, ""]
    reverse: tuple[int, ...] = eqx.field(static=True)
    forward: tuple[int, ...] = eqx.field(static=True)
    source: str = eqx.field(static=True)
    target: str = eqx.field(static=True)
    target_input: str = eqx.field(static=True)

    def __init__(self, gain, threshold_mV, reverse: Sequence[int], forward: Sequence[int], source="circuit",
                 target="body"):
        self.gain, self.threshold_mV = jnp.asarray(gain), jnp.asarray(threshold_mV)
        self.reverse, self.forward = tuple(int(i) for i in reverse), tuple(int(i) for i in forward)
        self.source, self.target, self.target_input = source, target, "reversal"

    def __call__(self, t, source_outputs) -> Array:
        v = source_outputs["V_mV"]
        d = jnp.mean(v[jnp.asarray(self.reverse)]) - jnp.mean(v[jnp.asarray(self.forward)])
        return jax.nn.sigmoid(self.gain * (d - self.threshold_mV) / 10.0)

    def parameter_info(self) -> dict[str, ParameterInfo]:
        return {"gain": ParameterInfo("gain", "1", (0.0, 20.0), "coupling", "reversal-drive slope per 10 mV",
                                      "choice"),
                "threshold_mV": ParameterInfo("threshold_mV", "mV", (-30.0, 30.0), "coupling",
                                              "AVA − AVB difference at half drive", "choice")}


class PlateEdge(AbstractCoupling):
    """The plate's edge as a soft wall (body → body ``edge``), so worms stay on the agar as real worms do.

    With d = how far the centroid lies beyond the edge (cm, negative on the plate;
    :meth:`~owjax.navigation.arena.AbstractField.outside_cm`), s = σ(d/ε) and n the unit vector towards
    the plate's centre: ``edge = (push_cm_s · s · n, turn_rate_rad_s · s · sin(φ_n − θ))`` — a velocity
    back onto the plate (larger than the crawling speed, so a worm stops within ≈ 2ε of the edge) and
    a turn of the heading θ towards the centre (direction φ_n). Smooth, so gradients pass.

    Arguments:
        field: the arena (its geometry: :meth:`outside_cm`, :meth:`center_cm`).
        push_cm_s: the push at the edge (d = 0: half of it), cm/s.
        turn_rate_rad_s: the turning rate at the edge, rad/s.
        width_cm: ε, the width over which the wall switches on, cm.
    """

    field: AbstractField
    push_cm_s: float = eqx.field(static=True)
    turn_rate_rad_s: float = eqx.field(static=True)
    width_cm: float = eqx.field(static=True)
    source: str = eqx.field(static=True)
    target: str = eqx.field(static=True)
    target_input: str = eqx.field(static=True)

    def __init__(self, field: AbstractField, push_cm_s: float = 0.1, turn_rate_rad_s: float = 1.0,
                 width_cm: float = 0.02, body: str = "body"):
        for name, v in (("push_cm_s", push_cm_s), ("turn_rate_rad_s", turn_rate_rad_s), ("width_cm", width_cm)):
            if not float(v) > 0:
                raise ValueError(f"PlateEdge.{name} must be > 0, got {v!r}")
        self.field, self.push_cm_s, self.turn_rate_rad_s = field, float(push_cm_s), float(turn_rate_rad_s)
        self.width_cm = float(width_cm)
        self.source, self.target, self.target_input = body, body, "edge"

    def __call__(self, t, source_outputs) -> Array:
        pos, th = source_outputs["pos_cm"], source_outputs["heading_rad"]
        cx, cy = self.field.center_cm()
        s = jax.nn.sigmoid(self.field.outside_cm(pos[0], pos[1]) / self.width_cm)
        dx, dy = cx - pos[0], cy - pos[1]
        r = jnp.sqrt(dx * dx + dy * dy + 1e-12)
        turn = self.turn_rate_rad_s * s * jnp.sin(jnp.arctan2(dy, dx) - th)
        return jnp.stack([self.push_cm_s * s * dx / r, self.push_cm_s * s * dy / r, turn])


def build_loop(circuit: GradedHeadCircuit, transducer, body: NavigationBody, field: AbstractField,
               afd_gain_pA: float = 1.0, afd_offset_pA: float = 0.0, steer_gain: float = 1.0,
               reversal_gain: float = 1.0, reversal_threshold_mV: float = 5.0, edge_wall: bool = False,
               afd_phasic: Mapping | None = None) -> Composite:
    """The closed loop (see the module docstring).

    Arguments:
        circuit: the head circuit (with AFDL/AFDR, the neck and command cells).
        transducer: a :class:`~owjax.sensory.component.GRUTransducer` without a prescribed stimulus.
        body: the navigation body.
        field: the arena field the head samples (°C for the AFD transducer).
        afd_gain_pA, afd_offset_pA: transducer response → current into AFD.
        steer_gain, reversal_gain, reversal_threshold_mV: motor read-outs.
        edge_wall: the plate's edge is a wall (:class:`PlateEdge`); False: worms may leave the plate.
        afd_phasic: ``None`` (default): AFD gets the tonic current only; ``{"gain_pA", "tau_fast_s",
            "tau_slow_s"}``: also AFD's fast adaptation, a band-pass of the response
            (:class:`~owjax.sensory.phasic.PhasicResponse`, component ``"afd_phasic"``) injected with
            ``gain_pA`` (:class:`~owjax.sensory.phasic.PhasicDrive`).
    """
    if transducer.stimulus_values is not None:
        raise ValueError("build_loop: the transducer must read its stimulus from the arena (no prescribed stimulus)")
    couplings = [ArenaAtHead(field)] + circuit_couplings(circuit, afd_gain_pA, afd_offset_pA, steer_gain, reversal_gain,
                                                         reversal_threshold_mV)
    couplings += [PlateEdge(field)] if edge_wall else []
    components = {"afd": transducer, "circuit": circuit, "body": body}
    components, couplings = with_afd_phasic(components, couplings, circuit, afd_phasic)
    return Composite(components, couplings)


#: the keys of ``afd_phasic`` (:func:`build_loop`)
AFD_PHASIC_KEYS = ("gain_pA", "tau_fast_s", "tau_slow_s")


def check_afd_phasic(afd_phasic: Mapping) -> None:
    """A clear error unless ``afd_phasic`` has exactly the keys :data:`AFD_PHASIC_KEYS`."""
    if set(afd_phasic) != set(AFD_PHASIC_KEYS):
        raise ValueError(f"afd_phasic: needs exactly the keys {list(AFD_PHASIC_KEYS)}, got {sorted(afd_phasic)}")


def with_afd_phasic(components: dict, couplings: list, circuit: GradedHeadCircuit, afd_phasic: Mapping | None):
    """``components`` and ``couplings`` with AFD's phasic channel added (``afd_phasic``: see
    :func:`build_loop`; ``None``: unchanged)."""
    if afd_phasic is None:
        return components, couplings
    from owjax.sensory.phasic import PhasicDrive, PhasicResponse, ResponseToPhasic

    check_afd_phasic(afd_phasic)
    dt = circuit.dtype
    phasic = PhasicResponse(afd_phasic["tau_fast_s"], afd_phasic["tau_slow_s"], dtype=dt)
    drive = PhasicDrive(jnp.asarray(afd_phasic["gain_pA"], dt), source="afd_phasic", target="circuit",
                        cell_index=[circuit.index("AFDL"), circuit.index("AFDR")], n_cells=circuit.n_cells)
    return components | {"afd_phasic": phasic}, couplings + [ResponseToPhasic("afd", "afd_phasic"), drive]


def circuit_couplings(circuit: GradedHeadCircuit, afd_gain_pA: float, afd_offset_pA: float, steer_gain: float,
                      reversal_gain: float, reversal_threshold_mV: float, steer_target: str = "body",
                      reversal_target: str = "body") -> list:
    """The head circuit's three couplings, as every body level uses them: the transducer's response into
    AFDL/R (:class:`~owjax.sensory.component.TransducerDrive`), :class:`NeckSteering` to
    ``steer_target`` and :class:`ReversalCommand` to ``reversal_target`` (the components of that name)."""
    from owjax.sensory.component import TransducerDrive

    dt = circuit.dtype
    ix = circuit.index
    return [TransducerDrive(jnp.asarray(afd_gain_pA, dt), jnp.asarray(afd_offset_pA, dt), source="afd",
                            target="circuit", cell_index=[ix("AFDL"), ix("AFDR")], n_cells=circuit.n_cells),
            NeckSteering(jnp.asarray(steer_gain, dt), [ix(c) for c in DORSAL_NECK], [ix(c) for c in VENTRAL_NECK],
                         target=steer_target),
            ReversalCommand(jnp.asarray(reversal_gain, dt), jnp.asarray(reversal_threshold_mV, dt),
                            [ix(c) for c in REVERSAL_CELLS], [ix(c) for c in FORWARD_CELLS], target=reversal_target)]


def head_temperature(loop: Composite, pos, heading, phase) -> Array:
    """The field at the head for centroid ``pos`` (…, 2), ``heading``, ``phase`` (the body's geometry)."""
    body: NavigationBody = loop["body"]
    field = [c for c in loop.couplings if isinstance(c, ArenaAtHead)][0].field
    a = heading + body.head_amplitude_rad * jnp.sin(phase)
    return field(pos[..., 0] + body.head_length_cm * jnp.cos(a), pos[..., 1] + body.head_length_cm * jnp.sin(a))


def adapted_transducer_state(transducer, stimulus_now, cultivation_temp_c) -> dict:
    """The AFD transducer's state for a worm cultivated at ``cultivation_temp_c`` that senses
    ``stimulus_now`` (°C): slow filter = T_c, fast filter and GRU at their steady state there."""
    from owjax.sensory.transducer import _features, gru_map

    spec, params = transducer.spec, transducer.params
    dtype = params["readout"]["w"].dtype
    u0 = jnp.asarray(stimulus_now, dtype)
    filt = jnp.stack([u0, jnp.asarray(cultivation_temp_c, dtype)])
    x = _features(spec, params, filt, u0)
    hs = jnp.zeros((spec.depth, spec.hidden), dtype)
    hs = jax.lax.fori_loop(0, int(spec.burn_in_steps), lambda i, h: gru_map(spec, params, h, x), hs)
    return {"filters": filt, "h": hs}


def loop_initial_state(loop: Composite, cultivation_temp_c) -> dict:
    """Initial state: the circuit at rest, the body at its start, and the transducer adapted to the
    cultivation temperature (:func:`adapted_transducer_state`) while sensing the start temperature."""
    y_body = loop["body"].initial_state()
    u0 = head_temperature(loop, y_body["pos"], y_body["heading"], y_body["phase"])
    y = {"afd": adapted_transducer_state(loop["afd"], u0, cultivation_temp_c),
         "circuit": loop["circuit"].initial_state(), "body": y_body}
    return y | phasic_initial_state(loop, y["afd"])


def phasic_initial_state(loop: Composite, afd_state: dict) -> dict:
    """``{"afd_phasic": both filters at the transducer's response in ``afd_state``}`` when the loop has
    AFD's phasic channel (:func:`with_afd_phasic`), else ``{}``."""
    if "afd_phasic" not in loop.components:
        return {}
    from owjax.sensory.transducer import readout

    t = loop["afd"]
    return {"afd_phasic": loop["afd_phasic"].steady_state(readout(t.spec, t.params, afd_state["h"]))}


def simulate_worms(loop: Composite, start_xy_cm, start_heading_rad, noise, cultivation_temp_c,
                   duration_s: float, dt_out_s: float = 1.0, solver="euler10", save=LOOP_SAVE):
    """Solve the loop for a batch of worms in one vmapped solve.

    Arguments:
        loop: :func:`build_loop`'s composite (its body's start and noise are replaced per worm).
        start_xy_cm: (B, 2) start positions, cm. start_heading_rad: (B,) rad.
        noise: (B, K, 2) noise tables (:func:`owjax.navigation.body.body_noise`).
        cultivation_temp_c: (B,) cultivation temperatures, °C.
        duration_s, dt_out_s: simulated time and output spacing, s.
        solver: a :class:`~owjax.core.solve.SolverConfig`, preset or mapping; ``"euler10"`` is forward
            Euler at the circuit's Δ (the exponential-Euler step the circuit is written for).
        save: state variables kept (dotted paths).

    Returns:
        diffrax Solution with batched ``ys`` (B, T, …) at ``ts`` (ms).
    """
    from owjax.core.solve import SolverConfig, solve_ys

    if solver == "euler10":
        solver = SolverConfig("euler", dt_ms=float(loop["circuit"].dt_ms), max_steps=10_000_000)
    nk = noise.shape[1]
    need = int(duration_s / loop["body"].noise_dt_s) + 2
    if nk < need:
        raise ValueError(f"simulate_worms: noise tables hold {nk} samples, {duration_s} s needs {need} "
                         "(body_noise(key, duration_s))")

    def one(xy, th, nz, tc):
        lp = eqx.tree_at(lambda m: (m.components["body"].start_xy_cm, m.components["body"].start_heading_rad,
                                    m.components["body"].noise), loop, (xy, th, nz))
        y0 = loop_initial_state(lp, tc)
        return solve_ys(lp, duration_s * 1000.0, dt_out_s * 1000.0, solver=solver, y0=y0, save=save)

    return jax.vmap(one)(start_xy_cm, start_heading_rad, noise, cultivation_temp_c)

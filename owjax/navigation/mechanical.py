"""The mechanical body level of the navigation loop: the same head circuit driving the BBC rod body.

The navigation body (:mod:`owjax.navigation.body`) moves a point at the worm's speed with prescribed
head sweeps and pirouettes, cheap enough for 20-minute runs and training. This module puts the **same
circuit with the same couplings** in front of the mechanical body instead:

    arena ─(head rod's position)→ AFD transducer → head circuit ─┬─ NeckSteering ──→ BBC motor loop → rod body
                                                                 └─ ReversalCommand ─┘        ↑          │
                                                                                              └ stretch ─┘

* ``"afd"``: the shipped AFD transducer (:class:`~owjax.sensory.component.GRUTransducer`), stimulus
  = the field at the head rod (:class:`ArenaAtRodHead`);
* ``"circuit"``: :class:`~owjax.navigation.circuit.GradedHeadCircuit` with the trained values;
* ``"motor"``: BBC's proprioceptive B/D-class loop (:class:`~owjax.body.circuit.BBCCircuit`). The
  circuit's :class:`~owjax.navigation.loop.NeckSteering` output biases the neck muscles (its
  ``steer`` input) and its :class:`~owjax.navigation.loop.ReversalCommand` withdraws the AVB drive (its
  ``reversal`` input) — the couplings of the navigation level, pointed at the motor loop;
* ``"body"``: the 49-rod body (:class:`~owjax.body.mechanics.RodBody`) in a medium (agar by default).

The body lives in its own frame (head rod at the origin, body along +x, so it crawls towards −x);
:class:`ArenaAtRodHead` places that frame on the plate at the worm's start position and heading,
mirrored so that dorsal is the worm's left and a positive steering signal turns both bodies
counter-clockwise (:func:`plate_xy_cm`). One
adaptive solve (Tsit5) integrates all four components; :func:`simulate_worms_mechanical` vmaps it.

What this level cannot do: BBC's motor loop has no A-class (backward) neurons, so a reversal command
stops forward crawling instead of reversing; there is no plate-edge wall; and the solve costs about
two orders of magnitude more than the navigation level per simulated second (experiments/thermotaxis/
README.md, "Two body levels"), so it checks the navigation level on short runs rather than replacing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from owjax.core.component import AbstractCoupling, Composite
from owjax.navigation.arena import AbstractField

__all__ = ["ArenaAtRodHead", "build_mechanical_loop", "make_mechanical_loop", "mechanical_initial_state",
           "simulate_worms_mechanical", "plate_xy_cm", "MECHANICAL_SAVE", "MECHANICAL_SOLVER"]

#: state variables kept at the output times by :func:`simulate_worms_mechanical`
MECHANICAL_SAVE = ("body.x", "body.y")
#: the solve of the mechanical level: Tsit5 with the body scenarios' tolerances loosened to 1e-4 (the
#: circuit's and transducer's states are in mV and normalised units, the body's in mm and rad)
MECHANICAL_SOLVER = {"method": "tsit5", "rtol": 1e-4, "atol": 1e-4, "dt_ms": 1.0, "max_steps": 4_000_000}


def plate_xy_cm(x_mm, y_mm, start_xy_cm, start_heading_rad):
    """Body-frame rod coordinates (mm; head rod at the origin, body along +x, dorsal towards +y) → plate
    coordinates (cm) of a worm that starts at ``start_xy_cm`` facing ``start_heading_rad`` (the body
    frame's −x axis).

    The frame is mirrored so that the worm's dorsal side is on its **left** on the plate (it lies on its
    right side): a dorsal neck bias then turns it counter-clockwise, as a positive ``steer`` turns the
    navigation body (:class:`~owjax.navigation.body.NavigationBody`), and the same circuit steers both
    levels the same way."""
    a = start_heading_rad + jnp.pi
    c, s = jnp.cos(a), jnp.sin(a)
    x = jnp.asarray(x_mm) / 10.0
    y = -jnp.asarray(y_mm) / 10.0
    return jnp.stack([start_xy_cm[..., 0] + c * x - s * y, start_xy_cm[..., 1] + s * x + c * y], -1)


class ArenaAtRodHead(AbstractCoupling):
    """The arena field at the rod body's head rod (body → transducer ``stimulus``), in the field's unit."""

    field: AbstractField
    start_xy_cm: Float[Array, "2"]
    start_heading_rad: Float[Array, ""]
    source: str = eqx.field(static=True)
    target: str = eqx.field(static=True)
    target_input: str = eqx.field(static=True)

    def __init__(self, field: AbstractField, start_xy_cm=(0.0, 0.0), start_heading_rad=0.0, source: str = "body",
                 target: str = "afd", dtype=jnp.float32):
        self.field = field
        self.start_xy_cm = jnp.asarray(start_xy_cm, dtype).reshape(2)
        self.start_heading_rad = jnp.asarray(start_heading_rad, dtype)
        self.source, self.target, self.target_input = source, target, "stimulus"

    def head_xy_cm(self, body_outputs) -> Array:
        """The head rod's position on the plate (cm)."""
        return plate_xy_cm(body_outputs["x_mm"][0], body_outputs["y_mm"][0], self.start_xy_cm,
                           self.start_heading_rad)

    def __call__(self, t, source_outputs) -> Array:
        h = self.head_xy_cm(source_outputs)
        return self.field(h[0], h[1])


def build_mechanical_loop(circuit, transducer, field: AbstractField, medium="agar", afd_gain_pA: float = 1.0,
                          afd_offset_pA: float = 0.0, steer_gain: float = 1.0, reversal_gain: float = 1.0,
                          reversal_threshold_mV: float = 5.0, neck_amplitude: float = 0.3,
                          neck_segments: int = 8) -> Composite:
    """The closed loop on the mechanical body (see the module docstring).

    Arguments:
        circuit: the head circuit (:class:`~owjax.navigation.circuit.GradedHeadCircuit`).
        transducer: a :class:`~owjax.sensory.component.GRUTransducer` without a prescribed stimulus.
        field: the arena field the head rod samples (°C for the AFD transducer).
        medium: the body's medium (``agar``, ``water``, a BBC medium number in [0, 1], …).
        afd_gain_pA … reversal_threshold_mV: the read-outs, as :func:`owjax.navigation.loop.build_loop`.
        neck_amplitude, neck_segments: how the steering signal reaches the neck muscles
            (:class:`~owjax.body.circuit.BBCCircuit`).
    """
    from owjax.body.circuit import ActivationToBody, BBCCircuit, BodyToStretchReceptors
    from owjax.body.mechanics import RodBody
    from owjax.navigation.circuit import DORSAL_NECK, FORWARD_CELLS, REVERSAL_CELLS, VENTRAL_NECK
    from owjax.navigation.loop import NeckSteering, ReversalCommand
    from owjax.sensory.component import TransducerDrive

    if transducer.stimulus_values is not None:
        raise ValueError("build_mechanical_loop: the transducer must read its stimulus from the arena "
                         "(no prescribed stimulus)")
    dt = circuit.dtype
    ix = circuit.index
    drive = TransducerDrive(jnp.asarray(afd_gain_pA, dt), jnp.asarray(afd_offset_pA, dt), source="afd",
                            target="circuit", cell_index=[ix("AFDL"), ix("AFDR")], n_cells=circuit.n_cells)
    steer = NeckSteering(jnp.asarray(steer_gain, dt), [ix(c) for c in DORSAL_NECK], [ix(c) for c in VENTRAL_NECK],
                         target="motor")
    rev = ReversalCommand(jnp.asarray(reversal_gain, dt), jnp.asarray(reversal_threshold_mV, dt),
                          [ix(c) for c in REVERSAL_CELLS], [ix(c) for c in FORWARD_CELLS], target="motor")
    motor = BBCCircuit(neck_amplitude=neck_amplitude, neck_segments=neck_segments, dtype=dt)
    couplings = [ArenaAtRodHead(field, dtype=dt), drive, steer, rev,
                 BodyToStretchReceptors(source="body", target="motor"), ActivationToBody(source="motor", target="body")]
    return Composite({"afd": transducer, "circuit": circuit, "motor": motor, "body": RodBody(medium, dtype=dt)},
                     couplings)


def make_mechanical_loop(field: AbstractField, values: Mapping | None = None, parameter_set: str = "C1",
                         dt_ms: float = 10.0, dtype: str = "float32", ablate: Sequence[str] = (),
                         transducer_path=None, memory_tau_s: float | None = None, medium="agar",
                         neck_amplitude: float = 0.3, neck_segments: int = 8) -> Composite:
    """:func:`build_mechanical_loop` with ``values`` applied and ``ablate`` killed, as
    :func:`owjax.navigation.setup.make_loop` builds the navigation level (same circuit, same values).

    ``memory_tau_s`` ``None`` means the loop's default memory of T_c
    (:data:`owjax.navigation.setup.CULTIVATION_MEMORY_TAU_S`)."""
    from owjax.navigation.params import apply_values
    from owjax.navigation.setup import CULTIVATION_MEMORY_TAU_S, head_circuit, navigation_transducer
    from owjax.sensory.component import GRUTransducer

    circuit = head_circuit(parameter_set, float(dt_ms), str(dtype))
    if ablate:
        circuit = circuit.ablate(list(ablate))
    spec, params = navigation_transducer(transducer_path, dtype,
                                         CULTIVATION_MEMORY_TAU_S if memory_tau_s is None else memory_tau_s)
    loop = build_mechanical_loop(circuit, GRUTransducer(spec, params), field, medium=medium,
                                 neck_amplitude=neck_amplitude, neck_segments=neck_segments)
    if values is not None:
        loop = apply_values(loop, values)
    return loop


def _arena(loop: Composite) -> ArenaAtRodHead:
    found = [c for c in loop.couplings if isinstance(c, ArenaAtRodHead)]
    if len(found) != 1:
        raise ValueError("the loop has no ArenaAtRodHead coupling: build it with build_mechanical_loop")
    return found[0]


def mechanical_initial_state(loop: Composite, cultivation_temp_c) -> dict:
    """Initial state: circuit at rest, BBC's motor start, the body straight, and the transducer adapted to
    the cultivation temperature while sensing the temperature at the head rod."""
    from owjax.navigation.loop import adapted_transducer_state

    y_body = loop["body"].initial_state()
    arena = _arena(loop)
    u0 = arena(0.0, loop["body"].outputs(0.0, y_body))
    return {"afd": adapted_transducer_state(loop["afd"], u0, cultivation_temp_c),
            "circuit": loop["circuit"].initial_state(), "motor": loop["motor"].initial_state(), "body": y_body}


def simulate_worms_mechanical(loop: Composite, start_xy_cm, start_heading_rad, cultivation_temp_c,
                              duration_s: float, dt_out_s: float = 1.0, solver: Mapping | None = None):
    """Solve the mechanical loop for a batch of worms (vmapped).

    Arguments:
        loop: :func:`build_mechanical_loop`'s composite (its start position and heading are replaced per worm).
        start_xy_cm: (B, 2) head positions at the start (cm). start_heading_rad: (B,) headings (rad).
        cultivation_temp_c: (B,) cultivation temperatures (°C).
        duration_s, dt_out_s: simulated time and output spacing (s).
        solver: :class:`~owjax.core.solve.SolverConfig` fields (default :data:`MECHANICAL_SOLVER`).

    Returns:
        ``(head_xy_cm (B, T, 2), centroid_xy_cm (B, T, 2), t_s (T,), num_steps (B,))``.
    """
    from owjax.core.solve import SolverConfig, solve_ys

    if not duration_s > 0 or not dt_out_s > 0:
        raise ValueError(f"duration_s ({duration_s}) and dt_out_s ({dt_out_s}) must be > 0")
    n_out = int(round(duration_s / dt_out_s))
    if not np.isclose(n_out * dt_out_s, duration_s):
        raise ValueError(f"duration_s={duration_s} must be a multiple of dt_out_s={dt_out_s}")
    cfg = SolverConfig(**dict(MECHANICAL_SOLVER, **dict(solver or {})))
    ia = loop.couplings.index(_arena(loop))
    t_s = np.arange(n_out + 1) * float(dt_out_s)
    ts_ms = jnp.asarray(t_s * 1000.0, loop["circuit"].dtype)

    def one(xy, th, tc):
        lp = eqx.tree_at(lambda m: (m.couplings[ia].start_xy_cm, m.couplings[ia].start_heading_rad), loop,
                         (jnp.asarray(xy, loop["circuit"].dtype), jnp.asarray(th, loop["circuit"].dtype)))
        sol = solve_ys(lp, None, None, cfg, y0=mechanical_initial_state(lp, tc), save=MECHANICAL_SAVE, ts_ms=ts_ms)
        x, y = sol.ys["body"]["x"], sol.ys["body"]["y"]
        head = plate_xy_cm(x[:, 0], y[:, 0], lp.couplings[ia].start_xy_cm, lp.couplings[ia].start_heading_rad)
        cen = plate_xy_cm(x.mean(1), y.mean(1), lp.couplings[ia].start_xy_cm, lp.couplings[ia].start_heading_rad)
        return head, cen, sol.stats["num_steps"]

    head, cen, steps = jax.vmap(one)(jnp.asarray(start_xy_cm), jnp.asarray(start_heading_rad),
                                     jnp.asarray(cultivation_temp_c))
    return head, cen, t_s, steps

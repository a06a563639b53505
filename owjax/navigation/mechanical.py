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
  ``steer`` input) — the coupling of the navigation level, pointed at the motor loop;
* ``"pirouette"`` (:class:`PirouetteEvents`, default): the circuit's
  :class:`~owjax.navigation.loop.ReversalCommand` starts pirouette events exactly as it does on the
  navigation body (same trigger, same noise column), and each event runs a pirouette program on the
  motor loop (:class:`PirouetteProgram`: half the AVB drive withdrawn and the neck bent ventrally,
  a ≈ 2-rad turn in 3 s). With ``pirouette_duration_s=None`` the reversal command instead withdraws
  the AVB drive directly;
* ``"body"``: the 49-rod body (:class:`~owjax.body.mechanics.RodBody`) in a medium (agar by default).

The body lives in its own frame (head rod at the origin, body along +x, so it crawls towards −x);
:class:`ArenaAtRodHead` places that frame on the plate at the worm's start position and heading,
mirrored so that dorsal is the worm's left and a positive steering signal turns both bodies
counter-clockwise (:func:`plate_xy_cm`). One adaptive solve (Tsit5) integrates all the components;
:func:`simulate_worms_mechanical` vmaps it.

What this level cannot do: BBC's motor loop has no A-class (backward) neurons, so a pirouette is a
ventral turn without the reversal that starts a real one; there is no plate-edge wall; and the solve
costs ≈ 300× the navigation level's per simulated second (experiments/thermotaxis/README.md, "Two body
levels"), so it checks the navigation level on short runs rather than replacing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from owjax.core.component import AbstractComponent, AbstractCoupling, Composite, ParameterInfo, StateVariable
from owjax.navigation.arena import AbstractField
from owjax.navigation.setup import CULTIVATION_MEMORY_TAU_S

__all__ = ["ArenaAtRodHead", "PirouetteEvents", "PirouetteProgram", "build_mechanical_loop", "make_mechanical_loop",
           "mechanical_initial_state", "simulate_worms_mechanical", "run_worms_mechanical", "plate_xy_cm",
           "MECHANICAL_SAVE", "MECHANICAL_SOLVER"]

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


class PirouetteEvents(AbstractComponent):
    """Pirouette events for the mechanical body, started as the navigation body's events mode starts them
    (time in s).

    Input ``reversal`` (the circuit's :class:`~owjax.navigation.loop.ReversalCommand`, a probability per
    noise sample); state ``pirouette`` in [0, 1], which rises within 0.2 s when the trigger
    σ(κ (ξ₃ − Φ⁻¹(1 − reversal))) fires and decays over ``pirouette_duration_s``
    (:func:`owjax.navigation.body.pirouette_trigger`, :func:`~owjax.navigation.body.pirouette_rate`);
    ξ₃ is the third column of the worm's noise table (:func:`owjax.navigation.body.body_noise`).
    """

    noise: Float[Array, "K c"]
    noise_dt_s: float = eqx.field(static=True)
    pirouette_duration_s: float = eqx.field(static=True)
    time_unit_ms = 1000.0

    def __init__(self, noise, noise_dt_s: float = 1.0, pirouette_duration_s: float = 3.0):
        from owjax.navigation.body import NOISE_COLUMNS

        noise = jnp.asarray(noise)
        if noise.ndim != 2 or noise.shape[1] != NOISE_COLUMNS:
            raise ValueError(f"PirouetteEvents: noise must be (K, {NOISE_COLUMNS}) (body_noise), got {noise.shape}")
        if not noise_dt_s > 0 or not pirouette_duration_s > 0:
            raise ValueError(f"noise_dt_s ({noise_dt_s}) and pirouette_duration_s ({pirouette_duration_s}) must be > 0")
        self.noise, self.noise_dt_s, self.pirouette_duration_s = noise, float(noise_dt_s), float(pirouette_duration_s)

    @property
    def input_names(self) -> dict[str, str]:
        return {"reversal": "1"}

    def initial_state(self) -> dict:
        return {"pirouette": jnp.zeros((), self.noise.dtype)}

    def vector_field(self, t, state, inputs=None) -> dict:
        from owjax.navigation.body import noise_at, pirouette_rate, pirouette_trigger

        rev = (inputs or {}).get("reversal", 0.0)
        xi3 = noise_at(self.noise, self.noise_dt_s, t, columns=(2,))[0]
        p = state["pirouette"]
        rate = pirouette_rate(p, pirouette_trigger(jnp.asarray(rev, p.dtype), xi3.astype(p.dtype)), self.pirouette_duration_s)
        return {"pirouette": rate.astype(p.dtype)}

    def outputs(self, t, state) -> dict[str, Array]:
        return {"pirouette": state["pirouette"]}

    def state_variables(self) -> dict[str, StateVariable]:
        return {"pirouette": StateVariable("pirouette", "1", "pirouette event in progress (0: none, 1: full)", "")}

    def parameter_info(self) -> dict[str, ParameterInfo]:
        return {"noise": ParameterInfo("noise", "1", None, "sample", "the worm's noise table (ξ₃ triggers)", "choice",
                                       trainable=False)}


class PirouetteProgram(AbstractCoupling):
    """A pirouette on the rod body (pirouette events → one of the motor loop's inputs): ``scale · pirouette``.

    Two of these make the program: ``reversal`` (scale 0.5: half the AVB drive withdrawn) and ``steer``
    (scale −3: the neck bent ventrally, tanh(3) ≈ 1 of ``neck_amplitude``). BBC's loop cannot crawl
    backwards, so a pirouette is a ventral turn; 3 s of it turn a crawling body by ≈ 2 rad (measured on
    agar, README "Two body levels"), the order of the navigation body's pirouette reorientation.
    """

    scale: float = eqx.field(static=True)
    source: str = eqx.field(static=True)
    target: str = eqx.field(static=True)
    target_input: str = eqx.field(static=True)

    def __init__(self, target_input: str, scale: float, source: str = "pirouette", target: str = "motor"):
        if target_input not in ("reversal", "steer"):
            raise ValueError(f"PirouetteProgram drives the motor loop's 'reversal' or 'steer', got {target_input!r}")
        self.scale, self.source, self.target, self.target_input = float(scale), source, target, target_input

    def __call__(self, t, source_outputs) -> Array:
        return self.scale * source_outputs["pirouette"]


#: the pirouette program on the rod body: AVB drive withdrawn by half, neck bent ventrally
PIROUETTE_PROGRAM = {"reversal": 0.5, "steer": -3.0}


def build_mechanical_loop(circuit, transducer, field: AbstractField, medium="agar", afd_gain_pA: float = 1.0,
                          afd_offset_pA: float = 0.0, steer_gain: float = 1.0, reversal_gain: float = 1.0,
                          reversal_threshold_mV: float = 5.0, neck_amplitude: float = 0.3,
                          neck_segments: int = 8, pirouette_duration_s: float | None = 3.0, noise=None,
                          noise_dt_s: float = 1.0, afd_phasic: Mapping | None = None) -> Composite:
    """The closed loop on the mechanical body (see the module docstring).

    Arguments:
        circuit: the head circuit (:class:`~owjax.navigation.circuit.GradedHeadCircuit`).
        transducer: a :class:`~owjax.sensory.component.GRUTransducer` without a prescribed stimulus.
        field: the arena field the head rod samples (°C for the AFD transducer).
        medium: the body's medium (``agar``, ``water``, a BBC medium number in [0, 1], …).
        afd_gain_pA … reversal_threshold_mV: the read-outs, as :func:`owjax.navigation.loop.build_loop`.
        neck_amplitude, neck_segments: how the steering signal reaches the neck muscles
            (:class:`~owjax.body.circuit.BBCCircuit`).
        pirouette_duration_s: pirouettes are events of about this length (:class:`PirouetteEvents`, started
            by the circuit's reversal command, carried out by :data:`PIROUETTE_PROGRAM`); ``None``: the
            reversal command withdraws the AVB drive directly, continuously.
        noise, noise_dt_s: the events' noise table (K, 3) (a placeholder of zeros for 60 s when ``None``;
            :func:`simulate_worms_mechanical` sets one per worm).
        afd_phasic: AFD's phasic channel, as :func:`owjax.navigation.loop.build_loop` (``None``: none).
    """
    from owjax.body.circuit import ActivationToBody, BBCCircuit, BodyToStretchReceptors
    from owjax.body.mechanics import RodBody
    from owjax.navigation.loop import circuit_couplings, with_afd_phasic

    if transducer.stimulus_values is not None:
        raise ValueError("build_mechanical_loop: the transducer must read its stimulus from the arena "
                         "(no prescribed stimulus)")
    dt = circuit.dtype
    events = pirouette_duration_s is not None
    motor = BBCCircuit(neck_amplitude=neck_amplitude, neck_segments=neck_segments, dtype=dt)
    couplings = [ArenaAtRodHead(field, dtype=dt)]
    couplings += circuit_couplings(circuit, afd_gain_pA, afd_offset_pA, steer_gain, reversal_gain,
                                   reversal_threshold_mV, steer_target="motor",
                                   reversal_target="pirouette" if events else "motor")
    couplings += [BodyToStretchReceptors(source="body", target="motor"), ActivationToBody(source="motor", target="body")]
    components = {"afd": transducer, "circuit": circuit, "motor": motor, "body": RodBody(medium, dtype=dt)}
    if events:
        from owjax.navigation.body import NOISE_COLUMNS

        if noise is None:
            noise = jnp.zeros((int(60.0 / noise_dt_s) + 2, NOISE_COLUMNS), dt)
        components["pirouette"] = PirouetteEvents(jnp.asarray(noise, dt), noise_dt_s, pirouette_duration_s)
        couplings += [PirouetteProgram(k, v) for k, v in PIROUETTE_PROGRAM.items()]
    return Composite(*with_afd_phasic(components, couplings, circuit, afd_phasic))


def make_mechanical_loop(field: AbstractField, values: Mapping | None = None, parameter_set: str = "C1",
                         dt_ms: float = 10.0, dtype: str = "float32", ablate: Sequence[str] = (),
                         transducer_path=None, memory_tau_s: float | None = CULTIVATION_MEMORY_TAU_S, medium="agar",
                         neck_amplitude: float = 0.3, neck_segments: int = 8,
                         pirouette_duration_s: float | None = 3.0, noise_dt_s: float = 1.0) -> Composite:
    """:func:`build_mechanical_loop` with ``values`` applied and ``ablate`` killed, as
    :func:`owjax.navigation.setup.make_loop` builds the navigation level (same circuit, same values, same
    arguments: ``memory_tau_s`` ``None`` is the transducer's fitted memory)."""
    from owjax.navigation.params import afd_phasic_from_values, apply_values
    from owjax.navigation.setup import circuit_and_transducer

    circuit, transducer = circuit_and_transducer(parameter_set, dt_ms, dtype, ablate, transducer_path, memory_tau_s)
    loop = build_mechanical_loop(circuit, transducer, field, medium=medium,
                                 neck_amplitude=neck_amplitude, neck_segments=neck_segments,
                                 pirouette_duration_s=pirouette_duration_s, noise_dt_s=noise_dt_s,
                                 afd_phasic=afd_phasic_from_values(values))
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
    from owjax.navigation.loop import adapted_transducer_state, phasic_initial_state

    y_body = loop["body"].initial_state()
    arena = _arena(loop)
    u0 = arena(0.0, loop["body"].outputs(0.0, y_body))
    y = {"afd": adapted_transducer_state(loop["afd"], u0, cultivation_temp_c),
         "circuit": loop["circuit"].initial_state(), "motor": loop["motor"].initial_state(), "body": y_body}
    y |= phasic_initial_state(loop, y["afd"])
    if "pirouette" in loop.components:
        y["pirouette"] = loop["pirouette"].initial_state()
    return y


def simulate_worms_mechanical(loop: Composite, start_xy_cm, start_heading_rad, cultivation_temp_c,
                              duration_s: float, dt_out_s: float = 1.0, solver: Mapping | None = None,
                              save_circuit: bool = False, noise=None) -> dict:
    """Solve the mechanical loop for a batch of worms (vmapped).

    Arguments:
        loop: :func:`build_mechanical_loop`'s composite (its start position and heading are replaced per worm).
        start_xy_cm: (B, 2) head positions at the start (cm). start_heading_rad: (B,) headings (rad).
        cultivation_temp_c: (B,) cultivation temperatures (°C).
        duration_s, dt_out_s: simulated time and output spacing (s).
        solver: :class:`~owjax.core.solve.SolverConfig` fields (default :data:`MECHANICAL_SOLVER`).
        save_circuit: also return the head circuit's potentials.
        noise: (B, K, 3) noise tables (:func:`owjax.navigation.body.body_noise`), needed when the loop has
            pirouette events (:class:`PirouetteEvents`); they must cover ``duration_s``.

    Returns:
        ``{"head_xy_cm": (B, T, 2), "centroid_xy_cm": (B, T, 2), "t_s": (T,), "num_steps": (B,)}``, with
        pirouette events ``"pirouette": (B, T)`` (the event state), and with ``save_circuit``
        ``"circuit_V_mV": (B, T, cells)``.
    """
    from owjax.core.solve import SolverConfig, solve_ys

    if not duration_s > 0 or not dt_out_s > 0:
        raise ValueError(f"duration_s ({duration_s}) and dt_out_s ({dt_out_s}) must be > 0")
    n_out = int(round(duration_s / dt_out_s))
    if not np.isclose(n_out * dt_out_s, duration_s):
        raise ValueError(f"duration_s={duration_s} must be a multiple of dt_out_s={dt_out_s}")
    cfg = SolverConfig(**dict(MECHANICAL_SOLVER, **dict(solver or {})))
    ia = loop.couplings.index(_arena(loop))
    events = "pirouette" in loop.components
    save = MECHANICAL_SAVE + (("circuit.V",) if save_circuit else ()) + (("pirouette.pirouette",) if events else ())
    n_worms = int(np.shape(start_xy_cm)[0])
    if events:
        if noise is None:
            raise ValueError("simulate_worms_mechanical: the loop has pirouette events; pass noise (B, K, 3) "
                             "tables (owjax.navigation.body.body_noise)")
        need = int(duration_s / loop["pirouette"].noise_dt_s) + 2
        if np.shape(noise)[0] != n_worms or np.shape(noise)[1] < need:
            raise ValueError(f"simulate_worms_mechanical: noise must be ({n_worms}, >= {need}, 3) for {duration_s} s, "
                             f"got {np.shape(noise)}")
    else:
        noise = jnp.zeros((n_worms, 1, 3), loop["circuit"].dtype)
    t_s = np.arange(n_out + 1) * float(dt_out_s)
    ts_ms = jnp.asarray(t_s * 1000.0, loop["circuit"].dtype)

    def one(xy, th, tc, nz):
        lp = eqx.tree_at(lambda m: (m.couplings[ia].start_xy_cm, m.couplings[ia].start_heading_rad), loop,
                         (jnp.asarray(xy, loop["circuit"].dtype), jnp.asarray(th, loop["circuit"].dtype)))
        if events:
            lp = eqx.tree_at(lambda m: m.components["pirouette"].noise, lp, jnp.asarray(nz, loop["circuit"].dtype))
        sol = solve_ys(lp, None, None, cfg, y0=mechanical_initial_state(lp, tc), save=save, ts_ms=ts_ms)
        x, y = sol.ys["body"]["x"], sol.ys["body"]["y"]
        head = plate_xy_cm(x[:, 0], y[:, 0], lp.couplings[ia].start_xy_cm, lp.couplings[ia].start_heading_rad)
        cen = plate_xy_cm(x.mean(1), y.mean(1), lp.couplings[ia].start_xy_cm, lp.couplings[ia].start_heading_rad)
        out = {"head_xy_cm": head, "centroid_xy_cm": cen, "num_steps": sol.stats["num_steps"]}
        if save_circuit:
            out["circuit_V_mV"] = sol.ys["circuit"]["V"]
        if events:
            out["pirouette"] = sol.ys["pirouette"]["pirouette"]
        return out

    out = jax.vmap(one)(jnp.asarray(start_xy_cm), jnp.asarray(start_heading_rad), jnp.asarray(cultivation_temp_c),
                        jnp.asarray(noise))
    return dict(out, t_s=t_s)


@eqx.filter_jit
def _solve_chunk_mechanical(loop, xy, heading, tc, noise, duration_s, dt_out_s, solver):
    return simulate_worms_mechanical(loop, xy, heading, tc, duration_s, dt_out_s, solver, save_circuit=True,
                                     noise=noise)


def run_worms_mechanical(loop: Composite, worms: Mapping, duration_s: float, dt_out_s: float = 1.0, batch: int = 8,
                         solver: Mapping | None = None, progress: bool = True) -> tuple[np.ndarray, dict, dict]:
    """Centroid tracks (B, T, 2) in cm of ``worms`` (:func:`~owjax.navigation.setup.draw_worms`; their noise
    tables trigger the pirouette events) on the mechanical level, solved ``batch`` at a time
    (:func:`~owjax.navigation.evaluate.worm_chunks`) with a progress bar.

    Returns:
        ``(tracks, potential range of the head circuit (as the navigation level reports it),
        {"head_xy_cm": (B, T, 2), "num_steps": (B,)[, "pirouette": (B, T)]})``.
    """
    from tqdm.auto import tqdm

    from owjax.navigation.evaluate import potential_range, worm_chunks

    n = int(worms["xy"].shape[0])
    chunks = worm_chunks({k: worms[k] for k in ("xy", "heading", "tc", "noise")}, batch)
    kept, v_lo, v_hi = {}, [], []
    for chunk, m in tqdm(chunks, total=-(-n // batch), desc=f"mechanical body, {n} worms × {duration_s:g} s",
                         disable=not progress):
        out = _solve_chunk_mechanical(loop, chunk["xy"], chunk["heading"], chunk["tc"], chunk["noise"],
                                      float(duration_s), float(dt_out_s), solver)
        for k in ("centroid_xy_cm", "head_xy_cm", "num_steps", "pirouette"):
            if k in out:
                kept.setdefault(k, []).append(np.asarray(out[k])[:m])
        v = np.asarray(out["circuit_V_mV"])[:m]
        v_lo.append(v.min(axis=(0, 1)))
        v_hi.append(v.max(axis=(0, 1)))
    c = loop["circuit"]
    rng = potential_range(c.cell_names, np.min(v_lo, 0), np.max(v_hi, 0), c.alive)
    kept = {k: np.concatenate(v, 0) for k, v in kept.items()}
    return kept.pop("centroid_xy_cm"), rng, kept

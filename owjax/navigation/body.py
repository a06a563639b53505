"""The navigation-level body: a worm as a point that crawls, sweeps its head, steers and pirouettes.

After the Izquierdo–Lockery klinotaxis agents (Izquierdo & Lockery 2010; Izquierdo, Williams & Beer
2015): a centroid moving at constant speed along its heading, a head that sweeps left and right
around it with a fixed period, a heading that turns with the dorsal–ventral bias of the neck motor
neurons, and pirouettes (reversal + large reorientation) that the circuit commands. Everything is
smooth, so ``jax.grad`` goes through minutes of navigation. Time is in **seconds**
(``time_unit_ms = 1000``), lengths in **cm**, angles in **rad**.

State ``pos`` (2,) cm, ``heading`` rad, ``phase`` (head-sweep phase, rad). With inputs ``steer``
(dimensionless: neck dorsal minus ventral drive) and ``reversal`` (in [0, 1]: the pirouette drive)::

    d pos/dt     = v · (1 − 2·reversal) · (cos θ, sin θ)
    d θ/dt       = ω_steer · tanh(steer) + ω_pirouette · reversal · ξ₁(t) + σ_θ · ξ₂(t)
    d phase/dt   = 2π / T_sweep
    head         = pos + ℓ_head · (cos(θ + ψ), sin(θ + ψ)),   ψ = A_head · sin(phase)

With ``pirouette_duration_s`` set, pirouettes are **events** rather than a continuous drive (the
``events`` mode): ``reversal`` is then the probability per noise sample (≈ per second) of *starting*
one, and a state ``pirouette`` p ∈ [0, 1] carries it out::

    trigger      = σ(κ (ξ₃(t) − Φ⁻¹(1 − reversal)))          (ξ₃ a third noise column; P(trigger) = reversal)
    d p/dt       = trigger · (1 − p)/τ_on − p/τ_pirouette
    d pos/dt     = v · (1 − 2p) · (cos θ, sin θ),    d θ/dt = … + ω_pirouette · p · ξ₁(t) + …

so a pirouette, once started, runs for ≈ ``pirouette_duration_s`` whatever the circuit senses while
it backs up — as a worm's reversal-and-turn bout does (Pierce-Shimomura et al. 1999: the *rate* of
pirouettes, not their course, is what dC/dt modulates). τ_on = 0.2 s, κ = 10 (the trigger's
sharpness; smooth, so gradients pass, as a relaxed sample). Without it (the default,
``pirouette_duration_s=None``) ``reversal`` drives the body directly, as in the equations above.

plus, when the loop has a wall (:class:`owjax.navigation.loop.PlateEdge`), its input ``edge`` =
(push_x, push_y, turn): a velocity back onto the plate and a turn towards the plate's centre, both
switched on smoothly at the edge.

ξ₁, ξ₂ are a worm's own noise (unit-variance Gaussian samples every ``noise_dt_s``, linearly
interpolated): ξ₁ picks the direction and size of each pirouette's turn, ξ₂ the slow wandering of
the heading. The noise is a fixed (non-trainable) leaf, so a run is deterministic given its noise and
differentiable in everything else. Defaults: v = 0.022 cm/s (crawling on agar; Pierce-Shimomura et
al. 1999), T_sweep = 4.2 s (Izquierdo & Lockery 2010), ℓ_head = 0.05 cm (half a body length),
A_head = 0.6 rad.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from owjax.core.component import AbstractComponent, ParameterInfo, StateVariable

__all__ = ["NavigationBody", "body_noise", "noise_at", "pirouette_trigger", "pirouette_rate"]


#: columns of a noise table: ξ₁ (pirouette turn), ξ₂ (heading wander), ξ₃ (pirouette trigger, events mode)
NOISE_COLUMNS = 3
#: events mode: the trigger's rise time τ_on (s) and sharpness κ
PIROUETTE_ONSET_S = 0.2
TRIGGER_SHARPNESS = 10.0


def noise_at(noise: Float[Array, "K c"], noise_dt_s: float, t_s, columns=None) -> Float[Array, " c"]:
    """The noise table's columns (all, or ``columns``) at time ``t_s`` (s), linearly interpolated; beyond
    the table it is an error to ask (:func:`body_noise` covers the duration), so the last sample is held
    only within one step."""
    ts = jnp.arange(noise.shape[0], dtype=noise.dtype) * noise_dt_s
    cols = range(noise.shape[1]) if columns is None else columns
    return jnp.stack([jnp.interp(t_s, ts, noise[:, j]) for j in cols])


def pirouette_trigger(reversal, xi3) -> Array:
    """Events mode: the trigger σ(κ (ξ₃ − Φ⁻¹(1 − reversal))) in [0, 1] that starts a pirouette with
    probability ``reversal`` per unit-Gaussian noise sample ξ₃; ``reversal`` is kept inside
    (1e-6, 1 − 1e-6) for Φ⁻¹ (a probability of exactly 0 or 1 has an infinite quantile)."""
    from jax.scipy.special import ndtri

    q = jnp.clip(reversal, 1e-6, 1.0 - 1e-6)
    return jax.nn.sigmoid(TRIGGER_SHARPNESS * (xi3 - ndtri(1.0 - q)))


def pirouette_rate(pirouette, trigger, duration_s: float) -> Array:
    """Events mode: d(pirouette)/dt (per s) of the event state in [0, 1]: onset at the trigger within
    :data:`PIROUETTE_ONSET_S`, decay over ``duration_s``."""
    return trigger * (1.0 - pirouette) / PIROUETTE_ONSET_S - pirouette / duration_s


def body_noise(key, duration_s: float, noise_dt_s: float = 1.0, dtype=jnp.float32) -> Float[Array, "K 3"]:
    """A worm's noise table: (K, 3) unit Gaussian samples every ``noise_dt_s`` s covering ``duration_s``
    (columns ξ₁, ξ₂, ξ₃: :data:`NOISE_COLUMNS`)."""

    if not (duration_s > 0 and noise_dt_s > 0):
        raise ValueError(f"body_noise: duration_s ({duration_s}) and noise_dt_s ({noise_dt_s}) must be > 0")
    k = int(np.ceil(duration_s / noise_dt_s)) + 2
    return jax.random.normal(key, (k, NOISE_COLUMNS), dtype)


class NavigationBody(AbstractComponent):
    """The navigation-level body (see the module docstring).

    Arguments:
        noise: (K, 2) or (K, 3) noise table (:func:`body_noise`), samples every ``noise_dt_s``; the
            events mode needs the third column.
        start_xy_cm: (2,) start position, cm.
        start_heading_rad: start heading, rad.
        speed_cm_s: crawling speed, cm/s.
        sweep_period_s: head-sweep period, s.
        head_amplitude_rad: head-sweep amplitude ψ, rad.
        head_length_cm: distance centroid → head (the sampling point), cm.
        steer_rate_rad_s: ω_steer, the turning rate at full dorsal/ventral bias, rad/s.
        pirouette_rate_rad_s: ω_pirouette, rad/s per unit noise at full reversal drive.
        wander_rate_rad_s: σ_θ, rad/s per unit noise.
        noise_dt_s: spacing of the noise samples, s.
        pirouette_duration_s: τ_pirouette, s: pirouettes are events that last about this long and
            ``reversal`` is their start probability per noise sample; ``None``: ``reversal`` drives the
            body directly.
    """

    noise: Float[Array, "K 2"]
    start_xy_cm: Float[Array, "2"]
    start_heading_rad: Float[Array, ""]
    speed_cm_s: Float[Array, ""]
    steer_rate_rad_s: Float[Array, ""]
    pirouette_rate_rad_s: Float[Array, ""]
    wander_rate_rad_s: Float[Array, ""]
    sweep_period_s: float = eqx.field(static=True)
    head_amplitude_rad: float = eqx.field(static=True)
    head_length_cm: float = eqx.field(static=True)
    noise_dt_s: float = eqx.field(static=True)
    pirouette_duration_s: float | None = eqx.field(static=True)
    time_unit_ms: ClassVar[float] = 1000.0

    def __init__(self, noise, start_xy_cm=(0.0, 0.0), start_heading_rad=0.0, speed_cm_s=0.022,
                 sweep_period_s=4.2, head_amplitude_rad=0.6, head_length_cm=0.05, steer_rate_rad_s=0.3,
                 pirouette_rate_rad_s=1.5, wander_rate_rad_s=0.05, noise_dt_s=1.0, pirouette_duration_s=None,
                 dtype=None):
        noise = jnp.asarray(noise) if dtype is None else jnp.asarray(noise, dtype)
        dt = noise.dtype
        if noise.ndim != 2 or noise.shape[1] not in (2, 3) or noise.shape[0] < 2:
            raise ValueError(f"NavigationBody: noise must have shape (K >= 2, 2 or 3), got {noise.shape}")
        if pirouette_duration_s is not None:
            if not float(pirouette_duration_s) > 0:
                raise ValueError(f"NavigationBody.pirouette_duration_s must be > 0 or None, got {pirouette_duration_s!r}")
            if noise.shape[1] < 3:
                raise ValueError("NavigationBody: pirouette events need a noise table with the trigger column "
                                 f"ξ₃, shape (K, 3) (body_noise); got {noise.shape}")
        self.pirouette_duration_s = None if pirouette_duration_s is None else float(pirouette_duration_s)
        self.noise = noise
        self.start_xy_cm = jnp.asarray(start_xy_cm, dt).reshape(2)
        self.start_heading_rad = jnp.asarray(start_heading_rad, dt)
        for name, v in (("speed_cm_s", speed_cm_s), ("sweep_period_s", sweep_period_s),
                        ("head_length_cm", head_length_cm), ("noise_dt_s", noise_dt_s)):
            if not (float(v) > 0):
                raise ValueError(f"NavigationBody.{name} must be > 0, got {v!r}")
        for name, v in (("head_amplitude_rad", head_amplitude_rad), ("steer_rate_rad_s", steer_rate_rad_s),
                        ("pirouette_rate_rad_s", pirouette_rate_rad_s), ("wander_rate_rad_s", wander_rate_rad_s)):
            if not (float(v) >= 0):
                raise ValueError(f"NavigationBody.{name} must be >= 0, got {v!r}")
        self.speed_cm_s = jnp.asarray(speed_cm_s, dt)
        self.steer_rate_rad_s = jnp.asarray(steer_rate_rad_s, dt)
        self.pirouette_rate_rad_s = jnp.asarray(pirouette_rate_rad_s, dt)
        self.wander_rate_rad_s = jnp.asarray(wander_rate_rad_s, dt)
        self.sweep_period_s = float(sweep_period_s)
        self.head_amplitude_rad = float(head_amplitude_rad)
        self.head_length_cm = float(head_length_cm)
        self.noise_dt_s = float(noise_dt_s)

    @property
    def input_names(self) -> dict[str, str]:
        return {"steer": "1", "reversal": "1", "edge": "cm/s, cm/s, rad/s"}

    def noise_at(self, t_s) -> Float[Array, " c"]:
        """:func:`noise_at` of this body's table."""
        return noise_at(self.noise, self.noise_dt_s, t_s)

    @property
    def events(self) -> bool:
        """Pirouettes are events (``pirouette_duration_s`` set)."""
        return self.pirouette_duration_s is not None

    def initial_state(self) -> dict:
        z = jnp.zeros((), self.noise.dtype)
        y = {"pos": self.start_xy_cm, "heading": self.start_heading_rad + z, "phase": z}
        if self.events:
            y["pirouette"] = z
        return y

    def pirouette_trigger(self, reversal, xi3) -> Array:
        """Events mode: :func:`pirouette_trigger`."""
        return pirouette_trigger(reversal, xi3)

    def head_angle(self, state) -> Array:
        """ψ, the head's angle to the heading, rad."""
        return self.head_amplitude_rad * jnp.sin(state["phase"])

    def vector_field(self, t, state, inputs=None) -> dict:
        inputs = inputs or {}
        steer = inputs.get("steer", 0.0)
        rev = inputs.get("reversal", 0.0)
        th = state["heading"]
        xi = self.noise_at(t)
        out = {}
        if self.events:
            p = state["pirouette"]
            trig = self.pirouette_trigger(rev, xi[2])
            out["pirouette"] = pirouette_rate(p, trig, self.pirouette_duration_s)
            rev = p
        v = self.speed_cm_s * (1.0 - 2.0 * rev)
        dpos = v * jnp.stack([jnp.cos(th), jnp.sin(th)])
        dth = (self.steer_rate_rad_s * jnp.tanh(steer) + self.pirouette_rate_rad_s * rev * xi[0]
               + self.wander_rate_rad_s * xi[1])
        edge = inputs.get("edge")
        if edge is not None:  # the plate's edge (owjax.navigation.loop.PlateEdge): push back in, turn inwards
            dpos = dpos + edge[:2]
            dth = dth + edge[2]
        dphase = jnp.asarray(2.0 * np.pi / self.sweep_period_s, th.dtype) + 0.0 * th
        return {"pos": dpos.astype(state["pos"].dtype), "heading": dth + 0.0 * th, "phase": dphase, **out}

    def outputs(self, t, state) -> dict[str, Array]:
        """``head_xy_cm`` (2,), ``pos_cm`` (2,), ``heading_rad``."""
        a = state["heading"] + self.head_angle(state)
        head = state["pos"] + self.head_length_cm * jnp.stack([jnp.cos(a), jnp.sin(a)])
        return {"head_xy_cm": head, "pos_cm": state["pos"], "heading_rad": state["heading"]}

    def state_variables(self) -> dict[str, StateVariable]:
        return {"pos": StateVariable("pos", "cm", "centroid position (x, y)", "coordinate"),
                "heading": StateVariable("heading", "rad", "direction of travel", ""),
                "phase": StateVariable("phase", "rad", "head-sweep phase", "")} | (
            {"pirouette": StateVariable("pirouette", "1", "pirouette in progress (events mode): 1 = backing "
                                        "and turning", "")} if self.events else {})

    def parameter_info(self) -> dict[str, ParameterInfo]:
        return {
            "noise": ParameterInfo("noise", "1", None, "sample", "the worm's noise table (ξ₁, ξ₂)", "sampled",
                                   trainable=False),
            "start_xy_cm": ParameterInfo("start_xy_cm", "cm", None, "coordinate", "start position", "input",
                                         trainable=False),
            "start_heading_rad": ParameterInfo("start_heading_rad", "rad", None, "", "start heading", "input",
                                               trainable=False),
            "speed_cm_s": ParameterInfo("speed_cm_s", "cm/s", (0.005, 0.05), "", "crawling speed",
                                        "Pierce-Shimomura et al. 1999 (0.022 cm/s)"),
            "steer_rate_rad_s": ParameterInfo("steer_rate_rad_s", "rad/s", (0.0, 1.0), "",
                                              "turning rate at full neck bias", "Izquierdo & Lockery 2010 (order)"),
            "pirouette_rate_rad_s": ParameterInfo("pirouette_rate_rad_s", "rad/s", (0.0, 5.0), "",
                                                  "turning rate per unit noise at full reversal drive",
                                                  "Pierce-Shimomura et al. 1999 (order)"),
            "wander_rate_rad_s": ParameterInfo("wander_rate_rad_s", "rad/s", (0.0, 0.5), "",
                                               "heading wander per unit noise", "choice"),
        }

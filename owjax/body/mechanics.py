"""The planar viscoelastic rod body of Boyle, Berri & Cohen (2012) as an owjax component.

Model (BBC 2012; reference code OpenSourceBrain/CelegansNeuromechanicalGaitModulation ``worm.cc``
and openworm/CE_locomotion ``WormBody.cpp``). 49 rigid rods (cross-sections of the worm), rod i
with centre (x_i, y_i) and orientation φ_i; its dorsal and ventral end points are
p^D_i = c_i + R_i u_i and p^V_i = c_i − R_i u_i with u_i = (cos φ_i, sin φ_i). Each of the 48
segments joins rods i and i+1 by four visco-elastic elements: the dorsal and ventral *lateral*
elements (passive spring k_PE + damper D_PE, in parallel with the muscle: stiffness k_AE·A,
damping D_AE·A, rest length L0 − A(L0 − L_min) for activation A ∈ [0, 1]) and two crossing
*diagonal* elements (k_DE, D_DE) that keep the segment's shape. Each element of length L
(direction e) pulls/pushes its end points with the scalar force

    T = k (L0 − L) − d dL/dt          (T > 0: the element pushes its ends apart).

There is no inertia: every rod moves so that the drag of the medium balances the elastic forces,
with anisotropic resistive-force drag: C_perp across the body (along the rod) and C_par along the
body axis for translation, and f_rot · R_i² · C_par for rotation.

Written in generalised coordinates q = (x_i, y_i, φ_i) and with j_e = ∂L_e/∂q the force balance is

    (D(q) + Σ_e d_e j_e j_eᵀ) q̇ = Σ_e T^elastic_e(q, A) j_e,

a gradient flow: the left matrix M(q) is symmetric positive definite and block-tridiagonal (3 × 3
blocks), so q̇ = M⁻¹ Q is an ordinary ODE. BBC integrate the same equations as a DAE with
SUNDIALS IDA (CE_locomotion with a semi-implicit Euler); solving M q̇ = Q inside the right-hand
side by block cyclic reduction turns it into an ODE that an explicit adaptive solver integrates
with steps of tens of ms, because every deformation mode is internally damped (the stiffest rate
is k_DE / D_DE = 100 s⁻¹; docs/body.md has the measurements).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from owjax.body import geometry as geo
from owjax.body.linalg import solve_block_tridiagonal
from owjax.body.media import Medium, resolve_medium
from owjax.core.component import AbstractComponent, ParameterInfo, StateVariable

__all__ = ["RodBody", "element_geometry", "rod_endpoints", "activation_per_segment", "check_activation",
           "ROTATIONAL_DRAG_CHOICES"]

#: dorsal lateral, ventral lateral, diagonal dorsal→ventral, diagonal ventral→dorsal
_SIDE_A = np.array([1.0, -1.0, 1.0, -1.0])
_SIDE_B = np.array([1.0, -1.0, -1.0, 1.0])
ROTATIONAL_DRAG_CHOICES = {"bbc_code": geo.ROTATIONAL_DRAG_FACTOR_BBC_CODE, "paper": geo.ROTATIONAL_DRAG_FACTOR_PAPER}


def rod_endpoints(x: Float[Array, " rods"], y: Float[Array, " rods"], phi: Float[Array, " rods"],
                  radius_mm: Float[Array, " rods"]) -> tuple[Float[Array, "rods 2"], Float[Array, "rods 2"]]:
    """Dorsal and ventral end points of every rod (mm)."""
    c = jnp.stack([x, y], -1)
    u = jnp.stack([jnp.cos(phi), jnp.sin(phi)], -1) * radius_mm[:, None]
    return c + u, c - u


def element_geometry(x, y, phi, radius_mm):
    """Lengths (4, seg), unit directions (4, seg, 2) and ∂L/∂q (4, seg, 6) of the four element kinds.

    Element order: dorsal lateral, ventral lateral, diagonal D_i→V_{i+1}, diagonal V_i→D_{i+1}.
    The 6 columns of ∂L/∂q are (x_i, y_i, φ_i, x_{i+1}, y_{i+1}, φ_{i+1}).
    """
    dt = x.dtype
    sa = jnp.asarray(_SIDE_A, dt)[:, None]
    sb = jnp.asarray(_SIDE_B, dt)[:, None]
    c = jnp.stack([x, y], -1)
    cos, sin = jnp.cos(phi), jnp.sin(phi)
    u = jnp.stack([cos, sin], -1)
    nrm = jnp.stack([-sin, cos], -1)  # ∂u/∂φ
    r0, r1 = radius_mm[:-1], radius_mm[1:]
    pa = c[None, :-1] + (sa * r0)[..., None] * u[None, :-1]
    pb = c[None, 1:] + (sb * r1)[..., None] * u[None, 1:]
    d = pb - pa
    length = jnp.sqrt(jnp.sum(d * d, -1))
    e = d / length[..., None]
    rot_a = -sa * r0 * jnp.sum(e * nrm[None, :-1], -1)
    rot_b = sb * r1 * jnp.sum(e * nrm[None, 1:], -1)
    jac = jnp.concatenate([-e, rot_a[..., None], e, rot_b[..., None]], -1)
    return length, e, jac


def activation_per_segment(activation: Float[Array, "2 n"], n_segments: int = geo.N_SEGMENTS) -> Float[Array, "2 seg"]:
    """Dorsal/ventral activation per body segment from (2, 48) or (2, 24) (each of 24 muscle
    segments drives two body segments). Shape errors are raised at trace time."""
    a = jnp.asarray(activation)
    if a.ndim != 2 or a.shape[0] != 2 or a.shape[1] not in (n_segments, n_segments // 2):
        raise ValueError(f"muscle_activation must have shape (2, {n_segments}) or (2, {n_segments // 2}) "
                         f"(row 0 dorsal, row 1 ventral, column 0 at the head), got {a.shape}")
    if a.shape[1] == n_segments // 2:
        a = jnp.repeat(a, 2, axis=1)
    return a


def check_activation(activation: ArrayLike, name: str = "muscle activation") -> np.ndarray:
    """Eager check of concrete activation values: finite and within [0, 1] (never clipped)."""
    a = np.asarray(activation, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or Inf ({int(np.sum(~np.isfinite(a)))} entries)")
    lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must lie in [0, 1] (it is not clipped); got values in [{lo:.4g}, {hi:.4g}]")
    return a


class RodBody(AbstractComponent):
    """The BBC 2012 rod body: 49 rods, 48 segments, state (x, y, φ) per rod; time unit s.

    Arguments:
        medium: ``"agar"``, ``"water"``, a number in [0, 1] or a :class:`~owjax.body.media.Medium`.
        rotational_drag: ``"bbc_code"`` (4π, what worm.cc does; default, the circuit was tuned with
            it) or ``"paper"`` (1, BBC paper and CE_locomotion) or a positive number.
        dtype: float dtype of the parameters (default: JAX's default float).

    Input ``muscle_activation`` (2, 48) or (2, 24), values in [0, 1] (row 0 dorsal, column 0 head);
    missing means relaxed muscles. Outputs: ``lateral_length_mm`` (2, 48) (the stretch-receptor
    signal of the BBC circuit), ``x_mm``/``y_mm`` (49,) skeleton.
    """

    time_unit_ms = 1000.0

    radius_mm: Float[Array, " rods"]
    lateral_rest_mm: Float[Array, " seg"]
    diagonal_rest_mm: Float[Array, " seg"]
    muscle_min_mm: Float[Array, " seg"]
    k_lateral: Float[Array, ""]
    d_lateral: Float[Array, ""]
    k_muscle: Float[Array, ""]
    d_muscle: Float[Array, ""]
    k_diagonal: Float[Array, ""]
    d_diagonal: Float[Array, ""]
    c_par: Float[Array, ""]
    c_perp: Float[Array, ""]
    rotational_drag_factor: Float[Array, ""]
    stretch_stiffening_per_mm3: float = eqx.field(static=True)

    def __init__(self, medium: str | float | Medium | Mapping = "agar", rotational_drag: str | float = "bbc_code",
                 dtype=None):
        med = resolve_medium(medium)
        if isinstance(rotational_drag, str):
            if rotational_drag not in ROTATIONAL_DRAG_CHOICES:
                raise ValueError(f"unknown rotational_drag {rotational_drag!r}; allowed: {sorted(ROTATIONAL_DRAG_CHOICES)} "
                                 "or a positive number")
            f_rot = ROTATIONAL_DRAG_CHOICES[rotational_drag]
        else:
            f_rot = float(rotational_drag)
            if not (math.isfinite(f_rot) and f_rot > 0):
                raise ValueError(f"rotational_drag must be positive and finite, got {rotational_drag!r}")
        dt = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
        k = geo.BBC_CONSTANTS
        radii = geo.rod_radii_mm()
        arr = lambda v: jnp.asarray(v, dt)  # noqa: E731
        self.radius_mm = arr(radii)
        self.lateral_rest_mm = arr(geo.lateral_rest_length_mm(radii))
        self.diagonal_rest_mm = arr(geo.diagonal_rest_length_mm(radii))
        self.muscle_min_mm = arr(geo.muscle_min_length_mm(radii, delta_m=k.delta_m))
        self.k_lateral, self.d_lateral = arr(k.k_lateral), arr(k.d_lateral)
        self.k_muscle, self.d_muscle = arr(k.k_muscle), arr(k.d_muscle)
        self.k_diagonal, self.d_diagonal = arr(k.k_diagonal), arr(k.d_diagonal)
        c_par, c_perp = med.per_rod()
        self.c_par, self.c_perp = arr(c_par), arr(c_perp)
        self.rotational_drag_factor = arr(f_rot)
        self.stretch_stiffening_per_mm3 = float(k.stretch_stiffening_per_mm3)

    # ------------------------------------------------------------------ protocol
    def initial_state(self) -> dict[str, Array]:
        """Straight body along +x, head (rod 0) at the origin, dorsal side towards +y (BBC's start)."""
        dt = self.radius_mm.dtype
        n = self.radius_mm.shape[0]
        return {"x": jnp.arange(n, dtype=dt) * jnp.asarray(geo.SEGMENT_LENGTH_MM, dt),
                "y": jnp.zeros(n, dt), "phi": jnp.full((n,), jnp.pi / 2, dt)}

    def state_variables(self) -> dict[str, StateVariable]:
        return {"x": StateVariable("x", "mm", "rod centre x", "rod"),
                "y": StateVariable("y", "mm", "rod centre y", "rod"),
                "phi": StateVariable("phi", "rad", "rod orientation (dorsal end direction)", "rod")}

    @property
    def input_names(self) -> dict[str, str]:
        return {"muscle_activation": "1"}

    def parameter_info(self) -> dict[str, ParameterInfo]:
        src = "BBC 2012 worm.cc / CE_locomotion"
        P = ParameterInfo
        return {
            "radius_mm": P("radius_mm", "mm", None, "rod", "rod radius (prolate ellipse)", src, trainable=False),
            "lateral_rest_mm": P("lateral_rest_mm", "mm", None, "segment", "lateral rest length", src, False),
            "diagonal_rest_mm": P("diagonal_rest_mm", "mm", None, "segment", "diagonal rest length", src, False),
            "muscle_min_mm": P("muscle_min_mm", "mm", None, "segment", "fully contracted muscle length", src, False),
            "k_lateral": P("k_lateral", "uN/mm", (1.0, 400.0), "", "passive lateral stiffness k_PE", src),
            "d_lateral": P("d_lateral", "uN s/mm", (0.01, 10.0), "", "passive lateral damping D_PE", src),
            "k_muscle": P("k_muscle", "uN/mm", (20.0, 8000.0), "", "muscle stiffness at activation 1 k_AE", src),
            "d_muscle": P("d_muscle", "uN s/mm", (1.0, 1000.0), "", "muscle damping at activation 1 D_AE", src),
            "k_diagonal": P("k_diagonal", "uN/mm", (100.0, 1e5), "", "diagonal stiffness k_DE", src),
            "d_diagonal": P("d_diagonal", "uN s/mm", (1.0, 1000.0), "", "diagonal damping D_DE", src),
            "c_par": P("c_par", "uN s/mm", None, "", "tangential drag per rod", src, trainable=False),
            "c_perp": P("c_perp", "uN s/mm", None, "", "normal drag per rod", src, trainable=False),
            "rotational_drag_factor": P("rotational_drag_factor", "1", (0.1, 100.0), "", "rod rotational drag / (R² C_par)", src, False),
        }

    def outputs(self, t, state) -> dict[str, Array]:
        length, _, _ = element_geometry(state["x"], state["y"], state["phi"], self.radius_mm)
        return {"lateral_length_mm": length[:2], "x_mm": state["x"], "y_mm": state["y"]}

    # ------------------------------------------------------------------ physics
    def element_forces(self, state, activation):
        """Elastic force T (4, seg), damping coefficient d (4, seg) and ∂L/∂q (4, seg, 6)."""
        length, _, jac = element_geometry(state["x"], state["y"], state["phi"], self.radius_mm)
        a = activation
        l0 = self.lateral_rest_mm
        dl = length[:2] - l0
        passive = self.k_lateral * (-dl + jnp.where(dl > 0, self.stretch_stiffening_per_mm3 * dl**4, 0.0))
        muscle = self.k_muscle * a * (l0 - a * (l0 - self.muscle_min_mm) - length[:2])
        diag = self.k_diagonal * (self.diagonal_rest_mm - length[2:])
        tension = jnp.concatenate([passive + muscle, diag], 0)
        damping = jnp.concatenate([self.d_lateral + self.d_muscle * a,
                                   jnp.broadcast_to(self.d_diagonal, length[2:].shape)], 0)
        return tension, damping, jac, length

    def resistance_blocks(self, state, damping, jac):
        """The (3, 3, rods) blocks (lower, diag, upper) of M = D + Σ d j jᵀ (rod index last)."""
        phi = state["phi"]
        cos, sin = jnp.cos(phi), jnp.sin(phi)
        u = jnp.stack([cos, sin])
        nrm = jnp.stack([-sin, cos])
        trans = self.c_perp * u[:, None] * u[None, :] + self.c_par * nrm[:, None] * nrm[None, :]  # (2, 2, rods)
        rot = self.rotational_drag_factor * self.radius_mm**2 * self.c_par
        zero = jnp.zeros((2, 1) + phi.shape, phi.dtype)
        drag = jnp.concatenate([jnp.concatenate([trans, zero], 1),
                                jnp.concatenate([jnp.swapaxes(zero, 0, 1), rot[None, None]], 1)], 0)
        j = jnp.moveaxis(jac, -1, 1)  # (4, 6, seg)
        seg = jnp.sum(damping[:, None, None, :] * j[:, :, None, :] * j[:, None, :, :], axis=0)  # (6, 6, seg)
        tail = ((0, 0), (0, 0), (0, 1))
        head = ((0, 0), (0, 0), (1, 0))
        diag = drag + jnp.pad(seg[:3, :3], tail) + jnp.pad(seg[3:, 3:], head)
        upper = jnp.pad(seg[:3, 3:], tail)
        lower = jnp.pad(seg[3:, :3], head)
        return lower, diag, upper

    def velocities(self, state, activation):
        """(q̇ as (3, rods): ẋ, ẏ, φ̇; element lengths) for the state and per-segment activation."""
        tension, damping, jac, length = self.element_forces(state, activation)
        gen = jnp.sum(tension[:, :, None] * jac, axis=0).T  # (6, seg)
        q = jnp.pad(gen[:3], ((0, 0), (0, 1))) + jnp.pad(gen[3:], ((0, 0), (1, 0)))
        lower, diag, upper = self.resistance_blocks(state, damping, jac)
        # symmetric Jacobi scaling keeps the solve well conditioned in float32
        s = 1.0 / jnp.sqrt(jnp.stack([diag[0, 0], diag[1, 1], diag[2, 2]]))  # (3, rods)
        s_prev = jnp.concatenate([s[:, :1], s[:, :-1]], 1)
        s_next = jnp.concatenate([s[:, 1:], s[:, -1:]], 1)
        w = solve_block_tridiagonal(lower * s[:, None] * s_prev[None], diag * s[:, None] * s[None],
                                    upper * s[:, None] * s_next[None], q * s)
        return w * s, length

    def vector_field(self, t, state, inputs=None) -> dict[str, Array]:
        """d(x, y, φ)/dt in mm/s and rad/s."""
        act = None if not inputs else inputs.get("muscle_activation")
        if act is None:
            act = jnp.zeros((2, self.lateral_rest_mm.shape[0]), self.radius_mm.dtype)
        act = activation_per_segment(act, self.lateral_rest_mm.shape[0])
        v, _ = self.velocities(state, act)
        return {"x": v[0], "y": v[1], "phi": v[2]}

    def elastic_energy(self, state, activation=None) -> Float[Array, ""]:
        """Stored elastic energy (µN·mm = nJ) of passive, diagonal and (given activation) muscle
        elements; with constant activation the body's motion never increases it."""
        length, _, _ = element_geometry(state["x"], state["y"], state["phi"], self.radius_mm)
        l0 = self.lateral_rest_mm
        dl = length[:2] - l0
        u = 0.5 * self.k_lateral * dl**2 - self.k_lateral * jnp.where(dl > 0, self.stretch_stiffening_per_mm3 * dl**5 / 5, 0.0)
        u = jnp.sum(u) + jnp.sum(0.5 * self.k_diagonal * (length[2:] - self.diagonal_rest_mm) ** 2)
        if activation is not None:
            a = activation_per_segment(activation, l0.shape[0])
            rest = l0 - a * (l0 - self.muscle_min_mm)
            u = u + jnp.sum(0.5 * self.k_muscle * a * (length[:2] - rest) ** 2)
        return u

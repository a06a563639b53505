"""Where a body of known shape goes: resistive-force kinematics of the BBC rod body.

The body of :mod:`owjax.body.mechanics` has no inertia, and every force on it other than the drag of
the medium is internal (the elements pull on two rods with equal and opposite forces). At every
instant the drag on the 49 rods therefore sums to zero force and zero torque. If the body's *shape*
is known over time, that balance fixes its rigid motion: three linear equations for the body-frame
velocity (u_x, u_y) and turning rate ω of the frame the shape is written in (the geometric mechanics
of low-Reynolds swimmers; Purcell 1977, Shapere & Wilczek 1989). Integrating them gives the centroid
track and the heading — the two things a learned operator predicts worst, because they accumulate.

Here the shape is the 48 tangent angles with their mean removed (the frame's heading is the mean
tangent angle), the rods sit at the ends of inextensible segments of length L/48, a rod's body axis
is the mean direction of its two segments, and each rod's drag is the body's: C_par along the body
axis, C_perp across it, f_rot · R² · C_par against its rotation (:mod:`owjax.body.media`; only the
ratios matter, so the medium enters through C_perp / C_par alone). Stretching of the centre line and
the small shear between a rod and the centre line are left out: from the physics' own tangent angles
this reproduces the physics' centroid to ≈ 0.02 body lengths over 5 s (tests/test_surrogate.py).

The drag sums over the rods are a quadrature along the body. ``rod_stride`` k > 1 evaluates them on
every k-th rod only (the two ends always), each standing for itself and half of the k − 1 rods on either
side (for k = 2: weights 1.5, 2, …, 2, 1.5): the trapezoidal rule, exact for drag terms linear along the
body between the kept rods. The rod positions stay exact (the segments are still all summed) and so does
the rods' rotational drag. From the physics' own tangent angles (seed 0's 154 test runs, 0.04-s grid;
experiments/body_surrogate/kinematics_grid.py) the centroid error against the physics is 0.0184 body
lengths (mean) on all 49 rods, 0.0188 on 25 (k = 2) and 0.0196 on 13 (k = 4), and the centroid moves
from the 49-rod one by 0.0013 and 0.0057 L (mean; worst 0.024 and 0.11 L). On 13 rods
:func:`body_frame_velocity` takes ≈ 30 instead of ≈ 60 µs per 5-s sample (batch 64, this project's
2-core CPU; the sines and cosines of all 48 segments remain).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from owjax.body import geometry as geo
from owjax.body.media import per_rod_drag
from owjax.core.fast_trig import sin_cos

__all__ = ["shape_points", "body_frame_velocity", "integrate_rigid_motion", "resistive_force_motion", "ROD_STRIDES"]


def _rod_matrices(n_segments: int) -> tuple[np.ndarray, np.ndarray]:
    """(seg, rods) matrices: segment vectors → rod centres about their mean (a cumulative sum, centred),
    and segment angles → body-axis angle at each rod (the mean of its two segments; an end rod: its one)."""
    tri = (np.arange(n_segments)[:, None] < np.arange(n_segments + 1)[None, :]).astype(float)
    centred = tri - tri.mean(1, keepdims=True)
    avg = np.zeros((n_segments, n_segments + 1))
    avg[np.arange(n_segments), np.arange(n_segments)] += 0.5
    avg[np.arange(n_segments), np.arange(1, n_segments + 1)] += 0.5
    avg[0, 0] = avg[-1, -1] = 1.0
    return centred, avg


def _quadrature_rods(n_segments: int, rod_stride: int) -> tuple[np.ndarray, np.ndarray]:
    """The rods the drag sums visit (every ``rod_stride``-th, both ends) and their trapezoidal weights
    (summing to the number of rods, n_segments + 1)."""
    if int(rod_stride) != rod_stride or rod_stride < 1 or n_segments % rod_stride:
        allowed = [k for k in range(1, n_segments + 1) if n_segments % k == 0]
        raise ValueError(f"rod_stride must be a positive divisor of the {n_segments} segments {allowed}, got {rod_stride!r}")
    keep = np.arange(0, n_segments + 1, int(rod_stride))
    w = np.full(keep.size, float(rod_stride))
    w[0] = w[-1] = (rod_stride + 1) / 2.0
    return keep, w


#: rod strides of the 48-segment body (divisors of 48): the drag quadrature on 49, 25, 17, 13, … rods
ROD_STRIDES = tuple(k for k in range(1, 49) if 48 % k == 0)


def shape_points(shape_angles: Float[Array, "n seg"],
                 segment_length_mm: float = geo.SEGMENT_LENGTH_MM) -> Float[Array, "n rods 2"]:
    """Rod centres (mm) in the body frame, centred on their mean, of inextensible segments with the
    given tangent angles (rad, head → tail)."""
    centred, _ = _rod_matrices(shape_angles.shape[-1])
    mat = jnp.asarray(centred * segment_length_mm, shape_angles.dtype)
    sin, cos = sin_cos(shape_angles)
    return jnp.stack([cos @ mat, sin @ mat], -1)


def _time_derivative(x, dt):
    """Central differences inside, one-sided at the ends (as numpy.gradient), along axis 0."""
    return jnp.concatenate([x[1:2] - x[:1], 0.5 * (x[2:] - x[:-2]), x[-1:] - x[-2:-1]], 0) / dt


def body_frame_velocity(t_s: Float[Array, " n"], shape_angles: Float[Array, "n seg"], medium: ArrayLike,
                        rotational_drag_factor: float = geo.ROTATIONAL_DRAG_FACTOR_BBC_CODE,
                        rod_stride: int = 1) -> Float[Array, "n 3"]:
    """The velocity of the shape's frame that balances the drag on every rod.

    Arguments:
        t_s: evenly spaced times (s).
        shape_angles: tangent angles (rad) in the body frame (mean-free).
        medium: BBC medium number m ∈ [0, 1] (0 water, 1 agar; drag linear in m as
            :func:`owjax.body.media.interpolated`).
        rotational_drag_factor: f_rot of the rods (default: the BBC code's 4π, as :class:`RodBody`).
        rod_stride: the drag sums on every ``rod_stride``-th rod, trapezoidal weights (1: all 49 rods;
            a divisor of 48, :data:`ROD_STRIDES`; see the module docstring).

    Returns:
        (N, 3): body-frame velocity of the centroid (u_x, u_y) (mm/s) and turning rate ω (rad/s).
    """
    dtype = shape_angles.dtype
    dt = t_s[1] - t_s[0]
    centred, avg = _rod_matrices(shape_angles.shape[-1])
    keep, weight = _quadrature_rods(shape_angles.shape[-1], rod_stride)
    n_rods = keep.size
    # one product per trigonometric table: the rod centres (N, 49) and the sums C, S of the two unit
    # tangents each rod joins. The rod's body axis is at the mean angle a of its two segments, and
    # (C, S) = cos(half their difference)·(cos a, sin a), so C²/(C² + S²) = cos² a, S²/(…) = sin² a and
    # CS/(…) = cos a sin a exactly: what the drag needs, with no trigonometry of a. (Undefined only
    # for two adjacent segments folded back by exactly 180°.)
    tables = jnp.asarray(np.concatenate([centred[:, keep] * geo.SEGMENT_LENGTH_MM, avg[:, keep]], 1), dtype)
    # (sin_cos: the same numbers as jnp.sin/jnp.cos to rounding, ≈ 7× faster on CPU; owjax.core.fast_trig)
    sin, cos = sin_cos(shape_angles)
    cos_part, sin_part = cos @ tables, sin @ tables
    sx, sy = cos_part[..., :n_rods], sin_part[..., :n_rods]
    big_c, big_s = cos_part[..., n_rods:], sin_part[..., n_rods:]
    inv = 1.0 / (big_c * big_c + big_s * big_s)
    c2, s2, cs = big_c * big_c * inv, big_s * big_s * inv, big_c * big_s * inv
    vx, vy = _time_derivative(sx, dt), _time_derivative(sy, dt)
    c_par, c_perp = per_rod_drag(medium, dtype)
    k = c_perp / c_par
    # Per rod, drag / C_par = τ τᵀ + k ν νᵀ (τ = (cos a, sin a) the body axis, ν across it), written
    # out by component on (N, 49) arrays: d11 = cos² + k sin², d22 = sin² + k cos², d12 = (1 − k) cos sin
    d11, d22, d12 = c2 + k * s2, s2 + k * c2, (1.0 - k) * cs
    rot_np = rotational_drag_factor * np.asarray(geo.rod_radii_mm(), np.float64) ** 2  # / C_par
    # drag per unit of each unknown, and of the shape's own motion: D e_x, D e_y, D (J s), D ṡ
    fx_w, fy_w = d12 * sx - d11 * sy, d22 * sx - d12 * sy
    fx_s, fy_s = d11 * vx + d12 * vy, d12 * vx + d22 * vy

    if rod_stride == 1:
        def total(x):
            return x.sum(-1)
    else:
        w = jnp.asarray(weight, dtype)

        def total(x):
            return x @ w

    # force rows: Σ_r D_r (u + ω J s_r + ṡ_r) = 0 (J s = (−s_y, s_x));
    # torque row: Σ_r s_r × D_r(…) + rot_r (ω + ȧ_r) = 0
    a01 = total(d12)
    a02, a12 = total(fx_w), total(fy_w)
    a = jnp.stack([jnp.stack([total(d11), a01, a02], -1),
                   jnp.stack([a01, total(d22), a12], -1),
                   jnp.stack([a02, a12, total(sx * fy_w - sy * fx_w) + float(rot_np.sum())], -1)], -2)
    # the rods' rotation drag Σ_r rot_r da_r/dt, with a = angles @ avg linear: one weighted sum of the angles
    spin = _time_derivative(shape_angles @ jnp.asarray(avg @ rot_np, dtype), dt)
    b = -jnp.stack([total(fx_s), total(fy_s), total(sx * fy_s - sy * fx_s) + spin], -1)
    return _solve3(a, b)


def _solve3(a: Float[Array, "n 3 3"], b: Float[Array, "n 3"]) -> Float[Array, "n 3"]:
    """x with a x = b for many 3 × 3 systems, by Cramer's rule (a batched LAPACK call per tiny system
    is several times slower on CPU; the systems here are well conditioned: drag matrices)."""
    c0, c1, c2 = a[..., :, 0], a[..., :, 1], a[..., :, 2]
    det = jnp.sum(c0 * jnp.cross(c1, c2), -1)
    return jnp.stack([jnp.sum(b * jnp.cross(c1, c2), -1), jnp.sum(c0 * jnp.cross(b, c2), -1),
                      jnp.sum(c0 * jnp.cross(c1, b), -1)], -1) / det[..., None]


def integrate_rigid_motion(t_s: Float[Array, " n"], velocity: Float[Array, "n 3"]
                           ) -> tuple[Float[Array, "n 2"], Float[Array, " n"]]:
    """Centroid displacement (mm) and heading (rad), both 0 at t_s[0], from body-frame velocities
    (u_x, u_y, ω) (trapezoidal rule on the grid)."""
    dt = t_s[1] - t_s[0]

    def cumtrapz(f):
        inc = 0.5 * (f[1:] + f[:-1]) * dt
        return jnp.concatenate([jnp.zeros((1,) + f.shape[1:], f.dtype), jnp.cumsum(inc, 0)], 0)

    heading = cumtrapz(velocity[:, 2])
    s, c = sin_cos(heading)
    v_lab = jnp.stack([c * velocity[:, 0] - s * velocity[:, 1], s * velocity[:, 0] + c * velocity[:, 1]], -1)
    return cumtrapz(v_lab), heading


def resistive_force_motion(t_s: Float[Array, " n"], shape_angles: Float[Array, "n seg"], medium: ArrayLike,
                           velocity_correction: Float[Array, "n 3"] | None = None, rod_stride: int = 1,
                           ) -> tuple[Float[Array, "n 2"], Float[Array, " n"]]:
    """Centroid displacement (mm) and heading (rad) of a body whose shape changes as given.

    Arguments:
        t_s: evenly spaced times (s), the body at rest in its start frame at t_s[0].
        shape_angles: (N, 48) mean-free tangent angles (rad).
        medium: BBC medium number m ∈ [0, 1].
        velocity_correction: optional (N, 3) added to the body-frame velocity (mm/s, mm/s, rad/s)
            before integration (the surrogate's learned correction for what this model leaves out).
        rod_stride: the drag quadrature's rod stride (:func:`body_frame_velocity`).

    Returns:
        (centroid (N, 2) mm, heading (N,) rad); tangent angles in the lab frame are
        ``shape_angles + heading[:, None]``.
    """
    if t_s.shape[0] < 3:
        raise ValueError(f"resistive_force_motion needs at least 3 time points, got {t_s.shape[0]}")
    v = body_frame_velocity(t_s, shape_angles, medium, rod_stride=rod_stride)
    if velocity_correction is not None:
        v = v + velocity_correction
    return integrate_rigid_motion(t_s, v)


def check_against_physics(t_s: np.ndarray, tangent_angle_rad: np.ndarray, centroid_mm: np.ndarray,
                          medium: float, rod_stride: int = 1) -> float:
    """RMS (mm) over time between a physics run's centroid and the one these kinematics give from the
    run's own tangent angles (a measure of what the kinematics leave out)."""
    th = jnp.asarray(tangent_angle_rad)
    psi = th - th.mean(-1, keepdims=True)
    c, _ = resistive_force_motion(jnp.asarray(t_s, th.dtype), psi, medium, rod_stride=rod_stride)
    return float(np.sqrt(np.mean(np.sum((np.asarray(c) - np.asarray(centroid_mm)) ** 2, -1))))

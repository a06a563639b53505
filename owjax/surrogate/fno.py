"""A 1-D Fourier neural operator (Li et al. 2020) in equinox, over time, and the body surrogate model.

Written here rather than taken from ``pdequinox`` (docs/surrogate.md says why: the time axis is not
periodic and needs padding, which ``pdequinox.arch.ClassicFNO`` does not do; the whole operator is
~100 lines; and complex weights are stored as two real arrays so every leaf checkpoints and
optimises as a plain float array).

:class:`FNO1d` maps a function sampled on N points, (C_in, N), to (C_out, N)::

    lift (1×1) → [spectral conv (lowest ``modes`` Fourier modes) + 1×1 conv → GELU] × n_layers
               → 1×1 → GELU → 1×1

The time axis is padded with zeros by ``pad_fraction`` of its length before the Fourier layers and
cropped after them, so the operator does not treat the end of the run as adjacent to its start. The
spectral convolution computes ``rfft`` → weights → ``irfft`` (default normalisation) restricted to the
kept modes, as products with cosine and sine tables; under that normalisation a band-limited input
gives the same output on any grid fine enough to hold ``modes`` modes: the same
weights run on a coarse and a fine time grid (resolution independence), provided the padding covers
the same fraction of the run.

:class:`BodyFNO` assembles the inputs (48 muscle-segment activations, the medium, t / 5 s),
runs the operator and decodes the outputs: the centroid displacement (mm) and the tangent angles of
the 48 segments (rad) through a fixed linear posture basis (:class:`PostureDecoder`: tangent angles
at a few points along the body, or eigenworm amplitudes) — with ``motion="rft"`` the centroid and
heading are computed from the decoded shape by :mod:`owjax.surrogate.kinematics`.
``operator_stride`` k > 1 runs the operator on every k-th point of the given grid only and brings its
output channels back to the grid by cubic (Catmull–Rom) interpolation, while the kinematics, which need
the shape's rate of change resolved, stay on the given grid (``rod_stride``: their drag quadrature).
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from owjax.surrogate.kinematics import ROD_STRIDES, resistive_force_motion

__all__ = ["SpectralConv1d", "FNO1d", "PostureDecoder", "BodyFNO", "angle_basis", "eigenworm_basis",
           "N_ACTIVATION_CHANNELS", "TIME_SCALE_S", "MEDIUM_ENCODINGS", "MOTIONS", "medium_channels", "n_input_channels",
           "cubic_upsampling"]

#: 2 sides × 24 muscle segments
N_ACTIVATION_CHANNELS = 48
#: how the medium number m enters: ``linear`` (m − 0.5) or ``log_drag`` (m − 0.5 and the log of the
#: perpendicular drag relative to agar's, scaled to [−0.5, 0.5]: water's drag is ≈ 1/1000 of agar's,
#: so m ∈ [0, 0.05] holds most of the change in dynamics, which a linear channel squeezes together)
MEDIUM_ENCODINGS = ("linear", "log_drag")


def _water_agar_drag_ratio() -> float:
    from owjax.body.media import AGAR, WATER

    return float(WATER.c_perp_total_kg_s / AGAR.c_perp_total_kg_s)


def medium_channels(medium, encoding: str):
    """Medium input channels (K,) of a medium number m ∈ [0, 1] for an encoding of :data:`MEDIUM_ENCODINGS`."""
    m = jnp.asarray(medium)
    if encoding == "linear":
        return (m - 0.5)[None]
    if encoding == "log_drag":
        r = _water_agar_drag_ratio()
        rel = r + (1.0 - r) * m  # the drag relative to agar's (owjax.body.media.interpolated is linear in m)
        return jnp.stack([m - 0.5, jnp.log(rel) / (-math.log(r)) + 0.5])
    raise ValueError(f"unknown medium encoding {encoding!r}; allowed: {list(MEDIUM_ENCODINGS)}")


def n_input_channels(encoding: str) -> int:
    """Input channels of :class:`BodyFNO`: 48 activations, the medium channels, time."""
    if encoding not in MEDIUM_ENCODINGS:
        raise ValueError(f"unknown medium encoding {encoding!r}; allowed: {list(MEDIUM_ENCODINGS)}")
    return N_ACTIVATION_CHANNELS + (1 if encoding == "linear" else 2) + 1
#: how the centroid and heading are obtained: ``direct`` (two output channels are the centroid, the
#: posture's mean-angle channel the heading) or ``rft`` (the operator predicts the shape; the centroid
#: and heading follow from it by the resistive-force kinematics of :mod:`owjax.surrogate.kinematics`,
#: plus a learned correction to the body-frame velocity carried by those three channels)
MOTIONS = ("direct", "rft")
#: the time encoding is t / TIME_SCALE_S (s)
TIME_SCALE_S = 5.0


def _uniform(key, shape, scale):
    return jax.random.uniform(key, shape, minval=-scale, maxval=scale)


class SpectralConv1d(eqx.Module):
    """Multiply the lowest ``modes`` Fourier modes of each input channel by learned complex
    (C_in × C_out) matrices; higher modes are dropped. Input and output (C, N) on any N."""

    weight_re: Float[Array, "modes cin cout"]
    weight_im: Float[Array, "modes cin cout"]
    modes: int = eqx.field(static=True)

    def __init__(self, in_channels: int, out_channels: int, modes: int, *, key: PRNGKeyArray):
        k1, k2 = jax.random.split(key)
        scale = 1.0 / (in_channels * out_channels)
        self.weight_re = scale * jax.random.uniform(k1, (modes, in_channels, out_channels))
        self.weight_im = scale * jax.random.uniform(k2, (modes, in_channels, out_channels))
        self.modes = int(modes)

    def __call__(self, x: Float[Array, "cin n"]) -> Float[Array, "cout n"]:
        # rfft → keep modes 0 … m−1 → complex weights → irfft(n), written as products with the real
        # cosine and sine tables of the kept modes: the same numbers (to rounding; tests/test_surrogate.py
        # checks against jnp.fft) at a fraction of the cost on CPU, where the batched truncated
        # transform becomes three dense matrix products instead of full-length FFTs: the real and
        # imaginary parts side by side, the complex product as one real (2 cin × 2 cout) block matrix
        # [[Re w, Im w], [−Im w, Re w]] per mode
        n = x.shape[-1]
        m = min(self.modes, n // 2 + 1)
        cos, sin, scale = _dft_tables(n, m)
        forward = jnp.asarray(np.concatenate([cos, -sin], 1), x.dtype)  # (n, 2m): x → [Re | Im] of the kept modes
        inverse = jnp.asarray(np.concatenate([cos.T, -sin.T], 0) * np.concatenate([scale, scale])[:, None], x.dtype)
        z = x @ forward
        z = jnp.concatenate([z[:, :m], z[:, m:]], 0)  # (2 cin, m): [Re; Im]
        wr, wi = self.weight_re[:m].astype(x.dtype), self.weight_im[:m].astype(x.dtype)
        w = jnp.concatenate([jnp.concatenate([wr, wi], 2), jnp.concatenate([-wi, wr], 2)], 1)  # (m, 2 cin, 2 cout)
        y = jnp.einsum("im,mio->om", z, w)  # (2 cout, m): [Re; Im] of the output modes
        c_out = w.shape[2] // 2
        return jnp.concatenate([y[:c_out], y[c_out:]], 1) @ inverse


def _dft_tables(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cos and sin of 2π k t / n, (n, m), and irfft's weight of mode k, (m,): 1/n for the mean (and
    the Nyquist mode of an even n), 2/n for the others (their conjugate twins)."""
    t = np.arange(n)[:, None]
    k = np.arange(m)[None, :]
    ang = 2.0 * np.pi * ((t * k) % n) / n
    w = np.full(m, 2.0 / n)
    w[0] = 1.0 / n
    if n % 2 == 0 and m == n // 2 + 1:
        w[-1] = 1.0 / n
    return np.cos(ang), np.sin(ang), w


class _Pointwise(eqx.Module):
    """1×1 convolution (a linear map of channels at every time point)."""

    weight: Float[Array, "cout cin"]
    bias: Float[Array, " cout"]

    def __init__(self, in_channels: int, out_channels: int, *, key: PRNGKeyArray):
        s = 1.0 / math.sqrt(in_channels)
        k1, k2 = jax.random.split(key)
        self.weight = _uniform(k1, (out_channels, in_channels), s)
        self.bias = _uniform(k2, (out_channels,), s)

    def __call__(self, x: Float[Array, "cin n"]) -> Float[Array, "cout n"]:
        return self.weight @ x + self.bias[:, None]


class FNO1d(eqx.Module):
    """The Fourier neural operator on one axis (time).

    Arguments:
        in_channels, out_channels: channel counts.
        width: hidden channels.
        modes: Fourier modes kept per layer (≤ N_padded/2 + 1 of the coarsest grid used).
        n_layers: Fourier layers.
        pad_fraction: zero padding appended to the time axis, as a fraction of its length.
        key: PRNG key.
    """

    lift: _Pointwise
    spectral: list[SpectralConv1d]
    pointwise: list[_Pointwise]
    proj1: _Pointwise
    proj2: _Pointwise
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    modes: int = eqx.field(static=True)
    n_layers: int = eqx.field(static=True)
    pad_fraction: float = eqx.field(static=True)

    def __init__(self, in_channels: int, out_channels: int, width: int = 32, modes: int = 24, n_layers: int = 4,
                 pad_fraction: float = 0.25, *, key: PRNGKeyArray):
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("width", width),
                        ("modes", modes), ("n_layers", n_layers)):
            if int(v) != v or v < 1:
                raise ValueError(f"FNO1d {name} must be a positive integer, got {v!r}")
        if not 0 <= pad_fraction <= 2:
            raise ValueError(f"FNO1d pad_fraction must be in [0, 2], got {pad_fraction!r}")
        keys = jax.random.split(key, 2 * n_layers + 3)
        self.lift = _Pointwise(in_channels, width, key=keys[0])
        self.spectral = [SpectralConv1d(width, width, modes, key=k) for k in keys[1:1 + n_layers]]
        self.pointwise = [_Pointwise(width, width, key=k) for k in keys[1 + n_layers:1 + 2 * n_layers]]
        self.proj1 = _Pointwise(width, 2 * width, key=keys[-2])
        self.proj2 = _Pointwise(2 * width, out_channels, key=keys[-1])
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.width, self.modes, self.n_layers = int(width), int(modes), int(n_layers)
        self.pad_fraction = float(pad_fraction)

    def n_pad(self, n: int) -> int:
        """Padding (samples) appended to a grid of ``n`` points."""
        return int(round(self.pad_fraction * n))

    def hidden(self, x: Float[Array, "cin n"]) -> Float[Array, "width n"]:
        """The hidden channels after the last Fourier layer (cropped to the input's N points)."""
        if x.ndim != 2 or x.shape[0] != self.in_channels:
            raise ValueError(f"FNO1d expects input (C_in={self.in_channels}, N), got {x.shape}")
        n = x.shape[-1]
        h = self.lift(x)
        p = self.n_pad(n)
        h = jnp.pad(h, ((0, 0), (0, p)))
        for i, (sc, pw) in enumerate(zip(self.spectral, self.pointwise)):
            h = sc(h) + pw(h)
            if i < self.n_layers - 1:
                h = jax.nn.gelu(h)
        return h[:, :n]

    def __call__(self, x: Float[Array, "cin n"]) -> Float[Array, "cout n"]:
        return self.proj2(jax.nn.gelu(self.proj1(self.hidden(x))))


# ----------------------------------------------------------------------------- posture bases
def angle_basis(n_points: int, n_segments: int = 48) -> np.ndarray:
    """(48, K) linear interpolation from tangent angles at K evenly spaced points (the first and last
    at the end segments) to all 48 segments."""
    if n_points < 2:
        raise ValueError(f"angle basis needs at least 2 points, got {n_points}")
    s = np.arange(n_segments, dtype=float)
    nodes = np.linspace(0, n_segments - 1, n_points)
    eye = np.eye(n_points)
    return np.stack([np.interp(s, nodes, eye[k]) for k in range(n_points)], 1)


def eigenworm_basis(angles: np.ndarray, n_modes: int) -> np.ndarray:
    """(48, K): the mean angle (a column of ones: heading) and the first K − 1 principal components
    ("eigenworms", Stephens et al. 2008) of the mean-free tangent angles ``angles`` (…, 48)."""
    a = np.asarray(angles, float).reshape(-1, angles.shape[-1])
    a = a - a.mean(-1, keepdims=True)
    _, _, vt = np.linalg.svd(a - a.mean(0), full_matrices=False)
    # the column of ones decodes the mean angle: θ = mean · 1 + Σ_k a_k e_k (the e_k are mean-free)
    return np.concatenate([np.ones((angles.shape[-1], 1)), vt[:n_modes - 1].T], 1)


class PostureDecoder(eqx.Module):
    """Fixed (never trained) linear decoding of the network's outputs: centroid (mm) and 48 tangent
    angles (rad) from normalised channels.

    Arguments:
        basis: (48, K) posture basis (:func:`angle_basis` or :func:`eigenworm_basis`).
        centroid_scale_mm: centroid channels × this = mm.
        posture_scale: (K,) posture channels × this = basis coefficients.
        kind: ``"angles"`` or ``"eigenworms"`` (a label).
    """

    basis: Float[Array, "seg k"]
    centroid_scale_mm: Float[Array, ""]
    posture_scale: Float[Array, " k"]
    kind: str = eqx.field(static=True)

    def __init__(self, basis, centroid_scale_mm, posture_scale, kind: str):
        self.basis = jnp.asarray(basis, jnp.float32)
        self.centroid_scale_mm = jnp.asarray(centroid_scale_mm, jnp.float32)
        self.posture_scale = jnp.asarray(posture_scale, jnp.float32)
        self.kind = str(kind)

    @property
    def n_posture(self) -> int:
        return int(self.basis.shape[1])

    def encode(self, centroid_mm: Float[Array, "n 2"], angles_rad: Float[Array, "n seg"]) -> Float[Array, "c n"]:
        """Target channels (2 + K, N) of a trajectory (least-squares projection of the angles)."""
        coef = angles_rad @ jnp.linalg.pinv(self.basis).T
        return jnp.concatenate([centroid_mm.T / self.centroid_scale_mm, (coef / self.posture_scale).T], 0)

    def decode(self, out: Float[Array, "c n"]) -> tuple[Float[Array, "n 2"], Float[Array, "n seg"]]:
        """(centroid displacement (N, 2) mm, tangent angles (N, 48) rad)."""
        c = out[:2].T * self.centroid_scale_mm
        th = (out[2:].T * self.posture_scale) @ self.basis.T
        return c, th


def cubic_upsampling(n_fine: int, stride: int) -> np.ndarray:
    """(M, n_fine) matrix: values on every ``stride``-th point of an ``n_fine``-point grid (M points, the
    last at or beyond the grid's end: M = ⌈(n_fine − 1)/stride⌉ + 1) → all ``n_fine`` points, by
    Catmull–Rom cubic interpolation (ends clamped; exact at the coarse points and for quadratics inside)."""
    if int(stride) != stride or stride < 1 or n_fine < 1:
        raise ValueError(f"cubic_upsampling needs stride ≥ 1 and n_fine ≥ 1, got stride={stride!r}, n_fine={n_fine!r}")
    m = -(-(n_fine - 1) // stride) + 1
    w = np.zeros((m, n_fine))
    for i in range(n_fine):
        j, f = divmod(i, stride)
        f = f / stride
        if f == 0.0:
            w[j, i] = 1.0
            continue
        rows = (max(j - 1, 0), j, j + 1, min(j + 2, m - 1))
        coef = ((-f**3 + 2 * f**2 - f) / 2, (3 * f**3 - 5 * f**2 + 2) / 2, (-3 * f**3 + 4 * f**2 + f) / 2, (f**3 - f**2) / 2)
        for r, c in zip(rows, coef):
            w[r, i] += c
    return w


class BodyFNO(eqx.Module):
    """The body surrogate: activation (N, 2, 24) on times t (s) and the medium → trajectory.

    Attributes:
        fno: the operator (the trainable part).
        decoder: :class:`PostureDecoder` (fixed).
        medium_encoding: ``linear`` or ``log_drag`` (:data:`MEDIUM_ENCODINGS`).
        motion: ``direct`` or ``rft`` (:data:`MOTIONS`): how the centroid and heading are obtained.
        operator_stride: the operator sees every ``operator_stride``-th point of the grid it is given
            (and one past its end where the grid does not divide), and its outputs are interpolated
            back (:func:`cubic_upsampling`); 1: every point.
        operator_dt_s: the operator's own time step (s) when it was trained with a stride, else None;
            :meth:`on_grid` picks the stride that keeps it there on another grid (a model trained with
            stride 2 on the 0.04-s grid: stride 4 on a 0.02-s grid). :func:`owjax.surrogate.evaluate.predict_batch`
            and everything built on it do this; a direct call uses ``operator_stride`` as it is.
        rod_stride: the kinematics' drag quadrature (``motion="rft"`` only;
            :func:`owjax.surrogate.kinematics.body_frame_velocity`): every ``rod_stride``-th rod.
    """

    fno: FNO1d
    decoder: PostureDecoder
    medium_encoding: str = eqx.field(static=True, default="linear")
    motion: str = eqx.field(static=True, default="direct")
    operator_stride: int = eqx.field(static=True, default=1)
    rod_stride: int = eqx.field(static=True, default=1)
    operator_dt_s: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.motion not in MOTIONS:
            raise ValueError(f"unknown motion {self.motion!r}; allowed: {list(MOTIONS)}")
        if int(self.operator_stride) != self.operator_stride or self.operator_stride < 1:
            raise ValueError(f"operator_stride must be a positive integer, got {self.operator_stride!r}")
        if self.rod_stride not in ROD_STRIDES:
            raise ValueError(f"rod_stride must be one of {list(ROD_STRIDES)} (divisors of the 48 segments), "
                             f"got {self.rod_stride!r}")

    def on_grid(self, dt_s: float) -> "BodyFNO":
        """This model with the operator stride that runs its operator at ``operator_dt_s`` on a grid of
        step ``dt_s`` (s) (the nearest whole stride, at least 1); itself if it has no ``operator_dt_s``."""
        if self.operator_dt_s is None:
            return self
        if not (np.isfinite(dt_s) and dt_s > 0):
            raise ValueError(f"on_grid needs a positive time step (s), got {dt_s!r}")
        k = max(1, int(round(float(self.operator_dt_s) / float(dt_s))))
        return self if k == self.operator_stride else dataclasses.replace(self, operator_stride=k)

    def _operator_grid(self, t_s, activation):
        """The times and activations the operator sees (every ``operator_stride``-th point; the last
        one past the end of the grid, if any, holds the last activation)."""
        k, n = self.operator_stride, t_s.shape[0]
        if k == 1:
            return t_s, activation
        m = -(-(n - 1) // k) + 1
        idx = np.minimum(np.arange(m) * k, n - 1)
        t_op = t_s[0] + (t_s[1] - t_s[0]) * k * jnp.arange(m, dtype=t_s.dtype)
        return t_op, activation[idx]

    def inputs(self, t_s: Float[Array, " n"], activation: Float[Array, "n 2 24"],
               medium: Float[Array, ""]) -> Float[Array, "c n"]:
        """Input channels (50 or 51, N): activations − 0.5, the medium channels (:func:`medium_channels`),
        t / 5 s − 0.5."""
        n = t_s.shape[0]
        a = activation.reshape(n, N_ACTIVATION_CHANNELS).T - 0.5
        mc = medium_channels(medium, self.medium_encoding).astype(a.dtype)
        m = jnp.broadcast_to(mc[:, None], (mc.shape[0], n))
        tt = (t_s / TIME_SCALE_S - 0.5)[None].astype(a.dtype)
        return jnp.concatenate([a, m, tt], 0)

    def channels(self, t_s, activation, medium) -> Float[Array, "c n"]:
        """Normalised output channels (2 + K, N), anchored so that they vanish at t = 0 (the body
        always starts straight at the origin)."""
        y = self.fno(self.inputs(*self._operator_grid(t_s, activation), medium))
        y = y - y[:, :1]
        if self.operator_stride == 1:
            return y
        return y @ jnp.asarray(cubic_upsampling(t_s.shape[0], self.operator_stride), y.dtype)

    def latent(self, t_s: Float[Array, " n"], activation: Float[Array, "n 2 24"],
               medium: Float[Array, ""]) -> Float[Array, " f"]:
        """A summary of how the operator sees an input (2·width,): time-mean and standard deviation of
        its last hidden layer (what the fallback's novelty estimate measures distances in), on the
        operator's grid."""
        h = self.fno.hidden(self.inputs(*self._operator_grid(t_s, activation), medium))
        return jnp.concatenate([h.mean(1), h.std(1)])

    def __call__(self, t_s: Float[Array, " n"], activation: Float[Array, "n 2 24"],
                 medium: Float[Array, ""]) -> tuple[Float[Array, "n 2"], Float[Array, "n 48"]]:
        """(centroid displacement (N, 2) mm, tangent angles (N, 48) rad) on the times ``t_s`` (s,
        starting at 0, evenly spaced)."""
        y = self.channels(t_s, activation, medium)
        if self.motion == "direct":
            return self.decoder.decode(y)
        # rft: the shape from the posture channels (heading removed); channels 0, 1 and the heading
        # channel carry a correction to the body-frame velocity (u_x, u_y, ω) of the kinematics
        _, th = self.decoder.decode(y.at[:3].set(0.0))
        shape = th - th.mean(-1, keepdims=True)
        corr = jnp.stack([y[0] * self.decoder.centroid_scale_mm / TIME_SCALE_S,
                          y[1] * self.decoder.centroid_scale_mm / TIME_SCALE_S,
                          y[2] * self.decoder.posture_scale[0] / TIME_SCALE_S], -1)
        c, heading = resistive_force_motion(t_s, shape, medium, corr, rod_stride=self.rod_stride)
        return c, shape + heading[:, None]

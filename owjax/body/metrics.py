"""Locomotion metrics from a body's skeleton (DD010 tier 3): centroid, tangent angles, curvature,
signed speed, undulation frequency, wavelength, amplitude and the crawl/swim class.

Conventions: skeleton points are ordered head → tail (49 rod centres, mm); time in s. Curvature
is dθ/ds (1/mm) with θ the tangent angle head → tail, signed so that **positive means the dorsal
side is concave** (the body bends dorsally), using the rods' dorsal direction.
"""

from __future__ import annotations

import numpy as np

__all__ = ["centroid", "tangent_angles", "curvature", "signed_speed", "undulation_frequency", "wavelength",
           "amplitude", "gait_class", "locomotion_summary", "SWIM_WAVELENGTH_THRESHOLD"]

#: wavelength (body lengths) above which a gait is called a swim (crawl ≈ 0.5–0.7 L, swim ≈ 1.5 L;
#: Fang-Yen et al. 2010 show the two separated by wavelength most clearly)
SWIM_WAVELENGTH_THRESHOLD = 1.0


def centroid(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean of the skeleton points, (T, 2) mm."""
    return np.stack([np.mean(x, -1), np.mean(y, -1)], -1)


def tangent_angles(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Tangent angle (rad) of each of the 48 segments, head → tail, unwrapped along the body (T, 48)."""
    return np.unwrap(np.arctan2(np.diff(y, axis=-1), np.diff(x, axis=-1)), axis=-1)


def curvature(x: np.ndarray, y: np.ndarray, phi: np.ndarray | None = None) -> np.ndarray:
    """Signed curvature (1/mm) at the 47 interior rods (T, 47); positive = dorsal side concave.

    ``phi`` (rod orientations, dorsal end direction) fixes the dorsal side; without it the body is
    assumed to keep the handedness of owjax's initial state (dorsal on the left of head → tail).
    """
    th = tangent_angles(x, y)
    ds = np.sqrt(np.diff(x, axis=-1) ** 2 + np.diff(y, axis=-1) ** 2)
    k = np.diff(th, axis=-1) / (0.5 * (ds[..., 1:] + ds[..., :-1]))
    if phi is not None:
        # sign of (tangent × dorsal direction): +1 when dorsal lies to the left of head → tail
        t = np.stack([np.cos(th), np.sin(th)], -1)
        d = np.stack([np.cos(phi[..., 1:-1]), np.sin(phi[..., 1:-1])], -1)
        tm = 0.5 * (t[..., 1:, :] + t[..., :-1, :])
        side = np.sign(tm[..., 0] * d[..., 1] - tm[..., 1] * d[..., 0])
        k = k * np.where(side == 0, 1.0, side)
    return k


def _heading(x, y):
    """Unit vector from the tail third to the head third of the skeleton (T, 2)."""
    n = x.shape[-1]
    m = max(1, n // 3)
    hx = np.mean(x[..., :m], -1) - np.mean(x[..., -m:], -1)
    hy = np.mean(y[..., :m], -1) - np.mean(y[..., -m:], -1)
    h = np.stack([hx, hy], -1)
    return h / np.maximum(np.linalg.norm(h, axis=-1, keepdims=True), 1e-12)


def signed_speed(t_s: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Mean centroid speed (mm/s) projected on the body's head direction: > 0 forward, < 0 backward."""
    c = centroid(x, y)
    v = np.gradient(c, t_s, axis=0)
    return float(np.mean(np.sum(v * _heading(x, y), -1)))


def _spectrum_peak(sig: np.ndarray, dt: float, fmin: float = 0.05, fmax: float = 10.0):
    sig = sig - sig.mean(0)
    n = sig.shape[0]
    nfft = 16 * n
    spec = np.fft.rfft(sig * np.hanning(n)[:, None], nfft, axis=0)
    f = np.fft.rfftfreq(nfft, dt)
    power = np.sum(np.abs(spec) ** 2, axis=1)
    band = (f >= fmin) & (f <= fmax)
    if not band.any() or power[band].max() <= 0:
        return float("nan"), None, f
    i = np.flatnonzero(band)[np.argmax(power[band])]
    return float(f[i]), spec[i], f


def undulation_frequency(t_s: np.ndarray, kappa: np.ndarray) -> float:
    """Dominant frequency (Hz) of the curvature over the body's middle (s = 0.2–0.8 L); NaN if flat."""
    n = kappa.shape[1]
    mid = kappa[:, int(0.2 * n):int(0.8 * n)]
    if np.ptp(mid) < 1e-9:
        return float("nan")
    return _spectrum_peak(mid, float(np.median(np.diff(t_s))))[0]


def wavelength(t_s: np.ndarray, kappa: np.ndarray, body_length_mm: float = 1.0) -> tuple[float, str]:
    """Wavelength (body lengths) and direction of the curvature wave from the phase gradient of its
    dominant Fourier component along s = 0.1–0.9 L. Direction ``"head_to_tail"`` (propels the worm
    forward) or ``"tail_to_head"``. NaN when there is no oscillation."""
    n = kappa.shape[1]
    lo, hi = int(0.1 * n), int(0.9 * n)
    seg = kappa[:, lo:hi]
    if np.ptp(seg) < 1e-9:
        return float("nan"), "none"
    f0, coef, _ = _spectrum_peak(seg, float(np.median(np.diff(t_s))))
    if coef is None:
        return float("nan"), "none"
    phase = np.unwrap(np.angle(coef))
    s = (np.arange(lo, hi) + 1.0) / (n + 1) * body_length_mm
    slope = np.polyfit(s, phase, 1)[0]  # rad per mm
    if slope == 0:
        return float("inf"), "none"
    lam = 2 * np.pi / abs(slope) / body_length_mm
    # rfft phase of e^{i(2π f t − k s)} is −k s: a head→tail wave has a falling phase along s
    return float(lam), "head_to_tail" if slope < 0 else "tail_to_head"


def amplitude(x: np.ndarray, y: np.ndarray, body_length_mm: float = 1.0) -> float:
    """Mean over frames of half the skeleton's extent across its principal axis, in body lengths."""
    out = []
    for xi, yi in zip(np.atleast_2d(x), np.atleast_2d(y)):
        p = np.stack([xi, yi], -1)
        p = p - p.mean(0)
        _, _, vt = np.linalg.svd(p, full_matrices=False)
        across = p @ vt[1]
        out.append(0.5 * np.ptp(across))
    return float(np.mean(out) / body_length_mm)


def gait_class(wavelength_body_lengths: float) -> str:
    """``"swim"`` if the wavelength exceeds :data:`SWIM_WAVELENGTH_THRESHOLD` body lengths, else ``"crawl"``."""
    if not np.isfinite(wavelength_body_lengths):
        return "none"
    return "swim" if wavelength_body_lengths > SWIM_WAVELENGTH_THRESHOLD else "crawl"


def locomotion_summary(t_s: np.ndarray, x: np.ndarray, y: np.ndarray, phi: np.ndarray | None = None,
                       transient_s: float = 2.0) -> dict:
    """All scalar metrics over the steady part (after ``transient_s``) of a run.

    Returns:
        dict with ``speed_mm_s`` (signed), ``frequency_hz``, ``wavelength_body_lengths``,
        ``amplitude`` (body lengths), ``curvature_amplitude_per_mm`` (RMS × √2), ``direction``
        (``forward``/``backward``), ``wave_direction``, ``gait`` (``crawl``/``swim``), ``window_s``.
    """
    t_s = np.asarray(t_s, float)
    if t_s[-1] - t_s[0] <= transient_s:
        transient_s = 0.0
    keep = t_s >= t_s[0] + transient_s
    t, xs, ys = t_s[keep], np.asarray(x)[keep], np.asarray(y)[keep]
    ph = None if phi is None else np.asarray(phi)[keep]
    k = curvature(xs, ys, ph)
    speed = signed_speed(t, xs, ys)
    freq = undulation_frequency(t, k)
    lam, wdir = wavelength(t, k)
    return {
        "speed_mm_s": speed,
        "frequency_hz": freq,
        "wavelength_body_lengths": lam,
        "amplitude": amplitude(xs, ys),
        "curvature_amplitude_per_mm": float(np.sqrt(2) * np.std(k[:, int(0.2 * k.shape[1]):int(0.8 * k.shape[1])])),
        "direction": "forward" if speed >= 0 else "backward",
        "wave_direction": wdir,
        "gait": gait_class(lam),
        "window_s": [float(t[0]), float(t[-1])],
    }

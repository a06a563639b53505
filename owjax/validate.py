"""Validation metrics computed on traces (DD010 subset).

* :func:`basic_metrics` — what ``owjax.simulate`` writes into ``summary.json``: finiteness, voltage
  range per population, spiking cells (upward crossings of −20 mV, c302's spike threshold), peak
  muscle activation.
* Oscillations: :func:`peak_times`, :func:`oscillation_period` (hard, NumPy) and
  :func:`spectral_period` (smooth, pure JAX: usable in a loss); :func:`wave_direction` across cells.
* Muscles: :func:`muscle_checks` (activation in [0, 1], peak, Ca decay time).
* Functional connectivity: :func:`functional_connectivity` (Pearson matrix, JAX) and
  :func:`fc_agreement` (Pearson r and sign agreement against a target matrix, JAX).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from owjax.traces import Traces

__all__ = [
    "basic_metrics",
    "spike_times",
    "SPIKE_THRESHOLD_mV",
    "peak_times",
    "oscillation_period",
    "spectral_period",
    "wave_direction",
    "decay_time",
    "muscle_checks",
    "functional_connectivity",
    "fc_agreement",
]

#: c302's spike threshold (neuron_spike_thresh = muscle_spike_thresh = −20 mV)
SPIKE_THRESHOLD_mV = -20.0


def spike_times(t_ms: np.ndarray, v_mV: np.ndarray, threshold_mV: float = SPIKE_THRESHOLD_mV) -> np.ndarray:
    """Times (ms) of upward crossings of ``threshold_mV``, linearly interpolated between samples."""
    v = np.asarray(v_mV)
    up = np.nonzero((v[:-1] < threshold_mV) & (v[1:] >= threshold_mV))[0]
    frac = (threshold_mV - v[up]) / (v[up + 1] - v[up])
    return t_ms[up] + frac * (t_ms[up + 1] - t_ms[up])


def basic_metrics(traces: Traces) -> dict:
    """Range and sanity checks of a simulation (JSON-ready floats and ints)."""
    out: dict = {}
    allv = []
    n_spiking = 0
    for pop, arrays in traces.populations.items():
        if "V" not in arrays:
            continue
        v = np.asarray(arrays["V"])
        allv.append(v)
        out[f"{pop}_V_min_mV"] = float(np.nanmin(v))
        out[f"{pop}_V_max_mV"] = float(np.nanmax(v))
        counts = [len(spike_times(traces.t_ms, vi)) for vi in v]
        out[f"{pop}_n_spiking"] = int(sum(c > 0 for c in counts))
        n_spiking += out[f"{pop}_n_spiking"]
        if "Ca" in arrays:
            out[f"{pop}_Ca_max_mM"] = float(np.nanmax(arrays["Ca"]))
            out[f"{pop}_Ca_min_mM"] = float(np.nanmin(arrays["Ca"]))
        if "activation" in arrays:
            a = np.asarray(arrays["activation"])
            out["muscle_activation_peak"] = float(a.max())
            out["muscle_activation_in_0_1"] = bool((a >= 0).all() and (a <= 1).all())
    v = np.concatenate(allv, 0) if allv else np.zeros((0, 0))
    out["all_finite"] = bool(all(np.isfinite(np.asarray(a[k])).all() for a in traces.populations.values()
                                 for k in a if k != "names"))
    out["V_min_mV"] = float(v.min()) if v.size else float("nan")
    out["V_max_mV"] = float(v.max()) if v.size else float("nan")
    out["V_in_physiological_range"] = bool(v.size and v.min() > -100.0 and v.max() < 80.0)
    out["n_spiking_cells"] = n_spiking
    return out


# ============================================================================ oscillations
def peak_times(t, x, prominence: float | None = None) -> np.ndarray:
    """Times of local maxima of ``x`` whose prominence exceeds ``prominence``.

    Arguments:
        t: sample times (any unit; the result has the same unit).
        x: signal (T,).
        prominence: minimum peak prominence; default a quarter of the signal's range.

    Returns:
        Peak times, refined by a parabola through the three samples around each maximum.
    """
    from scipy.signal import find_peaks

    t = np.asarray(t, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if prominence is None:
        prominence = 0.25 * float(np.ptp(x))
    if prominence <= 0:
        return np.zeros(0)
    idx, _ = find_peaks(x, prominence=prominence)
    idx = idx[(idx > 0) & (idx < len(x) - 1)]
    y0, y1, y2 = x[idx - 1], x[idx], x[idx + 1]
    denom = y0 - 2 * y1 + y2
    shift = np.where(denom != 0, 0.5 * (y0 - y2) / np.where(denom != 0, denom, 1.0), 0.0)
    dt = np.gradient(t)[idx]
    return t[idx] + shift * dt


def oscillation_period(t, x, prominence: float | None = None) -> float:
    """Median interval between successive peaks (same unit as ``t``); NaN with fewer than 2 peaks."""
    p = peak_times(t, x, prominence)
    return float(np.median(np.diff(p))) if len(p) >= 2 else float("nan")


def spectral_period(
    x: Float[Array, " T"],
    dt: float,
    min_period: float,
    max_period: float,
    sharpness: float = 50.0,
    pad_factor: int = 16,
) -> Float[Array, ""]:
    """A smooth (differentiable) estimate of the dominant period of ``x``.

    The mean-removed, Hann-windowed signal is zero-padded ``pad_factor``-fold and Fourier-transformed;
    the power in the band [1/max_period, 1/min_period] is turned into weights by a softmax of
    ``sharpness`` × log(power / max power), and the period is 1 / (weighted mean frequency). For a clean
    oscillation this equals the peak-to-peak period to within a few percent of the frequency
    resolution, and unlike peak picking it has a gradient with respect to every sample.

    Arguments:
        x: signal sampled every ``dt``.
        dt: sample interval (the period has the same unit).
        min_period, max_period: the band searched.
        sharpness: softmax inverse temperature on log power (larger = closer to the arg-max).
        pad_factor: zero-padding factor (finer frequency grid).

    Returns:
        The period (scalar array).
    """
    x = jnp.asarray(x)
    n = x.shape[0]
    w = jnp.hanning(n).astype(x.dtype)
    xw = (x - jnp.mean(x)) * w
    nfft = int(pad_factor * n)
    power = jnp.abs(jnp.fft.rfft(xw, n=nfft)) ** 2
    freqs = np.fft.rfftfreq(nfft, d=dt)
    band = (freqs >= 1.0 / max_period) & (freqs <= 1.0 / min_period)
    if not band.any():
        raise ValueError(f"no frequency bins in the period band [{min_period}, {max_period}] for dt={dt}, n={n}")
    p = power[band]
    logp = jnp.log(p / jnp.max(jax.lax.stop_gradient(p)) + 1e-30)
    weights = jax.nn.softmax(sharpness * logp)
    f = jnp.sum(weights * jnp.asarray(freqs[band], x.dtype))
    return 1.0 / f


def wave_direction(t, traces, prominence: float | None = None) -> tuple[str, float]:
    """Direction of a wave across cells ordered anterior → posterior (row 0 = most anterior).

    For each peak of the most posterior cell, the nearest peak of every other cell is found; the
    median slope of peak time against position says which end leads.

    Returns:
        ``("posterior_to_anterior" | "anterior_to_posterior", slope)`` where slope is the mean delay
        per cell towards the posterior end (negative: posterior cells peak first). NaN slope and
        ``"none"`` if fewer than 1 peak is found.
    """
    traces = np.asarray(traces)
    peaks = [peak_times(t, x, prominence) for x in traces]
    if any(len(p) == 0 for p in peaks):
        return "none", float("nan")
    pos = np.arange(len(traces), dtype=np.float64)
    slopes = []
    for t_ref in peaks[-1]:
        times = np.array([p[np.argmin(np.abs(p - t_ref))] for p in peaks])
        slopes.append(np.polyfit(pos, times, 1)[0])
    slope = float(np.median(slopes))
    return ("posterior_to_anterior" if slope < 0 else "anterior_to_posterior"), slope


def decay_time(t, x) -> float:
    """Time from the global maximum of ``x`` until it first falls to 1/e of (peak − final baseline).

    NaN if it never decays that far within the trace.
    """
    t = np.asarray(t, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    i = int(np.argmax(x))
    base = float(x[-1]) if i < len(x) - 1 else float(x.min())
    level = base + (x[i] - base) / np.e
    after = np.nonzero(x[i:] <= level)[0]
    return float(t[i + after[0]] - t[i]) if len(after) else float("nan")


def muscle_checks(t_ms, activation, ca_mM) -> dict:
    """DD010 muscle checks: activation in [0, 1], peak activation, median Ca decay time (ms)."""
    a = np.asarray(activation)
    active = [decay_time(t_ms, c) for c in np.asarray(ca_mM) if np.ptp(c) > 0]
    active = [d for d in active if np.isfinite(d)]
    return dict(
        activation_in_0_1=bool((a >= 0).all() and (a <= 1).all()),
        activation_peak=float(a.max()),
        ca_decay_time_ms=float(np.median(active)) if active else float("nan"),
    )


# ============================================================================ functional connectivity
def functional_connectivity(traces: Float[Array, "N T"], eps: float = 1e-12) -> Float[Array, "N N"]:
    """Pearson correlation matrix of traces (rows = cells). Constant traces get zero correlation."""
    x = jnp.asarray(traces)
    x = x - jnp.mean(x, axis=1, keepdims=True)
    norm = jnp.sqrt(jnp.sum(x * x, axis=1, keepdims=True) + eps)
    z = x / norm
    return z @ z.T


def fc_agreement(
    simulated: Float[Array, "N N"], target: Float[Array, "N N"], mask=None
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """Pearson r and sign agreement between two correlation matrices over off-diagonal entries.

    Arguments:
        simulated, target: (N, N) matrices.
        mask: optional boolean (N, N) selecting the pairs to compare (e.g. observed in the data);
            the diagonal is always excluded.

    Returns:
        ``(r, sign_agreement)``: Pearson r of the selected entries and the fraction with equal sign.
    """
    s = jnp.asarray(simulated)
    g = jnp.asarray(target)
    m = ~np.eye(s.shape[0], dtype=bool)
    if mask is not None:
        m = m & np.asarray(mask, dtype=bool)
    sv, gv = s[m], g[m]
    sv0, gv0 = sv - sv.mean(), gv - gv.mean()
    r = jnp.sum(sv0 * gv0) / jnp.sqrt(jnp.sum(sv0**2) * jnp.sum(gv0**2) + 1e-30)
    agree = jnp.mean((jnp.sign(sv) == jnp.sign(gv)).astype(s.dtype))
    return r, agree

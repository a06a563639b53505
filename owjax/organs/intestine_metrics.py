"""Read-outs of the intestinal Ca²⁺ oscillator (DD009): peaks, period, wave onsets and direction.

Host-side (NumPy) analysis of traces from :mod:`owjax.organs.intestine`; times in s, Ca in µM.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import ArrayLike

__all__ = ["peak_times", "oscillation_period", "wave_onsets", "wave_direction"]


def _as_trace(t: ArrayLike, ca: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t, dtype=float)
    ca = np.asarray(ca, dtype=float)
    if t.ndim != 1 or ca.ndim != 1 or t.shape != ca.shape:
        raise ValueError(f"expected 1-D t and ca of equal length, got shapes {t.shape}, {ca.shape}")
    return t, ca


def _excursions(ca: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Index ranges [start, stop) where ca > threshold, complete on both sides."""
    above = ca > threshold
    edges = np.diff(above.astype(np.int8))
    starts = list(np.nonzero(edges == 1)[0] + 1)
    stops = list(np.nonzero(edges == -1)[0] + 1)
    if above[0]:  # starts above threshold: the first excursion is incomplete, drop it
        stops = stops[1:]
    return [(s, e) for s, e in zip(starts, stops)] + (
        [(starts[len(stops)], len(ca))] if len(starts) > len(stops) else []
    )


def peak_times(t: ArrayLike, ca: ArrayLike, threshold: float = 0.2) -> np.ndarray:
    """Times of the Ca²⁺ peaks: the maximum of each excursion above ``threshold``.

    An excursion must start below threshold inside the trace (a trace that starts above it
    loses its first, incomplete excursion); the peak time is refined by a parabola through the
    maximum sample and its neighbours.

    Arguments:
        t: sample times (s), shape ``(T,)``.
        ca: Ca²⁺ of one cell (µM), shape ``(T,)``.
        threshold: event threshold (µM); DD009's lower threshold 0.2 µM by default.

    Returns:
        Peak times (s), increasing, shape ``(n_peaks,)``.
    """
    t, ca = _as_trace(t, ca)
    out = []
    for s, e in _excursions(ca, threshold):
        i = s + int(np.argmax(ca[s:e]))
        if i == len(ca) - 1:  # still rising at the end of the trace: not a peak yet
            continue
        if i > 0:
            y0, y1, y2 = ca[i - 1], ca[i], ca[i + 1]
            den = y0 - 2 * y1 + y2
            shift = 0.5 * (y0 - y2) / den if den != 0 else 0.0
            shift = float(np.clip(shift, -0.5, 0.5))
            out.append(t[i] + shift * (t[i + 1] - t[i - 1]) / 2)
    return np.asarray(out, dtype=float)


def oscillation_period(
    t: ArrayLike, ca: ArrayLike, threshold: float = 0.2, t_min: float | None = None
) -> float:
    """Mean interval between successive Ca²⁺ peaks (s); ``nan`` with fewer than two peaks.

    Arguments:
        t: sample times (s), shape ``(T,)``.
        ca: Ca²⁺ of one cell (µM), shape ``(T,)``.
        threshold: event threshold (µM).
        t_min: ignore peaks before this time (s), e.g. to skip the first transient cycle.

    Returns:
        Period in seconds.
    """
    pk = peak_times(t, ca, threshold)
    if t_min is not None:
        pk = pk[pk >= t_min]
    if len(pk) < 2:
        return float("nan")
    return float(np.mean(np.diff(pk)))


def _onset_times(t: np.ndarray, ca: np.ndarray, threshold: float) -> np.ndarray:
    """Upward threshold crossing times, linearly interpolated (s)."""
    out = []
    for s, _ in _excursions(ca, threshold):
        if s == 0:
            continue
        y0, y1 = ca[s - 1], ca[s]
        frac = (threshold - y0) / (y1 - y0) if y1 != y0 else 0.0
        out.append(t[s - 1] + frac * (t[s] - t[s - 1]))
    return np.asarray(out, dtype=float)


def wave_onsets(t: ArrayLike, ca_all_cells: ArrayLike, threshold: float = 0.2) -> np.ndarray:
    """Onset time of every cell for every complete wave.

    A wave is anchored on each onset (upward crossing of ``threshold``) of the cell that fires
    first in the trace; every cell's nearest onset within half a median inter-onset interval is
    assigned to it.  Waves that some cell misses are dropped.

    Arguments:
        t: sample times (s), shape ``(T,)``.
        ca_all_cells: Ca²⁺ (µM), shape ``(n_cells, T)``, row 0 = int1 (anterior).
        threshold: event threshold (µM).

    Returns:
        Onset times (s), shape ``(n_waves, n_cells)``.

    Raises:
        ValueError: wrong shapes, or no cell crosses the threshold.
    """
    t = np.asarray(t, dtype=float)
    ca = np.asarray(ca_all_cells, dtype=float)
    if ca.ndim != 2 or ca.shape[1] != t.shape[0]:
        raise ValueError(f"expected ca_all_cells of shape (n_cells, {t.shape[0]}), got {ca.shape}")
    onsets = [_onset_times(t, row, threshold) for row in ca]
    if not any(len(o) for o in onsets):
        raise ValueError(f"no cell crosses the event threshold {threshold} µM: no wave to analyse")
    ref = min((i for i in range(len(onsets)) if len(onsets[i])), key=lambda i: onsets[i][0])
    intervals = np.concatenate([np.diff(o) for o in onsets if len(o) > 1] or [np.array([np.inf])])
    window = 0.5 * float(np.median(intervals))
    waves = []
    for t_ref in onsets[ref]:
        row = []
        for o in onsets:
            if len(o) == 0:
                row = None
                break
            j = int(np.argmin(np.abs(o - t_ref)))
            if abs(o[j] - t_ref) > window:
                row = None
                break
            row.append(o[j])
        if row is not None:
            waves.append(row)
    return np.asarray(waves, dtype=float).reshape(len(waves), ca.shape[0])


def wave_direction(
    t: ArrayLike,
    ca_all_cells: ArrayLike,
    threshold: float = 0.2,
    min_transit_s: float | None = None,
) -> str:
    """Direction of the intercellular Ca²⁺ wave.

    Fits onset time against cell index (0 = int1, anterior) for every complete wave (see
    :func:`wave_onsets`) and averages the slopes: a negative slope means the posterior cells
    fire first.  Meant for coupled chains; for uncoupled cells the "waves" are chance phase
    relations.

    Arguments:
        t: sample times (s), shape ``(T,)``.
        ca_all_cells: Ca²⁺ (µM), shape ``(n_cells, T)``, row 0 = int1.
        threshold: event threshold (µM).
        min_transit_s: if the fitted int20→int1 transit time is shorter than this (s), the
            cells fire together and ``"synchronous"`` is returned; default: half the sampling
            interval.

    Returns:
        ``"posterior_to_anterior"`` or ``"anterior_to_posterior"`` (or ``"synchronous"``).

    Raises:
        ValueError: no complete wave (some cell never fires with the others).
    """
    t_arr = np.asarray(t, dtype=float)
    waves = wave_onsets(t_arr, ca_all_cells, threshold)
    if len(waves) == 0:
        raise ValueError("no complete wave: no set of onsets in which every cell takes part")
    if min_transit_s is None:
        min_transit_s = 0.5 * float(np.median(np.diff(t_arr)))
    idx = np.arange(waves.shape[1], dtype=float)
    slope = float(np.mean([np.polyfit(idx, w, 1)[0] for w in waves]))
    if abs(slope) * (waves.shape[1] - 1) < min_transit_s:
        return "synchronous"
    return "posterior_to_anterior" if slope < 0 else "anterior_to_posterior"

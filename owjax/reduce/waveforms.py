"""Input-current waveform families for reduced-order data (steps, ramps, pulses, sinusoids, smooth random).

Every waveform is a table of currents (pA, inward positive) on a uniform time grid (ms); a table is
what :class:`owjax.reduce.drive.WaveformCurrents` interpolates inside the solve and what the dataset
records as the model's input. The families follow the kinds of shapes of the Sci. Rep. study
(Mestre et al., "Learning the dynamics of realistic models of C. elegans nervous system with
recurrent neural networks"): constant steps switched on (and sometimes off), ramps, rectangular pulse
trains, sinusoids and smoothly varying random currents, all non-negative like the study's currents,
each starting after a quiet lead-in so that the trace begins at rest.

Amplitudes: the study drove a NEURON multi-compartment model with currents of order 1–3 (its files
hold e.g. PLM 1.4, AVB 2.3 in NEURON's nA); those numbers do not transfer to c302's single-compartment
C1 cells (capacitance and leak differ), so here a waveform's peak is drawn from
``[min_fraction, 1] × amplitude_pA`` with ``amplitude_pA`` per input cell (default 2 pA: c302 C1
Full stays graded up to ≈ 2 pA, from ≈ 3 pA on DB1, LUAL and VB1 start to fire regenerative
events, at 10 pA they spike; see docs/reduce.md).

All functions are NumPy (host side, seeded): data generation is not differentiated through the
waveform parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from owjax.core.errors import unknown_name_message

__all__ = ["FAMILIES", "WaveformSet", "make_waveform", "make_waveforms", "bilateral_groups"]

FAMILIES = ("step", "ramp", "pulse", "sine", "smooth_random")


@dataclass(frozen=True)
class WaveformSet:
    """A batch of waveform tables.

    Attributes:
        t_ms: (K,) table times, ms (uniform, from 0).
        currents_pA: (N, K, n_in) currents, pA (inward positive).
        families: (N,) family of each waveform (one family per waveform, all inputs).
        cells: (n_in,) the input cells, in column order.
    """

    t_ms: np.ndarray
    currents_pA: np.ndarray
    families: tuple[str, ...]
    cells: tuple[str, ...]


def bilateral_groups(cells: Sequence[str]) -> list[list[int]]:
    """Groups of column indices that share one waveform: left/right pairs (``PLML``/``PLMR``), else singletons."""
    cells = list(cells)
    groups, used = [], set()
    for i, c in enumerate(cells):
        if i in used:
            continue
        g = [i]
        if c.endswith("L") and c[:-1] + "R" in cells:
            j = cells.index(c[:-1] + "R")
            g.append(j)
            used.add(j)
        used.add(i)
        groups.append(g)
    return groups


def _smooth_noise(rng: np.random.Generator, n: int, sigma_samples: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to [0, 1]."""
    pad = int(4 * sigma_samples) + 1
    w = rng.standard_normal(n + 2 * pad)
    k = np.exp(-0.5 * (np.arange(-pad, pad + 1) / sigma_samples) ** 2)
    s = np.convolve(w, k / k.sum(), mode="same")[pad:pad + n]
    lo, hi = s.min(), s.max()
    return (s - lo) / (hi - lo) if hi > lo else np.zeros(n)


def make_waveform(family: str, t_ms: np.ndarray, amplitude_pA: float, rng: np.random.Generator,
                  min_fraction: float = 0.2, lead_in_ms: tuple[float, float] = (20.0, 150.0)) -> np.ndarray:
    """One waveform (pA) of ``family`` on the grid ``t_ms`` (ms), peak in ``[min_fraction, 1]·amplitude_pA``.

    Shapes (``t_on`` drawn from ``lead_in_ms``; nothing before it):

    * ``step``: constant from ``t_on``; half of them switch off again before the end;
    * ``ramp``: linear rise over 50–300 ms to the peak, then held (or, for half, back down);
    * ``pulse``: rectangular pulse train, period 40–200 ms, duty 20–60 %;
    * ``sine``: ``a·(1 − cos 2πf(t − t_on))/2``, f 2–25 Hz (non-negative);
    * ``smooth_random``: Gaussian-filtered noise (σ 5–40 ms) rescaled to [0, a].
    """
    if family not in FAMILIES:
        raise ValueError(unknown_name_message("waveform family", family, FAMILIES))
    t = np.asarray(t_ms, float)
    T = float(t[-1]) if t.size else 0.0
    a = float(amplitude_pA) * rng.uniform(min_fraction, 1.0)
    t_on = rng.uniform(*lead_in_ms) if T > lead_in_ms[1] else rng.uniform(0.1, 0.3) * T
    after = t >= t_on
    if family == "step":
        y = a * after
        if rng.uniform() < 0.5:
            t_off = rng.uniform(t_on + 0.3 * (T - t_on), T)
            y = y * (t < t_off)
    elif family == "ramp":
        rise = rng.uniform(50.0, 300.0) * min(1.0, T / 500.0)
        y = a * np.clip((t - t_on) / rise, 0.0, 1.0)
        if rng.uniform() < 0.5:
            t_top = t_on + rise + rng.uniform(0.0, 0.2) * T
            y = np.where(t > t_top, a * np.clip(1.0 - (t - t_top) / rise, 0.0, 1.0), y)
    elif family == "pulse":
        period = rng.uniform(40.0, 200.0) * min(1.0, T / 500.0)
        duty = rng.uniform(0.2, 0.6)
        phase = np.mod(t - t_on, period) / period
        y = a * (after & (phase < duty))
    elif family == "sine":
        f_hz = rng.uniform(2.0, 25.0)
        y = a * after * 0.5 * (1.0 - np.cos(2 * np.pi * f_hz * (t - t_on) / 1000.0))
    else:  # smooth_random
        dt = float(t[1] - t[0]) if t.size > 1 else 1.0
        sigma = rng.uniform(5.0, 40.0) / dt
        y = a * after * _smooth_noise(rng, t.size, sigma)
    return np.asarray(y, float)


def make_waveforms(cells: Sequence[str], n: int, duration_ms: float, dt_ms: float, seed: int = 0,
                   families: Sequence[str] = FAMILIES, amplitude_pA: float | Sequence[float] = 2.0,
                   min_fraction: float = 0.2, tie_bilateral: bool = True) -> WaveformSet:
    """``n`` waveform tables for the input ``cells`` (families assigned in turn: n/len(families) each).

    Arguments:
        cells: input cells (columns).
        n: number of waveforms (sequences).
        duration_ms, dt_ms: table length and step (ms); the table has ``duration/dt + 1`` rows.
        seed: NumPy seed (the same arguments give the same tables).
        families: families to cycle through (see :func:`make_waveform`).
        amplitude_pA: peak current per cell (pA), one number or one per cell.
        min_fraction: smallest peak as a fraction of ``amplitude_pA``.
        tie_bilateral: left/right pairs (``AVBL``/``AVBR``) get the same waveform, as in the study's files.

    Every input group draws its own shape parameters within the waveform's family, so the inputs of
    one sequence differ in timing and amplitude.
    """
    cells = tuple(cells)
    if n < 1:
        raise ValueError(f"need at least one waveform, got n={n}")
    for f in families:
        if f not in FAMILIES:
            raise ValueError(unknown_name_message("waveform family", f, FAMILIES))
    k = int(round(duration_ms / dt_ms))
    if k < 2 or not np.isclose(k * dt_ms, duration_ms):
        raise ValueError(f"duration_ms={duration_ms} must be a multiple (≥ 2) of dt_ms={dt_ms}")
    amps = np.broadcast_to(np.asarray(amplitude_pA, float), (len(cells),))
    t = np.arange(k + 1) * float(dt_ms)
    rng = np.random.default_rng(seed)
    groups = bilateral_groups(cells) if tie_bilateral else [[i] for i in range(len(cells))]
    out = np.zeros((n, k + 1, len(cells)))
    fams = []
    for s in range(n):
        fam = families[s % len(families)]
        fams.append(fam)
        for g in groups:
            y = make_waveform(fam, t, 1.0, rng, min_fraction)
            for i in g:
                out[s, :, i] = y * amps[i]
    return WaveformSet(t, out, tuple(fams), cells)

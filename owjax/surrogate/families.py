"""Activation families for the surrogate's training data (DD017, component 2): plain NumPy.

Every sample is a muscle activation time course ``(T, 2, 24)`` in [0, 1] (row 0 dorsal, row 1
ventral, column 0 at the head; each of the 24 muscle segments drives two of the body's 48
segments, as :func:`owjax.body.mechanics.activation_per_segment` does) sampled on a grid of step
``dt_s`` (s) over ``duration_s`` (s), plus the medium number m ∈ [0, 1] (0 water, 1 agar) and the
parameters that generated it. Families:

* ``nominal`` — the BBC proprioceptive loop's own activations (:class:`owjax.body.BBCCircuit`
  driving the body in a medium m, AVB drive varied), pooled to 24 muscle segments;
* ``perturbed`` — a nominal activation with six muscle groups (3 along the body × dorsal/ventral)
  scaled by factors in [0.5, 2] (then clipped to 1);
* ``wave`` — travelling sine waves (frequency, wavelength, amplitude, direction, tonic
  dorsal/ventral bias); a third of them turn: the bias is a smooth pulse of 0.5–2 s;
* ``single`` — one muscle segment on one side, a smooth pulse or a sinusoid;
* ``smooth`` — smooth random fields in (time, body position) squashed into [0, 1].

The out-of-distribution (OOD) families (``ood_fast``, ``ood_amplitude``, ``ood_wavelength``,
``ood_mixture``, ``ood_reversal``) leave the training ranges: faster waves, weaker or saturated
amplitude, very short/long wavelengths, a wave plus a random field, and a mid-run reversal.

Parameters are drawn per sample from ``numpy.random.default_rng([seed, index])``, so any sample
can be rebuilt from (seed, index) alone, in any order (what makes the generator resumable).
"""

from __future__ import annotations

import numpy as np

__all__ = ["FAMILIES", "OOD_FAMILIES", "PARAM_NAMES", "N_MUSCLE_SEGMENTS", "WAVE_RANGES", "time_grid",
           "make_activation", "draw_params", "perturb_groups", "pool_segments"]

N_MUSCLE_SEGMENTS = 24
FAMILIES = ("nominal", "perturbed", "wave", "single", "smooth")
OOD_FAMILIES = ("ood_fast", "ood_amplitude", "ood_wavelength", "ood_mixture", "ood_reversal")
#: the generating parameters stored with every sample (NaN where a family has no such parameter)
PARAM_NAMES = ("medium", "frequency_hz", "wavelength_body_lengths", "amplitude", "direction", "dorsal_bias",
               "turn_start_s", "turn_duration_s", "segment", "side", "avb_current", "nominal_index", "scale_min",
               "scale_max", "seed_field")
#: training ranges of the travelling-wave family (the OOD set leaves them)
WAVE_RANGES = {"frequency_hz": (0.2, 2.5), "wavelength_body_lengths": (0.4, 2.0), "amplitude": (0.25, 0.9),
               "dorsal_bias": (-0.3, 0.3)}


def time_grid(duration_s: float, dt_s: float) -> np.ndarray:
    """Sample times 0, dt, …, duration (s)."""
    n = int(round(duration_s / dt_s)) + 1
    return np.arange(n) * dt_s


def _segment_centres(n: int = N_MUSCLE_SEGMENTS) -> np.ndarray:
    return (np.arange(n) + 0.5) / n


def _wave(t, f, lam, amp, direction, bias):
    """(T, 2, 24) travelling wave; ``bias`` scalar or (T,) tonic dorsal (+) / ventral (−) offset."""
    s = _segment_centres()
    psi = 2 * np.pi * (f * t[:, None] - direction * s[None] / lam)
    w = np.sin(psi)
    b = np.broadcast_to(np.asarray(bias, float), t.shape)[:, None]
    d = amp * (1 + w) / 2 + np.maximum(b, 0)
    v = amp * (1 - w) / 2 + np.maximum(-b, 0)
    return np.stack([d, v], 1)


def _smooth_field(rng, t, f_max, k_max, n_modes=12):
    """A smooth random field (T, 2, 24) with values in (0, 1): random Fourier modes in time (≤ f_max Hz)
    and along the body (≤ k_max cycles per body length), squashed by a logistic."""
    s = _segment_centres()
    out = np.zeros((t.size, 2, s.size))
    for side in range(2):
        f = rng.uniform(0, f_max, n_modes)
        k = rng.uniform(0, k_max, n_modes)
        ph = rng.uniform(0, 2 * np.pi, n_modes)
        a = rng.normal(0, 1, n_modes) / np.sqrt(n_modes)
        arg = 2 * np.pi * (f[None, None] * t[:, None, None] - k[None, None] * s[None, :, None]) + ph
        out[:, side] = np.sum(a * np.sin(arg), -1)
    return 1.0 / (1.0 + np.exp(-3.0 * out))


def pool_segments(activation_48: np.ndarray) -> np.ndarray:
    """(…, 2, 48) body-segment activation → (…, 2, 24) muscle-segment activation (mean of pairs)."""
    a = np.asarray(activation_48)
    return a.reshape(a.shape[:-1] + (N_MUSCLE_SEGMENTS, 2)).mean(-1)


def perturb_groups(activation: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Scale six muscle groups (head/mid/tail thirds × dorsal/ventral) of a (T, 2, 24) activation by
    ``scales`` (2, 3) and clip to [0, 1]."""
    a = np.array(activation, float)
    per = N_MUSCLE_SEGMENTS // 3
    for side in range(2):
        for g in range(3):
            a[:, side, g * per:(g + 1) * per] *= scales[side, g]
    return np.clip(a, 0.0, 1.0)


def _empty_params() -> dict:
    return {k: float("nan") for k in PARAM_NAMES}


def draw_params(family: str, seed: int, index: int, n_nominal: int = 0) -> dict:
    """The generating parameters of sample ``index`` of ``family`` (deterministic in seed, index)."""
    if family not in FAMILIES_ALL:
        raise ValueError(f"unknown activation family {family!r}; allowed: {list(FAMILIES_ALL)}")
    rng = np.random.default_rng([int(seed), int(index), FAMILIES_ALL.index(family)])
    p = _empty_params()
    p["medium"] = float(rng.uniform(0.0, 1.0))
    p["seed_field"] = float(rng.integers(0, 2**31 - 1))
    if family == "nominal":
        p["avb_current"] = float(rng.uniform(0.6, 0.8))
    elif family == "perturbed":
        if n_nominal < 1:
            raise ValueError("the perturbed family needs nominal activations (nominal pool is empty)")
        p["nominal_index"] = float(rng.integers(0, n_nominal))
        p["scale_min"], p["scale_max"] = 0.5, 2.0
    elif family in ("wave", "ood_fast", "ood_amplitude", "ood_wavelength", "ood_reversal"):
        r = WAVE_RANGES
        p["frequency_hz"] = float(np.exp(rng.uniform(*np.log(r["frequency_hz"]))))
        p["wavelength_body_lengths"] = float(np.exp(rng.uniform(*np.log(r["wavelength_body_lengths"]))))
        p["amplitude"] = float(rng.uniform(*r["amplitude"]))
        p["direction"] = 1.0 if rng.uniform() < 0.8 else -1.0
        bmax = min(r["dorsal_bias"][1], 1.0 - p["amplitude"])
        p["dorsal_bias"] = float(rng.uniform(-bmax, bmax)) if rng.uniform() < 0.7 else 0.0
        if rng.uniform() < 1 / 3:  # a turn: a bias pulse
            p["turn_start_s"] = float(rng.uniform(0.5, 3.0))
            p["turn_duration_s"] = float(rng.uniform(0.5, 2.0))
        if family == "ood_fast":
            p["frequency_hz"] = float(rng.uniform(3.0, 4.5))
        elif family == "ood_amplitude":
            p["amplitude"] = float(rng.choice([rng.uniform(0.05, 0.18), rng.uniform(0.95, 1.0)]))
            p["dorsal_bias"] = float(np.clip(p["dorsal_bias"], -(1 - p["amplitude"]), 1 - p["amplitude"]))
        elif family == "ood_wavelength":
            p["wavelength_body_lengths"] = float(rng.choice([rng.uniform(0.25, 0.33), rng.uniform(2.6, 4.0)]))
        elif family == "ood_reversal":
            p["turn_start_s"] = float(rng.uniform(1.5, 3.5))  # reversal time
            p["turn_duration_s"] = float("nan")
    elif family == "single":
        p["segment"] = float(rng.integers(0, N_MUSCLE_SEGMENTS))
        p["side"] = float(rng.integers(0, 2))
        p["amplitude"] = float(rng.uniform(0.2, 1.0))
        p["frequency_hz"] = float(rng.uniform(0.2, 2.0)) if rng.uniform() < 0.5 else float("nan")
        p["turn_start_s"] = float(rng.uniform(0.2, 2.5))
        p["turn_duration_s"] = float(rng.uniform(0.5, 2.5))
    elif family == "smooth":
        p["frequency_hz"] = float(rng.uniform(0.5, 2.5))  # highest temporal frequency of the field
        p["wavelength_body_lengths"] = float(rng.uniform(0.4, 2.0))  # shortest spatial period
        p["amplitude"] = float(rng.uniform(0.4, 1.0))
    elif family == "ood_mixture":
        r = WAVE_RANGES
        p["frequency_hz"] = float(rng.uniform(*r["frequency_hz"]))
        p["wavelength_body_lengths"] = float(rng.uniform(*r["wavelength_body_lengths"]))
        p["amplitude"] = float(rng.uniform(0.3, 0.6))
        p["direction"] = 1.0
        p["dorsal_bias"] = 0.0
    else:
        raise ValueError(f"unknown activation family {family!r}; allowed: {list(FAMILIES_ALL)}")
    return p


FAMILIES_ALL = FAMILIES + OOD_FAMILIES


def _pulse(t, start, duration):
    """Smooth (raised-cosine edged) pulse in [0, 1] from ``start`` lasting ``duration`` (s)."""
    ramp = min(0.25, duration / 3)
    up = np.clip((t - start) / ramp, 0, 1)
    down = np.clip((start + duration - t) / ramp, 0, 1)
    x = np.minimum(up, down)
    return 0.5 - 0.5 * np.cos(np.pi * x)


def make_activation(family: str, p: dict, t: np.ndarray, nominal: np.ndarray | None = None) -> np.ndarray:
    """The activation (T, 2, 24) in [0, 1] of a sample with parameters ``p`` (from :func:`draw_params`)
    on times ``t`` (s). ``nominal``: the pool of nominal activations (n, T, 2, 24) for ``perturbed``."""
    if family == "nominal":
        raise ValueError("nominal activations come from the BBC loop (owjax.surrogate.data.nominal_pool)")
    if family == "perturbed":
        rng = np.random.default_rng(int(p["seed_field"]))
        scales = np.exp(rng.uniform(np.log(p["scale_min"]), np.log(p["scale_max"]), (2, 3)))
        return perturb_groups(nominal[int(p["nominal_index"])], scales)
    if family in ("wave", "ood_fast", "ood_amplitude", "ood_wavelength"):
        bias = p["dorsal_bias"]
        if np.isfinite(p["turn_start_s"]):
            bias = bias * _pulse(t, p["turn_start_s"], p["turn_duration_s"])
        return np.clip(_wave(t, p["frequency_hz"], p["wavelength_body_lengths"], p["amplitude"], p["direction"],
                             bias), 0, 1)
    if family == "ood_reversal":
        fwd = _wave(t, p["frequency_hz"], p["wavelength_body_lengths"], p["amplitude"], p["direction"], 0.0)
        back = _wave(t, p["frequency_hz"], p["wavelength_body_lengths"], p["amplitude"], -p["direction"], 0.0)
        w = np.clip((t - p["turn_start_s"]) / 0.3, 0, 1)[:, None, None]
        return np.clip((1 - w) * fwd + w * back, 0, 1)
    if family == "single":
        a = np.zeros((t.size, 2, N_MUSCLE_SEGMENTS))
        env = _pulse(t, p["turn_start_s"], p["turn_duration_s"])
        if np.isfinite(p["frequency_hz"]):
            env = env * 0.5 * (1 - np.cos(2 * np.pi * p["frequency_hz"] * (t - p["turn_start_s"])))
        a[:, int(p["side"]), int(p["segment"])] = p["amplitude"] * env
        return a
    if family == "smooth":
        rng = np.random.default_rng(int(p["seed_field"]))
        return p["amplitude"] * _smooth_field(rng, t, p["frequency_hz"], 1.0 / p["wavelength_body_lengths"])
    if family == "ood_mixture":
        rng = np.random.default_rng(int(p["seed_field"]))
        wave = _wave(t, p["frequency_hz"], p["wavelength_body_lengths"], p["amplitude"], 1.0, 0.0)
        return np.clip(wave + 0.4 * _smooth_field(rng, t, 2.0, 2.0), 0, 1)
    raise ValueError(f"unknown activation family {family!r}; allowed: {list(FAMILIES_ALL)}")

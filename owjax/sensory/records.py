"""One typed stimulus → calcium-response record per worm (the unit every sensory tool works on).

A :class:`SensoryRecord` holds one recording of one identified sensory neuron:

* ``time_s`` — sample times in seconds from the start of the recording (uniform grid);
* ``stimulus`` — the stimulus at those times, in ``stimulus_unit`` (``degC`` for AFD temperature,
  ``percent_O2`` for BAG oxygen);
* ``response`` — the calcium signal, in ``response_unit``:

  - AFD (Bryant et al. 2022): ratiometric cameleon ΔR/R in **percent**; R0 is the authors' baseline,
    the mean YFP/CFP ratio while the worm sat at the protocol's ``F0`` temperature (``Stim.F0``: 20 °C
    for the 23 °C-hold warming ramp, 12 °C for the 15 °C hold, 22 °C for cooling), as computed by
    their preprocessing (``TCI_LoadTrace``); the loaders keep their numbers unchanged.
  - BAG (Zimmer lab): GCaMP5k ΔF/F as a **fraction** (1.0 = +100 %); F = ROI mean − background
    (column 3 of the logs) and F0 = the mean of F from 30 s to the O2 downshift (the first 30 s show
    bleaching), computed by :func:`owjax.sensory.loaders.load_zimmer_log`.

Records also carry the protocol facts the analyses need (holding temperature, F0 temperature, ramp
speed, the authors' analysis window, the O2 switch times) in ``meta``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from jaxtyping import Float

__all__ = ["SensoryRecord", "MODALITIES", "RecordError"]

#: modality → (neuron class, c302 cells driven, stimulus unit, response unit)
MODALITIES: dict[str, dict[str, Any]] = {
    "afd": dict(neuron="AFD", cells=("AFDL", "AFDR"), stimulus_unit="degC", response_unit="percent_dR/R",
                stimulus_name="temperature"),
    "bag": dict(neuron="BAG", cells=("BAGL", "BAGR"), stimulus_unit="percent_O2", response_unit="dF/F",
                stimulus_name="oxygen"),
}


class RecordError(ValueError):
    """A recording (or a file holding recordings) is malformed; the message says what and where."""


@dataclass(frozen=True, eq=False)
class SensoryRecord:
    """One worm's stimulus → response recording (see the module docstring for units and baselines).

    Attributes:
        worm_id: recording id (Bryant's UID, or the log file's stem).
        modality: ``"afd"`` or ``"bag"`` (keys of :data:`MODALITIES`).
        protocol: protocol name (Bryant's ``Pname``, or ``"O2 21-4-21"``).
        time_s: (T,) sample times, s, uniform spacing ``dt_s``.
        stimulus: (T,) stimulus, ``stimulus_unit``.
        response: (T,) calcium response, ``response_unit``; NaN marks missing samples.
        source: the file the record came from.
        meta: protocol facts (``holding_c``, ``f0_c``, ``rampspeed_c_per_s``, ``analysis_window``
            (start, stop) sample indices of the authors' analysis window, ``o2_switch_s`` …).
    """

    worm_id: str
    modality: str
    protocol: str
    time_s: Float[np.ndarray, " T"]
    stimulus: Float[np.ndarray, " T"]
    response: Float[np.ndarray, " T"]
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        where = f"record {self.worm_id!r} ({self.source or 'no file'})"
        if self.modality not in MODALITIES:
            raise RecordError(f"{where}: unknown modality {self.modality!r}; known: {sorted(MODALITIES)}")
        t, s, r = (np.asarray(a, dtype=np.float64) for a in (self.time_s, self.stimulus, self.response))
        if t.ndim != 1 or s.shape != t.shape or r.shape != t.shape:
            raise RecordError(f"{where}: time_s, stimulus and response must be 1-D of equal length, got "
                              f"{t.shape}, {s.shape}, {r.shape}")
        if t.size < 3:
            raise RecordError(f"{where}: needs at least 3 samples, got {t.size}")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(s))):
            raise RecordError(f"{where}: time_s and stimulus must be finite (the loaders interpolate gaps)")
        dt = np.diff(t)
        if np.any(dt <= 0) or not np.allclose(dt, dt[0], rtol=1e-3, atol=1e-6):
            raise RecordError(f"{where}: time_s must be strictly increasing and uniform "
                              f"(spacing {dt.min():.4g} … {dt.max():.4g} s)")
        if np.all(np.isnan(r)):
            raise RecordError(f"{where}: the response is all NaN")
        object.__setattr__(self, "time_s", t)
        object.__setattr__(self, "stimulus", s)
        object.__setattr__(self, "response", r)

    @property
    def dt_s(self) -> float:
        """Sampling interval, s."""
        return float(self.time_s[1] - self.time_s[0])

    @property
    def n_samples(self) -> int:
        return int(self.time_s.size)

    @property
    def stimulus_unit(self) -> str:
        return MODALITIES[self.modality]["stimulus_unit"]

    @property
    def response_unit(self) -> str:
        return MODALITIES[self.modality]["response_unit"]

    def resampled(self, dt_s: float) -> "SensoryRecord":
        """The record on a coarser uniform grid of spacing ``dt_s`` (block means of whole samples).

        Arguments:
            dt_s: new spacing, s; must be an integer multiple of :attr:`dt_s`.

        Returns:
            A new record (times at the block starts; the analysis window and switch times kept in s).
        """
        k = dt_s / self.dt_s
        if abs(k - round(k)) > 1e-6 or round(k) < 1:
            raise RecordError(f"record {self.worm_id!r}: cannot resample dt {self.dt_s} s to {dt_s} s "
                              "(need an integer multiple)")
        k = int(round(k))
        if k == 1:
            return self
        n = self.n_samples // k
        blk = lambda a: a[: n * k].reshape(n, k)  # noqa: E731
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN block stays NaN
            resp = np.nanmean(blk(self.response), axis=1)
        meta = dict(self.meta)
        if "analysis_window" in meta and meta["analysis_window"] is not None:
            a, b = meta["analysis_window"]
            meta["analysis_window"] = (a // k, b // k)
        return SensoryRecord(self.worm_id, self.modality, self.protocol, blk(self.time_s)[:, 0],
                             blk(self.stimulus).mean(axis=1), resp, self.source, meta)

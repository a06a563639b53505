"""Loaders: raw recordings → :class:`~owjax.sensory.records.SensoryRecord` (one per worm).

Two formats, and any new file in either format, given by path:

* **Bryant et al. 2022 MATLAB structs** (``*_data.mat``, AFD, temperature): ``Temps.<window>`` (°C)
  and ``CaResponse.<window>`` (ΔR/R, %) as (samples × worms) arrays plus ``Stim``, ``time``,
  ``UIDs``, ``Pname`` (:func:`load_bryant_mat`). The ``complete`` window (the whole recording) is
  loaded; the authors' analysis window (``subset``) is located inside it and kept as
  ``meta["analysis_window"]``.

  *Sampling interval.* The shared README says 2 Hz, but in these structs the temperature rises by
  0.025 °C per sample during the 0.025 °C/s ramp and falls by ≈ 0.1 °C per sample during the
  0.1 °C/s cooling ramp: the traces are at **1 sample per second** (the authors' preprocessing
  averages frames). :func:`load_bryant_mat` checks this against ``time.rampspeed`` and raises if a
  file disagrees (pass ``dt_s`` to override).
* **Zimmer-lab BAG logs** (``*.log``, comma-separated, no header, nine columns: frame, time (ms),
  object − background, background, object, ROI size, background mean, x, y; 10 Hz)
  (:func:`load_zimmer_log`). The O2 schedule is not logged; the records use the published protocol
  (21 % → 4 % → 21 %, 360 s at 4 %) with the downshift at ``o2_switch_s`` = 100 s of the log's clock
  (the logs start ≈ 10 s into the 110 s 21 % phase: every worm's response starts at 104–107 s and
  falls back at ≈ 465–475 s). Onset latencies are relative to this nominal switch.

:func:`load_file` picks the loader from the suffix; :func:`load_dataset` reads the compact copy
shipped in ``owjax/data/sensory`` (written by :mod:`owjax.sensory.capture`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from owjax.sensory.records import MODALITIES, RecordError, SensoryRecord

__all__ = ["load_bryant_mat", "load_zimmer_log", "load_file", "load_dataset", "DATA_DIR", "BAG_PROTOCOL"]

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "sensory"

#: the BAG protocol (Zimmer lab): O2 % and durations, s
BAG_PROTOCOL = dict(high_percent=21.0, low_percent=4.0, low_duration_s=360.0, default_switch_s=100.0)


def _interp_nans(x: np.ndarray) -> np.ndarray:
    bad = np.isnan(x)
    if not bad.any():
        return x
    idx = np.arange(x.size)
    out = x.copy()
    out[bad] = np.interp(idx[bad], idx[~bad], x[~bad])
    return out


def load_bryant_mat(path: str | Path, dt_s: float | None = None) -> list[SensoryRecord]:
    """Every worm of one Bryant-format ``*_data.mat`` file (AFD; temperature °C → ΔR/R %).

    Arguments:
        path: the MATLAB file (``Temps``, ``CaResponse``, ``Stim``, ``time``, ``UIDs``, ``Pname``).
        dt_s: sampling interval, s; ``None``: 1 s, checked against the ramp speed in ``time.rampspeed``.

    Returns:
        One :class:`SensoryRecord` per worm (column), trailing zero padding removed and isolated NaN
        temperatures interpolated. ``meta``: ``holding_c``, ``f0_c``, ``min_c``, ``max_c``,
        ``rampspeed_c_per_s``, ``soak_s``, ``analysis_window`` (start, stop indices of ``subset``).

    Raises:
        RecordError: the file is missing, not a MATLAB file, or lacks the fields above.
    """
    import scipy.io as sio

    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: no such file")
    try:
        m = sio.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as e:  # scipy raises ValueError/TypeError/MatReadError on non-MAT input
        raise RecordError(f"{path}: not a readable MATLAB file ({type(e).__name__}: {e})") from None
    need = ("Temps", "CaResponse", "Stim", "time")
    missing = [k for k in need if k not in m]
    if missing:
        raise RecordError(f"{path}: not a Bryant-format struct file; lacks {missing} (has "
                          f"{sorted(k for k in m if not k.startswith('__'))})")
    try:
        temps = np.atleast_2d(np.asarray(m["Temps"].complete, dtype=np.float64))
        resp = np.atleast_2d(np.asarray(m["CaResponse"].complete, dtype=np.float64))
    except AttributeError as e:
        raise RecordError(f"{path}: Temps/CaResponse lack the 'complete' window ({e})") from None
    if temps.shape[0] == 1:
        temps, resp = temps.T, resp.T
    if temps.shape != resp.shape:
        raise RecordError(f"{path}: Temps.complete {temps.shape} and CaResponse.complete {resp.shape} differ")
    stim, tm = m["Stim"], m["time"]
    rampspeed = float(np.atleast_1d(getattr(tm, "rampspeed", np.nan))[0])
    subset = getattr(m["CaResponse"], "subset", None)
    subset = None if subset is None else np.atleast_2d(np.asarray(subset, dtype=np.float64))
    n = temps.shape[1]
    uids = np.atleast_1d(m.get("UIDs", np.array([f"worm{i}" for i in range(n)])))
    if len(uids) != n:
        raise RecordError(f"{path}: {len(uids)} UIDs for {n} worms")
    pname = str(m.get("Pname", path.stem))
    meta0 = dict(
        holding_c=float(np.atleast_1d(stim.holding)[0]), f0_c=float(np.atleast_1d(stim.F0)[0]),
        min_c=float(np.atleast_1d(stim.min)[0]), max_c=float(np.atleast_1d(stim.max)[0]),
        rampspeed_c_per_s=rampspeed, soak_s=float(np.atleast_1d(getattr(tm, "soak", np.nan))[0]),
    )
    out = []
    for i in range(n):
        t, r = temps[:, i], resp[:, i]
        keep = np.where(~((t == 0) | (np.isnan(t) & np.isnan(r))))[0]
        if keep.size < 3:
            raise RecordError(f"{path}: worm {i} ({uids[i]}) has no samples")
        last = keep[-1] + 1
        t, r = _interp_nans(t[:last]), r[:last]
        window = None
        if subset is not None and subset.shape[1] == n:
            s = subset[:, i][~np.isnan(subset[:, i])]
            if s.size >= 5:
                hits = [k for k in range(r.size - 4) if np.allclose(r[k:k + 5], s[:5], equal_nan=False)]
                if hits:
                    window = (int(hits[0]), int(min(hits[0] + s.size, r.size)))
        out.append(SensoryRecord(str(uids[i]), "afd", pname, np.arange(t.size, dtype=np.float64), t, r,
                                 str(path), dict(meta0, analysis_window=window)))
    step = 1.0 if dt_s is None else float(dt_s)
    if dt_s is None and np.isfinite(rampspeed) and rampspeed > 0:
        _check_ramp_sampling(path, out, rampspeed)
    if step != 1.0:
        out = [SensoryRecord(r.worm_id, r.modality, r.protocol, r.time_s * step, r.stimulus, r.response,
                             r.source, r.meta) for r in out]
    return out


def _check_ramp_sampling(path, records, rampspeed):
    """Raise if the steepest sustained temperature change per sample is not ``rampspeed`` (1 s/sample)."""
    slopes = []
    for rec in records:
        t = rec.stimulus
        d = np.abs(t[40:] - t[:-40]) / 40.0  # slope over 40 samples
        slopes.append(d[(d > 0.3 * rampspeed) & (d < 3.0 * rampspeed)])
    slopes = np.concatenate(slopes)
    per_sample = float(np.median(slopes)) if slopes.size else float("nan")
    if not (0.6 * rampspeed <= per_sample <= 1.4 * rampspeed):
        raise RecordError(f"{path}: the temperature ramp runs at {per_sample:.4g} °C per sample but "
                          f"time.rampspeed is {rampspeed} °C/s; the sampling interval is not 1 s — pass dt_s")


def load_zimmer_log(path: str | Path, o2_switch_s: float = BAG_PROTOCOL["default_switch_s"],
                    baseline_start_s: float = 30.0) -> SensoryRecord:
    """One Zimmer-lab BAG log (one worm; O2 % → ΔF/F).

    Arguments:
        path: the comma-separated log (nine columns, see the module docstring).
        o2_switch_s: time of the 21 % → 4 % downshift on the log's clock, s (4 % lasts 360 s).
        baseline_start_s: F0 is the mean of F over [baseline_start_s, o2_switch_s).

    Returns:
        The :class:`SensoryRecord` (10 Hz; time from the log's clock, s; ΔF/F as a fraction).

    Raises:
        RecordError: missing file, wrong column count, non-numeric entries, non-uniform clock, or a
            baseline window without samples / with F0 ≤ 0.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError as e:
        raise RecordError(f"{path}: not a comma-separated numeric log ({e})") from None
    if a.shape[1] != 9:
        raise RecordError(f"{path}: expected 9 comma-separated columns (frame, time ms, object-background, "
                          f"background, object, ROI size, background mean, x, y), got {a.shape[1]}")
    if a.shape[0] < 3:
        raise RecordError(f"{path}: only {a.shape[0]} rows")
    t = a[:, 1] / 1000.0
    f = a[:, 2]
    dt = np.diff(t)
    if np.any(dt <= 0):
        raise RecordError(f"{path}: the time column (ms) is not increasing")
    # the logs' clock jitters by a millisecond or two: put the samples on the median grid
    step = float(np.round(np.median(dt), 4))
    if np.max(np.abs(dt - step)) > 0.5 * step:
        raise RecordError(f"{path}: frames are not evenly spaced (spacing {dt.min():.3f} … {dt.max():.3f} s)")
    t = t[0] + step * np.arange(t.size)
    base = (t >= baseline_start_s) & (t < o2_switch_s)
    if base.sum() < 10:
        raise RecordError(f"{path}: fewer than 10 samples between {baseline_start_s} s and the O2 switch at "
                          f"{o2_switch_s} s (log spans {t[0]:.1f} … {t[-1]:.1f} s)")
    f0 = float(np.mean(f[base]))
    if not f0 > 0:
        raise RecordError(f"{path}: baseline fluorescence F0 = {f0} ≤ 0")
    p = BAG_PROTOCOL
    up = o2_switch_s + p["low_duration_s"]
    o2 = np.where((t >= o2_switch_s) & (t < up), p["low_percent"], p["high_percent"])
    return SensoryRecord(path.stem, "bag", "O2 21-4-21", t, o2, (f - f0) / f0, str(path),
                         dict(o2_switch_s=float(o2_switch_s), o2_return_s=float(up), f0_au=f0,
                              baseline_s=(float(baseline_start_s), float(o2_switch_s))))


def load_file(path: str | Path, **kwargs) -> list[SensoryRecord]:
    """Records of any file in a supported format (``.mat``: Bryant AFD; ``.log``/``.csv``: Zimmer BAG).

    Raises:
        RecordError: unknown suffix or malformed file.
    """
    p = Path(path)
    suf = p.suffix.lower()
    if suf == ".mat":
        return load_bryant_mat(p, **kwargs)
    if suf in (".log", ".csv", ".txt"):
        return [load_zimmer_log(p, **kwargs)]
    raise RecordError(f"{p}: unknown format {suf!r}; supported: .mat (Bryant AFD structs), "
                      ".log/.csv/.txt (Zimmer BAG logs)")


def load_dataset(modality: str, data_dir: str | Path | None = None) -> list[SensoryRecord]:
    """The shipped recordings of a modality (``owjax/data/sensory/<modality>.npz``).

    Arguments:
        modality: ``"afd"`` or ``"bag"``.
        data_dir: another directory written by :mod:`owjax.sensory.capture`.

    Returns:
        The records, in capture order.
    """
    from owjax.sensory.capture import read_records

    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; known: {sorted(MODALITIES)}")
    return read_records(Path(data_dir or DATA_DIR) / f"{modality}.npz")

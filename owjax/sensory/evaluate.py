"""Evaluation: predicted vs measured traces, and the features biologists read off them.

Per worm: Pearson r and RMSE between predicted and measured response, and the population ceiling
(r of the worm's trace with the mean of the other worms of its protocol in the evaluated set).

AFD features (Bryant et al. 2022, ``TCI_Quantifications.m``), computed on the authors' analysis
window (``meta["analysis_window"]``; the whole record otherwise):

* ``threshold_c`` — T*: baseline = samples within ±0.2 °C of the F0 temperature; threshold = 3 SD
  of the baseline (MATLAB ``std``, ddof 1); T* = temperature at the first sample from which
  ``|response| ≥ threshold`` holds for N = 0.25 °C / rampspeed × 2 consecutive samples (their code's
  count). A prediction has no measurement noise, so its threshold uses the **measured** worm's SD,
  and it is re-baselined like the measurement (ΔR/R is defined relative to the ratio at F0: the
  prediction's own mean in the F0 window is subtracted before the threshold test).
  For cooling, the search starts after the soak (``time.soak`` samples), as in their code.
* ``t_max_c`` / ``t_min_c`` — temperature of the maximal / minimal response (warming protocols).
* ``cooling_r`` — Pearson r(temperature, response) on the descending part (cooling protocols).

BAG features (relative to the nominal O2 downshift ``meta["o2_switch_s"]``): ``onset_latency_s``
(first time ΔF/F exceeds baseline mean + max(3 SD, 0.1) for 1 s), ``peak_dff`` (max during 4 %),
``adaptation`` (1 − mean of the last 60 s at 4 % / peak), ``undershoot_dff`` (mean ΔF/F from 30 s
after the return to 21 % to the end; negative = below baseline).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from owjax.sensory.records import SensoryRecord

__all__ = ["afd_features", "bag_features", "bryant_threshold", "evaluate_records", "plot_traces",
           "pearson", "population_ceiling"]


def pearson(a, b) -> float:
    """Pearson r over samples where both are finite (NaN if fewer than 3 or constant)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def _window(rec: SensoryRecord) -> slice:
    w = rec.meta.get("analysis_window")
    return slice(*w) if w else slice(0, rec.n_samples)


def _baseline(temp, resp, f0):
    sel = (temp <= f0 + 0.2) & (temp >= f0 - 0.2) & np.isfinite(resp)
    if sel.sum() < 3:
        return float("nan"), float("nan")
    return float(np.mean(resp[sel])), float(np.std(resp[sel], ddof=1))


def bryant_threshold(temp, resp, sd: float, rampspeed: float, start: int = 0) -> float:
    """T* (°C): first temperature from which ``|resp| ≥ 3·sd`` for N = 0.25/rampspeed·2 samples (NaN if never)."""
    if not np.isfinite(sd) or not np.isfinite(rampspeed) or rampspeed <= 0:
        return float("nan")
    n_req = int(round(0.25 / rampspeed * 2))
    ok = np.abs(np.nan_to_num(resp, nan=0.0)) >= 3 * abs(sd)
    ok[:start] = False
    run = 0
    for k in range(ok.size):
        run = run + 1 if ok[k] else 0
        if run >= n_req:
            return float(temp[k - n_req + 1])
    return float("nan")


def afd_features(rec: SensoryRecord, response=None, baseline_sd: float | None = None) -> dict:
    """AFD features of ``rec`` (or of ``response`` on ``rec``'s stimulus; see the module docstring).

    Arguments:
        rec: the recording (its stimulus and protocol facts).
        response: a response to analyse instead of the measured one (e.g. a prediction).
        baseline_sd: the SD of the threshold (default: the measured worm's baseline SD).

    Returns:
        ``{"kind", "threshold_c", "t_max_c", "t_min_c", "cooling_r"}`` (NaN where not defined).
    """
    w = _window(rec)
    temp = rec.stimulus[w]
    r = (rec.response if response is None else np.asarray(response))[w]
    meas = rec.response[w]
    f0 = rec.meta.get("f0_c", float(temp[0]))
    ramp = rec.meta.get("rampspeed_c_per_s", float("nan"))
    if "max_c" in rec.meta and "holding_c" in rec.meta:
        cooling = rec.meta["max_c"] <= rec.meta["holding_c"]  # the protocol never warms above its hold
    else:
        cooling = float(np.max(temp)) <= float(temp[0]) + 1.0
    sd = _baseline(temp, meas, f0)[1] if baseline_sd is None else baseline_sd
    if response is not None:
        mu = _baseline(temp, r, f0)[0]
        r_thr = r - mu if np.isfinite(mu) else r
    else:
        r_thr = r
    start = int(rec.meta.get("soak_s", 0) or 0) if cooling else 0
    out = {"kind": "cooling" if cooling else "warming",
           "threshold_c": bryant_threshold(temp, r_thr, sd, ramp, start)}
    if cooling:
        lo = rec.meta.get("min_c", float(np.min(temp)))
        sel = (temp <= f0 + 0.2) & (temp >= lo - 0.2)
        idx = np.where(sel)[0]
        last = np.where(temp <= lo + 0.2)[0]
        if idx.size and last.size:
            idx = idx[idx <= last[-1]]
        out.update(t_max_c=float("nan"), t_min_c=float("nan"),
                   cooling_r=pearson(temp[idx], r[idx]) if idx.size >= 3 else float("nan"))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.update(t_max_c=float(temp[np.nanargmax(r)]), t_min_c=float(temp[np.nanargmin(r)]),
                       cooling_r=float("nan"))
    return out


def bag_features(rec: SensoryRecord, response=None) -> dict:
    """BAG features (see the module docstring) of the measured or a given response."""
    t = rec.time_s
    r = rec.response if response is None else np.asarray(response)
    sw = rec.meta.get("o2_switch_s", 100.0)
    up = rec.meta.get("o2_return_s", sw + 360.0)
    b0 = rec.meta.get("baseline_s", (30.0, sw))[0]
    base = (t >= b0) & (t < sw)
    mu, sd = float(np.nanmean(r[base])), float(np.nanstd(r[base]))
    thr = mu + max(3 * sd, 0.1)
    n_req = max(1, int(round(1.0 / rec.dt_s)))
    onset = float("nan")
    run = 0
    for k in np.where(t >= sw - 10.0)[0]:  # a response may precede the nominal switch by a few s
        run = run + 1 if r[k] > thr else 0
        if run >= n_req:
            onset = float(t[k - n_req + 1] - sw)
            break
    low = (t >= sw) & (t < up)
    peak = float(np.nanmax(r[low])) if low.any() else float("nan")
    late = (t >= up - 60.0) & (t < up)
    after = t >= up + 30.0
    return {"onset_latency_s": onset, "peak_dff": peak,
            "time_to_peak_s": float(t[low][np.nanargmax(r[low])] - sw) if low.any() else float("nan"),
            "adaptation": float(1.0 - np.nanmean(r[late]) / peak) if late.any() and peak > 0 else float("nan"),
            "undershoot_dff": float(np.nanmean(r[after])) if after.any() else float("nan")}


def population_ceiling(records: Sequence[SensoryRecord]) -> list[float]:
    """Per worm: r with the mean of the other worms of its protocol (same length prefix; NaN if alone)."""
    out = []
    for i, rec in enumerate(records):
        others = [o for j, o in enumerate(records) if j != i and o.protocol == rec.protocol]
        if not others:
            out.append(float("nan"))
            continue
        n = min([rec.n_samples] + [o.n_samples for o in others])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = np.nanmean(np.stack([o.response[:n] for o in others]), axis=0)
        out.append(pearson(rec.response[:n], m))
    return out


def _nanmed(x) -> float:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else float("nan")


def _summ(x) -> dict:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if not x.size:
        return {"mean": float("nan"), "sd": float("nan"), "median": float("nan"), "n": 0}
    return {"mean": float(np.mean(x)), "sd": float(np.std(x, ddof=1)) if x.size > 1 else 0.0,
            "median": float(np.median(x)), "n": int(x.size)}


def evaluate_records(spec, params, records: Sequence[SensoryRecord], predictions=None,
                     ceiling_records: Sequence[SensoryRecord] | None = None) -> dict:
    """Metrics of a transducer on recordings.

    Arguments:
        spec, params: the transducer.
        records: recordings on the transducer's grid (``spec.dt_s``).
        predictions: precomputed predicted responses (list aligned with ``records``).
        ceiling_records: the population for the ceiling r (default: ``records``).

    Returns:
        ``n_worms``, ``median_r``, ``median_rmse``, ``median_ceiling_r``, per-worm lists (``per_worm``),
        per protocol summaries (``by_protocol``), and for each feature ``<f>_pred`` / ``<f>_measured``
        (means over worms), ``<f>_pred_sd`` / ``<f>_measured_sd``, and ``<f>_abs_error_median``.
    """
    import jax
    import jax.numpy as jnp

    from owjax.sensory.transducer import predict

    if predictions is None:
        f = jax.jit(lambda u: predict(spec, params, u))
        predictions = [np.asarray(f(jnp.asarray(r.stimulus, jnp.float32))) for r in records]
    ceil_pop = list(ceiling_records or records)
    ceil_all = population_ceiling(ceil_pop)
    ceil = [ceil_all[ceil_pop.index(r)] if r in ceil_pop else float("nan") for r in records]
    feats = afd_features if spec.modality == "afd" else bag_features
    per = []
    for rec, pred, c in zip(records, predictions, ceil):
        ok = np.isfinite(rec.response)
        fm, fp = feats(rec), feats(rec, pred)
        per.append(dict(worm_id=rec.worm_id, protocol=rec.protocol, r=pearson(rec.response, pred),
                        rmse=float(np.sqrt(np.mean((rec.response[ok] - pred[ok]) ** 2))), ceiling_r=c,
                        **{f"{k}_measured": v for k, v in fm.items() if k != "kind"},
                        **{f"{k}_pred": v for k, v in fp.items() if k != "kind"},
                        kind=fm.get("kind", "")))
    out = {"n_worms": len(per), "median_r": _nanmed(([p["r"] for p in per])),
           "median_rmse": _nanmed(([p["rmse"] for p in per])),
           "median_ceiling_r": _nanmed([p["ceiling_r"] for p in per]),
           "response_unit": records[0].response_unit if records else ""}
    names = sorted({k[: -len("_pred")] for p in per for k in p if k.endswith("_pred")})
    for n in names:
        pr = _summ([p[f"{n}_pred"] for p in per])
        me = _summ([p[f"{n}_measured"] for p in per])
        err = [abs(p[f"{n}_pred"] - p[f"{n}_measured"]) for p in per]
        out.update({f"{n}_pred": pr["mean"], f"{n}_pred_sd": pr["sd"], f"{n}_measured": me["mean"],
                    f"{n}_measured_sd": me["sd"], f"{n}_n": min(pr["n"], me["n"]),
                    f"{n}_abs_error_median": _summ(err)["median"]})
    by = {}
    for proto in sorted({p["protocol"] for p in per}):
        sub = [p for p in per if p["protocol"] == proto]
        d = {"n_worms": len(sub), "median_r": _nanmed(([p["r"] for p in sub])),
             "median_rmse": _nanmed(([p["rmse"] for p in sub])),
             "median_ceiling_r": _nanmed(([p["ceiling_r"] for p in sub]))}
        for n in names:
            pr, me = _summ([p[f"{n}_pred"] for p in sub]), _summ([p[f"{n}_measured"] for p in sub])
            d.update({f"{n}_pred": pr["mean"], f"{n}_pred_sd": pr["sd"], f"{n}_measured": me["mean"],
                      f"{n}_measured_sd": me["sd"]})
        by[proto] = d
    out["by_protocol"] = by
    out["per_worm"] = per
    return out


def plot_traces(spec, params, records: Sequence[SensoryRecord], path, title: str = "", max_worms: int = 8,
                predictions=None) -> Path:
    """Measured vs predicted responses (and the stimulus) of up to ``max_worms`` worms, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import jax
    import jax.numpy as jnp
    import matplotlib.pyplot as plt

    from owjax.sensory.transducer import predict

    recs = list(records)[:max_worms]
    if predictions is None:
        f = jax.jit(lambda u: predict(spec, params, u))
        predictions = [np.asarray(f(jnp.asarray(r.stimulus, jnp.float32))) for r in recs]
    n = len(recs)
    cols = 2 if n > 1 else 1
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 2.2 * rows), squeeze=False)
    for ax, rec, pred in zip(axes.flat, recs, predictions):
        ax.plot(rec.time_s, rec.response, color="0.35", lw=0.8, label="measured")
        ax.plot(rec.time_s, pred[: rec.n_samples], color="C3", lw=1.2, label="predicted")
        ax2 = ax.twinx()
        ax2.plot(rec.time_s, rec.stimulus, color="C0", lw=0.7, alpha=0.5)
        ax2.set_ylabel(rec.stimulus_unit.replace("percent_O2", "% O2").replace("degC", "°C"), color="C0", fontsize=7)
        ax2.tick_params(labelsize=6, colors="C0")
        ax.set_title(f"{rec.worm_id} ({rec.protocol}) r={pearson(rec.response, pred[: rec.n_samples]):.2f}",
                     fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_ylabel(rec.response_unit.replace("percent_dR/R", "ΔR/R (%)").replace("dF/F", "ΔF/F"), fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, loc="upper left")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

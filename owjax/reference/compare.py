"""``python -m owjax.compare A.h5 B.h5``: how far traces A are from reference traces B.

A is the trace under test (e.g. owjax), B the reference (e.g. a converged NEURON run). Per cell
and state variable (V, Ca) on A's time grid (B linearly interpolated onto it, inside the time span
both cover):

* ``max_abs``, ``rms_abs``: absolute error (mV for V, mM for Ca);
* ``max_rel``, ``rms_rel``: the same divided by the *scale* of the reference trace,
  ``scale = max(range of B, floor_abs, floor_frac · largest range of that variable among the
  compared cells)``. The floors keep quiet cells (a near-constant trace) from turning round-off into
  large relative errors: defaults ``floor_abs`` 1 mV for V and 1e-12 mM for Ca (c302's Ca is
  1e-12…1e-6 mM) and ``floor_frac`` 1e-3;
* ``first_divergence_ms``: the first time the error exceeds ``tol_rel · scale`` (``None`` if never).

For spiking cells (an upward crossing of −20 mV, c302's spike threshold, in A or B; crossing times
are interpolated linearly between samples on each trace's own grid):

* ``n_a``, ``n_b``: spike counts; spikes are matched one to one (nearest first, within
  ``match_window_ms``, at most half the shortest inter-spike interval);
* ``max_dt_ms``, ``mean_abs_dt_ms``: spike-time errors of the matched spikes;
* ``max_isi_rel``: relative error of the intervals between consecutive matched spikes;
* ``first_divergence_ms``: the reference time of the first spike that is unmatched, off by more
  than ``tol_spike_ms``, or whose interval is off by more than ``tol_isi_rel``.

Pass criteria (what the equivalence tests assert): non-spiking cells: ``max_rel ≤ tol_rel`` for V
and Ca at every output time; spiking cells: equal spike counts, every spike within
``tol_spike_ms``, every interval within ``tol_isi_rel``, and Ca within ``tol_rel`` (a spiking
cell's V is judged by its spikes, not pointwise: a 0.1 ms shift of a 60 mV upstroke is a large
pointwise error but no biological difference).

Where the dynamics are too sensitive for pointwise agreement (chaotic networks), give
``pointwise_until_ms``: the criteria above apply up to that time, and after it the result has
per-cell statistics instead (``stats``: spike counts, rates, ISI mean / CV and the two-sample
Kolmogorov–Smirnov distance of the ISI distributions, mean and SD of V and Ca), which are reported
but not part of ``pass``.

Writes JSON (``--json``) and a figure of the worst cells (``--figure``); the exit status is 0
when everything passes, 1 when a tolerance is not met, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from owjax.traces import Traces, read_traces
from owjax.validate import SPIKE_THRESHOLD_mV, spike_times

__all__ = [
    "compare_traces",
    "match_spikes",
    "spike_statistics",
    "plot_worst",
    "DEFAULT_FLOOR_ABS",
    "DEFAULT_FLOOR_FRAC",
]

#: absolute floor of the relative-error scale per variable (V in mV, Ca in mM)
DEFAULT_FLOOR_ABS = {"V": 1.0, "Ca": 1e-12}
#: floor of the scale as a fraction of the largest range of that variable among the compared cells
DEFAULT_FLOOR_FRAC = 1e-3


def _cells(tr: Traces) -> dict[str, tuple[str, int]]:
    out = {}
    for pop, arrays in tr.populations.items():
        for i, n in enumerate(arrays.get("names", [])):
            out[str(n)] = (pop, i)
    return out


def match_spikes(ta: np.ndarray, tb: np.ndarray, window_ms: float = 10.0) -> list[tuple[int, int]]:
    """Pair spikes of ``ta`` with spikes of ``tb`` one to one, nearest pairs first.

    Only pairs closer than ``window_ms`` (and than half the shortest interval of either train) are
    considered. Returns ``[(i, j), …]`` sorted by ``j``.
    """
    ta, tb = np.asarray(ta, float), np.asarray(tb, float)
    if len(ta) == 0 or len(tb) == 0:
        return []
    w = float(window_ms)
    for t in (ta, tb):
        if len(t) > 1:
            w = min(w, 0.5 * float(np.min(np.diff(t))))
    d = np.abs(ta[:, None] - tb[None, :])
    cand = np.argwhere(d <= w)
    order = np.argsort(d[cand[:, 0], cand[:, 1]], kind="stable")
    used_a, used_b, pairs = set(), set(), []
    for i, j in cand[order]:
        if i in used_a or j in used_b:
            continue
        used_a.add(int(i))
        used_b.add(int(j))
        pairs.append((int(i), int(j)))
    return sorted(pairs, key=lambda p: p[1])


def _ks_distance(x: np.ndarray, y: np.ndarray) -> float | None:
    """Two-sample Kolmogorov–Smirnov statistic (sup distance of the empirical CDFs)."""
    if len(x) == 0 or len(y) == 0:
        return None
    grid = np.sort(np.concatenate([x, y]))
    fx = np.searchsorted(np.sort(x), grid, side="right") / len(x)
    fy = np.searchsorted(np.sort(y), grid, side="right") / len(y)
    return float(np.max(np.abs(fx - fy)))


def _num(x):
    """JSON-friendly float (None for NaN/inf)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def spike_statistics(t_ms, v_a, v_b, t_b_ms=None, ca_a=None, ca_b=None,
                     threshold_mV: float = SPIKE_THRESHOLD_mV) -> dict:
    """Per-cell statistics of A and B over the given samples (no pointwise comparison)."""
    t_b_ms = t_ms if t_b_ms is None else t_b_ms
    span = float(t_ms[-1] - t_ms[0]) / 1000.0 if len(t_ms) > 1 else float("nan")
    out = {}
    for tag, t, v, ca in (("a", t_ms, v_a, ca_a), ("b", t_b_ms, v_b, ca_b)):
        s = spike_times(t, v, threshold_mV)
        isi = np.diff(s)
        out[f"n_{tag}"] = int(len(s))
        out[f"rate_{tag}_hz"] = _num(len(s) / span) if span and span > 0 else None
        out[f"isi_mean_{tag}_ms"] = _num(isi.mean()) if len(isi) else None
        out[f"isi_cv_{tag}"] = _num(isi.std() / isi.mean()) if len(isi) > 1 and isi.mean() > 0 else None
        out[f"V_mean_{tag}_mV"] = _num(np.mean(v))
        out[f"V_sd_{tag}_mV"] = _num(np.std(v))
        if ca is not None:
            out[f"Ca_mean_{tag}_mM"] = _num(np.mean(ca))
        out[f"_isi_{tag}"] = isi
    out["ks_isi"] = _ks_distance(out.pop("_isi_a"), out.pop("_isi_b"))
    if out["rate_b_hz"]:
        out["rate_rel_diff"] = _num((out["rate_a_hz"] - out["rate_b_hz"]) / out["rate_b_hz"])
    return out


def _pointwise(t, a, b_on_a, scale, tol_rel):
    err = np.abs(a - b_on_a)
    bad = np.nonzero(err > tol_rel * scale)[0]
    return dict(
        max_abs=_num(err.max()),
        rms_abs=_num(np.sqrt(np.mean(err**2))),
        t_max_ms=_num(t[int(np.argmax(err))]),
        range_ref=_num(np.ptp(b_on_a)),
        scale=_num(scale),
        max_rel=_num(err.max() / scale),
        rms_rel=_num(np.sqrt(np.mean(err**2)) / scale),
        first_divergence_ms=_num(t[bad[0]]) if len(bad) else None,
    )


def _spikes(ta, tb, tol_spike_ms, tol_isi_rel, window_ms):
    pairs = match_spikes(ta, tb, window_ms)
    dts = np.array([ta[i] - tb[j] for i, j in pairs])
    isi_rel, isi_fail_t = [], []
    for (i0, j0), (i1, j1) in zip(pairs[:-1], pairs[1:]):
        if i1 == i0 + 1 and j1 == j0 + 1:
            ib = tb[j1] - tb[j0]
            r = abs((ta[i1] - ta[i0]) - ib) / ib
            isi_rel.append(r)
            if r > tol_isi_rel:
                isi_fail_t.append(tb[j1])
    matched_b = {j for _, j in pairs}
    matched_a = {i for i, _ in pairs}
    events = [tb[j] for j in range(len(tb)) if j not in matched_b]
    events += [ta[i] for i in range(len(ta)) if i not in matched_a]
    events += [tb[j] for (i, j), d in zip(pairs, dts) if abs(d) > tol_spike_ms]
    events += isi_fail_t
    isi_rel = np.array(isi_rel)
    ok = (len(ta) == len(tb) and len(pairs) == len(tb)
          and (len(dts) == 0 or np.max(np.abs(dts)) <= tol_spike_ms)
          and (len(isi_rel) == 0 or isi_rel.max() <= tol_isi_rel))
    return dict(
        n_a=int(len(ta)),
        n_b=int(len(tb)),
        n_matched=int(len(pairs)),
        max_dt_ms=_num(np.max(np.abs(dts))) if len(dts) else None,
        mean_abs_dt_ms=_num(np.mean(np.abs(dts))) if len(dts) else None,
        mean_dt_ms=_num(np.mean(dts)) if len(dts) else None,
        max_isi_rel=_num(isi_rel.max()) if len(isi_rel) else None,
        mean_isi_rel=_num(isi_rel.mean()) if len(isi_rel) else None,
        first_divergence_ms=_num(min(events)) if events else None,
        ok=bool(ok),
    )


def compare_traces(
    a: Traces,
    b: Traces,
    tol_rel: float = 0.01,
    tol_spike_ms: float = 0.5,
    tol_isi_rel: float = 0.01,
    floor_abs: dict | None = None,
    floor_frac: float = DEFAULT_FLOOR_FRAC,
    threshold_mV: float = SPIKE_THRESHOLD_mV,
    t_min_ms: float | None = None,
    t_max_ms: float | None = None,
    pointwise_until_ms: float | None = None,
    cells: list[str] | None = None,
    match_window_ms: float = 10.0,
    variables: tuple[str, ...] = ("V", "Ca"),
) -> dict:
    """Compare traces ``a`` against reference traces ``b`` (see the module doc for every number).

    Arguments:
        a, b: traces (:class:`~owjax.traces.Traces`); cells are matched by name.
        tol_rel: pointwise tolerance, a fraction of the reference trace's scale.
        tol_spike_ms, tol_isi_rel: spike-time and interval tolerances.
        floor_abs: per-variable absolute floor of the scale (default :data:`DEFAULT_FLOOR_ABS`).
        floor_frac: floor of the scale relative to the largest range among the compared cells.
        threshold_mV: spike threshold.
        t_min_ms, t_max_ms: compare only this window.
        pointwise_until_ms: pass/fail criteria up to this time, statistics after it.
        cells: compare only these cells (default: all cells both files have).
        match_window_ms: largest spike-time difference that still pairs two spikes.
        variables: state variables to compare.

    Returns:
        A JSON-ready dict: ``cells`` (per cell: per variable pointwise errors, ``spikes``,
        ``stats`` when ``pointwise_until_ms`` is given, ``spiking``, ``pass``), ``summary``
        (counts, worst cells, first divergence, ``pass``) and ``settings``.
    """
    floors = dict(DEFAULT_FLOOR_ABS)
    floors.update(floor_abs or {})
    ca_, cb_ = _cells(a), _cells(b)
    common = [n for n in ca_ if n in cb_]
    if cells is not None:
        missing = [c for c in cells if c not in common]
        if missing:
            raise KeyError(f"cells not in both files: {missing[:10]}")
        common = list(cells)
    if not common:
        raise ValueError("the two traces have no cell in common")
    ta, tb = np.asarray(a.t_ms, float), np.asarray(b.t_ms, float)
    lo = max(ta[0], tb[0], -np.inf if t_min_ms is None else t_min_ms)
    hi = min(ta[-1], tb[-1], np.inf if t_max_ms is None else t_max_ms)
    eps = 1e-9 * max(1.0, abs(hi))
    sel = (ta >= lo - eps) & (ta <= hi + eps)
    selb = (tb >= lo - eps) & (tb <= hi + eps)
    if sel.sum() < 2:
        raise ValueError(f"the traces share no time window (A {ta[0]}–{ta[-1]} ms, B {tb[0]}–{tb[-1]} ms)")
    t = ta[sel]
    split = hi if pointwise_until_ms is None else min(hi, float(pointwise_until_ms))
    pw = t <= split + eps
    pwb = tb[selb] <= split + eps

    def get(tr, idx, name, var, s):
        pop, i = idx[name]
        arr = tr.populations[pop].get(var)
        return None if arr is None else np.asarray(arr[i], float)[s]

    # largest reference range of each variable (for the relative floor)
    max_range = {}
    for var in variables:
        rs = [np.ptp(x) for n in common if (x := get(b, cb_, n, var, selb)) is not None and len(x)]
        max_range[var] = float(max(rs)) if rs else 0.0

    out_cells = {}
    for n in common:
        res: dict = {}
        va, vb = get(a, ca_, n, "V", sel), get(b, cb_, n, "V", selb)
        sa = spike_times(t[pw], va[pw], threshold_mV) if va is not None else np.array([])
        sb = spike_times(tb[selb][pwb], vb[pwb], threshold_mV) if vb is not None else np.array([])
        spiking = bool(len(sa) or len(sb))
        res["spiking"] = spiking
        ok = True
        for var in variables:
            xa, xb = get(a, ca_, n, var, sel), get(b, cb_, n, var, selb)
            if xa is None or xb is None:
                continue
            xb_on_a = np.interp(t, tb[selb], xb)
            scale = max(float(np.ptp(xb_on_a[pw])), floors.get(var, 0.0), floor_frac * max_range[var])
            r = _pointwise(t[pw], xa[pw], xb_on_a[pw], scale, tol_rel)
            r["judged"] = not (spiking and var == "V")
            if r["judged"]:
                ok &= r["max_rel"] is not None and r["max_rel"] <= tol_rel
            res[var] = r
        if va is not None and vb is not None:
            res["spikes"] = _spikes(sa, sb, tol_spike_ms, tol_isi_rel, match_window_ms)
            ok &= res["spikes"]["ok"]
            if pointwise_until_ms is not None and (~pw).sum() > 1:
                ca_a, ca_b = get(a, ca_, n, "Ca", sel), get(b, cb_, n, "Ca", selb)
                res["stats"] = spike_statistics(
                    t[~pw], va[~pw], vb[~pwb], tb[selb][~pwb],
                    None if ca_a is None else ca_a[~pw], None if ca_b is None else ca_b[~pwb], threshold_mV,
                )
        divs = [d for d in [res.get(v, {}).get("first_divergence_ms") for v in variables
                            if res.get(v, {}).get("judged")] + [res.get("spikes", {}).get("first_divergence_ms")]
                if d is not None]
        res["first_divergence_ms"] = _num(min(divs)) if divs else None
        res["pass"] = bool(ok)
        out_cells[n] = res

    def worst_key(n):
        r = out_cells[n]
        s = r.get("spikes", {})
        spike_bad = 0.0
        if r["spiking"]:
            spike_bad = abs(s["n_a"] - s["n_b"]) + (s["max_dt_ms"] or 0.0) / tol_spike_ms + (
                s["max_isi_rel"] or 0.0) / tol_isi_rel
        rel = max(((r[v]["max_rel"] or 0.0) / tol_rel for v in variables if v in r and r[v]["judged"]),
                  default=0.0)
        return max(rel, spike_bad)

    ranked = sorted(out_cells, key=worst_key, reverse=True)
    failing = [n for n in ranked if not out_cells[n]["pass"]]
    divs = [(out_cells[n]["first_divergence_ms"], n) for n in out_cells if out_cells[n]["first_divergence_ms"] is not None]
    spk = [out_cells[n]["spikes"] for n in out_cells if out_cells[n]["spiking"]]

    def agg(var, key, fn=max, judged_only=True):
        vals = [out_cells[n][var][key] for n in out_cells if var in out_cells[n]
                and (out_cells[n][var]["judged"] or not judged_only) and out_cells[n][var][key] is not None]
        return _num(fn(vals)) if vals else None

    summary = dict(
        n_cells=len(out_cells),
        n_spiking=sum(r["spiking"] for r in out_cells.values()),
        n_fail=len(failing),
        failing=failing[:50],
        worst=[dict(cell=n, score=_num(worst_key(n))) for n in ranked[:10]],
        first_divergence_ms=_num(min(divs)[0]) if divs else None,
        first_divergence_cell=min(divs)[1] if divs else None,
        spike_count_mismatches=sum(s["n_a"] != s["n_b"] for s in spk),
        max_spike_dt_ms=_num(max((s["max_dt_ms"] for s in spk if s["max_dt_ms"] is not None), default=None)),
        max_isi_rel=_num(max((s["max_isi_rel"] for s in spk if s["max_isi_rel"] is not None), default=None)),
        only_in_a=[n for n in ca_ if n not in cb_][:50],
        only_in_b=[n for n in cb_ if n not in ca_][:50],
        window_ms=[_num(lo), _num(hi)],
        pass_=not failing,
    )
    for var in variables:
        summary[f"{var}_max_rel"] = agg(var, "max_rel")
        summary[f"{var}_max_abs"] = agg(var, "max_abs")
        summary[f"{var}_max_abs_all_cells"] = agg(var, "max_abs", judged_only=False)
    summary["pass"] = summary.pop("pass_")
    if pointwise_until_ms is not None:
        st = [r["stats"] for r in out_cells.values() if "stats" in r]
        summary["stats_after_ms"] = _num(split)
        summary["stats_spike_count_a"] = int(sum(s["n_a"] for s in st))
        summary["stats_spike_count_b"] = int(sum(s["n_b"] for s in st))
        ks = [s["ks_isi"] for s in st if s["ks_isi"] is not None]
        summary["stats_ks_isi_median"] = _num(np.median(ks)) if ks else None
        rr = [abs(s["rate_rel_diff"]) for s in st if s.get("rate_rel_diff") is not None]
        summary["stats_rate_rel_diff_median"] = _num(np.median(rr)) if rr else None
    settings = dict(
        tol_rel=tol_rel, tol_spike_ms=tol_spike_ms, tol_isi_rel=tol_isi_rel, floor_abs=floors,
        floor_frac=floor_frac, threshold_mV=threshold_mV, pointwise_until_ms=pointwise_until_ms,
        match_window_ms=match_window_ms, a=dict(a.attrs), b=dict(b.attrs),
    )
    return dict(summary=summary, cells=out_cells, settings=_jsonable(settings))


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return _num(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x if isinstance(x, (str, int, type(None))) else str(x)


def plot_worst(a: Traces, b: Traces, result: dict, path, n: int = 6, labels=("A", "B")) -> Path:
    """Figure of the ``n`` worst cells of ``result``: V of A and B overlaid, and Ca."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    worst = [w["cell"] for w in result["summary"]["worst"][:n]]
    fig, axes = plt.subplots(len(worst), 2, figsize=(12, 1.9 * len(worst) + 0.6), squeeze=False, sharex=True)
    for row, cell in zip(axes, worst):
        for ax, var, unit in ((row[0], "V", "mV"), (row[1], "Ca", "mM")):
            for tr, lab, style in ((b, labels[1], dict(color="k", lw=1.2)), (a, labels[0], dict(color="C1", lw=0.8))):
                try:
                    ax.plot(tr.t_ms, tr.cell(cell, var), label=lab, **style)
                except KeyError:
                    pass
            r = result["cells"][cell]
            info = r.get(var, {})
            txt = f"{cell} {var}: max err {info.get('max_abs', float('nan')):.3g} {unit}"
            if var == "V" and r.get("spiking"):
                s = r["spikes"]
                txt += f"; spikes {s['n_a']}/{s['n_b']}, max dt {s['max_dt_ms'] or 0:.3g} ms"
            ax.set_title(txt, fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("t (ms)")
    s = result["summary"]
    fig.suptitle(f"{labels[0]} vs {labels[1]}: {s['n_fail']}/{s['n_cells']} cells fail; "
                 f"first divergence {s['first_divergence_ms']} ms", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def format_summary(result: dict) -> str:
    s = result["summary"]
    lines = [
        f"{s['n_cells']} cells ({s['n_spiking']} spiking) compared over {s['window_ms'][0]}–{s['window_ms'][1]} ms: "
        + ("PASS" if s["pass"] else f"FAIL ({s['n_fail']} cells)"),
        f"  V  max rel err {s['V_max_rel']}  (max abs {s['V_max_abs']} mV, non-spiking cells)"
        if "V_max_rel" in s else "",
        f"  Ca max rel err {s['Ca_max_rel']}  (max abs {s['Ca_max_abs']} mM)" if "Ca_max_rel" in s else "",
        f"  spikes: {s['spike_count_mismatches']} count mismatches, max |dt| {s['max_spike_dt_ms']} ms, "
        f"max ISI rel err {s['max_isi_rel']}",
        f"  first divergence: {s['first_divergence_ms']} ms ({s['first_divergence_cell']})",
        "  worst: " + ", ".join(f"{w['cell']} ({w['score']:.3g})" for w in s["worst"][:5] if w["score"] is not None),
    ]
    if "stats_after_ms" in s:
        lines.append(f"  after {s['stats_after_ms']} ms: spikes {s['stats_spike_count_a']} vs "
                     f"{s['stats_spike_count_b']}, median |rate diff| {s['stats_rate_rel_diff_median']}, "
                     f"median ISI KS {s['stats_ks_isi_median']}")
    return "\n".join(x for x in lines if x)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m owjax.compare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path, help="traces under test (HDF5)")
    p.add_argument("b", type=Path, help="reference traces (HDF5)")
    p.add_argument("--json", type=Path, default=None, help="write the full result here")
    p.add_argument("--figure", type=Path, default=None, help="figure of the worst cells (PNG)")
    p.add_argument("--tol-rel", type=float, default=0.01)
    p.add_argument("--tol-spike-ms", type=float, default=0.5)
    p.add_argument("--tol-isi-rel", type=float, default=0.01)
    p.add_argument("--floor-v-mv", type=float, default=DEFAULT_FLOOR_ABS["V"])
    p.add_argument("--floor-ca-mm", type=float, default=DEFAULT_FLOOR_ABS["Ca"])
    p.add_argument("--floor-frac", type=float, default=DEFAULT_FLOOR_FRAC)
    p.add_argument("--t-min-ms", type=float, default=None)
    p.add_argument("--t-max-ms", type=float, default=None)
    p.add_argument("--pointwise-until-ms", type=float, default=None,
                   help="criteria up to this time, statistics after it (chaotic regimes)")
    p.add_argument("--cells", default=None, help="comma-separated cell names")
    p.add_argument("--n-worst", type=int, default=6)
    a = p.parse_args(argv)
    try:
        ta, tb = read_traces(a.a), read_traces(a.b)
        res = compare_traces(
            ta, tb, a.tol_rel, a.tol_spike_ms, a.tol_isi_rel,
            floor_abs={"V": a.floor_v_mv, "Ca": a.floor_ca_mm}, floor_frac=a.floor_frac,
            t_min_ms=a.t_min_ms, t_max_ms=a.t_max_ms, pointwise_until_ms=a.pointwise_until_ms,
            cells=a.cells.split(",") if a.cells else None,
        )
    except (OSError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_summary(res))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1) + "\n")
    if a.figure:
        a.figure.parent.mkdir(parents=True, exist_ok=True)
        plot_worst(ta, tb, res, a.figure, a.n_worst, labels=(a.a.stem, a.b.stem))
    return 0 if res["summary"]["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""``synapse_polarity``'s statistics: the atlas' noise ceiling and bootstrap confidence intervals.

**Noise ceiling.** The atlas' ΔF/F of a pair is the mean of its trials (``dFF_all``), so it is
itself noisy, and no model can correlate with it better than the atlas agrees with a repeat of
itself. :func:`split_half_reliability` splits every pair's trials at random into two halves, takes
the two half means and correlates them across the pairs that have ≥ 2 trials (averaged over
``n_splits`` random splits): ``r_half``. The Spearman–Brown correction gives the reliability of the
full-trial means, ``ρ = 2 r_half / (1 + r_half)``, and the ceiling of any model's correlation with
the means is ``√ρ`` (the correlation of the means with the noise-free pair values; classical test
theory). On significant pairs it is optimistic: the pairs were selected as significant with all
their trials. Pairs with one trial cannot enter the estimate; the ceiling is applied to the r over
all pairs of the set (the count of those with ≥ 2 trials is reported).

**Bootstrap over stimulated neurons.** A held-out r is computed over pairs, but pairs of one
stimulated neuron are not independent, so :func:`bootstrap_metrics` resamples the *stimulated
neurons* with replacement (all of a neuron's pairs go with it) and recomputes r and the sign
agreement of every model on each resample; the 2.5/97.5 % percentiles are the 95 % interval, and the
differences between models are bootstrapped on the same resamples (paired).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from jaxtyping import Float, Int

__all__ = ["spearman_brown", "split_half_reliability", "pair_set_ceiling", "bootstrap_metrics", "held_out_statistics",
           "ceiling_metrics", "save_held_out_responses", "load_folds", "pool_held_out", "pooled_cross_validation",
           "pooled_unc31_check", "cross_validation_baseline", "responder_mean_baseline",
           "direct_connection_baseline", "stacked_with_responder_prior", "responder_prior", "significant_responses"]


def spearman_brown(r_half: float) -> float:
    """Reliability of the full-length mean from the correlation of two half means, ``2r/(1+r)``
    (``nan`` for r ≤ −1)."""
    r = float(r_half)
    return 2.0 * r / (1.0 + r) if r > -1.0 else float("nan")


def split_half_reliability(trials: Sequence[np.ndarray], n_splits: int = 200, seed: int = 0,
                           clip: float | None = None) -> dict:
    """Split-half reliability of per-pair trial means.

    Arguments:
        trials: one array of trial responses (ΔF/F) per pair.
        n_splits: random splits averaged over.
        seed: seeds the splits.
        clip: clip each half mean to ±clip (as the targets are), or None.

    Returns:
        dict with ``r_half`` (mean over splits of the correlation between the half means across the
        pairs with ≥ 2 trials), ``r_half_sd`` (its SD over splits), ``spearman_brown`` (reliability
        of the full means), ``ceiling_r`` (√reliability, 0 when the reliability is ≤ 0),
        ``n_pairs`` and ``n_pairs_reliability`` (pairs with ≥ 2 trials).

    Raises:
        ValueError: ``n_splits`` < 1.
    """
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    multi = [np.asarray(t, np.float64) for t in trials if np.size(t) >= 2]
    out = dict(n_pairs=len(trials), n_pairs_reliability=len(multi))
    if len(multi) < 3:
        return dict(out, r_half=float("nan"), r_half_sd=float("nan"), spearman_brown=float("nan"),
                    ceiling_r=float("nan"))
    rng = np.random.default_rng(seed)
    # vectorised by trial count: pairs with n trials share one permutation shape
    by_n: dict[int, np.ndarray] = {}
    for k, t in enumerate(multi):
        by_n.setdefault(t.size, [])
        by_n[t.size].append(k)
    groups = [(n, np.asarray(ks), np.stack([multi[k] for k in ks])) for n, ks in by_n.items()]
    rs = np.empty(n_splits)
    a = np.empty(len(multi))
    b = np.empty(len(multi))
    for s in range(n_splits):
        for n, ks, x in groups:
            perm = np.argsort(rng.random(x.shape), axis=1)
            xs = np.take_along_axis(x, perm, axis=1)
            h = n // 2
            a[ks], b[ks] = xs[:, :h].mean(axis=1), xs[:, h:].mean(axis=1)
        if clip is not None:
            aa, bb = np.clip(a, -clip, clip), np.clip(b, -clip, clip)
        else:
            aa, bb = a, b
        rs[s] = np.corrcoef(aa, bb)[0, 1]
    r_half = float(np.mean(rs))
    sb = spearman_brown(r_half)
    return dict(out, r_half=r_half, r_half_sd=float(np.std(rs)), spearman_brown=sb,
                ceiling_r=float(np.sqrt(sb)) if sb > 0 else 0.0)


def pair_set_ceiling(atlas, stimulated: Sequence[str], q_max: float | None, min_occ: int = 1,
                     clip: float | None = None, n_splits: int = 200, seed: int = 0) -> dict:
    """:func:`split_half_reliability` of the atlas pairs of ``stimulated`` (q < ``q_max``, or every
    observed pair for None), the same selection the metrics use (self responses excluded)."""
    p = atlas.pairs(q_max=q_max, min_occ=min_occ, stimulated=list(stimulated))
    return split_half_reliability(atlas.trials(p.resp, p.stim), n_splits=n_splits, seed=seed, clip=clip)


def _r(s: np.ndarray, t: np.ndarray) -> float:
    if s.size < 3 or np.std(s) == 0 or np.std(t) == 0:
        return float("nan")
    return float(np.corrcoef(s, t)[0, 1])


def bootstrap_metrics(sims: Mapping[str, Float[np.ndarray, " p"]], target: Float[np.ndarray, " p"],
                      group: Int[np.ndarray, " p"], sign_thr: Mapping[str, float] | None = None,
                      n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Bootstrap over stimulated neurons of Pearson r and sign agreement for several models.

    Arguments:
        sims: model name → simulated response of each pair (same pairs for every model).
        target: the atlas ΔF/F of each pair.
        group: the stimulated neuron (any integer label) of each pair — the resampling unit.
        sign_thr: model name → |response| at or below which the model has no sign (a disagreement),
            as in :func:`~owjax.fitting.tasks.synapse_polarity_metrics.response_metrics`; default 0.
        n_boot: bootstrap resamples.
        seed: seeds the resampling.
        level: confidence level of the intervals.

    Returns:
        ``{name: {r, r_ci, sign_agreement, sign_agreement_ci}}`` and, for every ordered pair of
        models ``a`` ≠ ``b`` (keys ``"a-b"`` under ``"differences"``), ``{r_diff, r_diff_ci,
        p_r_diff_le_0}`` (the bootstrap fraction with r_a − r_b ≤ 0); plus ``n_groups``, ``n_boot``,
        ``level``. Resamples with an undefined r (too few pairs) are dropped from the percentiles.
    """
    target = np.asarray(target, np.float64)
    group = np.asarray(group)
    names = list(sims)
    s = {k: np.asarray(v, np.float64) for k, v in sims.items()}
    for k, v in s.items():
        if v.shape != target.shape:
            raise ValueError(f"sims[{k!r}] has shape {v.shape}, the targets {target.shape}")
    if group.shape != target.shape:
        raise ValueError(f"group has shape {group.shape}, the targets {target.shape}")
    thr = {k: float((sign_thr or {}).get(k, 0.0)) for k in names}
    agree = {k: (np.where(np.abs(s[k]) > thr[k], np.sign(s[k]), 0.0) == np.sign(target)).astype(np.float64)
             for k in names}
    labels, inv = np.unique(group, return_inverse=True)
    members = [np.nonzero(inv == g)[0] for g in range(labels.size)]
    rng = np.random.default_rng(seed)
    boot_r = {k: np.full(n_boot, np.nan) for k in names}
    boot_sa = {k: np.full(n_boot, np.nan) for k in names}
    for b in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, labels.size, labels.size)])
        for k in names:
            boot_r[k][b] = _r(s[k][idx], target[idx])
            boot_sa[k][b] = agree[k][idx].mean()
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2

    def ci(x):
        x = x[np.isfinite(x)]
        return [float(np.percentile(x, lo_q)), float(np.percentile(x, hi_q))] if x.size else [float("nan")] * 2

    out: dict = dict(n_groups=int(labels.size), n_pairs=int(target.size), n_boot=int(n_boot), level=level)
    for k in names:
        out[k] = dict(r=_r(s[k], target), r_ci=ci(boot_r[k]), sign_agreement=float(agree[k].mean()),
                      sign_agreement_ci=ci(boot_sa[k]))
    diffs = {}
    for a in names:
        for b in names:
            if a != b:
                d = boot_r[a] - boot_r[b]
                fin = d[np.isfinite(d)]
                diffs[f"{a}-{b}"] = dict(r_diff=out[a]["r"] - out[b]["r"], r_diff_ci=ci(d),
                                         p_r_diff_le_0=float((fin <= 0).mean()) if fin.size else float("nan"))
    out["differences"] = diffs
    return out


def held_out_statistics(su, resps: Mapping[str, np.ndarray], stim_all: Sequence[str], n_boot: int = 2000,
                        n_splits: int = 200, pair_sets: Sequence[tuple[str, Sequence[str], float | None]] | None = None
                        ) -> dict:
    """Noise ceilings and bootstrap intervals of a run's held-out (and training) numbers.

    Arguments:
        su: the task's setup (``cfg``, ``model``, ``atlas``, ``train``, ``test``).
        resps: model name (``fitted``, ``c302``, ``shuffled``, …) → (S, N) responses to the
            stimulations ``stim_all`` (rows) of every model cell (columns).
        stim_all: the stimulated neurons of the rows of every response matrix.
        n_boot, n_splits: bootstrap resamples and split-half splits.
        pair_sets: ``(key, stimulated neurons, q_max)`` of each pair set to report (default: the three
            below; ``q_max`` None = every observed pair).

    Returns:
        ``{pair_set: {ceiling…, bootstrap…}}`` for ``test_significant``, ``test_observed`` and
        ``train_significant`` (significant = q < cfg.q_max; observed = every observed pair), each with
        the split-half/Spearman–Brown ceiling (:func:`split_half_reliability`), every model's r,
        sign agreement and 95 % intervals, r as a fraction of the ceiling (with its interval, the
        ceiling held fixed) and the paired model differences (:func:`bootstrap_metrics`).
    """
    cfg, atlas, model = su.cfg, su.atlas, su.model
    rows = {n: k for k, n in enumerate(stim_all)}
    self_cols = [model.index(n) for n in stim_all]
    # each model's sign threshold, as in the report's metrics: sign_eps × its largest non-self response
    thr = {}
    for k, r in resps.items():
        r_ns = np.array(r, np.float64)
        r_ns[np.arange(len(stim_all)), self_cols] = 0.0
        thr[k] = cfg.sign_eps * float(np.abs(r_ns).max())
    out = {}
    if pair_sets is None:
        pair_sets = (("test_significant", su.test, cfg.q_max), ("test_observed", su.test, None),
                     ("train_significant", su.train, cfg.q_max))
    for key, names, q_max in pair_sets:
        p = atlas.pairs(q_max=q_max, min_occ=cfg.min_occ, stimulated=list(names), clip=cfg.clip)
        srow = np.array([rows[atlas.names[j]] for j in p.stim], dtype=int)
        cols = np.array([model.index(atlas.names[i]) for i in p.resp], dtype=int)
        sims = {k: np.asarray(r, np.float64)[srow, cols] for k, r in resps.items()}
        ceil = split_half_reliability(atlas.trials(p.resp, p.stim), n_splits=n_splits, seed=cfg.seed, clip=cfg.clip)
        boot = bootstrap_metrics(sims, p.target, p.stim, thr, n_boot=n_boot, seed=cfg.seed)
        c = ceil["ceiling_r"]
        for k in resps:
            ok = np.isfinite(c) and c > 0
            boot[k]["fraction_of_ceiling"] = boot[k]["r"] / c if ok else float("nan")
            boot[k]["fraction_of_ceiling_ci"] = [x / c for x in boot[k]["r_ci"]] if ok else [float("nan")] * 2
        out[key] = dict(noise_ceiling=ceil, **boot)
    return out


def ceiling_metrics(stats: Mapping) -> dict:
    """The ``metrics.json`` keys of :func:`held_out_statistics`' result (models ``fitted``, ``c302``,
    ``shuffled``): ``test_r_ci95``, ``noise_ceiling_r``, ``test_r_fraction_of_ceiling`` (+ its
    interval), the same for the baselines, sign-agreement intervals, the paired differences
    fitted − c302 / fitted − shuffled, the observed-pair and training versions, and the full
    ``statistics`` block."""
    ts, to, tr = stats["test_significant"], stats["test_observed"], stats["train_significant"]
    out = dict(
        test_r_ci95=ts["fitted"]["r_ci"],
        noise_ceiling_r=ts["noise_ceiling"]["ceiling_r"],
        noise_ceiling_spearman_brown=ts["noise_ceiling"]["spearman_brown"],
        noise_ceiling_split_half_r=ts["noise_ceiling"]["r_half"],
        test_r_fraction_of_ceiling=ts["fitted"]["fraction_of_ceiling"],
        test_r_fraction_of_ceiling_ci95=ts["fitted"]["fraction_of_ceiling_ci"],
        test_sign_agreement_ci95=ts["fitted"]["sign_agreement_ci"],
        baseline_c302_test_r_ci95=ts["c302"]["r_ci"],
        shuffled_test_r_ci95=ts["shuffled"]["r_ci"],
        shuffled_test_sign_agreement_ci95=ts["shuffled"]["sign_agreement_ci"],
        test_r_minus_c302=ts["differences"]["fitted-c302"]["r_diff"],
        test_r_minus_c302_ci95=ts["differences"]["fitted-c302"]["r_diff_ci"],
        test_r_minus_shuffled=ts["differences"]["fitted-shuffled"]["r_diff"],
        test_r_minus_shuffled_ci95=ts["differences"]["fitted-shuffled"]["r_diff_ci"],
        test_r_observed_ci95=to["fitted"]["r_ci"],
        noise_ceiling_r_observed=to["noise_ceiling"]["ceiling_r"],
        test_r_observed_fraction_of_ceiling=to["fitted"]["fraction_of_ceiling"],
        train_r_ci95=tr["fitted"]["r_ci"],
        noise_ceiling_r_train=tr["noise_ceiling"]["ceiling_r"],
        train_r_fraction_of_ceiling=tr["fitted"]["fraction_of_ceiling"],
        statistics=dict(stats),
    )
    return out


RESPONSES_FILE = "responses.npz"


def save_held_out_responses(run_dir, su, resps: Mapping[str, np.ndarray], stim_all: Sequence[str],
                            extra: Mapping[str, np.ndarray] | None = None) -> Path:
    """Write a run's responses (every model, every stimulation, every cell) with its split to
    ``run_dir/responses.npz``: what :func:`pooled_cross_validation` pools across the folds of a
    cross-validation. Keys: ``stimulated`` (rows), ``cells`` (columns), ``train``, ``test``,
    ``folds``, ``fold`` and ``resp_<model>`` (S, N) for each model of ``resps``; ``extra`` adds
    arrays under their own keys (none may start with ``resp_``), e.g. the *unc-31* responses that
    :func:`pooled_unc31_check` pools."""
    extra = dict(extra or {})
    bad = [k for k in extra if k.startswith("resp_") or k in ("stimulated", "cells", "train", "test", "folds", "fold")]
    if bad:
        raise ValueError(f"extra keys {bad} clash with the model responses or the split's keys")
    path = Path(run_dir) / RESPONSES_FILE
    np.savez(path, stimulated=np.array(list(stim_all)), cells=np.array(list(su.model.cell_names)),
             train=np.array(list(su.train)), test=np.array(list(su.test)), folds=int(su.cfg.folds), fold=int(su.cfg.fold),
             **{f"resp_{k}": np.asarray(v, np.float64) for k, v in resps.items()}, **extra)
    return path


class _Cells:
    """The cell order of pooled responses (what :func:`held_out_statistics` needs of a model)."""

    def __init__(self, names: Sequence[str]):
        self.cell_names = tuple(names)
        self._index = {n: k for k, n in enumerate(self.cell_names)}

    def index(self, name: str) -> int:
        return self._index[name]


def load_folds(run_dirs: Sequence) -> tuple[dict[int, dict], list[str], dict[str, int], list[str]]:
    """Read the ``responses.npz`` of the K runs of one K-fold cross-validation and check that they are one.

    Returns:
        ``(by_fold, stimulated, fold_of, models)``: fold → the run's arrays, the stimulated neurons
        (rows of every ``resp_<model>``), neuron → the fold that held it out, and the models.

    Raises:
        ValueError: a file is missing, the runs disagree on cells, stimulated neurons, models or fold
            count, a fold is missing or twice, or a neuron is held out in no run or in two.
    """
    runs = []
    for d in run_dirs:
        f = Path(d) / RESPONSES_FILE
        if not f.exists():
            raise ValueError(f"{f} is missing: is {d} a finished synapse_polarity run (folds >= 2)?")
        with np.load(f) as z:
            runs.append({k: z[k] for k in z.files})
    if not runs:
        raise ValueError("a cross-validation needs the run directories of the folds; got none")
    k_folds = {int(r["folds"]) for r in runs}
    if len(k_folds) != 1 or next(iter(k_folds)) != len(runs) or len(runs) < 2:
        raise ValueError(f"the runs must be the folds of one {len(runs)}-fold cross-validation; their folds "
                         f"settings are {sorted(int(r['folds']) for r in runs)}")
    folds = sorted(int(r["fold"]) for r in runs)
    if folds != list(range(len(runs))):
        raise ValueError(f"need folds 0..{len(runs) - 1} once each; got {folds}")
    ref = runs[0]
    models = sorted(k[5:] for k in ref if k.startswith("resp_"))
    for r in runs[1:]:
        if list(r["cells"]) != list(ref["cells"]) or sorted(r["stimulated"]) != sorted(ref["stimulated"]):
            raise ValueError("the runs disagree on the cells or the stimulated neurons: not one cross-validation")
        if sorted(k[5:] for k in r if k.startswith("resp_")) != models:
            raise ValueError("the runs disagree on the models they report")
    stim = [str(n) for n in ref["stimulated"]]
    fold_of: dict[str, int] = {}
    for r in runs:
        for n in r["test"]:
            if str(n) in fold_of:
                raise ValueError(f"{n} is held out in folds {fold_of[str(n)]} and {int(r['fold'])}")
            fold_of[str(n)] = int(r["fold"])
    missing = [n for n in stim if n not in fold_of]
    if missing:
        raise ValueError(f"never held out: {missing}")
    return {int(r["fold"]): r for r in runs}, stim, fold_of, models


def pool_held_out(by_fold: Mapping[int, Mapping[str, np.ndarray]], names: Sequence[str], fold_of: Mapping[str, int],
                  key: str, rows_key: str = "stimulated") -> np.ndarray:
    """Each neuron of ``names``' row of the array ``key`` taken from the run that held it out (rows of
    ``key`` are the neurons ``rows_key`` of each run): the held-out predictions of a cross-validation."""
    index = {f: {str(x): k for k, x in enumerate(r[rows_key])} for f, r in by_fold.items()}
    out = []
    for n in names:
        f = fold_of[n]
        if n not in index[f]:
            raise ValueError(f"{n} has no row in {key!r} of fold {f}")
        out.append(np.asarray(by_fold[f][key])[index[f][n]])
    return np.stack(out)


def pooled_cross_validation(cfg, run_dirs: Sequence, atlas=None, n_boot: int = 2000, n_splits: int = 200,
                            baselines: Mapping[str, Callable] | None = None, stack: Sequence[str] = ()) -> dict:
    """Pool the held-out predictions of the folds of a cross-validation over stimulated neurons.

    Each run of ``run_dirs`` holds out one fold (``synapse_polarity.folds=K``, ``fold=k``) and wrote
    :func:`save_held_out_responses`. Every stimulated neuron's row is taken, for every model, from the
    run that held it out, so each prediction is held out; the statistics of :func:`held_out_statistics`
    (noise ceiling, bootstrap over stimulated neurons, paired differences) are then computed over all
    stimulated neurons at once: tighter intervals than one split, and no dependence on which neurons
    one split happened to hold out.

    Arguments:
        cfg: the runs' :class:`~owjax.fitting.tasks.synapse_polarity.SynapsePolarityConfig` (pair
            selection, clip, sign threshold, seed, strain).
        run_dirs: the K run directories, one per fold.
        atlas: the atlas (default: loaded for ``cfg.strain`` and the runs' cells).
        n_boot, n_splits: bootstrap resamples and split-half splits.
        baselines: name → ``fn(atlas, cells, stimulated, fold_of)`` returning an (S, N) matrix of
            predictions that joins the models (e.g. :func:`responder_mean_baseline`,
            :func:`direct_connection_baseline`); each row must use only what the fold that held its
            neuron out may see.
        stack: models of the runs to combine with the responder prior
            (:func:`stacked_with_responder_prior`), each joining as ``"<model>+responder_mean"``.

    Returns:
        ``{heldout_significant, heldout_observed}`` blocks as :func:`held_out_statistics`, plus
        ``n_folds``, ``stimulated``, ``fold_of`` (neuron → fold) and, with ``stack``, ``stack_coefficients``
        (model → per-fold (a, b, c)).

    Raises:
        ValueError: the runs disagree on cells, stimulated neurons, models or fold count, a fold is
            missing or twice, or a neuron is held out in no run or in two.
    """
    from types import SimpleNamespace

    by_fold, stim, fold_of, models = load_folds(run_dirs)
    pooled = {m: pool_held_out(by_fold, stim, fold_of, f"resp_{m}") for m in models}
    ref = by_fold[0]
    cells = _Cells([str(c) for c in ref["cells"]])
    if atlas is None:
        from owjax.reference.atlas import load_atlas

        atlas = load_atlas(cfg.strain, cells.cell_names)
    for name, fn in (baselines or {}).items():
        if name in pooled:
            raise ValueError(f"baseline {name!r} has the name of a model of the runs")
        pooled[name] = np.asarray(fn(atlas, cells.cell_names, stim, fold_of), np.float64)
        if pooled[name].shape != (len(stim), len(cells.cell_names)):
            raise ValueError(f"baseline {name!r} returned shape {pooled[name].shape}, expected "
                             f"{(len(stim), len(cells.cell_names))}")
    coefficients = {}
    for m in stack:
        if m not in models:
            raise ValueError(f"stack: {m!r} is not a model of the runs ({models})")
        pooled[f"{m}+responder_mean"], coefficients[m] = stacked_with_responder_prior(
            {f: r[f"resp_{m}"] for f, r in by_fold.items()}, {f: [str(x) for x in r["stimulated"]] for f, r in by_fold.items()},
            atlas, cells.cell_names, stim, fold_of, cfg.q_max, cfg.clip, cfg.min_occ)
    su = SimpleNamespace(cfg=cfg, atlas=atlas, model=cells, train=[], test=stim)
    stats = held_out_statistics(su, pooled, stim, n_boot=n_boot, n_splits=n_splits,
                                pair_sets=(("heldout_significant", stim, cfg.q_max), ("heldout_observed", stim, None)))
    out = dict(stats, n_folds=len(by_fold), stimulated=stim, fold_of=fold_of)
    if stack:
        out["stack_coefficients"] = coefficients
    return out


def pooled_unc31_check(cfg, run_dirs: Sequence, n_boot: int = 2000, n_splits: int = 200) -> dict:
    """Issue 18's *unc-31* check over all folds of a cross-validation (each prediction held out).

    The falsifiable prediction: a model fitted to wild type predicts the *unc-31* atlas (no
    dense-core-vesicle release) better with its neuropeptide (DCV) families removed than with them
    kept, while on wild type the removal should not help. Each run of a ``rate_extrasynaptic``
    cross-validation saved, for every stimulation of the *unc-31* atlas with significant pairs, the
    fitted model's responses with the DCV families kept and removed (and the same removal on its wt
    stimulations). Here every stimulated neuron that a fold held out takes its rows from that fold,
    and for each strain the kept and removed models are compared on the significant pairs of those
    neurons (bootstrap over stimulated neurons, paired).

    Arguments:
        cfg: the runs' configuration (pair selection, clip, seed).
        run_dirs: the K run directories of one cross-validation.
        n_boot, n_splits: bootstrap resamples and split-half splits of the ceiling.

    Returns:
        ``{available, removed_families, unc31: {...}, wt: {...}, prediction_holds}``; each strain's
        block has ``n_pairs``, ``n_stimulated``, ``r_kept`` / ``r_removed`` with 95 % intervals,
        ``r_removed_minus_kept`` with its interval and ``p_r_diff_le_0``, and ``noise_ceiling_r``;
        ``unc31`` also counts the *unc-31* stimulations no fold held out (``n_stimulated_not_held_out``,
        left out: a wt fold never trained on them, but no single fold is theirs). ``available`` is
        False (with ``reason``) when the runs have no DCV family.
    """
    from owjax.reference.atlas import load_atlas

    by_fold, stim, fold_of, _ = load_folds(run_dirs)
    ref = by_fold[0]
    if "unc31_resp_kept" not in ref:
        return dict(available=False, reason="the runs saved no unc-31 responses (a model without a neuropeptide family, "
                                            "or runs older than the pooled check)")
    cells = _Cells([str(c) for c in ref["cells"]])
    out: dict = dict(available=True, removed_families=[str(f) for f in ref["dcv_families"]])
    for strain, kept_key, removed_key, rows_key in (("unc31", "unc31_resp_kept", "unc31_resp_removed", "unc31_stimulated"),
                                                    ("wt", "resp_fitted", "dcv_removed_wt", "stimulated")):
        atlas = load_atlas(strain, cells.cell_names)
        rows = [str(n) for n in ref[rows_key]]
        held = [n for n in rows if n in fold_of]
        kept = pool_held_out(by_fold, held, fold_of, kept_key, rows_key)
        removed = pool_held_out(by_fold, held, fold_of, removed_key, rows_key)
        p = atlas.pairs(q_max=cfg.q_max, min_occ=cfg.min_occ, stimulated=held, clip=cfg.clip)
        row = {n: k for k, n in enumerate(held)}
        srow = np.array([row[atlas.names[j]] for j in p.stim], dtype=int)
        cols = np.array([cells.index(atlas.names[i]) for i in p.resp], dtype=int)
        b = bootstrap_metrics(dict(kept=kept[srow, cols], removed=removed[srow, cols]), p.target, p.stim,
                              n_boot=n_boot, seed=cfg.seed)
        ceil = split_half_reliability(atlas.trials(p.resp, p.stim), n_splits=n_splits, seed=cfg.seed, clip=cfg.clip)
        d = b["differences"]["removed-kept"]
        out[strain] = dict(n_pairs=len(p), n_stimulated=len(held), r_kept=b["kept"]["r"], r_kept_ci95=b["kept"]["r_ci"],
                           r_removed=b["removed"]["r"], r_removed_ci95=b["removed"]["r_ci"],
                           r_removed_minus_kept=d["r_diff"], r_removed_minus_kept_ci95=d["r_diff_ci"],
                           p_r_diff_le_0=d["p_r_diff_le_0"], noise_ceiling_r=ceil["ceiling_r"])
        if strain == "unc31":
            out[strain]["n_stimulated_not_held_out"] = len(rows) - len(held)
    out["prediction_holds"] = bool(out["unc31"]["r_removed_minus_kept"] > 0)
    return out


def cross_validation_baseline(run_dirs: Sequence, model: str = "fitted") -> Callable:
    """Another cross-validation's pooled held-out predictions (its ``model``) as a baseline of
    :func:`pooled_cross_validation`, so that two model classes run on the same folds are compared
    with paired bootstrap differences. The two must hold out the same neurons in the same folds.

    Raises (when called):
        ValueError: the folds, cells or stimulated neurons differ, or the runs lack ``model``.
    """
    by_fold, stim_o, fold_o, models = load_folds(run_dirs)
    if model not in models:
        raise ValueError(f"{model!r} is not a model of {run_dirs[0]}'s cross-validation ({models})")
    cells_o = [str(c) for c in by_fold[0]["cells"]]

    def fn(atlas, cells, stimulated, fold_of):
        if list(cells) != cells_o or sorted(stimulated) != sorted(stim_o) or dict(fold_of) != fold_o:
            raise ValueError(f"the cross-validation in {Path(run_dirs[0]).parent} has other folds, cells or stimulated "
                             "neurons: run both with the same --folds and seed")
        return pool_held_out(by_fold, list(stimulated), fold_o, f"resp_{model}")

    return fn


def significant_responses(atlas, q_max: float, clip: float | None) -> np.ndarray:
    """(responder, stimulated) ΔF/F of the atlas, clipped, NaN where not significant (q ≥ ``q_max``)."""
    resp = np.array(atlas.response, np.float64)
    if clip is not None:
        resp = np.clip(resp, -clip, clip)
    return np.where(np.asarray(atlas.q) < q_max, resp, np.nan)


def responder_prior(sig: np.ndarray, atlas_names, cells, train: Sequence[str], leave_out: str | None = None):
    """Each cell's mean significant response over the stimulations ``train`` (less ``leave_out``), 0
    where it has none."""
    col = {n: k for k, n in enumerate(atlas_names)}
    use = [col[n] for n in train if n != leave_out]
    with warnings.catch_warnings():  # a responder without significant training pairs: NaN, then 0
        warnings.simplefilter("ignore", RuntimeWarning)
        m = np.nanmean(sig[:, use], axis=1) if use else np.full(len(atlas_names), np.nan)
    rows = np.array([col.get(c, -1) for c in cells])
    return np.nan_to_num(np.where(rows >= 0, m[np.maximum(rows, 0)], np.nan), nan=0.0)


def stacked_with_responder_prior(resp_by_fold: Mapping[int, np.ndarray], rows_by_fold: Mapping[int, Sequence[str]],
                                 atlas, cells: Sequence[str], stimulated: Sequence[str], fold_of: Mapping[str, int],
                                 q_max: float, clip: float | None, min_occ: int = 1) -> tuple[np.ndarray, list]:
    """Does a model add to what the responding neuron's identity predicts? Per fold, the atlas
    responses of its *training* stimulations are fitted by least squares as ``a·model + b·prior + c``
    (prior: each responder's mean significant response to the other training stimulations, leaving
    the row's own stimulation out), and the fold's held-out rows are predicted with the prior of all
    its training stimulations. Returns the (S, N) pooled held-out predictions and the per-fold
    ``(a, b, c)``. If the combination beats :func:`responder_mean_baseline` on held-out neurons, the
    model carries information about the stimulated neuron that the responder's identity does not."""
    sig = significant_responses(atlas, q_max, clip)
    names = list(atlas.names)
    cell_col = {c: k for k, c in enumerate(cells)}
    out = np.zeros((len(stimulated), len(cells)))
    coefs = []
    for f in sorted(set(fold_of.values())):
        rows = {n: k for k, n in enumerate(rows_by_fold[f])}
        resp = np.asarray(resp_by_fold[f], np.float64)
        train = [n for n in stimulated if fold_of[n] != f]
        p = atlas.pairs(q_max=q_max, min_occ=min_occ, stimulated=list(train), clip=clip)
        priors = {n: responder_prior(sig, names, cells, train, leave_out=n) for n in train}
        x_model = np.array([resp[rows[names[j]], cell_col[names[i]]] for i, j in zip(p.resp, p.stim)])
        x_prior = np.array([priors[names[j]][cell_col[names[i]]] for i, j in zip(p.resp, p.stim)])
        design = np.stack([x_model, x_prior, np.ones_like(x_model)], axis=1)
        (a, b, c), *_ = np.linalg.lstsq(design, np.asarray(p.target, np.float64), rcond=None)
        coefs.append([float(a), float(b), float(c)])
        prior_all = responder_prior(sig, names, cells, train)
        for i, n in enumerate(stimulated):
            if fold_of[n] == f:
                out[i] = a * resp[rows[n]] + b * prior_all + c
    return out, coefs


def responder_mean_baseline(q_max: float, clip: float | None):
    """A model-free baseline: each responding neuron's mean significant ΔF/F (q < ``q_max``, clipped
    to ±``clip``) over the stimulations of its row's *training* folds predicts its response to the
    held-out stimulation (0 where it has no significant training pair). It knows nothing of the
    connectome: what a model gains over it is what the stimulated neuron's identity adds. Returns
    ``fn(atlas, cells, stimulated, fold_of)`` for :func:`pooled_cross_validation`."""

    def fn(atlas, cells, stimulated, fold_of):
        sig = significant_responses(atlas, q_max, clip)
        out = np.zeros((len(stimulated), len(cells)))
        for f in sorted(set(fold_of.values())):
            prior = responder_prior(sig, list(atlas.names), cells, [n for n in stimulated if fold_of[n] != f])
            for i, n in enumerate(stimulated):
                if fold_of[n] == f:
                    out[i] = prior
        return out

    return fn


def direct_connection_baseline(model):
    """A connectome baseline with nothing fitted: 1 where the responding neuron receives a chemical
    synapse or shares a gap junction with the stimulated one in ``model`` (any sign, any weight), 0
    elsewhere. Returns ``fn(atlas, cells, stimulated, fold_of)`` for :func:`pooled_cross_validation`."""
    n = model.n_cells
    a = np.zeros((n, n))
    a[np.asarray(model.graded.post), np.asarray(model.graded.pre)] = 1.0
    if model.graded2.pre.size:
        a[np.asarray(model.graded2.post), np.asarray(model.graded2.pre)] = 1.0
    a[np.asarray(model.gaps.post), np.asarray(model.gaps.pre)] = 1.0
    a[np.asarray(model.gaps.pre), np.asarray(model.gaps.post)] = 1.0

    def fn(atlas, cells, stimulated, fold_of):
        idx = [model.index(c) for c in cells]
        return np.stack([a[idx, model.index(s)] for s in stimulated])

    return fn

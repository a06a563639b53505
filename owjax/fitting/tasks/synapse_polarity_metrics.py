"""``synapse_polarity``'s atlas data, loss and evaluation functions (pure; no training state).

* NT classes from the Wang et al. 2024 transmitter identities (:func:`nt_classes`), the
  neurotransmitter-consistency penalty and score (:func:`nt_penalty`, :func:`nt_consistency`);
* the train/test split by stimulated neuron (:func:`split_stimulated`) and the dense atlas targets
  (:func:`response_targets`);
* the differentiable atlas loss (:func:`atlas_loss`) and the held-out metrics (:func:`response_metrics`);
* the degree-preserving shuffle control (:func:`shuffle_connectome`);
* Zhao et al.'s correlation-matrix comparison (:func:`atlas_correlation_matrix`,
  :func:`spontaneous_correlation`, :func:`corr_matrix_mse`).

``cfg`` arguments are :class:`owjax.fitting.tasks.synapse_polarity.SynapsePolarityConfig` (read
by attribute). The task is in :mod:`owjax.fitting.tasks.synapse_polarity`, its report in
:mod:`owjax.fitting.tasks.synapse_polarity_report`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from owjax.core.solve import solve_ys
from owjax.neural.network import NetworkModel
from owjax.reference.atlas import SignalPropagationAtlas

__all__ = [
    "NT_CLASSES",
    "nt_class_of",
    "nt_classes",
    "nt_penalty",
    "nt_consistency",
    "presynaptic_names",
    "erev_range",
    "polarity_of",
    "split_stimulated",
    "kfold_stimulated",
    "response_targets",
    "atlas_loss",
    "response_metrics",
    "shuffle_connectome",
    "atlas_correlation_matrix",
    "spontaneous_correlation",
    "corr_matrix_mse",
]

#: NT class codes: 0 free (glutamate, mixed ACh+GABA, aminergic, unknown), 1 excitatory prior
#: (cholinergic without GABA), 2 inhibitory prior (GABAergic without ACh)
NT_CLASSES = ("free", "exc", "inh")
_FAST = ("Acetylcholine", "GABA", "Glutamate")

# ============================================================================ NT classes
def nt_class_of(identities: tuple[str, ...] | str) -> int:
    """NT class code (see :data:`NT_CLASSES`) of a presynaptic identity (Wang 2024 tuple or "A+B")."""
    ids = tuple(identities.split("+")) if isinstance(identities, str) else tuple(identities)
    fast = {x for x in ids if x in _FAST}
    if "GABA" in fast and "Acetylcholine" not in fast:
        return 2
    if "Acetylcholine" in fast and "GABA" not in fast:
        return 1
    return 0


def nt_classes(pre_names, transmitters: Mapping[str, Any] | None = None) -> tuple[np.ndarray, list[str]]:
    """NT class code and identity string per presynaptic neuron name (Wang et al. 2024 via cect).

    Arguments:
        pre_names: presynaptic neuron of each connection (or each neuron).
        transmitters: override ``{neuron: identities}`` (tuple or "A+B" string); default Wang 2024.

    Returns:
        ``(codes, identities)``.
    """
    if transmitters is None:
        from owjax.neural.connectome import presynaptic_transmitters

        table = presynaptic_transmitters(sorted(set(pre_names)))
    else:
        table = {k: (v if isinstance(v, str) else "+".join(v)) for k, v in transmitters.items()}
    ident = [table.get(p, "Unknown") for p in pre_names]
    return np.array([nt_class_of(x) for x in ident], dtype=np.int32), ident


def nt_penalty(p_exc, classes, w_gaba: float = 1.0, w_ach: float = 0.5):
    """Mean over connections of ω·(p_exc − target)² (target 1 for class exc, 0 for inh, none for free)."""
    classes = jnp.asarray(classes)
    target = jnp.where(classes == 1, 1.0, 0.0).astype(p_exc.dtype)
    w = jnp.where(classes == 1, w_ach, jnp.where(classes == 2, w_gaba, 0.0)).astype(p_exc.dtype)
    return jnp.mean(w * (p_exc - target) ** 2)


def nt_consistency(p_exc, classes) -> dict:
    """Fraction of constrained connections whose hard polarity (p_exc > 0.5 → excitatory) matches the
    transmitter prior; also per class and the number of connections counted."""
    p = np.asarray(p_exc, dtype=np.float64)
    c = np.asarray(classes)
    exc = p > 0.5
    ok_exc = exc[c == 1]
    ok_inh = ~exc[c == 2]
    n = int(ok_exc.size + ok_inh.size)
    return dict(
        nt_consistency=float((ok_exc.sum() + ok_inh.sum()) / n) if n else float("nan"),
        nt_consistency_cholinergic=float(ok_exc.mean()) if ok_exc.size else float("nan"),
        nt_consistency_gabaergic=float(ok_inh.mean()) if ok_inh.size else float("nan"),
        n_nt_constrained=n,
    )


# ============================================================================ model readouts
def presynaptic_names(model: NetworkModel) -> list[str]:
    """The presynaptic neuron of every graded (chemical) connection."""
    return [n.split("->")[0] for n in model.graded_names]


def erev_range(model: NetworkModel) -> tuple[float, float]:
    """(lowest, highest) synaptic reversal potential of the model (mV): E_inh, E_exc in c302."""
    e = np.asarray(model.graded.erev_mV)
    return float(e.min()), float(e.max())


def polarity_of(model: NetworkModel) -> np.ndarray:
    """c302-style hard polarity per graded row: True = excitatory (E above the midpoint of its range)."""
    e = np.asarray(model.graded.erev_mV, dtype=np.float64)
    lo, hi = e.min(), e.max()
    return e > (lo + hi) / 2 if hi > lo else np.ones_like(e, dtype=bool)


# ============================================================================ data
def _split_groups(names: list[str], mode: str) -> dict[str, list[str]]:
    """The units a split keeps together: each neuron, or (``mode="bilateral"``) each L/R pair whose two
    sides are both in ``names``."""
    nameset = set(names)
    groups: dict[str, list[str]] = {}
    for n in names:
        key = n
        if mode == "bilateral" and n[-1] in "LR" and len(n) > 2:
            other = n[:-1] + ("R" if n[-1] == "L" else "L")
            if other in nameset:
                key = n[:-1]
        groups.setdefault(key, []).append(n)
    return groups


def kfold_stimulated(names, folds: int, fold: int, seed: int, mode: str = "bilateral") -> tuple[list[str], list[str]]:
    """Fold ``fold`` of a ``folds``-fold cross-validation over stimulated neurons: (train, test).

    The neurons (or bilateral L/R pairs, ``mode="bilateral"``, kept on one side as in
    :func:`split_stimulated`) are shuffled with ``seed`` and dealt, largest group first, to the fold
    that holds the fewest neurons so far; fold ``k`` is the test side of run ``k``. Over
    ``fold = 0 … folds − 1`` every neuron is held out exactly once, so the held-out predictions of
    the ``folds`` runs pool into one prediction per stimulated neuron
    (:func:`owjax.fitting.tasks.synapse_polarity_ceiling.pooled_cross_validation`).

    Raises:
        ValueError: ``folds`` < 2, ``fold`` outside ``[0, folds)``, or fewer split units than folds.
    """
    names = list(names)
    groups = _split_groups(names, mode)
    if int(folds) < 2 or not 0 <= int(fold) < int(folds):
        raise ValueError(f"cross-validation needs folds >= 2 and 0 <= fold < folds; got folds={folds}, fold={fold}")
    if len(groups) < folds:
        raise ValueError(f"{folds} folds need at least {folds} split units ({mode}); got {len(groups)}: {sorted(groups)}")
    keys = sorted(groups)
    rng = np.random.default_rng(seed)
    order = [keys[i] for i in rng.permutation(len(keys))]
    order.sort(key=lambda k: -len(groups[k]))  # stable: pairs first, each size class in shuffled order
    sizes = [0] * int(folds)
    test: list[str] = []
    for k in order:
        f = min(range(int(folds)), key=lambda i: (sizes[i], i))
        sizes[f] += len(groups[k])
        if f == int(fold):
            test += groups[k]
    tset = set(test)
    return [n for n in names if n not in tset], [n for n in names if n in tset]


def split_stimulated(names, test_fraction: float, seed: int, mode: str = "bilateral") -> tuple[list[str], list[str]]:
    """Split stimulated neurons into (train, test) by neuron, or by bilateral pair (``AVAL``/``AVAR``
    go to the same side). Deterministic for a seed; both sides non-empty when there are ≥ 2 groups.
    (:func:`kfold_stimulated`: the folds of a cross-validation instead.)"""
    names = list(names)
    groups = _split_groups(names, mode)
    keys = sorted(groups)
    rng = np.random.default_rng(seed)
    order = [keys[i] for i in rng.permutation(len(keys))]
    target = test_fraction * len(names)
    test: list[str] = []
    for k in order:
        if len(test) >= target:
            break
        if len(test) + len(groups[k]) > target + 1 and test:
            continue
        test += groups[k]
    if len(test) == len(names) and len(keys) > 1:  # keep a training side
        test = [n for n in test if n not in groups[order[0]]]
    train = [n for n in names if n not in set(test)]
    return train, [n for n in names if n in set(test)]


def response_targets(atlas: SignalPropagationAtlas, model: NetworkModel, stimulated, cfg,
                     q_max: float | None | str = "config") -> tuple[np.ndarray, np.ndarray]:
    """Dense (S, N) atlas targets and pair weights for the trials ``stimulated`` (weight 0 = unused).

    Columns are model cells; the stimulated neuron itself is never a pair. ``q_max``: ``"config"`` =
    the configuration's pair selection, a number = significant pairs, ``None`` = every observed pair.
    With ``q_max="config"`` and ``cfg.non_response_weight > 0``, the atlas' non-responses (observed
    pairs whose equivalence test says "no response", ``q_eq < cfg.q_eq_max``, and that are not
    selected otherwise) are added as targets 0 with that weight: the data say these neurons do not
    respond, and a model should not make them.
    """
    use_non_responses = q_max == "config" and getattr(cfg, "non_response_weight", 0.0) > 0
    if q_max == "config":
        q_max = cfg.q_max if cfg.pairs == "significant" else None
    p = atlas.pairs(q_max=q_max, min_occ=cfg.min_occ, stimulated=stimulated, weighting=cfg.weighting,
                    clip=cfg.clip)
    srow = {n: k for k, n in enumerate(stimulated)}
    t = np.zeros((len(stimulated), model.n_cells))
    w = np.zeros_like(t)
    for k in range(len(p)):
        s = srow[atlas.names[p.stim[k]]]
        i = model.index(atlas.names[p.resp[k]])
        t[s, i] = p.target[k]
        w[s, i] = p.weight[k]
    if use_non_responses:
        nr = atlas.pairs(q_max=None, q_eq_max=cfg.q_eq_max, min_occ=cfg.min_occ, stimulated=stimulated)
        for k in range(len(nr)):
            s, i = srow[atlas.names[nr.stim[k]]], model.index(atlas.names[nr.resp[k]])
            if w[s, i] == 0:
                t[s, i], w[s, i] = 0.0, float(cfg.non_response_weight)
    return t, w


def atlas_loss(resp, target, weight, kind: str = "scaled_mse", eps: float = 1e-12):
    """Agreement of simulated responses with atlas targets over the weighted pairs (pure JAX).

    ``scaled_mse``: Σw(t − a·s)²/Σw·t² with a = max(0, Σw·t·s/Σw·s²) (0 = perfect, 1 = no better than
    zero); ``pearson``: 1 − weighted Pearson r; ``mixed``: their mean.
    """
    w = weight
    sw = jnp.sum(w) + eps

    def smse():
        a = jnp.maximum(jnp.sum(w * target * resp) / (jnp.sum(w * resp * resp) + eps), 0.0)
        return jnp.sum(w * (target - a * resp) ** 2) / (jnp.sum(w * target * target) + eps)

    def pear():
        ms, mt = jnp.sum(w * resp) / sw, jnp.sum(w * target) / sw
        ds, dt_ = resp - ms, target - mt
        r = jnp.sum(w * ds * dt_) / jnp.sqrt(jnp.sum(w * ds * ds) * jnp.sum(w * dt_ * dt_) + eps)
        return 1.0 - r

    if kind == "scaled_mse":
        return smse()
    if kind == "pearson":
        return pear()
    return 0.5 * (smse() + pear())


def response_metrics(resp: np.ndarray, target: np.ndarray, weight: np.ndarray, sign_eps: float = 1e-3,
                     scale_ref: float | None = None) -> dict:
    """Pearson r, Spearman ρ, sign agreement and the scale-invariant MSE over the pairs with weight > 0.

    A simulated response with |s| ≤ sign_eps × scale_ref (default: the largest |s| over all
    non-self entries of ``resp``) has no sign and counts as a disagreement.
    """
    m = weight > 0
    s, t = np.asarray(resp, np.float64)[m], np.asarray(target, np.float64)[m]
    if scale_ref is None:
        scale_ref = float(np.nanmax(np.abs(resp))) if resp.size else 0.0
    thr = sign_eps * scale_ref
    sg = np.where(np.abs(s) > thr, np.sign(s), 0.0)
    out = dict(n_pairs=int(m.sum()))
    if m.sum() >= 3 and np.std(s) > 0 and np.std(t) > 0:
        out["r"] = float(np.corrcoef(s, t)[0, 1])
        from scipy.stats import spearmanr

        out["spearman"] = float(spearmanr(s, t).statistic)
    else:
        out["r"] = float("nan")
        out["spearman"] = float("nan")
    out["sign_agreement"] = float((sg == np.sign(t)).mean()) if m.any() else float("nan")
    out["frac_sim_responding"] = float((sg != 0).mean()) if m.any() else float("nan")
    a = max(float((t * s).sum() / max((s * s).sum(), 1e-30)), 0.0)
    out["scaled_mse"] = float(((t - a * s) ** 2).sum() / max((t * t).sum(), 1e-30)) if m.any() else float("nan")
    return out


# ============================================================================ controls
def shuffle_connectome(model: NetworkModel, seed: int = 0, n_swaps_per_edge: int = 10) -> NetworkModel:
    """Degree-preserving shuffle of the chemical synapses and gap junctions (double-edge swaps).

    Chemical: the targets of two random connections are exchanged (A→B, C→D ⇒ A→D, C→B) unless that
    makes a self-connection or a duplicate; every neuron keeps its out- and in-degree, each
    connection keeps its weight and polarity (so a presynaptic neuron keeps its sign). Gap
    junctions: the same on undirected pairs (each pair's entries move together; only pairs with
    the same number of entries are swapped, so entry degrees are kept). Deterministic.
    """
    rng = np.random.default_rng(seed)
    pre = np.asarray(model.graded.pre).copy()
    post = np.asarray(model.graded.post).copy()
    edges = set(zip(pre.tolist(), post.tolist()))
    e = len(pre)
    for _ in range(n_swaps_per_edge * e):
        a, b = rng.integers(e, size=2)
        if a == b:
            continue
        pa, qa, pb, qb = pre[a], post[a], pre[b], post[b]
        if pa == qb or pb == qa or (pa, qb) in edges or (pb, qa) in edges:
            continue
        edges -= {(pa, qa), (pb, qb)}
        edges |= {(pa, qb), (pb, qa)}
        post[a], post[b] = qb, qa
    m = eqx.tree_at(lambda m: m.graded.post, model, jnp.asarray(post, model.graded.post.dtype))
    # gap junctions: undirected pairs; a pair's entries (one or both directions) move together, and
    # only pairs with the same number of entries are swapped, so every neuron keeps its entry count
    gp, gq = np.asarray(model.gaps.pre), np.asarray(model.gaps.post)
    keys = [tuple(sorted((int(x), int(y)))) for x, y in zip(gp, gq)]
    mult: dict = {}
    for key in keys:
        mult[key] = mult.get(key, 0) + 1
    uniq = sorted(mult)
    k = len(uniq)
    if k >= 2:
        u = np.array(uniq)
        mu = np.array([mult[x] for x in uniq])
        und = set(uniq)
        for _ in range(n_swaps_per_edge * k):
            a, b = rng.integers(k, size=2)
            if a == b or mu[a] != mu[b]:
                continue
            (x1, y1), (x2, y2) = u[a], u[b]
            if rng.random() < 0.5:
                x2, y2 = y2, x2
            n1, n2 = tuple(sorted((int(x1), int(y2)))), tuple(sorted((int(x2), int(y1))))
            if n1[0] == n1[1] or n2[0] == n2[1] or n1 in und or n2 in und or n1 == n2:
                continue
            und -= {tuple(int(v) for v in u[a]), tuple(int(v) for v in u[b])}
            und |= {n1, n2}
            u[a], u[b] = n1, n2
        new_of = {old: tuple(int(v) for v in new) for old, new in zip(uniq, u.tolist())}
        npre, npost = [], []
        for (x, y), key in zip(zip(gp, gq), keys):
            nx, ny = new_of[key]
            if (int(x), int(y)) == key:
                npre.append(nx)
                npost.append(ny)
            else:
                npre.append(ny)
                npost.append(nx)
        m = eqx.tree_at(lambda m: (m.gaps.pre, m.gaps.post), m,
                        (jnp.asarray(npre, model.gaps.pre.dtype), jnp.asarray(npost, model.gaps.post.dtype)))
    return m


# ============================================================================ correlation matrices (Zhao)
def atlas_correlation_matrix(atlas: SignalPropagationAtlas, clip: float = 2.0, min_common: int = 5,
                             q_max: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A neuron × neuron correlation matrix implied by the atlas, and where it is defined.

    In linear response, activity driven by independent unit-variance inputs u_j into each stimulated
    neuron j is x_i = Σ_j K_ij u_j with K the response matrix, so corr(x_i, x_k) = Σ_j K_ij K_kj /
    √(Σ_j K_ij² Σ_j K_kj²). The atlas observes only part of K, so the sums run over the stimulations j
    in which both i and k were observed (the self response K_jj included), and the entry is defined
    when there are at least ``min_common`` of them. K = atlas ΔF/F clipped to ±clip; with ``q_max``
    non-significant entries are set to 0 (observed, no response).

    Returns:
        ``(C, defined)``: (n, n) matrix over ``atlas.names`` (diagonal 1) and a boolean mask.
    """
    k = np.clip(np.array(atlas.response, dtype=np.float64), -clip, clip)
    obs = np.isfinite(k)
    if q_max is not None:
        sig = np.isfinite(atlas.q) & (atlas.q < q_max)
        k = np.where(obs & ~sig & ~np.eye(atlas.n, dtype=bool), 0.0, k)
    k = np.where(obs, k, 0.0)
    o = obs.astype(np.float64)
    num = k @ k.T
    common = o @ o.T
    # squared norms over the *common* stimulations
    ni = (k * k) @ o.T   # ni[i, k] = Σ_j K_ij² over j observed for k
    den = np.sqrt(ni * ni.T)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(den > 0, num / den, np.nan)
    defined = (common >= min_common) & np.isfinite(c)
    np.fill_diagonal(c, 1.0)
    np.fill_diagonal(defined, False)
    return c, defined


def spontaneous_correlation(model: NetworkModel, y0, cfg, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Pearson correlation matrix of simulated 'spontaneous' activity: every neuron receives
    independent random square current pulses (Poisson, ``spontaneous_rate_hz``,
    ``spontaneous_pulse_ms`` long, ``spontaneous_amplitude_pA``) for ``spontaneous_ms``; the readout
    (V, as Zhao et al., or Ca) is correlated over time. Returns (C (N, N), info)."""
    rng = np.random.default_rng(seed)
    n = model.n_cells
    T = cfg.spontaneous_ms
    rows_cell, rows_t = [], []
    for i in range(n):
        k = rng.poisson(cfg.spontaneous_rate_hz * T / 1000.0)
        for t0 in np.sort(rng.uniform(0.0, T - cfg.spontaneous_pulse_ms, size=k)):
            rows_cell.append(i)
            rows_t.append(round(float(t0), 1))
    from owjax.neural.network import PulseStimuli

    stim = PulseStimuli(
        amplitude_pA=jnp.full((len(rows_cell),), cfg.spontaneous_amplitude_pA, model.dtype),
        cell=jnp.asarray(rows_cell, jnp.int32),
        delay_ms=tuple(float(t) for t in rows_t),
        duration_ms=(float(cfg.spontaneous_pulse_ms),) * len(rows_cell),
    )
    times = tuple(sorted({t for t0 in rows_t for t in (t0, round(t0 + cfg.spontaneous_pulse_ms, 1))}))
    m = _with_stimuli(model, stim, times)
    t0 = time.perf_counter()
    ys = _spont_fn(float(T), float(cfg.spontaneous_dt_out_ms), cfg.protocol.solver)(m, y0)
    x = np.asarray(ys["V"] if cfg.spontaneous_readout == "v" else ys["Ca"], dtype=np.float64).T
    x = x[:, 1:]
    x = x - x.mean(axis=1, keepdims=True)
    sd = np.sqrt((x * x).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(sd[:, None] > 0, x / sd[:, None], 0.0)
    c = z @ z.T
    np.fill_diagonal(c, 1.0)
    return c, dict(n_pulses=len(rows_cell), wall_s=round(time.perf_counter() - t0, 2),
                   ok=bool(np.isfinite(x).all()), n_constant=int((sd == 0).sum()))


@lru_cache(maxsize=4)
def _spont_fn(T: float, dt: float, solver):
    return eqx.filter_jit(lambda m, y: solve_ys(m, T, dt, solver, y0=y, throw=False).ys)


def _with_stimuli(model: NetworkModel, stim, times) -> NetworkModel:
    """A copy of ``model`` with other pulse stimuli (the static jump times change too)."""
    leaves = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)}
    leaves.update(stimuli=stim, stimulus_times_ms=tuple(float(t) for t in times))
    return type(model)(**leaves)


def corr_matrix_mse(c_sim: np.ndarray, c_data: np.ndarray, defined: np.ndarray) -> float:
    """MSE over the defined off-diagonal entries."""
    m = defined & ~np.eye(len(c_data), dtype=bool) & np.isfinite(c_sim)
    return float(np.mean((c_sim[m] - c_data[m]) ** 2)) if m.any() else float("nan")

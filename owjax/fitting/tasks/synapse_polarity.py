"""``synapse_polarity``: fit synaptic weights and E/I polarities of the whole c302 network to the
Randi et al. 2023 signal-propagation atlas (DD017's first application; Zhao et al. 2024 on 302 neurons).

Model: c302's C1 ``Full`` network, neurons only (302 cells; body-wall muscles do not feed back onto
neurons), float32 by default. Protocol (:mod:`owjax.reference.atlas_protocol`): start from the resting state,
inject a current pulse into one neuron, summarise every neuron's readout (Ca by default) as the
window mean of its change, scaled; one trial per stimulated atlas neuron.

Parameters (``cfg.polarity`` = ``connection`` or ``presynaptic``):

* weights, one per chemical neuron→neuron connection, kept positive by a softplus:
  ``w = w_c302 · m(g) · m(ρ)``, ``m(u) = softplus(u)/ln 2`` (m(0) = 1, so the start is c302's weight);
  ``g`` is one global gain of all chemical synapses (cfg.global_gain), ρ one value per connection.
  Gap junctions get the same form (cfg.fit_gaps).
* polarity, a relaxed sign ``p_exc = σ(θ)`` per connection or per presynaptic neuron, entering as the
  reversal potential ``E = E_inh + p_exc·(E_exc − E_inh)`` (C1: −70 and 0 mV). c302's excitatory and
  inhibitory synapses differ *only* in E, and the current is linear in E, so this is exactly a mixture
  of an excitatory and an inhibitory conductance, ``p·I_exc + (1 − p)·I_inh``, with the connection's
  own kinetics. θ starts at ±``theta0`` (c302's sign; p = 0.982 / 0.018, E within 1.3 mV of c302's).

Loss on a minibatch of training stimulations (``batch_size`` trials per Adam step):

* ``atlas`` — agreement with the atlas on the chosen pairs (cfg.pairs: ``significant`` = q < q_max,
  or ``observed`` = every observed pair, weighted by cfg.weighting), either the scale-invariant
  ``scaled_mse`` Σw(t − a·s)²/Σw·t² with the best a ≥ 0 (closed form; default), ``pearson`` (1 − r),
  or ``mixed`` (their mean). Atlas targets are clipped to ±cfg.clip ΔF/F.
* ``nt`` — neurotransmitter consistency (Wang et al. 2024 identities, :func:`nt_classes`): mean over
  connections of ω·(p_exc − target)², GABAergic-only presynaptic neuron → target 0 (ω_GABA),
  cholinergic (without GABA) → target 1 with a smaller ω_ACh (C. elegans ACh can inhibit through
  ACC chloride channels), glutamatergic, mixed ACh+GABA, aminergic/unknown → free (ω = 0).
* ``reg`` — L2 of the per-connection ρ (pull towards c302's weights).

Held-out evaluation: stimulated neurons are split into train and test *by neuron* (cfg.split
``bilateral`` keeps left/right homologues on the same side, so AVAR cannot leak AVAL's answer).
Metrics on the test stimulations: Pearson r between simulated and atlas responses over the q < q_max
pairs, sign agreement (a simulated response smaller than ``sign_eps`` × the largest |response| of the
trial set counts as no response, i.e. no sign), NT consistency, for the fitted weights, c302's
weights (baseline) and a degree-preserving shuffle of c302's connectome (control). Zhao et al.'s
metric: MSE between the correlation matrix of simulated spontaneous activity and one implied by the
atlas, see :func:`atlas_correlation_matrix` and :func:`spontaneous_correlation`.

Entry points: :func:`run_synapse_polarity` (library), ``python -m owjax.fitting.tasks.synapse_polarity``
(CLI, ``--ci`` for the small version), and :class:`SynapsePolarity` for ``owjax.fit`` (full-batch).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from owjax.reference.atlas_protocol import (
    AtlasProtocol,
    responses_jit,
    protocol_model,
    resting_state,
    simulate_responses,
    stimulus_amplitudes,
)
from owjax.reference.atlas import SignalPropagationAtlas, load_atlas
from owjax.neural.network import NetworkModel
from owjax.core.solve import solve_ys
from owjax.neural.spec import NetworkSpec

log = logging.getLogger("owjax.synapse_polarity")

__all__ = [
    "SynapsePolarityConfig",
    "CI_OVERRIDES",
    "NT_CLASSES",
    "nt_classes",
    "nt_penalty",
    "nt_consistency",
    "softplus_multiplier",
    "init_params",
    "apply_params",
    "polarity_of",
    "split_stimulated",
    "shuffle_connectome",
    "response_targets",
    "atlas_loss",
    "response_metrics",
    "atlas_correlation_matrix",
    "spontaneous_correlation",
    "run_synapse_polarity",
    "SynapsePolarity",
    "main",
]

LN2 = math.log(2.0)

#: NT class codes: 0 free (glutamate, mixed ACh+GABA, aminergic, unknown), 1 excitatory prior
#: (cholinergic without GABA), 2 inhibitory prior (GABAergic without ACh)
NT_CLASSES = ("free", "exc", "inh")
_FAST = ("Acetylcholine", "GABA", "Glutamate")


# ============================================================================ configuration
@dataclass
class SynapsePolarityConfig:
    """Everything that defines a run (see the module docstring). Plain data; ``from_dict`` checks keys."""

    parameter_set: str = "C1"
    dtype: str = "float32"
    strain: str = "wt"
    pairs: str = "significant"          # significant (q < q_max) | observed (all observed pairs)
    q_max: float = 0.05
    min_occ: int = 1
    weighting: str = "uniform"           # uniform | occ | sqrt_occ
    clip: float = 2.0                    # atlas ΔF/F clipped to ±clip
    test_fraction: float = 0.25
    split: str = "bilateral"             # bilateral | neuron
    max_stimulated: int | None = None    # use at most this many stimulated neurons (CI)
    stimulated: list | None = None       # or exactly these (names)
    seed: int = 0
    polarity: str = "connection"         # connection | presynaptic
    theta0: float = 4.0
    fit_gaps: bool = True
    global_gain: bool = True
    loss: str = "scaled_mse"             # scaled_mse | pearson | mixed
    lambda_nt: float = 1.0
    nt_weight_gaba: float = 1.0
    nt_weight_ach: float = 0.5
    lambda_w: float = 1e-3
    steps: int = 200
    batch_size: int = 12
    lr: float = 0.05
    final_lr_fraction: float = 0.1
    clip_norm: float = 1.0
    checkpoint_every: int = 5
    max_fit_wall_s: float | None = None  # stop the optimiser after this much wall time (outputs still written)
    sign_eps: float = 1e-3
    shuffle_seed: int = 1
    spontaneous_ms: float = 1000.0
    spontaneous_rate_hz: float = 4.0     # random pulses per neuron per second
    spontaneous_pulse_ms: float = 20.0
    spontaneous_amplitude_pA: float = 10.0
    spontaneous_readout: str = "v"       # Zhao et al. compared membrane potentials
    spontaneous_dt_out_ms: float = 5.0
    corr_min_common: int = 5             # stimulations two neurons must share for a data correlation
    figures: bool = True
    protocol: AtlasProtocol = field(default_factory=lambda: AtlasProtocol(readout="v"))

    @classmethod
    def from_dict(cls, d: Mapping | None) -> "SynapsePolarityConfig":
        d = dict(d or {})
        fields = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - fields)
        if bad:
            raise ValueError(f"unknown synapse_polarity option(s) {bad}; allowed: {sorted(fields)}")
        if "protocol" in d and not isinstance(d["protocol"], AtlasProtocol):
            d["protocol"] = AtlasProtocol.from_dict({"readout": "v", **dict(d["protocol"])})
        cfg = cls(**d)
        cfg.check()
        return cfg

    def check(self) -> None:
        choices = dict(pairs=("significant", "observed"), weighting=("uniform", "occ", "sqrt_occ"),
                       split=("bilateral", "neuron"), polarity=("connection", "presynaptic"),
                       loss=("scaled_mse", "pearson", "mixed"), dtype=("float32", "float64"),
                       spontaneous_readout=("v", "ca"))
        for k, allowed in choices.items():
            if getattr(self, k) not in allowed:
                raise ValueError(f"synapse_polarity.{k}={getattr(self, k)!r}; allowed: {list(allowed)}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.batch_size < 1 or self.steps < 0:
            raise ValueError("batch_size must be >= 1 and steps >= 0")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["protocol"] = self.protocol.to_dict()
        d["protocol"]["solver"] = dataclasses.asdict(self.protocol.solver)
        return d


#: the CI-sized version (``--ci``): 6 stimulated neurons, short trials, a few steps
CI_OVERRIDES = dict(
    stimulated=["AVEL", "AVER", "RIAL", "RIAR", "ASHL", "RMDVR"],
    test_fraction=0.34,
    steps=4,
    batch_size=3,
    lr=0.1,
    checkpoint_every=2,
    spontaneous_ms=100.0,
    spontaneous_rate_hz=20.0,
    protocol=dict(duration_ms=60.0, stim_duration_ms=40.0, dt_out_ms=5.0, settle_ms=300.0),
)


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


# ============================================================================ parameters
def softplus_multiplier(u):
    """m(u) = softplus(u)/ln 2: positive, m(0) = 1, ≈ linear for u ≫ 1, ≈ exp(u)/ln 2 for u ≪ 0."""
    return jax.nn.softplus(u) / LN2


def _pre_names(model: NetworkModel) -> list[str]:
    return [n.split("->")[0] for n in model.graded_names]


def _erev_range(model: NetworkModel) -> tuple[float, float]:
    e = np.asarray(model.graded.erev_mV)
    return float(e.min()), float(e.max())


def polarity_of(model: NetworkModel) -> np.ndarray:
    """c302-style hard polarity per graded row: True = excitatory (E above the midpoint of its range)."""
    e = np.asarray(model.graded.erev_mV, dtype=np.float64)
    lo, hi = e.min(), e.max()
    return e > (lo + hi) / 2 if hi > lo else np.ones_like(e, dtype=bool)


def init_params(model: NetworkModel, cfg: SynapsePolarityConfig) -> dict:
    """Unconstrained parameters whose :func:`apply_params` reproduces c302 (to within theta0)."""
    dt = model.dtype
    exc = polarity_of(model)
    if cfg.polarity == "connection":
        theta = np.where(exc, cfg.theta0, -cfg.theta0)
    else:
        pre = np.asarray(model.graded.pre)
        frac = np.bincount(pre, weights=exc, minlength=model.n_cells) / np.maximum(np.bincount(pre, minlength=model.n_cells), 1)
        theta = np.where(frac >= 0.5, cfg.theta0, -cfg.theta0)
    p = dict(w=jnp.zeros(model.graded.weight.shape, dt), theta=jnp.asarray(theta, dt))
    if cfg.global_gain:
        p["gain"] = jnp.zeros((), dt)
    if cfg.fit_gaps:
        p["gap"] = jnp.zeros(model.gaps.weight.shape, dt)
        if cfg.global_gain:
            p["gap_gain"] = jnp.zeros((), dt)
    return p


def p_exc_of(params: Mapping, model: NetworkModel):
    """p_exc per connection (gathers per-presynaptic θ when needed)."""
    theta = params["theta"]
    if theta.shape != model.graded.weight.shape:
        theta = theta[model.graded.pre]
    return jax.nn.sigmoid(theta)


def apply_params(base: NetworkModel, params: Mapping) -> NetworkModel:
    """The model with fitted weights and relaxed polarities (pure; differentiable)."""
    e_inh, e_exc = _erev_range(base)
    if e_inh == e_exc:  # a network without inhibitory synapses: use c302's C1 values
        e_inh, e_exc = -70.0, 0.0
    w = base.graded.weight * softplus_multiplier(params["w"])
    if "gain" in params:
        w = w * softplus_multiplier(params["gain"])
    erev = e_inh + p_exc_of(params, base) * (e_exc - e_inh)
    m = eqx.tree_at(lambda m: (m.graded.weight, m.graded.erev_mV), base, (w, erev.astype(base.dtype)))
    if "gap" in params:
        gw = base.gaps.weight * softplus_multiplier(params["gap"])
        if "gap_gain" in params:
            gw = gw * softplus_multiplier(params["gap_gain"])
        m = eqx.tree_at(lambda m: m.gaps.weight, m, gw)
    return m


# ============================================================================ data
def split_stimulated(names, test_fraction: float, seed: int, mode: str = "bilateral") -> tuple[list[str], list[str]]:
    """Split stimulated neurons into (train, test) by neuron, or by bilateral pair (``AVAL``/``AVAR``
    go to the same side). Deterministic for a seed; both sides non-empty when there are ≥ 2 groups."""
    names = list(names)
    nameset = set(names)
    groups: dict[str, list[str]] = {}
    for n in names:
        key = n
        if mode == "bilateral" and n[-1] in "LR" and len(n) > 2:
            other = n[:-1] + ("R" if n[-1] == "L" else "L")
            if other in nameset:
                key = n[:-1]
        groups.setdefault(key, []).append(n)
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


def response_targets(atlas: SignalPropagationAtlas, model: NetworkModel, stimulated, cfg: SynapsePolarityConfig,
                     q_max: float | None | str = "config") -> tuple[np.ndarray, np.ndarray]:
    """Dense (S, N) atlas targets and pair weights for the trials ``stimulated`` (weight 0 = unused).

    Columns are model cells; the stimulated neuron itself is never a pair. ``q_max``: ``"config"`` =
    the configuration's pair selection, a number = significant pairs, ``None`` = every observed pair.
    """
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


def spontaneous_correlation(model: NetworkModel, y0, cfg: SynapsePolarityConfig, seed: int = 0) -> tuple[np.ndarray, dict]:
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


# ============================================================================ run
@dataclass
class _Setup:
    cfg: SynapsePolarityConfig
    spec: NetworkSpec
    model: NetworkModel
    atlas: SignalPropagationAtlas
    y0: Any
    train: list
    test: list
    nt_codes: np.ndarray
    nt_ident: list


def _setup(cfg: SynapsePolarityConfig) -> _Setup:
    from owjax.neural.c302_data import load_c302_network

    from owjax.core.precision import require_dtype

    dtype = require_dtype(cfg.dtype, "synapse_polarity")
    spec = load_c302_network(cfg.parameter_set, "Full")
    model = protocol_model(spec, cfg.protocol, dtype=dtype)
    atlas = load_atlas(cfg.strain, model.cell_names)
    q_max = cfg.q_max if cfg.pairs == "significant" else None
    usable = set(atlas.pairs(q_max=q_max, min_occ=cfg.min_occ).stimulated)
    if cfg.stimulated is not None:
        for s in cfg.stimulated:
            atlas.index(s)
        stim = [s for s in atlas.names if s in set(cfg.stimulated)]
        unusable = [s for s in stim if s not in usable]
        if unusable:
            raise ValueError(f"stimulated neuron(s) {unusable} have no atlas pairs with the chosen selection")
    else:
        stim = [s for s in atlas.names if s in usable]
    if cfg.max_stimulated is not None and len(stim) > cfg.max_stimulated:
        rng = np.random.default_rng(cfg.seed + 12345)
        stim = sorted(rng.choice(stim, cfg.max_stimulated, replace=False).tolist(), key=atlas.names.index)
    train, test = split_stimulated(stim, cfg.test_fraction, cfg.seed, cfg.split)
    if not train or not test:
        raise ValueError(f"need stimulated neurons on both sides of the split; got train={train}, test={test}")
    y0 = resting_state(model, cfg.protocol)
    codes, ident = nt_classes(_pre_names(model))
    return _Setup(cfg, spec, model, atlas, y0, train, test, codes, ident)


class _Checkpoint:
    """Minimal resumable state in one ``.npz`` (atomically replaced): params, optimiser state, histories."""

    def __init__(self, path: Path, identity: str):
        self.path = Path(path)
        self.identity = identity

    def save(self, step, params, opt_state, hist):
        leaves = jax.tree.leaves((params, opt_state))
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, identity=np.array(self.identity), step=np.array(step),
                 hist=np.array(json.dumps(hist)), **{f"leaf_{i}": np.asarray(x) for i, x in enumerate(leaves)})
        tmp.replace(self.path)

    def load(self, params, opt_state):
        if not self.path.exists():
            return None
        with np.load(self.path, allow_pickle=False) as f:
            if str(f["identity"]) != self.identity:
                raise RuntimeError(f"{self.path} holds a run of another configuration; delete it or use another run dir")
            treedef = jax.tree.structure((params, opt_state))
            tmpl = jax.tree.leaves((params, opt_state))
            leaves = [jnp.asarray(f[f"leaf_{i}"], dtype=getattr(t, "dtype", None)) for i, t in enumerate(tmpl)]
            p, o = jax.tree.unflatten(treedef, leaves)
            return int(f["step"]), p, o, json.loads(str(f["hist"]))


def _identity(cfg: SynapsePolarityConfig) -> str:
    d = cfg.to_dict()
    for k in ("figures", "checkpoint_every", "max_fit_wall_s"):
        d.pop(k, None)
    return json.dumps(d, sort_keys=True, default=str)


def _make_terms(su: _Setup):
    """``terms(params, amps, target, weight) -> (total, {atlas, nt, reg})`` (pure JAX)."""
    cfg, model, y0, protocol = su.cfg, su.model, su.y0, su.cfg.protocol
    nt_codes = jnp.asarray(su.nt_codes)

    def terms(params, amps, t, w):
        m = apply_params(model, params)
        r = simulate_responses(m, amps, y0, protocol)
        data = atlas_loss(r, t.astype(r.dtype), w.astype(r.dtype), cfg.loss)
        nt = nt_penalty(p_exc_of(params, model), nt_codes, cfg.nt_weight_gaba, cfg.nt_weight_ach)
        reg = jnp.mean(params["w"] ** 2) + (jnp.mean(params["gap"] ** 2) if "gap" in params else 0.0)
        total = data + cfg.lambda_nt * nt + cfg.lambda_w * reg
        return total, dict(atlas=data, nt=nt, reg=reg)

    return terms


def train_objective(su: _Setup, params: Mapping, batch: int = 16) -> dict:
    """The full objective on the whole training set (all training stimulations), host floats."""
    cfg = su.cfg
    tgt, wts = response_targets(su.atlas, su.model, su.train, cfg)
    resp = _evaluate(su, apply_params(su.model, params), su.y0, su.train, batch=batch)
    data = float(atlas_loss(jnp.asarray(resp), jnp.asarray(tgt, resp.dtype), jnp.asarray(wts, resp.dtype), cfg.loss))
    nt = float(nt_penalty(p_exc_of(params, su.model), jnp.asarray(su.nt_codes), cfg.nt_weight_gaba, cfg.nt_weight_ach))
    reg = float(jnp.mean(params["w"] ** 2) + (jnp.mean(params["gap"] ** 2) if "gap" in params else 0.0))
    return dict(total=data + cfg.lambda_nt * nt + cfg.lambda_w * reg, atlas=data, nt=nt, reg=reg)


def fit_params(su: _Setup, run_dir: Path, progress: bool = True) -> tuple[dict, dict]:
    """Adam on minibatches of training stimulations; resumable from ``run_dir/checkpoint.npz``.

    Returns:
        ``(params, history)`` with history keys ``loss``, ``atlas``, ``nt``, ``reg``, ``grad_norm``,
        ``step_s``, ``batch`` (stimulated neurons per step).
    """
    import optax

    cfg = su.cfg
    model = su.model
    params0 = init_params(model, cfg)
    sched = optax.cosine_decay_schedule(cfg.lr, max(cfg.steps, 1), alpha=cfg.final_lr_fraction)
    opt = optax.chain(optax.clip_by_global_norm(cfg.clip_norm), optax.adam(sched))
    opt_state = opt.init(params0)
    tgt, wts = response_targets(su.atlas, model, su.train, cfg)
    amps_all = stimulus_amplitudes(model, su.train, cfg.protocol.amplitude_pA)
    terms = _make_terms(su)

    @eqx.filter_jit
    def step(params, opt_state, amps, t, w):
        (loss, aux), g = jax.value_and_grad(terms, has_aux=True)(params, amps, t, w)
        gn = optax.global_norm(g)
        ok = jnp.isfinite(loss) & jnp.isfinite(gn)
        upd, new_state = opt.update(g, opt_state, params)
        new_params = optax.apply_updates(params, upd)
        params = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new_params, params)
        opt_state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new_state, opt_state)
        return params, opt_state, loss, aux, gn

    ck = _Checkpoint(run_dir / "checkpoint.npz", _identity(cfg))
    hist: dict[str, list] = dict(loss=[], atlas=[], nt=[], reg=[], grad_norm=[], step_s=[], batch=[])
    start = 0
    params = params0
    loaded = ck.load(params0, opt_state)
    if loaded is not None:
        start, params, opt_state, hist = loaded
        log.info("resuming synapse_polarity at step %d/%d", start, cfg.steps)
        print(f"synapse_polarity: resuming from checkpoint at step {start}/{cfg.steps}", file=sys.stderr)
    n_train = len(su.train)
    bs = min(cfg.batch_size, n_train)
    t_fit0 = time.perf_counter()
    wall_before = float(sum(hist["step_s"]))
    saved = start
    for s in range(start, cfg.steps):
        if cfg.max_fit_wall_s is not None and wall_before + time.perf_counter() - t_fit0 > cfg.max_fit_wall_s:
            log.warning("max_fit_wall_s reached after %d steps", s)
            print(f"synapse_polarity: max_fit_wall_s={cfg.max_fit_wall_s} reached; stopping at step {s}", file=sys.stderr)
            break
        # deterministic minibatch per (seed, step): a stream of shuffled epochs of the training neurons
        epoch, pos = divmod(s * bs, n_train)
        perm = np.random.default_rng([cfg.seed, epoch]).permutation(n_train)
        perm2 = np.random.default_rng([cfg.seed, epoch + 1]).permutation(n_train)
        idx = np.concatenate([perm, perm2])[pos:pos + bs]
        t0 = time.perf_counter()
        params, opt_state, loss, aux, gn = step(params, opt_state, amps_all[idx], jnp.asarray(tgt[idx]),
                                               jnp.asarray(wts[idx]))
        loss = float(loss)
        dt = time.perf_counter() - t0
        hist["loss"].append(loss)
        for k in ("atlas", "nt", "reg"):
            hist[k].append(float(aux[k]))
        hist["grad_norm"].append(float(gn))
        hist["step_s"].append(dt)
        hist["batch"].append([su.train[i] for i in idx])
        if progress:
            print(f"step {s + 1}/{cfg.steps}: loss {loss:.5f} (atlas {float(aux['atlas']):.5f}, nt "
                  f"{float(aux['nt']):.5f}) |g| {float(gn):.3g} {dt:.1f}s", file=sys.stderr, flush=True)
        if (s + 1) % cfg.checkpoint_every == 0:
            ck.save(s + 1, params, opt_state, hist)
            saved = s + 1
    if len(hist["loss"]) > saved:
        ck.save(len(hist["loss"]), params, opt_state, hist)
    return params, hist


def _evaluate(su: _Setup, model: NetworkModel, y0, stim_all: list, batch: int = 16) -> np.ndarray:
    """(S, N) responses of ``model`` to every stimulation in ``stim_all`` (chunks of ``batch`` trials)."""
    protocol = su.cfg.protocol
    batch = min(batch, len(stim_all))
    f = partial(responses_jit, protocol=protocol)
    amps = stimulus_amplitudes(model, stim_all, protocol.amplitude_pA)
    out = []
    for i in range(0, len(stim_all), batch):
        a = amps[i:i + batch]
        if a.shape[0] < batch:  # pad to one compiled shape
            a = jnp.concatenate([a, jnp.zeros((batch - a.shape[0], a.shape[1]), a.dtype)])
        out.append(np.asarray(f(model, a, y0))[: min(batch, len(stim_all) - i)])
    return np.concatenate(out, axis=0)


def _split_metrics(su: _Setup, resp_all: np.ndarray, stim_all: list) -> dict:
    cfg = su.cfg
    rows = {n: k for k, n in enumerate(stim_all)}
    # one reference scale per model: largest non-self response over every trial
    r_ns = resp_all.copy()
    r_ns[np.arange(len(stim_all)), [su.model.index(n) for n in stim_all]] = 0.0
    ref = float(np.abs(r_ns).max())
    out = {}
    for split, names in (("train", su.train), ("test", su.test)):
        idx = [rows[n] for n in names]
        t, w = response_targets(su.atlas, su.model, names, cfg, q_max=cfg.q_max)
        m = response_metrics(r_ns[idx], t, w, cfg.sign_eps, ref)
        for k, v in m.items():
            out[f"{split}_{k}" if k != "n_pairs" else f"n_{split}_pairs"] = v
        t2, w2 = response_targets(su.atlas, su.model, names, dataclasses.replace(cfg, weighting="uniform"),
                                  q_max=None)
        m2 = response_metrics(r_ns[idx], t2, np.where(w2 > 0, 1.0, 0.0), cfg.sign_eps, ref)
        out[f"{split}_r_observed"] = m2["r"]
        out[f"{split}_sign_agreement_observed"] = m2["sign_agreement"]
        out[f"n_{split}_pairs_observed"] = m2["n_pairs"]
    return out


def _protocol_corr(su: _Setup, resp_all: np.ndarray, stim_all: list, c_data: np.ndarray, defined: np.ndarray):
    """The atlas-style correlation (same formula as the data) from simulated responses."""

    n = su.atlas.n
    resp = np.full((n, n), np.nan)
    obs = np.isfinite(su.atlas.response)
    for k, s in enumerate(stim_all):
        j = su.atlas.index(s)
        for i, name in enumerate(su.atlas.names):
            if obs[i, j]:
                resp[i, j] = resp_all[k, su.model.index(name)]
    # normalise like ΔF/F (one scale: the median self response)
    selfs = [resp_all[k, su.model.index(s)] for k, s in enumerate(stim_all)]
    sc = float(np.median(np.abs(selfs))) or 1.0
    fake = dataclasses.replace(su.atlas, response=resp / sc)
    c, d = atlas_correlation_matrix(fake, clip=np.inf, min_common=su.cfg.corr_min_common)
    return corr_matrix_mse(c, c_data, defined & d)


def _model_report(su: _Setup, name: str, model: NetworkModel, p_exc: np.ndarray, stim_all: list,
                  c_data, defined, recompute_rest: bool = True) -> tuple[dict, np.ndarray]:
    t0 = time.perf_counter()
    y0 = resting_state(model, su.cfg.protocol) if recompute_rest else su.y0
    resp = _evaluate(su, model, y0, stim_all)
    out = _split_metrics(su, resp, stim_all)
    out.update(nt_consistency(p_exc, su.nt_codes))
    atl_idx = np.array([su.model.index(n) for n in su.atlas.names])
    c_sim, info = spontaneous_correlation(model, y0, su.cfg, seed=su.cfg.seed)
    out["corr_matrix_mse"] = corr_matrix_mse(c_sim[np.ix_(atl_idx, atl_idx)], c_data, defined)
    out["corr_matrix_mse_protocol"] = _protocol_corr(su, resp, stim_all, c_data, defined)
    out["spontaneous"] = info
    out["eval_wall_s"] = round(time.perf_counter() - t0, 1)
    log.info("%s: %s", name, {k: v for k, v in out.items() if not isinstance(v, dict)})
    return out, resp


def run_synapse_polarity(cfg: SynapsePolarityConfig | Mapping | None = None, run_dir: str | Path = "outputs/synapse_polarity",
                         progress: bool = True) -> dict:
    """Fit, evaluate and write every output into ``run_dir`` (resumable; see the module docstring).

    Returns:
        The metrics (also ``run_dir/metrics.json``).
    """
    t_start = time.perf_counter()
    if not isinstance(cfg, SynapsePolarityConfig):
        cfg = SynapsePolarityConfig.from_dict(cfg)
    cfg.check()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, default=str))
    su = _setup(cfg)
    t_setup = time.perf_counter() - t_start
    t0 = time.perf_counter()
    obj0 = train_objective(su, init_params(su.model, cfg))
    params, hist = fit_params(su, run_dir, progress=progress)
    t_fit = float(sum(hist["step_s"]))
    obj1 = train_objective(su, params)
    t_obj = time.perf_counter() - t0 - t_fit
    fitted = apply_params(su.model, params)
    p_fit = np.asarray(p_exc_of(params, su.model))
    p_c302 = polarity_of(su.model).astype(np.float64)
    stim_all = su.train + su.test
    c_data, defined = atlas_correlation_matrix(su.atlas, clip=cfg.clip, min_common=cfg.corr_min_common)
    shuffled = shuffle_connectome(su.model, seed=cfg.shuffle_seed)
    rep_fit, resp_fit = _model_report(su, "fitted", fitted, p_fit, stim_all, c_data, defined)
    rep_c302, resp_c302 = _model_report(su, "c302", su.model, p_c302, stim_all, c_data, defined, recompute_rest=False)
    rep_shuf, resp_shuf = _model_report(su, "shuffled", shuffled, p_c302, stim_all, c_data, defined)
    n_pairs_used = int((response_targets(su.atlas, su.model, su.train, cfg)[1] > 0).sum())
    metrics = dict(
        experiment="synapse_polarity",
        test_r=rep_fit["test_r"], test_sign_agreement=rep_fit["test_sign_agreement"],
        nt_consistency=rep_fit["nt_consistency"], train_r=rep_fit["train_r"],
        train_sign_agreement=rep_fit["train_sign_agreement"],
        baseline_c302_test_r=rep_c302["test_r"], baseline_c302_test_sign_agreement=rep_c302["test_sign_agreement"],
        baseline_c302_train_r=rep_c302["train_r"], baseline_c302_nt_consistency=rep_c302["nt_consistency"],
        shuffled_test_r=rep_shuf["test_r"], shuffled_test_sign_agreement=rep_shuf["test_sign_agreement"],
        corr_matrix_mse=rep_fit["corr_matrix_mse"], baseline_c302_corr_matrix_mse=rep_c302["corr_matrix_mse"],
        shuffled_corr_matrix_mse=rep_shuf["corr_matrix_mse"],
        corr_matrix_mse_protocol=rep_fit["corr_matrix_mse_protocol"],
        baseline_c302_corr_matrix_mse_protocol=rep_c302["corr_matrix_mse_protocol"],
        n_corr_entries=int(defined.sum() // 2),
        corr_matrix_mse_zero_reference=corr_matrix_mse(np.zeros_like(c_data), c_data, defined),
        n_train_neurons=len(su.train), n_test_neurons=len(su.test), n_pairs_used=n_pairs_used,
        n_steps=len(hist["loss"]), initial_train_loss=obj0["total"], final_train_loss=obj1["total"],
        initial_train_terms=obj0, final_train_terms=obj1,
        first_minibatch_loss=hist["loss"][0] if hist["loss"] else float("nan"),
        last_minibatch_loss=hist["loss"][-1] if hist["loss"] else float("nan"),
        dd010_tier2_pass=bool(rep_fit["test_r"] > 0.5 and rep_fit["test_sign_agreement"] >= 0.7),
        n_polarity_flips=int(((p_fit > 0.5) != (p_c302 > 0.5)).sum()), n_connections=int(p_fit.size),
        wall_time_s=dict(setup=round(t_setup, 1), fit=round(t_fit, 1), train_objective=round(t_obj, 1),
                         mean_step=round(t_fit / max(len(hist["step_s"]), 1), 2)),
        fitted=rep_fit, c302=rep_c302, shuffled=rep_shuf,
        train_neurons=su.train, test_neurons=su.test,
        atlas=su.atlas.summary(),
    )
    _write_outputs(su, params, hist, metrics, resp_fit, resp_c302, stim_all, run_dir, p_fit, p_c302, fitted)
    metrics["wall_time_s"]["total"] = round(time.perf_counter() - t_start, 1)
    from owjax.core.checkpoint import atomic_write_json

    atomic_write_json(run_dir / "metrics.json", metrics)
    return metrics


# ============================================================================ outputs
def _write_outputs(su, params, hist, metrics, resp_fit, resp_c302, stim_all, run_dir: Path, p_fit, p_c302, fitted):
    cfg = su.cfg
    from owjax.core.checkpoint import atomic_write_json, atomic_write_text

    # --- per-connection table + flips
    names = su.model.graded_names
    w0 = np.asarray(su.model.graded.weight, np.float64)
    w1 = np.asarray(fitted.graded.weight, np.float64)
    lines = ["pre,post,transmitter,nt_class,c302_weight,fitted_weight,c302_polarity,fitted_p_exc,fitted_polarity,flipped"]
    for k, nm in enumerate(names):
        pre, post = nm.split("->")
        c0 = "exc" if p_c302[k] > 0.5 else "inh"
        c1 = "exc" if p_fit[k] > 0.5 else "inh"
        lines.append(f"{pre},{post},{su.nt_ident[k]},{NT_CLASSES[su.nt_codes[k]]},{w0[k]:.6g},{w1[k]:.6g},{c0},"
                     f"{p_fit[k]:.4f},{c1},{int(c0 != c1)}")
    atomic_write_text(run_dir / "fitted_synapses.csv", "\n".join(lines) + "\n")
    by_pre: dict[str, dict] = {}
    for k, nm in enumerate(names):
        pre = nm.split("->")[0]
        d = by_pre.setdefault(pre, dict(n=0, to_exc=0, to_inh=0, ident=su.nt_ident[k], cls=NT_CLASSES[su.nt_codes[k]]))
        d["n"] += 1
        if (p_fit[k] > 0.5) != (p_c302[k] > 0.5):
            d["to_exc" if p_fit[k] > 0.5 else "to_inh"] += 1
    flip_rows = sorted(((pre, d) for pre, d in by_pre.items() if d["to_exc"] + d["to_inh"]),
                       key=lambda x: -(x[1]["to_exc"] + x[1]["to_inh"]))
    csv = ["presynaptic,transmitter,nt_class,n_connections,flipped_to_exc,flipped_to_inh,nt_consistent_after"]
    md = [f"# Polarity flips vs c302 ({metrics['n_polarity_flips']} of {metrics['n_connections']} connections)", "",
          "| presynaptic | transmitter (Wang 2024) | NT prior | connections | → exc | → inh |", "|---|---|---|---|---|---|"]
    for pre, d in flip_rows:
        csv.append(f"{pre},{d['ident']},{d['cls']},{d['n']},{d['to_exc']},{d['to_inh']},"
                   f"{'' if d['cls'] == 'free' else int((d['cls'] == 'exc' and d['to_inh'] == 0) or (d['cls'] == 'inh' and d['to_exc'] == 0))}")
        md.append(f"| {pre} | {d['ident']} | {d['cls']} | {d['n']} | {d['to_exc']} | {d['to_inh']} |")
    if not flip_rows:
        md.append("| (none) | | | | | |")
    atomic_write_text(run_dir / "polarity_flips.csv", "\n".join(csv) + "\n")
    atomic_write_text(run_dir / "polarity_flips.md", "\n".join(md) + "\n")
    # --- params with provenance
    atomic_write_json(run_dir / "loss_history.json", hist)
    np.savez(run_dir / "fitted_params.npz", **{k: np.asarray(v) for k, v in params.items()})
    _save_params_with_registry(su, fitted, metrics, run_dir)
    if cfg.figures:
        try:
            _figures(su, hist, resp_fit, resp_c302, stim_all, run_dir)
        except Exception as e:  # figures never lose a run
            log.warning("figures failed: %s", e)


def _save_params_with_registry(su: _Setup, fitted: NetworkModel, metrics: dict, run_dir: Path) -> None:
    """``params.json`` in owjax's parameter-file format with the component registry (auto_fitted
    provenance: experiment, data, loss, date, git commit), loadable by ``owjax.simulate params=``."""
    from owjax.core.checkpoint import atomic_write_json

    cfg = su.cfg
    data = (f"Randi et al. 2023 signal propagation atlas (doi:{su.atlas.doi}), strain {cfg.strain}, "
            f"{metrics['n_pairs_used']} {cfg.pairs} pairs (q<{cfg.q_max}) of {len(su.train)} training stimulations; "
            "Wang et al. 2024 transmitter identities")
    loss = (f"{cfg.loss} on atlas responses + {cfg.lambda_nt}·NT consistency (Wang 2024) + "
            f"{cfg.lambda_w}·L2 of the per-connection weight parameters (towards c302)")
    try:
        from owjax.fitting.params import ParameterSpace, save_param_file
        from owjax.fitting.registry import Registry, auto_fitted_provenance

        e_lo, e_hi = _erev_range(su.model)
        blocks = {
            "synaptic_weights": dict(leaf="graded.weight", groupby="connection", transform="softplus",
                                     bounds=[0.0, None], init=np.asarray(fitted.graded.weight, np.float64).tolist(),
                                     description="chemical synapse weight (c302 synapse-count units), fitted to Randi 2023"),
            "synaptic_polarity": dict(leaf="graded.erev_mV", groupby="connection", transform="sigmoid",
                                      bounds=[e_lo - 1e-3, e_hi + 1e-3],
                                      init=np.asarray(fitted.graded.erev_mV, np.float64).tolist(),
                                      description="relaxed polarity as reversal potential E_inh + p_exc (E_exc - E_inh)"),
        }
        if cfg.fit_gaps:
            blocks["gap_weights"] = dict(leaf="gaps.weight", groupby="connection", transform="softplus",
                                         bounds=[0.0, None], init=np.asarray(fitted.gaps.weight, np.float64).tolist())
        space = ParameterSpace(su.model, blocks)
        raw = space.init_raw(dtype=su.model.dtype)
        prov = auto_fitted_provenance(experiment="synapse_polarity", data=data, loss=loss, run_dir=run_dir,
                                      optimizer=f"adam {metrics['n_steps']} steps, lr {cfg.lr}, batch {cfg.batch_size}",
                                      seed=cfg.seed)
        registry = Registry.for_model(su.model, parameter_set=cfg.parameter_set).with_fit(space, raw, prov)
        save_param_file(run_dir / "params.json", su.model, space, raw, registry=registry.to_dict(),
                        metadata=dict(experiment="synapse_polarity", date=prov.details["date"],
                                      git_commit=prov.details["git_commit"], source="auto-fitted", data=data,
                                      loss=loss, test_r=metrics["test_r"]))
    except Exception as e:  # registry machinery unavailable or changed: a plain JSON with the same provenance
        log.warning("parameter file with registry failed (%s); writing a plain JSON", e)
        from owjax.fitting.registry import git_commit
        import datetime as _dt

        atomic_write_json(run_dir / "params.json", dict(
            source="auto-fitted", experiment="synapse_polarity", data=data, loss=loss,
            date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), git_commit=git_commit(),
            connections=list(fitted.graded_names),
            weight=np.asarray(fitted.graded.weight, np.float64).tolist(),
            erev_mV=np.asarray(fitted.graded.erev_mV, np.float64).tolist(),
            gap_connections=list(fitted.gap_names), gap_weight=np.asarray(fitted.gaps.weight, np.float64).tolist(),
        ))


def plot_loss_curves(hist: Mapping, lambda_nt: float, lambda_w: float, path: str | Path, window: int = 10) -> None:
    """Loss per term against the Adam step; the minibatch loss is noisy (every step sees other
    stimulations), so a running mean over ``window`` steps is drawn on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from owjax.core.checkpoint import atomic_savefig

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(1, len(hist["loss"]) + 1)
    if len(x):
        ax.plot(x, hist["atlas"], lw=0.7, c="C0", alpha=0.45, label="atlas (minibatch)")
        w = max(1, min(window, len(x)))
        run = np.convolve(hist["atlas"], np.ones(w) / w, mode="valid")
        ax.plot(x[w - 1:], run, lw=2, c="C0", label=f"atlas, mean of {w} steps")
        tot = np.convolve(hist["loss"], np.ones(w) / w, mode="valid")
        ax.plot(x[w - 1:], tot, lw=1.5, c="k", label=f"total, mean of {w} steps")
        ax2.plot(x, np.asarray(hist["nt"]) * lambda_nt, lw=1.2, c="C1", label="λ_nt · NT consistency")
        ax2.plot(x, np.asarray(hist["reg"]) * lambda_w, lw=1.2, c="C2", label="λ_w · L2 to c302")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.set_title("data term (scale-invariant)")
    ax2.set_xlabel("Adam step")
    ax2.set_yscale("log")
    ax2.legend(fontsize=8)
    ax2.set_title("penalties")
    fig.suptitle("synapse_polarity: loss per term")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def _figures(su, hist, resp_fit, resp_c302, stim_all, run_dir: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from owjax.core.checkpoint import atomic_savefig

    cfg = su.cfg
    plot_loss_curves(hist, cfg.lambda_nt, cfg.lambda_w, run_dir / "loss_curves.png")
    # response matrices: atlas vs simulated (fitted, c302), train | test, significant pairs only
    rows = {n: k for k, n in enumerate(stim_all)}
    fig, axes = plt.subplots(3, 2, figsize=(13, 13), gridspec_kw=dict(width_ratios=[len(su.train), len(su.test)]))
    for col, (split, names) in enumerate((("train", su.train), ("test", su.test))):
        t, w = response_targets(su.atlas, su.model, names, cfg, q_max=cfg.q_max)
        resp_rows = np.nonzero((w > 0).any(axis=0))[0]
        mats = [("atlas ΔF/F (q<%g)" % cfg.q_max, t)]
        for lab, R in (("fitted", resp_fit), ("c302", resp_c302)):
            s = R[[rows[n] for n in names]]
            m = w > 0
            a = (t[m] * s[m]).sum() / max((s[m] ** 2).sum(), 1e-30)
            mats.append((f"{lab} (×{a:.3g})", a * s))
        for row, (lab, M) in enumerate(mats):
            ax = axes[row, col]
            show = np.where(w > 0, M, np.nan)[:, resp_rows].T
            ax.imshow(show, aspect="auto", cmap="RdBu_r", vmin=-0.6, vmax=0.6, interpolation="nearest")
            ax.set_title(f"{split}: {lab}", fontsize=9)
            if len(names) <= 60:
                ax.set_xticks(range(len(names)), names, rotation=90, fontsize=5)
            if len(resp_rows) <= 120:
                ax.set_yticks(range(len(resp_rows)), [su.model.cell_names[i] for i in resp_rows], fontsize=4)
    fig.suptitle("responding neuron (rows) to stimulated neuron (columns); blank = pair not used")
    fig.tight_layout()
    atomic_savefig(fig, run_dir / "response_matrices.png", dpi=110)
    plt.close(fig)
    # scatter
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, (split, names) in zip(axes, (("train", su.train), ("test", su.test))):
        t, w = response_targets(su.atlas, su.model, names, cfg, q_max=cfg.q_max)
        m = w > 0
        for lab, R, c in (("c302", resp_c302, "0.6"), ("fitted", resp_fit, "C3")):
            s = R[[rows[n] for n in names]][m]
            a = (t[m] * s).sum() / max((s ** 2).sum(), 1e-30)
            r = np.corrcoef(s, t[m])[0, 1] if m.sum() > 2 and np.std(s) > 0 else float("nan")
            ax.scatter(t[m], a * s, s=6, c=c, alpha=0.6, label=f"{lab} r={r:.2f}")
        ax.axhline(0, c="k", lw=0.5)
        ax.axvline(0, c="k", lw=0.5)
        ax.set_xlabel("atlas ΔF/F")
        ax.set_ylabel("simulated response (best scale)")
        ax.set_title(split)
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, run_dir / "response_scatter.png", dpi=110)
    plt.close(fig)


# ============================================================================ owjax.fit adapter
try:
    from owjax.fitting.tasks.base import AbstractExperiment, FitProblem
except Exception:  # pragma: no cover - the fit framework is optional for the library entry point
    AbstractExperiment = object  # type: ignore
    FitProblem = None  # type: ignore


class SynapsePolarity(AbstractExperiment):  # type: ignore[misc]
    """``owjax.fit`` experiment kind ``synapse_polarity`` (full batch over the training stimulations).

    The parameter blocks come from the YAML (``graded.weight`` softplus per connection,
    ``graded.erev_mV`` sigmoid in (E_inh − ε, E_exc + ε) per connection = the relaxed polarity); the
    loss terms are ``atlas`` and ``nt`` (computed from the fitted model's reversal potentials). The
    run-level options live under ``synapse_polarity:`` with the keys of :class:`SynapsePolarityConfig`.
    Minibatching, per-presynaptic polarity and the global gains are only in
    :func:`run_synapse_polarity` (the ``owjax.fit`` loop passes the same data every step).
    """

    kind = "synapse_polarity"
    #: ``python -m owjax.fit +experiment=synapse_polarity`` calls :meth:`run` (the minibatch runner with
    #: global gains, per-presynaptic polarity and the c302/shuffled baselines) instead of the generic
    #: loop over :meth:`build`'s problem, which stays available to library users.
    runs_own_loop: ClassVar[bool] = True

    def run(self, cfg: Mapping, run_dir: Path) -> dict:
        """Run the experiment from an ``owjax.fit`` configuration (plain dict) in ``run_dir``.

        ``synapse_polarity:`` holds :class:`SynapsePolarityConfig` fields; ``dtype``, ``seed``,
        ``optim.{steps, lr, final_lr_fraction, clip_norm}``, ``checkpoint.every``, ``figures`` and
        ``progress`` of the fit configuration map onto the corresponding fields. ``resume=false``
        discards a checkpoint in ``run_dir``.

        Returns:
            The metrics (``run_dir/metrics.json``) plus ``final_loss`` (the full training objective).
        """
        d = dict(cfg.get("synapse_polarity") or {})
        optim = dict(cfg.get("optim") or {})
        if str(optim.get("name", "adam")) != "adam" or str(optim.get("schedule", "cosine")) != "cosine":
            raise ValueError("synapse_polarity runs Adam with a cosine schedule; allowed: optim.name=adam, "
                             f"optim.schedule=cosine (got {optim.get('name')!r}, {optim.get('schedule')!r})")
        if int((optim.get("lbfgs") or {}).get("steps", 0) or 0):
            raise ValueError("synapse_polarity has no L-BFGS stage (minibatch losses); set optim.lbfgs.steps=0")
        top = {"steps": "optim.steps", "lr": "optim.lr", "final_lr_fraction": "optim.final_lr_fraction",
               "clip_norm": "optim.clip_norm", "checkpoint_every": "checkpoint.every", "figures": "figures",
               "dtype": "dtype", "seed": "seed"}
        dup = sorted(k for k in d if k in top)
        if dup:
            raise ValueError("set " + ", ".join(f"{top[k]} instead of synapse_polarity.{k}" for k in dup))
        for k in ("steps", "lr", "final_lr_fraction", "clip_norm"):
            if optim.get(k) is not None:
                d[k] = optim[k]
        if (cfg.get("checkpoint") or {}).get("every") is not None:
            d["checkpoint_every"] = int(cfg["checkpoint"]["every"])
        if cfg.get("figures") is not None:
            d["figures"] = bool(cfg["figures"])
        d["dtype"] = str(cfg.get("dtype", "float32"))
        d["seed"] = int(cfg.get("seed", 0))
        spc = SynapsePolarityConfig.from_dict(d)
        run_dir = Path(run_dir)
        if not cfg.get("resume", True):
            (run_dir / "checkpoint.npz").unlink(missing_ok=True)
        m = run_synapse_polarity(spc, run_dir, progress=bool(cfg.get("progress", True)))
        m = dict(m, final_loss=float(m["final_train_loss"]))
        return m

    def build(self, cfg: Mapping, seed: int, run_dir: Path | None = None):
        from owjax.fitting.params import ParameterSpace

        d = dict(cfg.get("synapse_polarity") or {})
        d.setdefault("dtype", str(cfg.get("dtype", "float32")))
        d["seed"] = seed
        spc = SynapsePolarityConfig.from_dict(d)
        su = _setup(spc)
        space = ParameterSpace(su.model, dict(cfg["parameters"]), seed=seed)
        tgt, wts = response_targets(su.atlas, su.model, su.train, spc)
        e_lo, e_hi = _erev_range(su.model)
        data = dict(amps=stimulus_amplitudes(su.model, su.train, spc.protocol.amplitude_pA),
                    target=jnp.asarray(tgt, su.model.dtype), weight=jnp.asarray(wts, su.model.dtype),
                    nt=jnp.asarray(su.nt_codes), y0=su.y0)

        def terms(m, data):
            r = simulate_responses(m, data["amps"], data["y0"], spc.protocol)
            p = jnp.clip((m.graded.erev_mV - e_lo) / (e_hi - e_lo), 0.0, 1.0)
            return dict(atlas=atlas_loss(r, data["target"], data["weight"], spc.loss),
                        nt=nt_penalty(p, data["nt"], spc.nt_weight_gaba, spc.nt_weight_ach))

        def report(problem, raw0, raw, run_dir, figures):
            fitted = space.apply(su.model, raw)
            p = np.clip((np.asarray(fitted.graded.erev_mV) - e_lo) / (e_hi - e_lo), 0, 1)
            stim_all = su.train + su.test
            c_data, defined = atlas_correlation_matrix(su.atlas, clip=spc.clip, min_common=spc.corr_min_common)
            rep, _ = _model_report(su, "fitted", fitted, p, stim_all, c_data, defined)
            base, _ = _model_report(su, "c302", su.model, polarity_of(su.model).astype(float), stim_all, c_data,
                                    defined, recompute_rest=False)
            return dict(test_r=rep["test_r"], test_sign_agreement=rep["test_sign_agreement"],
                        train_r=rep["train_r"], nt_consistency=rep["nt_consistency"],
                        baseline_c302_test_r=base["test_r"],
                        baseline_c302_test_sign_agreement=base["test_sign_agreement"],
                        corr_matrix_mse=rep["corr_matrix_mse"], n_train_neurons=len(su.train),
                        n_test_neurons=len(su.test), n_pairs_used=int((wts > 0).sum()))

        return FitProblem(
            model=su.model, space=space, data=data, terms=terms,
            weights=dict((cfg.get("loss") or {}).get("weights") or {"atlas": 1.0, "nt": spc.lambda_nt}),
            data_description=f"Randi 2023 signal propagation atlas ({spc.strain}), {int((wts > 0).sum())} pairs",
            loss_description=f"{spc.loss} atlas agreement + NT consistency (Wang 2024)",
            report=report, info=dict(n_train_neurons=len(su.train), n_test_neurons=len(su.test)),
        )


# ============================================================================ CLI
def _parse_value(v: str):
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def _set_dotted(d: dict, key: str, value) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = value


def main(argv: list[str] | None = None) -> int:
    """``python -m owjax.fitting.tasks.synapse_polarity [--ci] [--out DIR] [key=value ...]``

    ``key=value`` sets any :class:`SynapsePolarityConfig` field (JSON values; ``protocol.amplitude_pA=5``
    for nested ones). Re-running the same command in the same ``--out`` resumes the fit.
    """
    ap = argparse.ArgumentParser(prog="python -m owjax.fitting.tasks.synapse_polarity", description=__doc__.split("\n")[0])
    ap.add_argument("--ci", action="store_true", help="the CI-sized version (6 stimulated neurons, 4 steps)")
    ap.add_argument("--out", default=None, help="run directory (default outputs/synapse_polarity[_ci])")
    ap.add_argument("-q", "--quiet", action="store_true")
    ap.add_argument("overrides", nargs="*", help="key=value")
    a = ap.parse_args(argv)
    d: dict = {}
    if a.ci:
        d = json.loads(json.dumps(CI_OVERRIDES))
    for o in a.overrides:
        if "=" not in o:
            ap.error(f"override {o!r} is not key=value")
        k, v = o.split("=", 1)
        _set_dotted(d, k, _parse_value(v))
    logging.basicConfig(level=logging.WARNING if a.quiet else logging.INFO, format="%(message)s")
    try:
        cfg = SynapsePolarityConfig.from_dict(d)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = a.out or ("outputs/synapse_polarity_ci" if a.ci else "outputs/synapse_polarity")
    m = run_synapse_polarity(cfg, out, progress=not a.quiet)
    keys = ("test_r", "test_sign_agreement", "nt_consistency", "train_r", "baseline_c302_test_r",
            "baseline_c302_test_sign_agreement", "shuffled_test_r", "corr_matrix_mse", "n_train_neurons",
            "n_test_neurons", "n_pairs_used")
    print(json.dumps({k: m[k] for k in keys}, indent=1))
    print(f"outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

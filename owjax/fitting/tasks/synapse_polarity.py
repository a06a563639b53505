"""``synapse_polarity``: fit synaptic weights and E/I polarities of the whole c302 network to the
Randi et al. 2023 signal-propagation atlas (DD017's first application; Zhao et al. 2024 on 302 neurons).

Model: c302's C1 ``Full`` network, neurons only (302 cells; body-wall muscles do not feed back onto
neurons), float32 by default. Protocol (:mod:`owjax.reference.atlas_protocol`): start from the resting state,
inject a current pulse into one neuron, summarise every neuron's readout (Ca by default) as the
window mean of its change, scaled; one trial per stimulated atlas neuron.

Parameters (``cfg.conductance_sharing=connection``, the first round; ``cfg.polarity`` = ``connection``
or ``presynaptic``):

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
* ``resettle`` (option): every step first settles the current network without stimulus for
  ``settle_ms`` from c302's resting state (the gradient stopped through the settling,
  :func:`~owjax.reference.atlas_protocol.settled_state`) and starts its trials there, as the
  evaluation does; about twice the cost of a step.
* ``rest`` (``lambda_rest`` > 0) — the network must stay at rest without a stimulus: one
  unstimulated trial per step from the same resting state, its response statistic's mean square
  relative to the stimulated trials'. The fit starts from c302's resting state and does not settle the
  fitted network again, so without this term stronger excitation can make the network drift or
  ignite on its own — a common positive "response" in every trial, which agrees with the atlas'
  mostly positive responses — and the evaluation (which settles the fitted network) then finds no
  resting state.

Shared parameters (``cfg.conductance_sharing`` = ``class``, ``presynaptic`` or ``nt``): one weight
multiplier ``m(ρ_k)`` and one relaxed sign ``σ(θ_k)`` per *group* k of presynaptic neurons — a neuron
class (L/R and D/V homologues and numbered motor neurons tied), a neuron, or a transmitter class, the
groups of the rate models (:mod:`.synapse_polarity_rate`) — shared by all of the group's outgoing
chemical connections, the global gains, and one gap-junction gain (no per-connection gap weights):
a few hundred (class) or a handful (nt) of parameters instead of ≈ 5 600, so the fit cannot memorise
the training stimulations connection by connection. θ_k starts at the majority c302 sign of the
group; ``reg`` is then the L2 of the ρ_k.

Held-out evaluation: stimulated neurons are split into train and test *by neuron* (cfg.split
``bilateral`` keeps left/right homologues on the same side, so AVAR cannot leak AVAL's answer);
with ``cfg.folds`` = K ≥ 2 the split is fold ``cfg.fold`` of a K-fold cross-validation
(:func:`kfold_stimulated`), and ``experiments/synapse_polarity/crossval.py`` runs the K folds and pools
their held-out predictions (every run writes them to ``responses.npz``).
Metrics on the test stimulations: Pearson r between simulated and atlas responses over the q < q_max
pairs, sign agreement (a simulated response smaller than ``sign_eps`` × the largest |response| of the
trial set counts as no response, i.e. no sign), NT consistency, for the fitted weights, c302's
weights (baseline) and a degree-preserving shuffle of c302's connectome (control). Zhao et al.'s
metric: MSE between the correlation matrix of simulated spontaneous activity and one implied by the
atlas, see :func:`atlas_correlation_matrix` and :func:`spontaneous_correlation`.

Runs on the one training loop (:mod:`owjax.fitting.loop`): ``python -m owjax.fit
+experiment=synapse_polarity`` (``run=ci`` for the CI size), configuration in
``owjax/conf/experiment/synapse_polarity.yaml``. :class:`SynapsePolarity` (``kind =
"synapse_polarity"``) builds a :class:`SynapsePolarityTask` (the minibatch task above) — or, when
the configuration has ``parameters:`` blocks, a full-batch
:class:`~owjax.fitting.tasks.base.FitProblem` on those generic parameter blocks. The loop owns the
optimiser (``optim:``), checkpoints and resume, the wall-time budget (``max_fit_wall_s``),
``loss_history.json``, ``metrics.json`` and ``loss_curve.png``; the task's report adds the held-out
evaluation and its baselines (:mod:`.synapse_polarity_report`), the data and metric functions are in
:mod:`.synapse_polarity_metrics`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from owjax.core.checkpoint import atomic_write_json
from owjax.fitting.task import AbstractFitTask
from owjax.fitting.tasks.base import AbstractExperiment, FitProblem
from owjax.fitting.tasks.synapse_polarity_ceiling import ceiling_metrics, held_out_statistics, save_held_out_responses
from owjax.fitting.tasks.synapse_polarity_metrics import (
    NT_CLASSES,
    atlas_correlation_matrix,
    atlas_loss,
    corr_matrix_mse,
    erev_range,
    nt_class_of,
    nt_classes,
    nt_consistency,
    nt_penalty,
    polarity_of,
    presynaptic_names,
    response_metrics,
    response_targets,
    kfold_stimulated,
    shuffle_connectome,
    spontaneous_correlation,
    split_stimulated,
)
from owjax.neural.network import NetworkModel
from owjax.neural.spec import NetworkSpec
from owjax.reference.atlas import SignalPropagationAtlas, load_atlas
from owjax.reference.atlas_protocol import (
    AtlasProtocol,
    protocol_model,
    responses_jit,
    resting_state,
    settled_state,
    simulate_responses,
    stimulus_amplitudes,
)

log = logging.getLogger("owjax.synapse_polarity")

_settled_jit = eqx.filter_jit(settled_state)

__all__ = [
    "SynapsePolarityConfig",
    "presynaptic_groups",
    "expand_shared",
    "LOOP_SETTINGS",
    "config_from_fit",
    "Setup",
    "setup",
    "SynapsePolarityTask",
    "SynapsePolarity",
    "softplus_multiplier",
    "bounded_multiplier",
    "weight_multiplier",
    "init_params",
    "apply_params",
    "p_exc_of",
    # re-exported from synapse_polarity_metrics
    "NT_CLASSES",
    "nt_class_of",
    "nt_classes",
    "nt_penalty",
    "nt_consistency",
    "polarity_of",
    "split_stimulated",
    "kfold_stimulated",
    "shuffle_connectome",
    "response_targets",
    "atlas_loss",
    "response_metrics",
    "atlas_correlation_matrix",
    "spontaneous_correlation",
    "corr_matrix_mse",
]

LN2 = math.log(2.0)


# ============================================================================ configuration
#: settings the loop owns: ``synapse_polarity.<key>`` is refused with a pointer to the loop's key
LOOP_SETTINGS = {"steps": "optim.steps", "lr": "optim.lr", "final_lr_fraction": "optim.final_lr_fraction",
                 "clip_norm": "optim.clip_norm", "checkpoint_every": "checkpoint.every", "figures": "figures",
                 "dtype": "dtype", "seed": "seed", "max_fit_wall_s": "max_fit_wall_s"}


@dataclass
class SynapsePolarityConfig:
    """The task's settings (the ``synapse_polarity:`` block; see the module docstring), checked by
    :meth:`from_dict`. ``dtype`` and ``seed`` come from the run's top-level ``dtype`` and ``seed``;
    optimiser, checkpoint, figure and wall-time settings belong to the loop (:data:`LOOP_SETTINGS`)."""

    model: str = "c302"                  # c302 (conductance-based C1) | rate | rate_extrasynaptic
    parameter_set: str = "C1"
    dtype: str = "float32"
    strain: str = "wt"
    pairs: str = "significant"          # significant (q < q_max) | observed (all observed pairs)
    q_max: float = 0.05
    min_occ: int = 1
    weighting: str = "uniform"           # uniform | occ | sqrt_occ
    clip: float = 2.0                    # atlas ΔF/F clipped to ±clip
    non_response_weight: float = 0.0     # weight of the atlas' non-responses (q_eq < q_eq_max) as zero targets (0: unused)
    q_eq_max: float = 0.05
    kernel_weight: float = 0.0           # rate models, > 0: the atlas' response kernels (time courses) join the loss
    window_weight: float = 1.0           # rate models: weight of the window-mean responses (0 with kernel_weight > 0: time courses instead)
    test_fraction: float = 0.25
    split: str = "bilateral"             # bilateral | neuron
    folds: int = 0                       # >= 2: cross-validation, this run holds out fold `fold` (test_fraction unused)
    fold: int = 0
    max_stimulated: int | None = None    # use at most this many stimulated neurons (CI)
    stimulated: list | None = None       # or exactly these (names)
    seed: int = 0
    polarity: str = "connection"         # connection | presynaptic (conductance_sharing=connection)
    conductance_sharing: str = "connection"  # connection | class | presynaptic | nt (model=c302: per-group weights and signs)
    theta0: float = 4.0
    fit_gaps: bool = True
    global_gain: bool = True
    loss: str = "scaled_mse"             # scaled_mse | pearson | mixed
    lambda_nt: float = 1.0
    nt_weight_gaba: float = 1.0
    nt_weight_ach: float = 0.5
    lambda_w: float = 1e-3
    lambda_rest: float = 0.0             # penalty on the unstimulated network's drift from the resting state
    gain_bound: float | None = None      # > 1: every weight multiplier bounded to [1/gain_bound, gain_bound]
    resettle: bool = False               # start each step's trials from the fitted network's own resting state
    batch_size: int = 12                 # training stimulations per step
    sign_eps: float = 1e-3
    shuffle_seed: int = 1
    spontaneous_ms: float = 1000.0
    spontaneous_rate_hz: float = 4.0     # random pulses per neuron per second
    spontaneous_pulse_ms: float = 20.0
    spontaneous_amplitude_pA: float = 10.0
    spontaneous_readout: str = "v"       # Zhao et al. compared membrane potentials
    spontaneous_dt_out_ms: float = 5.0
    corr_min_common: int = 5             # stimulations two neurons must share for a data correlation
    protocol: AtlasProtocol = field(default_factory=lambda: AtlasProtocol(readout="v"))
    # rate models (owjax.fitting.tasks.synapse_polarity_rate); times in membrane time constants
    sharing: str = "class"               # class | presynaptic | nt (groups of presynaptic neurons sharing gain and sign)
    rate_excitability: bool = False      # fit an input gain per responding neuron class
    extrasynaptic: list = field(default_factory=lambda: ["ripoll_mid", "bentley_ma"])
    rate_duration: float = 20.0
    rate_pulse: float = 10.0
    rate_tau_ext: float = 5.0
    rate_dt: float = 0.5
    rate_tau_s: float = 0.5              # seconds per membrane time constant (kernel_weight > 0: the atlas' time axis)
    rate_chem_gain0: float = 0.5         # initial chemical coupling (× spectral radius)
    rate_gap_gain0: float = 0.5
    control_steps: int = 300             # Adam steps of the shuffled-connectome control fit
    control_lr: float = 0.05

    @classmethod
    def from_dict(cls, d: Mapping | None) -> "SynapsePolarityConfig":
        d = dict(d or {})
        loop = sorted(k for k in d if k in LOOP_SETTINGS and k not in ("dtype", "seed"))
        if loop:
            raise ValueError("these are the fitting loop's settings: set "
                             + ", ".join(f"{LOOP_SETTINGS[k]} instead of synapse_polarity.{k}" for k in loop))
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
                       spontaneous_readout=("v", "ca"), model=("c302", "rate", "rate_extrasynaptic"),
                       sharing=("class", "presynaptic", "nt"),
                       conductance_sharing=("connection", "class", "presynaptic", "nt"))
        for k, allowed in choices.items():
            if getattr(self, k) not in allowed:
                raise ValueError(f"synapse_polarity.{k}={getattr(self, k)!r}; allowed: {list(allowed)}")
        if self.folds != 0 and not (self.folds >= 2 and 0 <= self.fold < self.folds):
            raise ValueError(f"synapse_polarity: cross-validation needs folds >= 2 and 0 <= fold < folds "
                             f"(or folds=0: one split by test_fraction); got folds={self.folds}, fold={self.fold}")
        if self.folds == 0 and self.fold != 0:
            raise ValueError(f"synapse_polarity.fold={self.fold} needs synapse_polarity.folds >= 2")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"synapse_polarity.test_fraction must be in (0, 1), got {self.test_fraction}")
        from owjax.neural.extrasynaptic import EXTRASYNAPTIC_SOURCES

        bad = [x for x in (self.extrasynaptic or []) if x not in EXTRASYNAPTIC_SOURCES]
        if bad or (self.model == "rate_extrasynaptic" and not self.extrasynaptic):
            raise ValueError(f"synapse_polarity.extrasynaptic={self.extrasynaptic!r}: needs one or more of "
                             f"{list(EXTRASYNAPTIC_SOURCES)}")
        for k in ("rate_duration", "rate_pulse", "rate_tau_ext", "rate_dt", "rate_tau_s", "control_lr"):
            if not getattr(self, k) > 0:
                raise ValueError(f"synapse_polarity.{k} must be positive, got {getattr(self, k)}")
        if self.rate_pulse > self.rate_duration or self.rate_dt > self.rate_pulse:
            raise ValueError(f"synapse_polarity: need rate_dt ({self.rate_dt}) <= rate_pulse ({self.rate_pulse}) "
                             f"<= rate_duration ({self.rate_duration})")
        if not (self.non_response_weight >= 0.0 and 0.0 < self.q_eq_max <= 1.0):
            raise ValueError(f"synapse_polarity: need non_response_weight >= 0 (got {self.non_response_weight}) "
                             f"and 0 < q_eq_max <= 1 (got {self.q_eq_max})")
        if not self.kernel_weight >= 0.0:
            raise ValueError(f"synapse_polarity.kernel_weight must be >= 0, got {self.kernel_weight}")
        if not self.window_weight >= 0.0 or (self.window_weight == 0.0 and self.kernel_weight == 0.0):
            raise ValueError(f"synapse_polarity: need window_weight >= 0 (got {self.window_weight}) and the window "
                             f"means or the kernels in the loss (window_weight > 0 or kernel_weight > 0; got "
                             f"kernel_weight={self.kernel_weight})")
        if self.window_weight != 1.0 and self.model not in ("rate", "rate_extrasynaptic"):
            raise ValueError(f"synapse_polarity.window_weight applies to the rate models; got model={self.model!r}")
        if self.kernel_weight > 0 and self.model not in ("rate", "rate_extrasynaptic"):
            raise ValueError(f"synapse_polarity.kernel_weight > 0 (the response kernels) needs a rate model "
                             f"(model=rate | rate_extrasynaptic); got model={self.model!r}")
        if self.control_steps < 0:
            raise ValueError(f"synapse_polarity.control_steps must be >= 0, got {self.control_steps}")
        if self.gain_bound is not None and not float(self.gain_bound) > 1.0:
            raise ValueError(f"synapse_polarity.gain_bound must be > 1 (or null: unbounded), got {self.gain_bound}")
        if not self.lambda_rest >= 0.0:
            raise ValueError(f"synapse_polarity.lambda_rest must be >= 0, got {self.lambda_rest}")
        if self.batch_size < 1:
            raise ValueError(f"synapse_polarity.batch_size must be >= 1, got {self.batch_size}")
        if self.conductance_sharing != "connection" and (self.model != "c302" or self.polarity != "connection"):
            raise ValueError(
                f"synapse_polarity.conductance_sharing={self.conductance_sharing!r} shares weights and signs per "
                "presynaptic group of the conductance model: it needs model=c302 (got "
                f"{self.model!r}; the rate models use synapse_polarity.sharing) and polarity=connection (got "
                f"{self.polarity!r}; the group's sign replaces it)")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["protocol"] = self.protocol.to_dict()
        d["protocol"]["solver"] = dataclasses.asdict(self.protocol.solver)
        return d


def config_from_fit(cfg: Mapping, seed: int) -> SynapsePolarityConfig:
    """The task configuration of an ``owjax.fit`` configuration: its ``synapse_polarity:`` block with
    the run's ``dtype`` and ``seed``."""
    d = dict(cfg.get("synapse_polarity") or {})
    for k in ("dtype", "seed"):
        if k in d:
            raise ValueError(f"set {k} (top level) instead of synapse_polarity.{k}")
    d["dtype"] = str(cfg.get("dtype", "float32"))
    d["seed"] = int(seed)
    return SynapsePolarityConfig.from_dict(d)


# ============================================================================ parameters
def softplus_multiplier(u):
    """m(u) = softplus(u)/ln 2: positive, m(0) = 1, ≈ linear for u ≫ 1, ≈ exp(u)/ln 2 for u ≪ 0."""
    return jax.nn.softplus(u) / LN2


def presynaptic_groups(model: NetworkModel, sharing: str) -> tuple[np.ndarray, list[str]]:
    """Group index of every cell as a presynaptic neuron, and the group names, for
    ``conductance_sharing`` = ``class`` (neuron classes), ``presynaptic`` (one per neuron) or ``nt``
    (Wang et al. 2024 transmitter classes, :data:`NT_CLASSES`; cells without chemical output form a group
    of their own, which no connection uses)."""
    from owjax.fitting.tasks.synapse_polarity_rate import group_index, neuron_class

    names = list(model.cell_names)
    if sharing == "class":
        labels = [neuron_class(c, names) for c in names]
    elif sharing == "presynaptic":
        labels = names
    elif sharing == "nt":
        codes = np.full(model.n_cells, -1, dtype=np.int64)
        codes[np.asarray(model.graded.pre)] = nt_classes(presynaptic_names(model))[0]
        labels = [NT_CLASSES[c] if c >= 0 else "no_chemical_output" for c in codes]
    else:
        raise ValueError(f"presynaptic_groups: sharing={sharing!r}; allowed: ['class', 'presynaptic', 'nt']")
    return group_index(labels)


def bounded_multiplier(u, bound: float):
    """b(u) = B^tanh(u / ln B): a weight multiplier in [1/B, B], b(0) = 1, slope 1 at 0 (``gain_bound``)."""
    lb = math.log(bound)
    return jnp.exp(lb * jnp.tanh(u / lb))


def weight_multiplier(gain_bound: float | None):
    """The map from a weight parameter to its multiplier: :func:`softplus_multiplier`, or
    :func:`bounded_multiplier` in [1/B, B] with ``gain_bound`` = B."""
    return softplus_multiplier if gain_bound is None else (lambda u: bounded_multiplier(u, gain_bound))


def init_params(model: NetworkModel, cfg: SynapsePolarityConfig) -> dict[str, Array]:
    """Unconstrained parameters whose :func:`apply_params` reproduces c302 (to within theta0); with
    shared parameters (``cfg.conductance_sharing`` ≠ ``connection``) per presynaptic group (expand
    them with :func:`expand_shared` before :func:`apply_params`)."""
    dt = model.dtype
    exc = polarity_of(model)
    if cfg.conductance_sharing != "connection":
        group_of_cell, names = presynaptic_groups(model, cfg.conductance_sharing)
        grp = group_of_cell[np.asarray(model.graded.pre)]
        frac = np.bincount(grp, weights=exc, minlength=len(names)) / np.maximum(np.bincount(grp, minlength=len(names)), 1)
        p = dict(w=jnp.zeros(len(names), dt), theta=jnp.asarray(np.where(frac >= 0.5, cfg.theta0, -cfg.theta0), dt))
        if cfg.global_gain:
            p["gain"] = jnp.zeros((), dt)
        if cfg.fit_gaps:
            p["gap_gain"] = jnp.zeros((), dt)
        return p
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


def expand_shared(params: Mapping, group_of_cell: np.ndarray | None) -> dict[str, Array]:
    """Per-group weight and sign parameters (:func:`init_params` with shared parameters) as one value
    per presynaptic cell, which :func:`apply_params` and :func:`p_exc_of` take; ``group_of_cell``
    None (per-connection parameters): ``params`` unchanged."""
    if group_of_cell is None:
        return dict(params)
    g = jnp.asarray(group_of_cell)
    return {**params, "w": params["w"][g], "theta": params["theta"][g]}


def p_exc_of(params: Mapping, model: NetworkModel):
    """p_exc per connection (gathers per-presynaptic θ when needed)."""
    theta = params["theta"]
    if theta.shape != model.graded.weight.shape:
        theta = theta[model.graded.pre]
    return jax.nn.sigmoid(theta)


def apply_params(base: NetworkModel, params: Mapping, gain_bound: float | None = None) -> NetworkModel:
    """The model with fitted weights and relaxed polarities (pure; differentiable). ``gain_bound``:
    every weight multiplier is :func:`bounded_multiplier` (in [1/B, B]) instead of the softplus one."""
    mult = weight_multiplier(gain_bound)
    e_inh, e_exc = erev_range(base)
    if e_inh == e_exc:  # a network without inhibitory synapses: use c302's C1 values
        e_inh, e_exc = -70.0, 0.0
    rho = params["w"]
    if rho.shape != base.graded.weight.shape:  # one value per presynaptic cell (expand_shared)
        rho = rho[base.graded.pre]
    w = base.graded.weight * mult(rho)
    if "gain" in params:
        w = w * mult(params["gain"])
    erev = e_inh + p_exc_of(params, base) * (e_exc - e_inh)
    m = eqx.tree_at(lambda m: (m.graded.weight, m.graded.erev_mV), base, (w, erev.astype(base.dtype)))
    if "gap" in params or "gap_gain" in params:  # per-connection gap weights and/or one gap gain
        gw = base.gaps.weight * (mult(params["gap"]) if "gap" in params else 1.0)
        if "gap_gain" in params:
            gw = gw * mult(params["gap_gain"])
        m = eqx.tree_at(lambda m: m.gaps.weight, m, gw)
    return m


# ============================================================================ setup
@dataclass
class Setup:
    """The data of a run: network, atlas, resting state, train/test split, NT classes."""

    cfg: SynapsePolarityConfig
    spec: NetworkSpec
    model: NetworkModel
    atlas: SignalPropagationAtlas
    y0: Any
    train: list
    test: list
    nt_codes: np.ndarray
    nt_ident: list


def setup(cfg: SynapsePolarityConfig, resting: bool = True) -> Setup:
    """Load c302 C1 ``Full`` and the atlas, choose the stimulations, split them, settle the network
    (``resting=False``: skip the settling, ``y0`` is None — the rate models do not need it)."""
    from owjax.core.precision import require_dtype
    from owjax.neural.c302_data import load_c302_network

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
    if cfg.folds:
        train, test = kfold_stimulated(stim, cfg.folds, cfg.fold, cfg.seed, cfg.split)
    else:
        train, test = split_stimulated(stim, cfg.test_fraction, cfg.seed, cfg.split)
    if not train or not test:
        raise ValueError(f"need stimulated neurons on both sides of the split; got train={train}, test={test}")
    y0 = resting_state(model, cfg.protocol) if resting else None
    codes, ident = nt_classes(presynaptic_names(model))
    return Setup(cfg, spec, model, atlas, y0, train, test, codes, ident)


# ============================================================================ the task
class SynapsePolarityTask(AbstractFitTask):
    """Weights and relaxed polarities of c302 fitted to the atlas, on minibatches of training
    stimulations (see the module docstring).

    ``init``: :func:`init_params` (c302 itself, deterministic); ``batches(step)``: ``batch_size``
    training stimulations from a stream of shuffled epochs seeded by ``(seed, epoch)`` (host side;
    the same for a resumed run); ``loss``: ``atlas + lambda_nt·nt + lambda_w·reg``; ``objective``:
    the same on every training stimulation (``initial_loss`` / ``final_loss``); ``report``: the
    held-out evaluation with the c302 and shuffled baselines, tables and figures; ``save_outputs``:
    ``params.json`` (with the registry) and ``fitted_params.npz``.
    """

    def __init__(self, cfg: SynapsePolarityConfig):
        t0 = time.perf_counter()
        self.cfg = cfg
        self.su = su = setup(cfg)
        self.target, self.weight = response_targets(su.atlas, su.model, su.train, cfg)
        self.amps = stimulus_amplitudes(su.model, su.train, cfg.protocol.amplitude_pA)
        self.batch_size = min(cfg.batch_size, len(su.train))
        self.n_pairs_used = int((self.weight > 0).sum())
        self._nt = jnp.asarray(su.nt_codes)
        self._groups = (None if cfg.conductance_sharing == "connection"
                        else presynaptic_groups(su.model, cfg.conductance_sharing))
        self._objective_cache: dict[str, tuple[float, dict[str, float]]] = {}
        self._objective_s = 0.0  # wall time spent evaluating the full objective
        self._report: dict = {}
        self.data_description = (
            f"Randi et al. 2023 signal propagation atlas (doi:{su.atlas.doi}), strain {cfg.strain}, "
            f"{self.n_pairs_used} {cfg.pairs} pairs (q<{cfg.q_max}) of {len(su.train)} training stimulations; "
            "Wang et al. 2024 transmitter identities")
        self.loss_description = (f"{cfg.loss} on atlas responses + {cfg.lambda_nt}·NT consistency (Wang 2024) + "
                                 f"{cfg.lambda_w}·L2 of the per-connection weight parameters (towards c302)")
        self.info = dict(n_train_neurons=len(su.train), n_test_neurons=len(su.test), n_pairs_used=self.n_pairs_used,
                         batch_size=self.batch_size, conductance_sharing=cfg.conductance_sharing)
        if self._groups is not None:
            self.info["n_pre_groups"] = len(self._groups[1])
        self.setup_s = time.perf_counter() - t0

    def network(self, params) -> NetworkModel:
        """The c302 network with the parameters ``params`` (shared ones expanded; ``gain_bound``)."""
        return apply_params(self.su.model, self.per_cell(params), self.cfg.gain_bound)

    def per_cell(self, params) -> dict[str, Array]:
        """``params`` with shared (per-group) weights and signs expanded to presynaptic cells
        (:func:`expand_shared`); per-connection parameters unchanged."""
        return expand_shared(params, None if self._groups is None else self._groups[0])

    def describe(self) -> str:
        cfg, m = self.cfg, self.su.model
        if self._groups is not None:
            return (f"synapse_polarity: one weight and one polarity per presynaptic {cfg.conductance_sharing} group "
                    f"({len(self._groups[1])} groups) for {m.graded.weight.size} chemical connections"
                    + (", a gap-junction gain" if cfg.fit_gaps else "") + (", a global gain" if cfg.global_gain else "")
                    + f"; {len(self.su.train)} training / {len(self.su.test)} test stimulations, batch {self.batch_size}")
        return (f"synapse_polarity: {m.graded.weight.size} chemical weights + polarities per {cfg.polarity}"
                + (f", {m.gaps.weight.size} gap weights" if cfg.fit_gaps else "")
                + (", global gains" if cfg.global_gain else "")
                + f"; {len(self.su.train)} training / {len(self.su.test)} test stimulations, batch {self.batch_size}")

    def init(self, key: PRNGKeyArray) -> dict[str, Array]:
        return init_params(self.su.model, self.cfg)

    def batch_indices(self, step: int) -> np.ndarray:
        """Training stimulations of ``step``: a stream of shuffled epochs, each seeded by (seed, epoch)."""
        n = len(self.su.train)
        epoch, pos = divmod(step * self.batch_size, n)
        perm = np.random.default_rng([self.cfg.seed, epoch]).permutation(n)
        perm2 = np.random.default_rng([self.cfg.seed, epoch + 1]).permutation(n)
        return np.concatenate([perm, perm2])[pos:pos + self.batch_size]

    def batches(self, step: int, key: PRNGKeyArray) -> dict[str, Array]:
        idx = self.batch_indices(step)
        return dict(amps=self.amps[idx], target=jnp.asarray(self.target[idx]), weight=jnp.asarray(self.weight[idx]))

    def _terms(self, params, amps, target, weight):
        cfg = self.cfg
        m = self.network(params)
        y0 = settled_state(m, self.su.y0, cfg.protocol) if cfg.resettle else self.su.y0
        r = simulate_responses(m, amps, y0, cfg.protocol)
        data = atlas_loss(r, target.astype(r.dtype), weight.astype(r.dtype), cfg.loss)
        drift = simulate_responses(m, jnp.zeros_like(amps[:1]), y0, cfg.protocol) if cfg.lambda_rest > 0 else None
        return self._total(params, data, r, drift)

    def _total(self, params, data, responses, drift):
        """``atlas + lambda_nt·nt + lambda_w·reg (+ lambda_rest·rest)`` and its terms, from the data term,
        the stimulated trials' responses and the unstimulated trial's (``drift``; None without
        ``lambda_rest``). Traceable; :meth:`objective` takes floats of it."""
        cfg = self.cfg
        nt = nt_penalty(p_exc_of(self.per_cell(params), self.su.model), self._nt, cfg.nt_weight_gaba, cfg.nt_weight_ach)
        reg = jnp.mean(params["w"] ** 2) + (jnp.mean(params["gap"] ** 2) if "gap" in params else 0.0)
        total, terms = data + cfg.lambda_nt * nt + cfg.lambda_w * reg, dict(atlas=data, nt=nt, reg=reg)
        if drift is not None:
            rest = jnp.mean(drift ** 2) / (jnp.mean(responses ** 2) + 1e-12)
            total, terms = total + cfg.lambda_rest * rest, dict(terms, rest=rest)
        return total, terms

    def loss(self, params, batch, key):
        return self._terms(params, batch["amps"], batch["target"], batch["weight"])

    def objective(self, params, key=None) -> tuple[float, dict[str, float]]:
        """The full objective on every training stimulation (host floats; cached per parameter values)."""
        from owjax.fitting.tasks.synapse_polarity_report import evaluate_responses

        h = hashlib.sha1(b"".join(np.asarray(v).tobytes() for _, v in sorted(params.items()))).hexdigest()
        if h not in self._objective_cache:
            t0 = time.perf_counter()
            cfg, su = self.cfg, self.su
            fitted = self.network(params)
            y0 = _settled_jit(fitted, su.y0, cfg.protocol) if cfg.resettle else su.y0
            resp = evaluate_responses(su, fitted, y0, su.train)
            data = atlas_loss(jnp.asarray(resp), jnp.asarray(self.target, resp.dtype),
                              jnp.asarray(self.weight, resp.dtype), cfg.loss)
            drift = (responses_jit(fitted, jnp.zeros_like(self.amps[:1]), y0, cfg.protocol)
                     if cfg.lambda_rest > 0 else None)
            total, terms = self._total(params, data, jnp.asarray(resp), drift)
            self._objective_cache[h] = (float(total), {k: float(v) for k, v in terms.items()})
            self._objective_s += time.perf_counter() - t0
        return self._objective_cache[h]

    def report(self, params_init, params, run_dir: Path, figures: bool) -> dict:
        from owjax.fitting.tasks import synapse_polarity_report as rp

        cfg, su = self.cfg, self.su
        t0, t_obj0 = time.perf_counter(), self._objective_s
        obj0, obj1 = self.objective(params_init), self.objective(params)
        fitted = self.network(params)
        p_fit = np.asarray(p_exc_of(self.per_cell(params), su.model))
        p_c302 = polarity_of(su.model).astype(np.float64)
        stim_all = su.train + su.test
        c_data, defined = atlas_correlation_matrix(su.atlas, clip=cfg.clip, min_common=cfg.corr_min_common)
        shuffled = shuffle_connectome(su.model, seed=cfg.shuffle_seed)
        rep_fit, resp_fit = rp.model_report(su, "fitted", fitted, p_fit, stim_all, c_data, defined)
        rep_c302, resp_c302 = rp.model_report(su, "c302", su.model, p_c302, stim_all, c_data, defined,
                                              recompute_rest=False)
        rep_shuf, resp_shuf = rp.model_report(su, "shuffled", shuffled, p_c302, stim_all, c_data, defined)
        resps = dict(fitted=resp_fit, c302=resp_c302, shuffled=resp_shuf)
        stats = held_out_statistics(su, resps, stim_all)
        save_held_out_responses(run_dir, su, resps, stim_all)  # pooled by a cross-validation
        hist_file = Path(run_dir) / "loss_history.json"
        hist = json.loads(hist_file.read_text()) if hist_file.exists() else dict(loss=[], terms={}, step_s=[])
        step_s = [s for s in hist.get("step_s", []) if s is not None and math.isfinite(s)]
        metrics = dict(
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
            n_train_neurons=len(su.train), n_test_neurons=len(su.test), n_pairs_used=self.n_pairs_used,
            initial_train_loss=obj0[0], final_train_loss=obj1[0],
            initial_train_terms=dict(total=obj0[0], **obj0[1]), final_train_terms=dict(total=obj1[0], **obj1[1]),
            first_minibatch_loss=hist["loss"][0] if hist["loss"] else float("nan"),
            last_minibatch_loss=hist["loss"][-1] if hist["loss"] else float("nan"),
            dd010_tier2_pass=bool(rep_fit["test_r"] > 0.5 and rep_fit["test_sign_agreement"] >= 0.7),
            n_polarity_flips=int(((p_fit > 0.5) != (p_c302 > 0.5)).sum()), n_connections=int(p_fit.size),
            fitted=rep_fit, c302=rep_c302, shuffled=rep_shuf,
            train_neurons=su.train, test_neurons=su.test,
            atlas=su.atlas.summary(),
        )
        metrics.update(ceiling_metrics(stats))
        metrics["timing_s"] = dict(setup=round(self.setup_s, 1), train_objective=round(self._objective_s, 1),
                                   evaluation=round(time.perf_counter() - t0 - (self._objective_s - t_obj0), 1),
                                   mean_step=round(sum(step_s) / max(len(step_s), 1), 2))
        rp.write_tables(su, fitted, p_fit, p_c302, Path(run_dir))
        if figures:
            try:
                rp.figures(su, hist, resp_fit, resp_c302, stim_all, Path(run_dir))
            except Exception as e:  # figures never lose a run
                log.warning("figures failed: %s", e)
        self._report = metrics
        return metrics

    def save_outputs(self, params, run_dir: Path, provenance, metadata: Mapping) -> None:
        from owjax.fitting.tasks.synapse_polarity_report import save_params_with_registry

        run_dir = Path(run_dir)
        np.savez(run_dir / "fitted_params.npz", **{k: np.asarray(v) for k, v in params.items()})
        meta = {k: v for k, v in metadata.items() if k != "figures"}
        meta.update(source="auto-fitted", data=self.data_description, loss=self.loss_description)
        if "test_r" in self._report:
            meta["test_r"] = self._report["test_r"]
        if self._groups is not None:
            mult = weight_multiplier(self.cfg.gain_bound)
            ml = np.asarray(mult(params["w"]))
            pe = np.asarray(jax.nn.sigmoid(params["theta"]))
            atomic_write_json(run_dir / "fitted_groups.json", dict(
                sharing=self.cfg.conductance_sharing,
                groups={n: dict(weight_multiplier=float(ml[k]), p_exc=float(pe[k])) for k, n in enumerate(self._groups[1])},
                **{k: float(mult(params[k])) for k in ("gain", "gap_gain") if k in params}))
        save_params_with_registry(self.su, self.network(params), run_dir, provenance, meta)


# ============================================================================ the experiment
class SynapsePolarity(AbstractExperiment):
    """``owjax.fit`` experiment kind ``synapse_polarity``.

    ``build`` returns the minibatch :class:`SynapsePolarityTask` (its parametrisation is its own:
    no ``parameters:`` block). With ``parameters:`` blocks in the configuration it returns instead a
    full-batch :class:`~owjax.fitting.tasks.base.FitProblem` on those blocks (e.g. ``graded.weight``
    softplus and ``graded.erev_mV`` sigmoid in (E_inh − ε, E_exc + ε) per connection), with the loss
    terms ``atlas`` and ``nt`` over every training stimulation.
    """

    kind: ClassVar[str] = "synapse_polarity"
    #: the ``parameters:`` block is optional (the minibatch task has its own parametrisation)
    requires_parameters_block: ClassVar[bool] = False

    def build(self, cfg: Mapping, seed: int, run_dir: Path | None = None):
        spc = config_from_fit(cfg, seed)
        if cfg.get("parameters"):
            return self._problem(cfg, spc, seed)
        lbfgs = int(((cfg.get("optim") or {}).get("lbfgs") or {}).get("steps", 0) or 0)
        if lbfgs:
            raise ValueError("synapse_polarity draws minibatches, L-BFGS needs the same objective every step: "
                             "set optim.lbfgs.steps=0")
        if spc.model != "c302":
            from owjax.fitting.tasks.synapse_polarity_rate import SynapsePolarityRateTask

            return SynapsePolarityRateTask(spc)
        return SynapsePolarityTask(spc)

    @staticmethod
    def _problem(cfg: Mapping, spc: SynapsePolarityConfig, seed: int) -> FitProblem:
        from owjax.fitting.params import ParameterSpace
        from owjax.fitting.tasks.synapse_polarity_report import model_report

        su = setup(spc)
        space = ParameterSpace(su.model, dict(cfg["parameters"]), seed=seed)
        tgt, wts = response_targets(su.atlas, su.model, su.train, spc)
        e_lo, e_hi = erev_range(su.model)
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
            rep, _ = model_report(su, "fitted", fitted, p, stim_all, c_data, defined)
            base, _ = model_report(su, "c302", su.model, polarity_of(su.model).astype(float), stim_all, c_data,
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

"""``synapse_polarity`` with graded (linear-rate) dynamics, shared parameters and extrasynaptic signalling.

The model classes ``synapse_polarity.model=rate`` and ``rate_extrasynaptic``: c302's connectome
(the same chemical and gap-junction connections and weights as the conductance model, from the same
:class:`~owjax.neural.network.NetworkModel`) with graded, linear dynamics — the small-signal limit in
which a response can be graded and negative, instead of C1's all-or-none spiking — plus, for
``rate_extrasynaptic``, slow diffuse couplings from the neuropeptide and monoamine connectomes
(:mod:`owjax.neural.extrasynaptic`). Every stimulation of a split runs at once (the state is an
``(N, S)`` matrix); time is in units of the membrane time constant τ::

    τ     dx/dt = −x + e ⊙ [(W_chem + W_gap) x + Σ_f g_f A_f z] + u(t)
    τ_ext dz/dt = −z + x

* ``x`` (N cells × S stimulations): activity relative to rest; ``u``: a unit pulse into the
  stimulated neuron for ``pulse`` τ; response = window mean of ``x`` over the trial (``duration`` τ),
  the same statistic as the conductance model's (scale-invariant comparisons with ΔF/F).
* ``W_chem[post, pre] = G · m(a_k(pre)) · (2σ(θ_k(pre)) − 1) · w_c302 / ρ_chem``: c302's synapse
  weights, normalised by the spectral radius ρ_chem of the weight matrix, with one gain ``a`` and one
  relaxed sign ``σ(θ)`` per *group* of presynaptic neurons (``sharing``: ``class`` — a neuron class,
  L/R and D/V homologues and numbered motor neurons tied; ``presynaptic`` — per neuron; ``nt`` — per
  transmitter class). ``m(u) = softplus(u)/ln 2``; θ starts at c302's majority sign of the
  group (±``theta0``), so the start is c302's connectome.
* ``W_gap = G_gap · m(a_gap) · (A_gap − diag(A_gap 1)) / ρ_gap`` (diffusive coupling).
* ``A_f``: one extrasynaptic family (a peptide connectome, or one amine), normalised by its spectral
  radius, with one signed gain ``g_f`` (starts at 0) — a few shared parameters, not one per connection.
* ``e = m(b_class)``: intrinsic excitability (input gain) per responding neuron class, fitted only
  with ``rate_excitability`` (otherwise e = 1).

Fit: all training stimulations every step (full batch), the atlas loss, the NT-consistency
penalty on the per-connection ``σ(θ)`` (as in the conductance model) and an L2 on the gains.
The report adds the same held-out statistics (noise ceiling, bootstrap CIs) as the conductance
model's, with two controls: ``c302`` = this model at its start (c302's weights and signs, no
extrasynaptic term, unfitted) and ``shuffled`` = this model *fitted the same way* on a
degree-preserving shuffle of the chemical and gap connectomes (and extrasynaptic matrices with
permuted cell labels), i.e. the same number of parameters without the wiring. With a DCV family
(``peptide``) in the model, the *unc-31* check evaluates the wt-fitted model on the *unc-31* atlas
with the DCV term kept and removed.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from owjax.fitting.task import AbstractFitTask
from owjax.fitting.tasks.synapse_polarity_ceiling import (
    bootstrap_metrics,
    ceiling_metrics,
    held_out_statistics,
    save_held_out_responses,
    split_half_reliability,
)
from owjax.fitting.tasks.synapse_polarity_metrics import (
    atlas_loss,
    nt_consistency,
    nt_penalty,
    polarity_of,
    response_targets,
    shuffle_connectome,
)
from owjax.neural.network import NetworkModel

log = logging.getLogger("owjax.synapse_polarity")

__all__ = ["RATE_MODELS", "SHARING", "neuron_class", "group_index", "LinearRateNetwork", "build_rate_network", "init_rate_params",
           "rate_responses", "KernelTargets", "kernel_targets", "kernel_error", "SynapsePolarityRateTask"]

RATE_MODELS = ("rate", "rate_extrasynaptic")
SHARING = ("class", "presynaptic", "nt")
LN2 = math.log(2.0)


def _m(u):
    return jax.nn.softplus(u) / LN2


def neuron_class(name: str, names: Sequence[str]) -> str:
    """The neuron class of a cell: L/R homologues, then D/V homologues tied (``SMDDL`` → ``SMD``),
    numbered neurons by their letters (``VB11`` → ``VB``); other names are their own class."""
    s = set(names)
    m = re.match(r"^([A-Z]+)\d+$", name)
    if m and name not in ("I1L",):
        return m.group(1)
    c = name
    if len(c) > 2 and c[-1] in "LR" and (c[:-1] + ("R" if c[-1] == "L" else "L")) in s:
        c = c[:-1]
    if len(c) > 2 and c[-1] in "DV":
        other = c[:-1] + ("V" if c[-1] == "D" else "D")
        if any(n == other or n.startswith(other) and n[len(other):] in ("L", "R") for n in s):
            c = c[:-1]
    return c


class LinearRateNetwork(eqx.Module):
    """Graded linear-rate network on a connectome (see the module docstring). Final.

    Attributes:
        chem: (N, N) c302 chemical weights ``[post, pre]`` / spectral radius.
        gap: (N, N) diffusive gap coupling ``A − diag(A·1)`` / spectral radius of A.
        ext: (F, N, N) extrasynaptic families ``[post, pre]`` / spectral radius (F may be 0).
        pre_group: (N,) group of each cell as a presynaptic neuron (for gains and signs).
        post_group: (N,) class of each cell as a responding neuron (excitability).
        families: family name of each ``ext`` slice.
        duration, pulse, tau_ext, dt: trial length, pulse length, extrasynaptic time constant and
            Heun step, in units of the membrane time constant.
    """

    chem: Float[Array, "n n"]
    gap: Float[Array, "n n"]
    ext: Float[Array, "f n n"]
    pre_group: Int[Array, " n"]
    post_group: Int[Array, " n"]
    n_pre_groups: int = eqx.field(static=True)
    n_post_groups: int = eqx.field(static=True)
    families: tuple[str, ...] = eqx.field(static=True)
    duration: float = eqx.field(static=True)
    pulse: float = eqx.field(static=True)
    tau_ext: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def couplings(self, params: Mapping[str, Array], keep=None):
        """(M_x, M_z): the matrices acting on x and on the extrasynaptic state z; ``keep`` (F,) 0/1
        multiplies each family's gain (None: all kept)."""
        sign = 2.0 * jax.nn.sigmoid(params["theta"]) - 1.0
        col = _m(params["gain"]) * _m(params["chem_gain"]) * sign
        mx = self.chem * col[self.pre_group][None, :] + _m(params["gap_gain"]) * self.gap
        e = _m(params["excit"])[self.post_group][:, None] if "excit" in params else 1.0
        if self.ext.shape[0]:  # no "ext_gain" without families (a checkpoint cannot hold empty arrays)
            g = params["ext_gain"] if keep is None else params["ext_gain"] * keep
            mz = jnp.einsum("f,fij->ij", g, self.ext)
        else:
            mz = jnp.zeros_like(self.chem)
        return e * mx, e * mz

    def responses(self, params: Mapping[str, Array], stim: Int[Array, " s"], keep=None):
        """(S, N) window-mean responses to unit pulses into the cells ``stim`` (pure JAX); ``keep``:
        see :meth:`couplings`."""
        return self._solve(params, stim, keep, dense=False)

    def trajectories(self, params: Mapping[str, Array], stim: Int[Array, " s"], keep=None):
        """``(x, mean)``: the activity ``x`` (T, N, S) at the step times ``dt, 2dt, …, duration`` (τ) and
        the (S, N) window-mean responses, from one solve (pure JAX); ``keep``: see :meth:`couplings`."""
        return self._solve(params, stim, keep, dense=True)

    def _solve(self, params, stim, keep, dense: bool):
        mx, mz = self.couplings(params, keep)
        n = self.chem.shape[0]
        u = jax.nn.one_hot(stim, n, dtype=self.chem.dtype).T  # (N, S)
        pulse, tau_ext = self.pulse, self.tau_ext

        def f(t, y, args):
            x, z, _ = y
            drive = jnp.where(t < pulse, 1.0, 0.0)
            return (-x + mx @ x + mz @ z + drive * u, (x - z) / tau_ext, x)

        n_steps = int(round(self.duration / self.dt))
        zero = jnp.zeros_like(u)
        # the third state integrates x: the window mean is its final value / duration (no dense output)
        saveat = dfx.SaveAt(ts=self.dt * jnp.arange(1, n_steps + 1, dtype=u.dtype)) if dense else dfx.SaveAt(t1=True)
        sol = dfx.diffeqsolve(dfx.ODETerm(f), dfx.Heun(), 0.0, self.duration, self.dt, (zero, zero, zero),
                              saveat=saveat, stepsize_controller=dfx.ConstantStepSize(),
                              max_steps=n_steps + 2, adjoint=dfx.RecursiveCheckpointAdjoint())
        mean = (sol.ys[2][-1] / self.duration).T
        return (sol.ys[0], mean) if dense else mean


class KernelTargets(eqx.Module):
    """The atlas' response kernels of some pairs, as convolution matrices on the rate model's time
    grid (see :func:`kernel_targets`). Final.

    Attributes:
        row: (P,) stimulation (column of the model's ``(T, N, S)`` trajectories) of each pair.
        resp: (P,) responding cell.
        stim: (P,) stimulated cell.
        conv: (P, T, T) lower-triangular matrices: ``conv[p] @ x_stim`` is the kernel's prediction of
            the responder's time course from the stimulated neuron's.
    """

    row: Int[Array, " p"]
    resp: Int[Array, " p"]
    stim: Int[Array, " p"]
    conv: Float[Array, "p t t"]


def kernel_targets(atlas, model: NetworkModel, stimulated: Sequence[str], cfg, dtype=jnp.float32) -> KernelTargets | None:
    """Convolution matrices of the atlas' kernels (:meth:`SignalPropagationAtlas.kernels`) for the
    significant pairs (``q < cfg.q_max``) of the stimulations ``stimulated`` that have a kernel.

    The model's step times ``t_k = k·rate_dt`` (k = 1 … duration/rate_dt, in membrane time constants)
    are mapped to seconds by ``rate_tau_s``; ``conv[p, k, k'] = kernel_p(τ_s (t_k − t_k'))·τ_s·rate_dt``
    for k' ≤ k (rectangle rule), so that ``Σ_k' conv[p, k, k'] x_j(t_k')`` is ``(k ⋆ x_j)(t_k)``. The
    kernels relate ΔF/F to ΔF/F, and a calcium indicator's filter acting on both neurons commutes
    with the convolution, so they apply to the model's activities as they are. Returns None when no
    pair has a kernel."""
    p = atlas.pairs(q_max=cfg.q_max, min_occ=cfg.min_occ, stimulated=list(stimulated))
    if len(p) == 0:
        return None
    n_steps = int(round(cfg.rate_duration / cfg.rate_dt))
    lag = np.subtract.outer(np.arange(n_steps), np.arange(n_steps))  # k − k': t_k − t_k' in steps
    vals = atlas.kernels(p.resp, p.stim, cfg.rate_tau_s * cfg.rate_dt * np.arange(n_steps))  # (P, T) at lags 0, dt, …
    has = np.all(np.isfinite(vals), axis=1)
    if not has.any():
        return None
    conv = np.where(lag >= 0, vals[has][:, np.maximum(lag, 0)], 0.0) * cfg.rate_tau_s * cfg.rate_dt
    srow = {n: k for k, n in enumerate(stimulated)}
    return KernelTargets(
        row=jnp.asarray([srow[atlas.names[j]] for j in p.stim[has]]),
        resp=jnp.asarray([model.index(atlas.names[i]) for i in p.resp[has]]),
        stim=jnp.asarray([model.index(atlas.names[j]) for j in p.stim[has]]),
        conv=jnp.asarray(conv, dtype))


def kernel_error(traj: Float[Array, "t n s"], kt: KernelTargets, eps: float = 1e-12):
    """How far the responders' time courses are from the kernels' predictions from the stimulated
    neurons' own time courses, up to one global scale (the atlas' ΔF/F ratios between neurons carry
    each neuron's indicator brightness, and the rate model's activity has no unit): one minus the
    cosine similarity ``Σ x_i·(k ⋆ x_j) / √(Σ x_i² · Σ (k ⋆ x_j)²)`` over the pairs of ``kt`` and all
    step times (time courses start at rest, so no mean is removed). 0 = every time course as the
    kernels say up to the scale, 1 = unrelated, 2 = every one inverted (pure JAX)."""
    x_resp = traj[:, kt.resp, kt.row].T  # (P, T)
    x_stim = traj[:, kt.stim, kt.row].T
    pred = jnp.einsum("pkl,pl->pk", kt.conv, x_stim)
    return 1.0 - jnp.sum(x_resp * pred) / jnp.sqrt(jnp.sum(x_resp ** 2) * jnp.sum(pred ** 2) + eps)


def _spectral_radius(a: np.ndarray) -> float:
    r = float(np.max(np.abs(np.linalg.eigvals(a)))) if a.size else 0.0
    return r if r > 0 else 1.0


def group_index(labels: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Each label's group number (int32, by the sorted distinct labels) and the sorted distinct labels."""
    uniq = sorted(set(labels))
    pos = {u: k for k, u in enumerate(uniq)}
    return np.array([pos[x] for x in labels], dtype=np.int32), uniq


def build_rate_network(model: NetworkModel, cfg, nt_codes_cell: np.ndarray, ext: Mapping[str, np.ndarray] | None = None,
                       dtype=jnp.float32) -> tuple[LinearRateNetwork, dict]:
    """The rate network on ``model``'s connectome.

    Arguments:
        model: the c302 network (its graded synapses and gap junctions give the wiring and weights).
        cfg: the task configuration (``sharing``, ``rate_*`` settings).
        nt_codes_cell: transmitter class per cell (for ``sharing=nt``).
        ext: extrasynaptic families ``{name: A[post, pre]}`` (none for ``model=rate``).
        dtype: array dtype.

    Returns:
        ``(network, info)`` with ``info`` the group labels and normalisations.
    """
    n = model.n_cells
    names = list(model.cell_names)
    pre, post = np.asarray(model.graded.pre), np.asarray(model.graded.post)
    w = np.asarray(model.graded.weight, np.float64)
    chem = np.zeros((n, n))
    np.add.at(chem, (post, pre), w)
    gp, gq = np.asarray(model.gaps.pre), np.asarray(model.gaps.post)
    a_gap = np.zeros((n, n))
    np.add.at(a_gap, (gq, gp), np.asarray(model.gaps.weight, np.float64))
    a_gap = 0.5 * (a_gap + a_gap.T)
    gap = (a_gap - np.diag(a_gap.sum(axis=1))) / _spectral_radius(a_gap)
    classes = [neuron_class(c, names) for c in names]
    if cfg.sharing == "class":
        pre_labels = classes
    elif cfg.sharing == "presynaptic":
        pre_labels = names
    else:
        pre_labels = [str(int(c)) for c in nt_codes_cell]
    pre_group, pre_names = group_index(pre_labels)
    post_group, post_names = group_index(classes)
    fams = tuple(ext) if ext else ()
    ext_arr = np.stack([ext[f] / _spectral_radius(ext[f]) for f in fams]) if fams else np.zeros((0, n, n))
    rho = _spectral_radius(chem)
    net = LinearRateNetwork(
        chem=jnp.asarray(chem / rho, dtype), gap=jnp.asarray(gap, dtype), ext=jnp.asarray(ext_arr, dtype),
        pre_group=jnp.asarray(pre_group), post_group=jnp.asarray(post_group), n_pre_groups=len(pre_names),
        n_post_groups=len(post_names), families=fams, duration=float(cfg.rate_duration), pulse=float(cfg.rate_pulse),
        tau_ext=float(cfg.rate_tau_ext), dt=float(cfg.rate_dt))
    return net, dict(pre_groups=pre_names, post_groups=post_names, chem_spectral_radius=rho, families=list(fams))


def init_rate_params(net: LinearRateNetwork, model: NetworkModel, cfg, dtype=jnp.float32) -> dict[str, Array]:
    """Parameters that give c302's signs (majority of each presynaptic group), unit gains, the
    configured initial chemical/gap gains and zero extrasynaptic gains."""
    exc = polarity_of(model).astype(np.float64)
    pre = np.asarray(model.graded.pre)
    grp = np.asarray(net.pre_group)[pre]
    frac = np.bincount(grp, weights=exc, minlength=net.n_pre_groups) / np.maximum(
        np.bincount(grp, minlength=net.n_pre_groups), 1)
    theta = np.where(frac >= 0.5, cfg.theta0, -cfg.theta0)

    def inv_m(v):  # m(u) = v
        return float(np.log(np.expm1(v * LN2)))

    p = dict(theta=jnp.asarray(theta, dtype), gain=jnp.zeros(net.n_pre_groups, dtype),
             chem_gain=jnp.asarray(inv_m(cfg.rate_chem_gain0), dtype),
             gap_gain=jnp.asarray(inv_m(cfg.rate_gap_gain0), dtype))
    if net.families:
        p["ext_gain"] = jnp.zeros(len(net.families), dtype)
    if cfg.rate_excitability:
        p["excit"] = jnp.zeros(net.n_post_groups, dtype)
    return p


def connection_p_exc(params: Mapping[str, Array], net: LinearRateNetwork, model: NetworkModel):
    """σ(θ) of each chemical connection of ``model`` (its presynaptic group's sign)."""
    return jax.nn.sigmoid(params["theta"])[net.pre_group[model.graded.pre]]


def rate_responses(net: LinearRateNetwork, params, stim_idx, drop: tuple[str, ...] = ()) -> np.ndarray:
    """(S, N) responses to unit pulses into the cells ``stim_idx`` with the families ``drop`` removed
    (float64). Every cell is stimulated in one compiled call (one compilation per network shape,
    whatever the stimulated set or the dropped families) and the rows of ``stim_idx`` are returned."""
    keep = jnp.asarray([0.0 if f in drop else 1.0 for f in net.families], net.chem.dtype)
    full = np.asarray(_resp_all_jit(net, params, keep), np.float64)
    return full[np.asarray(stim_idx, dtype=int)]


@eqx.filter_jit
def _resp_all_jit(net, params, keep):
    return net.responses(params, jnp.arange(net.chem.shape[0]), keep)


def _shuffled_ext(ext: Mapping[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    if not ext:
        return {}
    n = next(iter(ext.values())).shape[0]
    perm = np.random.default_rng(seed).permutation(n)
    return {k: v[np.ix_(perm, perm)] for k, v in ext.items()}


class SynapsePolarityRateTask(AbstractFitTask):
    """The rate model classes of ``synapse_polarity`` (see the module docstring) on the one loop:
    ``init`` = c302's connectome, ``batches`` = every training stimulation (full batch), ``loss`` =
    atlas + λ_nt·NT + λ_w·L2(gains); ``report`` = held-out evaluation, controls and the *unc-31*
    check."""

    def __init__(self, cfg):
        from owjax.fitting.tasks.synapse_polarity import setup
        from owjax.neural.extrasynaptic import extrasynaptic_connectome

        t0 = time.perf_counter()
        self.cfg = cfg
        self.su = su = setup(cfg, resting=False)
        dtype = su.model.dtype
        self.ext = {}
        if cfg.model == "rate_extrasynaptic":
            for src in cfg.extrasynaptic:
                for fam, a in extrasynaptic_connectome(src, su.model.cell_names).items():
                    key = fam if fam not in self.ext else f"{fam}_{src}"
                    self.ext[key] = a
        nt_cell = np.zeros(su.model.n_cells, dtype=np.int32)
        nt_cell[np.asarray(su.model.graded.pre)] = su.nt_codes
        self.nt_cell = nt_cell
        self.net, self.net_info = build_rate_network(su.model, cfg, nt_cell, self.ext, dtype)
        self.stim_train = jnp.asarray([su.model.index(s) for s in su.train])
        self.target, self.weight = response_targets(su.atlas, su.model, su.train, cfg)
        self.n_pairs_used = int((self.weight > 0).sum())
        self.kernels = kernel_targets(su.atlas, su.model, su.train, cfg, dtype) if cfg.kernel_weight > 0 else None
        if cfg.kernel_weight > 0 and self.kernels is None:
            raise ValueError("synapse_polarity.kernel_weight > 0, but no training pair has an atlas kernel")
        self._nt = jnp.asarray(su.nt_codes)
        self._report: dict = {}
        self.data_description = (
            f"Randi et al. 2023 signal propagation atlas (doi:{su.atlas.doi}), strain {cfg.strain}, "
            f"{self.n_pairs_used} {cfg.pairs} pairs of {len(su.train)} training stimulations; Wang et al. 2024 "
            "transmitter identities" + (f"; extrasynaptic: {', '.join(cfg.extrasynaptic)} (cect)" if self.ext else ""))
        self.loss_description = (f"{cfg.window_weight}·{cfg.loss} on atlas responses + {cfg.lambda_nt}·NT consistency + "
                                 f"{cfg.lambda_w}·L2 of the gain parameters"
                                 + (f" + {cfg.kernel_weight}·(1 − cosine similarity) of the response time courses against "
                                    f"{int(self.kernels.row.shape[0])} atlas kernels (τ = {cfg.rate_tau_s} s)"
                                    if self.kernels is not None else ""))
        self.info = dict(n_train_neurons=len(su.train), n_test_neurons=len(su.test), n_pairs_used=self.n_pairs_used,
                         model=cfg.model, sharing=cfg.sharing, n_pre_groups=self.net.n_pre_groups,
                         n_post_groups=self.net.n_post_groups, extrasynaptic_families=list(self.net.families))
        self.setup_s = time.perf_counter() - t0

    def describe(self) -> str:
        p = self.init(None)
        n = sum(int(np.size(v)) for v in p.values())
        return (f"synapse_polarity {self.cfg.model}: {n} parameters (sharing={self.cfg.sharing}, "
                f"{self.net.n_pre_groups} presynaptic groups, {self.net.n_post_groups} neuron classes, "
                f"families {list(self.net.families)}); {len(self.su.train)} training / {len(self.su.test)} test "
                "stimulations, full batch")

    def init(self, key: PRNGKeyArray | None) -> dict[str, Array]:
        return init_rate_params(self.net, self.su.model, self.cfg, self.su.model.dtype)

    def batches(self, step: int, key: PRNGKeyArray) -> dict[str, Array]:
        dt = self.su.model.dtype
        return dict(target=jnp.asarray(self.target, dt), weight=jnp.asarray(self.weight, dt))

    def _loss(self, net, params, target, weight):
        cfg = self.cfg
        if self.kernels is not None:
            traj, r = net.trajectories(params, self.stim_train)
            kern = kernel_error(traj, self.kernels)
        else:
            r, kern = net.responses(params, self.stim_train), 0.0
        data = atlas_loss(r, target, weight, cfg.loss)
        nt = nt_penalty(connection_p_exc(params, net, self.su.model), self._nt, cfg.nt_weight_gaba, cfg.nt_weight_ach)
        reg = (jnp.mean(params["gain"] ** 2) + (jnp.mean(params["excit"] ** 2) if "excit" in params else 0.0)
               + (jnp.mean(params["ext_gain"] ** 2) if "ext_gain" in params else 0.0))
        total = cfg.window_weight * data + cfg.lambda_nt * nt + cfg.lambda_w * reg + cfg.kernel_weight * kern
        return total, dict(atlas=data, nt=nt, reg=reg, kernel=kern)

    def loss(self, params, batch, key):
        return self._loss(self.net, params, batch["target"], batch["weight"])

    # ------------------------------------------------------------------ controls
    def _fit_control(self, net, steps: int, lr: float):
        """Adam (cosine schedule, clip 1) on ``net`` from the same start: the shuffled control
        (``steps=0``: the shuffled network at the start parameters)."""
        params = self.init(None)
        if steps == 0:
            return params
        opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(optax.cosine_decay_schedule(lr, max(steps, 1), 0.1)))
        state = opt.init(params)
        b = self.batches(0, None)

        @eqx.filter_jit
        def step(params, state, net):
            (val, _), g = jax.value_and_grad(lambda p: self._loss(net, p, b["target"], b["weight"]), has_aux=True)(params)
            upd, state = opt.update(g, state, params)
            return optax.apply_updates(params, upd), state, val

        for _ in range(steps):
            params, state, _ = step(params, state, net)
        return params

    def _unc31_check(self, params, n_boot: int) -> tuple[dict, dict[str, np.ndarray]]:
        """The wt-fitted model on the *unc-31* atlas, DCV families kept vs removed.

        Returns:
            ``(check, arrays)``: the check's metrics, and the responses it used for
            :func:`~owjax.fitting.tasks.synapse_polarity_ceiling.pooled_unc31_check` (saved with the
            run's ``responses.npz``; empty without a DCV family): ``unc31_stimulated`` (rows),
            ``unc31_resp_kept`` / ``unc31_resp_removed`` (rows × cells), ``dcv_removed_wt`` (the wt
            stimulations of the run, DCV families removed) and ``dcv_families``.
        """
        from owjax.neural.extrasynaptic import DCV_FAMILIES
        from owjax.reference.atlas import load_atlas

        cfg, su = self.cfg, self.su
        drop = tuple(f for f in self.net.families if f.split("_")[0] in DCV_FAMILIES)
        if not drop:
            return dict(available=False, reason="the model has no dense-core-vesicle (peptide) family"), {}
        unc = load_atlas("unc31", su.model.cell_names)
        p_all = unc.pairs(q_max=cfg.q_max, min_occ=cfg.min_occ, clip=cfg.clip)
        unc_stim = [unc.names[j] for j in np.unique(p_all.stim)]
        idx = [su.model.index(s) for s in unc_stim]
        resp_kept = rate_responses(self.net, params, idx)
        resp_removed = rate_responses(self.net, params, idx, drop)
        row = {s: k for k, s in enumerate(unc_stim)}
        out = dict(available=True, removed_families=list(drop))
        for key, subset in (("all", None), ("test_neurons", set(su.test))):
            p = p_all
            if subset is not None:
                p = p.subset(np.isin([unc.names[j] for j in p.stim], sorted(subset)))
            if len(p) < 3:
                out[key] = dict(n_pairs=len(p))
                continue
            srow = np.array([row[unc.names[j]] for j in p.stim])
            cols = np.array([su.model.index(unc.names[i]) for i in p.resp])
            kept, removed = resp_kept[srow, cols], resp_removed[srow, cols]
            b = bootstrap_metrics(dict(kept=kept, removed=removed), p.target, p.stim, n_boot=n_boot, seed=cfg.seed)
            ceil = split_half_reliability(unc.trials(p.resp, p.stim), seed=cfg.seed, clip=cfg.clip)
            out[key] = dict(n_pairs=len(p), n_stimulated=len(np.unique(p.stim)), r_kept=b["kept"]["r"],
                            r_kept_ci95=b["kept"]["r_ci"], r_removed=b["removed"]["r"],
                            r_removed_ci95=b["removed"]["r_ci"],
                            r_removed_minus_kept=b["differences"]["removed-kept"]["r_diff"],
                            r_removed_minus_kept_ci95=b["differences"]["removed-kept"]["r_diff_ci"],
                            noise_ceiling_r=ceil["ceiling_r"],
                            prediction_holds=bool(b["differences"]["removed-kept"]["r_diff"] > 0))
        stim_all = su.train + su.test
        arrays = dict(unc31_stimulated=np.array(unc_stim), unc31_resp_kept=np.asarray(resp_kept, np.float64),
                      unc31_resp_removed=np.asarray(resp_removed, np.float64),
                      dcv_removed_wt=np.asarray(rate_responses(self.net, params, [su.model.index(s) for s in stim_all],
                                                               drop), np.float64),
                      dcv_families=np.array(list(drop)))
        return out, arrays

    def _kernel_check(self, models: Mapping[str, tuple]) -> dict:
        """The time courses of the held-out stimulations against the atlas' kernels
        (:func:`kernel_error`, 0 = as the kernels say, 1 = no better than silence) for each model."""
        su = self.su
        kt = kernel_targets(su.atlas, su.model, su.test, self.cfg, su.model.dtype)
        if kt is None:
            return dict(n_pairs=0)
        stim = jnp.asarray([su.model.index(s) for s in su.test])
        out = dict(n_pairs=int(kt.row.shape[0]), rate_tau_s=self.cfg.rate_tau_s)
        for k, (net, params) in models.items():
            out[k] = float(kernel_error(net.trajectories(params, stim)[0], kt))
        return out

    # ------------------------------------------------------------------ report
    def report(self, params_init, params, run_dir: Path, figures: bool) -> dict:
        from owjax.fitting.tasks.synapse_polarity_report import _split_metrics

        cfg, su = self.cfg, self.su
        t0 = time.perf_counter()
        stim_all = su.train + su.test
        idx_all = [su.model.index(s) for s in stim_all]
        resp_fit = rate_responses(self.net, params, idx_all)
        resp_c302 = rate_responses(self.net, params_init, idx_all)
        shuffled_model = shuffle_connectome(su.model, seed=cfg.shuffle_seed)
        net_shuf, _ = build_rate_network(shuffled_model, cfg, self.nt_cell, _shuffled_ext(self.ext, cfg.shuffle_seed),
                                         su.model.dtype)
        t_c = time.perf_counter()
        params_shuf = self._fit_control(net_shuf, cfg.control_steps, cfg.control_lr)
        control_s = time.perf_counter() - t_c
        resp_shuf = rate_responses(net_shuf, params_shuf, idx_all)
        reps = {k: _split_metrics(su, r, stim_all) for k, r in
                (("fitted", resp_fit), ("c302", resp_c302), ("shuffled", resp_shuf))}
        p_fit = np.asarray(connection_p_exc(params, self.net, su.model))
        p_c302 = polarity_of(su.model).astype(np.float64)
        reps["fitted"].update(nt_consistency(p_fit, su.nt_codes))
        reps["c302"].update(nt_consistency(np.asarray(connection_p_exc(params_init, self.net, su.model)), su.nt_codes))
        reps["shuffled"].update(nt_consistency(np.asarray(connection_p_exc(params_shuf, net_shuf, shuffled_model)),
                                               su.nt_codes))
        resps = dict(fitted=resp_fit, c302=resp_c302, shuffled=resp_shuf)
        stats = held_out_statistics(su, resps, stim_all)
        rf, rc, rs = reps["fitted"], reps["c302"], reps["shuffled"]
        metrics = dict(
            model=cfg.model, sharing=cfg.sharing,
            test_r=rf["test_r"], test_sign_agreement=rf["test_sign_agreement"], nt_consistency=rf["nt_consistency"],
            train_r=rf["train_r"], train_sign_agreement=rf["train_sign_agreement"],
            baseline_c302_test_r=rc["test_r"], baseline_c302_test_sign_agreement=rc["test_sign_agreement"],
            baseline_c302_train_r=rc["train_r"], baseline_c302_nt_consistency=rc["nt_consistency"],
            baseline_c302_model=f"{cfg.model} with c302's weights and signs, no extrasynaptic term, unfitted",
            shuffled_test_r=rs["test_r"], shuffled_test_sign_agreement=rs["test_sign_agreement"],
            shuffled_train_r=rs["train_r"],
            shuffled_model=f"{cfg.model} fitted ({cfg.control_steps} Adam steps, lr {cfg.control_lr}) on a "
                           "degree-preserving shuffle of c302's connectome (extrasynaptic cell labels permuted)",
            n_train_neurons=len(su.train), n_test_neurons=len(su.test), n_pairs_used=self.n_pairs_used,
            n_polarity_flips=int(((p_fit > 0.5) != (p_c302 > 0.5)).sum()), n_connections=int(p_fit.size),
            ext_gain={f: float(v) for f, v in zip(self.net.families, np.asarray(params.get("ext_gain", [])))},
            chem_gain=float(_m(params["chem_gain"])), gap_gain=float(_m(params["gap_gain"])),
            fitted=rf, c302=rc, shuffled=rs, train_neurons=su.train, test_neurons=su.test,
            atlas=su.atlas.summary(), network=self.net_info,
        )
        metrics.update(ceiling_metrics(stats))
        metrics["dd010_tier2_pass"] = bool(rf["test_r"] > 0.5 and rf["test_sign_agreement"] >= 0.7)
        metrics["heldout_kernel_error"] = self._kernel_check(dict(fitted=(self.net, params),
                                                                  c302=(self.net, params_init),
                                                                  shuffled=(net_shuf, params_shuf)))
        metrics["unc31"], unc31_arrays = self._unc31_check(params, n_boot=2000)
        save_held_out_responses(run_dir, su, resps, stim_all, extra=unc31_arrays)  # pooled by a cross-validation
        metrics["timing_s"] = dict(setup=round(self.setup_s, 1), shuffled_control_fit=round(control_s, 1),
                                   evaluation=round(time.perf_counter() - t0 - control_s, 1))
        self._report = metrics
        if figures:
            try:
                _scatter(su, stim_all, resp_fit, resp_c302, Path(run_dir) / "response_scatter.png")
            except Exception as e:  # figures never lose a run
                log.warning("figures failed: %s", e)
        return metrics

    def save_outputs(self, params, run_dir: Path, provenance, metadata: Mapping) -> None:
        from owjax.core.checkpoint import atomic_write_text

        run_dir = Path(run_dir)
        np.savez(run_dir / "fitted_params.npz", **{k: np.asarray(v) for k, v in params.items()})
        sign = np.asarray(2 * jax.nn.sigmoid(params["theta"]) - 1)
        gains = np.asarray(_m(params["gain"]))
        groups = dict(presynaptic=[dict(group=g, sign=float(s), gain=float(a)) for g, s, a in
                                   zip(self.net_info["pre_groups"], sign, gains)],
                      excitability={g: float(v) for g, v in zip(self.net_info["post_groups"],
                                                                 np.asarray(_m(params["excit"])))}
                      if "excit" in params else {},
                      ext_gain={f: float(v) for f, v in zip(self.net.families, np.asarray(params.get("ext_gain", [])))},
                      metadata={k: v for k, v in metadata.items() if k != "figures"})
        atomic_write_text(run_dir / "fitted_groups.json", json.dumps(groups, indent=1, default=str))


def _scatter(su, stim_all, resp_fit, resp_c302, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    rows = {n: k for k, n in enumerate(stim_all)}
    for ax, (split, names) in zip(axes, (("train", su.train), ("test", su.test))):
        t, w = response_targets(su.atlas, su.model, names, su.cfg, q_max=su.cfg.q_max)
        m = w > 0
        for lab, r in (("c302 start", resp_c302), ("fitted", resp_fit)):
            s = r[[rows[n] for n in names]][m]
            a = float((s * t[m]).sum() / max((s * s).sum(), 1e-30))
            ax.scatter(t[m], a * s, s=6, alpha=0.5, label=f"{lab} (r={np.corrcoef(s, t[m])[0, 1]:.2f})")
        ax.set(title=f"{split} stimulations", xlabel="atlas ΔF/F", ylabel="simulated (best scale)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


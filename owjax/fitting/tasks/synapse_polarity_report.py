"""``synapse_polarity``'s report: held-out evaluation of a fitted network and the output files.

:func:`model_report` simulates every stimulation of the split with one network (fitted, c302's, or
the shuffled control) and scores it against the atlas (:mod:`.synapse_polarity_metrics`);
:func:`write_tables` writes ``fitted_synapses.csv`` and the polarity-flip tables,
:func:`save_params_with_registry` the loadable ``params.json``, :func:`figures` the loss curves,
response matrices and scatter plots. ``su`` arguments are the task's setup
(:class:`owjax.fitting.tasks.synapse_polarity.Setup`: ``cfg``, ``model``, ``atlas``, ``y0``,
``train``, ``test``, ``nt_codes``, ``nt_ident``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from owjax.fitting.tasks.synapse_polarity_metrics import (
    NT_CLASSES,
    atlas_correlation_matrix,
    corr_matrix_mse,
    erev_range,
    nt_consistency,
    response_metrics,
    response_targets,
    spontaneous_correlation,
)
from owjax.neural.network import NetworkModel
from owjax.reference.atlas_protocol import resting_state, responses_jit, stimulus_amplitudes

log = logging.getLogger("owjax.synapse_polarity")

__all__ = ["evaluate_responses", "model_report", "write_tables", "save_params_with_registry", "plot_loss_curves",
           "figures"]


# ============================================================================ evaluation
def evaluate_responses(su, model: NetworkModel, y0, stim_all: list, batch: int = 16) -> np.ndarray:
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


def _split_metrics(su, resp_all: np.ndarray, stim_all: list) -> dict:
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


def _protocol_corr(su, resp_all: np.ndarray, stim_all: list, c_data: np.ndarray, defined: np.ndarray):
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


def model_report(su, name: str, model: NetworkModel, p_exc: np.ndarray, stim_all: list,
                 c_data, defined, recompute_rest: bool = True) -> tuple[dict, np.ndarray]:
    """Metrics of one network (``name``: fitted, c302, shuffled) on every stimulation of ``stim_all``:
    train/test r, sign agreement, scaled MSE (q < q_max and all observed pairs), NT consistency of
    ``p_exc``, and the correlation-matrix MSEs (spontaneous activity, and atlas-style from the
    responses). ``recompute_rest``: settle this network to its own resting state (else ``su.y0``).

    Returns:
        ``(metrics, responses (S, N))``.
    """
    t0 = time.perf_counter()
    y0, rest = su.y0, "c302's resting state (as in training)"
    if recompute_rest:
        try:
            y0, rest = resting_state(model, su.cfg.protocol), "its own resting state"
        except eqx.EquinoxRuntimeError as e:  # an igniting/oscillating network reaches solver.max_steps
            log.warning("%s: the network does not settle within %g ms (%s); evaluated from c302's resting state "
                        "instead, so its responses include its own drift", name, su.cfg.protocol.settle_ms,
                        str(e).splitlines()[0])
            rest = "c302's resting state: the network did not settle (solver.max_steps reached)"
    resp = evaluate_responses(su, model, y0, stim_all)
    out = _split_metrics(su, resp, stim_all)
    out["evaluated_from"] = rest
    out.update(nt_consistency(p_exc, su.nt_codes))
    atl_idx = np.array([su.model.index(n) for n in su.atlas.names])
    c_sim, info = spontaneous_correlation(model, y0, su.cfg, seed=su.cfg.seed)
    out["corr_matrix_mse"] = corr_matrix_mse(c_sim[np.ix_(atl_idx, atl_idx)], c_data, defined)
    out["corr_matrix_mse_protocol"] = _protocol_corr(su, resp, stim_all, c_data, defined)
    out["spontaneous"] = info
    out["eval_wall_s"] = round(time.perf_counter() - t0, 1)
    log.info("%s: %s", name, {k: v for k, v in out.items() if not isinstance(v, dict)})
    return out, resp


# ============================================================================ output files
def write_tables(su, fitted: NetworkModel, p_fit: np.ndarray, p_c302: np.ndarray, run_dir: Path) -> None:
    """``fitted_synapses.csv`` (one row per connection) and ``polarity_flips.csv`` / ``.md`` (per presynaptic neuron)."""
    from owjax.core.checkpoint import atomic_write_text

    n_flips, n_conn = int(((p_fit > 0.5) != (p_c302 > 0.5)).sum()), int(p_fit.size)
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
    md = [f"# Polarity flips vs c302 ({n_flips} of {n_conn} connections)", "",
          "| presynaptic | transmitter (Wang 2024) | NT prior | connections | → exc | → inh |", "|---|---|---|---|---|---|"]
    for pre, d in flip_rows:
        csv.append(f"{pre},{d['ident']},{d['cls']},{d['n']},{d['to_exc']},{d['to_inh']},"
                   f"{'' if d['cls'] == 'free' else int((d['cls'] == 'exc' and d['to_inh'] == 0) or (d['cls'] == 'inh' and d['to_exc'] == 0))}")
        md.append(f"| {pre} | {d['ident']} | {d['cls']} | {d['n']} | {d['to_exc']} | {d['to_inh']} |")
    if not flip_rows:
        md.append("| (none) | | | | | |")
    atomic_write_text(run_dir / "polarity_flips.csv", "\n".join(csv) + "\n")
    atomic_write_text(run_dir / "polarity_flips.md", "\n".join(md) + "\n")


def save_params_with_registry(su, fitted: NetworkModel, run_dir: Path, provenance, metadata: Mapping) -> None:
    """``params.json`` in owjax's parameter-file format with the component registry (``provenance``:
    the loop's auto_fitted provenance — experiment, data, loss, optimiser, date, git commit), loadable
    by ``owjax.simulate params=``; a plain JSON with the same metadata if the registry fails."""
    from owjax.core.checkpoint import atomic_write_json

    cfg = su.cfg
    try:
        from owjax.fitting.params import ParameterSpace
        from owjax.fitting.param_files import save_param_file
        from owjax.fitting.registry import Registry

        e_lo, e_hi = erev_range(su.model)
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
        registry = Registry.for_model(su.model, parameter_set=cfg.parameter_set).with_fit(space, raw, provenance)
        save_param_file(run_dir / "params.json", su.model, space, raw, registry=registry.to_dict(),
                        metadata=dict(metadata))
    except Exception as e:  # registry machinery unavailable or changed: a plain JSON with the same provenance
        log.warning("parameter file with registry failed (%s); writing a plain JSON", e)
        atomic_write_json(run_dir / "params.json", dict(
            dict(metadata), connections=list(fitted.graded_names),
            weight=np.asarray(fitted.graded.weight, np.float64).tolist(),
            erev_mV=np.asarray(fitted.graded.erev_mV, np.float64).tolist(),
            gap_connections=list(fitted.gap_names), gap_weight=np.asarray(fitted.gaps.weight, np.float64).tolist(),
        ))


# ============================================================================ figures
def plot_loss_curves(hist: Mapping, lambda_nt: float, lambda_w: float, path: str | Path, window: int = 10) -> None:
    """Loss per term against the step (``hist``: the loop's ``loss_history.json``: ``loss`` and
    ``terms.{atlas, nt, reg}`` per step). The minibatch loss is noisy (every step sees other
    stimulations), so a running mean over ``window`` steps is drawn on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from owjax.core.checkpoint import atomic_savefig

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    terms = hist["terms"]
    x = np.arange(1, len(hist["loss"]) + 1)
    if len(x):
        ax.plot(x, terms["atlas"], lw=0.7, c="C0", alpha=0.45, label="atlas (minibatch)")
        w = max(1, min(window, len(x)))
        run = np.convolve(terms["atlas"], np.ones(w) / w, mode="valid")
        ax.plot(x[w - 1:], run, lw=2, c="C0", label=f"atlas, mean of {w} steps")
        tot = np.convolve(hist["loss"], np.ones(w) / w, mode="valid")
        ax.plot(x[w - 1:], tot, lw=1.5, c="k", label=f"total, mean of {w} steps")
        ax2.plot(x, np.asarray(terms["nt"]) * lambda_nt, lw=1.2, c="C1", label="λ_nt · NT consistency")
        ax2.plot(x, np.asarray(terms["reg"]) * lambda_w, lw=1.2, c="C2", label="λ_w · L2 to c302")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.set_title("data term (scale-invariant)")
    ax2.set_xlabel("step")
    ax2.set_yscale("log")
    ax2.legend(fontsize=8)
    ax2.set_title("penalties")
    fig.suptitle("synapse_polarity: loss per term")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def figures(su, hist, resp_fit, resp_c302, stim_all, run_dir: Path) -> None:
    """``loss_curves.png`` (from the loop's ``loss_history.json``), ``response_matrices.png``, ``response_scatter.png``."""
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

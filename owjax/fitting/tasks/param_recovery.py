"""``param_recovery``: can the fit find known conductances again, and which can it not?

Protocol. A c302 sub-network (default: c302's 14-cell C1 ``Oscillator`` network — AVB and the
DA/DB/DD/VA/VB/VD motor neurons of two segments) is driven by current steps, the same step into
every cell, one *condition* per amplitude (e.g. −0.1, 0.5, 1, 2, 3.5 pA from 20 to 220 ms); the
conditions run in parallel (``vmap``, split over all devices by ``owjax.core.sharding``). The traces simulated with c302's own parameters are the
data. The fit starts from conductance densities perturbed by 20–50 % (random sign, per group) and
minimises the mean squared voltage error (in units of 1 mV²).

Identifiability. At the optimum the Jacobian J of the residuals (in units of an assumed voltage
noise σ, default 1 mV per sample) with respect to log(parameter) gives the Fisher information
F = JᵀJ. With a weak log-normal prior (σ_prior = 1, i.e. ±100 %), the Laplace posterior
covariance is C = (F + I)⁻¹; parameter *i* is *identifiable* when its marginal standard deviation
√C_ii is at most half the recovery tolerance (so the 95 % interval lies within ±5 %). For every
other parameter the report says why, from J: either the traces hardly depend on it (small column
norm: the channel barely conducts in this protocol) or its effect is compensated by others (it
loads on one of the soft eigenvectors of F together with them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from owjax.neural.build import build_model, build_spec
from owjax.fitting.losses import normalised_mse
from owjax.fitting.params import ParameterSpace, inverse_transform
from owjax.core.sharding import sharded_vmap
from owjax.core.solve import solve_ys
from owjax.neural.spec import PulseInput
from owjax.fitting.tasks.base import AbstractExperiment, FitProblem, section, solver_from_config

__all__ = ["ParamRecovery", "identifiability", "log_value_map"]

log = logging.getLogger("owjax.fitting.tasks.param_recovery")


def _simulate_conditions(model, amplitudes, duration_ms, dt_out_ms, solver, adjoint=None):
    """V (K, T, N) mV and Ca (K, T, N) nM for K stimulus conditions (rows of ``amplitudes``).

    ``adjoint=diffrax.ForwardMode()`` makes it forward-differentiable (for Jacobians).
    """

    def one(amp):
        m = eqx.tree_at(lambda m: m.stimuli.amplitude_pA, model, amp)
        sol = solve_ys(m, duration_ms, dt_out_ms, solver, adjoint=adjoint, throw=False)
        return sol.ys["V"], sol.ys["Ca"]

    return sharded_vmap(one)(amplitudes)  # the conditions split over all devices JAX sees


_simulate_jit = eqx.filter_jit(_simulate_conditions)


def log_value_map(space: ParameterSpace):
    """``theta -> raw``: the trainable groups' unconstrained values from log(group value)."""
    blocks = space.trainable

    def raw_of_log(theta):
        out, o = {}, 0
        for b in blocks:
            out[b.name] = inverse_transform(jnp.exp(theta[o:o + b.n_groups]), b.transform, b.lower, b.upper)
            o += b.n_groups
        return out

    return raw_of_log


def identifiability(
    jacobian_fn,
    space: ParameterSpace,
    raw: Mapping[str, jax.Array],
    tolerance: float = 0.05,
    prior_sd: float = 1.0,
) -> dict:
    """Fisher/Laplace identifiability of the trainable groups at ``raw``.

    Arguments:
        jacobian_fn: ``theta -> ∂r/∂theta`` with theta = log(group values) (see :func:`log_value_map`)
            and r the residuals in units of the measurement noise (dimensionless).
        space: the parameter space.
        raw: the optimum (unconstrained values).
        tolerance: relative recovery tolerance; identifiable ⇔ marginal SD ≤ tolerance/2.
        prior_sd: SD of the weak Gaussian prior on log(parameter).

    Returns:
        dict with ``labels``, ``eigenvalues`` (of F, ascending), ``marginal_sd`` (relative),
        ``sensitivity`` (‖∂r/∂log p‖), ``identifiable`` (bools), ``reasons`` (text per label,
        empty for identifiable ones), ``eigenvectors``.
    """
    blocks = space.trainable
    labels = [f"{b.name}:{lab}" for b in blocks for lab in b.labels]
    vals = {k: np.asarray(v) for k, v in space.values(raw).items()}
    logv0 = jnp.concatenate([jnp.log(jnp.asarray(vals[b.name])) for b in blocks])
    jac = jacobian_fn(logv0)
    J = np.asarray(jac, dtype=np.float64)
    F = J.T @ J
    C = np.linalg.inv(F + np.eye(len(labels)) / prior_sd**2)
    sd = np.sqrt(np.clip(np.diag(C), 0, None))
    sens = np.linalg.norm(J, axis=0)
    evals, evecs = np.linalg.eigh(F)
    ok = sd <= tolerance / 2
    # what a 2·tolerance change does, alone: Δχ² = (2·tol·sens)², i.e. rms change per sample
    n_res = J.shape[0]
    reasons = []
    soft = evals < 1.0 / (tolerance / 2) ** 2
    for i, lab in enumerate(labels):
        if ok[i]:
            reasons.append("")
            continue
        alone_sd = 1.0 / np.sqrt(sens[i] ** 2 + 1.0 / prior_sd**2)
        rms = tolerance * sens[i] / np.sqrt(n_res)
        if alone_sd > tolerance / 2:
            reasons.append(
                f"no measurable effect: a {tolerance:.0%} change moves the traces by {rms:.2g} σ rms "
                "(the current through it is negligible in this protocol)"
            )
            continue
        loads = np.abs(evecs[:, soft])
        if loads.size:
            k = int(np.argmax(loads[i]))
            v = evecs[:, soft][:, k]
            order = [j for j in np.argsort(-np.abs(v)) if j != i]
            partners = [labels[j] for j in order if abs(v[j]) > 0.25][:4] or [labels[j] for j in order[:3]]
            txt = ", ".join(
                f"{p} ({'opposite' if v[labels.index(p)] * v[i] < 0 else 'same'} direction)" for p in partners
            )
            reasons.append(
                f"compensated: alone it would be pinned to ±{2 * alone_sd:.1%}, but it trades off against "
                f"{txt} along a flat direction (Fisher eigenvalue {evals[soft][k]:.3g}; its loading "
                f"{abs(v[i]):.2f})"
            )
        else:
            reasons.append(f"weakly constrained (marginal SD {sd[i]:.1%})")
    return dict(
        labels=labels, eigenvalues=evals.tolist(), marginal_sd=sd.tolist(), sensitivity=sens.tolist(),
        identifiable=ok.tolist(), reasons=reasons, eigenvectors=evecs.tolist(), n_residuals=int(n_res),
    )


class ParamRecovery(AbstractExperiment):
    """Recover perturbed conductance densities of a c302 sub-network from simulated traces."""

    kind = "param_recovery"

    def build(self, cfg: Mapping, seed: int, run_dir: Path | None = None) -> FitProblem:
        net = section(cfg, "network", ("parameter_set", "config"), ("parameter_set", "config", "cells"))
        proto = section(
            cfg, "protocol", ("amplitudes_pA", "delay_ms", "duration_ms"),
            ("cells", "amplitudes_pA", "delay_ms", "duration_ms", "sim_duration_ms", "dt_out_ms", "observe",
             "noise_mV", "tolerance", "solver"),
        )
        spec = build_spec(net["parameter_set"], net["config"], cells=net.get("cells") or None, stimulus_mode="none")
        cells = proto.get("cells") or "all"
        cells = list(spec.cell_names) if cells == "all" else list(cells)
        spec.check_cells(cells)
        spec = spec.with_inputs(
            [PulseInput(c, float(proto["delay_ms"]), float(proto["duration_ms"]), 0.0, id=f"step_{c}") for c in cells]
        )
        model = build_model(spec, str(cfg.get("dtype", "float64")))
        amps = [float(a) for a in proto["amplitudes_pA"]]
        if not amps:
            raise ValueError("protocol.amplitudes_pA is empty: give at least one step amplitude (pA)")
        amplitudes = jnp.asarray(np.outer(amps, np.ones(len(cells))), dtype=model.dtype)
        duration = float(proto.get("sim_duration_ms", float(proto["delay_ms"]) + float(proto["duration_ms"]) + 80.0))
        dt_out = float(proto.get("dt_out_ms", 1.0))
        solver = solver_from_config(proto.get("solver"))
        observe = list(proto.get("observe", ["V"]))
        bad = sorted(set(observe) - {"V", "Ca"})
        if bad:
            raise ValueError(f"protocol.observe: unknown variable(s) {bad}; allowed: V, Ca")
        noise = float(proto.get("noise_mV", 1.0))
        tol = float(proto.get("tolerance", 0.05))

        space = ParameterSpace(model, cfg["parameters"], seed=seed)  # errors here, before compiling

        V, Ca = _simulate_jit(model, amplitudes, duration, dt_out, solver)  # the truth: c302's parameters
        if not (np.all(np.isfinite(np.asarray(V))) and np.all(np.isfinite(np.asarray(Ca)))):
            raise RuntimeError("param_recovery: the reference simulation failed (non-finite traces)")
        ca_scale = float(jnp.maximum(jnp.std(Ca), 1e-6))
        data = dict(V=V, Ca=Ca, amplitudes=amplitudes)

        def terms(m, d):
            v, ca = _simulate_conditions(m, d["amplitudes"], duration, dt_out, solver)
            out = {}
            if "V" in observe:
                out["V"] = normalised_mse(v, d["V"], 1.0)
            if "Ca" in observe:
                out["Ca"] = normalised_mse(ca, d["Ca"], ca_scale)
            return out

        def residuals(raw):
            import diffrax

            m = space.apply(model, raw)
            v, ca = _simulate_conditions(m, amplitudes, duration, dt_out, solver, adjoint=diffrax.ForwardMode())
            parts = []
            if "V" in observe:
                parts.append(((v - V) / noise).reshape(-1))
            if "Ca" in observe:
                parts.append(((ca - Ca) / ca_scale).reshape(-1))
            return jnp.concatenate(parts)

        raw_of_log = log_value_map(space)
        jacobian = jax.jit(jax.jacfwd(lambda theta: residuals(raw_of_log(theta))))  # compiled once per build

        def report(problem, raw0, raw1, out_dir, figures=True):
            return _report(problem, raw0, raw1, out_dir, figures, jacobian, tol, cells, amps, duration, dt_out,
                           solver, noise)

        return FitProblem(
            model=model, space=space, data=data, terms=terms, weights=dict(cfg.get("loss", {}).get("weights", {})),
            data_description=(
                f"owjax simulation of {spec.name} ({len(spec.cells)} cells) with c302 {net['parameter_set']} "
                f"parameters, current steps {amps} pA into {len(cells)} cells, {duration:g} ms, observed {observe}"
            ),
            loss_description="mean squared voltage error (mV²)" + (" + normalised Ca MSE" if "Ca" in observe else ""),
            report=report,
            info=dict(network=spec.name, n_cells=len(spec.cells), conditions_pA=amps, duration_ms=duration,
                      n_trainable=space.n_trainable),
        )


def _report(problem, raw0, raw1, out_dir, figures, jacobian, tol, cells, amps, duration, dt_out, solver, noise):
    space = problem.space
    ident = identifiability(jacobian, space, raw1, tolerance=tol)
    vals0 = space.values(raw0)
    vals1 = space.values(raw1)
    rows = []
    for b in space.trainable:
        for g, lab in enumerate(b.labels):
            rows.append(dict(
                label=f"{b.name}:{lab}", true=float(b.default[g]), init=float(np.asarray(vals0[b.name])[g]),
                fitted=float(np.asarray(vals1[b.name])[g]), unit=b.unit,
            ))
    for r, sd, s, ok, why in zip(rows, ident["marginal_sd"], ident["sensitivity"], ident["identifiable"],
                                 ident["reasons"]):
        r.update(rel_error=abs(r["fitted"] / r["true"] - 1.0), init_rel_error=abs(r["init"] / r["true"] - 1.0),
                 marginal_sd=sd, sensitivity=s, identifiable=bool(ok), reason=why)
    ident_err = [r["rel_error"] for r in rows if r["identifiable"]]
    metrics = dict(
        max_rel_error_identifiable=float(max(ident_err)) if ident_err else float("nan"),
        n_identifiable=len(ident_err),
        non_identifiable=[r["label"] for r in rows if not r["identifiable"]],
        max_rel_error_all=float(max(r["rel_error"] for r in rows)),
        max_initial_rel_error=float(max(r["init_rel_error"] for r in rows)),
        recovery_tolerance=tol,
        identifiability_rule=(
            f"marginal SD of log(parameter) ≤ {tol / 2:g} under {noise:g} mV Gaussian voltage noise per sample "
            "(Laplace approximation at the optimum, log-normal prior SD 1)"
        ),
        parameters=rows,
        fisher_eigenvalues=ident["eigenvalues"],
    )
    if figures and out_dir is not None:
        _figures(problem, raw0, raw1, out_dir, rows, ident, amps, duration, dt_out, solver, tol)
    return metrics


def _figures(problem, raw0, raw1, out_dir, rows, ident, amps, duration, dt_out, solver, tol):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from owjax.core.checkpoint import atomic_savefig

    space, model, data = problem.space, problem.model, problem.data
    V0, _ = _simulate_jit(space.apply(model, raw0), data["amplitudes"], duration, dt_out, solver)
    V1, _ = _simulate_jit(space.apply(model, raw1), data["amplitudes"], duration, dt_out, solver)
    V0, V1, VT = (np.asarray(x) for x in (V0, V1, data["V"]))
    t = np.arange(VT.shape[1]) * dt_out
    show_cells = list(range(min(6, VT.shape[2])))
    conds = sorted({0, len(amps) // 2, len(amps) - 1})
    fig, axes = plt.subplots(len(conds), len(show_cells), figsize=(2.6 * len(show_cells), 2.2 * len(conds)),
                             squeeze=False, sharex=True)
    for r, k in enumerate(conds):
        for c, i in enumerate(show_cells):
            ax = axes[r, c]
            ax.plot(t, VT[k, :, i], "k", lw=1.6, label="data (true parameters)")
            ax.plot(t, V0[k, :, i], color="0.6", ls="--", lw=1, label="start (perturbed)")
            ax.plot(t, V1[k, :, i], "r", lw=0.9, label="fitted")
            if r == 0:
                ax.set_title(model.cell_names[i], fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{amps[k]:g} pA\nV (mV)", fontsize=8)
            if r == len(conds) - 1:
                ax.set_xlabel("t (ms)", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=6, loc="best")
    fig.suptitle("param_recovery: traces before and after the fit", fontsize=10)
    fig.tight_layout()
    atomic_savefig(fig, Path(out_dir) / "traces_before_after.png", dpi=110)
    plt.close(fig)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw=dict(width_ratios=[3, 1]))
    x = np.arange(len(rows))
    a1.axhspan(-5, 5, color="0.9", label="±5 %")
    a1.plot(x, [100 * (r["init"] / r["true"] - 1) for r in rows], "o", color="0.6", ms=4, label="start")
    col = ["tab:red" if r["identifiable"] else "tab:blue" for r in rows]
    a1.errorbar(x, [100 * (r["fitted"] / r["true"] - 1) for r in rows],
                yerr=[200 * min(r["marginal_sd"], 1.0) for r in rows], fmt="none", ecolor="0.5", lw=0.8)
    a1.scatter(x, [100 * (r["fitted"] / r["true"] - 1) for r in rows], c=col, s=18, zorder=3,
               label="fitted (red: identifiable, blue: not)")
    a1.set_xticks(x, [r["label"].split(":", 1)[1] for r in rows], rotation=90, fontsize=6)
    a1.set_ylabel("error vs true value (%)")
    a1.set_yscale("symlog", linthresh=10)
    a1.legend(fontsize=7)
    a1.set_title("recovered conductance densities (bars: ±2 marginal SD at 1 mV noise)", fontsize=9)
    ev = np.maximum(np.asarray(ident["eigenvalues"]), 1e-12)
    a2.semilogy(np.arange(len(ev)), ev[::-1], "k.-")
    a2.axhline(1.0 / (tol / 2) ** 2, color="r", ls="--", lw=0.8, label="identifiability threshold")
    a2.set_xlabel("eigen-direction (stiff → flat)")
    a2.set_ylabel("Fisher eigenvalue")
    a2.legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, Path(out_dir) / "identifiability.png", dpi=110)
    plt.close(fig)

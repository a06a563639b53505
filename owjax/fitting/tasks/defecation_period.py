"""``defecation_period``: fit intestinal oscillator parameters to a 50 s defecation cycle (DD009).

The intestine (:class:`owjax.organs.intestine.IntestineOscillator`) starts from parameters whose Ca²⁺
oscillation period is far from 50 s (the experiment config sets e.g. the IP3-receptor
inactivation rate ``a2`` so that the period is ≈ 73 s). The loss is the squared relative error of
a smooth period estimate — the first autocorrelation peak of int1's Ca²⁺ after the initial
transient, refined by a parabola (:func:`owjax.fitting.losses.autocorrelation_period`) — plus a term that
keeps the oscillation alive (autocorrelation peak height ≥ 0.5). The reported periods are the
peak-to-peak intervals of :func:`owjax.organs.intestine.oscillation_period` (not the loss's estimate).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from owjax.fitting.losses import autocorrelation_period, relative_squared_error
from owjax.fitting.params import ParameterSpace
from owjax.fitting.tasks.base import AbstractExperiment, FitProblem, section

__all__ = ["DefecationPeriod"]


class DefecationPeriod(AbstractExperiment):
    """Fit intestine parameters so the Ca²⁺ oscillation period hits a target (default 50 s)."""

    kind = "defecation_period"

    def build(self, cfg: Mapping, seed: int, run_dir: Path | None = None) -> FitProblem:
        from owjax.organs.intestine import IntestineOscillator, cell_names, oscillation_period, simulate_intestine

        ic = section(cfg, "intestine", (), ("parameter_file", "overrides", "duration_s", "transient_s", "dt_out_s",
                                            "solver", "rtol", "atol", "max_steps"))
        tg = section(cfg, "target", ("period_s",), ("period_s", "tolerance_s", "min_period_s", "max_period_s",
                                                    "cell", "min_peak"))
        model = IntestineOscillator.from_yaml(ic.get("parameter_file"), **dict(ic.get("overrides") or {}))
        duration = float(ic.get("duration_s", 400.0))
        transient = float(ic.get("transient_s", 100.0))
        dt = float(ic.get("dt_out_s", 0.5))
        if not 0 <= transient < duration:
            raise ValueError(f"intestine.transient_s={transient} must lie in [0, duration_s={duration})")
        solver = str(ic.get("solver", "tsit5"))
        sim_kw = dict(solver=solver, rtol=float(ic.get("rtol", 1e-6)), atol=float(ic.get("atol", 1e-8)),
                      max_steps=int(ic.get("max_steps", 100_000)))
        target = float(tg["period_s"])
        tol = float(tg.get("tolerance_s", 2.0))
        window = duration - transient
        pmin = float(tg.get("min_period_s", 10.0))
        pmax = float(tg.get("max_period_s", window / 2))
        if pmax > window / 2 + 1e-9:
            raise ValueError(f"target.max_period_s={pmax} exceeds half the analysed window ({window / 2} s)")
        names = cell_names(model.n_cells)
        cell = str(tg.get("cell", names[0]))
        if cell not in names:
            from owjax.neural.spec import unknown_name_message

            raise ValueError(unknown_name_message("intestinal cell", cell, names))
        ci = names.index(cell)
        i0 = int(round(transient / dt))
        min_peak = float(tg.get("min_peak", 0.5))

        space = ParameterSpace(model, cfg["parameters"], seed=seed)

        def terms(m, data):
            out = simulate_intestine(m, duration, dt, **sim_kw)
            period, height = autocorrelation_period(out["Ca"][ci, i0:], dt, pmin, pmax)
            return {
                "period": relative_squared_error(period, target),
                "oscillation": jax.nn.relu(min_peak - height) ** 2,
            }

        sim = eqx.filter_jit(lambda m: simulate_intestine(m, duration, dt, **sim_kw))

        def measured_period(m):
            out = sim(m)
            t, ca = np.asarray(out["t"]), np.asarray(out["Ca"][ci])
            return oscillation_period(t, ca, t_min=transient), out

        def report(problem, raw0, raw1, out_dir, figures=True):
            m0, m1 = space.apply(model, raw0), space.apply(model, raw1)
            p0, out0 = measured_period(m0)
            p1, out1 = measured_period(m1)
            est1, _ = jax.jit(lambda x: autocorrelation_period(x, dt, pmin, pmax))(out1["Ca"][ci, i0:])
            vals0, vals1 = space.values(raw0), space.values(raw1)
            in_spec = space.in_bounds(raw1)
            phys_ok = {}
            for b in space.blocks:
                v = np.asarray(vals1[b.name])
                lo, hi = b.rows.info.bounds or (-np.inf, np.inf)
                phys_ok[b.name] = bool(np.all((v >= lo) & (v <= hi)) and np.all(np.isfinite(v)))
            params = {
                b.name: dict(leaf=b.spec.leaf, unit=b.unit, start=float(np.asarray(vals0[b.name])[0]),
                             fitted=float(np.asarray(vals1[b.name])[0]), bounds=[b.lower, b.upper])
                for b in space.blocks
            }
            metrics = dict(
                target_period_s=target, initial_period_s=float(p0), period_s=float(p1),
                period_error_s=float(p1 - target), within_tolerance=bool(abs(p1 - target) <= tol),
                smooth_period_estimate_s=float(est1),
                initial_period_off_percent=float(100 * (p0 / target - 1)),
                all_in_bounds=bool(all(in_spec.values()) and all(phys_ok.values())), parameters=params,
            )
            if figures and out_dir is not None:
                _figure(Path(out_dir), out0, out1, ci, cell, p0, p1, target, params)
            return metrics

        return FitProblem(
            model=model, space=space, data={}, terms=terms, weights=dict(cfg.get("loss", {}).get("weights", {})),
            data_description=f"target Ca²⁺ oscillation period {target:g} s of {cell} (DD009 defecation cycle)",
            loss_description="squared relative error of the autocorrelation period + oscillation-strength hinge",
            report=report,
            info=dict(duration_s=duration, transient_s=transient, cell=cell, n_trainable=space.n_trainable),
        )


def _figure(out_dir, out0, out1, ci, cell, p0, p1, target, params):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from owjax.core.checkpoint import atomic_savefig

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw=dict(width_ratios=[2.2, 1]))
    a1.plot(np.asarray(out0["t"]), np.asarray(out0["Ca"][ci]), color="0.55", lw=1, label=f"start: {p0:.1f} s")
    a1.plot(np.asarray(out1["t"]), np.asarray(out1["Ca"][ci]), "r", lw=1.2, label=f"fitted: {p1:.1f} s")
    a1.set_xlabel("t (s)")
    a1.set_ylabel(f"Ca²⁺ {cell} (µM)")
    a1.set_title(f"defecation_period: target {target:g} s")
    a1.legend(fontsize=8)
    names = list(params)
    x = np.arange(len(names))
    for j, n in enumerate(names):
        p = params[n]
        a2.plot([j, j], [p["bounds"][0], p["bounds"][1]] if np.isfinite(p["bounds"][1]) else [p["bounds"][0], 1e3],
                color="0.85", lw=8, solid_capstyle="butt")
        a2.plot(j, p["start"], "o", color="0.5")
        a2.plot(j, p["fitted"], "r*", ms=10)
    a2.set_yscale("log")
    a2.set_xticks(x, [f"{n}\n({params[n]['unit']})" for n in names], fontsize=7, rotation=30)
    a2.set_title("start (grey) → fitted (red), bar = bounds", fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, out_dir / "traces_before_after.png", dpi=110)
    plt.close(fig)

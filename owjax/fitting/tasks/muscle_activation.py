"""``muscle_activation``: fit neuron→muscle synaptic strengths to a travelling-wave activation template.

Model: c302's ``Muscles`` network (C1: 134 neurons and 95 body-wall muscles, AVBL/AVBR driven by
c302's 5 pA offset current). Muscle activation is DD002's ``min(1, [Ca]/4e-7 mM)``; the loss uses
a smooth version (:func:`owjax.fitting.losses.soft_saturation`, sharpness 20) so saturated muscles keep a
gradient, and all reported numbers use the exact ``min``.

Target (the *travelling-wave template*): for a muscle in quadrant q ∈ {DL, DR, VL, VR} at body
row i = 1 … 24 (head to tail) at time t,

    A*(t, i, q) = A · env(t) · ½ · [1 + cos(2π (i − 1)/λ − 2π t/T + φ_q)],   φ_D = 0, φ_V = π

with env(t) = σ((t − t_on)/w) · σ((t_off − t)/w) the time window in which the network is active.
Dorsal and ventral muscles of the same row are in antiphase (alternation); the phase advances
with row and time (a wave travelling head → tail, like forward locomotion). Defaults: A = 0.5,
λ = 16 rows (1.5 waves on the body, as in crawling), T = 1000 ms, t_on = 70 ms, t_off = 170 ms,
w = 10 ms. Why a window: under c302's drive the C1 motor circuit fires one burst (≈60–200 ms)
and is silent afterwards, so no neuron→muscle weight can shape later activity; the fit can only
distribute the burst over the muscles (hence the template's spatial pattern is what is learned).

Trainable: the weights of every neuron→muscle graded synapse (one per connection, bounds
[0, 100] synapse-count equivalents, sigmoid transform), with a small L2 pull towards c302's
counts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from owjax.neural.build import build_model, build_spec
from owjax.fitting.losses import mean_squared_error, muscle_activation
from owjax.fitting.params import ParameterSpace
from owjax.core.solve import solve_ys
from owjax.neural.spec import is_body_wall_muscle
from owjax.core.units import CA_STATE_SCALE
from owjax.fitting.tasks.base import AbstractExperiment, FitProblem, section, solver_from_config

__all__ = ["MuscleActivation", "travelling_wave_template"]

_MUSCLE = re.compile(r"^M([DV])([LR])(\d\d)$")


def travelling_wave_template(
    t_ms: np.ndarray,
    muscles: list[str],
    amplitude: float = 0.5,
    wavelength_rows: float = 16.0,
    period_ms: float = 1000.0,
    onset_ms: float = 70.0,
    offset_ms: float = 170.0,
    edge_ms: float = 10.0,
) -> np.ndarray:
    """The target activation (T, M) of the module docstring (dimensionless, 0 … ``amplitude``).

    Arguments:
        t_ms: times (ms), shape (T,).
        muscles: body-wall muscle names (``MDL01`` … ``MVR24``).
        amplitude: peak activation A.
        wavelength_rows: λ in muscle rows.
        period_ms: T of the travelling wave.
        onset_ms, offset_ms, edge_ms: the activity window env(t).

    Returns:
        Array (T, M).
    """
    t = np.asarray(t_ms, dtype=np.float64)[:, None]
    rows, phase = [], []
    for m in muscles:
        g = _MUSCLE.match(m)
        if not g:
            raise ValueError(f"{m!r} is not a body-wall muscle name (MDL01 … MVR24)")
        rows.append(int(g.group(3)))
        phase.append(0.0 if g.group(1) == "D" else np.pi)
    rows, phase = np.asarray(rows, float)[None, :], np.asarray(phase)[None, :]
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    env = sig((t - onset_ms) / edge_ms) * sig((offset_ms - t) / edge_ms)
    wave = 0.5 * (1 + np.cos(2 * np.pi * (rows - 1) / wavelength_rows - 2 * np.pi * t / period_ms + phase))
    return amplitude * env * wave


class MuscleActivation(AbstractExperiment):
    """Fit neuron→muscle weights of c302's Muscles network to a travelling-wave template."""

    kind = "muscle_activation"

    def build(self, cfg: Mapping, seed: int, run_dir: Path | None = None) -> FitProblem:
        net = section(cfg, "network", ("parameter_set", "config"), ("parameter_set", "config", "cells"))
        sim_cfg = section(cfg, "simulation", ("duration_ms",), ("duration_ms", "dt_out_ms", "solver"))
        tp = section(cfg, "template", (), ("amplitude", "wavelength_rows", "period_ms", "onset_ms", "offset_ms",
                                           "edge_ms", "max_ca_mM", "smooth"))
        spec = build_spec(net["parameter_set"], net["config"], cells=net.get("cells") or None, stimulus_mode="c302")
        model = build_model(spec, str(cfg.get("dtype", "float64")))
        muscles = [c for c in model.cell_names if is_body_wall_muscle(c)]
        if not muscles:
            raise ValueError(f"network {spec.name} has no body-wall muscles; muscle_activation needs them")
        midx = jnp.asarray([model.index(c) for c in muscles])
        duration = float(sim_cfg["duration_ms"])
        dt = float(sim_cfg.get("dt_out_ms", 2.0))
        solver = solver_from_config(sim_cfg.get("solver"))
        max_ca = float(tp.get("max_ca_mM", 4e-7))
        smooth = float(tp.get("smooth", 20.0))
        t = np.arange(int(round(duration / dt)) + 1) * dt
        tkw = {k: float(tp[k]) for k in ("amplitude", "wavelength_rows", "period_ms", "onset_ms", "offset_ms",
                                         "edge_ms") if k in tp}
        target = jnp.asarray(travelling_wave_template(t, muscles, **tkw), dtype=model.dtype)

        space = ParameterSpace(model, cfg["parameters"], seed=seed)

        def activation(m, smooth_=smooth):
            sol = solve_ys(m, duration, dt, solver, throw=False)
            ca_mM = sol.ys["Ca"][:, midx] / CA_STATE_SCALE
            return muscle_activation(ca_mM, max_ca, smooth=smooth_)

        def terms(m, data):
            return {"activation": mean_squared_error(activation(m), data["target"])}

        exact = eqx.filter_jit(lambda m: activation(m, None))

        def report(problem, raw0, raw1, out_dir, figures=True):
            a0 = np.asarray(exact(space.apply(model, raw0)))
            a1 = np.asarray(exact(space.apply(model, raw1)))
            a_def = np.asarray(exact(model))
            tg = np.asarray(target)
            mse = lambda a: float(np.mean((a - tg) ** 2))  # noqa: E731
            dorsal = np.array([m[1] == "D" for m in muscles])

            def dv_corr(a):  # correlation of the dorsal−ventral difference with the template's, per row
                return float(np.corrcoef(_dv(a, muscles).ravel(), _dv(tg, muscles).ravel())[0, 1])

            b = space.trainable[0] if space.trainable else None
            wv = np.asarray(space.values(raw1)[b.name]) if b else np.array([])
            metrics = dict(
                activation_mse_exact_initial=mse(a0), activation_mse_exact_final=mse(a1),
                activation_mse_c302_default=mse(a_def),
                dorsal_ventral_correlation_initial=dv_corr(a0), dorsal_ventral_correlation_final=dv_corr(a1),
                peak_activation_dorsal=float(a1[:, dorsal].max()), peak_activation_ventral=float(a1[:, ~dorsal].max()),
                n_muscles=len(muscles), n_weights=int(wv.size),
                weights_changed_over_10_percent=int(np.sum(np.abs(wv / np.maximum(b.default, 1e-12) - 1) > 0.1))
                if b else 0,
            )
            if figures and out_dir is not None:
                _figure(Path(out_dir), t, muscles, tg, a0, a1)
            return metrics

        return FitProblem(
            model=model, space=space, data=dict(target=target), terms=terms,
            weights=dict(cfg.get("loss", {}).get("weights", {})),
            data_description=(
                "travelling-wave activation template (dorsal/ventral antiphase, "
                + ", ".join(f"{k}={v:g}" for k, v in tkw.items()) + f") over {duration:g} ms of {spec.name}"
            ),
            loss_description="mean squared error of smooth DD002 muscle activation vs the template",
            report=report,
            info=dict(network=spec.name, n_cells=len(spec.cells), duration_ms=duration, n_trainable=space.n_trainable),
        )


def _dv(a: np.ndarray, muscles: list[str]) -> np.ndarray:
    """Dorsal minus ventral mean activation per row (T, 24)."""
    out = np.zeros((a.shape[0], 24))
    for r in range(1, 25):
        d = [j for j, m in enumerate(muscles) if m[1] == "D" and int(m[3:]) == r]
        v = [j for j, m in enumerate(muscles) if m[1] == "V" and int(m[3:]) == r]
        out[:, r - 1] = (a[:, d].mean(1) if d else 0.0) - (a[:, v].mean(1) if v else 0.0)
    return out


def _figure(out_dir, t, muscles, tg, a0, a1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from owjax.core.checkpoint import atomic_savefig

    order = sorted(range(len(muscles)), key=lambda j: (muscles[j][1], muscles[j][2], muscles[j][3:]))
    fig, axes = plt.subplots(1, 4, figsize=(15, 5), gridspec_kw=dict(width_ratios=[1, 1, 1, 1.2]))
    vmax = max(tg.max(), a0.max(), a1.max(), 1e-3)
    for ax, a, title in zip(axes[:3], (tg, a0, a1), ("template", "start (c302 weights)", "fitted")):
        ax.imshow(a[:, order].T, aspect="auto", origin="lower", extent=[t[0], t[-1], 0, len(order)], vmin=0,
                  vmax=vmax, cmap="magma")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("t (ms)")
        for q in range(1, 4):
            ax.axhline(len(order) * q / 4, color="w", lw=0.5)
    axes[0].set_ylabel("muscles (DL, DR, VL, VR; head→tail)")
    ax = axes[3]
    tpk = int(np.argmax(tg.sum(1)))
    rows = np.arange(1, 25)
    for a, style, color, lab in ((tg, "-", "k", "template"), (a0, "--", "0.5", "start"), (a1, "-", "r", "fitted")):
        ax.plot(rows, _dv(a, muscles)[tpk], ls=style, color=color, label=lab)
    ax.axhline(0, color="0.8", lw=0.5)
    ax.set_xlabel("body row (head → tail)")
    ax.set_ylabel(f"dorsal − ventral activation at t = {t[tpk]:.0f} ms")
    ax.legend(fontsize=8)
    fig.suptitle("muscle_activation: DD002 activation vs travelling-wave template", fontsize=10)
    fig.tight_layout()
    atomic_savefig(fig, out_dir / "traces_before_after.png", dpi=110)
    plt.close(fig)

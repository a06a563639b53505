"""The surrogate in use (issue 14, item 5): optimise a travelling-wave muscle pattern for forward speed
on agar by gradient *through the surrogate*, then check the optimum with the physics.

    python experiments/body_surrogate/optimise_wave.py [--model STEM] [--steps 300] [--out DIR]

The pattern: a forward travelling wave at a fixed frequency (``--frequency-hz``, default 0.5 Hz, the
crawling worm's) with a free wavelength λ ∈ [0.4, 2] body lengths and a free amplitude per muscle
segment, A_i ∈ [0.25, 0.9] (24 numbers, head → tail) — the training ranges of the ``wave`` family,
enforced by a logistic map of unconstrained parameters. Dorsal activation A_i (1 + sin ψ)/2,
ventral A_i (1 − sin ψ)/2, ψ = 2π (f t − s_i/λ). 5-s runs from rest; the objective is the forward
centroid speed after a 1-s transient (mm/s; the body starts straight, head towards −x).

Adam (optax) on the surrogate's speed; the gradient is exact through the FNO (``jax.grad``).
The start is the uniform pattern A_i = 0.5, λ = 0.6 L. Two runs:

* ``free``: maximise the surrogate's speed alone;
* ``bounded``: maximise it minus a penalty ``--penalty`` · max(0, log(ê / b)) where ê is the surrogate's
  own error estimate (:meth:`~owjax.surrogate.component.NoveltyEstimator.estimate_differentiable`, the
  one ``backend="auto"`` uses, differentiated) and b = ``--trust`` × the fallback bound — the
  optimiser stays where the surrogate vouches for itself.

Checked with the physics (owjax's body, Tsit5 rtol = atol = 1e-5, float64, the training data's
settings): the start, both optima, and sweeps of λ at each optimum's amplitudes and at the uniform
amplitude — where is the physics' best wavelength, and does the surrogate's landscape follow it?

Writes ``DIR/optimise_wave.json`` and ``DIR/optimise_wave.png`` (default DIR: experiments/body_surrogate/results).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LAM = (0.4, 2.0)
AMP = (0.25, 0.9)
TRANSIENT_S = 1.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="surrogate STEM (default: the shipped one)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--frequency-hz", type=float, default=0.5)
    ap.add_argument("--medium", default="agar")
    ap.add_argument("--penalty", type=float, default=1.0, help="mm/s per unit of log(estimate / trust bound)")
    ap.add_argument("--trust", type=float, default=0.5, help="trust bound as a fraction of the fallback bound")
    ap.add_argument("--out", default=str(HERE / "results"))
    a = ap.parse_args(argv)

    from owjax.core.precision import set_precision

    set_precision("float64")
    import jax
    import jax.numpy as jnp
    import optax

    from owjax.body import metrics as M
    from owjax.body.integrate import BodySolver
    from owjax.body.media import resolve_medium
    from owjax.core.checkpoint import atomic_savefig, atomic_write_json
    from owjax.surrogate import families as F
    from owjax.surrogate.component import BodySurrogate
    from owjax.surrogate.data import PhysicsRunner, skeleton_from_features

    if not (F.WAVE_RANGES["frequency_hz"][0] <= a.frequency_hz <= F.WAVE_RANGES["frequency_hz"][1]):
        ap.error(f"--frequency-hz must be in the training range {F.WAVE_RANGES['frequency_hz']} Hz")
    medium = resolve_medium(a.medium).value
    if medium is None:
        ap.error("--medium must be on the water–agar line (agar, water or a number in [0, 1])")
    sur = BodySurrogate.load(a.model)
    dur, dt = float(sur.settings["duration_s"]), float(sur.settings["dt_data_s"])
    t = F.time_grid(dur, dt)
    keep = t >= TRANSIENT_S
    s = (np.arange(F.N_MUSCLE_SEGMENTS) + 0.5) / F.N_MUSCLE_SEGMENTS
    f = float(a.frequency_hz)

    def pattern(lam, amp):
        """(T, 2, 24) activation of wavelength lam (L) and per-segment amplitudes amp (24,)."""
        psi = 2 * jnp.pi * (f * jnp.asarray(t)[:, None] - jnp.asarray(s)[None] / lam)
        w = jnp.sin(psi)
        return jnp.stack([amp * (1 + w) / 2, amp * (1 - w) / 2], 1)

    def unpack(z):
        lam = LAM[0] + (LAM[1] - LAM[0]) * jax.nn.sigmoid(z[0])
        amp = AMP[0] + (AMP[1] - AMP[0]) * jax.nn.sigmoid(z[1:])
        return lam, amp

    def pack(lam, amp):
        logit = lambda u: np.log(u / (1 - u))  # noqa: E731
        return jnp.asarray(np.concatenate([[logit((lam - LAM[0]) / (LAM[1] - LAM[0]))],
                                           logit((np.asarray(amp) - AMP[0]) / (AMP[1] - AMP[0]))]), jnp.float32)

    t32 = jnp.asarray(t, jnp.float32)
    kk = jnp.asarray(keep)

    def forward_speed(c):
        """Forward (−x) centroid speed (mm/s) after the transient from a (T, 2) centroid."""
        x = c[:, 0]
        tt = jnp.asarray(t)
        # least-squares slope of x(t) over the kept times (robust to the undulation)
        tm = jnp.sum(jnp.where(kk, tt, 0)) / jnp.sum(kk)
        xm = jnp.sum(jnp.where(kk, x, 0)) / jnp.sum(kk)
        slope = jnp.sum(jnp.where(kk, (tt - tm) * (x - xm), 0)) / jnp.sum(jnp.where(kk, (tt - tm) ** 2, 0))
        return -slope

    def surrogate_speed(z):
        lam, amp = unpack(z)
        c, _ = sur.model(t32, pattern(lam, amp).astype(jnp.float32), jnp.float32(medium))
        return forward_speed(c)

    b_trust = float(a.trust) * sur.bound

    def bounded(z):
        lam, amp = unpack(z)
        act = pattern(lam, amp).astype(jnp.float32)
        est = sur.novelty.estimate_differentiable(sur.model, t32, act, jnp.float32(medium))
        return surrogate_speed(z) - a.penalty * jax.nn.relu(jnp.log(est / b_trust))

    z0 = pack(0.6, np.full(F.N_MUSCLE_SEGMENTS, 0.5))
    runs = {}
    t0 = time.perf_counter()
    for name, objective in (("free", surrogate_speed), ("bounded", bounded)):
        value_grad = jax.jit(jax.value_and_grad(objective))
        opt = optax.adam(a.lr)
        z, st = z0, opt.init(z0)
        hist = []
        for k in range(a.steps):
            v, g = value_grad(z)
            hist.append(float(v))
            u, st = opt.update(jax.tree_util.tree_map(lambda x: -x, g), st, z)  # ascent
            z = optax.apply_updates(z, u)
        hist.append(float(objective(z)))
        lam_opt, amp_opt = (np.asarray(x, np.float64) for x in unpack(z))
        runs[name] = {"lam": float(lam_opt), "amp": amp_opt, "hist": hist}
    opt_wall = time.perf_counter() - t0
    lam0, amp0 = (np.asarray(x, np.float64) for x in unpack(z0))

    # ---- the physics: start, optimum, and λ sweeps at the optimum's and at the uniform amplitudes
    lams = np.geomspace(LAM[0], LAM[1], 7)
    n = len(lams)
    acts = [np.asarray(pattern(lam0, amp0))] + [np.asarray(pattern(runs[r]["lam"], runs[r]["amp"])) for r in runs]
    for amps in (runs["free"]["amp"], runs["bounded"]["amp"], amp0):
        acts += [np.asarray(pattern(x, amps)) for x in lams]
    acts = np.clip(np.stack(acts), 0.0, 1.0)
    runner = PhysicsRunner.cached(dur, dt, BodySolver(rtol=1e-5, atol=1e-5), jnp.float64, batch_size=16)
    load0 = os.getloadavg()
    t1 = time.perf_counter()
    phys = runner(acts, np.full(len(acts), medium))
    phys_wall = time.perf_counter() - t1
    if not np.all(phys["ok"]):
        raise RuntimeError("a physics solve failed")
    res = sur.predict(t, acts, medium, backend="surrogate")

    def speeds(c, th):
        """Forward speed by the same slope, and the tier-3 signed speed of owjax.body.metrics."""
        out = []
        for i in range(len(c)):
            x, y = skeleton_from_features(c[i], th[i])
            out.append((float(forward_speed(jnp.asarray(c[i]))),
                        float(M.locomotion_summary(t, x, y, None, transient_s=TRANSIENT_S)["speed_mm_s"])))
        return np.asarray(out)

    sp_phys = speeds(phys["centroid_mm"], phys["tangent_angle_rad"])
    sp_sur = speeds(res.centroid_mm, res.tangent_angle_rad)
    def point(i):
        return {"surrogate_speed_mm_s": float(sp_sur[i, 0]), "physics_speed_mm_s": float(sp_phys[i, 0]),
                "tier3_speed_mm_s": {"surrogate": float(sp_sur[i, 1]), "physics": float(sp_phys[i, 1])},
                "surrogate_error_estimate_body_lengths": float(res.error_estimate[i]),
                "surrogate_error_vs_physics_body_lengths": float(np.sqrt(np.mean(np.sum(
                    (res.centroid_mm[i] - phys["centroid_mm"][i]) ** 2, -1))))}

    out = {
        "question": "optimise a travelling-wave pattern for forward speed on agar through the surrogate; check with "
                    "the physics",
        "pattern": f"forward wave, f = {f:g} Hz fixed, wavelength in {LAM} L, 24 segment amplitudes in {AMP}",
        "medium": a.medium, "steps": a.steps, "lr": a.lr, "optimiser": "optax.adam on -objective",
        "penalty_mm_s_per_log": a.penalty, "trust_bound_body_lengths": b_trust,
        "start": {"wavelength_body_lengths": float(lam0), "amplitude": amp0.tolist(), **point(0)},
        "sweep_wavelength_body_lengths": lams.tolist(),
        "sweep_at_uniform_amplitude": {"physics_mm_s": sp_phys[3 + 2 * n:, 0].tolist(),
                                       "surrogate_mm_s": sp_sur[3 + 2 * n:, 0].tolist()},
        "wall_s": {"optimisation_both": round(opt_wall, 2), "physics_incl_compile": round(phys_wall, 1)},
        "load_average": [list(load0), list(os.getloadavg())],
        "model": str(a.model or "shipped"), "model_provenance_date": sur.settings.get("provenance", {}).get("date"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": "python experiments/body_surrogate/optimise_wave.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    for k, r in enumerate(runs):
        out[r] = {"wavelength_body_lengths": runs[r]["lam"], "amplitude": runs[r]["amp"].tolist(), **point(1 + k),
                  "physics_gain_over_start": float(sp_phys[1 + k, 0] / sp_phys[0, 0]),
                  "surrogate_gain_over_start": float(sp_sur[1 + k, 0] / sp_sur[0, 0]),
                  "objective_history": runs[r]["hist"],
                  "sweep_at_its_amplitudes": {"physics_mm_s": sp_phys[3 + k * n:3 + (k + 1) * n, 0].tolist(),
                                              "surrogate_mm_s": sp_sur[3 + k * n:3 + (k + 1) * n, 0].tolist()}}
    outdir = Path(a.out)
    outdir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(outdir / "optimise_wave.json", out)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    for k, (r, col) in enumerate((("free", "C3"), ("bounded", "C1"))):
        ax[0].plot(runs[r]["hist"], col, label=f"{r}: objective through the surrogate")
        ax[0].axhline(sp_phys[1 + k, 0], color=col, ls="--", lw=1, label=f"{r}: physics at its optimum")
        ax[1].plot(s, runs[r]["amp"], col, label=f"{r} (λ = {runs[r]['lam']:.2f} L)")
        ax[2].semilogx(lams, sp_phys[3 + k * n:3 + (k + 1) * n, 0], "o-", color=col, label=f"physics, {r} amplitudes")
        ax[2].semilogx(lams, sp_sur[3 + k * n:3 + (k + 1) * n, 0], "o--", color=col, mfc="none",
                       label=f"surrogate, {r} amplitudes")
    ax[0].axhline(sp_phys[0, 0], color="k", ls=":", label="physics at start")
    ax[0].set_xlabel("Adam step")
    ax[0].set_ylabel("forward speed (mm/s)")
    ax[0].set_title("optimisation through the surrogate")
    ax[0].legend(fontsize=7)
    ax[1].plot(s, amp0, "k:", label=f"start (λ = {lam0:.2f} L)")
    ax[1].set_xlabel("position along the body (head 0 → tail 1)")
    ax[1].set_ylabel("segment amplitude")
    ax[1].set_title("the pattern")
    ax[1].legend(fontsize=7)
    ax[2].semilogx(lams, sp_phys[3 + 2 * n:, 0], "ks-", label="physics, uniform 0.5")
    ax[2].semilogx(lams, sp_sur[3 + 2 * n:, 0], "ks--", mfc="none", label="surrogate, uniform 0.5")
    ax[2].set_xlabel("wavelength (body lengths)")
    ax[2].set_ylabel("forward speed (mm/s)")
    ax[2].set_title(f"check with the physics ({a.medium}, {f:g} Hz)")
    ax[2].legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, outdir / "optimise_wave.png", dpi=90)
    plt.close(fig)
    brief = {r: {k: v for k, v in out[r].items() if k not in ("amplitude", "objective_history", "sweep_at_its_amplitudes")}
             for r in ("start", "free", "bounded")}
    print(json.dumps(brief, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

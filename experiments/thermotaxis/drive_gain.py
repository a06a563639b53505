"""How strongly must the pirouette drive follow the direction of change, and how strongly do the circuits' drives do it?

The imitation fits (``imitate.py``) end near the KL of the best function of the present AFD response,
while some of their cells carry the response's derivative (``cell_information.py``). This script puts
one number on both sides of that gap: the **direction gain** of a drive, the slope of its logit on
sign(D) = tanh(D/σ_d) (D = z_f − z_s, the teacher's derivative) within each fifth of the response level
z_f. The teacher's rule, Φ(k · tanh(D/σ_d) · tanh((z_f − θ)/σ_l) − base), has a negative slope below θ
(pirouette when falling) and a positive one above it (pirouette when rising).

1. **What the loop needs** (the policy side): the best compressed teacher with its gain k scaled by
   s = 1 … 0.08 (``base`` re-set so that the mean drive on the wandering worms stays the teacher's), each
   scored in the closed loop on the search worms and on held-out worms (seed 1234) of
   ``policy_bounds.py`` (24 per T_c, radial plate, 20 min), with its direction gain per level fifth.
2. **What the circuits give**: the direction gain of each saved circuit's drive logit (open loop, on the
   held-out wandering worms of ``imitate.py``, as ``cell_information.py``) and of the read-out cells'
   potentials (mV per sign(D)), and the KL of the best affine rescaling of the circuit's logit — whether
   simply turning the read-out's gain up would help.

Run: ``.venv/bin/python experiments/thermotaxis/drive_gain.py [CIRCUIT.npz ...]`` (≈ 1 min for the
sweep, ≈ 20 s per circuit; default: the eighth attempt's stage 2–5 circuits). Writes
``results/drive_gain.{json,md,png}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from scipy.optimize import brentq, minimize

sys.path.insert(0, str(Path(__file__).resolve().parent))
import imitate as im  # noqa: E402
import policy_bounds as pb  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
K_SCALES = (1.0, 0.6, 0.4, 0.25, 0.15, 0.08)
NAMES = ("k", "theta", "sigma_d", "base", "sigma_l", "tau_fast_s", "tau_slow_s")
READOUT_CELLS = ("AVAL", "AVAR", "AVBL", "AVBR")
DEFAULT_CIRCUITS = ("imitation_compressed", "imitation_aux_aizr_stage2", "imitation_aux_stage3",
                    "imitation_aux_stage4", "imitation_aux_stage5", "imitation_aux_stage3_logit",
                    "imitation_aux_stage4_direction", "imitation_aux_stage4_direction2", "imitation_direction_wmax20",
                    "imitation_direction_logit")

def direction_gain(x: np.ndarray, sign_d: np.ndarray, fifth: np.ndarray) -> list[float]:
    """Least-squares slope of ``x`` on ``sign_d`` within each level fifth (5 values)."""
    return [round(float(np.polyfit(sign_d[fifth == b], x[fifth == b], 1)[0]), 3) for b in range(5)]


class HeldOutSeconds:
    """The held-out wandering worms of ``imitate.py`` cut into the segments ``cell_information.py`` uses:
    the teacher's filters and drive on the scored seconds, flattened."""

    def __init__(self, teacher: dict):
        _, r = (np.asarray(a, np.float64) for a in pb.wander_response(2.0))
        self.r, self.teacher = r, teacher
        self.segs = im.held_out_segments(r.shape[0])
        zf, zs = im.teacher_filters(r, teacher)
        self.level, d = self.cut(zf), self.cut(zf - zs)
        self.sign_d = np.tanh(d / teacher["sigma_d"])
        self.fifth = np.digitize(self.level, np.quantile(self.level, [0.2, 0.4, 0.6, 0.8]))
        self.edges = np.quantile(self.level, [0, 0.2, 0.4, 0.6, 0.8, 1]).round(3).tolist()

    def cut(self, a: np.ndarray) -> np.ndarray:
        return im.scored_seconds(a, self.segs)

    def drive(self, params: dict) -> np.ndarray:
        return self.cut(im.teacher_drive(self.r, params))


def policy_sweep(data: HeldOutSeconds) -> list[dict]:
    """The teacher with its gain scaled (``K_SCALES``), in the closed loop, with its direction gain."""
    best = data.teacher
    q0 = im.teacher_drive(data.r, best).mean()
    held = pb.draw(1234)
    rows = []
    for s in K_SCALES:
        p = dict(best) | {"k": best["k"] * s}
        p["base"] = brentq(lambda b: im.teacher_drive(data.r, p | {"base": b}).mean() - q0, -5.0, 10.0)
        row = {"k_scale": s, "k": round(p["k"], 3), "base": round(p["base"], 3),
               "direction_gain_logit": direction_gain(im.drive_logit(data.drive(p), im.LOGIT_FLOOR), data.sign_d, data.fifth)}
        for tag, worms in (("search_worms", pb.WORMS), ("held_out_1234", held)):
            pos = np.asarray(pb.policy_tracks(jnp.asarray([p[n] for n in NAMES], pb.F32), worms, best["compress_c"]))
            row[tag] = pb.summarise(pos, np.asarray(worms["tc"]))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def circuit_gain(data: HeldOutSeconds, path: Path) -> dict:
    """Direction gain of a saved circuit's drive logit and read-out cells, and its best affine rescaling."""
    task, raw, _ = im.saved_task(path)
    z, v = (a.astype(np.float64) for a in im.open_loop(task, raw, data.r, data.segs))
    z = z[:, im.SKIP_S:].ravel()
    q = data.drive(data.teacher)
    kl = lambda a, b: im.kl(q, 1.0 / (1.0 + np.exp(-(a * z + b))))  # noqa: E731
    fit = minimize(lambda ab: kl(*ab), [1.0, 0.0], method="Nelder-Mead")
    out = {"circuit": str(path.relative_to(HERE)) if path.is_relative_to(HERE) else str(path),
           "direction_gain_logit": direction_gain(z, data.sign_d, data.fifth),
           "kl": round(kl(1.0, 0.0), 4), "best_affine_scale": round(float(fit.x[0]), 3),
           "kl_best_affine": round(float(fit.fun), 4)}
    for a in (2.0, 4.0):
        out[f"kl_logit_x{a:g}"] = round(float(minimize(lambda b: kl(a, b[0]), [0.0], method="Nelder-Mead").fun), 4)
    out["sd_logit_within_fifth"] = [round(float(z[data.fifth == b].std()), 3) for b in range(5)]
    for c in READOUT_CELLS:
        pot = v[:, im.SKIP_S:, task.loop["circuit"].index(c)].ravel()
        out[f"direction_gain_{c}_mV"] = direction_gain(pot, data.sign_d, data.fifth)
    print(json.dumps(out), flush=True)
    return out


def markdown(res: dict) -> str:
    fmt = lambda s: " / ".join(f"{s[k]['final_mean_c']:.2f}" for k in ("15", "20", "25")) + " (" + " / ".join(  # noqa: E731
        f"{s[k]['isothermal_last_10min']:.2f}" for k in ("15", "20", "25")) + ")"
    L = ["# Direction gain: how strongly the pirouette drive follows the direction of change", "",
         f"Written by `experiments/thermotaxis/drive_gain.py` ({res['date']}, {res['wall_time_s']} s). Direction "
         "gain: slope of the drive's logit (clipped to ±6) on tanh(D/σ_d) within each fifth of the response level "
         f"z_f (edges {res['level_fifth_edges']}; θ = {res['teacher']['theta']}); held-out wandering worms of "
         "`imitate.py`.", "",
         "## The teacher with its gain k scaled (closed loop: final T 15 / 20 / 25 °C, isothermal fraction)", "",
         "| k scale | k | base | direction gain per level fifth | search worms | held-out worms (seed 1234) |",
         "|---|---|---|---|---|---|"]
    for r in res["policy_sweep"]:
        L.append(f"| {r['k_scale']} | {r['k']} | {r['base']} | {r['direction_gain_logit']} | {fmt(r['search_worms'])} | "
                 f"{fmt(r['held_out_1234'])} |")
    L += ["", "## The circuits", "",
          "| circuit | direction gain of the drive logit | KL | best affine rescaling a (KL) | KL with the logit ×2 / ×4 "
          "(best offset) | AVAL / AVBL, mV per sign(D) |", "|---|---|---|---|---|---|"]
    for c in res["circuits"]:
        L.append(f"| `{c['circuit']}` | {c['direction_gain_logit']} | {c['kl']} | {c['best_affine_scale']} "
                 f"({c['kl_best_affine']}) | {c['kl_logit_x2']} / {c['kl_logit_x4']} | {c['direction_gain_AVAL_mV']} / "
                 f"{c['direction_gain_AVBL_mV']} |")
    return "\n".join(L) + "\n"


def figure(res: dict, path: Path) -> None:
    """Direction gain per level fifth: the scaled teachers (lines, with their closed-loop outcome) and the circuits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(5)
    fig, ax = plt.subplots(figsize=(11, 4.8))
    for r in res["policy_sweep"]:
        h = r["held_out_1234"]
        miss = max(abs(h[k]["final_mean_c"] - float(k)) for k in h)
        ax.plot(x, r["direction_gain_logit"], "-", color=plt.cm.Greys(0.35 + 0.6 * r["k_scale"]),
                label=f"teacher, k × {r['k_scale']:g} (held out: worst |final − T_c| {miss:.1f} °C)")
    for i, c in enumerate(res["circuits"]):
        ax.plot(x, c["direction_gain_logit"], "o--", color=plt.cm.tab10(i), label=Path(c["circuit"]).parent.name)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(x, [f"{a:.2f}…{b:.2f}" for a, b in zip(res["level_fifth_edges"][:-1], res["level_fifth_edges"][1:])])
    ax.set_xlabel("response level z_f (fifths; θ = %.2f)" % res["teacher"]["theta"])
    ax.set_ylabel("slope of the drive logit on tanh(D/σ_d)")
    ax.set_title("Direction gain: what the loop needs and what the circuits give")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(circuits: list[Path]) -> dict:
    t0 = time.time()
    data = HeldOutSeconds(im.teacher_params("compressed", 0))
    res = {"teacher": data.teacher, "level_fifth_edges": data.edges, "policy_sweep": policy_sweep(data),
           "circuits": [circuit_gain(data, p) for p in circuits]}
    res["wall_time_s"] = round(time.time() - t0, 1)
    res["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return res


if __name__ == "__main__":
    paths = [Path(a) for a in sys.argv[1:]] or [RESULTS / n / "head_circuit.npz" for n in DEFAULT_CIRCUITS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"no saved circuit at {missing} (give head_circuit.npz files written by imitate.py)")
    out = main([p.resolve() for p in paths])
    (RESULTS / "drive_gain.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "drive_gain.md").write_text(markdown(out))
    figure(out, RESULTS / "drive_gain.png")
    print(markdown(out))

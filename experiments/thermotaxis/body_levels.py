"""One circuit, two bodies: the navigation level against the mechanical level on the same worms.

The issue asks for two switchable body levels driven by the same circuit: the navigation body
(``owjax.navigation.body``: a point at 0.022 cm/s with head sweeps and pirouette events, the level every
training run uses) and the full mechanical body (``owjax.navigation.mechanical``: BBC's proprioceptive
motor loop and the 49-rod body on agar, steered by the same NeckSteering coupling, its pirouettes started
by the same ReversalCommand as events of ≈ 3 s and carried out as ventral turns). This script runs a head circuit (default: the shipped one) in both, on the
same worms (radial plate 13 → 27 °C over 4.5 cm, T_c cycling 15 / 20 / 25 °C, same starts and headings,
AFD memory 4 h), and compares what the circuit commands and where the worms go:

* per level: centroid speed, net displacement, temperature change of the centroid, the circuit's mean
  pirouette (reversal) drive and neck steering signal, and the wall time per worm and simulated second;
* across levels, worm by worm: the correlation of the mean reversal drive and of the temperature change.

Run: ``.venv/bin/python experiments/thermotaxis/body_levels.py [CIRCUIT.npz|shipped] [--worms 12]
[--duration 300] [--out NAME]`` (≈ 5 min on the 2-core CPU for the defaults). Writes
``results/body_levels[_NAME].{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from omegaconf import OmegaConf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import policy_bounds as pb  # noqa: E402

from owjax.navigation.loop import NeckSteering, ReversalCommand, simulate_worms  # noqa: E402
from owjax.navigation.mechanical import make_mechanical_loop, simulate_worms_mechanical  # noqa: E402
from owjax.navigation.params import DEFAULT_DATA, load_values  # noqa: E402
from owjax.navigation.setup import draw_worms, make_loop  # noqa: E402

SCENARIO = HERE.parents[1] / "owjax" / "conf" / "scenario" / "thermotaxis.yaml"
MEMORY_TAU_S = 14400.0


def commands(loop, v):
    """The circuit's pirouette drive and steering signal from its potentials ``v`` (worms, T, cells)."""
    rc = [c for c in loop.couplings if isinstance(c, ReversalCommand)][0]
    ns = [c for c in loop.couplings if isinstance(c, NeckSteering)][0]
    f = jax.vmap(jax.vmap(lambda x: (rc(0.0, {"V_mV": x}), ns(0.0, {"V_mV": x}))))
    p, s = f(jnp.asarray(v))
    return np.asarray(p), np.asarray(s)


def per_worm(loop, pos, v, field, dur):
    p, s = commands(loop, v)
    step = np.linalg.norm(np.diff(pos, axis=1), axis=-1)
    temp = np.asarray(field(jnp.asarray(pos[..., 0]), jnp.asarray(pos[..., 1])))
    return {"speed_mm_s": step.sum(1) * 10 / dur, "net_displacement_mm": np.linalg.norm(pos[:, -1] - pos[:, 0], axis=-1) * 10,
            "delta_temp_c": temp[:, -1] - temp[:, 0], "final_temp_c": temp[:, -1],
            "reversal_drive_mean": p[:, 1:].mean(1), "steer_mean": s[:, 1:].mean(1), "steer_sd": s[:, 1:].std(1)}


def main(circuit: str, n_worms: int, duration_s: float, name: str | None) -> dict:
    path = DEFAULT_DATA if circuit == "shipped" else Path(circuit)
    vals = load_values(path)
    field = pb.FIELD_
    nav_body = OmegaConf.to_container(OmegaConf.load(SCENARIO), resolve=True)["navigation"]["body"]
    worms = draw_worms(jax.random.PRNGKey(7), n_worms, field, pb.TCS, duration_s, 1.0, dtype="float32")
    out = {}

    loop_n = make_loop(field, nav_body, vals, duration_s=duration_s, memory_tau_s=MEMORY_TAU_S)
    run_n = jax.jit(lambda xy, th, nz, tc: simulate_worms(loop_n, xy, th, nz, tc, duration_s, 1.0,
                                                          save=("body.pos", "body.pirouette", "circuit.V")).ys)
    t0 = time.time()
    jax.block_until_ready(run_n(worms["xy"], worms["heading"], worms["noise"], worms["tc"]))
    t1 = time.time()
    ys = run_n(worms["xy"], worms["heading"], worms["noise"], worms["tc"])
    jax.block_until_ready(ys)
    t2 = time.time()
    out["navigation"] = per_worm(loop_n, np.asarray(ys["body"]["pos"]), ys["circuit"]["V"], field, duration_s)
    out["navigation"]["pirouette_time_fraction"] = (np.asarray(ys["body"]["pirouette"]) > 0.5).mean(1)
    wall = {"navigation": {"compile_and_run_s": round(t1 - t0, 2), "run_s": round(t2 - t1, 3)}}
    print("navigation level", wall["navigation"], flush=True)

    loop_m = make_mechanical_loop(field, vals, memory_tau_s=MEMORY_TAU_S,
                                  pirouette_duration_s=nav_body["pirouette_duration_s"])
    run_m = jax.jit(lambda xy, th, tc, nz: simulate_worms_mechanical(loop_m, xy, th, tc, duration_s, 1.0,
                                                                     save_circuit=True, noise=nz))
    t0 = time.time()
    res = run_m(worms["xy"], worms["heading"], worms["tc"], worms["noise"])
    jax.block_until_ready(res)
    t1 = time.time()
    out["mechanical"] = per_worm(loop_m, np.asarray(res["centroid_xy_cm"]), res["circuit_V_mV"], field, duration_s)
    out["mechanical"]["pirouette_time_fraction"] = (np.asarray(res["pirouette"]) > 0.5).mean(1)
    wall["mechanical"] = {"compile_and_run_s": round(t1 - t0, 2), "solver_steps_mean": float(np.mean(res["num_steps"]))}
    print("mechanical level", wall["mechanical"], flush=True)
    for lvl, w in wall.items():
        run_s = w.get("run_s", w["compile_and_run_s"])
        w["s_per_worm_second"] = run_s / (n_worms * duration_s)

    tc = np.asarray(worms["tc"])
    summary = {}
    for lvl, m in out.items():
        summary[lvl] = {k: round(float(np.mean(v)), 4) for k, v in m.items()}
        summary[lvl]["delta_temp_c_by_tc"] = {f"{t:g}": round(float(np.mean(m["delta_temp_c"][tc == t])), 3) for t in pb.TCS}
    corr = {k: round(float(np.corrcoef(out["navigation"][k], out["mechanical"][k])[0, 1]), 3)
            for k in ("reversal_drive_mean", "steer_mean", "delta_temp_c", "pirouette_time_fraction")}
    res_json = {"circuit": str(path), "n_worms": n_worms, "duration_s": duration_s, "field": "radial 13 → 27 °C, 4.5 cm",
                "cultivation_temps_c": list(pb.TCS), "memory_tau_s": MEMORY_TAU_S, "seed": 7,
                "navigation_body": nav_body, "mechanical": {"medium": "agar", "neck_amplitude": 0.3, "neck_segments": 8},
                "by_level": summary, "correlation_across_levels_per_worm": corr, "wall": wall,
                "per_worm": {lvl: {k: np.round(v, 4).tolist() for k, v in m.items()} for lvl, m in out.items()},
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "command": "python experiments/thermotaxis/body_levels.py " + " ".join(sys.argv[1:])}
    stem = "body_levels" + (f"_{name}" if name else "")
    (HERE / "results" / f"{stem}.json").write_text(json.dumps(res_json, indent=1) + "\n")
    (HERE / "results" / f"{stem}.md").write_text(markdown(res_json))
    figure(HERE / "results" / f"{stem}.png", out)
    return res_json


def markdown(r: dict) -> str:
    rows = [("centroid speed (mm/s)", "speed_mm_s"), ("net displacement (mm)", "net_displacement_mm"),
            ("temperature change of the centroid (°C)", "delta_temp_c"), ("final temperature (°C)", "final_temp_c"),
            ("mean pirouette / reversal drive", "reversal_drive_mean"), ("mean neck steering signal", "steer_mean"),
            ("sd of the neck steering signal", "steer_sd"), ("time in pirouettes", "pirouette_time_fraction")]
    n, m = r["by_level"]["navigation"], r["by_level"]["mechanical"]
    L = ["# One circuit, two bodies", "", f"Written by `experiments/thermotaxis/body_levels.py` ({r['date']}). Circuit "
         f"`{r['circuit']}`; {r['n_worms']} worms, {r['duration_s']:g} s, {r['field']}, T_c cycling "
         f"{r['cultivation_temps_c']}, same starts and headings for both levels.", "",
         "| mean over worms | navigation body | mechanical body (BBC loop + rods, agar) | worm-by-worm r |", "|---|---|---|---|"]
    for label, k in rows:
        c = r["correlation_across_levels_per_worm"].get(k)
        L.append(f"| {label} | {n[k]:.3g} | {m[k]:.3g} | {'' if c is None else f'{c:.2f}'} |")
    L.append("| temperature change by T_c (°C) | " + " / ".join(f"{v:+.2f}" for v in n["delta_temp_c_by_tc"].values())
             + " | " + " / ".join(f"{v:+.2f}" for v in m["delta_temp_c_by_tc"].values()) + " | |")
    w = r["wall"]
    L += ["", f"Wall time per worm and simulated second (this CPU, vmapped over the worms): navigation "
          f"{w['navigation']['s_per_worm_second'] * 1e3:.3f} ms, mechanical {w['mechanical']['s_per_worm_second'] * 1e3:.1f} ms "
          f"(including compilation; {w['mechanical']['solver_steps_mean']:.0f} adaptive steps per worm).", ""]
    return "\n".join(L)


def figure(path: Path, out: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(8, 3.5))
    for a, k, label in ((ax[0], "reversal_drive_mean", "mean reversal drive"), (ax[1], "delta_temp_c", "temperature change (°C)")):
        x, y = out["navigation"][k], out["mechanical"][k]
        a.scatter(x, y, s=14)
        lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
        a.plot([lo, hi], [lo, hi], "k:", lw=0.8)
        a.set_xlabel(f"navigation body: {label}")
        a.set_ylabel(f"mechanical body: {label}")
    fig.suptitle("The same head circuit on two bodies, worm by worm")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("circuit", nargs="?", default="shipped", help="head_circuit.npz or 'shipped'")
    ap.add_argument("--worms", type=int, default=12)
    ap.add_argument("--duration", type=float, default=300.0, help="simulated seconds")
    ap.add_argument("--out", default=None, help="results name suffix")
    a = ap.parse_args()
    print(markdown(main(a.circuit, a.worms, a.duration, a.out)))

"""Why the thermotaxis loop does not learn: three measurements of its pieces (issue 17).

    .venv/bin/python experiments/thermotaxis/diagnostics.py      # ≈ 2 min on 2 cores

Writes ``experiments/thermotaxis/results/diagnostics.{json,md}``:

1. **Latching.** The graded head circuit settled (200 s of forward Euler at Δ = 10 ms) under a constant
   current into AFDL/R stepped 0 → 0.3 → 1 → 2 → 0 pA, for synaptic weights = ``weight_scale`` ×
   c302's and every threshold at ``vth``. A circuit that ends the staircase away from where it began
   is bistable (latched): it cannot carry AFD's signal, and no gradient reaches its weights.
2. **What AFD tells the circuit.** The shipped AFD transducer's response (normalised) to the
   temperature a worm crawling straight up or down the training gradient feels (0.022 cm/s ×
   16 °C / 9 cm = 0.039 °C/s), and to constant temperatures, as a function of T − T_c.
3. **A hand-wired policy.** The loop with the reversal read-out taken from AFD itself
   (``σ(gain · ((V_AFD − V_RMD) − threshold)/10 mV)``) instead of AVA − AVB: what a biased random
   walk driven by AFD alone does in this body, 30 worms × 20 min per T_c on the training gradient.
4. **How consistent the minibatch gradient is.** The loss's gradient at the experiment's starting
   parameters for four independent batches (24 worms × 90 s each, as the training draws them), and
   the cosine similarity between them, per parameter group and overall.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

OUT = Path(__file__).resolve().parent / "results"
SHOW = ("AFDL", "AIYL", "AIZL", "AIBL", "RIAL", "AVAL", "AVBL", "SMDDL", "SMDVL")


def latching(weight_scales=(1.0, 0.1, 0.05, 0.02), vths=(-50.0, -40.0, -30.0, -20.0)) -> list[dict]:
    from owjax.navigation.setup import head_circuit

    c0 = head_circuit("C1", 10.0, "float32")
    names = c0.cell_names
    afd = jnp.asarray([names.index("AFDL"), names.index("AFDR")])

    @jax.jit
    def settle(c, i_afd, y0):
        return c.settle(y0, jnp.zeros(c.n_cells, c0.dtype).at[afd].set(i_afd))

    rows = []
    for ws in weight_scales:
        for vth in vths:
            c = eqx.tree_at(lambda m: (m.weight, m.vth_mV), c0, (c0.weight * ws, jnp.full_like(c0.vth_mV, vth)))
            y = c.initial_state()
            steps = []
            for i in (0.0, 0.3, 1.0, 2.0, 0.0):
                y = settle(c, jnp.asarray(i, c0.dtype), y)
                steps.append({"i_afd_pA": i, **{n: round(float(y["V"][names.index(n)]), 1) for n in SHOW}})
            first, last = steps[0], steps[-1]
            latched = max(abs(first[n] - last[n]) for n in SHOW) > 1.0 or first["AVAL"] > -35.0
            gain = steps[3]["AVAL"] - steps[0]["AVAL"]
            rows.append({"weight_scale": ws, "vth_mV": vth, "steps": steps, "latched_or_saturated": bool(latched),
                         "AVA_change_0_to_2pA_mV": round(gain, 1),
                         "AVA_minus_AVB_change_mV": round((steps[3]["AVAL"] - steps[3]["AVBL"])
                                                          - (steps[0]["AVAL"] - steps[0]["AVBL"]), 2)})
    return rows


def afd_signal() -> dict:
    from owjax.sensory.loaders import DATA_DIR
    from owjax.sensory.transducer import _features, gru_map, load_transducer, readout, step

    spec, params = load_transducer(DATA_DIR / "afd_transducer.npz")

    def run(u, tc):
        u = jnp.asarray(u, jnp.float32)
        filt = jnp.stack([u[0], jnp.float32(tc)])
        x = _features(spec, params, filt, u[0])
        hs = jax.lax.fori_loop(0, spec.burn_in_steps, lambda i, h: gru_map(spec, params, h, x),
                               jnp.zeros((spec.depth, spec.hidden), jnp.float32))

        def f(c, ui):
            c = step(spec, params, c, ui)
            return c, readout(spec, params, c[1])

        return np.asarray(jax.lax.scan(f, (filt, hs), u)[1])

    rate = 0.022 * 16.0 / 9.0
    t = np.arange(0.0, 300.0, spec.dt_s)
    out = {"rate_c_per_s": rate, "by_tc": {}}
    for tc in (15.0, 20.0, 25.0):
        up, dn = tc - 5 + rate * t, tc + 5 - rate * t
        yu, yd = run(up, tc), run(dn, tc)
        rows = []
        for d in (-3, -2, -1, -0.5, 0, 0.5, 1, 2, 3):
            rows.append({"T_minus_Tc": d, "warming": round(float(yu[np.argmin(abs(up - tc - d))]), 3),
                         "cooling": round(float(yd[np.argmin(abs(dn - tc - d))]), 3),
                         "constant": round(float(run(np.full(200, tc + d), tc)[-1]), 3)})
        out["by_tc"][f"{tc:g}"] = rows
    return out


def hand_wired(thresholds=(8.0, 16.0, 24.0), gain=10.0, n_worms=30, duration_s=1200.0) -> list[dict]:
    from omegaconf import OmegaConf

    from owjax.fitting.tasks.thermotaxis import ThermotaxisTask
    from owjax.navigation.loop import ReversalCommand, simulate_worms
    from owjax.navigation.params import apply_values
    from owjax.navigation.setup import draw_worms

    conf = Path(__file__).resolve().parents[2] / "owjax" / "conf" / "experiment" / "thermotaxis.yaml"
    cfg = OmegaConf.to_container(OmegaConf.load(conf), resolve=True)
    task = ThermotaxisTask(cfg, 0)
    loop = apply_values(task.loop, task.values(task.init(jax.random.PRNGKey(0))))
    c = loop["circuit"]
    ri = [i for i, cp in enumerate(loop.couplings) if isinstance(cp, ReversalCommand)][0]
    b = draw_worms(jax.random.PRNGKey(5), n_worms, task.field, [15.0, 20.0, 25.0], duration_s)
    tc = np.asarray(b["tc"])
    rows = []
    for thr in thresholds:
        rc = ReversalCommand(jnp.float32(gain), jnp.float32(thr), [c.index("AFDL"), c.index("AFDR")],
                             [c.index("RMDL")])
        lp = eqx.tree_at(lambda m: m.couplings[ri], loop, rc)
        sol = simulate_worms(lp, b["xy"], b["heading"], b["noise"], b["tc"], duration_s, 10.0, save=("body.pos",))
        pos = sol.ys["body"]["pos"]
        temp = np.asarray(task.field(pos[..., 0], pos[..., 1]))
        for t_c in (15.0, 20.0, 25.0):
            m = tc == t_c
            rows.append({"threshold_mV": thr, "T_c": t_c, "start_mean_c": round(float(temp[m, 0].mean()), 2),
                         "final_mean_c": round(float(temp[m, -1].mean()), 2),
                         "final_sd_c": round(float(temp[m, -1].std()), 2),
                         "isothermal_last_10min": round(float(np.mean(np.abs(temp[m, -60:] - t_c) < 1.0)), 2)})
    return rows


def gradient_consistency(n_batches=4, n_worms=24, duration_s=90.0) -> dict:
    from omegaconf import OmegaConf

    from owjax.fitting.tasks.thermotaxis import ThermotaxisTask

    conf = Path(__file__).resolve().parents[2] / "owjax" / "conf" / "experiment" / "thermotaxis.yaml"
    cfg = OmegaConf.load(conf)
    cfg.merge_with_dotlist([f"episode.n_worms={n_worms}", f"episode.duration_s={duration_s}"])
    task = ThermotaxisTask(OmegaConf.to_container(cfg, resolve=True), 0)
    p = task.init(jax.random.PRNGKey(0))
    grad = jax.jit(jax.grad(lambda q, b: task.loss(q, b, None)[0]))
    gs = [grad(p, task.batches(i, jax.random.PRNGKey(100 + i))) for i in range(n_batches)]

    def cosines(vs):
        return [round(float(np.dot(vs[a], vs[b]) / (np.linalg.norm(vs[a]) * np.linalg.norm(vs[b]) + 1e-30)), 2)
                for a in range(len(vs)) for b in range(a + 1, len(vs))]

    out = {"n_batches": n_batches, "n_worms": n_worms, "duration_s": duration_s, "groups": {}}
    for k in gs[0]:
        out["groups"][k] = cosines([np.ravel(np.asarray(g[k], np.float64)) for g in gs])
    out["all"] = cosines([np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(g)])
                          for g in gs])
    return out


def markdown(res: dict) -> str:
    L = ["# Thermotaxis loop diagnostics", "", f"Written by `experiments/thermotaxis/diagnostics.py` ({res['date']}, "
         f"{res['wall_time_s']} s).", "", "## 1. Latching of the graded head circuit",
         "", "AFD current staircase 0 → 0.3 → 1 → 2 → 0 pA; V (mV) at the end of each 200-s step, first and last "
         "step shown.", "", "| weight scale × c302 | vth (mV) | AVA at 0 pA | AVA at 2 pA | AVA back at 0 pA | "
         "AIY at 0 / 2 pA | latched or saturated |", "|---|---|---|---|---|---|---|"]
    for r in res["latching"]:
        s = r["steps"]
        L.append(f"| {r['weight_scale']} | {r['vth_mV']:g} | {s[0]['AVAL']} | {s[3]['AVAL']} | {s[4]['AVAL']} | "
                 f"{s[0]['AIYL']} / {s[3]['AIYL']} | {'yes' if r['latched_or_saturated'] else 'no'} |")
    L += ["", "## 2. The AFD transducer's response (normalised) vs T − T_c", "",
          f"Crawling straight along the training gradient: {res['afd']['rate_c_per_s']:.3f} °C/s. "
          "Identical for T_c = 15, 20, 25 °C (the transducer sees T − T_c through its adaptation state); "
          "T_c = 20 °C shown.", "", "| T − T_c (°C) | warming | cooling | constant |", "|---|---|---|---|"]
    for r in res["afd"]["by_tc"]["20"]:
        L.append(f"| {r['T_minus_Tc']:+g} | {r['warming']:+.3f} | {r['cooling']:+.3f} | {r['constant']:+.3f} |")
    L += ["", "## 3. Reversals wired to AFD by hand (no training)", "",
          "| threshold (mV) | T_c (°C) | start mean (°C) | final mean ± sd (°C) | isothermal, last 10 min |",
          "|---|---|---|---|---|"]
    for r in res["hand_wired"]:
        L.append(f"| {r['threshold_mV']:g} | {r['T_c']:g} | {r['start_mean_c']} | {r['final_mean_c']} ± "
                 f"{r['final_sd_c']} | {r['isothermal_last_10min']} |")
    gc = res["gradient"]
    L += ["", "## 4. Cosine similarity of the loss gradient between independent batches", "",
          f"{gc['n_batches']} batches of {gc['n_worms']} worms × {gc['duration_s']:g} s at the starting parameters; "
          "all pairs.", "", "| parameter group | cosine similarities |", "|---|---|"]
    for k, v in list(gc["groups"].items()) + [("all parameters", gc["all"])]:
        L.append(f"| {k} | {', '.join(f'{x:+.2f}' for x in v)} |")
    return "\n".join(L) + "\n"


def main():
    t0 = time.time()
    res = {"latching": latching()}
    print("latching done", round(time.time() - t0, 1), flush=True)
    res["afd"] = afd_signal()
    print("afd done", round(time.time() - t0, 1), flush=True)
    res["hand_wired"] = hand_wired()
    print("hand-wired done", round(time.time() - t0, 1), flush=True)
    res["gradient"] = gradient_consistency()
    res["wall_time_s"] = round(time.time() - t0, 1)
    res["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "diagnostics.json").write_text(json.dumps(res, indent=1) + "\n")
    (OUT / "diagnostics.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()

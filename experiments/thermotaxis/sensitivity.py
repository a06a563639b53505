"""Does the head circuit hear AFD where training starts? (issue 17)

Every training of the head circuit so far (closed-loop BPTT, imitation) ended with a drive that does not
depend on AFD. This script measures, for the circuit at the start of training, how much of the AFD
signal reaches the pirouette command, for a grid of starting points (polarity rule × synaptic threshold
``vth_init_mV`` × ``weight_scale``) and for the shipped circuit:

* the settled membrane potentials of AFD, AIY, AIZ, AIB, RIB, RIM, AVA, AVB with 0 pA into AFDL/R, and
  their change with 4 pA (the transducer's response spans −0.1 … 2.2, times the AFD gain 2 pA;
  200 s of the loop's own integrator);
* the standard deviation over time of the circuit's pirouette-drive logit on 8 held-out 120-s segments
  of AFD responses recorded from wandering worms (``imitate.circuit_logits``; the same segments for
  every row), against that of the imitation teacher (the best hand-wired policy of ``policy_bounds.py``).

Run: ``.venv/bin/python experiments/thermotaxis/sensitivity.py`` (≈ 5 min on the 2-core CPU); writes
``results/sensitivity.{json,md}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import imitate  # noqa: E402
import policy_bounds as pb  # noqa: E402

from owjax.navigation.params import apply_values  # noqa: E402

HERE = Path(__file__).resolve().parent
CELLS = ("AFDL", "AIYL", "AIZL", "AIBL", "RIBL", "RIML", "AVAL", "AVBL")
VTH_MV = (-40.0, -35.0, -30.0, -25.0)
SCALES = (0.05, 0.1, 0.3, 1.0)
AFD_PA = 4.0


def measure(task, raw, segments) -> dict:
    """Settled potentials at 0 and ``AFD_PA`` pA into AFD, and the drive logit's spread on ``segments``."""
    z = np.asarray(jax.jit(jax.vmap(lambda rs: imitate.circuit_logits(task, raw, rs)))(segments))[:, imitate.SKIP_S:]
    c = apply_values(task.loop, task.values(raw))["circuit"]
    afd = jnp.asarray([c.index("AFDL"), c.index("AFDR")])
    rows = [c.index(x) for x in CELLS]
    v = [np.asarray(c.settle(c.initial_state(), jnp.zeros(c.n_cells).at[afd].set(a), 20_000)["V"])[rows]
         for a in (0.0, AFD_PA)]
    return {"v_mV_afd_0": dict(zip(CELLS, v[0].round(2).tolist())),
            "dv_mV_afd_4pA": dict(zip(CELLS, (v[1] - v[0]).round(2).tolist())),
            "logit_sd_over_time": float(np.median(z.std(1))), "logit_mean": float(z.mean())}


def main() -> dict:
    t0 = time.time()
    _, r = (np.asarray(a, np.float64) for a in pb.wander_response(2.0))
    q = imitate.teacher_drive(r, imitate.teacher_params("random", 0))
    segments = jnp.asarray(r[imitate.N_TRAIN:imitate.N_TRAIN + 8, 200:200 + imitate.SEG_S + 1], jnp.float32)
    lq = np.log(q / (1 - q))[imitate.N_TRAIN:imitate.N_TRAIN + 8, 200 + 1 + imitate.SKIP_S:200 + imitate.SEG_S + 1]
    out = {"teacher_logit_sd_over_time": float(np.median(lq.std(1))), "afd_step_pA": AFD_PA, "grid": []}
    shipped = imitate.make_task("shipped")
    out["shipped"] = measure(shipped, shipped.init(None), segments)
    print("shipped", out["shipped"]["logit_sd_over_time"], file=sys.stderr, flush=True)
    for pol in ("c302", "transmitter"):
        for vth in VTH_MV:
            for scale in SCALES:
                task = imitate.make_task(None, pol, vth, scale)
                row = {"polarity": pol, "vth_init_mV": vth, "weight_scale": scale} | measure(task, task.init(None),
                                                                                              segments)
                out["grid"].append(row)
                print(pol, vth, scale, round(row["logit_sd_over_time"], 4), file=sys.stderr, flush=True)
    out["wall_time_s"] = round(time.time() - t0, 1)
    return out


def markdown(res: dict) -> str:
    L = ["# Does the head circuit hear AFD where training starts?", "",
         f"Written by `experiments/thermotaxis/sensitivity.py` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
         f"{res['wall_time_s']} s). Time constants 1 s (as `imitate.py` starts), AFD gain 2 pA, read-outs at the "
         f"experiment's start. The teacher's drive logit varies with sd **{res['teacher_logit_sd_over_time']:.2f}** "
         "over a segment.", "",
         f"| polarity | vth_init (mV) | weight_scale | V at AFD 0 pA: AIY / AIZ / AIB / AVA / AVB (mV) | "
         f"change at {res['afd_step_pA']:g} pA: AFD / AIY / AIZ / AIB / AVA / AVB (mV) | drive logit sd |",
         "|---|---|---|---|---|---|"]

    def cells(d, names):
        return " / ".join(f"{d[n]:.1f}" for n in names)

    s = res["shipped"]
    L.append(f"| shipped circuit (c302) | trained | trained | {cells(s['v_mV_afd_0'], ('AIYL', 'AIZL', 'AIBL', 'AVAL', 'AVBL'))} "
             f"| {cells(s['dv_mV_afd_4pA'], ('AFDL', 'AIYL', 'AIZL', 'AIBL', 'AVAL', 'AVBL'))} | {s['logit_sd_over_time']:.3f} |")
    for g in res["grid"]:
        L.append(f"| {g['polarity']} | {g['vth_init_mV']:g} | {g['weight_scale']:g} | "
                 f"{cells(g['v_mV_afd_0'], ('AIYL', 'AIZL', 'AIBL', 'AVAL', 'AVBL'))} | "
                 f"{cells(g['dv_mV_afd_4pA'], ('AFDL', 'AIYL', 'AIZL', 'AIBL', 'AVAL', 'AVBL'))} | "
                 f"{g['logit_sd_over_time']:.3f} |")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    res = main()
    (HERE / "results" / "sensitivity.json").write_text(json.dumps(res, indent=1) + "\n")
    (HERE / "results" / "sensitivity.md").write_text(markdown(res))
    print(markdown(res))

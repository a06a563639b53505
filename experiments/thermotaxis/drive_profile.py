"""Where does a circuit's pirouette drive differ from the teacher's — by cultivation temperature, level and direction?

``drive_gain.py`` measures how strongly a drive follows the direction of change; this script measures its
*level*: the mean drive of the teacher and of each circuit (open loop, on the held-out wandering worms of
``imitate.py``, cut as ``cell_information.py`` cuts them) within each fifth of the response level z_f,
separately when the response rises (tanh(D/σ_d) > 0.3) and when it falls (< −0.3), and separately for the
worms cultivated at 15, 20 and 25 °C (the responses depend on T_c only through the transducer's memory;
the teacher's rule does not depend on T_c at all). It also gives each circuit's KL against the teacher and
its direction gain per T_c.

It then asks whether a different read-out of the same circuit would do better (the next step the ninth
attempt proposed, since AVA and AVB carry the direction of change with the same sign): logistic read-outs
of the circuit's potentials fitted to the teacher's drive by KL on half of the held-out seconds and scored
on the other half — AVA alone, AVB alone, AVA − w·AVB, a weight per read-out cell (AVAL, AVAR, AVBL,
AVBR), AIB, AIB with AIZ and AIY (the cells Gray et al. 2005 found to set the turning rate), and a
weight per cell of the whole circuit (an upper bound: no such read-out exists in the worm)
— each with its direction gain.

Run: ``.venv/bin/python experiments/thermotaxis/drive_profile.py [NAME=CIRCUIT.npz ...] [--out=NAME]`` (≈ 20 s
per circuit; default: the shipped circuit). Writes ``results/drive_profile.{json,md}`` (or ``results/NAME.*``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import drive_gain as dg  # noqa: E402
import imitate as im  # noqa: E402
import policy_bounds as pb  # noqa: E402

from scipy.optimize import minimize  # noqa: E402

from owjax.navigation.circuit import FORWARD_CELLS, HEAD_CELLS, REVERSAL_CELLS  # noqa: E402
from owjax.navigation.params import DEFAULT_DATA  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
#: |tanh(D/σ_d)| above this counts as rising / falling
DIRECTION_CUT = 0.3


def profile(data: dg.HeldOutSeconds, seg_tc: np.ndarray, drive: np.ndarray) -> dict:
    """Mean ``drive`` per T_c × level fifth × direction (None where fewer than 30 seconds)."""
    out = {}
    for tc in pb.TCS:
        rows = []
        for b in range(5):
            m = (seg_tc == tc) & (data.fifth == b)
            row = {"n": int(m.sum())}
            for name, sel in (("rising", data.sign_d > DIRECTION_CUT), ("falling", data.sign_d < -DIRECTION_CUT)):
                k = m & sel
                row[name] = round(float(drive[k].mean()), 3) if k.sum() >= 30 else None
            rows.append(row)
        out[f"{tc:g}"] = rows
    return out


#: read-outs compared by :func:`readout_fits`: name → the potentials (cells) they weigh; "AVA − w·AVB"
#: is the loop's read-out with one more parameter
READOUTS = {"AVA alone": REVERSAL_CELLS, "AVB alone": FORWARD_CELLS, "AVA − w·AVB": None,
            "a weight per AVA/AVB cell": REVERSAL_CELLS + FORWARD_CELLS, "AIB (L, R)": ("AIBL", "AIBR"),
            "AIB + AIZ + AIY": ("AIBL", "AIBR", "AIZL", "AIZR", "AIYL", "AIYR"),
            "a weight per circuit cell (bound)": HEAD_CELLS}


def fit_logistic(x: np.ndarray, q: np.ndarray, ridge: float = 0.0) -> tuple[np.ndarray, float]:
    """(w, b) of the logistic read-out σ(x w + b) of the features ``x`` (seconds, k; w in the features'
    units) fitted to the drive ``q`` by KL, with ``ridge`` × Σ w² on the standardised weights."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    xs = (x - mu) / sd

    def loss(w):
        return im.kl(q, 1 / (1 + np.exp(-(xs @ w[:-1] + w[-1])))) + ridge * float(np.sum(w[:-1] ** 2))

    w = minimize(loss, np.zeros(x.shape[1] + 1), method="L-BFGS-B").x
    return w[:-1] / sd, float(w[-1] - np.sum(w[:-1] * mu / sd))


def readout_fits(data: dg.HeldOutSeconds, q: np.ndarray, v: np.ndarray, index) -> dict:
    """Logistic read-outs of the potentials ``v`` (seconds, cells; mV) fitted to the teacher's drive ``q``
    by KL on the first half of the seconds; KL on the second half and the direction gain on all."""
    fit_half = np.arange(q.size) < q.size // 2
    out = {}
    for name, cells in READOUTS.items():
        if cells is None:  # mean AVA − w · mean AVB, the loop's form
            a = v[:, [index(c) for c in REVERSAL_CELLS]].mean(1)
            b = v[:, [index(c) for c in FORWARD_CELLS]].mean(1)
            x = np.stack([a, b], 1)
        else:
            x = np.stack([v[:, index(c)] for c in cells], 1)
        w, b = fit_logistic(x[fit_half], q[fit_half])
        z = x @ w + b
        row = {"kl_fit_half": round(im.kl(q[fit_half], 1 / (1 + np.exp(-z[fit_half]))), 4),
               "kl_other_half": round(im.kl(q[~fit_half], 1 / (1 + np.exp(-z[~fit_half]))), 4),
               "direction_gain_logit": dg.direction_gain(np.clip(z, -im.LOGIT_FLOOR, im.LOGIT_FLOOR), data.sign_d,
                                                         data.fifth)}
        if cells is None:
            row["w"] = round(float(-w[1] / w[0]), 3)
        out[name] = row
    return out


def circuit_profile(data: dg.HeldOutSeconds, seg_tc: np.ndarray, q: np.ndarray, path: Path) -> dict:
    task, raw, _ = im.saved_task(path)
    z, v = im.open_loop(task, raw, data.r, data.segs)
    v = v[:, im.SKIP_S:].reshape(-1, v.shape[-1]).astype(np.float64)
    z = z[:, im.SKIP_S:].ravel().astype(np.float64)
    p = 1.0 / (1.0 + np.exp(-z))
    per_tc = {}
    for tc in pb.TCS:
        m = seg_tc == tc
        per_tc[f"{tc:g}"] = {"kl": round(im.kl(q[m], p[m]), 4), "mean_drive": round(float(p[m].mean()), 3),
                             "direction_gain_logit": dg.direction_gain(z[m], data.sign_d[m], data.fifth[m])}
    mean_mv = {c: [round(float(v[data.fifth == b, task.loop["circuit"].index(c)].mean()), 1) for b in range(5)]
               for c in REVERSAL_CELLS + FORWARD_CELLS}
    sd_mv = {c: round(float(v[:, task.loop["circuit"].index(c)].std()), 2) for c in HEAD_CELLS}
    return {"kl": round(im.kl(q, p), 4), "direction_gain_logit": dg.direction_gain(z, data.sign_d, data.fifth),
            "per_tc": per_tc, "profile": profile(data, seg_tc, p),
            "mean_potential_mV_by_fifth": mean_mv, "sd_potential_mV": sd_mv,
            "readouts": readout_fits(data, q, v, task.loop["circuit"].index)}


def markdown(res: dict) -> str:
    L = ["# The pirouette drive by cultivation temperature, level and direction", "",
         f"Written by `experiments/thermotaxis/drive_profile.py` ({res['date']}, {res['wall_time_s']} s). Mean "
         "drive (per s) of the teacher and of each circuit, open loop on the held-out wandering worms of "
         f"`imitate.py`, in each fifth of the response level z_f (edges {res['level_fifth_edges']}; θ = "
         f"{res['theta']}), rising (tanh(D/σ_d) > {DIRECTION_CUT}) / falling (< −{DIRECTION_CUT}).", ""]
    names = ["teacher"] + list(res["circuits"])
    for tc in (f"{t:g}" for t in pb.TCS):
        L += [f"## T_c = {tc} °C", "", "| level fifth | seconds | " + " | ".join(f"{n} rising / falling" for n in names) + " |",
              "|---|---|" + "---|" * len(names)]
        for b in range(5):
            cells = [res["teacher"][tc][b]] + [res["circuits"][n]["profile"][tc][b] for n in names[1:]]
            fmt = lambda r: " / ".join("–" if r[k] is None else f"{r[k]:.3f}" for k in ("rising", "falling"))  # noqa: E731
            L.append(f"| {b + 1} | {cells[0]['n']} | " + " | ".join(fmt(c) for c in cells) + " |")
        L.append("")
    L += ["## Per T_c: KL against the teacher, mean drive, direction gain of the logit per level fifth", "",
          "| circuit | T_c | KL | mean drive (teacher) | direction gain |", "|---|---|---|---|---|"]
    for n in names[1:]:
        for tc, v in res["circuits"][n]["per_tc"].items():
            L.append(f"| {n} | {tc} | {v['kl']} | {v['mean_drive']} ({res['teacher_mean_drive'][tc]}) | "
                     f"{v['direction_gain_logit']} |")
    L += ["", "## Mean potential of the read-out cells per level fifth (mV)", "",
          "| circuit | " + " | ".join(REVERSAL_CELLS + FORWARD_CELLS) + " |", "|---|" + "---|" * 4]
    for n in names[1:]:
        L.append(f"| {n} | " + " | ".join(str(x) for x in res["circuits"][n]["mean_potential_mV_by_fifth"].values()) + " |")
    L += ["", "## Other read-outs of the same potentials (KL fitted on one half of the seconds, scored on the other)", "",
          "| circuit | read-out | KL, fitted half | KL, other half | direction gain of the logit |", "|---|---|---|---|---|"]
    for n in names[1:]:
        L.append(f"| {n} | the loop's (AVA − AVB, as trained) | – | {res['circuits'][n]['kl']} (all) | "
                 f"{res['circuits'][n]['direction_gain_logit']} |")
        for r, v in res["circuits"][n]["readouts"].items():
            L.append(f"| {n} | {r}" + (f" (w = {v['w']})" if "w" in v else "") + f" | {v['kl_fit_half']} | "
                     f"{v['kl_other_half']} | {v['direction_gain_logit']} |")
    return "\n".join(L) + "\n"


def main(circuits: dict[str, Path]) -> dict:
    t0 = time.time()
    data = dg.HeldOutSeconds(im.teacher_params("compressed", 0))
    tcs = np.asarray(pb.WORMS["tc"])
    seg_tc = np.repeat([tcs[w] for w, _ in data.segs], im.SEG_S - im.SKIP_S)
    q = data.drive(data.teacher)
    res = {"theta": data.teacher["theta"], "level_fifth_edges": data.edges, "teacher": profile(data, seg_tc, q),
           "teacher_mean_drive": {f"{tc:g}": round(float(q[seg_tc == tc].mean()), 3) for tc in pb.TCS},
           "circuits": {n: circuit_profile(data, seg_tc, q, p) for n, p in circuits.items()}}
    res["wall_time_s"] = round(time.time() - t0, 1)
    res["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return res


if __name__ == "__main__":
    out_name = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--out=")), "drive_profile")
    named = dict(a.split("=", 1) if "=" in a else (Path(a).parent.name, a) for a in sys.argv[1:]
                 if not a.startswith("--out=")) or {"shipped": str(DEFAULT_DATA)}
    paths = {n: Path(p).resolve() for n, p in named.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise SystemExit(f"no saved circuit at {missing} (give head_circuit.npz files written by imitate.py)")
    out = main(paths)
    (RESULTS / f"{out_name}.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / f"{out_name}.md").write_text(markdown(out))
    print(markdown(out))

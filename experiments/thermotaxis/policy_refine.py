"""Refine the best hand-wired thermotaxis policy of ``policy_bounds.py`` by a local search, and check it on held-out worms.

``policy_bounds.py`` sampled 150 random seven-parameter policies on the AFD response; the best of them
is the teacher that ``imitate.py`` fits the c302 head circuit to. Random sampling leaves the optimum
loosely located. This script runs a (1+1) evolution strategy from that best policy:

* parameters searched in ``u = (k, θ, log10 σ_d, base, log10 σ_l, log10 τ_fast, log10 τ_slow)``; a
  candidate is ``u + s · δ ⊙ ξ`` (ξ standard normal, δ the per-parameter scales below); ``k`` and the
  time constants stay positive by construction (|k|, 10^…);
* the score of ``policy_bounds.score`` (mean |final − T_c| minus the mean isothermal fraction, lower
  is better) on the search worms of ``policy_bounds`` (24 per T_c, seed 7; common random numbers, so
  candidates differ by their policy only); a candidate replaces the current one when it scores lower;
  the step ``s`` grows ×1.5 on success and shrinks ×1.5^(−1/4) on failure (the 1/5 rule);
* at the end the start and the refined policy are both scored on **held-out worms** (other starts and
  noise, seed 1234, 24 per T_c): the search worms select, the held-out ones report.

Run: ``.venv/bin/python experiments/thermotaxis/policy_refine.py [n_candidates]`` (default 80;
≈ 6 s per candidate on the 2-core CPU). Writes ``results/policy_refine.{json,md}``; ``imitate.py
--teacher refined`` fits the circuit to the refined policy.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import policy_bounds as pb  # noqa: E402

HERE = Path(__file__).resolve().parent
NAMES = ("k", "theta", "sigma_d", "base", "sigma_l", "tau_fast_s", "tau_slow_s")
LOG = np.array([False, False, True, False, True, True, True])
DELTA = np.array([0.5, 0.1, 0.2, 0.2, 0.2, 0.15, 0.15])
HELD_OUT_SEED = 1234


def to_u(p: dict) -> np.ndarray:
    x = np.array([p[k] for k in NAMES], np.float64)
    return np.where(LOG, np.log10(x), x)


def from_u(u: np.ndarray) -> dict:
    x = np.where(LOG, 10.0 ** u, u)
    x[0] = abs(x[0])
    return dict(zip(NAMES, np.round(x, 5).tolist()))


def evaluate(p: dict, worms=None) -> dict:
    w = pb.WORMS if worms is None else worms
    pos = np.asarray(pb.policy_tracks(jnp.asarray([p[k] for k in NAMES], pb.F32), w))
    return pb.summarise(pos, np.asarray(w["tc"]))


def main(n: int = 80) -> dict:
    t0 = time.time()
    start = json.loads((HERE / "results" / "policy_bounds.json").read_text())["search"]["best"][0]["params"]
    rng = np.random.default_rng(11)
    u = to_u(start)
    start_by = by = evaluate(start)
    best = pb.score(by)
    s = 1.0
    hist = [{"candidate": 0, "score": round(best, 3), "accepted": True, "step": s}]
    print(f"start: score {best:.3f} {by}", flush=True)
    for i in range(1, int(n) + 1):
        cand = u + s * DELTA * rng.standard_normal(len(u))
        cb = evaluate(from_u(cand))
        sc = pb.score(cb)
        ok = sc < best
        if ok:
            u, best, by = cand, sc, cb
            s *= 1.5
        else:
            s *= 1.5 ** -0.25
        hist.append({"candidate": i, "score": round(sc, 3), "accepted": bool(ok), "step": round(s, 3)})
        if ok or i % 10 == 0:
            print(f"candidate {i}/{n}: score {sc:.3f}{' accepted' if ok else ''}, best {best:.3f}, step {s:.2f}, "
                  f"{time.time() - t0:.0f} s", flush=True)
    held = pb.draw(HELD_OUT_SEED)
    refined = from_u(u)
    out = {"n_candidates": int(n), "start": {"params": start, "search_worms": start_by},
           "refined": {"params": refined, "score_search_worms": round(best, 3), "search_worms": by},
           "history": hist}
    for key, p in (("start", start), ("refined", refined)):
        h = evaluate(p, held)
        out[key]["held_out"] = h
        out[key]["score_held_out"] = round(pb.score(h), 3)
    out["start"]["score_search_worms"] = hist[0]["score"]
    out["wall_time_s"] = round(time.time() - t0, 1)
    return out


def markdown(res: dict) -> str:
    fmt = lambda v: f"{v['final_mean_c']} ± {v['final_sd_c']} ({v['isothermal_last_10min']})"  # noqa: E731
    L = ["# The best hand-wired policy, refined by a (1+1) evolution strategy", "",
         f"Written by `experiments/thermotaxis/policy_refine.py` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
         f"{res['wall_time_s']} s, {res['n_candidates']} candidates). Radial plate 13 → 27 °C, 24 worms per T_c, "
         f"20 min; search worms seed {pb.SEED}, held-out worms seed {HELD_OUT_SEED}. Score: mean |final − T_c| − "
         "mean isothermal fraction (lower is better). Cells: final temperature (°C, mean ± sd) and, in brackets, "
         "the isothermal fraction of the last 10 min.", "",
         "| policy | worms | score | T_c 15 °C | T_c 20 °C | T_c 25 °C |", "|---|---|---|---|---|---|"]
    for key in ("start", "refined"):
        r = res[key]
        for worms in ("search_worms", "held_out"):
            sc = r["score_held_out"] if worms == "held_out" else r["score_search_worms"]
            L.append(f"| {key} | {worms.replace('_', ' ')} | {sc} | "
                     + " | ".join(fmt(r[worms][f"{t:g}"]) for t in pb.TCS) + " |")
    L += ["", "Parameters (k, θ, σ_d, base, σ_l, τ_fast s, τ_slow s):", "",
          f"- start: {res['start']['params']}", f"- refined: {res['refined']['params']}",
          "", f"Accepted candidates: {sum(h['accepted'] for h in res['history'][1:])} of {res['n_candidates']}."]
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    res = main(int(sys.argv[1]) if len(sys.argv) > 1 else 80)
    (HERE / "results" / "policy_refine.json").write_text(json.dumps(res, indent=1) + "\n")
    (HERE / "results" / "policy_refine.md").write_text(markdown(res))
    print(markdown(res))

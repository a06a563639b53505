"""Which connections carry the shipped head circuit's temperature dependence: each of its chemical
connections removed in turn (issue 17: "which connections carry the behaviour, by ablating them one
at a time").

The shipped circuit (``owjax/data/thermotaxis/head_circuit.npz``, fitted by ``imitate.py``) is the
first whose worms end at temperatures that depend on T_c (19.1 / 21.0 / 23.5 °C for T_c = 15 / 20 /
25 °C). For each of its 117 chemical connections, that connection's weight is set to 0 and the
closed loop is run as ``imitate.py`` runs it (radial plate, pirouette events, 20 min, seed 1234), on
the same worms for every ablation (same start positions, headings and noise: paired differences),
``--worms`` per T_c. Reported per connection: the mean final temperature at each T_c, its change from the intact
circuit, and the *T_c slope* (final temperature at T_c 25 minus at 15, divided by 10: 1 would be
perfect tracking, 0 no dependence on T_c). A connection carries the behaviour if removing it takes the
slope towards 0; the table is sorted by the slope.

Run: ``.venv/bin/python experiments/thermotaxis/connection_ablation.py [--worms 16] [--out NAME]`` (≈ 40 min
on the 2-core CPU at 16 worms). Writes ``results/NAME.{json,md}`` (default ``connection_ablation``);
checkpointed after every connection (``results/NAME.partial.json``), so a killed run resumes where it
stopped. A circuit with AFD's phasic channel (``owjax.sensory.phasic``) gets one more row: the channel's
gain set to 0 (``afd_phasic``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import imitate  # noqa: E402
import policy_bounds as pb  # noqa: E402

from owjax.core.checkpoint import atomic_write_json, atomic_write_text  # noqa: E402
from owjax.navigation.evaluate import run_worms  # noqa: E402
from owjax.navigation.params import DEFAULT_DATA, load_values  # noqa: E402
from owjax.navigation.setup import draw_worms, make_loop  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PHASIC_ROW = "afd_phasic (gain 0)"
DURATION_S, SEED = 1200.0, 1234


def evaluate(task, values: dict, n_worms: int, seed: int = SEED) -> dict:
    """Mean final temperature (°C) per T_c and the T_c slope of the loop with ``values``: the worms of
    all three T_c in one vmapped solve (T_c cycling over the batch), the same worms for every call
    with the same ``seed``."""
    loop = make_loop(pb.FIELD_, task.body, values, "C1", 10.0, "float32", (), duration_s=DURATION_S)
    worms = draw_worms(jax.random.PRNGKey(seed), n_worms * len(pb.TCS), pb.FIELD_, pb.TCS, DURATION_S,
                       float(task.body.get("noise_dt_s", 1.0)))
    pos = run_worms(loop, worms, DURATION_S, 1.0, batch=n_worms * len(pb.TCS))
    final = np.asarray(pb.FIELD_(pos[:, -1, 0], pos[:, -1, 1]))
    tcs = np.asarray(worms["tc"])
    finals = {f"{tc:g}": float(final[np.isclose(tcs, tc)].mean()) for tc in pb.TCS}
    lo, hi = min(pb.TCS), max(pb.TCS)
    return {"final_c": finals, "slope": (finals[f"{hi:g}"] - finals[f"{lo:g}"]) / (hi - lo)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worms", type=int, default=16, help="worms per cultivation temperature (default 16)")
    ap.add_argument("--out", default="connection_ablation", help="results/OUT.{json,md} (default connection_ablation)")
    ap.add_argument("--report", action="store_true", help="only rewrite results/OUT.md from its .json")
    a = ap.parse_args(argv)
    if not a.out or "/" in a.out:
        raise SystemExit(f"--out must be a plain file stem (written under {RESULTS}), got {a.out!r}")
    OUT = RESULTS / a.out
    if a.report:
        res = json.loads(OUT.with_suffix(".json").read_text())
        atomic_write_text(OUT.with_suffix(".md"), markdown(res))
        print(markdown(res))
        return 0
    if a.worms < 1:
        raise SystemExit(f"--worms must be >= 1, got {a.worms}")
    t0 = time.time()
    task = imitate.make_task()
    names = list(task.synapse_names)
    values = load_values(DEFAULT_DATA, names, task.cell_names)
    partial = OUT.with_suffix(".partial.json")
    state = json.loads(partial.read_text()) if partial.is_file() else {}
    if state and state.get("worms") != a.worms:
        raise SystemExit(f"{partial} was written with --worms {state.get('worms')}; delete it or use that value")
    state.setdefault("worms", a.worms)
    if "intact" not in state:
        state["intact"] = evaluate(task, values, a.worms)
        atomic_write_json(partial, state)
    print("intact", state["intact"], f"{time.time() - t0:.0f} s", flush=True)
    rows = state.setdefault("ablated", {})
    for i, name in enumerate(names):
        if name in rows:
            continue
        w = np.array(values["weight"], np.float64)
        w[i] = 0.0
        rows[name] = dict(evaluate(task, dict(values, weight=w), a.worms), weight=float(values["weight"][i]),
                          weight_c302=float(np.asarray(task.w_c302)[i]))
        atomic_write_json(partial, state)
        print(f"{i + 1}/{len(names)} {name}: slope {rows[name]['slope']:+.3f} "
              f"(intact {state['intact']['slope']:+.3f}), {time.time() - t0:.0f} s", flush=True)
    if "afd_phasic_pA" in values and PHASIC_ROW not in rows:
        rows[PHASIC_ROW] = dict(evaluate(task, dict(values, afd_phasic_pA=0.0), a.worms), weight=None, weight_c302=None)
        atomic_write_json(partial, state)
        print(f"{PHASIC_ROW}: slope {rows[PHASIC_ROW]['slope']:+.3f}", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE).stdout.strip()
    res = {"command": f"python experiments/thermotaxis/connection_ablation.py --worms {a.worms} --out {a.out}",
           "git_commit": commit, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "circuit": str(DEFAULT_DATA.relative_to(HERE.parents[1])), "duration_s": DURATION_S, "seed": SEED,
           "wall_time_s_this_run": round(time.time() - t0, 1), **state}
    atomic_write_json(OUT.with_suffix(".json"), res)
    atomic_write_text(OUT.with_suffix(".md"), markdown(res))
    partial.unlink()
    print(markdown(res))
    return 0


def markdown(res: dict) -> str:
    intact = res["intact"]
    tcs = list(intact["final_c"])
    rows = sorted(res["ablated"].items(), key=lambda kv: kv[1]["slope"])
    head = " | ".join(f"T_c {t} °C: final (Δ)" for t in tcs)
    L = ["# Which connections carry the shipped circuit's temperature dependence", "",
         f"Written by `{res['command']}` ({res['date']}, commit {res['git_commit']}). Each chemical connection "
         f"of `{res['circuit']}` removed in turn (weight 0); radial plate, {res['worms']} worms per T_c, "
         f"{res['duration_s']:g} s, seed {res['seed']} (the same worms for every row: paired differences).", "",
         f"T_c slope = (final at {tcs[-1]} − final at {tcs[0]}) / {float(tcs[-1]) - float(tcs[0]):g}: 1 is perfect "
         "tracking, 0 no dependence on T_c. Intact circuit: slope "
         f"**{intact['slope']:+.3f}**, finals " + " / ".join(f"{intact['final_c'][t]:.2f}" for t in tcs) + " °C.", "",
         f"| connection | weight / c302's | slope | {head} |", "|---|---|---|" + "---|" * len(tcs)]
    for name, r in rows:
        cells = " | ".join(f"{r['final_c'][t]:.2f} ({r['final_c'][t] - intact['final_c'][t]:+.2f})" for t in tcs)
        ratio = "—" if r["weight"] is None else f"{r['weight'] / r['weight_c302']:.3g}"
        L.append(f"| {name} | {ratio} | {r['slope']:+.3f} | {cells} |")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())

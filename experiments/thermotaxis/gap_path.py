"""Would a second path from AFD make AIY-killed worms cryophilic? The AFD–AIB gap junctions, scaled.

In c302's head circuit AFD reaches the rest of the circuit through one chemical synapse per side
(AFD → AIY) and the AFD–AIB gap junctions (one per side, c302's C1 conductance: 0.52 pS each, untrained
and negligible). So a worm with AIY killed is, to the circuit, a worm with AFD killed: it cannot be
cryophilic (Mori & Ohshima 1995) because no temperature signal is left. This diagnostic asks whether the
connectome's other path could carry one: the shipped circuit with the AFD–AIB gap junctions' weight
multiplied by each ``--factors`` value (nothing retrained), wild type and AIY killed (and AFD killed once,
the uninformed reference), 24 worms per T_c (15, 20, 25 °C), 20 min, radial plate, held-out worms (seed
1234), starts ``--start`` (uniform on the plate, or on each T_c's isotherm).

If scaling the gap junction makes the AIY-killed worms end cold of T_c while the wild type still tracks
T_c, the path is there to be trained (``circuit.gap_trainable``, not yet built); if it makes them
thermophilic or changes nothing, the connectome's second path cannot give the 1995 phenotype in this
circuit without changing AIB's downstream signs.

Run: ``.venv/bin/python experiments/thermotaxis/gap_path.py [--factors 1 100 1000 10000]
[--start uniform|isotherm] [--seed 1234] [--no-phasic] [--out NAME]`` (≈ 10 s per row on the 2-core CPU). Writes
``results/gap_path[_NAME].{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import policy_bounds as pb  # noqa: E402
from imitate import GAPS, closed_loop, make_task, scale_gaps  # noqa: E402

from owjax.core.checkpoint import atomic_write_json, atomic_write_text  # noqa: E402
from owjax.fitting.tasks.thermotaxis import ABLATIONS  # noqa: E402
from owjax.navigation.params import DEFAULT_DATA, load_values  # noqa: E402
from owjax.navigation.setup import STARTS  # noqa: E402

CASES = (("wild_type", ()), ("AIY", ABLATIONS["AIY"]))


def main(factors: list[float], start: str, seed: int, out: str | None, no_phasic: bool = False) -> dict:
    task, vals = make_task(), load_values(DEFAULT_DATA)
    if no_phasic:  # AFD's phasic channel off: what drives AFD far below rest (to −3 V) in the shipped circuit
        vals = dict(vals, afd_phasic_pA=0.0)
    rows = {}
    runs = [(f, CASES) for f in factors] + [(1.0, (("AFD", ABLATIONS["AFD"]),))]
    for factor, cases in runs:
        closed = closed_loop(task, vals, cases, task.memory_tau_s, seed, start=start, transform_loop=scale_gaps(factor),
                             v_min_cells=("AFDL", "AIBL"))
        rows |= {f"{factor:g}/{k}": {m: v if m == "v_min_mV" else round(float(v), 3) for m, v in row.items()}
                 for k, row in closed.items()}
    res = {"factors": factors, "gaps": list(GAPS), "start": start, "seed": seed, "afd_phasic_off": no_phasic, "plate": "radial 13 → 27 °C, 4.5 cm",
           "worms_per_tc": 24, "duration_s": 1200.0, "memory_tau_s": task.memory_tau_s, "circuit": str(DEFAULT_DATA),
           "rows": rows, "command": "python experiments/thermotaxis/gap_path.py " + " ".join(sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d %H:%M %Z")}
    stem = HERE / "results" / ("gap_path" + (f"_{out}" if out else ""))
    atomic_write_json(stem.with_suffix(".json"), res)
    lines = [f"# The AFD–AIB gap junctions scaled (shipped circuit, nothing retrained; starts: {start}, seed {seed}"
             f"{'; AFD phasic channel off' if no_phasic else ''})", "",
             "Mean final temperature °C for T_c 15 / 20 / 25 (thermotaxis index; isothermal fraction), 24 worms per T_c, "
             "20 min, radial plate.", "",
             "| gap weight × | " + " | ".join(n for n, _ in CASES) + " |", "|---|" + "---|" * len(CASES)]

    def cell(factor, name):
        r = [rows[f"{factor:g}/{name}/{tc:g}"] for tc in pb.TCS]
        return (" / ".join(f"{x['mean_final_temp_c']:.2f}" for x in r) + " ("
                + " / ".join(f"{x['thermotaxis_index']:+.2f}" for x in r) + "; "
                + " / ".join(f"{x['isothermal_fraction']:.2f}" for x in r) + ")")

    for f in factors:
        lines.append(f"| {f:g} | " + " | ".join(cell(f, n) for n, _ in CASES) + " |")
    lines += ["", f"AFD killed (gap × 1): {cell(1.0, 'AFD')}.", "",
              "Lowest AFDL / AIBL potential over the run (mV), wild type at T_c 15 °C: "
              + "; ".join(f"× {f:g}: " + " / ".join(f"{v:g}" for v in rows[f"{f:g}/wild_type/15"]["v_min_mV"].values())
                          for f in factors) + ".", ""]
    atomic_write_text(stem.with_suffix(".md"), "\n".join(lines))
    print("\n".join(lines))
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--factors", type=float, nargs="+", default=[1.0, 100.0, 1000.0, 10000.0])
    ap.add_argument("--start", default="uniform", choices=STARTS)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-phasic", action="store_true", help="AFD's phasic channel off (gain 0)")
    a = ap.parse_args()
    if any(not f > 0 for f in a.factors):
        raise SystemExit(f"--factors must be > 0, got {a.factors}")
    main(a.factors, a.start, a.seed, a.out, a.no_phasic)

"""A saved head circuit (default: the shipped one) in the closed loop as ``imitate.py`` evaluates it.

Radial plate (13 → 27 °C over 4.5 cm), 24 worms per T_c (15, 20, 25 °C), 20 min, pirouette events,
worms of ``--seed`` (``imitate.py`` reports seed 1234; 4321 is a second held-out set); wild type and,
with ``--ablations``, AFD, AIY and AIZ killed. ``TAU`` is the AFD transducer's memory of T_c in s
(``none``: the fitted 1 301 s; the loop's default is 14 400 s).

Run: ``.venv/bin/python experiments/thermotaxis/evaluate_shipped.py TAU [--ablations] [--circuit PATH]
[--seed N] [--plate NAME] [--start isotherm] > results/NAME.json`` (≈ 1 min per row on the 2-core CPU); the last line printed is the JSON
(``imitate.closed_loop``). ``--plate``: another of ``policy_bounds.PLATES`` (``linear``: 13 → 27 °C over
9 cm; ``linear_wide``: 11 → 29 °C over 9 cm). ``--start isotherm``: every worm starts on the isotherm of its
T_c (default: uniform on the plate).
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import policy_bounds as pb  # noqa: E402
from imitate import closed_loop, make_task  # noqa: E402

from owjax.fitting.tasks.thermotaxis import ABLATIONS  # noqa: E402
from owjax.navigation.params import DEFAULT_DATA, load_values  # noqa: E402
from owjax.navigation.setup import STARTS  # noqa: E402

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tau", help="the AFD memory of T_c (s), or 'none' for the fitted 1 301 s")
    ap.add_argument("--ablations", action="store_true", help="also AFD, AIY and AIZ killed")
    ap.add_argument("--circuit", type=Path, default=DEFAULT_DATA, help="a head_circuit.npz (default: the shipped one)")
    ap.add_argument("--seed", type=int, default=1234, help="the worms' seed (default 1234, imitate.py's)")
    ap.add_argument("--plate", default="radial", help=f"the plate (default radial; known: {', '.join(pb.PLATES)})")
    ap.add_argument("--start", default="uniform", choices=STARTS,
                    help="start positions: uniform on the plate (default) or on each T_c's isotherm")
    a = ap.parse_args()
    if not a.circuit.is_file():
        raise SystemExit(f"--circuit: no file {a.circuit}")
    tau = float(a.tau) if a.tau != "none" else None
    cases = [("wild_type", ())] + (list(ABLATIONS.items()) if a.ablations else [])
    out = closed_loop(make_task(), load_values(a.circuit), cases, tau, a.seed, field=pb.plate(a.plate), start=a.start)
    print(json.dumps({k: {m: round(float(v), 3) for m, v in row.items()} for k, row in out.items()}))

"""The shipped head circuit in the closed loop as ``imitate.py`` evaluates it, with a chosen AFD memory.

Radial plate (13 → 27 °C over 4.5 cm), 24 worms per T_c (15, 20, 25 °C), 20 min, held-out seed 1234,
pirouette events; wild type and, with ``--ablations``, AFD, AIY and AIZ killed. ``TAU`` is the AFD
transducer's memory of T_c in s (``none``: the fitted 1 301 s; the loop's default is 14 400 s).

Run: ``.venv/bin/python experiments/thermotaxis/evaluate_shipped.py TAU [--ablations] > results/NAME.json``
(≈ 1 min per row on the 2-core CPU); the last line printed is the JSON (``imitate.closed_loop``).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from imitate import closed_loop, make_task  # noqa: E402

from owjax.fitting.tasks.thermotaxis import ABLATIONS  # noqa: E402
from owjax.navigation.params import DEFAULT_DATA, load_values  # noqa: E402

if __name__ == "__main__":
    tau = float(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "none" else None
    cases = [("wild_type", ())] + (list(ABLATIONS.items()) if "--ablations" in sys.argv else [])
    out = closed_loop(make_task(), load_values(DEFAULT_DATA), cases, tau)
    print(json.dumps({k: {m: round(float(v), 3) for m, v in row.items()} for k, row in out.items()}))

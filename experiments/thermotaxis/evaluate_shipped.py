"""The shipped head circuit in the closed loop as ``imitate.py`` evaluates it, with a chosen AFD memory.

Radial plate (13 → 27 °C over 4.5 cm), 24 worms per T_c (15, 20, 25 °C), 20 min, held-out seed 1234,
pirouette events; wild type and, with ``--ablations``, AFD, AIY and AIZ killed. ``TAU`` is the AFD
transducer's memory of T_c in s (``none``: the fitted 1 301 s; the loop's default is 14 400 s).

Run: ``.venv/bin/python experiments/thermotaxis/evaluate_shipped.py TAU [--ablations] > results/NAME.json``
(≈ 1 min per row on the 2-core CPU); the last line printed is the JSON.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import policy_bounds as pb  # noqa: E402
from imitate import make_task  # noqa: E402

from owjax.fitting.tasks.thermotaxis import ABLATIONS  # noqa: E402
from owjax.navigation.evaluate import evaluate_thermotaxis  # noqa: E402
from owjax.navigation.params import DEFAULT_DATA, load_values  # noqa: E402

if __name__ == "__main__":
    task = make_task()
    vals = load_values(DEFAULT_DATA)
    tau = float(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "none" else None
    cases = [("wild_type", ())] + (list(ABLATIONS.items()) if "--ablations" in sys.argv else [])
    out = {}
    for case, cells in cases:
        for tc in pb.TCS:
            s, _ = evaluate_thermotaxis(pb.FIELD_, task.body, vals, tc, 24, 1200.0, 1234, cells, 1.0, "C1", 10.0,
                                        "float32", memory_tau_s=tau)
            out[f"{case}/{tc:g}"] = {k: round(float(s[k]), 3) for k in ("mean_final_temp_c", "sd_final_temp_c",
                                                                         "isothermal_fraction", "thermotaxis_index")}
            print(case, tc, out[f"{case}/{tc:g}"], file=sys.stderr, flush=True)
    print(json.dumps(out))

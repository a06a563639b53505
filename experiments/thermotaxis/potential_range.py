"""How far a trained head circuit drives its cells in the closed loop: the range of every cell's
membrane potential against c302's I–V table (−100 … +60 mV), per cultivation temperature.

Radial plate as ``imitate.py`` (13 → 27 °C over 4.5 cm), 8 worms per T_c (15, 20, 25 °C), 5 min,
seed 1234, AFD memory 4 h; ``owjax.navigation.evaluate.evaluate_thermotaxis`` records the range
(``circuit_v_range_mV``, ``cells_outside_iv_grid``).

Run: ``.venv/bin/python experiments/thermotaxis/potential_range.py CIRCUIT.npz [NAME]`` (``shipped``:
owjax/data/thermotaxis/head_circuit.npz; ≈ 1 min per T_c on the 2-core CPU). Writes
``results/potential_range_NAME.json``.
"""

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import policy_bounds as pb  # noqa: E402
from imitate import make_task  # noqa: E402

from owjax.navigation.evaluate import evaluate_thermotaxis  # noqa: E402
from owjax.navigation.params import DEFAULT_DATA, load_values  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    path = DEFAULT_DATA if sys.argv[1] == "shipped" else Path(sys.argv[1])
    name = sys.argv[2] if len(sys.argv) > 2 else path.parent.name
    vals, task, rows = load_values(path), make_task(), {}
    t0 = time.time()
    for tc in pb.TCS:
        s, _ = evaluate_thermotaxis(pb.FIELD_, task.body, vals, tc, 8, 300.0, 1234, (), 1.0, "C1", 10.0, "float32",
                                    memory_tau_s=14400.0)
        rows[f"{tc:g}"] = {"cells_outside_iv_grid": s["cells_outside_iv_grid"],
                           "circuit_v_range_mV": {k: [round(float(x), 1) for x in v]
                                                  for k, v in s["circuit_v_range_mV"].items()}}
        print(tc, s["cells_outside_iv_grid"], flush=True)
    out = {"circuit": str(path), "worms_per_tc": 8, "duration_s": 300.0, "seed": 1234, "memory_tau_s": 14400.0,
           "iv_table_mV": [-100.0, 60.0], "by_tc": rows, "wall_time_s": round(time.time() - t0, 1),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": "python experiments/thermotaxis/potential_range.py " + " ".join(sys.argv[1:])}
    (HERE / "results" / f"potential_range_{name}.json").write_text(json.dumps(out, indent=1) + "\n")

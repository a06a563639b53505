"""Does removing several "slope-lowering" connections at once make the shipped circuit track better?

Follow-up of ``connection_ablation.py``: the connections whose single removal gave the highest T_c
slope (``results/connection_ablation.json``) are removed together, the top 0 / 3 / 6 / 10, and the
loop is run as there (16 worms per T_c, radial plate, 20 min) on the ablation's worms (seed 1234) and
on held-out worms (seed 4321).

Run: ``.venv/bin/python experiments/thermotaxis/connection_pruning.py`` (≈ 4 min on the 2-core CPU).
Writes ``results/connection_pruning.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import connection_ablation as ca  # noqa: E402
import imitate  # noqa: E402

from owjax.core.checkpoint import atomic_write_json  # noqa: E402
from owjax.navigation.params import DEFAULT_DATA, load_values  # noqa: E402

HERE = Path(__file__).resolve().parent
SEEDS, COUNTS, WORMS = (1234, 4321), (0, 3, 6, 10), 16


def main() -> int:
    t0 = time.time()
    task = imitate.make_task()
    names = list(task.synapse_names)
    values = load_values(DEFAULT_DATA, names, task.cell_names)
    abl = json.loads((HERE / "results" / "connection_ablation.json").read_text())["ablated"]
    order = sorted(abl, key=lambda n: -abl[n]["slope"])
    rows = {}
    for seed in SEEDS:
        for k in COUNTS:
            w = np.array(values["weight"], np.float64)
            for n in order[:k]:
                w[names.index(n)] = 0.0
            rows[f"seed {seed}, top {k} removed"] = ca.evaluate(task, dict(values, weight=w), WORMS, seed)
            print(seed, k, rows[f"seed {seed}, top {k} removed"], flush=True)
    atomic_write_json(HERE / "results" / "connection_pruning.json",
                      {"command": "python experiments/thermotaxis/connection_pruning.py", "worms_per_tc": WORMS,
                       "removed_in_order": order[:max(COUNTS)], "results": rows,
                       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "wall_time_s": round(time.time() - t0, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())

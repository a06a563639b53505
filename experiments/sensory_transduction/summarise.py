"""Collect the sensory-transduction runs into results/metrics.json, copy their figures, print the tables.

    python experiments/sensory_transduction/summarise.py AFD_RUN AFD_HOLDOUT_RUN BAG_RUN

(the run directories of the three ``python -m owjax.fit`` commands in the README); reads
``results/selection_afd/selection.json`` and ``results/generalisation_afd/selection.json`` (written by
``python -m owjax.sensory select``).
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
RES = HERE / "results"


def _strip(d):
    return {k: v for k, v in d.items() if k not in ("per_worm",)}


def main(afd_run, gen_run, bag_run):
    afd = json.loads((Path(afd_run) / "metrics.json").read_text())
    gen = json.loads((Path(gen_run) / "metrics.json").read_text())
    bag = json.loads((Path(bag_run) / "metrics.json").read_text())
    sel = json.loads((RES / "selection_afd" / "selection.json").read_text())
    gsel = json.loads((RES / "generalisation_afd" / "selection.json").read_text())
    out = {
        "machine": f"{platform.machine()} {platform.processor() or ''} ({platform.node()}), 2 shared CPU cores",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "afd": {"spec": afd["spec"], "test": _strip(afd["test"]), "val": _strip(afd["val"]),
                "train_wall_time_s": afd["train_wall_time_s"], "tau_adapt_s": afd["tau_adapt_s"],
                "best_step": afd["best_step"], "worm_ids": afd["worm_ids"]},
        "afd_unseen_15C_hold": {"spec": gen["spec"], "test": _strip(gen["test"]),
                                "train_wall_time_s": gen["train_wall_time_s"], "tau_adapt_s": gen["tau_adapt_s"]},
        "afd_selection": sel["rows"],
        "afd_generalisation_by_inputs": gsel["rows"],
        "bag": {"spec": bag["spec"], "leave_one_worm_out": bag["leave_one_worm_out"],
                "final_model_fit_all_worms": _strip(bag["train_fit"]), "train_wall_time_s": bag["train_wall_time_s"],
                "tau_adapt_s": bag["tau_adapt_s"]},
    }
    (RES / "metrics.json").write_text(json.dumps(out, indent=1, default=float) + "\n")
    for src, dst in ((Path(afd_run) / "traces_test.png", "afd_test_traces.png"),
                     (Path(gen_run) / "traces_test.png", "afd_unseen_15C_hold_traces.png"),
                     (Path(bag_run) / "traces_leave_one_worm_out.png", "bag_leave_one_worm_out_traces.png")):
        if src.is_file():
            shutil.copyfile(src, RES / dst)
    print(json.dumps({k: v for k, v in out.items() if k not in ("afd_selection",)}, indent=1, default=float)[:6000])


if __name__ == "__main__":
    main(*sys.argv[1:4])

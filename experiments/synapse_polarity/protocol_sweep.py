"""Does the trial's time scale or readout decide how well unfitted C2 predicts the atlas? (issue 18)

    .venv/bin/python experiments/synapse_polarity/protocol_sweep.py [--out outputs/sp/protocol_sweep]

The atlas' responses are GCaMP ΔF/F over seconds; the conductance model's trials are 150-ms V means.
For each readout (``v``, ``ca``) and trial (pulse, duration) in ms — (50, 75), (100, 150), (300, 400),
(500, 1000), (1000, 2000) — this runs the one command with the C2 network and one optimiser step
(``optim.steps=1``; only the unfitted c302 baseline is read, ≈ 1–2 min per setting on the 2-core CPU)
and tabulates the unfitted network's train r (118 stimulated neurons: what a protocol may be chosen
on) and held-out r (40 neurons, with its bootstrap CI) on the same seed-0 split. Runs already in
``--out`` are reused. Writes ``experiments/synapse_polarity/results/protocol_sweep.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
TRIALS = ((50, 75), (100, 150), (300, 400), (500, 1000), (1000, 2000))
READOUTS = ("v", "ca")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="outputs/sp/protocol_sweep")
    a = p.parse_args(argv)
    rows = []
    for readout in READOUTS:
        for stim, dur in TRIALS:
            run = ROOT / a.out / f"{readout}_{dur}ms"
            if not (run / "metrics.json").exists():
                cmd = [sys.executable, "-m", "owjax.fit", "+experiment=synapse_polarity",
                       "synapse_polarity.model=c302", "synapse_polarity.parameter_set=C2",
                       "synapse_polarity.loss=scaled_mse", "optim.steps=1", "synapse_polarity.conductance_sharing=nt",
                       "synapse_polarity.gain_bound=1.5", "+synapse_polarity.protocol.solver=imex",
                       f"synapse_polarity.protocol.stim_duration_ms={stim}", f"synapse_polarity.protocol.duration_ms={dur}",
                       f"synapse_polarity.protocol.readout={readout}", "progress=false", "figures=false",
                       f"hydra.run.dir={run}"]
                print(f"== {readout}, pulse {stim} ms, trial {dur} ms", flush=True)
                subprocess.run(cmd, cwd=ROOT, check=True)
            m = json.loads((run / "metrics.json").read_text())
            rows.append(dict(readout=readout, stim_duration_ms=stim, duration_ms=dur,
                             train_r=m["baseline_c302_train_r"], test_r=m["baseline_c302_test_r"],
                             test_r_ci95=m["baseline_c302_test_r_ci95"],
                             test_sign_agreement=m["baseline_c302_test_sign_agreement"],
                             shuffled_test_r=m["shuffled_test_r"], noise_ceiling_r=m["noise_ceiling_r"]))
    best = max(rows, key=lambda r: r["train_r"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "protocol_sweep.json").write_text(json.dumps(dict(rows=rows, chosen_on_train=best), indent=1) + "\n")
    md = ["Unfitted C2 (c302's weights and signs) under each trial protocol, seed-0 split "
          "(`experiments/synapse_polarity/protocol_sweep.py`). Train r: 950 significant pairs of 118 stimulated "
          "neurons; held-out r: 200 pairs of 40 neurons (ceiling %.3f)." % rows[0]["noise_ceiling_r"], "",
          "| readout | pulse (ms) | trial (ms) | train r | held-out r (95 % CI) | held-out sign agreement | "
          "shuffled connectome (unfitted), held-out r |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['readout']} | {r['stim_duration_ms']} | {r['duration_ms']} | {r['train_r']:.3f} | "
                  f"{r['test_r']:.3f} [{r['test_r_ci95'][0]:.3f}, {r['test_r_ci95'][1]:.3f}] | "
                  f"{r['test_sign_agreement']:.2f} | {r['shuffled_test_r']:.3f} |")
    md += ["", f"Chosen on train r: readout {best['readout']}, {best['stim_duration_ms']}-ms pulse in a "
               f"{best['duration_ms']}-ms trial (train {best['train_r']:.3f}, held-out {best['test_r']:.3f})."]
    (RESULTS / "protocol_sweep.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())

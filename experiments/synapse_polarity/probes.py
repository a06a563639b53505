"""Two probes of the conductance model on C2 (issue 18), each a set of runs of the one command.

    .venv/bin/python experiments/synapse_polarity/probes.py protocol [--out outputs/sp/protocol_sweep]
    .venv/bin/python experiments/synapse_polarity/probes.py splits [--out outputs/sp/split_seeds] [--fit-seeds 0 1 2 3]

``protocol``: does the trial's time scale or readout decide how well unfitted C2 predicts the atlas?
The atlas' responses are GCaMP ΔF/F over seconds; the conductance model's trials are 150-ms V means.
For each readout (``v``, ``ca``) and trial (pulse, duration) in ms — (50, 75), (100, 150), (300, 400),
(500, 1000), (1000, 2000) — one run with one optimiser step (``optim.steps=1``: only the unfitted
c302 baseline is read, ≈ 1 min per setting on the 2-core CPU with the ``imex`` trials), tabulating
the unfitted network's train r (118 stimulated neurons: what a protocol may be chosen on) and held-out
r (40 neurons, bootstrap CI) on the seed-0 split. Writes ``results/protocol_sweep.{json,md}``.

``splits``: how much does the held-out number depend on which neurons are held out? The unfitted C2
network on the splits of ``--seeds`` (default 0–7; ``seed`` draws the bilateral 118/40 split), and
the bounded per-class fit (``conductance_sharing=class gain_bound=1.5``, 100 steps, ``imex`` trials
with the discrete adjoint, ≈ 2 min each) on ``--fit-seeds``, with its paired difference from the
start. Writes ``results/split_seeds.{json,md}``.

Runs already in ``--out`` are reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
TRIALS = ((50, 75), (100, 150), (300, 400), (500, 1000), (1000, 2000))
READOUTS = ("v", "ca")
C2 = ["+experiment=synapse_polarity", "synapse_polarity.model=c302", "synapse_polarity.parameter_set=C2",
      "synapse_polarity.loss=scaled_mse", "+synapse_polarity.protocol.solver=imex", "progress=false", "figures=false"]
UNFITTED = ["optim.steps=1", "synapse_polarity.conductance_sharing=nt", "synapse_polarity.gain_bound=1.5"]
CLASS_FIT = ["optim.steps=100", "synapse_polarity.conductance_sharing=class", "synapse_polarity.gain_bound=1.5",
             "synapse_polarity.protocol.adjoint=discrete"]


def run(run_dir: Path, overrides: list[str]) -> dict:
    """The one command with ``overrides`` in ``run_dir`` (skipped if it finished there); its metrics."""
    if not (run_dir / "metrics.json").exists():
        print(f"== {run_dir.name}: {' '.join(overrides)}", flush=True)
        subprocess.run([sys.executable, "-m", "owjax.fit", *C2, *overrides, f"hydra.run.dir={run_dir}"], cwd=ROOT,
                       check=True)
    return json.loads((run_dir / "metrics.json").read_text())


def protocol(out: Path) -> list[str]:
    rows = []
    for readout in READOUTS:
        for stim, dur in TRIALS:
            m = run(out / f"{readout}_{dur}ms", [*UNFITTED, f"synapse_polarity.protocol.stim_duration_ms={stim}",
                                                 f"synapse_polarity.protocol.duration_ms={dur}",
                                                 f"synapse_polarity.protocol.readout={readout}"])
            rows.append(dict(readout=readout, stim_duration_ms=stim, duration_ms=dur,
                             train_r=m["baseline_c302_train_r"], test_r=m["baseline_c302_test_r"],
                             test_r_ci95=m["baseline_c302_test_r_ci95"],
                             test_sign_agreement=m["baseline_c302_test_sign_agreement"],
                             shuffled_test_r=m["shuffled_test_r"], noise_ceiling_r=m["noise_ceiling_r"]))
    best = max(rows, key=lambda r: r["train_r"])
    (RESULTS / "protocol_sweep.json").write_text(json.dumps(dict(rows=rows, chosen_on_train=best), indent=1) + "\n")
    md = ["Unfitted C2 (c302's weights and signs) under each trial protocol, seed-0 split "
          "(`experiments/synapse_polarity/probes.py protocol`). Train r: 950 significant pairs of 118 stimulated "
          "neurons; held-out r: 200 pairs of 40 neurons (ceiling %.3f)." % rows[0]["noise_ceiling_r"], "",
          "| readout | pulse (ms) | trial (ms) | train r | held-out r (95 % CI) | held-out sign agreement | "
          "shuffled connectome (unfitted), held-out r |", "|---|---|---|---|---|---|---|"]
    md += [f"| {r['readout']} | {r['stim_duration_ms']} | {r['duration_ms']} | {r['train_r']:.3f} | "
           f"{r['test_r']:.3f} [{r['test_r_ci95'][0]:.3f}, {r['test_r_ci95'][1]:.3f}] | "
           f"{r['test_sign_agreement']:.2f} | {r['shuffled_test_r']:.3f} |" for r in rows]
    md += ["", f"Chosen on train r: readout {best['readout']}, {best['stim_duration_ms']}-ms pulse in a "
               f"{best['duration_ms']}-ms trial (train {best['train_r']:.3f}, held-out {best['test_r']:.3f})."]
    (RESULTS / "protocol_sweep.md").write_text("\n".join(md) + "\n")
    return md


def splits(out: Path, seeds: list[int], fit_seeds: list[int]) -> list[str]:
    rows = []
    for s in seeds:
        m = run(out / f"seed{s}", [*UNFITTED, f"seed={s}"])
        row = dict(seed=s, n_test_neurons=m["n_test_neurons"], start_train_r=m["baseline_c302_train_r"],
                   start_test_r=m["baseline_c302_test_r"], start_test_r_ci95=m["baseline_c302_test_r_ci95"],
                   shuffled_test_r=m["shuffled_test_r"], noise_ceiling_r=m["noise_ceiling_r"])
        if s in fit_seeds:
            f = run(out / f"class_bound15_seed{s}", [*CLASS_FIT, f"seed={s}"])
            row.update(fitted_train_r=f["train_r"], fitted_test_r=f["test_r"], fitted_test_r_ci95=f["test_r_ci95"],
                       fitted_minus_start=f["test_r_minus_c302"], fitted_minus_start_ci95=f["test_r_minus_c302_ci95"])
        rows.append(row)
    start = np.array([r["start_test_r"] for r in rows])
    diffs = np.array([r["fitted_minus_start"] for r in rows if "fitted_minus_start" in r])
    summary = dict(start_test_r_mean=float(start.mean()), start_test_r_sd=float(start.std(ddof=1)) if start.size > 1 else None,
                   start_train_r_mean=float(np.mean([r["start_train_r"] for r in rows])),
                   fitted_minus_start_mean=float(diffs.mean()) if diffs.size else None)
    (RESULTS / "split_seeds.json").write_text(json.dumps(dict(rows=rows, summary=summary), indent=1) + "\n")
    md = ["Unfitted C2 and the bounded per-class fit on different bilateral 118/40 splits of the stimulated "
          "neurons (`experiments/synapse_polarity/probes.py splits`; `seed` draws the split, 0 is the one every "
          "other table uses).", "",
          "| split seed | train r (start) | held-out r, start (95 % CI) | shuffled, unfitted | class fit: train r | "
          "class fit: held-out r | fit − start (95 % CI) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        fit = (f"{r['fitted_train_r']:.3f} | {r['fitted_test_r']:.3f} | {r['fitted_minus_start']:+.3f} "
               f"[{r['fitted_minus_start_ci95'][0]:+.3f}, {r['fitted_minus_start_ci95'][1]:+.3f}]"
               if "fitted_test_r" in r else "— | — | —")
        md.append(f"| {r['seed']} | {r['start_train_r']:.3f} | {r['start_test_r']:.3f} [{r['start_test_r_ci95'][0]:.3f}, "
                  f"{r['start_test_r_ci95'][1]:.3f}] | {r['shuffled_test_r']:.3f} | {fit} |")
    md += ["", f"Held-out r of the unfitted network over the {len(rows)} splits: mean {summary['start_test_r_mean']:.3f}"
               + (f" (sd {summary['start_test_r_sd']:.3f})" if summary["start_test_r_sd"] is not None else "")
               + f"; train r mean {summary['start_train_r_mean']:.3f}."
               + (f" Fitted − start, mean over the {diffs.size} fitted splits: {summary['fitted_minus_start_mean']:+.3f}."
                  if diffs.size else "")]
    (RESULTS / "split_seeds.md").write_text("\n".join(md) + "\n")
    return md


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="probe", required=True)
    pp = sub.add_parser("protocol", help="readout x trial length, unfitted C2, seed-0 split")
    pp.add_argument("--out", default="outputs/sp/protocol_sweep")
    ps = sub.add_parser("splits", help="unfitted C2 (and the bounded class fit) over split seeds")
    ps.add_argument("--out", default="outputs/sp/split_seeds")
    ps.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    ps.add_argument("--fit-seeds", type=int, nargs="*", default=[0, 1, 2, 3])
    a = p.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    md = protocol(ROOT / a.out) if a.probe == "protocol" else splits(ROOT / a.out, a.seeds, a.fit_seeds)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())

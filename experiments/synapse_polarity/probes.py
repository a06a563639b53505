"""Probes of what predicts the atlas on held-out stimulated neurons (issue 18): two sets of runs of
the one command on C2, and one statistical reference with no simulation.

    .venv/bin/python experiments/synapse_polarity/probes.py protocol [--out outputs/sp/protocol_sweep]
    .venv/bin/python experiments/synapse_polarity/probes.py splits [--out outputs/sp/split_seeds] [--fit-seeds 0 1 2 3]
    .venv/bin/python experiments/synapse_polarity/probes.py features [--folds 4] [--ridge 1.0]

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

``features``: how much of the atlas can c302's *wiring* predict at all, with no dynamics? A ridge
regression (penalty ``--ridge``) of each significant pair's ΔF/F on features of the pair in the C1
connectome — an excitatory / inhibitory chemical synapse from the stimulated to the responding
neuron (0/1, c302's signs), a gap junction (0/1), the reverse connection (0/1), the log of their
summed conductances, log(1 + number of two-hop paths), the responding neuron's in-degree and the
stimulated neuron's out-degree — fitted on the training folds of the same K-fold split over
stimulated neurons as ``crossval.py`` and evaluated on the held-out fold, pooled; the same with the
responding neuron's mean significant response to the training stimulations added as a feature
(leave-one-out on the training rows), and that mean alone. Bootstrap over stimulated neurons as
everywhere. Writes ``results/feature_baselines.{json,md}``. Seconds; no simulation.

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


def pair_features(model, resp: np.ndarray, stim: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Wiring features of the (responding, stimulated) cell pairs ``resp``/``stim`` (model indices)."""
    from owjax.fitting.tasks.synapse_polarity_metrics import polarity_of

    n = model.n_cells
    pre, post = np.asarray(model.graded.pre), np.asarray(model.graded.post)
    g = np.asarray(model.graded.weight, np.float64) * np.asarray(model.graded.g_nS, np.float64)
    exc = polarity_of(model) > 0.5
    w_exc, w_inh, w_gap = np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n))
    np.add.at(w_exc, (post[exc], pre[exc]), g[exc])
    np.add.at(w_inh, (post[~exc], pre[~exc]), g[~exc])
    gp, gq = np.asarray(model.gaps.pre), np.asarray(model.gaps.post)
    gg = np.asarray(model.gaps.weight, np.float64) * np.asarray(model.gaps.g_nS, np.float64)
    np.add.at(w_gap, (gq, gp), gg)
    np.add.at(w_gap, (gp, gq), gg)
    adj = ((w_exc + w_inh + w_gap) > 0).astype(np.float64)

    def log_strength(w):  # log(1 + g / the median g of that kind of connection): 0 without one
        return np.log1p(w / np.median(w[w > 0]))

    cols = {"excitatory synapse": w_exc > 0, "inhibitory synapse": w_inh > 0, "gap junction": w_gap > 0,
            "reverse connection": adj.T > 0, "log excitatory g": log_strength(w_exc),
            "log inhibitory g": log_strength(w_inh), "log gap g": log_strength(w_gap),
            "log two-hop paths": np.log1p(adj @ adj)}
    x = [np.asarray(v, np.float64)[resp, stim] for v in cols.values()]
    x += [np.log1p(adj.sum(1))[resp], np.log1p(adj.sum(0))[stim]]
    return np.stack(x, axis=1), [*cols, "log in-degree (responder)", "log out-degree (stimulated)"]


def features(folds: int, ridge: float, seed: int = 0) -> list[str]:
    import jax.numpy as jnp

    from owjax.fitting.tasks.synapse_polarity_ceiling import (
        bootstrap_metrics,
        responder_prior,
        significant_responses,
        split_half_reliability,
    )
    from owjax.fitting.tasks.synapse_polarity_metrics import kfold_stimulated
    from owjax.neural.c302_data import load_c302_network
    from owjax.neural.network import NetworkModel
    from owjax.reference.atlas import load_atlas

    model = NetworkModel.from_spec(load_c302_network("C1", "Full"), jnp.float32)
    cells = list(model.cell_names)
    atlas = load_atlas("wt", model.cell_names)
    q_max, clip = 0.05, 2.0
    p = atlas.pairs(q_max=q_max, clip=clip)
    names = list(atlas.names)
    stimulated = [n for n in names if n in {names[j] for j in p.stim}]
    resp = np.array([model.index(names[i]) for i in p.resp])
    stim = np.array([model.index(names[j]) for j in p.stim])
    x_wire, labels = pair_features(model, resp, stim)
    sig = significant_responses(atlas, q_max, clip)
    target = np.asarray(p.target, np.float64)
    preds = {k: np.full(target.size, np.nan) for k in ("wiring", "wiring + responder mean", "responder mean")}
    coefs = []
    for f in range(folds):
        train, _ = kfold_stimulated(stimulated, folds, f, seed)
        is_train = np.isin([names[j] for j in p.stim], train)
        loo = {n: responder_prior(sig, names, cells, train, leave_out=n) for n in train}
        full = responder_prior(sig, names, cells, train)
        prior = np.array([loo[names[j]][r] if is_train[k] else full[r] for k, (r, j) in enumerate(zip(resp, p.stim))])
        for key, x in (("wiring", x_wire), ("wiring + responder mean", np.column_stack([x_wire, prior]))):
            mu, sd = x[is_train].mean(0), x[is_train].std(0) + 1e-12
            z = np.column_stack([(x - mu) / sd, np.ones(target.size)])
            a = z[is_train]
            c = np.linalg.solve(a.T @ a + ridge * np.diag([1.0] * x.shape[1] + [0.0]), a.T @ target[is_train])
            preds[key][~is_train] = z[~is_train] @ c
            if key == "wiring":
                coefs.append(c[:-1].tolist())
        preds["responder mean"][~is_train] = prior[~is_train]
    boot = bootstrap_metrics(preds, target, p.stim, n_boot=2000, seed=seed)
    ceiling = split_half_reliability(atlas.trials(p.resp, p.stim), n_splits=200, seed=seed, clip=clip)["ceiling_r"]
    out = dict(folds=folds, ridge=ridge, seed=seed, n_pairs=int(target.size), n_stimulated=len(stimulated),
               noise_ceiling_r=ceiling, features=labels, standardised_coefficients_per_fold=coefs,
               models={k: dict(r=boot[k]["r"], r_ci=boot[k]["r_ci"], fraction_of_ceiling=boot[k]["r"] / ceiling,
                               sign_agreement=boot[k]["sign_agreement"]) for k in preds},
               differences={k: boot["differences"][k] for k in ("wiring + responder mean-responder mean",
                                                                 "wiring-responder mean")})
    (RESULTS / "feature_baselines.json").write_text(json.dumps(out, indent=1) + "\n")
    md = [f"What c302's wiring predicts of the atlas with no dynamics (`experiments/synapse_polarity/probes.py "
          f"features`): ridge regression (penalty {ridge}, standardised features) on the training folds of the "
          f"{folds}-fold split over {len(stimulated)} stimulated neurons (bilateral, seed {seed}; the split of "
          f"`crossval.py`), every prediction held out, {target.size} significant pairs, noise ceiling {ceiling:.3f}.",
          "", "| predictor | held-out r (95 % CI) | fraction of ceiling | sign agreement |", "|---|---|---|---|"]
    for k, v in out["models"].items():
        md.append(f"| {k} | {v['r']:.3f} [{v['r_ci'][0]:.3f}, {v['r_ci'][1]:.3f}] | {v['fraction_of_ceiling']:.3f} | "
                  f"{v['sign_agreement']:.3f} |")
    d = out["differences"]["wiring + responder mean-responder mean"]
    md += ["", f"Wiring features: {', '.join(labels)}. Adding them to the responder mean: "
               f"{d['r_diff']:+.3f} [{d['r_diff_ci'][0]:+.3f}, {d['r_diff_ci'][1]:+.3f}]. Mean standardised "
               "coefficients over folds: " + ", ".join(f"{lab} {c:+.3f}" for lab, c in
                                                          zip(labels, np.mean(coefs, axis=0)))]
    (RESULTS / "feature_baselines.md").write_text("\n".join(md) + "\n")
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
    pf = sub.add_parser("features", help="ridge regression on wiring features, K-fold held out (no simulation)")
    pf.add_argument("--folds", type=int, default=4)
    pf.add_argument("--ridge", type=float, default=1.0)
    a = p.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if a.probe == "features":
        md = features(a.folds, a.ridge)
    else:
        md = protocol(ROOT / a.out) if a.probe == "protocol" else splits(ROOT / a.out, a.seeds, a.fit_seeds)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())

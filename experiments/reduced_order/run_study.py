"""The reduced-order study: Tables 1–2, coarse vs fine step, input ablation, on owjax-generated data.

    python experiments/reduced_order/run_study.py --data DIR --out experiments/reduced_order/results \
        [--epochs 1000] [--runs 10] [--fine-epochs 1000] [--fine-runs 10] [--only table1,table2,…]

``DIR`` holds ``dataset_dt0.5.h5`` and ``dataset_dt0.1.h5`` from ``python -m owjax.reduce generate``
(optionally a second folder, ``--spiking DIR2``, for the spiking-regime row). Every configuration is
one :func:`owjax.reduce.training.fit_runs` (its runs vmapped); each writes ``OUT/<name>/metrics.json``
and ``curves.json``, and ``OUT/tables.md`` / ``OUT/summary.json`` collect them. Library code does
the work; this script only lists the configurations of the study.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

# the study's numbers (Mestre et al., Sci. Rep., Tables 1–4: the mean of ten runs of Keras'
# evaluate() of an MSE loss on unnormalised data — the MSE over all four outputs)
PAPER = {
    "RNN-16": (1.04e-1, 1.29e-1, 1.34e-1), "LSTM-8": (9.93e-3, 3.61e-2, 1.49e-2), "GRU-8": (7.79e-3, 3.47e-2, 1.00e-2),
    "RNN-64": (6.28e-2, 8.87e-2, 9.54e-2), "LSTM-32": (7.60e-3, 3.64e-2, 1.52e-2), "GRU-32": (6.71e-3, 3.50e-2, 1.23e-2),
    "GRU-2": (4.29e-2, 5.37e-2, 6.00e-2), "GRU-4": (1.05e-2, 3.48e-2, 1.17e-2), "GRU-16": (6.78e-3, 3.49e-2, 9.36e-3),
    "GRU-64": (5.80e-3, 3.62e-2, 1.68e-2),
    "GRU-4 fine": (1.08e-2, 3.45e-2, 1.21e-2), "GRU-8 fine": (8.17e-3, 3.54e-2, 1.04e-2),
    "GRU-8 no-AVB": (None, None, 6.83e-2), "GRU-8 no-PLM": (None, None, 1.96e-1),
}

TABLE1 = [("rnn", 16), ("lstm", 8), ("gru", 8), ("rnn", 64), ("lstm", 32), ("gru", 32)]
TABLE2 = [("gru", 2), ("gru", 4), ("gru", 8), ("gru", 16), ("gru", 32), ("gru", 64)]


def _machine() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    return dict(host=platform.node(), cpus=os.cpu_count(), load_average=os.getloadavg(),
                date=time.strftime("%Y-%m-%d %H:%M:%S %Z"), git_commit=commit, python=sys.version.split()[0])


def run_one(name, data, split, cfg, out: Path, figures: bool):
    from owjax.core.checkpoint import atomic_write_json
    from owjax.reduce.figures import curves_figure, prediction_figure
    from owjax.reduce.training import fit_runs

    d = out / name.replace(" ", "_")
    if (d / "metrics.json").exists():
        return json.loads((d / "metrics.json").read_text())
    load0 = os.getloadavg()[0]
    res = fit_runs(data, split, cfg, log=lambda s: print(f"[{name}] {s}", flush=True))
    m = dict(res.metrics, name=name, machine=_machine(), load_average_at_start=load0)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_json(d / "curves.json", res.curves)
    atomic_write_json(d / "metrics.json", m)
    if name in ("GRU-8", "GRU-8 long"):
        from owjax.reduce.training import save_model

        save_model(d / "model", res)
    if figures:
        prediction_figure(d / "test_predictions.png", res.spec, res.params, res.norm, data, split)
        curves_figure(d / "learning_curves.png", res.curves, f"{name}, {cfg.runs} runs")
    print(f"[{name}] test RMSE {m['test_rmse_mean']:.4g} ± {m['test_rmse_std']:.2g} (normalised); "
          f"{m['wall_time_s']} s", flush=True)
    return m


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--spiking", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--fine-epochs", type=int, default=1000)
    p.add_argument("--fine-runs", type=int, default=10)
    p.add_argument("--patience", type=int, default=30)
    p.add_argument("--long-epochs", type=int, default=1000)
    p.add_argument("--fine-hidden", default="4,8")
    p.add_argument("--only", default="table1,table2,fine,ablation,spiking")
    p.add_argument("--figures", default="GRU-8,RNN-16,LSTM-8,GRU-8 fine,GRU-8 no-AVB,GRU-8 no-PLM,GRU-8 spiking,GRU-8 long")
    a = p.parse_args(argv)
    from owjax.reduce.dataset import load_h5, split_sequences
    from owjax.reduce.training import TrainConfig

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    coarse = load_h5(Path(a.data) / "dataset_dt0.5.h5")
    split = split_sequences(coarse.names, "0.5,0.25,0.25", 0)
    figs = set(a.figures.split(","))
    only = a.only.split(",")
    results = {}

    def tc(cell, h, epochs=a.epochs, runs=a.runs):
        return TrainConfig(cell, h, runs=runs, epochs=epochs, eval_every=10, patience=a.patience)

    if "table1" in only or "table2" in only:
        todo = (TABLE1 if "table1" in only else []) + [c for c in (TABLE2 if "table2" in only else []) if c not in TABLE1]
        for cell, h in todo:
            name = f"{cell.upper()}-{h}"
            results[name] = run_one(name, coarse, split, tc(cell, h), out, name in figs)
    if "ablation" in only:
        for drop, keep in (("AVB", ["PLML", "PLMR"]), ("PLM", ["AVBL", "AVBR"])):
            name = f"GRU-8 no-{drop}"
            results[name] = run_one(name, coarse.select(keep, None), split, tc("gru", 8), out, name in figs)
    if "fine" in only:
        fine = load_h5(Path(a.data) / "dataset_dt0.1.h5")
        for h in (int(v) for v in a.fine_hidden.split(",")):
            name = f"GRU-{h} fine"
            results[name] = run_one(name, fine, split, tc("gru", h, a.fine_epochs, a.fine_runs), out, name in figs)
    if "long" in only:  # the same models trained longer (cosine-decayed Adam): what the budget limits
        for cell, h, lr in ((("gru", 8, None), ("lstm", 8, None), ("rnn", 16, 1e-2))):
            name = f"{cell.upper()}-{h} long"
            cfg = TrainConfig(cell, h, runs=a.runs, epochs=a.long_epochs, lr=lr, schedule="cosine", eval_every=10,
                              patience=None)
            results[name] = run_one(name, coarse, split, cfg, out, name in figs)
    if "spiking" in only and a.spiking:
        sp = load_h5(Path(a.spiking) / "dataset_dt0.5.h5")
        results["GRU-8 spiking"] = run_one("GRU-8 spiking", sp, split_sequences(sp.names, "0.5,0.25,0.25", 0),
                                           tc("gru", 8), out, "GRU-8 spiking" in figs)
    if "unseen" in only:  # generalisation to a waveform family never seen in training or validation
        from owjax.reduce.dataset import Split

        fam = "smooth_random"
        test = [i for i, n in enumerate(coarse.names) if n.endswith(fam)]
        rest = sorted((i for i in range(coarse.n) if i not in test), key=lambda i: coarse.names[i])
        import numpy as np

        rest = [rest[i] for i in np.random.default_rng(0).permutation(len(rest))]
        usplit = Split(tuple(rest[len(test):]), tuple(rest[:len(test)]), tuple(test))
        name = f"GRU-8 unseen {fam}"
        results[name] = run_one(name, coarse, usplit, tc("gru", 8), out, True)
    if "rollout" in only:
        rollout(Path(a.data), out)
    if "speed" in only:
        speed(Path(a.data), out)
    # collect everything present (also from earlier invocations)
    for f in sorted(out.glob("*/metrics.json")):
        m = json.loads(f.read_text())
        if "name" in m:  # (results/ci holds the loop's run=ci metrics, not a study row)
            results.setdefault(m["name"], m)
    from owjax.core.checkpoint import atomic_write_json, atomic_write_text

    atomic_write_json(out / "summary.json", {k: {kk: v[kk] for kk in (
        "train_rmse_mean", "val_rmse_mean", "test_rmse_mean", "test_rmse_std", "test_mse_units_mean",
        "test_rmse_units_per_output", "test_rmse_pct_range_per_output", "test_rmse_pct_range_max", "n_params",
        "epochs_run", "wall_time_s", "runs", "learning_rate", "load_average_at_start")} | {"date": v["machine"]["date"],
        "git_commit": v["machine"]["git_commit"]} for k, v in results.items()})
    atomic_write_text(out / "tables.md", tables_md(results))
    print(tables_md(results))
    return 0


def rollout(data_dir: Path, out: Path, factor: int = 10) -> dict:
    """The trained GRU-8 run over new owjax sequences ``factor``× longer than its training sequences."""
    import dataclasses

    from owjax.core.checkpoint import atomic_write_json
    from owjax.core.precision import set_precision

    set_precision("float64")
    import numpy as np

    from owjax.reduce.data import GeneratorConfig, generate
    from owjax.reduce.dataset import load_h5
    from owjax.reduce.figures import prediction_figure
    from owjax.reduce.training import load_model, predict

    d = load_h5(data_dir / "dataset_dt0.5.h5")
    g = GeneratorConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.meta["generator"].items()
                           if k != "extra"})
    g = dataclasses.replace(g, duration_ms=factor * g.duration_ms, dt_out_ms=(0.5,), n_waveforms=3, seed=99,
                            families=("pulse", "sine", "smooth_random"), batch=3)
    long = generate(g)[0.5]
    mdir = next(p for p in (out / "GRU-8_long" / "model", out / "GRU-8" / "model") if p.exists())
    spec, params, norm = load_model(mdir)
    pred = predict(spec, params, norm, long.x)                         # (runs, N, T, O) mV
    rng = d.y.max((0, 1)) - d.y.min((0, 1))
    rmse = np.sqrt(((pred - long.y[None]) ** 2).mean(axis=(1, 2)))    # (runs, O)
    first = np.sqrt(((pred[:, :, :1001] - long.y[None, :, :1001]) ** 2).mean(axis=(1, 2)))
    res = dict(model=str(mdir), duration_ms=g.duration_ms, n_sequences=long.n, families=list(g.families),
               rmse_mV_per_output=dict(zip(long.output_names, rmse.mean(0).tolist())),
               rmse_pct_training_range_per_output=dict(zip(long.output_names, (100 * rmse / rng).mean(0).tolist())),
               first_500ms_rmse_pct_training_range=dict(zip(long.output_names, (100 * first / rng).mean(0).tolist())),
               output_range_long_mV=(long.y.max((0, 1)) - long.y.min((0, 1))).tolist(),
               generation_wall_time_s=long.meta["wall_time_s"], machine=_machine())
    from owjax.reduce.dataset import Split

    prediction_figure(out / "rollout_10x.png", spec, params, norm, long, Split((), (), (0, 1)), n_seq=2)
    atomic_write_json(out / "rollout.json", res)
    print(res)
    return res


def speed(data_dir: Path, out: Path) -> dict:
    """Wall time per 500-ms sequence: the full owjax solve (C1 Full, float64, tsit5) vs the trained GRU-8."""
    import jax

    from owjax.core.checkpoint import atomic_write_json
    from owjax.core.precision import set_precision

    set_precision("float64")
    import numpy as np

    from owjax.reduce.data import GeneratorConfig, batch_solver, build_network, rest_state
    from owjax.reduce.dataset import load_h5
    from owjax.reduce.training import load_model, predict

    d = load_h5(data_dir / "dataset_dt0.5.h5")
    fine = load_h5(data_dir / "dataset_dt0.1.h5")
    g = GeneratorConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.meta["generator"].items()
                           if k != "extra"})
    model = build_network(g)
    y_rest = rest_state(model, g.settle_ms, g.solver)
    res = {"machine": _machine()}
    fn = batch_solver(model, y_rest, 0.1, g.inputs, g.duration_ms, 0.5, g.solver, g.outputs)
    for b in (1, 8):
        tables = jax.numpy.asarray(fine.x[:b])
        jax.block_until_ready(fn(tables))                              # compile
        t0 = time.perf_counter()
        jax.block_until_ready(fn(tables))
        res[f"owjax_full_solve_s_per_sequence_batch{b}"] = (time.perf_counter() - t0) / b
    mdir = next(p for p in (out / "GRU-8_long" / "model", out / "GRU-8" / "model") if p.exists())
    spec, params, norm = load_model(mdir)
    res["reduced_model"] = str(mdir)
    one = jax.tree_util.tree_map(lambda p: p[:1], params)
    for b in (1, 1024):
        x = np.repeat(d.x, int(np.ceil(b / d.n)), 0)[:b]
        predict(spec, one, norm, x)
        t0 = time.perf_counter()
        for _ in range(3):
            predict(spec, one, norm, x)
        res[f"gru8_s_per_sequence_batch{b}"] = (time.perf_counter() - t0) / 3 / b
    res["speedup_batch1"] = res["owjax_full_solve_s_per_sequence_batch1"] / res["gru8_s_per_sequence_batch1"]
    res["speedup_gru_batch1024_vs_solve_batch8"] = (res["owjax_full_solve_s_per_sequence_batch8"]
                                                   / res["gru8_s_per_sequence_batch1024"])
    atomic_write_json(out / "speed.json", res)
    print(res)
    return res


def tables_md(results: dict) -> str:
    def row(name):
        m = results.get(name)
        pap = PAPER.get(name, (None, None, None))
        if m is None:
            return f"| {name} | — | — | — | — | — | — | {_f(pap[2])} |"
        pct = m["test_rmse_pct_range_per_output"]
        return (f"| {name} | {m['n_params']} | {m['train_rmse_mean']:.3g} | {m['val_rmse_mean']:.3g} | "
                f"{m['test_rmse_mean']:.3g} ± {m['test_rmse_std']:.2g} | {m['test_mse_units_mean']:.3g} | "
                f"{' / '.join(f'{v:.1f}' for v in pct.values())} | {_f(pap[2])} |")
    head = ("| model | params | train RMSE | val RMSE | test RMSE (mean ± sd of runs) | test MSE (mV²) | "
            "test RMSE % of range (DB1 / LUAL / PVR / VB1) | paper test \"RMSE\" (= MSE, its units) |\n"
            "|---|---|---|---|---|---|---|---|")
    parts = ["RMSE columns: normalised units (z-scored outputs, training statistics), mean of runs.\n",
             "### Table 1 (RNN vs LSTM vs GRU, matched parameter counts)\n", head]
    parts += [row(n) for n in ("RNN-16", "LSTM-8", "GRU-8", "RNN-64", "LSTM-32", "GRU-32")]
    parts += ["", "### Table 2 (GRU sizes)\n", head]
    parts += [row(n) for n in ("GRU-2", "GRU-4", "GRU-8", "GRU-16", "GRU-32", "GRU-64")]
    parts += ["", "### Coarse (0.5 ms) vs fine (0.1 ms) sampling\n", head]
    parts += [row(n) for n in ("GRU-4", "GRU-4 fine", "GRU-8", "GRU-8 fine")]
    parts += ["", "### Longer training (cosine-decayed Adam)\n", head]
    parts += [row(n) for n in ("GRU-8", "GRU-8 long", "LSTM-8", "LSTM-8 long", "RNN-16", "RNN-16 long")]
    parts += ["", "### Input ablation and the spiking regime\n", head]
    parts += [row(n) for n in ("GRU-8", "GRU-8 no-AVB", "GRU-8 no-PLM", "GRU-8 spiking", "GRU-8 unseen smooth_random")]
    return "\n".join(parts) + "\n"


def _f(v):
    return "—" if v is None else f"{v:.3g}"


if __name__ == "__main__":
    sys.exit(main())

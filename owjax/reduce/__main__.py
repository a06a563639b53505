"""``python -m owjax.reduce {generate, train}``: owjax data for reduced models; train RNN/LSTM/GRU surrogates.

generate
    ``python -m owjax.reduce generate --out DIR [--parameter-set C1] [--config Full] [--cells A,B,…]
    [--inputs PLML,PLMR,AVBL,AVBR] [--outputs DB1,LUAL,PVR,VB1] [--duration-ms 500] [--dt-ms 0.5,0.1]
    [--n 40] [--amplitude-pA 10] [--families step,ramp,pulse,sine,smooth_random] [--seed 0]
    [--columns-out] [--dtype float64]`` → ``DIR/dataset_dt<dt>.h5`` per sampling step (and
    ``DIR/columns_dt<dt>/Sequence_NN.dat`` with ``--columns-out``), ``DIR/generate.json``.
train
    ``python -m owjax.reduce train --data PATH --inputs PLML,PLMR,AVBL,AVBR --outputs DB1,LUAL,PVR,VB1
    --cell gru --hidden 8 --runs 10 [--columns idx,t,…] [--split 0.5,0.25,0.25 | --split SPLIT.json]
    [--split-seed 0] [--epochs 1000] [--lr …] [--patience 30] [--normalisation zscore|none] --out DIR``
    → ``DIR/metrics.json`` (``test_rmse_mean``, ``test_rmse_std``, ``test_mse_mean``,
    ``val_rmse_mean``, per-output RMSE in the data's units and in % of range, the normalisation),
    ``DIR/model/`` (``model.npz`` + ``model.json``), ``DIR/curves.json``, ``DIR/test_predictions.png``,
    ``DIR/learning_curves.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _csv(s: str | None):
    return None if s in (None, "") else [p.strip() for p in s.split(",") if p.strip()]


def _generate(a) -> int:
    from owjax.core.checkpoint import atomic_write_json
    from owjax.core.precision import set_precision

    set_precision(a.dtype)
    from owjax.reduce.data import GeneratorConfig, generate
    from owjax.reduce.dataset import save_h5, write_columns

    cfg = GeneratorConfig(
        parameter_set=a.parameter_set, config=a.config, cells=tuple(_csv(a.cells)) if a.cells else None,
        keep_c302_inputs=a.keep_c302_inputs, inputs=tuple(_csv(a.inputs)), outputs=tuple(_csv(a.outputs)),
        duration_ms=a.duration_ms, dt_out_ms=tuple(float(v) for v in _csv(a.dt_ms)), n_waveforms=a.n,
        families=tuple(_csv(a.families)), amplitude_pA=a.amplitude_pA, seed=a.seed, settle_ms=a.settle_ms,
        solver=a.solver, dtype=a.dtype, batch=a.batch)
    out = Path(a.out)
    datasets = generate(cfg)
    files = {}
    for dt, d in datasets.items():
        files[str(dt)] = str(save_h5(out / f"dataset_dt{dt:g}.h5", d))
        if a.columns_out:
            write_columns(out / f"columns_dt{dt:g}", d)
    meta = dict(next(iter(datasets.values())).meta, files=files)
    atomic_write_json(out / "generate.json", meta)
    print(f"owjax.reduce generate: {cfg.n_waveforms} sequences in {meta['wall_time_s']} s → {out}")
    return 0


def _train(a) -> int:
    from owjax.core.checkpoint import atomic_write_json
    from owjax.reduce.dataset import load_dataset, split_sequences
    from owjax.reduce.figures import curves_figure, prediction_figure
    from owjax.reduce.training import TrainConfig, fit_runs, save_model

    data = load_dataset(a.data, _csv(a.inputs), _csv(a.outputs), _csv(a.columns))
    if a.drop_inputs:
        data = data.select([c for c in data.input_names if c not in _csv(a.drop_inputs)], None)
    split = split_sequences(data.names, a.split, a.split_seed)
    cfg = TrainConfig(cell=a.cell, hidden=a.hidden, runs=a.runs, epochs=a.epochs, lr=a.lr, schedule=a.schedule,
                      eval_every=a.eval_every, patience=a.patience if a.patience > 0 else None, seed=a.seed,
                      normalisation=a.normalisation)
    res = fit_runs(data, split, cfg, log=lambda s: print(s, file=sys.stderr))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    save_model(out / "model", res, {"data": str(a.data)})
    atomic_write_json(out / "curves.json", res.curves)
    m = dict(res.metrics, data=str(a.data), n_sequences=data.n, n_samples=int(data.t.size))
    atomic_write_json(out / "metrics.json", m)
    if not a.no_figures:
        prediction_figure(out / "test_predictions.png", res.spec, res.params, res.norm, data, split)
        curves_figure(out / "learning_curves.png", res.curves, f"{a.cell.upper()}-{a.hidden}, {a.runs} runs")
    print(f"owjax.reduce train: {a.cell.upper()}-{a.hidden} × {a.runs}: test RMSE {m['test_rmse_mean']:.4g} ± "
          f"{m['test_rmse_std']:.2g} (normalised), {m['test_rmse_units_mean']:.4g} {data.output_unit}; → {out}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m owjax.reduce", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="simulate an owjax network under waveform families")
    g.add_argument("--out", required=True)
    g.add_argument("--parameter-set", default="C1")
    g.add_argument("--config", default="Full")
    g.add_argument("--cells", default=None, help="comma-separated sub-network (default: the whole config)")
    g.add_argument("--keep-c302-inputs", action="store_true")
    g.add_argument("--inputs", default="PLML,PLMR,AVBL,AVBR")
    g.add_argument("--outputs", default="DB1,LUAL,PVR,VB1")
    g.add_argument("--duration-ms", type=float, default=500.0)
    g.add_argument("--dt-ms", default="0.5,0.1")
    g.add_argument("--n", type=int, default=40)
    g.add_argument("--amplitude-pA", type=float, default=2.0)
    g.add_argument("--families", default="step,ramp,pulse,sine,smooth_random")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--settle-ms", type=float, default=300.0)
    g.add_argument("--solver", default="tsit5")
    g.add_argument("--batch", type=int, default=8)
    g.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    g.add_argument("--columns-out", action="store_true", help="also write one column file per sequence")
    t = sub.add_parser("train", help="train reduced models (runs vmapped)")
    t.add_argument("--data", required=True, help="a .h5 dataset or a folder of column files")
    t.add_argument("--inputs", default=None)
    t.add_argument("--outputs", default=None)
    t.add_argument("--columns", default=None, help="names of all columns of header-less files")
    t.add_argument("--drop-inputs", default=None, help="input ablation: inputs to leave out")
    t.add_argument("--split", default="0.5,0.25,0.25", help="train,val,test fractions or a JSON file of names")
    t.add_argument("--split-seed", type=int, default=0)
    t.add_argument("--cell", default="gru", choices=("rnn", "lstm", "gru"))
    t.add_argument("--hidden", type=int, default=8)
    t.add_argument("--runs", type=int, default=10)
    t.add_argument("--epochs", type=int, default=1000)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--schedule", default="constant", choices=("constant", "cosine"))
    t.add_argument("--eval-every", type=int, default=10)
    t.add_argument("--patience", type=int, default=30, help="validations without improvement (0: none)")
    t.add_argument("--normalisation", default="zscore", choices=("zscore", "none"))
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True)
    t.add_argument("--no-figures", action="store_true")
    a = p.parse_args(argv)
    try:
        return _generate(a) if a.cmd == "generate" else _train(a)
    except ValueError as e:  # DatasetError, unknown names, bad configurations
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""``python -m owjax.sensory {evaluate, select}``: evaluate a transducer on recordings; select a model.

evaluate
    ``python -m owjax.sensory evaluate --modality afd --data PATH [PATH …] --out DIR [--model FILE]``
    Predicts every worm of the given files (any Bryant ``.mat`` or Zimmer ``.log`` file, including
    protocols the model never saw; default: the shipped dataset) with the model (default: the shipped
    ``owjax/data/sensory/<modality>_transducer.npz``) and writes ``DIR/metrics.json`` (``n_worms``,
    ``median_r``, ``median_rmse``, ``median_ceiling_r``, ``<feature>_pred`` / ``<feature>_measured``
    with their SDs, per protocol and per worm) and ``DIR/traces.png``.
select
    ``python -m owjax.sensory select --modality afd --out DIR [--hidden 16 32] [--depth 1 2]
    [--inputs plain adaptive both] [--steps N] [--holdout PROTOCOL]`` trains one model per combination
    on the training worms and ranks them by validation loss (``DIR/selection.json``); ``--holdout``
    also reports each model on a protocol it never saw.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np


def _evaluate(a) -> int:
    from owjax.fitting.tasks.sensory_transducer import records_for
    from owjax.sensory.evaluate import evaluate_records, plot_traces
    from owjax.sensory.loaders import DATA_DIR
    from owjax.sensory.transducer import load_transducer

    model = Path(a.model or DATA_DIR / f"{a.modality}_transducer.npz")
    spec, params = load_transducer(model)
    if spec.modality != a.modality:
        print(f"error: {model} is a {spec.modality} transducer, not {a.modality}", file=sys.stderr)
        return 2
    recs = records_for({"modality": a.modality, "path": a.data or None})
    m = evaluate_records(spec, params, recs)
    m["model"] = str(model)
    m["data"] = [str(p) for p in a.data] if a.data else f"shipped {a.modality} dataset"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(m, indent=2, default=float) + "\n")
    plot_traces(spec, params, recs, out / "traces.png", title=f"{a.modality.upper()}: measured vs predicted")
    keys = [k for k in m if k.endswith("_pred") or k.endswith("_measured")]
    print(f"{m['n_worms']} worms: median r {m['median_r']:.3f} (population ceiling {m['median_ceiling_r']:.3f}), "
          f"median RMSE {m['median_rmse']:.4g} {m['response_unit']}")
    for k in sorted(keys):
        print(f"  {k}: {m[k]:.4g}")
    print(f"outputs in {out}")
    return 0


def _select(a) -> int:
    import time

    from owjax.fitting.tasks.sensory_transducer import records_for, spec_for
    from owjax.sensory.evaluate import evaluate_records
    from owjax.sensory.training import SensoryTransducerTask, fit, split_by_worm

    recs = records_for({"modality": a.modality})
    soft = {"afd": 5.0, "bag": 0.2}[a.modality]
    split = split_by_worm(recs, 0.2, 0.25, 0, holdout_protocols=tuple(a.holdout or ()))
    if a.holdout:  # the unseen protocol is reported separately, not mixed into the test set
        held = [i for i in split["test"] if recs[i].protocol in a.holdout]
    rows = []
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for h, d, inp in itertools.product(a.hidden, a.depth, a.inputs):
        spec = spec_for(a.modality, {"hidden": h, "depth": d, "inputs": inp})
        task = SensoryTransducerTask(spec, recs, split, batch_size=8, soft_scale=soft, soft_weight=0.1)
        t0 = time.perf_counter()
        res = fit(task, steps=a.steps, lr=a.lr, seed=a.seed, eval_every=25, log=None)
        row = dict(hidden=h, depth=d, inputs=inp, best_step=res.best_step, val_loss=res.best_val,
                   train_time_s=round(time.perf_counter() - t0, 1), tau_adapt_s=float(np.exp(res.params["log_tau_adapt_s"])))
        val = evaluate_records(spec, res.params, [recs[i] for i in split["val"]], ceiling_records=recs)
        row["val_median_r"] = val["median_r"]
        row["val_by_protocol_r"] = {p: v["median_r"] for p, v in val["by_protocol"].items()}
        test_ids = [i for i in split["test"] if not a.holdout or recs[i].protocol not in a.holdout]
        te = evaluate_records(spec, res.params, [recs[i] for i in test_ids], ceiling_records=recs)
        row["test"] = {p: {k: v for k, v in d_.items()} for p, d_ in te["by_protocol"].items()}
        if a.holdout:
            ho = evaluate_records(spec, res.params, [recs[i] for i in held], ceiling_records=recs)
            row["holdout"] = {k: v for k, v in ho.items() if k not in ("per_worm", "by_protocol")}
        rows.append(row)
        print(f"hidden {h} depth {d} inputs {inp}: val loss {res.best_val:.4f}, val r {row['val_median_r']:.3f}"
              + (f", held-out protocol r {row['holdout']['median_r']:.3f}" if a.holdout else "")
              + f" ({row['train_time_s']} s)", flush=True)
        (out / "selection.json").write_text(json.dumps(dict(modality=a.modality, steps=a.steps, lr=a.lr, seed=a.seed,
                                                             holdout=a.holdout, split=split, rows=rows),
                                                        indent=1, default=float) + "\n")
    best = min(rows, key=lambda r: r["val_loss"])
    print(f"best by validation loss: hidden {best['hidden']} depth {best['depth']} inputs {best['inputs']}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m owjax.sensory", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("evaluate", help="per-worm r/RMSE and features, predicted vs measured")
    e.add_argument("--modality", required=True, choices=("afd", "bag"))
    e.add_argument("--data", nargs="*", default=None, help="recording files (.mat / .log); default: shipped data")
    e.add_argument("--model", default=None, help="transducer .npz (default: the shipped one)")
    e.add_argument("--out", required=True)
    s = sub.add_parser("select", help="model selection by validation loss")
    s.add_argument("--modality", required=True, choices=("afd", "bag"))
    s.add_argument("--out", required=True)
    s.add_argument("--hidden", nargs="+", type=int, default=[16, 32])
    s.add_argument("--depth", nargs="+", type=int, default=[1, 2])
    s.add_argument("--inputs", nargs="+", default=["plain", "adaptive", "both"])
    s.add_argument("--steps", type=int, default=600)
    s.add_argument("--lr", type=float, default=3e-3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--holdout", nargs="*", default=None, help="protocol(s) never trained on")
    a = ap.parse_args(argv)
    try:
        return _evaluate(a) if a.cmd == "evaluate" else _select(a)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

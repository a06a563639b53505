"""``python -m owjax.fit +experiment=sensory_afd`` (and ``sensory_bag``): train a learned sensory transducer.

The experiment turns its config into a :class:`~owjax.sensory.training.SensoryTransducerTask`
(:meth:`SensoryTransducer.build`). Until :mod:`owjax.fitting.loop` runs an ``AbstractFitTask`` itself,
the experiment runs its own loop (``runs_own_loop``): :func:`owjax.sensory.training.fit` (Adam, cosine
schedule, clipping, best-on-validation), then the task's report (per-worm r / RMSE / features on the
validation and test worms, trace figures), ``transducer.npz`` + ``transducer.json`` (provenance),
``loss_curve.png`` and ``metrics.json`` in the run directory. ``data.leave_out: all`` runs
leave-one-worm-out (one fit per worm, each tested on the worm it left out) and then fits the final
model on every worm. ``ship: true`` also copies the final model into ``owjax/data/sensory``.

Config sections: ``data`` (modality, path, holdout_protocols, val_fraction, test_fraction, split_seed,
leave_out), ``model`` (hidden, depth, inputs, tau_rate_s, tau_adapt_init_s), ``loss`` (soft_scale,
soft_weight), ``optim`` (lr, steps, clip_norm), ``train`` (batch_size), ``validation`` (every,
patience). The task also implements the loop's ``validate`` / ``objective`` hooks, so with
``runs_own_loop = False`` the general loop runs it (checkpoints, resume, best-on-validation; a test does
this) — what it cannot do yet is the leave-one-worm-out folds and ``ship``.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np

from owjax.fitting.tasks.base import AbstractExperiment, section

__all__ = ["SensoryTransducer", "records_for", "spec_for"]

DATA_KEYS = ("modality", "path", "holdout_protocols", "val_fraction", "test_fraction", "split_seed", "leave_out")
MODEL_KEYS = ("hidden", "depth", "inputs", "tau_rate_s", "tau_adapt_init_s")


def records_for(data: Mapping):
    """The records of a ``data`` section, on the modality's model grid."""
    from owjax.sensory.loaders import load_dataset, load_file
    from owjax.sensory.transducer import default_spec

    mod = data["modality"]
    if data.get("path"):
        paths = data["path"] if isinstance(data["path"], (list, tuple)) else [data["path"]]
        recs = [r for p in paths for r in load_file(p)]
        wrong = sorted({f"{r.source} ({r.modality})" for r in recs if r.modality != mod})
        if wrong:
            raise ValueError(f"data.modality is {mod!r} but these files hold other recordings: {wrong}")
    else:
        recs = load_dataset(mod)
    dt = default_spec(mod).dt_s
    return [r.resampled(dt) for r in recs]


def spec_for(modality: str, model: Mapping):
    """The :class:`~owjax.sensory.transducer.TransducerSpec` of a ``model`` section."""
    from owjax.sensory.transducer import INPUT_SETS, default_spec

    m = dict(model)
    inputs = m.pop("inputs", "plain")
    if isinstance(inputs, str):
        if inputs not in INPUT_SETS:
            raise ValueError(f"model.inputs {inputs!r} unknown; named sets: {sorted(INPUT_SETS)} (or a list)")
        inputs = INPUT_SETS[inputs]
    return default_spec(modality, inputs=tuple(inputs), **{k: v for k, v in m.items() if v is not None})


class SensoryTransducer(AbstractExperiment):
    """Learned sensory transduction (AFD temperature, BAG oxygen): config → task → trained transducer."""

    kind: ClassVar[str] = "sensory_transducer"
    #: the loop hands over to :meth:`run` (remove once owjax.fitting.loop runs AbstractFitTasks)
    runs_own_loop: ClassVar[bool] = True
    #: the parametrisation is the transducer's own (no ``parameters:`` block)
    requires_parameters_block: ClassVar[bool] = False

    def build(self, cfg: Mapping, seed: int, run_dir: Path | None = None, leave_out: int | None = None):
        """The :class:`~owjax.sensory.training.SensoryTransducerTask` of the config.

        Arguments:
            cfg: the composed config (plain dict).
            seed: run seed (the split uses ``data.split_seed``).
            run_dir: unused (outputs are written by the task's ``report`` / ``save_outputs``).
            leave_out: override ``data.leave_out`` with this worm index (leave-one-worm-out folds).
        """
        from owjax.sensory.training import SensoryTransducerTask, split_by_worm

        data = section(cfg, "data", required=("modality",), allowed=DATA_KEYS)
        model = section(cfg, "model", allowed=MODEL_KEYS)
        loss = dict(cfg.get("loss") or {})
        bad = sorted(set(loss) - {"soft_scale", "soft_weight", "weights"})
        if bad:
            raise ValueError(f"experiment config section 'loss': unknown key(s) {bad}; allowed: soft_scale, soft_weight")
        train = dict(cfg.get("train") or {})
        recs = records_for(data)
        spec = spec_for(data["modality"], model)
        lo = leave_out if leave_out is not None else data.get("leave_out")
        lo = None if lo in (None, "all", "none") else int(lo)
        split = split_by_worm(recs, float(data.get("val_fraction", 0.2)), float(data.get("test_fraction", 0.25)),
                              int(data.get("split_seed", 0)), leave_out=lo,
                              holdout_protocols=tuple(data.get("holdout_protocols") or ()))
        if data.get("leave_out") == "all" and leave_out is None:  # the final model: every worm in training
            split = {"train": list(range(len(recs))), "val": [], "test": []}
        name = str((cfg.get("experiment") or {}).get("name", "sensory"))
        return SensoryTransducerTask(spec, recs, split, batch_size=int(train.get("batch_size", 8)), name=name,
                                     soft_scale=float(loss.get("soft_scale", 0.0)),
                                     soft_weight=float(loss.get("soft_weight", 0.0)))

    def _fit(self, task, cfg, seed, log):
        from owjax.sensory.training import fit

        o = dict(cfg.get("optim") or {})
        v = dict(cfg.get("validation") or {})
        return fit(task, steps=int(o.get("steps", 400)), lr=float(o.get("lr", 3e-3)), seed=seed,
                   eval_every=int(v.get("every") or 25), clip_norm=float(o.get("clip_norm") or 1.0),
                   patience=v.get("patience"), log=log)

    def run(self, cfg: Mapping, run_dir: Path) -> dict:
        """Train, evaluate and write the outputs (see the module docstring); returns the metrics."""
        from owjax.core.checkpoint import atomic_write_json
        from owjax.fitting.registry import git_commit

        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        seed = int(cfg.get("seed", 0))
        figures = bool(cfg.get("figures", True))
        progress = bool(cfg.get("progress", True))
        log = (lambda m: print(m, file=sys.stderr)) if progress else None
        t0 = time.perf_counter()
        data = dict(cfg.get("data") or {})
        name = str(cfg["experiment"]["name"])
        metrics: dict = {"experiment": name, "status": "complete", "seed": seed}
        if data.get("leave_out") == "all":
            from owjax.sensory.evaluate import evaluate_records

            from owjax.sensory.evaluate import plot_traces
            from owjax.sensory.transducer import predict

            folds, held, preds = [], [], []
            n = len(records_for(data))
            for i in range(n):
                task = self.build(cfg, seed, run_dir, leave_out=i)
                res = self._fit(task, cfg, seed, None)
                rec = [task.records[j] for j in task.split["test"]]
                pred = [np.asarray(predict(task.spec, res.params, r.stimulus)) for r in rec]
                ev = evaluate_records(task.spec, res.params, rec, predictions=pred, ceiling_records=task.records)
                folds.append(ev["per_worm"][0])
                held += rec
                preds += pred
                if log:
                    log(f"leave-one-worm-out fold {i + 1}/{n}: {rec[0].worm_id} r = {ev['median_r']:.3f}")
            metrics["leave_one_worm_out"] = _lowo_summary(folds)
            if figures:
                plot_traces(task.spec, None, held, run_dir / "traces_leave_one_worm_out.png", predictions=preds,
                            title=f"{name}: each worm predicted by the model fitted to the others")
        task = self.build(cfg, seed, run_dir)
        res = self._fit(task, cfg, seed, log)
        params0 = task.init(__import__("jax").random.PRNGKey(seed))
        metrics.update(task.report(params0, res.params, run_dir, figures))
        metrics.update(final_loss=metrics["loss_train"], best_step=res.best_step, best_val_loss=res.best_val, train_wall_time_s=round(res.wall_time_s, 2),
                       n_steps=int(dict(cfg.get("optim") or {}).get("steps", 400)), tau_adapt_s=float(
                           np.exp(np.asarray(res.params["log_tau_adapt_s"]))), **task.info)
        prov = dict(experiment=name, command="python -m owjax.fit " + " ".join(sys.argv[1:]) if sys.argv else "",
                    date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), git_commit=git_commit(),
                    data=task.data_description, loss=task.loss_description, seed=seed,
                    licence=("CC BY 4.0, Bryant et al. 2022 (HallemLab/Bryant_et_al_2021)" if task.spec.modality == "afd"
                             else "BSD 3-clause, (c) 2017 Michael Sonntag (Zimmer lab recordings)"))
        which = "test" if task.split["test"] else "train"
        if which == "train":  # no held-out worms (the final leave-one-worm-out model): its fit on all of them
            from owjax.sensory.evaluate import evaluate_records

            metrics["train_fit"] = evaluate_records(task.spec, res.params, [task.records[i] for i in task.split["train"]],
                                                    ceiling_records=task.records)
        ev = metrics["test"] if which == "test" else metrics["train_fit"]
        prov["recorded"] = {"set": which, "median_r": ev["median_r"], "median_rmse": ev["median_rmse"],
                            "loss_val": metrics.get("loss_val"), "loss_test": metrics.get("loss_test")}
        task.save_outputs(res.params, run_dir, prov, {"best_step": res.best_step})
        if figures:
            _loss_curve(run_dir / "loss_curve.png", res.history, name)
        if cfg.get("ship"):
            from owjax.sensory.loaders import DATA_DIR

            for suf in (".npz", ".json"):
                shutil.copyfile(run_dir / f"transducer{suf}", DATA_DIR / f"{task.spec.modality}_transducer{suf}")
        metrics["wall_time_s"] = round(time.perf_counter() - t0, 2)
        atomic_write_json(run_dir / "metrics.json", json.loads(json.dumps(metrics, default=_jsonable)))
        return metrics


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def _lowo_summary(per_worm: list[dict]) -> dict:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN features (e.g. none defined) → NaN
        return _lowo_summary_(per_worm)


def _lowo_summary_(per_worm: list[dict]) -> dict:
    out = {"per_worm": per_worm, "n_worms": len(per_worm),
           "median_r": float(np.nanmedian([p["r"] for p in per_worm])),
           "median_rmse": float(np.nanmedian([p["rmse"] for p in per_worm]))}
    for k in sorted({k[:-5] for p in per_worm for k in p if k.endswith("_pred")}):
        pr = np.array([p[f"{k}_pred"] for p in per_worm], float)
        me = np.array([p[f"{k}_measured"] for p in per_worm], float)
        out[f"{k}_pred"] = float(np.nanmean(pr))
        out[f"{k}_measured"] = float(np.nanmean(me))
        out[f"{k}_abs_error_median"] = float(np.nanmedian(np.abs(pr - me)))
    return out


def _loss_curve(path, hist, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(hist["step"], hist["train_loss"], label="minibatch")
    ax.semilogy(hist["step"], hist["val_loss"], label="validation (or minibatch)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)

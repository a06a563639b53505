"""Training reduced models: ten (any number of) independent runs of one configuration in one vmapped fit.

The runs (seeds) are a leading batch axis of the parameters. The loss is the *sum* over runs of each
run's mean squared error, so each run's gradient is its own; Adam is element-wise, so its moments
are per run too — the runs are as independent as separate trainings (no gradient clipping by a
global norm, which would couple them). Training is full batch (the study's batch of 32 is larger
than its 20 training files), in normalised units (:class:`~owjax.reduce.dataset.Normalisation`).

Two ways to run it:

* :func:`fit_runs` — the library function behind ``python -m owjax.reduce train`` and the study:
  ``eval_every`` Adam epochs at a time inside one ``jax.lax.scan``, then the validation RMSE of every
  run; each run keeps its own best-on-validation parameters and stops improving after ``patience``
  validations without improvement (the whole fit stops once every run has);
* :class:`ReduceTask` — the same model, loss and validation as an
  :class:`~owjax.fitting.task.AbstractFitTask` for ``python -m owjax.fit +experiment=reduced_order``
  (:mod:`owjax.fitting.tasks.reduce_circuit`); its :meth:`~ReduceTask.validate` keeps every run's best
  parameters on the host, so best-on-validation per run holds whenever the loop calls it.

Metrics (:func:`evaluate_runs`): RMSE and MSE over all outputs and samples in normalised units
(``*_rmse``, ``*_mse``), per output in the data's own unit (``*_rmse_units``: mV for owjax data) and
as a percentage of each output's range over the whole dataset (``*_rmse_pct_range``), and the MSE in
the data's units over all outputs (``*_mse_units``, what the study's tables report as "RMSE": its
Keras ``evaluate`` of an MSE loss on unnormalised data).
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from owjax.fitting.task import AbstractFitTask
from owjax.reduce.dataset import Normalisation, ReduceData, Split
from owjax.reduce.models import ModelSpec, apply_batch, init_params, n_params

__all__ = ["TrainConfig", "RunsResult", "fit_runs", "evaluate_runs", "save_model", "load_model", "predict",
           "DEFAULT_LR", "ReduceTask", "prepare"]

#: the study's learning rates (Adam): 1e-3 for the simple RNN, 5e-2 for LSTM and GRU
DEFAULT_LR = {"rnn": 1e-3, "lstm": 5e-2, "gru": 5e-2}


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one configuration.

    Attributes:
        cell, hidden: the model (:class:`~owjax.reduce.models.ModelSpec`).
        runs: independent runs (seeds) trained together.
        epochs: maximum full-batch Adam steps.
        lr: Adam learning rate (``None``: :data:`DEFAULT_LR` of the cell).
        schedule: ``constant`` (the study) or ``cosine`` (decay to 1 % over ``epochs``).
        eval_every: epochs between validations; patience: validations without improvement before a
            run stops improving (``None``: never stop early).
        seed: seeds of the runs are ``fold_in(PRNGKey(seed), run)``.
        normalisation: ``zscore`` (default) or ``none`` (the study's unnormalised training).
    """

    cell: str = "gru"
    hidden: int = 8
    runs: int = 10
    epochs: int = 1000
    lr: float | None = None
    schedule: str = "constant"
    eval_every: int = 10
    patience: int | None = 30
    seed: int = 0
    normalisation: str = "zscore"

    def learning_rate(self) -> float:
        return float(self.lr if self.lr is not None else DEFAULT_LR[self.cell])


@dataclass
class RunsResult:
    """What :func:`fit_runs` returns: best-on-validation parameters per run (stacked), curves, metrics."""

    spec: ModelSpec
    config: TrainConfig
    params: dict
    norm: Normalisation
    curves: dict
    metrics: dict


def prepare(data: ReduceData, split: Split, norm: Normalisation):
    """Normalised float32 arrays ``{"train"|"val"|"test": (x, y)}``."""
    out = {}
    for k in ("train", "val", "test"):
        d = data.take(getattr(split, k))
        out[k] = (jnp.asarray(norm.x(d.x), jnp.float32), jnp.asarray(norm.y(d.y), jnp.float32))
    return out


def _mse_per_run(spec, params, x, y):
    pred = jax.vmap(lambda p: apply_batch(spec, p, x))(params)
    return jnp.mean((pred - y[None]) ** 2, axis=(1, 2, 3))


def init_runs(spec: ModelSpec, runs: int, seed: int):
    """Stacked parameters of ``runs`` models (leading axis = run)."""
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(seed), r) for r in range(runs)])
    return jax.vmap(lambda k: init_params(spec, k))(keys)


def _optimizer(cfg: TrainConfig):
    import optax

    lr = cfg.learning_rate()
    if cfg.schedule == "cosine":
        lr = optax.cosine_decay_schedule(lr, cfg.epochs, alpha=0.01)
    elif cfg.schedule != "constant":
        raise ValueError(f"schedule {cfg.schedule!r} unknown; allowed: constant, cosine")
    return optax.adam(lr)


def fit_runs(data: ReduceData, split: Split, cfg: TrainConfig, log=None) -> RunsResult:
    """Train ``cfg.runs`` models on ``data`` (split by ``split``) at once; best-on-validation per run.

    Returns a :class:`RunsResult` whose ``metrics`` are :func:`evaluate_runs` of the best parameters
    plus the wall time, epochs run and each run's best epoch.
    """
    if cfg.epochs < 1 or cfg.eval_every < 1 or cfg.runs < 1:
        raise ValueError(f"epochs, eval_every and runs must be ≥ 1 (got {cfg.epochs}, {cfg.eval_every}, {cfg.runs})")
    t0 = time.perf_counter()
    norm = Normalisation.fit(data.take(split.train), cfg.normalisation)
    arrays = prepare(data, split, norm)
    spec = ModelSpec(cfg.cell, cfg.hidden, data.x.shape[2], data.y.shape[2])
    opt = _optimizer(cfg)
    params = init_runs(spec, cfg.runs, cfg.seed)
    state = opt.init(params)
    xtr, ytr = arrays["train"]
    xva, yva = arrays["val"]

    def total(p):
        per = _mse_per_run(spec, p, xtr, ytr)
        return per.sum(), per

    @jax.jit
    def chunk(p, s):
        def body(c, _):
            p, s = c
            (_, per), g = jax.value_and_grad(total, has_aux=True)(p)
            u, s = opt.update(g, s, p)
            import optax

            return (optax.apply_updates(p, u), s), per
        (p, s), per = jax.lax.scan(body, (p, s), None, length=cfg.eval_every)
        return p, s, per

    val_fn = jax.jit(lambda p: _mse_per_run(spec, p, xva, yva))
    best = params
    best_val = np.full(cfg.runs, np.inf)
    best_epoch = np.zeros(cfg.runs, int)
    bad = np.zeros(cfg.runs, int)
    curves = {"epoch": [], "train_rmse": [], "val_rmse": []}
    epoch = 0
    while epoch < cfg.epochs:
        params, state, per = chunk(params, state)
        epoch += cfg.eval_every
        v = np.asarray(val_fn(params))
        tr = np.asarray(per[-1])
        curves["epoch"].append(epoch)
        curves["train_rmse"].append(np.sqrt(tr).tolist())
        curves["val_rmse"].append(np.sqrt(v).tolist())
        better = np.isfinite(v) & (v < best_val)
        if better.any():
            mask = jnp.asarray(better)
            best = jax.tree_util.tree_map(
                lambda b, n: jnp.where(mask.reshape((-1,) + (1,) * (n.ndim - 1)), n, b), best, params)
        best_val = np.where(better, v, best_val)
        best_epoch = np.where(better, epoch, best_epoch)
        bad = np.where(better, 0, bad + 1)
        if log and (len(curves["epoch"]) % 10 == 0 or epoch >= cfg.epochs):
            log(f"epoch {epoch}: train RMSE {np.sqrt(tr).mean():.4g}, val RMSE {np.sqrt(v).mean():.4g} (mean of runs)")
        if cfg.patience is not None and np.all(bad >= cfg.patience):
            break
    wall = time.perf_counter() - t0
    metrics = evaluate_runs(spec, best, norm, data, split)
    metrics.update(wall_time_s=round(wall, 2), epochs_run=int(epoch), best_epoch=best_epoch.tolist(),
                   n_params=n_params(spec), model=spec.to_dict(), train_config=asdict(cfg),
                   learning_rate=cfg.learning_rate())
    return RunsResult(spec, cfg, best, norm, curves, metrics)


def predict(spec: ModelSpec, params, norm: Normalisation, x_units: np.ndarray) -> np.ndarray:
    """Outputs in the data's units for inputs ``x_units`` (N, T, n_in); ``params`` stacked → (runs, N, T, n_out)."""
    x = jnp.asarray(norm.x(x_units), jnp.float32)
    leaves = jax.tree_util.tree_leaves(params)
    stacked = leaves[0].ndim == jax.tree_util.tree_leaves(init_params(spec, jax.random.PRNGKey(0)))[0].ndim + 1
    z = (_predict_stacked if stacked else _predict_one)(spec, params, x)
    return norm.y_inverse(np.asarray(z))


@functools.partial(jax.jit, static_argnums=0)
def _predict_one(spec, params, x):
    return apply_batch(spec, params, x)


@functools.partial(jax.jit, static_argnums=0)
def _predict_stacked(spec, params, x):
    return jax.vmap(lambda p: apply_batch(spec, p, x))(params)


def evaluate_runs(spec: ModelSpec, params, norm: Normalisation, data: ReduceData, split: Split) -> dict:
    """Per-run and summary errors on train / val / test (see the module docstring for the names)."""
    rng = data.y.max((0, 1)) - data.y.min((0, 1))
    rng = np.where(rng > 0, rng, 1.0)
    out: dict = {"normalisation": norm.to_dict(), "outputs": list(data.output_names), "inputs": list(data.input_names),
                 "output_unit": data.output_unit, "output_range_units": rng.tolist(),
                 "split": split.to_names(data.names), "runs": int(jax.tree_util.tree_leaves(params)[0].shape[0])}
    for part in ("train", "val", "test"):
        d = data.take(getattr(split, part))
        pred = predict(spec, params, norm, d.x)                     # (R, N, T, O), units
        err_u = pred - d.y[None]
        err_n = err_u / np.asarray(norm.y_scale)
        mse = (err_n ** 2).mean(axis=(1, 2, 3))                      # (R,) normalised
        rmse_o = np.sqrt((err_u ** 2).mean(axis=(1, 2)))             # (R, O) units
        mse_u = (err_u ** 2).mean(axis=(1, 2, 3))
        out[f"{part}_rmse_runs"] = np.sqrt(mse).tolist()
        out[f"{part}_rmse_mean"] = float(np.sqrt(mse).mean())
        out[f"{part}_rmse_std"] = float(np.sqrt(mse).std())
        out[f"{part}_mse_mean"] = float(mse.mean())
        out[f"{part}_mse_units_mean"] = float(mse_u.mean())
        out[f"{part}_rmse_units_mean"] = float(np.sqrt(mse_u).mean())
        out[f"{part}_rmse_units_per_output"] = dict(zip(data.output_names, rmse_o.mean(0).tolist()))
        out[f"{part}_rmse_pct_range_per_output"] = dict(zip(data.output_names, (100 * rmse_o / rng).mean(0).tolist()))
        out[f"{part}_rmse_pct_range_max"] = float((100 * rmse_o / rng).mean(0).max())
    return out


# ---------------------------------------------------------------------------------------- save / load
def save_model(path: str | Path, result: RunsResult, extra: dict | None = None) -> Path:
    """``model.npz`` (stacked parameters, one leading axis per run) + ``model.json`` (spec, normalisation)."""
    import json

    from owjax.core.checkpoint import atomic_write_json

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    flat, _ = jax.tree_util.tree_flatten_with_path(result.params)
    arrays = {jax.tree_util.keystr(k): np.asarray(v) for k, v in flat}
    tmp = path / "model.npz.tmp.npz"
    np.savez(tmp, **arrays)
    tmp.replace(path / "model.npz")
    atomic_write_json(path / "model.json", json.loads(json.dumps(dict(
        spec=result.spec.to_dict(), normalisation=result.norm.to_dict(), train_config=asdict(result.config),
        parameter_keys=list(arrays), **(extra or {})), default=str)))
    return path


def load_model(path: str | Path):
    """``(spec, stacked params, normalisation)`` saved by :func:`save_model`."""
    import json

    path = Path(path)
    meta = json.loads((path / "model.json").read_text())
    spec = ModelSpec(**meta["spec"])
    arrays = np.load(path / "model.npz")
    template = init_params(spec, jax.random.PRNGKey(0))
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = [jnp.asarray(arrays[jax.tree_util.keystr(k)]) for k, _ in flat]
    return spec, jax.tree_util.tree_unflatten(treedef, leaves), Normalisation.from_dict(meta["normalisation"])


# ---------------------------------------------------------------------------------------- the fitting task
class ReduceTask(AbstractFitTask):
    """:class:`TrainConfig` on ``data``/``split`` as a task of the one loop (params stacked over runs).

    ``loss`` = Σ_runs MSE_run (normalised units) — terms ``mse_mean`` and ``rmse_mean``; ``validate``
    returns ``val_rmse_mean`` and keeps every run's best parameters (host side), which ``report`` and
    ``save_outputs`` use when present (otherwise the parameters the loop hands over: its own best by
    the mean over runs). Limitation: the per-run best lives in the task, not in the loop's checkpoint,
    so after a resume it covers only the validations of the resumed session.
    """

    validation_metric = "val_rmse_mean"

    def __init__(self, data: ReduceData, split: Split, cfg: TrainConfig):
        self.data, self.split, self.cfg = data, split, cfg
        self.norm = Normalisation.fit(data.take(split.train), cfg.normalisation)
        self.arrays = prepare(data, split, self.norm)
        self.spec = ModelSpec(cfg.cell, cfg.hidden, data.x.shape[2], data.y.shape[2])
        self.best = None
        self.best_val = np.full(cfg.runs, np.inf)
        self.data_description = (f"{data.n} sequences × {data.t.size} samples, inputs {list(data.input_names)} "
                                 f"({data.input_unit}), outputs {list(data.output_names)} ({data.output_unit})")
        self.loss_description = f"sum over {cfg.runs} runs of the MSE of normalised outputs (train split)"
        self.info = dict(model=self.spec.to_dict(), n_params=n_params(self.spec), runs=cfg.runs,
                         split=split.to_names(data.names))
        self._val = jax.jit(lambda p: _mse_per_run(self.spec, p, *self.arrays["val"]))

    def describe(self) -> str:
        return f"{self.cfg.runs} × {self.spec.cell.upper()}-{self.spec.hidden} ({n_params(self.spec)} parameters each)"

    def init(self, key):
        return init_runs(self.spec, self.cfg.runs, self.cfg.seed)

    def batches(self, step, key):
        return self.arrays["train"]

    def loss(self, params, batch, key):
        per = _mse_per_run(self.spec, params, *batch)
        return per.sum(), {"mse_mean": per.mean(), "rmse_mean": jnp.sqrt(per).mean()}

    def validate(self, params, key) -> dict[str, float]:
        v = np.asarray(self._val(params))
        better = np.isfinite(v) & (v < self.best_val)
        if self.best is None:
            self.best = params
        if better.any():
            mask = jnp.asarray(better)
            self.best = jax.tree_util.tree_map(
                lambda b, n: jnp.where(mask.reshape((-1,) + (1,) * (n.ndim - 1)), n, b), self.best, params)
        self.best_val = np.where(better, v, self.best_val)
        return {"val_rmse_mean": float(np.sqrt(v).mean()), "val_rmse_best_mean": float(np.sqrt(self.best_val).mean())}

    def _final(self, params):
        return self.best if self.best is not None else params

    def report(self, params_init, params, run_dir, figures):
        m = evaluate_runs(self.spec, self._final(params), self.norm, self.data, self.split)
        m["best_on_validation_per_run"] = self.best is not None
        if figures:
            from owjax.reduce.figures import prediction_figure

            prediction_figure(Path(run_dir) / "test_predictions.png", self.spec, self._final(params), self.norm,
                              self.data, self.split)
        return m

    def save_outputs(self, params, run_dir, provenance, metadata):
        res = RunsResult(self.spec, self.cfg, self._final(params), self.norm, {}, {})
        save_model(Path(run_dir) / "model", res, {"data": self.data_description})

"""Training a sensory transducer as an :class:`~owjax.fitting.task.AbstractFitTask`.

Data: whole recordings (the transducer's state starts at the steady state of the first sample, so
windows cut from the middle of a recording would start from the wrong state), padded to a common
length with the last stimulus value and masked. Minibatches are random draws of training worms
(``batch_size`` per step, the step's key picks them). The split is **by worm** — stratified by
protocol, never by time inside a worm — into train / validation / test (:func:`split_by_worm`), or
leave-one-worm-out (``leave_out``), and whole protocols can be held out (``holdout_protocols``) to test
generalisation to a condition the model never saw.

Loss: the mean over worms of the masked mean squared error of the normalised response
(response / ``spec.resp_scale``), plus ``soft_weight`` × the same on ``asinh(response / soft_scale)``
(so the small responses near baseline, where AFD's threshold T* and its cooling response live, are
not swamped by the 300 % warming peak).

:func:`fit` is a small driver (Adam + cosine schedule + gradient clipping) with
**best-on-validation** selection: the parameters with the lowest validation loss seen at an
evaluation are returned. It is what :class:`owjax.fitting.tasks.sensory_transducer.SensoryTransducer`
runs and what the tests use; the general loop (:mod:`owjax.fitting.loop`) can run the same task.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from owjax.fitting.task import AbstractFitTask
from owjax.sensory.records import SensoryRecord
from owjax.sensory.transducer import TransducerSpec, init_params, predict, save_transducer

__all__ = ["split_by_worm", "stack_records", "SensoryTransducerTask", "fit", "FitResult"]


def split_by_worm(records: Sequence[SensoryRecord], val_fraction: float = 0.2, test_fraction: float = 0.25,
                  seed: int = 0, leave_out: int | None = None,
                  holdout_protocols: Sequence[str] = ()) -> dict[str, list[int]]:
    """Indices of train / val / test worms, stratified by protocol.

    Arguments:
        records: the recordings (one per worm).
        val_fraction, test_fraction: fractions of each protocol's worms (rounded, at least one each
            when a protocol has ≥ 3 worms).
        seed: shuffling seed.
        leave_out: if given, worm ``leave_out`` alone is the test set and validation is empty
            (leave-one-worm-out; for tiny sets such as BAG's 4 worms).
        holdout_protocols: protocols whose every worm goes to the test set (unseen condition).

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` (disjoint; no worm in two sets).
    """
    n = len(records)
    if leave_out is not None:
        if not 0 <= int(leave_out) < n:
            raise ValueError(f"leave_out={leave_out}: there are {n} worms (0 … {n - 1})")
        return {"train": [i for i in range(n) if i != leave_out], "val": [], "test": [int(leave_out)]}
    protos = sorted({r.protocol for r in records})
    bad = sorted(set(holdout_protocols) - set(protos))
    if bad:
        raise ValueError(f"holdout_protocols {bad} are not in the data; protocols: {protos}")
    rng = np.random.default_rng(seed)
    out = {"train": [], "val": [], "test": []}
    for p in protos:
        idx = [i for i, r in enumerate(records) if r.protocol == p]
        if p in holdout_protocols:
            out["test"] += idx
            continue
        idx = list(rng.permutation(idx))
        k = len(idx)
        n_test = max(1, int(round(test_fraction * k))) if k >= 3 and test_fraction > 0 else 0
        n_val = max(1, int(round(val_fraction * k))) if k >= 3 and val_fraction > 0 else 0
        out["test"] += idx[:n_test]
        out["val"] += idx[n_test:n_test + n_val]
        out["train"] += idx[n_test + n_val:]
    return {k: sorted(int(i) for i in v) for k, v in out.items()}


def stack_records(records: Sequence[SensoryRecord], resp_scale: float, length: int | None = None):
    """``(stimulus, target, mask)`` arrays (n, T): padded with the last stimulus, target normalised.

    Arguments:
        records: recordings on the transducer's grid.
        resp_scale: the response unit of the normalised target.
        length: common length (default: the longest record).
    """
    T = length or max(r.n_samples for r in records)
    n = len(records)
    stim = np.zeros((n, T), np.float32)
    tgt = np.zeros((n, T), np.float32)
    mask = np.zeros((n, T), np.float32)
    for i, r in enumerate(records):
        k = min(T, r.n_samples)
        stim[i, :k] = r.stimulus[:k]
        stim[i, k:] = r.stimulus[k - 1]
        ok = ~np.isnan(r.response[:k])
        tgt[i, :k] = np.where(ok, r.response[:k], 0.0) / resp_scale
        mask[i, :k] = ok
    return stim, tgt, mask


def _masked_terms(spec, params, stim, tgt, mask, soft_scale):
    """``(mse, soft)``: masked MSE of the normalised response, and of ``asinh(response / soft_scale)``
    (the second weighs small responses — the baseline and the onset that T* is read from — as much
    as the large peak; it is 0 when ``soft_scale`` is 0)."""
    pred = jax.vmap(lambda u: predict(spec, params, u))(stim) / spec.resp_scale
    n = jnp.maximum(jnp.sum(mask, axis=1), 1.0)
    mse = jnp.mean(jnp.sum(mask * (pred - tgt) ** 2, axis=1) / n)
    if not soft_scale:
        return mse, jnp.zeros_like(mse)
    c = soft_scale / spec.resp_scale
    soft = jnp.mean(jnp.sum(mask * (jnp.arcsinh(pred / c) - jnp.arcsinh(tgt / c)) ** 2, axis=1) / n)
    return mse, soft


class SensoryTransducerTask(AbstractFitTask):
    """Fit a :class:`~owjax.sensory.transducer.TransducerSpec` transducer to recordings.

    Arguments:
        spec: the transducer's hyperparameters.
        records: the recordings, already on the ``spec.dt_s`` grid.
        split: ``{"train", "val", "test"}`` worm indices (:func:`split_by_worm`).
        batch_size: worms per step (drawn with replacement when larger than the training set).
        dtype: parameter dtype.
        name: for logs and metrics.
        soft_scale: response scale of the asinh term (record units; 0: no such term).
        soft_weight: weight of the asinh term.
    """

    def __init__(self, spec: TransducerSpec, records: Sequence[SensoryRecord], split: Mapping[str, list[int]],
                 batch_size: int = 8, dtype=jnp.float32, name: str = "sensory", soft_scale: float = 0.0,
                 soft_weight: float = 0.0):
        if not split.get("train"):
            raise ValueError("SensoryTransducerTask: the split has no training worms")
        for r in records:
            if abs(r.dt_s - spec.dt_s) > 1e-9:
                raise ValueError(f"record {r.worm_id} is sampled every {r.dt_s} s but the transducer steps "
                                 f"{spec.dt_s} s; resample it (SensoryRecord.resampled)")
        self.spec = spec
        self.records = list(records)
        self.split = {k: list(split.get(k, [])) for k in ("train", "val", "test")}
        self.batch_size = int(batch_size)
        self.dtype = dtype
        self.name = name
        self.soft_scale = float(soft_scale)
        self.soft_weight = float(soft_weight)
        self.data = stack_records(self.records, spec.resp_scale)
        self.data_description = (f"{len(self.records)} {spec.modality.upper()} recordings "
                                 f"({', '.join(sorted({r.protocol for r in self.records}))}); split by worm "
                                 f"train {len(self.split['train'])} / val {len(self.split['val'])} / "
                                 f"test {len(self.split['test'])}")
        self.loss_description = ("mean over worms of the masked MSE of the normalised response"
                                 + (f" + {soft_weight} x MSE of asinh(response / {soft_scale})" if soft_weight else ""))
        self.info = dict(modality=spec.modality, spec=spec.to_dict(), split=self.split,
                         worm_ids={k: [self.records[i].worm_id for i in v] for k, v in self.split.items()})
        self._eval = jax.jit(lambda p, s, t, m: self._total(p, s, t, m)[0])

    def _total(self, params, stim, tgt, mask):
        mse, soft = _masked_terms(self.spec, params, stim, tgt, mask, self.soft_scale)
        return mse + self.soft_weight * soft, {"mse": mse, "soft": soft}

    def describe(self) -> str:
        s = self.spec
        return f"{s.modality} GRU transducer: hidden {s.hidden}, depth {s.depth}, inputs {list(s.inputs)}"

    def init(self, key):
        return init_params(self.spec, key, self.dtype)

    def batches(self, step, key):
        tr = np.asarray(self.split["train"])
        pick = np.asarray(jax.random.choice(key, tr.size, (self.batch_size,), replace=self.batch_size > tr.size))
        idx = tr[pick]
        stim, tgt, mask = self.data
        return {"stimulus": jnp.asarray(stim[idx]), "target": jnp.asarray(tgt[idx]), "mask": jnp.asarray(mask[idx])}

    def loss(self, params, batch, key):
        return self._total(params, batch["stimulus"], batch["target"], batch["mask"])

    @property
    def validation_metric(self) -> str | None:
        """``"val_loss"`` (the loop's best-on-validation selection) when there are validation worms."""
        return "val_loss" if self.split["val"] else None

    def validate(self, params, key) -> dict[str, float]:
        """The loss on the validation worms (host side; the loop calls it every ``validation.every`` steps)."""
        return {"val_loss": self.set_loss(params, "val")}

    def objective(self, params, key):
        """The training objective on every training worm: ``(value, {"mse", "soft"})``."""
        idx = self.split["train"]
        stim, tgt, mask = (jnp.asarray(a[idx]) for a in self.data)
        value, terms = jax.jit(self._total)(params, stim, tgt, mask)
        return float(value), {k: float(v) for k, v in terms.items()}

    def set_loss(self, params, which: str) -> float:
        """The loss on every worm of ``which`` (``train``, ``val``, ``test``); NaN if the set is empty."""
        idx = self.split[which]
        if not idx:
            return float("nan")
        stim, tgt, mask = (jnp.asarray(a[idx]) for a in self.data)
        return float(self._eval(params, stim, tgt, mask))

    def predictions(self, params, which: str | None = None) -> dict[int, np.ndarray]:
        """Predicted responses (record units) of the worms of ``which`` (all if ``None``)."""
        idx = range(len(self.records)) if which is None else self.split[which]
        f = jax.jit(lambda u: predict(self.spec, params, u))
        return {i: np.asarray(f(jnp.asarray(self.records[i].stimulus, self.dtype))) for i in idx}

    def report(self, params_init, params, run_dir, figures):
        from owjax.sensory.evaluate import evaluate_records, plot_traces

        out = {"loss_" + k: self.set_loss(params, k) for k in ("train", "val", "test")}
        for which in ("val", "test"):
            if self.split[which]:
                recs = [self.records[i] for i in self.split[which]]
                out[which] = evaluate_records(self.spec, params, recs, ceiling_records=self.records)
                if figures and run_dir is not None:
                    plot_traces(self.spec, params, recs, Path(run_dir) / f"traces_{which}.png",
                                title=f"{self.name}: {which} worms (held out)")
        return out

    def save_outputs(self, params, run_dir, provenance, metadata):
        if isinstance(provenance, Mapping):
            prov = dict(provenance)
        elif hasattr(provenance, "details"):  # owjax.fitting.registry.Provenance (from the loop)
            prov = dict(provenance.details, source=str(getattr(provenance, "source", "")))
        else:
            prov = {"provenance": str(provenance)}
        save_transducer(Path(run_dir) / "transducer.npz", self.spec, params,
                        dict(prov, **dict(metadata), data=self.data_description, split=self.info["worm_ids"]))


@dataclass
class FitResult:
    """What :func:`fit` returns: best-on-validation parameters and the training history."""

    params: Any
    best_step: int
    best_val: float
    history: dict
    wall_time_s: float


def fit(task: SensoryTransducerTask, steps: int = 400, lr: float = 3e-3, seed: int = 0, eval_every: int = 20,
        clip_norm: float = 1.0, patience: int | None = None, log=print) -> FitResult:
    """Train ``task`` with Adam (cosine decay to 5 % of ``lr``) and keep the best-on-validation parameters.

    Arguments:
        task: the task.
        steps: optimisation steps.
        lr: peak learning rate.
        seed: run seed (initialisation and batches: step k uses ``fold_in(PRNGKey(seed), k)``).
        eval_every: steps between validation evaluations (and at the end).
        clip_norm: gradient-norm clipping.
        patience: stop early after this many evaluations without improvement (``None``: never).
        log: progress printer (``None`` for silence).

    Returns:
        :class:`FitResult` (without a validation set, the final parameters).
    """
    import optax

    t0 = time.perf_counter()
    key = jax.random.PRNGKey(seed)
    params = task.init(jax.random.fold_in(key, 10**6))
    opt = optax.chain(optax.clip_by_global_norm(clip_norm),
                      optax.adam(optax.cosine_decay_schedule(lr, max(1, steps), alpha=0.05)))
    state = opt.init(params)

    @jax.jit
    def train_step(params, state, batch, k):
        (loss, _), g = jax.value_and_grad(task.loss, has_aux=True)(params, batch, k)
        upd, state = opt.update(g, state, params)
        return optax.apply_updates(params, upd), state, loss

    has_val = bool(task.split["val"])
    best, best_val, best_step, bad = params, float("inf"), 0, 0
    hist = {"step": [], "train_loss": [], "val_loss": []}
    for s in range(steps):
        k = jax.random.fold_in(key, s)
        batch = task.batches(s, k)
        params, state, loss = train_step(params, state, batch, k)
        if (s + 1) % eval_every == 0 or s + 1 == steps:
            v = task.set_loss(params, "val") if has_val else float(loss)
            hist["step"].append(s + 1)
            hist["train_loss"].append(float(loss))
            hist["val_loss"].append(v)
            if log:
                log(f"  step {s + 1}/{steps}: batch loss {float(loss):.4g}, val {v:.4g}")
            if not has_val or v < best_val:
                best, best_val, best_step, bad = params, v, s + 1, 0
            else:
                bad += 1
                if patience is not None and bad >= patience:
                    break
    return FitResult(best, best_step, best_val, hist, time.perf_counter() - t0)

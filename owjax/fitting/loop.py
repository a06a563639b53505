"""``python -m owjax.fit +experiment=NAME``: fit model parameters by gradient descent, resumably.

Hydra app (primary config ``conf/fit.yaml``; experiments in ``conf/experiment/NAME.yaml``). An
experiment names the model, the trainable parameter groups (:mod:`owjax.fitting.params`), the data or
target, the loss terms and weights, the optimiser and the run length. Examples::

    python -m owjax.fit +experiment=param_recovery
    python -m owjax.fit +experiment=param_recovery run=ci            # the CI-sized version
    python -m owjax.fit +experiment=defecation_period optim.lr=0.1
    python -m owjax.fit -m +experiment=param_recovery seed=0,1,2 optim.lr=1e-3,1e-2   # a sweep

Optimisation: optax Adam (or AdamW / SGD) with a learning-rate schedule and gradient-norm
clipping, optionally followed by an L-BFGS polish (``optim.lbfgs.steps``); loss and gradient are
jit-compiled once; steps whose loss or gradient is not finite are skipped.

Runs lose nothing: the run directory has a deterministic name (experiment + command-line
overrides), the whole optimiser state is checkpointed (orbax) every ``checkpoint.every`` steps
and on Ctrl-C / SIGTERM, and running the same command again resumes from the last checkpoint and
ends exactly where an uninterrupted run ends. ``resume=false`` starts afresh.

Validation (``validation.every`` > 0, for a task with a ``validation_metric``): every ``every``
steps (and after the last) the loop calls ``task.validate(params, key)``, keeps the parameters with
the lowest ``validation_metric`` and stops after ``validation.patience`` validations without
improvement; the best parameters, the validation history and the patience counter are part of the
checkpoint, so a resumed run selects and stops exactly as an uninterrupted one, and the outputs
(report, parameter files, ``final_loss``) use the best parameters. ``max_fit_wall_s`` stops the
optimiser once the steps have taken that long (all sessions together); the outputs are written and
the same command with a larger budget continues.

Outputs in the run directory: ``params.json`` (fitted parameters + component registry; load with
``python -m owjax.simulate params=PATH``), ``metrics.json``, ``loss_history.json`` (loss, terms,
gradient norm and wall time of every step), ``loss_curve.png`` (each term), the experiment's
figures, ``registry.md`` / ``registry.png``, ``fit_config.yaml``.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("owjax.fitting.loop")

__all__ = ["run_fit", "EXPERIMENTS", "semantic_config", "available_experiments"]

#: config keys that do not change the result (left out of the checkpoint identity and cache key)
NON_SEMANTIC_KEYS = ("resume", "progress", "figures", "checkpoint", "hydra", "sizes", "max_fit_wall_s")

#: the validation history kept in the checkpoint: at most this many metrics per validation, and
#: this many bytes for their names (JSON); checkpoints hold arrays of fixed shape only
MAX_VALIDATION_METRICS = 32
_VALIDATION_NAMES_BYTES = 4096

#: metrics.json keys the loop owns (a task's report cannot override them)
_LOOP_METRICS = ("experiment", "status", "n_steps", "n_adam_steps", "n_lbfgs_steps", "wall_time_s", "seed",
                 "run_dir", "stopped", "best_step", "validation")

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

# run-directory names: Hydra's override_dirname, or "default" when the command has no overrides
if not OmegaConf.has_resolver("owjax_dirname"):
    OmegaConf.register_new_resolver("owjax_dirname", lambda s: str(s) if str(s) else "default")


#: experiment kind → module in owjax.fitting.tasks (any other kind K is looked up in owjax.fitting.tasks.K)
EXPERIMENTS = {
    "param_recovery": "param_recovery",
    "defecation_period": "defecation_period",
    "muscle_activation": "muscle_activation",
    "synapse_polarity": "synapse_polarity",
}


def _experiment_class(kind: str):
    """The :class:`~owjax.fitting.tasks.base.AbstractExperiment` subclass of ``kind`` (imported lazily)."""
    import importlib

    from owjax.fitting.tasks.base import AbstractExperiment
    from owjax.neural.spec import unknown_name_message

    module = EXPERIMENTS.get(kind, kind)
    try:
        mod = importlib.import_module(f"owjax.fitting.tasks.{module}")
    except ModuleNotFoundError as e:
        if e.name != f"owjax.fitting.tasks.{module}":
            raise
        raise ValueError(unknown_name_message("experiment kind", kind, sorted(EXPERIMENTS))) from None
    for obj in vars(mod).values():
        if isinstance(obj, type) and issubclass(obj, AbstractExperiment) and getattr(obj, "kind", None) == kind:
            return obj
    raise ValueError(f"owjax.fitting.tasks.{module} defines no AbstractExperiment with kind {kind!r}")


def available_experiments() -> list[str]:
    """Names of the fitting experiments in ``conf/experiment/`` (files that set ``experiment.kind``)."""
    import yaml

    out = []
    for p in sorted((CONF_DIR / "experiment").glob("*.yaml")):
        try:
            doc = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError:
            continue
        if isinstance(doc.get("experiment"), dict) and doc["experiment"].get("kind"):
            out.append(p.stem)
    return out


# ---------------------------------------------------------------------------- configuration
def _command_line_overrides(cfg: DictConfig) -> list[str]:
    """The command-line overrides of this job (from Hydra's runtime config, or ``cfg.hydra`` when the
    config was composed with ``return_hydra_config=True``)."""
    try:
        node = cfg.get("hydra")
    except Exception:  # pragma: no cover
        node = None
    if node is not None:
        return list(node.overrides.task)
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _apply_run_size(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """Merge ``sizes[run]`` (e.g. ``sizes.ci``) into the config when ``run`` is not ``full``.

    Precedence: command-line overrides > the size preset > the experiment file > ``conf/fit.yaml``
    (the preset is merged, then the command-line overrides are applied again on top).
    """
    d = OmegaConf.to_container(cfg, resolve=False)
    d.pop("hydra", None)
    base = OmegaConf.create(d)  # unlocked (Hydra's config is in struct mode)
    run = str(base.get("run", "full"))
    if run == "full":
        return base
    sizes = base.get("sizes") or {}
    if run not in sizes:
        raise ValueError(f"run={run!r}: this experiment defines sizes {sorted(sizes) + ['full']}")
    merged = OmegaConf.merge(base, OmegaConf.to_container(sizes[run], resolve=True))
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for ov in OverridesParser.create().parse_overrides(overrides):
        key = ov.key_or_group
        if key == "experiment" or key.startswith("hydra") or key == "run" or ov.is_delete():
            continue
        OmegaConf.update(merged, key, ov.value(), merge=False, force_add=True)
    return merged


def semantic_config(cfg: DictConfig) -> str:
    """YAML of the parts of ``cfg`` that determine the result (the run's identity)."""
    d = OmegaConf.to_container(cfg, resolve=True)
    for k in NON_SEMANTIC_KEYS:
        d.pop(k, None)
    if not (d.get("validation") or {}).get("every"):
        d.pop("validation", None)  # off: the result is the same as without the block
    return OmegaConf.to_yaml(OmegaConf.create(d), sort_keys=True)


def _check_top(cfg: DictConfig) -> None:
    exp = cfg.get("experiment") or {}
    name = exp.get("name") if isinstance(exp, (dict, DictConfig)) else None
    if name in (None, "???") or OmegaConf.is_missing(cfg.experiment, "name"):
        raise ValueError(
            "choose an experiment: python -m owjax.fit +experiment=NAME; available: "
            + ", ".join(available_experiments())
        )
    import yaml

    allowed = set(yaml.safe_load((CONF_DIR / "fit.yaml").read_text()) or {}) | {"hydra", "sizes"}
    exp_file = CONF_DIR / "experiment" / f"{name}.yaml"
    if exp_file.exists():
        allowed |= set(yaml.safe_load(exp_file.read_text()) or {})
    unknown = sorted(set(cfg.keys()) - allowed - {"defaults"})
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown} for experiment {name!r}; allowed: {sorted(allowed - {'hydra'})}")
    cls = _experiment_class(str(exp.get("kind")))
    if getattr(cls, "runs_own_loop", False) or not getattr(cls, "requires_parameters_block", True):
        return  # its parametrisation is the experiment's own (no parameters: block)
    if cfg.get("parameters") in (None, {}):
        raise ValueError(f"experiment {name!r} defines no parameters: block")


# ---------------------------------------------------------------------------- optimisers
def _schedule(o: Mapping, steps: int):
    import optax

    lr = float(o.get("lr", 1e-2))
    kind = str(o.get("schedule", "constant"))
    warm = int(o.get("warmup_steps", 0) or 0)
    final = float(o.get("final_lr_fraction", 0.01))
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"optim.lr must be a positive number, got {lr!r}")
    steps = max(1, steps)
    if kind == "constant":
        return optax.constant_schedule(lr)
    if kind == "cosine":
        return optax.cosine_decay_schedule(lr, steps, alpha=final)
    if kind == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, max(1, warm), steps, end_value=lr * final)
    if kind == "exponential":
        return optax.exponential_decay(lr, steps, final)
    raise ValueError(f"optim.schedule {kind!r} unknown; allowed: constant, cosine, warmup_cosine, exponential")


def _first_stage(o: Mapping):
    import optax

    steps = int(o.get("steps", 100))
    name = str(o.get("name", "adam"))
    sched = _schedule(o, steps)
    makers = {
        "adam": lambda: optax.adam(sched),
        "adamw": lambda: optax.adamw(sched, weight_decay=float(o.get("weight_decay", 1e-4))),
        "sgd": lambda: optax.sgd(sched, momentum=o.get("momentum")),
    }
    if name not in makers:
        raise ValueError(f"optim.name {name!r} unknown; allowed: {sorted(makers)}")
    parts = []
    clip = o.get("clip_norm")
    if clip not in (None, 0, "null"):
        parts.append(optax.clip_by_global_norm(float(clip)))
    parts.append(makers[name]())
    return optax.apply_if_finite(optax.chain(*parts), max_consecutive_errors=int(o.get("max_bad_steps", 20)))


def _lbfgs(o: Mapping):
    import optax

    lb = o.get("lbfgs") or {}
    return optax.lbfgs(
        memory_size=int(lb.get("memory", 10)),
        linesearch=optax.scale_by_zoom_linesearch(max_linesearch_steps=int(lb.get("linesearch_steps", 20))),
    )


# ---------------------------------------------------------------------------- compiled functions
_CACHE: dict[str, Any] = {}


class _Compiled:
    """The jit-compiled step functions of one task (cached per semantic config)."""

    def __init__(self, task, optim: Mapping):
        import equinox as eqx
        import jax
        import jax.numpy as jnp
        import optax

        def total(params, batch, key):
            value, terms = task.loss(params, batch, key)
            return value, dict(terms)

        self.first = _first_stage(optim)
        self.lbfgs = _lbfgs(optim)
        first, lbfgs = self.first, self.lbfgs

        def gnorm(g):
            return optax.tree.norm(g)

        @eqx.filter_jit
        def first_step(params, state, batch, key):
            (loss, terms), g = jax.value_and_grad(total, has_aux=True)(params, batch, key)
            upd, state = first.update(g, state, params)
            return optax.apply_updates(params, upd), state, loss, terms, gnorm(g)

        @eqx.filter_jit
        def lbfgs_step(params, state, batch, key):
            f = lambda r: total(r, batch, key)[0]  # noqa: E731
            value, g = optax.value_and_grad_from_state(f)(params, state=state)
            upd, new_state = lbfgs.update(g, state, params, value=value, grad=g, value_fn=f)
            new = optax.apply_updates(params, upd)
            ok = jnp.isfinite(value) & jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(new)]))
            new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, params)
            return new, new_state, value, gnorm(g)

        @eqx.filter_jit
        def evaluate(params, batch, key):
            return total(params, batch, key)

        self.total = total
        self.first_step = first_step
        self.lbfgs_step = lbfgs_step
        self.evaluate = evaluate


_PROBLEMS: dict[str, Any] = {}


def _strong(tree):
    """The same pytree with every array strongly typed (optax initialises some scalars weakly typed,
    its updates return them strongly typed; without this the step would compile twice, and a state
    restored from a checkpoint would compile a third time)."""
    import jax
    import jax.numpy as jnp

    def fix(x):
        if isinstance(x, (jax.Array, np.ndarray, np.generic, float, int, bool)):
            a = jnp.asarray(x)
            return jnp.array(a, dtype=a.dtype)
        return x

    return jax.tree.map(fix, tree)


def _task(key: str, exp_cfg: Mapping, seed: int, run_dir: Path, dtype):
    """Build the experiment's task (a :class:`~owjax.fitting.tasks.base.FitProblem` becomes a
    :class:`~owjax.fitting.task.ParameterFitTask`); the same configuration in the same process reuses
    it (and so every function the task compiled, e.g. when a run is resumed in-process)."""
    from owjax.fitting.task import AbstractFitTask, ParameterFitTask
    from owjax.fitting.tasks.base import FitProblem

    if key not in _PROBLEMS:
        experiment = _experiment_class(exp_cfg["experiment"]["kind"])()
        log.info("building experiment %s (%s)", exp_cfg["experiment"]["name"], exp_cfg["experiment"]["kind"])
        built = experiment.build(exp_cfg, seed=seed, run_dir=run_dir)
        if isinstance(built, FitProblem):
            built = ParameterFitTask(built, dtype)
        if not isinstance(built, AbstractFitTask):
            raise TypeError(f"{type(experiment).__name__}.build returned {type(built).__name__}; "
                            "expected a FitProblem or an AbstractFitTask")
        _PROBLEMS.clear()
        _PROBLEMS[key] = built
    return _PROBLEMS[key]


def _compiled(key: str, problem, optim: Mapping) -> _Compiled:
    if key not in _CACHE:
        _CACHE.clear()  # one problem at a time (a sweep runs jobs one after another)
        _CACHE[key] = _Compiled(problem, optim)
    return _CACHE[key]


# ---------------------------------------------------------------------------- signals
@contextmanager
def _sigterm_as_interrupt():
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not in the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _validation_settings(exp_cfg: Mapping, task) -> tuple[int, int | None]:
    """``(every, patience)`` of the ``validation:`` block, checked against the task (0: off)."""
    v = dict(exp_cfg.get("validation") or {})
    unknown = sorted(set(v) - {"every", "patience"})
    if unknown:
        raise ValueError(f"validation: unknown key(s) {unknown}; allowed: every, patience")
    every = int(v.get("every") or 0)
    patience = v.get("patience")
    if every < 0:
        raise ValueError(f"validation.every must be >= 0 (0: off), got {every}")
    if patience is not None and int(patience) < 1:
        raise ValueError(f"validation.patience must be >= 1 or null (never stop early), got {patience}")
    if every and not getattr(task, "validation_metric", None):
        # e.g. a split without validation data: the task says so with validation_metric = None
        log.warning("validation.every=%d, but %s has no validation (validation_metric is None): validation is "
                    "off and the last parameters are kept", every, type(task).__name__)
        return 0, None
    return every, (None if patience is None else int(patience))


class _Validation:
    """Best-on-validation selection and early stopping; its state is part of the checkpoint."""

    def __init__(self, task, every: int, patience: int | None, n_total: int, raw0):
        self.task, self.every, self.patience = task, every, patience
        self.metric = str(task.validation_metric) if every else None
        n = n_total // every + 1 if every else 1
        self.state = dict(best_raw=raw0, best_value=np.asarray(np.inf), best_step=np.asarray(0, np.int64),
                          bad=np.asarray(0, np.int64), stopped=np.asarray(0, np.int64),
                          steps=np.full(n, -1, np.int64), values=np.full((n, MAX_VALIDATION_METRICS), np.nan),
                          names=np.zeros(_VALIDATION_NAMES_BYTES, np.uint8))

    @property
    def on(self) -> bool:
        return bool(self.every)

    @property
    def stopped(self) -> bool:
        return bool(self.state["stopped"])

    def due(self, step: int, n_total: int) -> bool:
        return self.on and (step % self.every == 0 or step == n_total)

    def names(self) -> list[str]:
        raw = bytes(np.asarray(self.state["names"], np.uint8)).rstrip(b"\0")
        return json.loads(raw.decode()) if raw else []

    def __call__(self, step: int, raw, key) -> None:
        vals = dict(self.task.validate(raw, key))
        if self.metric not in vals:
            raise ValueError(f"{type(self.task).__name__}.validate returned {sorted(vals)}, which lacks its "
                             f"validation_metric {self.metric!r}")
        try:
            vals = {k: float(v) for k, v in vals.items()}
        except (TypeError, ValueError):
            raise ValueError(f"{type(self.task).__name__}.validate must return numbers, got {vals}") from None
        st = self.state
        names = self.names()
        if not names:
            names = sorted(vals)
            text = json.dumps(names).encode()
            if len(names) > MAX_VALIDATION_METRICS or len(text) > _VALIDATION_NAMES_BYTES:
                raise ValueError(f"validate returns {len(names)} metrics; the checkpoint keeps at most "
                                 f"{MAX_VALIDATION_METRICS} (names up to {_VALIDATION_NAMES_BYTES} bytes)")
            buf = np.zeros(_VALIDATION_NAMES_BYTES, np.uint8)
            buf[:len(text)] = np.frombuffer(text, np.uint8)
            st["names"] = buf
        elif sorted(vals) != names:
            raise ValueError(f"validate returned the metrics {sorted(vals)} after {names} before; they must not change")
        row = int((np.asarray(st["steps"]) >= 0).sum())
        steps, values = np.array(st["steps"]), np.array(st["values"])
        steps[row] = step
        values[row, :len(names)] = [vals[k] for k in names]
        st["steps"], st["values"] = steps, values
        v = vals[self.metric]
        if math.isfinite(v) and v < float(st["best_value"]):
            st.update(best_raw=raw, best_value=np.asarray(v),
                      best_step=np.asarray(step, np.int64), bad=np.asarray(0, np.int64))
        else:
            st["bad"] = np.asarray(int(st["bad"]) + 1, np.int64)
        log.info("validation at step %d: %s (best %.6g at step %d)", step, vals, float(st["best_value"]),
                 int(st["best_step"]))
        if self.patience is not None and int(st["bad"]) >= self.patience:
            st["stopped"] = np.asarray(1, np.int64)
            log.info("early stopping at step %d: %d validations without improvement", step, int(st["bad"]))

    def summary(self) -> dict:
        st = self.state
        names = self.names()
        n = int((np.asarray(st["steps"]) >= 0).sum())
        hist = [dict(step=int(st["steps"][i]), **{k: float(st["values"][i, j]) for j, k in enumerate(names)})
                for i in range(n)]
        best = float(st["best_value"])
        return dict(metric=self.metric, every=self.every, patience=self.patience, n_validations=n,
                    best_step=int(st["best_step"]), best_value=best if math.isfinite(best) else None,
                    stopped_early=self.stopped, history=hist)


# ---------------------------------------------------------------------------- the run
def run_fit(cfg: DictConfig | Mapping, run_dir: str | Path, *, on_step: Callable[[int], None] | None = None) -> dict:
    """Do what ``python -m owjax.fit`` does with ``cfg`` (as composed by Hydra) in ``run_dir``.

    Arguments:
        cfg: the composed configuration (``conf/fit.yaml`` + experiment + overrides).
        run_dir: the run directory (checkpoints and outputs go here).
        on_step: called with the number of completed steps after every step (after its checkpoint,
            if one was due). An exception it raises ends the run as one from the step would: a
            ``KeyboardInterrupt`` or ``SystemExit`` writes the exit checkpoint first, any other exception does not
            (as a hard kill) — how tests interrupt a run.

    Returns:
        The metrics (also written to ``run_dir/metrics.json``).

    Raises:
        owjax.fitting.params.ParameterSpecError: bad parameter spec (before anything is compiled).
        owjax.core.checkpoint.CheckpointMismatchError: ``run_dir`` holds a run of another config.
    """
    import jax

    cfg = OmegaConf.create(cfg) if not isinstance(cfg, DictConfig) else cfg
    _check_top(cfg)
    cfg = _apply_run_size(cfg, _command_line_overrides(cfg))
    cls = _experiment_class(str(cfg.experiment.kind))
    if getattr(cls, "runs_own_loop", False):
        # an experiment that still runs its own loop (sensory_transducer: leave-one-worm-out folds, ship=)
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        return cls().run(OmegaConf.to_container(cfg, resolve=True), Path(run_dir))
    dtype = str(cfg.get("dtype", "float64"))
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    if dtype == "float64" and not jax.config.read("jax_enable_x64"):
        raise ValueError("dtype=float64 needs JAX's 64-bit mode, which is set once at the entry point "
                         "(python -m owjax.fit does it from the config); in Python call "
                         "jax.config.update('jax_enable_x64', True) first, or use dtype=float32")
    import jax.numpy as jnp

    from owjax.core.checkpoint import FitCheckpointer, atomic_write_json
    from owjax.fitting.registry import auto_fitted_provenance

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t_session = time.perf_counter()
    exp_cfg = OmegaConf.to_container(cfg, resolve=True)
    exp_name = exp_cfg["experiment"]["name"]
    seed = int(exp_cfg.get("seed", 0))
    optim = dict(exp_cfg.get("optim") or {})
    n_first = int(optim.get("steps", 100))
    n_lbfgs = int((optim.get("lbfgs") or {}).get("steps", 0))
    if n_first < 0 or n_lbfgs < 0 or n_first + n_lbfgs < 1:
        raise ValueError(f"optim.steps={n_first} and optim.lbfgs.steps={n_lbfgs}: need at least one step in all")
    n_total = n_first + n_lbfgs
    ck = dict(exp_cfg.get("checkpoint") or {})
    every = int(ck.get("every", 10))
    if every < 1:
        raise ValueError(f"checkpoint.every must be >= 1, got {every}")
    max_wall = exp_cfg.get("max_fit_wall_s")
    if max_wall is not None and not float(max_wall) > 0:
        raise ValueError(f"max_fit_wall_s must be a positive number of seconds or null, got {max_wall!r}")

    # --- the run directory must belong to this configuration (checked before any work)
    semantic = semantic_config(cfg)
    ckpt = FitCheckpointer(run_dir, semantic, keep=int(ck.get("keep", 2)))
    if not bool(cfg.get("resume", True)):
        ckpt.clear()
    ckpt.check_config()
    latest = ckpt.latest_step()
    done = run_dir / "metrics.json"
    if latest is not None and done.exists():
        metrics = json.loads(done.read_text())
        if (metrics.get("status") == "complete" and metrics.get("n_steps") == latest
                and (latest >= n_total or metrics.get("stopped") == "early_stopping")):
            print(f"owjax.fit: {run_dir} is complete (delete its metrics.json to redo the outputs)", file=sys.stderr)
            ckpt.close()
            return metrics
    # --- the problem (all parameter-spec errors surface here, before any compilation)
    task = _task(semantic, exp_cfg, seed, run_dir, jnp.float64 if dtype == "float64" else jnp.float32)
    val_every, patience = _validation_settings(exp_cfg, task)
    log.info("parameters:\n%s", task.describe())
    fns = _compiled(semantic, task, optim)
    root_key = jax.random.PRNGKey(seed)

    def key_of(k):
        return jax.random.fold_in(root_key, k)

    val_root = jax.random.fold_in(root_key, 2**31 - 2)

    # --- state
    raw0 = task.init(jax.random.fold_in(root_key, -1 % (2**31)))
    term_names = list(jax.eval_shape(fns.total, raw0, task.batches(0, key_of(0)), key_of(0))[1])
    validation = _Validation(task, val_every, patience, n_total, raw0)
    state = dict(
        raw=raw0,
        first=_strong(fns.first.init(raw0)),
        lbfgs=_strong(fns.lbfgs.init(raw0)),
        step=np.asarray(0, np.int64),
        loss=np.full(n_total, np.nan),
        terms=np.full((n_total, len(term_names)), np.nan),
        grad_norm=np.full(n_total, np.nan),
        step_s=np.full(n_total, np.nan),
        wall_time_s=np.asarray(0.0),
    )
    if validation.on:
        state["validation"] = validation.state
    step = 0
    if ckpt.latest_step() is not None:
        step, state = ckpt.restore(state)
        log.info("resuming %s at step %d of %d", run_dir, step, n_total)
        print(f"owjax.fit: resuming {run_dir} from checkpoint at step {step}/{n_total}", file=sys.stderr)
        if validation.on:
            validation.state = dict(state["validation"], best_raw=_strong(state["validation"]["best_raw"]))
    wall0 = float(state["wall_time_s"])
    loss_hist = np.array(state["loss"], dtype=np.float64)
    term_hist = np.array(state["terms"], dtype=np.float64)
    gn_hist = np.array(state["grad_norm"], dtype=np.float64)
    step_s = np.array(state["step_s"], dtype=np.float64)
    raw, s_first, s_lbfgs = _strong(state["raw"]), _strong(state["first"]), _strong(state["lbfgs"])

    def pack(k):
        out = dict(raw=raw, first=s_first, lbfgs=s_lbfgs, step=np.asarray(k, np.int64), loss=loss_hist,
                   terms=term_hist, grad_norm=gn_hist, step_s=step_s,
                   wall_time_s=np.asarray(wall0 + time.perf_counter() - t_session))
        if validation.on:
            out["validation"] = validation.state
        return out

    saved = step
    stopped = "early_stopping" if validation.stopped else None
    first_step_of_session = step
    from tqdm.auto import tqdm

    bar = tqdm(total=n_total, initial=step, desc=f"fit {exp_name}", disable=not bool(cfg.get("progress", True)),
               dynamic_ncols=True)
    with _sigterm_as_interrupt():
        try:
            while step < n_total and stopped is None:
                if max_wall is not None and np.nansum(step_s[:step]) >= float(max_wall):
                    stopped = "wall_time"
                    print(f"owjax.fit: max_fit_wall_s={max_wall} reached; stopping at step {step}/{n_total} "
                          "(outputs are written; run again with a larger max_fit_wall_s to continue)",
                          file=sys.stderr)
                    break
                t_step = time.perf_counter()
                key = key_of(step)
                batch = task.batches(step, key)
                if step < n_first:
                    raw, s_first, loss, terms, gn = fns.first_step(raw, s_first, batch, key)
                    term_hist[step] = [float(terms[k]) for k in term_names]
                else:
                    if step == n_first:  # the L-BFGS polish starts from where Adam ended
                        s_lbfgs = _strong(fns.lbfgs.init(raw))
                    raw, s_lbfgs, loss, gn = fns.lbfgs_step(raw, s_lbfgs, batch, key)
                    _, terms = fns.evaluate(raw, batch, key)
                    term_hist[step] = [float(terms[k]) for k in term_names]
                loss_hist[step] = float(loss)
                gn_hist[step] = float(gn)
                step_s[step] = time.perf_counter() - t_step
                if step in (first_step_of_session, n_first):
                    log.info("step %d took %.1f s (includes compiling the %s step)", step + 1, step_s[step],
                             "Adam" if step < n_first else "L-BFGS")
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss):.4g}", stage="adam" if step <= n_first else "lbfgs")
                if validation.due(step, n_total):
                    validation(step, raw, jax.random.fold_in(val_root, step))
                    if validation.stopped:
                        stopped = "early_stopping"
                if step % every == 0 or step == n_total or stopped:
                    ckpt.save(step, pack(step))
                    saved = step
                    log.info("step %d/%d: loss %.6g, |grad| %.3g (checkpoint saved)", step, n_total, float(loss),
                             float(gn))
                if on_step is not None:
                    on_step(step)
            if stopped == "wall_time" and step > saved:
                ckpt.save(step, pack(step))
                saved = step
        except (KeyboardInterrupt, SystemExit) as e:
            # Ctrl-C, SIGTERM, or sys.exit from a signal handler — submitit's USR2 handler requeues a SLURM
            # job at its time limit and then exits this way: the requeued job resumes at this very step
            if step > saved:
                ckpt.save(step, pack(step))
                why = "interrupted" if isinstance(e, KeyboardInterrupt) else f"exiting ({e!r})"
                print(f"\nowjax.fit: {why}; checkpoint saved at step {step}. Run the same command to "
                      "resume.", file=sys.stderr)
            raise
        finally:
            bar.close()
            ckpt.close()

    # --- outputs (with validation: the best parameters)
    t_out = time.perf_counter()
    wall = wall0 + time.perf_counter() - t_session
    final = _strong(validation.state["best_raw"]) if validation.on else raw
    eval_key = key_of(n_total)
    initial_loss, initial_terms = _objective(task, fns, raw0, eval_key, n_total)
    final_loss, final_terms = _objective(task, fns, final, eval_key, n_total)
    figures = bool(cfg.get("figures", True))
    history = dict(step=list(range(1, step + 1)), loss=loss_hist[:step].tolist(),
                   terms={k: term_hist[:step, j].tolist() for j, k in enumerate(term_names)},
                   grad_norm=gn_hist[:step].tolist(), step_s=step_s[:step].tolist())
    atomic_write_json(run_dir / "loss_history.json", history)  # before the report, which may read it
    exp_metrics = task.report(raw0, final, run_dir, figures)

    prov = auto_fitted_provenance(
        experiment=exp_name, data=task.data_description, loss=task.loss_description, run_dir=run_dir,
        optimizer=f"{optim.get('name', 'adam')} {n_first} steps (lr {optim.get('lr')}, {optim.get('schedule')})"
        + (f" + L-BFGS {n_lbfgs} steps" if n_lbfgs else ""), seed=seed, final_loss=final_loss,
    )
    task.save_outputs(final, run_dir, prov, dict(experiment=exp_name, final_loss=final_loss, n_steps=int(step),
                                                 config=semantic, date=prov.details["date"],
                                                 git_commit=prov.details["git_commit"], figures=figures))
    metrics = dict(
        experiment=exp_name, status="complete", final_loss=final_loss, initial_loss=initial_loss,
        n_steps=int(step), n_adam_steps=n_first, n_lbfgs_steps=n_lbfgs, wall_time_s=round(wall, 3),
        final_terms=final_terms, initial_terms=initial_terms, seed=seed, run_dir=str(run_dir), **task.info,
    )
    if stopped:
        metrics["stopped"] = stopped
    if validation.on:
        summary = validation.summary()
        metrics["best_step"] = summary["best_step"]
        metrics["validation"] = summary
    own = {k: metrics[k] for k in _LOOP_METRICS if k in metrics}
    metrics.update(exp_metrics)
    metrics.update(own)  # the task's metrics cannot override the loop's bookkeeping
    if figures:
        _loss_figure(run_dir / "loss_curve.png", loss_hist[:step], term_hist[:step], term_names, n_first, exp_name)
    metrics["analysis_time_s"] = round(time.perf_counter() - t_out, 3)
    atomic_write_json(run_dir / "metrics.json", metrics)  # last: its presence means the run is complete
    log.info("outputs written in %.1f s", metrics["analysis_time_s"])
    return metrics


def _objective(task, fns: _Compiled, params, key, n_total: int) -> tuple[float, dict[str, float]]:
    """The task's objective at ``params`` for ``initial_loss`` / ``final_loss``: its ``objective``
    (e.g. over all training data) when it has one, else the loss on ``batches(n_total, key)``."""
    res = task.objective(params, key)
    if res is None:
        res = fns.evaluate(params, task.batches(n_total, key), key)
    value, terms = res
    return float(value), {k: float(v) for k, v in terms.items()}


def _loss_figure(path, loss, terms, names, n_first, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from owjax.core.checkpoint import atomic_savefig

    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(1, len(loss) + 1)
    ax.semilogy(x, np.abs(loss), "k", lw=1.6, label="total")
    for j, n in enumerate(names):
        ax.semilogy(x, np.abs(terms[:, j]), lw=1, label=n)
    if 0 < n_first < len(loss):
        ax.axvline(n_first + 0.5, color="0.5", ls=":", lw=1)
        ax.text(n_first + 1, ax.get_ylim()[1], " L-BFGS", va="top", fontsize=8, color="0.4")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (before the step)")
    ax.set_title(f"{title}: loss per term")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def check_experiment_argument(argv: list[str]) -> str | None:
    """A clear message when ``+experiment=NAME`` on the command line is not a fitting experiment
    (e.g. a simulate scenario such as ``intestine`` or ``worm``, which would otherwise fail inside
    Hydra's composition with an unrelated-looking error); ``None`` when it is fine."""
    names = [a.split("=", 1)[1] for a in argv if a.split("=", 1)[0] in ("+experiment", "experiment") and "=" in a]
    if not names:
        return None
    fits = available_experiments()
    for name in names:
        if "," in name:  # a multirun sweep over experiments
            bad = [n for n in name.split(",") if n not in fits]
        else:
            bad = [name] if name not in fits else []
        for b in bad:
            if (CONF_DIR / "scenario" / f"{b}.yaml").exists():
                return (f"{b!r} is a simulation scenario, not a fitting experiment: run it with "
                        f"python -m owjax.simulate +scenario={b}; fitting experiments: {', '.join(fits)}")
            from owjax.neural.spec import unknown_name_message

            return unknown_name_message("fitting experiment", b, tuple(fits))
    return None



"""The fitting-task protocol: what a task gives the one training loop (:mod:`owjax.fitting.loop`).

A task says *what* is learned; the loop owns *how*: the optimiser and its schedule, gradient
clipping, the L-BFGS polish, checkpoints and exact resume, progress output, the loss-curve figure,
``metrics.json`` and the command line (``python -m owjax.fit +experiment=NAME``).

The protocol (:class:`AbstractFitTask`)::

    params = task.init(key)                       # trainable pytree (unconstrained / raw values)
    batch  = task.batches(step, key)              # the data of one step (host side; same shapes every step)
    value, terms = task.loss(params, batch, key)  # pure JAX: scalar loss and its named terms
    metrics = task.validate(params, key)          # optional, host side: held-out metrics (validation.every)
    value, terms = task.objective(params, key)    # optional, host side: the whole objective (initial/final loss)
    metrics = task.report(params0, params, run_dir, figures)   # host side, after the run
    task.save_outputs(params, run_dir, provenance)             # params.json / model files

The random key of a step is ``fold_in(PRNGKey(seed), step)``, so a resumed run draws exactly the
batches and noise an uninterrupted run would. :class:`ParameterFitTask` turns a
:class:`~owjax.fitting.tasks.base.FitProblem` (a model + a parameter space + data + loss terms)
into a task: that is how the mechanistic experiments (``param_recovery``, ``defecation_period``,
``muscle_activation``) run on the loop; ``synapse_polarity`` (minibatches of atlas stimulations) is an
:class:`AbstractFitTask` of its own.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jaxtyping import Array, PRNGKeyArray, PyTree

__all__ = ["AbstractFitTask", "ParameterFitTask"]


class AbstractFitTask(abc.ABC):
    """A learning problem for :func:`owjax.fitting.loop.run_fit`.

    Attributes (set by subclasses):
        data_description: the data or target, in words (goes into provenance).
        loss_description: the loss, in words.
        info: extra facts written to ``metrics.json``.
    """

    data_description: str = ""
    loss_description: str = ""
    info: dict = {}

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray) -> PyTree[Array]:
        """The initial trainable parameters (a pytree of float arrays, unconstrained)."""

    @abc.abstractmethod
    def batches(self, step: int, key: PRNGKeyArray) -> PyTree:
        """The batch of optimisation step ``step`` (shapes and dtypes identical for every step)."""

    @abc.abstractmethod
    def loss(self, params: PyTree[Array], batch: PyTree, key: PRNGKeyArray) -> tuple[Array, dict[str, Array]]:
        """Pure JAX: the scalar loss to minimise and its named (weighted or unweighted) terms."""

    #: name of the :meth:`validate` metric that selects the best parameters (lower is better);
    #: ``None``: the task has no validation and the last parameters are kept
    validation_metric: str | None = None

    def validate(self, params: PyTree[Array], key: PRNGKeyArray) -> dict[str, float]:
        """Host side, every ``validation.every`` steps: held-out metrics. The loop keeps the parameters
        with the lowest ``validation_metric`` and stops after ``validation.patience`` validations
        without improvement (early stopping); both survive a resume."""
        return {}

    def objective(self, params: PyTree[Array], key: PRNGKeyArray) -> tuple[float, dict[str, float]] | None:
        """Host side, after the run: the training objective at ``params`` as ``(value, {term: value})``
        for ``initial_loss`` / ``final_loss`` in ``metrics.json`` — a minibatch task evaluates it on all
        its training data (one batch's loss is noise). ``None`` (the default): the loop uses
        :meth:`loss` on ``batches(n_steps, key)``."""
        return None

    def report(self, params_init: PyTree[Array], params: PyTree[Array], run_dir: Path, figures: bool) -> dict:
        """Host side, after the run: the task's metrics (and figures in ``run_dir``, which already holds
        the loop's ``loss_history.json``). ``params`` are the best-on-validation ones when validation is on."""
        return {}

    def save_outputs(self, params: PyTree[Array], run_dir: Path, provenance: Any, metadata: Mapping) -> None:
        """Write the fitted model/parameters (default: nothing beyond the loop's own files)."""

    def describe(self) -> str:
        """What is trained, for the log."""
        return type(self).__name__


class ParameterFitTask(AbstractFitTask):
    """A :class:`~owjax.fitting.tasks.base.FitProblem` as a task (full batch, deterministic).

    Params are the raw (transformed) values of the problem's
    :class:`~owjax.fitting.params.ParameterSpace`; the loss is the weighted sum of the problem's
    terms plus the space's penalties; outputs are ``params.json`` and the component registry.
    """

    def __init__(self, problem, dtype):
        self.problem = problem
        self.dtype = dtype
        self.data_description = problem.data_description
        self.loss_description = problem.loss_description
        self.info = dict(problem.info)
        self.weights = {k: float(v) for k, v in (problem.weights or {}).items()}

    def describe(self) -> str:
        return self.problem.space.describe()

    def init(self, key):
        return self.problem.space.init_raw(dtype=self.dtype)

    def batches(self, step, key):
        return self.problem.data

    def loss(self, params, batch, key):
        space = self.problem.space
        model = space.apply(self.problem.model, params)
        terms = dict(self.problem.terms(model, batch))
        unknown = sorted(set(self.weights) - set(terms))
        if unknown:
            raise ValueError(f"loss.weights names unknown term(s) {unknown}; terms are {sorted(terms)}")
        value = sum(self.weights.get(k, 1.0) * v for k, v in terms.items())
        pens = space.penalties(params)
        if pens:
            value = value + sum(pens.values())
        return value, {**terms, **pens}

    def report(self, params_init, params, run_dir, figures):
        import numpy as np

        out = dict(self.problem.report(self.problem, params_init, params, run_dir, figures))
        space = self.problem.space
        raw_np = {k: np.asarray(v) for k, v in params.items()}
        out.setdefault("params_in_bounds", all(space.in_bounds(params).values()))
        out.setdefault("fitted", {b.name: dict(zip(b.labels, np.asarray(space.values(raw_np)[b.name]).tolist()))
                                  for b in space.trainable})
        return out

    def save_outputs(self, params, run_dir, provenance, metadata):
        from owjax.core.checkpoint import atomic_write_text
        from owjax.fitting.param_files import save_param_file
        from owjax.fitting.registry import Registry

        p = self.problem
        registry = Registry.for_model(p.model).with_fit(p.space, params, provenance)
        save_param_file(run_dir / "params.json", p.model, p.space, params, registry=registry.to_dict(),
                        metadata=dict(metadata))
        name = metadata.get("experiment", "")
        atomic_write_text(run_dir / "registry.md", f"# Component registry — {name}\n\n"
                          + registry.table(markdown=True) + "\n\n```\n" + registry.summary() + "\n```\n")
        if metadata.get("figures", True):
            registry.figure(run_dir / "registry.png", title=f"Component registry after {name}")

"""What a fitting experiment hands to the optimiser: a :class:`FitProblem`.

An experiment (``conf/experiment/NAME.yaml``, ``experiment.kind`` picks the class) turns its
configuration into a :class:`FitProblem`: the base model, the parameter space, the data (targets),
a pure function computing the named loss terms, their weights, and a host-side ``report`` that
computes the experiment's metrics and draws its figures once the fit is done. The optimiser loop
(:mod:`owjax.fitting.loop`) knows nothing else about the experiment.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from jaxtyping import Array

from owjax.fitting.params import ParameterSpace

__all__ = ["FitProblem", "AbstractExperiment", "section", "solver_from_config"]


@dataclass
class FitProblem:
    """Everything the optimiser needs.

    Attributes:
        model: base model (an equinox module; its float leaves are the defaults).
        space: the :class:`~owjax.fitting.params.ParameterSpace` (what is fitted, bounds, transforms).
        data: pytree of arrays the loss compares against (passed to ``terms``; not differentiated).
        terms: ``terms(model, data) -> {name: scalar}``, pure JAX, unweighted loss terms.
        weights: weight per term name (terms without a weight count with weight 1).
        data_description: what the data/target is (goes into the registry provenance).
        loss_description: the loss, in words (registry provenance).
        report: ``report(problem, raw_init, raw_final, run_dir, figures) -> metrics`` (host side).
        info: extra facts for ``metrics.json`` (network size, protocol …).
    """

    model: Any
    space: ParameterSpace
    data: Any
    terms: Callable[[Any, Any], dict[str, Array]]
    weights: Mapping[str, float]
    data_description: str
    loss_description: str
    report: Callable[..., dict]
    info: dict = field(default_factory=dict)


class AbstractExperiment(abc.ABC):
    """A kind of fitting experiment: config → :class:`FitProblem`."""

    kind: ClassVar[str]

    @abc.abstractmethod
    def build(self, cfg: Mapping, seed: int, run_dir: Path | None = None) -> FitProblem:
        """Build the problem from the experiment's config (plain dict) and the run seed."""


def section(cfg: Mapping, key: str, required: tuple[str, ...] = (), allowed: tuple[str, ...] | None = None) -> dict:
    """``cfg[key]`` as a dict, checking required and allowed keys with clear errors."""
    if key not in cfg or cfg[key] is None:
        raise ValueError(f"experiment config lacks the section {key!r}")
    d = dict(cfg[key])
    missing = [k for k in required if k not in d]
    if missing:
        raise ValueError(f"experiment config section {key!r} lacks {missing}")
    if allowed is not None:
        extra = sorted(set(d) - set(allowed))
        if extra:
            raise ValueError(f"experiment config section {key!r}: unknown key(s) {extra}; allowed: {sorted(allowed)}")
    return d


def solver_from_config(d: Mapping | str | None):
    """A :class:`owjax.core.solve.SolverConfig` from a preset name or mapping (default ``tsit5``)."""
    from owjax.core.solve import get_solver

    return get_solver(d if d is not None else "tsit5")

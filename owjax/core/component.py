"""The component protocol: what every simulated part of the worm declares, and how parts are coupled.

A **component** is a final equinox module (the network, the intestine, the body, a sensory
transducer, a prescribed drive …) that declares

* its state variables with units (:meth:`AbstractComponent.state_variables`) and
  :meth:`~AbstractComponent.initial_state`;
* a pure right-hand side :meth:`~AbstractComponent.vector_field` ``(t, state, inputs) -> d state/dt``,
  where ``inputs`` maps the names in :attr:`~AbstractComponent.input_names` to arrays (a missing
  input means zero / "not driven");
* named :meth:`~AbstractComponent.outputs` ``(t, state) -> {name: array}`` that other components
  may read through couplings (outputs depend on time and state only, never on inputs, so a
  composition has no algebraic loops);
* static event/jump times (:meth:`~AbstractComponent.jump_times`) that adaptive steps must land on;
* its own parameter metadata (:meth:`~AbstractComponent.parameter_info`): unit, physical bounds,
  what a row of each leaf is, and whether it may be fitted.

Time. Each component states the unit of its own ``t`` and of its derivatives with
:attr:`~AbstractComponent.time_unit_ms` (1.0: milliseconds, the neural core; 1000.0: seconds, the
intestine and the body). :func:`field_per_ms` turns any component's field into one in ms, which is
what :mod:`owjax.core.solve` and :class:`Composite` integrate.

A **coupling** (:class:`AbstractCoupling`) maps named outputs of a source component to one input
of a target component (int1 Ca → current into DVB/AVL; muscle Ca → body activation; body
curvature → proprioceptive current; arena → transducer → sensory current). A
:class:`Composite` is itself a component built from named components and couplings, so a worm is
a component like any other and is solved by the same :func:`owjax.core.solve.solve_ys`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PyTree

__all__ = [
    "StateVariable",
    "ParameterInfo",
    "AbstractComponent",
    "AbstractSource",
    "AbstractCoupling",
    "Composite",
    "field_per_ms",
    "FixedParameterError",
    "check_inputs",
    "resolve_path",
]

INF = float("inf")


class FixedParameterError(ValueError):
    """A fit asked to train a leaf its component declares fixed."""


@dataclass(frozen=True)
class StateVariable:
    """One state variable of a component.

    Attributes:
        name: key in the state dict.
        unit: physical unit (``mV``, ``nM``, ``uM``, ``mm``, ``rad``, ``1``).
        description: what it is, in words.
        rows: what one entry is (``cell``, ``gate``, ``synapse``, ``rod``…).
    """

    name: str
    unit: str
    description: str = ""
    rows: str = ""


@dataclass(frozen=True)
class ParameterInfo:
    """Static facts about one parameter leaf of a component.

    Attributes:
        path: attribute path in the component (``"channels.g_max_nS"``).
        unit: unit of the fitted value.
        bounds: physical bounds (lower, upper) in ``unit``; ``None`` when there is no sensible
            default (a fit must then give bounds).
        rows: what a row (entry) of the leaf is: ``cell``, ``channel``, ``graded``, ``segment`` …
        description: what the parameter is, in words.
        bounds_source: where the default bounds come from.
        trainable: ``False`` for leaves that are inputs or structure rather than parameters;
            fitting one is an error (:class:`FixedParameterError`).
    """

    path: str
    unit: str
    bounds: tuple[float, float] | None
    rows: str
    description: str
    bounds_source: str = "positivity"
    trainable: bool = True


class AbstractComponent(eqx.Module):
    """A simulated part of the worm (see the module docstring for the protocol).

    Subclasses are final equinox modules; parameters are float array leaves (what ``jax.grad``
    reaches), structure (indices, masks, names, event times) is integer/bool arrays or static
    fields.
    """

    #: unit of the component's own time, in ms (1.0: ms; 1000.0: s)
    time_unit_ms: ClassVar[float] = 1.0

    @abc.abstractmethod
    def initial_state(self) -> PyTree[Array]:
        """The initial state (a dict of arrays, keys as in :meth:`state_variables`)."""

    @abc.abstractmethod
    def vector_field(self, t: Float[ArrayLike, ""], state: PyTree[Array], inputs: Mapping[str, Array] | None = None) -> PyTree[Array]:
        """d state / dt in the component's time unit; pure (usable by diffrax, jit, vmap, grad)."""

    @abc.abstractmethod
    def outputs(self, t: Float[ArrayLike, ""], state: PyTree[Array]) -> dict[str, Array]:
        """Named quantities other components may read (depend on ``t`` and ``state`` only)."""

    @abc.abstractmethod
    def state_variables(self) -> dict[str, StateVariable]:
        """Every state variable with its unit."""

    @abc.abstractmethod
    def parameter_info(self) -> dict[str, ParameterInfo]:
        """Every float leaf with its unit, bounds, row kind and trainability."""

    @property
    def input_names(self) -> dict[str, str]:
        """Inputs the vector field reads: name → unit (default: none)."""
        return {}

    def jump_times(self) -> tuple[float, ...]:
        """Discontinuities of the vector field in the component's own time unit (default none)."""
        return ()

    @property
    def dtype(self):
        """Float dtype of the component's parameters (default: of its first float leaf)."""
        leaves = jax.tree_util.tree_leaves(eqx.filter(self, eqx.is_inexact_array))
        return leaves[0].dtype if leaves else jnp.result_type(float)

    def imex_split(self):
        """``(explicit, implicit)`` vector fields for IMEX solvers, or ``None`` if not supported."""
        return None

    def for_reverse_mode(self) -> "AbstractComponent":
        """A copy whose derivatives are tuned for reverse mode only (same values; forward mode may not
        work on it). Used by :mod:`owjax.core.discrete_adjoint` for its backward pass. Default: itself;
        :class:`~owjax.neural.network.NetworkModel` swaps in its hand-written reverse pass."""
        return self

    def field_and_decay(self, t: Float[ArrayLike, ""], state: PyTree[Array],
                        inputs: Mapping[str, Array] | None = None) -> tuple[PyTree[Array], PyTree[Array]]:
        """``(d state/dt, λ)``: the field and, per state entry, its own decay rate λ = −∂f_i/∂y_i.

        Used by the exponential integrator (:mod:`owjax.core.exponential`), which integrates the
        ``−λ·y`` part exactly. λ is in 1/(time unit); the default, λ = 0, makes that integrator
        Heun's method. Components whose variables relax towards targets set by other variables
        (gates, synapses, membrane potential) override it.
        """
        return self.vector_field(t, state, inputs), jax.tree_util.tree_map(jnp.zeros_like, state)


class AbstractSource(AbstractComponent):
    """A component without state whose outputs are a function of time only (a prescribed drive, a
    recorded or tabulated signal, a replayed solution). Subclasses implement :meth:`outputs` and
    :meth:`parameter_info`."""

    def initial_state(self) -> dict:
        return {}

    def vector_field(self, t, state, inputs=None) -> dict:
        return {}

    def state_variables(self) -> dict[str, StateVariable]:
        return {}


def check_inputs(component: AbstractComponent, inputs: Mapping[str, Any] | None, where: str = "") -> None:
    """Raise a clear error if ``inputs`` names anything the component does not read."""
    if not inputs:
        return
    bad = sorted(set(inputs) - set(component.input_names))
    if bad:
        name = where or type(component).__name__
        raise ValueError(f"{name}: unknown input(s) {bad}; it reads {sorted(component.input_names) or 'no inputs'}")


def resolve_path(obj: Any, path: str) -> Any:
    """The object at dotted ``path`` (attributes, or keys of dicts such as a composite's ``components``)."""
    for part in path.split("."):
        obj = obj[part] if isinstance(obj, Mapping) else getattr(obj, part)
    return obj


def field_per_ms(component: AbstractComponent):
    """``f(t_ms, state, inputs)`` = the component's field expressed per ms with ``t`` in ms."""
    scale = float(component.time_unit_ms)
    if scale == 1.0:
        return component.vector_field

    def f(t, state, inputs=None):
        d = component.vector_field(t / scale, state, inputs)
        return jax.tree_util.tree_map(lambda v: v / scale, d)

    return f


def field_and_decay_per_ms(component: AbstractComponent):
    """``(t_ms, state, inputs) -> (f, λ)`` of :meth:`AbstractComponent.field_and_decay`, both per ms."""
    scale = float(component.time_unit_ms)
    if scale == 1.0:
        return component.field_and_decay

    def fd(t, state, inputs=None):
        f, lam = component.field_and_decay(t / scale, state, inputs)
        return jax.tree_util.tree_map(lambda v: v / scale, (f, lam))

    return fd


class AbstractCoupling(eqx.Module):
    """Maps outputs of the component named ``source`` to the input ``target_input`` of ``target``.

    Subclasses implement :meth:`__call__` (pure JAX); their float leaves are parameters (e.g. a
    gain) that fits can reach like any other.
    """

    source: eqx.AbstractVar[str]
    target: eqx.AbstractVar[str]
    target_input: eqx.AbstractVar[str]

    @abc.abstractmethod
    def __call__(self, t: Float[ArrayLike, ""], source_outputs: Mapping[str, Array]) -> Array:
        """The value of the target's input (its unit) from the source's outputs at time ``t`` (ms)."""

    def parameter_info(self) -> dict[str, ParameterInfo]:
        """Metadata of the coupling's own float leaves (default: none)."""
        return {}


class Composite(AbstractComponent):
    """Components coupled into one component (time in ms; state ``{name: component state}``).

    Arguments:
        components: name → component (order kept).
        couplings: the couplings; values arriving at the same input are summed.

    External inputs of a composite are named ``"component.input"``.
    """

    components: dict[str, AbstractComponent]
    couplings: tuple[AbstractCoupling, ...]

    def __init__(self, components: Mapping[str, AbstractComponent], couplings=()):
        self.components = dict(components)
        self.couplings = tuple(couplings)
        for c in self.couplings:
            for role, name in (("source", c.source), ("target", c.target)):
                if name not in self.components:
                    raise ValueError(f"coupling {type(c).__name__}: {role} {name!r} is not a component; "
                                     f"components: {list(self.components)}")
            tgt = self.components[c.target]
            if c.target_input not in tgt.input_names:
                raise ValueError(f"coupling {type(c).__name__}: {c.target!r} has no input {c.target_input!r}; "
                                 f"its inputs: {sorted(tgt.input_names) or 'none'}")

    def __getitem__(self, name: str) -> AbstractComponent:
        return self.components[name]

    @property
    def input_names(self) -> dict[str, str]:
        return {f"{k}.{i}": u for k, c in self.components.items() for i, u in c.input_names.items()}

    def initial_state(self) -> dict:
        return {k: c.initial_state() for k, c in self.components.items()}

    def state_variables(self) -> dict[str, StateVariable]:
        return {f"{k}.{n}": v for k, c in self.components.items() for n, v in c.state_variables().items()}

    def parameter_info(self) -> dict[str, ParameterInfo]:
        out = {}
        for k, c in self.components.items():
            for p, info in c.parameter_info().items():
                path = f"components.{k}.{p}"
                out[path] = ParameterInfo(path, info.unit, info.bounds, info.rows, info.description,
                                          info.bounds_source, info.trainable)
        return out

    def jump_times(self) -> tuple[float, ...]:
        ts = set()
        for c in self.components.values():
            ts.update(float(t) * float(c.time_unit_ms) for t in c.jump_times())
        return tuple(sorted(ts))

    @property
    def dtype(self):
        for c in self.components.values():
            return c.dtype
        return jnp.result_type(float)

    def outputs(self, t, state) -> dict[str, Array]:
        out = {}
        for k, c in self.components.items():
            for n, v in c.outputs(t / c.time_unit_ms, state[k]).items():
                out[f"{k}.{n}"] = v
        return out

    def component_inputs(self, t, state, inputs: Mapping[str, Array] | None = None) -> dict[str, dict[str, Array]]:
        """Inputs of every component at ``t`` (ms): couplings plus external ``"name.input"`` values."""
        ins: dict[str, dict[str, Array]] = {k: {} for k in self.components}
        for key, v in (inputs or {}).items():
            comp, _, name = key.partition(".")
            ins[comp][name] = v
        cache: dict[str, dict[str, Array]] = {}
        for c in self.couplings:
            if c.source not in cache:
                src = self.components[c.source]
                cache[c.source] = src.outputs(t / src.time_unit_ms, state[c.source])
            val = c(t, cache[c.source])
            prev = ins[c.target].get(c.target_input)
            ins[c.target][c.target_input] = val if prev is None else prev + val
        return ins

    def vector_field(self, t, state, inputs=None) -> dict:
        ins = self.component_inputs(t, state, inputs)
        return {k: field_per_ms(c)(t, state[k], ins[k] or None) for k, c in self.components.items()}

    def field_and_decay(self, t, state, inputs=None) -> tuple[dict, dict]:
        """Each component's field and decay rates (per ms), with the couplings' inputs."""
        ins = self.component_inputs(t, state, inputs)
        both = {k: field_and_decay_per_ms(c)(t, state[k], ins[k] or None) for k, c in self.components.items()}
        return {k: v[0] for k, v in both.items()}, {k: v[1] for k, v in both.items()}

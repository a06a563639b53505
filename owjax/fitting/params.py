"""Fittable parameters: one YAML block per parameter group, bounded by explicit transforms.

A *parameter spec* is a mapping ``{block name: block}``; each block picks rows of one model leaf
(:mod:`owjax.fitting.leaves`), groups them, and says how the group values are fitted::

    parameters:
      k_slow_density:                  # block name (free text, used in files and tables)
        leaf: channels.g_max_nS        # model leaf (fitted in mS/cm² for conductances)
        select: {channel: k_slow, cells: neurons}
        groupby: class                 # global | class | cell | row (alias: connection)
        trainable: true
        init: null                     # null = model default; number; list; {scale: f};
                                       # {perturb: [lo, hi]} = default·(1 ± U(lo, hi)), random sign
        bounds: [0.0, 100.0]           # default: DD017's physical bounds of the leaf
        transform: sigmoid             # sigmoid | softplus | log | identity (default from bounds)
        penalty: {l2_to_init: 1e-3}    # optional: l2_to_init, l2_to_default (relative L2)

Grouping (``groupby``): ``global`` — one value for all selected rows of the same kind; ``class``
— one per neuron class (:func:`owjax.fitting.leaves.neuron_class`; for connections the pair
``PRE_CLASS->POST_CLASS``); ``cell`` — one per cell (the post-synaptic cell for connections);
``row`` / ``connection`` — every row on its own. Rows of different *kinds* (different channels,
gates, or excitatory vs inhibitory synapses) are never merged into one group.

Selection (``select``): ``cells`` (names, or ``neurons`` / ``muscles`` / ``all``), ``classes``,
``channel``, ``gate``, ``pre``, ``post`` (names or ``neurons`` / ``muscles``), ``kind``
(``exc`` / ``inh`` / channel id), ``rows`` (explicit row names). Lists or single values.

Transforms map an unconstrained number *u* to a value strictly inside the bounds:

==============  ===============================  ========================
name            value                            bounds
==============  ===============================  ========================
``sigmoid``     lo + (hi − lo)·σ(u)              both finite (default)
``softplus``    lo + softplus(u) / hi − softplus  one finite
``log``         lo + exp(u)                      lower finite, upper ∞
``identity``    u                                none
==============  ===============================  ========================

Errors (unknown leaf, key, class or cell, NaN, bounds outside the physical range, an ``init``
outside the bounds, a transform that cannot honour the bounds, overlapping blocks) are raised as
:class:`ParameterSpecError` when the space is built — before anything is compiled.

Parameter files (``params.json``, written by ``python -m owjax.fit``) store every fitted group and
every affected row with its value in the leaf's unit, plus the component registry;
:func:`owjax.fitting.param_files.apply_param_file` puts them into a model (``python -m owjax.simulate params=PATH``).
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from owjax.fitting.leaves import LeafRows, UnknownLeafError, get_leaf, leaf_rows, model_kind, neuron_class
from owjax.neural.spec import unknown_name_message

__all__ = [
    "ParameterSpecError",
    "ParameterBlockSpec",
    "ParameterBlock",
    "ParameterSpace",
    "parse_parameter_spec",
    "TRANSFORMS",
    "GROUPBY",
    "forward_transform",
    "inverse_transform",
    "PARAM_FILE_FORMAT",
]

log = logging.getLogger("owjax.fitting.params")

TRANSFORMS = ("sigmoid", "softplus", "log", "identity")
GROUPBY = ("global", "class", "cell", "row", "connection")
PARAM_FILE_FORMAT = "owjax-params/1"
_BLOCK_KEYS = (
    "leaf", "trainable", "init", "bounds", "transform", "groupby", "select", "penalty", "unit",
    "description", "replacement", "unphysical_ok",
)
_SELECT_KEYS = ("cells", "classes", "channel", "gate", "pre", "post", "kind", "rows")
_PENALTIES = ("l2_to_init", "l2_to_default")


class ParameterSpecError(ValueError):
    """A parameter spec (or parameter file) is malformed; the message says what and what is allowed."""


class FixedParameterError(ParameterSpecError):
    """A parameter block asks to fit a leaf its component declares fixed (``trainable=False``)."""


# ---------------------------------------------------------------------------- transforms
def _as_bound(x, which: str, block: str) -> float:
    if x is None:
        return -math.inf if which == "lower" else math.inf
    if isinstance(x, str) and x.strip().lower() in ("inf", "+inf", "-inf", "infinity", "-infinity"):
        return float(x)
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ParameterSpecError(f"block {block!r}: {which} bound {x!r} is not a number") from None
    if math.isnan(v):
        raise ParameterSpecError(f"block {block!r}: {which} bound is NaN")
    return v


def _default_transform(lo: float, hi: float) -> str:
    if math.isfinite(lo) and math.isfinite(hi):
        return "sigmoid"
    if math.isfinite(lo) or math.isfinite(hi):
        return "softplus"
    return "identity"


def _check_transform(t: str, lo: float, hi: float, block: str) -> None:
    if t not in TRANSFORMS:
        raise ParameterSpecError(f"block {block!r}: " + unknown_name_message("transform", t, TRANSFORMS))
    ok = {
        "sigmoid": math.isfinite(lo) and math.isfinite(hi),
        "softplus": math.isfinite(lo) != math.isfinite(hi),
        "log": math.isfinite(lo) and not math.isfinite(hi),
        "identity": not math.isfinite(lo) and not math.isfinite(hi),
    }[t]
    if not ok:
        need = {
            "sigmoid": "two finite bounds",
            "softplus": "exactly one finite bound",
            "log": "a finite lower bound and no upper bound",
            "identity": "no bounds (it could not keep the value inside them)",
        }[t]
        raise ParameterSpecError(
            f"block {block!r}: transform {t!r} needs {need}, but bounds are [{lo}, {hi}]. "
            f"The default for these bounds is {_default_transform(lo, hi)!r}."
        )


def forward_transform(u: Float[Array, " g"], transform: str, lo: float, hi: float) -> Float[Array, " g"]:
    """Unconstrained ``u`` → value inside ``(lo, hi)`` (see the module table)."""
    if transform == "sigmoid":
        return lo + (hi - lo) * jax.nn.sigmoid(u)
    if transform == "softplus":
        return lo + jax.nn.softplus(u) if math.isfinite(lo) else hi - jax.nn.softplus(u)
    if transform == "log":
        return lo + jnp.exp(u)
    if transform == "identity":
        return u
    raise ParameterSpecError(unknown_name_message("transform", transform, TRANSFORMS))


def inverse_transform(x, transform: str, lo: float, hi: float):
    """Value strictly inside ``(lo, hi)`` → unconstrained ``u``.

    NumPy in, NumPy (float64) out; JAX in, JAX out (differentiable, for changes of variables).
    """
    xp = np if isinstance(x, (np.ndarray, float, int, list, tuple)) else jnp
    x = xp.asarray(x, dtype=np.float64) if xp is np else x
    if transform == "sigmoid":
        p = (x - lo) / (hi - lo)
        return xp.log(p) - xp.log1p(-p)
    if transform == "softplus":
        y = x - lo if math.isfinite(lo) else hi - x
        return xp.where(y > 30.0, y, xp.log(xp.expm1(xp.minimum(y, 30.0))))
    if transform == "log":
        return xp.log(x - lo)
    if transform == "identity":
        return x
    raise ParameterSpecError(unknown_name_message("transform", transform, TRANSFORMS))


# ---------------------------------------------------------------------------- spec
@dataclass(frozen=True)
class ParameterBlockSpec:
    """One validated YAML block (see the module docstring); values are in the leaf's fitted unit."""

    name: str
    leaf: str
    trainable: bool = True
    init: Any = None
    bounds: tuple[float, float] | None = None
    transform: str | None = None
    groupby: str = "global"
    select: Mapping[str, Any] = field(default_factory=dict)
    penalty: Mapping[str, float] = field(default_factory=dict)
    unit: str | None = None
    description: str = ""
    replacement: str | None = None
    unphysical_ok: bool = False

    def to_dict(self) -> dict:
        return dict(
            leaf=self.leaf, trainable=self.trainable, init=self.init,
            bounds=None if self.bounds is None else list(self.bounds), transform=self.transform,
            groupby=self.groupby, select=dict(self.select), penalty=dict(self.penalty), unit=self.unit,
            description=self.description, replacement=self.replacement, unphysical_ok=self.unphysical_ok,
        )


def _plain(x):
    """OmegaConf containers → plain Python."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(x, (DictConfig, ListConfig)):
            return OmegaConf.to_container(x, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return x


def _check_finite_init(init, name: str):
    def bad(v):
        try:
            return not math.isfinite(float(v))
        except (TypeError, ValueError):
            return True

    if init is None:
        return
    if isinstance(init, Mapping):
        if set(init) == {"scale"}:
            if bad(init["scale"]) or float(init["scale"]) <= 0:
                raise ParameterSpecError(f"block {name!r}: init.scale must be a positive finite number, got {init}")
            return
        if set(init) == {"perturb"}:
            p = init["perturb"]
            if not (isinstance(p, (list, tuple)) and len(p) == 2) or any(bad(v) for v in p) or not (
                0 <= float(p[0]) <= float(p[1]) < 1
            ):
                raise ParameterSpecError(
                    f"block {name!r}: init.perturb must be [lo, hi] with 0 <= lo <= hi < 1 "
                    f"(relative perturbation), got {p!r}"
                )
            return
        raise ParameterSpecError(
            f"block {name!r}: init {init!r} not understood; allowed: null (model default), a number, a "
            "list (one per group), {scale: f} or {perturb: [lo, hi]}"
        )
    values = init if isinstance(init, (list, tuple)) else [init]
    for v in values:
        if isinstance(v, bool) or bad(v):
            raise ParameterSpecError(f"block {name!r}: init value {v!r} is not a finite number (NaN/Inf/text)")


def parse_parameter_spec(blocks: Mapping[str, Any]) -> list[ParameterBlockSpec]:
    """Validate a ``{block name: block}`` mapping (YAML / Hydra config) into block specs.

    Raises:
        ParameterSpecError: a block is not a mapping, has unknown keys, a bad ``groupby``,
            ``transform``, ``select`` key, ``penalty`` or a NaN.
    """
    blocks = _plain(blocks)
    if blocks is None:
        return []
    if not isinstance(blocks, Mapping):
        raise ParameterSpecError(f"the parameter spec must be a mapping of blocks, got {type(blocks).__name__}")
    out = []
    for name, b in blocks.items():
        b = _plain(b)
        if not isinstance(b, Mapping):
            raise ParameterSpecError(f"parameter block {name!r} must be a mapping, got {b!r}")
        unknown = sorted(set(b) - set(_BLOCK_KEYS))
        if unknown:
            raise ParameterSpecError(f"parameter block {name!r}: unknown key(s) {unknown}; allowed: {list(_BLOCK_KEYS)}")
        if "leaf" not in b:
            raise ParameterSpecError(f"parameter block {name!r} needs a 'leaf' (e.g. channels.g_max_nS)")
        groupby = str(b.get("groupby", "global"))
        if groupby not in GROUPBY:
            raise ParameterSpecError(f"block {name!r}: " + unknown_name_message("groupby", groupby, GROUPBY))
        bounds = b.get("bounds")
        if bounds is not None:
            if not (isinstance(bounds, (list, tuple)) and len(bounds) == 2):
                raise ParameterSpecError(f"block {name!r}: bounds must be [lower, upper], got {bounds!r}")
            lo, hi = _as_bound(bounds[0], "lower", name), _as_bound(bounds[1], "upper", name)
            if not lo < hi:
                raise ParameterSpecError(f"block {name!r}: lower bound {lo} must be < upper bound {hi}")
            bounds = (lo, hi)
        tr = b.get("transform")
        if tr is not None and tr not in TRANSFORMS:
            raise ParameterSpecError(f"block {name!r}: " + unknown_name_message("transform", str(tr), TRANSFORMS))
        sel = b.get("select") or {}
        if not isinstance(sel, Mapping):
            raise ParameterSpecError(f"block {name!r}: select must be a mapping, got {sel!r}")
        bad_sel = sorted(set(sel) - set(_SELECT_KEYS))
        if bad_sel:
            raise ParameterSpecError(f"block {name!r}: unknown select key(s) {bad_sel}; allowed: {list(_SELECT_KEYS)}")
        pen = b.get("penalty") or {}
        if not isinstance(pen, Mapping):
            raise ParameterSpecError(f"block {name!r}: penalty must be a mapping, got {pen!r}")
        for k, w in pen.items():
            if k not in _PENALTIES:
                raise ParameterSpecError(f"block {name!r}: " + unknown_name_message("penalty", k, _PENALTIES))
            try:
                wf = float(w)
            except (TypeError, ValueError):
                wf = float("nan")
            if not (math.isfinite(wf) and wf >= 0):
                raise ParameterSpecError(f"block {name!r}: penalty {k} weight must be finite and >= 0, got {w!r}")
        _check_finite_init(b.get("init"), name)
        out.append(
            ParameterBlockSpec(
                name=str(name), leaf=str(b["leaf"]), trainable=bool(b.get("trainable", True)),
                init=b.get("init"), bounds=bounds, transform=tr, groupby=groupby, select=dict(sel),
                penalty={k: float(v) for k, v in pen.items()}, unit=b.get("unit"),
                description=str(b.get("description") or ""), replacement=b.get("replacement"),
                unphysical_ok=bool(b.get("unphysical_ok", False)),
            )
        )
    return out


# ---------------------------------------------------------------------------- resolved blocks
@dataclass(frozen=True, eq=False)
class ParameterBlock:
    """A block resolved against a model: which rows, which groups, bounds, transform, start values.

    Attributes:
        spec: the block spec.
        rows: the leaf's :class:`~owjax.fitting.leaves.LeafRows`.
        row_index: selected rows (indices into the flattened leaf), shape (R,).
        group_of_row: group of each selected row, shape (R,), values in ``range(n_groups)``.
        labels: group labels (``AVB/k_slow``, ``DA9->MDL07`` …).
        lower, upper: bounds in the fitted unit.
        transform: the transform in use.
        default: model value per group (fitted unit).
        init: start value per group (fitted unit).
    """

    spec: ParameterBlockSpec
    rows: LeafRows
    row_index: np.ndarray
    group_of_row: np.ndarray
    labels: tuple[str, ...]
    lower: float
    upper: float
    transform: str
    default: np.ndarray
    init: np.ndarray

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def n_groups(self) -> int:
        return len(self.labels)

    @property
    def unit(self) -> str:
        return self.rows.info.unit

    def value(self, u: Float[Array, " g"]) -> Float[Array, " g"]:
        """Group values (fitted unit) from the unconstrained ``u``."""
        return forward_transform(u, self.transform, self.lower, self.upper)

    def init_raw(self) -> np.ndarray:
        return inverse_transform(self.init, self.transform, self.lower, self.upper)


def _match(values, universe: tuple[str, ...], what: str, block: str, special: Mapping[str, set] | None = None):
    """Selection values (str or list) → set of accepted names; unknown names raise."""
    vals = values if isinstance(values, (list, tuple)) else [values]
    out: set[str] = set()
    valid = sorted(set(universe))
    for v in vals:
        v = str(v)
        if special and v in special:
            out |= special[v]
        elif v in set(universe):
            out.add(v)
        else:
            choices = list(special or {}) + valid
            raise ParameterSpecError(f"block {block!r}: select.{what}: " + unknown_name_message(what, v, choices))
    return out


def _select_rows(rows: LeafRows, sel: Mapping[str, Any], block: str) -> np.ndarray:
    n = len(rows)
    keep = np.ones(n, dtype=bool)
    cells_all = tuple(c for c in rows.cell if c)
    from owjax.neural.spec import is_body_wall_muscle

    def cellset(universe):
        return {
            "all": set(universe),
            "neurons": {c for c in universe if not is_body_wall_muscle(c)},
            "muscles": {c for c in universe if is_body_wall_muscle(c)},
        }

    for key, val in sel.items():
        if key == "cells":
            acc = _match(val, cells_all, "cell", block, cellset(cells_all))
            keep &= np.array([c in acc for c in rows.cell])
        elif key == "post":
            acc = _match(val, cells_all, "post cell", block, cellset(cells_all))
            keep &= np.array([c in acc for c in rows.cell])
        elif key == "pre":
            pres = tuple(p for p in rows.pre if p)
            if not pres:
                raise ParameterSpecError(f"block {block!r}: select.pre applies to connections only, not {rows.info.path}")
            acc = _match(val, pres, "pre cell", block, cellset(pres))
            keep &= np.array([p in acc for p in rows.pre])
        elif key == "classes":
            classes = tuple(neuron_class(c) for c in rows.cell if c)
            acc = _match(val, classes, "class", block)
            keep &= np.array([bool(c) and neuron_class(c) in acc for c in rows.cell])
        elif key in ("channel", "gate", "kind"):
            if key == "channel":
                universe = tuple(k.split("/")[0] for k in rows.kind)
                keep &= np.array([k.split("/")[0] in _match(val, universe, "channel", block) for k in rows.kind])
            elif key == "gate":
                if rows.info.rows != "gate":
                    raise ParameterSpecError(f"block {block!r}: select.gate applies to gates.* leaves only")
                universe = tuple(k.split("/")[-1] for k in rows.kind)
                keep &= np.array([k.split("/")[-1] in _match(val, universe, "gate", block) for k in rows.kind])
            else:
                keep &= np.array([k in _match(val, rows.kind, "kind", block) for k in rows.kind])
        elif key == "rows":
            acc = _match(val, rows.names, "row", block)
            keep &= np.array([r in acc for r in rows.names])
    idx = np.nonzero(keep)[0]
    if len(idx) == 0:
        raise ParameterSpecError(f"block {block!r}: select {dict(sel)} matches no row of {rows.info.path}")
    return idx


def _group_key(rows: LeafRows, i: int, groupby: str) -> str:
    kind = rows.kind[i]
    tail = "" if kind in ("cell", "value", "pulse") else kind
    connection = bool(rows.pre[i])
    if groupby == "global":
        head = "all"
    elif groupby == "class":
        head = rows.cls(i)
    elif groupby == "cell":
        head = rows.cell[i] or rows.names[i]
        if connection:
            head = f"->{head}"
    else:  # row / connection
        return rows.names[i]
    if connection and tail in ("exc", "inh", "gap"):
        return f"{head}/{tail}" if groupby != "global" else tail
    return f"{head}/{tail}" if tail else head


def _in_open(x, lo, hi) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (x > lo) & (x < hi) if (math.isfinite(lo) or math.isfinite(hi)) else np.isfinite(x)


def _resolve_block(model, spec: ParameterBlockSpec, seed: int) -> ParameterBlock:
    try:
        rows = leaf_rows(model, spec.leaf)
    except UnknownLeafError as e:
        raise ParameterSpecError(f"block {spec.name!r}: {e}") from None
    info = rows.info
    if not info.trainable and spec.trainable:
        raise FixedParameterError(
            f"block {spec.name!r}: {spec.leaf} ({info.description}) is declared fixed by "
            f"{type(model).__name__}; it cannot be fitted"
        )
    if spec.unit is not None and spec.unit != info.unit:
        raise ParameterSpecError(
            f"block {spec.name!r}: unit {spec.unit!r} given, but {spec.leaf} is fitted in {info.unit!r}"
        )
    if spec.groupby == "connection" and not any(rows.pre):
        raise ParameterSpecError(f"block {spec.name!r}: groupby 'connection' needs a connection leaf "
                                 f"(graded.*, graded2.*, gaps.*), not {spec.leaf}; use 'row'")
    idx = _select_rows(rows, spec.select, spec.name)
    keys = [_group_key(rows, int(i), spec.groupby) for i in idx]
    labels = tuple(dict.fromkeys(keys))
    pos = {k: j for j, k in enumerate(labels)}
    group_of_row = np.array([pos[k] for k in keys], dtype=np.int64)

    # bounds
    phys = info.bounds
    if spec.bounds is None:
        if phys is None:
            raise ParameterSpecError(
                f"block {spec.name!r}: {spec.leaf} ({info.description}) has no default bounds; "
                "give bounds: [lower, upper]"
            )
        lo, hi = phys
    else:
        lo, hi = spec.bounds
        if phys is not None and not spec.unphysical_ok and (lo < phys[0] or hi > phys[1]):
            raise ParameterSpecError(
                f"block {spec.name!r}: bounds [{lo}, {hi}] {info.unit} reach outside the physical range "
                f"[{phys[0]}, {phys[1]}] of {spec.leaf} ({info.bounds_source}); narrow them, or set "
                "unphysical_ok: true to allow it"
            )
    transform = spec.transform or _default_transform(lo, hi)
    _check_transform(transform, lo, hi, spec.name)

    # model default per group (fitted unit)
    leaf = np.asarray(get_leaf(model, spec.leaf), dtype=np.float64).reshape(-1)
    row_vals = leaf[idx] / rows.scale[idx]
    if not np.all(np.isfinite(row_vals)):
        raise ParameterSpecError(f"block {spec.name!r}: the model's {spec.leaf} contains NaN/Inf")
    ng = len(labels)
    default = np.zeros(ng)
    for g in range(ng):
        v = row_vals[group_of_row == g]
        default[g] = v.mean()
        if np.ptp(v) > 1e-9 * max(1.0, abs(v.mean())):
            log.warning(
                "block %s, group %s: the %d rows have different model values (%.4g … %.4g %s); the "
                "group starts from their mean", spec.name, labels[g], len(v), v.min(), v.max(), info.unit,
            )

    # init
    init = spec.init
    if init is None:
        start = default.copy()
        what = "model default"
    elif isinstance(init, Mapping) and "scale" in init:
        start = default * float(init["scale"])
        what = f"model default × {init['scale']}"
    elif isinstance(init, Mapping) and "perturb" in init:
        lo_p, hi_p = (float(v) for v in init["perturb"])
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(spec.name.encode())])
        sign = rng.choice([-1.0, 1.0], size=ng)
        mag = rng.uniform(lo_p, hi_p, size=ng)
        start = default * (1.0 + sign * mag)
        what = f"model default × (1 ± U({lo_p}, {hi_p})), seed {seed}"
    elif isinstance(init, (list, tuple)):
        if len(init) != ng:
            raise ParameterSpecError(
                f"block {spec.name!r}: init has {len(init)} values but the block has {ng} groups {list(labels)[:10]}"
            )
        start = np.asarray(init, dtype=np.float64)
        what = "given"
    else:
        start = np.full(ng, float(init))
        what = "given"
    if not np.all(np.isfinite(start)):
        raise ParameterSpecError(f"block {spec.name!r}: init contains NaN/Inf")
    inside = _in_open(start, lo, hi)
    if not np.all(inside):
        bad = [f"{labels[g]}={start[g]:.6g}" for g in np.nonzero(~inside)[0][:8]]
        raise ParameterSpecError(
            f"block {spec.name!r}: init ({what}) outside the bounds ({lo}, {hi}) {info.unit} of {spec.leaf} "
            f"(the {transform} transform keeps values strictly inside): {', '.join(bad)}"
        )
    return ParameterBlock(spec, rows, idx, group_of_row, labels, float(lo), float(hi), transform, default, start)


class ParameterSpace:
    """The fittable parameters of one model: resolved blocks and the maps between spaces.

    Three spaces: *raw* (unconstrained, what the optimiser moves: ``{block: (n_groups,)}`` for
    trainable blocks), *value* (group values in the fitted unit, inside the bounds) and the
    *model* (leaf arrays). Non-trainable blocks with an ``init`` are applied as fixed values.

    Arguments:
        model: the model the blocks refer to (its leaves give the defaults).
        spec: ``{block name: block}`` mapping (YAML / Hydra) or a list of :class:`ParameterBlockSpec`.
        seed: seed of ``init: {perturb: …}`` draws.

    Raises:
        ParameterSpecError: see the module docstring; raised here, before anything is compiled.
    """

    def __init__(self, model, spec, seed: int = 0):
        specs = spec if isinstance(spec, list) and all(isinstance(s, ParameterBlockSpec) for s in spec) else (
            parse_parameter_spec(spec)
        )
        if not specs:
            raise ParameterSpecError("the parameter spec is empty: give at least one block")
        self.model_kind = model_kind(model)
        self.seed = int(seed)
        self.blocks: tuple[ParameterBlock, ...] = tuple(_resolve_block(model, s, seed) for s in specs)
        seen: dict[str, dict[int, str]] = {}
        for b in self.blocks:
            used = seen.setdefault(b.spec.leaf, {})
            clash = [int(i) for i in b.row_index if int(i) in used]
            if clash:
                raise ParameterSpecError(
                    f"blocks {used[clash[0]]!r} and {b.name!r} both set {b.spec.leaf} rows "
                    f"{[b.rows.names[i] for i in clash[:5]]}; make their selections disjoint"
                )
            used.update({int(i): b.name for i in b.row_index})
        if not any(b.spec.trainable for b in self.blocks):
            log.warning("no trainable parameter block: the fit has nothing to move")

    # ----------------------------------------------------------------- views
    @property
    def trainable(self) -> tuple[ParameterBlock, ...]:
        return tuple(b for b in self.blocks if b.spec.trainable)

    def block(self, name: str) -> ParameterBlock:
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(unknown_name_message("parameter block", name, [b.name for b in self.blocks]))

    @property
    def n_trainable(self) -> int:
        return sum(b.n_groups for b in self.trainable)

    def init_raw(self, dtype=jnp.float64) -> dict[str, Array]:
        """Unconstrained start values ``{block: (n_groups,)}`` of the trainable blocks."""
        return {b.name: jnp.asarray(b.init_raw(), dtype=dtype) for b in self.trainable}

    def values(self, raw: Mapping[str, Array]) -> dict[str, Array]:
        """Group values (fitted units) of every block; fixed blocks give their ``init``."""
        out = {}
        for b in self.blocks:
            out[b.name] = b.value(raw[b.name]) if b.spec.trainable else jnp.asarray(b.init)
        return out

    def raw_from_values(self, values: Mapping[str, Any]) -> dict[str, Array]:
        """Inverse of :meth:`values` for the trainable blocks (values must lie inside the bounds)."""
        out = {}
        for b in self.trainable:
            v = np.asarray(values[b.name], dtype=np.float64)
            if not np.all(_in_open(v, b.lower, b.upper)):
                raise ParameterSpecError(f"block {b.name!r}: values outside ({b.lower}, {b.upper})")
            out[b.name] = jnp.asarray(inverse_transform(v, b.transform, b.lower, b.upper))
        return out

    def apply(self, model, raw: Mapping[str, Array]):
        """``model`` with every block's rows set from ``raw`` (jit/grad safe)."""
        vals = self.values(raw)
        by_leaf: dict[str, list[ParameterBlock]] = {}
        for b in self.blocks:
            by_leaf.setdefault(b.spec.leaf, []).append(b)
        for path, blocks in by_leaf.items():
            leaf = get_leaf(model, path)
            flat = leaf.reshape(-1)
            for b in blocks:
                v = jnp.asarray(vals[b.name], dtype=flat.dtype)
                scale = jnp.asarray(b.rows.scale[b.row_index], dtype=flat.dtype)
                flat = flat.at[jnp.asarray(b.row_index)].set(v[jnp.asarray(b.group_of_row)] * scale)
            model = eqx.tree_at(lambda m, p=path: get_leaf(m, p), model, flat.reshape(leaf.shape))
        return model

    def penalties(self, raw: Mapping[str, Array]) -> dict[str, Array]:
        """Relative L2 penalties ``w · mean(((x − x_ref)/|x_ref|)²)`` per block and kind."""
        vals = self.values(raw)
        out = {}
        for b in self.trainable:
            for kind, w in b.spec.penalty.items():
                if w == 0:
                    continue
                ref = b.init if kind == "l2_to_init" else b.default
                scale = np.where(np.abs(ref) > 0, np.abs(ref), 1.0)
                out[f"{kind}/{b.name}"] = w * jnp.mean(((vals[b.name] - ref) / scale) ** 2)
        return out

    def in_bounds(self, raw: Mapping[str, Array]) -> dict[str, bool]:
        """Whether every group value of each block lies within its (closed) bounds."""
        vals = self.values(raw)
        return {
            b.name: bool(np.all((np.asarray(vals[b.name]) >= b.lower) & (np.asarray(vals[b.name]) <= b.upper)))
            for b in self.blocks
        }

    def describe(self) -> str:
        """One line per block (for logs)."""
        lines = []
        for b in self.blocks:
            lines.append(
                f"{b.name}: {b.spec.leaf} [{b.unit}], {len(b.row_index)} rows in {b.n_groups} groups "
                f"(groupby {b.spec.groupby}), bounds ({b.lower:g}, {b.upper:g}), {b.transform}, "
                f"{'trainable' if b.spec.trainable else 'fixed'}"
            )
        return "\n".join(lines)

    def table(self, raw: Mapping[str, Array]) -> list[dict]:
        """Per group: block, label, unit, default, init, value, bounds (for reports)."""
        vals = self.values(raw)
        out = []
        for b in self.blocks:
            v = np.asarray(vals[b.name], dtype=np.float64)
            for g, label in enumerate(b.labels):
                out.append(dict(
                    block=b.name, label=label, leaf=b.spec.leaf, unit=b.unit, default=float(b.default[g]),
                    init=float(b.init[g]), value=float(v[g]), lower=b.lower, upper=b.upper,
                    trainable=b.spec.trainable, n_rows=int(np.sum(b.group_of_row == g)),
                ))
        return out

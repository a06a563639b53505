"""What a model's parameter arrays *are*: rows, cells, neuron classes, units and physical bounds.

The fitting framework (:mod:`owjax.fitting.params`) and the component registry (:mod:`owjax.fitting.registry`)
both need to know, for every float array ("leaf") of a model, what each of its entries means:
which cell or connection it belongs to, which channel, which neuron class, which subsystem, its
unit, and the physically plausible range DD017 asks fitted values to stay in. This module is that
catalogue. It knows :class:`~owjax.neural.network.NetworkModel` and the intestine
(:class:`~owjax.organs.intestine.AbstractIntestine`); any other equinox model gets a generic catalogue
(every float array, no default bounds).

Leaves are named by their attribute path, e.g. ``"channels.g_max_nS"`` or ``"a2"``.

Neuron classes
--------------
:func:`neuron_class` maps a cell name to its class with three rules, applied in order:

1. strip trailing digits when at least two characters remain (``DA9`` → ``DA``, ``AS11`` → ``AS``,
   ``MDL07`` → ``MDL``);
2. strip one trailing ``L``/``R`` (left/right) when at least two characters remain, except in the
   unpaired neurons ``AVL``, ``PVR``, ``RIR``, ``AQR``, ``PQR``, whose last letter is part of the
   name (``AVAL`` → ``AVA``, ``I2L`` → ``I2``, ``MCR`` → ``MC``, ``MDL`` → ``MD``);
3. strip one trailing ``D``/``V`` (dorsal/ventral) when at least three characters remain
   (``SMDDL`` → ``SMDD`` → ``SMD``, ``IL1VR`` → ``IL1``, ``RMED`` → ``RME``; but ``AVDL`` →
   ``AVD`` and ``RID`` stay, since ``AV``/``RI`` would be too short).

On the 302 hermaphrodite neurons this gives White et al.'s 118 classes (checked in the tests).
Body-wall muscles fall into two classes, dorsal ``MD`` and ventral ``MV`` (``MDL07`` → ``MD``).

Conductances are fitted as densities
------------------------------------
``channels.g_max_nS`` holds the total conductance of a channel on a cell (nS), but DD017's bound
is on the *density*, 0 < g < 100 mS/cm². The catalogue therefore exposes this leaf in mS/cm²:
each row carries a ``scale`` (nS per mS/cm² = 0.01 × membrane area in µm²), and a fitted density
``g`` sets ``g_max_nS = g × scale``. All other leaves are fitted in their own unit (scale 1).
"""

from __future__ import annotations

import math
import re
import dataclasses
from dataclasses import dataclass

import equinox as eqx
import jax
import numpy as np

from owjax.core.component import ParameterInfo
from owjax.neural.spec import is_body_wall_muscle, unknown_name_message

__all__ = [
    "LeafInfo",
    "LeafRows",
    "neuron_class",
    "model_kind",
    "leaf_catalogue",
    "leaf_rows",
    "get_leaf",
    "SUBSYSTEMS",
    "UnknownLeafError",
]

INF = math.inf

#: Subsystems a parameter can belong to (registry figure order).
SUBSYSTEMS = ("neurons", "muscles", "synapses", "gap_junctions", "intestine", "stimuli")


class UnknownLeafError(KeyError):
    """A parameter group names a leaf the model does not have."""

    def __str__(self) -> str:
        return str(self.args[0])


#: Static facts about one parameter leaf (declared by each component; see
#: :meth:`owjax.core.component.AbstractComponent.parameter_info`).
LeafInfo = ParameterInfo


# ---------------------------------------------------------------------------- classes
_DIGITS = re.compile(r"\d+$")
#: unpaired neurons whose name ends in L or R
_UNPAIRED_LR = frozenset({"AVL", "PVR", "RIR", "AQR", "PQR"})


def neuron_class(cell: str) -> str:
    """The class of a cell (``AVAL`` → ``AVA``, ``DA9`` → ``DA``, ``MDL07`` → ``MD``).

    See the module docstring for the three rules.

    Arguments:
        cell: cell name as in c302 / the connectome.

    Returns:
        The class name.
    """
    c = cell
    stripped = _DIGITS.sub("", c)
    if len(stripped) >= 2 and stripped != c:
        c = stripped
    if len(c) >= 3 and c[-1] in "LR" and c not in _UNPAIRED_LR:
        c = c[:-1]
    if len(c) >= 4 and c[-1] in "DV":
        c = c[:-1]
    return c


# ---------------------------------------------------------------------------- models
def model_kind(model) -> str:
    """``"network"`` for :class:`~owjax.neural.network.NetworkModel`, ``"intestine"`` for the intestine,
    else ``"generic"``."""
    from owjax.neural.network import NetworkModel

    if isinstance(model, NetworkModel):
        return "network"
    try:
        from owjax.organs.intestine import AbstractIntestine

        if isinstance(model, AbstractIntestine):
            return "intestine"
    except ImportError:  # pragma: no cover
        pass
    return "generic"


def get_leaf(model, path: str):
    """The array at ``path`` of ``model`` (attributes, or dict keys of a composite's components;
    raises :class:`UnknownLeafError`)."""
    obj = model
    for part in path.split("."):
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif not isinstance(obj, dict) and hasattr(obj, part):
            obj = getattr(obj, part)
        else:
            valid = list(leaf_catalogue(model))
            raise UnknownLeafError(f"{type(model).__name__}: " + unknown_name_message("parameter", path, valid))
    return obj


def _locate(model, path: str):
    """``(component, sub_path)``: the innermost sub-component of ``model`` holding leaf ``path``."""
    from owjax.core.component import AbstractComponent

    parts = path.split(".")
    obj = model
    for i, part in enumerate(parts[:-1]):
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part, None)
        if obj is None:
            break
        if isinstance(obj, AbstractComponent):
            inner, sub = _locate(obj, ".".join(parts[i + 1:]))
            return inner, sub
    return model, path


def float_leaf_paths(model) -> list[str]:
    leaves = jax.tree_util.tree_flatten_with_path(eqx.filter(model, eqx.is_inexact_array))[0]
    out = []
    for p, _ in leaves:
        names = []
        for k in p:
            if isinstance(k, jax.tree_util.GetAttrKey):
                names.append(k.name)
            else:  # not a plain attribute path (lists/dicts): skip
                names = None
                break
        if names:
            out.append(".".join(names))
    return out


def leaf_catalogue(model) -> dict[str, LeafInfo]:
    """Every float leaf of ``model`` with its unit, default bounds, row kind and trainability.

    Components declare this themselves (:meth:`~owjax.core.component.AbstractComponent.parameter_info`);
    any other equinox module gets a generic entry per float leaf (no unit, no default bounds).
    """
    from owjax.core.component import AbstractComponent

    if isinstance(model, AbstractComponent):
        return dict(model.parameter_info())
    return {path: LeafInfo(path, "?", None, "generic", path, "") for path in float_leaf_paths(model)}


# ---------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class LeafRows:
    """What every entry ("row") of one leaf means.

    Attributes:
        info: the :class:`LeafInfo`.
        names: row names (``"AVAL"``, ``"AVAL/k_slow"``, ``"AVAL/k_slow/n"``, ``"AVAL->DA1"``).
        cell: the cell of each row (post-synaptic cell for connections).
        pre: pre-synaptic cell (connections), else ``""``.
        kind: the row's type within the leaf: channel id (``k_slow``), ``channel/gate``,
            ``exc``/``inh`` for chemical synapses, ``gap``, ``cell``…; rows of different kinds are
            never grouped together.
        subsystem: ``neurons``, ``muscles``, ``synapses``, ``gap_junctions``, ``intestine`` or
            ``stimuli`` per row.
        scale: leaf value per fitted unit (0.01 × area for channel conductances, else 1).
        shape: shape of the leaf array (rows are its flattened entries).
    """

    info: LeafInfo
    names: tuple[str, ...]
    cell: tuple[str, ...]
    pre: tuple[str, ...]
    kind: tuple[str, ...]
    subsystem: tuple[str, ...]
    scale: np.ndarray
    shape: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.names)

    def cls(self, i: int) -> str:
        """Neuron class of row ``i`` (``PRE_CLASS->POST_CLASS`` for connections)."""
        if self.pre[i]:
            return f"{neuron_class(self.pre[i])}->{neuron_class(self.cell[i])}"
        return neuron_class(self.cell[i]) if self.cell[i] else self.names[i]


def _cell_sub(cell: str) -> str:
    return "muscles" if is_body_wall_muscle(cell) else "neurons"


def leaf_rows(model, path: str) -> LeafRows:
    """The :class:`LeafRows` of leaf ``path`` of ``model``.

    Raises:
        UnknownLeafError: ``path`` is not a float leaf of the model (the message lists them).
    """
    cat = leaf_catalogue(model)
    if path not in cat:
        raise UnknownLeafError(f"{type(model).__name__}: " + unknown_name_message("parameter", path, list(cat)))
    info = cat[path]
    inner, sub = _locate(model, path)
    if inner is not model:  # a leaf of a sub-component (e.g. the network inside a worm)
        return dataclasses.replace(leaf_rows(inner, sub), info=info)
    arr = np.asarray(get_leaf(model, path))
    n = arr.size
    if info.rows in ("intestine", "generic"):
        if arr.ndim == 0:
            names = (path,)
            cells = ("",)
        else:
            n_cells = getattr(model, "n_cells", None)
            cn = tuple(model.names) if hasattr(model, "names") else None
            if cn is not None and n == n_cells:
                names = cells = cn
            elif cn is not None and n == n_cells - 1:
                names = tuple(f"{cn[i]}-{cn[i + 1]}" for i in range(n))
                cells = names
            else:
                names = tuple(f"{path}[{i}]" for i in range(n))
                cells = ("",) * n
        sub = "intestine" if info.rows == "intestine" else "generic"
        return LeafRows(info, names, tuple(cells), ("",) * n, ("value",) * n, (sub,) * n, np.ones(n), arr.shape)

    cn = model.cell_names
    group = path.split(".")[0]
    ones = np.ones(n)
    if group == "membranes":
        cells = tuple(cn)
        return LeafRows(info, cells, cells, ("",) * n, ("cell",) * n, tuple(map(_cell_sub, cells)), ones, arr.shape)
    if group == "channels":
        names = tuple(model.channel_names)
        cells = tuple(x.split("/")[0] for x in names)
        kinds = tuple(x.split("/", 1)[1] for x in names)
        scale = ones
        if path == "channels.g_max_nS":
            area = np.asarray(model.membranes.area_um2, dtype=np.float64)
            scale = 0.01 * area[np.asarray(model.channels.cell)]  # nS per mS/cm²
        return LeafRows(info, names, cells, ("",) * n, kinds, tuple(map(_cell_sub, cells)), scale, arr.shape)
    if group == "gates":
        names = tuple(model.gate_names)
        cells = tuple(x.split("/")[0] for x in names)
        kinds = tuple(x.split("/", 1)[1] for x in names)
        return LeafRows(info, names, cells, ("",) * n, kinds, tuple(map(_cell_sub, cells)), ones, arr.shape)
    if group == "ca_gates":
        h_of = np.asarray(model.channels.h_gate)
        names = []
        for i in range(n):
            rows = np.nonzero(h_of == i)[0]
            names.append(f"{model.channel_names[rows[0]]}/h" if len(rows) else f"{cn[int(model.ca_gates.cell[i])]}/h")
        names = tuple(names)
        cells = tuple(x.split("/")[0] for x in names)
        kinds = tuple(x.split("/", 1)[1] for x in names)
        return LeafRows(info, names, cells, ("",) * n, kinds, tuple(map(_cell_sub, cells)), ones, arr.shape)
    if group in ("graded", "graded2", "gaps"):
        mod = getattr(model, group)
        names = tuple({"graded": model.graded_names, "graded2": model.graded2_names, "gaps": model.gap_names}[group])
        pre = tuple(cn[int(i)] for i in np.asarray(mod.pre))
        post = tuple(cn[int(i)] for i in np.asarray(mod.post))
        if group == "gaps":
            kinds = ("gap",) * n
            subs = ("gap_junctions",) * n
        else:
            erev = np.asarray(mod.erev_mV)
            kinds = tuple("inh" if e < -40.0 else "exc" for e in erev)
            subs = ("synapses",) * n
        return LeafRows(info, names, post, pre, kinds, subs, ones, arr.shape)
    if group == "stimuli":
        cells = tuple(cn[int(i)] for i in np.asarray(model.stimuli.cell))
        names = tuple(f"{c}/pulse{i}" for i, c in enumerate(cells))
        return LeafRows(info, names, cells, ("",) * n, ("pulse",) * n, ("stimuli",) * n, ones, arr.shape)
    raise UnknownLeafError(f"no row description for leaf {path!r}")  # pragma: no cover

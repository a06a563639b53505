"""What a model's parameter arrays *are*: rows, cells, neuron classes, units and physical bounds.

The fitting framework (:mod:`owjax.params`) and the component registry (:mod:`owjax.registry`)
both need to know, for every float array ("leaf") of a model, what each of its entries means:
which cell or connection it belongs to, which channel, which neuron class, which subsystem, its
unit, and the physically plausible range DD017 asks fitted values to stay in. This module is that
catalogue. It knows :class:`~owjax.network.NetworkModel` and the intestine
(:class:`~owjax.intestine.AbstractIntestine`); any other equinox model gets a generic catalogue
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
from dataclasses import dataclass

import equinox as eqx
import jax
import numpy as np

from .spec import is_body_wall_muscle, unknown_name_message

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


@dataclass(frozen=True)
class LeafInfo:
    """Static facts about one kind of leaf.

    Attributes:
        path: attribute path in the model (``"channels.g_max_nS"``).
        unit: unit of the fitted value (mS_per_cm2 for channel conductances, else the leaf's unit).
        bounds: default physical bounds (lower, upper) in ``unit``; ``None`` when there is no
            sensible default (the spec must then give bounds).
        rows: what a row is: ``cell``, ``channel``, ``gate``, ``ca_gate``, ``graded``,
            ``graded2``, ``gap``, ``stimulus``, ``intestine`` or ``generic``.
        description: what the parameter is, in words.
        bounds_source: where the default bounds come from.
    """

    path: str
    unit: str
    bounds: tuple[float, float] | None
    rows: str
    description: str
    bounds_source: str = "positivity"


_DD017_G = "DD017: 0 < g < 100 mS/cm²"
_DD017_E = "DD017: −100 < E_rev < +80 mV"
_DD017_TAU = "DD017: 0.01 < τ < 10,000 ms"
_DD017_CONC = "DD017: concentrations > 0"
_POS = "positivity"
_V = "physiological voltage range −100 … +80 mV (as DD017's E_rev bound)"

_NETWORK_LEAVES: dict[str, LeafInfo] = {
    i.path: i
    for i in [
        LeafInfo("membranes.capacitance_pF", "pF", (0.0, INF), "cell", "membrane capacitance", _POS),
        LeafInfo("membranes.area_um2", "um2", (0.0, INF), "cell", "membrane area (Ca pool volume)", _POS),
        LeafInfo("membranes.v_init_mV", "mV", (-100.0, 80.0), "cell", "initial membrane potential", _V),
        LeafInfo("membranes.ca_init_mM", "mM", (0.0, INF), "cell", "initial intracellular Ca", _DD017_CONC),
        LeafInfo("membranes.ca_rho", "mM_per_ms_per_pA_per_um2", (0.0, INF), "cell",
                 "Ca pool fixed factor ρ (Ca influx per current density)", _POS),
        LeafInfo("membranes.ca_decay_ms", "ms", (0.01, 10_000.0), "cell", "Ca pool decay time constant",
                 _DD017_TAU),
        LeafInfo("membranes.ca_resting_mM", "mM", (0.0, INF), "cell", "resting Ca", _DD017_CONC),
        LeafInfo("channels.g_max_nS", "mS_per_cm2", (0.0, 100.0), "channel",
                 "maximal conductance density of an ion channel", _DD017_G),
        LeafInfo("channels.erev_mV", "mV", (-100.0, 80.0), "channel", "channel reversal potential", _DD017_E),
        LeafInfo("gates.midpoint_mV", "mV", (-100.0, 80.0), "gate", "gate half-activation voltage", _V),
        LeafInfo("gates.scale_mV", "mV", None, "gate",
                 "gate slope (its sign tells activation from inactivation: give bounds)", ""),
        LeafInfo("gates.rate", "1", (0.0, 1.0), "gate", "gate steady-state maximum", "open probability ≤ 1"),
        LeafInfo("gates.tau_ms", "ms", (0.01, 10_000.0), "gate", "gate time constant", _DD017_TAU),
        LeafInfo("ca_gates.alpha", "1", (0.0, 1.0), "ca_gate", "depth of Ca-dependent inactivation",
                 "fraction ≤ 1"),
        LeafInfo("ca_gates.ca_half_mM", "mM", (0.0, INF), "ca_gate", "half-inactivation Ca", _DD017_CONC),
        LeafInfo("ca_gates.k_mM", "mM", None, "ca_gate", "Ca-inactivation slope (negative: give bounds)", ""),
        LeafInfo("graded.weight", "1", (0.0, INF), "graded", "synaptic weight (c302: synapse count)", _POS),
        LeafInfo("graded.g_nS", "nS", (0.0, INF), "graded", "synaptic conductance per synapse", _POS),
        LeafInfo("graded.erev_mV", "mV", (-100.0, 80.0), "graded", "synaptic reversal potential", _DD017_E),
        LeafInfo("graded.vth_mV", "mV", (-100.0, 80.0), "graded", "presynaptic threshold", _V),
        LeafInfo("graded.delta_mV", "mV", (0.0, INF), "graded", "presynaptic slope", _POS),
        LeafInfo("graded.k_per_ms", "1_per_ms", (1e-4, 100.0), "graded", "synaptic rate constant",
                 "DD017 τ bound as a rate: 1/10,000 … 1/0.01 per ms"),
        LeafInfo("graded2.weight", "1", (0.0, INF), "graded2", "synaptic weight (c302: synapse count)", _POS),
        LeafInfo("graded2.g_nS", "nS", (0.0, INF), "graded2", "synaptic conductance per synapse", _POS),
        LeafInfo("graded2.erev_mV", "mV", (-100.0, 80.0), "graded2", "synaptic reversal potential", _DD017_E),
        LeafInfo("graded2.vth_mV", "mV", (-100.0, 80.0), "graded2", "presynaptic threshold", _V),
        LeafInfo("graded2.beta_per_mV", "1_per_mV", (0.0, INF), "graded2", "presynaptic steepness", _POS),
        LeafInfo("graded2.ar_per_ms", "1_per_ms", (1e-4, 100.0), "graded2", "activation rate",
                 "DD017 τ bound as a rate"),
        LeafInfo("graded2.ad_per_ms", "1_per_ms", (1e-4, 100.0), "graded2", "deactivation rate",
                 "DD017 τ bound as a rate"),
        LeafInfo("gaps.weight", "1", (0.0, INF), "gap", "gap junction weight (c302: junction count)", _POS),
        LeafInfo("gaps.g_nS", "nS", (0.0, INF), "gap", "gap junction conductance per junction", _POS),
        LeafInfo("stimuli.amplitude_pA", "pA", (-INF, INF), "stimulus", "pulse amplitude", "none"),
        LeafInfo("stimuli.delay_ms", "ms", (0.0, INF), "stimulus", "pulse onset", _POS),
        LeafInfo("stimuli.duration_ms", "ms", (0.0, INF), "stimulus", "pulse duration", _POS),
    ]
}

#: Extra intestine leaves (not in the intestine's YAML schema): unit and bounds.
_INTESTINE_EXTRA = {
    "v_plc": ("uM/s", (0.0, INF), "PLC activity per cell"),
    "V0": ("mV", (-100.0, 80.0), "initial membrane potential per cell"),
    "Ca0": ("uM", (0.0, INF), "initial cytosolic Ca per cell"),
    "Ca_ER0": ("uM", (0.0, INF), "initial ER Ca per cell"),
    "IP3_0": ("uM", (0.0, INF), "initial IP3 per cell"),
    "h0": ("1", (0.0, 1.0), "initial IP3R non-inactivated fraction per cell"),
}


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
    """``"network"`` for :class:`~owjax.network.NetworkModel`, ``"intestine"`` for the intestine,
    else ``"generic"``."""
    from .network import NetworkModel

    if isinstance(model, NetworkModel):
        return "network"
    try:
        from .intestine import AbstractIntestine

        if isinstance(model, AbstractIntestine):
            return "intestine"
    except ImportError:  # pragma: no cover
        pass
    return "generic"


def get_leaf(model, path: str):
    """The array at attribute ``path`` of ``model`` (raises :class:`UnknownLeafError`)."""
    obj = model
    for part in path.split("."):
        if not hasattr(obj, part):
            valid = list(leaf_catalogue(model))
            raise UnknownLeafError(f"{type(model).__name__}: " + unknown_name_message("parameter", path, valid))
        obj = getattr(obj, part)
    return obj


def _float_leaf_paths(model) -> list[str]:
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


def _intestine_schema() -> dict[str, tuple[str, float | None, float | None]]:
    from . import intestine

    return dict(getattr(intestine, "_SCHEMA", {}))


def leaf_catalogue(model) -> dict[str, LeafInfo]:
    """Every fittable leaf of ``model`` with its unit, default bounds and row kind."""
    kind = model_kind(model)
    if kind == "network":
        return dict(_NETWORK_LEAVES)
    out = {}
    if kind == "intestine":
        schema = _intestine_schema()
        for path in _float_leaf_paths(model):
            if path in schema:
                unit, lo, hi = schema[path][:3]
                bounds = (-INF if lo is None else float(lo), INF if hi is None else float(hi))
                out[path] = LeafInfo(path, unit, bounds, "intestine", f"intestine parameter {path}",
                                     "owjax/data/intestine_parameters.yaml schema")
            elif path in _INTESTINE_EXTRA:
                unit, bounds, desc = _INTESTINE_EXTRA[path]
                out[path] = LeafInfo(path, unit, bounds, "intestine", desc, _POS)
            else:
                out[path] = LeafInfo(path, "?", None, "intestine", f"intestine parameter {path}", "")
        return out
    for path in _float_leaf_paths(model):
        out[path] = LeafInfo(path, "?", None, "generic", path, "")
    return out


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

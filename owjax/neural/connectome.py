"""Connectome data for owjax, read through cect exactly the way c302 reads it.

The default reader, ``"c302"``, is c302's own default (``c302.DEFAULT_DATA_READER ==
"cect.readers.SpreadsheetDataReader"``, the legacy OpenWorm spreadsheet based on White et al. 1986). It
is read along c302's code path (``get_cell_names_and_connection`` / ``get_cell_muscle_names_and_connection``
in ``c302/__init__.py``): ``read_data(include_nonconnected_cells=True)`` gives all 302 neurons, sorted
with Python's ``sorted``; ``read_muscle_data()`` gives the muscles, from which MANAL and MVULVA are
dropped and only cect's 95 body-wall muscle names are kept (there is no MVL24).

Other cect datasets (Cook 2019, Varshney, White, Witvliet 1-8, Wang 2024 / OpenWormUnified) are read
from the caches cect ships (``get_instance(from_cache=True)``; reading Cook 2019 from its spreadsheet
takes ~15 s) through cect's dataset view ``get_neuron_to_neuron_conns`` /
``get_neuron_to_muscle_conns``. c302 itself only accepts its spreadsheet readers, so for those datasets
``c302_projections`` describes what c302's rules *would* build.

Conventions
-----------
* Connections are *directed entries as the reader lists them*; nothing is merged or de-duplicated. c302
  creates one projection per entry, so for gap junctions listed in both directions (A→B and B→A, the
  usual case) c302 builds two electrical projections; as NeuroML electrical connections couple both
  cells, the effective A–B coupling is the sum of the two (see ``Connectome.gap_matrix(symmetric=True)``).
* Counts are floats (cect stores numbers of synaptic contacts; Wang2024Herm normalises them to 1).
* Matrices are indexed ``M[i, j] = count from order[i] (pre) to order[j] (post)``.

Polarity
--------
``polarity(synapse, rule="c302")`` applies c302's rule to the synapse class string: containing ``"GABA"``
→ inhibitory, containing ``"_GJ"`` → gap junction (checked second, so it wins), anything else
(Acetylcholine, Glutamate, Serotonin, FMRFamide, Generic_CS, ...) → excitatory.

``polarity(synapse, rule="transmitter")`` uses the presynaptic neuron's transmitter identity from the
Wang et al. 2024 atlas (via cect's ``Wang2024Reader``): ACh present → excitatory; GABA only → inhibitory;
glutamate → *ambiguous* (glutamate-gated Cl⁻ channels make it inhibitory at many synapses), mapped to
``glutamate="exc"`` by default and flagged ``ambiguous``; no classical fast transmitter (monoamine-only,
betaine, orphan, unknown) → excitatory with ``unknown=True``. The raw identity is always returned.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
import io
import math
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = [
    "READERS",
    "C302Projection",
    "ChemicalSynapse",
    "Connectome",
    "GapJunction",
    "PolarityAssignment",
    "UnknownCellError",
    "c302_projections",
    "load_connectome",
    "polarity",
    "presynaptic_transmitters",
    "projection_counts",
    "wang2024_transmitters",
]

CellKind = Literal["neuron", "body_wall_muscle"]
ProjectionKind = Literal["exc", "inh", "gap"]
PolarityRule = Literal["c302", "transmitter"]

# Canonical reader name -> (cect module, read through c302's path?)
_C302_READER_MODULE = "cect.readers.SpreadsheetDataReader"
_READER_MODULES: dict[str, str] = {
    "c302": _C302_READER_MODULE,
    "Cook2019Herm": "cect.readers.Cook2019HermReader",
    "Varshney": "cect.readers.VarshneyDataReader",
    "White": "cect.readers.White_whole",
    **{f"Witvliet{i}": f"cect.readers.WitvlietDataReader{i}" for i in range(1, 9)},
    "OpenWormUnified": "cect.readers.OpenWormUnifiedReader",
    "Wang2024Herm": "cect.readers.Wang2024HermReader",
}
#: Valid names for :func:`load_connectome`.
READERS: tuple[str, ...] = tuple(_READER_MODULES)

# Extra spellings accepted by load_connectome (matched case-insensitively).
_READER_ALIASES: dict[str, str] = {
    "spreadsheetdatareader": "c302",
    _C302_READER_MODULE.lower(): "c302",
    "white_whole": "White",
    "cook2019hermreader": "Cook2019Herm",
    "varshneydatareader": "Varshney",
    "openwormunifiedreader": "OpenWormUnified",
    "wang2024hermreader": "Wang2024Herm",
    **{f"witvlietdatareader{i}": f"Witvliet{i}" for i in range(1, 9)},
}

_MUSCLES_DROPPED_BY_C302 = ("MANAL", "MVULVA")
_ELECTRICAL_SYNTYPE = "GapJunction"
_CHEMICAL_SYNTYPE = "Chemical"
_EXTRASYNAPTIC_SYNTYPE = "Extrasynaptic"

ACETYLCHOLINE = "Acetylcholine"
GABA = "GABA"
GLUTAMATE = "Glutamate"
UNKNOWN_TRANSMITTER = "Unknown"


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChemicalSynapse:
    """One directed chemical connection entry as listed by the reader.

    Attributes:
        pre: presynaptic cell name.
        post: postsynaptic cell name.
        count: number of synaptic contacts (c302 uses it as the synapse weight).
        transmitter: the reader's synapse class string (e.g. ``"GABA"``, ``"Serotonin_Acetylcholine"``,
            ``"Generic_CS"`` for datasets without transmitter information).
    """

    pre: str
    post: str
    count: float
    transmitter: str


@dataclass(frozen=True, slots=True)
class GapJunction:
    """One directed gap-junction entry as listed by the reader (c302 builds one projection per entry).

    Attributes:
        pre: first cell as listed.
        post: second cell as listed.
        count: number of gap-junction contacts (the electrical projection weight).
        synclass: the reader's synapse class string (``"Generic_GJ"``).
    """

    pre: str
    post: str
    count: float
    synclass: str = "Generic_GJ"


Synapse = ChemicalSynapse | GapJunction


class UnknownCellError(KeyError):
    """A cell name that is not part of the connectome (a ``KeyError`` with a readable message)."""

    def __init__(self, name: str, valid: Sequence[str], what: str = "cell"):
        self.name = name
        close = difflib.get_close_matches(str(name), list(valid), n=5, cutoff=0.6)
        if not close:  # case-insensitive retry, e.g. "aval" -> "AVAL"
            upper = {v.upper(): v for v in valid}
            close = [
                upper[c] for c in difflib.get_close_matches(str(name).upper(), list(upper), n=5)
            ]
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        self.message = f"Unknown {what} {name!r} ({len(valid)} valid names).{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


# --------------------------------------------------------------------------------------------------
# Connectome
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connectome:
    """An immutable connectome: cells plus directed connection entries, as read by cect.

    Attributes:
        reader: canonical reader name (one of :data:`READERS`).
        neurons: neuron names, sorted as c302 sorts them (Python ``sorted``).
        muscles: body-wall muscle names (``MDL01`` ... ``MVR24``), sorted.
        chemical_synapses: neuron→neuron chemical entries.
        gap_junctions: neuron→neuron gap-junction entries (directed, as listed).
        neuromuscular_synapses: neuron→body-wall-muscle chemical entries.
        neuromuscular_gap_junctions: neuron→body-wall-muscle gap-junction entries.
        extrasynaptic: neuron→neuron extrasynaptic (monoaminergic, Bentley 2016) entries that the Wang
            2024 readers add; not synapses, so excluded from matrices and projections.
        dropped_muscle_targets: non-body-wall targets of neuron→muscle entries that were dropped (as c302
            drops them), e.g. ``MANAL``, ``MVULVA``, pharyngeal ``pm*`` cells, ``BWM``.
        source: the cect module the data came from.
    """

    reader: str
    neurons: tuple[str, ...]
    muscles: tuple[str, ...]
    chemical_synapses: tuple[ChemicalSynapse, ...] = field(repr=False)
    gap_junctions: tuple[GapJunction, ...] = field(repr=False)
    neuromuscular_synapses: tuple[ChemicalSynapse, ...] = field(repr=False)
    neuromuscular_gap_junctions: tuple[GapJunction, ...] = field(default=(), repr=False)
    extrasynaptic: tuple[ChemicalSynapse, ...] = field(default=(), repr=False)
    dropped_muscle_targets: tuple[str, ...] = ()
    source: str = ""
    _index: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        for attr in (
            "neurons",
            "muscles",
            "chemical_synapses",
            "gap_junctions",
            "neuromuscular_synapses",
            "neuromuscular_gap_junctions",
            "extrasynaptic",
            "dropped_muscle_targets",
        ):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        cells = self.neurons + self.muscles
        index = {name: i for i, name in enumerate(cells)}
        if len(index) != len(cells):
            dup = sorted(n for n, c in Counter(cells).items() if c > 1)
            raise ValueError(f"Connectome {self.reader!r}: duplicate cell names {dup}")
        object.__setattr__(self, "_index", index)
        neuron_set, muscle_set = set(self.neurons), set(self.muscles)
        groups = (
            ("chemical_synapses", self.chemical_synapses, neuron_set),
            ("gap_junctions", self.gap_junctions, neuron_set),
            ("neuromuscular_synapses", self.neuromuscular_synapses, muscle_set),
            ("neuromuscular_gap_junctions", self.neuromuscular_gap_junctions, muscle_set),
            ("extrasynaptic", self.extrasynaptic, neuron_set),
        )
        for label, entries, post_set in groups:
            for e in entries:
                if e.pre not in neuron_set:
                    raise ValueError(
                        f"{label}: presynaptic {e.pre!r} is not a neuron of {self.reader!r}"
                    )
                if e.post not in post_set:
                    raise ValueError(f"{label}: postsynaptic {e.post!r} is not valid in {label}")
                if not (math.isfinite(e.count) and e.count >= 0):
                    raise ValueError(f"{label}: bad count {e.count!r} for {e.pre}->{e.post}")

    # -- names -------------------------------------------------------------------------------------

    @property
    def cells(self) -> tuple[str, ...]:
        """All cells: neurons then muscles (the order used by :meth:`index`)."""
        return self.neurons + self.muscles

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __repr__(self) -> str:
        return (
            f"Connectome(reader={self.reader!r}, neurons={len(self.neurons)}, muscles={len(self.muscles)}, "
            f"chemical={len(self.chemical_synapses)}, gap={len(self.gap_junctions)}, "
            f"neuromuscular={len(self.neuromuscular_synapses)}+{len(self.neuromuscular_gap_junctions)}gap, "
            f"extrasynaptic={len(self.extrasynaptic)})"
        )

    def index(self, name: str) -> int:
        """Position of a cell in :attr:`cells`.

        Arguments:
            name: neuron or muscle name (exact, case-sensitive).

        Returns:
            The index into ``self.cells``.

        Raises:
            UnknownCellError: (a ``KeyError``) naming the cell, close matches and the number of valid names.
        """
        try:
            return self._index[name]
        except (KeyError, TypeError):
            raise UnknownCellError(name, self.cells) from None

    def indices(self, names: Iterable[str]) -> np.ndarray:
        """Indices of several cells in :attr:`cells` (int array); raises :class:`UnknownCellError`."""
        return np.asarray([self.index(n) for n in names], dtype=np.int64)

    def cell_kind(self, name: str) -> CellKind:
        """Whether ``name`` is a ``"neuron"`` or a ``"body_wall_muscle"``.

        Arguments:
            name: a cell of this connectome.

        Returns:
            ``"neuron"`` or ``"body_wall_muscle"``.

        Raises:
            UnknownCellError: if the cell is not in this connectome.
        """
        return "neuron" if self.index(name) < len(self.neurons) else "body_wall_muscle"

    # -- derived views -----------------------------------------------------------------------------

    def subset(self, cells: Iterable[str]) -> Connectome:
        """The connectome restricted to ``cells`` (connections with both ends inside are kept).

        Arguments:
            cells: neuron and/or muscle names; order is irrelevant (the original order is kept).

        Returns:
            A new :class:`Connectome` with the same reader name.

        Raises:
            UnknownCellError: for a name that is not in this connectome.
        """
        keep = {c for c in cells}
        for c in keep:
            self.index(c)
        return Connectome(
            reader=self.reader,
            neurons=tuple(n for n in self.neurons if n in keep),
            muscles=tuple(m for m in self.muscles if m in keep),
            chemical_synapses=_within(self.chemical_synapses, keep),
            gap_junctions=_within(self.gap_junctions, keep),
            neuromuscular_synapses=_within(self.neuromuscular_synapses, keep),
            neuromuscular_gap_junctions=_within(self.neuromuscular_gap_junctions, keep),
            extrasynaptic=_within(self.extrasynaptic, keep),
            dropped_muscle_targets=self.dropped_muscle_targets,
            source=self.source,
        )

    def _order(self, order: Sequence[str] | None) -> tuple[tuple[str, ...], dict[str, int]]:
        names = self.neurons if order is None else tuple(order)
        for n in names:
            self.index(n)
        pos = {n: i for i, n in enumerate(names)}
        if len(pos) != len(names):
            dup = sorted(n for n, c in Counter(names).items() if c > 1)
            raise ValueError(f"order lists cells more than once: {dup}")
        return names, pos

    def chemical_matrix(
        self, order: Sequence[str] | None = None, *, kind: Literal["exc", "inh"] | None = None
    ) -> np.ndarray:
        """Dense chemical connectivity (neuron→neuron and neuron→muscle entries), summed per cell pair.

        Arguments:
            order: cell names giving rows/columns (default: :attr:`neurons`). Connections touching cells
                outside ``order`` are ignored.
            kind: ``"exc"`` / ``"inh"`` keeps only entries of that polarity under c302's rule;
                ``None`` keeps all.

        Returns:
            float64 array ``M`` of shape ``(len(order), len(order))``, ``M[i, j]`` = total count from
            ``order[i]`` to ``order[j]``.
        """
        if kind not in (None, "exc", "inh"):
            raise ValueError(f"kind must be None, 'exc' or 'inh', got {kind!r}")
        names, pos = self._order(order)
        m = np.zeros((len(names), len(names)), dtype=np.float64)
        for s in self.chemical_synapses + self.neuromuscular_synapses:
            keep = kind is None or _c302_kind(s.transmitter) == kind
            if keep and s.pre in pos and s.post in pos:
                m[pos[s.pre], pos[s.post]] += s.count
        return m

    def gap_matrix(
        self, order: Sequence[str] | None = None, *, symmetric: bool = False
    ) -> np.ndarray:
        """Dense gap-junction matrix (neuron↔neuron and neuron↔muscle entries).

        Arguments:
            order: cell names giving rows/columns (default: :attr:`neurons`).
            symmetric: ``False`` gives the listed directed entries (``M[i, j]`` = count listed as
                ``order[i]``→``order[j]``). ``True`` gives the coupling c302 actually simulates: each
                listed entry is a NeuroML electrical connection coupling both cells, so the result is
                ``M + M.T`` with the diagonal (self entries, which carry no current) set to zero.

        Returns:
            float64 array of shape ``(len(order), len(order))``.
        """
        names, pos = self._order(order)
        m = np.zeros((len(names), len(names)), dtype=np.float64)
        for g in self.gap_junctions + self.neuromuscular_gap_junctions:
            if g.pre in pos and g.post in pos:
                m[pos[g.pre], pos[g.post]] += g.count
        if symmetric:
            m = m + m.T
            np.fill_diagonal(m, 0.0)
        return m


def _within(entries: tuple, keep: set[str]) -> tuple:
    return tuple(e for e in entries if e.pre in keep and e.post in keep)


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _canonical_reader(reader: str) -> str:
    if not isinstance(reader, str):
        raise TypeError(f"reader must be a string, one of {', '.join(READERS)}; got {reader!r}")
    for name in READERS:
        if reader.lower() == name.lower():
            return name
    if reader.lower() in _READER_ALIASES:
        return _READER_ALIASES[reader.lower()]
    close = (
        [n for n in READERS if n.lower().startswith(reader.lower()[:4])] if len(reader) >= 3 else []
    )
    close = close or difflib.get_close_matches(reader, READERS, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"Unknown connectome reader {reader!r}.{hint} Valid readers: {', '.join(READERS)}"
    )


@contextlib.contextmanager
def _quiet_cect():
    """Silence cect's progress prints and openpyxl's spreadsheet warnings."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def load_connectome(reader: str = "c302") -> Connectome:
    """Load a connectome through cect (cached: repeated calls return the same object).

    Arguments:
        reader: one of :data:`READERS` (case-insensitive): ``"c302"`` (c302's default, the legacy
            OpenWorm spreadsheet ``cect.readers.SpreadsheetDataReader``; that module path is accepted
            too), ``"Cook2019Herm"``, ``"Varshney"``, ``"White"`` (White_whole), ``"Witvliet1"`` ...
            ``"Witvliet8"``, ``"OpenWormUnified"``, ``"Wang2024Herm"``.

    Returns:
        The immutable :class:`Connectome`.

    Raises:
        ValueError: for an unknown reader name (the message lists the valid names).
    """
    return _load(_canonical_reader(reader))


@functools.cache
def _load(reader: str) -> Connectome:
    module = _READER_MODULES[reader]
    with _quiet_cect():
        from cect.Cells import BODY_WALL_MUSCLE_NAMES

        mod = importlib.import_module(module)
        if reader == "c302":
            # c302.load_data_reader -> get_instance(); then exactly c302's calls.
            inst = mod.get_instance()
            cell_names, conns = inst.read_data(include_nonconnected_cells=True)
            _, all_muscles, muscle_conns = inst.read_muscle_data()
        else:
            inst = mod.get_instance(from_cache=True)
            cell_names, conns = inst.get_neuron_to_neuron_conns()
            _, all_muscles, muscle_conns = inst.get_neuron_to_muscle_conns()

    # c302.get_cell_muscle_names_and_connection
    all_muscles = [m for m in all_muscles if m not in _MUSCLES_DROPPED_BY_C302]
    if len(all_muscles) == 0:
        muscles = sorted(BODY_WALL_MUSCLE_NAMES)
    else:
        muscles = sorted(m for m in all_muscles if m in BODY_WALL_MUSCLE_NAMES)
    muscle_set = set(muscles)

    neuron_set = {str(c) for c in cell_names}
    chem: list[ChemicalSynapse] = []
    gap: list[GapJunction] = []
    extra: list[ChemicalSynapse] = []
    for c in conns:
        _classify(c, chem, gap, extra, reader)
    nm_chem: list[ChemicalSynapse] = []
    nm_gap: list[GapJunction] = []
    nm_extra: list[ChemicalSynapse] = []
    dropped: set[str] = set()
    for c in muscle_conns:
        if c.post_cell not in muscle_set:
            dropped.add(str(c.post_cell))
            continue
        neuron_set.add(str(c.pre_cell))
        _classify(c, nm_chem, nm_gap, nm_extra, reader)
    if nm_extra:
        raise ValueError(
            f"{reader}: unexpected extrasynaptic neuron→muscle entries ({len(nm_extra)})"
        )
    for e in chem + gap + extra:
        neuron_set.update((e.pre, e.post))

    return Connectome(
        reader=reader,
        neurons=tuple(sorted(neuron_set)),
        muscles=tuple(muscles),
        chemical_synapses=tuple(chem),
        gap_junctions=tuple(gap),
        neuromuscular_synapses=tuple(nm_chem),
        neuromuscular_gap_junctions=tuple(nm_gap),
        extrasynaptic=tuple(extra),
        dropped_muscle_targets=tuple(sorted(dropped)),
        source=module,
    )


def _classify(conn, chem: list, gap: list, extra: list, reader: str) -> None:
    pre, post, synclass = str(conn.pre_cell), str(conn.post_cell), str(conn.synclass)
    count = float(conn.number)
    # The spreadsheet reader labels every entry syntype "Chemical"; c302 relies on "_GJ" in the class.
    if "_GJ" in synclass or conn.syntype == _ELECTRICAL_SYNTYPE:
        gap.append(GapJunction(pre, post, count, synclass))
    elif conn.syntype == _CHEMICAL_SYNTYPE:
        chem.append(ChemicalSynapse(pre, post, count, synclass))
    elif conn.syntype == _EXTRASYNAPTIC_SYNTYPE:
        extra.append(ChemicalSynapse(pre, post, count, synclass))
    else:
        raise ValueError(
            f"{reader}: unsupported connection type {conn.syntype!r} for {pre}->{post}"
        )


# --------------------------------------------------------------------------------------------------
# Transmitters and polarity
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _wang2024() -> Mapping[str, tuple[str, ...]]:
    with _quiet_cect():
        from cect.readers.Wang2024Reader import Wang2024Reader

        reader = Wang2024Reader(sex="Hermaphrodite")
    return {
        str(cell): tuple(str(nt) for nt in nts if nt is not None)
        for cell, nts in reader.all_neurotransmitters.items()
    }


def wang2024_transmitters() -> dict[str, tuple[str, ...]]:
    """Transmitter identities of all 302 hermaphrodite neurons (Wang et al. 2024, via cect).

    Returns:
        ``{neuron: identities}``, e.g. ``{"DD1": ("GABA",), "SMDDL": ("Acetylcholine", "GABA"), ...}``
        with cect's names (Acetylcholine, GABA, Glutamate, Betaine, Dopamine, Serotonin, Tyramine,
        Octopamine, Serotonin_Uptake, Unknown_Orphan_Neurotransmitter, ...). An empty tuple means the
        atlas gives no identity.
    """
    return dict(_wang2024())


def presynaptic_transmitters(connectome_or_names: Connectome | Iterable[str]) -> dict[str, str]:
    """Wang et al. 2024 transmitter identity of each neuron, as one string.

    Arguments:
        connectome_or_names: a :class:`Connectome` (its neurons are used) or neuron names.

    Returns:
        ``{neuron: identity}`` where identity joins the atlas entries with ``"+"`` in atlas order
        (e.g. ``"GABA"``, ``"Acetylcholine+GABA"``, ``"Glutamate+Tyramine+Betaine"``) and is
        ``"Unknown"`` when the atlas gives none.

    Raises:
        UnknownCellError: for a name that is not a neuron in the atlas.
    """
    names = (
        connectome_or_names.neurons
        if isinstance(connectome_or_names, Connectome)
        else (
            [connectome_or_names]
            if isinstance(connectome_or_names, str)
            else list(connectome_or_names)
        )
    )
    table = _wang2024()
    out: dict[str, str] = {}
    for n in names:
        if n not in table:
            raise UnknownCellError(n, sorted(table), what="neuron (Wang 2024 atlas)")
        out[n] = "+".join(table[n]) or UNKNOWN_TRANSMITTER
    return out


@dataclass(frozen=True, slots=True)
class PolarityAssignment:
    """The outcome of a polarity rule for one connection.

    Attributes:
        kind: ``"exc"``, ``"inh"`` or ``"gap"``.
        rule: the rule that produced it (``"c302"`` or ``"transmitter"``).
        identity: the raw input of the rule (synapse class string for ``"c302"``; the presynaptic
            neuron's Wang 2024 identity for ``"transmitter"``).
        ambiguous: glutamate was involved or several fast transmitters were present, so the sign is
            a modelling choice.
        unknown: no classical fast transmitter (ACh/GABA/Glu) is known; ``kind`` is a default.
    """

    kind: ProjectionKind
    rule: PolarityRule
    identity: str
    ambiguous: bool = False
    unknown: bool = False


def _c302_kind(synclass: str) -> ProjectionKind:
    """c302.generate's rule: exc; "GABA" in class -> inh; then "_GJ" in class -> elec (gap)."""
    kind: ProjectionKind = "exc"
    if "GABA" in synclass:
        kind = "inh"
    if "_GJ" in synclass:
        kind = "gap"
    return kind


def _transmitter_kind(
    identities: tuple[str, ...], glutamate: Literal["exc", "inh"]
) -> tuple[ProjectionKind, bool, bool]:
    fast = {nt for nt in identities if nt in (ACETYLCHOLINE, GABA, GLUTAMATE)}
    ambiguous = GLUTAMATE in fast or len(fast) > 1
    if ACETYLCHOLINE in fast:
        return "exc", ambiguous, False
    if GABA in fast:
        return "inh", ambiguous, False
    if GLUTAMATE in fast:
        return glutamate, ambiguous, False
    return "exc", False, True


def polarity(
    synapse: Synapse,
    rule: PolarityRule = "c302",
    *,
    glutamate: Literal["exc", "inh"] = "exc",
    transmitters: Mapping[str, Sequence[str]] | None = None,
) -> PolarityAssignment:
    """Sign of a connection under a polarity rule.

    Arguments:
        synapse: a :class:`ChemicalSynapse` or :class:`GapJunction` (gap junctions are ``"gap"`` under
            every rule).
        rule: ``"c302"`` — c302's rule on the synapse class string (``"GABA"`` in it → inh,
            ``"_GJ"`` → gap, else exc). ``"transmitter"`` — from the presynaptic neuron's Wang 2024
            identity: ACh present → exc; else GABA → inh; else glutamate → ``glutamate`` (flagged
            ambiguous); no ACh/GABA/Glu → exc flagged unknown. Co-transmission of several fast
            transmitters is flagged ambiguous (ACh wins, e.g. SMD's ACh+GABA → exc).
        glutamate: the sign given to glutamatergic-only neurons under ``"transmitter"``.
        transmitters: override of the identity table (``{neuron: identities}``); default Wang 2024.

    Returns:
        A :class:`PolarityAssignment`.

    Raises:
        ValueError: for an unknown rule or glutamate choice, TypeError for a non-synapse.
        UnknownCellError: when the presynaptic neuron has no entry in the identity table.
    """
    if rule not in ("c302", "transmitter"):
        raise ValueError(f"Unknown polarity rule {rule!r}; valid rules: 'c302', 'transmitter'")
    if glutamate not in ("exc", "inh"):
        raise ValueError(f"glutamate must be 'exc' or 'inh', got {glutamate!r}")
    if isinstance(synapse, GapJunction):
        return PolarityAssignment("gap", rule, synapse.synclass)
    if not isinstance(synapse, ChemicalSynapse):
        raise TypeError(
            f"polarity() needs a ChemicalSynapse or GapJunction, got {type(synapse).__name__}"
        )
    if rule == "c302":
        return PolarityAssignment(_c302_kind(synapse.transmitter), "c302", synapse.transmitter)
    table = _wang2024() if transmitters is None else transmitters
    if synapse.pre not in table:
        raise UnknownCellError(
            synapse.pre, sorted(table), what="presynaptic neuron (transmitter table)"
        )
    ids = tuple(str(t) for t in table[synapse.pre] if t is not None)
    kind, ambiguous, unknown = _transmitter_kind(ids, glutamate)
    return PolarityAssignment(
        kind, "transmitter", "+".join(ids) or UNKNOWN_TRANSMITTER, ambiguous, unknown
    )


# --------------------------------------------------------------------------------------------------
# c302 projections
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class C302Projection:
    """One projection as c302.generate would create it.

    Attributes:
        pre: presynaptic population (neuron).
        post: postsynaptic population (neuron or body-wall muscle).
        kind: ``"exc"``, ``"inh"`` or ``"gap"``.
        target: ``"neuron"`` or ``"muscle"``.
        weight: connection weight (the count, or ``count ** power_scaling``).
        synclass: the reader's synapse class string (part of c302's projection id).
    """

    pre: str
    post: str
    kind: ProjectionKind
    target: Literal["neuron", "muscle"]
    weight: float
    synclass: str

    @property
    def projection_id(self) -> str:
        """c302's projection id, ``NC_<pre>_<post>_<synclass>``."""
        return f"NC_{self.pre}_{self.post}_{self.synclass}"


def c302_projections(
    connectome: Connectome,
    cells: Iterable[str] | None = None,
    include_muscles: bool | Iterable[str] = True,
    *,
    rule: PolarityRule = "c302",
    glutamate: Literal["exc", "inh"] = "exc",
    power_scaling: float | None = None,
) -> list[C302Projection]:
    """The projections c302.generate creates for a set of cells (no overrides).

    Mirrors ``c302.generate``: every listed entry whose pre and post are both included becomes one
    projection (no merging of duplicates, self-connections kept); neuron→muscle entries need the muscle
    among the included muscles and the presynaptic neuron among ``cells``; entries to other targets are
    skipped. Neuron→muscle gap junctions become ``"gap"`` projections with target ``"muscle"``.

    Arguments:
        connectome: the connectome.
        cells: neuron names to include (``None``: all neurons). Muscles go in ``include_muscles``.
        include_muscles: ``True`` for all body-wall muscles of the connectome, ``False`` for none, or
            an iterable of muscle names.
        rule: polarity rule, ``"c302"`` (c302's own) or ``"transmitter"`` (see :func:`polarity`).
        glutamate: sign of glutamatergic-only neurons under ``rule="transmitter"``.
        power_scaling: if given, weights are ``count ** power_scaling`` as c302 does for parameter sets
            with ``global_connectivity_power_scaling`` (C0, D1 use 0, i.e. all weights 1).

    Returns:
        Projections in the order neuron chemical, neuron gap, muscle chemical, muscle gap (each in the
        reader's order).

    Raises:
        UnknownCellError: for unknown names; ValueError if ``cells`` contains muscles or
        ``include_muscles`` contains neurons.
    """
    if cells is None:
        neuron_set = set(connectome.neurons)
    else:
        neuron_set = set([cells] if isinstance(cells, str) else cells)
        for c in sorted(neuron_set):
            if connectome.cell_kind(c) != "neuron":
                raise ValueError(
                    f"cells must be neurons; {c!r} is a muscle (pass it in include_muscles)"
                )
    if include_muscles is True:
        muscle_set = set(connectome.muscles)
    elif include_muscles is False or include_muscles is None:
        muscle_set = set()
    else:
        muscle_set = set([include_muscles] if isinstance(include_muscles, str) else include_muscles)
        for m in sorted(muscle_set):
            if connectome.cell_kind(m) != "body_wall_muscle":
                raise ValueError(f"{m!r} is not among the known muscles of {connectome.reader!r}")

    def weight(count: float) -> float:
        return float(count if power_scaling is None else math.pow(count, power_scaling))

    table = _wang2024() if rule == "transmitter" else None

    def kind_of(s: Synapse) -> ProjectionKind:
        return polarity(s, rule, glutamate=glutamate, transmitters=table).kind

    out: list[C302Projection] = []
    for s in connectome.chemical_synapses:
        if s.pre in neuron_set and s.post in neuron_set:
            out.append(
                C302Projection(s.pre, s.post, kind_of(s), "neuron", weight(s.count), s.transmitter)
            )
    for g in connectome.gap_junctions:
        if g.pre in neuron_set and g.post in neuron_set:
            out.append(C302Projection(g.pre, g.post, "gap", "neuron", weight(g.count), g.synclass))
    for s in connectome.neuromuscular_synapses:
        if s.pre in neuron_set and s.post in muscle_set:
            out.append(
                C302Projection(s.pre, s.post, kind_of(s), "muscle", weight(s.count), s.transmitter)
            )
    for g in connectome.neuromuscular_gap_junctions:
        if g.pre in neuron_set and g.post in muscle_set:
            out.append(C302Projection(g.pre, g.post, "gap", "muscle", weight(g.count), g.synclass))
    return out


def projection_counts(projections: Iterable[C302Projection]) -> dict[tuple[str, str], int]:
    """Number of projections per ``(target, kind)``, e.g. ``{("neuron", "exc"): 2079, ...}``.

    Arguments:
        projections: output of :func:`c302_projections`.

    Returns:
        A dict keyed by ``(target, kind)``.
    """
    return dict(Counter((p.target, p.kind) for p in projections))

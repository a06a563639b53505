"""Network specification: what a c302 network *is*, before it becomes arrays.

A :class:`NetworkSpec` is the owjax equivalent of a c302-generated NeuroML network: named cells
with their cell types (channels, densities, Ca pool, area, capacitance), chemical connections
(graded synapses, with their weights), electrical connections (gap junctions) and pulse inputs.
It is plain, immutable Python data in owjax units (see :mod:`owjax.core.units`), so it can be compared,
sub-set, printed and counted; :mod:`owjax.neural.network` turns it into a differentiable model.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from owjax.core.errors import unknown_name_message  # noqa: F401  (re-exported)

__all__ = [
    "GateSpec",
    "ChannelSpec",
    "ChannelDensity",
    "CaPoolSpec",
    "CellTypeSpec",
    "SynapseSpec",
    "Connection",
    "PulseInput",
    "NetworkSpec",
    "UnknownCellError",
    "is_body_wall_muscle",
]

_BODY_WALL_MUSCLE = re.compile(r"^M[DV][LR]\d\d$")


def is_body_wall_muscle(name: str) -> bool:
    """True for body-wall muscle names such as ``MDL01`` … ``MVR24``."""
    return bool(_BODY_WALL_MUSCLE.match(name))


class UnknownCellError(KeyError):
    """A cell name is not part of the network; the message lists close matches."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


@dataclass(frozen=True)
class GateSpec:
    """One gate of an ion channel.

    ``kind="hh_sigmoid"``: x∞(V) = rate / (1 + exp((midpoint - V) / scale)), dx/dt = (x∞ - x)/τ.
    ``kind="ca_dependent_h"``: c302's instantaneous ``customHGate``:
    h∞ = 1 / (1 + exp((ca_half - Ca) / k)) and the channel is scaled by 1 + (h∞ - 1)·alpha.
    """

    name: str
    kind: Literal["hh_sigmoid", "ca_dependent_h"]
    instances: int = 1
    rate: float = 1.0  #: steady-state maximum (dimensionless)
    midpoint_mV: float = 0.0
    scale_mV: float = 1.0
    tau_ms: float = 1.0
    alpha: float = 0.0  #: customHGate scaling (dimensionless)
    ca_half_mM: float = 0.0
    k_mM: float = 1.0


@dataclass(frozen=True)
class ChannelSpec:
    """An ion channel type: passive (no gates) or HH with gates."""

    id: str
    kind: Literal["passive", "hh"]
    species: str = "non_specific"
    gates: tuple[GateSpec, ...] = ()


@dataclass(frozen=True)
class ChannelDensity:
    """A channel placed on a cell type with a conductance density and a reversal potential."""

    channel: str
    g_density_nS_per_um2: float
    erev_mV: float
    ion: str


@dataclass(frozen=True)
class CaPoolSpec:
    """NeuroML ``fixedFactorConcentrationModel``: dCa/dt = ρ·I_Ca/A − (Ca − Ca_rest)/τ, Ca ≥ 0."""

    id: str
    resting_mM: float
    decay_ms: float
    rho: float  #: mM/ms per (pA/µm²)


@dataclass(frozen=True)
class CellTypeSpec:
    """A single-compartment cell type (c302's GenericNeuronCell / GenericMuscleCell)."""

    id: str
    area_um2: float
    specific_capacitance_pF_per_um2: float
    v_init_mV: float
    spike_thresh_mV: float
    channels: tuple[ChannelDensity, ...]
    ca_pool: str | None = None
    ca_init_mM: float = 0.0

    @property
    def capacitance_pF(self) -> float:
        return self.area_um2 * self.specific_capacitance_pF_per_um2


@dataclass(frozen=True)
class SynapseSpec:
    """A synapse component.

    ``graded`` (NeuroML gradedSynapse, c302 C1/C2): parameters ``conductance_nS, delta_mV, vth_mV,
    k_per_ms, erev_mV``. ``graded2`` (c302 gradedSynapse2, C0/FW): ``conductance_nS, ar_per_ms,
    ad_per_ms, beta_per_mV, vth_mV, erev_mV``. ``gap``: ``conductance_nS``.
    """

    id: str
    kind: Literal["graded", "graded2", "gap"]
    params: tuple[tuple[str, float], ...]

    def get(self, name: str) -> float:
        return dict(self.params)[name]


@dataclass(frozen=True)
class Connection:
    """One projection: ``pre`` → ``post`` through ``synapse`` with a weight (synapse count)."""

    pre: str
    post: str
    synapse: str
    weight: float


@dataclass(frozen=True)
class PulseInput:
    """A square current pulse (NeuroML pulseGenerator) injected into ``cell``."""

    cell: str
    delay_ms: float
    duration_ms: float
    amplitude_pA: float
    id: str = "pulse"


@dataclass(frozen=True)
class NetworkSpec:
    """A whole network in owjax units; see the module docstring."""

    name: str
    cells: tuple[tuple[str, str], ...]  #: (cell name, cell type id), in model order
    cell_types: dict[str, CellTypeSpec]
    channels: dict[str, ChannelSpec]
    ca_pools: dict[str, CaPoolSpec]
    synapses: dict[str, SynapseSpec]
    chemical: tuple[Connection, ...]
    electrical: tuple[Connection, ...]
    inputs: tuple[PulseInput, ...]
    metadata: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------ names
    @property
    def cell_names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.cells)

    @property
    def neuron_names(self) -> tuple[str, ...]:
        return tuple(c for c in self.cell_names if not is_body_wall_muscle(c))

    @property
    def muscle_names(self) -> tuple[str, ...]:
        return tuple(c for c in self.cell_names if is_body_wall_muscle(c))

    def check_cells(self, names) -> None:
        """Raise :class:`UnknownCellError` for the first name not in the network."""
        valid = set(self.cell_names)
        for n in names:
            if n not in valid:
                raise UnknownCellError(
                    unknown_name_message(f"cell (network {self.name})", n, self.cell_names)
                )

    # ------------------------------------------------------------------ views
    def counts(self) -> dict[str, int]:
        """Projection counts by class, in c302's terms (neuron→neuron/muscle, excitatory/inhibitory)."""
        out: Counter[str] = Counter()
        for c in self.chemical:
            pol = "inh" if "_inh" in c.synapse else "exc"  # c302 names every synapse *_exc_* / *_inh_*
            tgt = "muscle" if is_body_wall_muscle(c.post) else "neuron"
            out[f"neuron_to_{tgt}_{pol}"] += 1
        out["gap_junction_entries"] = len(self.electrical)
        out["cells"] = len(self.cells)
        out["neurons"] = len(self.neuron_names)
        out["muscles"] = len(self.muscle_names)
        out["inputs"] = len(self.inputs)
        return dict(out)

    def subset(self, cells, name: str | None = None) -> "NetworkSpec":
        """The sub-network on ``cells`` (in network order): connections and inputs among them only.

        This is what c302 does when ``generate(cells=...)`` lists a subset of cells.
        """
        cells = list(cells)
        self.check_cells(cells)
        keep = set(cells)
        return dataclasses.replace(
            self,
            name=name or f"{self.name}[subset of {len(keep)}]",
            cells=tuple(c for c in self.cells if c[0] in keep),
            chemical=tuple(c for c in self.chemical if c.pre in keep and c.post in keep),
            electrical=tuple(c for c in self.electrical if c.pre in keep and c.post in keep),
            inputs=tuple(i for i in self.inputs if i.cell in keep),
        )

    def with_inputs(self, inputs) -> "NetworkSpec":
        """The same network with its pulse inputs replaced by ``inputs``."""
        inputs = tuple(inputs)
        self.check_cells([i.cell for i in inputs])
        return dataclasses.replace(self, inputs=inputs)

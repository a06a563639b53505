"""The c302 network as a differentiable equinox model: parameters in arrays, one RHS.

:class:`NetworkModel` is built from a :class:`~owjax.neural.spec.NetworkSpec` and holds every parameter
as a float array with one entry per cell, channel, gate, connection or stimulus, grouped in small
modules named after the biology (:class:`CellMembranes`, :class:`IonChannels`, :class:`GatingVariables`,
:class:`CaInactivationGates`, :class:`GradedSynapses`, :class:`GradedSynapses2`,
:class:`GapJunctions`, :class:`PulseStimuli`). Integer index arrays say which cell each row belongs
to; they are not differentiated (``eqx.filter_grad`` skips them). Because there is one array per
state variable, not one module per cell, compile time does not grow with the number of cells.

The state is a dict with one array per variable:

==========  ======  ================================================
key         shape   meaning
==========  ======  ================================================
``V``       (N,)    membrane potential, mV
``Ca``      (N,)    intracellular Ca, **nM** (c302's mM × 1e6)
``gates``   (G,)    HH gating variables (dimensionless)
``s``       (E,)    gradedSynapse activations (C1, C2)
``s2``      (E2,)   gradedSynapse2 activations (C0)
==========  ======  ================================================
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from owjax.neural.channels import (
    ca_dependent_h_factor,
    ca_pool_rate,
    gate_rate,
    ohmic_current,
    sigmoid_steady_state,
)
from owjax.neural.spec import NetworkSpec, is_body_wall_muscle
from owjax.neural.synapses import (
    gap_junction_current,
    graded_synapse2_decay,
    graded_synapse2_rate,
    graded_synapse_decay,
    graded_synapse_rate,
)
from owjax.core.component import AbstractComponent, ParameterInfo, StateVariable
from owjax.core.units import CA_STATE_SCALE

__all__ = [
    "AbstractNetworkModel",
    "NetworkModel",
    "CellMembranes",
    "IonChannels",
    "GatingVariables",
    "CaInactivationGates",
    "GradedSynapses",
    "GradedSynapses2",
    "GapJunctions",
    "PulseStimuli",
    "UniformCellLayout",
    "State",
]

State = dict[str, Array]
#: values of :attr:`NetworkModel.derivative`
DERIVATIVES = ("hand", "hand_reverse_only", "jax")


def _segment_sum(values, index, n):
    return jax.ops.segment_sum(values, index, num_segments=n)


@dataclasses.dataclass(frozen=True)
class UniformCellLayout:
    """The row layout shared by every cell when all cells carry the same channels and gates.

    All of c302's parameter sets (C0, C1, C2) are built this way: every cell has the same
    channel densities in the same order, each with the same gates. The rows of
    :class:`IonChannels` and :class:`GatingVariables` are then cell-major blocks of equal size, and
    the per-cell sums and gathers of the vector field become reshapes and static slices, whose
    reverse pass needs no scatter (the expensive part of the vector field's VJP on CPU).

    Attributes:
        channels_per_cell: channel rows per cell.
        gates_per_cell: gate rows per cell.
        gate_slots: for each channel slot, the gate slots whose product is its open probability
            (a gate slot repeated once per instance, in the order of ``IonChannels.gate_factors``).
        h_slots: channel slots multiplied by the cell's Ca-dependent inactivation (one
            :class:`CaInactivationGates` row per cell, in cell order), or ``()``.
        ca_slots: channel slots that carry Ca.
    """

    channels_per_cell: int
    gates_per_cell: int
    gate_slots: tuple[tuple[int, ...], ...]
    h_slots: tuple[int, ...]
    ca_slots: tuple[int, ...]

    @classmethod
    def detect(cls, n_cells: int, channel_cell, gate_cell, gate_factors, h_gate, h_cell, is_ca):
        """The layout if the rows are uniform across cells (numpy arrays of :class:`NetworkModel`), else ``None``."""
        channel_cell, gate_cell = np.asarray(channel_cell), np.asarray(gate_cell)
        if n_cells == 0 or len(channel_cell) % n_cells or len(gate_cell) % n_cells:
            return None
        nch, ng = len(channel_cell) // n_cells, len(gate_cell) // n_cells
        cells = np.arange(n_cells)
        if not (np.array_equal(channel_cell, np.repeat(cells, nch)) and np.array_equal(gate_cell, np.repeat(cells, ng))):
            return None
        n_gates, n_h = len(gate_cell), len(np.asarray(h_cell))
        factors = np.asarray(gate_factors).reshape(n_cells, nch, -1)
        rel = np.where(factors == n_gates, -1, factors - cells[:, None, None] * ng)
        if not np.all(rel == rel[:1]) or np.any((rel[0] != -1) & ((rel[0] < 0) | (rel[0] >= ng))):
            return None
        h = np.asarray(h_gate).reshape(n_cells, nch)
        has_h = h != n_h
        if not np.all(has_h == has_h[:1]):
            return None
        h_slots = tuple(int(c) for c in np.flatnonzero(has_h[0]))
        if h_slots:
            if not (n_h == n_cells and np.array_equal(np.asarray(h_cell), cells)
                    and all(np.array_equal(h[:, c], cells) for c in h_slots)):
                return None
        ca = np.asarray(is_ca).reshape(n_cells, nch)
        if not np.all(ca == ca[:1]):
            return None
        return cls(
            channels_per_cell=int(nch),
            gates_per_cell=int(ng),
            gate_slots=tuple(tuple(int(g) for g in row if g != -1) for row in rel[0]),
            h_slots=h_slots,
            ca_slots=tuple(int(c) for c in np.flatnonzero(ca[0])),
        )


class CellMembranes(eqx.Module):
    """Per-cell passive properties and Ca pool (arrays of shape (N,))."""

    capacitance_pF: Float[Array, " n"]
    area_um2: Float[Array, " n"]
    v_init_mV: Float[Array, " n"]
    ca_init_mM: Float[Array, " n"]
    ca_rho: Float[Array, " n"]  #: mM/ms per (pA/µm²); 0 for cells without a Ca pool
    ca_decay_ms: Float[Array, " n"]
    ca_resting_mM: Float[Array, " n"]


class IonChannels(eqx.Module):
    """One row per (cell, channel density): maximal conductance and reversal potential."""

    g_max_nS: Float[Array, " c"]
    erev_mV: Float[Array, " c"]
    cell: Int[Array, " c"]
    is_ca: Bool[Array, " c"]  #: True where the channel carries Ca (feeds the Ca pool); structure, not fitted
    gate_factors: Int[Array, "c m"]  #: gate index per factor of the open probability (pad = G)
    h_gate: Int[Array, " c"]  #: row of CaInactivationGates, or H for none


class GatingVariables(eqx.Module):
    """One row per HH gate instance set: sigmoid steady state and fixed time constant."""

    midpoint_mV: Float[Array, " g"]
    scale_mV: Float[Array, " g"]
    rate: Float[Array, " g"]
    tau_ms: Float[Array, " g"]
    cell: Int[Array, " g"]


class CaInactivationGates(eqx.Module):
    """c302's instantaneous Ca-dependent h of ca_boyle (one row per channel that has it)."""

    alpha: Float[Array, " h"]
    ca_half_mM: Float[Array, " h"]
    k_mM: Float[Array, " h"]
    cell: Int[Array, " h"]


class GradedSynapses(eqx.Module):
    """NeuroML gradedSynapse connections (C1/C2), one row per projection."""

    weight: Float[Array, " e"]
    g_nS: Float[Array, " e"]
    erev_mV: Float[Array, " e"]
    vth_mV: Float[Array, " e"]
    delta_mV: Float[Array, " e"]
    k_per_ms: Float[Array, " e"]
    pre: Int[Array, " e"]
    post: Int[Array, " e"]


class GradedSynapses2(eqx.Module):
    """c302 gradedSynapse2 connections (C0), one row per projection."""

    weight: Float[Array, " e"]
    g_nS: Float[Array, " e"]
    erev_mV: Float[Array, " e"]
    vth_mV: Float[Array, " e"]
    beta_per_mV: Float[Array, " e"]
    ar_per_ms: Float[Array, " e"]
    ad_per_ms: Float[Array, " e"]
    pre: Int[Array, " e"]
    post: Int[Array, " e"]


class GapJunctions(eqx.Module):
    """Electrical connections, one row per c302 entry; current flows into both sides."""

    weight: Float[Array, " j"]
    g_nS: Float[Array, " j"]
    pre: Int[Array, " j"]
    post: Int[Array, " j"]


class PulseStimuli(eqx.Module):
    """Square current pulses (NeuroML pulseGenerator).

    The amplitudes are parameters; the timing (``delay_ms``, ``duration_ms``) is static input: the
    pulse edges are the solver's jump times, so they cannot move during a solve or a fit.
    """

    amplitude_pA: Float[Array, " p"]
    cell: Int[Array, " p"]
    delay_ms: tuple[float, ...] = eqx.field(static=True)
    duration_ms: tuple[float, ...] = eqx.field(static=True)

    def current(self, t_ms, n_cells: int) -> Float[Array, " n"]:
        """Injected current per cell (pA) at time ``t_ms``."""
        dt = self.amplitude_pA.dtype
        delay = jnp.asarray(self.delay_ms, dt).reshape(-1)
        end = delay + jnp.asarray(self.duration_ms, dt).reshape(-1)
        on = (t_ms >= delay) & (t_ms < end)
        return _segment_sum(jnp.where(on, self.amplitude_pA, 0.0), self.cell, n_cells)


class AbstractNetworkModel(AbstractComponent):
    """A network of cells as a component (:mod:`owjax.core.component`); time in ms.

    Input ``i_ext_pA``: extra current per cell (pA, inward positive) from couplings.
    Outputs ``V_mV`` (per cell) and ``Ca_mM`` (per cell, c302's unit).
    """

    cell_names: eqx.AbstractVar[tuple[str, ...]]

    @property
    def input_names(self) -> dict[str, str]:
        return {"i_ext_pA": "pA"}


class NetworkModel(AbstractNetworkModel):
    """c302 network (C0/C1/C2 component types) as one differentiable model.

    Build it with :meth:`from_spec`; every float leaf is a parameter that ``jax.grad`` reaches.
    """

    membranes: CellMembranes
    channels: IonChannels
    gates: GatingVariables
    ca_gates: CaInactivationGates
    graded: GradedSynapses
    graded2: GradedSynapses2
    gaps: GapJunctions
    stimuli: PulseStimuli
    cell_names: tuple[str, ...] = eqx.field(static=True)
    channel_names: tuple[str, ...] = eqx.field(static=True)  #: "CELL/channel" per channel row
    gate_names: tuple[str, ...] = eqx.field(static=True)  #: "CELL/channel/gate" per gate row
    graded_names: tuple[str, ...] = eqx.field(static=True)  #: "PRE->POST" per gradedSynapse row
    graded2_names: tuple[str, ...] = eqx.field(static=True)
    gap_names: tuple[str, ...] = eqx.field(static=True)
    stimulus_times_ms: tuple[float, ...] = eqx.field(static=True)  #: pulse on/off edges
    name: str = eqx.field(static=True, default="network")
    #: rows uniform across cells (every c302 parameter set): the fast path of the vector field
    layout: UniformCellLayout | None = eqx.field(static=True, default=None)
    #: how the field is differentiated, with a uniform layout (:mod:`owjax.neural.uniform_field`; the
    #: values are the same): ``"hand"`` a hand-written forward-mode rule, which JAX also transposes for
    #: reverse mode; ``"hand_reverse_only"`` a hand-written reverse pass, cheaper, no forward mode
    #: (what :meth:`for_reverse_mode` returns); ``"jax"`` JAX differentiates the code op by op
    derivative: str = eqx.field(static=True, default="hand")

    state_keys: ClassVar[tuple[str, ...]] = ("V", "Ca", "gates", "s", "s2")
    time_unit_ms: ClassVar[float] = 1.0

    # ------------------------------------------------------------------ build
    @classmethod
    def from_spec(cls, spec: NetworkSpec, dtype=jnp.float64) -> "NetworkModel":
        """Turn a :class:`~owjax.neural.spec.NetworkSpec` into arrays.

        Arguments:
            spec: the network (e.g. :func:`owjax.neural.c302_data.load_c302_network`).
            dtype: float dtype of the parameters (``jnp.float64`` needs ``jax_enable_x64``).

        Returns:
            The model. Parameter values are exactly the spec's (c302's) values.
        """
        if dtype == jnp.float64 and not jax.config.read("jax_enable_x64"):
            raise ValueError(
                "float64 requested but JAX runs in 32-bit mode; call "
                "jax.config.update('jax_enable_x64', True) first or use dtype=float32"
            )
        names = spec.cell_names
        index = {n: i for i, n in enumerate(names)}
        f = lambda x: jnp.asarray(np.asarray(x, dtype=np.float64), dtype=dtype)  # noqa: E731
        i32 = lambda x: jnp.asarray(np.asarray(x, dtype=np.int32).reshape(-1))  # noqa: E731

        cap, area, v0, ca0, rho, decay, rest = ([] for _ in range(7))
        ch_g, ch_e, ch_cell, ch_ca, ch_factors, ch_h, ch_names = ([] for _ in range(7))
        g_mid, g_scale, g_rate, g_tau, g_cell, g_names = ([] for _ in range(6))
        h_alpha, h_half, h_k, h_cell = ([] for _ in range(4))
        for ci, (cname, ctype) in enumerate(spec.cells):
            ct = spec.cell_types[ctype]
            cap.append(ct.capacitance_pF)
            area.append(ct.area_um2)
            v0.append(ct.v_init_mV)
            ca0.append(ct.ca_init_mM)
            if ct.ca_pool is not None:
                pool = spec.ca_pools[ct.ca_pool]
                rho.append(pool.rho)
                decay.append(pool.decay_ms)
                rest.append(pool.resting_mM)
            else:
                rho.append(0.0)
                decay.append(1.0)
                rest.append(0.0)
            for dens in ct.channels:
                chan = spec.channels[dens.channel]
                factors, hrow = [], None
                for gate in chan.gates:
                    if gate.kind == "hh_sigmoid":
                        factors += [len(g_mid)] * gate.instances
                        g_mid.append(gate.midpoint_mV)
                        g_scale.append(gate.scale_mV)
                        g_rate.append(gate.rate)
                        g_tau.append(gate.tau_ms)
                        g_cell.append(ci)
                        g_names.append(f"{cname}/{chan.id}/{gate.name}")
                    else:
                        hrow = len(h_alpha)
                        h_alpha.append(gate.alpha)
                        h_half.append(gate.ca_half_mM)
                        h_k.append(gate.k_mM)
                        h_cell.append(ci)
                ch_g.append(dens.g_density_nS_per_um2 * ct.area_um2)
                ch_e.append(dens.erev_mV)
                ch_cell.append(ci)
                ch_ca.append(dens.ion == "ca")
                ch_factors.append(factors)
                ch_h.append(hrow)
                ch_names.append(f"{cname}/{chan.id}")
        n_gates, n_h = len(g_mid), len(h_alpha)
        m = max([len(x) for x in ch_factors] + [1])
        factors = np.full((len(ch_factors), m), n_gates, dtype=np.int32)
        for r, fl in enumerate(ch_factors):
            factors[r, : len(fl)] = fl
        h_rows = [n_h if h is None else h for h in ch_h]
        layout = UniformCellLayout.detect(len(names), ch_cell, g_cell, factors, h_rows, h_cell, ch_ca)

        def syn_rows(kind):
            rows = [c for c in spec.chemical if spec.synapses[c.synapse].kind == kind]
            return rows, [spec.synapses[c.synapse] for c in rows]

        gr, gs = syn_rows("graded")
        gr2, gs2 = syn_rows("graded2")
        edges = lambda rows: (i32([index[c.pre] for c in rows]), i32([index[c.post] for c in rows]))  # noqa: E731
        pre, post = edges(gr)
        pre2, post2 = edges(gr2)
        gpre, gpost = edges(spec.electrical)
        edges_ms = sorted({t for i in spec.inputs for t in (i.delay_ms, i.delay_ms + i.duration_ms)})
        return cls(
            membranes=CellMembranes(f(cap), f(area), f(v0), f(ca0), f(rho), f(decay), f(rest)),
            channels=IonChannels(f(ch_g), f(ch_e), i32(ch_cell), jnp.asarray(np.asarray(ch_ca, dtype=bool).reshape(-1)),
                                 jnp.asarray(factors), i32(h_rows)),
            gates=GatingVariables(f(g_mid), f(g_scale), f(g_rate), f(g_tau), i32(g_cell)),
            ca_gates=CaInactivationGates(f(h_alpha), f(h_half), f(h_k), i32(h_cell)),
            graded=GradedSynapses(
                weight=f([c.weight for c in gr]),
                g_nS=f([s.get("conductance_nS") for s in gs]),
                erev_mV=f([s.get("erev_mV") for s in gs]),
                vth_mV=f([s.get("vth_mV") for s in gs]),
                delta_mV=f([s.get("delta_mV") for s in gs]),
                k_per_ms=f([s.get("k_per_ms") for s in gs]),
                pre=pre,
                post=post,
            ),
            graded2=GradedSynapses2(
                weight=f([c.weight for c in gr2]),
                g_nS=f([s.get("conductance_nS") for s in gs2]),
                erev_mV=f([s.get("erev_mV") for s in gs2]),
                vth_mV=f([s.get("vth_mV") for s in gs2]),
                beta_per_mV=f([s.get("beta_per_mV") for s in gs2]),
                ar_per_ms=f([s.get("ar_per_ms") for s in gs2]),
                ad_per_ms=f([s.get("ad_per_ms") for s in gs2]),
                pre=pre2,
                post=post2,
            ),
            gaps=GapJunctions(
                weight=f([c.weight for c in spec.electrical]),
                g_nS=f([spec.synapses[c.synapse].get("conductance_nS") for c in spec.electrical]),
                pre=gpre,
                post=gpost,
            ),
            stimuli=PulseStimuli(
                amplitude_pA=f([i.amplitude_pA for i in spec.inputs]),
                cell=i32([index[i.cell] for i in spec.inputs]),
                delay_ms=tuple(float(i.delay_ms) for i in spec.inputs),
                duration_ms=tuple(float(i.duration_ms) for i in spec.inputs),
            ),
            cell_names=tuple(names),
            channel_names=tuple(ch_names),
            gate_names=tuple(g_names),
            graded_names=tuple(f"{c.pre}->{c.post}" for c in gr),
            graded2_names=tuple(f"{c.pre}->{c.post}" for c in gr2),
            gap_names=tuple(f"{c.pre}->{c.post}" for c in spec.electrical),
            stimulus_times_ms=tuple(float(t) for t in edges_ms),
            name=spec.name,
            layout=layout,
        )

    def __check_init__(self):
        if self.derivative not in DERIVATIVES:
            raise ValueError(f"NetworkModel.derivative must be one of {DERIVATIVES}, got {self.derivative!r}")

    def for_reverse_mode(self) -> "NetworkModel":
        """This model with its field's reverse pass written by hand (``derivative="hand_reverse_only"``):
        the same values, a cheaper gradient, no forward mode. Unchanged if ``derivative="jax"``."""
        return self if self.derivative == "jax" else dataclasses.replace(self, derivative="hand_reverse_only")

    # ------------------------------------------------------------------ views
    @property
    def n_cells(self) -> int:
        return len(self.cell_names)

    @property
    def muscle_mask(self) -> np.ndarray:
        return np.array([is_body_wall_muscle(c) for c in self.cell_names])

    @property
    def dtype(self):
        return self.membranes.capacitance_pF.dtype

    def index(self, cell: str) -> int:
        """Position of ``cell`` in the state arrays; unknown names raise with close matches."""
        from owjax.neural.spec import UnknownCellError, unknown_name_message

        try:
            return self.cell_names.index(cell)
        except ValueError:
            raise UnknownCellError(unknown_name_message("cell", cell, self.cell_names)) from None

    # ------------------------------------------------------------------ dynamics
    def initial_state(self) -> State:
        """NeuroML's initial conditions: V = initMembPotential, gates at x∞(V₀), Ca₀, s = 0."""
        v0 = self.membranes.v_init_mV
        gates = sigmoid_steady_state(
            v0[self.gates.cell], self.gates.midpoint_mV, self.gates.scale_mV, self.gates.rate
        )
        return {
            "V": v0,
            "Ca": self.membranes.ca_init_mM * CA_STATE_SCALE,
            "gates": gates,
            "s": jnp.zeros_like(self.graded.weight),
            "s2": jnp.zeros_like(self.graded2.weight),
        }

    def membrane_currents(self, y: State) -> tuple[Array, Array]:
        """Total channel current and Ca current per cell (pA, inward positive)."""
        i_total, i_ca, _ = self._channel_currents(y)
        return i_total, i_ca

    def _channel_currents(self, y: State) -> tuple[Array, Array, Array]:
        """Channel current, Ca current (pA) and total channel conductance (nS) per cell."""
        v = y["V"]
        ca_mM = y["Ca"] / CA_STATE_SCALE
        n = self.n_cells
        if self.layout is not None:
            return self._uniform_channel_currents(v, ca_mM, y["gates"])
        x_ext = jnp.concatenate([y["gates"], jnp.ones((1,), v.dtype)])
        open_prob = jnp.prod(x_ext[self.channels.gate_factors], axis=1)
        h = ca_dependent_h_factor(
            ca_mM[self.ca_gates.cell], self.ca_gates.ca_half_mM, self.ca_gates.k_mM, self.ca_gates.alpha
        )
        h_ext = jnp.concatenate([h, jnp.ones((1,), v.dtype)])
        g = self.channels.g_max_nS * open_prob * h_ext[self.channels.h_gate]
        i_ch = ohmic_current(g, self.channels.erev_mV, v[self.channels.cell])
        i_total = _segment_sum(i_ch, self.channels.cell, n)
        i_ca = _segment_sum(jnp.where(self.channels.is_ca, i_ch, 0.0), self.channels.cell, n)
        return i_total, i_ca, _segment_sum(g, self.channels.cell, n)

    def _uniform_channel_currents(self, v, ca_mM, gates) -> tuple[Array, Array, Array]:
        """:meth:`_channel_currents` for a :class:`UniformCellLayout`: reshapes and static slices only."""
        lay, n = self.layout, self.n_cells
        nch = lay.channels_per_cell
        x = gates.reshape(n, lay.gates_per_cell)
        ones = jnp.ones((n,), v.dtype)
        cols = []
        for c, slots in enumerate(lay.gate_slots):
            p = ones
            for g in slots:
                p = p * x[:, g]
            cols.append(p)
        if lay.h_slots:
            cg = self.ca_gates
            h = ca_dependent_h_factor(ca_mM, cg.ca_half_mM, cg.k_mM, cg.alpha)
            cols = [p * h if c in lay.h_slots else p for c, p in enumerate(cols)]
        g = self.channels.g_max_nS.reshape(n, nch) * jnp.stack(cols, axis=1)
        i_ch = ohmic_current(g, self.channels.erev_mV.reshape(n, nch), v[:, None])
        i_ca = sum((i_ch[:, c] for c in lay.ca_slots), jnp.zeros((n,), v.dtype))
        return jnp.sum(i_ch, axis=1), i_ca, jnp.sum(g, axis=1)

    def _v_per_gate(self, v: Array) -> Array:
        """The membrane potential of each gate row's cell."""
        if self.layout is not None:
            return jnp.broadcast_to(v[:, None], (self.n_cells, self.layout.gates_per_cell)).reshape(-1)
        return v[self.gates.cell]

    def synaptic_currents(self, y: State) -> Array:
        """Chemical + electrical synaptic current per cell (pA)."""
        return self._synaptic_currents(y)[0]

    def _synaptic_currents(self, y: State) -> tuple[Array, Array]:
        """Synaptic current (pA) and the total synaptic conductance (nS) seen by each cell."""
        v = y["V"]
        n = self.n_cells
        gs, g2, gj = self.graded, self.graded2, self.gaps
        g_chem = gs.weight * gs.g_nS * y["s"]
        g_chem2 = g2.weight * g2.g_nS * y["s2"]
        i = _segment_sum(ohmic_current(g_chem, gs.erev_mV, v[gs.post]), gs.post, n)
        i += _segment_sum(ohmic_current(g_chem2, g2.erev_mV, v[g2.post]), g2.post, n)
        i_gap = gap_junction_current(gj.weight, gj.g_nS, v[gj.post], v[gj.pre])
        i += _segment_sum(i_gap, gj.post, n) - _segment_sum(i_gap, gj.pre, n)
        g_gap = gj.weight * gj.g_nS
        g = (_segment_sum(g_chem, gs.post, n) + _segment_sum(g_chem2, g2.post, n)
             + _segment_sum(g_gap, gj.post, n) + _segment_sum(g_gap, gj.pre, n))
        return i, g

    # ------------------------------------------------------------------ component protocol
    def jump_times(self) -> tuple[float, ...]:
        """Pulse on/off edges (ms)."""
        return self.stimulus_times_ms

    def state_variables(self) -> dict[str, StateVariable]:
        return {
            "V": StateVariable("V", "mV", "membrane potential", "cell"),
            "Ca": StateVariable("Ca", "nM", "intracellular Ca (c302's mM × 1e6)", "cell"),
            "gates": StateVariable("gates", "1", "HH gating variables", "gate"),
            "s": StateVariable("s", "1", "gradedSynapse activation", "graded"),
            "s2": StateVariable("s2", "1", "gradedSynapse2 activation", "graded2"),
        }

    def outputs(self, t, y: State) -> dict[str, Array]:
        """``V_mV`` and ``Ca_mM`` per cell."""
        return {"V_mV": y["V"], "Ca_mM": y["Ca"] / CA_STATE_SCALE}

    def parameter_info(self) -> dict[str, ParameterInfo]:
        from owjax.neural.parameters import NETWORK_PARAMETERS

        return dict(NETWORK_PARAMETERS)

    def imex_split(self):
        """IMEX split: V and Ca explicit; gates and synaptic activations implicit."""

        def explicit(t, y, args):
            d = self.vector_field(t, y, args)
            return {k: (v if k in ("V", "Ca") else jnp.zeros_like(v)) for k, v in d.items()}

        def implicit(t, y, args):
            d = self.vector_field(t, y, args)
            return {k: (jnp.zeros_like(v) if k in ("V", "Ca") else v) for k, v in d.items()}

        return explicit, implicit

    def vector_field(self, t, y: State, args=None) -> State:
        """dy/dt of the whole network (pure). Units: mV/ms, nM/ms, 1/ms.

        ``args`` (the component's inputs) may hold ``"i_ext_pA"``: an extra current per cell (pA,
        inward positive) injected by a coupled component (e.g. the intestine's trigger into DVB/AVL).
        """
        return self.field_and_decay(t, y, args)[0]

    def field_and_decay(self, t, y: State, args=None) -> tuple[State, State]:
        """dy/dt (as :meth:`vector_field`) and each variable's own decay rate λ = −∂f_i/∂y_i (1/ms).

        Every variable of the network relaxes linearly in itself: V with g_total/C (channels,
        chemical synapses and gap junctions), a gate with 1/τ, a gradedSynapse with k/(1 − s∞),
        a gradedSynapse2 with a_r·φ + a_d, Ca with 1/τ_decay (the Ca-dependent inactivation's
        dependence on Ca itself is left to the explicit part). The exponential integrator
        (:mod:`owjax.core.exponential`) integrates these parts exactly.
        """
        v = y["V"]
        n = self.n_cells
        i_stim = self.stimuli.current(t, n)
        if isinstance(args, dict) and "i_ext_pA" in args:
            i_stim = i_stim + args["i_ext_pA"]
        if self.layout is not None and self.derivative != "jax":
            from owjax.neural import uniform_field

            if self.derivative == "hand_reverse_only":
                return uniform_field.uniform_field_and_decay_reverse_only(self, y, i_stim)
            return uniform_field.uniform_field_and_decay(self, y, i_stim)
        i_mem, i_ca, g_mem = self._channel_currents(y)
        i_syn, g_syn = self._synaptic_currents(y)
        mb = self.membranes
        dv = (i_mem + i_syn + i_stim) / mb.capacitance_pF
        lam_v = (g_mem + g_syn) / mb.capacitance_pF
        dca = (
            ca_pool_rate(y["Ca"] / CA_STATE_SCALE, i_ca, mb.area_um2, mb.ca_rho, mb.ca_decay_ms, mb.ca_resting_mM)
            * CA_STATE_SCALE
        )
        lam_ca = 1.0 / mb.ca_decay_ms
        gt = self.gates
        x_inf = sigmoid_steady_state(self._v_per_gate(v), gt.midpoint_mV, gt.scale_mV, gt.rate)
        dgates = gate_rate(y["gates"], x_inf, gt.tau_ms)
        lam_gates = 1.0 / gt.tau_ms
        gs = self.graded
        ds = graded_synapse_rate(y["s"], v[gs.pre], gs.vth_mV, gs.delta_mV, gs.k_per_ms)
        lam_s = graded_synapse_decay(v[gs.pre], gs.vth_mV, gs.delta_mV, gs.k_per_ms)
        g2 = self.graded2
        ds2 = graded_synapse2_rate(y["s2"], v[g2.pre], g2.vth_mV, g2.beta_per_mV, g2.ar_per_ms, g2.ad_per_ms)
        lam_s2 = graded_synapse2_decay(v[g2.pre], g2.vth_mV, g2.beta_per_mV, g2.ar_per_ms, g2.ad_per_ms)
        field = {"V": dv, "Ca": dca, "gates": dgates, "s": ds, "s2": ds2}
        decay = {"V": lam_v, "Ca": lam_ca, "gates": lam_gates, "s": lam_s, "s2": lam_s2}
        return field, decay

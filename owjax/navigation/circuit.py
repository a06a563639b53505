"""The c302 head circuit of thermotaxis as its graded reduction: same cells, connections, signs and
synapse kinetics as c302, a linearised membrane, integrated by exponential Euler.

**Cells** (:data:`HEAD_CELLS`, left/right pairs): AFD (thermosensor), AIY, AIZ (the first-layer
interneurons whose ablations give the 1995 phenotypes), AIB, RIB, RIM, AVA, AVB (the
turn/reversal pathway AIY/AIZ feed: AIZ→AIB→AVA/RIM, AIY→RIB), RIA (the head-steering hub AIY and
AIZ converge on, Hendricks et al. 2012) and the head/neck motor neurons SMDD, SMDV, RMDD, RMDV, RMD
that RIA inhibits — the path AFD → AIY/AIZ → RIA → SMD/RMD → neck bending. Connections, weights
(synapse counts) and signs are c302's (``load_c302_network(parameter_set, "Full")`` restricted to
these cells: c302 takes them from cect's connectome, the sign from the transmitter — RIA, RIV are
inhibitory, the rest excitatory).

**Why C1.** C1 (graded synapses, conductance-based single-compartment cells) is owjax's default c302
parameter set and the one the sensory transducer was coupled to; its graded synapses are what a
graded reduction keeps exactly.

**The reduction.** Per cell, c302's gated membrane (leak, k_slow, k_fast, ca_boyle, Ca pool) is
replaced by its **steady-state current–voltage relation** I∞(V): every gate at x∞(V), Ca at its
steady state (the quasi-steady-state reduction of the gates), computed from c302's own channel
equations on a 0.5-mV grid from −100 to +60 mV (:func:`c302_steady_state_iv`) and interpolated
linearly (continued linearly outside the grid). It keeps c302's resting potential (−58.1 mV for C1's
GenericNeuronCell) and its strong outward rectification (≈ 6 pA to hold −20 mV) — a linear
membrane would let recurrent excitation run away. Synapses keep c302's gradedSynapse law exactly
(``s∞ = σ((V_pre − V_th)/δ)``, ``ds/dt = k (s∞ − s)/(1 − s∞)``, ``I = w g s (E − V)``) and gap
junctions c302's ``I = w g (V_peer − V)``. So, per cell::

    C dV/dt = I∞(V) + Σ_syn w g s (E − V) + Σ_gap w g (V_peer − V) + I_ext + I_bias

What is lost: the gates' own kinetics (k_slow 25 ms, the Ca f-gate 150 ms, k_fast q 150 ms), so
c302's plateau potentials and spikes at strong drive are not reproduced; at small drive the
reduction follows c302 (tests/test_navigation.py compares them on short runs).

Integration: with Δ = ``dt_ms`` the vector field is written so that **one forward-Euler step of Δ is
an exponential (Rosenbrock) Euler step** with the conductance G = max(−dI∞/dV, g_min) + Σ g_syn + Σ g_gap
frozen over the step, as the transducer's GRU step is exact under Euler:
``dV/dt = (I_total/G)(1 − exp(−G Δ/C))/Δ``, ``ds/dt = (s∞ − s)(1 − exp(−k_eff Δ))/Δ``. For time
constants ≫ Δ this is c302's rate; faster ones (a strongly driven synapse, a 0.1-ms membrane at
+20 mV) relax within one step instead of making the step unstable. With Δ = 10 ms a 20-minute run is
120 000 steps.

**Trainable** (``parameter_info``): the synapse weights (positive; signs are E_rev, fixed), the
synaptic thresholds ``vth_mV`` and a tonic bias current per cell (``bias_pA``); the rest is c302's
and fixed. **Ablation** (:meth:`GradedHeadCircuit.ablate`): a killed cell is held at rest, receives
nothing, and its synapses and gap junctions carry nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from owjax.core.component import AbstractComponent, ParameterInfo, StateVariable
from owjax.core.errors import unknown_name_message

__all__ = ["HEAD_CELLS", "DORSAL_NECK", "VENTRAL_NECK", "REVERSAL_CELLS", "FORWARD_CELLS",
           "GradedHeadCircuit", "c302_steady_state_iv", "head_circuit_spec", "IV_GRID_MV"]

#: the voltage grid of the steady-state I–V tables, mV
IV_GRID_MV = np.arange(-100.0, 60.0 + 0.25, 0.5)
#: floor of the membrane's slope conductance in the exponential-Euler step (nS), where I∞ has a
#: negative slope (c302's Ca window around −10 … 0 mV)
G_MIN_NS = 0.002

_PAIRS = ("AFD", "AIY", "AIZ", "AIB", "RIA", "RIB", "RIM", "AVA", "AVB", "SMDD", "SMDV", "RMDD", "RMDV", "RMD")
#: the head circuit's cells (left/right pairs)
HEAD_CELLS: tuple[str, ...] = tuple(c + s for c in _PAIRS for s in ("L", "R"))
#: neck motor neurons read out as dorsal / ventral bending
DORSAL_NECK = ("SMDDL", "SMDDR", "RMDDL", "RMDDR")
VENTRAL_NECK = ("SMDVL", "SMDVR", "RMDVL", "RMDVR")
#: reversal (AVA) and forward (AVB) command interneurons read out as the pirouette drive
REVERSAL_CELLS = ("AVAL", "AVAR")
FORWARD_CELLS = ("AVBL", "AVBR")


def head_circuit_spec(parameter_set: str = "C1", cells: Sequence[str] = HEAD_CELLS):
    """c302's ``Full`` network (``parameter_set``) restricted to ``cells`` (connections among them only)."""
    from owjax.neural.build import build_spec

    return build_spec(parameter_set=parameter_set, network="Full", cells=list(cells), stimulus_mode="none")


def c302_steady_state_iv(spec, cell: str, v_grid_mV=IV_GRID_MV) -> dict:
    """The steady-state current–voltage relation of one c302 cell, from its channels.

    I∞(V) has every gate at x∞(V) and Ca at its steady state (ρ I_Ca τ/A + Ca_rest, with the
    Ca-dependent inactivation iterated to a fixed point).

    Returns:
        ``{"v_mV": grid, "i_pA": I∞ (inward positive), "v_rest_mV": the zero of I∞ (linear
        interpolation), "g_rest_nS": −dI∞/dV at rest, "capacitance_pF", "tau_ms": C/g_rest}``.
    """
    from owjax.core.units import CA_STATE_SCALE
    from owjax.neural.channels import sigmoid_steady_state
    from owjax.neural.network import NetworkModel

    dtype = jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
    m = NetworkModel.from_spec(spec.subset([cell]), dtype=dtype)
    mb = m.membranes
    empty = jnp.zeros(0, dtype)

    def i_ss(v):
        vv = jnp.reshape(v, (1,))
        gates = sigmoid_steady_state(vv[m.gates.cell], m.gates.midpoint_mV, m.gates.scale_mV, m.gates.rate)

        def ca_step(_, ca):
            y = {"V": vv, "Ca": ca * CA_STATE_SCALE, "gates": gates, "s": empty, "s2": empty}
            _, i_ca = m.membrane_currents(y)
            return jnp.maximum(mb.ca_rho * i_ca / mb.area_um2 * mb.ca_decay_ms + mb.ca_resting_mM, 0.0)

        ca = jax.lax.fori_loop(0, 30, ca_step, jnp.zeros((1,), dtype))
        y = {"V": vv, "Ca": ca * CA_STATE_SCALE, "gates": gates, "s": empty, "s2": empty}
        return m.membrane_currents(y)[0][0]

    v = np.asarray(v_grid_mV, np.float64)
    i = np.asarray(jax.jit(jax.vmap(i_ss))(jnp.asarray(v, dtype)), np.float64)
    cross = np.nonzero((i[:-1] > 0) & (i[1:] <= 0))[0]
    if cross.size != 1:
        raise ValueError(f"c302_steady_state_iv({cell}): {cross.size} resting potentials on the grid; expected one")
    k = int(cross[0])
    v_rest = v[k] + (v[k + 1] - v[k]) * i[k] / (i[k] - i[k + 1])
    g_rest = -float(jax.jit(jax.grad(i_ss))(jnp.asarray(v_rest, dtype)))
    cap = float(mb.capacitance_pF[0])
    return {"v_mV": v, "i_pA": i, "v_rest_mV": float(v_rest), "g_rest_nS": g_rest, "capacitance_pF": cap,
            "tau_ms": cap / g_rest}


class GradedHeadCircuit(AbstractComponent):
    """The graded reduction of a c302 circuit (see the module docstring). Time in ms, V in mV, pA, nS.

    Build it with :meth:`from_spec`. Input ``i_ext_pA`` (n_cells,), outputs ``V_mV`` (n_cells,).
    """

    v_rest_mV: Float[Array, " n"]
    g_rest_nS: Float[Array, " n"]
    iv_v_mV: Float[Array, " k"]
    iv_i_pA: Float[Array, "n k"]
    capacitance_pF: Float[Array, " n"]
    bias_pA: Float[Array, " n"]
    weight: Float[Array, " e"]
    g_nS: Float[Array, " e"]
    erev_mV: Float[Array, " e"]
    vth_mV: Float[Array, " e"]
    delta_mV: Float[Array, " e"]
    k_per_ms: Float[Array, " e"]
    gap_weight: Float[Array, " j"]
    gap_g_nS: Float[Array, " j"]
    pre: Int[Array, " e"]
    post: Int[Array, " e"]
    gap_pre: Int[Array, " j"]
    gap_post: Int[Array, " j"]
    alive: Bool[Array, " n"]
    cell_names: tuple[str, ...] = eqx.field(static=True)
    synapse_names: tuple[str, ...] = eqx.field(static=True)
    gap_names: tuple[str, ...] = eqx.field(static=True)
    parameter_set: str = eqx.field(static=True)
    dt_ms: float = eqx.field(static=True)
    time_unit_ms: ClassVar[float] = 1.0

    @classmethod
    def from_spec(cls, spec, dt_ms: float = 10.0, dtype=jnp.float32, parameter_set: str = "C1") -> "GradedHeadCircuit":
        """The reduction of a c302 :class:`~owjax.neural.spec.NetworkSpec` (graded synapses only).

        Arguments:
            spec: the network (e.g. :func:`head_circuit_spec`).
            dt_ms: Δ, the exponential-Euler step the vector field is written for (ms).
            dtype: float dtype of the parameters.
            parameter_set: the c302 parameter set the spec came from (recorded).
        """
        if not float(dt_ms) > 0:
            raise ValueError(f"GradedHeadCircuit: dt_ms must be > 0, got {dt_ms!r}")
        names = spec.cell_names
        idx = {n: i for i, n in enumerate(names)}
        rest_by_type = {}
        for cname, ctype in spec.cells:
            if ctype not in rest_by_type:
                rest_by_type[ctype] = c302_steady_state_iv(spec, cname)
        rp = [rest_by_type[t] for _, t in spec.cells]
        syn = []
        for c in spec.chemical:
            sp = spec.synapses[c.synapse]
            if sp.kind != "graded":
                raise ValueError(f"GradedHeadCircuit needs gradedSynapse connections (c302 C1/C2); "
                                 f"{c.pre}->{c.post} uses {sp.kind!r} ({spec.name})")
            syn.append((c, sp))
        f = lambda x: jnp.asarray(np.asarray(x, np.float64), dtype)  # noqa: E731
        i32 = lambda x: jnp.asarray(np.asarray(x, np.int32).reshape(-1))  # noqa: E731
        n = len(names)
        return cls(
            v_rest_mV=f([r["v_rest_mV"] for r in rp]), g_rest_nS=f([r["g_rest_nS"] for r in rp]),
            iv_v_mV=f(IV_GRID_MV), iv_i_pA=f(np.stack([r["i_pA"] for r in rp])),
            capacitance_pF=f([r["capacitance_pF"] for r in rp]), bias_pA=f(np.zeros(n)),
            weight=f([c.weight for c, _ in syn]), g_nS=f([sp.get("conductance_nS") for _, sp in syn]),
            erev_mV=f([sp.get("erev_mV") for _, sp in syn]), vth_mV=f([sp.get("vth_mV") for _, sp in syn]),
            delta_mV=f([sp.get("delta_mV") for _, sp in syn]), k_per_ms=f([sp.get("k_per_ms") for _, sp in syn]),
            gap_weight=f([c.weight for c in spec.electrical]),
            gap_g_nS=f([spec.synapses[c.synapse].get("conductance_nS") for c in spec.electrical]),
            pre=i32([idx[c.pre] for c, _ in syn]), post=i32([idx[c.post] for c, _ in syn]),
            gap_pre=i32([idx[c.pre] for c in spec.electrical]), gap_post=i32([idx[c.post] for c in spec.electrical]),
            alive=jnp.ones((n,), bool), cell_names=tuple(names),
            synapse_names=tuple(f"{c.pre}->{c.post}" for c, _ in syn),
            gap_names=tuple(f"{c.pre}-{c.post}" for c in spec.electrical), parameter_set=str(parameter_set),
            dt_ms=float(dt_ms))

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)

    # ------------------------------------------------------------------ names
    @property
    def n_cells(self) -> int:
        return len(self.cell_names)

    def index(self, cell: str) -> int:
        """Row of ``cell``; unknown names raise with the valid ones."""
        try:
            return self.cell_names.index(cell)
        except ValueError:
            raise ValueError(unknown_name_message("head-circuit cell", cell, self.cell_names)) from None

    def ablate(self, cells: Sequence[str]) -> "GradedHeadCircuit":
        """The circuit with ``cells`` killed (held at rest; no input, no output)."""
        rows = [self.index(c) for c in cells]
        alive = np.asarray(self.alive).copy()
        alive[rows] = False
        return eqx.tree_at(lambda m: m.alive, self, jnp.asarray(alive))

    @property
    def input_names(self) -> dict[str, str]:
        return {"i_ext_pA": "pA"}

    # ------------------------------------------------------------------ dynamics
    def initial_state(self) -> dict:
        return {"V": self.v_rest_mV, "s": self.synapse_steady_state(self.v_rest_mV)}

    def synapse_steady_state(self, v_mV) -> Array:
        return jax.nn.sigmoid((v_mV[self.pre] - self.vth_mV) / self.delta_mV)

    def membrane_current(self, v_mV) -> tuple[Array, Array]:
        """c302's steady-state membrane current I∞(V) (pA, inward positive) and its slope dI∞/dV (nS),
        per cell: I∞ interpolated linearly in the table, the slope (central differences of the table)
        too, so the vector field is continuous in V; beyond the grid both continue linearly / constant."""
        grid = self.iv_v_mV
        lo, hi = grid[0], grid[-1]
        vc = jnp.clip(v_mV, lo, hi)  # the table's range; beyond it the end slopes continue it linearly
        interp = jax.vmap(jnp.interp, in_axes=(0, None, 0))
        slope_tab = jnp.gradient(self.iv_i_pA, grid, axis=1)
        slope = interp(vc, grid, slope_tab)
        return interp(vc, grid, self.iv_i_pA) + slope * (v_mV - vc), slope

    def currents(self, state, i_ext_pA=None) -> tuple[Array, Array]:
        """Total current (pA, inward positive) and the conductance G (nS) of the exponential-Euler step."""
        v, s = state["V"], state["s"]
        n = self.n_cells
        i_mem, slope = self.membrane_current(v)
        live_syn = (self.alive[self.pre] & self.alive[self.post]).astype(v.dtype)
        g_syn = self.weight * self.g_nS * s * live_syn
        i = i_mem + jax.ops.segment_sum(g_syn * (self.erev_mV - v[self.post]), self.post, n)
        g = jnp.maximum(-slope, G_MIN_NS) + jax.ops.segment_sum(g_syn, self.post, n)
        live_gap = (self.alive[self.gap_pre] & self.alive[self.gap_post]).astype(v.dtype)
        g_gap = self.gap_weight * self.gap_g_nS * live_gap
        i = i + jax.ops.segment_sum(g_gap * (v[self.gap_pre] - v[self.gap_post]), self.gap_post, n)
        g = g + jax.ops.segment_sum(g_gap, self.gap_post, n)
        i = i + self.bias_pA + (0.0 if i_ext_pA is None else i_ext_pA)
        return i, g

    def vector_field(self, t, state, inputs=None) -> dict:
        """dV/dt (mV/ms), ds/dt (1/ms): an exponential-Euler step of Δ = ``dt_ms`` when stepped by Euler at Δ."""
        i_ext = None if not inputs else inputs.get("i_ext_pA")
        v, s = state["V"], state["s"]
        i, g = self.currents(state, i_ext)
        dt = self.dt_ms
        dv = (i / g) * (-jnp.expm1(-g * dt / self.capacitance_pF)) / dt
        dv = jnp.where(self.alive, dv, 0.0)
        x = (v[self.pre] - self.vth_mV) / self.delta_mV
        s_inf = jax.nn.sigmoid(x)
        k_eff = self.k_per_ms / jnp.maximum(jax.nn.sigmoid(-x), 1e-4)
        ds = (s_inf - s) * (-jnp.expm1(-k_eff * dt)) / dt
        return {"V": dv, "s": ds}

    def settle(self, state: dict, i_ext_pA: Float[Array, " n"], n_steps: int = 20_000) -> dict:
        """The state after ``n_steps`` forward-Euler steps of ``dt_ms`` (the loop's own integrator)
        under a constant injected current ``i_ext_pA`` (pA per cell): settling and current steps
        for diagnostics (20 000 steps of 10 ms = 200 s)."""
        def step(y, _):
            d = self.vector_field(0.0, y, {"i_ext_pA": i_ext_pA})
            return jax.tree.map(lambda a, b: a + self.dt_ms * b, y, d), None

        return jax.lax.scan(step, state, None, length=int(n_steps))[0]

    def outputs(self, t, state) -> dict[str, Array]:
        """``V_mV`` per cell."""
        return {"V_mV": state["V"]}

    def state_variables(self) -> dict[str, StateVariable]:
        return {"V": StateVariable("V", "mV", "membrane potential", "cell"),
                "s": StateVariable("s", "1", "gradedSynapse activation", "synapse")}

    def parameter_info(self) -> dict[str, ParameterInfo]:
        c302 = f"c302 {self.parameter_set} (cect connectome)"
        return {
            "v_rest_mV": ParameterInfo("v_rest_mV", "mV", None, "cell", "resting potential of c302's cell", c302,
                                       trainable=False),
            "g_rest_nS": ParameterInfo("g_rest_nS", "nS", None, "cell", "steady-state slope conductance at rest",
                                       c302, trainable=False),
            "iv_v_mV": ParameterInfo("iv_v_mV", "mV", None, "grid", "voltage grid of the I∞ table", "choice",
                                     trainable=False),
            "iv_i_pA": ParameterInfo("iv_i_pA", "pA", None, "cell", "c302's steady-state membrane current I∞(V)",
                                     c302, trainable=False),
            "capacitance_pF": ParameterInfo("capacitance_pF", "pF", None, "cell", "membrane capacitance", c302,
                                            trainable=False),
            "bias_pA": ParameterInfo("bias_pA", "pA", (-5.0, 5.0), "cell", "tonic bias current (trained)", "choice"),
            "weight": ParameterInfo("weight", "1", (0.0, 100.0), "synapse",
                                    "synapse weight (c302: the synapse count); sign is erev_mV", c302),
            "g_nS": ParameterInfo("g_nS", "nS", None, "synapse", "conductance per synapse", c302, trainable=False),
            "erev_mV": ParameterInfo("erev_mV", "mV", None, "synapse", "reversal potential: the sign", c302,
                                     trainable=False),
            "vth_mV": ParameterInfo("vth_mV", "mV", (-70.0, 10.0), "synapse", "half-activation presynaptic V",
                                    c302),
            "delta_mV": ParameterInfo("delta_mV", "mV", None, "synapse", "activation slope", c302, trainable=False),
            "k_per_ms": ParameterInfo("k_per_ms", "1/ms", None, "synapse", "dissociation rate", c302,
                                      trainable=False),
            "gap_weight": ParameterInfo("gap_weight", "1", None, "gap", "gap-junction weight", c302, trainable=False),
            "gap_g_nS": ParameterInfo("gap_g_nS", "nS", None, "gap", "gap-junction conductance", c302,
                                      trainable=False),
        }

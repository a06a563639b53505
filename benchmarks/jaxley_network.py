"""The c302 network (C1: graded synapses, gap junctions) written for Jaxley, for side-by-side benchmarks.

This builds, from the same :class:`~owjax.neural.spec.NetworkSpec` that owjax simulates, a
:class:`jaxley.Network` of single-compartment cells with c302's channels and synapses written as
Jaxley ``Channel``/``Synapse`` subclasses (the equations of :mod:`owjax.neural.channels` and
:mod:`owjax.neural.synapses`):

* ``C302Leak``: I = g (V − E);
* ``C302KSlow`` (n), ``C302KFast`` (p⁴ q): HH gates with sigmoid steady states and fixed time
  constants (NeuroML ``HHSigmoidVariable`` + ``fixedTimeCourse``);
* ``C302CaBoyle``: e² f · h(Ca), h(Ca) = 1 + (h∞(Ca) − 1)·α instantaneous Ca inactivation, **and**
  the cell's ``fixedFactorConcentrationModel`` Ca pool (dCa/dt = ρ·I_Ca/A − (Ca − Ca_rest)/τ) as a
  state of the same channel: in c302 ca_boyle is the only Ca current, so the pool lives with it;
* ``C302GradedSynapse``: NeuroML ``gradedSynapse``, ds/dt = k (s∞ − s)/(1 − s∞), with owjax's floor of
  1e-4 on 1 − s∞; I = w·g·s·(V_post − E) (Jaxley's sign: outward positive);
* ``C302GapJunction``: Jaxley 0.14 has no electrical synapse, so each c302 electrical connection is
  **two** Jaxley synapses (pre→post and post→pre) whose current into the post cell is w·g·(V_pre −
  V_post). Jaxley linearises synaptic currents by perturbing pre *and* post voltage together, so the
  coupling is treated explicitly (the junctions are weak: w·g/C ≈ 1e-3/ms).

Jaxley's time stepping is its own: fixed ``delta_t``, channel and synapse states by exponential Euler
(their ``update_states`` here use the exact exponential for fixed time constants), then the voltage by
backward Euler (``solver="bwd_euler"``; first order, like NEURON's default).

Units (Jaxley's, NEURON's): conductance density S/cm² (= 10 × nS/µm²), channel current mA/cm²
(1 mA/cm² = 10 pA/µm²), synaptic conductance µS, current nA, capacitance µF/cm² (= 100 × pF/µm²).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["build_jaxley_network", "SUPPORTED_CHANNELS", "pulse_currents_nA"]

#: c302 channel ids this module has a Jaxley channel for (the C1/C2 GenericNeuron/MuscleCell channels).
SUPPORTED_CHANNELS = ("Leak", "k_slow", "k_fast", "ca_boyle")

_NS_PER_UM2_TO_S_PER_CM2 = 0.1  # 1 nS/µm² = 1e-9 S / 1e-8 cm²
_MA_PER_CM2_TO_PA_PER_UM2 = 10.0  # 1 mA/cm² = 1e-3 A / 1e8 µm²
_PF_PER_UM2_TO_UF_PER_CM2 = 100.0
_NS_TO_US = 1e-3


def _classes():
    """The Jaxley channel and synapse classes (defined lazily: jaxley is an optional dependency)."""
    import jax.numpy as jnp
    from jax.nn import sigmoid
    from jaxley.channels import Channel
    from jaxley.synapses import Synapse

    def relax(x, x_inf, tau_ms, dt_ms):
        """Exact step of dx/dt = (x∞ − x)/τ with x∞ and τ held over the step."""
        return x_inf + (x - x_inf) * jnp.exp(-dt_ms / tau_ms)

    def x_inf(v, mid, scale):
        return sigmoid((v - mid) / scale)

    class C302Leak(Channel):
        """c302 ``Leak``: passive, I = g (V − E) (g in S/cm², E in mV, I in mA/cm²)."""

        def __init__(self, name=None):
            self.current_is_in_mA_per_cm2 = True
            super().__init__(name)
            p = self._name
            self.channel_params = {f"{p}_g": 5e-6, f"{p}_erev": -50.0}
            self.channel_states = {}
            self.current_name = f"i_{p}"

        def update_states(self, states, dt, v, params):
            return {}

        def compute_current(self, states, v, params):
            p = self._name
            return params[f"{p}_g"] * (v - params[f"{p}_erev"])

        def init_state(self, states, v, params, delta_t):
            return {}

    class C302KSlow(Channel):
        """c302 ``k_slow``: one gate n, n∞ = σ((V − mid)/scale), fixed τ; I = g n (V − E)."""

        def __init__(self, name=None):
            self.current_is_in_mA_per_cm2 = True
            super().__init__(name)
            p = self._name
            self.channel_params = {f"{p}_g": 3e-3, f"{p}_erev": -60.0, f"{p}_n_mid": 19.8741,
                                   f"{p}_n_scale": 15.8512, f"{p}_n_tau": 25.0007}
            self.channel_states = {f"{p}_n": 0.0}
            self.current_name = f"i_{p}"

        def update_states(self, states, dt, v, params):
            p = self._name
            n_inf = x_inf(v, params[f"{p}_n_mid"], params[f"{p}_n_scale"])
            return {f"{p}_n": relax(states[f"{p}_n"], n_inf, params[f"{p}_n_tau"], dt)}

        def compute_current(self, states, v, params):
            p = self._name
            return params[f"{p}_g"] * states[f"{p}_n"] * (v - params[f"{p}_erev"])

        def init_state(self, states, v, params, delta_t):
            p = self._name
            return {f"{p}_n": x_inf(v, params[f"{p}_n_mid"], params[f"{p}_n_scale"])}

    class C302KFast(Channel):
        """c302 ``k_fast``: p⁴ q, sigmoid steady states, fixed time constants; I = g p⁴ q (V − E)."""

        def __init__(self, name=None):
            self.current_is_in_mA_per_cm2 = True
            super().__init__(name)
            p = self._name
            self.channel_params = {f"{p}_g": 7e-5, f"{p}_erev": -60.0,
                                   f"{p}_p_mid": -8.05232, f"{p}_p_scale": 7.42636, f"{p}_p_tau": 2.25518,
                                   f"{p}_q_mid": -15.6456, f"{p}_q_scale": -9.97468, f"{p}_q_tau": 149.963}
            self.channel_states = {f"{p}_p": 0.0, f"{p}_q": 0.0}
            self.current_name = f"i_{p}"

        def update_states(self, states, dt, v, params):
            p = self._name
            out = {}
            for g in ("p", "q"):
                inf = x_inf(v, params[f"{p}_{g}_mid"], params[f"{p}_{g}_scale"])
                out[f"{p}_{g}"] = relax(states[f"{p}_{g}"], inf, params[f"{p}_{g}_tau"], dt)
            return out

        def compute_current(self, states, v, params):
            p = self._name
            return params[f"{p}_g"] * states[f"{p}_p"] ** 4 * states[f"{p}_q"] * (v - params[f"{p}_erev"])

        def init_state(self, states, v, params, delta_t):
            p = self._name
            return {f"{p}_{g}": x_inf(v, params[f"{p}_{g}_mid"], params[f"{p}_{g}_scale"]) for g in ("p", "q")}

    class C302CaBoyle(Channel):
        """c302 ``ca_boyle`` (e² f · h(Ca)) with the cell's fixed-factor Ca pool as a state ``Ca`` (mM).

        The pool is stepped exactly for the Ca current of the start of the step (held over the step):
        Ca∞ = Ca_rest + τ·ρ·I_Ca,in/A, Ca ← Ca∞ + (Ca − Ca∞)·exp(−Δt/τ), then Ca ≥ 0 as in NeuroML.
        ``rho`` is c302's factor in mM/ms per (pA/µm²).
        """

        def __init__(self, name=None):
            self.current_is_in_mA_per_cm2 = True
            super().__init__(name)
            p = self._name
            self.channel_params = {
                f"{p}_g": 3e-3, f"{p}_erev": 40.0,
                f"{p}_e_mid": -3.3568, f"{p}_e_scale": 6.74821, f"{p}_e_tau": 0.100027,
                f"{p}_f_mid": 25.1815, f"{p}_f_scale": -5.03176, f"{p}_f_tau": 150.88,
                f"{p}_h_alpha": 0.282473, f"{p}_h_ca_half": 6.41889e-08, f"{p}_h_k": -1.00056e-08,
                f"{p}_rho": 2.38919e-07, f"{p}_decay": 11.5943, f"{p}_rest": 0.0,
            }
            self.channel_states = {f"{p}_e": 0.0, f"{p}_f": 0.0, f"{p}_Ca": 0.0}
            self.current_name = f"i_{p}"

        def _current(self, e, f, ca, v, params):
            p = self._name
            h_inf = sigmoid((ca - params[f"{p}_h_ca_half"]) / params[f"{p}_h_k"])
            h = 1.0 + (h_inf - 1.0) * params[f"{p}_h_alpha"]
            return params[f"{p}_g"] * e * e * f * h * (v - params[f"{p}_erev"])

        def update_states(self, states, dt, v, params):
            p = self._name
            e, f, ca = states[f"{p}_e"], states[f"{p}_f"], states[f"{p}_Ca"]
            i_in = -_MA_PER_CM2_TO_PA_PER_UM2 * self._current(e, f, ca, v, params)  # pA/µm², inward
            tau = params[f"{p}_decay"]
            ca_inf = params[f"{p}_rest"] + tau * params[f"{p}_rho"] * i_in
            ca_new = jnp.maximum(relax(ca, ca_inf, tau, dt), 0.0)
            out = {f"{p}_Ca": ca_new}
            for g, x in (("e", e), ("f", f)):
                inf = x_inf(v, params[f"{p}_{g}_mid"], params[f"{p}_{g}_scale"])
                out[f"{p}_{g}"] = relax(x, inf, params[f"{p}_{g}_tau"], dt)
            return out

        def compute_current(self, states, v, params):
            p = self._name
            return self._current(states[f"{p}_e"], states[f"{p}_f"], states[f"{p}_Ca"], v, params)

        def init_state(self, states, v, params, delta_t):
            p = self._name
            return {f"{p}_{g}": x_inf(v, params[f"{p}_{g}_mid"], params[f"{p}_{g}_scale"]) for g in ("e", "f")}

    class C302GradedSynapse(Synapse):
        """NeuroML ``gradedSynapse``: ds/dt = k (s∞ − s)/max(1 − s∞, 1e-4); I = gS·s·(V_post − E) (nA).

        ``gS`` (µS) is c302's weight × conductance.
        """

        def __init__(self, name=None):
            super().__init__(name)
            p = self._name
            self.synapse_params = {f"{p}_gS": 9e-5, f"{p}_e_syn": 0.0, f"{p}_v_th": 0.0,
                                   f"{p}_delta": 5.0, f"{p}_k": 0.025}
            self.synapse_states = {f"{p}_s": 0.0}

        def update_states(self, states, delta_t, pre_voltage, post_voltage, params):
            p = self._name
            z = (pre_voltage - params[f"{p}_v_th"]) / params[f"{p}_delta"]
            tau = jnp.maximum(sigmoid(-z), 1e-4) / params[f"{p}_k"]
            return {f"{p}_s": relax(states[f"{p}_s"], sigmoid(z), tau, delta_t)}

        def compute_current(self, states, pre_voltage, post_voltage, params):
            p = self._name
            return params[f"{p}_gS"] * states[f"{p}_s"] * (post_voltage - params[f"{p}_e_syn"])

    class C302GapJunction(Synapse):
        """One side of a NeuroML ``gapJunction``: I = gS·(V_post − V_pre) (nA, outward from post)."""

        def __init__(self, name=None):
            super().__init__(name)
            self.synapse_params = {f"{self._name}_gS": 5.2e-7}
            self.synapse_states = {}

        def update_states(self, states, delta_t, pre_voltage, post_voltage, params):
            return {}

        def compute_current(self, states, pre_voltage, post_voltage, params):
            return params[f"{self._name}_gS"] * (post_voltage - pre_voltage)

    return dict(Leak=C302Leak, k_slow=C302KSlow, k_fast=C302KFast, ca_boyle=C302CaBoyle,
                graded=C302GradedSynapse, gap=C302GapJunction)


def pulse_currents_nA(spec, duration_ms: float, dt_ms: float) -> dict[int, np.ndarray]:
    """Per stimulated cell (index in ``spec.cells``), the pulse current at each Jaxley step (nA).

    Jaxley holds ``i[k]`` over the step from t_k = k·Δt to t_k + Δt; a pulse is on for the steps
    whose midpoint lies in [delay, delay + duration).
    """
    n_steps = int(duration_ms // dt_ms + 1)
    t_mid = (np.arange(n_steps) + 0.5) * dt_ms
    index = {n: i for i, n in enumerate(spec.cell_names)}
    out: dict[int, np.ndarray] = {}
    for pulse in spec.inputs:
        on = (t_mid >= pulse.delay_ms) & (t_mid < pulse.delay_ms + pulse.duration_ms)
        i = index[pulse.cell]
        out[i] = out.get(i, np.zeros(n_steps)) + np.where(on, pulse.amplitude_pA * 1e-3, 0.0)
    return out


def build_jaxley_network(spec, duration_ms: float, dt_ms: float, record_ca: bool = True):
    """A :class:`jaxley.Network` equivalent to ``spec`` (c302 C1/C2: graded synapses, gap junctions).

    Arguments:
        spec: the network (:func:`owjax.neural.c302_data.load_c302_network` or a subset).
        duration_ms: simulated time (ms), for the stimulus arrays.
        dt_ms: Jaxley's time step (ms).
        record_ca: also record each cell's Ca (mM), after all the voltages.

    Returns:
        ``(net, names)``: the network with V (mV) of every cell recorded (in ``names`` order, then Ca
        when ``record_ca``), stimuli inserted and states initialised (V₀, gates at x∞(V₀), Ca₀, s = 0).

    Raises:
        ValueError: a channel, gate kind or synapse kind that has no Jaxley equivalent here
            (gradedSynapse2 of C0, non-c302 channels), naming it and what is supported.
    """
    import jax.numpy as jnp
    import jaxley as jx

    classes = _classes()
    names = list(spec.cell_names)
    n = len(names)
    index = {c: i for i, c in enumerate(names)}
    for ct in spec.cell_types.values():
        for dens in ct.channels:
            if dens.channel not in SUPPORTED_CHANNELS:
                raise ValueError(f"channel {dens.channel!r} of cell type {ct.id!r} has no Jaxley version here; "
                                 f"supported: {SUPPORTED_CHANNELS}")
    kinds = {spec.synapses[c.synapse].kind for c in spec.chemical}
    if kinds - {"graded"}:
        raise ValueError(f"synapse kinds {sorted(kinds - {'graded'})} have no Jaxley version here; "
                         "supported: graded (c302 C1/C2) chemical synapses and gap junctions")

    comp = jx.Compartment()
    cell = jx.Cell(jx.Branch(comp, ncomp=1), parents=[-1])
    net = jx.Network([cell for _ in range(n)])
    channels = {cid: classes[cid](f"c302_{cid}") for cid in SUPPORTED_CHANNELS}
    for ch in channels.values():
        net.insert(ch)

    by_type: dict[str, list[int]] = {}
    for i, (_, ctype) in enumerate(spec.cells):
        by_type.setdefault(ctype, []).append(i)
    for ctype, rows in by_type.items():
        ct = spec.cell_types[ctype]
        view = net.select(nodes=rows)
        # single compartment: a cylinder with 2πrL = area (L = 2r gives the sphere's area 4πr²)
        r = math.sqrt(ct.area_um2 / (4.0 * math.pi))
        view.set("radius", r)
        view.set("length", 2.0 * r)
        view.set("capacitance", ct.specific_capacitance_pF_per_um2 * _PF_PER_UM2_TO_UF_PER_CM2)
        view.set("v", ct.v_init_mV)
        present = {d.channel for d in ct.channels}
        for cid, ch in channels.items():
            if cid not in present:
                view.set(f"{ch.name}_g", 0.0)
        for dens in ct.channels:
            ch = channels[dens.channel]
            view.set(f"{ch.name}_g", dens.g_density_nS_per_um2 * _NS_PER_UM2_TO_S_PER_CM2)
            view.set(f"{ch.name}_erev", dens.erev_mV)
            for gate in spec.channels[dens.channel].gates:
                if gate.kind == "hh_sigmoid":
                    if gate.rate != 1.0:
                        raise ValueError(f"gate {dens.channel}/{gate.name}: rate {gate.rate} != 1 is not supported")
                    view.set(f"{ch.name}_{gate.name}_mid", gate.midpoint_mV)
                    view.set(f"{ch.name}_{gate.name}_scale", gate.scale_mV)
                    view.set(f"{ch.name}_{gate.name}_tau", gate.tau_ms)
                elif gate.kind == "ca_dependent_h" and dens.channel == "ca_boyle":
                    view.set(f"{ch.name}_h_alpha", gate.alpha)
                    view.set(f"{ch.name}_h_ca_half", gate.ca_half_mM)
                    view.set(f"{ch.name}_h_k", gate.k_mM)
                else:
                    raise ValueError(f"gate {dens.channel}/{gate.name} of kind {gate.kind!r} is not supported")
        ca_name = channels["ca_boyle"].name
        if ct.ca_pool is None:
            view.set(f"{ca_name}_rho", 0.0)
        else:
            pool = spec.ca_pools[ct.ca_pool]
            view.set(f"{ca_name}_rho", pool.rho)
            view.set(f"{ca_name}_decay", pool.decay_ms)
            view.set(f"{ca_name}_rest", pool.resting_mM)
        view.set(f"{ca_name}_Ca", ct.ca_init_mM)

    nodes = net.nodes
    graded = classes["graded"]("c302_graded")
    if spec.chemical:
        pre = [index[c.pre] for c in spec.chemical]
        post = [index[c.post] for c in spec.chemical]
        # bulk form of jaxley.connect (which takes views; a view cannot repeat a compartment)
        net._append_multiple_synapses(nodes.loc[pre], nodes.loc[post], graded)
        rows = net.edges.index[net.edges["type"] == graded.name]
        syn = [spec.synapses[c.synapse] for c in spec.chemical]
        p = graded.name
        net.edges.loc[rows, f"{p}_gS"] = [c.weight * s.get("conductance_nS") * _NS_TO_US
                                          for c, s in zip(spec.chemical, syn)]
        net.edges.loc[rows, f"{p}_e_syn"] = [s.get("erev_mV") for s in syn]
        net.edges.loc[rows, f"{p}_v_th"] = [s.get("vth_mV") for s in syn]
        net.edges.loc[rows, f"{p}_delta"] = [s.get("delta_mV") for s in syn]
        net.edges.loc[rows, f"{p}_k"] = [s.get("k_per_ms") for s in syn]
    if spec.electrical:
        gap = classes["gap"]("c302_gap")
        a = [index[c.pre] for c in spec.electrical]
        b = [index[c.post] for c in spec.electrical]
        g = [c.weight * spec.synapses[c.synapse].get("conductance_nS") * _NS_TO_US for c in spec.electrical]
        net._append_multiple_synapses(nodes.loc[a + b], nodes.loc[b + a], gap)
        rows = net.edges.index[net.edges["type"] == gap.name]
        net.edges.loc[rows, f"{gap.name}_gS"] = g + g

    for i, current in pulse_currents_nA(spec, duration_ms, dt_ms).items():
        net.cell(i).branch(0).comp(0).stimulate(jnp.asarray(current), verbose=False)
    net.record("v", verbose=False)
    if record_ca:
        net.record(f"{channels['ca_boyle'].name}_Ca", verbose=False)
    net.init_states(delta_t=dt_ms)
    return net, names

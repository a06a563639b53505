"""Metadata of the c302 network's parameters: unit, DD017 bounds, what a row is, in words.

:meth:`owjax.neural.network.NetworkModel.parameter_info` returns this table; the fitting framework
(:mod:`owjax.fitting.params`) and the registry read it from there. Pulse timing is not here: it
is static input (the solver's jump times), not a parameter.
"""

from __future__ import annotations

import math

from owjax.core.component import ParameterInfo

__all__ = ["NETWORK_PARAMETERS"]

INF = math.inf

_DD017_G = "DD017: 0 < g < 100 mS/cm²"
_DD017_E = "DD017: −100 < E_rev < +80 mV"
_DD017_TAU = "DD017: 0.01 < τ < 10,000 ms"
_DD017_CONC = "DD017: concentrations > 0"
_POS = "positivity"
_V = "physiological voltage range −100 … +80 mV (as DD017's E_rev bound)"

NETWORK_PARAMETERS: dict[str, ParameterInfo] = {
    i.path: i
    for i in [
        ParameterInfo("membranes.capacitance_pF", "pF", (0.0, INF), "cell", "membrane capacitance", _POS),
        ParameterInfo("membranes.area_um2", "um2", (0.0, INF), "cell", "membrane area (Ca pool volume)", _POS),
        ParameterInfo("membranes.v_init_mV", "mV", (-100.0, 80.0), "cell", "initial membrane potential", _V),
        ParameterInfo("membranes.ca_init_mM", "mM", (0.0, INF), "cell", "initial intracellular Ca", _DD017_CONC),
        ParameterInfo("membranes.ca_rho", "mM_per_ms_per_pA_per_um2", (0.0, INF), "cell",
                 "Ca pool fixed factor ρ (Ca influx per current density)", _POS),
        ParameterInfo("membranes.ca_decay_ms", "ms", (0.01, 10_000.0), "cell", "Ca pool decay time constant",
                 _DD017_TAU),
        ParameterInfo("membranes.ca_resting_mM", "mM", (0.0, INF), "cell", "resting Ca", _DD017_CONC),
        ParameterInfo("channels.g_max_nS", "mS_per_cm2", (0.0, 100.0), "channel",
                 "maximal conductance density of an ion channel", _DD017_G),
        ParameterInfo("channels.erev_mV", "mV", (-100.0, 80.0), "channel", "channel reversal potential", _DD017_E),
        ParameterInfo("gates.midpoint_mV", "mV", (-100.0, 80.0), "gate", "gate half-activation voltage", _V),
        ParameterInfo("gates.scale_mV", "mV", None, "gate",
                 "gate slope (its sign tells activation from inactivation: give bounds)", ""),
        ParameterInfo("gates.rate", "1", (0.0, 1.0), "gate", "gate steady-state maximum", "open probability ≤ 1"),
        ParameterInfo("gates.tau_ms", "ms", (0.01, 10_000.0), "gate", "gate time constant", _DD017_TAU),
        ParameterInfo("ca_gates.alpha", "1", (0.0, 1.0), "ca_gate", "depth of Ca-dependent inactivation",
                 "fraction ≤ 1"),
        ParameterInfo("ca_gates.ca_half_mM", "mM", (0.0, INF), "ca_gate", "half-inactivation Ca", _DD017_CONC),
        ParameterInfo("ca_gates.k_mM", "mM", None, "ca_gate", "Ca-inactivation slope (negative: give bounds)", ""),
        ParameterInfo("graded.weight", "1", (0.0, INF), "graded", "synaptic weight (c302: synapse count)", _POS),
        ParameterInfo("graded.g_nS", "nS", (0.0, INF), "graded", "synaptic conductance per synapse", _POS),
        ParameterInfo("graded.erev_mV", "mV", (-100.0, 80.0), "graded", "synaptic reversal potential", _DD017_E),
        ParameterInfo("graded.vth_mV", "mV", (-100.0, 80.0), "graded", "presynaptic threshold", _V),
        ParameterInfo("graded.delta_mV", "mV", (0.0, INF), "graded", "presynaptic slope", _POS),
        ParameterInfo("graded.k_per_ms", "1_per_ms", (1e-4, 100.0), "graded", "synaptic rate constant",
                 "DD017 τ bound as a rate: 1/10,000 … 1/0.01 per ms"),
        ParameterInfo("graded2.weight", "1", (0.0, INF), "graded2", "synaptic weight (c302: synapse count)", _POS),
        ParameterInfo("graded2.g_nS", "nS", (0.0, INF), "graded2", "synaptic conductance per synapse", _POS),
        ParameterInfo("graded2.erev_mV", "mV", (-100.0, 80.0), "graded2", "synaptic reversal potential", _DD017_E),
        ParameterInfo("graded2.vth_mV", "mV", (-100.0, 80.0), "graded2", "presynaptic threshold", _V),
        ParameterInfo("graded2.beta_per_mV", "1_per_mV", (0.0, INF), "graded2", "presynaptic steepness", _POS),
        ParameterInfo("graded2.ar_per_ms", "1_per_ms", (1e-4, 100.0), "graded2", "activation rate",
                 "DD017 τ bound as a rate"),
        ParameterInfo("graded2.ad_per_ms", "1_per_ms", (1e-4, 100.0), "graded2", "deactivation rate",
                 "DD017 τ bound as a rate"),
        ParameterInfo("gaps.weight", "1", (0.0, INF), "gap", "gap junction weight (c302: junction count)", _POS),
        ParameterInfo("gaps.g_nS", "nS", (0.0, INF), "gap", "gap junction conductance per junction", _POS),
        ParameterInfo("stimuli.amplitude_pA", "pA", (-INF, INF), "stimulus", "pulse amplitude", "none"),
    ]
}

"""Ion-channel gates and currents of c302's HH-style cells (pure functions, elementwise).

Conventions (NeuroML's): a current is positive when it flows *into* the cell (depolarising),
``I = g · (E_rev − V)``. Units: mV, ms, nS, pA, mM (see :mod:`owjax.core.units`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = [
    "sigmoid_steady_state",
    "gate_rate",
    "ca_dependent_h_factor",
    "ohmic_current",
    "ca_pool_rate",
]


def sigmoid_steady_state(
    v_mV: Float[Array, "*n"],
    midpoint_mV: Float[Array, "*n"],
    scale_mV: Float[Array, "*n"],
    rate: Float[Array, "*n"],
) -> Float[Array, "*n"]:
    """NeuroML ``HHSigmoidVariable``: x∞ = rate / (1 + exp((midpoint − V)/scale)).

    Arguments:
        v_mV: membrane potential (mV).
        midpoint_mV: half-activation voltage (mV).
        scale_mV: slope (mV); negative for inactivation gates.
        rate: maximum of the steady state (dimensionless, 1 in c302).

    Returns:
        The steady-state open probability x∞ (dimensionless).
    """
    return rate * jax.nn.sigmoid((v_mV - midpoint_mV) / scale_mV)


def gate_rate(
    x: Float[Array, "*n"], x_inf: Float[Array, "*n"], tau_ms: Float[Array, "*n"]
) -> Float[Array, "*n"]:
    """dx/dt = (x∞ − x)/τ for a gate with a fixed time constant (``fixedTimeCourse``), in 1/ms."""
    return (x_inf - x) / tau_ms


def ca_dependent_h_factor(
    ca_mM: Float[Array, "*n"],
    ca_half_mM: Float[Array, "*n"],
    k_mM: Float[Array, "*n"],
    alpha: Float[Array, "*n"],
) -> Float[Array, "*n"]:
    """c302's instantaneous Ca-dependent inactivation (``customHGate`` of ca_boyle).

    h∞ = 1 / (1 + exp((Ca_half − Ca)/k)); the channel conductance is multiplied by
    1 + (h∞ − 1)·alpha (alpha = 0.282473 in c302, k < 0 so h∞ falls as Ca rises).

    Arguments:
        ca_mM: intracellular Ca (mM, c302's concentration unit).
        ca_half_mM: half-inactivation concentration (mM).
        k_mM: slope (mM).
        alpha: depth of the inactivation (dimensionless).

    Returns:
        The conductance factor (dimensionless, between 1 − alpha and 1).
    """
    h_inf = jax.nn.sigmoid((ca_mM - ca_half_mM) / k_mM)
    return 1.0 + (h_inf - 1.0) * alpha


def ohmic_current(
    g_nS: Float[Array, "*n"], erev_mV: Float[Array, "*n"], v_mV: Float[Array, "*n"]
) -> Float[Array, "*n"]:
    """I = g · (E_rev − V) in pA (positive inward)."""
    return g_nS * (erev_mV - v_mV)


def ca_pool_rate(
    ca_mM: Float[Array, "*n"],
    i_ca_pA: Float[Array, "*n"],
    area_um2: Float[Array, "*n"],
    rho: Float[Array, "*n"],
    decay_ms: Float[Array, "*n"],
    resting_mM: Float[Array, "*n"],
) -> Float[Array, "*n"]:
    """NeuroML ``fixedFactorConcentrationModel``: dCa/dt = ρ·I_Ca/A − (Ca − Ca_rest)/τ (mM/ms).

    NeuroML resets Ca to 0 whenever it goes negative; here the rate is set to zero at Ca ≤ 0 when it
    points down, which keeps Ca ≥ 0 in the ODE without an event (I_Ca is inward, so in c302's cells
    Ca only approaches 0 from above and the clamp is never active in practice).

    Arguments:
        ca_mM: intracellular Ca (mM).
        i_ca_pA: total inward Ca current (pA).
        area_um2: membrane area (µm²).
        rho: c302's fixed factor in mM/ms per (pA/µm²) (see :mod:`owjax.core.units`).
        decay_ms: decay time constant (ms).
        resting_mM: resting concentration (mM).

    Returns:
        dCa/dt in mM/ms.
    """
    rate = rho * i_ca_pA / area_um2 - (ca_mM - resting_mM) / decay_ms
    return jnp.where((ca_mM <= 0.0) & (rate < 0.0), 0.0, rate)

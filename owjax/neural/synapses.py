"""Graded chemical synapses and gap junctions of c302 (pure, elementwise functions).

Units: mV, ms, nS, pA. Currents are positive into the postsynaptic cell.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = [
    "graded_synapse_rate",
    "graded_synapse2_rate",
    "graded_synapse_decay",
    "graded_synapse2_decay",
    "graded_synapse_current",
    "gap_junction_current",
    "GRADED_TAU_GUARD",
]

#: NeuroML's gradedSynapse stops integrating when 1 − s∞ < 1e-4 (and sets s := s∞); owjax keeps
#: integrating with the time constant floored at that value, which is continuous and differentiable.
GRADED_TAU_GUARD = 1e-4


def graded_synapse_rate(
    s: Float[Array, "*e"],
    v_pre_mV: Float[Array, "*e"],
    vth_mV: Float[Array, "*e"],
    delta_mV: Float[Array, "*e"],
    k_per_ms: Float[Array, "*e"],
) -> Float[Array, "*e"]:
    """NeuroML ``gradedSynapse`` (c302 C1/C2): ds/dt = k·(s∞ − s)/(1 − s∞).

    s∞ = 1 / (1 + exp((Vth − V_pre)/δ)), τ = (1 − s∞)/k.

    Arguments:
        s: synaptic activation (dimensionless, 0…1).
        v_pre_mV: presynaptic membrane potential (mV).
        vth_mV: half-activation voltage (mV).
        delta_mV: slope of the activation curve (mV).
        k_per_ms: transmitter–receptor dissociation rate (1/ms).

    Returns:
        ds/dt in 1/ms.
    """
    x = (v_pre_mV - vth_mV) / delta_mV
    s_inf = jax.nn.sigmoid(x)
    one_minus = jax.nn.sigmoid(-x)  # 1 − s∞ without cancellation
    return k_per_ms * (s_inf - s) / jnp.maximum(one_minus, GRADED_TAU_GUARD)


def graded_synapse_decay(
    v_pre_mV: Float[Array, "*e"],
    vth_mV: Float[Array, "*e"],
    delta_mV: Float[Array, "*e"],
    k_per_ms: Float[Array, "*e"],
) -> Float[Array, "*e"]:
    """Relaxation rate of a ``gradedSynapse``, 1/τ = k/(1 − s∞) in 1/ms (−∂/∂s of :func:`graded_synapse_rate`).

    Arguments: as :func:`graded_synapse_rate`.

    Returns:
        The rate in 1/ms (≥ k).
    """
    one_minus = jax.nn.sigmoid(-(v_pre_mV - vth_mV) / delta_mV)
    return k_per_ms / jnp.maximum(one_minus, GRADED_TAU_GUARD)


def graded_synapse2_decay(
    v_pre_mV: Float[Array, "*e"],
    vth_mV: Float[Array, "*e"],
    beta_per_mV: Float[Array, "*e"],
    ar_per_ms: Float[Array, "*e"],
    ad_per_ms: Float[Array, "*e"],
) -> Float[Array, "*e"]:
    """Relaxation rate of a ``gradedSynapse2``, a_r·φ + a_d in 1/ms (−∂/∂s of :func:`graded_synapse2_rate`).

    Arguments: as :func:`graded_synapse2_rate`.

    Returns:
        The rate in 1/ms.
    """
    phi = jax.nn.sigmoid(beta_per_mV * (v_pre_mV - vth_mV))
    return ar_per_ms * phi + ad_per_ms


def graded_synapse2_rate(
    s: Float[Array, "*e"],
    v_pre_mV: Float[Array, "*e"],
    vth_mV: Float[Array, "*e"],
    beta_per_mV: Float[Array, "*e"],
    ar_per_ms: Float[Array, "*e"],
    ad_per_ms: Float[Array, "*e"],
) -> Float[Array, "*e"]:
    """c302's ``gradedSynapse2`` (C0, after Kunert et al. 2017): ds/dt = a_r·φ·(1 − s) − a_d·s.

    φ = 1 / (1 + exp(β·(V_th − V_pre))).

    Returns:
        ds/dt in 1/ms.
    """
    phi = jax.nn.sigmoid(beta_per_mV * (v_pre_mV - vth_mV))
    return ar_per_ms * phi * (1.0 - s) - ad_per_ms * s


def graded_synapse_current(
    s: Float[Array, "*e"],
    weight: Float[Array, "*e"],
    g_nS: Float[Array, "*e"],
    erev_mV: Float[Array, "*e"],
    v_post_mV: Float[Array, "*e"],
) -> Float[Array, "*e"]:
    """I = w · g · s · (E_rev − V_post) in pA; ``w`` is c302's weight (the synapse count)."""
    return weight * g_nS * s * (erev_mV - v_post_mV)


def gap_junction_current(
    weight: Float[Array, "*e"],
    g_nS: Float[Array, "*e"],
    v_self_mV: Float[Array, "*e"],
    v_peer_mV: Float[Array, "*e"],
) -> Float[Array, "*e"]:
    """NeuroML ``gapJunction``: I = w · g · (V_peer − V_self) in pA, into the cell ``self``.

    A NeuroML electrical connection puts one such junction on each side, so the pre cell gets the
    opposite current.
    """
    return weight * g_nS * (v_peer_mV - v_self_mV)

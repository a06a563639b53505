"""The c302 network's vector field and decay rates with a hand-written derivative (uniform cells).

:meth:`owjax.neural.network.NetworkModel.field_and_decay` is, for every c302 parameter set, evaluated
here: all cells carry the same channels and gates (:class:`~owjax.neural.network.UniformCellLayout`),
so the channel part is made of reshapes and static slices. JAX's automatic derivative of that field
is correct but spends its reverse pass on work a hand-written one avoids (``docs/speed.md``, "where
the step's VJP goes"):

* every gather ``V[post]`` of a synapse's postsynaptic potential becomes a scatter-add in reverse
  mode; here the chemical synapses' dependence on ``V[post]`` is written as ``−G_chem,i · dV_i``
  (``G_chem`` = the cell's total synaptic conductance, already summed by the forward pass), an
  elementwise product, and the presynaptic gathers of the chemical synapses and both sides of the
  gap junctions are one gather of the tangent, so one scatter-add in reverse;
* the derivative of each sigmoid reuses its value (σ' = σ·(1 − σ)), and 1 − s∞ is σ(−x), not a
  second exponential.

Two variants, chosen by :attr:`~owjax.neural.network.NetworkModel.derivative`:

* ``"hand"`` (the default), :func:`uniform_field_and_decay`: a ``jax.custom_jvp``. Forward mode
  (``jax.jvp``, ``jacfwd``, diffrax's Newton–Krylov solvers) and reverse mode (JAX transposes the
  linear rule) both use it, and ``vmap`` works as usual.
* ``"hand_reverse_only"``, :func:`uniform_field_and_decay_reverse_only`: a ``jax.custom_vjp`` whose
  reverse pass is written out (fewer, larger elementwise passes than JAX's transpose of the rule
  above: 40 % less for the field's VJP on C1 Full). No forward mode; the discrete adjoint
  (:mod:`owjax.core.discrete_adjoint`) uses it in its backward pass, where only reverse mode occurs.

Both are exact (the same function, differentiated by hand): ``tests/test_uniform_field.py``
compares them with JAX's own derivative of the same code for C0, C1 and C2.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import CustomVJPPrimal, SymbolicZero
from jaxtyping import Array, Float

from owjax.core.units import CA_STATE_SCALE
from owjax.neural.network import _segment_sum
from owjax.neural.synapses import GRADED_TAU_GUARD

__all__ = ["uniform_field_and_decay", "uniform_field_and_decay_reference", "uniform_field_and_decay_reverse_only"]


def _primal(m, y, i_in):
    """Field, decay rates and what their derivative reuses (see :func:`uniform_field_and_decay`)."""
    lay, n = m.layout, m.n_cells
    nch, ng = lay.channels_per_cell, lay.gates_per_cell
    mb, gt, cg = m.membranes, m.gates, m.ca_gates
    gs, g2, gj = m.graded, m.graded2, m.gaps
    v, ca = y["V"], y["Ca"]
    ca_mM = ca / CA_STATE_SCALE
    x = y["gates"].reshape(n, ng)
    ones = jnp.ones((n,), v.dtype)
    p_cols = []
    for slots in lay.gate_slots:
        p = ones
        for g in slots:
            p = p * x[:, g]
        p_cols.append(p)
    r = {}
    if lay.h_slots:
        zh = (ca_mM - cg.ca_half_mM) / cg.k_mM
        sh = jax.nn.sigmoid(zh)
        h = 1.0 + (sh - 1.0) * cg.alpha
        r.update(zh=zh, sh=sh, h=h)
        q_cols = [p * h if c in lay.h_slots else p for c, p in enumerate(p_cols)]
    else:
        q_cols = p_cols
    q = jnp.stack(q_cols, axis=1)
    gmax = m.channels.g_max_nS.reshape(n, nch)
    g_ch = gmax * q
    drive = m.channels.erev_mV.reshape(n, nch) - v[:, None]
    i_ch = g_ch * drive
    i_mem = jnp.sum(i_ch, axis=1)
    i_ca = sum((i_ch[:, c] for c in lay.ca_slots), jnp.zeros((n,), v.dtype))
    g_mem = jnp.sum(g_ch, axis=1)
    # chemical synapses
    g_chem = gs.weight * gs.g_nS * y["s"]
    drive_s = gs.erev_mV - v[gs.post]
    g_chem2 = g2.weight * g2.g_nS * y["s2"]
    drive_s2 = g2.erev_mV - v[g2.post]
    i_syn = _segment_sum(g_chem * drive_s, gs.post, n) + _segment_sum(g_chem2 * drive_s2, g2.post, n)
    G_chem = _segment_sum(g_chem, gs.post, n) + _segment_sum(g_chem2, g2.post, n)
    wg = gj.weight * gj.g_nS
    dv_gap = v[gj.pre] - v[gj.post]
    i_gap = wg * dv_gap
    i_syn = i_syn + _segment_sum(i_gap, gj.post, n) - _segment_sum(i_gap, gj.pre, n)
    G_gap = _segment_sum(wg, gj.post, n) + _segment_sum(wg, gj.pre, n)
    i_total = i_mem + i_syn + i_in
    dv = i_total / mb.capacitance_pF
    lam_v = (g_mem + G_chem + G_gap) / mb.capacitance_pF
    # Ca pool
    ca_rate = mb.ca_rho * i_ca / mb.area_um2 - (ca_mM - mb.ca_resting_mM) / mb.ca_decay_ms
    ca_flowing = ~((ca_mM <= 0.0) & (ca_rate < 0.0))
    dca = jnp.where(ca_flowing, ca_rate, 0.0) * CA_STATE_SCALE
    # gates
    vg = jnp.broadcast_to(v[:, None], (n, ng)).reshape(-1)
    z = (vg - gt.midpoint_mV) / gt.scale_mV
    sg = jax.nn.sigmoid(z)
    dgates = (gt.rate * sg - y["gates"]) / gt.tau_ms
    # graded synapse activations
    xs = (v[gs.pre] - gs.vth_mV) / gs.delta_mV
    s_inf = jax.nn.sigmoid(xs)
    one_minus = jax.nn.sigmoid(-xs)
    den = jnp.maximum(one_minus, GRADED_TAU_GUARD)
    lam_s = gs.k_per_ms / den
    ds = lam_s * (s_inf - y["s"])
    dpre2 = v[g2.pre] - g2.vth_mV
    phi = jax.nn.sigmoid(g2.beta_per_mV * dpre2)
    lam_s2 = g2.ar_per_ms * phi + g2.ad_per_ms
    ds2 = g2.ar_per_ms * phi - lam_s2 * y["s2"]
    field = {"V": dv, "Ca": dca, "gates": dgates, "s": ds, "s2": ds2}
    decay = {"V": lam_v, "Ca": 1.0 / mb.ca_decay_ms, "gates": 1.0 / gt.tau_ms, "s": lam_s, "s2": lam_s2}
    r.update(ca_mM=ca_mM, x=x, p_cols=p_cols, q=q, gmax=gmax, g_ch=g_ch, drive=drive, i_ca=i_ca, g_mem=g_mem,
             g_chem=g_chem, drive_s=drive_s, g_chem2=g_chem2, drive_s2=drive_s2, G_chem=G_chem, wg=wg,
             dv_gap=dv_gap, lam_v=lam_v, ca_rate=ca_rate, ca_flowing=ca_flowing, z=z, sg=sg, xs=xs, s_inf=s_inf,
             one_minus=one_minus, den=den, lam_s=lam_s, dpre2=dpre2, phi=phi)
    return (field, decay), r


def uniform_field_and_decay_reference(m, y: dict, i_in: Float[Array, " n"]) -> tuple[dict, dict]:
    """The same function as :func:`uniform_field_and_decay` without the hand-written derivative
    (JAX differentiates it op by op): the reference its tests compare with."""
    return _primal(m, y, i_in)[0]


@jax.custom_jvp
def uniform_field_and_decay(m, y: dict, i_in: Float[Array, " n"]) -> tuple[dict, dict]:
    """dy/dt and each variable's decay rate λ = −∂f_i/∂y_i of a network with a uniform cell layout.

    Arguments:
        m: a :class:`~owjax.neural.network.NetworkModel` whose ``layout`` is not None.
        y: its state (``V`` mV, ``Ca`` nM, ``gates``, ``s``, ``s2``).
        i_in: current injected into each cell from outside the network (stimuli and couplings; pA,
            inward positive).

    Returns:
        ``(field, decay)``, two dicts shaped like ``y``: mV/ms, nM/ms and 1/ms; 1/ms.
    """
    return _primal(m, y, i_in)[0]


@uniform_field_and_decay.defjvp
def _uniform_field_and_decay_jvp(primals, tangents):
    m, y, i_in = primals
    tm, ty, ti = tangents
    (field, decay), r = _primal(m, y, i_in)
    lay, n = m.layout, m.n_cells
    nch, ng = lay.channels_per_cell, lay.gates_per_cell
    mb, gt, cg = m.membranes, m.gates, m.ca_gates
    gs, g2, gj = m.graded, m.graded2, m.gaps
    tmb, tgt, tcg = tm.membranes, tm.gates, tm.ca_gates
    tgs, tg2, tgj = tm.graded, tm.graded2, tm.gaps
    v = y["V"]
    t_v = ty["V"]
    # one gather of the potential's tangent for every presynaptic and gap-junction endpoint: its
    # transpose is one scatter-add
    e1, e2, j = gs.pre.shape[0], g2.pre.shape[0], gj.pre.shape[0]
    t_v_at = t_v[jnp.concatenate([gs.pre, g2.pre, gj.pre, gj.post])]
    t_vpre, t_vpre2 = t_v_at[:e1], t_v_at[e1:e1 + e2]
    t_vgap = t_v_at[e1 + e2:e1 + e2 + j] - t_v_at[e1 + e2 + j:]
    # channels
    t_ca_mM = ty["Ca"] / CA_STATE_SCALE
    t_x = ty["gates"].reshape(n, ng)
    x = r["x"]
    ones = jnp.ones((n,), v.dtype)
    t_p_cols = []
    for slots in lay.gate_slots:
        p, t_p = ones, jnp.zeros((n,), v.dtype)
        for g in slots:
            t_p = t_p * x[:, g] + p * t_x[:, g]
            p = p * x[:, g]
        t_p_cols.append(t_p)
    if lay.h_slots:
        zh, sh, h = r["zh"], r["sh"], r["h"]
        t_zh = (t_ca_mM - tcg.ca_half_mM - zh * tcg.k_mM) / cg.k_mM
        t_h = sh * (1.0 - sh) * t_zh * cg.alpha + (sh - 1.0) * tcg.alpha
        t_q_cols = [t_p * h + p * t_h if c in lay.h_slots else t_p
                    for c, (p, t_p) in enumerate(zip(r["p_cols"], t_p_cols))]
    else:
        t_q_cols = t_p_cols
    t_q = jnp.stack(t_q_cols, axis=1)
    g_ch = r["g_ch"]
    t_g_ch = tm.channels.g_max_nS.reshape(n, nch) * r["q"] + r["gmax"] * t_q
    # the channel currents' tangent without the −g·t_V part, which is added per cell below
    t_i_ch = t_g_ch * r["drive"] + g_ch * tm.channels.erev_mV.reshape(n, nch)
    t_i_ca = sum((t_i_ch[:, c] for c in lay.ca_slots), jnp.zeros((n,), v.dtype))
    t_i_ca = t_i_ca - sum((g_ch[:, c] for c in lay.ca_slots), jnp.zeros((n,), v.dtype)) * t_v
    t_g_mem = jnp.sum(t_g_ch, axis=1)
    # synapses and gap junctions
    g_chem, g_chem2 = r["g_chem"], r["g_chem2"]
    t_g_chem = (tgs.weight * gs.g_nS + gs.weight * tgs.g_nS) * y["s"] + gs.weight * gs.g_nS * ty["s"]
    t_g_chem2 = (tg2.weight * g2.g_nS + g2.weight * tg2.g_nS) * y["s2"] + g2.weight * g2.g_nS * ty["s2"]
    t_wg = tgj.weight * gj.g_nS + gj.weight * tgj.g_nS
    t_i_gap = t_wg * r["dv_gap"] + r["wg"] * t_vgap
    t_i_syn = (_segment_sum(t_g_chem * r["drive_s"] + g_chem * tgs.erev_mV, gs.post, n)
               + _segment_sum(t_g_chem2 * r["drive_s2"] + g_chem2 * tg2.erev_mV, g2.post, n)
               + _segment_sum(t_i_gap, gj.post, n) - _segment_sum(t_i_gap, gj.pre, n))
    t_G_chem = _segment_sum(t_g_chem, gs.post, n) + _segment_sum(t_g_chem2, g2.post, n)
    t_G_gap = _segment_sum(t_wg, gj.post, n) + _segment_sum(t_wg, gj.pre, n)
    cap, t_cap = mb.capacitance_pF, tmb.capacitance_pF
    # every −g·(t_V at the cell itself) term at once: channels and chemical synapses (G_chem)
    t_i_total = jnp.sum(t_i_ch, axis=1) + t_i_syn + ti - (r["g_mem"] + r["G_chem"]) * t_v
    t_dv = (t_i_total - field["V"] * t_cap) / cap
    t_lam_v = (t_g_mem + t_G_chem + t_G_gap - decay["V"] * t_cap) / cap
    # Ca pool
    i_ca, area, rho, tau_ca = r["i_ca"], mb.area_um2, mb.ca_rho, mb.ca_decay_ms
    t_ca_rate = ((tmb.ca_rho * i_ca + rho * t_i_ca - rho * i_ca * tmb.area_um2 / area) / area
                 - (t_ca_mM - tmb.ca_resting_mM) / tau_ca
                 + (r["ca_mM"] - mb.ca_resting_mM) * tmb.ca_decay_ms / (tau_ca * tau_ca))
    t_dca = jnp.where(r["ca_flowing"], t_ca_rate, 0.0) * CA_STATE_SCALE
    # gates
    t_vg = jnp.broadcast_to(t_v[:, None], (n, ng)).reshape(-1)
    z, sg, tau = r["z"], r["sg"], gt.tau_ms
    t_z = (t_vg - tgt.midpoint_mV - z * tgt.scale_mV) / gt.scale_mV
    t_sg = sg * (1.0 - sg) * t_z
    t_dgates = (tgt.rate * sg + gt.rate * t_sg - ty["gates"] - field["gates"] * tgt.tau_ms) / tau
    t_lam_gates = -decay["gates"] * tgt.tau_ms / tau
    # graded synapse activations
    xs, s_inf, one_minus, den, lam_s = r["xs"], r["s_inf"], r["one_minus"], r["den"], r["lam_s"]
    t_xs = (t_vpre - tgs.vth_mV - xs * tgs.delta_mV) / gs.delta_mV
    t_s_inf = s_inf * one_minus * t_xs
    t_den = jnp.where(one_minus > GRADED_TAU_GUARD, -t_s_inf, 0.0)
    t_lam_s = (tgs.k_per_ms - lam_s * t_den) / den
    t_ds = t_lam_s * (s_inf - y["s"]) + lam_s * (t_s_inf - ty["s"])
    phi, dpre2 = r["phi"], r["dpre2"]
    t_phi = phi * (1.0 - phi) * (tg2.beta_per_mV * dpre2 + g2.beta_per_mV * (t_vpre2 - tg2.vth_mV))
    t_lam_s2 = tg2.ar_per_ms * phi + g2.ar_per_ms * t_phi + tg2.ad_per_ms
    t_ds2 = tg2.ar_per_ms * phi + g2.ar_per_ms * t_phi - t_lam_s2 * y["s2"] - decay["s2"] * ty["s2"]
    t_field = {"V": t_dv, "Ca": t_dca, "gates": t_dgates, "s": t_ds, "s2": t_ds2}
    t_decay = {"V": t_lam_v, "Ca": -decay["Ca"] * tmb.ca_decay_ms / tau_ca, "gates": t_lam_gates,
               "s": t_lam_s, "s2": t_lam_s2}
    return (field, decay), (t_field, t_decay)


# ---------------------------------------------------------------- reverse mode only


def _reverse_pass(m, y, r, field, decay, ct_field, ct_decay):
    """Cotangents of (the model's float leaves, the state, the injected current) from those of
    ``(field, decay)`` (``ct_decay`` None: the decay rates are not differentiated), written by hand."""
    lay, n = m.layout, m.n_cells
    nch, ng = lay.channels_per_cell, lay.gates_per_cell
    mb, gt, cg = m.membranes, m.gates, m.ca_gates
    gs, g2, gj = m.graded, m.graded2, m.gaps
    dtype = y["V"].dtype
    cap = mb.capacitance_pF
    u = ct_field["V"] / cap  # the cotangent of each cell's total current
    g_cap = -u * field["V"]
    # Ca pool
    b = jnp.where(r["ca_flowing"], ct_field["Ca"] * CA_STATE_SCALE, 0.0)
    area, rho, tau_ca, i_ca = mb.area_um2, mb.ca_rho, mb.ca_decay_ms, r["i_ca"]
    g_rho = b * i_ca / area
    g_area = -g_rho * rho / area
    a_i_ca = b * rho / area
    a_ca_mM = -b / tau_ca
    g_rest = b / tau_ca
    g_tau_ca = b * (r["ca_mM"] - mb.ca_resting_mM) / (tau_ca * tau_ca)
    # channels: the cotangent of each channel current, and of its conductance
    ca_mask = np.zeros(nch)
    ca_mask[list(lay.ca_slots)] = 1.0
    a_i_ch = u[:, None] + a_i_ca[:, None] * jnp.asarray(ca_mask, dtype)
    g_ch = r["g_ch"]
    g_erev_ch = a_i_ch * g_ch
    a_g_ch = a_i_ch * r["drive"]
    a_v = -jnp.sum(g_erev_ch, axis=1)
    w_lam = None
    if ct_decay is not None:
        w_lam = ct_decay["V"] / cap  # λ_V = (g_mem + G_chem + G_gap)/C
        g_cap = g_cap - w_lam * decay["V"]
        a_g_ch = a_g_ch + w_lam[:, None]
        g_tau_ca = g_tau_ca - ct_decay["Ca"] * decay["Ca"] / tau_ca
    g_gmax = a_g_ch * r["q"]
    a_q = a_g_ch * r["gmax"]
    x = r["x"]
    a_x = [jnp.zeros((n,), dtype) for _ in range(ng)]
    grads_h = None
    if lay.h_slots:
        sh, zh = r["sh"], r["zh"]
        a_h = sum(a_q[:, c] * r["p_cols"][c] for c in lay.h_slots)
        a_zh = a_h * cg.alpha * sh * (1.0 - sh) / cg.k_mM
        a_ca_mM = a_ca_mM + a_zh
        grads_h = dict(alpha=a_h * (sh - 1.0), ca_half_mM=-a_zh, k_mM=-a_zh * zh)
    for c, slots in enumerate(lay.gate_slots):
        a_p = a_q[:, c] * r["h"] if c in lay.h_slots else a_q[:, c]
        for j, g in enumerate(slots):
            others = [x[:, gg] for jj, gg in enumerate(slots) if jj != j]
            prod = others[0] if others else None
            for o in others[1:]:
                prod = prod * o
            a_x[g] = a_x[g] + (a_p if prod is None else a_p * prod)
    # gates
    tau, sg, z = gt.tau_ms, r["sg"], r["z"]
    ct_x = ct_field["gates"]
    a_gates = jnp.stack(a_x, axis=1).reshape(-1) - ct_x / tau
    a_x_inf = ct_x / tau
    g_tau = -ct_x * field["gates"] / tau
    if ct_decay is not None:
        g_tau = g_tau - ct_decay["gates"] * decay["gates"] / tau
    g_rate = a_x_inf * sg
    a_z = a_x_inf * gt.rate * sg * (1.0 - sg) / gt.scale_mV
    a_v = a_v + jnp.sum(a_z.reshape(n, ng), axis=1)
    # graded synapses: current (postsynaptic side: −u·G_chem per cell, no scatter) and activation
    s, s2 = y["s"], y["s2"]
    a_g_chem = u[gs.post] * r["drive_s"]
    g_erev_s = u[gs.post] * r["g_chem"]
    a_g_chem2 = u[g2.post] * r["drive_s2"]
    g_erev_s2 = u[g2.post] * r["g_chem2"]
    if w_lam is not None:
        a_g_chem = a_g_chem + w_lam[gs.post]
        a_g_chem2 = a_g_chem2 + w_lam[g2.post]
    a_v = a_v - u * r["G_chem"]
    lam_s, den, s_inf, one_minus = r["lam_s"], r["den"], r["s_inf"], r["one_minus"]
    ct_s = ct_field["s"]
    a_s = a_g_chem * gs.weight * gs.g_nS - ct_s * lam_s
    a_lam_s = ct_s * (s_inf - s)
    if ct_decay is not None:
        a_lam_s = a_lam_s + ct_decay["s"]
    g_k = a_lam_s / den
    a_den = -a_lam_s * lam_s / den
    a_xs = (ct_s * lam_s - jnp.where(one_minus > GRADED_TAU_GUARD, a_den, 0.0)) * s_inf * one_minus
    a_v_pre = a_xs / gs.delta_mV
    # gradedSynapse2
    phi, dpre2 = r["phi"], r["dpre2"]
    ct_s2 = ct_field["s2"]
    lam_s2 = decay["s2"]
    a_s2 = a_g_chem2 * g2.weight * g2.g_nS - ct_s2 * lam_s2
    g_ar = ct_s2 * phi * (1.0 - s2)
    g_ad = -ct_s2 * s2
    a_phi = ct_s2 * g2.ar_per_ms * (1.0 - s2)
    if ct_decay is not None:
        g_ar = g_ar + ct_decay["s2"] * phi
        g_ad = g_ad + ct_decay["s2"]
        a_phi = a_phi + ct_decay["s2"] * g2.ar_per_ms
    a_zz = a_phi * phi * (1.0 - phi)
    a_v_pre2 = a_zz * g2.beta_per_mV
    # gap junctions
    a_i_gap = u[gj.post] - u[gj.pre]
    a_wg = a_i_gap * r["dv_gap"]
    if w_lam is not None:
        a_wg = a_wg + w_lam[gj.post] + w_lam[gj.pre]
    c_gap = a_i_gap * r["wg"]
    # every presynaptic and gap-junction endpoint in one scatter-add
    a_v = a_v + _segment_sum(jnp.concatenate([a_v_pre, a_v_pre2, c_gap, -c_gap]),
                     jnp.concatenate([gs.pre, g2.pre, gj.pre, gj.post]), n)
    a_state = {"V": a_v, "Ca": a_ca_mM / CA_STATE_SCALE, "gates": a_gates, "s": a_s, "s2": a_s2}
    zeros = jnp.zeros_like
    g_model = dataclasses.replace(
        m,
        membranes=dataclasses.replace(mb, capacitance_pF=g_cap, area_um2=g_area, v_init_mV=zeros(mb.v_init_mV),
                                      ca_init_mM=zeros(mb.ca_init_mM), ca_rho=g_rho, ca_decay_ms=g_tau_ca,
                                      ca_resting_mM=g_rest),
        channels=dataclasses.replace(m.channels, g_max_nS=g_gmax.reshape(-1), erev_mV=g_erev_ch.reshape(-1)),
        gates=dataclasses.replace(gt, midpoint_mV=-a_z, scale_mV=-a_z * z, rate=g_rate, tau_ms=g_tau),
        ca_gates=(dataclasses.replace(cg, **grads_h) if grads_h is not None
                  else dataclasses.replace(cg, alpha=zeros(cg.alpha), ca_half_mM=zeros(cg.ca_half_mM),
                                           k_mM=zeros(cg.k_mM))),
        graded=dataclasses.replace(gs, weight=a_g_chem * gs.g_nS * s, g_nS=a_g_chem * gs.weight * s,
                                   erev_mV=g_erev_s, vth_mV=-a_v_pre, delta_mV=-a_v_pre * r["xs"], k_per_ms=g_k),
        graded2=dataclasses.replace(g2, weight=a_g_chem2 * g2.g_nS * s2, g_nS=a_g_chem2 * g2.weight * s2,
                                    erev_mV=g_erev_s2, vth_mV=-a_v_pre2, beta_per_mV=a_zz * dpre2, ar_per_ms=g_ar,
                                    ad_per_ms=g_ad),
        gaps=dataclasses.replace(gj, weight=a_wg * gj.g_nS, g_nS=a_wg * gj.weight),
        stimuli=dataclasses.replace(m.stimuli, amplitude_pA=zeros(m.stimuli.amplitude_pA)),
    )
    return g_model, a_state, u


@jax.custom_vjp
def _reverse_only(m_float, m_other, y, i_in):
    return _primal(eqx.combine(m_float, m_other), y, i_in)[0]


def _reverse_only_fwd(m_float, m_other, y, i_in):
    m_float, m_other, y, i_in = jax.tree.map(lambda p: p.value, (m_float, m_other, y, i_in),
                                             is_leaf=lambda p: isinstance(p, CustomVJPPrimal))
    (field, decay), r = _primal(eqx.combine(m_float, m_other), y, i_in)
    return (field, decay), (m_float, m_other, y, r, field, decay)


def _reverse_only_bwd(res, ct):
    m_float, m_other, y, r, field, decay = res
    ct_field, ct_decay = ct

    def is_zero(c):
        return isinstance(c, SymbolicZero)

    def instantiate(cts, like):  # symbolic zeros as arrays
        return jax.tree.map(lambda c, v: jnp.zeros_like(v) if is_zero(c) else c, cts, like, is_leaf=is_zero)

    ct_field = instantiate(ct_field, field)
    # decay rates held (stop_gradient) or unused: skip their part of the reverse pass
    ct_decay = None if all(map(is_zero, jax.tree.leaves(ct_decay, is_leaf=is_zero))) else instantiate(ct_decay, decay)
    m = eqx.combine(m_float, m_other)
    g_model, a_state, a_in = _reverse_pass(m, y, r, field, decay, ct_field, ct_decay)
    g_float = eqx.filter(g_model, eqx.is_inexact_array)
    no_grad = jax.tree.map(lambda x: np.zeros(np.shape(x), jax.dtypes.float0), m_other)
    return g_float, no_grad, a_state, a_in


_reverse_only.defvjp(_reverse_only_fwd, _reverse_only_bwd, symbolic_zeros=True)


def uniform_field_and_decay_reverse_only(m, y: dict, i_in: Float[Array, " n"]) -> tuple[dict, dict]:
    """:func:`uniform_field_and_decay` with its reverse pass written by hand (``jax.custom_vjp``):
    the same values, a cheaper gradient, and **no forward mode** (``jax.jvp``/``jacfwd`` raise).

    What the reverse pass saves over JAX's transpose of the forward-mode rule (``docs/speed.md``):
    fewer, larger elementwise passes and one scatter-add. It is used where only reverse mode can
    occur: the discrete adjoint's backward pass (:mod:`owjax.core.discrete_adjoint`, through
    :meth:`~owjax.neural.network.NetworkModel.for_reverse_mode`). Arguments and returns as
    :func:`uniform_field_and_decay`.
    """
    m_float, m_other = eqx.partition(m, eqx.is_inexact_array)
    return _reverse_only(m_float, m_other, y, i_in)

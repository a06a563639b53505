"""The discrete adjoint (owjax.core.discrete_adjoint): same forward values as ``solve_ys``, the same
gradient as diffrax's reverse mode, and agreement with finite differences."""

from __future__ import annotations

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

from owjax.core.discrete_adjoint import solve_ys_discrete_adjoint, step_buffer_size, step_end_times  # noqa: E402
from owjax.core.solve import SolverConfig, solve_ys  # noqa: E402
from owjax.neural.c302_data import load_c302_network  # noqa: E402
from owjax.neural.network import NetworkModel  # noqa: E402

CELLS = ["AVAL", "AVAR", "AVBL", "AVBR", "DVB", "AVL", "DB1", "VB1", "PVCL", "RIML"]


@pytest.fixture(scope="module")
def iclamp():
    """C1 IClamp: current pulses, so the adaptive steps stop at jump times."""
    m = NetworkModel.from_spec(load_c302_network("C1", "IClamp"), jnp.float64)
    assert 0 < min(m.jump_times()) < 130.0, "the tests need a pulse edge within their 130 ms"
    return m


@pytest.fixture(scope="module")
def small_full():
    return NetworkModel.from_spec(load_c302_network("C1", "Full").subset(CELLS), jnp.float64)


def _flat(tree):
    return np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(tree)])


@pytest.mark.parametrize("method", ["tsit5", "imex4"])
def test_same_values_and_gradient_as_diffrax_reverse_mode(iclamp, method):
    cfg = SolverConfig(method)

    def loss_diffrax(m):
        return jnp.mean(solve_ys(m, 130.0, 1.0, cfg, save=("V",)).ys["V"] ** 2)

    def loss_discrete(m):
        return jnp.mean(solve_ys_discrete_adjoint(m, 130.0, 1.0, cfg, save=("V",))["V"] ** 2)

    with jax.numpy_dtype_promotion("strict"):
        v_ref = eqx.filter_jit(loss_diffrax)(iclamp)
        v = eqx.filter_jit(loss_discrete)(iclamp)
        g_ref = _flat(eqx.filter_jit(eqx.filter_grad(loss_diffrax))(iclamp))
        g = _flat(eqx.filter_jit(eqx.filter_grad(loss_discrete))(iclamp))
    assert float(v) == float(v_ref)
    assert np.linalg.norm(g_ref) > 0
    assert np.linalg.norm(g - g_ref) <= 1e-9 * np.linalg.norm(g_ref), np.linalg.norm(g - g_ref) / np.linalg.norm(g_ref)


def test_gradient_with_respect_to_a_subset_is_that_block_of_the_full_gradient(small_full):
    """Only the leaves the enclosing derivative asks for get a cotangent (custom_vjp's symbolic zeros):
    the synaptic weights alone and the initial V alone, each equal to its block of the gradient
    with respect to everything."""
    cfg = SolverConfig("imex4")
    y_start = small_full.initial_state()

    def loss(m, y0):
        ys = solve_ys_discrete_adjoint(m, 30.0, 1.0, cfg, y0=y0, save=("V", "Ca"))
        return jnp.mean(ys["V"] ** 2) + jnp.mean(ys["Ca"])

    with jax.numpy_dtype_promotion("strict"):
        g_m, g_y = eqx.filter_jit(eqx.filter_grad(lambda my: loss(*my)))((small_full, y_start))

        def weights_only(w, wg):
            m = eqx.tree_at(lambda mm: (mm.graded.weight, mm.gaps.weight), small_full, (w, wg))
            return loss(m, y_start)

        gw, gwg = jax.jit(jax.grad(weights_only, argnums=(0, 1)))(small_full.graded.weight, small_full.gaps.weight)
        g_v0 = jax.jit(jax.grad(lambda v: loss(small_full, {**y_start, "V": v})))(y_start["V"])
    for got, ref in ((gw, g_m.graded.weight), (gwg, g_m.gaps.weight), (g_v0, g_y["V"])):
        assert np.linalg.norm(np.asarray(ref)) > 0
        np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(("method", "hold"), [("dopri5", False), ("imex4", False), ("imex4", True)])
def test_gradient_matches_finite_differences_for_parameters_and_initial_state(small_full, method, hold):
    cfg = SolverConfig(method, rtol=1e-9, atol=1e-9)
    i = small_full.index("DB1")
    y0 = small_full.initial_state()
    kw = dict(hold_decay_rates=True) if hold else {}

    def loss(m, y):
        return jnp.mean(solve_ys_discrete_adjoint(m, 30.0, 0.5, cfg, y0=y, save=("V",), **kw)["V"][:, i])

    g_m, g_y = eqx.filter_jit(eqx.filter_grad(lambda my: loss(*my)))((small_full, y0))
    f = eqx.filter_jit(loss)
    rng = np.random.default_rng(0)
    h = 1e-3
    get = lambda m: m.graded.erev_mV  # noqa: E731
    x = np.asarray(get(small_full))
    d = rng.standard_normal(x.shape)
    fd = (float(f(eqx.tree_at(get, small_full, jnp.asarray(x + h * d)), y0))
          - float(f(eqx.tree_at(get, small_full, jnp.asarray(x - h * d)), y0))) / (2 * h)
    assert abs(fd) > 1e-6
    assert abs(float(np.asarray(get(g_m)) @ d) - fd) <= 1e-4 * abs(fd), (float(np.asarray(get(g_m)) @ d), fd)
    dv = rng.standard_normal(y0["V"].shape)
    fd_v = (float(f(small_full, {**y0, "V": y0["V"] + h * dv})) - float(f(small_full, {**y0, "V": y0["V"] - h * dv}))) / (2 * h)
    assert abs(fd_v) > 1e-6
    assert abs(float(np.asarray(g_y["V"]) @ dv) - fd_v) <= 1e-4 * abs(fd_v), (float(np.asarray(g_y["V"]) @ dv), fd_v)


def test_held_decay_rates_differ_from_the_exact_gradient_by_the_solver_error_only(iclamp):
    """imex4 with each step's decay rates held in the reverse pass: a gradient within the solver's
    tolerance of the exact discrete one (not equal to it), and the tighter the tolerance the closer."""
    def rel_diff(tol):
        cfg = SolverConfig("imex4", rtol=tol, atol=tol)

        def loss(m, hold):
            return jnp.mean(solve_ys_discrete_adjoint(m, 130.0, 1.0, cfg, save=("V",), hold_decay_rates=hold)["V"] ** 2)

        g_exact = _flat(eqx.filter_jit(eqx.filter_grad(lambda m: loss(m, False)))(iclamp))
        g_held = _flat(eqx.filter_jit(eqx.filter_grad(lambda m: loss(m, True)))(iclamp))
        return np.linalg.norm(g_held - g_exact) / np.linalg.norm(g_exact)

    loose, tight = rel_diff(1e-5), rel_diff(1e-8)
    assert 0.0 < loose < 1e-4, loose
    assert tight < 0.1 * loose, (tight, loose)


def test_steps_rerun_on_their_own_intervals_across_jumps(iclamp):
    """Re-running every accepted step from its saved start to its reconstructed end reproduces
    diffrax's states, including the steps that end just before a pulse edge."""
    jumps = np.asarray(sorted(iclamp.jump_times()), np.float64)
    jumps = jumps[(jumps > 0) & (jumps < 130.0)]
    ctrl = dfx.ClipStepSizeController(dfx.PIDController(rtol=1e-6, atol=1e-6), jump_ts=jumps)
    term, method = dfx.ODETerm(iclamp.vector_field), dfx.Tsit5()
    sol = dfx.diffeqsolve(term, method, 0.0, 130.0, 0.05, iclamp.initial_state(),
                          saveat=dfx.SaveAt(steps=True, t0=True), stepsize_controller=ctrl, max_steps=4096)
    n = int(sol.stats["num_accepted_steps"])
    saved = sol.ts[1:n + 1]
    t_end = step_end_times(saved, jnp.asarray(jumps))
    t_start = jnp.concatenate([jnp.zeros(1), saved[:-1]])
    assert int(jnp.sum(t_end != saved)) == len(jumps)  # one step ends just before each pulse edge

    def rerun(t0, t1, y):
        return method.step(term, t0, t1, y, None, method.init(term, t0, t1, y, None), True)[0]["V"]

    starts = jax.tree.map(lambda a: a[:n], sol.ys)
    v1 = jax.jit(jax.vmap(rerun))(t_start, t_end, starts)
    worst = float(jnp.max(jnp.abs(v1 - sol.ys["V"][1:n + 1])))
    assert worst < 1e-9, worst


def test_step_buffer_is_the_next_power_of_two_above_a_quarter_more_than_the_forward_steps():
    assert [step_buffer_size(n) for n in (1, 1325, 1638, 1639, 4092)] == [2, 2048, 2048, 4096, 8192]


def test_clear_errors(iclamp):
    with pytest.raises(ValueError, match="Runge-Kutta method with dense output"):
        solve_ys_discrete_adjoint(iclamp, 10.0, 1.0, "kvaerno5")
    with pytest.raises(ValueError, match="multiple of dt_out_ms"):
        solve_ys_discrete_adjoint(iclamp, 10.0, 3.0)
    with pytest.raises(ValueError, match="hold_decay_rates applies to the imex4 method only"):
        solve_ys_discrete_adjoint(iclamp, 10.0, 1.0, "tsit5", hold_decay_rates=True)
    with pytest.raises(Exception, match="max_steps"):
        jax.block_until_ready(solve_ys_discrete_adjoint(iclamp, 130.0, 1.0, max_steps=10))


def test_atlas_protocol_trials_take_the_discrete_adjoint():
    """``AtlasProtocol(adjoint="discrete")`` (synapse_polarity's conductance model) gives the same
    responses and, inside the protocol's ``lax.map`` over stimulations, the same gradient."""
    import dataclasses

    from owjax.reference.atlas_protocol import (AtlasProtocol, protocol_model, resting_state, simulate_responses,
                                                stimulus_amplitudes)

    prot = AtlasProtocol(readout="v", duration_ms=40.0, stim_duration_ms=20.0, settle_ms=200.0)
    m = protocol_model(load_c302_network("C1", "Full").subset(CELLS), prot, dtype=jnp.float64)
    y0 = resting_state(m, prot)
    amps = stimulus_amplitudes(m, ["AVAL", "DB1"], 10.0)
    out = {}
    for adj in ("diffrax", "discrete"):
        p = dataclasses.replace(prot, adjoint=adj)
        loss = eqx.filter_jit(lambda mm, p=p: jnp.sum(simulate_responses(mm, amps, y0, p) ** 2))
        out[adj] = (float(loss(m)), _flat(eqx.filter_jit(eqx.filter_grad(loss))(m)))
    assert out["discrete"][0] == pytest.approx(out["diffrax"][0], rel=1e-12)
    g0, g1 = out["diffrax"][1], out["discrete"][1]
    assert np.linalg.norm(g0) > 0 and np.linalg.norm(g1 - g0) <= 1e-8 * np.linalg.norm(g0)
    with pytest.raises(ValueError, match="adjoint"):
        AtlasProtocol(adjoint="backsolve")

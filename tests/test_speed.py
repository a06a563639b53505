"""The exponential integrator (owjax.core.exponential), the diagonal IMEX integrator (owjax.core.imex),
the network's decay rates and uniform-cell fast path, and the multirate worm.

Accuracy against converged NEURON with the ``exponential`` and ``imex`` presets is tested in
tests/c302_vs_neuron/test_equivalence.py; speed is measured by benchmarks (docs/speed.md), not here.
"""

from __future__ import annotations

import dataclasses

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

from owjax.core.exponential import ExponentialRK2, LinearDecayTerm, phi_functions  # noqa: E402
from owjax.core.imex import DiagonalIMEXKenCarp4  # noqa: E402
from owjax.core.solve import SolverConfig, get_solver, solve, solve_ys  # noqa: E402
from owjax.neural.c302_data import load_c302_network  # noqa: E402
from owjax.neural.network import NetworkModel  # noqa: E402
from owjax.organs.intestine import IntestineOscillator  # noqa: E402
from owjax.worm import DifferentiableWorm, solve_worm  # noqa: E402

CELLS = ["AVAL", "AVAR", "AVBL", "AVBR", "DVB", "AVL", "DB1", "VB1", "PVCL", "RIML"]


@pytest.fixture(scope="module")
def small_network():
    return NetworkModel.from_spec(load_c302_network("C1", "Full").subset(CELLS))


def test_phi_functions_are_accurate_across_the_series_switch():
    z = np.array([0.0, 1e-8, 1e-3, 0.0499999, 0.05, 0.05000001, 0.3, 2.0, 50.0, 1e4, -0.02, -1.0])
    p1, p2 = (np.asarray(p) for p in phi_functions(jnp.asarray(z)))
    with np.errstate(divide="ignore", invalid="ignore"):
        # reference in extended precision where the direct formula cancels
        import mpmath

        mpmath.mp.dps = 40
        r1 = np.array([1.0 if x == 0 else float((1 - mpmath.e ** (-mpmath.mpf(x))) / x) for x in z])
        r2 = np.array([0.5 if x == 0 else float((mpmath.mpf(x) - 1 + mpmath.e ** (-mpmath.mpf(x))) / mpmath.mpf(x) ** 2)
                       for x in z])
    np.testing.assert_allclose(p1, r1, rtol=1e-12)
    np.testing.assert_allclose(p2, r2, rtol=1e-12)
    g = jax.grad(lambda x: phi_functions(x)[0] + phi_functions(x)[1])(0.0)
    assert np.isclose(float(g), -1 / 2 - 1 / 6)  # φ1'(0) = −1/2, φ2'(0) = −1/6


def _solve(field_and_decay, y0, t1, dt=None, rtol=1e-8):
    ctrl = dfx.ConstantStepSize() if dt else dfx.PIDController(rtol=rtol, atol=rtol)
    return dfx.diffeqsolve(LinearDecayTerm(field_and_decay), ExponentialRK2(), 0.0, t1, dt or 1e-3, y0,
                           stepsize_controller=ctrl, max_steps=100_000,
                           saveat=dfx.SaveAt(ts=jnp.linspace(0.0, t1, 11)))


def test_linear_relaxation_is_exact_for_any_step():
    """y' = a − λy with constant a, λ: exact (to round-off) even with λh = 1000."""
    a, lam = 3.0, 1e4

    def fd(t, y, args):
        return a - lam * y, jnp.full_like(y, lam)

    sol = _solve(fd, jnp.asarray(1.0), 1.0, dt=0.1)
    exact = a / lam + (1.0 - a / lam) * np.exp(-lam * np.asarray(sol.ts))
    np.testing.assert_allclose(np.asarray(sol.ys), exact, rtol=1e-12, atol=1e-12)


def test_second_order_convergence_on_a_stiff_nonlinear_problem():
    """A fast gate x relaxing to a sigmoid of a slow variable v that it feeds back on (the HH
    structure): halving a fixed step divides the error by ≈ 4; the adaptive solve meets its tolerance."""

    def fd(t, y, args):
        v, x = y["v"], y["x"]
        x_inf = jax.nn.sigmoid(v)
        return ({"v": -0.5 * v + 2.0 * x * (1.0 - v) + jnp.sin(t), "x": (x_inf - x) / 0.01},
                {"v": 0.5 + 2.0 * x, "x": jnp.full_like(x, 100.0)})

    y0 = {"v": jnp.asarray(-1.0), "x": jnp.asarray(0.0)}
    ref = dfx.diffeqsolve(dfx.ODETerm(lambda t, y, a: fd(t, y, a)[0]), dfx.Tsit5(), 0.0, 2.0, 1e-4, y0,
                          stepsize_controller=dfx.PIDController(rtol=1e-12, atol=1e-12), max_steps=100_000)

    @jax.jit
    def fixed(dt):
        return dfx.diffeqsolve(LinearDecayTerm(fd), ExponentialRK2(), 0.0, 2.0, dt, y0, max_steps=1_000).ys["v"][-1]

    errs = [abs(float(fixed(jnp.asarray(dt)) - ref.ys["v"][-1])) for dt in (0.02, 0.01, 0.005)]
    assert 3.3 < errs[0] / errs[1] < 4.8 and 3.3 < errs[1] / errs[2] < 4.8, errs
    # λh = 2 for the gate at dt = 0.02, where explicit Heun is at its stability edge; the exponential
    # method is not limited by it, and the adaptive solve meets its tolerance
    adaptive = dfx.diffeqsolve(LinearDecayTerm(fd), ExponentialRK2(), 0.0, 2.0, 1e-3, y0, max_steps=10_000,
                               stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-6))
    assert abs(float(adaptive.ys["v"][-1] - ref.ys["v"][-1])) < 1e-4


def test_network_decay_rates_are_the_diagonal_of_the_jacobian():
    """λ = −∂f_i/∂y_i exactly for V, the gates and the graded synapses (C1) and gradedSynapse2 (C0)."""
    for ps in ("C1", "C0"):
        m = NetworkModel.from_spec(load_c302_network(ps, "Full").subset(CELLS[:6]))
        y = m.initial_state()
        key = jax.random.PRNGKey(0)
        y = {k: v + 0.1 * jax.random.uniform(jax.random.fold_in(key, i), v.shape) * (10.0 if k == "V" else 1.0)
             for i, (k, v) in enumerate(y.items())}
        keys = tuple(k for k in ("V", "gates", "s", "s2") if y[k].size)

        @eqx.filter_jit
        def check(m, y):
            f, lam = m.field_and_decay(0.0, y)
            diag = {k: -jnp.diagonal(jax.jacfwd(lambda x, k=k: m.vector_field(0.0, {**y, k: x})[k])(y[k]))
                    for k in keys}
            return f, m.vector_field(0.0, y), lam, diag

        f, f_plain, lam, diag = check(m, y)
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13), f, f_plain)
        for k in keys:
            np.testing.assert_allclose(np.asarray(lam[k]), np.asarray(diag[k]), rtol=1e-10, atol=1e-12,
                                       err_msg=f"{ps} {k}")
        assert np.all(np.asarray(lam["Ca"]) > 0)


def test_multirate_worm_agrees_with_coupled(small_network):
    intestine = IntestineOscillator.from_yaml(trigger_threshold=0.05)  # int1 starts above threshold
    worm = DifferentiableWorm(small_network, intestine)
    a = solve_worm(worm, 100.0, 0.5, strategy="coupled")
    b = solve_worm(worm, 100.0, 0.5, "exponential", strategy="multirate", coupling_dt_ms=0.5)
    alone = solve(small_network, 100.0, 0.5)
    i = small_network.index("DVB")
    assert np.abs(a.network["V"][:, i] - alone.ys["V"][:, i]).max() > 1.0  # the trigger acts
    assert b.strategy == "multirate" and b.stats["intestine_num_steps"] < 50
    np.testing.assert_allclose(b.network["V"], a.network["V"], atol=0.05)
    np.testing.assert_allclose(b.intestine["Ca"], a.intestine["Ca"], rtol=1e-4)
    with pytest.raises(ValueError, match="multiple of coupling_dt_ms"):
        solve_worm(worm, 100.0, 0.5, strategy="multirate", coupling_dt_ms=0.3)
    with pytest.raises(ValueError, match="coupling_dt_ms must be a positive"):
        solve_worm(worm, 100.0, 0.5, strategy="multirate", coupling_dt_ms=0.0)


# ---------------------------------------------------------------- the diagonal IMEX integrator

def _hh_like(t, y, args):
    """A fast gate x (τ = 0.01) relaxing to a sigmoid of a slow variable v that it feeds back on."""
    v, x = y["v"], y["x"]
    return ({"v": -0.5 * v + 2.0 * x * (1.0 - v) + jnp.sin(t), "x": (jax.nn.sigmoid(v) - x) / 0.01},
            {"v": 0.5 + 2.0 * x, "x": jnp.full_like(x, 100.0)})


_Y0 = {"v": jnp.asarray(-1.0), "x": jnp.asarray(0.0)}


@pytest.fixture(scope="module")
def hh_like_reference():
    return dfx.diffeqsolve(dfx.ODETerm(lambda t, y, a: _hh_like(t, y, a)[0]), dfx.Tsit5(), 0.0, 2.0, 1e-4, _Y0,
                           stepsize_controller=dfx.PIDController(rtol=1e-13, atol=1e-13),
                           max_steps=1_000_000).ys["v"][-1]


def test_fourth_order_convergence_and_adaptive_accuracy(hh_like_reference):
    """Halving a fixed step divides the error by ≈ 16 where the gate is resolved (λh ≤ 0.2) and by ≈ 10
    (order ≈ 3.3) where it is stiff (λh up to 20: the explicit methods' stability limit is λh ≈ 3)."""

    @jax.jit
    def fixed(dt):
        return dfx.diffeqsolve(LinearDecayTerm(_hh_like), DiagonalIMEXKenCarp4(), 0.0, 2.0, dt, _Y0,
                               max_steps=100_000).ys["v"][-1]

    for dts, lo, hi in (((0.002, 0.001, 0.0005), 13.0, 18.0), ((0.2, 0.1, 0.05), 8.0, 18.0)):
        errs = [abs(float(fixed(jnp.asarray(dt)) - hh_like_reference)) for dt in dts]
        assert lo < errs[0] / errs[1] < hi and lo < errs[1] / errs[2] < hi, (dts, errs)
    adaptive = dfx.diffeqsolve(LinearDecayTerm(_hh_like), DiagonalIMEXKenCarp4(), 0.0, 2.0, 1e-3, _Y0,
                               max_steps=10_000, stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-6))
    assert abs(float(adaptive.ys["v"][-1] - hh_like_reference)) < 1e-6


def test_a_very_stiff_relaxation_is_damped_not_amplified():
    """y' = a − λy with λh = 1000: the implicit part is L-stable, so y settles on a/λ."""
    a, lam = 3.0, 1e4
    sol = dfx.diffeqsolve(LinearDecayTerm(lambda t, y, args: (a - lam * y, jnp.full_like(y, lam))),
                          DiagonalIMEXKenCarp4(), 0.0, 1.0, 0.1, jnp.asarray(1.0),
                          saveat=dfx.SaveAt(ts=jnp.linspace(0.0, 1.0, 11)))
    err = np.abs(np.asarray(sol.ys) - a / lam)
    big = err[:-1] > 1e-12
    assert np.all(err[1:][big] < 0.05 * err[:-1][big]) and err[-1] < 1e-14, err


def test_needs_a_linear_decay_term():
    with pytest.raises(Exception, match="LinearDecayTerm"):  # diffrax checks the term's type first
        dfx.diffeqsolve(dfx.ODETerm(lambda t, y, a: -y), DiagonalIMEXKenCarp4(), 0.0, 1.0, 0.1, jnp.asarray(1.0))


@pytest.mark.parametrize("preset, method", [("exponential", "etd2"), ("imex", "imex4")])
def test_preset_matches_tsit5_on_a_small_network(small_network, preset, method):
    assert get_solver(preset).method == method
    a = solve(small_network, 150.0, 0.5, SolverConfig("tsit5", rtol=1e-9, atol=1e-9))
    b = solve(small_network, 150.0, 0.5, preset)
    assert np.abs(a.ys["V"]).max() > 0 and b.solver.method == method
    if method == "imex4":  # the gate no longer caps the step
        assert int(b.stats["num_steps"]) < int(a.stats["num_steps"])
    np.testing.assert_allclose(b.ys["V"], a.ys["V"], atol=0.05)
    np.testing.assert_allclose(b.ys["Ca"], a.ys["Ca"], rtol=1e-3, atol=1e-3 * np.abs(a.ys["Ca"]).max())


@pytest.mark.parametrize("method, rtol, parameter, h, min_fd", [
    ("etd2", 1e-8, "erev", 1e-3, 1e-6),
    ("imex4", 1e-9, "capacitance", 1e-4, 1e-4),
])
def test_gradient_through_the_solver_matches_finite_differences(small_network, method, rtol, parameter, h, min_fd):
    cfg = SolverConfig(method, rtol=rtol, atol=rtol, max_steps=50_000)
    i = small_network.index("DB1")

    def loss(m):
        return jnp.mean(solve_ys(m, 30.0, 1.0, cfg, save=("V",)).ys["V"][:, i])

    get = {"erev": lambda m: m.graded.erev_mV, "capacitance": lambda m: m.membranes.capacitance_pF}[parameter]
    g = np.asarray(get(eqx.filter_jit(eqx.filter_grad(loss))(small_network)))
    f = eqx.filter_jit(loss)
    x = np.asarray(get(small_network))
    d = np.random.default_rng(0).standard_normal(x.shape)
    fd = (float(f(eqx.tree_at(get, small_network, jnp.asarray(x + h * d))))
          - float(f(eqx.tree_at(get, small_network, jnp.asarray(x - h * d))))) / (2 * h)
    assert abs(fd) > min_fd, fd
    assert abs(float(g @ d) - fd) <= 1e-4 * abs(fd) + 1e-9, (float(g @ d), fd)


@pytest.mark.parametrize("parameter_set", ["C0", "C1", "C2"])
def test_uniform_cell_fast_path_equals_the_general_one(parameter_set):
    """Every c302 parameter set has the same channels and gates in every cell; the vector field and its
    VJP computed with reshapes (the fast path) equal the gather/segment-sum ones to rounding."""
    fast = NetworkModel.from_spec(load_c302_network(parameter_set, "Full"))
    assert fast.layout is not None and fast.layout.channels_per_cell * fast.n_cells == fast.channels.cell.size
    general = dataclasses.replace(fast, layout=None)
    y = fast.initial_state()
    key = jax.random.PRNGKey(1)
    y = {k: v + 0.1 * jax.random.uniform(jax.random.fold_in(key, i), v.shape, v.dtype) * (300.0 if k == "V" else 1.0)
         for i, (k, v) in enumerate(y.items())}

    def run(m):
        params, static = eqx.partition(m, eqx.is_inexact_array)
        f = lambda p, yy: eqx.combine(p, static).field_and_decay(3.0, yy)  # noqa: E731
        out, pull = jax.vjp(f, params, y)
        return out, pull(jax.tree.map(jnp.ones_like, out))

    (out_f, (gp_f, gy_f)), (out_g, (gp_g, gy_g)) = run(fast), run(general)
    for a, b in zip(jax.tree.leaves((out_f, gy_f, gp_f)), jax.tree.leaves((out_g, gy_g, gp_g))):
        scale = float(np.abs(np.asarray(b)).max()) if b.size else 0.0
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12 * max(scale, 1.0))


def test_irregular_cells_fall_back_to_the_general_path():
    from owjax.neural.network import UniformCellLayout

    cells = np.array([0, 0, 1])  # two channels in cell 0, one in cell 1
    assert UniformCellLayout.detect(2, cells, np.array([0, 1]), np.zeros((3, 1), np.int32), [1, 1, 1], [], [False] * 3) is None

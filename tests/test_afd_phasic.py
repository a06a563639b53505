"""AFD's phasic channel (owjax.sensory.phasic; issue 17): the band-pass against its closed form, the loop
with the channel (off = the loop without it; on = the summed current the filters give; its gradient against
finite differences), the parameters' round trip, the fit task's settings and the errors. float64."""

import jax

jax.config.update("jax_enable_x64", True)

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

from owjax.navigation.arena import LinearTemperature
from owjax.navigation.body import body_noise
from owjax.sensory.phasic import PhasicDrive, PhasicResponse

DT = "float64"
PHASIC = {"gain_pA": 100.0, "tau_fast_s": 0.5, "tau_slow_s": 1.5}


def test_phasic_response_is_a_band_pass_with_the_closed_form_ramp_and_step_responses():
    """A ramp y = a·t from rest gives fast − slow = a[(τs − τf) − τs e^{−t/τs} + τf e^{−t/τf}] → a(τs − τf);
    a held step decays back to 0; the vector field is per second."""
    tf, ts, a = 0.5, 1.5, 0.2
    ph = PhasicResponse(tf, ts, dtype=jnp.float64)
    term = diffrax.ODETerm(lambda t, y, _: ph.vector_field(t, y, {"response": a * t}))
    t = np.linspace(0.0, 8.0, 33)
    sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), 0.0, 8.0, 0.01, ph.steady_state(0.0),
                              saveat=diffrax.SaveAt(ts=jnp.asarray(t)), stepsize_controller=diffrax.PIDController(1e-10, 1e-12))
    phasic = np.asarray(jax.vmap(lambda f, s: ph.outputs(0.0, {"fast": f, "slow": s})["phasic"])(
        sol.ys["fast"], sol.ys["slow"]))
    exact = a * ((ts - tf) - ts * np.exp(-t / ts) + tf * np.exp(-t / tf))
    assert np.allclose(phasic, exact, atol=1e-8)
    assert phasic[-1] == pytest.approx(a * (ts - tf), rel=2e-2)
    step = diffrax.diffeqsolve(diffrax.ODETerm(lambda t, y, _: ph.vector_field(t, y, {"response": 1.0})),
                               diffrax.Tsit5(), 0.0, 30.0, 0.01, ph.steady_state(0.0),
                               stepsize_controller=diffrax.PIDController(1e-10, 1e-12))
    assert abs(float(step.ys["fast"][-1] - step.ys["slow"][-1])) < 1e-7
    assert ph.outputs(0.0, ph.steady_state(0.7))["phasic"] == 0.0
    f, lam = ph.field_and_decay(0.0, ph.steady_state(0.0), {"response": 1.0})
    assert float(lam["fast"]) == pytest.approx(1 / tf) and float(lam["slow"]) == pytest.approx(1 / ts)
    with pytest.raises(ValueError, match="tau_fast_s < tau_slow_s"):
        PhasicResponse(2.0, 1.0)


def _shipped_with(phasic):
    from owjax.navigation.params import DEFAULT_DATA, load_values, phasic_values

    v = load_values(DEFAULT_DATA)
    v = {k: x for k, x in v.items() if not k.startswith("afd_phasic")}
    if phasic is None:
        return v
    return v | {k: np.asarray(x) for k, x in phasic_values(phasic).items()}


def _worms(n=2, duration_s=20.0):
    return {"xy": jnp.asarray([[3.0, 0.0], [6.0, 1.0]])[:n], "heading": jnp.asarray([0.3, 2.0])[:n],
            "noise": jax.vmap(lambda k: body_noise(k, duration_s, dtype=jnp.float64))(jax.random.split(jax.random.PRNGKey(2), n)),
            "tc": jnp.asarray([15.0, 25.0])[:n]}


def test_the_loop_with_the_phasic_channel_off_is_the_loop_without_it_and_on_adds_the_band_pass_current():
    from owjax.core.solve import SolverConfig, solve_ys
    from owjax.navigation.loop import loop_initial_state, simulate_worms
    from owjax.navigation.setup import make_loop
    from owjax.sensory.transducer import readout

    field = LinearTemperature(12.0, 28.0, 9.0)
    body = {"pirouette_duration_s": 3.0, "edge_wall": True}
    mk = lambda v: make_loop(field, body, v, "C1", 10.0, DT, duration_s=20.0)  # noqa: E731
    plain, off, on = mk(_shipped_with(None)), mk(_shipped_with(PHASIC | {"gain_pA": 1e-30})), mk(_shipped_with(PHASIC))
    assert "afd_phasic" not in plain.components and "afd_phasic" in on.components
    w = _worms()
    run = lambda lp: simulate_worms(lp, w["xy"], w["heading"], w["noise"], w["tc"], 20.0, 1.0,  # noqa: E731
                                    save=("body.pos", "circuit.V")).ys
    a, b, c = run(plain), run(off), run(on)
    assert np.allclose(np.asarray(a["body"]["pos"]), np.asarray(b["body"]["pos"]), atol=1e-12)
    assert np.allclose(np.asarray(a["circuit"]["V"]), np.asarray(b["circuit"]["V"]), atol=1e-10)
    afd = on["circuit"].index("AFDL")
    assert np.max(np.abs(np.asarray(c["circuit"]["V"])[..., afd] - np.asarray(a["circuit"]["V"])[..., afd])) > 0.05

    # the filters start at the transducer's response (no phasic current at t = 0), and the current the
    # loop injects is gain · (fast − slow) of the saved filters
    y0 = loop_initial_state(on, 15.0)
    r0 = readout(on["afd"].spec, on["afd"].params, y0["afd"]["h"])
    assert float(y0["afd_phasic"]["fast"]) == float(y0["afd_phasic"]["slow"]) == pytest.approx(float(r0))
    sol = solve_ys(on, 5000.0, 100.0, solver=SolverConfig("euler", dt_ms=10.0, max_steps=10_000), y0=y0)
    drive = [cp for cp in on.couplings if isinstance(cp, PhasicDrive)][0]
    ph = sol.ys["afd_phasic"]
    i = np.asarray(jax.vmap(lambda f, s: drive(0.0, on["afd_phasic"].outputs(0.0, {"fast": f, "slow": s})))(
        ph["fast"], ph["slow"]))
    assert np.allclose(i[:, afd], PHASIC["gain_pA"] * (np.asarray(ph["fast"]) - np.asarray(ph["slow"])))
    assert np.ptp(i[:, afd]) > 0.0


def test_gradient_through_the_phasic_channel_matches_finite_differences():
    """c302's circuit (not a trained one: the test must not move with what is shipped) with a graded AFD drive,
    thresholds at −25 mV (as tests/test_navigation.py's gradient check) and a phasic gain small enough to keep
    AFD inside c302's I–V table, where the reduction is smooth between its 0.5-mV grid points."""
    from owjax.navigation.loop import simulate_worms
    from owjax.navigation.setup import make_loop

    field = LinearTemperature(12.0, 28.0, 9.0)
    loop = make_loop(field, {}, None, "C1", 10.0, DT, duration_s=10.0, afd_phasic=PHASIC | {"gain_pA": 20.0})
    loop = eqx.tree_at(lambda m: (m.couplings[1].gain_pA, m.components["circuit"].vth_mV), loop,
                       (jnp.asarray(4.0), jnp.full_like(loop["circuit"].vth_mV, -25.0)))
    w = _worms(2, 10.0)
    k = [i for i, cp in enumerate(loop.couplings) if isinstance(cp, PhasicDrive)][0]

    def loss(p):
        lp = eqx.tree_at(lambda m: (m.couplings[k].gain_pA, m.components["afd_phasic"].tau_slow_s), loop,
                         (p["gain"], p["tau_slow"]))
        v = simulate_worms(lp, w["xy"], w["heading"], w["noise"], w["tc"], 10.0, 1.0, save=("circuit.V",)).ys
        return jnp.sum(v["circuit"]["V"][:, :, lp["circuit"].index("AIYL")])

    p0 = {"gain": jnp.asarray(20.0), "tau_slow": jnp.asarray(1.5)}
    f, g = jax.jit(loss), jax.jit(jax.grad(loss))(p0)
    for name, eps in (("gain", 1e-3), ("tau_slow", 1e-4)):
        fd = (f({**p0, name: p0[name] + eps}) - f({**p0, name: p0[name] - eps})) / (2 * eps)
        assert float(g[name]) == pytest.approx(float(fd), rel=2e-3, abs=1e-9), name
        assert abs(float(g[name])) > 1e-6


def test_phasic_parameters_round_trip_and_reach_the_fit_task(tmp_path):
    from omegaconf import OmegaConf

    from owjax.fitting.tasks.thermotaxis import ThermotaxisTask
    from owjax.navigation.params import (afd_phasic_from_values, apply_values, init_raw, raw_from_values,
                                         save_values, values_from_raw)
    from owjax.navigation.setup import make_loop

    raw = init_raw(4, 3, -30.0, 2.0, 0.0, 0.05, 2.0, 15.0, 0.5, dtype=jnp.float64, afd_phasic=PHASIC)
    vals = values_from_raw(raw, np.ones(3), 4.0, 0.5, 0.3)
    assert afd_phasic_from_values(vals) == pytest.approx(PHASIC)
    back = raw_from_values(vals, np.ones(3), 4.0, 0.5, 0.3, dtype=jnp.float64)
    for key in ("phasic_gain", "phasic_tau_fast", "phasic_tau_slow"):
        assert float(back[key]) == pytest.approx(float(raw[key]), abs=1e-9)
    for bad, match in (({"gain_pA": 1.0}, "needs exactly the keys"), (PHASIC | {"gain_pA": 600.0}, "outside its bounds"),
                       (PHASIC | {"tau_fast_s": 2.0}, "must be < tau_slow_s")):
        with pytest.raises(ValueError, match=match):
            init_raw(4, 3, -30.0, 2.0, 0.0, 0.05, 2.0, 15.0, 0.5, afd_phasic=bad)
    with pytest.raises(ValueError, match="needs all of"):
        afd_phasic_from_values({"afd_phasic_pA": 1.0})
    field = LinearTemperature(12.0, 28.0, 9.0)
    with pytest.raises(ValueError, match="the loop has none"):
        apply_values(make_loop(field, {}, None, "C1", 10.0, DT), _shipped_with(PHASIC))
    with pytest.raises(ValueError, match="the values do not"):
        apply_values(make_loop(field, {}, None, "C1", 10.0, DT, afd_phasic=PHASIC), _shipped_with(None))

    conf = OmegaConf.load(__import__("owjax").__path__[0] + "/conf/experiment/thermotaxis.yaml")
    cfg = OmegaConf.to_container(conf, resolve=True) | {"dtype": "float64"}
    assert cfg["readout"]["afd_phasic"] is None  # off unless asked for
    cfg["readout"]["afd_phasic"] = dict(PHASIC)
    task = ThermotaxisTask(cfg, 0)
    v = task.values(task.init(None))
    assert afd_phasic_from_values(v) == pytest.approx(PHASIC)
    assert "afd_phasic" in task.loop.components
    # a saved circuit without the channel gets the configured start; one with it keeps its own
    plain = {k: x for k, x in v.items() if not k.startswith("afd_phasic")}
    path = save_values(tmp_path / "plain.npz", plain, task.synapse_names, task.cell_names, {})
    cfg["circuit"]["init_from"] = str(path)
    assert afd_phasic_from_values(ThermotaxisTask(cfg, 0).values(ThermotaxisTask(cfg, 0).init(None))) == pytest.approx(PHASIC)
    own = PHASIC | {"gain_pA": 42.0}
    path = save_values(tmp_path / "own.npz", plain | {"afd_phasic_pA": 42.0, "afd_phasic_tau_fast_s": 0.5,
                                                       "afd_phasic_tau_slow_s": 1.5}, task.synapse_names, task.cell_names, {})
    cfg["circuit"]["init_from"] = str(path)
    t2 = ThermotaxisTask(cfg, 0)
    assert afd_phasic_from_values(t2.values(t2.init(None))) == pytest.approx(own)
    cfg["circuit"]["init_from"] = None
    cfg["readout"]["afd_phasic"] = {"gain_pA": 1.0}
    with pytest.raises(ValueError, match="needs exactly the keys"):
        ThermotaxisTask(cfg, 0)

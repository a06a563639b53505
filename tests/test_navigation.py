"""Closed-loop navigation (owjax.navigation, issue 17): arena fields and units, the navigation body,
the graded head circuit against c302, ablation, the loop against its pieces run separately, the
gradient through a short loop against finite differences, the thermotaxis fit (run=ci) and the
simulate scenarios. float64 (accuracy checks), small sizes."""

import jax

jax.config.update("jax_enable_x64", True)

import copy
import json
import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

from owjax.navigation.arena import LinearTemperature, NaClPeak, RadialTemperature, ScaledField, make_field
from owjax.navigation.body import NavigationBody, body_noise
from owjax.navigation.metrics import chemotaxis_index, thermotaxis_summary

DT = "float64"


@pytest.fixture(scope="module")
def circuit():
    from owjax.navigation.setup import head_circuit

    return head_circuit("C1", 10.0, DT)


# ---------------------------------------------------------------------------- arena
def test_arena_fields_values_and_units():
    f = LinearTemperature(17.0, 23.0, 9.0)
    assert f.unit == "degC" and f.gradient_c_per_cm == pytest.approx(6.0 / 9.0)
    assert float(f(0.0, 1.0)) == pytest.approx(17.0) and float(f(9.0, -2.0)) == pytest.approx(23.0)
    assert f.position_of(20.0) == pytest.approx(4.5)
    r = RadialTemperature(17.0, 25.0, 4.5)
    assert float(r(0.0, 0.0)) == pytest.approx(17.0, abs=1e-5) and float(r(0.0, 4.5)) == pytest.approx(25.0)
    n = NaClPeak(1.61)
    assert n.unit == "mM" and float(n(1.61, 0.0)) == pytest.approx(math.exp(-0.5))
    assert float(n(3.0, 4.0)) == pytest.approx(math.exp(-25.0 / (2 * 1.61 ** 2)))
    s = ScaledField(n, 20.0, 5.0)
    assert float(s(0.0, 0.0)) == pytest.approx(25.0)
    o = make_field("linear_oxygen", o2_min_percent=7.0, o2_max_percent=21.0)
    assert o.unit == "percent O2" and float(o(4.5, 0.0)) == pytest.approx(14.0)
    assert bool(r.on_plate(1.0, 1.0)) and not bool(r.on_plate(4.0, 4.0))
    with pytest.raises(ValueError, match="must exceed"):
        LinearTemperature(23.0, 17.0)
    with pytest.raises(ValueError, match="arena field.*radial_temperature"):
        make_field("radial_temprature")
    with pytest.raises(ValueError, match="unknown argument.*allowed"):
        make_field("nacl_peak", sigma_cm=1.0)


# ---------------------------------------------------------------------------- body
def test_navigation_body_crawls_and_sweeps():
    from owjax.core.solve import SolverConfig, solve_ys

    body = NavigationBody(jnp.zeros((40, 2)), start_xy_cm=(1.0, 2.0), start_heading_rad=0.5, dtype=jnp.float64)
    sol = solve_ys(body, 10_000.0, 1000.0, solver=SolverConfig("euler", dt_ms=10.0, max_steps=10_000))
    pos = np.asarray(sol.ys["pos"])
    dist = np.hypot(*(pos[-1] - pos[0]))
    assert dist == pytest.approx(0.022 * 10.0, rel=1e-9)  # no input, no noise: straight at 0.022 cm/s
    assert np.allclose(np.asarray(sol.ys["heading"]), 0.5)
    assert float(sol.ys["phase"][-1]) == pytest.approx(2 * np.pi * 10.0 / 4.2, rel=1e-9)
    # full reversal drive: backwards; steering: the heading turns at steer_rate · tanh(steer)
    d = body.vector_field(0.0, body.initial_state(), {"steer": jnp.asarray(1.0), "reversal": jnp.asarray(1.0)})
    assert np.allclose(np.asarray(d["pos"]), -0.022 * np.array([np.cos(0.5), np.sin(0.5)]))
    assert float(d["heading"]) == pytest.approx(0.3 * np.tanh(1.0))
    with pytest.raises(ValueError, match="noise must have shape"):
        NavigationBody(jnp.zeros((5,)))
    with pytest.raises(ValueError, match="speed_cm_s must be > 0"):
        NavigationBody(jnp.zeros((5, 2)), speed_cm_s=0.0)
    assert body_noise(jax.random.PRNGKey(0), 10.0).shape == (12, 3)


def test_pirouette_events_start_at_the_commanded_rate_and_run_their_course():
    """Events mode: ``reversal`` is the probability per noise sample of starting a pirouette (checked
    on 4 000 samples), a pirouette runs ≈ pirouette_duration_s and backs the worm up whatever the drive
    does meanwhile, and zero drive gives none."""
    from owjax.core.solve import SolverConfig, solve_ys

    xi3 = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (4000,)), np.float64)
    body = NavigationBody(jnp.zeros((5, 3)), pirouette_duration_s=3.0, dtype=jnp.float64)
    for d in (0.02, 0.1, 0.3):
        trig = np.asarray(body.pirouette_trigger(jnp.asarray(d), jnp.asarray(xi3)))
        assert np.mean(trig > 0.5) == pytest.approx(d, abs=3 * np.sqrt(d * (1 - d) / xi3.size))
    # one trigger (ξ₃ large at t = 2 s only), no drive afterwards: p rises within ~1 s, then decays with τ = 3 s
    table = np.zeros((40, 3))
    table[:, 2] = -5.0
    table[2, 2] = 5.0
    body = NavigationBody(jnp.asarray(table), pirouette_duration_s=3.0, pirouette_rate_rad_s=0.0, dtype=jnp.float64)
    assert set(body.initial_state()) == {"pos", "heading", "phase", "pirouette"}
    sol = solve_ys(body, 20_000.0, 500.0, solver=SolverConfig("euler", dt_ms=10.0, max_steps=10_000),
                   inputs={"reversal": jnp.asarray(0.05)})
    p, t = np.asarray(sol.ys["pirouette"]), np.asarray(sol.ts) / 1000.0
    assert p[t <= 1.0].max() < 1e-6 and p.max() > 0.8
    k = int(np.argmax(p))
    later = (t > t[k] + 1.0) & (t < t[k] + 8.0)
    rate = -np.polyfit(t[later], np.log(p[later]), 1)[0]
    assert rate == pytest.approx(1 / 3.0, rel=0.05)  # it runs its course at τ = 3 s
    x = np.asarray(sol.ys["pos"])[:, 0]
    assert x[k + 2] < x[k - 2]  # backing up during the pirouette
    with pytest.raises(ValueError, match="trigger column"):
        NavigationBody(jnp.zeros((5, 2)), pirouette_duration_s=3.0)
    with pytest.raises(ValueError, match="pirouette_duration_s must be > 0"):
        NavigationBody(jnp.zeros((5, 3)), pirouette_duration_s=0.0)


def test_plate_edge_keeps_worms_on_the_plate():
    """The soft wall: a worm crawling straight at the edge (square and round plates, forwards and
    reversing) stops within 0.05 cm of it and turns inwards; on the plate the wall does nothing."""
    from owjax.core.component import Composite
    from owjax.core.solve import SolverConfig, solve_ys
    from owjax.navigation.loop import PlateEdge

    solver = SolverConfig("euler", dt_ms=10.0, max_steps=100_000)
    for field, start, heading in ((LinearTemperature(12.0, 28.0, 9.0), (8.0, 0.0), 0.0),
                                  (RadialTemperature(13.0, 27.0, 4.5), (0.0, 3.5), np.pi / 2)):
        assert float(field.outside_cm(*field.center_cm())) < 0.0
        for reversal, th in ((0.0, heading), (1.0, heading + np.pi)):  # backwards into the wall too
            body = NavigationBody(jnp.zeros((400, 2)), start_xy_cm=start, start_heading_rad=th, dtype=jnp.float64)
            loop = Composite({"body": body}, [PlateEdge(field)])
            sol = solve_ys(loop, 300_000.0, 1000.0, solver=solver, inputs={"body.reversal": jnp.asarray(reversal)})
            pos = np.asarray(sol.ys["body"]["pos"])
            out = np.asarray(field.outside_cm(pos[:, 0], pos[:, 1]))
            assert out.max() < 0.05 and out[0] < -0.9  # started 1 cm inside, never more than 0.05 cm out
            assert out.max() > -0.1  # it did reach the edge
        d = PlateEdge(field)(0.0, {"pos_cm": jnp.asarray(field.center_cm()), "heading_rad": jnp.asarray(0.3)})
        assert np.all(np.abs(np.asarray(d)) < 1e-30)  # nothing in the middle of the plate
    with pytest.raises(ValueError, match="width_cm must be > 0"):
        PlateEdge(LinearTemperature(), width_cm=0.0)


# ---------------------------------------------------------------------------- circuit vs c302
def test_head_circuit_has_c302_cells_connections_and_signs(circuit):
    from owjax.navigation.circuit import HEAD_CELLS, head_circuit_spec

    spec = head_circuit_spec("C1")
    assert circuit.cell_names == spec.cell_names and set(HEAD_CELLS) == set(spec.cell_names)
    assert circuit.synapse_names == tuple(f"{c.pre}->{c.post}" for c in spec.chemical)
    assert np.allclose(np.asarray(circuit.weight), [c.weight for c in spec.chemical])
    erev = dict(zip(circuit.synapse_names, np.asarray(circuit.erev_mV)))
    assert erev["AFDL->AIYL"] == 0.0 and erev["RIAL->SMDDL"] == -70.0  # c302: RIA inhibitory, AFD excitatory
    assert "AFDL->AIZL" not in erev  # only existing connections


@pytest.mark.slow
def test_reduced_circuit_follows_c302_at_small_drive(circuit):
    """The graded reduction against the conductance-based c302 C1 head circuit on a short run: rest, and
    the AFD response to a small current step (graded regime)."""
    from owjax.core.solve import SolverConfig, solve_ys
    from owjax.navigation.circuit import head_circuit_spec
    from owjax.neural.network import NetworkModel
    from owjax.reduce.drive import driven_network

    spec = head_circuit_spec("C1")
    full = NetworkModel.from_spec(spec, jnp.float64)
    # c302 at rest (settled for 2 s from NeuroML's −45 mV) sits at the reduction's V_rest
    y_rest = jax.tree_util.tree_map(lambda a: a[-1], solve_ys(full, 2000.0, 2000.0, solver="tsit5").ys)
    assert np.allclose(np.asarray(y_rest["V"]), np.asarray(circuit.v_rest_mV), atol=0.5)
    # a 0.5-pA step into AFDL/R for 400 ms
    amp = 0.5
    table = np.full((3, 2), amp)
    drv = driven_network(full, table, 200.0, ["AFDL", "AFDR"])
    y0 = {"network": y_rest, **{k: v for k, v in drv.initial_state().items() if k != "network"}}
    sol_full = solve_ys(drv, 400.0, 10.0, solver="tsit5", y0=y0, save=("network.V",))
    red = solve_ys(circuit, 400.0, 10.0, solver=SolverConfig("euler", dt_ms=10.0, max_steps=1000),
                   inputs={"i_ext_pA": jnp.zeros(circuit.n_cells).at[jnp.asarray([circuit.index("AFDL"),
                                                                               circuit.index("AFDR")])].set(amp)})
    i = circuit.index("AFDL")
    v_full = np.asarray(sol_full.ys["network"]["V"])[:, full.index("AFDL")]
    v_red = np.asarray(red.ys["V"])[:, i]
    dv_full, dv_red = v_full[-1] - v_full[0], v_red[-1] - v_red[0]
    assert dv_full > 5.0 and dv_red > 5.0  # a clear graded depolarisation in both
    assert dv_red == pytest.approx(dv_full, rel=0.25)  # steady-state I–V: same amplitude within 25 %
    assert np.corrcoef(v_full, v_red)[0, 1] > 0.9


def test_ablation_silences_the_named_cells(circuit):
    """A killed cell stays at rest, and the rest of the circuit behaves as if its connections were gone."""
    from owjax.core.solve import SolverConfig, solve_ys

    drive = jnp.zeros(circuit.n_cells).at[jnp.asarray([circuit.index("AFDL"), circuit.index("AFDR")])].set(8.0)
    drive = drive.at[circuit.index("AIZL")].set(6.0)
    solver = SolverConfig("euler", dt_ms=10.0, max_steps=1000)
    ab = circuit.ablate(["AIYL", "AIYR"])
    run = lambda c: np.asarray(solve_ys(c, 1000.0, 10.0, solver=solver, inputs={"i_ext_pA": drive}).ys["V"])  # noqa: E731
    v_wt, v_ab = run(circuit), run(ab)
    rows = [circuit.index("AIYL"), circuit.index("AIYR")]
    assert np.all(v_ab[:, rows] == np.asarray(circuit.v_rest_mV)[rows])
    assert np.ptp(v_wt[:, rows]) > 5.0  # it would have responded
    # the same circuit with every connection touching AIY removed, AIY's own dynamics left: the others agree
    touch = np.array([any(n.startswith(p) for p in ("AIYL", "AIYR")) for n in circuit.synapse_names]) | \
        np.array([(s.split("->")[1] in ("AIYL", "AIYR")) for s in circuit.synapse_names])
    gtouch = np.array([any(c in ("AIYL", "AIYR") for c in g.split("-")) for g in circuit.gap_names])
    cut = eqx.tree_at(lambda c: (c.weight, c.gap_weight), circuit,
                      (jnp.where(touch, 0.0, circuit.weight), jnp.where(gtouch, 0.0, circuit.gap_weight)))
    v_cut = run(cut)
    others = [i for i in range(circuit.n_cells) if i not in rows]
    assert np.allclose(v_cut[:, others], v_ab[:, others], atol=1e-9)
    assert not np.allclose(v_wt[:, others], v_ab[:, others], atol=1e-3)
    with pytest.raises(ValueError, match="head-circuit cell.*AIYL"):
        circuit.ablate(["AIYX"])


def test_scaled_weights_keep_the_circuit_graded_where_c302s_latch(circuit):
    """With c302's weights the reduction is bistable: an AFD current step latches AVA near −4 mV and
    it stays there when the current stops. With the thermotaxis experiment's starting weights
    (0.05 × c302's, thresholds −40 mV) AVA follows AFD's current (≥ 5 mV for 2 pA) and returns to
    where it started when the current stops."""
    afd = jnp.asarray([circuit.index("AFDL"), circuit.index("AFDR")])
    ava = circuit.index("AVAL")

    @jax.jit
    def settle(c, i_afd, y0):
        return c.settle(y0, jnp.zeros(c.n_cells).at[afd].set(i_afd))

    def staircase(scale, vth):
        c = eqx.tree_at(lambda m: (m.weight, m.vth_mV), circuit,
                        (circuit.weight * scale, jnp.full_like(circuit.vth_mV, vth)))
        y0 = settle(c, 0.0, c.initial_state())
        y1 = settle(c, 2.0, y0)
        y2 = settle(c, 0.0, y1)
        return [float(y["V"][ava]) for y in (y0, y1, y2)]

    before, on, after = staircase(1.0, -20.0)
    assert before < -50.0 and on > -10.0 and after > -10.0  # c302's weights: latched after the step
    before, on, after = staircase(0.05, -40.0)
    assert on - before > 5.0 and abs(after - before) < 0.1 and before < -40.0


# ---------------------------------------------------------------------------- the loop
def _loop(duration_s=4.0, values=None):
    from owjax.navigation.setup import make_loop

    field = LinearTemperature(12.0, 28.0, 9.0)
    return field, make_loop(field, {}, values, "C1", 10.0, DT, duration_s=duration_s)


def test_loop_pieces_agree_with_themselves_run_separately(circuit):
    """The loop's transducer and circuit, run on their own with the head temperature the loop's body
    produced, give the loop's own responses (one solve = the pieces)."""
    from owjax.core.component import Composite
    from owjax.core.solve import SolverConfig, solve_ys
    from owjax.navigation.loop import head_temperature, loop_initial_state
    from owjax.sensory.component import GRUTransducer, TransducerDrive

    field, loop = _loop()
    loop = eqx.tree_at(lambda m: (m.components["body"].start_xy_cm, m.components["body"].noise), loop,
                       (jnp.asarray([3.0, 0.5]), body_noise(jax.random.PRNGKey(1), 4.0, dtype=jnp.float64)))
    loop = eqx.tree_at(lambda m: m.couplings[1].gain_pA, loop, jnp.asarray(4.0))
    y0 = loop_initial_state(loop, 25.0)
    solver = SolverConfig("euler", dt_ms=10.0, max_steps=100_000)
    sol = solve_ys(loop, 4000.0, 10.0, solver=solver, y0=y0)
    ys = sol.ys
    t_s = np.asarray(sol.ts) / 1000.0
    temp = np.asarray(head_temperature(loop, ys["body"]["pos"], ys["body"]["heading"], ys["body"]["phase"]))
    assert np.ptp(temp) > 0.0
    tr = GRUTransducer(loop["afd"].spec, loop["afd"].params, t_s, temp)
    drive = loop.couplings[1]
    assert isinstance(drive, TransducerDrive)
    alone = Composite({"afd": tr, "circuit": loop["circuit"]}, [drive])
    sol2 = solve_ys(alone, 4000.0, 10.0, solver=solver, y0={"afd": y0["afd"], "circuit": y0["circuit"]})
    assert np.allclose(np.asarray(sol2.ys["afd"]["h"]), np.asarray(ys["afd"]["h"]), atol=1e-10)
    assert np.allclose(np.asarray(sol2.ys["circuit"]["V"]), np.asarray(ys["circuit"]["V"]), atol=1e-8)
    v_afd = np.asarray(ys["circuit"]["V"])[:, loop["circuit"].index("AFDL")]
    assert np.ptp(v_afd) > 0.1  # the transducer really drives AFD


def test_gradient_through_a_short_loop_matches_finite_differences():
    from owjax.navigation.loop import simulate_worms

    field, loop = _loop(10.0)
    worms = {"xy": jnp.asarray([[3.0, 0.0], [6.0, 1.0]]), "heading": jnp.asarray([0.3, 2.0]),
             "noise": jax.vmap(lambda k: body_noise(k, 10.0, dtype=jnp.float64))(jax.random.split(jax.random.PRNGKey(2), 2)),
             "tc": jnp.asarray([15.0, 25.0])}
    loop = eqx.tree_at(lambda m: (m.couplings[1].gain_pA, m.components["circuit"].vth_mV), loop,
                       (jnp.asarray(4.0), jnp.full_like(loop["circuit"].vth_mV, -25.0)))

    def loss(p):
        lp = eqx.tree_at(lambda m: (m.couplings[2].gain, m.couplings[1].gain_pA, m.components["circuit"].bias_pA), loop,
                         (p["steer"], p["afd"], p["bias"]))
        pos = simulate_worms(lp, worms["xy"], worms["heading"], worms["noise"], worms["tc"], 10.0, 1.0,
                             save=("body.pos",)).ys["body"]["pos"]
        return jnp.sum(field(pos[:, -1, 0], pos[:, -1, 1]))

    p0 = {"steer": jnp.asarray(3.0), "afd": jnp.asarray(4.0), "bias": jnp.zeros(loop["circuit"].n_cells).at[
        loop["circuit"].index("SMDDL")].set(1.0)}
    f = jax.jit(loss)
    g = jax.jit(jax.grad(loss))(p0)
    for name in ("steer", "afd"):
        eps = 1e-4
        fd = (f({**p0, name: p0[name] + eps}) - f({**p0, name: p0[name] - eps})) / (2 * eps)
        assert float(g[name]) == pytest.approx(float(fd), rel=2e-3, abs=1e-7), name
    k = loop["circuit"].index("SMDDL")
    eps = 1e-4
    fd = (f({**p0, "bias": p0["bias"].at[k].add(eps)}) - f({**p0, "bias": p0["bias"].at[k].add(-eps)})) / (2 * eps)
    assert float(g["bias"][k]) == pytest.approx(float(fd), rel=2e-3, abs=1e-7)
    assert abs(float(g["steer"])) > 1e-6  # the steering read-out moves the worms


# ---------------------------------------------------------------------------- metrics
def test_thermotaxis_and_chemotaxis_metrics():
    t = np.arange(0.0, 61.0)
    temp = np.vstack([np.full(61, 20.5), np.full(61, 19.0), np.full(61, 23.0)])
    s = thermotaxis_summary(t, temp, 20.0, window_s=30.0)
    assert s["thermotaxis_index"] == pytest.approx(1 / 3) and s["isothermal_fraction"] == pytest.approx(2 / 3)
    assert s["mean_final_temp_c"] == pytest.approx(62.5 / 3) and s["window_s"] == 30.0
    c = chemotaxis_index(np.array([[0.5, 0.0], [1.0, 1.0], [8.0, 0.0], [4.0, 0.0]]))
    assert c["chemotaxis_index"] == pytest.approx((3 - 1) / 4)
    with pytest.raises(ValueError, match="worms"):
        thermotaxis_summary(t, temp[:, :10], 20.0)


def test_worms_start_uniformly_or_on_their_isotherm():
    """``start="isotherm"``: every worm starts on the isotherm of its own T_c (within the tolerance,
    inside the margin, spread along it); the uniform draw is unchanged by the option; bad requests fail."""
    from owjax.navigation.setup import ISOTHERM_TOLERANCE, draw_worms

    key, tcs = jax.random.PRNGKey(3), [15.0, 20.0, 25.0]
    for field in (RadialTemperature(13.0, 27.0, 4.5), LinearTemperature(11.0, 29.0, 9.0, 9.0)):
        w = draw_worms(key, 30, field, tcs, 10.0, start="isotherm")
        xy, tc = np.asarray(w["xy"]), np.asarray(w["tc"])
        temp = np.asarray(field(xy[:, 0], xy[:, 1]))
        assert np.all(np.abs(temp - tc) <= ISOTHERM_TOLERANCE + 1e-5)
        assert np.all(np.asarray(field.outside_cm(xy[:, 0], xy[:, 1])) <= -0.5 + 1e-6)
        assert np.ptp(xy[tc == 20.0], 0).max() > 2.0  # spread along the isotherm, not one point
        assert np.unique(xy, axis=0).shape[0] == 30  # independent draws: no start used twice
        u = draw_worms(key, 30, field, tcs, 10.0, start="uniform")
        assert np.array_equal(np.asarray(u["noise"]), np.asarray(w["noise"]))  # only the positions differ
        # the uniform draw as it was before `start` existed: key split in 4, the first (and, on a disc, the
        # fourth) for the positions
        k1, _, _, k4 = jax.random.split(key, 4)
        if isinstance(field, RadialTemperature):
            r = 4.0 * jnp.sqrt(jax.random.uniform(k1, (30,), jnp.float32))
            a = 2 * jnp.pi * jax.random.uniform(k4, (30,), jnp.float32)
            expected = jnp.stack([r * jnp.cos(a), r * jnp.sin(a)], 1)
        else:
            expected = jnp.asarray([0.5, -4.0]) + jnp.asarray([8.0, 8.0]) * jax.random.uniform(k1, (30, 2), jnp.float32)
        np.testing.assert_allclose(np.asarray(u["xy"]), np.asarray(expected), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"isotherm of T_c = \[12.0\].*13.00 … 25.44 degC"):
        draw_worms(key, 3, RadialTemperature(13.0, 27.0, 4.5), [12.0], 10.0, start="isotherm")
    with pytest.raises(ValueError, match="allowed"):
        draw_worms(key, 3, RadialTemperature(13.0, 27.0, 4.5), [20.0], 10.0, start="edge")
    with pytest.raises(ValueError, match="inside its edge"):
        draw_worms(key, 3, RadialTemperature(13.0, 27.0, 4.5), [20.0], 10.0, margin_cm=5.0, start="isotherm")
    with pytest.raises(ValueError, match="choose one"):
        draw_worms(key, 3, RadialTemperature(13.0, 27.0, 4.5), [20.0], 10.0, start="isotherm", start_xy_cm=[0.0, 0.0])


def test_moving_away_labels_and_weights():
    """The privileged training label: warming above T_c or cooling below it is "away"; on an isotherm
    or at T_c the weight is 0."""
    from owjax.fitting.tasks.thermotaxis import moving_away

    f = LinearTemperature(12.0, 28.0, 8.0)  # 2 °C/cm along +x
    pos = jnp.asarray([[6.0, 1.0], [6.0, 1.0], [2.0, 1.0], [2.0, 1.0], [4.0, 1.0], [6.0, 1.0]])  # 24, 24, 16, 16, 20, 24 °C
    heading = jnp.asarray([0.0, np.pi, 0.0, np.pi, 0.0, np.pi / 2])
    y, w = moving_away(f, pos, heading, jnp.asarray(20.0), band_c=1.0)
    assert np.asarray(y)[:5].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]  # (on the isotherm either label, weight 0)
    w = np.asarray(w)
    assert w[:4] == pytest.approx(np.tanh(4.0), rel=1e-9) and w[4] == 0.0 and w[5] == pytest.approx(0.0, abs=1e-9)


def test_trained_synaptic_time_constants_are_bounded_and_applied(circuit):
    from owjax.navigation.params import TAU_MAX_MS, apply_values, init_raw, values_from_raw
    from owjax.navigation.setup import make_loop

    n_syn, n = len(circuit.synapse_names), circuit.n_cells
    args = (n, n_syn, -40.0, 2.0, 0.0, 0.05, 2.0, 15.0, 3.0)
    raw = init_raw(*args, dtype=jnp.float64, tau_init_ms=500.0)
    v = values_from_raw(raw, circuit.weight, 4.0, 3.0, 0.05)
    assert np.allclose(np.asarray(v["tau_ms"]), 500.0, rtol=1e-9)
    lo = values_from_raw(raw | {"tau": jnp.full(n_syn, -50.0)}, circuit.weight, 4.0, 3.0, 0.05)["tau_ms"]
    hi = values_from_raw(raw | {"tau": jnp.full(n_syn, 50.0)}, circuit.weight, 4.0, 3.0, 0.05)["tau_ms"]
    assert np.allclose(np.asarray(lo), 40.0) and np.allclose(np.asarray(hi), TAU_MAX_MS)
    loop = apply_values(make_loop(LinearTemperature(), {}, None, dtype=DT), v)
    assert np.allclose(np.asarray(loop["circuit"].k_per_ms), 1 / 500.0)
    assert "tau" not in init_raw(*args)  # without tau_init_ms c302's kinetics stay fixed
    assert np.allclose(np.asarray(apply_values(loop, values_from_raw(init_raw(*args), circuit.weight, 4.0, 3.0))[
        "circuit"].k_per_ms), 1 / 500.0)  # … and a loop keeps the kinetics it has
    with pytest.raises(ValueError, match="tau_init_ms must lie in"):
        init_raw(*args, tau_init_ms=30_000.0)


def test_thermotaxis_task_with_events_time_constants_and_away_term():
    """The thermotaxis task with pirouette events, trained time constants and the ``away`` term: one
    loss and its gradient (2 worms × 12 s), finite, with the time constants and the AFD drive in it."""
    from omegaconf import OmegaConf

    from owjax.fitting.tasks.thermotaxis import ThermotaxisTask

    conf = OmegaConf.load(__import__("owjax").__path__[0] + "/conf/experiment/thermotaxis.yaml")
    cfg = OmegaConf.to_container(conf, resolve=True)
    cfg["body"]["pirouette_duration_s"] = 3.0
    cfg["circuit"]["tau_init_ms"] = 500.0
    cfg["episode"].update(duration_s=12.0, n_worms=2, score_after_s=2.0)
    cfg["loss"]["weights"] = {"track": 1.0, "away": 1.0, "reg": 0.01}
    task = ThermotaxisTask(cfg, 0)
    raw = task.init(jax.random.PRNGKey(0))
    assert np.allclose(np.asarray(task.values(raw)["tau_ms"]), 500.0, rtol=1e-5)
    batch = task.batches(0, jax.random.PRNGKey(1))
    (value, terms), g = jax.value_and_grad(lambda r: task.loss(r, batch, None), has_aux=True)(raw)
    assert set(terms) == {"track", "away", "reg"} and np.isfinite(float(value))
    assert float(terms["away"]) >= -1.0  # −(P̄_away − P̄_towards) ≥ −1, plus a non-negative rate penalty
    assert all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree.leaves(g))
    assert float(jnp.abs(g["tau"]).max()) > 0 and float(jnp.abs(g["afd_gain_pA"])) > 0
    bad = cfg | {"loss": {"weights": {"awy": 1.0}}}
    with pytest.raises(ValueError, match="unknown term.*away"):
        ThermotaxisTask(bad, 0)


def test_training_continues_from_a_saved_circuit(tmp_path):
    """``raw_from_values`` inverts ``values_from_raw`` (float64, to 1e-9); ``circuit.init_from`` starts
    the task from a saved circuit (the shipped one, and a file) with its values; values outside the
    experiment's bounds and a file of another circuit are clear errors."""
    from omegaconf import OmegaConf

    from owjax.fitting.tasks.thermotaxis import ThermotaxisTask
    from owjax.navigation.params import DEFAULT_DATA, load_values, raw_from_values, save_values, values_from_raw

    conf = OmegaConf.load(__import__("owjax").__path__[0] + "/conf/experiment/thermotaxis.yaml")
    cfg = OmegaConf.to_container(conf, resolve=True) | {"dtype": "float64"}
    cfg["body"]["pirouette_duration_s"] = 3.0
    task = ThermotaxisTask(cfg, 0)
    rng = np.random.default_rng(0)
    raw = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=np.shape(a)), jnp.float64),
                       task.init(jax.random.PRNGKey(0)) | {"tau": jnp.zeros(len(task.synapse_names))})
    vals = values_from_raw(raw, task.w_c302, 4.0, 3.0, 0.05, tau_min_ms=40.0)
    back = raw_from_values(vals, task.w_c302, 4.0, 3.0, 0.05, tau_min_ms=40.0, dtype=jnp.float64)
    assert set(back) == set(raw)
    for k in raw:
        assert np.allclose(np.asarray(back[k]), np.asarray(raw[k]), rtol=1e-9, atol=1e-9), k
    shipped = load_values(DEFAULT_DATA)
    # the shipped circuit was trained with its own bounds and signs (its provenance): the task takes them
    prov = json.loads(DEFAULT_DATA.with_suffix(".json").read_text())["provenance"]
    ship_cfg = copy.deepcopy(cfg)
    for key in ("polarity", "weight_scale", "bias_max_pA", "weight_max_factor"):
        if prov.get(key) is not None:
            ship_cfg["circuit"][key] = prov[key]
    ship_cfg["circuit"]["tau_init_ms"] = 1000.0 if "tau_ms" in shipped else None
    ship_cfg["circuit"]["init_from"] = "shipped"
    v = ThermotaxisTask(ship_cfg, 0).values(ThermotaxisTask(ship_cfg, 0).init(None))
    for k in shipped:
        assert np.allclose(np.asarray(v[k]), shipped[k], rtol=1e-9), k
    if ship_cfg["circuit"] != cfg["circuit"] | {"init_from": "shipped"}:  # the experiment's bounds do not fit it
        with pytest.raises(ValueError, match="trained with other bounds"):
            ThermotaxisTask(cfg | {"circuit": cfg["circuit"] | {"init_from": "shipped"}}, 0).init(None)
    path = save_values(tmp_path / "c.npz", vals, task.synapse_names, task.cell_names, {"test": True})
    cfg["circuit"]["init_from"] = str(path)
    assert np.allclose(np.asarray(ThermotaxisTask(cfg, 0).values(ThermotaxisTask(cfg, 0).init(None))["weight"]),
                       np.asarray(vals["weight"]), rtol=1e-9)
    with pytest.raises(ValueError, match="vth_mV has 1 value"):
        raw_from_values(vals | {"vth_mV": np.asarray(vals["vth_mV"]).copy() * 0 + np.r_[5.0, np.full(
            len(task.synapse_names) - 1, -40.0)]}, task.w_c302, 4.0, 3.0, 0.05)
    with pytest.raises(ValueError, match="weight / "):
        raw_from_values(vals, task.w_c302, 4.0, 3.0, 0.01)  # another weight_scale: weights out of reach
    save_values(tmp_path / "other.npz", vals, task.synapse_names[::-1], task.cell_names, {})
    cfg["circuit"]["init_from"] = str(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="synapses differ"):
        ThermotaxisTask(cfg, 0).init(None)


def test_transmitter_polarity_fixes_what_the_prior_fixes_and_trains_the_rest(tmp_path):
    """``circuit.polarity=transmitter``: each connection's class is synapse_polarity's prior for its
    presynaptic cell (AFD, AIY → excitatory; RIB, GABAergic → inhibitory, against c302; AIZ, AIB, RIA,
    RIM, SMD → free); the free ones start at c302's sign (p 0.9 / 0.1) and carry the gradient, the fixed
    ones hold E_exc / E_inh and get none; a free connection's mixed reversal potential gives the current
    of its excitatory and inhibitory parts summed; values survive a save/load/continue round trip; bad
    settings are clear errors."""
    from omegaconf import OmegaConf

    from owjax.fitting.tasks.synapse_polarity_metrics import nt_class_of
    from owjax.fitting.tasks.thermotaxis import ThermotaxisTask
    from owjax.navigation.params import apply_values, raw_from_values, save_values
    from owjax.navigation.polarity import (E_EXC_MV, E_INH_MV, EXCITATORY, FREE, INHIBITORY, connection_classes,
                                           reversal_from_p_exc)
    from owjax.neural.connectome import presynaptic_transmitters

    conf = OmegaConf.load(__import__("owjax").__path__[0] + "/conf/experiment/thermotaxis.yaml")
    cfg = OmegaConf.to_container(conf, resolve=True) | {"dtype": "float64"}
    cfg["episode"].update(duration_s=6.0, n_worms=2, score_after_s=1.0)
    cfg["circuit"]["polarity"] = "transmitter"
    task = ThermotaxisTask(cfg, 0)
    names, cls = task.synapse_names, task.polarity_classes
    pre = [n.split("->")[0] for n in names]
    table = presynaptic_transmitters(sorted(set(pre)))
    assert [nt_class_of(table[c]) for c in pre] == cls.tolist()
    kind = dict(zip(names, cls.tolist()))
    assert kind["AFDR->AIYR"] == kind["AIYR->AIZR"] == kind["AVBL->AVAL"] == EXCITATORY
    assert kind["RIBR->AVAR"] == kind["RIBL->AIBR"] == INHIBITORY
    assert kind["AIZL->AIBR"] == kind["AIBL->AVAL"] == kind["RIAL->SMDDL"] == kind["RIMR->AVAL"] == FREE
    raw = task.init(None)
    v = task.values(raw)
    c302_erev = np.asarray(task.loop["circuit"].erev_mV)
    erev = np.asarray(apply_values(task.loop, v)["circuit"].erev_mV)
    want = np.where(cls == EXCITATORY, E_EXC_MV, np.where(cls == INHIBITORY, E_INH_MV,
                    np.where(c302_erev == E_EXC_MV, -7.0, -63.0)))
    assert np.allclose(erev, want, atol=1e-9)
    assert set(task.polarity_report(v)["sign_differs_from_c302"]) == {n for n in names if n.startswith("RIB")}
    # the mixed reversal is the excitatory and inhibitory parts summed, in the circuit's own currents
    circ, p = task.loop["circuit"], jnp.asarray(np.linspace(0.05, 0.95, len(names)))
    state = {"V": circ.v_rest_mV + jnp.asarray(np.linspace(-10, 30, circ.n_cells)), "s": jnp.full(len(names), 0.5)}
    def synaptic(erev, weight):  # the chemical synapses' current into each cell (pA)
        with_syn = eqx.tree_at(lambda c: (c.erev_mV, c.weight), circ, (erev, weight)).currents(state)[0]
        return with_syn - eqx.tree_at(lambda c: c.weight, circ, jnp.zeros_like(weight)).currents(state)[0]

    mixed = synaptic(reversal_from_p_exc(p), circ.weight)
    parts = synaptic(jnp.full_like(p, E_EXC_MV), circ.weight * p) + synaptic(jnp.full_like(p, E_INH_MV),
                                                                             circ.weight * (1.0 - p))
    assert float(jnp.abs(mixed).max()) > 0.1
    assert np.allclose(np.asarray(mixed), np.asarray(parts), rtol=1e-10, atol=1e-10)
    # gradient: free connections only
    batch = task.batches(0, jax.random.PRNGKey(1))
    g = jax.grad(lambda r: task.loss(r, batch, None)[0])(raw)["p_exc"]
    assert float(jnp.abs(g[cls == FREE]).max()) > 0 and float(jnp.abs(g[cls != FREE]).max()) == 0.0
    # save, load and continue
    path = save_values(tmp_path / "tx.npz", v, names, task.cell_names, {"test": True})
    cont = ThermotaxisTask(cfg | {"circuit": cfg["circuit"] | {"init_from": str(path)}}, 0)
    assert np.allclose(np.asarray(cont.values(cont.init(None))["p_exc"]), np.asarray(v["p_exc"]), rtol=1e-9)
    with pytest.raises(ValueError, match="carry trained polarities"):
        raw_from_values(v, task.w_c302, 4.0, 3.0, 0.05)
    with pytest.raises(ValueError, match="no p_exc"):
        raw_from_values({k: x for k, x in v.items() if k != "p_exc"}, task.w_c302, 4.0, 3.0, 0.05,
                        polarity_classes=cls)
    with pytest.raises(ValueError, match="prior fixes differs"):
        raw_from_values(v | {"p_exc": np.where(cls == INHIBITORY, 1.0, np.asarray(v["p_exc"]))}, task.w_c302,
                        4.0, 3.0, 0.05, polarity_classes=cls)
    for bad, match in (({"polarity": "dale"}, "polarity rules are"), ({"p_exc_init": 1.5}, "p_exc_init"),
                       ({"polarity": "c302", "p_exc_init": 0.5}, "p_exc_init is for")):
        with pytest.raises(ValueError, match=match):
            ThermotaxisTask(cfg | {"circuit": cfg["circuit"] | bad}, 0)
    half = ThermotaxisTask(cfg | {"circuit": cfg["circuit"] | {"p_exc_init": 0.5}}, 0)
    assert np.allclose(np.asarray(half.values(half.init(None))["p_exc"])[cls == FREE], 0.5)
    assert np.array_equal(connection_classes(["RIBL", "AIYL"], {"RIBL": "GABA", "AIYL": "Glutamate"}), [2, 0])


# ---------------------------------------------------------------------------- fit and scenarios
@pytest.mark.slow
def test_thermotaxis_fit_ci(tmp_path):
    """``python -m owjax.fit +experiment=thermotaxis run=ci``: trains, evaluates, reports weight movement."""
    from hydra import compose, initialize_config_dir

    from owjax.fitting.loop import CONF_DIR, run_fit
    from owjax.navigation.params import load_values

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("fit", overrides=["+experiment=thermotaxis", "run=ci", "progress=false", "figures=false"],
                      return_hydra_config=True)
    m = run_fit(cfg, tmp_path)
    assert m["status"] == "complete" and m["n_steps"] == 2 and np.isfinite(m["final_loss"])
    ev = m["evaluation_trained"]
    assert set(ev) == {f"radial/{c}/{t}C" for c in ("wild_type", "AIY") for t in (15, 20, 25)}
    for s in ev.values():
        assert -1.0 <= s["thermotaxis_index"] <= 1.0 and 0.0 <= s["isothermal_fraction"] <= 1.0
    w = m["weights"]
    assert w["weight_scale"] == 0.05 and len(w["most_moved"]) == 10
    assert 0.0 < w["factor_vs_start_min"] <= w["factor_vs_start_max"] <= 4.0
    assert w["factor_max"] == pytest.approx(0.05 * w["factor_vs_start_max"], rel=1e-9)
    v = load_values(tmp_path / "head_circuit.npz")
    assert v["weight"].shape == (117,) and np.all(v["weight"] > 0)


def test_thermotaxis_scenario(tmp_path):
    from omegaconf import OmegaConf

    from owjax.simulate import run_simulation

    base = OmegaConf.load(__import__("owjax").__path__[0] + "/conf/scenario/thermotaxis.yaml")
    cfg = OmegaConf.merge(OmegaConf.load(__import__("owjax").__path__[0] + "/conf/simulate.yaml"), base)
    cfg.pop("defaults")
    cfg.model, cfg.network, cfg.stimulus, cfg.solver = {}, {}, {}, {}
    cfg.n_worms, cfg.duration_s, cfg.figures = 3, 10.0, True
    cfg.navigation.params = "c302"
    cfg.ablate = ["AIYL", "AIYR"]
    cfg.navigation.start = "isotherm"
    s = run_simulation(cfg, tmp_path)
    saved = json.loads((tmp_path / "summary.json").read_text())
    for k in ("thermotaxis_index", "isothermal_fraction", "mean_final_temp_c", "sd_final_temp_c"):
        assert k in saved and np.isfinite(saved[k])
    assert saved["ablated"] == ["AIYL", "AIYR"] and s["n_worms"] == 3
    assert (tmp_path / "tracks.png").is_file() and np.load(tmp_path / "tracks.npz")["pos_cm"].shape == (3, 11, 2)
    assert saved["start"] == "isotherm" and np.all(np.abs(np.load(tmp_path / "tracks.npz")["temp_c"][:, 0] - 20.0) < 0.06)
    v = saved["circuit_v_range_mV"]  # the living cells' membrane potentials over the run, all inside c302's table
    assert "AIYL" not in v and len(v) == 26 and saved["cells_outside_iv_grid"] == []
    assert all(-100.0 <= lo <= hi <= 60.0 for lo, hi in v.values())
    cfg.ablate = ["AIYX"]
    with pytest.raises(ValueError, match="head-circuit cell"):
        run_simulation(cfg, tmp_path)


def test_potential_range_flags_cells_a_bias_drives_out_of_c302s_table(circuit):
    """A tonic bias of −3 pA (the experiment's bound) holds a C1 cell hundreds of mV below rest (its slope
    conductance is ≈ 0.02 nS) and drags its gap-junction partners with it: the evaluation's potential
    range reports them, and an unbiased circuit stays inside c302's I–V table."""
    from owjax.navigation.evaluate import potential_range, run_worms
    from owjax.navigation.setup import draw_worms, make_loop

    field = LinearTemperature()
    worms = draw_worms(jax.random.PRNGKey(0), 2, field, [20.0], 20.0, 1.0, dtype=DT)
    loop = make_loop(field, {}, None, dtype=DT, duration_s=20.0)
    _, ok = run_worms(loop, worms, 20.0, return_potential_range=True)
    assert ok["cells_outside_iv_grid"] == [] and set(ok["circuit_v_range_mV"]) == set(circuit.cell_names)
    i = circuit.index("AFDL")
    biased = eqx.tree_at(lambda m: m.components["circuit"].bias_pA, loop,
                         loop["circuit"].bias_pA.at[i].set(-3.0))
    _, bad = run_worms(biased, worms, 20.0, return_potential_range=True)
    assert "AFDL" in bad["cells_outside_iv_grid"] and bad["circuit_v_range_mV"]["AFDL"][0] < -150.0
    assert set(bad["cells_outside_iv_grid"]) <= {"AFDL", "AFDR", "AIBL"}  # itself and its gap-junction partners
    assert potential_range(("A", "B"), [-120.0, -50.0], [0.0, 70.0], [True, False])["cells_outside_iv_grid"] == ["A"]


def test_cultivation_memory_time_constant_reaches_the_loop_and_is_checked(tmp_path):
    """The loop's AFD transducer keeps T_c with τ = CULTIVATION_MEMORY_TAU_S (4 h) unless told otherwise:
    ``None`` keeps the fitted value; a worm held at a constant temperature T ≠ T_c forgets T_c as
    exp(−t/τ); bad values are refused; the scenario records the value used."""
    from omegaconf import OmegaConf

    from owjax.navigation.loop import adapted_transducer_state
    from owjax.navigation.setup import CULTIVATION_MEMORY_TAU_S, make_loop, navigation_transducer
    from owjax.sensory.component import GRUTransducer
    from owjax.sensory.loaders import DATA_DIR
    from owjax.sensory.transducer import load_transducer
    from owjax.simulate import run_simulation

    _, fitted = load_transducer(DATA_DIR / "afd_transducer.npz", dtype=jnp.float64)
    assert float(np.exp(fitted["log_tau_adapt_s"])) < 3600.0  # what the default replaces
    assert CULTIVATION_MEMORY_TAU_S == 4 * 3600.0
    for tau, want in ((CULTIVATION_MEMORY_TAU_S, CULTIVATION_MEMORY_TAU_S), (60.0, 60.0),
                      (None, float(np.exp(fitted["log_tau_adapt_s"])))):
        spec, p = navigation_transducer(dtype=DT, memory_tau_s=tau)
        assert float(np.exp(p["log_tau_adapt_s"])) == pytest.approx(want, rel=1e-12)
        for k in ("cells", "readout"):  # only the time constant changes
            assert jax.tree_util.tree_all(jax.tree.map(np.array_equal, p[k], fitted[k]))
        tr = GRUTransducer(spec, p)
        y = adapted_transducer_state(tr, jnp.asarray(20.0, jnp.float64), 15.0)
        dy = tr.vector_field(0.0, y, {"stimulus": jnp.asarray(20.0, jnp.float64)})
        # u_slow (the memory of T_c = 15 °C) relaxes towards 20 °C at 1/τ per second
        assert float(dy["filters"][1]) == pytest.approx((20.0 - float(y["filters"][1])) / want, rel=1e-9)
    loop = make_loop(LinearTemperature(), {}, None, dtype=DT, memory_tau_s=123.0)
    assert float(np.exp(loop["afd"].params["log_tau_adapt_s"])) == pytest.approx(123.0)
    for bad in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="memory_tau_s"):
            navigation_transducer(dtype=DT, memory_tau_s=bad)
    base = OmegaConf.load(__import__("owjax").__path__[0] + "/conf/scenario/thermotaxis.yaml")
    cfg = OmegaConf.merge(OmegaConf.load(__import__("owjax").__path__[0] + "/conf/simulate.yaml"), base)
    cfg.pop("defaults")
    cfg.model, cfg.network, cfg.stimulus, cfg.solver = {}, {}, {}, {}
    cfg.n_worms, cfg.duration_s, cfg.figures = 2, 5.0, False
    assert cfg.navigation.memory_tau_s == CULTIVATION_MEMORY_TAU_S
    cfg.navigation.memory_tau_s = None
    run_simulation(cfg, tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["transducer_memory_tau_s"] is None

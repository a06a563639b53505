"""The mechanical body level of the navigation loop (owjax.navigation.mechanical): the head circuit's
steering and reversal commands reach BBC's motor loop, and the arena is sampled at the head rod."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from owjax.body.circuit import ActivationToBody, BBCCircuit, BodyToStretchReceptors
from owjax.body.mechanics import RodBody
from owjax.core.component import Composite
from owjax.core.solve import SolverConfig, solve_ys
from owjax.navigation.arena import RadialTemperature
from owjax.navigation.body import body_noise
from owjax.navigation.mechanical import (ArenaAtRodHead, PirouetteEvents, make_mechanical_loop, mechanical_initial_state,
                                         plate_xy_cm, simulate_worms_mechanical)


def test_bbc_motor_loop_without_the_new_inputs_is_bbc():
    c = BBCCircuit()
    y = c.initial_state()
    y = {"neuron": y["neuron"].at[1, 3].set(0.4), "muscle": y["muscle"] + 0.1}
    base = c.vector_field(0.0, y, None)
    zero = c.vector_field(0.0, y, {"reversal": jnp.asarray(0.0), "steer": jnp.asarray(0.0)})
    for k in base:
        np.testing.assert_array_equal(np.asarray(base[k]), np.asarray(zero[k]))
    # steering biases only the neck's muscles, dorsal up and ventral down
    d = c.vector_field(0.0, y, {"steer": jnp.asarray(2.0)})["muscle"] - base["muscle"]
    d = np.asarray(d)
    assert np.all(d[0, :c.neck_segments] > 0) and np.all(d[1, :c.neck_segments] < 0)
    np.testing.assert_array_equal(d[:, c.neck_segments:], 0.0)
    with pytest.raises(ValueError, match="neck_amplitude"):
        BBCCircuit(neck_amplitude=0.5)
    with pytest.raises(ValueError, match="neck_segments"):
        BBCCircuit(neck_segments=0)


@eqx.filter_jit
def _motor_and_body(inputs):
    comp = Composite({"motor": BBCCircuit(), "body": RodBody("agar")},
                     [BodyToStretchReceptors(source="body", target="motor"),
                      ActivationToBody(source="motor", target="body")])
    cfg = SolverConfig("tsit5", rtol=1e-4, atol=1e-4, dt_ms=1.0, max_steps=100_000)
    return solve_ys(comp, 12_000.0, 12_000.0, cfg, save=("body.x", "body.y"), inputs=inputs)


def _turn_and_travel(inputs):
    sol = _motor_and_body(inputs)
    x, y = np.asarray(sol.ys["body"]["x"][-1]), np.asarray(sol.ys["body"]["y"][-1])
    # heading of the body axis (tail → head) at the end; it starts along −x (π)
    heading = np.arctan2(y[0] - y[-1], x[0] - x[-1])
    travel = np.hypot(x.mean() - sol.ys["body"]["x"][0].mean(), y.mean() - sol.ys["body"]["y"][0].mean())
    return float(np.angle(np.exp(1j * (heading - np.pi)))), float(travel)


def test_steering_turns_the_rod_body_and_reversal_stops_it():
    """A dorsal neck bias turns the body one way, a ventral one the other (dorsal is +y at the start, the
    worm crawls towards −x, so dorsal is a clockwise turn); withdrawing the AVB drive stops crawling."""
    turn_d, go_d = _turn_and_travel({"motor.steer": jnp.asarray(3.0), "motor.reversal": jnp.asarray(0.0)})
    turn_v, go_v = _turn_and_travel({"motor.steer": jnp.asarray(-3.0), "motor.reversal": jnp.asarray(0.0)})
    _, stop = _turn_and_travel({"motor.steer": jnp.asarray(0.0), "motor.reversal": jnp.asarray(1.0)})
    assert turn_d - turn_v < -0.3, (turn_d, turn_v)
    assert go_d > 1.0 and go_v > 1.0, (go_d, go_v)  # mm in 12 s
    assert stop < 0.2 * min(go_d, go_v), (stop, go_d, go_v)


def test_plate_frame_and_arena_at_the_head_rod():
    start, heading = jnp.asarray([1.0, -0.5]), jnp.asarray(0.7)
    # the head rod at the body-frame origin is at the start; 1 mm ahead of it (−x) is 0.1 cm along the heading
    np.testing.assert_allclose(np.asarray(plate_xy_cm(0.0, 0.0, start, heading)), [1.0, -0.5], atol=1e-6)
    np.testing.assert_allclose(np.asarray(plate_xy_cm(-1.0, 0.0, start, heading)),
                               [1.0 + 0.1 * np.cos(0.7), -0.5 + 0.1 * np.sin(0.7)], atol=1e-6)
    # dorsal (+y in the body frame) is the worm's left on the plate, as for the navigation body's steering
    np.testing.assert_allclose(np.asarray(plate_xy_cm(0.0, 1.0, start, heading)),
                               [1.0 - 0.1 * np.sin(0.7), -0.5 + 0.1 * np.cos(0.7)], atol=1e-6)
    field = RadialTemperature(13.0, 27.0, 4.5)
    arena = ArenaAtRodHead(field, start, heading)
    assert float(arena(0.0, {"x_mm": jnp.zeros(49), "y_mm": jnp.zeros(49)})) == pytest.approx(float(field(1.0, -0.5)))


def test_the_shipped_circuit_drives_the_rod_body_in_the_arena():
    field = RadialTemperature(13.0, 27.0, 4.5)
    loop = make_mechanical_loop(field, None)  # c302's circuit (scaled read-outs of 1)
    y0 = mechanical_initial_state(loop, 20.0)
    assert set(y0) == {"afd", "circuit", "motor", "body", "pirouette"}
    noise = body_noise(jax.random.PRNGKey(0), 6.0)[None]
    with pytest.raises(ValueError, match="noise"):
        simulate_worms_mechanical(loop, jnp.asarray([[2.0, 0.0]]), jnp.asarray([np.pi]), jnp.asarray([20.0]), 6.0, 1.0)
    out = simulate_worms_mechanical(loop, jnp.asarray([[2.0, 0.0]]), jnp.asarray([np.pi]), jnp.asarray([20.0]), 6.0,
                                    1.0, save_circuit=True, noise=noise)
    assert out["pirouette"].shape == (1, 7) and np.all((np.asarray(out["pirouette"]) >= 0) & (np.asarray(out["pirouette"]) <= 1))
    head, cen, t_s, steps = (np.asarray(out[k]) for k in ("head_xy_cm", "centroid_xy_cm", "t_s", "num_steps"))
    assert out["circuit_V_mV"].shape == (1, 7, loop["circuit"].n_cells)
    assert head.shape == (1, 7, 2) and t_s.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert np.all(np.isfinite(head)) and int(steps[0]) > 0
    np.testing.assert_allclose(head[0, 0], [2.0, 0.0], atol=1e-6)
    # it crawls (towards the centre: heading π from x = 2 cm), at most at the navigation body's 0.22 mm/s
    moved = np.linalg.norm(cen[0, -1] - cen[0, 0]) * 10
    assert 0.1 < moved < 0.3 * 6, moved
    with pytest.raises(ValueError, match="multiple"):
        simulate_worms_mechanical(loop, jnp.asarray([[2.0, 0.0]]), jnp.asarray([0.0]), jnp.asarray([20.0]), 2.5, 1.0,
                                  noise=noise)
    assert jax.tree.leaves(loop)  # the loop is a pytree (jit/vmap/grad as every owjax component)


def test_pirouette_events_fire_at_the_commanded_rate_and_turn_the_rod_body():
    """The events start as on the navigation body: with the command at 1 every noise sample triggers one, at
    ~0 none does; an event's program (half the AVB drive, neck ventral) turns a crawling body."""
    noise = body_noise(jax.random.PRNGKey(3), 10.0)
    ev = PirouetteEvents(noise, 1.0, 3.0)
    cfg = SolverConfig("tsit5", rtol=1e-5, atol=1e-5, dt_ms=1.0, max_steps=100_000)
    hi = solve_ys(ev, 5000.0, 1000.0, cfg, inputs={"reversal": jnp.asarray(1.0 - 1e-4)}).ys["pirouette"]
    lo = solve_ys(ev, 5000.0, 1000.0, cfg, inputs={"reversal": jnp.asarray(1e-5)}).ys["pirouette"]
    assert float(np.max(hi)) > 0.8 and float(np.max(lo)) < 0.01
    with pytest.raises(ValueError, match="noise"):
        PirouetteEvents(noise[:, :2])
    turn_p, _ = _turn_and_travel({"motor.steer": jnp.asarray(-3.0), "motor.reversal": jnp.asarray(0.5)})
    turn_0, _ = _turn_and_travel({"motor.steer": jnp.asarray(0.0), "motor.reversal": jnp.asarray(0.0)})
    assert abs(turn_p - turn_0) > 1.0, (turn_p, turn_0)


def test_thermotaxis_scenario_on_the_mechanical_body(tmp_path):
    import json

    from omegaconf import OmegaConf

    from owjax.simulate import run_simulation

    root = __import__("owjax").__path__[0]
    cfg = OmegaConf.merge(OmegaConf.load(root + "/conf/simulate.yaml"), OmegaConf.load(root + "/conf/scenario/thermotaxis.yaml"))
    cfg.pop("defaults")
    cfg.model, cfg.network, cfg.stimulus, cfg.solver = {}, {}, {}, {}
    cfg.n_worms, cfg.duration_s, cfg.figures = 2, 4.0, False
    cfg.navigation.body_level = "mechanical"
    s = run_simulation(cfg, tmp_path)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["body_level"] == "mechanical" and saved["mechanical"]["pirouette_duration_s"] == 3.0
    assert np.isfinite(saved["mean_final_temp_c"]) and s["n_worms"] == 2
    assert np.load(tmp_path / "tracks.npz")["pos_cm"].shape == (2, 5, 2)
    cfg.navigation.body_level = "rods"
    with pytest.raises(ValueError, match="body_level"):
        run_simulation(cfg, tmp_path)
    cfg.navigation.body_level = "mechanical"
    cfg.navigation.mechanical = {"medium": "agar", "neck_gain": 1.0}
    with pytest.raises(ValueError, match="neck_gain"):
        run_simulation(cfg, tmp_path)

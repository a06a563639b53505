"""Tests of owjax.body: the BBC 2012 rod body, its drives, circuit, metrics and outputs."""

from __future__ import annotations

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from owjax.body import metrics as M
from owjax.body.circuit import ActivationToBody, BBCCircuit, BodyToStretchReceptors
from owjax.body.drive import RecordedActivation, TravellingWave
from owjax.body.integrate import BodySolver, integrate, solve_component
from owjax.body.mechanics import RodBody, check_activation, element_geometry
from owjax.body.media import AGAR, WATER, resolve_medium
from owjax.body.run import run_locomotion, validate_config
from owjax.core.component import Composite


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _driven(body, act_fn_or_component):
    return Composite({"drive": act_fn_or_component, "body": body}, [ActivationToBody(source="drive")])


def _constant(activation, t_end=1.5, n=301):
    a = np.asarray(activation, float)
    return RecordedActivation(np.linspace(0.0, t_end, n), np.broadcast_to(a, (n,) + a.shape))


# --------------------------------------------------------------------------- mechanics
@pytest.mark.parametrize("n", [1, 2, 5, 8, 49])
def test_block_cyclic_reduction_matches_dense_solve(x64, n):
    from owjax.body.linalg import solve_block_tridiagonal

    rng = np.random.default_rng(n)
    band = np.kron(np.abs(np.subtract.outer(np.arange(n), np.arange(n))) <= 1, np.ones((3, 3)))
    a = rng.normal(size=(3 * n, 3 * n)) * band
    m = (a @ a.T + 3 * n * np.eye(3 * n)) * band  # SPD, block-tridiagonal
    def blocks(off):
        return np.stack([m[3 * i:3 * i + 3, 3 * (i + off):3 * (i + off) + 3] if 0 <= i + off < n else np.zeros((3, 3))
                         for i in range(n)], -1)

    b = rng.normal(size=(3, n))
    x = jax.jit(solve_block_tridiagonal)(jnp.asarray(blocks(-1)), jnp.asarray(blocks(0)), jnp.asarray(blocks(1)), jnp.asarray(b))
    np.testing.assert_allclose(np.asarray(x).T.ravel(), np.linalg.solve(m, b.T.ravel()), rtol=1e-10, atol=1e-12)


def test_element_jacobian_matches_autodiff(x64):
    body = RodBody("agar")
    s = body.initial_state()
    rng = np.random.default_rng(0)
    s = {k: v + 1e-3 * jnp.asarray(rng.normal(size=v.shape)) for k, v in s.items()}
    _, _, jac = element_geometry(s["x"], s["y"], s["phi"], body.radius_mm)

    def lengths(q):
        return element_geometry(q[:, 0], q[:, 1], q[:, 2], body.radius_mm)[0]

    q = jnp.stack([s["x"], s["y"], s["phi"]], -1)
    full = jax.jacfwd(lengths)(q)  # (4, 48, 49, 3)
    seg = np.arange(48)
    ref = np.concatenate([np.asarray(full[:, seg, seg, :]), np.asarray(full[:, seg, seg + 1, :])], -1)
    np.testing.assert_allclose(np.asarray(jac), ref, rtol=1e-9, atol=1e-12)


#: one solver/output grid for the body-only tests, so they share one compiled solve
BODY_ONLY = dict(duration_s=0.5, dt_out_s=0.01, solver=BodySolver(rtol=1e-8, atol=1e-10))
#: and one for the tests driven by recorded activation
DRIVEN = dict(duration_s=1.5, dt_out_s=0.05, solver=BodySolver(rtol=1e-8, atol=1e-8))


def test_straight_body_at_rest_stays_straight(x64):
    body = RodBody("water")
    r = integrate(body, **BODY_ONLY)
    s0 = body.initial_state()
    for k in ("x", "y", "phi"):
        np.testing.assert_allclose(r.ys[k][-1], np.asarray(s0[k]), atol=1e-9)


@pytest.mark.parametrize("side, sign", [(0, 1.0), (1, -1.0)])
def test_constant_activation_bends_towards_that_side(x64, side, sign):
    act = np.zeros((2, 48))
    act[side] = 0.5
    body = RodBody("water")  # in water the long-wavelength bend is not held back by drag
    r = integrate(_driven(body, _constant(act)), **DRIVEN)
    b = r.ys["body"]
    k = M.curvature(b["x"], b["y"], b["phi"])[-1]
    mid = k[10:37]
    assert np.all(sign * mid > 0), "uniform activation must bend every mid-body segment to the activated side"
    # dorsal is +y at the start (phi = pi/2): a dorsal bend lifts the ends towards +y relative to the middle
    y = b["y"][-1]
    assert sign * (0.5 * (y[0] + y[-1]) - y[24]) > 0


def test_mirror_activation_gives_mirror_track(x64):
    wave = TravellingWave(1.0, 0.6, 0.6, dorsal_bias=0.2)
    t = np.linspace(0, 1.5, 301)
    a = np.asarray(jax.vmap(wave.activation)(jnp.asarray(t)))
    r1 = integrate(_driven(RodBody("agar"), RecordedActivation(t, a)), **DRIVEN)
    r2 = integrate(_driven(RodBody("agar"), RecordedActivation(t, a[:, ::-1])), **DRIVEN)
    b1, b2 = r1.ys["body"], r2.ys["body"]
    assert np.ptp(b1["y"].mean(1)) > 1e-3  # the biased wave does turn
    # exact in exact arithmetic; what is left is the solver's error (it shrinks with the tolerance)
    np.testing.assert_allclose(b2["x"], b1["x"], atol=1e-5)
    np.testing.assert_allclose(b2["y"], -b1["y"], atol=1e-5)
    np.testing.assert_allclose(b2["phi"], np.pi - b1["phi"], atol=1e-4)


def test_energy_only_dissipated_without_activation(x64):
    body = RodBody("water")
    rng = np.random.default_rng(1)
    s0 = body.initial_state()
    # a bent, twisted start: elastic energy stored in lateral and diagonal elements
    s = {"x": s0["x"] + 2e-3 * jnp.asarray(rng.normal(size=49)), "y": 0.05 * jnp.sin(jnp.linspace(0, 6, 49)),
         "phi": s0["phi"] + 0.05 * jnp.asarray(rng.normal(size=49))}
    grad_u = eqx.filter_jit(jax.grad(body.elastic_energy))(s)
    v = eqx.filter_jit(body.vector_field)(0.0, s)
    power = sum(jnp.sum(grad_u[k] * v[k]) for k in ("x", "y", "phi"))
    assert float(power) < 0  # dU/dt = -q̇ᵀ M q̇
    r = integrate(body, **BODY_ONLY, y0=s)
    u = np.asarray(jax.jit(jax.vmap(body.elastic_energy))({k: jnp.asarray(v) for k, v in r.ys.items()}))
    assert u[0] > 0 and u[-1] < 0.2 * u[0]
    assert np.all(np.diff(u) <= 1e-12 * u[0])
    # relaxing internal stress never makes the centroid travel far (no thrust without activation)
    c = M.centroid(r.ys["x"], r.ys["y"])
    assert np.linalg.norm(c[-1] - c[0]) < 0.05


def test_medium_interpolation_is_monotone():
    vals = np.linspace(0, 1, 11)
    meds = [resolve_medium(float(v)) for v in vals]
    par = np.array([m.c_par_total_kg_s for m in meds])
    perp = np.array([m.c_perp_total_kg_s for m in meds])
    assert np.all(np.diff(par) > 0) and np.all(np.diff(perp) > 0)
    assert meds[0].c_par_total_kg_s == WATER.c_par_total_kg_s and meds[-1].c_perp_total_kg_s == AGAR.c_perp_total_kg_s
    assert AGAR.c_perp_total_kg_s == 128e-3 and WATER.c_par_total_kg_s == 3.3e-6
    c_par, c_perp = AGAR.per_rod()
    assert c_perp == pytest.approx(128e-3 * 1e3 / 98)


# --------------------------------------------------------------------------- gradients
@pytest.mark.slow
def test_speed_gradient_matches_finite_differences_and_vmap(x64):
    """Reverse-mode gradient through the adaptive solve vs central differences; the four shifted
    runs go through jax.vmap as one batch of bodies with different wave parameters."""
    t_out = jnp.linspace(0.0, 1.0, 2)
    solver = BodySolver(rtol=1e-9, atol=1e-9, max_steps=20_000)

    def speed(params):
        amp, freq = params
        comp = _driven(RodBody("agar"), TravellingWave(freq, 0.6, amp))
        ys = solve_component(comp, t_out, comp.initial_state(), solver)[0]
        xc = jnp.mean(ys["body"]["x"], axis=-1)
        return -(xc[-1] - xc[0]) / t_out[-1]  # head towards -x: forward speed (mm/s)

    p = jnp.array([0.6, 1.0])
    g = np.asarray(jax.jit(jax.grad(speed))(p))
    h = 1e-3
    shifts = jnp.array([[h, 0.0], [-h, 0.0], [0.0, h], [0.0, -h]])
    vals = np.asarray(jax.jit(jax.vmap(speed))(p + shifts))  # one compiled batch for all four
    assert np.all(vals > 0.0)
    for i in range(2):
        fd = (vals[2 * i] - vals[2 * i + 1]) / (2 * h)
        assert abs(g[i] - fd) < 0.01 * abs(fd), (i, g[i], fd)


# --------------------------------------------------------------------------- errors
def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_activation(np.full((2, 48), 1.2))
    with pytest.raises(ValueError, match="NaN"):
        check_activation(np.array([[0.1, np.nan]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RecordedActivation([0, 1], -0.1 * np.ones((2, 2, 48)))
    with pytest.raises(ValueError, match=r"shape \(2, 48\) or \(2, 24\)"):
        RodBody().vector_field(0.0, RodBody().initial_state(), {"muscle_activation": jnp.zeros((2, 10))})
    with pytest.raises(ValueError, match="allowed: \\['agar', 'water'\\]"):
        RodBody("mud")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        resolve_medium(float("nan"))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        resolve_medium(1.5)
    with pytest.raises(ValueError, match="positive"):
        resolve_medium({"c_par_total_kg_s": -1, "c_perp_total_kg_s": 1})
    with pytest.raises(ValueError, match="amplitude"):
        TravellingWave(amplitude=0.9, dorsal_bias=0.3)
    with pytest.raises(ValueError, match="forward"):
        TravellingWave(direction="sideways")
    with pytest.raises(ValueError, match="frequency_hz"):
        TravellingWave(frequency_hz=float("nan"))


def test_config_validation_names_allowed_choices():
    assert validate_config({})["drive"] == "bbc"
    assert validate_config({"body": {"medium": 0.3}, "dtype": "float64", "model": {"x": 1}})["body"]["medium"] == 0.3
    with pytest.raises(ValueError, match="allowed"):
        validate_config({"bodyy": {}})
    with pytest.raises(ValueError, match=r"allowed: \['bbc', 'wave', 'file'\]"):
        validate_config({"drive": "cpg"})
    with pytest.raises(ValueError, match="allowed"):
        validate_config({"body": {"medium": "agar", "stiffness": 2}})
    with pytest.raises(ValueError, match="agar"):
        validate_config({"body": {"medium": "honey"}})
    with pytest.raises(ValueError, match="duration_s"):
        validate_config({"duration_s": -1})
    with pytest.raises(ValueError, match="file.path"):
        validate_config({"drive": "file"})
    with pytest.raises(ValueError, match="tsit5"):
        validate_config({"body_solver": {"method": "rk99"}})


# --------------------------------------------------------------------------- BBC loop + scenario
@pytest.mark.slow
def test_bbc_loop_undulates_faster_in_water_than_on_agar(x64):
    freqs, lams = {}, {}
    for med in ("agar", "water"):
        comp = Composite({"circuit": BBCCircuit(), "body": RodBody(med)}, [BodyToStretchReceptors(), ActivationToBody()])
        r = integrate(comp, 6.0, 0.01, BodySolver(rtol=1e-4, atol=1e-4))
        s = M.locomotion_summary(r.t_s, r.ys["body"]["x"], r.ys["body"]["y"], r.ys["body"]["phi"], transient_s=2.0)
        freqs[med], lams[med] = s["frequency_hz"], s["wavelength_body_lengths"]
        assert s["direction"] == "forward" and s["wave_direction"] == "head_to_tail"
        assert s["gait"] == ("crawl" if med == "agar" else "swim")
    assert 0.3 <= freqs["agar"] <= 0.6
    assert freqs["water"] >= 3 * freqs["agar"]
    assert lams["water"] > 1.5 * lams["agar"]


def test_run_locomotion_writes_outputs(tmp_path, x64):
    # same drive, solver and output grid as the agar run above, so the compiled solve is reused
    cfg = {"drive": "bbc", "duration_s": 6.0, "dt_out_s": 0.01, "transient_s": 2.0,
           "body_solver": {"rtol": 1e-4, "atol": 1e-4}, "outputs": {"animation_fps": 2}}
    run_locomotion(cfg, tmp_path)
    for f in ("traces.h5", "body.wcon", "summary.json", "curvature_kymograph.png", "centroid_track.png", "body.gif"):
        assert (tmp_path / f).stat().st_size > 0, f
    summary = json.loads((tmp_path / "summary.json").read_text())
    for k in ("speed_mm_s", "frequency_hz", "wavelength_body_lengths", "amplitude", "direction", "gait"):
        assert k in summary
    assert summary["direction"] == "forward" and summary["gait"] == "crawl"
    assert 0.1 <= summary["speed_mm_s"] <= 0.35
    wcon = json.loads((tmp_path / "body.wcon").read_text())
    assert wcon["units"] == {"t": "s", "x": "mm", "y": "mm"}
    rec = wcon["data"][0]
    assert set(rec) >= {"id", "t", "x", "y"} and len(rec["x"]) == len(rec["t"]) and len(rec["x"][0]) == 49
    assert wcon["metadata"]["software"]["name"] == "owjax"
    import h5py

    with h5py.File(tmp_path / "traces.h5") as f:
        assert f["body/x"].shape == (49, len(rec["t"])) and f["body/t"].shape == (len(rec["t"]),)
        assert f["circuit/activity"].shape == (24, len(rec["t"]))


def test_travelling_wave_metrics_recover_the_imposed_wave():
    """Metrics on an ideal travelling curvature wave: frequency, wavelength and direction."""
    t = np.arange(0, 8, 0.01)
    s = np.linspace(0, 1, 47)
    k = np.sin(2 * np.pi * (0.5 * t[:, None] - s[None, :] / 0.6))
    assert M.undulation_frequency(t, k) == pytest.approx(0.5, rel=0.02)
    lam, direction = M.wavelength(t, k)
    assert lam == pytest.approx(0.6 * 47 / 48, rel=0.05) and direction == "head_to_tail"
    assert M.wavelength(t, k[:, ::-1])[1] == "tail_to_head"


def test_c302_muscles_map_to_body_segments(tmp_path):
    from owjax.body.drive import C302MusclesToBody, load_activation_file, segments_from_c302
    from owjax.organs.muscles import BODY_WALL_MUSCLES

    names = list(BODY_WALL_MUSCLES)
    ca = np.zeros(len(names))
    ca[names.index("MDL03")] = 4e-7  # full activation of one of the two dorsal muscles of segment 3
    ca[names.index("MVR24")] = 2e-7  # half activation of the only ventral muscle of segment 24
    act = np.asarray(C302MusclesToBody(np.arange(len(names)), names)(0.0, {"Ca_mM": jnp.asarray(ca)}))
    assert act.shape == (2, 24)
    assert act[0, 2] == pytest.approx(0.5) and act[1, 23] == pytest.approx(0.5)
    assert np.count_nonzero(act) == 2
    seg = segments_from_c302(np.minimum(1.0, ca / 4e-7)[:, None].repeat(3, 1), names)
    np.testing.assert_allclose(seg[0], act)
    np.savez(tmp_path / "a.npz", t_s=np.array([0.0, 1.0, 2.0]), activation=seg)
    rec = load_activation_file(tmp_path / "a.npz")
    np.testing.assert_allclose(np.asarray(rec.activation(0.5))[:, ::2], act)
    (tmp_path / "x.csv").write_text("1")
    with pytest.raises(ValueError, match="allowed: .npz"):
        load_activation_file(tmp_path / "x.csv")
    with pytest.raises(FileNotFoundError):
        load_activation_file(tmp_path / "missing.npz")

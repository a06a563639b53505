"""Learned sensory transduction (owjax.sensory): loaders on the real recordings, the shipped dataset and
its capture, the published AFD facts recomputed from the measured traces, the split by worm, the
continuous-time GRU component (its Euler step is the trained discrete GRU), a gradient through
transducer + a c302 sub-network in one diffrax solve, the shipped transducers reproducing their
recorded metrics, the experiment's CI size through owjax.fit, and clear errors. ≈ 2 min on 2 cores.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from owjax.sensory.capture import SOURCES, capture, default_source
from owjax.sensory.evaluate import afd_features, bag_features, evaluate_records, population_ceiling
from owjax.sensory.loaders import DATA_DIR, load_bryant_mat, load_dataset, load_file, load_zimmer_log
from owjax.sensory.records import RecordError, SensoryRecord
from owjax.sensory.training import SensoryTransducerTask, fit, split_by_worm
from owjax.sensory.transducer import (TransducerSpec, default_spec, init_params, initial_carry, load_transducer,
                                      predict, save_transducer, step)

RAW = default_source()
needs_raw = pytest.mark.skipif(not all((RAW / f).is_file() for fs in SOURCES.values() for f in fs),
                               reason=f"raw sensory recordings not found under {RAW}")


@pytest.fixture(scope="module")
def afd():
    return load_dataset("afd")


@pytest.fixture(scope="module")
def bag():
    return load_dataset("bag")


# ---------------------------------------------------------------------------- loaders and data
@needs_raw
def test_bryant_loader_on_the_real_file():
    recs = load_bryant_mat(RAW / "afd_bryant2022/IK890_pFPT_data.mat")
    assert len(recs) == 20
    r = recs[0]
    assert r.worm_id == "200626_004" and r.protocol == "PseudoFictive PT" and r.modality == "afd"
    assert r.dt_s == 1.0 and r.n_samples == 1081 and r.stimulus[0] == pytest.approx(23.0)
    assert 19.0 < r.stimulus.min() < 20.5 and 33.5 < r.stimulus.max() < 34.5  # °C, 20 → 34 °C ramp
    assert r.meta["holding_c"] == 23.0 and r.meta["f0_c"] == 20.0 and r.meta["rampspeed_c_per_s"] == 0.025
    a, b = r.meta["analysis_window"]
    assert b - a == 801
    assert np.nanmax(r.response) > 100.0  # ΔR/R in percent: AFD's warming response is hundreds of %
    nt = load_bryant_mat(RAW / "afd_bryant2022/IK890_NT_data.mat")
    assert len(nt) == 14 and min(x.n_samples for x in nt) == 780  # 60 s of zero padding removed


@needs_raw
def test_zimmer_loader_on_the_real_file():
    r = load_zimmer_log(RAW / "bag_o2_shift/20121202Pflp178GCaMP5kN2shift_210421W1bag.log")
    assert r.modality == "bag" and r.n_samples == 6199 and r.dt_s == pytest.approx(0.1)
    assert set(np.unique(r.stimulus)) == {4.0, 21.0}
    assert np.sum(r.stimulus == 4.0) == 3600  # 360 s at 4 % O2, 10 Hz
    base = (r.time_s >= 30) & (r.time_s < 100)
    assert abs(np.mean(r.response[base])) < 1e-9  # ΔF/F baseline definition
    assert 4.0 < np.max(r.response) < 7.0  # README: peak ΔF/F +3 … +8
    assert load_file(RAW / "bag_o2_shift/20121202Pflp178GCaMP5kN2shift_210421W1bag.log")[0].n_samples == 6199


@needs_raw
def test_capture_reproduces_the_shipped_files(tmp_path):
    capture(RAW, tmp_path)
    for name in ("afd.npz", "bag.npz", "README.md"):
        assert (tmp_path / name).read_bytes() == (DATA_DIR / name).read_bytes(), name


def test_shipped_dataset(afd, bag):
    assert len(afd) == 50 and len(bag) == 4
    assert sorted({r.protocol for r in afd}) == ["Neg Ramp 2", "PseudoFictive PT", "pF PT15"]
    assert [sum(r.protocol == p for r in afd) for p in ("PseudoFictive PT", "pF PT15", "Neg Ramp 2")] == [20, 16, 14]
    assert all(r.stimulus_unit == "degC" and r.response_unit == "percent_dR/R" for r in afd)
    assert all(r.stimulus_unit == "percent_O2" and r.response_unit == "dF/F" for r in bag)
    assert "CC BY 4.0" in (DATA_DIR / "README.md").read_text() and "BSD 3-clause" in (DATA_DIR / "README.md").read_text()


def _protocol_mean(recs, protocol, feature):
    x = np.array([afd_features(r)[feature] for r in recs if r.protocol == protocol], float)
    return np.nanmean(x), np.nanstd(x, ddof=1)


def test_published_afd_facts_recomputed_from_the_measured_traces(afd):
    """Bryant et al.'s summary numbers, recomputed with their definitions from the shipped traces."""
    t, sd = _protocol_mean(afd, "PseudoFictive PT", "threshold_c")
    assert abs(t - 21.95) < 0.30 and abs(sd - 0.30) < 0.1  # T* = 21.95 ± 0.30 °C
    assert abs(_protocol_mean(afd, "PseudoFictive PT", "t_min_c")[0] - 20.5) < 0.5
    assert abs(_protocol_mean(afd, "PseudoFictive PT", "t_max_c")[0] - 27.1) < 2.8
    assert abs(_protocol_mean(afd, "pF PT15", "t_min_c")[0] - 12.9) < 1.1
    assert abs(_protocol_mean(afd, "pF PT15", "t_max_c")[0] - 18.0) < 1.3
    assert abs(_protocol_mean(afd, "Neg Ramp 2", "cooling_r")[0] - 0.92) < 0.05
    ceil = population_ceiling([r for r in afd if r.protocol == "PseudoFictive PT"])
    assert abs(np.median(ceil) - 0.90) < 0.02  # the population ceiling


def test_bag_features_match_the_readme(bag):
    f = [bag_features(r) for r in bag]
    assert all(3.0 < x["onset_latency_s"] < 8.0 for x in f)  # onset 104–107 s after the switch at 100 s
    assert all(3.0 < x["peak_dff"] < 9.0 for x in f)
    assert sum(x["undershoot_dff"] < 0 for x in f) >= 3  # most worms undershoot after re-oxygenation


def test_split_by_worm(afd):
    s = split_by_worm(afd, 0.2, 0.25, seed=3)
    sets = [set(s[k]) for k in ("train", "val", "test")]
    assert sets[0].isdisjoint(sets[1]) and sets[0].isdisjoint(sets[2]) and sets[1].isdisjoint(sets[2])
    assert sum(map(len, sets)) == 50
    for p in {r.protocol for r in afd}:  # stratified: every protocol in every set
        assert all(any(afd[i].protocol == p for i in st) for st in sets)
    ids = lambda k: {afd[i].worm_id for i in s[k]}  # noqa: E731
    assert ids("train").isdisjoint(ids("test"))  # never the same worm in two sets
    h = split_by_worm(afd, holdout_protocols=("pF PT15",))
    assert {afd[i].protocol for i in h["train"] + h["val"]} == {"PseudoFictive PT", "Neg Ramp 2"}
    assert sum(afd[i].protocol == "pF PT15" for i in h["test"]) == 16
    lo = split_by_worm(afd[:4], leave_out=2)
    assert lo == {"train": [0, 1, 3], "val": [], "test": [2]}


# ---------------------------------------------------------------------------- the model
def test_component_euler_step_is_the_discrete_gru():
    """d h/dt = (G(h, x) − h)/Δ: one forward-Euler step of Δ is exactly the trained discrete step."""
    from owjax.sensory.component import GRUTransducer

    with jax.enable_x64(True):
        spec = default_spec("afd", hidden=6, depth=2, inputs=("stimulus", "adapted", "rate"), burn_in_steps=30)
        p = init_params(spec, jax.random.PRNGKey(1), jnp.float64)
        p["readout"]["w"] = jnp.linspace(-1, 1, 6)
        u = jnp.asarray(20 + np.cumsum(np.random.default_rng(0).normal(0, 0.2, 40)))
        ts = jnp.arange(40.0) * spec.dt_s
        comp = GRUTransducer(spec, p, ts, u)
        state, carry = comp.initial_state(), initial_carry(spec, p, u[0])
        ys_c = []
        for k in range(25):
            ys_c.append(comp.outputs(ts[k], state)["response"])
            d = comp.vector_field(ts[k], state)
            state = jax.tree.map(lambda a, b: a + spec.dt_s * b, state, d)
            carry = step(spec, p, carry, u[k])
        np.testing.assert_allclose(state["h"], carry[1], atol=1e-12)
        np.testing.assert_allclose(state["filters"], carry[0], atol=1e-12)
        np.testing.assert_allclose(np.asarray(ys_c), np.asarray(predict(spec, p, u))[:25], atol=1e-12)
        assert float(jnp.max(jnp.abs(carry[1]))) > 0.05  # the state moved: not a trivially equal zero


def test_gradient_through_transducer_and_c302_network_in_one_solve():
    """One diffrax solve of transducer + c302 AFD/AIY sub-network; jax.grad reaches the coupling gain
    and the GRU readout, and agrees with a finite difference."""
    import equinox as eqx

    from owjax.core.solve import solve_ys
    from owjax.neural.build import build_model, build_spec
    from owjax.sensory.component import GRUTransducer, sensory_worm

    with jax.enable_x64(True):
        spec = default_spec("afd", hidden=4, inputs=("adapted", "rate"), burn_in_steps=20)
        p = init_params(spec, jax.random.PRNGKey(0), jnp.float64)
        p["readout"]["w"] = jnp.full(4, 0.5)
        p["readout"]["b"] = jnp.asarray(0.2)
        net = build_model(build_spec("C1", "Full", cells=["AFDL", "AFDR", "AIYL", "AIYR"], stimulus_mode="none"),
                          dtype="float64")
        tr = GRUTransducer(spec, p, jnp.asarray([0.0, 0.05]), jnp.asarray([20.0, 21.0]))  # a fast 20 °C/s ramp
        worm = sensory_worm(net, tr, gain_pA=20.0)
        assert worm.couplings[0].cell_index == (net.index("AFDL"), net.index("AFDR"))
        solver = {"method": "tsit5", "rtol": 1e-6, "atol": 1e-6, "max_steps": 1000}

        def loss(w):
            sol = solve_ys(w, 30.0, 5.0, solver=solver, save=("network.V",))
            return jnp.mean(sol.ys["network"]["V"][:, :2])

        v, g = eqx.filter_jit(eqx.filter_value_and_grad(loss))(worm)
        gg = float(g.couplings[0].gain_pA)
        gb = float(g.components["afd_transducer"].params["readout"]["b"])
        assert np.isfinite(v) and gg != 0.0 and gb != 0.0
        eps = 1e-3
        lf = eqx.filter_jit(loss)
        shift = lambda d: eqx.tree_at(lambda w: w.couplings[0].gain_pA, worm, worm.couplings[0].gain_pA + d)  # noqa: E731
        fd = (float(lf(shift(eps))) - float(lf(shift(-eps)))) / (2 * eps)
        assert gg == pytest.approx(fd, rel=1e-3)
        # ablation: zero gain, no drive: AFD stays at rest like the undriven network
        v0 = float(lf(eqx.tree_at(lambda w: w.couplings[0].gain_pA, worm, jnp.asarray(0.0))))
        assert v0 != pytest.approx(float(v), abs=1e-3)


def test_save_load_roundtrip(tmp_path):
    spec = default_spec("bag", hidden=5, depth=2, inputs=("stimulus", "adapted", "rate"))
    p = init_params(spec, jax.random.PRNGKey(4))
    path = save_transducer(tmp_path / "t.npz", spec, p, {"note": "test"})
    spec2, p2 = load_transducer(path)
    assert spec2 == spec
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(p2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert json.loads(path.with_suffix(".json").read_text())["provenance"]["note"] == "test"


@pytest.mark.parametrize("modality", ["afd", "bag"])
def test_shipped_transducer_reproduces_its_recorded_metrics(modality, afd, bag):
    """The shipped model, on the held-out worms named in its provenance, gives the recorded numbers."""
    from owjax.fitting.tasks.sensory_transducer import records_for

    path = DATA_DIR / f"{modality}_transducer.npz"
    spec, params = load_transducer(path)
    prov = json.loads(path.with_suffix(".json").read_text())["provenance"]
    recs = records_for({"modality": modality})
    which = "test" if prov["split"]["test"] else "train"
    ids = set(prov["split"][which])
    held = [r for r in recs if r.worm_id in ids]
    assert len(held) == len(ids) > 0
    m = evaluate_records(spec, params, held, ceiling_records=recs)
    rec = prov["recorded"]
    assert m["median_r"] == pytest.approx(rec["median_r"], abs=0.01)
    assert m["median_rmse"] == pytest.approx(rec["median_rmse"], rel=0.02)
    if modality == "afd":
        warm = m["by_protocol"]["PseudoFictive PT"]
        assert abs(warm["threshold_c_pred"] - 21.95) < 0.5  # the target: T* within 0.5 °C
        assert warm["median_r"] > 0.75


# ---------------------------------------------------------------------------- training
def test_task_trains_and_keeps_the_best_on_validation(afd):
    recs = [r for r in afd if r.protocol == "PseudoFictive PT"][:8]
    spec = default_spec("afd", hidden=4, burn_in_steps=20)
    split = split_by_worm(recs, 0.25, 0.25, seed=0)
    task = SensoryTransducerTask(spec, recs, split, batch_size=3, soft_scale=5.0, soft_weight=0.1)
    b0 = task.batches(0, jax.random.PRNGKey(0))
    assert b0["stimulus"].shape == (3, recs[0].n_samples) and set(np.asarray(b0["mask"]).ravel()) <= {0.0, 1.0}
    res = fit(task, steps=30, lr=1e-2, eval_every=10, log=None)
    init = task.set_loss(task.init(jax.random.fold_in(jax.random.PRNGKey(0), 10**6)), "val")
    assert res.best_val == min(res.history["val_loss"]) and res.best_val < init
    assert task.set_loss(res.params, "val") == pytest.approx(res.best_val, rel=1e-5)


def test_experiment_ci_through_owjax_fit(tmp_path):
    """``python -m owjax.fit +experiment=sensory_bag run=ci`` (the loop hands over to the experiment)."""
    from hydra import compose, initialize_config_dir

    from owjax.fitting.loop import CONF_DIR, run_fit

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("fit", overrides=["+experiment=sensory_bag", "run=ci", "progress=false"],
                      return_hydra_config=True)
    m = run_fit(cfg, tmp_path)
    assert m["status"] == "complete" and m["test"]["n_worms"] == 1 and np.isfinite(m["test"]["median_r"])
    for f in ("metrics.json", "transducer.npz", "transducer.json", "loss_curve.png", "traces_test.png"):
        assert (tmp_path / f).is_file(), f
    spec, _ = load_transducer(tmp_path / "transducer.npz")
    assert spec.hidden == 8 and spec.modality == "bag"


# ---------------------------------------------------------------------------- errors
def test_bad_inputs_raise_clear_errors(tmp_path, bag):
    bad = tmp_path / "bad.log"
    bad.write_text("1, 100, 5, 6, 7, 8, 9, 10\n2, 200, 5, 6, 7, 8, 9, 10\n3, 300, 5, 6, 7, 8, 9, 10\n")
    with pytest.raises(RecordError, match="9 comma-separated columns"):
        load_zimmer_log(bad)
    txt = tmp_path / "words.log"
    txt.write_text("a,b,c\n")
    with pytest.raises(RecordError, match="not a comma-separated numeric log"):
        load_zimmer_log(txt)
    fake = tmp_path / "fake.mat"
    fake.write_bytes(b"not matlab at all")
    with pytest.raises(RecordError, match="not a readable MATLAB file"):
        load_bryant_mat(fake)
    with pytest.raises(RecordError, match="unknown format"):
        load_file(tmp_path / "x.h5")
    with pytest.raises(RecordError, match="no such file"):
        load_file(tmp_path / "missing.mat")
    with pytest.raises(RecordError, match="uniform"):
        SensoryRecord("w", "afd", "p", np.array([0.0, 1.0, 3.0]), np.zeros(3), np.zeros(3))
    with pytest.raises(RecordError, match="unknown modality"):
        SensoryRecord("w", "ase", "p", np.arange(3.0), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="unknown modality"):
        load_dataset("ase")
    with pytest.raises(ValueError, match="unknown"):
        TransducerSpec("afd", inputs=("temperature",))
    spec = default_spec("afd", hidden=3, burn_in_steps=2)
    p = init_params(spec, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="1-D"):
        predict(spec, p, jnp.zeros((2, 5)))
    from owjax.sensory.component import GRUTransducer

    with pytest.raises(ValueError, match="input 'stimulus'"):
        GRUTransducer(spec, p).vector_field(0.0, {"filters": jnp.zeros(2), "h": jnp.zeros((1, 3))})
    with pytest.raises(ValueError, match="strictly increasing"):
        GRUTransducer(spec, p, jnp.asarray([0.0, 0.0]), jnp.asarray([20.0, 21.0]))
    with pytest.raises(ValueError, match="resample"):
        SensoryTransducerTask(default_spec("bag"), bag, {"train": [0], "val": [], "test": []})
    with pytest.raises(ValueError, match="leave_out"):
        split_by_worm(bag, leave_out=7)


@needs_raw
def test_evaluate_command_on_a_file_given_by_path(tmp_path):
    """``python -m owjax.sensory evaluate --modality afd --data FILE --out DIR`` on a raw file."""
    from owjax.sensory.__main__ import main

    assert main(["evaluate", "--modality", "afd", "--data", str(RAW / "afd_bryant2022/IK890_pFPT15_data.mat"),
                 "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    for k in ("n_worms", "median_r", "median_rmse", "median_ceiling_r", "threshold_c_pred", "threshold_c_measured",
              "t_max_c_pred", "t_max_c_measured"):
        assert k in m and m[k] is not None, k
    assert m["n_worms"] == 16 and abs(m["threshold_c_measured"] - 15.27) < 0.05
    assert (tmp_path / "traces.png").stat().st_size < 1_000_000
    assert main(["evaluate", "--modality", "bag", "--data", str(RAW / "afd_bryant2022/IK890_NT_data.mat"),
                 "--out", str(tmp_path / "x")]) == 2  # an AFD file is not BAG data


def test_circuit_stimuli_and_ablation_errors():
    from owjax.neural.build import build_model, build_spec
    from owjax.sensory.circuit import drive_network, stimulus_series

    t, v = stimulus_series("ramp", start=20.0, stop=25.0, rate_per_s=0.025, hold_s=60.0)
    assert list(t) == [0.0, 60.0, 260.0] and list(v) == [20.0, 20.0, 25.0]
    t, v = stimulus_series("step", before=21.0, after=4.0, at_s=100.0, duration_s=600.0)
    assert np.interp(50.0, t, v) == 21.0 and np.interp(200.0, t, v) == 4.0
    t, v = stimulus_series("record", modality="bag", worm=1)
    assert t[0] == 0.0 and set(np.unique(v)) == {4.0, 21.0}
    with pytest.raises(ValueError, match="unknown stimulus kind"):
        stimulus_series("sine")
    net = build_model(build_spec("C1", "Full", cells=["AFDL", "AFDR", "AIYL"], stimulus_mode="none"), dtype="float32")
    with pytest.raises(ValueError, match="not driven by the afd transducer"):
        drive_network(net, "afd", t, v, 10.0, 1.0, ablate=["AIYL"])


def test_the_general_loop_runs_the_task(tmp_path, monkeypatch):
    """With ``runs_own_loop`` off, owjax.fitting.loop runs the same task (validate/objective hooks,
    best-on-validation, checkpoints) — what remains for the lead's loop is LOWO folds and ``ship``."""
    from hydra import compose, initialize_config_dir

    from owjax.fitting.loop import CONF_DIR, run_fit
    from owjax.fitting.tasks.sensory_transducer import SensoryTransducer

    monkeypatch.setattr(SensoryTransducer, "runs_own_loop", False)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("fit", overrides=["+experiment=sensory_afd", "run=ci", "progress=false", "optim.steps=10",
                                        "figures=false", "validation.every=5"], return_hydra_config=True)
    m = run_fit(cfg, tmp_path)
    assert m["status"] == "complete" and np.isfinite(m["final_loss"])
    assert m["test"]["n_worms"] == 13 and "threshold_c_pred" in m["test"]
    spec, _ = load_transducer(tmp_path / "transducer.npz")
    assert spec.modality == "afd" and spec.hidden == 8

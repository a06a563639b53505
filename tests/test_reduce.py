"""owjax.reduce: waveforms, the generator (it is the owjax network), datasets, splits, normalisation,
vmapped training of reduced models, save/load, the CLI and the fitting task."""

import jax

jax.config.update("jax_enable_x64", True)

import json

import numpy as np
import pytest

from owjax.reduce.dataset import (DatasetError, Normalisation, ReduceData, load_columns, load_h5, save_h5,
                                  split_sequences, write_columns)
from owjax.reduce.waveforms import FAMILIES, bilateral_groups, make_waveforms

SMALL = ("PLML", "PLMR", "AVBL", "AVBR", "PVCL", "PVCR", "LUAL", "PVR", "DB1", "VB1")


# ------------------------------------------------------------------------------------------ waveforms
def test_waveforms_families_shapes_units_and_seed():
    cells = ("PLML", "PLMR", "AVBL", "AVBR")
    w = make_waveforms(cells, 10, 200.0, 0.5, seed=3, amplitude_pA=8.0)
    assert w.currents_pA.shape == (10, 401, 4) and w.t_ms[-1] == 200.0
    assert w.families == FAMILIES * 2
    assert np.all(w.currents_pA >= 0) and w.currents_pA.max() <= 8.0 + 1e-12
    assert np.all(w.currents_pA[:, 0] == 0)                       # quiet lead-in: starts at rest
    np.testing.assert_array_equal(w.currents_pA[..., 0], w.currents_pA[..., 1])   # PLML = PLMR
    assert not np.array_equal(w.currents_pA[..., 0], w.currents_pA[..., 2])
    np.testing.assert_array_equal(w.currents_pA, make_waveforms(cells, 10, 200.0, 0.5, seed=3, amplitude_pA=8.0).currents_pA)
    assert bilateral_groups(["AVBL", "X", "AVBR"]) == [[0, 2], [1]]
    with pytest.raises(ValueError, match="waveform family"):
        make_waveforms(cells, 2, 100.0, 0.5, families=("steps",))
    with pytest.raises(ValueError, match="multiple"):
        make_waveforms(cells, 2, 100.0, 0.3)


# ------------------------------------------------------------------------------------------ generator
@pytest.fixture(scope="module")
def small_network():
    from owjax.reduce.data import GeneratorConfig, build_network, rest_state

    cfg = GeneratorConfig(cells=SMALL, duration_ms=40.0, dt_out_ms=(0.5, 0.1), n_waveforms=2, settle_ms=100.0,
                          batch=2)
    model = build_network(cfg)
    return cfg, model, rest_state(model, cfg.settle_ms)


def test_generator_is_the_owjax_network(small_network):
    """A constant table through WaveformCurrents + CurrentInjection equals solve_ys with inputs=i_ext_pA."""
    import jax.numpy as jnp

    from owjax.core.solve import solve_ys
    from owjax.reduce.data import simulate_tables

    cfg, model, y_rest = small_network
    amps = np.array([3.0, 3.0, 6.0, 6.0])
    table = np.broadcast_to(amps, (401, 4))[None]
    V, steps = simulate_tables(model, y_rest, table, 0.1, cfg.inputs, 40.0, 0.5, record=cfg.outputs)
    names = list(model.cell_names)
    i_ext = jnp.zeros(len(names)).at[jnp.asarray([names.index(c) for c in cfg.inputs])].set(amps)
    direct = solve_ys(model, 40.0, 0.5, "tsit5", y0=y_rest, inputs={"i_ext_pA": i_ext}).ys["V"]
    ref = np.asarray(direct)[:, [names.index(c) for c in cfg.outputs]]
    assert V.shape == (1, 81, 4) and steps[0] > 0
    np.testing.assert_allclose(V[0], ref, atol=1e-6)
    assert np.abs(ref[-1] - ref[0]).max() > 0.5                   # the drive does move the outputs


def test_generate_shapes_units_and_sampling(small_network):
    from owjax.reduce.data import generate

    cfg, _, _ = small_network
    d = generate(cfg)
    coarse, fine = d[0.5], d[0.1]
    assert coarse.x.shape == (2, 81, 4) and fine.x.shape == (2, 401, 4) and coarse.y.shape == (2, 81, 4)
    assert (coarse.input_unit, coarse.output_unit, coarse.time_unit) == ("pA", "mV", "ms")
    np.testing.assert_allclose(coarse.t, np.arange(81) * 0.5)
    np.testing.assert_allclose(coarse.y, fine.y[:, ::5])          # one solve, two samplings
    np.testing.assert_allclose(coarse.x, fine.x[:, ::5])
    assert np.all((coarse.y > -90) & (coarse.y < 60))              # membrane potentials in mV
    np.testing.assert_allclose(coarse.y[:, 0], np.tile(list(coarse.meta["rest_V_mV"].values()), (2, 1)), atol=1e-9)
    assert coarse.meta["families"] == ["step", "ramp"]


# ------------------------------------------------------------------------------------------ datasets
def _toy(n=6, t=50, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 5, (n, t, 2))
    y = np.cumsum(x, axis=1) * 0.1 - 60.0
    return ReduceData(np.arange(t) * 0.5, x, y[..., :1].repeat(2, -1) + np.arange(2), ("A", "B"), ("Y1", "Y2"),
                      tuple(f"s{i}.dat" for i in range(n)))


def test_columns_round_trip_header_comma_and_columns_option(tmp_path):
    d = _toy()
    write_columns(tmp_path / "hdr", d)
    r = load_columns(tmp_path / "hdr", ["A", "B"], ["Y1", "Y2"])
    np.testing.assert_allclose(r.x, d.x, rtol=1e-8)
    np.testing.assert_allclose(r.y, d.y, rtol=1e-8)
    assert r.names == ("Sequence_01.dat", "Sequence_02.dat", "Sequence_03.dat", "Sequence_04.dat",
                       "Sequence_05.dat", "Sequence_06.dat") and r.time_unit == "ms"
    # the study's layout: no header, whitespace, t in s; named with columns=
    (tmp_path / "paper").mkdir()
    for s in range(3):
        rows = [f"{k} {k * 0.0005} {-0.065 + s * 0.01} {0.1 * k} {1.4 * (k > 2)} {2.3 * (k > 2)}" for k in range(8)]
        (tmp_path / "paper" / f"Sequence_{s + 1:02d}.dat").write_text("\n".join(rows) + "\n")
    p = load_columns(tmp_path / "paper", ["PLM", "AVB"], ["DB1", "LUAL"], columns="idx,t,DB1,LUAL,PLM,AVB".split(","))
    assert p.x.shape == (3, 8, 2) and p.y[2, 0, 0] == pytest.approx(-0.045) and p.x[0, 3, 1] == 2.3
    # comma-separated with a header without '#'
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "a.csv").write_text("t,u,v\n0,1,2\n1,3,4\n2,5,6\n")
    c = load_columns(tmp_path / "csv", ["u"], ["v"])
    np.testing.assert_allclose(c.y[0, :, 0], [2, 4, 6])
    # HDF5 round trip
    save_h5(tmp_path / "d.h5", d)
    h = load_h5(tmp_path / "d.h5")
    np.testing.assert_array_equal(h.x, d.x)
    assert h.output_names == d.output_names and h.names == d.names


@pytest.mark.parametrize("content, match", [
    ("# t u v\n0 1 2\n1 3\n", r"bad\.dat, line 3: 2 values, expected 3"),
    ("# t u v\n0 1 2\n1 x 4\n", r"bad\.dat, line 3: 'x' is not a number"),
    ("# t u w\n0 1 2\n1 3 4\n", r"bad\.dat: no column\(s\) \['v'\]"),
    ("", r"bad\.dat: the file is empty"),
    ("# t u v\n0 1 nan\n1 3 4\n", r"bad\.dat, line 2: column 'v' is not finite"),
])
def test_bad_column_files_name_file_and_line(tmp_path, content, match):
    (tmp_path / "bad.dat").write_text(content)
    with pytest.raises(DatasetError, match=match):
        load_columns(tmp_path, ["u"], ["v"])


def test_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        load_columns(tmp_path / "nope", ["u"], ["v"])
    with pytest.raises(DatasetError, match="no files"):
        load_columns(tmp_path, ["u"], ["v"])
    (tmp_path / "a.dat").write_text("0 1 2\n1 3 4\n")
    with pytest.raises(DatasetError, match="no header line"):
        load_columns(tmp_path, ["u"], ["v"])
    (tmp_path / "b.dat").write_text("0 1 2\n1 3 4\n2 5 6\n")
    with pytest.raises(DatasetError, match="b.dat: 3 rows but .*a.dat has 2"):
        load_columns(tmp_path, ["u"], ["v"], columns=["t", "u", "v"])
    (tmp_path / "x.h5").write_text("not hdf5")
    with pytest.raises(DatasetError, match="x.h5"):
        load_h5(tmp_path / "x.h5")
    with pytest.raises(DatasetError, match="unknown input"):
        _toy().select(["A", "C"])


def test_split_reproducible_by_file_and_json(tmp_path):
    names = [f"Sequence_{i:02d}.dat" for i in range(1, 41)]
    a = split_sequences(names, "0.5,0.25,0.25", seed=1)
    assert (len(a.train), len(a.val), len(a.test)) == (20, 10, 10)
    assert sorted(a.train + a.val + a.test) == list(range(40))
    assert split_sequences(list(reversed(names)), "0.5,0.25,0.25", seed=1).to_names(list(reversed(names))) \
        == a.to_names(names)                                    # independent of listing order
    assert split_sequences(names, (0.5, 0.25, 0.25), seed=2) != a
    f = tmp_path / "split.json"
    f.write_text(json.dumps({"train": names[:20], "val": names[20:30], "test": names[30:]}))
    s = split_sequences(names, str(f))
    assert s.train == tuple(range(20)) and s.test == tuple(range(30, 40))
    f.write_text(json.dumps({"train": names[:20], "val": names[19:30], "test": names[30:]}))
    with pytest.raises(DatasetError, match="in both train and val"):
        split_sequences(names, f)
    f.write_text(json.dumps({"train": ["Sequence_1.dat"], "val": names[1:2], "test": names[2:3]}))
    with pytest.raises(DatasetError, match="unknown sequence"):
        split_sequences(names, f)
    with pytest.raises(DatasetError, match="summing to 1"):
        split_sequences(names, "0.5,0.5,0.25")


def test_normalisation_round_trip():
    d = _toy()
    n = Normalisation.fit(d)
    z = n.y(d.y)
    np.testing.assert_allclose(z.reshape(-1, 2).mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(z.reshape(-1, 2).std(0), 1, atol=1e-10)
    np.testing.assert_allclose(n.y_inverse(z), d.y)
    np.testing.assert_allclose(n.x_inverse(n.x(d.x)), d.x)
    assert Normalisation.from_dict(json.loads(json.dumps(n.to_dict()))) == n
    assert Normalisation.fit(d, "none").y(d.y) is not None and np.allclose(Normalisation.fit(d, "none").y(d.y), d.y)
    with pytest.raises(DatasetError, match="normalisation"):
        Normalisation.fit(d, "minmax")


# ------------------------------------------------------------------------------------------ training
def _filter_data(n=12, t=80, seed=0):
    """A known linear filter: y' = (x − y)/τ, τ = 5 samples (two channels, different gains)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, t, 1))
    for i in range(n):
        on = rng.integers(5, 30)
        x[i, on:, 0] = rng.uniform(0.5, 2.0)
        x[i, on + rng.integers(10, 40):, 0] *= rng.uniform(0, 1)
    y = np.zeros((n, t, 2))
    for k in range(1, t):
        y[:, k, 0] = y[:, k - 1, 0] + (x[:, k - 1, 0] - y[:, k - 1, 0]) / 5.0
    y[..., 1] = -2.0 * y[..., 0] + 1.0
    return ReduceData(np.arange(t, dtype=float), x, y, ("u",), ("y", "z"), tuple(f"s{i:02d}" for i in range(n)))


def test_vmapped_runs_learn_a_linear_filter_independently():
    from owjax.reduce.training import TrainConfig, fit_runs

    d = _filter_data()
    sp = split_sequences(d.names, "0.5,0.25,0.25", 0)
    cfg = TrainConfig("gru", 4, runs=3, epochs=200, lr=2e-2, eval_every=20, patience=None)
    r = fit_runs(d, sp, cfg)
    tr = np.asarray(r.curves["train_rmse"])
    assert np.all(tr[-1] < 0.5 * tr[0])                          # every run's loss decreases
    assert r.metrics["test_rmse_mean"] < 0.15                     # learns the filter (normalised RMSE)
    runs = r.metrics["test_rmse_runs"]
    assert len(set(np.round(runs, 9))) == 3                       # different seeds, different results
    alone = fit_runs(d, sp, TrainConfig("gru", 4, runs=1, epochs=60, lr=2e-2, eval_every=20, patience=None))
    np.testing.assert_allclose(np.asarray(alone.curves["train_rmse"])[:, 0], tr[:3, 0], rtol=2e-3)  # run 0 as if alone


def test_save_load_predict_and_cli(tmp_path):
    from owjax.reduce.__main__ import main
    from owjax.reduce.training import load_model, predict

    d = _filter_data(n=8, t=60)
    write_columns(tmp_path / "data", d)
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "data"), "--inputs", "u", "--outputs", "y,z", "--cell", "lstm",
                 "--hidden", "3", "--runs", "2", "--epochs", "40", "--eval-every", "10", "--out", str(out),
                 "--no-figures"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    for k in ("test_rmse_mean", "test_rmse_std", "test_mse_mean", "val_rmse_mean", "test_rmse_units_per_output",
              "test_rmse_pct_range_per_output", "normalisation", "test_mse_units_mean"):
        assert k in m
    assert m["runs"] == 2 and len(m["test_rmse_runs"]) == 2
    spec, params, norm = load_model(out / "model")
    assert spec.cell == "lstm" and norm.mode == "zscore"
    back = load_columns(tmp_path / "data", ["u"], ["y", "z"])
    te = back.take([back.names.index(n) for n in m["split"]["test"]])
    pred = predict(spec, params, norm, te.x)
    rmse = np.sqrt(((pred - te.y[None]) ** 2).mean(axis=(1, 2)))
    np.testing.assert_allclose(rmse.mean(0), list(m["test_rmse_units_per_output"].values()), rtol=1e-4)
    assert main(["train", "--data", str(tmp_path / "data"), "--inputs", "u", "--outputs", "nope", "--out",
                 str(out)]) == 2


def test_fit_task_protocol():
    import jax.numpy as jnp

    from owjax.reduce.training import ReduceTask, TrainConfig

    d = _filter_data(n=8, t=40)
    task = ReduceTask(d, split_sequences(d.names, "0.5,0.25,0.25", 0), TrainConfig("rnn", 3, runs=2))
    p = task.init(jax.random.PRNGKey(0))
    assert jax.tree_util.tree_leaves(p)[0].shape[0] == 2
    value, terms = task.loss(p, task.batches(0, None), None)
    assert jnp.isfinite(value) and set(terms) == {"mse_mean", "rmse_mean"}
    v1 = task.validate(p, None)
    assert task.validation_metric in v1 and task.best is not None
    m = task.report(p, p, None, figures=False)
    assert m["best_on_validation_per_run"] and len(m["test_rmse_runs"]) == 2


@pytest.mark.slow
def test_reduce_circuit_experiment_ci(tmp_path):
    from hydra import compose, initialize_config_dir

    from owjax.fitting.loop import CONF_DIR, run_fit

    with initialize_config_dir(str(CONF_DIR), version_base=None):
        cfg = compose("fit", overrides=["+experiment=reduced_order", "run=ci", "progress=false", "figures=false"],
                      return_hydra_config=True)
    m = run_fit(cfg, tmp_path)
    assert m["status"] == "complete" and m["runs"] == 4 and np.isfinite(m["test_rmse_mean"])
    assert m["final_loss"] < m["initial_loss"]
    assert (tmp_path / "model" / "model.npz").exists() and (tmp_path / "data.h5").exists()

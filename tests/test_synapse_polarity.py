"""synapse_polarity: fit c302 weights/polarities to the Randi 2023 atlas (real data, real network).

The pipeline test runs the CI-sized version (6 stimulated neurons, 60 ms trials, 4 Adam steps on the
full 302-neuron C1 network): about 1.5 min on 2 cores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from owjax.reference.atlas_protocol import (
    AtlasProtocol,
    protocol_model,
    resting_state,
    responses_jit,
    stimulus_amplitudes,
)
from owjax.neural.c302_data import load_c302_network
from owjax.reference.atlas import SignalPropagationAtlas
from owjax.fitting.tasks.synapse_polarity import (
    SynapsePolarityConfig,
    apply_params,
    atlas_correlation_matrix,
    atlas_loss,
    expand_shared,
    init_params,
    nt_class_of,
    nt_classes,
    nt_consistency,
    nt_penalty,
    p_exc_of,
    polarity_of,
    presynaptic_groups,
    response_metrics,
    kfold_stimulated,
    shuffle_connectome,
    split_stimulated,
)

REQUIRED = (
    "test_r", "test_sign_agreement", "nt_consistency", "train_r", "baseline_c302_test_r",
    "baseline_c302_test_sign_agreement", "shuffled_test_r", "corr_matrix_mse", "n_train_neurons",
    "n_test_neurons", "n_pairs_used",
)


@pytest.fixture(scope="module")
def full_model():
    return protocol_model(load_c302_network("C1", "Full"), AtlasProtocol())


# ---------------------------------------------------------------------------- the pipeline
def _run_ci(out: Path, *overrides: str) -> tuple[Path, dict]:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "owjax.fit", "+experiment=synapse_polarity", "run=ci", "progress=false",
         f"hydra.run.dir={out}", *overrides],
        capture_output=True, text=True, cwd=Path(__file__).parents[1],
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "test_r:" in proc.stdout and "shuffled_test_r:" in proc.stdout
    return out, json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    """The CI-sized experiment of the conductance model (``model=c302``) through the one-line entry
    point (a real subprocess)."""
    return _run_ci(tmp_path_factory.mktemp("synapse_polarity_ci"), "synapse_polarity.model=c302",
                   "synapse_polarity.loss=scaled_mse")


@pytest.fixture(scope="module")
def ci_run_extrasynaptic(tmp_path_factory):
    """The CI-sized experiment of the rate model with extrasynaptic couplings (the default ``rate``
    plus the cect couplings and the unc-31 check)."""
    return _run_ci(tmp_path_factory.mktemp("synapse_polarity_ci_extra"), "synapse_polarity.model=rate_extrasynaptic")


def _yaml_ci_config(*extra: str) -> dict:
    """``conf/experiment/synapse_polarity.yaml`` at ``run=ci``, as owjax.fit composes it (the conductance
    model unless ``extra`` overrides say otherwise)."""
    from hydra import compose, initialize_config_dir

    from owjax.fitting.loop import CONF_DIR, _apply_run_size

    overrides = ["+experiment=synapse_polarity", "run=ci", "synapse_polarity.model=c302", "synapse_polarity.loss=scaled_mse",
                 *extra]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("fit", overrides=overrides, return_hydra_config=True)
    from omegaconf import OmegaConf

    return OmegaConf.to_container(_apply_run_size(cfg, ["run=ci"]), resolve=True)


def test_fit_yaml_ci_size_is_the_ci_configuration():
    """``owjax.fit +experiment=synapse_polarity run=ci`` is the CI size: 6 stimulated neurons, short
    trials, 4 steps of 3 stimulations, checkpoints every 2 steps, float32, no wall-time budget."""
    from owjax.fitting.tasks.synapse_polarity import config_from_fit

    d = _yaml_ci_config()
    cfg = config_from_fit(d, seed=d["seed"])
    assert sorted(cfg.stimulated) == sorted(["AVEL", "AVER", "RIAL", "RIAR", "ASHL", "RMDVR"])
    assert cfg.batch_size == 3 and cfg.test_fraction == 0.34 and cfg.dtype == "float32"
    assert (cfg.protocol.duration_ms, cfg.protocol.stim_duration_ms, cfg.protocol.settle_ms) == (60.0, 40.0, 300.0)
    assert d["optim"]["steps"] == 4 and d["optim"]["lr"] == 0.1 and d["checkpoint"]["every"] == 2
    assert d["max_fit_wall_s"] is None and d["optim"]["lbfgs"]["steps"] == 0


def test_fit_entry_rejects_optimiser_fields_in_the_block(tmp_path):
    from owjax.fitting.tasks.synapse_polarity import SynapsePolarity

    d = _yaml_ci_config()
    d["synapse_polarity"]["steps"] = 3
    with pytest.raises(ValueError, match="optim.steps instead of synapse_polarity.steps"):
        SynapsePolarity().build(d, seed=0, run_dir=tmp_path)
    d = _yaml_ci_config()
    d["synapse_polarity"]["max_fit_wall_s"] = 60
    with pytest.raises(ValueError, match="max_fit_wall_s instead of synapse_polarity.max_fit_wall_s"):
        SynapsePolarity().build(d, seed=0, run_dir=tmp_path)
    d = _yaml_ci_config()
    d["optim"]["lbfgs"]["steps"] = 5  # minibatches: no L-BFGS stage
    with pytest.raises(ValueError, match="optim.lbfgs.steps=0"):
        SynapsePolarity().build(d, seed=0, run_dir=tmp_path)


@pytest.mark.slow
def test_ci_pipeline_metrics(ci_run):
    out, m = ci_run
    for k in REQUIRED:
        assert k in m, k
        assert math.isfinite(float(m[k])), (k, m[k])
    assert m["n_train_neurons"] + m["n_test_neurons"] == 6 and m["n_pairs_used"] > 0
    assert set(m["train_neurons"]).isdisjoint(m["test_neurons"])
    # bilateral split: homologues on the same side
    for a, b in (("AVEL", "AVER"), ("RIAL", "RIAR")):
        assert (a in m["train_neurons"]) == (b in m["train_neurons"])
    assert -1.0 <= m["test_r"] <= 1.0 and 0.0 <= m["test_sign_agreement"] <= 1.0
    assert 0.0 <= m["nt_consistency"] <= 1.0
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test_r"] == pytest.approx(m["test_r"])
    _check_ceiling_keys(m)


def _check_ceiling_keys(m: dict) -> None:
    lo, hi = m["test_r_ci95"]
    assert lo <= m["test_r"] <= hi
    assert 0.0 < m["noise_ceiling_r"] <= 1.0
    assert m["test_r_fraction_of_ceiling"] == pytest.approx(m["test_r"] / m["noise_ceiling_r"])
    st = m["statistics"]["test_significant"]
    assert st["fitted"]["r"] == pytest.approx(m["test_r"])  # the bootstrap's r is the report's r
    assert st["c302"]["r"] == pytest.approx(m["baseline_c302_test_r"])
    assert st["shuffled"]["r"] == pytest.approx(m["shuffled_test_r"])
    assert st["fitted"]["sign_agreement"] == pytest.approx(m["test_sign_agreement"])
    assert m["test_r_minus_c302"] == pytest.approx(m["test_r"] - m["baseline_c302_test_r"])
    for k in ("test_significant", "test_observed", "train_significant"):
        c = m["statistics"][k]["noise_ceiling"]
        assert c["n_pairs_reliability"] <= c["n_pairs"]


def test_default_model_is_the_rate_model():
    from owjax.fitting.tasks.synapse_polarity import config_from_fit

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from owjax.fitting.loop import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        full = OmegaConf.to_container(compose("fit", overrides=["+experiment=synapse_polarity"]), resolve=True)
    cfg = config_from_fit(full, seed=0)
    assert (cfg.model, cfg.sharing, cfg.loss) == ("rate", "nt", "pearson")


@pytest.mark.slow
def test_ci_rate_extrasynaptic(ci_run_extrasynaptic):
    out, m = ci_run_extrasynaptic
    assert m["model"] == "rate_extrasynaptic"
    for k in REQUIRED:
        if k != "corr_matrix_mse":  # the spontaneous-activity comparison belongs to the conductance model
            assert math.isfinite(float(m[k])), (k, m[k])
    _check_ceiling_keys(m)
    assert set(m["ext_gain"]) == {"peptide", "dopamine", "serotonin", "tyramine", "octopamine"}
    assert m["final_loss"] < m["initial_loss"]
    u = m["unc31"]
    assert u["available"] and u["removed_families"] == ["peptide"]
    lo, hi = u["all"]["r_removed_minus_kept_ci95"]
    assert lo <= u["all"]["r_removed_minus_kept"] <= hi
    assert (out / "fitted_groups.json").exists() and (out / "fitted_params.npz").exists()


@pytest.mark.slow
def test_ci_pipeline_loss_decreases(ci_run):
    _, m = ci_run
    assert m["n_steps"] == _yaml_ci_config()["optim"]["steps"]
    # the full objective on the whole training set (CI: one minibatch = the training set)
    assert m["final_train_loss"] < m["initial_train_loss"]
    assert m["final_train_terms"]["atlas"] < m["initial_train_terms"]["atlas"]


@pytest.mark.slow
def test_ci_pipeline_outputs(ci_run):
    out, m = ci_run
    for f in ("params.json", "metrics.json", "fitted_synapses.csv", "polarity_flips.csv", "polarity_flips.md",
              "loss_curves.png", "response_matrices.png", "response_scatter.png", "loss_history.json",
              "checkpoints", "fit_config.yaml", "loss_curve.png", "responses.npz"):
        assert (out / f).exists(), f
    doc = json.loads((out / "params.json").read_text())
    meta = doc.get("metadata", doc)
    assert meta["source"] == "auto-fitted" and meta["experiment"] == "synapse_polarity" and "git_commit" in meta
    rows = (out / "fitted_synapses.csv").read_text().strip().splitlines()
    assert len(rows) - 1 == m["n_connections"]
    assert sum(int(r.split(",")[-1]) for r in rows[1:]) == m["n_polarity_flips"]
    hist = json.loads((out / "loss_history.json").read_text())
    assert len(hist["loss"]) == m["n_steps"]


@pytest.mark.slow
def test_resume_is_a_no_op_when_done(ci_run):
    """The same command in the finished run directory does nothing; its checkpoint holds the saved params."""
    out, m = ci_run
    from owjax.fitting.loop import run_fit

    again = run_fit(dict(_yaml_ci_config(), progress=False), out)
    assert again["n_steps"] == m["n_steps"] and again == m
    import orbax.checkpoint as ocp

    mngr = ocp.CheckpointManager((out / "checkpoints").absolute())
    assert mngr.latest_step() == m["n_steps"]
    params = mngr.restore(m["n_steps"], args=ocp.args.StandardRestore())["raw"]
    mngr.close()
    saved = np.load(out / "fitted_params.npz")
    np.testing.assert_allclose(np.asarray(params["w"]), saved["w"])


# ---------------------------------------------------------------------------- NT consistency
def test_nt_classes_known_neurons():
    codes, ident = nt_classes(["DD1", "AVAL", "ASHL", "SMDVL", "RIS", "ADFL"])
    assert ident[0] == "GABA" and ident[1] == "Acetylcholine" and ident[2] == "Glutamate"
    # GABA → inh (2), ACh → exc (1), Glu → free (0), ACh+GABA → free, ACh+Serotonin → exc
    assert codes.tolist() == [2, 1, 0, 0, 2, 1]
    assert nt_class_of("Glutamate+Tyramine") == 0 and nt_class_of(("GABA", "Unknown")) == 2
    codes2, _ = nt_classes(["X", "Y"], transmitters={"X": ("GABA",), "Y": "Acetylcholine+Glutamate"})
    assert codes2.tolist() == [2, 1]


def test_nt_consistency_known_case():
    p = np.array([0.9, 0.2, 0.7, 0.4, 0.1, 0.99])
    cls = np.array([1, 1, 2, 2, 2, 0])
    r = nt_consistency(p, cls)
    # exc prior: 0.9 ok, 0.2 wrong; inh prior: 0.7 wrong, 0.4 ok, 0.1 ok; free ignored
    assert r["n_nt_constrained"] == 5
    assert r["nt_consistency"] == pytest.approx(3 / 5)
    assert r["nt_consistency_cholinergic"] == pytest.approx(0.5)
    assert r["nt_consistency_gabaergic"] == pytest.approx(2 / 3)
    pen = float(nt_penalty(jnp.asarray(p), cls, w_gaba=1.0, w_ach=0.5))
    expect = (0.5 * 0.1**2 + 0.5 * 0.8**2 + 0.7**2 + 0.4**2 + 0.1**2 + 0.0) / 6
    assert pen == pytest.approx(expect, rel=1e-5)


def test_c302_nt_consistency(full_model):
    codes, _ = nt_classes([n.split("->")[0] for n in full_model.graded_names])
    r = nt_consistency(polarity_of(full_model).astype(float), codes)
    assert r["nt_consistency_cholinergic"] > 0.9 and r["n_nt_constrained"] > 1000


# ---------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("mode", ["connection", "presynaptic"])
def test_init_params_reproduce_c302(full_model, mode):
    cfg = SynapsePolarityConfig(polarity=mode)
    p = init_params(full_model, cfg)
    m = apply_params(full_model, p)
    np.testing.assert_allclose(np.asarray(m.graded.weight), np.asarray(full_model.graded.weight), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(m.gaps.weight), np.asarray(full_model.gaps.weight), rtol=1e-6)
    assert np.abs(np.asarray(m.graded.erev_mV) - np.asarray(full_model.graded.erev_mV)).max() < 1.3
    # per-presynaptic: one θ per neuron; c302 is uniform per presynaptic neuron so the signs agree
    assert np.array_equal(np.asarray(p_exc_of(p, full_model)) > 0.5, polarity_of(full_model))
    flipped = dict(p, theta=-p["theta"])
    assert np.array_equal(polarity_of(apply_params(full_model, flipped)), ~polarity_of(full_model))


@pytest.mark.parametrize("sharing", ["nt", "class", "presynaptic"])
def test_shared_conductance_parameters_start_at_c302(full_model, sharing):
    """conductance_sharing: one weight and one sign per presynaptic group, a gap gain; the start is
    c302 (c302's sign is uniform per presynaptic neuron, and the NT/class groups follow its majority)."""
    cfg = SynapsePolarityConfig(conductance_sharing=sharing)
    g_cell, names = presynaptic_groups(full_model, sharing)
    p = init_params(full_model, cfg)
    assert set(p) == {"w", "theta", "gain", "gap_gain"} and p["w"].shape == p["theta"].shape == (len(names),)
    pc = expand_shared(p, g_cell)
    m = apply_params(full_model, pc)
    np.testing.assert_allclose(np.asarray(m.graded.weight), np.asarray(full_model.graded.weight), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(m.gaps.weight), np.asarray(full_model.gaps.weight), rtol=1e-6)
    agree = np.mean((np.asarray(p_exc_of(pc, full_model)) > 0.5) == polarity_of(full_model))
    assert agree == 1.0 if sharing == "presynaptic" else agree > 0.9
    # one group's parameters move all of its connections, and nothing else
    k = int(g_cell[int(full_model.graded.pre[0])])
    m2 = apply_params(full_model, expand_shared(dict(p, w=p["w"].at[k].set(2.0)), g_cell))
    changed = np.asarray(m2.graded.weight) != np.asarray(m.graded.weight)
    assert np.array_equal(changed, g_cell[np.asarray(full_model.graded.pre)] == k)
    # the one gap gain scales every gap junction (there are no per-connection gap parameters)
    m3 = apply_params(full_model, expand_shared(dict(p, gap_gain=jnp.asarray(2.0, p["w"].dtype)), g_cell))
    np.testing.assert_allclose(np.asarray(m3.gaps.weight) / np.asarray(full_model.gaps.weight),
                               np.log1p(np.exp(2.0)) / np.log(2.0), rtol=1e-5)
    if sharing == "nt":
        codes = nt_classes([n.split("->")[0] for n in full_model.graded_names])[0]
        assert len(set(zip(codes, g_cell[np.asarray(full_model.graded.pre)]))) == len(set(codes))


def test_gain_bound_keeps_every_multiplier_in_range(full_model):
    """gain_bound=B: weights within [1/B², B²] of c302's (a group multiplier times the global gain),
    c302 itself at zero parameters."""
    from owjax.fitting.tasks.synapse_polarity import bounded_multiplier

    u = jnp.linspace(-50.0, 50.0, 101)
    b = np.asarray(bounded_multiplier(u, 2.0))
    assert b.min() >= 0.5 - 1e-6 and b.max() <= 2.0 + 1e-6 and abs(float(bounded_multiplier(0.0, 2.0)) - 1.0) < 1e-7
    assert np.all(np.diff(b) >= 0)
    g_cell, _ = presynaptic_groups(full_model, "nt")
    p = init_params(full_model, SynapsePolarityConfig(conductance_sharing="nt", gain_bound=2.0))
    m0 = apply_params(full_model, expand_shared(p, g_cell), gain_bound=2.0)
    np.testing.assert_allclose(np.asarray(m0.graded.weight), np.asarray(full_model.graded.weight), rtol=1e-6)
    big = dict(p, w=jnp.full_like(p["w"], 40.0), gain=jnp.asarray(40.0, p["w"].dtype), gap_gain=jnp.asarray(-40.0, p["w"].dtype))
    m = apply_params(full_model, expand_shared(big, g_cell), gain_bound=2.0)
    ratio = np.asarray(m.graded.weight) / np.asarray(full_model.graded.weight)
    np.testing.assert_allclose(ratio, 4.0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(m.gaps.weight) / np.asarray(full_model.gaps.weight), 0.5, rtol=1e-5)
    with pytest.raises(ValueError, match="gain_bound"):
        SynapsePolarityConfig.from_dict(dict(gain_bound=0.5))


def test_shared_conductance_parameters_refusals():
    with pytest.raises(ValueError, match="conductance_sharing"):
        SynapsePolarityConfig.from_dict(dict(conductance_sharing="neuron"))
    with pytest.raises(ValueError, match="model=c302"):
        SynapsePolarityConfig.from_dict(dict(model="rate", conductance_sharing="nt"))
    with pytest.raises(ValueError, match="polarity=connection"):
        SynapsePolarityConfig.from_dict(dict(conductance_sharing="nt", polarity="presynaptic"))
    assert SynapsePolarityConfig.from_dict(dict(resettle=True)).resettle
    with pytest.raises(ValueError, match="lambda_rest"):
        SynapsePolarityConfig.from_dict(dict(lambda_rest=-1.0))


def test_weights_stay_positive(full_model):
    p = init_params(full_model, SynapsePolarityConfig())
    p = dict(p, w=jnp.full_like(p["w"], -30.0), gain=jnp.asarray(-5.0, p["w"].dtype))
    w = np.asarray(apply_params(full_model, p).graded.weight)
    assert np.all(w > 0)


def test_gradient_reaches_weights_and_polarities():
    spec = load_c302_network("C1", "Full")
    cells = ["AVAL", "AVAR", "AVEL", "AVDL", "RIML", "AIBL", "DD1", "VA1"]
    proto = AtlasProtocol(duration_ms=30.0, stim_duration_ms=20.0, settle_ms=100.0)
    m = protocol_model(spec.subset(cells), proto)
    y0 = resting_state(m, proto)
    p0 = init_params(m, SynapsePolarityConfig())
    amps = stimulus_amplitudes(m, ["AVEL"], 10.0)
    from owjax.reference.atlas_protocol import simulate_responses

    def f(p):
        return jnp.sum(simulate_responses(apply_params(m, p), amps, y0, proto) ** 2)

    g = jax.grad(f)(p0)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in g.values())
    assert float(jnp.abs(g["w"]).max()) > 0 and float(jnp.abs(g["theta"]).max()) > 0


def test_settled_state_is_the_rest_with_the_gradient_stopped():
    """resettle's settling: the same state as resting_state from the same start, no gradient through
    it, and the last finite saved state when the solver runs out of steps."""
    from dataclasses import replace

    from owjax.core.solve import SolverConfig
    from owjax.reference.atlas_protocol import settled_state

    spec = load_c302_network("C1", "Full")
    proto = AtlasProtocol(duration_ms=30.0, stim_duration_ms=20.0, settle_ms=100.0)
    m = protocol_model(spec.subset(["AVAL", "AVAR", "AVEL", "AVDL", "RIML", "AIBL", "DD1", "VA1"]), proto)
    ref = resting_state(m, proto)
    y = jax.jit(lambda mm: settled_state(mm, mm.initial_state(), proto))(m)
    np.testing.assert_allclose(np.asarray(y["V"]), np.asarray(ref["V"]), rtol=1e-5, atol=1e-4)
    p0 = init_params(m, SynapsePolarityConfig())
    g = jax.grad(lambda p: jnp.sum(settled_state(apply_params(m, p), m.initial_state(), proto)["V"]))(p0)
    assert all(float(jnp.abs(v).max()) == 0.0 for v in g.values())
    short = replace(proto, solver=SolverConfig("tsit5", rtol=1e-6, atol=1e-6, max_steps=3))
    y_short = settled_state(m, m.initial_state(), short)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree.leaves(y_short))


# ---------------------------------------------------------------------------- protocol
def test_protocol_responses_small_network():
    spec = load_c302_network("C1", "Full")
    proto = AtlasProtocol(duration_ms=40.0, stim_duration_ms=30.0, settle_ms=200.0)
    m = protocol_model(spec.subset(["AVAL", "AVAR", "AVEL", "AVER", "RIML"]), proto)
    y0 = resting_state(m, proto)
    assert abs(float(y0["V"].mean()) + 58.0) < 2.0
    r = np.asarray(responses_jit(m, stimulus_amplitudes(m, ["AVEL", "RIML"], 10.0), y0, proto))
    assert r.shape == (2, 5) and np.all(np.isfinite(r))
    assert r[0, m.index("AVEL")] > 0 and r[1, m.index("RIML")] > 0  # the stimulated neuron's Ca rises
    r0 = np.asarray(responses_jit(m, stimulus_amplitudes(m, ["AVEL"], 0.0), y0, proto))
    assert np.abs(r0).max() < 1e-3  # no stimulus, no response (the resting state is steady)
    with pytest.raises(ValueError, match="readout"):
        AtlasProtocol(readout="gcamp")
    with pytest.raises(ValueError, match="window"):
        AtlasProtocol(window_ms=(0.0, 500.0))


# ---------------------------------------------------------------------------- controls and metrics
def test_shuffle_preserves_degrees(full_model):
    s = shuffle_connectome(full_model, seed=3, n_swaps_per_edge=3)
    n = full_model.n_cells
    pre0, post0 = np.asarray(full_model.graded.pre), np.asarray(full_model.graded.post)
    pre1, post1 = np.asarray(s.graded.pre), np.asarray(s.graded.post)
    assert np.array_equal(pre0, pre1)
    assert np.array_equal(np.bincount(post0, minlength=n), np.bincount(post1, minlength=n))
    assert np.mean(post0 != post1) > 0.5  # most connections moved
    assert np.all(pre1 != post1) and len(set(zip(pre1, post1))) == len(pre1)
    deg = lambda a, b: np.bincount(np.concatenate([a, b]), minlength=n)  # noqa: E731
    g0 = deg(np.asarray(full_model.gaps.pre), np.asarray(full_model.gaps.post))
    g1 = deg(np.asarray(s.gaps.pre), np.asarray(s.gaps.post))
    assert np.array_equal(g0, g1)
    np.testing.assert_array_equal(np.asarray(s.graded.weight), np.asarray(full_model.graded.weight))


def test_split_by_bilateral_pairs():
    names = ["AVAL", "AVAR", "AVEL", "AVER", "RIML", "RIMR", "ASHL", "SABD", "DD1", "I3"]
    tr, te = split_stimulated(names, 0.3, seed=0)
    assert tr and te and set(tr) | set(te) == set(names) and not set(tr) & set(te)
    for a, b in (("AVAL", "AVAR"), ("AVEL", "AVER"), ("RIML", "RIMR")):
        assert (a in te) == (b in te)
    assert split_stimulated(names, 0.3, seed=0) == (tr, te)
    tr2, te2 = split_stimulated(names, 0.3, seed=0, mode="neuron")
    assert len(te2) == 3


def test_kfold_holds_every_neuron_out_once_with_homologues_together():
    names = ["AVAL", "AVAR", "AVEL", "AVER", "RIML", "RIMR", "ASHL", "SABD", "DD1", "I3", "URYVL", "M4"]
    tests = [kfold_stimulated(names, 4, k, seed=3) for k in range(4)]
    held = [n for _, te in tests for n in te]
    assert sorted(held) == sorted(names)  # each neuron held out exactly once
    for tr, te in tests:
        assert set(tr) | set(te) == set(names) and not set(tr) & set(te) and te
        for a, b in (("AVAL", "AVAR"), ("AVEL", "AVER"), ("RIML", "RIMR")):
            assert (a in te) == (b in te)
    sizes = [len(te) for _, te in tests]
    assert max(sizes) - min(sizes) <= 1  # 3 pairs and 6 singles: 3 each
    assert kfold_stimulated(names, 4, 2, seed=3) == tests[2]
    assert [te for _, te in (kfold_stimulated(names, 4, k, seed=4) for k in range(4))] != [te for _, te in tests]
    with pytest.raises(ValueError, match="folds >= 2"):
        kfold_stimulated(names, 4, 4, seed=0)
    with pytest.raises(ValueError, match="at least 5 split units"):
        kfold_stimulated(["AVAL", "AVAR", "ASHL", "I3", "M4"], 5, 0, seed=0)


def test_cross_validation_config_is_checked():
    from owjax.fitting.tasks.synapse_polarity import SynapsePolarityConfig

    assert SynapsePolarityConfig.from_dict(dict(folds=4, fold=3)).fold == 3
    for bad in (dict(folds=1), dict(folds=4, fold=4), dict(fold=2)):
        with pytest.raises(ValueError, match="folds"):
            SynapsePolarityConfig.from_dict(bad)


def test_pooled_cross_validation_takes_each_row_from_the_fold_that_held_it_out(full_model, tmp_path):
    """Two folds whose fitted responses are a known matrix on their held-out rows and noise on their
    training rows: the pooled statistics are those of the known matrix, computed directly."""
    from types import SimpleNamespace

    from owjax.fitting.tasks.synapse_polarity import SynapsePolarityConfig
    from owjax.fitting.tasks.synapse_polarity_ceiling import (
        held_out_statistics,
        pooled_cross_validation,
        save_held_out_responses,
    )
    from owjax.reference.atlas import load_atlas

    stim = ["AVEL", "AVER", "RIAL", "RIAR", "ASHL", "RMDVR"]
    atlas = load_atlas("wt", full_model.cell_names)
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(len(stim), full_model.n_cells))
    start = rng.normal(size=truth.shape)
    dirs = []
    for k in range(2):
        cfg = SynapsePolarityConfig.from_dict(dict(folds=2, fold=k, stimulated=stim))
        train, test = kfold_stimulated(stim, 2, k, cfg.seed)
        fitted = np.where(np.isin(stim, test)[:, None], truth, rng.normal(size=truth.shape))
        su = SimpleNamespace(cfg=cfg, model=full_model, train=train, test=test)
        d = tmp_path / f"fold_{k}"
        d.mkdir()
        save_held_out_responses(d, su, dict(fitted=fitted, c302=start, shuffled=-start), stim)
        dirs.append(d)
    pooled = pooled_cross_validation(cfg, dirs, atlas=atlas, n_boot=50, n_splits=10)
    assert sorted(pooled["fold_of"]) == sorted(stim) and pooled["n_folds"] == 2
    direct = held_out_statistics(SimpleNamespace(cfg=cfg, atlas=atlas, model=full_model, train=[], test=stim),
                                 dict(fitted=truth, c302=start, shuffled=-start), stim, n_boot=50, n_splits=10,
                                 pair_sets=(("all", stim, cfg.q_max),))["all"]
    got = pooled["heldout_significant"]
    for m in ("fitted", "c302", "shuffled"):
        assert got[m]["r"] == pytest.approx(direct[m]["r"], abs=1e-12)
        assert got[m]["r_ci"] == pytest.approx(direct[m]["r_ci"], abs=1e-12)
    assert got["n_pairs"] == direct["n_pairs"] > 0
    stacked = pooled_cross_validation(cfg, dirs, atlas=atlas, n_boot=20, n_splits=5, stack=("fitted",))
    assert len(stacked["stack_coefficients"]["fitted"]) == 2
    assert np.isfinite(stacked["stack_coefficients"]["fitted"]).all()
    assert math.isfinite(stacked["heldout_significant"]["fitted+responder_mean"]["r"])
    with pytest.raises(ValueError, match="not a model of the runs"):
        pooled_cross_validation(cfg, dirs, atlas=atlas, stack=("nope",))
    with pytest.raises(ValueError, match="folds 0..1 once each"):
        pooled_cross_validation(cfg, [dirs[0], dirs[0]], atlas=atlas)
    with pytest.raises(ValueError, match="one 3-fold cross-validation"):
        pooled_cross_validation(cfg, [*dirs, dirs[0]], atlas=atlas)
    with pytest.raises(ValueError, match="responses.npz is missing"):
        pooled_cross_validation(cfg, [dirs[0], tmp_path], atlas=atlas)


def test_pooled_unc31_check_and_comparison_take_held_out_rows(full_model, tmp_path):
    """Folds that saved *unc-31* responses (known on their held-out rows, noise elsewhere): the pooled
    check equals the correlation computed directly on the atlas' pairs; another cross-validation on the
    same folds joins as ``fitted[NAME]`` with its paired difference; one on other folds is refused."""
    from types import SimpleNamespace

    from owjax.fitting.tasks.synapse_polarity import SynapsePolarityConfig
    from owjax.fitting.tasks.synapse_polarity_ceiling import (
        _r,
        cross_validation_baseline,
        pooled_cross_validation,
        pooled_unc31_check,
        save_held_out_responses,
    )
    from owjax.reference.atlas import load_atlas

    stim = ["AVEL", "AVER", "RIAL", "RIAR", "ASHL", "RMDVR", "AVAL", "AVAR"]
    rng = np.random.default_rng(1)
    shape = (len(stim), full_model.n_cells)
    kept, removed, other = (rng.normal(size=shape) for _ in range(3))

    def write(root, folds, seed):
        dirs = []
        for k in range(folds):
            cfg = SynapsePolarityConfig.from_dict(dict(folds=folds, fold=k, stimulated=stim, seed=seed))
            train, test = kfold_stimulated(stim, folds, k, cfg.seed)
            held = np.isin(stim, test)[:, None]
            noise = lambda x: np.where(held, x, rng.normal(size=shape))  # noqa: E731
            su = SimpleNamespace(cfg=cfg, model=full_model, train=train, test=test)
            d = root / f"fold_{k}"
            d.mkdir(parents=True)
            extra = dict(unc31_stimulated=np.array(stim), unc31_resp_kept=noise(kept), unc31_resp_removed=noise(removed),
                         dcv_removed_wt=noise(removed), dcv_families=np.array(["peptide"]))
            save_held_out_responses(d, su, dict(fitted=noise(kept), c302=noise(other), shuffled=noise(other)), stim,
                                    extra=extra)
            dirs.append(d)
        return cfg, dirs

    cfg, dirs = write(tmp_path / "a", 2, 0)
    check = pooled_unc31_check(cfg, dirs, n_boot=50, n_splits=5)
    assert check["available"] and check["removed_families"] == ["peptide"]
    for strain in ("unc31", "wt"):
        atlas = load_atlas(strain, full_model.cell_names)
        p = atlas.pairs(q_max=cfg.q_max, min_occ=cfg.min_occ, stimulated=stim, clip=cfg.clip)
        rows = np.array([stim.index(atlas.names[j]) for j in p.stim])
        cols = np.array([full_model.index(atlas.names[i]) for i in p.resp])
        got = check[strain]
        assert got["n_pairs"] == len(p) > 0 and got["n_stimulated"] == len(stim)
        assert got["r_kept"] == pytest.approx(_r(kept[rows, cols], p.target), abs=1e-12)
        assert got["r_removed"] == pytest.approx(_r(removed[rows, cols], p.target), abs=1e-12)
        assert got["r_removed_minus_kept"] == pytest.approx(got["r_removed"] - got["r_kept"], abs=1e-12)
    assert check["unc31"]["n_stimulated_not_held_out"] == 0
    assert check["prediction_holds"] == (check["unc31"]["r_removed"] > check["unc31"]["r_kept"])

    _, dirs_b = write(tmp_path / "b", 2, 0)  # the same folds: the other model is the known "other" matrix
    pooled = pooled_cross_validation(cfg, dirs, n_boot=50, n_splits=5,
                                     baselines={"fitted[b]": cross_validation_baseline(dirs_b, "c302")})
    hs = pooled["heldout_significant"]
    assert hs["fitted[b]"]["r"] == pytest.approx(hs["c302"]["r"], abs=1e-12)
    assert hs["differences"]["fitted-fitted[b]"]["r_diff"] == pytest.approx(hs["fitted"]["r"] - hs["c302"]["r"], abs=1e-12)
    with pytest.raises(ValueError, match="not a model of"):
        cross_validation_baseline(dirs_b, "nope")
    _, dirs_c = write(tmp_path / "c", 2, 5)  # other folds
    with pytest.raises(ValueError, match="other folds"):
        pooled_cross_validation(cfg, dirs, n_boot=5, n_splits=2, baselines={"x": cross_validation_baseline(dirs_c)})
    plain = tmp_path / "plain"  # runs without unc-31 arrays: the check says so
    plain.mkdir()
    for k, d in enumerate(dirs):
        with np.load(d / "responses.npz") as z:
            (plain / f"fold_{k}").mkdir()
            np.savez(plain / f"fold_{k}" / "responses.npz", **{n: z[n] for n in z.files if not n.startswith(("unc31", "dcv"))})
    assert pooled_unc31_check(cfg, [plain / "fold_0", plain / "fold_1"])["available"] is False
    with pytest.raises(ValueError, match="clash"):
        save_held_out_responses(tmp_path, SimpleNamespace(cfg=cfg, model=full_model, train=[], test=[]), {}, [],
                                extra=dict(resp_x=np.zeros(1)))


def test_cross_validation_baselines_see_only_training_folds(full_model):
    from types import SimpleNamespace

    from owjax.fitting.tasks.synapse_polarity_ceiling import direct_connection_baseline, responder_mean_baseline
    from owjax.reference.atlas import load_atlas

    wt = load_atlas("wt", full_model.cell_names)
    stim = ["AVEL", "AVER", "RIAL", "RIAR", "ASHL", "RMDVR"]
    fold_of = {"AVEL": 0, "AVER": 0, "ASHL": 0, "RIAL": 1, "RIAR": 1, "RMDVR": 1}
    fn = responder_mean_baseline(0.05, 2.0)
    base = fn(wt, full_model.cell_names, stim, fold_of)
    assert base.shape == (6, full_model.n_cells) and np.isfinite(base).all() and np.abs(base).max() <= 2.0
    # changing what fold 0's neurons evoked changes fold 1's predictions only
    resp = np.array(wt.response)
    for n in ("AVEL", "AVER", "ASHL"):
        resp[:, wt.names.index(n)] += 0.5
    moved = fn(SimpleNamespace(names=wt.names, response=resp, q=wt.q), full_model.cell_names, stim, fold_of)
    rows0 = [stim.index(n) for n in ("AVEL", "AVER", "ASHL")]
    rows1 = [stim.index(n) for n in ("RIAL", "RIAR", "RMDVR")]
    np.testing.assert_array_equal(moved[rows0], base[rows0])
    assert not np.allclose(moved[rows1], base[rows1])
    direct = direct_connection_baseline(full_model)(wt, full_model.cell_names, stim, fold_of)
    k = stim.index("AVEL")
    assert direct[k, full_model.index("AVAL")] == 1.0  # AVEL -> AVAL is a c302 connection
    assert set(np.unique(direct)) <= {0.0, 1.0}


def test_atlas_loss_and_metrics():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(4, 10))
    w = (rng.random((4, 10)) > 0.3).astype(float)
    assert float(atlas_loss(jnp.asarray(3.0 * t), jnp.asarray(t), jnp.asarray(w))) == pytest.approx(0.0, abs=1e-9)
    assert float(atlas_loss(jnp.asarray(2 * t + 1), jnp.asarray(t), jnp.asarray(w), "pearson")) == pytest.approx(0.0, abs=1e-9)
    # a negative-only scale is not allowed: anti-correlated responses score as badly as zero
    assert float(atlas_loss(jnp.asarray(-t), jnp.asarray(t), jnp.asarray(w))) == pytest.approx(1.0)
    m = response_metrics(-t, t, w, sign_eps=1e-3)
    assert m["r"] == pytest.approx(-1.0) and m["sign_agreement"] == 0.0
    z = np.where(np.abs(t) < 0.5, 0.0, t)  # tiny responses have no sign
    m2 = response_metrics(z, t, w, sign_eps=1e-3)
    sel = w > 0
    assert m2["sign_agreement"] == pytest.approx(float(np.mean(np.abs(t[sel]) >= 0.5)))


def test_atlas_correlation_matrix_linear_response():
    # 3 neurons, all stimulated, all observed: C = K Kᵀ normalised
    k = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, -0.2], [0.1, 0.3, 1.0]])
    n = 3
    a = SignalPropagationAtlas(("A", "B", "C"), ("A", "B", "C"), k, np.zeros((n, n)), np.ones((n, n)),
                               np.ones((n, n), int), "wt")
    c, d = atlas_correlation_matrix(a, clip=10.0, min_common=3)
    g = k @ k.T
    expect = g / np.sqrt(np.outer(np.diag(g), np.diag(g)))
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(c[off], expect[off])
    assert d[off].all() and not d.diagonal().any()
    c4, d4 = atlas_correlation_matrix(a, clip=10.0, min_common=4)
    assert not d4.any()


# ---------------------------------------------------------------------------- owjax.fit adapter
def test_fit_adapter_builds_problem():
    from owjax.fitting.tasks.synapse_polarity import SynapsePolarity

    sp = {k: v for k, v in _yaml_ci_config()["synapse_polarity"].items() if k != "batch_size"}
    cfg = {
        "synapse_polarity": sp, "dtype": "float32",
        "parameters": {
            "synaptic_weights": {"leaf": "graded.weight", "groupby": "connection", "transform": "softplus",
                                 "bounds": [0.0, None]},
            "synaptic_polarity": {"leaf": "graded.erev_mV", "groupby": "connection", "transform": "sigmoid",
                                  "bounds": [-70.5, 0.5]},
        },
        "loss": {"weights": {"atlas": 1.0, "nt": 1.0}},
    }
    problem = SynapsePolarity().build(cfg, seed=0)
    assert SynapsePolarity.kind == "synapse_polarity"
    assert problem.space.n_trainable == 2 * problem.model.graded.weight.size
    raw = problem.space.init_raw(dtype=problem.model.dtype)
    m = problem.space.apply(problem.model, raw)
    shapes = jax.eval_shape(problem.terms, m, problem.data)
    assert set(shapes) == {"atlas", "nt"}
    assert problem.info["n_train_neurons"] + problem.info["n_test_neurons"] == 6


# ---------------------------------------------------------------------------- noise ceiling, bootstrap
def test_split_half_reliability_recovers_known_reliability():
    from owjax.fitting.tasks.synapse_polarity_ceiling import spearman_brown, split_half_reliability

    rng = np.random.default_rng(0)
    n_pairs, n_trials, sigma = 3000, 4, 1.5
    truth = rng.normal(size=n_pairs)
    trials = [v + sigma * rng.normal(size=n_trials) for v in truth]
    out = split_half_reliability(trials, n_splits=20, seed=1)
    expected = 1.0 / (1.0 + sigma**2 / n_trials)  # reliability of the 4-trial means
    assert out["n_pairs_reliability"] == n_pairs
    assert abs(out["spearman_brown"] - expected) < 0.03
    means = np.array([t.mean() for t in trials])
    assert abs(out["ceiling_r"] - np.corrcoef(means, truth)[0, 1]) < 0.03  # √reliability = r(means, truth)
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    single = split_half_reliability([np.ones(1)] * 10)
    assert single["n_pairs_reliability"] == 0 and np.isnan(single["ceiling_r"])


def test_atlas_noise_ceiling_wt_significant():
    """The numbers of issue 18: 989 significant pairs with ≥ 2 trials, split-half 0.44, SB 0.62."""
    from owjax.fitting.tasks.synapse_polarity_ceiling import pair_set_ceiling
    from owjax.reference.atlas import load_atlas

    wt = load_atlas("wt")
    c = pair_set_ceiling(wt, wt.stimulated_neurons(), q_max=0.05, n_splits=50)
    assert c["n_pairs"] == 1150 and c["n_pairs_reliability"] == 989
    assert c["r_half"] == pytest.approx(0.44, abs=0.02) and c["spearman_brown"] == pytest.approx(0.62, abs=0.02)
    assert c["ceiling_r"] == pytest.approx(0.78, abs=0.02)


def test_bootstrap_over_stimulated_neurons():
    from owjax.fitting.tasks.synapse_polarity_ceiling import bootstrap_metrics

    rng = np.random.default_rng(0)
    group = np.repeat(np.arange(30), 8)
    target = rng.normal(size=group.size)
    sims = dict(good=target + 0.5 * rng.normal(size=group.size), bad=rng.normal(size=group.size))
    b = bootstrap_metrics(sims, target, group, n_boot=300, seed=0)
    assert b["n_groups"] == 30 and b["n_pairs"] == 240
    for k in sims:
        assert b[k]["r"] == pytest.approx(np.corrcoef(sims[k], target)[0, 1])
        lo, hi = b[k]["r_ci"]
        assert lo < b[k]["r"] < hi
        assert b[k]["sign_agreement"] == pytest.approx(np.mean(np.sign(sims[k]) == np.sign(target)))
    d = b["differences"]["good-bad"]
    assert d["r_diff"] == pytest.approx(b["good"]["r"] - b["bad"]["r"]) and d["r_diff_ci"][0] > 0
    assert d["p_r_diff_le_0"] == 0.0 and b["differences"]["bad-good"]["r_diff_ci"][1] < 0
    with pytest.raises(ValueError, match="shape"):
        bootstrap_metrics(dict(x=target[:5]), target, group)


# ---------------------------------------------------------------------------- rate models, extrasynaptic data
def test_extrasynaptic_connectomes_from_cect():
    from owjax.neural.extrasynaptic import extrasynaptic_connectome

    names = load_c302_network("C1", "Full").neuron_names
    ma = extrasynaptic_connectome("bentley_ma", names)
    assert set(ma) == {"dopamine", "serotonin", "tyramine", "octopamine"}
    # Bentley 2016: RIM releases tyramine onto ALM (LGC-55); rows are receivers, columns senders
    assert ma["tyramine"][names.index("ALML"), names.index("RIML")] == 1.0
    assert ma["tyramine"][names.index("RIML"), names.index("ALML")] == 0.0
    assert int((ma["dopamine"] > 0).sum()) > 1000 and set(np.unique(ma["serotonin"])) <= {0.0, 1.0}
    pep = extrasynaptic_connectome("ripoll_mid", names)["peptide"]
    assert pep.shape == (302, 302) and int((pep > 0).sum()) == 40425 and pep.max() == 19.0
    with pytest.raises(ValueError, match="extrasynaptic source"):
        extrasynaptic_connectome("ripoll_medium", names)


def test_neuron_classes():
    from owjax.fitting.tasks.synapse_polarity_rate import neuron_class

    names = load_c302_network("C1", "Full").neuron_names
    assert neuron_class("AVAL", names) == neuron_class("AVAR", names) == "AVA"
    assert {neuron_class(n, names) for n in ("SMDDL", "SMDDR", "SMDVL", "SMDVR")} == {"SMD"}
    assert {neuron_class(n, names) for n in ("RMDL", "RMDR", "RMDDL", "RMDVR")} == {"RMD"}
    assert neuron_class("VB11", names) == neuron_class("VB1", names) == "VB"
    assert neuron_class("AVG", names) == "AVG" and neuron_class("I1L", names) == "I1"


def test_rate_network_starts_at_c302(full_model):
    from owjax.fitting.tasks.synapse_polarity import SynapsePolarityConfig
    from owjax.fitting.tasks.synapse_polarity_rate import (
        build_rate_network,
        connection_p_exc,
        init_rate_params,
        rate_responses,
    )

    cfg = SynapsePolarityConfig.from_dict(dict(model="rate", sharing="presynaptic"))
    nt = np.zeros(full_model.n_cells, np.int32)
    net, info = build_rate_network(full_model, cfg, nt)
    p = init_rate_params(net, full_model, cfg)
    # per-presynaptic signs: c302's majority sign of each neuron's outgoing synapses
    pe = np.asarray(connection_p_exc(p, net, full_model))
    agree = ((pe > 0.5) == polarity_of(full_model)).mean()
    assert agree > 0.9
    idx = [full_model.index(n) for n in ("AVAL", "RIAL", "ASHL")]
    r = rate_responses(net, p, idx)
    assert r.shape == (3, full_model.n_cells) and np.all(np.isfinite(r))
    assert np.all(r[np.arange(3), idx] > 0)  # the stimulated neuron responds to its own drive
    assert np.abs(r).max() < 1e3 and info["chem_spectral_radius"] > 0
    assert (r < -1e-4).any() and (np.abs(r) > 1e-3).mean() > 0.05  # graded, and negative where inhibited
    with pytest.raises(ValueError, match="sharing"):
        SynapsePolarityConfig.from_dict(dict(model="rate", sharing="everything"))
    with pytest.raises(ValueError, match="extrasynaptic"):
        SynapsePolarityConfig.from_dict(dict(model="rate_extrasynaptic", extrasynaptic=["nope"]))


def test_non_responses_join_the_targets_as_zeros(full_model):
    """``non_response_weight`` adds the atlas' equivalence-test non-responses (q_eq < q_eq_max) of the
    chosen stimulations as zero targets with that weight, and leaves the significant pairs alone."""
    from owjax.fitting.tasks.synapse_polarity import SynapsePolarityConfig
    from owjax.fitting.tasks.synapse_polarity_metrics import response_targets
    from owjax.reference.atlas import load_atlas

    wt = load_atlas("wt")
    stim = ["AVAL", "AVAR", "RIAL", "ASHL"]
    base = SynapsePolarityConfig.from_dict({})
    t0, w0 = response_targets(wt, full_model, stim, base)
    t1, w1 = response_targets(wt, full_model, stim, SynapsePolarityConfig.from_dict({"non_response_weight": 0.1}))
    sig = w0 > 0
    assert np.array_equal(t1[sig], t0[sig]) and np.array_equal(w1[sig], w0[sig])
    added = (w1 > 0) & ~sig
    assert added.sum() > sig.sum() and np.all(t1[added] == 0.0) and np.all(w1[added] == 0.1)
    names = list(full_model.cell_names)
    for s, i in zip(*np.nonzero(added)):  # every added pair is an observed non-response in the atlas
        r, c = wt.index(names[i]), wt.index(stim[s])
        assert wt.q_eq[r, c] < 0.05 and np.isfinite(wt.response[r, c])
    with pytest.raises(ValueError, match="non_response_weight"):
        SynapsePolarityConfig.from_dict({"non_response_weight": -1.0})


def test_atlas_kernels_are_the_files_sums_of_exponentials(full_model):
    """The atlas' kernels evaluated in float64 equal the sum of the file's terms computed by hand;
    pairs without a kernel are NaN; bad times are refused."""
    import h5py

    atlas = load_atlas_wt(full_model)
    p = atlas.pairs(q_max=0.05, stimulated=["AVAL", "AVAR", "RIAL", "ASHL"])
    t = np.linspace(0.0, 5.0, 11)
    vals = atlas.kernels(p.resp, p.stim, t)
    assert vals.shape == (len(p), t.size)
    have = np.all(np.isfinite(vals), axis=1)
    assert have.any()
    with h5py.File(atlas.source, "r") as f:
        k = 0 if have[0] else int(np.argmax(have))
        terms = np.asarray(f["wt"]["kernels"][atlas.file_index[p.resp[k]], atlas.file_index[p.stim[k]]]).reshape(-1, 4)
    by_hand = sum(c * t ** pw * np.exp(-g * t) for g, c, pw, _ in terms)
    np.testing.assert_allclose(vals[k], by_hand, rtol=1e-12, atol=1e-12)
    assert np.any(vals[k] != 0.0)
    with pytest.raises(ValueError, match="t_s must be"):
        atlas.kernels(p.resp[:1], p.stim[:1], [-1.0, 0.0])
    with pytest.raises(ValueError, match="same length"):
        atlas.kernels(p.resp[:2], p.stim[:1], t)


def load_atlas_wt(model):
    from owjax.reference.atlas import load_atlas

    return load_atlas("wt", model.cell_names)


def test_kernel_objective_scores_time_courses_against_the_atlas_kernels(full_model):
    """``kernel_error`` is 0 for responders whose time courses are the kernels applied to the
    stimulated neurons' (at any positive scale), 2 for their negatives; the rate model's trajectories
    end in its window means; the option is refused for the conductance model."""
    from owjax.fitting.tasks.synapse_polarity import SynapsePolarityConfig
    from owjax.fitting.tasks.synapse_polarity_rate import (
        build_rate_network,
        init_rate_params,
        kernel_error,
        kernel_targets,
    )

    stim = ["AVAL", "AVAR", "RIAL", "ASHL", "AVEL"]
    cfg = SynapsePolarityConfig.from_dict(dict(model="rate", sharing="nt", kernel_weight=1.0, rate_duration=4.0,
                                               rate_pulse=2.0, rate_dt=0.5))
    kt = kernel_targets(load_atlas_wt(full_model), full_model, stim, cfg)
    assert kt is not None and kt.conv.shape[1:] == (8, 8) and kt.conv.shape[0] == kt.row.shape[0] > 0
    assert np.all(np.triu(np.asarray(kt.conv), 1) == 0.0)  # causal
    # a trajectory whose responders follow the kernels exactly (each pair's responder distinct here)
    rng = np.random.default_rng(0)
    traj = np.zeros((8, full_model.n_cells, len(stim)))
    x_stim = rng.uniform(0.5, 1.0, size=(8,))
    rows, resp, st = (np.asarray(a) for a in (kt.row, kt.resp, kt.stim))
    for s in range(len(stim)):
        traj[:, full_model.index(stim[s]), s] = x_stim
    keep = np.ones(len(rows), bool)
    seen = set()
    for p_ in range(len(rows)):
        if (rows[p_], resp[p_]) in seen or resp[p_] in set(st):
            keep[p_] = False  # a cell that is both responder and stimulated cannot follow two kernels
            continue
        seen.add((rows[p_], resp[p_]))
        traj[:, resp[p_], rows[p_]] = np.asarray(kt.conv[p_]) @ x_stim
    kt_ok = type(kt)(row=kt.row[keep], resp=kt.resp[keep], stim=kt.stim[keep], conv=kt.conv[keep])
    assert float(kernel_error(jnp.asarray(3.0 * traj, jnp.float32), kt_ok)) == pytest.approx(0.0, abs=1e-6)
    neg = traj.copy()
    neg[:, np.asarray(kt_ok.resp), np.asarray(kt_ok.row)] *= -1
    assert float(kernel_error(jnp.asarray(neg, jnp.float32), kt_ok)) == pytest.approx(2.0, abs=1e-6)
    # trajectories and window means come from one solve and agree with responses()
    nt = np.zeros(full_model.n_cells, np.int32)
    net, _ = build_rate_network(full_model, cfg, nt)
    params = init_rate_params(net, full_model, cfg)
    idx = jnp.asarray([full_model.index(s) for s in stim])
    x, mean = net.trajectories(params, idx)
    assert x.shape == (8, full_model.n_cells, len(stim))
    np.testing.assert_allclose(np.asarray(mean), np.asarray(net.responses(params, idx)), rtol=1e-6, atol=1e-7)
    g = jax.grad(lambda p: kernel_error(net.trajectories(p, idx)[0], kt))(params)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in g.values()) and float(jnp.abs(g["chem_gain"]).sum()) > 0
    with pytest.raises(ValueError, match="kernel_weight"):
        SynapsePolarityConfig.from_dict(dict(model="c302", kernel_weight=1.0))
    with pytest.raises(ValueError, match="kernel_weight"):
        SynapsePolarityConfig.from_dict(dict(model="rate", kernel_weight=-1.0))
    with pytest.raises(ValueError, match="window means or the kernels"):
        SynapsePolarityConfig.from_dict(dict(model="rate", window_weight=0.0))
    with pytest.raises(ValueError, match="window_weight applies"):
        SynapsePolarityConfig.from_dict(dict(model="c302", window_weight=0.5))

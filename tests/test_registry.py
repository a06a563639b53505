"""Component registry: default provenance, fitted entries, queries, files, table, figure and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

from owjax.neural.c302_data import load_c302_network  # noqa: E402
from owjax.fitting.leaves import leaf_catalogue, leaf_rows  # noqa: E402
from owjax.neural.network import NetworkModel  # noqa: E402
from owjax.fitting.params import ParameterSpace  # noqa: E402
from owjax.fitting.param_files import save_param_file  # noqa: E402
from owjax.fitting.registry import (  # noqa: E402
    SOURCES,
    Provenance,
    Registry,
    auto_fitted_provenance,
    main,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def osc():
    return NetworkModel.from_spec(load_c302_network("C1", "Oscillator"), jnp.float64)


def _n_values(model) -> int:
    return sum(len(leaf_rows(model, p)) for p in leaf_catalogue(model) if not p.startswith("stimuli."))


def test_default_registry_covers_every_value_with_c302_provenance(osc):
    reg = Registry.for_model(osc)
    assert sum(sum(d.values()) for d in reg.counts().values()) == _n_values(osc)
    g = reg.query(leaf="channels.g_max_nS", subsystem="neurons")
    assert {e.kind for e in g} == {"Leak", "k_slow", "k_fast", "ca_boyle"}
    ks = next(e for e in g if e.kind == "k_slow")
    assert ks.provenance.source == "hand_tuned"  # c302: BlindGuess
    assert "neuron_k_slow_cond_density = 3 mS_per_cm2 (BlindGuess)" in ks.provenance.reference
    assert ks.provenance.certainty == pytest.approx(0.1)
    assert "voltage clamp" in ks.provenance.replacement
    assert all(e.provenance.source == "measured" for e in reg.query(leaf="graded.weight"))
    assert all(e.provenance.source == "literature" for e in reg.query(leaf="gates"))
    assert reg.provenance_of("gaps.weight").source == "measured"


def test_fit_relabels_exactly_the_fitted_rows(osc):
    reg = Registry.for_model(osc)
    space = ParameterSpace(osc, {
        "g": {"leaf": "channels.g_max_nS", "select": {"channel": "k_slow"}, "groupby": "class"},
        "e": {"leaf": "channels.erev_mV", "select": {"channel": "Leak"}, "trainable": False, "init": -55.0},
    })
    prov = auto_fitted_provenance("unit_test", data="none", loss="none", run_dir="/tmp/x")
    fit = reg.with_fit(space, space.init_raw(), prov)
    assert sum(sum(d.values()) for d in fit.counts().values()) == _n_values(osc)
    assert fit.counts()["neurons"]["auto_fitted"] == 14  # k_slow on the 14 neurons
    e = fit.query(source="auto_fitted")[0]
    assert e.rows is not None and "AVBL/k_slow" in e.rows and len(e.groups) == 7
    for key in ("experiment", "data", "loss", "date", "git_commit"):
        assert key in e.provenance.details
    assert fit.provenance_of("channels.g_max_nS", "DA2/k_slow").source == "auto_fitted"
    assert fit.provenance_of("channels.g_max_nS", "DA2/Leak").source == "hand_tuned"
    assert fit.provenance_of("channels.erev_mV", "DA2/Leak").reference.startswith("set by experiment unit_test")
    # no default k_slow density entry is left for the neurons
    left = [x for x in fit.query(leaf="channels.g_max_nS", source="hand_tuned") if x.kind == "k_slow"]
    assert left == []


def test_provenance_validation():
    with pytest.raises(ValueError, match="unknown provenance source 'guess'"):
        Provenance("guess")
    with pytest.raises(ValueError, match=r"ml_predicted provenance needs details \['model', 'checkpoint'\]"):
        Provenance("ml_predicted", details={})
    with pytest.raises(ValueError, match="auto_fitted provenance needs details"):
        Provenance("auto_fitted", details={"experiment": "x"})
    p = Provenance("ml_predicted", "DD025 kinetics", details={"model": "esm2", "checkpoint": "ckpt.pt"},
                   replacement="voltage clamp")
    assert p.source in SOURCES


def test_registry_file_round_trip_table_figure_and_cli(osc, tmp_path):
    space = ParameterSpace(osc, {"g": {"leaf": "channels.g_max_nS", "groupby": "class"}})
    prov = auto_fitted_provenance("unit_test", data="none", loss="none")
    reg = Registry.for_model(osc).with_fit(space, space.init_raw(), prov)
    back = Registry.from_dict(json.loads(json.dumps(reg.to_dict())))
    assert back.counts() == reg.counts() and len(back) == len(reg)
    path = save_param_file(tmp_path / "params.json", osc, space, space.init_raw(), registry=reg.to_dict())
    assert Registry.from_param_file(path).counts() == reg.counts()
    table = reg.table()
    assert "fit:unit_test/g" in table and "replacement pathways" in table
    assert reg.table(markdown=True).startswith("| parameter |")
    reg.figure(tmp_path / "reg.png")
    assert (tmp_path / "reg.png").stat().st_size > 10_000
    # python -m owjax.registry PARAM_FILE --figure F (in-process and as a real subprocess)
    assert main([str(path), "--source", "auto_fitted", "--figure", str(tmp_path / "cli.png")]) == 0
    proc = subprocess.run([sys.executable, "-m", "owjax.registry", str(path), "--subsystem", "neurons"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "auto_fitted" in proc.stdout and "hand_tuned" in proc.stdout
    assert main([str(tmp_path / "nope.json")]) == 2


def test_default_registry_of_the_whole_model_includes_the_intestine(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for sub in ("neurons", "muscles", "synapses", "gap_junctions", "intestine"):
        assert sub in out
    from owjax.organs.intestine import IntestineOscillator

    reg = Registry.for_model(IntestineOscillator.from_yaml())
    src = {e.leaf: e.provenance.source for e in reg.entries}
    assert src["a2"] == "hand_tuned"  # FIT by hand to the 50 s target
    assert src["v_release"] == "literature"  # DD009
    assert np.isclose(sum(reg.counts()["intestine"].values()), sum(e.n_values for e in reg.entries))

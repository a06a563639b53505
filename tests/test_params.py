"""Parameter specs, bounds, transforms, grouping and parameter files (owjax.fitting.params, owjax.fitting.leaves)."""

from __future__ import annotations

import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

from owjax.neural.build import build_model, build_spec  # noqa: E402
from owjax.neural.c302_data import load_c302_network  # noqa: E402
from owjax.fitting.leaves import leaf_rows, neuron_class  # noqa: E402
from owjax.neural.network import NetworkModel  # noqa: E402
from owjax.fitting.param_files import apply_param_file, load_param_file, save_param_file  # noqa: E402
from owjax.fitting.params import (  # noqa: E402
    ParameterSpace,
    ParameterSpecError,
    forward_transform,
    inverse_transform,
)


@pytest.fixture(scope="module")
def osc():
    """c302's C1 Oscillator network (14 cells, 7 classes)."""
    return NetworkModel.from_spec(load_c302_network("C1", "Oscillator"), jnp.float64)


# ---------------------------------------------------------------------------- neuron classes
@pytest.mark.parametrize(
    "cell, cls",
    [("AVAL", "AVA"), ("AVL", "AVL"), ("PVR", "PVR"), ("RIR", "RIR"), ("SMDDL", "SMD"), ("SMDVR", "SMD"),
     ("IL1VR", "IL1"), ("IL2L", "IL2"), ("RMED", "RME"), ("RMDL", "RMD"), ("AVDL", "AVD"), ("RID", "RID"),
     ("DA9", "DA"), ("VD13", "VD"), ("AS11", "AS"), ("I2L", "I2"), ("MCR", "MC"), ("OLLL", "OLL"),
     ("MDL07", "MD"), ("MVR24", "MV"), ("DD1", "DD")],
)
def test_neuron_class_rule(cell, cls):
    assert neuron_class(cell) == cls


def test_neuron_classes_of_the_302_neurons_are_whites_118():
    spec = load_c302_network("C1", "Full")
    assert len({neuron_class(n) for n in spec.neuron_names}) == 118


# ---------------------------------------------------------------------------- transforms
@pytest.mark.parametrize(
    "transform, lo, hi, x",
    [("sigmoid", 0.0, 100.0, [1e-4, 3.0, 99.9]), ("softplus", 0.0, math.inf, [1e-3, 0.5, 40.0]),
     ("softplus", -math.inf, 80.0, [-90.0, 0.0, 79.0]), ("log", 0.01, math.inf, [0.02, 1.0, 1e4]),
     ("identity", -math.inf, math.inf, [-3.0, 0.0, 7.0])],
)
def test_transforms_round_trip(transform, lo, hi, x):
    u = inverse_transform(np.asarray(x), transform, lo, hi)
    back = np.asarray(forward_transform(jnp.asarray(u), transform, lo, hi))
    np.testing.assert_allclose(back, x, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("transform, lo, hi", [("sigmoid", 0.0, 100.0), ("softplus", 0.0, math.inf),
                                               ("log", 0.01, math.inf), ("softplus", -math.inf, 80.0)])
def test_any_unconstrained_value_lands_inside_the_bounds(transform, lo, hi):
    u = jnp.linspace(-30.0, 30.0, 61)
    x = np.asarray(forward_transform(u, transform, lo, hi))
    assert np.all(x >= lo) and np.all(x <= hi) and np.all(np.isfinite(x))


# ---------------------------------------------------------------------------- grouping and apply
def test_class_grouping_of_conductances_and_density_units(osc):
    space = ParameterSpace(osc, {"g": {"leaf": "channels.g_max_nS", "groupby": "class"}})
    b = space.block("g")
    assert b.n_groups == 7 * 4  # AVB DA DB DD VA VB VD × Leak k_slow k_fast ca_boyle
    assert "AVB/k_slow" in b.labels and "VD/ca_boyle" in b.labels
    assert b.unit == "mS_per_cm2" and (b.lower, b.upper) == (0.0, 100.0)  # DD017 default bounds
    np.testing.assert_allclose(b.default[b.labels.index("DA/k_slow")], 3.0, rtol=1e-12)  # c302: 3 mS/cm²
    # doubling the DA k_slow density doubles exactly the DA k_slow conductances (nS), nothing else
    vals = {"g": np.asarray(b.default).copy()}
    vals["g"][b.labels.index("DA/k_slow")] *= 2.0
    m2 = space.apply(osc, space.raw_from_values(vals))
    g0, g1 = np.asarray(osc.channels.g_max_nS), np.asarray(m2.channels.g_max_nS)
    changed = [n for n, a, c in zip(osc.channel_names, g0, g1) if not np.isclose(a, c, rtol=1e-12)]
    assert sorted(changed) == ["DA2/k_slow", "DA3/k_slow"]
    i = osc.channel_names.index("DA2/k_slow")
    area = float(osc.membranes.area_um2[osc.index("DA2")])
    np.testing.assert_allclose(g1[i], 6.0 * 0.01 * area, rtol=1e-12)


def test_connection_grouping_and_selection(osc):
    space = ParameterSpace(osc, {
        "exc": {"leaf": "graded.weight", "select": {"kind": "exc"}, "groupby": "connection", "bounds": [0, 50]},
        "inh": {"leaf": "graded.weight", "select": {"kind": "inh"}, "groupby": "global", "bounds": [0, 50]},
        "gap": {"leaf": "gaps.g_nS", "groupby": "global"},
        "avb_leak": {"leaf": "channels.g_max_nS", "select": {"cells": ["AVBL", "AVBR"], "channel": "Leak"},
                     "groupby": "cell"},
    })
    assert space.block("exc").n_groups == 25 and space.block("inh").labels == ("inh",)
    assert space.block("gap").transform == "softplus"  # (0, inf) default bounds
    assert space.block("avb_leak").labels == ("AVBL/Leak", "AVBR/Leak")
    assert space.n_trainable == 25 + 1 + 1 + 2


def test_gradient_reaches_the_unconstrained_parameters(osc):
    space = ParameterSpace(osc, {"g": {"leaf": "channels.g_max_nS", "groupby": "class", "transform": "sigmoid"}})
    raw = space.init_raw()

    def f(r):
        return jnp.sum(space.apply(osc, r).channels.g_max_nS)

    g = jax.grad(f)(raw)["g"]
    b = space.block("g")
    # d/du Σ g_nS = Σ_rows scale · dx/du, dx/du = x (1 − x/100) for the sigmoid on (0, 100)
    x = b.default
    scale_sum = np.array([np.sum(b.rows.scale[b.row_index][b.group_of_row == k]) for k in range(b.n_groups)])
    np.testing.assert_allclose(np.asarray(g), scale_sum * x * (1 - x / 100.0), rtol=1e-9)


def test_perturbed_init_is_seeded_and_within_range(osc):
    spec = {"g": {"leaf": "channels.g_max_nS", "groupby": "class", "init": {"perturb": [0.2, 0.5]}}}
    a, b, c = ParameterSpace(osc, spec, seed=0), ParameterSpace(osc, spec, seed=0), ParameterSpace(osc, spec, seed=1)
    ba = a.block("g")
    rel = np.abs(ba.init / ba.default - 1)
    assert np.all(rel >= 0.2 - 1e-12) and np.all(rel <= 0.5 + 1e-12)
    np.testing.assert_array_equal(ba.init, b.block("g").init)
    assert not np.allclose(ba.init, c.block("g").init)
    assert all(float(v) == 0.0 for v in a.penalties(a.init_raw()).values())


def test_fixed_blocks_set_values_without_being_trained(osc):
    space = ParameterSpace(osc, {
        "g": {"leaf": "channels.g_max_nS", "select": {"channel": "k_slow"}, "groupby": "global"},
        "erev": {"leaf": "channels.erev_mV", "select": {"channel": "Leak"}, "trainable": False, "init": -55.0},
    })
    assert [b.name for b in space.trainable] == ["g"]
    m = space.apply(osc, space.init_raw())
    leak = [i for i, n in enumerate(osc.channel_names) if n.endswith("/Leak")]
    np.testing.assert_allclose(np.asarray(m.channels.erev_mV)[leak], -55.0)


# ---------------------------------------------------------------------------- errors (before compiling)
@pytest.mark.parametrize(
    "spec, match",
    [
        ({"g": {"leaf": "channels.g_max_mS"}}, r"NetworkModel: unknown parameter 'channels.g_max_mS'.*Did you mean: channels.g_max_nS"),
        ({"g": {"leaf": "channels.g_max_nS", "grouby": "class"}}, r"unknown key\(s\) \['grouby'\]"),
        ({"g": {"leaf": "channels.g_max_nS", "groupby": "neuron"}}, r"unknown groupby 'neuron'"),
        ({"g": {"leaf": "channels.g_max_nS", "select": {"cells": ["AVBX"]}}}, r"unknown cell 'AVBX'.*AVBL"),
        ({"g": {"leaf": "channels.g_max_nS", "select": {"channel": "k_slo"}}}, r"unknown channel 'k_slo'.*k_slow"),
        ({"g": {"leaf": "channels.g_max_nS", "init": float("nan")}}, r"not a finite number"),
        ({"g": {"leaf": "channels.g_max_nS", "init": 150.0}}, r"init \(given\) outside the bounds \(0.0, 100.0\)"),
        ({"g": {"leaf": "channels.g_max_nS", "bounds": [0, 500]}}, r"outside the physical range"),
        ({"g": {"leaf": "channels.g_max_nS", "bounds": [0, float("nan")]}}, r"upper bound is NaN"),
        ({"g": {"leaf": "channels.g_max_nS", "bounds": [5, 1]}}, r"lower bound 5.0 must be < upper"),
        ({"g": {"leaf": "channels.g_max_nS", "transform": "identity"}}, r"transform 'identity' needs no bounds"),
        ({"g": {"leaf": "channels.erev_mV", "transform": "log"}}, r"transform 'log' needs a finite lower"),
        ({"g": {"leaf": "gates.scale_mV"}}, r"has no default bounds; give bounds"),
        ({"g": {"leaf": "graded.weight", "select": {"kind": "gap"}}}, r"unknown kind 'gap'"),
        ({"g": {"leaf": "channels.g_max_nS", "groupby": "connection"}}, r"groupby 'connection' needs a connection"),
        ({"g": {"leaf": "channels.g_max_nS", "penalty": {"l1": 1.0}}}, r"unknown penalty 'l1'"),
        ({"a": {"leaf": "channels.g_max_nS", "select": {"channel": "Leak"}},
          "b": {"leaf": "channels.g_max_nS", "select": {"cells": ["AVBL"]}}}, r"both set channels.g_max_nS rows"),
        ({}, r"empty"),
    ],
)
def test_bad_specs_raise_clear_errors(osc, spec, match):
    with pytest.raises(ParameterSpecError, match=match):
        ParameterSpace(osc, spec)


def test_default_outside_bounds_is_reported(osc):
    # c302's leak density 0.005 mS/cm² lies below these bounds
    with pytest.raises(ParameterSpecError, match="model default.*outside the bounds"):
        ParameterSpace(osc, {"g": {"leaf": "channels.g_max_nS", "select": {"channel": "Leak"}, "bounds": [0.01, 1]}})


# ---------------------------------------------------------------------------- parameter files
def test_param_file_round_trip_and_simulate_loading(osc, tmp_path):
    space = ParameterSpace(osc, {
        "g": {"leaf": "channels.g_max_nS", "groupby": "class", "init": {"perturb": [0.2, 0.5]}},
        "w": {"leaf": "graded.weight", "groupby": "connection", "bounds": [0, 100]},
    }, seed=3)
    raw = space.init_raw()
    fitted = space.apply(osc, raw)
    path = save_param_file(tmp_path / "params.json", osc, space, raw, registry=None, metadata={"note": "test"})
    doc = load_param_file(path)
    assert set(doc["groups"]) == {"g", "w"} and doc["model_kind"] == "network"
    # what `python -m owjax.simulate params=PATH` does: build_model(spec, dtype, params)
    spec = build_spec("C1", "Oscillator")
    model = build_model(spec, "float64", params=path)
    np.testing.assert_array_equal(np.asarray(model.channels.g_max_nS), np.asarray(fitted.channels.g_max_nS))
    np.testing.assert_array_equal(np.asarray(model.graded.weight), np.asarray(fitted.graded.weight))
    # a bigger network takes the rows it shares with the file (and warns about none missing here)
    full = NetworkModel.from_spec(load_c302_network("C1", "Full"), jnp.float64)
    f2 = apply_param_file(full, path)
    i = full.channel_names.index("AVBL/k_slow")
    j = osc.channel_names.index("AVBL/k_slow")
    assert float(f2.channels.g_max_nS[i]) == float(fitted.channels.g_max_nS[j])


def test_param_file_errors(osc, tmp_path):
    space = ParameterSpace(osc, {"g": {"leaf": "channels.g_max_nS", "groupby": "class"}})
    path = save_param_file(tmp_path / "p.json", osc, space, space.init_raw())
    doc = json.loads(path.read_text())
    doc["groups"]["g"]["values"][0] = 1e3  # outside (0, 100)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ParameterSpecError, match="outside its bounds"):
        apply_param_file(osc, bad)
    syns = NetworkModel.from_spec(load_c302_network("C1", "Syns"), jnp.float64)  # no cell in common
    with pytest.raises(ParameterSpecError, match="none of the .* rows"):
        apply_param_file(syns, path)
    with pytest.raises(FileNotFoundError):
        apply_param_file(osc, tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ParameterSpecError, match="not an owjax parameter file"):
        apply_param_file(osc, tmp_path / "x.json")


def test_intestine_leaves_have_schema_bounds():
    from owjax.organs.intestine import IntestineOscillator

    m = IntestineOscillator.from_yaml()
    rows = leaf_rows(m, "v_plc")
    assert rows.names[0] == "int1" and len(rows) == m.n_cells
    space = ParameterSpace(m, {"a2": {"leaf": "a2", "init": 0.03, "bounds": [0.001, 1.0]}})
    out = space.apply(m, space.init_raw())
    assert float(out.a2) == pytest.approx(0.03, rel=1e-12)
    with pytest.raises(ParameterSpecError, match="outside the physical range"):
        ParameterSpace(m, {"h": {"leaf": "alpha_plc", "bounds": [0.0, 2.0]}})  # schema: fraction in [0, 1]
    assert isinstance(eqx.filter(out, eqx.is_inexact_array), type(m))

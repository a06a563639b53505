"""Randi et al. 2023 signal-propagation atlas: reading, name mapping, pair selection (real data)."""

from __future__ import annotations

import numpy as np
import pytest

from owjax.reference.atlas import (
    STRAINS,
    atlas_path,
    atlas_to_model_name,
    load_atlas,
    map_atlas_names,
    normalize_neuron_name,
)


@pytest.fixture(scope="module")
def wt():
    return load_atlas("wt")


def test_file_is_in_the_wheel():
    p = atlas_path()
    assert p.name == "funatlas.h5" and p.exists()


@pytest.mark.parametrize(
    "raw, canon",
    [
        ("VB01", "VB1"), ("DA09", "DA9"), ("AS10", "AS10"), ("VA012", "VA12"), (" vb02 ", "VB2"),
        ("AWCON", "AWCR"), ("AWCOFF", "AWCL"), (b"AWCOF", "AWCL"),  # the HDF5 truncates AWCOFF to 5 bytes
        ("IL2DL", "IL2DL"), ("I1L", "I1L"), ("M2R", "M2R"), ("ALA", "ALA"),
    ],
)
def test_normalize_neuron_name(raw, canon):
    assert normalize_neuron_name(raw) == canon


def test_mapping_special_cases():
    model = ["AWCL", "AWCR", "VB01", "IL2DL", "CANL"]
    assert atlas_to_model_name("AWCOFF", model) == "AWCL"
    assert atlas_to_model_name("AWCON", model) == "AWCR"
    assert atlas_to_model_name("VB1", model) == "VB01"  # zero-padded on the model side too
    assert atlas_to_model_name("IL2DL", model) == "IL2DL"
    assert atlas_to_model_name("FOO", model) is None
    mapped, unmatched = map_atlas_names([b"AWCOF", "AWCON", "XYZ"], model)
    assert mapped == ["AWCL", "AWCR", None] and unmatched == ["XYZ"]
    with pytest.raises(ValueError, match="both map onto"):
        map_atlas_names(["VB1", "VB01"], model)


def test_wt_atlas_maps_onto_c302(wt):
    from owjax.neural.c302_data import load_c302_network

    neurons = load_c302_network("C1", "Full").neuron_names
    assert wt.n == 300 and wt.unmatched == ()
    assert set(wt.missing) == {"CANL", "CANR"}
    assert set(wt.names) <= set(neurons)
    assert wt.atlas_ids[wt.index("AWCL")] == "AWCOF" and wt.atlas_ids[wt.index("AWCR")] == "AWCON"
    assert wt.response.shape == wt.q.shape == wt.occ.shape == (300, 300)
    # NaN exactly where a pair was never observed
    off = ~np.eye(300, dtype=bool)
    assert np.array_equal(np.isfinite(wt.response) & off, (wt.occ > 0) & off & np.isfinite(wt.response))
    s = wt.summary()
    assert s["n_stimulated"] == 173 and s["n_significant_pairs_q05"] == 1150
    assert 0.1 < s["frac_significant_negative"] < 0.2


def test_pairs(wt):
    p = wt.pairs(q_max=0.05)
    assert len(p) == 1150
    assert np.all(p.q < 0.05) and np.all(np.isfinite(p.target)) and np.all(p.resp != p.stim)
    assert np.all(np.diff(p.stim) >= 0)  # grouped by stimulated neuron
    assert np.allclose(p.target, wt.response[p.resp, p.stim])
    assert len(wt.pairs(q_max=0.05, include_self=True)) > len(p)
    p3 = wt.pairs(q_max=None, min_occ=3, weighting="occ", clip=1.0)
    assert np.all(p3.occ >= 3) and np.array_equal(p3.weight, p3.occ.astype(float)) and np.abs(p3.target).max() <= 1.0
    sub = p.for_stimulated(["AVAL", "AVAR"])
    assert set(sub.stimulated) <= {"AVAL", "AVAR"} and len(sub) > 0
    only = wt.pairs(stimulated=["AVEL"], responding=["AVAL", "AVAR", "RIML"])
    assert set(wt.names[i] for i in only.resp) <= {"AVAL", "AVAR", "RIML"}
    with pytest.raises(ValueError):
        wt.pairs(weighting="bogus")


def test_restrict_and_errors(wt):
    sub = wt.restrict(["AVAL", "AVAR", "AVEL"])
    assert sub.names == ("AVAL", "AVAR", "AVEL")
    i, j = wt.index("AVAL"), wt.index("AVEL")
    assert np.isclose(sub.response[0, 2], wt.response[i, j], equal_nan=True)
    with pytest.raises(KeyError, match="AVAQ"):
        wt.index("AVAQ")
    with pytest.raises(ValueError, match="strain"):
        load_atlas("daf2")


def test_unc31_strain():
    a = load_atlas("unc31")
    assert a.strain == "unc31" and a.n == 300 and "unc31" in STRAINS
    assert 100 <= len(a.stimulated_neurons()) <= 120


def test_trials_average_to_the_atlas_means(wt):
    p = wt.pairs(q_max=0.05)
    tr = wt.trials(p.resp, p.stim)
    assert len(tr) == len(p)
    assert np.allclose([t.mean() for t in tr], p.target)  # dFF is the mean of dFF_all
    # occ1 counts every observation of the pair; dFF_all keeps the trials with a response value
    assert all(1 <= t.size <= o for t, o in zip(tr, p.occ))
    assert sum(t.size >= 2 for t in tr) == 989
    one = wt.trials(["AVAL"], ["AVEL"])[0]
    assert one.size > 1 and np.isclose(one.mean(), wt.response[wt.index("AVAL"), wt.index("AVEL")])
    assert wt.restrict(["AVAL", "AVEL"]).trials(["AVAL"], ["AVEL"])[0].size == wt.trials(["AVAL"], ["AVEL"])[0].size
    with pytest.raises(ValueError, match="same length"):
        wt.trials([0, 1], [2])

"""Tests for owjax.neural.connectome against the real cect data (and, with the reference extra, c302 itself)."""

from __future__ import annotations

import dataclasses
import random
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pytest

from owjax.neural.connectome import (
    READERS,
    C302Projection,
    ChemicalSynapse,
    Connectome,
    GapJunction,
    UnknownCellError,
    c302_projections,
    load_connectome,
    polarity,
    presynaptic_transmitters,
    projection_counts,
    wang2024_transmitters,
)

# c302 0.12.1 C1 Full network (DESIGN.md, and checked against c302's own output in the reference test).
C302_FULL_COUNTS = {
    ("neuron", "exc"): 2079,
    ("neuron", "inh"): 200,
    ("neuron", "gap"): 1084,
    ("muscle", "exc"): 428,
    ("muscle", "inh"): 124,
}

# cect 0.3.5: (neurons, muscles, chemical, gap, neuromuscular chemical, neuromuscular gap, extrasynaptic)
READER_SIZES = {
    "c302": (302, 95, 2279, 1084, 552, 0, 0),
    "Cook2019Herm": (302, 95, 3709, 2196, 956, 5, 0),
    "Varshney": (279, 0, 2194, 1031, 0, 0, 0),
    "White": (299, 0, 2266, 1132, 0, 0, 0),
    "Witvliet1": (161, 17, 675, 164, 78, 0, 0),
    "Witvliet2": (162, 21, 865, 240, 91, 0, 0),
    "Witvliet3": (162, 27, 887, 186, 100, 0, 0),
    "Witvliet4": (168, 26, 1011, 407, 111, 0, 0),
    "Witvliet5": (174, 28, 1324, 572, 148, 2, 0),
    "Witvliet6": (175, 32, 1315, 422, 169, 1, 0),
    "Witvliet7": (180, 32, 1944, 528, 223, 11, 0),
    "Witvliet8": (180, 32, 1933, 600, 216, 6, 0),
    "OpenWormUnified": (302, 95, 3543, 2196, 995, 5, 0),
    "Wang2024Herm": (302, 95, 3543, 0, 995, 0, 1952),
}


@pytest.fixture(scope="module")
def c302() -> Connectome:
    return load_connectome("c302")


def _as_key(p: C302Projection) -> tuple:
    return (p.pre, p.post, p.kind, p.target, p.weight, p.projection_id)


# ---------------------------------------------------------------------------------------------- loading


def test_c302_cells(c302: Connectome) -> None:
    assert len(c302.neurons) == 302
    assert list(c302.neurons) == sorted(c302.neurons)  # c302 sorts with list.sort()
    assert len(c302.muscles) == 95
    assert c302.muscles[0] == "MDL01" and c302.muscles[-1] == "MVR24"
    assert "MVL24" not in c302 and "MVL23" in c302
    assert {"MANAL", "MVULVA"} <= set(c302.dropped_muscle_targets)
    assert c302.cells == c302.neurons + c302.muscles
    assert c302.cell_kind("AVAL") == "neuron"
    assert c302.cell_kind("MDR07") == "body_wall_muscle"
    assert c302.index("ADAL") == 0
    assert c302.index("MDL01") == 302
    assert c302.reader == "c302" and c302.source == "cect.readers.SpreadsheetDataReader"


def test_known_entries(c302: Connectome) -> None:
    chem = {(s.pre, s.post): s for s in c302.chemical_synapses}
    assert chem[("ADAL", "AIBR")] == ChemicalSynapse("ADAL", "AIBR", 2.0, "Glutamate")
    gaps = {(g.pre, g.post): g for g in c302.gap_junctions}
    assert gaps[("ADAL", "ADAR")].count == 1.0
    # Entries are kept as listed: self gap junctions exist in the spreadsheet and c302 keeps them.
    assert {g.pre for g in c302.gap_junctions if g.pre == g.post} == {
        "M4",
        "M5",
        "RIBL",
        "RIBR",
        "VA8",
    }
    # No duplicate (pre, post, class) entries in the spreadsheet.
    assert (
        max(Counter((s.pre, s.post, s.transmitter) for s in c302.chemical_synapses).values()) == 1
    )


@pytest.mark.parametrize("reader", READERS)
def test_every_reader_loads(reader: str) -> None:
    con = load_connectome(reader)
    sizes = (
        len(con.neurons),
        len(con.muscles),
        len(con.chemical_synapses),
        len(con.gap_junctions),
        len(con.neuromuscular_synapses),
        len(con.neuromuscular_gap_junctions),
        len(con.extrasynaptic),
    )
    assert sizes == READER_SIZES[reader]
    assert list(con.neurons) == sorted(con.neurons)
    cells = set(con.cells)
    for s in con.chemical_synapses + con.gap_junctions + con.extrasynaptic:
        assert s.pre in con.neurons and s.post in con.neurons and s.count > 0
    for s in con.neuromuscular_synapses + con.neuromuscular_gap_junctions:
        assert s.pre in con.neurons and con.cell_kind(s.post) == "body_wall_muscle"
    assert all(isinstance(n, str) for n in cells)
    assert all("_GJ" not in s.transmitter for s in con.chemical_synapses)


def test_load_is_cached_and_case_insensitive() -> None:
    assert load_connectome("c302") is load_connectome("C302")
    assert load_connectome("cect.readers.SpreadsheetDataReader") is load_connectome()
    assert load_connectome("white_whole").reader == "White"


def test_unknown_reader_lists_valid_names() -> None:
    with pytest.raises(ValueError) as err:
        load_connectome("Cook")
    msg = str(err.value)
    assert "'Cook'" in msg and "Cook2019Herm" in msg
    for name in READERS:
        assert name in msg


def test_connectome_is_immutable(c302: Connectome) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        c302.neurons = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        c302.chemical_synapses[0].count = 3.0  # type: ignore[misc]
    assert isinstance(c302.chemical_synapses, tuple)
    assert "neurons=302" in repr(c302)


def test_constructor_validates_endpoints() -> None:
    with pytest.raises(ValueError, match="ZZZ"):
        Connectome("t", ("A", "B"), (), (ChemicalSynapse("A", "ZZZ", 1.0, "GABA"),), (), ())
    with pytest.raises(ValueError, match="duplicate"):
        Connectome("t", ("A", "A"), (), (), (), ())
    with pytest.raises(ValueError, match="count"):
        Connectome("t", ("A", "B"), (), (), (GapJunction("A", "B", float("nan")),), ())


# ------------------------------------------------------------------------------------------ names


def test_unknown_cell_error(c302: Connectome) -> None:
    with pytest.raises(KeyError) as err:
        c302.index("AVAX")
    e = err.value
    assert isinstance(e, UnknownCellError)
    msg = str(e)
    assert "'AVAX'" in msg and "397 valid names" in msg and "AVAL" in msg and "AVAR" in msg
    with pytest.raises(UnknownCellError, match="AVAL"):
        c302.cell_kind("aval")  # case-insensitive suggestion
    with pytest.raises(UnknownCellError):
        c302.subset(["AVAL", "NOPE"])
    with pytest.raises(UnknownCellError):
        c302.chemical_matrix(["AVAL", "NOPE"])


def test_subset_matches_brute_force(c302: Connectome) -> None:
    rng = random.Random(0)
    keep = set(rng.sample(c302.neurons, 120)) | set(rng.sample(c302.muscles, 30))
    sub = c302.subset(keep)
    assert set(sub.cells) == keep
    assert list(sub.neurons) == [n for n in c302.neurons if n in keep]
    for name in ("chemical_synapses", "gap_junctions", "neuromuscular_synapses"):
        expected = [e for e in getattr(c302, name) if e.pre in keep and e.post in keep]
        assert list(getattr(sub, name)) == expected
    assert len(sub.chemical_synapses) < len(c302.chemical_synapses)


# --------------------------------------------------------------------------------------- matrices


def test_chemical_matrix(c302: Connectome) -> None:
    m = c302.chemical_matrix()
    assert m.shape == (302, 302) and m.dtype == np.float64
    assert m.sum() == sum(s.count for s in c302.chemical_synapses)
    i, j = c302.index("ADAL"), c302.index("AIBR")
    assert m[i, j] == 2.0
    full = c302.chemical_matrix(c302.cells)
    assert full.sum() == sum(s.count for s in c302.chemical_synapses + c302.neuromuscular_synapses)
    assert full[:, 302:].sum() == sum(s.count for s in c302.neuromuscular_synapses)
    assert full[302:, :].sum() == 0  # muscles are never presynaptic
    exc, inh = c302.chemical_matrix(kind="exc"), c302.chemical_matrix(kind="inh")
    np.testing.assert_array_equal(exc + inh, m)
    assert inh.sum() == sum(s.count for s in c302.chemical_synapses if "GABA" in s.transmitter)
    order = ["AVBL", "AVAL", "DD1"]
    sub = c302.chemical_matrix(order)
    for a, pre in enumerate(order):
        for b, post in enumerate(order):
            expected = sum(
                s.count for s in c302.chemical_synapses if (s.pre, s.post) == (pre, post)
            )
            assert sub[a, b] == expected
    with pytest.raises(ValueError):
        c302.chemical_matrix(kind="gap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="more than once"):
        c302.chemical_matrix(["AVAL", "AVAL"])


def test_gap_matrix(c302: Connectome) -> None:
    d = c302.gap_matrix()
    assert d.sum() == sum(g.count for g in c302.gap_junctions)
    assert not np.array_equal(d, d.T)  # some entries are listed in one direction only
    s = c302.gap_matrix(symmetric=True)
    np.testing.assert_array_equal(s, s.T)
    assert np.all(np.diag(s) == 0)
    non_self = sum(g.count for g in c302.gap_junctions if g.pre != g.post)
    assert s.sum() == 2 * non_self
    i, j = c302.index("ADAL"), c302.index("ADAR")
    assert s[i, j] == d[i, j] + d[j, i] == 2.0  # listed both ways: c302 builds two projections


# --------------------------------------------------------------------------------------- polarity


def test_c302_polarity_rule() -> None:
    assert polarity(ChemicalSynapse("A", "B", 1, "GABA")).kind == "inh"
    assert polarity(ChemicalSynapse("A", "B", 1, "Serotonin_GABA")).kind == "inh"  # substring test
    assert polarity(ChemicalSynapse("A", "B", 1, "Generic_GJ")).kind == "gap"
    assert polarity(ChemicalSynapse("A", "B", 1, "Glutamate")).kind == "exc"
    assert polarity(ChemicalSynapse("A", "B", 1, "Serotonin_Acetylcholine")).kind == "exc"
    assert polarity(ChemicalSynapse("A", "B", 1, "FMRFamide")).kind == "exc"
    assert polarity(ChemicalSynapse("A", "B", 1, "Generic_CS")).kind == "exc"
    # c302 checks "_GJ" after "GABA": it wins.
    assert polarity(ChemicalSynapse("A", "B", 1, "GABA_GJ")).kind == "gap"
    assert polarity(GapJunction("A", "B", 1)).kind == "gap"
    got = polarity(ChemicalSynapse("A", "B", 1, "GABA"))
    assert (got.rule, got.identity, got.ambiguous, got.unknown) == ("c302", "GABA", False, False)
    with pytest.raises(ValueError, match="rule"):
        polarity(ChemicalSynapse("A", "B", 1, "GABA"), rule="dale")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        polarity(("A", "B", 1, "GABA"))  # type: ignore[arg-type]


def test_presynaptic_transmitters(c302: Connectome) -> None:
    table = presynaptic_transmitters(c302)
    assert set(table) == set(c302.neurons)
    assert table["DD1"] == "GABA"
    assert table["AVAL"] == "Acetylcholine"
    assert table["AIBL"] == "Glutamate"
    assert table["SMDDL"] == "Acetylcholine+GABA"
    assert table["CEPDL"] == "Dopamine"
    assert presynaptic_transmitters(["VD3"]) == {"VD3": "GABA"}
    assert wang2024_transmitters()["SMDDL"] == ("Acetylcholine", "GABA")
    assert sum(v == "GABA" for v in table.values()) == 30
    with pytest.raises(UnknownCellError, match="DD1"):
        presynaptic_transmitters(["DD01"])


def test_transmitter_polarity_rule() -> None:
    def pol(pre: str, **kw):
        return polarity(ChemicalSynapse(pre, "AVAL", 1, "Generic_CS"), "transmitter", **kw)

    assert pol("DD1").kind == "inh" and not pol("DD1").ambiguous
    assert pol("AVAR").kind == "exc" and not pol("AVAR").ambiguous
    glu = pol("AIBL")
    assert (glu.kind, glu.ambiguous, glu.unknown, glu.identity) == ("exc", True, False, "Glutamate")
    assert pol("AIBL", glutamate="inh").kind == "inh"
    smd = pol("SMDDL")  # ACh + GABA co-transmission: ACh wins, flagged
    assert (smd.kind, smd.ambiguous) == ("exc", True)
    cep = pol("CEPDL")  # dopamine only: no fast transmitter
    assert (cep.kind, cep.unknown) == ("exc", True)
    rid = pol("RID")
    assert rid.unknown and rid.identity == "Unknown_Orphan_Neurotransmitter"
    custom = polarity(
        ChemicalSynapse("X", "Y", 1, "Glutamate"), "transmitter", transmitters={"X": ("GABA",)}
    )
    assert custom.kind == "inh"
    assert polarity(GapJunction("DD1", "AVAL", 1), "transmitter").kind == "gap"
    with pytest.raises(UnknownCellError):
        polarity(ChemicalSynapse("X", "Y", 1, "GABA"), "transmitter")
    with pytest.raises(ValueError, match="glutamate"):
        pol("AIBL", glutamate="maybe")


# ------------------------------------------------------------------------------------ projections


def test_c302_full_projection_counts(c302: Connectome) -> None:
    projs = c302_projections(c302)
    assert projection_counts(projs) == C302_FULL_COUNTS
    # Every inhibitory projection is a GABA class, every GABA class is inhibitory.
    assert all(("GABA" in p.synclass) == (p.kind == "inh") for p in projs)
    # One projection per listed entry: nothing merged, self connections kept.
    assert len(projs) == len(c302.chemical_synapses) + len(c302.gap_junctions) + len(
        c302.neuromuscular_synapses
    )
    assert len({p.projection_id for p in projs}) == len(projs)
    assert sum(p.pre == p.post for p in projs) == 5
    by_id = {p.projection_id: p for p in projs}
    assert by_id["NC_ADAL_AIBR_Glutamate"] == C302Projection(
        "ADAL", "AIBR", "exc", "neuron", 2.0, "Glutamate"
    )
    assert by_id["NC_ADAL_ADAR_Generic_GJ"].kind == "gap"


def test_c302_projections_for_cell_subsets(c302: Connectome) -> None:
    cells = ["AVAL", "AVAR", "AVBL", "AVBR", "DD1", "VA8", "DA1"]
    projs = c302_projections(c302, cells, include_muscles=False)
    expected = [
        s for s in c302.chemical_synapses + c302.gap_junctions if s.pre in cells and s.post in cells
    ]
    assert len(projs) == len(expected) > 0
    assert all(p.pre in cells and p.post in cells and p.target == "neuron" for p in projs)
    assert ("VA8", "VA8", "gap") in {(p.pre, p.post, p.kind) for p in projs}

    muscles = ["MDL07", "MVL07"]
    with_m = c302_projections(c302, cells, include_muscles=muscles)
    nm = [p for p in with_m if p.target == "muscle"]
    assert nm == [
        C302Projection(s.pre, s.post, polarity(s).kind, "muscle", s.count, s.transmitter)
        for s in c302.neuromuscular_synapses
        if s.pre in cells and s.post in muscles
    ]
    assert {p.pre for p in nm} <= set(cells) and nm  # DD1 / DA1 innervate these muscles
    assert any(p.kind == "inh" for p in nm)
    # All muscles but no neurons: nothing (neuron->muscle needs the neuron included).
    assert c302_projections(c302, [], include_muscles=True) == []


def test_c302_projection_argument_errors(c302: Connectome) -> None:
    with pytest.raises(ValueError, match="include_muscles"):
        c302_projections(c302, ["AVAL", "MDL01"])
    with pytest.raises(ValueError, match="known muscles"):
        c302_projections(c302, ["AVAL"], include_muscles=["AVAR"])
    with pytest.raises(UnknownCellError):
        c302_projections(c302, ["AVAL"], include_muscles=["MVL24"])
    with pytest.raises(UnknownCellError):
        c302_projections(c302, ["AVA"])


def test_power_scaling_and_transmitter_rule(c302: Connectome) -> None:
    ones = c302_projections(c302, power_scaling=0.0)
    assert {p.weight for p in ones} == {1.0}
    assert len(ones) == sum(C302_FULL_COUNTS.values())
    tr = c302_projections(c302, rule="transmitter")
    counts = projection_counts(tr)
    assert counts[("neuron", "gap")] == 1084
    assert counts[("neuron", "inh")] == 127 and counts[("muscle", "inh")] == 114
    table = wang2024_transmitters()
    for p in tr:
        if p.kind == "inh":
            assert "GABA" in table[p.pre] and "Acetylcholine" not in table[p.pre]
    # The legacy spreadsheet calls DVA's synapses GABA; the Wang atlas says ACh + glutamate.
    assert {p.kind for p in c302_projections(c302, ["DVA", "AVBL", "AVBR", "PVCL", "PVCR"])} >= {
        "inh"
    }
    assert "inh" not in {
        p.kind
        for p in c302_projections(c302, ["DVA", "AVBL", "AVBR", "PVCL", "PVCR"], rule="transmitter")
    }


def test_duplicate_pairs_are_not_merged() -> None:
    # OpenWormUnified lists a synapse once per transmitter of the presynaptic neuron (full count each).
    ow = load_connectome("OpenWormUnified")
    entries = [s for s in ow.chemical_synapses if (s.pre, s.post) == ("AFDL", "AIYL")]
    assert sorted(s.transmitter for s in entries) == ["Acetylcholine", "Glutamate"]
    projs = [
        p
        for p in c302_projections(ow, ["AFDL", "AIYL"], False)
        if (p.pre, p.post) == ("AFDL", "AIYL") and p.kind != "gap"
    ]
    assert sorted((p.synclass, p.weight) for p in projs) == [
        ("Acetylcholine", 25.0),
        ("Glutamate", 25.0),
    ]
    assert ow.chemical_matrix(["AFDL", "AIYL"])[0, 1] == 50.0
    # Dopamine-only neurons lose their anatomical synapses in cect's Wang-based readers.
    assert not [s for s in ow.chemical_synapses if s.pre == "CEPDL"]
    assert [s for s in load_connectome("Cook2019Herm").chemical_synapses if s.pre == "CEPDL"]


# ------------------------------------------------------------------------------ c302 reference


def _c302_network_projections(nml_file) -> list[tuple]:
    root = ET.parse(nml_file).getroot()
    out = []
    for el in root.iter():
        tag = el.tag.split("}")[-1]
        if tag == "projection":
            raise AssertionError("unexpected spiking projection in a C1 network")
        if tag not in ("continuousProjection", "electricalProjection"):
            continue
        (inst,) = list(el)
        syn = inst.get("postComponent") if tag == "continuousProjection" else inst.get("synapse")
        target = "muscle" if syn.startswith("neuron_to_muscle") else "neuron"
        assert syn.startswith(("neuron_to_neuron", "neuron_to_muscle")), syn
        kind = "gap" if tag == "electricalProjection" else ("inh" if "_inh_" in syn else "exc")
        assert tag != "electricalProjection" or "_elec_" in syn
        out.append(
            (
                el.get("presynapticPopulation"),
                el.get("postsynapticPopulation"),
                kind,
                target,
                float(inst.get("weight")),
                el.get("id"),
            )
        )
    return out


@pytest.mark.reference
def test_matches_c302_generated_network(tmp_path, monkeypatch, c302: Connectome) -> None:
    pytest.importorskip("c302")
    import c302 as c302_pkg
    import c302.c302_Full as full

    monkeypatch.chdir(tmp_path)
    full.setup(
        "C1", generate=True, duration=100, dt=0.05, target_directory=str(tmp_path), verbose=False
    )
    theirs = Counter(_c302_network_projections(tmp_path / "c302_C1_Full.net.nml"))
    ours = Counter(_as_key(p) for p in c302_projections(c302))
    assert sum(theirs.values()) == sum(C302_FULL_COUNTS.values())
    assert ours == theirs

    names, _ = c302_pkg.get_cell_names_and_connection(c302_pkg.DEFAULT_DATA_READER)
    assert tuple(names) == c302.neurons
    _, muscles, _ = c302_pkg.get_cell_muscle_names_and_connection(c302_pkg.DEFAULT_DATA_READER)
    assert tuple(muscles) == c302.muscles

"""owjax.reference.compare on synthetic traces whose errors are known exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from owjax.reference.compare import compare_traces, main, match_spikes
from owjax.traces import Traces, write_traces

DT = 0.05
T = np.arange(0, 200 + DT / 2, DT)


def spike_train(times, t=T, base=-50.0, height=80.0, width=0.4):
    v = np.full_like(t, base)
    for ts in times:
        v += height * np.exp(-(((t - ts) / width) ** 2))
    return v


def graded(t=T):
    return -40.0 + 10.0 * np.sin(2 * np.pi * t / 100.0)  # range 20 mV


def make(v_rows: dict, ca_rows: dict | None = None, t=T, muscles: dict | None = None) -> Traces:
    names = list(v_rows)
    ca_rows = ca_rows or {n: 1e-7 * (1 + 0.5 * np.cos(t / 30.0)) for n in names}
    pops = {"neurons": dict(names=np.array(names), V=np.stack([v_rows[n] for n in names]),
                            Ca=np.stack([ca_rows[n] for n in names]))}
    if muscles:
        mn = list(muscles)
        pops["muscles"] = dict(names=np.array(mn), V=np.stack([muscles[n] for n in mn]),
                               Ca=np.stack([np.full_like(t, 2e-7) for _ in mn]))
    return Traces(t_ms=t, populations=pops, attrs=dict(simulator="synthetic"))


def test_identical_traces_pass_with_zero_error():
    tr = make({"G": graded(), "S": spike_train([20, 60, 110])}, muscles={"MDL01": graded()})
    r = compare_traces(tr, tr)
    s = r["summary"]
    assert s["pass"] and s["n_fail"] == 0 and s["n_cells"] == 3 and s["n_spiking"] == 1
    assert s["V_max_abs"] == 0 and s["Ca_max_abs"] == 0 and s["first_divergence_ms"] is None
    assert r["cells"]["S"]["spikes"]["n_a"] == 3 and r["cells"]["S"]["spikes"]["max_dt_ms"] == 0


def test_pointwise_errors_relative_to_range_and_first_divergence():
    b = make({"G": graded()})
    va = graded().copy()
    va[T >= 50] += 0.5  # 0.5 mV = 2.5 % of the 20 mV range, from t = 50 ms on
    r = compare_traces(make({"G": va}), b)
    c = r["cells"]["G"]["V"]
    assert c["max_abs"] == pytest.approx(0.5)
    assert c["range_ref"] == pytest.approx(20.0, rel=1e-6)
    assert c["max_rel"] == pytest.approx(0.025, rel=1e-6)
    assert c["first_divergence_ms"] == pytest.approx(50.0)
    n_bad = np.sum(T >= 50)
    assert c["rms_abs"] == pytest.approx(0.5 * np.sqrt(n_bad / len(T)))
    assert not r["summary"]["pass"] and r["summary"]["failing"] == ["G"]
    # within tolerance: 0.1 mV = 0.5 % of the range
    va2 = graded() + 0.1
    r2 = compare_traces(make({"G": va2}), b)
    assert r2["summary"]["pass"] and r2["cells"]["G"]["V"]["first_divergence_ms"] is None
    assert r2["cells"]["G"]["V"]["max_rel"] == pytest.approx(0.005, rel=1e-6)


def test_reference_interpolated_onto_a_grid():
    fine = np.arange(0, 200 + 0.005 / 2, 0.005)
    b = make({"L": -60 + 0.1 * fine}, {"L": 1e-8 * fine}, t=fine)  # linear: interpolation is exact
    a = make({"L": -60 + 0.1 * T}, {"L": 1e-8 * T})
    r = compare_traces(a, b)
    assert r["cells"]["L"]["V"]["max_abs"] < 1e-9 and r["cells"]["L"]["Ca"]["max_abs"] < 1e-20
    assert r["summary"]["pass"]


def test_floor_guards_flat_traces():
    flat = np.full_like(T, -45.0)
    r = compare_traces(make({"F": flat + 0.005}), make({"F": flat}))
    c = r["cells"]["F"]["V"]
    assert c["range_ref"] == 0.0 and c["scale"] == 1.0  # 1 mV floor for V
    assert c["max_rel"] == pytest.approx(0.005) and r["summary"]["pass"]
    r = compare_traces(make({"F": flat + 0.02}), make({"F": flat}))
    assert not r["summary"]["pass"]
    # a custom floor
    r = compare_traces(make({"F": flat + 0.02}), make({"F": flat}), floor_abs={"V": 5.0})
    assert r["summary"]["pass"]


def test_ca_relative_error_and_relative_floor():
    ca_b = 1e-7 + 1e-8 * np.sin(T / 10.0)  # range 2e-8 mM
    ca_a = ca_b + 1e-10  # 0.5 % of the range
    r = compare_traces(make({"G": graded()}, {"G": ca_a}), make({"G": graded()}, {"G": ca_b}))
    assert r["cells"]["G"]["Ca"]["max_rel"] == pytest.approx(0.005, rel=1e-4)
    assert r["summary"]["pass"]
    # a quiet cell next to an active one: its scale is at least 1e-3 of the largest Ca range
    quiet = np.full_like(T, 1e-11)
    r = compare_traces(make({"G": graded(), "Q": graded()}, {"G": ca_b, "Q": quiet + 1e-12}),
                       make({"G": graded(), "Q": graded()}, {"G": ca_b, "Q": quiet}))
    q = r["cells"]["Q"]["Ca"]
    assert q["scale"] == pytest.approx(2e-11, rel=1e-3)
    assert q["max_rel"] == pytest.approx(0.05, rel=1e-3) and not r["cells"]["Q"]["pass"]


def test_spike_time_shift_within_and_beyond_tolerance():
    times = [20.0, 60.0, 110.0, 150.0]
    b = make({"S": spike_train(times)})
    r = compare_traces(make({"S": spike_train([t + 0.2 for t in times])}), b)
    s = r["cells"]["S"]["spikes"]
    assert s["n_a"] == s["n_b"] == s["n_matched"] == 4
    assert s["max_dt_ms"] == pytest.approx(0.2, abs=1e-9) and s["mean_dt_ms"] == pytest.approx(0.2, abs=1e-9)
    assert s["max_isi_rel"] == pytest.approx(0.0, abs=1e-9)
    assert r["cells"]["S"]["spiking"] and r["cells"]["S"]["pass"]
    assert r["cells"]["S"]["V"]["judged"] is False  # a spiking cell's V is judged by its spikes
    r = compare_traces(make({"S": spike_train([t + 1.0 for t in times])}), b)
    s = r["cells"]["S"]["spikes"]
    assert s["max_dt_ms"] == pytest.approx(1.0, abs=1e-9) and not s["ok"]
    assert s["first_divergence_ms"] == pytest.approx(20.0, abs=0.5)


def test_isi_error_and_count_mismatch():
    times = [20.0, 60.0, 110.0, 150.0]
    b = make({"S": spike_train(times)})
    shifted = [20.0, 60.3, 110.0, 150.0]  # spike within 0.5 ms, but ISI 40.3/40 → 0.75 %, 49.7/50 → 0.6 %
    s = compare_traces(make({"S": spike_train(shifted)}), b)["cells"]["S"]["spikes"]
    assert s["max_dt_ms"] == pytest.approx(0.3, abs=1e-9)
    assert s["max_isi_rel"] == pytest.approx(0.3 / 40.0, rel=1e-6) and s["ok"]
    shifted = [20.0, 60.45, 110.0, 150.0]  # 0.45/40 = 1.1 % > 1 %
    s = compare_traces(make({"S": spike_train(shifted)}), b)["cells"]["S"]["spikes"]
    assert s["max_isi_rel"] == pytest.approx(0.45 / 40.0, rel=1e-6) and not s["ok"]
    assert s["first_divergence_ms"] == pytest.approx(60.0, abs=0.5)
    r = compare_traces(make({"S": spike_train(times + [180.0])}), b)
    s = r["cells"]["S"]["spikes"]
    assert (s["n_a"], s["n_b"], s["n_matched"]) == (5, 4, 4) and not s["ok"]
    assert s["first_divergence_ms"] == pytest.approx(180.0, abs=0.5)
    assert r["summary"]["spike_count_mismatches"] == 1
    # a cell that spikes only in the reference is a spiking cell too
    r = compare_traces(make({"S": np.full_like(T, -50.0)}), b)
    assert r["cells"]["S"]["spiking"] and r["cells"]["S"]["spikes"]["n_a"] == 0 and not r["summary"]["pass"]


def test_match_spikes_nearest_one_to_one():
    assert match_spikes([1.0, 10.0, 20.2], [1.1, 20.0, 30.0]) == [(0, 0), (2, 1)]
    assert match_spikes([], [1.0]) == []
    # never pairs across more than half the shortest interval
    assert match_spikes([5.0], [1.0, 3.0]) == []


def test_pointwise_until_then_statistics():
    tb = [20, 60, 110, 150, 170, 190]
    ta = [20.1, 60.1, 110.1, 150.0, 175.0, 185.0, 195.0]  # diverges after 130 ms
    r = compare_traces(make({"S": spike_train(ta)}), make({"S": spike_train(tb)}), pointwise_until_ms=130.0)
    c = r["cells"]["S"]
    assert c["pass"] and c["spikes"]["n_a"] == c["spikes"]["n_b"] == 3
    st = c["stats"]
    assert (st["n_a"], st["n_b"]) == (4, 3)
    assert st["rate_rel_diff"] == pytest.approx(1 / 3, rel=1e-3)
    assert 0 <= st["ks_isi"] <= 1
    assert r["summary"]["stats_spike_count_a"] == 4 and r["summary"]["stats_after_ms"] == 130.0


def test_no_common_cells_or_window_raise():
    with pytest.raises(ValueError, match="no cell in common"):
        compare_traces(make({"A": graded()}), make({"B": graded()}))
    late = make({"A": graded()}, t=T + 1000.0)
    with pytest.raises(ValueError, match="time window"):
        compare_traces(make({"A": graded()}), late)


def test_cli_exit_status_json_and_figure(tmp_path):
    b = make({"G": graded(), "S": spike_train([20, 60])})
    good = make({"G": graded() + 0.05, "S": spike_train([20.1, 60.1])})
    bad = make({"G": graded() + 1.0, "S": spike_train([20.1, 60.1])})
    pb, pg, pbad = (write_traces(tmp_path / f"{n}.h5", x) for n, x in (("b", b), ("good", good), ("bad", bad)))
    assert main([str(pg), str(pb), "--json", str(tmp_path / "r.json"), "--figure", str(tmp_path / "f.png")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["summary"]["pass"] and (tmp_path / "f.png").stat().st_size > 1000
    assert main([str(pbad), str(pb)]) == 1
    assert main([str(pbad), str(pb), "--tol-rel", "0.06"]) == 0
    assert main([str(pg), str(tmp_path / "missing.h5")]) == 2


def test_traces_without_ca_and_extra_cells():
    v = {"S": spike_train([20, 60]), "G": graded()}
    a = Traces(T, {"neurons": dict(names=np.array(["S", "G", "X"]), V=np.stack([v["S"], v["G"], graded()]))})
    b = Traces(T, {"neurons": dict(names=np.array(["S", "G"]), V=np.stack([v["S"], v["G"]]))})
    r = compare_traces(a, b)
    assert r["summary"]["pass"] and r["summary"]["n_cells"] == 2 and r["summary"]["only_in_a"] == ["X"]
    assert "Ca" not in r["cells"]["G"]
    json.dumps(r)  # JSON-ready
    with pytest.raises(KeyError, match="not in both"):
        compare_traces(a, b, cells=["X"])

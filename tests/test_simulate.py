"""``python -m owjax.simulate`` end to end, and the captured-c302 regeneration check."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def simulate(tmp_path, *overrides, check=True):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "owjax.simulate", f"hydra.run.dir={out}", "progress=false", *overrides],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc


def test_default_full_network_writes_traces(tmp_path):
    out, proc = simulate(tmp_path, "duration_ms=200")
    with h5py.File(out / "traces.h5") as f:
        assert f["neurons/V"].shape == (302, 401)
        assert f["muscles/V"].shape == (95, 401)
        assert f["muscles/activation"].shape == (95, 401)
        assert f["neurons/names"].shape == (302,)
        for k in ("neurons/V", "neurons/Ca", "muscles/V", "muscles/Ca"):
            assert np.isfinite(f[k][()]).all()
        assert f.attrs["simulator"] == "owjax" and f.attrs["model"] == "c302_C1"
        np.testing.assert_allclose(f["t"][()][[0, -1]], [0.0, 200.0])
    s = json.loads((out / "summary.json").read_text())
    assert s["counts"]["neuron_to_neuron_exc"] == 2079
    assert s["metrics"]["all_finite"] and s["solver_stats"]["num_steps"] > 0
    assert (out / "overview.png").stat().st_size > 10_000
    assert "c302_C1_Full" in proc.stdout


def test_c2_muscles_and_c0_iclamp(tmp_path):
    out, _ = simulate(tmp_path, "model=c302_C2", "network=muscles", "duration_ms=100")
    with h5py.File(out / "traces.h5") as f:
        assert f["muscles/V"].shape[0] == 95 and f["neurons/V"].shape[0] == 134
    out2, _ = simulate(tmp_path / "b", "model=c302_C0", "network=iclamp", "duration_ms=300")
    s = json.loads((out2 / "summary.json").read_text())
    assert s["parameter_set"] == "C0" and s["counts"]["inputs"] == 18


def test_custom_cells_and_pulses(tmp_path):
    out, _ = simulate(tmp_path, "network=custom", "network.cells=[AVBL,AVBR,DB1]", "stimulus=pulses",
                      "stimulus.pulses=[{cell: AVBL, delay_ms: 10, duration_ms: 50, amplitude_pA: 4}]",
                      "duration_ms=100")
    with h5py.File(out / "traces.h5") as f:
        assert list(f["neurons/names"].asstr()[()]) == ["AVBL", "AVBR", "DB1"]


def test_misspelt_model_is_a_clear_error(tmp_path):
    _, proc = simulate(tmp_path, "model=c302_C9", check=False)
    assert proc.returncode != 0
    assert "c302_C9" in proc.stderr and "c302_C1" in proc.stderr  # Hydra lists the valid options


def test_misspelt_cell_is_a_clear_error(tmp_path):
    _, proc = simulate(tmp_path, "network=custom", "network.cells=[AVBL,AVBX]", check=False)
    assert proc.returncode == 2
    assert "AVBX" in proc.stderr and "Did you mean" in proc.stderr


def test_unsupported_solver_is_a_clear_error(tmp_path):
    _, proc = simulate(tmp_path, "solver.method=rk99", "duration_ms=10", check=False)
    assert proc.returncode == 2 and "rk99" in proc.stderr


@pytest.mark.reference
def test_captured_c302_files_regenerate_unchanged(tmp_path):
    pytest.importorskip("c302")
    from owjax.neural.c302_data import DATA_DIR, capture

    capture(tmp_path)
    ours = sorted(p.relative_to(DATA_DIR) for p in DATA_DIR.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert ours == theirs
    for rel in ours:
        a, b = (DATA_DIR / rel).read_bytes(), (tmp_path / rel).read_bytes()
        if rel.suffix == ".gz":
            a, b = gzip.decompress(a), gzip.decompress(b)
        assert a == b, f"{rel} differs from what c302 generates now"


def test_command_line_mistakes_stop_with_one_clear_line(tmp_path):
    """Unknown scenarios, fitting experiments given to simulate, simulate scenarios given to fit, and
    settings no code reads are refused before anything runs, with the valid choices named."""
    cases = [
        (["owjax.simulate", "+scenario=nope"], "scenario"),
        (["owjax.fit", "+experiment=worm"], "owjax.simulate +scenario=worm"),
        (["owjax.simulate", "+nonsense=1", "duration_ms=1", "figures=false"], "nonsense"),
        (["owjax.simulate", "duration_ms=abc"], "duration_ms"),
    ]
    for argv, expected in cases:
        proc = subprocess.run([sys.executable, "-m", *argv, f"hydra.run.dir={tmp_path}", "progress=false"],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode != 0, argv
        err = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert err and expected in err[0], (argv, proc.stderr[-1500:])


def test_non_physiological_results_are_flagged(tmp_path):
    """A 1e12 pA pulse drives V far outside any cell's range: the run completes, but summary.json and
    the log carry a warning instead of a silent 'all finite'."""
    import json

    out, _ = simulate(tmp_path, "network=custom", "network.cells=[AVBL,AVBR]", "duration_ms=20", "figures=false",
                      "stimulus=pulses", "stimulus.pulses=[{cell: AVBL, delay_ms: 5, duration_ms: 10, amplitude_pA: 1e12}]")
    s = json.loads((out / "summary.json").read_text())
    assert s["warnings"] and "physiological" in " ".join(s["warnings"])
    out2, _ = simulate(tmp_path / "ok", "network=custom", "network.cells=[AVBL,AVBR]", "duration_ms=20",
                       "figures=false")
    assert json.loads((out2 / "summary.json").read_text())["warnings"] == []

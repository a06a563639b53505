"""The coupled DifferentiableWorm and the DD009 intestine runs of ``owjax.simulate``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

from owjax.neural.c302_data import load_c302_network  # noqa: E402
from owjax.organs.intestine import IntestineOscillator, simulate_intestine  # noqa: E402
from owjax.neural.network import NetworkModel  # noqa: E402
from owjax.core.solve import solve  # noqa: E402
from owjax.validate import spectral_period  # noqa: E402
from owjax.worm import DifferentiableWorm, solve_worm  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CELLS = ["DVB", "AVL", "AVAL", "AVAR", "PVCL", "PVCR", "PLML", "PLMR", "DVA", "RID"]


def _simulate(tmp_path, *overrides):
    proc = subprocess.run(
        [sys.executable, "-m", "owjax.simulate", f"hydra.run.dir={tmp_path}", "progress=false", *overrides],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads((tmp_path / "summary.json").read_text())


def test_intestine_experiment_meets_dd009(tmp_path):
    s = _simulate(tmp_path / "a", "+scenario=intestine")
    assert 40.0 <= s["defecation_period_s"] <= 60.0
    assert s["wave_direction"] == "posterior_to_anterior"
    assert s["n_cycles"] >= 3
    assert 0.8 < s["metrics"]["peak_amplitude_ratio"] < 1.25  # undamped
    assert (tmp_path / "a" / "intestine_ca_wave.png").exists()
    import h5py

    with h5py.File(tmp_path / "a" / "traces.h5") as f:
        assert f["intestine/Ca"].shape == (20, 2001)
        assert list(f["intestine/names"].asstr()[:2]) == ["int1", "int2"]


def test_uncoupled_intestine_still_oscillates_in_every_cell(tmp_path):
    s = _simulate(tmp_path / "b", "+scenario=intestine", "intestine.uncoupled=true")
    assert s["metrics"]["all_cells_oscillate"]
    assert all(30.0 < p < 80.0 for p in s["metrics"]["cell_periods_s"])


@pytest.fixture(scope="module")
def small_network():
    return NetworkModel.from_spec(load_c302_network("C1", "Full").subset(CELLS))


def test_worm_without_trigger_equals_the_network_alone(small_network):
    intestine = IntestineOscillator.from_yaml(trigger_max_current=0.0)
    worm = DifferentiableWorm(small_network, intestine)
    ws = solve_worm(worm, 200.0, 0.5)
    alone = solve(small_network, 200.0, 0.5)
    # not bit-identical: the joint error norm includes the intestine states, so steps differ
    np.testing.assert_allclose(ws.network["V"], alone.ys["V"], atol=1e-2)


def test_coupled_and_sequential_strategies_agree(small_network):
    # a strong trigger (int1 starts above threshold) so the coupling matters
    intestine = IntestineOscillator.from_yaml(trigger_threshold=0.05)
    worm = DifferentiableWorm(small_network, intestine)
    a = solve_worm(worm, 100.0, 0.5, strategy="coupled")
    b = solve_worm(worm, 100.0, 0.5, strategy="sequential")
    alone = solve(small_network, 100.0, 0.5)
    i = small_network.index("DVB")
    assert np.abs(a.network["V"][:, i] - alone.ys["V"][:, i]).max() > 1.0  # the trigger acts
    np.testing.assert_allclose(a.network["V"], b.network["V"], atol=0.01)


def test_trigger_cells_must_exist():
    net = NetworkModel.from_spec(load_c302_network("C1", "Syns"))
    with pytest.raises(ValueError, match="DVB"):
        DifferentiableWorm(net, IntestineOscillator.from_yaml())


def test_gradient_of_period_metric_matches_finite_differences():
    """d(spectral period of int1 Ca)/d(a2) through a 200 s intestine solve, vs central differences."""
    base = IntestineOscillator.from_yaml()

    def period(a2):
        m = eqx.tree_at(lambda m: m.a2, base, a2)
        out = simulate_intestine(m, duration_s=200.0, dt_out_s=0.25)
        return spectral_period(out["Ca"][0], 0.25, 20.0, 120.0)

    a2 = base.a2
    g = float(jax.grad(period)(a2))
    h = 1e-3 * float(a2)
    fd = float((period(a2 + h) - period(a2 - h)) / (2 * h))
    assert abs(g) > 0
    assert g == pytest.approx(fd, rel=0.01)


def test_whole_worm_gradient_matches_finite_differences(small_network):
    """The whole worm (network + intestine + the trigger coupling) is differentiable through the one
    solve: d(mean V of DVB and AVL)/d(parameter) for a network, an intestine and a coupling-side
    parameter agree with central finite differences (float64, tight tolerances)."""
    from owjax.core.solve import SolverConfig, solve_ys

    worm = DifferentiableWorm(small_network, IntestineOscillator.from_yaml())
    tight = SolverConfig("tsit5", rtol=1e-10, atol=1e-10)
    idx = jnp.asarray([small_network.index("DVB"), small_network.index("AVL")])

    def loss(w):
        ys = solve_ys(w, 50.0, 1.0, tight, save=("network.V",)).ys
        return jnp.mean(ys["network"]["V"][:, idx])

    getters = {
        "network gap conductance": lambda w: w.organs.components["network"].gaps.g_nS,
        "intestine trigger maximum": lambda w: w.organs.components["intestine"].trigger_max_current,
        "intestine trigger threshold": lambda w: w.organs.components["intestine"].trigger_threshold,
    }
    grad = eqx.filter_jit(eqx.filter_grad(loss))(worm)
    f = eqx.filter_jit(loss)
    for name, get in getters.items():
        x = np.asarray(get(worm), dtype=np.float64)
        d = np.ones_like(x)  # direction: every entry of the leaf together
        h = 1e-4 * max(float(np.max(np.abs(x))), 1e-3)
        plus = f(eqx.tree_at(get, worm, jnp.asarray(x + h * d)))
        minus = f(eqx.tree_at(get, worm, jnp.asarray(x - h * d)))
        fd = float((plus - minus) / (2 * h))
        ad = float(np.sum(np.asarray(get(grad)) * d))
        assert abs(ad) > 1e-9, name
        assert ad == pytest.approx(fd, rel=0.01), (name, ad, fd)


def test_unsupported_solver_for_the_worm_is_an_error(small_network):
    from owjax.core.solve import UnsupportedSolverError

    worm = DifferentiableWorm(small_network, IntestineOscillator.from_yaml())
    with pytest.raises(UnsupportedSolverError, match="kencarp4"):
        solve_worm(worm, 10.0, 1.0, solver="kencarp4")
    a = solve_worm(worm, 20.0, 1.0, solver="dopri5")  # honoured as named (no silent substitution)
    b = solve_worm(worm, 20.0, 1.0, solver="tsit5")
    assert a.stats["num_steps"] != b.stats["num_steps"]
    assert np.abs(a.network["V"] - b.network["V"]).max() < 0.05


def test_worm_scenario_with_the_body_attached(tmp_path):
    """``+scenario=worm body=true``: c302's muscles drive owjax's body in the same solve; the traces gain
    /body and summary.json the DD010 tier-3 locomotion metrics (whatever c302's muscles do)."""
    import h5py

    s = _simulate(tmp_path / "wb", "+scenario=worm", "body=true", "model.intestine=false", "network=muscles",
                  "duration_ms=200", "dt_out_ms=5", "figures=false", "solver=tsit5")
    body = s["metrics"]["body"]
    assert {"speed_mm_s", "frequency_hz", "wavelength_body_lengths", "gait", "direction"} <= set(body)
    with h5py.File(tmp_path / "wb" / "traces.h5") as f:
        assert f["body/x"].shape == (49, 41) and np.isfinite(f["body/x"][:]).all()
        assert np.ptp(f["body/phi"][:]) > 0  # the muscles moved it
    proc = subprocess.run([sys.executable, "-m", "owjax.simulate", "+scenario=worm", "body=maybe",
                           f"hydra.run.dir={tmp_path / 'bad'}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "body" in proc.stderr

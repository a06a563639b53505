"""Tests of the intestinal Ca²⁺ oscillator (DD009): owjax/intestine.py.

DD009's success criteria (period 50 ± 10 s, posterior → anterior wave, ≥ 3 undamped cycles),
autonomy of every cell when uncoupled, the parameter file's error handling, the int1 → DVB/AVL
trigger, the metrics, and gradients against central finite differences.  About 30 s on 2 cores.
"""

from __future__ import annotations

import pathlib

import jax

jax.config.update("jax_enable_x64", True)  # accuracy of the gradient check

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from owjax.organs.intestine import (  # noqa: E402
    DEFAULT_PARAMETER_FILE,
    N_CELLS,
    STATE_NAMES,
    IntestineOscillator,
    ParameterFileError,
    oscillation_period,
    peak_times,
    simulate_intestine,
    trigger_current,
    wave_direction,
    wave_onsets,
)

UNCOUPLED = dict(g_gap=0.0, D_ca=0.0, D_ip3=0.0)


@pytest.fixture(scope="module")
def model() -> IntestineOscillator:
    return IntestineOscillator.from_yaml()


@pytest.fixture(scope="module")
def coupled(model):
    out = simulate_intestine(model, duration_s=200.0, dt_out_s=0.1)
    return {k: np.asarray(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def uncoupled():
    out = simulate_intestine(IntestineOscillator.from_yaml(**UNCOUPLED), 200.0, 0.1)
    return {k: np.asarray(v) for k, v in out.items()}


# ------------------------------------------------------------------------------ model & file
def test_default_model_structure(model):
    assert model.n_cells == N_CELLS == 20
    assert model.names[0] == "int1" and model.names[-1] == "int20"
    y0 = model.initial_state()
    assert tuple(y0) == STATE_NAMES
    for v in y0.values():
        assert v.shape == (20,) and v.dtype == jnp.float64
    # posterior pacemaker: IP3 production grows monotonically towards int20
    assert model.v_plc.shape == (20,)
    assert np.all(np.diff(np.asarray(model.v_plc)) > 0)
    dy = eqx.filter_jit(model.vector_field)(0.0, y0, None)
    assert set(dy) == set(STATE_NAMES)
    assert all(v.shape == (20,) and bool(jnp.all(jnp.isfinite(v))) for v in dy.values())


def test_parameter_file_documents_every_value():
    doc = yaml.safe_load(DEFAULT_PARAMETER_FILE.read_text())
    params = doc["parameters"]
    for name, entry in params.items():
        assert set(entry) == {"value", "unit", "source", "note"}, name
        assert str(entry["source"]).strip() and str(entry["note"]).strip(), name
    # DD009's values are used as given
    assert params["v_release"]["value"] == 10.0 and params["K_IP3"]["value"] == 0.3
    assert 0.5 <= params["g_gap"]["value"] <= 1.0
    assert params["trigger_threshold"]["value"] == 0.4


def _write_variant(tmp_path: pathlib.Path, edit) -> pathlib.Path:
    doc = yaml.safe_load(DEFAULT_PARAMETER_FILE.read_text())
    edit(doc)
    path = tmp_path / "intestine.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_bad_key_in_parameter_file_raises(tmp_path):
    def typo(doc):
        doc["parameters"]["v_relase"] = doc["parameters"].pop("v_release")

    match = r"unknown intestine parameter 'v_relase'.*v_release"
    with pytest.raises(ParameterFileError, match=match):
        IntestineOscillator.from_yaml(_write_variant(tmp_path, typo))


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d["parameters"]["a2"].update(unit="1/s"), r"'a2' has unit '1/s'.*'1/\(uM\*s\)'"),
        (lambda d: d["parameters"].pop("k_leak"), r"missing intestine parameters \['k_leak'\]"),
        (lambda d: d["parameters"]["v_serca"].update(value=float("nan")), r"'v_serca' is not fin"),
        (lambda d: d["parameters"]["k_out"].update(value=-1.0), r"'k_out' = -1.0 is below"),
        (lambda d: d["parameters"]["K_plc"].pop("source"), r"'K_plc' must have exactly the keys"),
        (lambda d: d.update(paramters={}), r"unknown top-level key 'paramters'"),
    ],
)
def test_malformed_parameter_file_raises(tmp_path, edit, match):
    with pytest.raises(ParameterFileError, match=match):
        IntestineOscillator.from_yaml(_write_variant(tmp_path, edit))


def test_overrides_are_checked():
    with pytest.raises(ParameterFileError, match=r"unknown intestine override 'ggap'.*g_gap"):
        IntestineOscillator.from_yaml(ggap=0.5)
    with pytest.raises(ParameterFileError, match=r"'v_plc' has shape \(3,\)"):
        IntestineOscillator.from_yaml(v_plc=[0.4, 0.4, 0.4])
    with pytest.raises(ParameterFileError, match="n_cells"):
        IntestineOscillator.from_yaml(n_cells=1)
    with pytest.raises(ParameterFileError, match="not found"):
        IntestineOscillator.from_yaml("/nonexistent/intestine.yaml")
    m = IntestineOscillator.from_yaml(v_plc=np.full(20, 0.4), D_ca=np.full(19, 1.0))
    assert m.v_plc.shape == (20,) and m.D_ca.shape == (19,)


# ------------------------------------------------------------------------------ DD009 behaviour
def test_period_direction_and_cycles(coupled):
    t, ca = coupled["t"], coupled["Ca"]
    assert ca.shape == (20, t.size) and t[-1] == pytest.approx(200.0)
    for i in range(20):
        peaks = peak_times(t, ca[i])
        assert len(peaks) >= 4, f"int{i + 1}: {len(peaks)} peaks, need >= 3 full cycles"
        assert 40.0 <= oscillation_period(t, ca[i]) <= 60.0
        amps = np.interp(peaks, t, ca[i])
        assert np.all(amps > 0.4), f"int{i + 1} peaks {amps} do not all cross the trigger threshold"
        # undamped: no cycle smaller than 95 % of the one before
        assert np.all(amps[1:] >= 0.95 * amps[:-1]), f"int{i + 1} amplitudes {amps} decay"
        # real oscillation: returns to rest between spikes
        assert ca[i][t > 20].min() < 0.15
    assert wave_direction(t, ca) == "posterior_to_anterior"
    waves = wave_onsets(t, ca)
    transit = waves[:, 0] - waves[:, -1]  # int1 onset minus int20 onset
    assert len(waves) >= 4 and np.all((transit > 1.0) & (transit < 10.0))
    # other state variables stay physical
    for k in ("Ca_ER", "IP3"):
        assert np.all(coupled[k] > 0)
    assert np.all((coupled["h"] > 0) & (coupled["h"] < 1))
    assert -60 < coupled["V"].min() and coupled["V"].max() < 0


def test_every_cell_oscillates_when_uncoupled(uncoupled):
    t, ca = uncoupled["t"], uncoupled["Ca"]
    periods = []
    for i in range(20):
        peaks = peak_times(t, ca[i])
        assert len(peaks) >= 3, f"int{i + 1} does not oscillate on its own"
        assert np.all(np.interp(peaks, t, ca[i]) > 0.4)
        periods.append(oscillation_period(t, ca[i]))
    # the pacemaker gradient: the posterior cell is intrinsically the fastest
    assert periods[-1] == min(periods) and periods[0] == max(periods)
    assert 40.0 <= periods[-1] <= 60.0


def test_electrical_coupling_alone_leaves_ca_untouched(uncoupled):
    # DD009's electrical-only coupling cannot carry the wave: V does not act back on Ca.
    out = simulate_intestine(IntestineOscillator.from_yaml(D_ca=0.0, D_ip3=0.0), 200.0, 0.1)
    np.testing.assert_allclose(np.asarray(out["Ca"]), uncoupled["Ca"], rtol=0, atol=1e-5)
    assert not np.allclose(np.asarray(out["V"]), uncoupled["V"], atol=1e-3)


def test_trigger_current_follows_int1_peaks(model, coupled):
    t, ca1 = coupled["t"], coupled["Ca"][0]
    current = np.asarray(model.trigger_current(ca1))
    i_max = float(model.trigger_max_current)
    peaks = peak_times(t, ca1)
    assert np.all(np.interp(peaks, t, current) > 0.95 * i_max)
    assert current[t > 20].min() < 0.01 * i_max
    pulses = peak_times(t, current, threshold=0.5 * i_max)
    np.testing.assert_allclose(pulses, peaks, atol=0.2)
    # half-maximal at DD009's 0.4 µM threshold; smooth and differentiable
    assert float(trigger_current(0.4)) == pytest.approx(2.5)
    assert float(jax.grad(trigger_current)(0.4)) == pytest.approx(5.0 / (4 * 0.05))


def test_step_budget_exhaustion_raises(model):
    with pytest.raises(Exception, match="max_steps=50"):
        out = simulate_intestine(model, 20.0, 0.1, max_steps=50)
        jax.block_until_ready(out)


# ------------------------------------------------------------------------------ gradients
def test_gradient_matches_finite_differences(model):
    """d/dθ of a smooth loss on the Ca trace, θ = IP3 production (uniform scale and int20 alone)."""
    duration = 60.0  # covers one full wave

    def loss(m):
        out = simulate_intestine(m, duration, 0.1, rtol=1e-9, atol=1e-11, max_steps=5_000)
        return jnp.mean(out["Ca"] ** 2)

    grads = eqx.filter_grad(loss)(model)
    g_plc = np.asarray(grads.v_plc)
    assert np.all(np.isfinite(g_plc))

    v0 = model.v_plc
    eps = 1e-4
    directions = {"uniform": np.asarray(v0), "int20": np.eye(20)[19] * float(v0[19])}
    for name, d in directions.items():
        analytic = float(np.dot(g_plc, d))

        def shifted(s):
            return eqx.tree_at(lambda m: m.v_plc, model, v0 + s * jnp.asarray(d))

        fd = (float(loss(shifted(eps))) - float(loss(shifted(-eps)))) / (2 * eps)
        assert abs(fd) > 1e-6
        assert analytic == pytest.approx(fd, rel=1e-2), f"{name}: grad {analytic} vs FD {fd}"


# ------------------------------------------------------------------------------ metrics
def _pulse_train(t, onsets, width=3.0, amp=1.0):
    x = np.full_like(t, 0.05)
    for t0 in onsets:
        x += amp * np.exp(-0.5 * ((t - t0 - width) / (width / 2)) ** 2) * (t > t0 - 5)
    return x


def test_metrics_on_synthetic_waves():
    t = np.arange(0, 200, 0.1)
    base = np.array([10.0, 60.0, 110.0, 160.0])
    ca1 = _pulse_train(t, base)
    pk = peak_times(t, ca1)
    np.testing.assert_allclose(pk, base + 3.0, atol=0.02)
    assert oscillation_period(t, ca1) == pytest.approx(50.0, abs=0.02)
    assert np.isnan(oscillation_period(t, np.full_like(t, 0.05)))
    p2a = np.stack([_pulse_train(t, base + 0.3 * (19 - i)) for i in range(20)])
    a2p = p2a[::-1]
    assert wave_direction(t, p2a) == "posterior_to_anterior"
    assert wave_direction(t, a2p) == "anterior_to_posterior"
    assert wave_direction(t, np.stack([ca1] * 20)) == "synchronous"
    with pytest.raises(ValueError, match="no cell crosses"):
        wave_direction(t, np.full((20, t.size), 0.05))
    with pytest.raises(ValueError, match="1-D"):
        peak_times(t, p2a)

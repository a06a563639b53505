"""Validation metrics and muscle maps on synthetic signals with known answers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

from owjax.organs.muscles import (  # noqa: E402
    BODY_WALL_MUSCLES,
    SIBERNETIC_ORDER,
    MuscleActivation,
    to_segments,
    to_sibernetic,
)
from owjax.validate import (  # noqa: E402
    decay_time,
    fc_agreement,
    functional_connectivity,
    muscle_checks,
    oscillation_period,
    peak_times,
    spectral_period,
    spike_times,
    wave_direction,
)


def test_spike_times_interpolated():
    t = np.arange(0, 10, 1.0)
    v = np.array([-60, -60, -30, -10, 20, -60, -60, -25, -15, -60], dtype=float)
    st = spike_times(t, v)
    np.testing.assert_allclose(st, [2.5, 7.5])


def test_peak_times_and_period_of_a_sine():
    t = np.linspace(0, 200, 4001)
    x = np.sin(2 * np.pi * t / 47.0)
    p = peak_times(t, x)
    np.testing.assert_allclose(np.diff(p), 47.0, rtol=1e-3)
    assert oscillation_period(t, x) == pytest.approx(47.0, rel=1e-3)
    assert np.isnan(oscillation_period(t, np.zeros_like(t)))


@pytest.mark.parametrize("period", [40.0, 50.0, 62.5])
def test_spectral_period_matches_true_period(period):
    dt = 0.1
    t = np.arange(0, 200, dt)
    # a spiky Ca-like waveform, not a pure sine
    x = np.exp(8 * (np.cos(2 * np.pi * t / period) - 1))
    est = float(spectral_period(jnp.asarray(x), dt, 20.0, 100.0))
    assert est == pytest.approx(period, rel=0.02)


def test_spectral_period_is_differentiable():
    dt = 0.1
    t = jnp.arange(0, 200, dt)

    def period_of(p):
        return spectral_period(jnp.exp(8 * (jnp.cos(2 * jnp.pi * t / p) - 1)), dt, 20.0, 100.0)

    g = jax.grad(period_of)(50.0)
    h = 1e-3
    fd = (period_of(50.0 + h) - period_of(50.0 - h)) / (2 * h)
    assert float(g) == pytest.approx(float(fd), rel=1e-4)
    assert 0.5 < float(g) < 1.5  # d(estimated period)/d(true period) ≈ 1


def test_wave_direction_of_travelling_waves():
    t = np.linspace(0, 200, 2001)
    n = 20
    # posterior (row 19) first, each anterior cell 0.5 s later
    lag = (n - 1 - np.arange(n)) * 0.5
    x = np.stack([np.exp(8 * (np.cos(2 * np.pi * (t - d) / 50.0) - 1)) for d in lag])
    d, slope = wave_direction(t, x)
    assert d == "posterior_to_anterior" and slope == pytest.approx(-0.5, rel=1e-2)
    d2, slope2 = wave_direction(t, x[::-1])
    assert d2 == "anterior_to_posterior" and slope2 == pytest.approx(0.5, rel=1e-2)


def test_decay_time_of_an_exponential():
    t = np.linspace(0, 100, 10001)
    x = np.where(t < 10, t / 10, np.exp(-(t - 10) / 7.0))
    assert decay_time(t, x) == pytest.approx(7.0, abs=0.02)


def test_functional_connectivity_and_agreement():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 500))
    traces = np.stack([base[0], base[0] + 0.1 * base[1], -base[0], base[2]])
    fc = np.asarray(functional_connectivity(jnp.asarray(traces)))
    np.testing.assert_allclose(fc, np.corrcoef(traces), atol=1e-9)
    r, agree = fc_agreement(fc, np.corrcoef(traces))
    assert float(r) == pytest.approx(1.0) and float(agree) == 1.0
    r2, agree2 = fc_agreement(fc, -np.corrcoef(traces))
    assert float(r2) == pytest.approx(-1.0) and float(agree2) == 0.0
    # constant traces are allowed and correlate with nothing
    fc3 = functional_connectivity(jnp.asarray(np.vstack([traces, np.ones(500)])))
    assert bool(jnp.all(jnp.isfinite(fc3))) and float(jnp.abs(fc3[-1, :-1]).max()) == 0.0


def test_muscle_activation_and_force():
    m = MuscleActivation()
    ca = jnp.array([0.0, 2e-7, 4e-7, 8e-7])
    np.testing.assert_allclose(np.asarray(m.activation(ca)), [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(np.asarray(m.force(ca)), [0.0, 2000.0, 4000.0, 4000.0])
    g = jax.grad(lambda c: m.force(c))(1e-7)
    assert float(g) == pytest.approx(4000.0 / 4e-7)


def test_sibernetic_order_and_segments():
    assert len(SIBERNETIC_ORDER) == 96 and len(BODY_WALL_MUSCLES) == 95 and "MVL24" not in BODY_WALL_MUSCLES
    assert SIBERNETIC_ORDER[:2] == ("MDR01", "MDR02") and SIBERNETIC_ORDER[24] == "MVR01"
    assert SIBERNETIC_ORDER[48] == "MVL01" and SIBERNETIC_ORDER[72] == "MDL01"
    names = list(BODY_WALL_MUSCLES)[::-1]  # any order
    act = np.array([[float(BODY_WALL_MUSCLES.index(n))] for n in names])
    sib = to_sibernetic(act, names)
    for slot, name in enumerate(SIBERNETIC_ORDER):
        expected = 0.0 if name == "MVL24" else float(BODY_WALL_MUSCLES.index(name))
        assert sib[slot, 0] == expected
    assert to_sibernetic(act, names, mvl24="mvr24")[SIBERNETIC_ORDER.index("MVL24"), 0] == act[names.index("MVR24"), 0]
    d, v = to_segments(np.ones((95, 3)), list(BODY_WALL_MUSCLES))
    assert d.shape == (24, 3) and (d == 2).all()
    assert (v[:23] == 2).all() and (v[23] == 1).all()  # MVL24 does not exist
    with pytest.raises(ValueError, match="body-wall"):
        to_segments(np.ones((1, 3)), ["AVBL"])


def test_muscle_checks():
    t = np.linspace(0, 200, 2001)
    ca = np.stack([np.where(t < 20, 0.0, 4e-7 * np.exp(-(t - 20) / 30.0))] * 2)
    act = np.minimum(1, ca / 4e-7)
    c = muscle_checks(t, act, ca)
    assert c["activation_in_0_1"] and c["activation_peak"] == pytest.approx(1.0)
    assert c["ca_decay_time_ms"] == pytest.approx(30.0, abs=0.2)

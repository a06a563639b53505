"""owjax.core.fast_trig.sin_cos against float64 references (the accuracy its docstring states)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from owjax.core.fast_trig import sin_cos


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True), jax.numpy_dtype_promotion("strict"):
        yield


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-7), (np.float64, 2e-16)])
@pytest.mark.parametrize("scale", [1.0, 10.0, 1000.0])
def test_sin_cos_within_the_stated_error(dtype, tol, scale):
    x = np.random.default_rng(0).uniform(-scale, scale, 100_000).astype(dtype)
    # the quadrant boundaries, where the reduction switches polynomials, and exact zeros
    edges = (np.arange(-8, 9) * (np.pi / 4)).astype(dtype)
    x = np.concatenate([x, edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf), [0.0, -0.0]]).astype(dtype)
    s, c = jax.jit(sin_cos)(jnp.asarray(x))
    assert s.dtype == c.dtype == dtype and s.shape == c.shape == x.shape
    xs = x.astype(np.float64)
    assert np.max(np.abs(np.asarray(s, np.float64) - np.sin(xs))) <= tol
    assert np.max(np.abs(np.asarray(c, np.float64) - np.cos(xs))) <= tol


def test_sin_cos_gradient_is_cos_and_minus_sin():
    x = jnp.linspace(-7.0, 7.0, 201)
    g_s = jax.vmap(jax.grad(lambda v: sin_cos(v)[0]))(x)
    g_c = jax.vmap(jax.grad(lambda v: sin_cos(v)[1]))(x)
    np.testing.assert_allclose(g_s, np.cos(np.asarray(x)), atol=1e-15)
    np.testing.assert_allclose(g_c, -np.sin(np.asarray(x)), atol=1e-15)


def test_sin_cos_refuses_integers():
    with pytest.raises(TypeError, match="floating-point"):
        sin_cos(jnp.arange(3))

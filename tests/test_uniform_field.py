"""The network field's hand-written derivative (owjax.neural.uniform_field) against JAX's own.

The hand-written rule must give the same values and the same forward- and reverse-mode derivatives
as JAX differentiating the same code op by op, for every c302 parameter set, with respect to every
parameter, the state and the injected current. Its speed is measured by
``python -m benchmarks.gradient_cost`` (docs/speed.md), not here.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

from owjax.neural.c302_data import load_c302_network  # noqa: E402
from owjax.neural.network import NetworkModel  # noqa: E402
from owjax.neural.uniform_field import (  # noqa: E402
    uniform_field_and_decay,
    uniform_field_and_decay_reference,
    uniform_field_and_decay_reverse_only,
)


def _model_and_state(parameter_set: str, seed: int):
    m = NetworkModel.from_spec(load_c302_network(parameter_set, "Full"), jnp.float64)
    assert m.layout is not None and m.derivative == "hand"
    y = m.initial_state()
    rng = np.random.default_rng(seed)
    # a state away from rest, so every sigmoid, product and the Ca clamp's open side are exercised
    y = {
        "V": y["V"] + jnp.asarray(rng.uniform(-20.0, 50.0, y["V"].shape)),
        "Ca": jnp.asarray(rng.uniform(0.0, 5e-4, y["Ca"].shape)) * 1e6,
        "gates": jnp.asarray(rng.uniform(0.01, 0.99, y["gates"].shape)),
        "s": jnp.asarray(rng.uniform(0.0, 1.0, y["s"].shape)),
        "s2": jnp.asarray(rng.uniform(0.0, 1.0, y["s2"].shape)),
    }
    i_in = jnp.asarray(rng.normal(0.0, 3.0, m.n_cells))
    return m, y, i_in


def _rel(a, b):
    return float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-300))


def _compare(tree_a, tree_b, tol, what):
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(tree_a), jax.tree.leaves(tree_b)):
        if a.size == 0 or not jnp.issubdtype(a.dtype, jnp.inexact):
            continue
        assert _rel(a, b) < tol, f"{what} {jax.tree_util.keystr(path)}: relative difference {_rel(a, b):.2e}"


@pytest.mark.parametrize("parameter_set", ["C0", "C1", "C2"])
def test_hand_written_derivative_equals_jaxs(parameter_set):
    m, y, i_in = _model_and_state(parameter_set, seed=1)
    params, static = eqx.partition(m, eqx.is_inexact_array)

    def hand(p, yy, ii):
        return uniform_field_and_decay(eqx.combine(p, static), yy, ii)

    def reference(p, yy, ii):
        return uniform_field_and_decay_reference(eqx.combine(p, static), yy, ii)

    with jax.numpy_dtype_promotion("strict"):
        _compare(hand(params, y, i_in), reference(params, y, i_in), 1e-15, "value")
        # forward mode: a random direction in every parameter, the state and the current
        leaves, treedef = jax.tree.flatten((params, y, i_in))
        rng = np.random.default_rng(2)
        tangent = jax.tree.unflatten(treedef, [jnp.asarray(rng.normal(size=x.shape)) * (jnp.abs(x) + 1e-3)
                                               for x in leaves])
        _, t_hand = jax.jvp(hand, (params, y, i_in), tangent)
        _, t_ref = jax.jvp(reference, (params, y, i_in), tangent)
        _compare(t_hand, t_ref, 1e-12, "tangent")
        # reverse mode (JAX transposes the hand-written linear rule)
        out = reference(params, y, i_in)
        cot = jax.tree.map(lambda x: jnp.cos(jnp.arange(x.size, dtype=x.dtype)).reshape(x.shape), out)
        g_hand = jax.vjp(hand, params, y, i_in)[1](cot)
        g_ref = jax.vjp(reference, params, y, i_in)[1](cot)
        _compare(g_hand, g_ref, 1e-12, "cotangent")

        # the hand-written reverse pass: values, and cotangents with and without the decay rates'
        def reverse_only(p, yy, ii):
            return uniform_field_and_decay_reverse_only(eqx.combine(p, static), yy, ii)

        _compare(reverse_only(params, y, i_in), reference(params, y, i_in), 1e-15, "value (reverse only)")
        g_rev = jax.vjp(reverse_only, params, y, i_in)[1](cot)
        _compare(g_rev, g_ref, 1e-12, "cotangent (reverse only)")

        def field_only(fn):
            return lambda p, yy, ii: fn(p, yy, ii)[0]

        g_rev = jax.vjp(field_only(reverse_only), params, y, i_in)[1](cot[0])
        g_ref = jax.vjp(field_only(reference), params, y, i_in)[1](cot[0])
        _compare(g_rev, g_ref, 1e-12, "cotangent of the field alone (reverse only)")


def test_network_uses_the_hand_written_rule_and_it_can_be_switched_off():
    m, y, i_in = _model_and_state("C1", seed=3)
    m_jax = dataclasses.replace(m, derivative="jax")
    args = {"i_ext_pA": i_in}
    # the same field through NetworkModel (stimuli at t = 100 ms added to the external current)
    f_hand, lam_hand = m.field_and_decay(jnp.asarray(100.0), y, args)
    f_jax, lam_jax = m_jax.field_and_decay(jnp.asarray(100.0), y, args)
    _compare((f_hand, lam_hand), (f_jax, lam_jax), 1e-13, "value")
    jaxpr = str(jax.make_jaxpr(lambda yy: m.vector_field(jnp.asarray(100.0), yy, args))(y))
    assert "custom_jvp_call" in jaxpr
    assert "custom_jvp_call" not in str(jax.make_jaxpr(lambda yy: m_jax.vector_field(jnp.asarray(100.0), yy, args))(y))
    # forward mode through it (the decay rates are the Jacobian's diagonal): tests/test_speed.py


def test_reverse_only_variant_refuses_forward_mode_and_bad_settings():
    m, y, i_in = _model_and_state("C1", seed=5)
    rev = m.for_reverse_mode()
    assert rev.derivative == "hand_reverse_only" and m.derivative == "hand"
    assert dataclasses.replace(m, derivative="jax").for_reverse_mode().derivative == "jax"
    np.testing.assert_array_equal(np.asarray(rev.vector_field(jnp.asarray(1.0), y)["V"]),
                                  np.asarray(m.vector_field(jnp.asarray(1.0), y)["V"]))
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda v: rev.vector_field(jnp.asarray(1.0), {**y, "V": v})["V"], (y["V"],), (y["V"],))
    with pytest.raises(ValueError, match="derivative must be one of"):
        dataclasses.replace(m, derivative="fast")


def test_vmapped_gradient_equals_per_member_gradient():
    m, y, i_in = _model_and_state("C1", seed=4)
    weights = jnp.stack([m.graded.weight * f for f in (0.5, 1.0, 2.0)])

    def loss(w):
        mm = eqx.tree_at(lambda x: x.graded.weight, m, w)
        f, lam = mm.field_and_decay(jnp.asarray(0.0), y, {"i_ext_pA": i_in})
        return jnp.sum(f["V"] ** 2) + jnp.sum(lam["s"] * f["s"])

    batched = jax.vmap(jax.grad(loss))(weights)
    for k in range(3):
        np.testing.assert_allclose(np.asarray(batched[k]), np.asarray(jax.grad(loss)(weights[k])), rtol=1e-13, atol=0)
    # the same through the hand-written reverse pass
    m = m.for_reverse_mode()
    np.testing.assert_allclose(np.asarray(jax.vmap(jax.grad(loss))(weights)), np.asarray(batched), rtol=1e-12, atol=0)

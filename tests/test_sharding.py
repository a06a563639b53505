"""Batches sharded over devices (``owjax.core.sharding``): identical to the unsharded run.

JAX fixes the number of devices when it starts, so the multi-device checks run a script in a
subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (four CPU host devices).
There a real c302 network batch (C1 Oscillator, 6 cells, pulse stimuli, 40 ms, float64) is solved

* as a batch of parameter sets and stimuli (7 members: graded-synapse scale and pulse amplitude;
  the model replicated on every device; 7 members on 4 devices → 1 padding member), and
* as a batch of whole worms (5 stacked models, each with its own scale and amplitude; 5 → 8),

once with :func:`owjax.core.sharding.sharded_vmap` over the four devices and once unsharded
(``jax.jit(jax.vmap(...))`` on one device); the test asserts the traces are bit-for-bit equal and
that the output really was spread over four devices. The same process checks that a gradient
through a sharded batch (a small function of one member) matches the unsharded gradient (to
rounding: the cross-device sum adds in another order). The single-device path and the input checks run in this process (≈ 40–60 s in
all on 2 cores, mostly compilation).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from owjax.core.sharding import (  # noqa: E402
    batch_mesh,
    pad_batch,
    padding_for,
    sharded_vmap,
    stack_members,
    unpad_batch,
)

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    r'''
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    import equinox as eqx, jax.numpy as jnp, numpy as np
    from owjax.core.sharding import sharded_vmap, stack_members
    from owjax.core.solve import solve_ys
    from owjax.neural.build import build_model, build_spec
    from owjax.neural.spec import PulseInput

    out_file = sys.argv[1]
    devices = jax.devices()
    cells = ["AVBL", "AVBR", "DB2", "DD2", "VB2", "VD2"]
    spec = build_spec("C1", "Oscillator", cells=cells, stimulus_mode="none")
    spec = spec.with_inputs([PulseInput(c, 5.0, 25.0, 0.0, id=f"step_{c}") for c in cells])
    model = build_model(spec, "float64")

    def with_member(m, scale, amp):
        m = eqx.tree_at(lambda m: m.graded.g_nS, m, m.graded.g_nS * scale)
        return eqx.tree_at(lambda m: m.stimuli.amplitude_pA, m, jnp.full_like(m.stimuli.amplitude_pA, amp))

    def traces(m):
        return solve_ys(m, 40.0, 1.0, "fast", throw=False, save=("V", "Ca")).ys

    def member(m, scale, amp):  # one parameter set and one stimulus
        return traces(with_member(m, scale, amp))

    scales = jnp.linspace(0.6, 1.4, 7)
    amps = jnp.linspace(-1.0, 4.0, 7)
    ref = jax.jit(jax.vmap(member, in_axes=(None, 0, 0)))(model, scales, amps)
    run = sharded_vmap(member, in_axes=(None, 0, 0))
    got = run(model, scales, amps)

    worms = stack_members([with_member(model, s, a) for s, a in zip([0.7, 0.9, 1.0, 1.2, 1.3],
                                                                    [0.5, 1.0, 2.0, 3.0, 3.5])])
    ref_w = jax.jit(jax.vmap(traces))(worms)
    got_w = sharded_vmap(traces)(worms)
    # the padded call itself spreads 8 members over the 4 devices
    from owjax.core.sharding import pad_batch, shard_batch
    padded, _ = pad_batch(scales, run.n_devices)
    spread = len(shard_batch(padded, run.mesh).sharding.device_set)

    # gradient through a sharded batch (a cheap member function: compiling the reverse pass of the
    # network solve twice would cost a minute of CI; tests/test_gradients.py covers that solve)
    def cell(w, x):
        return jnp.tanh(w * x) * jnp.exp(-0.1 * x)

    xs = jnp.linspace(-2.0, 3.0, 7)
    run_c = sharded_vmap(cell, in_axes=(None, 0))
    g_sh = float(jax.grad(lambda w: jnp.mean(run_c(w, xs)))(0.7))
    g_pl = float(jax.jit(jax.grad(lambda w: jnp.mean(jax.vmap(cell, in_axes=(None, 0))(w, xs))))(0.7))
    np.savez(out_file, **{f"ref_{k}": np.asarray(v) for k, v in ref.items()},
             **{f"got_{k}": np.asarray(v) for k, v in got.items()},
             **{f"refw_{k}": np.asarray(v) for k, v in ref_w.items()},
             **{f"gotw_{k}": np.asarray(v) for k, v in got_w.items()})
    print("RESULT " + json.dumps(dict(n_devices=len(devices), mesh_size=run.n_devices, spread=spread,
                                      grad_sharded=g_sh, grad_plain=g_pl)))
    '''
)


def run_script(out: Path, env: dict) -> tuple[dict, dict]:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=900)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"the sharding script failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return json.loads(lines[-1][7:]), dict(np.load(out))


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharding") / "traces.npz"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    return run_script(out, env)


def test_four_host_devices_are_used(four_devices):
    info, _ = four_devices
    assert info["n_devices"] == 4 and info["mesh_size"] == 4
    assert info["spread"] == 4, "the padded batch was not split over the four devices"


@pytest.mark.parametrize("what", ["V", "Ca"])
def test_sharded_parameter_and_stimulus_batch_identical_to_unsharded(four_devices, what):
    _, z = four_devices
    ref, got = z[f"ref_{what}"], z[f"got_{what}"]
    assert got.shape == ref.shape == (7, 41, 6), "the padding member must be dropped (7 members in, 7 out)"
    assert np.all(np.isfinite(ref))
    # the members really differ (synaptic scale and stimulus amplitude matter), so equality is not trivial
    assert np.ptp(ref[:, -1, :], axis=0).max() > 1e-3
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("what", ["V", "Ca"])
def test_sharded_worm_batch_identical_to_unsharded(four_devices, what):
    _, z = four_devices
    ref, got = z[f"refw_{what}"], z[f"gotw_{what}"]
    assert got.shape == ref.shape == (5, 41, 6)
    assert np.ptp(ref[:, -1, :], axis=0).max() > 1e-3
    np.testing.assert_array_equal(got, ref)


def test_gradient_through_sharded_batch(four_devices):
    info, _ = four_devices
    # the mean over members adds the four devices' partial sums in another order: equal to rounding
    assert info["grad_plain"] != 0.0
    np.testing.assert_allclose(info["grad_sharded"], info["grad_plain"], rtol=1e-12, atol=0)


# ------------------------------------------------------------------ one device, in this process
def test_one_device_path_equals_vmap():
    def member(p, x):
        return {"y": jnp.sin(p["a"] * x) + p["b"], "z": jnp.cumsum(x * p["a"])}

    params = {"a": jnp.linspace(0.5, 2.0, 5), "b": jnp.arange(5.0)}
    x = jnp.linspace(0.0, 1.0, 11)
    run = sharded_vmap(member, in_axes=(0, None), devices=jax.devices()[:1])
    got = run(params, x)
    ref = jax.vmap(member, in_axes=(0, None))(params, x)
    assert run.n_devices == 1
    for k in ref:
        np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(ref[k]))
    g = jax.grad(lambda s: jnp.sum(run({"a": s * params["a"], "b": params["b"]}, x)["y"]))(1.0)
    g_ref = jax.grad(lambda s: jnp.sum(jax.vmap(member, in_axes=(0, None))(
        {"a": s * params["a"], "b": params["b"]}, x)["y"]))(1.0)
    np.testing.assert_allclose(float(g), float(g_ref), rtol=1e-13)


def test_padding_is_explicit_and_dropped():
    assert [padding_for(b, 4) for b in (1, 4, 5, 7, 8)] == [3, 0, 3, 1, 0]
    tree = {"a": jnp.arange(5.0), "b": jnp.arange(10.0).reshape(5, 2)}
    padded, n = pad_batch(tree, 4)
    assert n == 5 and padded["a"].shape == (8,) and padded["b"].shape == (8, 2)
    np.testing.assert_array_equal(padded["a"][5:], [4.0, 4.0, 4.0])  # repeats of the last member
    back = unpad_batch(padded, n)
    np.testing.assert_array_equal(back["b"], tree["b"])


def test_bad_batches_are_refused_with_a_clear_message():
    run = sharded_vmap(lambda a, b: a + b, devices=jax.devices()[:1])
    with pytest.raises(ValueError, match="different batch sizes"):
        run(jnp.ones(3), jnp.ones(4))
    with pytest.raises(ValueError, match="scalar"):
        run(jnp.ones(3), jnp.asarray(1.0))
    with pytest.raises(ValueError, match="at least one member"):
        padding_for(0, 2)
    with pytest.raises(ValueError, match="in_axes entries must be 0 or None"):
        sharded_vmap(lambda a: a, in_axes=1)(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="no batched argument"):
        sharded_vmap(lambda a: a, in_axes=None)(jnp.ones(3))
    with pytest.raises(ValueError, match="no devices"):
        batch_mesh([])
    with pytest.raises(ValueError, match="different pytree structures"):
        stack_members([{"a": 1.0}, {"b": 1.0}])


@pytest.mark.gpu
def test_sharded_batch_on_the_gpus(tmp_path):
    """The same script on every GPU JAX sees (skipped without one). On one GPU the program is the
    unsharded one; on several, each GPU runs a smaller batch, whose kernels may round differently
    (see docs/cluster.md), so agreement is asserted to 1e-9 relative rather than bit for bit."""
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        pytest.skip("no GPU visible to JAX: this test runs the sharded c302 batch on the GPUs")
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    info, z = run_script(tmp_path / "traces.npz", env)
    assert info["n_devices"] == len(gpus) and info["mesh_size"] == len(gpus)
    for what in ("V", "Ca"):
        np.testing.assert_allclose(z[f"got_{what}"], z[f"ref_{what}"], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(z[f"gotw_{what}"], z[f"refw_{what}"], rtol=1e-9, atol=1e-9)
        if len(gpus) == 1:
            np.testing.assert_array_equal(z[f"got_{what}"], z[f"ref_{what}"])

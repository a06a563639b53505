"""Batches sharded over devices: one code path for one CPU, many CPU devices, one GPU and many GPUs.

A *batch* is any pytree of arrays whose leaves share a leading axis of length ``B``: parameter
sets (a conductance scale per member), stimuli (a current amplitude per member) or whole worms (a
stacked model, see :func:`stack_members`). :func:`sharded_vmap` turns a function of one member
into a function of the batch that

1. pads the batch to a multiple of the number of devices ``D`` by repeating the last member
   (``(-B) % D`` copies, so every padded member is a valid input that solves like a real one),
2. places the batched arguments on a 1-D device mesh with the axis ``"batch"``
   (``NamedSharding(mesh, PartitionSpec("batch"))``: member ``i`` lives on device ``i // (B' / D)``),
   and the arguments without a batch axis replicated on every device,
3. runs ``jax.jit(jax.vmap(fn))`` with the outputs sharded the same way (XLA's SPMD partitioner
   gives every device its ``B' / D`` members; nothing is communicated between devices), and
4. drops the padding: every output leaf has leading length ``B`` again, member ``i`` being
   ``fn`` of member ``i``. Nothing is truncated: a batch is never cut to fit the devices.

With one device the mesh has one device and the same code runs (the padding is zero). The device
count is whatever JAX sees (``jax.devices()``); on CPU, more host devices are created with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` *before* JAX is imported (the number is
fixed when JAX starts).

The results equal those of ``jax.jit(jax.vmap(fn))`` on one device: each member is computed by the
same program on its own data. Adaptive solves inside ``fn`` keep one step-size sequence per
member (a vmapped diffrax solve masks finished members), so a member's trajectory does not depend
on which other members share its device (tested in ``tests/test_sharding.py`` against the
unsharded run of a c302 network batch).

Inside ``jax.grad`` / ``jax.jit`` the returned function can be called with traced arguments
(``jax.device_put`` then becomes a sharding constraint), so a fit's loss may shard its batch of
stimulus conditions the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = [
    "BATCH_AXIS",
    "batch_mesh",
    "padding_for",
    "pad_batch",
    "unpad_batch",
    "shard_batch",
    "replicate",
    "sharded_vmap",
    "stack_members",
]

#: name of the mesh axis the batch is split along
BATCH_AXIS = "batch"


def batch_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with the axis ``"batch"`` over ``devices``.

    Arguments:
        devices: the devices to split batches over (default: all of ``jax.devices()``, i.e. every
            GPU when JAX has a GPU backend, else every (forced) CPU host device).

    Returns:
        ``jax.sharding.Mesh`` of shape ``(len(devices),)``.

    Raises:
        ValueError: ``devices`` is empty or names a device twice.
    """
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("batch_mesh: no devices given; pass at least one jax.Device (see jax.devices())")
    if len({d.id for d in devs}) != len(devs) or len({d.platform for d in devs}) != 1:
        raise ValueError(
            f"batch_mesh: devices must be distinct and of one platform, got {[str(d) for d in devs]}"
        )
    return Mesh(np.asarray(devs, dtype=object), (BATCH_AXIS,))


def padding_for(batch_size: int, n_devices: int) -> int:
    """Members added so that ``batch_size`` + padding is a multiple of ``n_devices``.

    Arguments:
        batch_size: members in the batch (≥ 1).
        n_devices: devices the batch is split over (≥ 1).

    Returns:
        ``(-batch_size) % n_devices`` (0 when the devices divide the batch).
    """
    if int(batch_size) < 1:
        raise ValueError(f"a batch needs at least one member, got batch size {batch_size}")
    if int(n_devices) < 1:
        raise ValueError(f"n_devices must be >= 1, got {n_devices}")
    return (-int(batch_size)) % int(n_devices)


def _batch_size(tree: Any, what: str = "batch") -> int:
    leaves = jax.tree.leaves(tree)
    if not leaves:
        raise ValueError(f"{what}: no array leaves (a batch is a pytree of arrays with a leading batch axis)")
    sizes = set()
    for leaf in leaves:
        shape = np.shape(leaf)
        if len(shape) == 0:
            raise ValueError(
                f"{what}: a leaf is a scalar; every batched leaf needs a leading batch axis "
                "(pass members that do not vary with in_axes=None)"
            )
        sizes.add(int(shape[0]))
    if len(sizes) != 1:
        raise ValueError(f"{what}: the leaves have different leading (batch) lengths {sorted(sizes)}; they must agree")
    return sizes.pop()


def pad_batch(tree: Any, n_devices: int) -> tuple[Any, int]:
    """Pad a batch to a multiple of ``n_devices`` by repeating its last member.

    Arguments:
        tree: pytree of arrays, each with the same leading batch length ``B``.
        n_devices: devices the batch will be split over.

    Returns:
        ``(padded, B)``: the padded pytree (leading length ``B + padding_for(B, n_devices)``) and
        the original batch size, for :func:`unpad_batch`.
    """
    b = _batch_size(tree)
    pad = padding_for(b, n_devices)
    if pad == 0:
        return tree, b

    def one(x):
        x = jnp.asarray(x)
        return jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)], axis=0)

    return jax.tree.map(one, tree), b


def unpad_batch(tree: Any, batch_size: int) -> Any:
    """Drop the padding added by :func:`pad_batch`: the first ``batch_size`` members of every leaf."""
    return jax.tree.map(lambda x: x[:batch_size], tree)


def shard_batch(tree: Any, mesh: Mesh) -> Any:
    """Place a batch on ``mesh``, split along its leading axis (``PartitionSpec("batch")``).

    The leading length must be a multiple of the mesh size (see :func:`pad_batch`); JAX refuses
    the placement otherwise. Works on concrete and on traced arrays.
    """
    sharding = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
    b = _batch_size(tree)
    if b % mesh.size:
        raise ValueError(
            f"shard_batch: batch size {b} is not a multiple of the {mesh.size} devices; pad it first (pad_batch)"
        )
    return jax.tree.map(lambda x: jax.device_put(x, sharding), tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place ``tree`` (arrays) on every device of ``mesh`` (``PartitionSpec()``)."""
    sharding = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda x: jax.device_put(x, sharding), tree)


def sharded_vmap(
    fn: Callable[..., Any],
    in_axes: int | None | Sequence[int | None] = 0,
    devices: Sequence[jax.Device] | None = None,
) -> Callable[..., Any]:
    """``jax.jit(jax.vmap(fn))`` with the batch split over ``devices``; padding handled and dropped.

    Arguments:
        fn: function of one member; its arguments and outputs are pytrees of arrays (close over
            anything else, or pass it with ``in_axes=None``).
        in_axes: per positional argument, ``0`` (batched along the leading axis) or ``None`` (the
            same for every member; replicated on every device); one value applies to all
            arguments. Other axes are not supported (move the batch axis to the front).
        devices: devices to split over (default: ``jax.devices()``).

    Returns:
        ``run(*args)``: every output leaf has a leading axis of the batch size ``B`` (the padding
        members, repeats of the last one, are computed and dropped). ``run.mesh`` is the mesh and
        ``run.n_devices`` its size.

    Raises:
        ValueError (when called): no batched argument, leaves with different batch lengths, an
        empty batch, or ``in_axes`` of the wrong length or with an axis other than 0 / None.
    """
    mesh = batch_mesh(devices)
    n_dev = mesh.size
    batched = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
    replicated = NamedSharding(mesh, PartitionSpec())

    def axes_for(n_args: int) -> tuple[int | None, ...]:
        if in_axes is None or isinstance(in_axes, int):
            axes = (in_axes,) * n_args
        else:
            axes = tuple(in_axes)
            if len(axes) != n_args:
                raise ValueError(
                    f"sharded_vmap: in_axes has {len(axes)} entries for {n_args} positional arguments"
                )
        bad = [a for a in axes if a not in (0, None)]
        if bad:
            raise ValueError(f"sharded_vmap: in_axes entries must be 0 or None, got {bad}")
        if 0 not in axes:
            raise ValueError("sharded_vmap: no batched argument (every in_axes entry is None)")
        return axes

    compiled: dict[tuple, Callable] = {}

    def run(*args):
        axes = axes_for(len(args))
        sizes = {_batch_size(a, f"argument {i}") for i, (a, ax) in enumerate(zip(args, axes)) if ax == 0}
        if len(sizes) != 1:
            raise ValueError(f"sharded_vmap: batched arguments have different batch sizes {sorted(sizes)}")
        b = sizes.pop()
        placed = []
        for a, ax in zip(args, axes):
            if ax == 0:
                a, _ = pad_batch(a, n_dev)
                placed.append(shard_batch(a, mesh))
            else:
                placed.append(replicate(a, mesh))
        if axes not in compiled:
            vf = jax.vmap(fn, in_axes=axes)

            def body(*xs):
                # constraints (not jit's in/out_shardings) so that jax.grad can transpose the call
                xs = [jax.lax.with_sharding_constraint(x, batched if ax == 0 else replicated)
                      for x, ax in zip(xs, axes)]
                return jax.lax.with_sharding_constraint(vf(*xs), batched)

            compiled[axes] = jax.jit(body)
        return unpad_batch(compiled[axes](*placed), b)

    run.mesh = mesh
    run.n_devices = n_dev
    run.__doc__ = f"sharded over {n_dev} device(s): " + (fn.__doc__ or getattr(fn, "__name__", "fn"))
    return run


def stack_members(members: Sequence[Any]) -> Any:
    """Stack equally structured pytrees (e.g. one model per worm) into one batch along a new axis 0.

    Arguments:
        members: pytrees with the same structure and leaf shapes (equinox modules included: their
            static fields must agree).

    Returns:
        The batch: each array leaf becomes ``jnp.stack`` of the members' leaves.
    """
    members = list(members)
    if not members:
        raise ValueError("stack_members: no members to stack")
    structs = {jax.tree.structure(m) for m in members}
    if len(structs) != 1:
        raise ValueError("stack_members: the members have different pytree structures (or static fields)")
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *members)

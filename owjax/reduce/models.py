"""Reduced-order recurrent models: one flax recurrent layer (simple RNN, LSTM or GRU) + a dense read-out.

The boundary is pure functions of plain pytrees, so ``jax.vmap`` runs many independent models (the
seeds of one configuration) as one batched computation::

    spec   = ModelSpec("gru", hidden=8, n_in=4, n_out=4)
    params = init_params(spec, key)                 # {"cell": flax params, "readout": {"w", "b"}}
    y      = apply(spec, params, x)                 # x (T, n_in) → y (T, n_out), normalised units
    ys     = jax.vmap(lambda p: apply_batch(spec, p, xs))(stacked_params)   # seeds × sequences

As in the study: one recurrent layer (flax ``SimpleCell`` with tanh, ``LSTMCell``, ``GRUCell``; their
default initialisers), the hidden state starting at zero at the first sample, and a linear read-out
applied at every time step. Parameter counts differ slightly from Keras' (flax's GRU has one more
input bias per gate than Keras' ``reset_after=False`` GRU of the study: GRU-8 356 vs 348
parameters; simple RNN and LSTM counts are equal: RNN-16 404, LSTM-8 452).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

__all__ = ["CELLS", "ModelSpec", "init_params", "apply", "apply_batch", "n_params"]

CELLS = ("rnn", "lstm", "gru")


@dataclass(frozen=True)
class ModelSpec:
    """A reduced model's structure (static).

    Attributes:
        cell: ``rnn`` (flax ``SimpleCell``, tanh), ``lstm`` (``LSTMCell``) or ``gru`` (``GRUCell``).
        hidden: units of the recurrent layer.
        n_in, n_out: numbers of input and output channels.
    """

    cell: str
    hidden: int
    n_in: int
    n_out: int

    def __post_init__(self):
        if self.cell not in CELLS:
            from owjax.core.errors import unknown_name_message

            raise ValueError(unknown_name_message("recurrent cell", self.cell, CELLS))
        if self.hidden < 1 or self.n_in < 1 or self.n_out < 1:
            raise ValueError(f"hidden, n_in and n_out must be ≥ 1, got {self.hidden}, {self.n_in}, {self.n_out}")

    def to_dict(self) -> dict:
        return asdict(self)


def _cell(spec: ModelSpec):
    import flax.linen as nn

    return {"rnn": nn.SimpleCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[spec.cell](features=spec.hidden)


def init_params(spec: ModelSpec, key: PRNGKeyArray, dtype=jnp.float32) -> PyTree[Array]:
    """Fresh parameters: flax's initialisers for the cell, Glorot-normal read-out weights, zero bias."""
    k1, k2 = jax.random.split(key)
    cell = _cell(spec)
    carry = cell.initialize_carry(k1, (spec.n_in,))
    p = cell.init(k1, carry, jnp.zeros((spec.n_in,), dtype))["params"]
    w = jax.random.normal(k2, (spec.hidden, spec.n_out), dtype) * jnp.sqrt(2.0 / (spec.hidden + spec.n_out))
    params = {"cell": p, "readout": {"w": w, "b": jnp.zeros((spec.n_out,), dtype)}}
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), params)


def apply(spec: ModelSpec, params: PyTree[Array], x: Float[Array, "T n_in"]) -> Float[Array, "T n_out"]:
    """Run the model over one sequence (normalised inputs → normalised outputs), hidden state from zero."""
    cell = _cell(spec)
    carry = jax.tree_util.tree_map(lambda a: jnp.zeros_like(a, x.dtype),
                                   cell.initialize_carry(jax.random.PRNGKey(0), (spec.n_in,)))

    def step(c, xt):
        c, h = cell.apply({"params": params["cell"]}, c, xt)
        return c, h

    _, hs = jax.lax.scan(step, carry, x)
    return hs @ params["readout"]["w"] + params["readout"]["b"]


def apply_batch(spec: ModelSpec, params: PyTree[Array], xs: Float[Array, "N T n_in"]) -> Float[Array, "N T n_out"]:
    """:func:`apply` over a batch of sequences."""
    return jax.vmap(lambda x: apply(spec, params, x))(xs)


def n_params(spec: ModelSpec) -> int:
    """Number of trainable numbers of one model (recurrent layer + read-out)."""
    p = jax.eval_shape(lambda k: init_params(spec, k), jax.random.PRNGKey(0))
    return int(sum(int(jnp.prod(jnp.asarray(a.shape))) for a in jax.tree_util.tree_leaves(p)))

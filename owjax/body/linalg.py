"""Small dense blocks and block-tridiagonal solves for the rod body (pure JAX, jit/vmap/grad-safe).

The body's velocities solve M v = Q with M (147 × 147) symmetric positive definite and
block-tridiagonal in 3 × 3 blocks (one block row per rod). A dense LU costs O(n³) per right-hand
side and a sequential block-Thomas sweep has 96 dependent steps; **block cyclic reduction** needs
log2(49) ≈ 6 levels of independent 3 × 3 work, which XLA fuses into a handful of kernels and which
vectorises across a vmapped batch of bodies (measured in docs/body.md).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["matmul3", "matvec3", "inv3", "solve_block_tridiagonal"]


def matmul3(a: Float[Array, "... 3 3"], b: Float[Array, "... 3 3"]) -> Float[Array, "... 3 3"]:
    """Batched 3 × 3 product written as broadcast-multiply-sum (fuses better than tiny dots on CPU)."""
    return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


def matvec3(a: Float[Array, "... 3 3"], x: Float[Array, "... 3"]) -> Float[Array, "... 3"]:
    """Batched 3 × 3 matrix times 3-vector."""
    return jnp.sum(a * x[..., None, :], axis=-1)


def inv3(m: Float[Array, "... 3 3"]) -> Float[Array, "... 3 3"]:
    """Batched inverse of 3 × 3 matrices by the adjugate (exact for the SPD blocks used here)."""
    a, b, c = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    d, e, f = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    g, h, i = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    A = e * i - f * h
    B = -(d * i - f * g)
    C = d * h - e * g
    det = a * A + b * B + c * C
    adj = jnp.stack([
        jnp.stack([A, -(b * i - c * h), b * f - c * e], -1),
        jnp.stack([B, a * i - c * g, -(a * f - c * d)], -1),
        jnp.stack([C, -(a * h - b * g), a * e - b * d], -1),
    ], -2)
    return adj / det[..., None, None]


def _shift_right(x, n_out):
    """[0, x0, x1, …] truncated/padded to n_out along axis 0."""
    z = jnp.zeros((1,) + x.shape[1:], x.dtype)
    y = jnp.concatenate([z, x], 0)
    if y.shape[0] < n_out:
        y = jnp.concatenate([y, jnp.zeros((n_out - y.shape[0],) + x.shape[1:], x.dtype)], 0)
    return y[:n_out]


def _pad_to(x, n_out):
    if x.shape[0] < n_out:
        x = jnp.concatenate([x, jnp.zeros((n_out - x.shape[0],) + x.shape[1:], x.dtype)], 0)
    return x[:n_out]


def solve_block_tridiagonal(lower: Float[Array, "n 3 3"], diag: Float[Array, "n 3 3"],
                            upper: Float[Array, "n 3 3"], rhs: Float[Array, "n 3"]) -> Float[Array, "n 3"]:
    """Solve the block-tridiagonal system by block cyclic reduction.

    Row i reads ``lower[i] x[i-1] + diag[i] x[i] + upper[i] x[i+1] = rhs[i]`` (``lower[0]`` and
    ``upper[n-1]`` are ignored). No pivoting: meant for symmetric positive definite (or block
    diagonally dominant) matrices, whose Schur complements stay SPD.

    Arguments:
        lower, diag, upper: (n, 3, 3) blocks.
        rhs: (n, 3).

    Returns:
        x: (n, 3).
    """
    n = diag.shape[0]
    if n == 1:
        return matvec3(inv3(diag), rhs)
    lower = lower.at[0].set(0.0)
    upper = upper.at[n - 1].set(0.0)
    ne = (n + 1) // 2
    d_odd_inv = inv3(diag[1::2])
    lo_o, up_o, y_o = lower[1::2], upper[1::2], rhs[1::2]
    lo_e, up_e, d_e, y_e = lower[0::2], upper[0::2], diag[0::2], rhs[0::2]
    # neighbours of even row k: odd k-1 on the left, odd k on the right (zero where missing)
    dinv_l, dinv_r = _shift_right(d_odd_inv, ne), _pad_to(d_odd_inv, ne)
    alpha = matmul3(lo_e, dinv_l)
    gamma = matmul3(up_e, dinv_r)
    d_new = d_e - matmul3(alpha, _shift_right(up_o, ne)) - matmul3(gamma, _pad_to(lo_o, ne))
    lo_new = -matmul3(alpha, _shift_right(lo_o, ne))
    up_new = -matmul3(gamma, _pad_to(up_o, ne))
    y_new = y_e - matvec3(alpha, _shift_right(y_o, ne)) - matvec3(gamma, _pad_to(y_o, ne))
    x_e = solve_block_tridiagonal(lo_new, d_new, up_new, y_new)
    no = n // 2
    x_right = _pad_to(x_e[1:], no)  # even neighbour k+1 of odd k (missing at the end when n is even)
    x_o = matvec3(d_odd_inv, y_o - matvec3(lo_o, x_e[:no]) - matvec3(up_o, x_right))
    out = jnp.zeros((n, 3), rhs.dtype)
    return out.at[0::2].set(x_e).at[1::2].set(x_o)

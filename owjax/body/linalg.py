"""Small dense blocks and block-tridiagonal solves for the rod body (pure JAX, jit/vmap/grad-safe).

The body's velocities solve M v = Q with M (147 × 147) symmetric positive definite and
block-tridiagonal in 3 × 3 blocks (one block row per rod). A dense LU costs O(n³) per right-hand
side and a sequential block-Thomas sweep has 96 dependent steps; **block cyclic reduction** needs
log2(49) ≈ 6 levels of independent 3 × 3 work. Arrays are stored *structure of arrays*: a block
field is (3, 3, n) and a vector field (3, n), the rod index last, so every operation is an
element-wise loop over rods that XLA fuses and vectorises (with a vmapped batch in front). An
array-of-structures (n, 3, 3) layout measured 40× slower per body in a batch of 256.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["matmul3", "matvec3", "inv3", "solve_block_tridiagonal"]


def matmul3(a: Float[Array, "3 3 n"], b: Float[Array, "3 3 n"]) -> Float[Array, "3 3 n"]:
    """Rod-wise 3 × 3 products (SoA layout)."""
    return a[:, 0:1] * b[0:1] + a[:, 1:2] * b[1:2] + a[:, 2:3] * b[2:3]


def matvec3(a: Float[Array, "3 3 n"], x: Float[Array, "3 n"]) -> Float[Array, "3 n"]:
    """Rod-wise 3 × 3 matrix times 3-vector (SoA layout)."""
    return a[:, 0] * x[0] + a[:, 1] * x[1] + a[:, 2] * x[2]


def inv3(m: Float[Array, "3 3 n"]) -> Float[Array, "3 3 n"]:
    """Rod-wise inverse of 3 × 3 blocks by the adjugate (SoA layout)."""
    a, b, c = m[0, 0], m[0, 1], m[0, 2]
    d, e, f = m[1, 0], m[1, 1], m[1, 2]
    g, h, i = m[2, 0], m[2, 1], m[2, 2]
    A = e * i - f * h
    B = -(d * i - f * g)
    C = d * h - e * g
    det = a * A + b * B + c * C
    adj = jnp.stack([
        jnp.stack([A, -(b * i - c * h), b * f - c * e]),
        jnp.stack([B, a * i - c * g, -(a * f - c * d)]),
        jnp.stack([C, -(a * h - b * g), a * e - b * d]),
    ])
    return adj / det


def _shift_right(x, n_out):
    """[0, x0, x1, …] along the last axis, truncated/zero-padded to n_out."""
    pad = [(0, 0)] * (x.ndim - 1)
    y = jnp.pad(x, pad + [(1, max(0, n_out - x.shape[-1] - 1))])
    return y[..., :n_out]


def _pad_to(x, n_out):
    pad = [(0, 0)] * (x.ndim - 1)
    return jnp.pad(x, pad + [(0, max(0, n_out - x.shape[-1]))])[..., :n_out]


def solve_block_tridiagonal(lower: Float[Array, "3 3 n"], diag: Float[Array, "3 3 n"],
                            upper: Float[Array, "3 3 n"], rhs: Float[Array, "3 n"]) -> Float[Array, "3 n"]:
    """Solve a block-tridiagonal system by block cyclic reduction (SoA layout, rod index last).

    Row i reads ``lower[..., i] x[i-1] + diag[..., i] x[i] + upper[..., i] x[i+1] = rhs[:, i]``
    (``lower[..., 0]`` and ``upper[..., n-1]`` must be zero). No pivoting: meant for symmetric
    positive definite (or block diagonally dominant) matrices, whose Schur complements stay SPD.

    Arguments:
        lower, diag, upper: (3, 3, n) blocks.
        rhs: (3, n).

    Returns:
        x: (3, n).
    """
    n = diag.shape[-1]
    if n == 1:
        return matvec3(inv3(diag), rhs)
    ne, no = (n + 1) // 2, n // 2
    d_odd_inv = inv3(diag[..., 1::2])
    lo_o, up_o, y_o = lower[..., 1::2], upper[..., 1::2], rhs[..., 1::2]
    lo_e, up_e, d_e, y_e = lower[..., 0::2], upper[..., 0::2], diag[..., 0::2], rhs[..., 0::2]
    # neighbours of even row k: odd k-1 on the left, odd k on the right (zero where missing)
    alpha = matmul3(lo_e, _shift_right(d_odd_inv, ne))
    gamma = matmul3(up_e, _pad_to(d_odd_inv, ne))
    d_new = d_e - matmul3(alpha, _shift_right(up_o, ne)) - matmul3(gamma, _pad_to(lo_o, ne))
    lo_new = -matmul3(alpha, _shift_right(lo_o, ne))
    up_new = -matmul3(gamma, _pad_to(up_o, ne))
    y_new = y_e - matvec3(alpha, _shift_right(y_o, ne)) - matvec3(gamma, _pad_to(y_o, ne))
    x_e = solve_block_tridiagonal(lo_new, d_new, up_new, y_new)
    x_right = _pad_to(x_e[..., 1:], no)  # even neighbour k+1 of odd k (missing at the end when n is even)
    x_o = matvec3(d_odd_inv, y_o - matvec3(lo_o, x_e[..., :no]) - matvec3(up_o, x_right))
    both = jnp.stack([x_e, _pad_to(x_o, ne)], -1)  # (3, ne, 2): interleave even and odd rods
    return both.reshape(3, 2 * ne)[:, :n]

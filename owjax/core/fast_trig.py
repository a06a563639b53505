"""Sine and cosine together, as one fused polynomial: several times faster than ``jnp.sin`` and
``jnp.cos`` on CPU.

On this project's CPU (jaxlib 0.10, AVX2) XLA evaluates ``sin`` and ``cos`` element by element at
≈ 6 ns per float32 element, against ≈ 0.9 ns for ``exp`` or ``tanh`` and 0.3 ns for a multiply-add:
they are not vectorised. The body surrogate's resistive-force kinematics take the cosine and sine of
48 tangent angles at every time point (≈ 12 000 per 5-s sample; with ``sin_cos`` the whole surrogate
gained ≈ 10 of ≈ 180 µs per sample, the rest of the kinematics dominating: experiments/body_surrogate).
:func:`sin_cos` does the same with arithmetic XLA vectorises and fuses:

1. reduction to the quadrant: n = round(x · 2/π), r = x − n·π/2, with π/2 split into four parts
   (Cody & Waite 1980) so that n·(π/2)'s leading parts are exact;
2. Taylor polynomials of sin and cos on |r| ≤ π/4 (to r¹⁷ and r¹⁸: truncation < 1e-19 there,
   below float64's rounding), evaluated by Horner's rule;
3. the quadrant n mod 4 swaps and negates them.

Accuracy (``tests/test_fast_trig.py``, against float64 references): absolute error ≤ 1e-7 in
float32 (``jnp.sin``: 3.3e-8) and ≤ 2e-16 in float64, for |x| ≤ 1e3. The reduction loses accuracy
as |x| grows (as every Cody–Waite reduction does): use it for angles, not for arguments of 10⁶ rad
and beyond. It is differentiable (its derivative is the derivative of the polynomial, within
the same error of cos and −sin).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["sin_cos"]

# π/2 = _PIO2_1 + _PIO2_2 + _PIO2_3 + _PIO2_4 (to 1e-40; from 60 decimal digits of π): the first three
# fit in float32's 24 bits, so n · _PIO2_1 is exact for |n| < 2¹⁶ in float32, and every product but
# the last is exact in float64 for |n| < 2²⁹; the last carries what float64 cannot
_PIO2_1 = 1.5703125
_PIO2_2 = 4.837512969970703125e-4
_PIO2_3 = 7.549789954891882e-08
_PIO2_4 = -2.6718907338610155e-24
_TWO_OVER_PI = 2.0 / math.pi

# Taylor coefficients of sin r / r and cos r in powers of r², highest first (Horner)
_SIN = tuple((-1.0) ** k / math.factorial(2 * k + 1) for k in range(8, -1, -1))  # r⁰ … r¹⁶ of sin(r)/r
_COS = tuple((-1.0) ** k / math.factorial(2 * k) for k in range(9, -1, -1))  # r⁰ … r¹⁸ of cos(r)


def _horner(z, coeffs):
    acc = jnp.full_like(z, coeffs[0])
    for c in coeffs[1:]:
        acc = acc * z + c
    return acc


def sin_cos(x: Float[Array, "*shape"]) -> tuple[Float[Array, "*shape"], Float[Array, "*shape"]]:
    """``(sin x, cos x)`` of a floating array, elementwise (module docstring: method and accuracy).

    Arguments:
        x: angles (rad), float32 or float64; meant for |x| ≲ 1e3 (accuracy: module docstring).

    Returns:
        ``(sin x, cos x)``, each of the shape and dtype of ``x``.
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"sin_cos needs a floating-point array, got dtype {x.dtype}")
    n = jnp.round(x * _TWO_OVER_PI)
    r = (((x - n * _PIO2_1) - n * _PIO2_2) - n * _PIO2_3) - n * _PIO2_4
    z = r * r
    s = r * _horner(z, _SIN)
    c = _horner(z, _COS)
    q = n - 4.0 * jnp.floor(n * 0.25)  # n mod 4, in {0, 1, 2, 3}
    odd = (q == 1.0) | (q == 3.0)  # x = r + nπ/2: an odd quadrant swaps sin and cos …
    sin_x = jnp.where(odd, c, s)
    cos_x = jnp.where(odd, s, c)
    # … and sin is negative for q ∈ {2, 3}, cos for q ∈ {1, 2}
    return jnp.where(q >= 2.0, -sin_x, sin_x), jnp.where((q == 1.0) | (q == 2.0), -cos_x, cos_x)

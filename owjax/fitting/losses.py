"""Differentiable loss terms and smooth read-outs used by the fitting experiments.

Every function here is pure JAX (jit/vmap/grad safe) and documents its units. Read-outs whose
textbook definition is not differentiable (a period from peak times, ``min(1, ·)`` of a muscle
activation) come with a smooth counterpart that agrees with it where it matters:

* :func:`autocorrelation_period` — the lag of the first autocorrelation peak, refined by a
  parabola through the three samples around it. The peak index is chosen without gradient (it is
  piecewise constant); the parabola vertex is a smooth function of the trace, so the estimate
  is continuous and its gradient is the sensitivity of the true period.
* :func:`soft_saturation` — ``min(1, x)`` with a softplus corner (``sharpness`` sets its width).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = [
    "mean_squared_error",
    "normalised_mse",
    "relative_squared_error",
    "soft_saturation",
    "muscle_activation",
    "autocorrelation",
    "autocorrelation_period",
]


def mean_squared_error(sim: Float[Array, "..."], target: Float[Array, "..."]) -> Float[Array, ""]:
    """mean((sim − target)²), in the traces' unit squared."""
    return jnp.mean((sim - target) ** 2)


def normalised_mse(
    sim: Float[Array, "..."], target: Float[Array, "..."], scale: float | Float[Array, ""]
) -> Float[Array, ""]:
    """mean((sim − target)²) / scale² (dimensionless; ``scale`` in the traces' unit, e.g. 1 mV)."""
    return jnp.mean((sim - target) ** 2) / scale**2


def relative_squared_error(value: Float[Array, "..."], target: float) -> Float[Array, "..."]:
    """((value − target)/target)² (dimensionless)."""
    return ((value - target) / target) ** 2


def soft_saturation(x: Float[Array, "..."], sharpness: float = 20.0) -> Float[Array, "..."]:
    """Smooth ``min(1, x)``: 1 − softplus(k·(1 − x))/k with k = ``sharpness``.

    Equals ``x`` up to ``log(2)/k`` at x = 1 and converges to ``min(1, x)`` away from 1; unlike
    ``min`` it keeps a gradient for saturated inputs.
    """
    return 1.0 - jax.nn.softplus(sharpness * (1.0 - x)) / sharpness


def muscle_activation(
    ca_mM: Float[Array, "..."], max_ca_mM: float = 4e-7, smooth: float | None = None
) -> Float[Array, "..."]:
    """DD002 muscle activation min(1, [Ca]/max_ca) (dimensionless); ``smooth`` = soft corner sharpness.

    Arguments:
        ca_mM: intracellular Ca (mM, c302's unit).
        max_ca_mM: Ca giving full activation (DD002: 4e-7 mM).
        smooth: ``None`` for the exact ``min``, else the sharpness of :func:`soft_saturation`.
    """
    x = ca_mM / max_ca_mM
    return jnp.minimum(1.0, x) if smooth is None else soft_saturation(x, smooth)


def autocorrelation(x: Float[Array, " t"], unbiased: bool = True) -> Float[Array, " t"]:
    """Normalised autocorrelation of a 1-D trace (lag 0 … T−1 samples; value 1 at lag 0).

    Arguments:
        x: the trace (any unit); its mean is removed.
        unbiased: divide lag k by the number of overlapping samples (T − k) instead of T, so a
            periodic trace has equally high peaks at every multiple of its period.

    Returns:
        The autocorrelation, dimensionless, shape (T,).
    """
    n = x.shape[0]
    y = x - jnp.mean(x)
    f = jnp.fft.rfft(y, n=2 * n)
    acf = jnp.fft.irfft(f * jnp.conj(f), n=2 * n)[:n]
    if unbiased:
        acf = acf * n / (n - jnp.arange(n))
    return acf / (acf[0] + 1e-30)


def autocorrelation_period(
    x: Float[Array, " t"],
    dt: float,
    min_period: float,
    max_period: float,
    min_peak: float = 0.2,
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """Smooth period estimate: first autocorrelation peak in [min_period, max_period].

    The first local maximum of the (unbiased) autocorrelation whose height exceeds ``min_peak``
    and whose lag lies in the window is taken (the highest one in the window if none qualifies),
    and refined by parabolic interpolation. The index choice carries no gradient; the vertex of the
    parabola does.

    Arguments:
        x: trace sampled every ``dt`` (e.g. Ca of one cell after the initial transient).
        dt: sampling interval (the period comes out in the same unit, e.g. s).
        min_period, max_period: search window (same unit as ``dt``); ``max_period`` should be at
            most half the trace length.
        min_peak: autocorrelation height a peak must exceed to count (0–1).

    Returns:
        ``(period, peak_height)``: the period (unit of ``dt``) and the autocorrelation at the peak
        (≈1 for a clean oscillation, small when the trace does not oscillate).
    """
    n = x.shape[0]
    acf = autocorrelation(x)
    lags = jnp.arange(n) * dt
    lo = max(1, int(min_period / dt))
    hi = min(n - 2, int(max_period / dt) + 1)
    if hi <= lo + 1:
        raise ValueError(
            f"autocorrelation_period: window [{min_period}, {max_period}] is empty for {n} samples of {dt}"
        )
    a = jax.lax.stop_gradient(acf)
    i = jnp.arange(n)
    inside = (i >= lo) & (i <= hi)
    is_peak = jnp.zeros(n, bool).at[1:-1].set((a[1:-1] > a[:-2]) & (a[1:-1] >= a[2:]))
    good = is_peak & inside & (a > min_peak)
    fallback = jnp.argmax(jnp.where(inside, a, -jnp.inf))
    k = jnp.where(jnp.any(good), jnp.argmax(good), fallback)
    k = jnp.clip(k, 1, n - 2)
    y0, y1, y2 = acf[k - 1], acf[k], acf[k + 1]
    den = y0 - 2.0 * y1 + y2
    safe = jnp.where(jnp.abs(den) > 1e-12, den, -1e-12)
    shift = jnp.clip(0.5 * (y0 - y2) / safe, -0.5, 0.5)
    period = lags[k] + shift * dt
    height = y1 - 0.25 * (y0 - y2) * shift
    return period, height

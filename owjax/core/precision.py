"""Floating-point precision: chosen once per run at the entry point, never toggled by library code.

JAX's 64-bit mode (``jax_enable_x64``) is process-global. owjax's library functions only *check*
it (:func:`require_dtype`) and raise a clear error when a float64 run is asked for without it; the
command-line entry points (``python -m owjax.simulate``, ``owjax.fit``, ``owjax.registry``) call
:func:`set_precision` once from the run's ``dtype`` setting. In Python, call
``jax.config.update("jax_enable_x64", True)`` yourself before building float64 models.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["DTYPES", "PrecisionError", "require_dtype", "set_precision"]

#: the float dtypes owjax runs in
DTYPES = ("float32", "float64")


class PrecisionError(ValueError):
    """float64 was requested while JAX runs in 32-bit mode (or an unknown dtype was named)."""


def require_dtype(dtype, where: str = "owjax"):
    """The JAX dtype for ``dtype`` (``"float32"``/``"float64"`` or a numpy/jax dtype), checked.

    Raises:
        PrecisionError: unknown dtype, or float64 while ``jax_enable_x64`` is off.
    """
    name = str(jnp.dtype(dtype)) if not isinstance(dtype, str) else dtype
    if name not in DTYPES:
        raise PrecisionError(f"{where}: dtype must be one of {DTYPES}, got {dtype!r}")
    if name == "float64" and not jax.config.read("jax_enable_x64"):
        raise PrecisionError(
            f"{where}: float64 requested but JAX runs in 32-bit mode. The command-line entry points set "
            "the precision from dtype=…; in Python call jax.config.update('jax_enable_x64', True) once "
            "before building models, or use dtype=float32"
        )
    return jnp.float64 if name == "float64" else jnp.float32


def set_precision(dtype: str) -> None:
    """Entry points only (once per process, before anything is built): JAX's 64-bit mode on for
    ``float64`` runs, off for ``float32`` runs (so nothing is silently promoted to float64)."""
    if dtype not in DTYPES:
        raise PrecisionError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    jax.config.update("jax_enable_x64", dtype == "float64")

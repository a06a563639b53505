"""Fitting experiments for ``python -m owjax.fit`` (one module per experiment kind)."""

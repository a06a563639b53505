"""WCON export (OpenWorm tracker-commons format, ``WCON_format.md`` / ``wcon_schema.json``).

A WCON file is plain JSON with required ``units`` (here t in s, x and y in mm) and ``data``, a list
of records ``{id, t, x, y}`` where x[i] and y[i] are the skeleton points at time t[i]. ``metadata``
names the software (owjax, its version and the run's settings); custom fields start with ``@``.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from owjax.core.checkpoint import atomic_write_text

__all__ = ["write_wcon", "read_wcon", "WCON_UNITS"]

WCON_UNITS = {"t": "s", "x": "mm", "y": "mm"}


def _round(a: np.ndarray, digits: int) -> list:
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()


def write_wcon(path: str | Path, t_s: np.ndarray, x_mm: np.ndarray, y_mm: np.ndarray, settings: Mapping[str, Any] | None = None,
               worm_id: str = "1", digits: int = 6, extra: Mapping[str, Any] | None = None) -> Path:
    """Write a WCON file atomically.

    Arguments:
        path: output file (``.wcon``).
        t_s: times (T,) in s.
        x_mm, y_mm: skeleton (T, P) in mm, head first.
        settings: the run's settings, stored under ``metadata.software.settings`` (JSON-able).
        worm_id: the record's ``id``.
        digits: decimals kept (1e-6 mm = 1 nm by default).
        extra: custom ``@owjax`` fields (e.g. the summary metrics).

    Returns:
        The path.
    """
    from owjax import __version__

    t = np.asarray(t_s, float)
    x, y = np.asarray(x_mm, float), np.asarray(y_mm, float)
    if x.shape != y.shape or x.ndim != 2 or x.shape[0] != t.shape[0]:
        raise ValueError(f"WCON needs x, y of shape (T, points) matching t (T,); got t {t.shape}, x {x.shape}, y {y.shape}")
    doc = {
        "units": dict(WCON_UNITS),
        "metadata": {
            "who": "owjax",
            "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "software": {"name": "owjax", "version": str(__version__), "featureID": "@owjax",
                         "settings": json.loads(json.dumps(dict(settings or {}), default=str))},
        },
        "data": [{"id": str(worm_id), "t": _round(t, 6), "x": _round(x, digits), "y": _round(y, digits)}],
    }
    if extra:
        doc["@owjax"] = json.loads(json.dumps(dict(extra), default=str))
    return atomic_write_text(path, json.dumps(doc, separators=(",", ":")))


def read_wcon(path: str | Path) -> dict:
    """Read a WCON file written by :func:`write_wcon` (or any single-file WCON with mm/s units).

    Returns:
        dict with ``t`` (T,), ``x``/``y`` (T, P) arrays of the first record, plus ``units``/``metadata``.
    """
    doc = json.loads(Path(path).read_text())
    for key in ("units", "data"):
        if key not in doc:
            raise ValueError(f"{path}: not a WCON file (missing required {key!r})")
    rec = doc["data"][0] if isinstance(doc["data"], list) else doc["data"]
    return {"t": np.asarray(rec["t"], float), "x": np.asarray(rec["x"], float), "y": np.asarray(rec["y"], float),
            "id": rec.get("id"), "units": doc["units"], "metadata": doc.get("metadata", {})}

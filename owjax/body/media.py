"""Drag of the medium the body moves in: agar, water, anything between, or explicit coefficients.

Resistive-force drag after Boyle, Berri & Cohen (2012): whole-body tangential (C_par) and normal
(C_perp) coefficients, agar 3.2e-3 / 128e-3 kg/s and water 3.3e-6 / 5.2e-6 kg/s. A medium number
m ∈ [0, 1] interpolates linearly, C = (C_agar − C_water)·m + C_water, as BBC's ``MEDIUM`` does.
The per-rod coefficients are total / (2·(N_segments + 1)) (CE_locomotion's fix of BBC's macro; see
:mod:`owjax.body.geometry`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from owjax.body.geometry import DRAG_KG_PER_S_TO_UN_S_PER_MM, N_SEGMENTS

__all__ = ["Medium", "resolve_medium", "per_rod_drag", "AGAR", "WATER", "MEDIUM_NAMES"]

#: whole-body drag totals (kg/s), BBC worm.cc / CE_locomotion WormBody.h
AGAR_PAR_KG_S, AGAR_PERP_KG_S = 3.2e-3, 128e-3
WATER_PAR_KG_S, WATER_PERP_KG_S = 3.3e-6, 5.2e-6
MEDIUM_NAMES = ("agar", "water")


@dataclass(frozen=True)
class Medium:
    """A medium's whole-body resistive-force drag coefficients.

    Attributes:
        name: label (``agar``, ``water``, ``medium=0.3`` or ``custom``).
        c_par_total_kg_s: whole-body tangential drag (kg/s).
        c_perp_total_kg_s: whole-body normal drag (kg/s).
        value: the BBC medium number in [0, 1] when the medium is on the water–agar line, else None.
    """

    name: str
    c_par_total_kg_s: float
    c_perp_total_kg_s: float
    value: float | None = None

    def per_rod(self, n_segments: int = N_SEGMENTS) -> tuple[float, float]:
        """(C_par, C_perp) per rod in body units (µN·s/mm): total / (2 (n_segments + 1))."""
        k = DRAG_KG_PER_S_TO_UN_S_PER_MM / (2.0 * (n_segments + 1))
        return self.c_par_total_kg_s * k, self.c_perp_total_kg_s * k

    @property
    def anisotropy(self) -> float:
        """C_perp / C_par (40 on agar, 1.58 in water)."""
        return self.c_perp_total_kg_s / self.c_par_total_kg_s

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "c_par_total_kg_s": self.c_par_total_kg_s,
                "c_perp_total_kg_s": self.c_perp_total_kg_s, "value": self.value}


def interpolated(value: float) -> Medium:
    """The BBC medium ``value`` ∈ [0, 1] (0 water, 1 agar), linear in both coefficients."""
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"body.medium number must be in [0, 1] (0 = water, 1 = agar), got {value!r}")
    name = "agar" if v == 1.0 else "water" if v == 0.0 else f"medium={v:g}"
    return Medium(name, (AGAR_PAR_KG_S - WATER_PAR_KG_S) * v + WATER_PAR_KG_S,
                  (AGAR_PERP_KG_S - WATER_PERP_KG_S) * v + WATER_PERP_KG_S, v)


AGAR = interpolated(1.0)
WATER = interpolated(0.0)


def per_rod_drag(medium, dtype=None):
    """Per-rod (C_par, C_perp) (µN·s/mm) of the medium number(s) m ∈ [0, 1], linear in m as
    :func:`interpolated`, as JAX arrays: traceable (under jit/vmap), so the range is not checked here."""
    import jax.numpy as jnp

    ap, aq = AGAR.per_rod()
    wp, wq = WATER.per_rod()
    m = jnp.asarray(medium, dtype)
    return wp + (ap - wp) * m, wq + (aq - wq) * m


def resolve_medium(spec: Any) -> Medium:
    """A :class:`Medium` from ``"agar"``, ``"water"``, a number in [0, 1], a mapping
    ``{c_par_total_kg_s, c_perp_total_kg_s}`` (explicit coefficients, kg/s) or a Medium.

    Raises:
        ValueError: unknown name, number outside [0, 1], non-positive/NaN coefficients, unknown keys.
    """
    if isinstance(spec, Medium):
        return spec
    if isinstance(spec, bool):
        raise ValueError(f"body.medium must be 'agar', 'water', a number in [0, 1] or explicit coefficients, got {spec!r}")
    if isinstance(spec, str):
        s = spec.strip().lower()
        if s == "agar":
            return AGAR
        if s == "water":
            return WATER
        try:
            return interpolated(float(s))
        except ValueError:
            raise ValueError(f"unknown body.medium {spec!r}; allowed: {list(MEDIUM_NAMES)}, a number in [0, 1] "
                             "(0 = water, 1 = agar) or {c_par_total_kg_s, c_perp_total_kg_s}") from None
    if isinstance(spec, (int, float)):
        return interpolated(spec)
    if isinstance(spec, Mapping):
        allowed = {"c_par_total_kg_s", "c_perp_total_kg_s", "name"}
        bad = sorted(set(spec) - allowed)
        missing = sorted({"c_par_total_kg_s", "c_perp_total_kg_s"} - set(spec))
        if bad or missing:
            raise ValueError(f"explicit body.medium needs exactly {sorted(allowed - {'name'})} (kg/s, whole body) "
                             f"and optionally 'name'; unknown {bad}, missing {missing}")
        vals = []
        for k in ("c_par_total_kg_s", "c_perp_total_kg_s"):
            try:
                v = float(spec[k])
            except (TypeError, ValueError):
                raise ValueError(f"body.medium.{k} must be a number (kg/s), got {spec[k]!r}") from None
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"body.medium.{k} must be a positive finite drag (kg/s), got {spec[k]!r}")
            vals.append(v)
        return Medium(str(spec.get("name", "custom")), vals[0], vals[1], None)
    raise ValueError(f"body.medium must be 'agar', 'water', a number in [0, 1] or a mapping of coefficients, got {spec!r}")

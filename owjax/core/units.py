"""Physical units used inside owjax, and parsing of NeuroML quantity strings.

owjax works in one consistent unit system so that no factor hides in the equations:

=============  =======  ===========================================================
quantity       unit     note
=============  =======  ===========================================================
time           ms
voltage        mV
current        pA       positive = inward (depolarising), as in NeuroML
conductance    nS       nS * mV = pA
capacitance    pF       pF * mV / ms = pA
area           µm²
concentration  mM       c302's Ca unit (mol/m³); the solver state holds Ca in nM
=============  =======  ===========================================================

Densities are converted once, when a NeuroML cell is read: 1 mS/cm² over 1 µm² is 0.01 nS and
1 µF/cm² over 1 µm² is 0.01 pF.
"""

from __future__ import annotations

import re

__all__ = ["parse_quantity", "UnitError", "CA_STATE_SCALE"]

#: The solver state stores Ca in nM (c302's Ca values are ~1e-7 mM; in nM they are O(0.1–10),
#: so absolute error tolerances are meaningful). Multiply mM by this to get the state value.
CA_STATE_SCALE = 1.0e6


class UnitError(ValueError):
    """A quantity string has an unknown unit or a unit of the wrong dimension."""


# unit -> (dimension, factor to the owjax unit of that dimension)
_UNITS: dict[str, tuple[str, float]] = {
    # time -> ms
    "s": ("time", 1e3),
    "ms": ("time", 1.0),
    "us": ("time", 1e-3),
    # voltage -> mV
    "V": ("voltage", 1e3),
    "mV": ("voltage", 1.0),
    # current -> pA
    "A": ("current", 1e12),
    "mA": ("current", 1e9),
    "uA": ("current", 1e6),
    "nA": ("current", 1e3),
    "pA": ("current", 1.0),
    "fA": ("current", 1e-3),
    # conductance -> nS
    "S": ("conductance", 1e9),
    "mS": ("conductance", 1e6),
    "uS": ("conductance", 1e3),
    "nS": ("conductance", 1.0),
    "pS": ("conductance", 1e-3),
    # conductance density -> nS / µm²
    "S_per_m2": ("conductance_density", 1e9 * 1e-12),
    "S_per_cm2": ("conductance_density", 1e9 * 1e-8),
    "mS_per_cm2": ("conductance_density", 1e6 * 1e-8),
    # specific capacitance -> pF / µm²
    "F_per_m2": ("specific_capacitance", 1e12 * 1e-12),
    "uF_per_cm2": ("specific_capacitance", 1e6 * 1e-8),
    # concentration -> mM
    "mol_per_m3": ("concentration", 1.0),
    "mol_per_cm3": ("concentration", 1e6),
    "M": ("concentration", 1e3),
    "mM": ("concentration", 1.0),
    "uM": ("concentration", 1e-3),
    "nM": ("concentration", 1e-6),
    # rate -> 1/ms
    "per_s": ("per_time", 1e-3),
    "per_ms": ("per_time", 1.0),
    # inverse voltage -> 1/mV
    "per_V": ("per_voltage", 1e-3),
    "per_mV": ("per_voltage", 1.0),
    # rho of fixedFactorConcentrationModel -> mM/ms per (pA/µm²) == (mol/m³/s)/(A/m²) * 1e-3
    "mol_per_m_per_A_per_s": ("rho_factor", 1e-3),
    "mol_per_cm_per_uA_per_ms": ("rho_factor", 1e2 * 1e6 * 1e3 * 1e-3),
    # resistivity -> kohm_cm (unused by single-compartment cells)
    "kohm_cm": ("resistivity", 1.0),
    "ohm_cm": ("resistivity", 1e-3),
    "ohm_m": ("resistivity", 1e-1),
    # length -> µm
    "um": ("length", 1.0),
    "cm": ("length", 1e4),
    "m": ("length", 1e6),
}

_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z_0-9]*)\s*$")


def parse_quantity(text: str, dimension: str | None = None) -> float:
    """Parse a NeuroML quantity such as ``"0.09 nS"`` or ``"0.025per_ms"`` into owjax units.

    Arguments:
        text: the quantity, a number followed by an optional NeuroML unit symbol.
        dimension: if given, the unit must be of this dimension (``"time"``, ``"voltage"``,
            ``"current"``, ``"conductance"``, ``"conductance_density"``, ``"specific_capacitance"``,
            ``"concentration"``, ``"per_time"``, ``"per_voltage"``, ``"rho_factor"``); a bare number
            is accepted only for ``dimension=None`` or ``"none"``.

    Returns:
        The value in the owjax unit of its dimension (see the module table).

    Raises:
        UnitError: the string is not a number with a known unit of the requested dimension.
    """
    m = _QUANTITY.match(str(text))
    if m is None:
        raise UnitError(f"cannot parse quantity {text!r}: expected '<number> <unit>'")
    value, unit = float(m.group(1)), m.group(2)
    if unit == "":
        if dimension not in (None, "none"):
            raise UnitError(f"quantity {text!r} has no unit but a {dimension} was expected")
        return value
    if unit not in _UNITS:
        raise UnitError(
            f"unknown unit {unit!r} in {text!r}; known units: {', '.join(sorted(_UNITS))}"
        )
    dim, factor = _UNITS[unit]
    if dimension is not None and dim != dimension:
        raise UnitError(f"quantity {text!r} is a {dim}, but a {dimension} was expected")
    return value * factor

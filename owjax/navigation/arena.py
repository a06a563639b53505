"""Arena fields: what a worm's head samples on the plate (pure JAX functions of position, cm).

Every field is a final equinox module whose ``__call__(x_cm, y_cm)`` returns the value at the point
(broadcasting over arrays); its unit is :attr:`AbstractField.unit`. Geometry values are static
(hyperparameters), so a field is never trained by accident.

* :class:`LinearTemperature` — a linear thermal gradient along x: ``T = t_min_c`` at ``x = 0`` to
  ``t_max_c`` at ``x = width_cm`` (the classic plate: 17 → 23 °C over 9 cm). It is defined (linearly
  extended) outside the plate. The edge is a wall only when the loop has one
  (:class:`owjax.navigation.loop.PlateEdge`, ``edge_wall`` in the configs); runs report how many
  worms left the plate.
* :class:`RadialTemperature` — the radial gradient of Mori & Ohshima 1995: ``T(r)`` linear in the
  distance from the plate centre, ``center_c`` at ``r = 0`` to ``edge_c`` at ``r = radius_cm``.
* :class:`LinearOxygen` — an O2 gradient along x (% O2), for BAG-driven runs.
* :class:`NaClPeak` — the Gaussian NaCl peak of the Izquierdo–Lockery klinotaxis agents:
  ``C = peak_mM · exp(−r²/(2λ²))``, λ = 1.61 cm (Ward 1973's gradient as fitted by Iino & Yoshida 2009).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

__all__ = ["AbstractField", "AbstractRoundPlateField", "LinearTemperature", "RadialTemperature", "LinearOxygen", "NaClPeak", "ScaledField",
           "make_field", "FIELD_KINDS"]


def _check_positive(name: str, v: float) -> float:
    v = float(v)
    if not (v > 0 and v < float("inf")):
        raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    return v


class AbstractField(eqx.Module):
    """A scalar field on the plate: ``field(x_cm, y_cm)`` → value in :attr:`unit`."""

    #: unit of the field's values
    unit: ClassVar[str] = ""
    #: what it is
    quantity: ClassVar[str] = ""

    @abc.abstractmethod
    def __call__(self, x_cm: Float[ArrayLike, "*n"], y_cm: Float[ArrayLike, "*n"]) -> Float[Array, "*n"]:
        """The field at (x, y) (cm), in :attr:`unit`."""

    @abc.abstractmethod
    def extent_cm(self) -> tuple[float, float, float, float]:
        """The plate as (x_min, x_max, y_min, y_max), cm (for figures and the left-the-plate check)."""

    def on_plate(self, x_cm: Float[ArrayLike, "*n"], y_cm: Float[ArrayLike, "*n"]) -> Array:
        """True where (x, y) lies on the plate."""
        x0, x1, y0, y1 = self.extent_cm()
        x, y = jnp.asarray(x_cm), jnp.asarray(y_cm)
        return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)

    def center_cm(self) -> tuple[float, float]:
        """The plate's centre (cm)."""
        x0, x1, y0, y1 = self.extent_cm()
        return (0.5 * (x0 + x1), 0.5 * (y0 + y1))

    def outside_cm(self, x_cm: Float[ArrayLike, "*n"], y_cm: Float[ArrayLike, "*n"]) -> Float[Array, "*n"]:
        """How far (x, y) lies beyond the plate's edge, cm (negative on the plate); a rectangle here,
        a disc for the round plates."""
        x0, x1, y0, y1 = self.extent_cm()
        cx, cy = self.center_cm()
        x, y = jnp.asarray(x_cm), jnp.asarray(y_cm)
        return jnp.maximum(jnp.abs(x - cx) - 0.5 * (x1 - x0), jnp.abs(y - cy) - 0.5 * (y1 - y0))


class AbstractRoundPlateField(AbstractField):
    """A field on a round plate of radius ``radius_cm`` centred at (0, 0): the plate's extent, the
    on-plate test and the distance beyond its edge are the disc's."""

    radius_cm: eqx.AbstractVar[float]

    def extent_cm(self):
        return (-self.radius_cm, self.radius_cm, -self.radius_cm, self.radius_cm)

    def on_plate(self, x_cm, y_cm):
        return jnp.asarray(x_cm) ** 2 + jnp.asarray(y_cm) ** 2 <= self.radius_cm ** 2

    def outside_cm(self, x_cm, y_cm):
        return jnp.sqrt(jnp.asarray(x_cm) ** 2 + jnp.asarray(y_cm) ** 2 + 1e-12) - self.radius_cm


class LinearTemperature(AbstractField):
    """Linear thermal gradient along x (see the module docstring).

    Arguments:
        t_min_c: temperature at x = 0, °C.
        t_max_c: temperature at x = width_cm, °C.
        width_cm: plate length along the gradient, cm.
        height_cm: plate extent along y (centred on y = 0), cm.
    """

    t_min_c: float = eqx.field(static=True)
    t_max_c: float = eqx.field(static=True)
    width_cm: float = eqx.field(static=True)
    height_cm: float = eqx.field(static=True)
    unit: ClassVar[str] = "degC"
    quantity: ClassVar[str] = "temperature"

    def __init__(self, t_min_c: float = 17.0, t_max_c: float = 23.0, width_cm: float = 9.0, height_cm: float = 9.0):
        self.t_min_c, self.t_max_c = float(t_min_c), float(t_max_c)
        if not self.t_max_c > self.t_min_c:
            raise ValueError(f"LinearTemperature: t_max_c ({t_max_c}) must exceed t_min_c ({t_min_c})")
        self.width_cm = _check_positive("LinearTemperature.width_cm", width_cm)
        self.height_cm = _check_positive("LinearTemperature.height_cm", height_cm)

    @property
    def gradient_c_per_cm(self) -> float:
        return (self.t_max_c - self.t_min_c) / self.width_cm

    def __call__(self, x_cm, y_cm):
        x = jnp.asarray(x_cm)
        return self.t_min_c + self.gradient_c_per_cm * x + 0.0 * jnp.asarray(y_cm)

    def position_of(self, temp_c: float) -> float:
        """x (cm) of the isotherm ``temp_c``."""
        return (float(temp_c) - self.t_min_c) / self.gradient_c_per_cm

    def extent_cm(self):
        return (0.0, self.width_cm, -self.height_cm / 2, self.height_cm / 2)


class RadialTemperature(AbstractRoundPlateField):
    """Radial gradient (Mori & Ohshima 1995): linear in the distance from the plate centre (0, 0).

    Arguments:
        center_c: temperature at the centre, °C.
        edge_c: temperature at r = radius_cm, °C.
        radius_cm: plate radius, cm (a 9-cm plate: 4.5 cm).
    """

    center_c: float = eqx.field(static=True)
    edge_c: float = eqx.field(static=True)
    radius_cm: float = eqx.field(static=True)
    unit: ClassVar[str] = "degC"
    quantity: ClassVar[str] = "temperature"

    def __init__(self, center_c: float = 17.0, edge_c: float = 25.0, radius_cm: float = 4.5):
        self.center_c, self.edge_c = float(center_c), float(edge_c)
        if self.center_c == self.edge_c:
            raise ValueError("RadialTemperature: center_c and edge_c must differ (no gradient otherwise)")
        self.radius_cm = _check_positive("RadialTemperature.radius_cm", radius_cm)

    def __call__(self, x_cm, y_cm):
        r = jnp.sqrt(jnp.asarray(x_cm) ** 2 + jnp.asarray(y_cm) ** 2 + 1e-12)
        return self.center_c + (self.edge_c - self.center_c) * r / self.radius_cm


class LinearOxygen(AbstractField):
    """O2 gradient along x: ``o2_min_percent`` at x = 0 to ``o2_max_percent`` at x = width_cm (% O2)."""

    o2_min_percent: float = eqx.field(static=True)
    o2_max_percent: float = eqx.field(static=True)
    width_cm: float = eqx.field(static=True)
    height_cm: float = eqx.field(static=True)
    unit: ClassVar[str] = "percent O2"
    quantity: ClassVar[str] = "oxygen"

    def __init__(self, o2_min_percent: float = 7.0, o2_max_percent: float = 21.0, width_cm: float = 9.0,
                 height_cm: float = 9.0):
        lo, hi = float(o2_min_percent), float(o2_max_percent)
        if not (0.0 <= lo < hi <= 100.0):
            raise ValueError(f"LinearOxygen: need 0 <= o2_min_percent < o2_max_percent <= 100, got {lo}, {hi}")
        self.o2_min_percent, self.o2_max_percent = lo, hi
        self.width_cm = _check_positive("LinearOxygen.width_cm", width_cm)
        self.height_cm = _check_positive("LinearOxygen.height_cm", height_cm)

    def __call__(self, x_cm, y_cm):
        return (self.o2_min_percent + (self.o2_max_percent - self.o2_min_percent) * jnp.asarray(x_cm) / self.width_cm
                + 0.0 * jnp.asarray(y_cm))

    def extent_cm(self):
        return (0.0, self.width_cm, -self.height_cm / 2, self.height_cm / 2)


class NaClPeak(AbstractRoundPlateField):
    """Gaussian NaCl peak at (0, 0): ``C = peak_mM · exp(−r²/(2λ²))`` (mM), λ = ``lambda_cm``.

    Arguments:
        lambda_cm: width λ, cm (1.61 cm in the Izquierdo–Lockery agents).
        peak_mM: concentration at the peak, mM (a scale: the chemotaxis index does not depend on it).
        radius_cm: plate radius, cm.
    """

    lambda_cm: float = eqx.field(static=True)
    peak_mM: float = eqx.field(static=True)
    radius_cm: float = eqx.field(static=True)
    unit: ClassVar[str] = "mM"
    quantity: ClassVar[str] = "NaCl"

    def __init__(self, lambda_cm: float = 1.61, peak_mM: float = 1.0, radius_cm: float = 4.5):
        self.lambda_cm = _check_positive("NaClPeak.lambda_cm", lambda_cm)
        self.peak_mM = _check_positive("NaClPeak.peak_mM", peak_mM)
        self.radius_cm = _check_positive("NaClPeak.radius_cm", radius_cm)

    def __call__(self, x_cm, y_cm):
        r2 = jnp.asarray(x_cm) ** 2 + jnp.asarray(y_cm) ** 2
        return self.peak_mM * jnp.exp(-r2 / (2.0 * self.lambda_cm ** 2))


FIELD_KINDS = {"linear_temperature": LinearTemperature, "radial_temperature": RadialTemperature,
               "linear_oxygen": LinearOxygen, "nacl_peak": NaClPeak}


def make_field(kind: str, **kw) -> AbstractField:
    """A field by name (``linear_temperature``, ``radial_temperature``, ``linear_oxygen``, ``nacl_peak``)
    with its keyword arguments; unknown names and arguments are errors that list what is allowed."""
    import inspect

    from owjax.core.errors import unknown_name_message

    if kind not in FIELD_KINDS:
        raise ValueError(unknown_name_message("arena field", kind, tuple(FIELD_KINDS)))
    cls = FIELD_KINDS[kind]
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    bad = sorted(set(kw) - set(allowed))
    if bad:
        raise ValueError(f"arena field {kind}: unknown argument(s) {bad}; allowed: {allowed}")
    return cls(**kw)


class ScaledField(AbstractField):
    """``offset + scale · base(x, y)``: a field re-expressed in another sensor's units (e.g. the NaCl
    peak as the °C-equivalent input of the AFD transducer, standing in for an ASE transducer that
    owjax does not have).

    Arguments:
        base: the field. offset, scale: the affine map (``unit`` per base unit). unit_name: the new unit.
    """

    base: AbstractField
    offset: float = eqx.field(static=True)
    scale: float = eqx.field(static=True)
    unit_name: str = eqx.field(static=True)
    unit: ClassVar[str] = "degC-equivalent"
    quantity: ClassVar[str] = "scaled stimulus"

    def __init__(self, base: AbstractField, offset: float, scale: float, unit_name: str = "degC-equivalent"):
        if not float(scale) != 0.0:
            raise ValueError("ScaledField: scale must be non-zero")
        self.base, self.offset, self.scale, self.unit_name = base, float(offset), float(scale), str(unit_name)

    def __call__(self, x_cm, y_cm):
        return self.offset + self.scale * self.base(x_cm, y_cm)

    def extent_cm(self):
        return self.base.extent_cm()

    def on_plate(self, x_cm, y_cm):
        return self.base.on_plate(x_cm, y_cm)

    def center_cm(self):
        return self.base.center_cm()

    def outside_cm(self, x_cm, y_cm):
        return self.base.outside_cm(x_cm, y_cm)

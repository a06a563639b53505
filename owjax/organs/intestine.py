"""Intestinal Ca²⁺ oscillator and defecation trigger (OpenWorm DD009), in JAX.

Twenty intestinal cells ``int1`` (anterior) … ``int20`` (posterior) in a chain.  Each cell is a
Li–Rinzel / De Young–Keizer IP3-receptor Ca²⁺ oscillator with an ER store, SERCA uptake, an ER
leak, plasma-membrane influx/extrusion, Ca²⁺-stimulated IP3 production and a passive membrane
driven by a Ca²⁺-activated cation current.  Neighbours are coupled through gap junctions that
carry current (``g_gap``, DD009) *and* Ca²⁺ and IP3 (``D_ca``, ``D_ip3``); the electrical path
alone cannot carry a Ca²⁺ wave in this model (see ``docs/intestine.md``).

Units inside this module (different from the neural core, which uses ms and mM):

=============  =====  ==========================================================
quantity       unit   note
=============  =====  ==========================================================
time           s      the oscillator period is ~50 s
concentration  µM     Ca, Ca_ER, IP3; Ca_ER is the concentration *inside* the ER
voltage        mV
conductance    nS     nS · mV = pA
capacitance    pF     dV/dt [mV/s] = 1000 · I [pA] / C [pF]
current        pA     trigger current: positive = depolarising (NeuroML convention)
=============  =====  ==========================================================

State (one array of shape ``(n_cells,)`` per name, index 0 = int1 = anterior):
``V`` (mV), ``Ca`` (µM), ``Ca_ER`` (µM), ``IP3`` (µM), ``h`` (IP3R fraction not inactivated, 1).

Equations (per cell *i*; Δ is the no-flux chain Laplacian, Δx_i = Σ_neighbours (x_j − x_i)):

* IP3R release   J_rel  = (v_release/ca_er_ref) · (m∞ n∞ h)³ · (Ca_ER − Ca),
  m∞ = IP3/(IP3 + K_IP3), n∞ = Ca/(Ca + K_act)                       (Li & Rinzel 1994)
* ER leak        J_leak = k_leak · (Ca_ER − Ca)
* SERCA          J_serca = v_serca · Ca² / (K_serca² + Ca²)
* plasma memb.   J_pm   = v_in − k_out · Ca
* dCa/dt    = J_rel + J_leak − J_serca + J_pm + D_ca · ΔCa
* dCa_ER/dt = (J_serca − J_rel − J_leak) / rho_er
* dh/dt     = a2 · (d2 · (IP3 + d1)/(IP3 + d3) · (1 − h) − Ca · h)
* dIP3/dt   = v_plc_i · (Ca + (1 − alpha_plc) K_plc)/(Ca + K_plc) − k_deg · IP3 + D_ip3 · ΔIP3
  (Ca²⁺-stimulated PLC as in De Young & Keizer 1992; v_plc_i grows towards the posterior)
* C_m dV/dt = −g_leak (V − E_leak) − g_cat · Ca^n_cat/(K_cat^n_cat + Ca^n_cat) · (V − E_cat)
  + g_gap · ΔV    (×1000 for mV/s)

The period (~50 s) is set by the slow recovery of the IP3 receptor from Ca²⁺-dependent
inactivation (``a2``, four times slower than Li–Rinzel, fitted to the 50 s target, as DD009
fitted its own parameters) together with the Ca²⁺/IP3 cross-coupling and the ER refill.  The
posterior→anterior wave comes from a posterior gradient in PLC activity (``plc_gradient``): the
posterior cell has the shortest intrinsic period, fires first, and its Ca²⁺/IP3 spill into the
anterior neighbour through the junctions and trigger its Ca²⁺-induced Ca²⁺ release.

Every parameter, with unit and source, lives in ``owjax/data/intestine_parameters.yaml``;
:meth:`IntestineOscillator.from_yaml` reads it.
"""

from __future__ import annotations

import abc
import difflib
import math
import pathlib
from collections.abc import Mapping
from typing import Any, ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import yaml
from jaxtyping import Array, ArrayLike, Float

from owjax.core.component import AbstractComponent, ParameterInfo, StateVariable

__all__ = [
    "N_CELLS",
    "STATE_NAMES",
    "DEFAULT_PARAMETER_FILE",
    "ParameterFileError",
    "cell_names",
    "AbstractIntestine",
    "IntestineOscillator",
    "simulate_intestine",
    "trigger_current",
    "peak_times",
    "oscillation_period",
    "wave_onsets",
    "wave_direction",
]

#: Number of intestinal cells in C. elegans (int1 … int20).
N_CELLS = 20
#: Names of the state variables, in the order used by traces.
STATE_NAMES = ("V", "Ca", "Ca_ER", "IP3", "h")
#: The parameter file shipped with owjax.
DEFAULT_PARAMETER_FILE = (
    pathlib.Path(__file__).resolve().parents[1] / "data" / "intestine_parameters.yaml"
)


def cell_names(n_cells: int = N_CELLS) -> tuple[str, ...]:
    """Names ``("int1", …, "intN")``; index 0 is the anterior-most cell."""
    return tuple(f"int{i + 1}" for i in range(n_cells))


class ParameterFileError(ValueError):
    """The intestine parameter file or an override is malformed (unknown key, bad unit, NaN, …)."""


# --------------------------------------------------------------------------------------------
# Parameter schema: name -> (unit expected in the YAML file, lower bound, upper bound).
# Bounds are inclusive; None means unbounded.  Keys of the YAML `parameters:` block must be
# exactly these names.
# --------------------------------------------------------------------------------------------
_SCHEMA: dict[str, tuple[str, float | None, float | None]] = {
    # IP3 receptor (Li-Rinzel)
    "v_release": ("uM/s", 0.0, None),
    "ca_er_ref": ("uM", 1e-12, None),
    "K_IP3": ("uM", 1e-12, None),
    "K_act": ("uM", 1e-12, None),
    "d1": ("uM", 0.0, None),
    "d2": ("uM", 0.0, None),
    "d3": ("uM", 1e-12, None),
    "a2": ("1/(uM*s)", 0.0, None),
    # ER
    "k_leak": ("1/s", 0.0, None),
    "v_serca": ("uM/s", 0.0, None),
    "K_serca": ("uM", 1e-12, None),
    "rho_er": ("1", 1e-12, None),
    # plasma membrane
    "v_in": ("uM/s", 0.0, None),
    "k_out": ("1/s", 0.0, None),
    # IP3 metabolism
    "v_plc_posterior": ("uM/s", 0.0, None),
    "plc_gradient": ("1", 0.0, 1.0),
    "alpha_plc": ("1", 0.0, 1.0),
    "K_plc": ("uM", 1e-12, None),
    "k_deg": ("1/s", 0.0, None),
    # coupling through gap junctions
    "D_ca": ("1/s", 0.0, None),
    "D_ip3": ("1/s", 0.0, None),
    "g_gap": ("nS", 0.0, None),
    # membrane
    "C_m": ("pF", 1e-12, None),
    "g_leak": ("nS", 0.0, None),
    "E_leak": ("mV", None, None),
    "g_cat": ("nS", 0.0, None),
    "E_cat": ("mV", None, None),
    "K_cat": ("uM", 1e-12, None),
    "n_cat": ("1", 1.0, 8.0),
    # trigger to DVB / AVL and event detection
    "trigger_threshold": ("uM", 0.0, None),
    "trigger_width": ("uM", 1e-12, None),
    "trigger_max_current": ("pA", None, None),
    "event_threshold": ("uM", 0.0, None),
    # initial state (same for every cell)
    "V0": ("mV", None, None),
    "Ca0": ("uM", 0.0, None),
    "Ca_ER0": ("uM", 0.0, None),
    "IP3_0": ("uM", 0.0, None),
    "h0": ("1", 0.0, 1.0),
}
#: Extra intestine leaves (not in the intestine's YAML schema): unit and bounds.
_INTESTINE_EXTRA = {
    "v_plc": ("uM/s", (0.0, math.inf), "PLC activity per cell"),
    "V0": ("mV", (-100.0, 80.0), "initial membrane potential per cell"),
    "Ca0": ("uM", (0.0, math.inf), "initial cytosolic Ca per cell"),
    "Ca_ER0": ("uM", (0.0, math.inf), "initial ER Ca per cell"),
    "IP3_0": ("uM", (0.0, math.inf), "initial IP3 per cell"),
    "h0": ("1", (0.0, 1.0), "initial IP3R non-inactivated fraction per cell"),
}



_ENTRY_KEYS = ("value", "unit", "source", "note")
# Overrides that are not YAML keys: the per-cell PLC rate replaces v_plc_posterior/plc_gradient.
_EXTRA_OVERRIDES = ("v_plc",)
# Parameters that may be per-junction arrays of shape (n_cells - 1,).
_JUNCTION_PARAMS = ("D_ca", "D_ip3", "g_gap")
# Parameters that may be per-cell arrays of shape (n_cells,) when given as overrides.
_CELL_PARAMS = ("v_plc", "V0", "Ca0", "Ca_ER0", "IP3_0", "h0")


def _unknown(name: str, valid: list[str] | tuple[str, ...], what: str) -> str:
    close = difflib.get_close_matches(name, list(valid), n=3)
    hint = f" Did you mean {close}?" if close else ""
    return f"unknown {what} {name!r}.{hint} Valid names: {sorted(valid)}"


def _chain_laplacian(x: Float[Array, " n"], k: Float[ArrayLike, "..."]) -> Float[Array, " n"]:
    """Coupling term Σ_j k_ij (x_j − x_i) on a chain with no-flux ends.

    Arguments:
        x: per-cell values, shape ``(n,)``.
        k: coupling coefficient, scalar or one value per junction, shape ``(n − 1,)``.

    Returns:
        Array of shape ``(n,)``; the units of ``k · x``.
    """
    flux = k * (x[1:] - x[:-1])  # flux from cell i+1 into cell i, shape (n-1,)
    zero = jnp.zeros((1,), dtype=flux.dtype)
    return jnp.concatenate([flux, zero]) - jnp.concatenate([zero, flux])


def _hill(x: Float[Array, "..."], k: Float[ArrayLike, ""], n: int) -> Float[Array, "..."]:
    """Hill function xⁿ/(kⁿ + xⁿ) with integer n (safe for tiny negative x from the solver)."""
    xn = x**n
    return xn / (k**n + xn)


class AbstractIntestine(AbstractComponent):
    """Interface of an intestine model: a component (:mod:`owjax.core.component`) in seconds.

    Concrete models are final equinox modules holding their parameters as float arrays, so that
    :func:`jax.grad` and :func:`equinox.filter_grad` reach every parameter.  Time is in seconds
    (``time_unit_ms = 1000``). Output ``Ca_uM`` (per cell, int1 first).
    """

    n_cells: eqx.AbstractVar[int]
    time_unit_ms: ClassVar[float] = 1000.0

    def outputs(self, t, y) -> dict[str, Array]:
        """``Ca_uM`` per cell and ``trigger_pA``: the defecation trigger current from int1's Ca."""
        return {"Ca_uM": y["Ca"], "trigger_pA": self.trigger_current(y["Ca"][0])}

    @abc.abstractmethod
    def trigger_current(self, ca_int1: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Current (pA) into the trigger neurons from the Ca (µM) of int1."""

    def state_variables(self) -> dict[str, StateVariable]:
        units = {"V": "mV", "Ca": "uM", "Ca_ER": "uM", "IP3": "uM", "h": "1"}
        return {k: StateVariable(k, u, f"intestinal {k}", "cell") for k, u in units.items()}

    def parameter_info(self) -> dict[str, ParameterInfo]:
        """Units and bounds from the parameter file's schema (``owjax/data/intestine_parameters.yaml``)."""
        from owjax.fitting.leaves import float_leaf_paths

        out = {}
        for path in float_leaf_paths(self):
            if path in _SCHEMA:
                unit, lo, hi = _SCHEMA[path][:3]
                bounds = (-math.inf if lo is None else float(lo), math.inf if hi is None else float(hi))
                out[path] = ParameterInfo(path, unit, bounds, "intestine", f"intestine parameter {path}",
                                          "owjax/data/intestine_parameters.yaml schema")
            elif path in _INTESTINE_EXTRA:
                unit, bounds, desc = _INTESTINE_EXTRA[path]
                out[path] = ParameterInfo(path, unit, bounds, "intestine", desc, "positivity")
            else:
                out[path] = ParameterInfo(path, "?", None, "intestine", f"intestine parameter {path}", "")
        return out

    @abc.abstractmethod
    def initial_state(self) -> dict[str, Float[Array, " n_cells"]]:
        """Initial state, one array of shape ``(n_cells,)`` per name in :data:`STATE_NAMES`."""

    @abc.abstractmethod
    def vector_field(
        self, t: Float[ArrayLike, ""], y: dict[str, Float[Array, " n_cells"]], args: Any
    ) -> dict[str, Float[Array, " n_cells"]]:
        """Time derivative of the state (per second); a pure function usable by diffrax."""

    @property
    def names(self) -> tuple[str, ...]:
        """Cell names, anterior first."""
        return cell_names(self.n_cells)


class IntestineOscillator(AbstractIntestine):
    """Chain of gap-junction-coupled IP3R/Ca²⁺ oscillators (DD009); see the module docstring.

    Build it with :meth:`from_yaml`.  All fields except ``n_cells`` and ``n_cat`` are float
    arrays (parameters you can differentiate); units are given per field.  ``v_plc`` is per cell
    (shape ``(n_cells,)``); ``D_ca``, ``D_ip3`` and ``g_gap`` are scalars or per junction
    (shape ``(n_cells − 1,)``, junction *k* joins cell *k* and *k+1*).
    """

    n_cells: int = eqx.field(static=True)
    n_cat: int = eqx.field(static=True)  # Hill coefficient of the Ca-activated current
    # IP3 receptor (Li & Rinzel 1994; DD009 for v_release, K_IP3)
    v_release: Float[Array, ""]  # µM/s, release through fully open IP3Rs at Ca_ER = ca_er_ref
    ca_er_ref: Float[Array, ""]  # µM, reference ER load that defines v_release
    K_IP3: Float[Array, ""]  # µM, IP3 activation constant
    K_act: Float[Array, ""]  # µM, Ca activation constant (Li-Rinzel d5)
    d1: Float[Array, ""]  # µM
    d2: Float[Array, ""]  # µM
    d3: Float[Array, ""]  # µM
    a2: Float[Array, ""]  # 1/(µM s), Ca-inactivation binding rate
    # ER
    k_leak: Float[Array, ""]  # 1/s
    v_serca: Float[Array, ""]  # µM/s
    K_serca: Float[Array, ""]  # µM
    rho_er: Float[Array, ""]  # 1, ER/cytosol volume ratio
    # plasma membrane
    v_in: Float[Array, ""]  # µM/s
    k_out: Float[Array, ""]  # 1/s
    # IP3 metabolism
    v_plc: Float[Array, " n_cells"]  # µM/s, per cell
    alpha_plc: Float[Array, ""]  # 1
    K_plc: Float[Array, ""]  # µM
    k_deg: Float[Array, ""]  # 1/s
    # gap-junction coupling
    D_ca: Float[Array, "..."]  # 1/s
    D_ip3: Float[Array, "..."]  # 1/s
    g_gap: Float[Array, "..."]  # nS
    # membrane
    C_m: Float[Array, ""]  # pF
    g_leak: Float[Array, ""]  # nS
    E_leak: Float[Array, ""]  # mV
    g_cat: Float[Array, ""]  # nS
    E_cat: Float[Array, ""]  # mV
    K_cat: Float[Array, ""]  # µM
    # trigger / events
    trigger_threshold: Float[Array, ""]  # µM
    trigger_width: Float[Array, ""]  # µM
    trigger_max_current: Float[Array, ""]  # pA
    event_threshold: Float[Array, ""]  # µM
    # initial state, per cell
    V0: Float[Array, " n_cells"]  # mV
    Ca0: Float[Array, " n_cells"]  # µM
    Ca_ER0: Float[Array, " n_cells"]  # µM
    IP3_0: Float[Array, " n_cells"]  # µM
    h0: Float[Array, " n_cells"]  # 1

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_yaml(
        cls, path: str | pathlib.Path | None = None, **overrides: ArrayLike | int
    ) -> "IntestineOscillator":
        """Build the model from a parameter file, with optional overrides.

        Arguments:
            path: YAML file with a ``parameters:`` mapping (each entry has exactly the keys
                ``value``, ``unit``, ``source``, ``note``) and optionally ``n_cells``.  ``None``
                reads :data:`DEFAULT_PARAMETER_FILE`.
            **overrides: parameter values replacing the file's, in the file's units: any
                parameter name, ``n_cells`` (int ≥ 2), or ``v_plc`` (per-cell PLC rate, µM/s,
                shape ``(n_cells,)``, replacing ``v_plc_posterior``/``plc_gradient``).
                ``D_ca``, ``D_ip3``, ``g_gap`` may be per junction (shape ``(n_cells − 1,)``);
                initial values ``V0``, ``Ca0``, ``Ca_ER0``, ``IP3_0``, ``h0`` may be per cell.

        Returns:
            An :class:`IntestineOscillator`.

        Raises:
            ParameterFileError: unknown or missing keys, wrong units, non-finite or out-of-bound
                values, wrong shapes.
        """
        path = DEFAULT_PARAMETER_FILE if path is None else pathlib.Path(path)
        try:
            with open(path) as f:
                doc = yaml.safe_load(f)
        except FileNotFoundError:
            raise ParameterFileError(f"intestine parameter file not found: {path}") from None
        except yaml.YAMLError as e:
            raise ParameterFileError(f"{path}: not valid YAML: {e}") from None
        values, n_cells = _read_parameter_doc(doc, str(path))

        for name in overrides:
            if name not in _SCHEMA and name not in _EXTRA_OVERRIDES and name != "n_cells":
                raise ParameterFileError(
                    _unknown(name, [*_SCHEMA, *_EXTRA_OVERRIDES, "n_cells"], "intestine override")
                )
        if "n_cells" in overrides:
            n_cells = overrides["n_cells"]
        if isinstance(n_cells, bool) or not isinstance(n_cells, (int, np.integer)) or n_cells < 2:
            raise ParameterFileError(f"n_cells must be an integer ≥ 2, got {n_cells!r}")
        n_cells = int(n_cells)

        arrays: dict[str, np.ndarray] = {}
        for name, v in values.items():
            arrays[name] = np.asarray(v, dtype=float)
        for name, v in overrides.items():
            if name == "n_cells":
                continue
            arr = np.asarray(v, dtype=float)
            _check_value(name, arr, f"override {name}")
            arrays[name] = arr

        # shapes
        for name, arr in arrays.items():
            allowed = [()]
            if name in _JUNCTION_PARAMS:
                allowed.append((n_cells - 1,))
            if name in _CELL_PARAMS:
                allowed.append((n_cells,))
            if arr.shape not in allowed:
                raise ParameterFileError(
                    f"intestine parameter {name!r} has shape {arr.shape}; allowed shapes: {allowed}"
                )

        # per-cell PLC rate: explicit v_plc, or posterior value with a linear gradient
        if "v_plc" in arrays:
            v_plc = np.broadcast_to(arrays.pop("v_plc"), (n_cells,))
        else:
            frac_from_posterior = (n_cells - 1 - np.arange(n_cells)) / (n_cells - 1)
            v_plc = arrays["v_plc_posterior"] * (1.0 - arrays["plc_gradient"] * frac_from_posterior)
        arrays.pop("v_plc_posterior")
        arrays.pop("plc_gradient")

        n_cat = float(arrays.pop("n_cat"))
        if n_cat != round(n_cat):
            raise ParameterFileError(f"n_cat must be a whole number (Hill exponent), got {n_cat}")

        fields = {k: jnp.asarray(v, dtype=float) for k, v in arrays.items()}
        for name in ("V0", "Ca0", "Ca_ER0", "IP3_0", "h0"):
            fields[name] = jnp.broadcast_to(fields[name], (n_cells,))
        fields["v_plc"] = jnp.asarray(v_plc, dtype=float)
        return cls(n_cells=n_cells, n_cat=int(round(n_cat)), **fields)

    # ---------------------------------------------------------------- dynamics
    def initial_state(self) -> dict[str, Float[Array, " n_cells"]]:
        """Initial state from the parameter file's ``V0``, ``Ca0``, ``Ca_ER0``, ``IP3_0``, ``h0``.

        Returns:
            ``{"V": mV, "Ca": µM, "Ca_ER": µM, "IP3": µM, "h": 1}``, each of shape ``(n_cells,)``.
        """
        return {
            "V": self.V0,
            "Ca": self.Ca0,
            "Ca_ER": self.Ca_ER0,
            "IP3": self.IP3_0,
            "h": self.h0,
        }

    def fluxes(self, y: dict[str, Float[Array, " n_cells"]]) -> dict[str, Float[Array, " n_cells"]]:
        """The individual Ca²⁺ fluxes and currents of every cell (for inspection and plots).

        Arguments:
            y: state dict as returned by :meth:`initial_state`.

        Returns:
            ``J_rel``, ``J_leak``, ``J_serca``, ``J_pm`` (µM/s of cytosolic Ca), ``J_plc``
            (µM/s of IP3), ``P_open`` (1), ``I_cat`` and ``I_leak`` (pA, outward positive as
            membrane currents), each of shape ``(n_cells,)``.
        """
        ca, ca_er, ip3, h, v = y["Ca"], y["Ca_ER"], y["IP3"], y["h"], y["V"]
        m_inf = ip3 / (ip3 + self.K_IP3)
        n_inf = ca / (ca + self.K_act)
        p_open = (m_inf * n_inf * h) ** 3
        j_rel = (self.v_release / self.ca_er_ref) * p_open * (ca_er - ca)
        j_leak = self.k_leak * (ca_er - ca)
        j_serca = self.v_serca * _hill(ca, self.K_serca, 2)
        j_pm = self.v_in - self.k_out * ca
        j_plc = self.v_plc * (ca + (1.0 - self.alpha_plc) * self.K_plc) / (ca + self.K_plc)
        i_cat = self.g_cat * _hill(ca, self.K_cat, self.n_cat) * (v - self.E_cat)
        i_leak = self.g_leak * (v - self.E_leak)
        return {
            "J_rel": j_rel,
            "J_leak": j_leak,
            "J_serca": j_serca,
            "J_pm": j_pm,
            "J_plc": j_plc,
            "P_open": p_open,
            "I_cat": i_cat,
            "I_leak": i_leak,
        }

    def vector_field(
        self, t: Float[ArrayLike, ""], y: dict[str, Float[Array, " n_cells"]], args: Any = None
    ) -> dict[str, Float[Array, " n_cells"]]:
        """Right-hand side dy/dt (per second), pure; ``t`` and ``args`` are unused.

        Arguments:
            t: time (s).
            y: state dict (``V`` mV, ``Ca`` µM, ``Ca_ER`` µM, ``IP3`` µM, ``h`` 1).
            args: unused (diffrax passes it).

        Returns:
            dict with the same keys: mV/s, µM/s, µM/s, µM/s, 1/s.
        """
        f = self.fluxes(y)
        ca, ip3, h, v = y["Ca"], y["IP3"], y["h"], y["V"]
        er_net = f["J_rel"] + f["J_leak"] - f["J_serca"]  # ER -> cytosol, µM/s (cytosolic)
        d_ca = er_net + f["J_pm"] + _chain_laplacian(ca, self.D_ca)
        d_ca_er = -er_net / self.rho_er
        q2 = self.d2 * (ip3 + self.d1) / (ip3 + self.d3)
        d_h = self.a2 * (q2 * (1.0 - h) - ca * h)
        d_ip3 = f["J_plc"] - self.k_deg * ip3 + _chain_laplacian(ip3, self.D_ip3)
        i_gap = _chain_laplacian(v, self.g_gap)  # pA, inward positive
        d_v = 1000.0 * (i_gap - f["I_leak"] - f["I_cat"]) / self.C_m
        return {"V": d_v, "Ca": d_ca, "Ca_ER": d_ca_er, "IP3": d_ip3, "h": d_h}

    def trigger_current(self, ca_int1: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """:func:`trigger_current` with this model's threshold, width and maximum current."""
        return trigger_current(
            ca_int1,
            threshold_uM=self.trigger_threshold,
            width_uM=self.trigger_width,
            max_current_pA=self.trigger_max_current,
        )


def _check_value(name: str, arr: np.ndarray, where: str) -> None:
    if not np.all(np.isfinite(arr)):
        raise ParameterFileError(f"{where}: intestine parameter {name!r} is not finite: {arr}")
    if name in _SCHEMA:
        _, lo, hi = _SCHEMA[name]
    elif name == "v_plc":
        lo, hi = 0.0, None
    else:  # pragma: no cover - guarded by callers
        lo, hi = None, None
    if lo is not None and np.any(arr < lo):
        raise ParameterFileError(f"{where}: intestine parameter {name!r} = {arr} is below {lo}")
    if hi is not None and np.any(arr > hi):
        raise ParameterFileError(f"{where}: intestine parameter {name!r} = {arr} is above {hi}")


def _read_parameter_doc(doc: Any, where: str) -> tuple[dict[str, Any], int]:
    """Validate a parsed parameter file; return ``{name: value}`` and ``n_cells``."""
    if not isinstance(doc, Mapping):
        raise ParameterFileError(
            f"{where}: expected a mapping at top level, got {type(doc).__name__}"
        )
    allowed_top = ("parameters", "n_cells", "meta")
    for key in doc:
        if key not in allowed_top:
            msg = _unknown(str(key), allowed_top, "top-level key")
            raise ParameterFileError(f"{where}: {msg}")
    params = doc.get("parameters")
    if not isinstance(params, Mapping):
        raise ParameterFileError(f"{where}: missing or malformed 'parameters:' mapping")
    values: dict[str, Any] = {}
    for name, entry in params.items():
        if name not in _SCHEMA:
            msg = _unknown(str(name), list(_SCHEMA), "intestine parameter")
            raise ParameterFileError(f"{where}: {msg}")
        if not isinstance(entry, Mapping) or set(entry) != set(_ENTRY_KEYS):
            got = sorted(entry) if isinstance(entry, Mapping) else type(entry).__name__
            raise ParameterFileError(
                f"{where}: parameter {name!r} must have exactly the keys {list(_ENTRY_KEYS)}, "
                f"got {got}"
            )
        unit = _SCHEMA[name][0]
        if str(entry["unit"]) != unit:
            raise ParameterFileError(
                f"{where}: parameter {name!r} has unit {entry['unit']!r}; owjax expects {unit!r}"
            )
        v = entry["value"]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ParameterFileError(f"{where}: parameter {name!r} must be a number, not {v!r}")
        _check_value(name, np.asarray(v, dtype=float), where)
        values[name] = float(v)
    missing = [k for k in _SCHEMA if k not in values]
    if missing:
        raise ParameterFileError(f"{where}: missing intestine parameters {missing}")
    return values, doc.get("n_cells", N_CELLS)


# --------------------------------------------------------------------------------------------
# Solving
# --------------------------------------------------------------------------------------------
#: solver methods simulate_intestine accepts (presets of the one solve, :mod:`owjax.core.solve`)
_SOLVERS = ("tsit5", "dopri5", "kvaerno5")


@eqx.filter_jit
def _solve(model, y0, duration_s: float, dt_out_s: float, config, adjoint):
    from owjax.core.solve import solve_ys

    sol = solve_ys(model, duration_s * 1000.0, dt_out_s * 1000.0, config, y0=y0, adjoint=adjoint, throw=False)
    ys = eqx.error_if(
        sol.ys,
        sol.result != diffrax.RESULTS.successful,
        f"simulate_intestine: the ODE solve did not reach the end time (max_steps={config.max_steps} "
        "exhausted, or the step size collapsed). Raise max_steps, loosen rtol/atol, or check "
        "the parameters for non-physical values.",
    )
    return ys, sol.stats["num_steps"]


def simulate_intestine(
    model: AbstractIntestine,
    duration_s: float = 200.0,
    dt_out_s: float = 0.1,
    *,
    y0: dict[str, ArrayLike] | None = None,
    solver: str = "tsit5",
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt0_s: float = 0.01,
    max_steps: int = 100_000,
    adjoint: diffrax.AbstractAdjoint | None = None,
    return_num_steps: bool = False,
) -> dict[str, Array]:
    """Integrate the intestine model and sample it on a regular grid.

    Differentiable with respect to every float array in ``model`` (and ``y0``), through diffrax's
    :class:`~diffrax.RecursiveCheckpointAdjoint` by default.  Compiled once per model structure,
    grid length and solver settings. The solve is :func:`owjax.core.solve.solve_ys` (in ms), as for
    every other component.

    Arguments:
        model: e.g. ``IntestineOscillator.from_yaml()``.
        duration_s: simulated time (s).
        dt_out_s: output interval (s); the solver steps adaptively.
        y0: initial state; ``None`` uses ``model.initial_state()``.
        solver: ``"tsit5"`` (default), ``"dopri5"`` or ``"kvaerno5"`` (a preset method of
            :mod:`owjax.core.solve`, with the tolerances below).  Tsit5's steps are bounded by the membrane time constant (~30 ms), not by
            accuracy, yet a 200 s run takes ~6300 steps and ~0.2 s; Kvaerno5 needs 2800–7500
            steps at ~1 ms each (see docs/intestine.md).
        rtol, atol: PID step-size controller tolerances (atol in the state's units, µM/mV).
        dt0_s: first trial step (s).
        max_steps: solver step budget (also the checkpoint budget of the adjoint).  Running out
            raises an error naming ``max_steps`` (under ``jit`` too).
        adjoint: diffrax adjoint; default ``RecursiveCheckpointAdjoint()``.
        return_num_steps: also return ``"num_steps"`` (scalar int array) in the dict.

    Returns:
        ``{"t": (T,) s, "V": (n_cells, T) mV, "Ca": µM, "Ca_ER": µM, "IP3": µM, "h": 1}``, rows
        ordered int1 (anterior) … intN (posterior).

    Raises:
        ValueError: non-positive ``duration_s``/``dt_out_s``, unknown solver name.
        equinox.EquinoxRuntimeError (a RuntimeError): the step budget ran out.
    """
    if not (duration_s > 0 and dt_out_s > 0):
        raise ValueError(f"duration_s and dt_out_s must be > 0, got {duration_s}, {dt_out_s}")
    from owjax.core.solve import SolverConfig

    key = str(solver).lower()
    if key not in _SOLVERS:
        raise ValueError(_unknown(str(solver), list(_SOLVERS), "solver"))
    n_out = int(math.floor(duration_s / dt_out_s + 1e-9)) + 1
    dtype = model.dtype
    ts = jnp.arange(n_out, dtype=dtype) * dt_out_s
    if y0 is None:
        y0 = model.initial_state()
    missing = [k for k in STATE_NAMES if k not in y0]
    if missing:
        raise ValueError(f"y0 lacks state variables {missing}; expected {list(STATE_NAMES)}")
    shape = (model.n_cells,)
    y0 = {k: jnp.broadcast_to(jnp.asarray(y0[k], dtype=dtype), shape) for k in STATE_NAMES}
    adjoint = diffrax.RecursiveCheckpointAdjoint() if adjoint is None else adjoint
    config = SolverConfig(key, rtol=float(rtol), atol=float(atol), dt_ms=float(dt0_s) * 1000.0,
                          max_steps=int(max_steps))
    ys, num_steps = _solve(model, y0, float((n_out - 1) * dt_out_s), float(dt_out_s), config, adjoint)
    out: dict[str, Array] = {"t": ts}
    for k in STATE_NAMES:
        out[k] = ys[k].T
    if return_num_steps:
        out["num_steps"] = num_steps
    return out


# --------------------------------------------------------------------------------------------
# Trigger to the enteric neurons
# --------------------------------------------------------------------------------------------
def trigger_current(
    ca_int1: Float[ArrayLike, "..."],
    threshold_uM: Float[ArrayLike, ""] = 0.4,
    width_uM: Float[ArrayLike, ""] = 0.05,
    max_current_pA: Float[ArrayLike, ""] = 5.0,
) -> Float[Array, "..."]:
    """Current injected into DVB and AVL from the Ca²⁺ of the anterior-most cell int1.

    ``I = max_current_pA · σ((Ca_int1 − threshold_uM) / width_uM)`` with the logistic σ: smooth
    (differentiable), half-maximal at the DD009 threshold 0.4 µM, ~0.2 % of maximum at the
    resting Ca (~0.08 µM) and ~99.9 % at the peak (~0.9 µM).  It stands in for the intestinal
    NLP-40 → AEX-2 signal that activates AVL and DVB (Wang et al. 2013).

    Arguments:
        ca_int1: cytosolic Ca²⁺ of int1 (µM), any shape.
        threshold_uM: half-activation Ca²⁺ (µM); DD009: 0.4 µM.
        width_uM: logistic slope factor (µM).
        max_current_pA: maximum current (pA, positive = depolarising, NeuroML sign); 5 pA is in
            the 1–6 pA range c302 uses for current-clamp steps.

    Returns:
        Current in pA, same shape as ``ca_int1``.
    """
    ca = jnp.asarray(ca_int1)
    return max_current_pA * jax.nn.sigmoid((ca - threshold_uM) / width_uM)


# --------------------------------------------------------------------------------------------
# Metrics (NumPy, host side; for tests and quick checks — validation lives elsewhere)
# --------------------------------------------------------------------------------------------


# the read-outs live in their own module; re-exported here for existing imports
from owjax.organs.intestine_metrics import oscillation_period, peak_times, wave_direction, wave_onsets  # noqa: E402

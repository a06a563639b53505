"""Building the thermotaxis loop from plain settings (shared by the fit task and the simulate scenarios).

:func:`make_loop` builds the head circuit (c302 C1 restricted to :data:`~owjax.navigation.circuit.HEAD_CELLS`,
cached per process: the rest properties take a few seconds), the shipped AFD transducer (with the
worm's memory of its cultivation temperature, :data:`CULTIVATION_MEMORY_TAU_S`), a body and a field, and
applies parameter values. :func:`draw_worms` draws start positions, headings, noise and
cultivation temperatures for a batch.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from owjax.navigation.arena import AbstractField, make_field

__all__ = ["head_circuit", "circuit_and_transducer", "make_loop", "draw_worms", "BODY_KEYS", "field_from_config", "navigation_transducer",
           "CULTIVATION_MEMORY_TAU_S", "STARTS", "ISOTHERM_TOLERANCE", "check_start"]

#: Time constant (s) of the AFD transducer's slow adaptation state u_slow in the navigation loop, where
#: u_slow starts at the cultivation temperature and stands for the worm's memory of it: 4 h. Worms moved
#: to a new temperature take hours to adopt it as their preference (Hedgecock & Russell 1975), and the
#: calcium recordings the transducer was fitted on (≈ 10-min ramps) do not determine this time constant:
#: the fitted τ_a (1 301 s) and 1 h, 4 h or 10⁷ s give the same fit to all 50 AFD recordings (median r
#: 0.903 / 0.894 / 0.907 / 0.890; experiments/thermotaxis/README.md, "Fifth attempt"). With the fitted
#: 22 min the memory fades during a 20-min assay (≈ 60 % of it is gone) and the worm's reference drifts
#: towards the temperature it crawls through. ``None`` in :func:`make_loop` keeps the fitted value.
CULTIVATION_MEMORY_TAU_S = 4 * 3600.0

BODY_KEYS = ("speed_cm_s", "sweep_period_s", "head_amplitude_rad", "head_length_cm", "steer_rate_rad_s",
             "pirouette_rate_rad_s", "wander_rate_rad_s", "noise_dt_s", "pirouette_duration_s", "edge_wall")


@functools.lru_cache(maxsize=4)
def head_circuit(parameter_set: str = "C1", dt_ms: float = 10.0, dtype: str = "float32"):
    """The graded head circuit (cached)."""
    from owjax.navigation.circuit import GradedHeadCircuit, head_circuit_spec

    return GradedHeadCircuit.from_spec(head_circuit_spec(parameter_set), dt_ms=dt_ms, dtype=jnp.dtype(dtype),
                                       parameter_set=parameter_set)


def field_from_config(d: Mapping) -> AbstractField:
    """A field from ``{kind: …, <its arguments>}``."""
    d = dict(d)
    if "kind" not in d:
        raise ValueError(f"arena field {d}: needs a 'kind' (linear_temperature, radial_temperature, …)")
    return make_field(d.pop("kind"), **d)


def navigation_transducer(path=None, dtype="float32", memory_tau_s: float | None = CULTIVATION_MEMORY_TAU_S):
    """The AFD transducer (spec, params) as the navigation loop uses it: the shipped file (or ``path``)
    with its slow adaptation time constant set to ``memory_tau_s`` (s; ``None``: the fitted one).

    Raises:
        ValueError: ``memory_tau_s`` not a positive finite number.
    """
    from owjax.sensory.loaders import DATA_DIR
    from owjax.sensory.transducer import load_transducer

    spec, params = load_transducer(path or DATA_DIR / "afd_transducer.npz", dtype=jnp.dtype(dtype))
    if memory_tau_s is not None:
        tau = float(memory_tau_s)
        if not (np.isfinite(tau) and tau > 0):
            raise ValueError(f"memory_tau_s must be a positive number of seconds (or null for the transducer's "
                             f"fitted value), got {memory_tau_s!r}")
        params = dict(params, log_tau_adapt_s=jnp.asarray(np.log(tau), params["log_tau_adapt_s"].dtype))
    return spec, params


def circuit_and_transducer(parameter_set: str = "C1", dt_ms: float = 10.0, dtype: str = "float32",
                           ablate: Sequence[str] = (), transducer_path=None,
                           memory_tau_s: float | None = CULTIVATION_MEMORY_TAU_S):
    """The head circuit (``ablate`` killed) and the AFD transducer component every body level of the loop
    uses (:func:`make_loop`, :func:`owjax.navigation.mechanical.make_mechanical_loop`); arguments as
    :func:`make_loop`'s."""
    from owjax.sensory.component import GRUTransducer

    circuit = head_circuit(parameter_set, float(dt_ms), str(dtype))
    if ablate:
        circuit = circuit.ablate(list(ablate))
    spec, params = navigation_transducer(transducer_path, dtype, memory_tau_s)
    return circuit, GRUTransducer(spec, params)


def make_loop(field: AbstractField, body: Mapping, values: Mapping | None = None, parameter_set: str = "C1",
              dt_ms: float = 10.0, dtype: str = "float32", ablate: Sequence[str] = (), transducer_path=None,
              duration_s: float = 60.0, memory_tau_s: float | None = CULTIVATION_MEMORY_TAU_S,
              afd_phasic: Mapping | None = None):
    """The loop (:func:`owjax.navigation.loop.build_loop`) with ``values`` applied and ``ablate`` killed.

    Arguments:
        field: the arena field. body: NavigationBody settings (:data:`BODY_KEYS`; ``edge_wall``: the
            plate's edge is a wall, :class:`~owjax.navigation.loop.PlateEdge`).
        values: parameter values (:mod:`owjax.navigation.params`); ``None``: c302's circuit with
            unit read-outs.
        parameter_set, dt_ms, dtype: circuit settings. ablate: cells to kill.
        transducer_path: AFD transducer file (default: the shipped one).
        duration_s: length the body's placeholder noise table covers (replaced per worm).
        memory_tau_s: the transducer's slow adaptation time constant (s), the memory of the cultivation
            temperature (:data:`CULTIVATION_MEMORY_TAU_S`); ``None``: the transducer's fitted value.
        afd_phasic: AFD's phasic channel (:func:`owjax.navigation.loop.build_loop`) when ``values`` do not
            carry one (values that do decide: :func:`owjax.navigation.params.afd_phasic_from_values`).
    """
    from owjax.navigation.body import NOISE_COLUMNS, NavigationBody
    from owjax.navigation.loop import build_loop
    from owjax.navigation.params import afd_phasic_from_values, apply_values

    bad = sorted(set(body) - set(BODY_KEYS))
    if bad:
        raise ValueError(f"body: unknown key(s) {bad}; allowed: {list(BODY_KEYS)}")
    circuit, transducer = circuit_and_transducer(parameter_set, dt_ms, dtype, ablate, transducer_path, memory_tau_s)
    nd = float(body.get("noise_dt_s", 1.0))
    kw = dict(body)
    edge_wall = bool(kw.pop("edge_wall", False))
    bod = NavigationBody(jnp.zeros((int(duration_s / nd) + 2, NOISE_COLUMNS), jnp.dtype(dtype)), **kw)
    loop = build_loop(circuit, transducer, bod, field, edge_wall=edge_wall, afd_phasic=afd_phasic_from_values(values) or afd_phasic)
    if values is not None:
        loop = apply_values(loop, values)
    return loop


#: where worms start (:func:`draw_worms`): ``uniform`` on the plate, or on the ``isotherm`` of each worm's
#: cultivation temperature (the field's value at T_c; the population assay of a worm placed at the
#: temperature it was raised at, where an uninformed worm has no reason to end warm or cold of it)
STARTS = ("uniform", "isotherm")
#: an ``isotherm`` start lies within this of T_c (°C, in the field's unit)
ISOTHERM_TOLERANCE = 0.05


def check_start(start: str) -> str:
    """``start`` if it is one of :data:`STARTS`; a ValueError naming the allowed ones otherwise."""
    if start not in STARTS:
        raise ValueError(f"start={start!r}; allowed: {list(STARTS)}")
    return start


def _isotherm_starts(key, field: AbstractField, tc: np.ndarray, margin_cm: float, dtype) -> jax.Array:
    """(B, 2) start positions: for each distinct T_c, independent uniform draws from the points of the plate
    (``margin_cm`` inside its edge) where the field is within :data:`ISOTHERM_TOLERANCE` of it (rejection
    sampling: the first accepted candidates of uniform draws over the plate's extent, each used once)."""
    x0, x1, y0, y1 = field.extent_cm()
    unit = getattr(field, "unit", "")
    grid = np.stack(np.meshgrid(np.linspace(x0, x1, 201), np.linspace(y0, y1, 201)), -1).reshape(-1, 2)
    on = np.asarray(field.outside_cm(grid[:, 0], grid[:, 1])) <= -margin_cm
    if not on.any():
        raise ValueError(f"start='isotherm': no point of the plate lies {margin_cm} cm inside its edge")
    vals = np.asarray(field(grid[on, 0], grid[on, 1]), float)
    off = sorted({float(t) for t in tc if not vals.min() - ISOTHERM_TOLERANCE <= t <= vals.max() + ISOTHERM_TOLERANCE})
    if off:
        raise ValueError(f"start='isotherm': no start found on the isotherm of T_c = {off} — the plate "
                         f"({margin_cm} cm inside its edge) spans {vals.min():.2f} … {vals.max():.2f} {unit}")
    out = np.full((tc.size, 2), np.nan)
    n_cand, max_draws = 16384, 4096
    for j, t in enumerate(np.unique(tc)):
        rows = np.flatnonzero(tc == t)
        found, n_found = [], 0
        for attempt in range(max_draws):
            xy = np.asarray(jax.random.uniform(jax.random.fold_in(jax.random.fold_in(key, j), attempt), (n_cand, 2)), float)
            xy = np.array([x0, y0]) + np.array([x1 - x0, y1 - y0]) * xy
            ok = ((np.asarray(field.outside_cm(xy[:, 0], xy[:, 1])) <= -margin_cm)
                  & (np.abs(np.asarray(field(xy[:, 0], xy[:, 1]), float) - t) <= ISOTHERM_TOLERANCE))
            found.append(xy[ok])
            n_found += int(ok.sum())
            if n_found >= rows.size:
                break
        else:
            raise ValueError(f"start='isotherm': only {n_found} of {rows.size} starts found within "
                             f"{ISOTHERM_TOLERANCE} {unit} of {t:g} in {max_draws * n_cand} draws")
        out[rows] = np.concatenate(found)[:rows.size]
    return jnp.asarray(out, dtype)


def draw_worms(key, n_worms: int, field: AbstractField, cultivation_temps_c: Sequence[float], duration_s: float,
               noise_dt_s: float = 1.0, margin_cm: float = 0.5, start_xy_cm=None, dtype="float32",
               start: str = "uniform") -> dict:
    """A batch of worms: start positions (``start``, :data:`STARTS`: ``uniform`` on the plate, or
    ``isotherm``: on the isotherm of each worm's T_c, within :data:`ISOTHERM_TOLERANCE`; either
    ``margin_cm`` inside the edge; or all at ``start_xy_cm``), headings uniform, noise tables, and
    cultivation temperatures cycling through ``cultivation_temps_c``.

    Returns:
        ``{"xy": (B, 2), "heading": (B,), "noise": (B, K, 2), "tc": (B,)}``.

    Raises:
        ValueError: an unknown ``start``, ``start_xy_cm`` with ``start="isotherm"``, or a T_c whose
            isotherm is not on the plate.
    """
    from owjax.navigation.body import body_noise

    if n_worms < 1:
        raise ValueError(f"n_worms must be >= 1, got {n_worms}")
    check_start(start)
    if start == "isotherm" and start_xy_cm is not None:
        raise ValueError("start='isotherm' and start_xy_cm both set: choose one")
    dt = jnp.dtype(dtype)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    x0, x1, y0, y1 = field.extent_cm()
    tcs = np.asarray(list(cultivation_temps_c), float)
    if tcs.size == 0:
        raise ValueError("cultivation_temps_c is empty")
    tc_np = np.resize(tcs, n_worms)
    if start == "isotherm":
        xy = _isotherm_starts(k1, field, tc_np, margin_cm, dt)
    elif start_xy_cm is not None:
        xy = jnp.tile(jnp.asarray(start_xy_cm, dt).reshape(1, 2), (n_worms, 1))
    else:
        lo = jnp.asarray([x0 + margin_cm, y0 + margin_cm], dt)
        hi = jnp.asarray([x1 - margin_cm, y1 - margin_cm], dt)
        xy = lo + (hi - lo) * jax.random.uniform(k1, (n_worms, 2), dt)
        if hasattr(field, "radius_cm"):  # a round plate: uniform in the disc
            r = (field.radius_cm - margin_cm) * jnp.sqrt(jax.random.uniform(k1, (n_worms,), dt))
            a = 2 * jnp.pi * jax.random.uniform(k4, (n_worms,), dt)
            xy = jnp.stack([r * jnp.cos(a), r * jnp.sin(a)], 1)
    heading = 2 * jnp.pi * jax.random.uniform(k2, (n_worms,), dt)
    noise = jax.vmap(lambda k: body_noise(k, duration_s, noise_dt_s, dt))(jax.random.split(k3, n_worms))
    tc = jnp.asarray(tc_np, dt)
    return {"xy": xy, "heading": heading, "noise": noise, "tc": tc}

"""Evaluating a loop: many worms on a field, their tracks and the thermotaxis / chemotaxis metrics.

:func:`run_worms` solves a batch in chunks of ``batch`` worms (one compiled vmapped solve, reused for
every chunk, every ablation and every cultivation temperature); :func:`evaluate_thermotaxis` turns
the tracks into :func:`~owjax.navigation.metrics.thermotaxis_summary`. Both can also report the
range of every head-circuit cell's membrane potential over the run (:func:`potential_range`): a cell
outside c302's I–V table (−100 … +60 mV) is outside what the reduction was built for — a trained tonic
bias of ±3 pA moves a C1 cell (slope conductance 0.023 nS at rest) by ≈ 130 mV, and the circuit
imitated on 2026-12-04 holds AFDL near −710 mV that way, i.e. silenced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from owjax.navigation.arena import AbstractField
from owjax.navigation.metrics import thermotaxis_summary
from owjax.navigation.setup import CULTIVATION_MEMORY_TAU_S, check_start, draw_worms, make_loop

__all__ = ["run_worms", "worm_chunks", "evaluate_thermotaxis", "potential_range"]

log = logging.getLogger(__name__)


@eqx.filter_jit
def _solve_chunk(loop, xy, heading, noise, tc, duration_s, dt_out_s, potentials: bool = False):
    """Centroid tracks of one chunk; with ``potentials`` (static) also each circuit cell's minimum and
    maximum membrane potential over the chunk's worms and output times."""
    from owjax.navigation.loop import simulate_worms

    save = ("body.pos", "circuit.V") if potentials else ("body.pos",)
    sol = simulate_worms(loop, xy, heading, noise, tc, duration_s, dt_out_s, save=save)
    if not potentials:
        return sol.ys["body"]["pos"]
    v = sol.ys["circuit"]["V"]
    return sol.ys["body"]["pos"], jnp.min(v, axis=(0, 1)), jnp.max(v, axis=(0, 1))


def potential_range(cell_names, v_min_mV, v_max_mV, alive=None) -> dict:
    """``{"circuit_v_range_mV": {cell: [min, max]}, "cells_outside_iv_grid": [...]}`` for the living
    cells; the second lists those that left c302's I–V table (:data:`~owjax.navigation.circuit.IV_GRID_MV`),
    and a warning is logged for them."""
    from owjax.navigation.circuit import IV_GRID_MV

    alive = np.ones(len(cell_names), bool) if alive is None else np.asarray(alive, bool)
    lo, hi = np.asarray(v_min_mV, float), np.asarray(v_max_mV, float)
    rng = {c: [round(float(a), 2), round(float(b), 2)] for c, a, b, ok in zip(cell_names, lo, hi, alive) if ok}
    out = [c for c, (a, b) in rng.items() if a < IV_GRID_MV[0] or b > IV_GRID_MV[-1]]
    if out:
        log.warning("head-circuit cells outside c302's I–V table (%g … %g mV) during the run: %s",
                    IV_GRID_MV[0], IV_GRID_MV[-1], {c: rng[c] for c in out})
    return {"circuit_v_range_mV": rng, "cells_outside_iv_grid": out}


def worm_chunks(worms: Mapping, batch: int):
    """``(chunk, m)`` for consecutive chunks of ``batch`` worms (every array of ``worms`` sliced along its
    first axis); a last, shorter chunk of ``m`` worms is padded with copies of its last worm to the
    compiled size when there is more than one chunk (padded worms repeat the last one, so minima and
    maxima over a chunk are unchanged)."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    n = int(worms["xy"].shape[0])
    for i in range(0, n, batch):
        chunk = {k: v[i:i + batch] for k, v in worms.items()}
        m = int(chunk["xy"].shape[0])
        if m < batch and n > batch:  # pad to the compiled size
            chunk = {k: jnp.concatenate([v, jnp.repeat(v[-1:], batch - m, 0)]) for k, v in chunk.items()}
        yield chunk, m


def run_worms(loop, worms: Mapping, duration_s: float, dt_out_s: float = 1.0, batch: int = 64,
              return_potential_range: bool = False):
    """Centroid tracks (B, T, 2) in cm of ``worms`` (:func:`~owjax.navigation.setup.draw_worms`),
    solved ``batch`` at a time; with ``return_potential_range`` also :func:`potential_range` of the
    head circuit over all worms and output times (``(tracks, range)``)."""
    out, v_lo, v_hi = [], [], []
    for chunk, m in worm_chunks(worms, batch):
        res = _solve_chunk(loop, chunk["xy"], chunk["heading"], chunk["noise"], chunk["tc"], float(duration_s),
                           float(dt_out_s), return_potential_range)
        if return_potential_range:  # padded worms repeat the last one: min/max unchanged
            pos, lo, hi = res
            v_lo.append(np.asarray(lo))
            v_hi.append(np.asarray(hi))
        else:
            pos = res
        out.append(np.asarray(pos)[:m])
    tracks = np.concatenate(out, 0)
    if not return_potential_range:
        return tracks
    c = loop["circuit"]
    return tracks, potential_range(c.cell_names, np.min(v_lo, 0), np.max(v_hi, 0), c.alive)


def evaluate_thermotaxis(field: AbstractField, body: Mapping, values: Mapping | None, cultivation_temp_c: float,
                         n_worms: int, duration_s: float, seed: int = 0, ablate: Sequence[str] = (),
                         dt_out_s: float = 1.0, parameter_set: str = "C1", dt_ms: float = 10.0,
                         dtype: str = "float32", batch: int = 64, window_s: float = 600.0,
                         memory_tau_s: float | None = CULTIVATION_MEMORY_TAU_S,
                         transform_loop: Callable | None = None, start: str = "uniform") -> tuple[dict, dict]:
    """Thermotaxis of ``n_worms`` worms cultivated at ``cultivation_temp_c`` on ``field`` (``memory_tau_s``:
    the AFD transducer's memory of T_c, :func:`owjax.navigation.setup.make_loop`); ``transform_loop``:
    applied to the built loop (values applied, cells killed) before it runs, e.g. to swap a coupling;
    ``start``: where the worms start (:data:`owjax.navigation.setup.STARTS`: ``uniform`` on the plate or on
    the T_c ``isotherm``).

    Returns:
        ``(summary, tracks)``: the metrics (plus wall time, settings and :func:`potential_range`) and
        ``{"t_s", "pos_cm", "temp_c"}`` arrays.
    """
    t0 = time.perf_counter()
    check_start(start)  # before the loop is built
    loop = make_loop(field, body, values, parameter_set, dt_ms, dtype, ablate, duration_s=duration_s,
                     memory_tau_s=memory_tau_s)
    if transform_loop is not None:
        loop = transform_loop(loop)
    worms = draw_worms(jax.random.PRNGKey(int(seed)), int(n_worms), field, [cultivation_temp_c], duration_s,
                       float(body.get("noise_dt_s", 1.0)), dtype=dtype, start=start)
    pos, v_range = run_worms(loop, worms, duration_s, dt_out_s, batch=min(int(batch), int(n_worms)),
                             return_potential_range=True)
    t = np.arange(pos.shape[1]) * float(dt_out_s)
    temp = np.asarray(field(pos[..., 0], pos[..., 1]))
    on_plate = np.asarray(field.on_plate(pos[..., 0], pos[..., 1]))
    s = thermotaxis_summary(t, temp, cultivation_temp_c, window_s=window_s, on_plate=on_plate)
    s.update(ablated=list(ablate), duration_s=float(duration_s), seed=int(seed), start=start, transducer_memory_tau_s=memory_tau_s,
             wall_time_s=round(time.perf_counter() - t0, 3), **v_range)
    return s, {"t_s": t, "pos_cm": pos, "temp_c": temp}

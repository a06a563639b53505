"""Evaluating a loop: many worms on a field, their tracks and the thermotaxis / chemotaxis metrics.

:func:`run_worms` solves a batch in chunks of ``batch`` worms (one compiled vmapped solve, reused for
every chunk, every ablation and every cultivation temperature); :func:`evaluate_thermotaxis` turns
the tracks into :func:`~owjax.navigation.metrics.thermotaxis_summary`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from owjax.navigation.arena import AbstractField
from owjax.navigation.metrics import thermotaxis_summary
from owjax.navigation.setup import CULTIVATION_MEMORY_TAU_S, draw_worms, make_loop

__all__ = ["run_worms", "evaluate_thermotaxis"]


@eqx.filter_jit
def _solve_chunk(loop, xy, heading, noise, tc, duration_s, dt_out_s):
    from owjax.navigation.loop import simulate_worms

    sol = simulate_worms(loop, xy, heading, noise, tc, duration_s, dt_out_s, save=("body.pos",))
    return sol.ys["body"]["pos"]


def run_worms(loop, worms: Mapping, duration_s: float, dt_out_s: float = 1.0, batch: int = 64) -> np.ndarray:
    """Centroid tracks (B, T, 2) in cm of ``worms`` (:func:`~owjax.navigation.setup.draw_worms`),
    solved ``batch`` at a time."""
    n = int(worms["xy"].shape[0])
    out = []
    for i in range(0, n, batch):
        sl = slice(i, min(i + batch, n))
        chunk = {k: v[sl] for k, v in worms.items()}
        m = chunk["xy"].shape[0]
        if m < batch and n > batch:  # pad to the compiled size
            chunk = {k: jnp.concatenate([v, jnp.repeat(v[-1:], batch - m, 0)]) for k, v in chunk.items()}
        pos = _solve_chunk(loop, chunk["xy"], chunk["heading"], chunk["noise"], chunk["tc"], float(duration_s),
                           float(dt_out_s))
        out.append(np.asarray(pos)[:m])
    return np.concatenate(out, 0)


def evaluate_thermotaxis(field: AbstractField, body: Mapping, values: Mapping | None, cultivation_temp_c: float,
                         n_worms: int, duration_s: float, seed: int = 0, ablate: Sequence[str] = (),
                         dt_out_s: float = 1.0, parameter_set: str = "C1", dt_ms: float = 10.0,
                         dtype: str = "float32", batch: int = 64, window_s: float = 600.0,
                         memory_tau_s: float | None = CULTIVATION_MEMORY_TAU_S) -> tuple[dict, dict]:
    """Thermotaxis of ``n_worms`` worms cultivated at ``cultivation_temp_c`` on ``field`` (``memory_tau_s``:
    the AFD transducer's memory of T_c, :func:`owjax.navigation.setup.make_loop`).

    Returns:
        ``(summary, tracks)``: the metrics (plus wall time and settings) and ``{"t_s", "pos_cm",
        "temp_c"}`` arrays.
    """
    t0 = time.perf_counter()
    loop = make_loop(field, body, values, parameter_set, dt_ms, dtype, ablate, duration_s=duration_s,
                     memory_tau_s=memory_tau_s)
    worms = draw_worms(jax.random.PRNGKey(int(seed)), int(n_worms), field, [cultivation_temp_c], duration_s,
                       float(body.get("noise_dt_s", 1.0)), dtype=dtype)
    pos = run_worms(loop, worms, duration_s, dt_out_s, batch=min(int(batch), int(n_worms)))
    t = np.arange(pos.shape[1]) * float(dt_out_s)
    temp = np.asarray(field(pos[..., 0], pos[..., 1]))
    on_plate = np.asarray(field.on_plate(pos[..., 0], pos[..., 1]))
    s = thermotaxis_summary(t, temp, cultivation_temp_c, window_s=window_s, on_plate=on_plate)
    s.update(ablated=list(ablate), duration_s=float(duration_s), seed=int(seed), transducer_memory_tau_s=memory_tau_s,
             wall_time_s=round(time.perf_counter() - t0, 3))
    return s, {"t_s": t, "pos_cm": pos, "temp_c": temp}

"""What one surrogate prediction costs in arithmetic, and how fast this CPU does it.

XLA's own count of floating-point operations per 5-s sample (``compiled.cost_analysis()``) for the whole
shipped model (operator + interpolation + kinematics) and for the operator alone (``BodyFNO.channels``: the
operator with the subsampling to its own grid and the cubic interpolation back, no kinematics),
and their jitted, on-device time per sample at batch 64 and 256 on the training grid (0.04 s; no host
transfers, unlike ``benchmarks/surrogate.py``, which times ``predict_batch`` end to end): the achieved
GFLOP/s says whether the ≥ 1000× bar needs faster code or fewer operations.

Run: ``.venv/bin/python experiments/body_surrogate/operator_cost.py [--repeats 7]`` (≈ 1 min) →
``results/operator_cost.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from owjax.core.checkpoint import atomic_write_json
from owjax.surrogate import families as F
from owjax.surrogate.component import BodySurrogate

HERE = Path(__file__).resolve().parent


def _flops(fn, *args) -> float:
    ca = jax.jit(fn).lower(*args).compile().cost_analysis()
    ca = ca[0] if isinstance(ca, list) else ca
    return float(ca["flops"])


def _seconds(fn, args, repeats: int) -> float:
    f = jax.jit(fn)
    jax.block_until_ready(f(*args))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def main(repeats: int) -> dict:
    sur = BodySurrogate.load(None)
    dur, dt = float(sur.settings["duration_s"]), float(sur.settings["dt_train_s"])
    t = F.time_grid(dur, dt)
    params = [F.draw_params("wave", 2026, i) for i in range(256)]
    acts = jnp.asarray(np.stack([F.make_activation("wave", q, t) for q in params]), jnp.float32)
    med = jnp.asarray([q["medium"] for q in params], jnp.float32)
    tj = jnp.asarray(t, jnp.float32)
    model = sur.model.on_grid(dt)  # its operator at its own time step on this grid
    parts = {"model": lambda t_, a, m: jax.vmap(model, in_axes=(None, 0, 0))(t_, a, m),
             "operator": lambda t_, a, m: jax.vmap(model.channels, in_axes=(None, 0, 0))(t_, a, m)}
    out = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "load_average": list(os.getloadavg()), "grid_dt_s": dt,
           "jax": jax.__version__, "devices": [str(d) for d in jax.devices()], "parts": {}}
    for name, fn in parts.items():
        flops = _flops(fn, tj, acts[:64], med[:64]) / 64
        row = {"flops_per_sample": flops}
        for b in (64, 256):
            s = _seconds(fn, (tj, acts[:b], med[:b]), repeats) / b
            row[f"us_per_sample_batch{b}"] = round(s * 1e6, 1)
            row[f"gflops_per_s_batch{b}"] = round(flops / s / 1e9, 1)
        out["parts"][name] = row
        print(name, row, flush=True)
    atomic_write_json(HERE / "results" / "operator_cost.json", out)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    main(ap.parse_args().repeats)

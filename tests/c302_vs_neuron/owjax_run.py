"""Helpers of the c302-vs-NEURON equivalence tests and study: owjax runs as traces."""

from __future__ import annotations

import numpy as np


def owjax_traces(parameter_set: str, config: str, duration_ms: float, dt_out_ms: float = 0.05,
                 solver="tsit5", dtype: str = "float64"):
    """Simulate a captured c302 network with owjax; return (Traces, Solution)."""
    from owjax.neural.build import build_model, build_spec
    from owjax.core.solve import solve
    from owjax.traces import Traces
    from owjax.core.units import CA_STATE_SCALE

    model = build_model(build_spec(parameter_set, config), dtype)
    sol = solve(model, float(duration_ms), float(dt_out_ms), solver)
    V = np.asarray(sol.ys["V"]).T.astype(np.float64)
    Ca = (np.asarray(sol.ys["Ca"]).T / CA_STATE_SCALE).astype(np.float64)
    muscle = model.muscle_mask
    names = np.array(model.cell_names)
    pops = {}
    if (~muscle).any():
        pops["neurons"] = dict(names=names[~muscle], V=V[~muscle], Ca=Ca[~muscle])
    if muscle.any():
        pops["muscles"] = dict(names=names[muscle], V=V[muscle], Ca=Ca[muscle],
                               activation=np.minimum(1.0, Ca[muscle] / 4e-7))  # DD002
    attrs = dict(simulator="owjax", solver=sol.solver.method, rtol=sol.solver.rtol, atol=sol.solver.atol,
                 dtype=dtype, model=f"c302_{parameter_set}", network=f"c302_{parameter_set}_{config}",
                 dt_out_ms=float(dt_out_ms), duration_ms=float(duration_ms),
                 sim_time_s=sol.wall_time_s - sol.compile_time_s, compile_time_s=sol.compile_time_s,
                 num_steps=int(sol.stats.get("num_steps", -1)))
    return Traces(t_ms=sol.t_ms, populations=pops, attrs=attrs), sol

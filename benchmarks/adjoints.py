"""What diffrax's reverse mode costs per step, whatever the vector field, for each adjoint (issue 16).

    python -m benchmarks.adjoints [--steps 4092] [--state 5610]

A fixed-step Tsit5 solve of the trivial linear field dy/dt = a·y with a state as large as C1 Full's
(5 610 numbers; 4 092 steps, output every 4 steps, float64), forward and reverse mode with
``RecursiveCheckpointAdjoint`` (diffrax's default checkpoint count, 100 checkpoints, one checkpoint per
step: nothing recomputed), ``BacksolveAdjoint`` (the continuous adjoint solved backwards) and
``DirectAdjoint``. The vector field's own VJP is nearly free here, so the ratio is the solver
machinery's: the floor under any owjax gradient/forward ratio that goes through diffrax's adjoints.
Each number is the best of three after compilation.

Writes ``benchmarks/results/adjoints.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=4092, help="fixed steps (C1 Full, 1 s, Tsit5: 4092)")
    p.add_argument("--state", type=int, default=5610, help="state size (C1 Full: 5610)")
    a = p.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    import diffrax as dfx
    import jax.numpy as jnp

    from benchmarks.gradient_cost import _best, linear_tsit5_loss
    from benchmarks.run_all import machine

    load = os.getloadavg()[0]
    rate = -jnp.linspace(0.5, 2.0, a.state)

    def make(adjoint):
        return linear_tsit5_loss(a.state, a.steps, adjoint)

    fwd = _best(jax.jit(make(dfx.RecursiveCheckpointAdjoint())), rate)
    rows = []
    for name, adjoint in (("RecursiveCheckpointAdjoint() (diffrax default)", dfx.RecursiveCheckpointAdjoint()),
                          ("RecursiveCheckpointAdjoint(checkpoints=100)", dfx.RecursiveCheckpointAdjoint(checkpoints=100)),
                          ("RecursiveCheckpointAdjoint(checkpoints=every step)",
                           dfx.RecursiveCheckpointAdjoint(checkpoints=2 * a.steps)),
                          ("BacksolveAdjoint()", dfx.BacksolveAdjoint()),
                          ("DirectAdjoint()", dfx.DirectAdjoint())):
        g = _best(jax.jit(jax.grad(make(adjoint))), rate)
        rows.append({"adjoint": name, "gradient_us_per_step": g / a.steps * 1e6, "gradient_over_forward": g / fwd})
        print(json.dumps(rows[-1]), flush=True)
    rec = {"case": "diffrax_adjoints_linear", "machine": machine(), "load_average_at_start": load, "steps": a.steps,
           "state": a.state, "forward_us_per_step": fwd / a.steps * 1e6, "rows": rows, "jax_version": jax.__version__}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "adjoints.json").write_text(json.dumps([rec], indent=1) + "\n")
    (RESULTS / "adjoints.md").write_text(
        f"diffrax reverse mode per step on dy/dt = a·y (state {a.state}, {a.steps} fixed Tsit5 steps, float64), "
        f"{rec['machine']}, load average at start {load:.1f} (`python -m benchmarks.adjoints`). "
        f"Forward: {rec['forward_us_per_step']:.1f} µs per step.\n\n"
        "| adjoint | gradient (µs per step) | gradient / forward |\n|---|---|---|\n"
        + "".join(f"| {r['adjoint']} | {r['gradient_us_per_step']:.1f} | {r['gradient_over_forward']:.1f}× |\n"
                  for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

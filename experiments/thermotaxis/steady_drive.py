"""Where a trained head circuit settles under a constant AFD response, and how c302's membrane compresses
the AFD current (README, "Seventh attempt").

1. AFD's steady potential for injected currents 0 … 5 pA, from c302's own steady-state I–V
   (``owjax.navigation.circuit.c302_steady_state_iv``): ≈ 7 mV per doubling above 0.25 pA.
2. For a trained circuit (``head_circuit.npz``): every cell settled for 60 s under a constant normalised
   AFD response r (the loop's current ``afd_gain_pA · r + afd_offset_pA`` into AFDL/R), the first-layer and
   command cells' potentials and the pirouette drive σ(gain · (AVA − AVB − threshold)/10 mV).

Run: ``.venv/bin/python experiments/thermotaxis/steady_drive.py [CIRCUIT.npz|shipped] [NAME]`` (≈ 30 s);
writes ``results/steady_drive_NAME.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from owjax.navigation.circuit import c302_steady_state_iv, head_circuit_spec
from owjax.navigation.loop import ReversalCommand
from owjax.navigation.params import DEFAULT_DATA, load_values
from owjax.navigation.setup import field_from_config, make_loop

HERE = Path(__file__).resolve().parent
CELLS = ("AFDL", "AFDR", "AIYL", "AIYR", "AIZL", "AIZR", "AIBL", "AIBR", "RIBL", "RIBR", "AVAL", "AVAR", "AVBL", "AVBR")
RESPONSES = (-0.1, 0.0, 0.3, 0.7, 1.0, 1.5, 2.0, 2.5)
CURRENTS_PA = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0)


def afd_iv() -> list[dict]:
    iv = c302_steady_state_iv(head_circuit_spec("C1"), "AFDL")
    v, i = iv["v_mV"], iv["i_pA"]
    # steady state under an injected current I: I∞(V) + I = 0 (I∞ decreases with V on this range)
    return [{"current_pA": c, "v_mV": round(float(np.interp(-c, i[::-1], v[::-1])), 2)} for c in CURRENTS_PA]


def settle(path: Path) -> list[dict]:
    vals = load_values(path)
    loop = make_loop(field_from_config({"kind": "radial_temperature", "center_c": 13.0, "edge_c": 27.0,
                                        "radius_cm": 4.5}), {}, vals)
    c = loop["circuit"]
    rc = [x for x in loop.couplings if isinstance(x, ReversalCommand)][0]
    afd = jnp.asarray([c.index("AFDL"), c.index("AFDR")])
    rows = []
    for r in RESPONSES:
        i = jnp.zeros(c.n_cells, c.dtype).at[afd].set(float(vals["afd_gain_pA"]) * r + float(vals["afd_offset_pA"]))
        y = c.settle(c.initial_state(), i, 6000)
        v = np.asarray(y["V"])
        rows.append({"response": r, "v_mV": {n: round(float(v[c.index(n)]), 2) for n in CELLS},
                     "pirouette_drive": round(float(rc(0.0, {"V_mV": y["V"]})), 4)})
    return rows


if __name__ == "__main__":
    path = DEFAULT_DATA if len(sys.argv) < 2 or sys.argv[1] == "shipped" else Path(sys.argv[1])
    name = sys.argv[2] if len(sys.argv) > 2 else ("shipped" if path == DEFAULT_DATA else path.parent.name)
    t0 = time.time()
    out = {"circuit": str(path), "afd_steady_iv": afd_iv(), "settled_60_s": settle(path),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "wall_time_s": round(time.time() - t0, 1),
           "command": "python experiments/thermotaxis/steady_drive.py " + " ".join(sys.argv[1:])}
    (HERE / "results" / f"steady_drive_{name}.json").write_text(json.dumps(out, indent=1) + "\n")
    for row in out["afd_steady_iv"]:
        print(f"AFD {row['current_pA']:4.2f} pA -> {row['v_mV']:7.2f} mV")
    for row in out["settled_60_s"]:
        print(f"r = {row['response']:5.2f}: drive {row['pirouette_drive']:.3f}  " +
              " ".join(f"{k} {v:7.1f}" for k, v in row["v_mV"].items()))

"""How much of the teacher's pirouette drive a trained head circuit's cells hold, whether or not its read-out uses it.

The imitation fits (``imitate.py``) end near the KL of the best function of the present AFD response
alone. Is the rest of the teacher's drive — its dependence on the response's derivative — missing from the
circuit, or present in some cell and not read out? For one saved circuit and one cell this script runs the
circuit open loop on the held-out wandering worms of ``imitate.py`` (worms 48–71, nine 120-s segments each)
and reports KL(teacher ‖ best function of the binned level z_f × the binned cell potential): the drive a
read-out of that cell and the level could reach at best. References: the circuit's own drive, the level
alone, and the level × the teacher's own derivative z_f − z_s in the same bins.

Run: ``.venv/bin/python experiments/thermotaxis/cell_information.py results/imitation_aux_aizr/head_circuit.npz AIZR``
(≈ 1 min). Prints a JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import imitate as im  # noqa: E402
import policy_bounds as pb  # noqa: E402

def best_binned_kl(q: np.ndarray, keys: np.ndarray) -> float:
    """KL(q ‖ the mean of q within each key): the best drive that is a function of the keys."""
    _, inv = np.unique(keys, return_inverse=True)
    m = np.bincount(inv, q) / np.bincount(inv)
    return im.kl(q, m[inv])


def quantile_bins(x: np.ndarray, n: int) -> np.ndarray:
    return np.digitize(x, np.quantile(x, np.linspace(0, 1, n + 1)[1:-1]))


def main(path: Path, cell: str) -> dict:
    task, raw, prov = im.saved_task(path)
    best = im.teacher_params(prov.get("teacher_source", "compressed"), prov.get("teacher_rank", 0))
    _, r = (np.asarray(a, np.float64) for a in pb.wander_response(2.0))
    q = im.teacher_drive(r, best)
    zf, zs = im.teacher_filters(r, best)
    row = task.loop["circuit"].index(cell)
    segs = im.held_out_segments(r.shape[0])
    z, v = im.open_loop(task, raw, r, segs)
    cut = lambda a: im.scored_seconds(a, segs)  # noqa: E731
    Q, level, deriv = cut(q), cut(zf), cut(zf - zs)
    pot = v[:, im.SKIP_S:, row].ravel()
    lb = quantile_bins(level, 20)
    out = {"circuit": str(path), "cell": cell, "n_seconds": int(Q.size),
           "kl_circuit_drive": im.kl(Q, 1 / (1 + np.exp(-z[:, im.SKIP_S:].ravel()))),
           "kl_best_of_level_20_bins": best_binned_kl(Q, lb)}
    for nb in (2, 3, 5):
        out[f"kl_best_of_level_x_{cell}_{nb}_bins"] = best_binned_kl(Q, lb * 10 + quantile_bins(pot, nb))
        out[f"kl_best_of_level_x_teacher_derivative_{nb}_bins"] = best_binned_kl(Q, lb * 10 + quantile_bins(deriv, nb))
    dm = lambda a: (a.reshape(len(segs), -1) - a.reshape(len(segs), -1).mean(1, keepdims=True)).ravel()  # noqa: E731
    out[f"corr_{cell}_vs_teacher_derivative_segment_means_removed"] = float(np.corrcoef(dm(pot), dm(deriv))[0, 1])
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("circuit", type=Path, help="a head_circuit.npz written by imitate.py")
    ap.add_argument("cell", help="the cell whose potential is binned (e.g. AIZR)")
    a = ap.parse_args()
    print(json.dumps(main(a.circuit, a.cell)))

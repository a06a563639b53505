"""How coarse a time grid the resistive-force kinematics tolerate: their floor against the physics.

The kinematics (``owjax.surrogate.kinematics``) cost about as much as the operator (README, "Speed:
where the time goes"); evaluated on every 2nd point of the operator's grid they would cost half. This
script measures what that costs in accuracy with no operator in the way: from the physics' own tangent
angles (seed 0's test split of ``outputs/surrogate_data/full``), the centroid the kinematics give on the
data grid (0.02 s), the training grid (0.04 s) and coarser ones (0.08, 0.16 s), against the physics'
centroid at the same times (RMS over time, in body lengths; float64). Also, on the training grid, the
same with the drag sums on fewer rods (``rod_stride``: every 2nd, 4th, 6th, 8th of the 49 rods, the
trapezoidal quadrature of ``kinematics.body_frame_velocity``), and how far that moves the centroid from
the 49-rod kinematics.

Run: ``.venv/bin/python experiments/body_surrogate/kinematics_grid.py [DATA_DIR]`` (≈ 2 min).
Writes ``results/kinematics_grid.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402

from owjax.body.geometry import BODY_LENGTH_MM  # noqa: E402
from owjax.surrogate.data import load_dataset  # noqa: E402
from owjax.surrogate.kinematics import check_against_physics, resistive_force_motion  # noqa: E402

HERE = Path(__file__).resolve().parent
STRIDES = (1, 2, 4, 8)
ROD_STRIDES = (1, 2, 4, 6, 8)  # on the 0.04-s grid: 49, 25, 13, 9, 7 rods


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    data = Path(argv[0] if argv else "outputs/surrogate_data/full")
    t0 = time.time()
    ds = load_dataset(data, "test")
    t = np.asarray(ds["t_s"])
    rows = {}
    for k in STRIDES:
        err = np.array([check_against_physics(t[::k], th[::k], c[::k], float(m)) / BODY_LENGTH_MM
                        for th, c, m in zip(ds["tangent_angle_rad"], ds["centroid_mm"], ds["medium"])])
        rows[f"{t[k] - t[0]:.2f} s"] = {"mean": float(err.mean()), "median": float(np.median(err)),
                                         "p90": float(np.percentile(err, 90)), "max": float(err.max())}
        print(f"dt {t[k] - t[0]:.2f} s: {rows[f'{t[k] - t[0]:.2f} s']}", flush=True)
    rods, ref = {}, None
    for r in ROD_STRIDES:
        err, move = [], []
        for i, (th, c, m) in enumerate(zip(ds["tangent_angle_rad"], ds["centroid_mm"], ds["medium"])):
            psi = jax.numpy.asarray(th[::2] - th[::2].mean(-1, keepdims=True))
            ck, _ = resistive_force_motion(jax.numpy.asarray(t[::2]), psi, float(m), rod_stride=r)
            ck = np.asarray(ck)
            err.append(np.sqrt(np.mean(np.sum((ck - c[::2]) ** 2, -1))) / BODY_LENGTH_MM)
            if ref is not None:
                move.append(np.sqrt(np.mean(np.sum((ck - ref[i]) ** 2, -1))) / BODY_LENGTH_MM)
            elif r == 1:
                move.append(ck)
        if r == 1:
            ref, move = move, [0.0]
        err, move = np.asarray(err), np.asarray(move, float)
        rods[f"rod_stride {r} ({48 // r + 1} rods)"] = {
            "mean": float(err.mean()), "median": float(np.median(err)), "p90": float(np.percentile(err, 90)),
            "max": float(err.max()), "rms_vs_49_rods_mean": float(move.mean()), "rms_vs_49_rods_max": float(move.max())}
        print(f"rod stride {r}: {rods[f'rod_stride {r} ({48 // r + 1} rods)']}", flush=True)
    out = {"command": "python experiments/body_surrogate/kinematics_grid.py " + " ".join(argv),
           "data": str(data), "split": "test", "n": int(len(ds["medium"])),
           "rms_centroid_error_body_lengths": rows, "rods_on_the_0.04_s_grid": rods, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "wall_time_s": round(time.time() - t0, 1)}
    (HERE / "results" / "kinematics_grid.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

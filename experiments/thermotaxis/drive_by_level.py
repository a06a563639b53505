"""Which half of the policy does a trained head circuit reproduce? (issue 17)

The best hand-wired policy (``policy_bounds.py``) pirouettes when the AFD response *falls while low*
(below θ: the thermophilic half) and when it *rises while high* (the cryophilic half). This script runs
circuits open loop on recorded AFD responses of the held-out wandering worms (24 worms × 9 segments of
120 s, the first 10 s of each left out) and tabulates the mean pirouette drive by level of the response
(5 bins of the policy's fast filter z_f, quantiles of the training worms) and by direction (z_f − z_s
above +0.02: rising; below −0.02: falling), for the teacher and for each circuit.

Run: ``.venv/bin/python experiments/thermotaxis/drive_by_level.py NAME=PATH[:polarity:weight_scale:bias_max] …``
(``shipped`` names the package's circuit); writes ``results/drive_by_level.{json,md}``. The default list
is the shipped circuit and the imitations of the sixth attempt.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import imitate  # noqa: E402
import policy_bounds as pb  # noqa: E402

HERE = Path(__file__).resolve().parent
RES = "experiments/thermotaxis/results"
DEFAULT = (
    "shipped=shipped",
    f"transmitter_bias05={RES}/imitation_transmitter_bias05/head_circuit.npz:transmitter:0.3:0.5",
    f"transmitter_bias05_cont={RES}/imitation_transmitter_bias05_cont/head_circuit.npz:transmitter:0.3:0.5",
    f"transmitter_contrast={RES}/imitation_transmitter_contrast/head_circuit.npz:transmitter:0.3:0.5",
)


def parse(spec: str) -> tuple[str, str, str, float | None, float | None]:
    """``NAME=PATH[:polarity:weight_scale:bias_max]`` → (name, path, polarity, weight_scale, bias_max)."""
    if "=" not in spec:
        raise SystemExit(f"{spec!r}: expected NAME=PATH[:polarity:weight_scale:bias_max]")
    name, rest = spec.split("=", 1)
    parts = rest.split(":")
    if len(parts) not in (1, 4):
        raise SystemExit(f"{spec!r}: give the path alone or path:polarity:weight_scale:bias_max")
    if len(parts) == 1:
        return name, parts[0], "c302", None, None
    return name, parts[0], parts[1], float(parts[2]), float(parts[3])


def main(specs) -> dict:
    t0 = time.time()
    best = imitate.teacher_params("random", 0)
    _, r = (np.asarray(a, np.float64) for a in pb.wander_response(2.0))
    q = imitate.teacher_drive(r, best)
    zf, zs = imitate.teacher_filters(r, best)
    edges = np.quantile(zf[:imitate.N_TRAIN], np.linspace(0, 1, imitate.N_LEVELS + 1))
    cells = imitate.level_direction_cells(zf, zs, edges)
    seg = imitate.SEG_S
    where = [(w, s) for w in range(imitate.N_TRAIN, r.shape[0]) for s in range(50, r.shape[1] - seg - 1, seg + 1)]
    cut = lambda a: np.stack([a[w, s + 1:s + seg + 1] for w, s in where])[:, imitate.SKIP_S:]  # noqa: E731
    segments = jnp.asarray(np.stack([r[w, s:s + seg + 1] for w, s in where]), jnp.float32)
    qt, ct = cut(q), cut(cells)
    out = {"teacher": best, "n_segments": len(where), "circuits": {}}
    for spec in specs:
        name, path, polarity, scale, bias = parse(spec)
        if path != "shipped" and not Path(path).is_file():
            print(f"skipped {name}: {path} is missing", file=sys.stderr)
            continue
        task = imitate.make_task(path, polarity, None, scale, bias)
        raw = task.init(None)
        z = np.asarray(jax.jit(jax.vmap(lambda s: imitate.circuit_logits(task, raw, s)))(segments))[:, imitate.SKIP_S:]
        p = 1.0 / (1.0 + np.exp(-z))
        out["circuits"][name] = {"path": path, "polarity": polarity,
                                 "corr_with_teacher": float(np.corrcoef(p.ravel(), qt.ravel())[0, 1]),
                                 "kl": imitate.kl(qt, p), "rows": imitate.drive_by_level_and_direction(ct, qt, p, edges)}
        print(name, round(out["circuits"][name]["corr_with_teacher"], 2), file=sys.stderr, flush=True)
    out["wall_time_s"] = round(time.time() - t0, 1)
    return out


def markdown(res: dict) -> str:
    fmt = lambda x: "—" if x is None else f"{x:.3f}"  # noqa: E731
    L = ["# Which half of the policy does each circuit reproduce?", "",
         f"Written by `experiments/thermotaxis/drive_by_level.py` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
         f"{res['wall_time_s']} s); {res['n_segments']} held-out segments of 120 s. Mean pirouette drive (per s) by "
         "level z_f of the AFD response and by its direction: teacher / circuit.", ""]
    names = list(res["circuits"])
    L.append("| z_f (level) | direction | teacher | " + " | ".join(names) + " |")
    L.append("|---|---|---|" + "---|" * len(names))
    rows0 = res["circuits"][names[0]]["rows"] if names else []
    for i, row in enumerate(rows0):
        for d in ("rising", "falling"):
            L.append(f"| {row['z_f_from']:.2f} … {row['z_f_to']:.2f} | {d} | {fmt(row['teacher_' + d])} | " + " | ".join(
                fmt(res["circuits"][n]["rows"][i]["circuit_" + d]) for n in names) + " |")
    L.append("| all | correlation with the teacher | 1 | " + " | ".join(
        f"{res['circuits'][n]['corr_with_teacher']:.2f}" for n in names) + " |")
    L.append("| all | KL(teacher ‖ circuit) per s | 0 | " + " | ".join(f"{res['circuits'][n]['kl']:.3f}" for n in names) + " |")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    res = main(sys.argv[1:] or DEFAULT)
    (HERE / "results" / "drive_by_level.json").write_text(json.dumps(res, indent=1) + "\n")
    (HERE / "results" / "drive_by_level.md").write_text(markdown(res))
    print(markdown(res))

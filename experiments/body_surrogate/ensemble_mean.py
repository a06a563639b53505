"""Is the mean of the surrogate and its ensemble members closer to the physics than the surrogate alone?

    .venv/bin/python experiments/body_surrogate/ensemble_mean.py [--calibration outputs/surrogate_data/full] \
        [--data outputs/surrogate_eval_data/seed1000 outputs/surrogate_eval_data/seed2000 ...] [--ratio 1.2] [--ship]

``backend="auto"`` runs every ensemble member for its error estimate, so averaging their predictions
with the primary's costs nothing more. Which members join the mean is chosen on the **validation split
of the seed-0 training data** (held out from every model): those whose mean trajectory error there is
at most ``--ratio`` × the primary's. The mean is then judged on fresh seeded test and OOD sets written by
``python -m owjax.surrogate evaluate --seed N`` (never used for training, calibration or this choice):
trajectory error, speed and wavelength errors, and the fallback's precision and recall when the true
error is the mean's (the estimate stays the primary's).

Writes ``experiments/body_surrogate/results/ensemble_mean.{json,md}``. ``--ship`` marks the chosen
members ``in_mean`` in the shipped surrogate's JSON (``owjax/data/surrogate/body_fno.json``; the
weights are not touched), which is what :meth:`owjax.surrogate.component.BodySurrogate.predict` reads.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calibration", default="outputs/surrogate_data/full", help="dataset whose val split chooses")
    p.add_argument("--data", nargs="+", default=[f"outputs/surrogate_eval_data/seed{s}" for s in (1000, 2000, 3000)],
                   help="fresh test + OOD data folders (python -m owjax.surrogate evaluate --seed N --data DIR)")
    p.add_argument("--ratio", type=float, default=1.2, help="members within this × the primary's validation error join")
    p.add_argument("--ship", action="store_true", help="mark the chosen members in_mean in the shipped surrogate's JSON")
    a = p.parse_args(argv)
    if not a.ratio >= 1.0:
        raise SystemExit(f"--ratio must be at least 1, got {a.ratio}")

    from owjax.core.checkpoint import atomic_write_json
    from owjax.core.precision import set_precision

    set_precision("float64")
    from owjax.surrogate.component import SHIPPED, BodySurrogate, indicators
    from owjax.surrogate.data import load_dataset
    from owjax.surrogate.evaluate import _GAIT, _fallback, compare, evaluation_sets, trajectory_errors

    t0 = time.time()
    sur = BodySurrogate.load(None, ensemble=True)
    names = [info.get("name", f"member{j}") for j, (_, _, info) in enumerate(sur.members)]

    # the choice, on seed 0's validation split
    val = load_dataset(a.calibration, "val")
    t = np.asarray(val["t_s"], np.float64)
    ind = indicators(sur.model, t, val["activation"], val["medium"])
    preds = sur.member_predictions(t, val["activation"], val["medium"])
    e0 = float(np.mean(trajectory_errors(ind["centroid_mm"], ind["tangent_angle_rad"], val["centroid_mm"],
                                         val["tangent_angle_rad"])["traj_rmse_body_lengths"]))
    val_err = {n: float(np.mean(trajectory_errors(c, th, val["centroid_mm"], val["tangent_angle_rad"])["traj_rmse_body_lengths"]))
               for n, (c, th) in zip(names, preds)}
    chosen = [n for n in names if val_err[n] <= a.ratio * e0]
    for j, (_, _, info) in enumerate(sur.members):
        info["in_mean"] = names[j] in chosen
    c_m, th_m, n_models = sur.ensemble_mean(ind, preds)
    val_mean = float(np.mean(trajectory_errors(c_m, th_m, val["centroid_mm"], val["tangent_angle_rad"])["traj_rmse_body_lengths"]))
    print(f"validation (seed 0, {len(val['medium'])} samples): primary {e0:.4f} L; members "
          + ", ".join(f"{n} {v:.4f}" for n, v in val_err.items()) + f"; chosen {chosen}; mean of {n_models}: {val_mean:.4f}",
          flush=True)

    fresh = {}
    for d in a.data:
        row = {}
        ests, err_p, err_m = [], [], []
        for name, ds in evaluation_sets(d).items():
            t = np.asarray(ds["t_s"], np.float64)
            fams = np.asarray(ds["families"])[ds["family"]]
            ind = indicators(sur.model, t, ds["activation"], ds["medium"])
            preds = sur.member_predictions(t, ds["activation"], ds["medium"])
            est = sur.estimate_from_indicators(t, ds["activation"], ds["medium"], ind, preds)
            c_m, th_m, _ = sur.ensemble_mean(ind, preds)
            for label, (c, th) in (("primary", (ind["centroid_mm"], ind["tangent_angle_rad"])), ("mean", (c_m, th_m))):
                r = compare(t, c, th, ds["centroid_mm"], ds["tangent_angle_rad"], fams, np.isin(fams, _GAIT))
                per = r.pop("_per_sample")
                row[f"{name}_{label}"] = {k: r[k] for k in ("traj_rmse_body_lengths", "traj_rmse_body_lengths_median",
                                                            "speed_rel_err", "wavelength_rel_err", "n")}
                (err_p if label == "primary" else err_m).append(per["traj_rmse_body_lengths"])
            ests.append(est)
        est, ep, em = np.concatenate(ests), np.concatenate(err_p), np.concatenate(err_m)
        row["fallback_primary_error"] = _fallback(est, ep, sur.bound)
        row["fallback_mean_error"] = _fallback(est, em, sur.bound)
        fresh[d] = row
        print(d, json.dumps({k: round(v["traj_rmse_body_lengths"], 4) for k, v in row.items() if "traj_rmse_body_lengths" in v}),
              flush=True)

    out = {"ratio": a.ratio, "calibration": a.calibration, "validation_primary": e0, "validation_members": val_err,
           "chosen": chosen, "validation_mean": val_mean, "n_models": n_models, "fresh": fresh,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "wall_s": round(time.time() - t0, 1),
           "command": "python experiments/body_surrogate/ensemble_mean.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    atomic_write_json(OUT / "ensemble_mean.json", out)
    lines = ["# The mean of the surrogate and its ensemble members (ensemble_mean.py)", "",
             f"{out['date']}. Chosen on seed 0's validation split ({a.calibration}): members within {a.ratio:g}× "
             f"the primary's error ({e0:.4f} L): " + ", ".join(f"{n} {v:.4f} L{' ✓' if n in chosen else ''}"
                                                              for n, v in val_err.items())
             + f"; the mean of {n_models} there: {val_mean:.4f} L.", "",
             "| fresh set | test trajectory (L), primary → mean | median | speed rel. err. | wavelength rel. err. | "
             "OOD trajectory (L) | recall / precision of the fallback against the mean's error (primary's) |",
             "|---|---|---|---|---|---|---|"]
    for d, r in fresh.items():
        tp, tm, op, om = r["test_primary"], r["test_mean"], r["ood_primary"], r["ood_mean"]
        fm, fp = r["fallback_mean_error"], r["fallback_primary_error"]
        lines.append(f"| {Path(d).name} | {tp['traj_rmse_body_lengths']:.4f} → **{tm['traj_rmse_body_lengths']:.4f}** | "
                     f"{tp['traj_rmse_body_lengths_median']:.4f} → {tm['traj_rmse_body_lengths_median']:.4f} | "
                     f"{tp['speed_rel_err']:.3f} → {tm['speed_rel_err']:.3f} | "
                     f"{tp['wavelength_rel_err']:.3f} → {tm['wavelength_rel_err']:.3f} | "
                     f"{op['traj_rmse_body_lengths']:.3f} → {om['traj_rmse_body_lengths']:.3f} | "
                     f"{fm['fallback_recall']:.2f} / {fm['fallback_precision']:.2f} ({fp['fallback_recall']:.2f} / "
                     f"{fp['fallback_precision']:.2f}) |")
    (OUT / "ensemble_mean.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if a.ship:
        js = SHIPPED.with_suffix(".json")
        meta = json.loads(js.read_text())
        for info in meta["members"]:
            info["in_mean"] = info.get("name") in chosen
            info["validation_traj_rmse_body_lengths"] = val_err.get(info.get("name"))
            info["in_mean_rule"] = (f"validation error ≤ {a.ratio:g} × the primary's ({e0:.4f} L) on {a.calibration} "
                                    f"(val split); {out['command']}")
        atomic_write_json(js, meta)
        print(f"marked {chosen} in_mean in {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does an ensemble's disagreement catch the OOD misses of the shipped fallback? (issue 14, fallback recall)

    .venv/bin/python experiments/body_surrogate/ensemble_fallback.py \
        [--members outputs/fit/body_surrogate/default_v2/surrogate outputs/fit/body_surrogate/logdrag_s0-3/surrogate] \
        [--calibration outputs/surrogate_data/full] [--data outputs/surrogate_eval_data/seed1000]

The shipped surrogate's error estimate (latent novelty + mirror gap, calibrated at the 0.9 quantile on
validation) is compared with, and combined with, the disagreement between its centroid prediction and
that of other trained surrogates (RMS over time of the centroid difference, body lengths). Each
member's disagreement is turned into an error estimate ``α · d`` with α the 0.9 quantile of
error / d on the **validation split of the seed-0 training data** (held out from every member), the
same rule as the shipped estimator; the combination is the largest of the estimates. Fallback =
estimate > the 0.15-L bound. Reported on the fresh seed-1000 test and OOD sets written by
``python -m owjax.surrogate evaluate`` (never used for fitting or calibration): fallback rate,
precision and recall against the true error, and Spearman's ρ between estimate and error.

The members are fits kept under ``outputs/`` (not in git; regenerate with the commands in
experiments/body_surrogate/README.md). Writes ``experiments/body_surrogate/results/ensemble_fallback.{json,md}`` (``--out NAME``: ``NAME.{json,md}``).

``--primary STEM`` judges another surrogate than the shipped one; ``--members-from STEM`` takes the
members embedded in a saved surrogate's file (e.g. the shipped one's, when their own fits are gone),
re-calibrating their α against the primary.

``--ship`` also attaches the members, with their α, to the shipped surrogate
(``owjax/data/surrogate/body_fno.{npz,json}``; :class:`owjax.surrogate.component.BodySurrogate`'s
``members``): ``BodySurrogate.load(ensemble=True)``, ``body.surrogate_ensemble=true`` and
``python -m owjax.surrogate evaluate --ensemble`` then use the combined estimate.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", nargs="+", default=None,
                   help="member surrogate stems (default without --members-from: the two fits of 2026-12-03, "
                        "default_v2 and logdrag_s0-3); with --members-from: added to those")
    p.add_argument("--calibration", default="outputs/surrogate_data/full", help="dataset whose val split calibrates α")
    p.add_argument("--data", default="outputs/surrogate_eval_data/seed1000", help="fresh test + OOD data (seed 1000)")
    p.add_argument("--quantile", type=float, default=0.9)
    p.add_argument("--out", default="ensemble_fallback", help="results name (results/NAME.json, .md)")
    p.add_argument("--primary", default=None, help="the surrogate judged (default: the shipped one)")
    p.add_argument("--members-from", default=None,
                   help="use the members embedded in this surrogate's file ('shipped': the packaged one) "
                        "instead of --members")
    p.add_argument("--ship", action="store_true", help="write the primary with the members to the shipped surrogate")
    a = p.parse_args(argv)

    from owjax.surrogate.component import BodySurrogate, indicators
    from owjax.surrogate.data import load_dataset
    from owjax.surrogate.evaluate import _fallback, _spearman, compare, evaluation_sets

    t0 = time.time()
    ship = BodySurrogate.load(a.primary, ensemble=False)  # without its members: the primary's own estimate
    if a.members_from:
        src = BodySurrogate.load(None if a.members_from == "shipped" else a.members_from, ensemble=True)
        if not src.members:
            raise SystemExit(f"--members-from {a.members_from}: that file has no ensemble members")
        member_info = {info.get("name", f"member{i}"): info for i, (_, _, info) in enumerate(src.members)}
        members = {k: BodySurrogate(m, src.novelty, {"provenance": info.get("trained", {})})
                   for k, (m, _, info) in zip(member_info, src.members)}
        extra = list(a.members or [])
        a.members = [f"{a.members_from}:{k}" for k in members] + extra
    else:
        member_info = {}
        extra = a.members or ["outputs/fit/body_surrogate/default_v2/surrogate",
                              "outputs/fit/body_surrogate/logdrag_s0-3/surrogate"]
        a.members = list(extra)
        members = {}
    for m in extra:
        name = Path(m).parent.name if Path(m).name == "surrogate" else Path(m).name
        if name in members:
            raise SystemExit(f"--members {m}: a member named {name!r} is already there")
        members[name] = BodySurrogate.load(m, ensemble=False)
    # attached with α = 1 only to measure their raw disagreement (the primary's estimate is taken
    # from its novelty estimator directly); --ship attaches them with their calibrated α
    ship.members = [(m.model, 1.0, {"name": k}) for k, m in members.items()]
    bound = float(ship.bound)

    def per_sample(ds, t):
        fams = np.asarray(ds["families"])[ds["family"]]
        ind = indicators(ship.model, t, ds["activation"], ds["medium"])
        est = ship.novelty.estimate(ind["latent"], ind["mirror_gap_mm"])
        err = compare(t, ind["centroid_mm"], ind["tangent_angle_rad"], ds["centroid_mm"], ds["tangent_angle_rad"],
                      fams, np.isin(fams, ("wave",)))["_per_sample"]["traj_rmse_body_lengths"]
        d = ship.member_disagreement(t, ds["activation"], ds["medium"], ind["centroid_mm"])
        return err, est, dict(zip(members, d))

    val = load_dataset(a.calibration, "val")
    err_v, _, dis_v = per_sample(val, np.asarray(val["t_s"], np.float64))
    alpha = {k: float(np.quantile(err_v / np.maximum(d, 1e-12), a.quantile)) for k, d in dis_v.items()}
    sets = evaluation_sets(a.data)  # seed 1000 is not a training seed: its train/val/test splits are all fresh
    t = np.asarray(sets["test"]["t_s"], np.float64)
    per = {s: per_sample(ds, t) for s, ds in sets.items()}

    def estimators(est, dis):
        out = {"shipped (novelty + mirror gap)": est}
        for k in dis:
            out[f"disagreement with {k}"] = alpha[k] * dis[k]
            out[f"max(shipped, {k})"] = np.maximum(est, alpha[k] * dis[k])
        out["max(shipped, all members)"] = np.maximum.reduce([est] + [alpha[k] * dis[k] for k in dis])
        return out

    def scores(e, err):
        return {**_fallback(e, err, bound), "error_estimate_spearman": float(_spearman(e, err))}

    rows = {}
    both_err = np.concatenate([per[s][0] for s in per])
    ests = {s: estimators(per[s][1], per[s][2]) for s in per}
    for name in ests["test"]:
        rows[name] = {s: scores(ests[s][name], per[s][0]) for s in per}
        rows[name]["test_and_ood"] = scores(np.concatenate([ests[s][name] for s in per]), both_err)
    rec = {"bound_body_lengths": bound, "quantile": a.quantile, "alpha": alpha, "members": a.members,
           "calibration": f"{a.calibration} (val split, {len(err_v)} samples)", "data": a.data, "rows": rows,
           "wall_time_s": round(time.time() - t0, 1), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{a.out}.json").write_text(json.dumps(rec, indent=1) + "\n")
    f = lambda x: "–" if x is None else f"{x:.2f}"  # noqa: E731
    md = [f"Fallback at the {bound:g}-L bound on the fresh seed-1000 sets ({rec['date']}, "
          "`experiments/body_surrogate/ensemble_fallback.py`). α calibrated on "
          f"{rec['calibration']}: " + ", ".join(f"{k} {v:.2f}" for k, v in alpha.items()) + ".", "",
          "| error estimate | test: falls back / precision / recall | OOD: falls back / precision / recall | "
          "test ∪ OOD recall (precision) | Spearman ρ test / OOD |", "|---|---|---|---|---|"]
    for name, r in rows.items():
        te, oo, bo = r["test"], r["ood"], r["test_and_ood"]
        md.append(f"| {name} | {f(te['fallback_rate'])} / {f(te['fallback_precision'])} / {f(te['fallback_recall'])} | "
                  f"{f(oo['fallback_rate'])} / {f(oo['fallback_precision'])} / {f(oo['fallback_recall'])} | "
                  f"{f(bo['fallback_recall'])} "
                  f"({f(bo['fallback_precision'])}) | {te['error_estimate_spearman']:.2f} / "
                  f"{oo['error_estimate_spearman']:.2f} |")
    (OUT / f"{a.out}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    if a.ship:
        from owjax.surrogate.component import SHIPPED

        ship.members = []
        for stem, (name, m) in zip(a.members, members.items()):
            prov = m.settings.get("provenance", {})
            ship.members.append((m.model, alpha[name], {
                "name": name, "source": member_info.get(name, {}).get("source", str(stem)), "trained": {k: prov.get(k) for k in ("date", "git_commit", "data",
                                                                                      "n_steps")},
                "alpha_calibration": f"0.9 quantile of error / disagreement on {rec['calibration']}",
                "command": "python experiments/body_surrogate/ensemble_fallback.py --ship"}))
        ship.save(SHIPPED)
        print(f"attached {len(ship.members)} member(s) to {SHIPPED}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m owjax.surrogate evaluate [--out DIR] [--model STEM] [--seed N] [--scale X] [--[no-]ensemble] [--record]
[--processes N]``:
evaluate the shipped (or a given) body surrogate on a fresh, seeded test and OOD set that this
command generates with owjax's body (float64; ≈ 355 five-second runs, a few CPU-minutes), and write
``DIR/metrics.json`` (:func:`owjax.surrogate.evaluate.evaluate_surrogate`).

``python -m owjax.surrogate generate …`` is :mod:`owjax.surrogate.generate` (the training data).
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = ("evaluate", "generate")
    if not argv or argv[0] not in commands:
        print(f"usage: python -m owjax.surrogate {{{'|'.join(commands)}}} …  (got {argv[:1] or 'nothing'}); "
              "see python -m owjax.surrogate evaluate --help", file=sys.stderr)
        return 2
    if argv[0] == "generate":
        from owjax.surrogate.generate import main as generate

        return generate(argv[1:])
    from owjax.surrogate.evaluate import EVAL_SEED

    ap = argparse.ArgumentParser(prog="python -m owjax.surrogate evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="outputs/surrogate_evaluate", help="output folder (metrics.json, data/)")
    ap.add_argument("--model", default=None, help="surrogate STEM (STEM.npz + STEM.json); default: the shipped one")
    ap.add_argument("--seed", type=int, default=EVAL_SEED, help=f"data seed, not a training seed 0-14 (default {EVAL_SEED})")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the sample counts (1: 155 test + 200 OOD)")
    ap.add_argument("--data", default=None, help="data folder (default DIR/data; reused when complete)")
    ap.add_argument("--record", action="store_true",
                    help="write the per-sample errors of a small check set into the model's JSON (for the tests)")
    ap.add_argument("--ensemble", action=argparse.BooleanOptionalAction, default=None,
                    help="the fallback's error estimate also uses the model's ensemble members' disagreement "
                         "(default: if the model has any, as the shipped one does; --no-ensemble: the primary's own)")
    ap.add_argument("--processes", type=int, default=None,
                    help="the speed is also measured with one pinned process per core on each side, this many "
                         "(default: every core; 0: in one process only)")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv[1:])
    from owjax.core.precision import set_precision

    set_precision("float64")
    from owjax.surrogate.evaluate import evaluate_surrogate

    m = evaluate_surrogate(a.out, a.model, a.seed, a.scale, a.data, progress=not a.no_progress, record=a.record,
                           ensemble=a.ensemble, processes=a.processes)
    head = {k: m[k] for k in ("traj_rmse_body_lengths", "speed_rel_err", "wavelength_rel_err",
                              "ood_traj_rmse_body_lengths", "speedup_vs_physics", "fallback_precision",
                              "fallback_recall")}
    if m.get("auto_mean"):
        head["auto_mean"] = {k: m["auto_mean"][k] for k in ("n_models", "traj_rmse_body_lengths", "speed_rel_err",
                                                            "wavelength_rel_err", "ood_traj_rmse_body_lengths")}
    print(json.dumps(head, indent=1))
    print(f"wrote {a.out}/metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

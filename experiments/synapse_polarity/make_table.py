"""The model-comparison table of the synapse_polarity study from runs' ``metrics.json`` files.

    python experiments/synapse_polarity/make_table.py LABEL=RUN_DIR [LABEL=RUN_DIR ...] > table.md

Every run must use the same split (seed, test_fraction, split); the table shows, per model, the
held-out r on significant pairs with its bootstrap 95 % interval (over stimulated neurons) and its
fraction of the noise ceiling, the controls (c302 start and shuffled connectome), sign agreement, NT
consistency, train r, the targets of issue 18 and by how much each is missed, and the unc-31 check.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGETS = dict(test_r=0.35, test_sign_agreement=0.75, nt_consistency=0.95, train_r=0.5)


def _f(x, nd=3):
    return "–" if x is None else f"{x:.{nd}f}"


def _ci(c):
    return "–" if not c else f"[{c[0]:.3f}, {c[1]:.3f}]"


def table(runs: dict[str, dict]) -> str:
    lines = [
        "| model | held-out r (95 % CI) | fraction of ceiling | c302 start r | shuffled r | r − max(c302, shuffled) (CI) "
        "| sign agreement (CI) | shuffled sign agr. | NT consistency | train r | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, m in runs.items():
        best_ctrl = "c302" if m["baseline_c302_test_r"] >= m["shuffled_test_r"] else "shuffled"
        diff = m["test_r_minus_c302"] if best_ctrl == "c302" else m["test_r_minus_shuffled"]
        dci = m["test_r_minus_c302_ci95"] if best_ctrl == "c302" else m["test_r_minus_shuffled_ci95"]
        lines.append(
            f"| {label} | {_f(m['test_r'])} {_ci(m['test_r_ci95'])} | {_f(m['test_r_fraction_of_ceiling'])} "
            f"| {_f(m['baseline_c302_test_r'])} | {_f(m['shuffled_test_r'])} | {_f(diff)} {_ci(dci)} ({best_ctrl}) "
            f"| {_f(m['test_sign_agreement'])} {_ci(m.get('test_sign_agreement_ci95'))} "
            f"| {_f(m['shuffled_test_sign_agreement'])} | {_f(m['nt_consistency'])} | {_f(m['train_r'])} "
            f"| {m.get('wall_time_s', 0):.0f} |")
    first = next(iter(runs.values()))
    lines += ["", f"Noise ceiling of the held-out significant pairs: r = {_f(first['noise_ceiling_r'])} "
              f"(split-half {_f(first['noise_ceiling_split_half_r'])}, Spearman–Brown "
              f"{_f(first['noise_ceiling_spearman_brown'])}); all observed held-out pairs: "
              f"{_f(first['noise_ceiling_r_observed'])}.", ""]
    lines += ["| model | " + " | ".join(f"{k} ≥ {v}" for k, v in TARGETS.items()) + " | r CI low > best control |",
              "|---|" + "---|" * (len(TARGETS) + 1)]
    for label, m in runs.items():
        cells = []
        for k, v in TARGETS.items():
            x = m[k]
            cells.append("met" if x >= v else f"missed by {v - x:.3f}")
        ctrl = max(m["baseline_c302_test_r"], m["shuffled_test_r"])
        lo = m["test_r_ci95"][0]
        cells.append("yes" if lo > ctrl else f"no ({lo:.3f} vs {ctrl:.3f})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    unc = [(label, m["unc31"]) for label, m in runs.items() if m.get("unc31", {}).get("available")]
    if unc:
        lines += ["", "| model | unc-31 pairs | r, peptide term kept (CI) | r, removed (CI) | removed − kept (CI) "
                  "| test neurons only: removed − kept (CI) | unc-31 ceiling |", "|---|---|---|---|---|---|---|"]
        for label, u in unc:
            a, t = u["all"], u.get("test_neurons", {})
            lines.append(
                f"| {label} | {a['n_pairs']} ({a['n_stimulated']} stim.) | {_f(a['r_kept'])} {_ci(a['r_kept_ci95'])} "
                f"| {_f(a['r_removed'])} {_ci(a['r_removed_ci95'])} | {_f(a['r_removed_minus_kept'])} "
                f"{_ci(a['r_removed_minus_kept_ci95'])} | {_f(t.get('r_removed_minus_kept'))} "
                f"{_ci(t.get('r_removed_minus_kept_ci95'))} | {_f(a['noise_ceiling_r'])} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    runs = {}
    for a in argv:
        if "=" not in a:
            print(f"expected LABEL=RUN_DIR, got {a!r}", file=sys.stderr)
            return 2
        label, d = a.rsplit("=", 1)
        p = Path(d) / "metrics.json" if Path(d).is_dir() else Path(d)
        runs[label] = json.loads(p.read_text())
    print(table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

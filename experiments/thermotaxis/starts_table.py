"""One table of ``results/starts/*.json``: the shipped circuit and its ablations by plate, start and seed.

The JSON files are written by ``evaluate_shipped.py 14400 --ablations --plate P --start S --seed N`` (see
the README's "Thirteenth attempt"); this script only tabulates them, marking each of the issue's targets
met (✓) or not: wild type, final temperature within 1 °C of T_c and isothermal fraction ≥ 0.5; AFD killed,
|thermotaxis index| < 0.2; AIY killed, final ≥ 2 °C below T_c; AIZ killed, final ≥ 2 °C above T_c.

Run: ``.venv/bin/python experiments/thermotaxis/starts_table.py`` → ``results/starts/summary.md``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
DIR = HERE / "results" / "starts"
TCS = ("15", "20", "25")
PLATE_ORDER = ("radial", "linear", "linear_wide", "linear_large")


def met(case: str, tc: float, r: dict) -> bool:
    """Whether row ``r`` of ``case`` at T_c ``tc`` meets the issue's target for that case."""
    t = r["mean_final_temp_c"]
    if case == "wild_type":
        return abs(t - tc) <= 1.0 and r["isothermal_fraction"] >= 0.5
    if case == "AFD":
        return abs(r["thermotaxis_index"]) < 0.2
    if case == "AIY":
        return t <= tc - 2.0
    if case == "AIZ":
        return t >= tc + 2.0
    raise ValueError(f"unknown case {case!r}")


def main() -> str:
    files = sorted(DIR.glob("*_seed*.json"))
    if not files:
        raise SystemExit(f"no results in {DIR}: run evaluate_shipped.py … --start … first")
    keyed = []
    for f in files:
        m = re.fullmatch(r"(.+)_(isotherm|uniform)_seed(\d+)", f.stem)
        if not m:
            continue
        keyed.append(((PLATE_ORDER.index(m[1]) if m[1] in PLATE_ORDER else 99, m[2], int(m[3])), m, f))
    lines = ["# The shipped circuit and its ablations, by plate, start and seed", "",
             "Written by `experiments/thermotaxis/starts_table.py` from `results/starts/*.json` "
             "(`evaluate_shipped.py 14400 --ablations --plate P --start S --seed N`: 24 worms per T_c, 20 min). "
             "Mean final temperature °C at T_c 15 / 20 / 25 (thermotaxis index); ✓ marks each T_c where the "
             "issue's target for the row is met (wild type: within 1 °C and isothermal ≥ 0.5; AFD: |index| < 0.2; "
             "AIY: ≥ 2 °C below T_c; AIZ: ≥ 2 °C above). A tick in the AIY or AIZ column where the AFD-killed worms "
             "of the same row end as far from T_c is the uninformed worms' drift (to the rim of the radial plate, to "
             "the middle of the linear ones), not a phenotype; with uniform starts the AFD-killed worms' tracks do "
             "not depend on T_c at all (one final temperature for all three).", "",
             "| plate | start | seed | wild type | AFD killed | AIY killed | AIZ killed |", "|---|---|---|---|---|---|---|"]
    for _, m, f in sorted(keyed, key=lambda k: k[0]):
        d = json.loads(f.read_text())
        cells = []
        for case in ("wild_type", "AFD", "AIY", "AIZ"):
            rows = [d[f"{case}/{tc}"] for tc in TCS]
            ticks = "".join("✓" if met(case, float(tc), r) else "·" for tc, r in zip(TCS, rows))
            cells.append(" / ".join(f"{r['mean_final_temp_c']:.1f}" for r in rows) + " ("
                         + " / ".join(f"{r['thermotaxis_index']:+.2f}" for r in rows) + f") {ticks}")
        lines.append(f"| {m[1]} | {m[2]} | {m[3]} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (DIR / "summary.md").write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()

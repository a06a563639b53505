"""Gait modulation of the BBC loop from water to agar (owjax.body).

    .venv/bin/python experiments/locomotion/sweep.py

Runs the BBC 2012 neuromechanical loop (no prescribed pattern) on the owjax body for 10 s in 7
media along BBC's water–agar line (medium number 0, 1e-4, 1e-3, 1e-2, 0.1, 0.3, 1), measures
frequency, wavelength, speed and amplitude over the last 8 s, checks them against the targets of
issue 12 and writes ``results/metrics.json``, ``results/gait_vs_drag.png`` and, for agar and water,
the full scenario outputs' figures (kymograph, track, animation).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)  # an entry point: float64 (water needs it, docs/body.md)

from owjax.body.media import resolve_medium  # noqa: E402
from owjax.body.plots import plot_gait_vs_drag  # noqa: E402
from owjax.body.run import run_locomotion, simulate_locomotion  # noqa: E402

HERE = Path(__file__).parent
RESULTS = HERE / "results"
MEDIA = [0.0, 1e-4, 1e-3, 1e-2, 0.1, 0.3, 1.0]
#: Newtonian series: water's coefficients × viscosity factor (anisotropy kept at 1.58), as in
#: Fang-Yen et al. 2010's viscosity series; BBC's medium line instead raises the anisotropy to 40
VISCOSITY_FACTORS = [1.0, 10.0, 100.0, 1e3, 1e4]
TARGETS = {
    "agar": {"frequency_hz": (0.3, 0.6), "wavelength_body_lengths": (0.5, 0.75), "speed_mm_s": (0.1, 0.35)},
    "water": {"frequency_hz": (1.3, 2.3), "wavelength_body_lengths": (1.2, 1.9)},
}


def main() -> dict:
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = []
    water = resolve_medium("water")
    media = [("BBC medium line (water → agar)", m) for m in MEDIA] + [
        ("viscosity series (water × factor)", {"name": f"water x{v:g}", "c_par_total_kg_s": water.c_par_total_kg_s * v,
                                               "c_perp_total_kg_s": water.c_perp_total_kg_s * v}) for v in VISCOSITY_FACTORS]
    for series, m in media:
        t0 = time.perf_counter()
        sim = simulate_locomotion({"body": {"medium": m}, "duration_s": 10.0})
        s = sim["summary"]
        med = resolve_medium(m)
        rows.append({"series": series, "medium": m, "name": med.name, "c_par_total_kg_s": med.c_par_total_kg_s,
                     "c_perp_total_kg_s": med.c_perp_total_kg_s,
                     **{k: s[k] for k in ("frequency_hz", "wavelength_body_lengths", "speed_mm_s", "amplitude",
                                          "direction", "wave_direction", "gait")},
                     "solver_steps": s["solver"]["num_steps"], "wall_s_including_compile": time.perf_counter() - t0})
        print(rows[-1], flush=True)
    line = [r for r in rows if r["series"].startswith("BBC")]
    visc = [r for r in rows if r["series"].startswith("viscosity")]
    f = [r["frequency_hz"] for r in line]
    lam = [r["wavelength_body_lengths"] for r in line]
    agar, water = line[-1], line[0]
    checks = {}
    for name, row in (("agar", agar), ("water", water)):
        for k, (lo, hi) in TARGETS[name].items():
            checks[f"{name}_{k}_in_[{lo},{hi}]"] = bool(lo <= row[k] <= hi)
    checks["f_water_>=_3x_f_agar"] = bool(water["frequency_hz"] >= 3 * agar["frequency_hz"])
    checks["frequency_monotone_with_drag"] = bool(all(a >= b for a, b in zip(f, f[1:])))
    checks["wavelength_monotone_with_drag"] = bool(all(a >= b for a, b in zip(lam, lam[1:])))
    fv = [r["frequency_hz"] for r in visc]
    lv = [r["wavelength_body_lengths"] for r in visc]
    checks["viscosity_series_frequency_monotone"] = bool(all(a >= b for a, b in zip(fv, fv[1:])))
    checks["viscosity_series_wavelength_monotone"] = bool(all(a >= b for a, b in zip(lv, lv[1:])))
    plot_gait_vs_drag(rows, RESULTS / "gait_vs_drag.png", targets=TARGETS)
    for med in ("agar", "water"):
        with tempfile.TemporaryDirectory() as tmp:
            run_locomotion({"body": {"medium": med}, "duration_s": 10.0, "outputs": {"animation_fps": 8}}, Path(tmp))
            for fname, out in (("curvature_kymograph.png", f"{med}_kymograph.png"), ("centroid_track.png", f"{med}_track.png"),
                               ("body.gif", f"{med}_body.gif"), ("summary.json", f"{med}_summary.json")):
                shutil.copy(Path(tmp) / fname, RESULTS / out)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    res = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="minutes"),
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, load average {load:.1f} "
                      "(shared with other jobs)",
           "command": ".venv/bin/python experiments/locomotion/sweep.py", "duration_s": 10.0, "transient_s": 2.0,
           "targets": TARGETS, "media": rows, "checks": checks}
    (RESULTS / "metrics.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(checks, indent=1))
    return res


if __name__ == "__main__":
    main()

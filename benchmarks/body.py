"""The owjax body (BBC 2012 rod model) against ElegansBot, and its speed.

    python -m benchmarks.body [--quick]

1. **Same kymogram, two bodies.** owjax's body is driven by a travelling activation wave (crawl on
   agar: 0.625 Hz, λ 0.55 L; swim in water: 2.5 Hz, λ 1.5 L — ElegansBot's example gaits). The
   body's realised shape is turned into ElegansBot's input (24 joint angles of a 25-rod chain, from
   owjax's skeleton resampled by arc length), so both models move with the *same* kymogram, and the
   centroid speed, frequency and wavelength of both are measured the same way (owjax.body.metrics)
   over the same window, with outputs every 10 ms from both.
2. **Wall time** of both per simulated second on this CPU (ElegansBot with numba, its default
   dt = 1e-5 s, after numba's compilation; owjax after XLA's compilation).
3. **The BBC loop**: 10 simulated s on agar, float64 and float32 (float32's error shown).
4. **Batch**: vmap of 256 bodies (different wave amplitudes), float32, agar: body-s per wall-s.
5. **Solver choice**: explicit (Tsit5, Bosh3, Ralston) vs implicit (Kvaerno5) vs IMEX (KenCarp4,
   circuit explicit / body implicit) on the BBC loop, agar and water, against a tight reference.

Writes ``benchmarks/results/body.json`` and ``benchmarks/results/body.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import time
from pathlib import Path

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from owjax.body import metrics as M
from owjax.body.circuit import ActivationToBody, BBCCircuit, BodyToStretchReceptors
from owjax.body.drive import TravellingWave
from owjax.body.integrate import BodySolver, integrate, solve_component
from owjax.body.mechanics import RodBody
from owjax.core.component import Composite, field_per_ms

RESULTS = Path(__file__).parent / "results"

#: ElegansBot drag (µg/s, whole body), its documented agar/water values
EB_DRAG = {"agar": (1.28e8, 1.28e8 / 40), "water": (5.2e3, 5.2e3 / 1.5)}
GAITS = {"agar": {"frequency_hz": 0.625, "wavelength_body_lengths": 0.55, "amplitude": 0.7, "duration_s": 8.0, "transient_s": 3.0},
         "water": {"frequency_hz": 2.5, "wavelength_body_lengths": 1.5, "amplitude": 0.7, "duration_s": 4.0, "transient_s": 1.5}}
DT_OUT = 0.01


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}, "
            f"jax {jax.__version__}, load average at start {load:.1f}")


def _bbc(medium, dtype=None, **kw):
    return Composite({"circuit": BBCCircuit(dtype=dtype, **kw), "body": RodBody(medium, dtype=dtype)},
                     [BodyToStretchReceptors(), ActivationToBody()])


def _wave(medium, f, lam, amp, dtype=None):
    return Composite({"drive": TravellingWave(f, lam, amp, dtype=dtype), "body": RodBody(medium, dtype=dtype)},
                     [ActivationToBody(source="drive")])


def kymogram_from_skeleton(x: np.ndarray, y: np.ndarray, n_rods: int = 25) -> np.ndarray:
    """(T, n_rods − 1) joint angles (rad) of an ``n_rods`` chain fitted to the skeleton by arc length."""
    out = []
    for xi, yi in zip(x, y):
        s = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(xi), np.diff(yi)))])
        q = np.linspace(0, s[-1], n_rods + 1)
        px, py = np.interp(q, s, xi), np.interp(q, s, yi)
        ang = np.unwrap(np.arctan2(np.diff(py), np.diff(px)))
        out.append(np.diff(ang))
    return np.asarray(out)


def run_elegansbot(kymo: np.ndarray, medium: str, dt: float = 1e-5, iterations: int = 3) -> dict:
    """Run ElegansBot so that its *realised* joint angles follow ``kymo`` (T, 24).

    ElegansBot's input is a target angle per joint that a spring-damper (k, c) pulls the joint
    towards, so the realised shape lags and shrinks (time constant c/k = 0.18 s: at 2.5 Hz in water
    the realised amplitude is about half the input). The input is therefore pre-compensated,
    u = θ + (c/k) dθ/dt, and refined by ``iterations`` − 1 passes of u += θ_target − θ_realised.
    The residual mismatch is reported (``shape_rel_rms_error``).
    """
    from elegansbot import Worm

    bT, bII = EB_DRAG[medium]
    warm = Worm(dt=dt, bT=bT, bII=bII)
    warm.run(kymo[:3], DT_OUT)  # numba compilation outside the timing
    tau = warm.c / warm.k
    ctrl = kymo + tau * np.gradient(kymo, DT_OUT, axis=0)
    for it in range(iterations):
        w = Worm(dt=dt, bT=bT, bII=bII)
        t0 = time.perf_counter()
        w.run(ctrl, DT_OUT, theta_init=kymo[0])
        wall = time.perf_counter() - t0
        realised = np.asarray(w.theta_log)
        err = float(np.sqrt(np.mean((realised - kymo) ** 2) / np.mean(kymo**2)))
        if it < iterations - 1:
            ctrl = ctrl + (kymo - realised)
    tips = np.asarray(w.xy_tip_log)  # (T, 2, 26)
    return {"t": np.asarray(w.t_log), "x": tips[:, 0, :], "y": tips[:, 1, :], "wall_s": wall,
            "shape_rel_rms_error": err, "iterations": iterations}


def _metrics(t, x, y, phi=None, transient=0.0):
    s = M.locomotion_summary(t, x, y, phi, transient_s=transient)
    return {k: s[k] for k in ("speed_mm_s", "frequency_hz", "wavelength_body_lengths", "amplitude", "direction", "gait")}


def compare_elegansbot(medium: str, quick: bool = False) -> dict:
    g = dict(GAITS[medium])
    if quick:
        g["duration_s"] = g["transient_s"] + 2.0
    with jax.enable_x64(True):
        comp = _wave(medium, g["frequency_hz"], g["wavelength_body_lengths"], g["amplitude"])
        r = integrate(comp, g["duration_s"], DT_OUT, BodySolver(rtol=1e-6, atol=1e-6), time_it=True)
    b = r.ys["body"]
    keep = r.t_s >= g["transient_s"] - 1e-9
    t, x, y, phi = r.t_s[keep] - r.t_s[keep][0], b["x"][keep], b["y"][keep], b["phi"][keep]
    ow = _metrics(t, x, y, phi)
    kymo = kymogram_from_skeleton(x, y)
    eb_run = run_elegansbot(kymo, medium)
    eb = _metrics(eb_run["t"], eb_run["x"], eb_run["y"])
    # ElegansBot's tips are ordered like the kymogram (head first); its wave runs head → tail
    ow_wall_per_s = r.wall_s / g["duration_s"]
    eb_wall_per_s = eb_run["wall_s"] / (len(t) - 1) / DT_OUT
    return {
        "medium": medium, "gait_input": g, "window_s": float(t[-1]),
        "owjax": {**ow, "wall_s": r.wall_s, "wall_s_per_sim_s": ow_wall_per_s, "num_steps": r.num_steps},
        "elegansbot": {**eb, "wall_s": eb_run["wall_s"], "wall_s_per_sim_s": eb_wall_per_s, "dt_s": 1e-5,
                       "shape_rel_rms_error_vs_owjax_kymogram": eb_run["shape_rel_rms_error"]},
        "speed_rel_diff_vs_elegansbot": abs(ow["speed_mm_s"]) / abs(eb["speed_mm_s"]) - 1.0,
        "speedup_vs_elegansbot": eb_wall_per_s / ow_wall_per_s,
    }


def bbc_agar_10s() -> dict:
    out = {}
    comp32 = _bbc("agar", dtype=jnp.float32)
    r32 = integrate(comp32, 10.0, DT_OUT, BodySolver(rtol=1e-4, atol=1e-4), time_it=True)
    with jax.enable_x64(True):
        r64 = integrate(_bbc("agar"), 10.0, DT_OUT, BodySolver(rtol=1e-4, atol=1e-4), time_it=True)
        ref = integrate(_bbc("agar"), 10.0, DT_OUT, BodySolver(rtol=1e-8, atol=1e-8))
    for name, r in (("float64", r64), ("float32", r32)):
        b = r.ys["body"]
        m = _metrics(r.t_s, b["x"], b["y"], b["phi"], transient=2.0)
        err = float(np.max(np.hypot(b["x"] - ref.ys["body"]["x"], b["y"] - ref.ys["body"]["y"])))
        out[name] = {**m, "wall_s": r.wall_s, "num_steps": r.num_steps, "num_rejected": r.num_rejected,
                     "max_point_error_mm_vs_rtol1e-8": err}
    return out


def vmap_batch(n: int = 256, duration_s: float = 2.0, method: str = "ralston", tol: float = 1e-3) -> dict:
    """Throughput of a vmapped batch (float32, agar, wave drive with n amplitudes). Ralston at 1e-3:
    the body's steps are stability-limited (≈ 20 ms), where a 2-stage method is cheapest per
    simulated second; its error is measured against Tsit5 at 1e-7 (float64) for 4 members."""
    amps = jnp.linspace(0.3, 0.9, n, dtype=jnp.float32)
    t_out = jnp.linspace(0.0, duration_s, int(duration_s / 0.05) + 1, dtype=jnp.float32)
    solver = BodySolver(method, rtol=tol, atol=tol)

    def one(amp):
        comp = _wave("agar", 0.44, 0.6, amp, dtype=jnp.float32)
        ys = solve_component(comp, t_out, comp.initial_state(), solver)[0]
        return jnp.mean(ys["body"]["x"], -1)

    f = jax.jit(jax.vmap(one))
    t0 = time.perf_counter()
    jax.block_until_ready(f(amps))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    xc = jax.block_until_ready(f(amps))
    wall = time.perf_counter() - t0
    idx = np.linspace(0, n - 1, 4).astype(int)
    errs = []
    with jax.enable_x64(True):
        for i in idx:
            comp = _wave("agar", 0.44, 0.6, float(amps[i]))
            ys = solve_component(comp, jnp.asarray(np.asarray(t_out), jnp.float64), comp.initial_state(),
                                 BodySolver("tsit5", rtol=1e-7, atol=1e-7))[0]
            ref = np.asarray(jnp.mean(ys["body"]["x"], -1))
            errs.append(float(np.max(np.abs(np.asarray(xc)[i] - ref))))
    return {"bodies": n, "duration_s": duration_s, "dtype": "float32", "solver": f"{method} rtol=atol={tol}",
            "wall_s": wall, "compile_s": compile_s, "body_s_per_wall_s": n * duration_s / wall,
            "all_finite": bool(np.all(np.isfinite(np.asarray(xc)))),
            "max_centroid_x_error_mm_vs_tsit5_1e-7_f64": max(errs)}


def solver_table(duration_s: float = 2.0) -> list[dict]:
    """Wall time and error of solver choices on the BBC loop (float64)."""
    rows = []
    with jax.enable_x64(True):
        for medium in ("agar", "water"):
            comp = _bbc(medium)
            ref = integrate(comp, duration_s, DT_OUT, BodySolver("dopri8", rtol=1e-9, atol=1e-9, max_steps=400_000))
            cands = [("tsit5", 1e-4), ("tsit5", 1e-6), ("bosh3", 1e-4), ("ralston", 1e-4), ("kvaerno5", 1e-4)]
            for method, tol in cands:
                try:
                    r = integrate(comp, duration_s, DT_OUT, BodySolver(method, rtol=tol, atol=tol, max_steps=100_000),
                                  time_it=True)
                    err = float(np.max(np.hypot(r.ys["body"]["x"] - ref.ys["body"]["x"], r.ys["body"]["y"] - ref.ys["body"]["y"])))
                    rows.append({"medium": medium, "method": method, "tol": tol, "wall_s": r.wall_s,
                                 "steps": r.num_steps, "rejected": r.num_rejected, "max_point_error_mm": err})
                except Exception as e:  # noqa: BLE001 - record the failure in the table
                    rows.append({"medium": medium, "method": method, "tol": tol, "error": f"{type(e).__name__}: {str(e)[:120]}"})
                print(rows[-1], flush=True)
            rows.append(imex_row(comp, medium, duration_s, ref))
            print(rows[-1], flush=True)
    return rows


def imex_row(comp: Composite, medium: str, duration_s: float, ref) -> dict:
    """KenCarp4 with the circuit explicit and the body implicit (dense Newton on the 147 body states)."""
    body, circuit = comp["body"], comp["circuit"]
    fb, fc = field_per_ms(body), field_per_ms(circuit)

    def explicit(t, y, args):
        ins = comp.component_inputs(t, y)
        return {"circuit": fc(t, y["circuit"], ins["circuit"]), "body": jax.tree_util.tree_map(jnp.zeros_like, y["body"])}

    def implicit(t, y, args):
        ins = comp.component_inputs(t, y)
        return {"circuit": jax.tree_util.tree_map(jnp.zeros_like, y["circuit"]), "body": fb(t, y["body"], ins["body"])}

    terms = dfx.MultiTerm(dfx.ODETerm(explicit), dfx.ODETerm(implicit))
    ts = jnp.asarray(np.arange(int(round(duration_s / DT_OUT)) + 1) * DT_OUT * 1000.0)

    @eqx.filter_jit
    def run(y0):
        sol = dfx.diffeqsolve(terms, dfx.KenCarp4(), ts[0], ts[-1], 1.0, y0, saveat=dfx.SaveAt(ts=ts),
                              stepsize_controller=dfx.PIDController(rtol=1e-4, atol=1e-4), max_steps=100_000, throw=False)
        return sol.ys, sol.stats["num_steps"], sol.result

    y0 = comp.initial_state()
    try:
        jax.block_until_ready(run(y0))
        t0 = time.perf_counter()
        ys, steps, res = jax.block_until_ready(run(y0))
        wall = time.perf_counter() - t0
        err = float(np.max(np.hypot(ys["body"]["x"] - ref.ys["body"]["x"], ys["body"]["y"] - ref.ys["body"]["y"])))
        return {"medium": medium, "method": "kencarp4 (IMEX)", "tol": 1e-4, "wall_s": wall, "steps": int(steps),
                "max_point_error_mm": err, "ok": res == dfx.RESULTS.successful}
    except Exception as e:  # noqa: BLE001
        return {"medium": medium, "method": "kencarp4 (IMEX)", "tol": 1e-4, "error": f"{type(e).__name__}: {str(e)[:120]}"}


def _fmt(v, nd=3):
    if isinstance(v, float):
        return f"{v:.{nd}g}"
    return str(v)


def write_markdown(res: dict, path: Path) -> None:
    L = [f"# owjax body benchmark ({res['date']})", "", f"Machine: {res['machine']}. Timings are wall-clock after "
         "compilation; the 2 cores were shared with other jobs, so absolute times are upper bounds.", "",
         "## Same kymogram: owjax body vs ElegansBot", "",
         "| medium | model | speed (mm/s) | frequency (Hz) | wavelength (L) | amplitude (L) | wall s / sim s |",
         "|---|---|---|---|---|---|---|"]
    for c in res["elegansbot"]:
        for name in ("owjax", "elegansbot"):
            m = c[name]
            L.append(f"| {c['medium']} | {name} | {_fmt(m['speed_mm_s'])} | {_fmt(m['frequency_hz'])} | "
                     f"{_fmt(m['wavelength_body_lengths'])} | {_fmt(m['amplitude'])} | {_fmt(m['wall_s_per_sim_s'])} |")
        L.append(f"| {c['medium']} | **speed_rel_diff_vs_elegansbot** | **{c['speed_rel_diff_vs_elegansbot']:+.1%}** | | | | "
                 f"owjax {c['speedup_vs_elegansbot']:.0f}× faster |")
    L += ["", "## BBC loop, 10 s on agar", "", "| dtype | wall s | steps (rejected) | speed mm/s | frequency Hz | wavelength L | max point error vs rtol 1e-8 (mm) |",
          "|---|---|---|---|---|---|---|"]
    for k, m in res["bbc_agar_10s"].items():
        L.append(f"| {k} | {_fmt(m['wall_s'])} | {m['num_steps']} ({m['num_rejected']}) | {_fmt(m['speed_mm_s'])} | "
                 f"{_fmt(m['frequency_hz'])} | {_fmt(m['wavelength_body_lengths'])} | {_fmt(m['max_point_error_mm_vs_rtol1e-8'])} |")
    v = res["vmap"]
    L += ["", "## Batch", "", f"vmap of {v['bodies']} bodies × {v['duration_s']} s (agar, wave drive, {v['dtype']}, "
          f"{v.get('solver', 'tsit5 1e-4')}): {_fmt(v['wall_s'])} s wall → **{v['body_s_per_wall_s']:.0f} body-s per wall-s** "
          f"(compile {v['compile_s']:.0f} s); centroid error vs float64 Tsit5 1e-7: "
          f"{_fmt(v.get('max_centroid_x_error_mm_vs_tsit5_1e-7_f64', float('nan')))} mm."]
    if res.get("solvers"):
        L += ["", "## Solver choice (BBC loop, 2 s from rest, float64; error vs Dopri8 at 1e-9)", "",
              "| medium | method | tol | wall s | steps | max point error (mm) |", "|---|---|---|---|---|---|"]
        for r in res["solvers"]:
            if "error" in r:
                L.append(f"| {r['medium']} | {r['method']} | {r['tol']} | failed: {r['error']} | | |")
            else:
                L.append(f"| {r['medium']} | {r['method']} | {r['tol']} | {_fmt(r['wall_s'])} | {r['steps']} | {_fmt(r['max_point_error_mm'])} |")
    path.write_text("\n".join(L) + "\n")


SECTIONS = ("elegansbot", "bbc_agar_10s", "vmap", "solvers")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs, no solver table")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated subset of {SECTIONS}; others are kept from an existing body.json")
    args = ap.parse_args(argv)
    wanted = [x.strip() for x in args.sections.split(",") if x.strip()]
    bad = sorted(set(wanted) - set(SECTIONS))
    if bad:
        raise SystemExit(f"unknown section(s) {bad}; allowed: {list(SECTIONS)}")
    path = RESULTS / "body.json"
    res = json.loads(path.read_text()) if path.exists() else {}
    res.update({"date": _dt.date.today().isoformat(), "machine": machine()})
    if "elegansbot" in wanted:
        res["elegansbot"] = [compare_elegansbot(m, args.quick) for m in ("agar", "water")]
        print(json.dumps(res["elegansbot"], indent=1, default=str), flush=True)
    if "bbc_agar_10s" in wanted:
        res["bbc_agar_10s"] = bbc_agar_10s()
        print(res["bbc_agar_10s"], flush=True)
    if "vmap" in wanted:
        res["vmap"] = vmap_batch(256, 1.0 if args.quick else 2.0)
        print(res["vmap"], flush=True)
    if "solvers" in wanted and not args.quick:
        res["solvers"] = solver_table()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=2, default=str) + "\n")
    write_markdown(res, RESULTS / "body.md")
    return res


if __name__ == "__main__":
    main()

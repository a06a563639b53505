"""The equivalence study behind docs/equivalence.md (not a test; run it by hand).

    python tests/c302_vs_neuron/study.py C1:IClamp:6000 C1:Syns:3600 C1:Full:1000 ... \\
        --json docs/equivalence.json

For each ``SET:Config:duration_ms`` it takes NEURON runs at every dt in ``--dts`` (from the
``owjax.reference.runner`` cache; missing ones are run, which for the full networks at dt ≤ 0.002 ms
takes 10–40 minutes each), the two finest as the convergence pair (dt vs dt/2) and their
Richardson extrapolation as the converged truth, then compares against it: owjax's default solver
(Tsit5, rtol = atol = 1e-6, float64), owjax's dopri8 (rtol = atol = 1e-10), NEURON at the coarser
dts (0.05 ms is what c302 uses) and jNML at 0.05 ms where a run is cached. In sensitive (chaotic)
networks the pointwise criteria apply up to the time the convergence pair itself diverges, and
statistics are compared after it. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))

from owjax_run import owjax_traces  # noqa: E402


def _row(label: str, r: dict, extra: dict | None = None) -> dict:
    s = r["summary"]
    out = dict(
        label=label,
        pass_=s["pass"],
        n_cells=s["n_cells"],
        n_spiking=s["n_spiking"],
        n_fail=s["n_fail"],
        V_max_rel=s.get("V_max_rel"),
        V_max_abs=s.get("V_max_abs"),
        Ca_max_rel=s.get("Ca_max_rel"),
        count_mismatch=s["spike_count_mismatches"],
        max_spike_dt_ms=s["max_spike_dt_ms"],
        max_isi_rel=s["max_isi_rel"],
        first_divergence_ms=s["first_divergence_ms"],
        first_divergence_cell=s["first_divergence_cell"],
    )
    for k in ("stats_after_ms", "stats_spike_count_a", "stats_spike_count_b", "stats_rate_rel_diff_median",
              "stats_ks_isi_median"):
        if k in s:
            out[k] = s[k]
    out.update(extra or {})
    return out


def study(ps: str, cfg: str, T: float, dts: list[float], jnml: bool, dopri8: bool, pointwise_until=None) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    from owjax.reference.compare import compare_traces
    from owjax.reference.runner import richardson, run_reference
    from owjax.traces import read_traces

    runs = {}
    for dt in sorted(dts):
        t0 = time.perf_counter()
        runs[dt] = read_traces(run_reference(ps, cfg, "neuron", dt, T, 0.05, verbose=True))
        print(f"  NEURON dt {dt}: loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    fine, coarse = sorted(runs)[:2]
    truth = richardson(runs[fine], runs[coarse], coarse / fine)
    conv = compare_traces(runs[coarse], runs[fine])
    t_div = pointwise_until
    rows = [_row(f"NEURON dt {coarse:g} vs dt {fine:g} (convergence)", conv)]
    conv_r = compare_traces(runs[fine], truth)
    rows.append(_row(f"NEURON dt {fine:g} vs truth", conv_r))
    kw = {} if t_div is None else dict(pointwise_until_ms=t_div)

    ow, sol = owjax_traces(ps, cfg, T)
    rows.append(_row("owjax tsit5 1e-6 (default) vs truth", compare_traces(ow, truth, **kw),
                     dict(wall_s=round(float(ow.attrs["sim_time_s"]), 3), steps=int(ow.attrs["num_steps"]))))
    rows.append(_row(f"owjax tsit5 1e-6 (default) vs NEURON dt {fine:g}", compare_traces(ow, runs[fine], **kw)))
    if dopri8:
        ow8, _ = owjax_traces(ps, cfg, T, solver="dopri8")
        rows.append(_row("owjax dopri8 1e-10 vs truth", compare_traces(ow8, truth, **kw),
                         dict(wall_s=round(float(ow8.attrs["sim_time_s"]), 3))))
        rows.append(_row("owjax tsit5 1e-6 vs owjax dopri8 1e-10", compare_traces(ow, ow8, **kw)))
    for dt in sorted(runs)[2:]:
        rows.append(_row(f"NEURON dt {dt:g} vs truth", compare_traces(runs[dt], truth, **kw),
                         dict(sim_s=round(float(runs[dt].attrs["sim_time_s"]), 2))))
    if jnml:
        try:
            jn = read_traces(run_reference(ps, cfg, "jnml", 0.05, T, 0.05, verbose=True))
            rows.append(_row("jNML dt 0.05 vs truth", compare_traces(jn, truth, **kw),
                             dict(sim_s=round(float(jn.attrs["sim_time_s"]), 2))))
        except Exception as e:  # noqa: BLE001 - report, don't fail the study
            rows.append(dict(label=f"jNML dt 0.05: {e}"))
    return dict(parameter_set=ps, config=cfg, duration_ms=T, dts=sorted(runs), truth=f"Richardson({fine:g}, {coarse:g})",
                pointwise_until_ms=t_div, rows=rows,
                neuron_sim_time_s={str(dt): float(runs[dt].attrs["sim_time_s"]) for dt in runs})


def _f(x, fmt="{:.2g}"):
    return "–" if x is None else fmt.format(x)


def markdown(results: list[dict]) -> str:
    lines = []
    for res in results:
        lines.append(f"\n#### {res['parameter_set']} {res['config']}, {res['duration_ms']:g} ms "
                     f"(truth: {res['truth']}" + (f"; pointwise until {res['pointwise_until_ms']} ms"
                                                  if res.get("pointwise_until_ms") else "") + ")\n")
        lines.append("| comparison | pass | V max rel (graded) | Ca max rel | spiking cells | count mismatches "
                     "| max spike Δt (ms) | max ISI rel | first divergence (ms) |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for r in res["rows"]:
            if "pass_" not in r:
                lines.append(f"| {r['label']} | | | | | | | | |")
                continue
            div = _f(r["first_divergence_ms"], "{:.1f}") + (f" ({r['first_divergence_cell']})"
                                                            if r["first_divergence_cell"] else "")
            lines.append(
                f"| {r['label']} | {'yes' if r['pass_'] else 'no'} ({r['n_fail']}/{r['n_cells']} fail) | "
                f"{_f(r['V_max_rel'])} | {_f(r['Ca_max_rel'])} | {r['n_spiking']} | {r['count_mismatch']} | "
                f"{_f(r['max_spike_dt_ms'])} | {_f(r['max_isi_rel'])} | {div} |"
            )
        stats = [r for r in res["rows"] if "stats_after_ms" in r]
        if stats:
            lines.append("\nAfter the pointwise window (statistics):\n")
            lines.append("| comparison | spikes A | spikes B | median abs. rate diff | median ISI KS distance |")
            lines.append("|---|---|---|---|---|")
            for r in stats:
                lines.append(f"| {r['label']} | {r['stats_spike_count_a']} | {r['stats_spike_count_b']} | "
                             f"{_f(r['stats_rate_rel_diff_median'])} | {_f(r['stats_ks_isi_median'])} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("configs", nargs="+", help="SET:Config:duration_ms[:pointwise_until_ms]")
    p.add_argument("--dts", default="0.0005,0.001,0.0025,0.005,0.01,0.05")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--jnml", action="store_true", help="include cached/run jNML at dt 0.05")
    p.add_argument("--dopri8", action="store_true", help="include owjax dopri8 1e-10")
    a = p.parse_args(argv)
    from owjax.reference.runner import default_cache_dir

    cache = default_cache_dir()
    results = []
    for spec in a.configs:
        parts = spec.split(":")
        ps, cfg, T = parts[0], parts[1], float(parts[2])
        until = float(parts[3]) if len(parts) > 3 else None
        dts = [float(x) for x in a.dts.split(",")]
        # use what exists for this config (the big networks are run at fewer dts)
        have = [dt for dt in dts if list(cache.glob(f"neuron_{ps}_{cfg}_dt{dt:g}_T{T:g}_*.h5"))]
        print(f"== {ps} {cfg} {T:g} ms: NEURON dts {have}", flush=True)
        results.append(study(ps, cfg, T, have if len(have) >= 2 else dts, a.jnml, a.dopri8, until))
    md = markdown(results)
    print(md)
    if a.json:
        a.json.write_text(json.dumps(dict(results=results, markdown=md), indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()

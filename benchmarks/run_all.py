"""``make bench``: owjax against NEURON, side by side, on this machine.

    python -m benchmarks.run_all [--quick] [--reuse-neuron] [--configs Full,Muscles]

For c302 C1 Full and C1 Muscles (1 s each):

* NEURON at dt = 0.05 ms (c302's default), single thread: its own simulation time (``neuron_s``)
  and end to end (generation, export, nrnivmodl, run; ``neuron_end_to_end_s``);
* owjax with Tsit5 (rtol = atol = 1e-6, float64), the ``imex`` preset (diagonal IMEX ARK4(3),
  rtol = atol = 1e-5, float64 and float32; the default of ``python -m owjax.simulate``), ``imex_fast``
  (the same at 3e-5, float32), the ``fast`` preset (Ralston 2(1), rtol = atol = 1e-4,
  float32) and Tsit5 at 1e-4 in float32: solve time without compilation (``owjax_s``), compile
  time, process end to end;
* accuracy of each against converged NEURON: by default the checked-in Richardson-extrapolated
  NEURON traces of ``tests/c302_vs_neuron/data`` (dt 0.0005/0.001 ms for C1 Full, 0.001/0.002 ms
  for C1 Muscles; every 3rd cell, sampled every 0.5 ms), or with ``--converged neuron`` a fresh
  NEURON run at dt = ``CONVERGED_DT_MS`` (≈ 40 min for C1 Full; cached):
  ``max_rel_err_vs_converged`` = max over cells and times of |ΔV| / (range of the cell's converged V,
  floored at 1 mV), plus spike-time errors;
* vmap throughput for 1, 32 and 128 parameter sets (``fast`` preset, float32, output every 10 ms) against NEURON run
  sequentially (``neuron_s`` = batch × NEURON's simulation time);
* gradient against a forward solve with the same solver: Tsit5 in float64 by diffrax's reverse mode
  (RecursiveCheckpointAdjoint, its checkpoints and every step kept) and by owjax's discrete adjoint,
  ``imex`` by both, and ``fast`` in float32;
* peak resident memory of each owjax case (each runs in its own process).

Then :mod:`benchmarks.devices` (``--no-devices`` skips it): sharded batches on 1, 2 and 4 forced CPU
devices (``devices.{json,md}``) and, when JAX sees an accelerator, the GPU section — forward, batches
of 1…10 000 worms over all accelerators, gradient, peak device memory (``devices_gpu.{json,md}``);
without an accelerator it prints that it is skipped.
When jaxley is installed (the ``bench`` extra), :mod:`benchmarks.jaxley_compare` then runs Jaxley side by side
with owjax and NEURON on C1 Full (``--no-jaxley`` skips it), writing ``jaxley_compare.{json,md}``.
Writes ``benchmarks/results/bench.json`` and ``benchmarks/results/bench.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
CHECKED_IN = Path(__file__).parents[1] / "tests" / "c302_vs_neuron" / "data"


def repository_path(path: Path) -> str:
    """``path`` relative to the repository where it lies inside it (so results do not name the machine
    they ran on), else as given, resolved."""
    path, root = Path(path).resolve(), Path(__file__).parents[1].resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
CONVERGED_DT_MS = 0.0005  # NEURON is first order; docs/equivalence.md shows dt 0.0005 ms is converged


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def run_case(*args, device=None) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.cases", *map(str, args)]
    if device:
        cmd += ["--device", device]
    env = dict(os.environ)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=Path(__file__).parents[1])
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH "):
            return json.loads(line[6:])
    raise RuntimeError(f"benchmark case {args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def errors_vs(reference, t, V, names) -> dict:
    """Max relative and absolute V error and spike-time error of (t, V[T, N]) against a Traces file.

    Cells missing from the reference (the checked-in ones keep every 3rd cell) are skipped; when the
    reference is sampled more coarsely than ``t``, both are compared on the reference's time grid so
    that spike times are read off the same sampling.
    """
    from owjax.validate import spike_times

    ref_names, ref_v = [], []
    for pop in ("neurons", "muscles"):
        if pop in reference.populations:
            ref_names += list(reference.populations[pop]["names"])
            ref_v.append(reference.populations[pop]["V"])
    ref_v = np.concatenate(ref_v, 0)
    idx = {n: i for i, n in enumerate(ref_names)}
    t = np.asarray(t, dtype=np.float64)
    t_ref = np.asarray(reference.t_ms, dtype=np.float64)
    coarse = len(t_ref) > 1 and np.median(np.diff(t_ref)) > np.median(np.diff(t)) * 1.5
    grid = t_ref[t_ref <= t[-1] + 1e-9] if coarse else t
    rel, ab, st, mism, compared = 0.0, 0.0, 0.0, 0, 0
    for j, n in enumerate(names):
        if str(n) not in idx:
            continue
        compared += 1
        r = np.interp(grid, t_ref, ref_v[idx[str(n)]])
        v = np.interp(grid, t, V[:, j]) if coarse else V[:, j]
        e = np.abs(v - r)
        rng = max(float(np.ptp(r)), 1.0)
        rel, ab = max(rel, float(e.max()) / rng), max(ab, float(e.max()))
        a, b = spike_times(grid, v), spike_times(grid, r)
        if len(a) != len(b):
            mism += 1
        k = min(len(a), len(b))
        if k:
            st = max(st, float(np.abs(a[:k] - b[:k]).max()))
    if compared == 0:
        raise ValueError("no cell of the run is in the converged reference")
    return dict(max_rel_err_vs_converged=rel, max_abs_err_V_mV=ab, max_spike_time_err_ms=st,
                cells_spike_count_mismatch=mism, cells_compared=compared)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="Full,Muscles")
    p.add_argument("--quick", action="store_true", help="200 ms instead of 1 s, batches 1 and 8")
    p.add_argument("--reuse-neuron", action="store_true", help="use cached NEURON timings")
    p.add_argument("--batches", default=None, help="comma-separated vmap batch sizes (default 1,32,128)")
    p.add_argument("--converged", choices=("checked-in", "neuron"), default="checked-in",
                   help="converged reference: the checked-in Richardson-extrapolated NEURON traces of "
                        "tests/c302_vs_neuron/data (every 3rd cell, 0.5 ms; default, 1 s runs only) or a "
                        f"fresh NEURON run at dt {CONVERGED_DT_MS} ms (about 40 min for C1 Full, then cached)")
    p.add_argument("--no-devices", action="store_true",
                   help="skip the sharded-batch section (benchmarks/devices.py: forced CPU devices, GPU section)")
    p.add_argument("--no-jaxley", action="store_true",
                   help="skip the Jaxley side-by-side run (benchmarks/jaxley_compare.py; 1-s C1 Full only)")
    a = p.parse_args(argv)

    from owjax.reference.runner import run_reference
    from owjax.traces import read_traces

    dur = 200.0 if a.quick else 1000.0
    batches = (1, 8) if a.quick else (1, 32, 128)
    if a.batches:
        batches = tuple(int(b) for b in a.batches.split(","))
    mach = machine()
    records: list[dict] = []

    ref_label = {"checked-in": "checked-in Richardson-extrapolated traces, tests/c302_vs_neuron/data",
                 "neuron": f"NEURON at dt {CONVERGED_DT_MS} ms"}["neuron" if a.quick else a.converged]

    def add(rec):
        rec.setdefault("machine", mach)
        rec.setdefault("reference", ref_label)
        records.append(rec)
        print(json.dumps(rec), flush=True)

    for cfgname in a.configs.split(","):
        checked_in = CHECKED_IN / f"C1_{cfgname}.h5"
        if a.converged == "checked-in" and checked_in.exists() and not a.quick:
            print(f"== C1 {cfgname}: converged reference {checked_in} (Richardson-extrapolated NEURON)", flush=True)
            conv = read_traces(checked_in)
        else:
            print(f"== C1 {cfgname}: converged NEURON reference (dt {CONVERGED_DT_MS} ms; cached after the first run)",
                  flush=True)
            conv = read_traces(run_reference("C1", cfgname, "neuron", dt_ms=CONVERGED_DT_MS, duration_ms=dur,
                                             verbose=True))
        print(f"== C1 {cfgname}: NEURON at dt 0.05 ms", flush=True)
        nrn_path = run_reference("C1", cfgname, "neuron", dt_ms=0.05, duration_ms=dur,
                                 force=not a.reuse_neuron, verbose=True)
        nrn = read_traces(nrn_path)
        neuron_s = float(nrn.attrs["sim_time_s"])
        neuron_e2e = float(nrn.attrs["wall_time_s"])
        names = [str(n) for pop in ("neurons", "muscles") if pop in nrn.populations
                 for n in nrn.populations[pop]["names"]]
        nv = np.concatenate([nrn.populations[p]["V"] for p in ("neurons", "muscles") if p in nrn.populations], 0).T
        add(dict(case=f"C1_{cfgname}_{int(dur)}ms_neuron_dt0.05", owjax_s=None, neuron_s=neuron_s,
                 neuron_end_to_end_s=neuron_e2e, speedup_vs_neuron=1.0,
                 **errors_vs(conv, nrn.t_ms, nv, names)))
        for label, extra in (("tsit5_f64_1e-6", ["--dtype", "float64"]),
                             ("imex_f64_1e-5", ["--dtype", "float64", "--preset", "imex"]),
                             ("imex_f32_1e-5", ["--dtype", "float32", "--preset", "imex"]),
                             ("imex_fast_f32_3e-5", ["--dtype", "float32", "--preset", "imex_fast"]),
                             ("fast_f32_ralston_1e-4", ["--dtype", "float32", "--preset", "fast"]),
                             ("f32_tsit5_1e-4", ["--dtype", "float32", "--rtol", "1e-4"])):
            with tempfile.TemporaryDirectory() as tmp:
                npz = Path(tmp) / "v.npz"
                r = run_case("forward", "--config", cfgname, "--duration-ms", dur, "--save", npz, *extra)
                z = np.load(npz)
                err = errors_vs(conv, z["t"], z["V"], list(z["names"]))
            add(dict(case=f"C1_{cfgname}_{int(dur)}ms_owjax_{label}", owjax_s=r["run_s"], neuron_s=neuron_s,
                     speedup_vs_neuron=neuron_s / r["run_s"], compile_s=r["compile_s"],
                     owjax_end_to_end_s=r["process_wall_s"], neuron_end_to_end_s=neuron_e2e,
                     steps=r["steps"], peak_rss_mb=r["peak_rss_mb"], **err))
        if cfgname == "Full":
            for b in batches:
                r = run_case("batch", "--config", cfgname, "--duration-ms", dur, "--batch", b,
                             "--dtype", "float32", "--preset", "fast", "--dt-out-ms", 10.0)
                add(dict(case=f"C1_{cfgname}_{int(dur)}ms_vmap_batch{b}_f32_fast", owjax_s=r["run_s"],
                         neuron_s=b * neuron_s, speedup_vs_neuron=b * neuron_s / r["run_s"],
                         per_member_s=r["per_member_s"], compile_s=r["compile_s"], peak_rss_mb=r["peak_rss_mb"],
                         max_rel_err_vs_converged=None))
            # diffrax's default checkpoints; every step kept; the fast preset in float32
            for label, dtype, preset, ck, adjoint in (
                    ("f64", "float64", "tsit5", None, "diffrax"),
                    (f"f64_checkpoints{int(8 * dur)}", "float64", "tsit5", int(8 * dur), "diffrax"),
                    ("f64_discrete_adjoint", "float64", "tsit5", None, "discrete"),
                    ("imex_f64", "float64", "imex", None, "diffrax"),
                    ("imex_f64_discrete_adjoint", "float64", "imex", None, "discrete"),
                    ("imex_f64_discrete_adjoint_held_rates", "float64", "imex", None, "discrete-held"),
                    ("f32_fast", "float32", "fast", None, "diffrax")):
                extra = ([] if ck is None else ["--checkpoints", ck]) + ["--adjoint", adjoint]
                r = run_case("gradient", "--config", cfgname, "--duration-ms", dur, "--dtype", dtype,
                             "--preset", preset, "--dt-out-ms", 1.0, *extra)
                add(dict(case=f"C1_{cfgname}_{int(dur)}ms_gradient_{label}", owjax_s=r["gradient_s"], neuron_s=None,
                         speedup_vs_neuron=None, forward_s=r["forward_s"],
                         gradient_over_forward=r["gradient_over_forward"], checkpoints=ck,
                         compile_s=r["gradient_compile_s"], peak_rss_mb=r["peak_rss_mb"], max_rel_err_vs_converged=None))

    # sharded batches (benchmarks/devices.py): throughput per device on 1, 2 and 4 forced CPU devices,
    # and the GPU section when JAX sees an accelerator (forward, batches of 1…10 000 worms sharded over
    # all accelerators, gradient, peak device memory); on a CPU-only machine it says so and is skipped
    if not a.no_devices:
        from benchmarks import devices

        print("== sharded batches on 1, 2, 4 forced CPU devices (benchmarks/results/devices.md)", flush=True)
        cpu = devices.cpu_section(batch=8 if a.quick else 16, duration_ms=50.0 if a.quick else 200.0)
        devices.write(cpu, "devices_quick" if a.quick else "devices")
        print("== GPU section (benchmarks/results/devices_gpu.md)", flush=True)
        gpu = devices.gpu_section(tuple(b for b in devices.GPU_BATCHES if b <= 1000) if a.quick
                                  else devices.GPU_BATCHES, duration_ms=dur)
        if gpu is not None:
            devices.write(gpu, "devices_gpu_quick" if a.quick else "devices_gpu")

    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "bench_quick" if a.quick else "bench"
    (RESULTS / f"{name}.json").write_text(json.dumps(records, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(to_markdown(records))
    print(to_markdown(records))
    if "Full" in a.configs.split(",") and not a.quick and not a.no_jaxley:
        try:
            import jaxley  # noqa: F401
        except ImportError:
            print("== Jaxley side by side skipped: jaxley is not installed (the bench extra)", flush=True)
        else:
            from benchmarks import jaxley_compare

            print("== Jaxley side by side with owjax and NEURON (benchmarks/results/jaxley_compare.md)", flush=True)
            jaxley_compare.main(["--reuse-neuron"])
    return 0


def _f(x, fmt="{:.3g}"):
    return "–" if x is None else fmt.format(x)


def to_markdown(records) -> str:
    lines = [
        f"owjax vs NEURON 9 (c302 0.12.1, parameter set C1), machine: {records[0]['machine'] if records else '?'}.",
        f"Errors are against converged NEURON ({records[0].get('reference', '?') if records else '?'}). "
        "`owjax_s`/`neuron_s` are simulation "
        "times without compilation / set-up; end-to-end times include them.",
        "",
        "| case | owjax (s) | NEURON (s) | speed-up | max rel. err vs converged | max spike-time err (ms) "
        "| spike-count mismatches | compile (s) | owjax end-to-end (s) | NEURON end-to-end (s) | peak RSS (MB) | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        note = ""
        if "gradient_over_forward" in r:
            note = f"forward {r['forward_s']:.2f} s, gradient/forward = {r['gradient_over_forward']:.2f}"
        if "per_member_s" in r:
            note = f"{r['per_member_s']:.3f} s per parameter set"
        lines.append(
            f"| {r['case']} | {_f(r.get('owjax_s'))} | {_f(r.get('neuron_s'))} | {_f(r.get('speedup_vs_neuron'), '{:.1f}×')} "
            f"| {_f(r.get('max_rel_err_vs_converged'))} | {_f(r.get('max_spike_time_err_ms'))} "
            f"| {_f(r.get('cells_spike_count_mismatch'), '{}')} | {_f(r.get('compile_s'), '{:.1f}')} "
            f"| {_f(r.get('owjax_end_to_end_s'), '{:.1f}')} | {_f(r.get('neuron_end_to_end_s'), '{:.1f}')} "
            f"| {_f(r.get('peak_rss_mb'), '{:.0f}')} | {note} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

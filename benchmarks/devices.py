"""Batches over devices: throughput per device on 1, 2 and 4 (forced) CPU devices; the GPU section.

    python -m benchmarks.devices [--quick] [--sections cpu,gpu] [--cpu-devices 1,2,4] [--batch 16]

**CPU section.** A batch of C1 Full networks (each member its own graded-synapse conductance
scale, 0.9…1.1: a batch of parameter sets), the ``fast`` preset in float32, output every 10 ms, run
with :func:`owjax.core.sharding.sharded_vmap` in a fresh process per device count with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``. Reports compile time, the best of
``--repeats`` timed runs, throughput (simulated worm-seconds per wall-second) in all and per
device, peak resident memory, and the largest difference of the final voltages from the one-device
run (the sharded result must not depend on the device count). The forced host devices share this
machine's cores, so this measures how the one code path behaves with several devices, not extra
hardware: on a 2-core machine 4 devices cannot be faster than 2.

**GPU section** (``make bench`` runs it when JAX sees an accelerator; on a CPU-only machine it is
skipped with a message): on all accelerators, each case in its own process,

* ``forward``: one C1 Full worm, 1 s: ``imex`` (float64, the default of ``python -m owjax.simulate``),
  ``tsit5`` (1e-6, float64, the library functions' default) and ``fast`` (float32);
* ``batch``: 1, 10, 100, 1 000 and 10 000 worms (``fast``, float32, V every 10 ms), sharded over
  all accelerators — wall time, worms per second, per device; larger batches stop once one case
  exceeds ``--gpu-case-budget-s`` or runs out of memory (recorded, not hidden);
* ``gradient``: reverse-mode gradient of a loss on the 1-s solve with respect to every parameter,
  against the forward solve (float64 default and ``fast`` float32);
* peak accelerator memory of every case (``memory_stats()["peak_bytes_in_use"]``, summed over
  devices; preallocation is switched off so that the number is what the case used).

Writes ``benchmarks/results/devices.json`` / ``.md`` (CPU) and ``devices_gpu.json`` / ``.md``
(GPU) next to each other.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parents[1]
GPU_BATCHES = (1, 10, 100, 1000, 10000)


# ----------------------------------------------------------------------------- worker (one case per process)
def _peak_device_bytes(devices) -> int | None:
    total, seen = 0, False
    for d in devices:
        stats = d.memory_stats() if hasattr(d, "memory_stats") else None
        if stats and "peak_bytes_in_use" in stats:
            total += int(stats["peak_bytes_in_use"])
            seen = True
    return total if seen else None


def _timed(fn, *args, repeats: int = 2):
    import jax

    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return out, first, min(times) if times else first


def worker(a) -> dict:
    """Run one case in this process (JAX is imported here, after the parent set XLA_FLAGS)."""
    import jax

    if a.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import dataclasses

    import equinox as eqx
    import jax.numpy as jnp
    import numpy as np

    from owjax.core.sharding import sharded_vmap
    from owjax.core.solve import get_solver, solve_ys
    from owjax.neural.c302_data import load_c302_network
    from owjax.neural.network import NetworkModel

    devices = jax.devices()
    dtype = jnp.float64 if a.dtype == "float64" else jnp.float32
    model = NetworkModel.from_spec(load_c302_network("C1", a.config), dtype)
    cfg = get_solver(a.preset)
    out = dict(case=a.worker, config=f"C1_{a.config}", dtype=a.dtype, preset=cfg.method, rtol=cfg.rtol,
               duration_ms=a.duration_ms, dt_out_ms=a.dt_out_ms, platform=devices[0].platform,
               device_kind=getattr(devices[0], "device_kind", ""), n_devices=len(devices))

    if a.worker == "batch":
        scales = jnp.linspace(0.9, 1.1, a.batch, dtype=dtype)

        def member(m, s):
            m = eqx.tree_at(lambda m: m.graded.g_nS, m, m.graded.g_nS * s)
            sol = solve_ys(m, a.duration_ms, a.dt_out_ms, cfg, throw=False, save=("V",))
            return sol.ys["V"][-1], sol.stats["num_steps"]

        run = sharded_vmap(member, in_axes=(None, 0))
        (v_end, steps), first, best = _timed(run, model, scales, repeats=a.repeats)
        worm_s = a.batch * a.duration_ms / 1000.0
        out.update(batch=a.batch, compile_and_first_run_s=first, run_s=best, worms_per_s=a.batch / best,
                   worm_s_per_wall_s=worm_s / best, worm_s_per_wall_s_per_device=worm_s / best / len(devices),
                   padding=(-a.batch) % len(devices), mean_steps=float(np.mean(np.asarray(steps))),
                   finite=bool(np.all(np.isfinite(np.asarray(v_end)))))
        if a.save:
            np.save(a.save, np.asarray(v_end))
    elif a.worker == "forward":
        def fwd(m):
            return solve_ys(m, a.duration_ms, a.dt_out_ms, cfg, save=("V",)).ys["V"]

        v, first, best = _timed(jax.jit(fwd), model, repeats=a.repeats)
        out.update(compile_and_first_run_s=first, run_s=best, finite=bool(np.all(np.isfinite(np.asarray(v)))))
    elif a.worker == "gradient":
        params, static = eqx.partition(model, eqx.is_inexact_array)
        gcfg = dataclasses.replace(cfg, max_steps=int(16 * a.duration_ms))

        def loss(p):
            ys = solve_ys(eqx.combine(p, static), a.duration_ms, a.dt_out_ms, gcfg, save=("V", "Ca")).ys
            return jnp.mean(ys["V"]) + jnp.mean(ys["Ca"])

        _, f_first, f_best = _timed(jax.jit(loss), params, repeats=a.repeats)
        g, g_first, g_best = _timed(jax.jit(jax.grad(loss)), params, repeats=a.repeats)
        finite = all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(g))
        out.update(forward_s=f_best, gradient_s=g_best, gradient_over_forward=g_best / f_best,
                   forward_compile_and_first_run_s=f_first, gradient_compile_and_first_run_s=g_first,
                   finite=finite)
    else:
        raise ValueError(f"unknown worker case {a.worker!r}; allowed: batch, forward, gradient")
    out["peak_device_bytes"] = _peak_device_bytes(devices)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


# ----------------------------------------------------------------------------- parent
def run_worker(args: list, env_extra: dict, timeout_s: float) -> dict:
    """Run ``python -m benchmarks.devices --worker ...`` in a fresh process; its result or its error."""
    env = dict(os.environ, **env_extra)
    cmd = [sys.executable, "-m", "benchmarks.devices", *map(str, args)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return dict(error=f"did not finish within {timeout_s:.0f} s", args=[str(x) for x in args])
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH "):
            rec = json.loads(line[6:])
            rec["process_wall_s"] = time.perf_counter() - t0
            return rec
    tail = (proc.stderr or "")[-1500:]
    oom = "RESOURCE_EXHAUSTED" in tail or "out of memory" in tail.lower()
    return dict(error=("out of memory: " if oom else f"exit {proc.returncode}: ") + tail.strip().splitlines()[-1]
                if tail.strip() else f"exit {proc.returncode}", args=[str(x) for x in args])


def accelerators() -> list[str]:
    """The accelerators JAX sees (GPUs, TPUs), asked in a fresh process; empty on a CPU-only machine."""
    code = ("import jax, json\n"
            "try:\n    d = [f'{x.platform}:{getattr(x, \"device_kind\", \"\")}' for x in jax.devices() "
            "if x.platform != 'cpu']\nexcept Exception:\n    d = []\nprint('ACC ' + json.dumps(d))")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return []
    for line in proc.stdout.splitlines():
        if line.startswith("ACC "):
            return json.loads(line[4:])
    return []


def _env_note() -> dict:
    from benchmarks.run_all import machine

    return dict(machine=machine(), load_average_before=list(os.getloadavg()), date=time.strftime("%Y-%m-%d %H:%M UTC",
                time.gmtime()), git_commit=_git_commit())


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                              timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        return "?"


def cpu_section(device_counts=(1, 2, 4), batch: int = 16, duration_ms: float = 200.0, config: str = "Full",
                repeats: int = 2) -> dict:
    import numpy as np

    info = _env_note()
    records, ref = [], None
    tmp = RESULTS / ".devices_tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    for n in device_counts:
        save = tmp / f"v_end_{n}.npy"
        rec = run_worker(["--worker", "batch", "--config", config, "--batch", batch, "--duration-ms", duration_ms,
                          "--dt-out-ms", 10.0, "--dtype", "float32", "--preset", "fast", "--repeats", repeats,
                          "--save", save],
                         {"XLA_FLAGS": f"--xla_force_host_platform_device_count={n}", "JAX_PLATFORMS": "cpu"},
                         timeout_s=3600)
        rec["forced_cpu_devices"] = n
        if "error" not in rec:
            v = np.load(save)
            if ref is None:
                ref = v
            rec["max_abs_diff_vs_1_device_mV"] = float(np.max(np.abs(v - ref)))
        records.append(rec)
        print(json.dumps(rec), flush=True)
    for f in tmp.glob("*.npy"):
        f.unlink()
    tmp.rmdir()
    info["load_average_after"] = list(os.getloadavg())
    return dict(section="cpu", settings=dict(batch=batch, duration_ms=duration_ms, config=f"C1_{config}",
                                             preset="fast", dtype="float32", dt_out_ms=10.0), **info,
                records=records)


def gpu_section(batches=GPU_BATCHES, duration_ms: float = 1000.0, case_budget_s: float = 600.0,
                repeats: int = 2) -> dict | None:
    """The accelerator cases; ``None`` (and a message) when JAX sees no accelerator."""
    acc = accelerators()
    if not acc:
        print("benchmarks.devices: no GPU/accelerator visible to JAX; the GPU section is skipped "
              "(install the cuda extra on a GPU machine: pip install -e '.[cuda]')", flush=True)
        return None
    info = _env_note()
    env = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    records = []

    def add(rec):
        records.append(rec)
        print(json.dumps(rec), flush=True)

    for dtype, preset in (("float64", "imex"), ("float64", "tsit5"), ("float32", "fast")):
        add(run_worker(["--worker", "forward", "--dtype", dtype, "--preset", preset, "--duration-ms", duration_ms,
                        "--dt-out-ms", 1.0, "--repeats", repeats], env, timeout_s=case_budget_s * 2))
    for b in batches:
        rec = run_worker(["--worker", "batch", "--batch", b, "--dtype", "float32", "--preset", "fast",
                          "--duration-ms", duration_ms, "--dt-out-ms", 10.0, "--repeats", 1 if b >= 1000 else repeats],
                         env, timeout_s=case_budget_s * 2)
        add(rec)
        if "error" in rec or rec.get("process_wall_s", 0.0) > case_budget_s:
            for rest in batches[batches.index(b) + 1:]:
                add(dict(case="batch", batch=rest, error=f"not run: batch {b} "
                         + ("failed" if "error" in rec else f"took {rec['process_wall_s']:.0f} s > budget "
                            f"{case_budget_s:.0f} s")))
            break
    for dtype, preset in (("float64", "tsit5"), ("float32", "fast")):
        add(run_worker(["--worker", "gradient", "--dtype", dtype, "--preset", preset, "--duration-ms", duration_ms,
                        "--dt-out-ms", 1.0, "--repeats", 1], env, timeout_s=case_budget_s * 3))
    info["load_average_after"] = list(os.getloadavg())
    return dict(section="gpu", accelerators=acc, settings=dict(duration_ms=duration_ms, config="C1_Full",
                                                                case_budget_s=case_budget_s), **info,
                records=records)


def _f(x, fmt="{:.3g}"):
    return "–" if x is None else fmt.format(x)


def to_markdown(res: dict) -> str:
    s = res["settings"]
    head = (f"Machine: {res['machine']}; load average {res['load_average_before'][0]:.1f} before, "
            f"{res['load_average_after'][0]:.1f} after; {res['date']}, git {res['git_commit']}.")
    if res["section"] == "cpu":
        lines = [
            f"# Sharded batches on forced CPU host devices ({s['config']}, {s['duration_ms']:g} ms, "
            f"batch {s['batch']}, `{s['preset']}` preset, {s['dtype']}, output every {s['dt_out_ms']:g} ms)",
            "", head,
            "The forced host devices share the machine's cores (`XLA_FLAGS=--xla_force_host_platform_device_count=N`);"
            " worm-s/s = simulated seconds of all members per wall-clock second (best of the timed runs, "
            "compilation excluded).", "",
            "| devices | run (s) | compile + first run (s) | worm-s / s | worm-s / s per device | padding | "
            "max |ΔV| vs 1 device (mV) | peak RSS (MB) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in res["records"]:
            if "error" in r:
                lines.append(f"| {r.get('forced_cpu_devices')} | error: {r['error']} |||||||")
                continue
            lines.append(f"| {r['n_devices']} | {r['run_s']:.2f} | {r['compile_and_first_run_s']:.1f} "
                         f"| {r['worm_s_per_wall_s']:.3g} | {r['worm_s_per_wall_s_per_device']:.3g} | {r['padding']} "
                         f"| {_f(r.get('max_abs_diff_vs_1_device_mV'))} | {r['peak_rss_mb']:.0f} |")
        return "\n".join(lines) + "\n"
    lines = [f"# GPU section ({', '.join(res['accelerators'])}; {s['config']}, {s['duration_ms']:g} ms)", "", head, "",
             "| case | batch | dtype / preset | time (s) | compile + first (s) | worms / s | per device | "
             "gradient / forward | peak device memory (MB) | notes |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["records"]:
        if "error" in r:
            lines.append(f"| {r.get('case', '?')} | {r.get('batch', '')} | | | | | | | | {r['error']} |")
            continue
        mem = r.get("peak_device_bytes")
        mem = _f(mem / 2**20 if mem else None, "{:.0f}")
        dp = f"{r['dtype']} / {r['preset']}"
        if r["case"] == "gradient":
            lines.append(f"| gradient | 1 | {dp} | {r['gradient_s']:.3g} | {r['gradient_compile_and_first_run_s']:.1f} "
                         f"| | | {r['gradient_over_forward']:.2f} | {mem} | forward {r['forward_s']:.3g} s |")
        elif r["case"] == "forward":
            lines.append(f"| forward | 1 | {dp} | {r['run_s']:.3g} | {r['compile_and_first_run_s']:.1f} | "
                         f"{1 / r['run_s']:.3g} | | | {mem} | |")
        else:
            lines.append(f"| batch | {r['batch']} | {dp} | {r['run_s']:.3g} | {r['compile_and_first_run_s']:.1f} "
                         f"| {r['worms_per_s']:.3g} | {r['worms_per_s'] / r['n_devices']:.3g} | | {mem} "
                         f"| {r['n_devices']} device(s), mean {r['mean_steps']:.0f} steps |")
    return "\n".join(lines) + "\n"


def write(res: dict, stem: str) -> None:
    from owjax.core.checkpoint import atomic_write_json, atomic_write_text

    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / f"{stem}.json", res)
    atomic_write_text(RESULTS / f"{stem}.md", to_markdown(res))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--config", default="Full", help=argparse.SUPPRESS)
    p.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    p.add_argument("--preset", default="fast", help=argparse.SUPPRESS)
    p.add_argument("--dt-out-ms", type=float, default=10.0, help=argparse.SUPPRESS)
    p.add_argument("--save", default=None, help=argparse.SUPPRESS)
    p.add_argument("--sections", default="cpu,gpu", help="cpu, gpu or both (gpu is skipped without an accelerator)")
    p.add_argument("--cpu-devices", default="1,2,4", help="forced CPU device counts")
    p.add_argument("--batch", type=int, default=16, help="CPU section: members per batch")
    p.add_argument("--duration-ms", type=float, default=None,
                   help="simulated time per member (default: 200 ms on CPU, 1000 ms on the GPU)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs after the first (best is reported)")
    p.add_argument("--gpu-batches", default=",".join(map(str, GPU_BATCHES)))
    p.add_argument("--gpu-case-budget-s", type=float, default=600.0,
                   help="stop growing the GPU batch once one case takes longer than this")
    p.add_argument("--quick", action="store_true", help="CPU: 50 ms, batch 8; GPU: 200 ms, batches up to 1000")
    a = p.parse_args(argv)
    if a.worker:
        a.duration_ms = 1000.0 if a.duration_ms is None else a.duration_ms
        print("BENCH " + json.dumps(worker(a)), flush=True)
        return 0
    sections = {s.strip() for s in a.sections.split(",") if s.strip()}
    bad = sections - {"cpu", "gpu"}
    if bad:
        p.error(f"--sections: unknown {sorted(bad)}; allowed: cpu, gpu")
    if "cpu" in sections:
        res = cpu_section(tuple(int(x) for x in a.cpu_devices.split(",")), 8 if a.quick else a.batch,
                          a.duration_ms or (50.0 if a.quick else 200.0), repeats=a.repeats)
        write(res, "devices_quick" if a.quick else "devices")
        print(to_markdown(res))
    if "gpu" in sections:
        batches = tuple(int(x) for x in a.gpu_batches.split(","))
        if a.quick:
            batches = tuple(b for b in batches if b <= 1000)
        res = gpu_section(batches, a.duration_ms or (200.0 if a.quick else 1000.0), a.gpu_case_budget_s, a.repeats)
        if res is not None:
            write(res, "devices_gpu_quick" if a.quick else "devices_gpu")
            print(to_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

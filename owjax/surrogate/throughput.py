"""What a whole machine gets from the body physics or the surrogate: one worker process per CPU core,
each pinned to its core, all timed over the same window.

Why this exists: an unbatched adaptive solve of the body is a loop of small operations that runs on
one core — on this project's 2-core CPU it takes 0.052 s per 5-s sample pinned to one core and 0.064 s
free to use both (XLA's threads only get in each other's way) — and vmapping solves does not help
either (a vmapped adaptive solve takes as many steps as its slowest member). The surrogate's matrix
products, batched, do use every core (188 µs per sample on one core, 124 µs on two). Timing each in
one process therefore compares the physics on one core with the surrogate on all of them. Two physics
processes, one per core, each still take 0.052 s per sample: the machine solves twice as many as one
process does. So throughput is compared here with one process per core on *both* sides.

:func:`per_core_seconds_per_sample` starts ``processes`` workers (``spawn``: each imports JAX afresh),
pins worker *i* to the *i*-th core this process may run on, gives each an equal share of the inputs,
lets each compile and warm up on its share, then times ``repeats`` rounds started together at a
barrier. Each worker is started with the parent's affinity set to its core for that moment, so the
child and every thread it starts inherit the pin. A round's time is from the first worker's start to the last worker's end; the best round
over the number of inputs is the machine's seconds per sample.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

__all__ = ["per_core_seconds_per_sample", "available_cores", "thread_affinities", "start_pinned", "KINDS"]

#: what can be timed: the body physics (unbatched solves, the physics' fastest mode on one core) or a
#: surrogate (its whole share in one batch)
KINDS = ("physics", "surrogate")


def available_cores() -> list[int]:
    """The CPU cores this process may run on (all of ``os.cpu_count()`` where affinity is not supported)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def thread_affinities() -> list[list[int]] | None:
    """The cores each thread of this process may run on (Linux ``/proc``; None elsewhere)."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return None
    out = []
    for task in sorted(tasks.iterdir()):
        try:
            line = next(x for x in (task / "status").read_text().splitlines() if x.startswith("Cpus_allowed_list:"))
        except (OSError, StopIteration):
            continue
        cores = []
        for part in line.split(":", 1)[1].strip().split(","):
            lo, _, hi = part.partition("-")
            cores += list(range(int(lo), int(hi or lo) + 1))
        out.append(cores)
    return out


def start_pinned(process, core: int | None) -> None:
    """Start ``process`` with this process's affinity set to ``core`` for the moment of the start, so that
    the child and every thread it ever starts (XLA's, BLAS's) inherit it; restored afterwards."""
    if core is None or not hasattr(os, "sched_setaffinity"):
        process.start()
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        process.start()
    finally:
        os.sched_setaffinity(0, before)


def _worker(kind: str, spec: dict, core: int | None, activation, medium, barrier, repeats: int, out) -> None:
    """One pinned process: build the physics or the surrogate, warm up on its own share, then time it."""
    try:
        import jax

        jax.config.update("jax_platforms", "cpu")  # the CPU's cores are what is timed, even where a GPU is installed

        if kind == "physics":
            jax.config.update("jax_enable_x64", True)
            import jax.numpy as jnp

            from owjax.body.integrate import BodySolver
            from owjax.surrogate.data import PhysicsRunner

            runner = PhysicsRunner(spec["duration_s"], spec["dt_s"], BodySolver(rtol=spec["rtol"], atol=spec["atol"]),
                                   jnp.float64, devices=jax.local_devices()[:1])

            def run():
                for i in range(len(activation)):
                    runner(activation[i:i + 1], medium[i:i + 1])
        else:
            from owjax.surrogate.component import BodySurrogate
            from owjax.surrogate.evaluate import predict_batch

            model = BodySurrogate.load(spec["stem"], ensemble=False).model
            t = np.asarray(spec["t_s"], np.float64)

            def run():
                predict_batch(model, t, activation, medium, batch_size=len(activation))

        run()  # compile and warm up on the same shapes
        rounds = []
        for _ in range(repeats):
            barrier.wait()
            t0 = time.time()
            run()
            rounds.append((t0, time.time()))
        out.put({"core": core, "affinity": thread_affinities(), "rounds": rounds, "n": int(len(activation))})
    except BaseException as e:  # reported by the parent, which would otherwise wait at the barrier
        barrier.abort()
        out.put({"core": core, "error": f"{type(e).__name__}: {e}"})


def per_core_seconds_per_sample(kind: str, activation: np.ndarray, medium: np.ndarray, *, processes: int | None = None,
                                repeats: int = 2, duration_s: float = 5.0, dt_s: float = 0.02, rtol: float = 1e-5,
                                atol: float = 1e-5, surrogate_stem=None, t_s: np.ndarray | None = None,
                                timeout_s: float = 900.0) -> dict:
    """The machine's seconds per sample with one pinned worker process per core.

    Arguments:
        kind: ``"physics"`` (owjax's body, Tsit5 at ``rtol``/``atol``, float64, each input solved alone)
            or ``"surrogate"`` (the surrogate ``surrogate_stem`` — None: the shipped one — on the grid
            ``t_s``, each worker's share in one batch, float32).
        activation, medium: the inputs, (N, T, 2, 24) in [0, 1] and (N,); N must be a multiple of
            ``processes`` (each worker gets an equal, contiguous share).
        processes: worker processes, one per core (default: every core this process may use).
        repeats: timed rounds; the fastest counts.
        duration_s, dt_s: the physics' run length and output grid (s).
        t_s: the surrogate's time grid (s); required for ``kind="surrogate"``.
        timeout_s: give up (and stop the workers) after this long.

    Returns:
        ``s_per_sample`` (best round's wall time ÷ N), ``processes``, ``cores`` (per worker, in core order:
        the cores each of its threads may run on, :func:`thread_affinities`), ``round_wall_s`` (every
        round), ``worker_s_per_sample`` (each worker's own time per sample in its best round).

    Raises:
        ValueError: an unknown ``kind``, more processes than cores, N not a multiple of ``processes``,
            or no ``t_s`` for a surrogate.
        RuntimeError: a worker failed (its error is in the message) or the timeout passed.
    """
    import multiprocessing as mp
    import queue as queue_mod

    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; allowed: {list(KINDS)}")
    cores = available_cores()
    p = len(cores) if processes is None else int(processes)
    if not 1 <= p <= len(cores):
        raise ValueError(f"processes must be between 1 and the {len(cores)} core(s) this process may use {cores}, got {processes!r}")
    a, m = np.asarray(activation), np.asarray(medium)
    n = len(a)
    if n == 0 or n % p or m.shape != (n,):
        raise ValueError(f"need a positive multiple of {p} inputs with one medium each; got {n} activations, medium {m.shape}")
    if kind == "surrogate" and t_s is None:
        raise ValueError("kind='surrogate' needs the time grid t_s")
    if int(repeats) < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats!r}")
    spec = {"duration_s": float(duration_s), "dt_s": float(dt_s), "rtol": float(rtol), "atol": float(atol),
            "stem": None if surrogate_stem is None else str(surrogate_stem),
            "t_s": None if t_s is None else np.asarray(t_s, np.float64)}
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier, out = manager.Barrier(p), manager.Queue()
        share = n // p
        workers = [ctx.Process(target=_worker, args=(kind, spec, cores[i], a[i * share:(i + 1) * share],
                                                     m[i * share:(i + 1) * share], barrier, int(repeats), out),
                               daemon=True) for i in range(p)]
        for i, w in enumerate(workers):
            start_pinned(w, cores[i])
        results, deadline = [], time.monotonic() + timeout_s
        try:
            while len(results) < p:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"per-core timing of the {kind} did not finish within {timeout_s:g} s")
                try:
                    results.append(out.get(timeout=min(left, 5.0)))
                except queue_mod.Empty:
                    reported = {r["core"] for r in results}
                    dead = [(cores[i], w.exitcode) for i, w in enumerate(workers)
                            if w.exitcode is not None and cores[i] not in reported]
                    if dead and out.empty():  # killed without a word (memory, a signal): the others wait at the barrier
                        barrier.abort()
                        raise RuntimeError(f"{kind} timing worker(s) died without a result: "
                                           + ", ".join(f"core {c} (exit code {x})" for c, x in dead)) from None
        finally:
            for w in workers:
                w.join(timeout=10)
                if w.is_alive():
                    w.terminate()
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError(f"per-core timing of the {kind} failed: " + "; ".join(errors))
    results.sort(key=lambda r: cores.index(r["core"]))
    walls = [max(r["rounds"][k][1] for r in results) - min(r["rounds"][k][0] for r in results) for k in range(int(repeats))]
    best = int(np.argmin(walls))
    return {"s_per_sample": walls[best] / n, "processes": p, "cores": [r["affinity"] for r in results],
            "round_wall_s": walls, "samples": n,
            "worker_s_per_sample": [(r["rounds"][best][1] - r["rounds"][best][0]) / r["n"] for r in results]}

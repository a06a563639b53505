"""Training data for the body surrogate: owjax's own body (:class:`owjax.body.RodBody`) run batched.

:func:`generate_dataset` writes HDF5 shards of (activation, trajectory, generating parameters) into a
folder, ``shard_NNNNN.h5`` for the train/validation/test samples and ``ood_NNNNN.h5`` for the
out-of-distribution set. A shard is written atomically (temporary file + rename), so a killed run
leaves only complete shards, and running the same command again skips them (resume). The settings
are kept in ``dataset.json``; a folder that holds another dataset is refused.

Layout of a shard (``n`` samples, ``T`` times; float32 unless said):

==========================  ===================  ==========================================================
dataset                     shape                meaning
==========================  ===================  ==========================================================
``t_s``                     (T,)                 sample times (s), float64
``activation``              (n, T, 2, 24)        muscle activation in [0, 1] (dorsal, ventral; head first)
``centroid_mm``             (n, T, 2)            centroid displacement from the start (mm)
``tangent_angle_rad``       (n, T, 48)           tangent angle of each segment, head → tail (rad),
                                                 continuous along the body and in time; 0 at the start
``medium``                  (n,)                 BBC medium number (0 water … 1 agar)
``family`` / ``index``      (n,)                 family number (attrs ``families``) / sample number
``split``                   (n,)                 0 train, 1 validation, 2 test, 3 OOD
``params``                  (n, P)               generating parameters (attrs ``param_names``; NaN = n/a)
``ok`` / ``solver_steps``   (n,)                 the physics solve succeeded / its accepted steps
==========================  ===================  ==========================================================

The split of a sample is a fixed function of (seed, index): it never depends on the chunking.
The body's medium is set per sample through its drag coefficients (linear in m, as
:func:`owjax.body.media.interpolated`), so one compiled, vmapped solve serves every medium.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from owjax.body import geometry as geo
from owjax.body.circuit import ActivationToBody, BBCCircuit, BodyToStretchReceptors
from owjax.body.drive import RecordedActivation
from owjax.body.integrate import BodySolver, solve_component
from owjax.body.mechanics import RodBody
from owjax.body.media import per_rod_drag
from owjax.core.component import Composite
from owjax.core.sharding import sharded_vmap
from owjax.surrogate import families as F

__all__ = ["DatasetSpec", "SIZES", "generate_dataset", "load_dataset", "skeleton_features", "skeleton_from_features",
           "PhysicsRunner", "DatasetMismatchError", "nominal_pool", "generation_cost", "dataset_complete"]

SPLITS = {"train": 0, "val": 1, "test": 2, "ood": 3}
_RUNNERS: dict = {}


class DatasetMismatchError(RuntimeError):
    """The output folder holds a dataset generated with other settings."""


@dataclass(frozen=True)
class DatasetSpec:
    """What to generate.

    Attributes:
        counts: samples per family (:data:`owjax.surrogate.families.FAMILIES`), split 80/10/10.
        ood_counts: samples per OOD family (:data:`owjax.surrogate.families.OOD_FAMILIES`).
        duration_s: simulated time per sample (s).
        dt_s: output (and activation sample) interval (s).
        seed: the seed every sample's parameters and split derive from.
        shard_size: samples per shard (= per vmapped batch).
        rtol, atol: body solver tolerances (Tsit5, PID; mm, rad).
        dtype: ``float64`` (default; water needs it, see owjax.body.integrate) or ``float32``.
    """

    counts: dict = field(default_factory=lambda: {"nominal": 32, "perturbed": 160, "wave": 800, "single": 160,
                                                  "smooth": 400})
    ood_counts: dict = field(default_factory=lambda: {"ood_fast": 40, "ood_amplitude": 40, "ood_wavelength": 40,
                                                      "ood_mixture": 40, "ood_reversal": 40})
    duration_s: float = 5.0
    dt_s: float = 0.02
    seed: int = 0
    shard_size: int = 16
    rtol: float = 1e-5
    atol: float = 1e-5
    dtype: str = "float64"

    def check(self) -> None:
        for name, counts, allowed in (("counts", self.counts, F.FAMILIES), ("ood_counts", self.ood_counts,
                                                                            F.OOD_FAMILIES)):
            bad = sorted(set(counts) - set(allowed))
            if bad:
                raise ValueError(f"{name}: unknown famil(ies) {bad}; allowed: {list(allowed)}")
            for k, v in counts.items():
                if int(v) != v or v < 0:
                    raise ValueError(f"{name}.{k} must be a non-negative integer, got {v!r}")
        if self.counts.get("perturbed", 0) and not self.counts.get("nominal", 0):
            raise ValueError("counts.perturbed > 0 needs counts.nominal > 0 (perturbed samples scale nominal ones)")
        if not (self.duration_s > 0 and 0 < self.dt_s <= self.duration_s / 8):
            raise ValueError(f"need duration_s > 0 and 0 < dt_s <= duration_s/8, got {self.duration_s}, {self.dt_s}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")


#: named dataset sizes (``python -m owjax.surrogate.generate --size NAME``)
SIZES = {
    "ci": dict(counts={"nominal": 0, "perturbed": 0, "wave": 40, "single": 8, "smooth": 16},
               ood_counts={"ood_fast": 2, "ood_amplitude": 2, "ood_wavelength": 2, "ood_mixture": 2, "ood_reversal": 2},
               shard_size=16),
    "full": {},
}


# ----------------------------------------------------------------------------- skeleton features
def skeleton_features(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centroid displacement (T, 2) mm, tangent angles (T, 48) rad) from a skeleton (T, 49) each.

    Angles are continuous along the body and in time (the head segment's angle is unwrapped in time
    and every frame follows it), relative to the first frame's straight body (angle 0 = +x)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    c = np.stack([x.mean(-1), y.mean(-1)], -1)
    c = c - c[..., :1, :]
    th = np.unwrap(np.arctan2(np.diff(y, axis=-1), np.diff(x, axis=-1)), axis=-1)
    head = np.unwrap(th[..., 0], axis=-1)
    th = th - th[..., :1] + head[..., None]
    return c, th


def skeleton_from_features(centroid: np.ndarray, angles: np.ndarray, x0: float = 0.5,
                           segment_length_mm: float = geo.SEGMENT_LENGTH_MM) -> tuple[np.ndarray, np.ndarray]:
    """A skeleton (…, T, 49) x and y (mm) with the given centroid displacement and tangent angles (rad),
    assuming inextensible segments of ``segment_length_mm``; the start centroid is (x0, 0)."""
    a = np.asarray(angles, np.float64)
    dx = segment_length_mm * np.cos(a)
    dy = segment_length_mm * np.sin(a)
    zeros = np.zeros(a.shape[:-1] + (1,))
    px = np.concatenate([zeros, np.cumsum(dx, -1)], -1)
    py = np.concatenate([zeros, np.cumsum(dy, -1)], -1)
    cx = np.asarray(centroid)[..., 0:1] + x0
    cy = np.asarray(centroid)[..., 1:2]
    return px - px.mean(-1, keepdims=True) + cx, py - py.mean(-1, keepdims=True) + cy


# ----------------------------------------------------------------------------- physics
class PhysicsRunner:
    """The body driven by recorded activations, vmapped over samples (and sharded over devices).

    Arguments:
        duration_s, dt_s: run length and output/activation interval (s).
        solver: :class:`owjax.body.BodySolver`.
        dtype: ``jnp.float32`` or ``jnp.float64`` (the caller sets JAX's precision).
        devices: JAX devices to shard the batch axis over (default: all local devices), by
            :func:`owjax.core.sharding.sharded_vmap` (one device: the same code, no padding).
        batch_size: smaller batches are padded to this size (one compilation for every batch).
    """

    def __init__(self, duration_s: float, dt_s: float, solver: BodySolver, dtype, devices=None,
                 batch_size: int | None = None):
        self.batch_size = batch_size
        self.t = F.time_grid(duration_s, dt_s)
        self.dtype = dtype
        self.solver = solver
        self.devices = list(devices) if devices is not None else jax.local_devices()
        body = RodBody("agar", dtype=dtype)
        t_out = jnp.asarray(self.t, dtype)
        template = RecordedActivation(self.t, np.zeros((self.t.size, 2, F.N_MUSCLE_SEGMENTS)), dtype=dtype)

        def one(values, medium):
            cp, cq = per_rod_drag(medium, dtype)
            b = eqx.tree_at(lambda m: (m.c_par, m.c_perp), body, (cp, cq))
            drv = eqx.tree_at(lambda d: d.values, template, jnp.repeat(values, 2, axis=-1))
            comp = Composite({"drive": drv, "body": b}, [ActivationToBody(source="drive")])
            ys, steps, _, result = solve_component(comp, t_out, comp.initial_state(), solver)
            return ys["body"]["x"], ys["body"]["y"], steps, result == dfx.RESULTS.successful

        self._batched = sharded_vmap(one, devices=self.devices)  # jit(vmap(one)) split over the devices

    @classmethod
    def cached(cls, duration_s: float, dt_s: float, solver: BodySolver, dtype, batch_size: int | None = None
               ) -> PhysicsRunner:
        """A runner shared by calls with the same settings (so its compiled solve is reused); the two
        most recent settings are kept."""
        key = (round(float(duration_s), 9), round(float(dt_s), 12), solver, jnp.dtype(dtype).name, batch_size,
               tuple(str(d) for d in jax.local_devices()))
        if key not in _RUNNERS:
            while len(_RUNNERS) >= 2:
                _RUNNERS.pop(next(iter(_RUNNERS)))
            _RUNNERS[key] = cls(duration_s, dt_s, solver, dtype, batch_size=batch_size)
        return _RUNNERS[key]

    def __call__(self, activation: np.ndarray, medium: np.ndarray) -> dict:
        """Run a batch: activation (B, T, 2, 24) in [0, 1], medium (B,) in [0, 1].

        Returns:
            ``centroid_mm`` (B, T, 2), ``tangent_angle_rad`` (B, T, 48), ``x_mm``/``y_mm`` (B, T, 49),
            ``solver_steps`` (B,), ``ok`` (B,) (solver succeeded and the output is finite).
        """
        a = np.asarray(activation, np.float64)
        m = np.asarray(medium, np.float64)
        if a.ndim != 4 or a.shape[1:] != (self.t.size, 2, F.N_MUSCLE_SEGMENTS):
            raise ValueError(f"activation must have shape (B, {self.t.size}, 2, {F.N_MUSCLE_SEGMENTS}), got {a.shape}")
        if m.shape != (a.shape[0],):
            raise ValueError(f"medium must have shape ({a.shape[0]},), got {m.shape}")
        b = a.shape[0]
        pad = max(b, self.batch_size or 0) - b  # a fixed batch size compiles once
        if pad:
            a = np.concatenate([a, np.repeat(a[-1:], pad, 0)], 0)
            m = np.concatenate([m, np.repeat(m[-1:], pad, 0)], 0)
        # sharded_vmap pads further to a multiple of the device count and drops that padding again
        x, y, steps, ok = self._batched(jnp.asarray(a, self.dtype), jnp.asarray(m, self.dtype))
        x, y = np.asarray(x)[:b], np.asarray(y)[:b]
        c, th = skeleton_features(x, y)
        ok = np.asarray(ok)[:b] & np.all(np.isfinite(th), axis=(1, 2)) & np.all(np.isfinite(c), axis=(1, 2))
        return {"centroid_mm": c, "tangent_angle_rad": th, "x_mm": x, "y_mm": y,
                "solver_steps": np.asarray(steps)[:b], "ok": ok}


def nominal_pool(n: int, spec: DatasetSpec, dtype, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The BBC loop's own activations: ``n`` closed-loop runs (medium and AVB drive from
    :func:`owjax.surrogate.families.draw_params`), pooled to (n, T, 2, 24); returns (activation, params)."""
    t = F.time_grid(spec.duration_s, spec.dt_s)
    params = np.array([[F.draw_params("nominal", spec.seed, i)[k] for k in F.PARAM_NAMES] for i in range(n)])
    if n == 0:
        return np.zeros((0, t.size, 2, F.N_MUSCLE_SEGMENTS)), params.reshape(0, len(F.PARAM_NAMES))
    solver = BodySolver(rtol=spec.rtol, atol=spec.atol)
    body = RodBody("agar", dtype=dtype)
    circuit = BBCCircuit(dtype=dtype)
    t_out = jnp.asarray(t, dtype)

    def one(medium, avb):
        cp, cq = per_rod_drag(medium, dtype)
        b = eqx.tree_at(lambda m: (m.c_par, m.c_perp), body, (cp, cq))
        c = eqx.tree_at(lambda m: m.avb_current, circuit, jnp.asarray(avb, dtype))
        comp = Composite({"circuit": c, "body": b}, [BodyToStretchReceptors(), ActivationToBody()])
        ys, *_ = solve_component(comp, t_out, comp.initial_state(), solver)
        return jnp.maximum(ys["circuit"]["muscle"], 0.0)

    run = jax.jit(jax.vmap(one))
    i_m, i_a = F.PARAM_NAMES.index("medium"), F.PARAM_NAMES.index("avb_current")
    out = []
    step = max(1, spec.shard_size)
    from tqdm.auto import tqdm

    for s in tqdm(range(0, n, step), desc="nominal BBC loop runs", disable=not progress):
        p = params[s:s + step]
        out.append(np.asarray(run(jnp.asarray(p[:, i_m], dtype), jnp.asarray(p[:, i_a], dtype))))
    act = F.pool_segments(np.concatenate(out, 0))
    return np.clip(act, 0.0, 1.0), params


# ----------------------------------------------------------------------------- the dataset
def _plan(spec: DatasetSpec, ood: bool) -> list[tuple[str, int, int]]:
    """(family, index within family, global index) for every sample of the main or OOD set."""
    counts = spec.ood_counts if ood else spec.counts
    order = F.OOD_FAMILIES if ood else F.FAMILIES
    out, g = [], 0
    for fam in order:
        for i in range(int(counts.get(fam, 0))):
            out.append((fam, i, g))
            g += 1
    return out


def _split_of(seed: int, index: int) -> int:
    u = np.random.default_rng([int(seed), 7919, int(index)]).uniform()
    return 0 if u < 0.8 else 1 if u < 0.9 else 2


def _git_commit() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    except Exception:  # pragma: no cover
        return "unknown"


def _write_shard(path: Path, arrays: dict, attrs: dict) -> None:
    import h5py

    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as h:
        for k, v in arrays.items():
            v = np.asarray(v)
            kw = {"compression": "gzip", "compression_opts": 4} if v.ndim >= 3 else {}
            h.create_dataset(k, data=v, **kw)
        for k, v in attrs.items():
            h.attrs[k] = v
        h.attrs["complete"] = True
    os.replace(tmp, path)


def _shard_complete(path: Path) -> bool:
    import h5py

    if not path.exists():
        return False
    try:
        with h5py.File(path, "r") as h:
            return bool(h.attrs.get("complete", False))
    except OSError:
        return False


def generate_dataset(out_dir: str | Path, spec: DatasetSpec | None = None, progress: bool = True,
                     devices=None, max_shards: int | None = None, workers: int = 1,
                     physics_batch: int | None = None) -> dict:
    """Generate (or finish) the dataset of ``spec`` in ``out_dir``; returns a summary dict.

    Arguments:
        out_dir: folder for ``dataset.json``, ``nominal_pool.npz`` and the shards (created).
        spec: :class:`DatasetSpec` (default: the full size).
        progress: tqdm progress bar over samples.
        devices: devices the batch axis is sharded over (default: all local devices; ``workers=1`` only).
        max_shards: stop after writing this many new shards (per worker; tests use it to simulate an
            interruption).
        workers: worker processes, each pinned to its own core and writing every ``workers``-th shard
            (at most the cores this process may use). An unbatched solve of the body runs on one core,
            so one process per core is how the generator uses a machine: on this project's 2-core CPU,
            two workers solving one sample at a time generated a full seed (1 752 samples) in 87 s
            against 183 s for one process solving vmapped shards of 16 (2026-12-07, idle).
        physics_batch: samples per physics solve within a shard (vmapped; ``None``: the whole shard with
            one worker, as before 2026-12-07, and 1 with several). A vmapped adaptive solve takes as
            many steps as its slowest member and rounds differently: the two modes agree within the
            solver's tolerance (≈ 2e-3 mm, 6e-3 rad over 5 s at rtol = atol = 1e-5), not bit for bit;
            each shard records its ``physics_batch``.

    Returns:
        ``{"n_samples", "n_ood", "shards_written", "shards_skipped", "wall_s", "cpu_s",
        "wall_s_per_sample", "cpu_s_per_sample", "failed", "workers", "physics_batch"}`` (costs of this
        call's new shards; ``cpu_s`` includes the workers').

    Raises:
        DatasetMismatchError: ``out_dir`` holds a dataset of other settings.
        owjax.core.precision.PrecisionError: float64 asked for while JAX runs in 32-bit mode.
        ValueError: ``workers`` or ``physics_batch`` out of range.
        RuntimeError: a worker process failed (the shards it finished stay; run again to resume).
    """
    from owjax.core.checkpoint import atomic_write_json
    from owjax.core.precision import require_dtype

    spec = spec or DatasetSpec()
    spec.check()
    dtype = require_dtype(spec.dtype, "surrogate data generation")
    from owjax.surrogate.throughput import available_cores

    cores = available_cores()
    if int(workers) != workers or not 1 <= workers <= len(cores):
        raise ValueError(f"workers must be between 1 and the {len(cores)} core(s) this process may use, got {workers!r}")
    if devices is not None and workers != 1:
        raise ValueError("devices= shards one process's batches over JAX devices; with workers > 1 each worker "
                         "uses its own core's device (pass one or the other)")
    if physics_batch is None:
        physics_batch = spec.shard_size if workers == 1 else 1
    if int(physics_batch) != physics_batch or not 1 <= physics_batch <= spec.shard_size:
        raise ValueError(f"physics_batch must be between 1 and the shard size {spec.shard_size}, got {physics_batch!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "dataset.json"
    settings = asdict(spec)
    if manifest.exists():
        old = json.loads(manifest.read_text()).get("spec")
        if old != json.loads(json.dumps(settings)):
            raise DatasetMismatchError(f"{out} holds a dataset generated with other settings:\n  there: {old}\n  "
                                       f"now:   {settings}\nuse another folder or delete it")
    else:
        atomic_write_json(manifest, {"spec": settings, "families": list(F.FAMILIES + F.OOD_FAMILIES),
                                     "param_names": list(F.PARAM_NAMES), "git_commit": _git_commit(),
                                     "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "splits": SPLITS,
                                     "layout": "see owjax/surrogate/data.py"})
    wall0, cpu0 = time.perf_counter(), time.process_time()
    # the BBC loop's activations (nominal family and the bases of the perturbed one)
    n_nom = int(spec.counts.get("nominal", 0))
    pool_file = out / "nominal_pool.npz"
    if not pool_file.exists():
        pool, pool_params = nominal_pool(n_nom, spec, dtype, progress)
        tmp = out / "nominal_pool.tmp.npz"
        np.savez_compressed(tmp, activation=pool, params=pool_params)
        os.replace(tmp, pool_file)
    if workers == 1:
        counts = _generate_shards(out, spec, dtype, physics_batch, devices, max_shards, 0, 1, progress)
        extra_cpu = 0.0
    else:
        counts, extra_cpu = _generate_in_workers(out, spec, physics_batch, max_shards, cores[:workers], progress)
    return _summary(spec, *counts, wall0, cpu0, out=out, extra_cpu_s=extra_cpu, workers=workers,
                    physics_batch=physics_batch)


def _generate_shards(out: Path, spec: DatasetSpec, dtype, physics_batch: int, devices, max_shards, worker: int,
                     workers: int, progress, report=None) -> tuple[int, int, int, int, bool]:
    """Write this worker's missing shards (every ``workers``-th, from ``worker``); returns (written,
    skipped, failed samples, new samples, interrupted). ``report(n)`` is called after each shard."""
    from tqdm.auto import tqdm

    t = F.time_grid(spec.duration_s, spec.dt_s)
    n_nom = int(spec.counts.get("nominal", 0))
    with np.load(out / "nominal_pool.npz") as z:
        pool = z["activation"]
    solver = BodySolver(rtol=spec.rtol, atol=spec.atol)
    if devices is None:
        runner = PhysicsRunner.cached(spec.duration_s, spec.dt_s, solver, dtype, batch_size=physics_batch)
    else:
        runner = PhysicsRunner(spec.duration_s, spec.dt_s, solver, dtype, devices, batch_size=physics_batch)
    fam_all = list(F.FAMILIES + F.OOD_FAMILIES)
    written = skipped = failed = n_new = 0
    for ood in (False, True):
        shards = _shards_of(spec, ood)
        bar = tqdm(total=sum(len(items) for items in shards[worker::workers]), desc=f"{'OOD' if ood else 'train/val/test'} samples", disable=not progress)
        for k, items in enumerate(shards):
            if k % workers != worker:
                continue
            path = _shard_path(out, ood, k)
            if _shard_complete(path):
                skipped += 1
                bar.update(len(items))
                continue
            if max_shards is not None and written >= max_shards:
                bar.close()
                return written, skipped, failed, n_new, True
            acts, params, fams, idx, splits = [], [], [], [], []
            for fam, i, g in items:
                p = F.draw_params(fam, spec.seed, i, n_nominal=n_nom)
                acts.append(pool[i] if fam == "nominal" else F.make_activation(fam, p, t, pool))
                params.append([p[n] for n in F.PARAM_NAMES])
                fams.append(fam_all.index(fam))
                idx.append(g)
                splits.append(3 if ood else _split_of(spec.seed, g))
            acts = np.stack(acts)
            params = np.asarray(params)
            medium = params[:, F.PARAM_NAMES.index("medium")]
            parts = [runner(acts[i:i + physics_batch], medium[i:i + physics_batch])
                     for i in range(0, len(acts), physics_batch)]
            res = {key: np.concatenate([r[key] for r in parts]) for key in ("centroid_mm", "tangent_angle_rad", "ok",
                                                                           "solver_steps")}
            failed += int(np.sum(~res["ok"]))
            _write_shard(path, {"t_s": t, "activation": acts.astype(np.float32),
                                "centroid_mm": res["centroid_mm"].astype(np.float32),
                                "tangent_angle_rad": res["tangent_angle_rad"].astype(np.float32),
                                "medium": params[:, 0], "family": np.asarray(fams, np.int16),
                                "index": np.asarray(idx, np.int64), "split": np.asarray(splits, np.int8),
                                "params": params, "ok": res["ok"], "solver_steps": res["solver_steps"]},
                         {"families": fam_all, "param_names": list(F.PARAM_NAMES), "seed": spec.seed,
                          "dt_s": spec.dt_s, "duration_s": spec.duration_s, "dtype": spec.dtype,
                          "solver": f"tsit5 rtol={spec.rtol} atol={spec.atol}", "physics_batch": int(physics_batch)})
            written += 1
            n_new += len(items)
            bar.update(len(items))
            if report is not None:
                report(len(items))
        bar.close()
    return written, skipped, failed, n_new, False


def _generation_worker(out: str, spec: dict, dtype_name: str, physics_batch: int, max_shards, core: int, worker: int,
                       workers: int, queue) -> None:
    """One pinned generator process (``spawn``): its share of the shards, progress and result on ``queue``."""
    try:
        jax.config.update("jax_platforms", "cpu")  # one process per CPU core, even where a GPU is installed
        from owjax.core.precision import set_precision

        set_precision(dtype_name)
        cpu0 = time.process_time()
        counts = _generate_shards(Path(out), DatasetSpec(**spec), jnp.float64 if dtype_name == "float64" else jnp.float32,
                                  physics_batch, None, max_shards, worker, workers, False,
                                  report=lambda n: queue.put(("shard", worker, n)))
        queue.put(("done", worker, (counts, time.process_time() - cpu0)))
    except BaseException as e:
        queue.put(("error", worker, f"{type(e).__name__}: {e}"))


def _generate_in_workers(out: Path, spec: DatasetSpec, physics_batch: int, max_shards, cores: list[int],
                         progress: bool) -> tuple[tuple, float]:
    """Run :func:`_generation_worker` on each core; returns the summed counts and the workers' CPU seconds."""
    import multiprocessing as mp
    import queue as queue_mod

    from tqdm.auto import tqdm

    n = len(cores)
    total = sum(len(_plan(spec, ood)) for ood in (False, True))
    done_before = sum(len(items) for ood in (False, True)
                      for k, items in enumerate(_shards_of(spec, ood)) if _shard_complete(_shard_path(out, ood, k)))
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_generation_worker, args=(str(out), asdict(spec), spec.dtype, physics_batch, max_shards,
                                                          core, i, n, q), daemon=True) for i, core in enumerate(cores)]
    from owjax.surrogate.throughput import start_pinned

    for p, core in zip(procs, cores):  # pinned from its start: every thread it starts inherits the core
        start_pinned(p, core)
    bar = tqdm(total=total, initial=done_before, desc=f"samples ({n} workers)", disable=not progress)
    results, errors = {}, []
    try:
        while len(results) < n and not errors:  # the first error stops every worker
            try:
                kind, worker, payload = q.get(timeout=5.0)
            except queue_mod.Empty:
                dead = [i for i, p in enumerate(procs) if p.exitcode is not None and i not in results]
                if dead and q.empty():
                    errors += [f"worker {i} (core {cores[i]}) died (exit code {procs[i].exitcode})" for i in dead]
                continue
            if kind == "shard":
                bar.update(payload)
            elif kind == "done":
                results[worker] = payload
            else:
                errors.append(f"worker {worker} (core {cores[worker]}): {payload}")
    finally:
        bar.close()
        if errors or len(results) < n:
            for p in procs:
                p.terminate()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    if errors:
        raise RuntimeError("surrogate data generation failed (finished shards are kept; run again to resume): "
                           + "; ".join(errors))
    counts = [r[0] for r in results.values()]
    summed = tuple(sum(c[i] for c in counts) for i in range(4)) + (any(c[4] for c in counts),)
    return summed, float(sum(r[1] for r in results.values()))


def _shards_of(spec: DatasetSpec, ood: bool) -> list:
    """The planned (family, index, global index) items of each shard, in shard order."""
    plan = _plan(spec, ood)
    return [plan[i:i + spec.shard_size] for i in range(0, len(plan), spec.shard_size)]


def _shard_path(out: Path, ood: bool, k: int) -> Path:
    return Path(out) / f"{'ood' if ood else 'shard'}_{k:05d}.h5"


def _summary(spec, written, skipped, failed, n_new, interrupted, wall0, cpu0, out=None, extra_cpu_s=0.0, workers=1,
             physics_batch=None) -> dict:
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0 + extra_cpu_s
    s = {"n_samples": int(sum(spec.counts.values())), "n_ood": int(sum(spec.ood_counts.values())),
            "shards_written": written, "shards_skipped": skipped, "failed": failed, "new_samples": n_new,
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "wall_s_per_sample": round(wall / n_new, 4) if n_new else None,
            "cpu_s_per_sample": round(cpu / n_new, 4) if n_new else None, "interrupted": interrupted,
            "devices": [str(d) for d in jax.local_devices()], "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "load_average": list(os.getloadavg()), "workers": int(workers),
            "physics_batch": None if physics_batch is None else int(physics_batch)}
    if out is not None and (written or interrupted):  # the cost of every call, for the record
        with open(Path(out) / "generation.jsonl", "a") as f:
            f.write(json.dumps(s) + "\n")
    return s


def generation_cost(data_dir: str | Path) -> dict:
    """Total samples generated, wall and CPU seconds over all generation calls of a dataset folder."""
    p = Path(data_dir) / "generation.jsonl"
    rows = [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.exists() else []
    n = sum(r["new_samples"] for r in rows)
    wall, cpu = sum(r["wall_s"] for r in rows), sum(r["cpu_s"] for r in rows)
    return {"calls": len(rows), "samples": n, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "wall_s_per_sample": round(wall / n, 4) if n else None, "cpu_s_per_sample": round(cpu / n, 4) if n else None}


def dataset_complete(data_dir: str | Path) -> bool:
    """True when ``data_dir`` holds every shard its ``dataset.json`` plans."""
    d = Path(data_dir)
    if not (d / "dataset.json").exists():
        return False
    spec = DatasetSpec(**json.loads((d / "dataset.json").read_text())["spec"])
    return all(_shard_complete(_shard_path(d, ood, k)) for ood in (False, True)
               for k in range(len(_shards_of(spec, ood))))


def load_dataset(data_dir: str | Path, split: str | None = None) -> dict:
    """All samples of ``data_dir`` (or of one ``split``: train, val, test, ood) as NumPy arrays.

    Returns:
        dict with the shard datasets concatenated (``activation`` …, ``t_s``), plus
        ``families`` and ``param_names``; samples whose solve failed (``ok`` false) are left out.

    Raises:
        FileNotFoundError: no dataset there. ValueError: unknown split.
    """
    import h5py

    d = Path(data_dir)
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {list(SPLITS)}")
    files = sorted(d.glob("ood_*.h5" if split == "ood" else "shard_*.h5")) if split else sorted(d.glob("*_*.h5"))
    files = [f for f in files if not f.name.endswith(".tmp") and _shard_complete(f)]
    if not files:
        raise FileNotFoundError(f"no dataset shards in {str(d)!r} (generate them: python -m owjax.surrogate.generate "
                                f"--out {d})")
    parts: dict[str, list] = {}
    meta = {}
    for f in files:
        with h5py.File(f, "r") as h:
            meta = {"families": list(h.attrs["families"]), "param_names": list(h.attrs["param_names"]),
                    "t_s": h["t_s"][...], "dt_s": float(h.attrs["dt_s"])}
            keep = h["ok"][...]
            if split is not None:
                keep = keep & (h["split"][...] == SPLITS[split])
            for k in h.keys():
                if k == "t_s":
                    continue
                parts.setdefault(k, []).append(h[k][...][keep])
    out = {k: np.concatenate(v, 0) for k, v in parts.items()}
    out.update(meta)
    return out

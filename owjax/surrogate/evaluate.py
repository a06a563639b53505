"""Errors of the surrogate against the physics: trajectory (body lengths), posture, and the tier-3
gait metrics (speed, frequency, wavelength) computed identically on both.

Both trajectories are turned into skeletons by :func:`owjax.surrogate.data.skeleton_from_features`
(inextensible segments from the centroid and the 48 tangent angles) and measured with
:func:`owjax.body.metrics.locomotion_summary` after a 1-s transient, so the comparison sees only the
surrogate's error, not the representation's.
"""

from __future__ import annotations

import json

import equinox as eqx
import jax
import numpy as np

from owjax.body import metrics as M
from owjax.body.geometry import BODY_LENGTH_MM
from owjax.surrogate.data import skeleton_from_features

__all__ = ["predict_batch", "latent_batch", "physics_seconds_per_sample", "trajectory_errors", "gait_metrics", "compare", "GAIT_SPEED_FLOOR_MM_S",
           "evaluation_sets",
           "evaluate_surrogate", "EVAL_SEED", "EVAL_COUNTS", "EVAL_OOD_COUNTS"]

#: relative speed errors are taken only where the physics moves faster than this (mm/s)
GAIT_SPEED_FLOOR_MM_S = 0.02


@eqx.filter_jit
def _predict(model, t, act, medium):
    return jax.vmap(model, in_axes=(None, 0, 0))(t, act, medium)


def _on_grid(model, t_s):
    """``model`` with its operator stride for the grid ``t_s`` (at least 2 points; else unchanged)."""
    t = np.asarray(t_s, np.float64)
    return model.on_grid(float(t[1] - t[0])) if t.size > 1 else model


def predict_batch(model, t_s: np.ndarray, activation: np.ndarray, medium: np.ndarray,
                  batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (B, T, 2) mm and tangent angles (B, T, 48) rad from a :class:`~owjax.surrogate.fno.BodyFNO`
    (its operator at its own time step where it has one: :meth:`~owjax.surrogate.fno.BodyFNO.on_grid`)."""
    import jax.numpy as jnp

    model = _on_grid(model, t_s)
    t = jnp.asarray(t_s, jnp.float32)
    cs, ths = [], []
    for s in range(0, activation.shape[0], batch_size):
        a = jnp.asarray(activation[s:s + batch_size], jnp.float32)
        m = jnp.asarray(medium[s:s + batch_size], jnp.float32)
        c, th = _predict(model, t, a, m)
        cs.append(np.asarray(c))
        ths.append(np.asarray(th))
    return np.concatenate(cs, 0), np.concatenate(ths, 0)


@eqx.filter_jit
def _latent(model, t, act, medium):
    return jax.vmap(model.latent, in_axes=(None, 0, 0))(t, act, medium)


def latent_batch(model, t_s: np.ndarray, activation: np.ndarray, medium: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """:meth:`~owjax.surrogate.fno.BodyFNO.latent` of each input (B, 2·width)."""
    import jax.numpy as jnp

    model = _on_grid(model, t_s)
    t = jnp.asarray(t_s, jnp.float32)
    out = [np.asarray(_latent(model, t, jnp.asarray(activation[s:s + batch_size], jnp.float32),
                              jnp.asarray(medium[s:s + batch_size], jnp.float32)))
           for s in range(0, activation.shape[0], batch_size)]
    return np.concatenate(out, 0)


def trajectory_errors(c_pred, th_pred, c_true, th_true) -> dict[str, np.ndarray]:
    """Per sample: centroid RMSE over time in body lengths, posture RMSE (rad), final-position error (L)."""
    d = np.linalg.norm(np.asarray(c_pred) - np.asarray(c_true), axis=-1)
    return {"traj_rmse_body_lengths": np.sqrt(np.mean(d**2, -1)) / BODY_LENGTH_MM,
            "final_position_error_body_lengths": d[:, -1] / BODY_LENGTH_MM,
            "posture_rmse_rad": np.sqrt(np.mean((np.asarray(th_pred) - np.asarray(th_true)) ** 2, axis=(-1, -2)))}


def gait_metrics(t_s: np.ndarray, centroid: np.ndarray, angles: np.ndarray, transient_s: float = 1.0) -> dict:
    """Per sample speed (mm/s, signed), undulation frequency (Hz) and wavelength (body lengths)."""
    x, y = skeleton_from_features(centroid, angles)
    out = {"speed_mm_s": [], "frequency_hz": [], "wavelength_body_lengths": []}
    for i in range(x.shape[0]):
        with np.errstate(all="ignore"):
            s = M.locomotion_summary(t_s, x[i], y[i], None, transient_s=transient_s)
        for k in out:
            out[k].append(s[k])
    return {k: np.asarray(v, float) for k, v in out.items()}


def _rel(pred, true, floor):
    return np.abs(pred - true) / np.maximum(np.abs(true), floor)


def _stats(v: np.ndarray, prefix: str) -> dict:
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {f"{prefix}": None, f"{prefix}_median": None, f"{prefix}_p90": None, f"{prefix}_n": 0}
    return {f"{prefix}": float(np.mean(v)), f"{prefix}_median": float(np.median(v)),
            f"{prefix}_p90": float(np.quantile(v, 0.9)), f"{prefix}_n": int(v.size)}


def compare(t_s, c_pred, th_pred, c_true, th_true, families=None, gait_mask=None) -> dict:
    """Aggregate errors of one set: means (and medians, 90th percentiles) of the trajectory RMSE (L),
    posture RMSE (rad), and — over ``gait_mask`` samples where the physics moves (> 0.02 mm/s) and has
    a wave — relative speed, frequency and wavelength errors. Also per-sample arrays under ``_per_sample``."""
    e = trajectory_errors(c_pred, th_pred, c_true, th_true)
    gp = gait_metrics(t_s, c_pred, th_pred)
    gt = gait_metrics(t_s, c_true, th_true)
    mask = np.ones(len(c_true), bool) if gait_mask is None else np.asarray(gait_mask, bool)
    moving = mask & (np.abs(gt["speed_mm_s"]) > GAIT_SPEED_FLOOR_MM_S) & np.isfinite(gt["wavelength_body_lengths"])
    out = {"n": int(len(c_true))}
    out.update(_stats(e["traj_rmse_body_lengths"], "traj_rmse_body_lengths"))
    out.update(_stats(e["posture_rmse_rad"], "posture_rmse_rad"))
    out.update(_stats(e["final_position_error_body_lengths"], "final_position_error_body_lengths"))
    rs = _rel(gp["speed_mm_s"], gt["speed_mm_s"], GAIT_SPEED_FLOOR_MM_S)
    rf = _rel(gp["frequency_hz"], gt["frequency_hz"], 1e-6)
    rw = _rel(gp["wavelength_body_lengths"], gt["wavelength_body_lengths"], 1e-6)
    out.update(_stats(rs[moving], "speed_rel_err"))
    out.update(_stats(rf[moving], "frequency_rel_err"))
    out.update(_stats(rw[moving], "wavelength_rel_err"))
    if families is not None:
        fam = np.asarray(families)
        out["per_family_traj_rmse_body_lengths"] = {str(f): float(np.mean(e["traj_rmse_body_lengths"][fam == f]))
                                                    for f in np.unique(fam)}
    out["_per_sample"] = {**e, "speed_rel_err": np.where(moving, rs, np.nan),
                          "wavelength_rel_err": np.where(moving, rw, np.nan)}
    return out


# ----------------------------------------------------------------------------- python -m owjax.surrogate evaluate
#: default size of the fresh evaluation set: a tenth of the full dataset's families (what its test split
#: holds) and the full dataset's OOD set
EVAL_COUNTS = {"nominal": 3, "perturbed": 16, "wave": 80, "single": 16, "smooth": 40}
EVAL_OOD_COUNTS = {"ood_fast": 40, "ood_amplitude": 40, "ood_wavelength": 40, "ood_mixture": 40, "ood_reversal": 40}
#: the seeds of the shipped model's training data (python -m owjax.surrogate.generate --seed N; 0 … 14),
#: never an evaluation seed
TRAINING_SEEDS = range(15)
EVAL_SEED = 1000
_GAIT = ("nominal", "perturbed", "wave", "ood_fast", "ood_amplitude", "ood_wavelength", "ood_mixture")


def evaluation_sets(data_dir) -> dict[str, dict]:
    """The test and OOD sets of a fresh evaluation dataset (``python -m owjax.surrogate evaluate``'s data):
    ``{"test": every train/validation/test sample, "ood": the OOD samples}`` — its seed is no training
    seed, so all its non-OOD splits are fresh."""
    from owjax.surrogate.data import load_dataset

    every = load_dataset(data_dir)
    keep = every["split"] < 3
    return {"test": {k: (v[keep] if isinstance(v, np.ndarray) and k != "t_s" else v) for k, v in every.items()},
            "ood": load_dataset(data_dir, "ood")}


def _fallback(est: np.ndarray, err: np.ndarray, bound: float) -> dict:
    fb, bad = est > bound, err > bound
    tp = int(np.sum(fb & bad))
    return {"fallback_rate": float(np.mean(fb)), "true_exceed_rate": float(np.mean(bad)),
            "fallback_precision": tp / int(fb.sum()) if fb.any() else None,
            "fallback_recall": tp / int(bad.sum()) if bad.any() else None,
            "n": int(err.size), "n_exceed": int(bad.sum()), "n_fallback": int(fb.sum())}


def _time_best(fn, repeats: int = 3) -> float:
    import time

    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def physics_seconds_per_sample(runner, activation: np.ndarray, medium: np.ndarray, batch_sizes,
                               repeats: int = 3) -> tuple[dict, dict]:
    """Time the physics on the same inputs in batches of each size (each must divide their number).

    An adaptive solve vmapped over a batch takes as many steps as its slowest member, and a solve's
    cost depends on its input, so the batch sizes are compared on the same inputs (all of them).

    Arguments:
        runner: a :class:`~owjax.surrogate.data.PhysicsRunner` (or any callable (activation, medium)).
        activation, medium: the inputs, (N, T, 2, 24) and (N,).
        batch_sizes: the batch sizes tried.
        repeats: best of this many timings of the whole set.

    Returns:
        ``({batch: s per sample}, {batch: s of the first call, compilation included})``.
    """
    import time

    n = len(activation)
    bad = [b for b in batch_sizes if b < 1 or n % b]
    if bad:
        raise ValueError(f"batch sizes {bad} do not divide the {n} inputs")

    def run_all(b):
        for i in range(0, n, b):
            runner(activation[i:i + b], medium[i:i + b])

    per_sample, first = {}, {}
    for b in batch_sizes:
        t0 = time.perf_counter()
        runner(activation[:b], medium[:b])
        first[b] = time.perf_counter() - t0
        per_sample[b] = _time_best(lambda b=b: run_all(b), repeats) / n
    return per_sample, first


def evaluate_surrogate(out_dir, model_stem=None, seed: int = EVAL_SEED, scale: float = 1.0, data_dir=None,
                       progress: bool = True, record: bool = False, n_check: int = 8, ensemble: bool | None = None,
                       processes: int | None = None) -> dict:
    """Evaluate a surrogate on a fresh, seeded test and OOD set generated here with the physics.

    Arguments:
        out_dir: folder for ``metrics.json`` (and the data, in ``out_dir/data`` unless ``data_dir``).
        model_stem: surrogate ``STEM`` (``STEM.npz``/``.json``); None: the shipped one.
        seed: the data seed (not one of the training seeds 0-14, :data:`TRAINING_SEEDS`).
        scale: multiplies the sample counts (:data:`EVAL_COUNTS`, :data:`EVAL_OOD_COUNTS`; 1.0: 155 + 200).
        data_dir: where the data go (resumable; reused if complete).
        progress: progress bars.
        ensemble: the error estimate (fallback) also uses the model's ensemble members (None: if it
            has any; :meth:`~owjax.surrogate.component.BodySurrogate.load`).
        record: also write the per-sample errors of a small check set (the first ``n_check`` wave/single/
            smooth samples) into the model's JSON (``check``), which ``tests/test_surrogate.py`` reproduces.
        processes: the speed is also measured with this many worker processes, one per core, on each
            side (:mod:`owjax.surrogate.throughput`; None: every core; 0: one process only).

    Returns:
        The metrics (also written to ``out_dir/metrics.json``): ``traj_rmse_body_lengths`` (mean over the
        test set, fine grid, body lengths), ``speed_rel_err``, ``wavelength_rel_err``,
        ``ood_traj_rmse_body_lengths``, ``speedup_vs_physics`` (the machine's s per sample of the physics on
        the test set's first 16 inputs — the fastest of unbatched, batched, and one process per core — ÷
        that of the batched surrogate, in one process or one per core, whichever is faster, measured here;
        ``speedup_one_process_each``: both in one process, as measured before 2026-12-07), ``fallback_precision``, ``fallback_recall`` (over test ∪ OOD),
        and per-set details under ``sets``. These are ``backend="surrogate"``'s (the primary operator's);
        ``auto_mean`` (None without averaged members) holds the same for the mean of the primary and its
        averaged ensemble members, which ``backend="auto"`` returns where it keeps the surrogate, with
        the fallback judged against that mean's error.
    """
    import os
    import time
    from pathlib import Path

    import jax.numpy as jnp

    from owjax.body.integrate import BodySolver
    from owjax.core.checkpoint import atomic_write_json
    from owjax.core.precision import require_dtype
    from owjax.surrogate.component import SHIPPED, BodySurrogate, indicators
    from owjax.surrogate.data import DatasetSpec, PhysicsRunner, _git_commit, generate_dataset
    from owjax.surrogate.throughput import available_cores, per_core_seconds_per_sample

    if int(seed) in TRAINING_SEEDS:
        raise ValueError(f"seed {seed} is a training seed (0-{TRAINING_SEEDS[-1]}); pick another (default {EVAL_SEED})")
    if not (scale > 0 and np.isfinite(scale)):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    if processes is not None and not (int(processes) == processes and 0 <= processes <= len(available_cores())):
        raise ValueError(f"processes must be None (every core), 0 (one process only) or up to the "
                         f"{len(available_cores())} core(s) this process may use; got {processes!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(model_stem) if model_stem else SHIPPED
    sur = BodySurrogate.load(stem, ensemble=ensemble)
    dur, dt = float(sur.settings["duration_s"]), float(sur.settings["dt_data_s"])
    stride = max(1, int(round(float(sur.settings["dt_train_s"]) / dt)))
    counts = {k: int(round(v * scale)) for k, v in EVAL_COUNTS.items()}
    if counts["perturbed"] and not counts["nominal"]:
        counts["nominal"] = 1
    spec = DatasetSpec(counts=counts, ood_counts={k: max(1, int(round(v * scale))) for k, v in EVAL_OOD_COUNTS.items()},
                       duration_s=dur, dt_s=dt, seed=int(seed), dtype="float64")
    require_dtype("float64", "python -m owjax.surrogate evaluate")
    data = Path(data_dir) if data_dir else out / "data"
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    n_workers = len(available_cores()) if processes is None else max(1, int(processes))
    gen = generate_dataset(data, spec, progress=progress, workers=n_workers)
    gen_wall = time.perf_counter() - t0
    sets = evaluation_sets(data)
    t = np.asarray(sets["test"]["t_s"], np.float64)
    res: dict = {}
    per: dict = {}
    for name, ds in sets.items():
        fams = np.asarray(ds["families"])[ds["family"]]
        ind = indicators(sur.model, t, ds["activation"], ds["medium"])
        preds = sur.member_predictions(t, ds["activation"], ds["medium"]) if sur.members else []
        est = sur.estimate_from_indicators(t, ds["activation"], ds["medium"], ind, preds)
        r = compare(t, ind["centroid_mm"], ind["tangent_angle_rad"], ds["centroid_mm"], ds["tangent_angle_rad"], fams,
                    np.isin(fams, _GAIT))
        p = r.pop("_per_sample")
        err = p["traj_rmse_body_lengths"]
        r["fallback"] = {**_fallback(est, err, sur.bound), "error_estimate_spearman": _spearman(est, err)}
        per[name] = {"err": err, "est": est, "fams": fams, "ds": ds, "speed": p["speed_rel_err"]}
        if sur.averaged_members:  # what backend="auto" returns where it keeps the surrogate
            c_m, th_m, n_models = sur.ensemble_mean(ind, preds)
            rm = compare(t, c_m, th_m, ds["centroid_mm"], ds["tangent_angle_rad"], fams, np.isin(fams, _GAIT))
            per[name]["err_mean"] = rm.pop("_per_sample")["traj_rmse_body_lengths"]
            r["auto_mean"] = {"n_models": n_models, **{k: v for k, v in rm.items() if not isinstance(v, dict)},
                              "fallback": _fallback(est, per[name]["err_mean"], sur.bound)}
        res[name] = r
    # resolution: the test set on the training (coarse) grid
    ds = sets["test"]
    c, th = predict_batch(sur.model, t[::stride], ds["activation"][:, ::stride], ds["medium"])
    fams = per["test"]["fams"]
    res["test_coarse"] = {k: v for k, v in compare(t[::stride], c, th, ds["centroid_mm"][:, ::stride],
                                                   ds["tangent_angle_rad"][:, ::stride], fams,
                                                   np.isin(fams, _GAIT)).items() if k != "_per_sample"}
    err_all = np.concatenate([per[s]["err"] for s in per])
    est_all = np.concatenate([per[s]["est"] for s in per])
    fb_all = _fallback(est_all, err_all, sur.bound)
    # speed: on the same device, now (after compilation), best of 3; the physics on the same inputs
    # (the test set's first 16) unbatched and vmapped over all 16, the faster being the reference (an
    # adaptive solve vmapped over a batch takes as many steps as its slowest member; on this project's
    # CPU the unbatched solve is the faster: benchmarks/surrogate.py)
    n_phys = min(16, len(ds["activation"]))
    runner = PhysicsRunner.cached(dur, dt, BodySolver(rtol=spec.rtol, atol=spec.atol), jnp.float64)
    phys_by_batch, _ = physics_seconds_per_sample(runner, ds["activation"][:n_phys], ds["medium"][:n_phys],
                                                  sorted({1, n_phys}))
    pb = min(phys_by_batch, key=phys_by_batch.get)
    phys_one = phys_by_batch[pb]
    n_proc = len(available_cores()) if processes is None else int(processes)
    n_proc = min(n_proc, n_phys) if n_proc else 0
    while n_proc and n_phys % n_proc:
        n_proc -= 1
    nb = 256
    reps = -(-nb // len(ds["activation"]))
    big_a = np.concatenate([ds["activation"]] * reps)[:nb]
    big_m = np.concatenate([ds["medium"]] * reps)[:nb]
    speed = {"physics_s_per_sample_one_process": phys_one, "physics_batch": pb, "physics_samples": n_phys,
             "physics_s_per_sample_by_batch": {str(b): v for b, v in phys_by_batch.items()},
             "physics_solver": "tsit5 rtol=atol=1e-5 float64", "processes": n_proc}
    phys = phys_one
    if n_proc > 1:
        pc = per_core_seconds_per_sample("physics", ds["activation"][:n_phys], ds["medium"][:n_phys], processes=n_proc,
                                         duration_s=dur, dt_s=dt, rtol=spec.rtol, atol=spec.atol)
        speed["physics_s_per_sample_per_core_processes"] = pc["s_per_sample"]
        phys = min(phys, pc["s_per_sample"])
    speed["physics_s_per_sample"] = phys
    for label, st in (("train_grid", stride), ("data_grid", 1)):
        predict_batch(sur.model, t[::st], big_a[:, ::st], big_m, batch_size=nb)
        s = _time_best(lambda st=st: predict_batch(sur.model, t[::st], big_a[:, ::st], big_m, batch_size=nb)) / nb
        speed[f"surrogate_{label}_s_per_sample_one_process"] = s
        speed[f"speedup_{label}_one_process_each"] = phys_one / s
        if n_proc > 1 and nb % n_proc == 0:
            sc = per_core_seconds_per_sample("surrogate", big_a[:, ::st], big_m, processes=n_proc, repeats=3,
                                             surrogate_stem=model_stem, t_s=t[::st])
            speed[f"surrogate_{label}_s_per_sample_per_core_processes"] = sc["s_per_sample"]
            s = min(s, sc["s_per_sample"])
        speed[f"surrogate_{label}_s_per_sample"] = s
        speed[f"speedup_{label}"] = phys / s
    sur.estimate_from_indicators(t, big_a, big_m, indicators(sur.model, t, big_a, big_m))
    s_auto = _time_best(lambda: sur.estimate_from_indicators(t, big_a, big_m, indicators(sur.model, t, big_a, big_m)),
                        2) / nb
    speed["auto_s_per_sample"] = s_auto
    speed["speedup_auto_no_fallback"] = phys / s_auto
    speed["sibernetic_ratio_train_grid"] = 23 * 60.0 / (speed["surrogate_train_grid_s_per_sample"] / dur)
    speed["load_average_before"], speed["load_average_after"] = list(load0), list(os.getloadavg())
    te, oo = res["test"], res["ood"]
    metrics = {
        "traj_rmse_body_lengths": te["traj_rmse_body_lengths"], "speed_rel_err": te["speed_rel_err"],
        "wavelength_rel_err": te["wavelength_rel_err"], "frequency_rel_err": te["frequency_rel_err"],
        "traj_rmse_body_lengths_median": te["traj_rmse_body_lengths_median"],
        "speed_rel_err_median": te["speed_rel_err_median"], "wavelength_rel_err_median": te["wavelength_rel_err_median"],
        "traj_rmse_body_lengths_train_grid": res["test_coarse"]["traj_rmse_body_lengths"],
        "ood_traj_rmse_body_lengths": oo["traj_rmse_body_lengths"], "ood_speed_rel_err": oo["speed_rel_err"],
        "ood_wavelength_rel_err": oo["wavelength_rel_err"],
        "speedup_vs_physics": speed["speedup_train_grid"], "speedup_vs_physics_data_grid": speed["speedup_data_grid"],
        "speedup_one_process_each": speed["speedup_train_grid_one_process_each"],
        "auto_mean": None if "auto_mean" not in res["test"] else {
            "n_models": res["test"]["auto_mean"]["n_models"],
            "traj_rmse_body_lengths": res["test"]["auto_mean"]["traj_rmse_body_lengths"],
            "speed_rel_err": res["test"]["auto_mean"]["speed_rel_err"],
            "wavelength_rel_err": res["test"]["auto_mean"]["wavelength_rel_err"],
            "ood_traj_rmse_body_lengths": res["ood"]["auto_mean"]["traj_rmse_body_lengths"],
            "fallback": _fallback(est_all, np.concatenate([per[s]["err_mean"] for s in per]), sur.bound)},
        "fallback_precision": fb_all["fallback_precision"], "fallback_recall": fb_all["fallback_recall"],
        "fallback": {"bound_body_lengths": sur.bound, "test_and_ood": fb_all},
        "speed": speed, "sets": res,
        "data": {"dir": str(data), "seed": int(seed), "counts": spec.counts, "ood_counts": spec.ood_counts,
                 "n_test": int(len(per["test"]["err"])), "n_ood": int(len(per["ood"]["err"])),
                 "generation": gen, "generation_wall_s": round(gen_wall, 1),
                 "physics": f"owjax body, tsit5 rtol={spec.rtol} atol={spec.atol}, float64, {dur:g} s, dt {dt:g} s"},
        "model": {"stem": str(stem), "provenance": sur.settings.get("provenance", {}),
                  "recorded_metrics": {k: sur.settings.get("metrics", {}).get(k) for k in
                                       ("traj_rmse_body_lengths", "ood_traj_rmse_body_lengths")}},
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "git_commit": _git_commit(),
        "ensemble_members": [info.get("name", "?") for _, _, info in sur.members],
        "command": "python -m owjax.surrogate evaluate --out " + str(out) + (f" --model {model_stem}" if model_stem else "")
                   + ({True: " --ensemble", False: " --no-ensemble", None: ""}[ensemble])
                   + (f" --seed {seed}" if seed != EVAL_SEED else "") + (f" --scale {scale:g}" if scale != 1 else "")
                   + (f" --processes {processes}" if processes is not None else ""),
    }
    if record:
        ds = sets["test"]
        fams = per["test"]["fams"]
        pick = np.flatnonzero(np.isin(fams, ("wave", "single", "smooth")))[:int(n_check)]
        check = {"seed": int(seed), "duration_s": dur, "dt_s": dt, "families": [str(f) for f in fams[pick]],
                 "family_index": [int(_family_index(spec, int(g))) for g in ds["index"][pick]],
                 "medium": [float(m) for m in ds["medium"][pick]],
                 "traj_rmse_body_lengths": [float(e) for e in per["test"]["err"][pick]],
                 "physics": "tsit5 rtol=atol=1e-5 float64", "date": metrics["date"], "git_commit": metrics["git_commit"],
                 "command": metrics["command"] + " --record"}
        metrics["check"] = check
        js = stem.with_suffix(".json")
        meta = json.loads(js.read_text())
        meta["check"] = check
        atomic_write_json(js, meta)
    atomic_write_json(out / "metrics.json", json.loads(json.dumps(metrics, default=_jsonable)))
    return metrics


def _family_index(spec, global_index: int) -> int:
    """Index within its family of the main set's sample number ``global_index`` (see data._plan)."""
    from owjax.surrogate.data import _plan

    for fam, i, g in _plan(spec, False):
        if g == global_index:
            return i
    raise ValueError(f"sample {global_index} not in the plan")


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def _spearman(a, b) -> float | None:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return None
    ra, rb = np.argsort(np.argsort(a[ok])), np.argsort(np.argsort(b[ok]))
    return float(np.corrcoef(ra, rb)[0, 1])

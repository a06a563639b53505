"""Errors of the surrogate against the physics: trajectory (body lengths), posture, and the tier-3
gait metrics (speed, frequency, wavelength) computed identically on both.

Both trajectories are turned into skeletons by :func:`owjax.surrogate.data.skeleton_from_features`
(inextensible segments from the centroid and the 48 tangent angles) and measured with
:func:`owjax.body.metrics.locomotion_summary` after a 1-s transient, so the comparison sees only the
surrogate's error, not the representation's.
"""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np

from owjax.body import metrics as M
from owjax.body.geometry import BODY_LENGTH_MM
from owjax.surrogate.data import skeleton_from_features

__all__ = ["predict_batch", "latent_batch", "trajectory_errors", "gait_metrics", "compare", "GAIT_SPEED_FLOOR_MM_S"]

#: relative speed errors are taken only where the physics moves faster than this (mm/s)
GAIT_SPEED_FLOOR_MM_S = 0.02


@eqx.filter_jit
def _predict(model, t, act, medium):
    return jax.vmap(model, in_axes=(None, 0, 0))(t, act, medium)


def predict_batch(model, t_s: np.ndarray, activation: np.ndarray, medium: np.ndarray,
                  batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (B, T, 2) mm and tangent angles (B, T, 48) rad from a :class:`~owjax.surrogate.fno.BodyFNO`."""
    import jax.numpy as jnp

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

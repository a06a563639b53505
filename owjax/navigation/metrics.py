"""Navigation metrics: thermotaxis index, isothermal tracking, final temperatures, chemotaxis index.

All functions take NumPy arrays (host side) in the units named in their arguments.
"""

from __future__ import annotations

import numpy as np

__all__ = ["thermotaxis_summary", "chemotaxis_index"]


def thermotaxis_summary(t_s, temp_c, cultivation_temp_c: float, window_s: float = 600.0,
                        band_c: float = 1.0, on_plate=None) -> dict:
    """Thermotaxis metrics of a batch of worms.

    Arguments:
        t_s: (T,) output times, s.
        temp_c: (B, T) temperature at each worm's centroid, °C.
        cultivation_temp_c: T_c, °C.
        window_s: the final window for ``isothermal_fraction`` (the last 10 minutes, or the whole run
            if shorter), s.
        band_c: half-width of the isothermal band, °C.
        on_plate: (B, T) bool, whether each worm is on the plate (``left_plate_fraction``).

    Returns:
        ``thermotaxis_index`` ((warm − cold)/B at the end, in [−1, 1]; a worm exactly at T_c counts
        for neither), ``isothermal_fraction`` (fraction of the final window within ±band_c of T_c,
        averaged over worms), ``mean_final_temp_c``, ``sd_final_temp_c``, ``n_worms``,
        ``window_s`` (the window actually used) and ``left_plate_fraction``.
    """
    t = np.asarray(t_s, float)
    temp = np.asarray(temp_c, float)
    if temp.ndim != 2 or temp.shape[1] != t.shape[0]:
        raise ValueError(f"thermotaxis_summary: temp_c must be (worms, {t.shape[0]}), got {temp.shape}")
    tc = float(cultivation_temp_c)
    final = temp[:, -1]
    warm, cold = np.sum(final > tc), np.sum(final < tc)
    w = min(float(window_s), float(t[-1] - t[0]))
    sel = t >= t[-1] - w
    iso = np.abs(temp[:, sel] - tc) <= band_c
    out = {
        "thermotaxis_index": float((warm - cold) / temp.shape[0]),
        "isothermal_fraction": float(iso.mean()),
        "mean_final_temp_c": float(final.mean()),
        "sd_final_temp_c": float(final.std(ddof=1)) if temp.shape[0] > 1 else 0.0,
        "n_worms": int(temp.shape[0]),
        "cultivation_temp_c": tc,
        "window_s": w,
    }
    if on_plate is not None:
        out["left_plate_fraction"] = float(np.mean(~np.all(np.asarray(on_plate, bool), axis=1)))
    return out


def chemotaxis_index(final_xy_cm, peak_xy_cm=(0.0, 0.0), control_xy_cm=(9.0, 0.0)) -> dict:
    """Chemotaxis index (A − C)/(A + C): A = worms ending nearer the NaCl peak than the control point,
    C = the others (the assay layout: worms start midway, 4.5 cm from the peak and from the control).

    Arguments:
        final_xy_cm: (B, 2) final positions, cm.
        peak_xy_cm, control_xy_cm: the peak and the control point, cm.

    Returns:
        ``chemotaxis_index`` in [−1, 1], ``n_peak_side``, ``n_control_side``, ``mean_final_distance_cm``
        (to the peak).
    """
    xy = np.asarray(final_xy_cm, float)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"chemotaxis_index: final_xy_cm must be (worms, 2), got {xy.shape}")
    d_peak = np.hypot(xy[:, 0] - peak_xy_cm[0], xy[:, 1] - peak_xy_cm[1])
    d_ctrl = np.hypot(xy[:, 0] - control_xy_cm[0], xy[:, 1] - control_xy_cm[1])
    a, c = int(np.sum(d_peak < d_ctrl)), int(np.sum(d_peak > d_ctrl))
    return {"chemotaxis_index": float((a - c) / (a + c)) if a + c else 0.0, "n_peak_side": a,
            "n_control_side": c, "mean_final_distance_cm": float(d_peak.mean())}

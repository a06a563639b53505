"""Figures of a body run: curvature kymograph, centroid track, and an animation (GIF, Pillow)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from owjax.core.checkpoint import atomic_savefig

__all__ = ["plot_kymograph", "plot_track", "save_animation", "plot_gait_vs_drag"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path) -> Path:
    """Lay out, write atomically (110 dpi) and close a figure; the path written."""
    fig.tight_layout()
    out = atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    return out


def plot_kymograph(t_s: np.ndarray, kappa_per_mm: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Curvature kymograph: body position (head at top) vs time, colour = curvature (1/mm, + dorsal)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3))
    lim = float(np.percentile(np.abs(kappa_per_mm), 99)) or 1.0
    im = ax.imshow(kappa_per_mm.T, aspect="auto", origin="upper", cmap="RdBu_r", vmin=-lim, vmax=lim,
                   extent=[t_s[0], t_s[-1], 1.0, 0.0])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("position (head 0 → tail 1)")
    ax.set_title(title or "curvature")
    fig.colorbar(im, ax=ax, label="curvature (1/mm, + dorsal)")
    return _save(plt, fig, path)


def plot_track(t_s: np.ndarray, x: np.ndarray, y: np.ndarray, path: str | Path, title: str = "", n_shapes: int = 6) -> Path:
    """Centroid track (coloured by time) with a few body outlines along the way."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    cx, cy = x.mean(1), y.mean(1)
    sc = ax.scatter(cx, cy, c=t_s, s=2, cmap="viridis")
    for i in np.linspace(0, len(t_s) - 1, n_shapes).astype(int):
        ax.plot(x[i], y[i], "-", color="0.5", lw=1)
        ax.plot(x[i, 0], y[i, 0], "o", color="C3", ms=3)
    ax.set_aspect("equal")
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm)")
    ax.set_title(title or "centroid track (red dot: head)")
    fig.colorbar(sc, ax=ax, label="time (s)")
    return _save(plt, fig, path)


def save_animation(t_s: np.ndarray, x: np.ndarray, y: np.ndarray, radius_mm: np.ndarray, phi: np.ndarray | None,
                   path: str | Path, medium: str = "", fps: int = 10, dpi: int = 80) -> Path:
    """Animated GIF of the body outline (dorsal/ventral edges) with the medium and time written on it.

    ``fps`` frames per simulated second are drawn (played back in real time).
    """
    plt = _plt()
    from matplotlib.animation import FuncAnimation, PillowWriter

    dt = float(np.median(np.diff(t_s)))
    step = max(1, int(round(1.0 / (fps * dt))))
    frames = np.arange(0, len(t_s), step)
    pad = 0.15
    fig, ax = plt.subplots(figsize=(4, 3.2))
    ax.set_xlim(x.min() - pad, x.max() + pad)
    ax.set_ylim(y.min() - pad, y.max() + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm)")
    (dorsal,) = ax.plot([], [], "-", color="C0", lw=1.5, label="dorsal")
    (ventral,) = ax.plot([], [], "-", color="C1", lw=1.5, label="ventral")
    (head,) = ax.plot([], [], "o", color="C3", ms=4)
    (track,) = ax.plot([], [], "-", color="0.6", lw=0.8)
    label = ax.text(0.02, 0.97, "", transform=ax.transAxes, va="top", fontsize=8)
    ax.legend(loc="lower right", fontsize=7)
    cx, cy = x.mean(1), y.mean(1)

    def edges(i):
        if phi is None:
            return (x[i], y[i]), (x[i], y[i])
        ux, uy = np.cos(phi[i]) * radius_mm, np.sin(phi[i]) * radius_mm
        return (x[i] + ux, y[i] + uy), (x[i] - ux, y[i] - uy)

    def update(k):
        i = frames[k]
        (dx, dy), (vx, vy) = edges(i)
        dorsal.set_data(dx, dy)
        ventral.set_data(vx, vy)
        head.set_data([x[i, 0]], [y[i, 0]])
        track.set_data(cx[: i + 1], cy[: i + 1])
        label.set_text(f"{medium}   t = {t_s[i]:.1f} s")
        return dorsal, ventral, head, track, label

    anim = FuncAnimation(fig, update, frames=len(frames), blit=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".gif", dir=path.parent)
    os.close(fd)
    try:
        anim.save(tmp, writer=PillowWriter(fps=fps), dpi=dpi)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        plt.close(fig)
    return path


def plot_gait_vs_drag(rows: list[dict], path: str | Path, targets: dict | None = None) -> Path:
    """Frequency and wavelength against the normal drag coefficient (log axis), one line per
    ``series`` key of the rows (one point per medium)."""
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(8.5, 3.4))
    series = sorted({r.get("series", "") for r in rows})
    for k, name in enumerate(series):
        sel = [r for r in rows if r.get("series", "") == name]
        c = np.array([r["c_perp_total_kg_s"] for r in sel])
        order = np.argsort(c)
        f = np.array([r["frequency_hz"] for r in sel])[order]
        lam = np.array([r["wavelength_body_lengths"] for r in sel])[order]
        ax[0].semilogx(c[order], f, "os^"[k % 3] + "-", label=name or None)
        ax[1].semilogx(c[order], lam, "os^"[k % 3] + "-", label=name or None)
    ax[0].set_ylabel("frequency (Hz)")
    ax[1].set_ylabel("wavelength (body lengths)")
    call = np.array([r["c_perp_total_kg_s"] for r in rows])
    for a in ax:
        a.set_xlabel("whole-body C_perp (kg/s)")
        a.grid(alpha=0.3)
    if series != [""]:
        ax[0].legend(fontsize=7)
    if targets:
        for a, key in zip(ax, ("frequency_hz", "wavelength_body_lengths")):
            for med, xv in (("agar", call.max()), ("water", call.min())):
                lo, hi = targets[med][key]
                a.plot([xv, xv], [lo, hi], "-", color="0.3", lw=6, alpha=0.3)
    fig.suptitle("BBC loop: gait modulation with drag (grey bars: targets)")
    return _save(plt, fig, path)

"""Figures: worm tracks over the arena field."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_tracks"]


def plot_tracks(path: str | Path, field, pos_cm, title: str = "", isotherm=None, max_tracks: int = 64) -> Path:
    """Tracks (B, T, 2) cm over the field (colour map, its unit), start ○ and end ●, and the
    ``isotherm`` (e.g. T_c) as a dashed contour. Written atomically (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from owjax.core.checkpoint import atomic_savefig

    pos = np.asarray(pos_cm)
    x0, x1, y0, y1 = field.extent_cm()
    px = max(x1, float(np.nanmax(pos[..., 0]))) - min(x0, float(np.nanmin(pos[..., 0])))
    pad = 0.05 * px
    xs = np.linspace(min(x0, np.nanmin(pos[..., 0])) - pad, max(x1, np.nanmax(pos[..., 0])) + pad, 200)
    ys = np.linspace(min(y0, np.nanmin(pos[..., 1])) - pad, max(y1, np.nanmax(pos[..., 1])) + pad, 200)
    gx, gy = np.meshgrid(xs, ys)
    val = np.asarray(field(gx, gy))
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    im = ax.pcolormesh(gx, gy, val, shading="auto", cmap="coolwarm")
    fig.colorbar(im, ax=ax, label=f"{field.quantity} ({field.unit})")
    if isotherm is not None and val.min() < isotherm < val.max():
        ax.contour(gx, gy, val, levels=[isotherm], colors="k", linestyles="--", linewidths=1)
    ax.add_patch(matplotlib.patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=0.8, ec="0.3"))
    for p in pos[:max_tracks]:
        ax.plot(p[:, 0], p[:, 1], lw=0.6, color="k", alpha=0.6)
        ax.plot(p[0, 0], p[0, 1], "o", mfc="none", mec="k", ms=3)
        ax.plot(p[-1, 0], p[-1, 1], "o", color="k", ms=3)
    ax.set_aspect("equal")
    ax.set_xlabel("x (cm)")
    ax.set_ylabel("y (cm)")
    ax.set_title(title, fontsize=9)
    path = Path(path)
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    return path

"""Figures of a simulation: voltage heat map, named traces, Ca, muscle kymograph."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from owjax.traces import Traces  # noqa: E402

__all__ = ["plot_overview", "DEFAULT_CELLS_TO_PLOT"]

#: c302's own ``cells_to_plot`` of the Full config
DEFAULT_CELLS_TO_PLOT = ("AVBL", "AVBR", "PVCL", "PVCR", "DB1", "DB2", "VB1", "VB2", "DD1", "DD2", "VD1", "VD2")


def plot_overview(traces: Traces, path: str | Path, cells=None, title: str = "") -> Path:
    """One PNG: V heat map of every cell, V of a few named cells, their Ca, and muscle activation.

    Arguments:
        traces: the simulation output.
        path: PNG file to write.
        cells: names to draw as traces (default: c302's plotted cells that exist, else the first 8).
        title: figure title.

    Returns:
        The path written.
    """
    t = traces.t_ms
    names, vs, cas = [], [], []
    for pop in ("neurons", "muscles"):
        if pop in traces.populations:
            p = traces.populations[pop]
            names += list(p["names"])
            vs.append(p["V"])
            cas.append(p["Ca"])
    V = np.concatenate(vs, 0)
    Ca = np.concatenate(cas, 0)
    if cells is None:
        cells = [c for c in DEFAULT_CELLS_TO_PLOT if c in names] or names[:8]
    idx = [names.index(c) for c in cells if c in names]
    has_muscles = "activation" in traces.populations.get("muscles", {})
    nrows = 4 if has_muscles else 3
    fig, axes = plt.subplots(nrows, 1, figsize=(11, 3.0 * nrows), constrained_layout=True)
    im = axes[0].imshow(
        V, aspect="auto", origin="lower", extent=(t[0], t[-1], 0, len(names)), cmap="viridis",
        interpolation="nearest",
    )
    n_neu = len(traces.populations.get("neurons", {}).get("names", []))
    if n_neu and n_neu < len(names):
        axes[0].axhline(n_neu, color="w", lw=0.8)
        axes[0].text(t[0], n_neu + 1, " muscles", color="w", va="bottom", fontsize=8)
    axes[0].set_ylabel("cell (model order)")
    axes[0].set_title(title or "membrane potential")
    fig.colorbar(im, ax=axes[0], label="V (mV)")
    for i in idx:
        axes[1].plot(t, V[i], lw=0.8, label=names[i])
        axes[2].plot(t, Ca[i], lw=0.8, label=names[i])
    axes[1].set_ylabel("V (mV)")
    axes[2].set_ylabel("Ca (mM, c302 units)")
    axes[1].legend(ncol=6, fontsize=7, loc="upper right")
    if has_muscles:
        act = traces.populations["muscles"]["activation"]
        im2 = axes[3].imshow(act, aspect="auto", origin="lower", extent=(t[0], t[-1], 0, act.shape[0]),
                             vmin=0, vmax=1, cmap="magma", interpolation="nearest")
        axes[3].set_ylabel("muscle (model order)")
        fig.colorbar(im2, ax=axes[3], label="activation")
    axes[-1].set_xlabel("time (ms)")
    path = Path(path)
    from owjax.core.checkpoint import atomic_savefig

    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    return path

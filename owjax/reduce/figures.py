"""Figures of reduced-model fits: predicted vs true test sequences, learning curves (host side, matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["prediction_figure", "curves_figure"]


def prediction_figure(path: str | Path, spec, params, norm, data, split, n_seq: int = 2, run: int = 0) -> Path:
    """True (black) and predicted (colour, run ``run``) outputs of the first ``n_seq`` test sequences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from owjax.core.checkpoint import atomic_savefig
    from owjax.reduce.training import predict

    d = data.take(list(split.test)[:n_seq])
    pred = predict(spec, params, norm, d.x)[run]
    n_out = d.y.shape[2]
    fig, axes = plt.subplots(n_out + 1, d.n, figsize=(4.5 * d.n, 1.6 * (n_out + 1)), sharex=True, squeeze=False)
    for s in range(d.n):
        ax = axes[0, s]
        ax.plot(d.t, d.x[s])
        ax.set_title(d.names[s], fontsize=8)
        ax.set_ylabel(f"input ({d.input_unit})", fontsize=7)
        ax.legend(d.input_names, fontsize=6, loc="upper right")
        for o in range(n_out):
            ax = axes[o + 1, s]
            ax.plot(d.t, d.y[s, :, o], "k", lw=1.2, label="owjax")
            ax.plot(d.t, pred[s, :, o], "C3", lw=0.9, ls="--", label=f"{spec.cell.upper()}-{spec.hidden}")
            ax.set_ylabel(f"{d.output_names[o]} ({d.output_unit})", fontsize=7)
            if o == 0 and s == 0:
                ax.legend(fontsize=6)
        axes[-1, s].set_xlabel(f"t ({d.time_unit})")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=90)
    plt.close(fig)
    return Path(path)


def curves_figure(path: str | Path, curves: dict, title: str = "") -> Path:
    """Training and validation RMSE (normalised units) against epoch: mean over runs and each run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from owjax.core.checkpoint import atomic_savefig

    ep = np.asarray(curves["epoch"])
    tr = np.asarray(curves["train_rmse"])
    va = np.asarray(curves["val_rmse"])
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.semilogy(ep, tr, color="C0", alpha=0.2, lw=0.7)
    ax.semilogy(ep, va, color="C1", alpha=0.2, lw=0.7)
    ax.semilogy(ep, tr.mean(1), color="C0", lw=2, label="train (mean of runs)")
    ax.semilogy(ep, va.mean(1), color="C1", lw=2, label="validation (mean of runs)")
    ax.set_xlabel("epoch (full-batch Adam step)")
    ax.set_ylabel("RMSE (normalised)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=90)
    plt.close(fig)
    return Path(path)

"""The intestine inside ``owjax.simulate``: config → model, traces population, DD009 metrics, figure.

Config block (``intestine:`` in ``conf/simulate.yaml``)::

    params: null       # parameter file (default owjax/data/intestine_parameters.yaml)
    uncoupled: false   # true: g_gap = D_ca = D_ip3 = 0 (each cell on its own)
    overrides: {}      # any parameter of the file, in its units, e.g. {g_gap: 0.5}
    strategy: coupled  # coupled | sequential (owjax.worm.solve_worm)

Traces: ``/intestine/names`` (int1 … int20, anterior → posterior), ``V`` (mV), ``Ca``, ``Ca_ER``,
``IP3`` (mM, like every Ca in the traces file; the model itself works in µM) and ``h``.
Metrics: ``defecation_period_s`` (mean interval of int1 Ca peaks above 0.2 µM), ``wave_direction``,
``n_cycles`` (number of int1 Ca peaks: each is one defecation motor program trigger),
``cell_periods_s``, ``all_cells_oscillate`` (every cell has ≥ 2 peaks), ``peak_amplitude_ratio``
(last / first int1 peak height; ≈ 1 means undamped).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from owjax.organs.intestine import IntestineOscillator, cell_names, oscillation_period, peak_times, wave_direction

__all__ = ["build_intestine", "intestine_population", "plot_intestine"]

UM_TO_MM = 1e-3


def build_intestine(block) -> IntestineOscillator:
    """An :class:`IntestineOscillator` from the ``intestine`` config block."""
    block = dict(block or {})
    allowed = {"params", "uncoupled", "overrides", "strategy"}
    bad = sorted(set(block) - allowed)
    if bad:
        raise ValueError(f"unknown intestine option(s) {bad}; allowed: {sorted(allowed)}")
    overrides = dict(block.get("overrides") or {})
    if block.get("uncoupled"):
        overrides.update(g_gap=0.0, D_ca=0.0, D_ip3=0.0)
    path = block.get("params")
    return IntestineOscillator.from_yaml(None if path in (None, "", "None") else path, **overrides)


def intestine_population(t_ms: np.ndarray, ys: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Traces population (rows = cells) and DD009 metrics from the solver output (T, 20) arrays."""
    t_s = np.asarray(t_ms) / 1000.0
    ca_uM = np.asarray(ys["Ca"]).T
    n = ca_uM.shape[0]
    pop = dict(
        names=np.array(cell_names(n)),
        V=np.asarray(ys["V"]).T,
        Ca=ca_uM * UM_TO_MM,
        Ca_ER=np.asarray(ys["Ca_ER"]).T * UM_TO_MM,
        IP3=np.asarray(ys["IP3"]).T * UM_TO_MM,
        h=np.asarray(ys["h"]).T,
    )
    peaks1 = peak_times(t_s, ca_uM[0])
    cell_periods = [oscillation_period(t_s, c) for c in ca_uM]
    heights = np.interp(peaks1, t_s, ca_uM[0]) if len(peaks1) else np.zeros(0)
    metrics = dict(
        defecation_period_s=oscillation_period(t_s, ca_uM[0]),
        wave_direction=wave_direction(t_s, ca_uM),
        n_cycles=int(len(peaks1)),
        int1_peak_times_s=[float(x) for x in peaks1],
        cell_periods_s=[float(x) for x in cell_periods],
        all_cells_oscillate=bool(all(len(peak_times(t_s, c)) >= 2 for c in ca_uM)),
        peak_amplitude_ratio=float(heights[-1] / heights[0]) if len(heights) >= 2 else float("nan"),
    )
    return pop, metrics


def plot_intestine(traces, path: str | Path) -> Path:
    """Ca wave across the 20 intestinal cells: heat map (anterior at the top) and three traces."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pop = traces.populations["intestine"]
    t_s = traces.t_ms / 1000.0
    ca = pop["Ca"] / UM_TO_MM
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True, constrained_layout=True)
    im = axes[0].imshow(ca, aspect="auto", origin="upper", extent=(t_s[0], t_s[-1], ca.shape[0] + 0.5, 0.5),
                        cmap="inferno", interpolation="nearest")
    axes[0].set_ylabel("cell (int1 anterior → int20 posterior)")
    fig.colorbar(im, ax=axes[0], label="Ca (µM)")
    for i in (0, ca.shape[0] // 2, ca.shape[0] - 1):
        axes[1].plot(t_s, ca[i], lw=1, label=str(pop["names"][i]))
    axes[1].axhline(0.4, color="k", ls=":", lw=0.8, label="trigger threshold 0.4 µM")
    axes[1].set_ylabel("Ca (µM)")
    axes[1].set_xlabel("time (s)")
    axes[1].legend(fontsize=8)
    axes[0].set_title("intestinal Ca wave (DD009)")
    path = Path(path)
    from owjax.core.checkpoint import atomic_savefig

    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    return path

"""Validation metrics computed on traces (DD010 subset).

:func:`basic_metrics` is what ``owjax.simulate`` writes into ``summary.json``: finiteness, voltage
range per population, spiking cells (upward crossings of −20 mV, c302's spike threshold) and the
peak muscle activation.
"""

from __future__ import annotations

import numpy as np

from .traces import Traces

__all__ = ["basic_metrics", "spike_times", "SPIKE_THRESHOLD_mV"]

#: c302's spike threshold (neuron_spike_thresh = muscle_spike_thresh = −20 mV)
SPIKE_THRESHOLD_mV = -20.0


def spike_times(t_ms: np.ndarray, v_mV: np.ndarray, threshold_mV: float = SPIKE_THRESHOLD_mV) -> np.ndarray:
    """Times (ms) of upward crossings of ``threshold_mV``, linearly interpolated between samples."""
    v = np.asarray(v_mV)
    up = np.nonzero((v[:-1] < threshold_mV) & (v[1:] >= threshold_mV))[0]
    frac = (threshold_mV - v[up]) / (v[up + 1] - v[up])
    return t_ms[up] + frac * (t_ms[up + 1] - t_ms[up])


def basic_metrics(traces: Traces) -> dict:
    """Range and sanity checks of a simulation (JSON-ready floats and ints)."""
    out: dict = {}
    allv = []
    n_spiking = 0
    for pop, arrays in traces.populations.items():
        if "V" not in arrays:
            continue
        v = np.asarray(arrays["V"])
        allv.append(v)
        out[f"{pop}_V_min_mV"] = float(np.nanmin(v))
        out[f"{pop}_V_max_mV"] = float(np.nanmax(v))
        counts = [len(spike_times(traces.t_ms, vi)) for vi in v]
        out[f"{pop}_n_spiking"] = int(sum(c > 0 for c in counts))
        n_spiking += out[f"{pop}_n_spiking"]
        if "Ca" in arrays:
            out[f"{pop}_Ca_max_mM"] = float(np.nanmax(arrays["Ca"]))
            out[f"{pop}_Ca_min_mM"] = float(np.nanmin(arrays["Ca"]))
        if "activation" in arrays:
            a = np.asarray(arrays["activation"])
            out["muscle_activation_peak"] = float(a.max())
            out["muscle_activation_in_0_1"] = bool((a >= 0).all() and (a <= 1).all())
    v = np.concatenate(allv, 0) if allv else np.zeros((0, 0))
    out["all_finite"] = bool(all(np.isfinite(np.asarray(a[k])).all() for a in traces.populations.values()
                                 for k in a if k != "names"))
    out["V_min_mV"] = float(v.min()) if v.size else float("nan")
    out["V_max_mV"] = float(v.max()) if v.size else float("nan")
    out["V_in_physiological_range"] = bool(v.size and v.min() > -100.0 and v.max() < 80.0)
    out["n_spiking_cells"] = n_spiking
    return out

"""Stimuli for the sensory circuit, and one call that drives a c302 network through a transducer.

:func:`stimulus_series` builds the prescribed stimulus of a :class:`~owjax.sensory.component.GRUTransducer`
(a ramp, a step, or a recorded trace from the shipped data); :func:`drive_network` loads the shipped
transducer of a modality, couples it to a network (optionally ablating driven cells) and solves both in
one diffrax solve. This is what ``python -m owjax.simulate +scenario=sensory`` is meant to call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["stimulus_series", "drive_network"]


def stimulus_series(kind: str, **kw) -> tuple[np.ndarray, np.ndarray]:
    """``(times_s, values)`` of a stimulus (°C for AFD, % O2 for BAG).

    Arguments:
        kind: ``"ramp"`` (``start``, ``stop``, ``rate_per_s``, ``hold_s`` before, ``end_hold_s`` after),
            ``"step"`` (``before``, ``after``, ``at_s``, ``duration_s``: total length), or ``"record"``
            (``modality``, ``worm``: index or worm id in the shipped dataset).

    Returns:
        Times (s, from 0, increasing) and values, for linear interpolation.
    """
    if kind == "ramp":
        start, stop, rate = float(kw["start"]), float(kw["stop"]), abs(float(kw.get("rate_per_s", 0.025)))
        hold, end = float(kw.get("hold_s", 60.0)), float(kw.get("end_hold_s", 0.0))
        if rate <= 0:
            raise ValueError("ramp: rate_per_s must be > 0")
        t_ramp = abs(stop - start) / rate
        t = [0.0, hold, hold + t_ramp] + ([hold + t_ramp + end] if end > 0 else [])
        v = [start, start, stop] + ([stop] if end > 0 else [])
        if hold == 0:
            t, v = t[1:], v[1:]
        return np.asarray(t, float), np.asarray(v, float)
    if kind == "step":
        at, dur = float(kw["at_s"]), float(kw["duration_s"])
        if not 0 < at < dur:
            raise ValueError(f"step: need 0 < at_s ({at}) < duration_s ({dur})")
        eps = 1e-3
        return (np.asarray([0.0, at - eps, at, dur]),
                np.asarray([kw["before"], kw["before"], kw["after"], kw["after"]], float))
    if kind == "record":
        from owjax.sensory.loaders import load_dataset

        recs = load_dataset(kw["modality"])
        w = kw.get("worm", 0)
        if isinstance(w, str):
            match = [r for r in recs if r.worm_id == w]
            if not match:
                raise ValueError(f"no worm {w!r} in the {kw['modality']} dataset; e.g. {[r.worm_id for r in recs[:5]]}")
            rec = match[0]
        else:
            rec = recs[int(w)]
        return rec.time_s - rec.time_s[0], rec.stimulus
    raise ValueError(f"unknown stimulus kind {kind!r}; choose ramp, step or record")


def drive_network(network, modality: str, times_s, values, duration_ms: float, dt_out_ms: float,
                  gain_pA: float = 1.0, offset_pA: float = 0.0, ablate: Sequence[str] = (),
                  model: str | Path | None = None, solver: Mapping | str = "tsit5"):
    """Solve ``network`` driven by the shipped (or given) transducer of ``modality``.

    Arguments:
        network: a c302 network component (``NetworkModel``) holding the modality's cells.
        modality: ``"afd"`` or ``"bag"``.
        times_s, values: the stimulus (:func:`stimulus_series`).
        duration_ms, dt_out_ms: simulated time and output spacing (ms).
        gain_pA, offset_pA: the response → current map (:class:`~owjax.sensory.component.TransducerDrive`).
        ablate: driven cells to leave undriven (e.g. ``["AFDL", "AFDR"]``: no drive at all).
        model: transducer file (default ``owjax/data/sensory/<modality>_transducer.npz``).
        solver: solver preset or mapping (:func:`owjax.core.solve.get_solver`).

    Returns:
        ``(composite, solution)`` (``solution.ys["network"]``, ``solution.ys["<modality>_transducer"]``).
    """
    import jax.numpy as jnp

    from owjax.core.solve import solve_ys
    from owjax.sensory.component import GRUTransducer, sensory_worm
    from owjax.sensory.loaders import DATA_DIR
    from owjax.sensory.records import MODALITIES
    from owjax.sensory.transducer import load_transducer

    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; known: {sorted(MODALITIES)}")
    dtype = network.dtype
    spec, params = load_transducer(model or DATA_DIR / f"{modality}_transducer.npz", dtype=dtype)
    cells = [c for c in MODALITIES[modality]["cells"] if c not in set(ablate)]
    bad = sorted(set(ablate) - set(MODALITIES[modality]["cells"]))
    if bad:
        raise ValueError(f"ablate={bad}: not driven by the {modality} transducer (it drives "
                         f"{list(MODALITIES[modality]['cells'])})")
    tr = GRUTransducer(spec, params, jnp.asarray(times_s, dtype), jnp.asarray(values, dtype))
    if not cells:  # everything ablated: the transducer runs, nothing is injected
        worm = sensory_worm(network, tr, cells=MODALITIES[modality]["cells"], gain_pA=0.0, offset_pA=0.0)
    else:
        worm = sensory_worm(network, tr, cells=cells, gain_pA=gain_pA, offset_pA=offset_pA)
    return worm, solve_ys(worm, duration_ms, dt_out_ms, solver=solver)

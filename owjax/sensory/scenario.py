"""``python -m owjax.simulate +scenario=sensory``: a stimulus drives c302's sensory neurons through
the shipped transducer (:func:`owjax.sensory.circuit.drive_network`), in one solve.

Config (``owjax/conf/scenario/sensory.yaml``)::

    sensory:
      modality: afd            # afd (temperature, AFDL/AFDR) | bag (O2, BAGL/BAGR)
      stimulus: ramp           # ramp | step | record: which block below is used
      ramp: {start: 21.0, stop: 23.0, rate_per_s: 0.25, hold_s: 2.0, end_hold_s: 0.0}
      step: {before: 21.0, after: 24.0, at_s: 2.0, duration_s: 10.0}
      record: {worm: 0}        # a recorded stimulus of the shipped dataset
      gain_pA: 1.0             # transducer response (ΔR/R %, ΔF/F) → current (pA) into the driven cells,
      offset_pA: 0.0           # or "calibrated": the shipped calibration (owjax/sensory/calibration.py)
      ablate: []               # e.g. [AFDL, AFDR]: the transducer runs, nothing is injected there
      model: null              # transducer file (default: the shipped one)

The network is simulate's own (``network=…``, by default the head circuit named in the scenario
file); ``duration_ms`` and ``dt_out_ms`` as usual. Writes ``traces.h5`` (the usual populations plus
``/sensory/{t, stimulus, response}``), ``sensory.png`` and ``summary.json``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["run_sensory"]

_KEYS = {"modality", "stimulus", "gain_pA", "offset_pA", "ablate", "model", "ramp", "step", "record"}
_KINDS = ("ramp", "step", "record")


def _sensory_config(cfg) -> dict:
    from omegaconf import DictConfig, OmegaConf

    s = cfg.get("sensory")
    s = OmegaConf.to_container(s, resolve=True) if isinstance(s, DictConfig) else dict(s or {})
    unknown = sorted(set(s) - _KEYS)
    if unknown:
        raise ValueError(f"sensory: unknown key(s) {unknown}; allowed: {sorted(_KEYS)}")
    s.setdefault("gain_pA", 1.0)
    s.setdefault("offset_pA", 0.0)
    s.setdefault("ablate", [])
    s.setdefault("model", None)
    kind = s.get("stimulus")
    if kind not in _KINDS:
        raise ValueError(f"sensory.stimulus={kind!r}; allowed: {list(_KINDS)} (parameters in sensory.<kind>)")
    if not isinstance(s.get(kind), Mapping):
        raise ValueError(f"sensory.{kind} must be a mapping of the {kind} stimulus' parameters")
    return s


def run_sensory(cfg, outdir: str | Path) -> dict:
    """Run the sensory scenario (see the module docstring) and write its outputs to ``outdir``.

    Returns:
        The summary (also ``summary.json``): stimulus range, transducer response range, peak Ca of
        the driven cells, wall time.
    """
    from owjax import __version__
    from owjax.core.checkpoint import atomic_write_json
    from owjax.core.solve import get_solver
    from owjax.core.units import CA_STATE_SCALE
    from owjax.neural.build import build_model, build_spec
    from owjax.sensory.circuit import drive_network, stimulus_series
    from owjax.sensory.records import MODALITIES
    from owjax.traces import Traces, write_traces

    s = _sensory_config(cfg)
    modality = str(s["modality"])
    if modality not in MODALITIES:
        raise ValueError(f"sensory.modality={modality!r}; allowed: {sorted(MODALITIES)}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    net = cfg.network
    spec = build_spec(parameter_set=cfg.model.parameter_set, network=net.get("config"), file=net.get("file"),
                      cells=list(net.cells) if net.get("cells") else None, stimulus_mode=cfg.stimulus.mode,
                      pulses=[dict(p) for p in cfg.stimulus.get("pulses") or []])
    missing = [c for c in MODALITIES[modality]["cells"] if c not in spec.cell_names]
    if missing:
        raise ValueError(f"the network has no {missing}: the {modality} transducer drives "
                         f"{list(MODALITIES[modality]['cells'])} (add them to network.cells)")
    model = build_model(spec, cfg.dtype)
    calibration = None
    if s["gain_pA"] == "calibrated" or s["offset_pA"] == "calibrated":
        from owjax.sensory.calibration import load_calibration

        calibration = load_calibration(modality)
        cal_set = (calibration.get("network") or {}).get("parameter_set")
        if cal_set and cal_set != cfg.model.parameter_set:
            import logging

            logging.getLogger(__name__).warning(
                "the %s calibration was fitted on parameter set %s, this network is %s (model=c302_%s matches it)",
                modality, cal_set, cfg.model.parameter_set, cal_set)
        if s["gain_pA"] == "calibrated":
            s["gain_pA"] = calibration["gain_pA"]
        if s["offset_pA"] == "calibrated":
            s["offset_pA"] = calibration["offset_pA"]
    for k in ("gain_pA", "offset_pA"):
        if not isinstance(s[k], (int, float)) or isinstance(s[k], bool):
            raise ValueError(f"sensory.{k}={s[k]!r}: give a number (pA) or 'calibrated'")
    kind = s["stimulus"]
    kw = dict(s[kind])
    if kind == "record":
        kw.setdefault("modality", modality)
    times_s, values = stimulus_series(kind, **kw)
    duration_ms, dt_out_ms = float(cfg.duration_ms), float(cfg.dt_out_ms)
    from omegaconf import OmegaConf

    solver = get_solver(OmegaConf.to_container(cfg.solver, resolve=True))
    worm, sol = drive_network(model, modality, times_s, values, duration_ms, dt_out_ms, gain_pA=float(s["gain_pA"]),
                              offset_pA=float(s["offset_pA"]), ablate=list(s["ablate"]), model=s["model"],
                              solver=solver)
    name = f"{modality}_transducer"
    t_ms = np.asarray(sol.ts, np.float64)
    ys = sol.ys
    V = np.asarray(ys["network"]["V"], np.float64).T
    Ca = (np.asarray(ys["network"]["Ca"], np.float64) / CA_STATE_SCALE).T
    outs = [worm.components[name].outputs(t / 1000.0, {k: v[i] for k, v in ys[name].items()})
            for i, t in enumerate(sol.ts)]
    stim = np.asarray([float(o["stimulus"]) for o in outs])
    resp = np.asarray([float(o["response"]) for o in outs])
    wall = time.perf_counter() - t0
    names = np.array(model.cell_names)
    traces = Traces(t_ms=t_ms, populations={"neurons": dict(names=names, V=V, Ca=Ca)},
                    attrs=dict(model=cfg.model.name, network=spec.name, simulator="owjax", solver=solver.method,
                               dt_out_ms=dt_out_ms, duration_ms=duration_ms, dtype=cfg.dtype))
    write_traces(outdir / "traces.h5", traces)
    import h5py

    with h5py.File(outdir / "traces.h5", "a") as f:
        g = f.create_group("sensory")
        g.attrs["modality"] = modality
        g.attrs["stimulus_unit"] = MODALITIES[modality]["stimulus_unit"]
        g.attrs["response_unit"] = MODALITIES[modality]["response_unit"]
        g["t"], g["stimulus"], g["response"] = t_ms, stim, resp
    driven = [c for c in MODALITIES[modality]["cells"] if c not in set(s["ablate"])]
    idx = [model.index(c) for c in MODALITIES[modality]["cells"]]
    files = ["traces.h5"]
    if cfg.get("figures", True):
        files.append(_figure(outdir / "sensory.png", t_ms, stim, resp, V[idx], Ca[idx],
                             list(MODALITIES[modality]["cells"]), modality, driven))
    summary = dict(
        owjax_version=__version__, scenario="sensory", modality=modality, network=spec.name,
        stimulus={"kind": kind, **kw}, gain_pA=float(s["gain_pA"]), offset_pA=float(s["offset_pA"]),
        calibration=None if calibration is None else {k: calibration.get(k) for k in (
            "gain_pA", "offset_pA", "protocol", "window_s", "network")}, ablate=list(s["ablate"]), driven_cells=driven,
        duration_ms=duration_ms, dt_out_ms=dt_out_ms, dtype=cfg.dtype, solver=solver.method,
        stimulus_range=[float(stim.min()), float(stim.max())], response_range=[float(resp.min()), float(resp.max())],
        driven_cell_peak_ca_mM={c: float(Ca[model.index(c)].max()) for c in MODALITIES[modality]["cells"]},
        V_range_mV=[float(V.min()), float(V.max())], all_finite=bool(np.isfinite(V).all() and np.isfinite(Ca).all()),
        solver_stats={k: int(v) for k, v in sol.stats.items() if np.ndim(v) == 0},
        total_wall_time_s=round(wall, 3), files=files,
    )
    atomic_write_json(outdir / "summary.json", summary)
    return summary


def _figure(path, t_ms, stim, resp, v, ca, cells, modality, driven) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from owjax.core.checkpoint import atomic_savefig

    t = t_ms / 1000.0
    fig, ax = plt.subplots(4, 1, figsize=(7, 7), sharex=True)
    ax[0].plot(t, stim, "k")
    ax[0].set_ylabel("temperature (°C)" if modality == "afd" else "O$_2$ (%)")
    ax[1].plot(t, resp, "C1")
    ax[1].set_ylabel("transducer\n" + ("ΔR/R (%)" if modality == "afd" else "ΔF/F"))
    for i, c in enumerate(cells):
        ax[2].plot(t, v[i], label=c + ("" if c in driven else " (ablated)"))
        ax[3].plot(t, ca[i] * 1e6, label=c)
    ax[2].set_ylabel("V (mV)")
    ax[3].set_ylabel("Ca (nM)")
    ax[2].legend(fontsize=7)
    ax[3].set_xlabel("time (s)")
    fig.suptitle(f"{modality.upper()} transducer → c302")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)
    return Path(path).name

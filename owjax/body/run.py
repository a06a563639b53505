"""The locomotion scenario: ``python -m owjax.simulate +scenario=locomotion body.medium=agar``.

:func:`run_locomotion` takes the scenario's settings (``owjax/conf/scenario/locomotion.yaml``,
a dict or DictConfig), builds the drive (BBC circuit, travelling wave or recorded activation) and
the body, integrates them, and writes ``traces.h5`` (with ``/body/{t, x, y}``), ``body.wcon``,
the curvature kymograph, the centroid track, the animation (``body.gif``) and ``summary.json``.

``body.backend`` chooses what moves the body: ``physics`` (default; the rod model integrated with
diffrax), ``surrogate`` (the trained Fourier neural operator, :mod:`owjax.surrogate`, from the drive's
open-loop activation; refuses what it was not trained for: the closed BBC loop, another duration than
its 5 s, another rotational drag, a medium off the water–agar line) or ``auto`` (the surrogate, except
where it refuses or its error estimate exceeds its bound: then the physics, logged and recorded in
``summary.json`` under ``body_backend``).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from owjax.body import metrics as M
from owjax.body.circuit import ActivationToBody, BBCCircuit, BodyToStretchReceptors
from owjax.body.drive import DIRECTIONS, TravellingWave, load_activation_file
from owjax.body.integrate import BODY_SOLVERS, BodySolver, integrate
from owjax.body.mechanics import ROTATIONAL_DRAG_CHOICES, RodBody
from owjax.body.media import resolve_medium
from owjax.core.component import Composite

__all__ = ["run_locomotion", "DEFAULTS", "validate_config", "build_scenario", "simulate_locomotion"]

DRIVES = ("bbc", "wave", "file")
BODY_BACKENDS = ("physics", "surrogate", "auto")
log = logging.getLogger("owjax.body")

#: the structure of conf/scenario/locomotion.yaml with its defaults
DEFAULTS: dict[str, Any] = {
    "scenario": "locomotion",
    "duration_s": 10.0,
    "dt_out_s": 0.01,
    "transient_s": 2.0,
    "drive": "bbc",
    "body": {"medium": "agar", "rotational_drag": "bbc_code", "backend": "physics", "surrogate_model": None,
             "surrogate_ensemble": None},
    "circuit": {"avb_current": 0.675, "neuron_time_constant_s": 0.005, "threshold_width": 0.01},
    "wave": {"frequency_hz": 0.44, "wavelength_body_lengths": 0.6, "amplitude": 0.7, "direction": "forward",
             "dorsal_bias": 0.0},
    "file": {"path": None},
    "body_solver": {"method": "tsit5", "rtol": 1e-4, "atol": 1e-4, "dt0_s": 1e-3, "max_steps": 200_000},
    "outputs": {"figures": True, "animation": True, "animation_fps": 10, "wcon": True},
}

#: top-level keys of owjax.simulate's own config, tolerated (and ignored) when the scenario is composed into it
SIMULATE_KEYS = {"model", "network", "stimulus", "solver", "duration_ms", "dt_out_ms", "dtype", "params", "progress",
                 "figures", "muscle_max_ca_mM", "hydra", "intestine", "defaults", "seed", "experiment"}


def _plain(cfg) -> dict:
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(cfg, Mapping):
        raise ValueError(f"locomotion config must be a mapping, got {type(cfg).__name__}")
    return copy.deepcopy(dict(cfg))


def _number(where: str, v, positive: bool = True, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(v, bool):
        raise ValueError(f"{where} must be a number, got {v!r}")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a number, got {v!r}") from None
    if not math.isfinite(x) or (positive and x <= 0):
        raise ValueError(f"{where} must be a {'positive ' if positive else ''}finite number, got {v!r}")
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        raise ValueError(f"{where} must be in [{lo}, {hi}], got {v!r}")
    return x


def validate_config(cfg) -> dict:
    """The scenario settings merged over :data:`DEFAULTS` and checked.

    Raises:
        ValueError: unknown keys (naming the allowed ones) or bad values (naming the allowed range).
    """
    raw = _plain(cfg)
    out = copy.deepcopy(DEFAULTS)
    unknown = sorted(set(raw) - set(DEFAULTS) - SIMULATE_KEYS)
    if unknown:
        raise ValueError(f"unknown locomotion setting(s) {unknown}; allowed: {sorted(DEFAULTS)}")
    for k, v in raw.items():
        if k not in DEFAULTS:
            continue
        if isinstance(DEFAULTS[k], dict):
            if v is None:
                continue
            if not isinstance(v, Mapping):
                raise ValueError(f"{k} must be a mapping with keys {sorted(DEFAULTS[k])}, got {v!r}")
            bad = sorted(set(v) - set(DEFAULTS[k]))
            if bad:
                raise ValueError(f"unknown {k} setting(s) {bad}; allowed: {sorted(DEFAULTS[k])}")
            out[k].update(v)
        else:
            out[k] = v
    if out["scenario"] != "locomotion":
        raise ValueError(f"scenario must be 'locomotion', got {out['scenario']!r}")
    if out["drive"] not in DRIVES:
        raise ValueError(f"unknown drive {out['drive']!r}; allowed: {list(DRIVES)}")
    out["duration_s"] = _number("duration_s", out["duration_s"])
    out["dt_out_s"] = _number("dt_out_s", out["dt_out_s"])
    out["transient_s"] = _number("transient_s", out["transient_s"], positive=False, lo=0.0)
    if out["dt_out_s"] > out["duration_s"] / 4:
        raise ValueError(f"dt_out_s={out['dt_out_s']} is too coarse for duration_s={out['duration_s']} (need ≥ 4 samples)")
    resolve_medium(out["body"]["medium"])  # raises with the allowed choices
    rot = out["body"]["rotational_drag"]
    if isinstance(rot, str) and rot not in ROTATIONAL_DRAG_CHOICES:
        raise ValueError(f"unknown body.rotational_drag {rot!r}; allowed: {sorted(ROTATIONAL_DRAG_CHOICES)} or a number")
    if out["body"]["backend"] not in BODY_BACKENDS:
        raise ValueError(f"unknown body.backend {out['body']['backend']!r}; allowed: {list(BODY_BACKENDS)}")
    if out["body"]["surrogate_ensemble"] not in (None, True, False):
        raise ValueError(f"body.surrogate_ensemble must be null (use the model's ensemble members if it has any), "
                         f"true or false; got {out['body']['surrogate_ensemble']!r}")
    w = out["wave"]
    for k in ("frequency_hz", "wavelength_body_lengths"):
        w[k] = _number(f"wave.{k}", w[k])
    w["amplitude"] = _number("wave.amplitude", w["amplitude"], positive=False, lo=0.0, hi=1.0)
    w["dorsal_bias"] = _number("wave.dorsal_bias", w["dorsal_bias"], positive=False, lo=-1.0, hi=1.0)
    if w["direction"] not in DIRECTIONS:
        raise ValueError(f"unknown wave.direction {w['direction']!r}; allowed: {list(DIRECTIONS)}")
    c = out["circuit"]
    c["avb_current"] = _number("circuit.avb_current", c["avb_current"], positive=False)
    c["neuron_time_constant_s"] = _number("circuit.neuron_time_constant_s", c["neuron_time_constant_s"])
    c["threshold_width"] = _number("circuit.threshold_width", c["threshold_width"])
    if out["drive"] == "file" and not out["file"]["path"]:
        raise ValueError("drive=file needs file.path (a .npz with t_s and activation, or an owjax traces .h5)")
    s = out["body_solver"]
    if s["method"] not in BODY_SOLVERS:
        raise ValueError(f"unknown body_solver.method {s['method']!r}; allowed: {list(BODY_SOLVERS)}")
    for k in ("rtol", "atol", "dt0_s"):
        s[k] = _number(f"body_solver.{k}", s[k])
    s["max_steps"] = int(_number("body_solver.max_steps", s["max_steps"]))
    o = out["outputs"]
    o["animation_fps"] = int(_number("outputs.animation_fps", o["animation_fps"]))
    dtype = str(raw.get("dtype", "float64"))
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    out["dtype"] = dtype
    return out


def build_scenario(cfg: Mapping) -> tuple[Composite, str]:
    """The composite (drive or circuit + body) for validated settings; returns (composite, drive name)."""
    from owjax.core.precision import require_dtype

    dtype = require_dtype(cfg.get("dtype", "float64"), "locomotion")
    body = RodBody(cfg["body"]["medium"], rotational_drag=cfg["body"]["rotational_drag"], dtype=dtype)
    drive = cfg["drive"]
    if drive == "bbc":
        circuit = BBCCircuit(**cfg["circuit"], dtype=dtype)
        return Composite({"circuit": circuit, "body": body}, [BodyToStretchReceptors(), ActivationToBody()]), drive
    if drive == "wave":
        src = TravellingWave(**cfg["wave"], dtype=dtype)
    else:
        src = load_activation_file(cfg["file"]["path"])
        src = type(src)(np.asarray(src.t_s), np.asarray(src.values), dtype=dtype)
    return Composite({"drive": src, "body": body}, [ActivationToBody(source="drive")]), drive


def _activations(comp: Composite, drive: str, t_s: np.ndarray, ys: dict) -> np.ndarray:
    """(T, 2, 48) muscle activation actually applied to the body at the output times."""
    if drive == "bbc":
        return np.maximum(np.asarray(ys["circuit"]["muscle"]), 0.0)
    src = comp["drive"]
    return np.asarray(jax.vmap(src.activation)(jnp.asarray(t_s, src.dtype)))


def _surrogate_refusal(c: dict, drive: str) -> str:
    """Why the body surrogate cannot stand in for the physics in this scenario ("" if it can)."""
    if drive == "bbc":
        return ("drive=bbc is a closed loop (the body's stretch receptors drive the circuit), while the surrogate maps "
                "an open-loop activation history to a trajectory; use drive=wave or drive=file")
    if resolve_medium(c["body"]["medium"]).value is None:
        return "the surrogate takes media on the water–agar line only (agar, water or a number in [0, 1])"
    if c["body"]["rotational_drag"] != "bbc_code":
        return "the surrogate was trained with body.rotational_drag=bbc_code"
    return ""


def _surrogate_body(c: dict, comp: Composite, drive: str) -> tuple[dict | None, dict]:
    """The body's skeleton from the surrogate, or (None, why) where the physics must run instead.

    Returns:
        (``{"t_s", "x", "y", "phi"}`` with x, y (T, 49) mm and phi (T, 49) rad, or None; the
        ``body_backend`` record for the summary). Raises ValueError for ``backend=surrogate``
        where the surrogate cannot be used (the reason named).
    """
    from owjax.surrogate.component import BodySurrogate

    backend = c["body"]["backend"]
    info = {"requested": backend, "used": "surrogate", "reason": "", "error_estimate_body_lengths": None}

    def refuse(reason: str):
        if backend == "surrogate":
            raise ValueError(f"body.backend=surrogate cannot run this scenario: {reason} (body.backend=auto runs the "
                             "physics instead)")
        log.warning("body.backend=auto: running the physics (%s)", reason)
        return None, {**info, "used": "physics", "reason": reason}

    why = _surrogate_refusal(c, drive)
    if why:
        return refuse(why)
    sur = BodySurrogate.load(c["body"]["surrogate_model"], ensemble=c["body"]["surrogate_ensemble"])
    info["model"] = str(c["body"]["surrogate_model"] or "shipped (owjax/data/surrogate/body_fno)")
    info["bound_body_lengths"] = sur.bound
    n = int(round(c["duration_s"] / c["dt_out_s"]))
    t_s = np.arange(n + 1) * c["dt_out_s"]
    grid = sur.grid_reason(t_s)
    if grid:
        return refuse(f"{grid} (set duration_s={sur.settings['duration_s']:g} and dt_out_s between "
                      f"{sur.settings['dt_data_s'] / 2:g} and {1.25 * sur.settings['dt_train_s']:g})")
    src = comp["drive"]
    act = np.asarray(jax.vmap(src.activation)(jnp.asarray(t_s, src.dtype)), np.float64)
    if act.min() < 0 or act.max() > 1:
        return refuse(f"the drive's activation leaves [0, 1] (range [{act.min():.3g}, {act.max():.3g}])")
    # auto: the mean of the primary and its averaged ensemble members (computed for the estimate anyway)
    res = sur.predict(t_s, act, resolve_medium(c["body"]["medium"]).value, backend="surrogate",
                      average=backend == "auto")
    est = float(res.error_estimate[0])
    info["error_estimate_body_lengths"] = est
    if res.beyond_bound[0]:
        if backend == "auto":
            return refuse(f"estimated error {est:.3g} L > bound {sur.bound:g} L")
        info["reason"] = f"beyond the bound: estimated error {est:.3g} L > {sur.bound:g} L (no fallback requested)"
    info["models_averaged"] = int(res.n_models)
    x, y = res.skeleton()
    th = res.tangent_angle_rad[0]
    rod = np.concatenate([th[:, :1], 0.5 * (th[:, 1:] + th[:, :-1]), th[:, -1:]], -1)
    return {"t_s": t_s, "x": x[0], "y": y[0], "phi": rod + np.pi / 2, "activation": act}, info


def simulate_locomotion(cfg) -> dict:
    """Validate, build and integrate; returns arrays and metrics without writing files.

    With ``body.backend`` surrogate (or auto, where the surrogate may be used) the body's skeleton
    comes from the surrogate; the rod orientations ``phi`` are then the segments' mean direction + π/2
    (the dorsal side), and the solver entries of the summary are absent.
    """
    c = validate_config(cfg)
    comp, drive = build_scenario(c)
    if c["body"]["backend"] != "physics":
        t0 = time.perf_counter()
        out, info = _surrogate_body(c, comp, drive)
        if out is not None:
            wall = time.perf_counter() - t0
            summary = M.locomotion_summary(out["t_s"], out["x"], out["y"], out["phi"], transient_s=c["transient_s"])
            summary.update({"medium": resolve_medium(c["body"]["medium"]).as_dict(), "drive": drive,
                            "duration_s": c["duration_s"], "body_backend": info,
                            "wall_s_including_compile": wall, "dtype": c["dtype"]})
            ys = {"body": {k: out[k] for k in ("x", "y", "phi")}}
            return {"config": c, "composite": comp, "drive": drive, "t_s": out["t_s"], "ys": ys,
                    "activation": out["activation"], "summary": summary}
    else:
        info = {"requested": "physics", "used": "physics", "reason": ""}
    s = c["body_solver"]
    solver = BodySolver(s["method"], s["rtol"], s["atol"], s["dt0_s"], s["max_steps"])
    t0 = time.perf_counter()
    res = integrate(comp, c["duration_s"], c["dt_out_s"], solver)
    wall = time.perf_counter() - t0
    b = res.ys["body"]
    summary = M.locomotion_summary(res.t_s, b["x"], b["y"], b["phi"], transient_s=c["transient_s"])
    med = resolve_medium(c["body"]["medium"])
    summary.update({"medium": med.as_dict(), "drive": drive, "duration_s": c["duration_s"],
                    "solver": {**s, "num_steps": res.num_steps, "num_rejected": res.num_rejected},
                    "wall_s_including_compile": wall, "dtype": c["dtype"], "body_backend": info})
    return {"config": c, "composite": comp, "drive": drive, "t_s": res.t_s, "ys": res.ys,
            "activation": _activations(comp, drive, res.t_s, res.ys), "summary": summary}


def _write_traces(path: Path, sim: dict) -> Path:
    from owjax.traces import Traces, write_traces

    t_s, ys = sim["t_s"], sim["ys"]
    b = ys["body"]
    n_rods = b["x"].shape[1]
    pops = {"body": {"names": [f"rod{i:02d}" for i in range(n_rods)], "t": t_s, "x": b["x"].T, "y": b["y"].T,
                     "phi": b["phi"].T,
                     "muscle_activation": sim["activation"].reshape(len(t_s), -1).T}}
    if "circuit" in ys:
        n_units = ys["circuit"]["neuron"].shape[-1]
        pops["circuit"] = {"names": [f"DB{i + 1:02d}" for i in range(n_units)] + [f"VB{i + 1:02d}" for i in range(n_units)],
                           "activity": ys["circuit"]["neuron"].reshape(len(t_s), -1).T}
    c = sim["config"]
    attrs = {"model": "bbc2012_body", "network": sim["drive"], "simulator": "owjax.body" if sim["summary"].get("body_backend", {}).get("used", "physics") == "physics"
             else "owjax.surrogate (FNO body surrogate)",
             "solver": c["body_solver"]["method"], "dt_out_ms": c["dt_out_s"] * 1000.0,
             "duration_ms": c["duration_s"] * 1000.0, "medium": sim["summary"]["medium"]["name"],
             "body_units": "t s, x/y mm, phi rad; muscle_activation rows: dorsal segments 1-48 then ventral 1-48"}
    return write_traces(path, Traces(t_ms=t_s * 1000.0, populations=pops, attrs=attrs))


def run_locomotion(cfg: Mapping, outdir: Path) -> dict:
    """Run the locomotion scenario and write its outputs to ``outdir``.

    Arguments:
        cfg: settings with the structure of ``conf/scenario/locomotion.yaml`` (dict or DictConfig;
            owjax.simulate's own top-level keys are tolerated, ``dtype`` is honoured).
        outdir: output folder (created).

    Returns:
        The summary dict (also written to ``summary.json``): ``speed_mm_s``, ``frequency_hz``,
        ``wavelength_body_lengths``, ``amplitude``, ``direction``, ``gait`` and more.
    """
    from owjax.body import plots
    from owjax.body.wcon import write_wcon
    from owjax.core.checkpoint import atomic_write_json

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    sim = simulate_locomotion(cfg)
    c, summary = sim["config"], sim["summary"]
    t_s, b = sim["t_s"], sim["ys"]["body"]
    files = {"traces": str(_write_traces(outdir / "traces.h5", sim).name)}
    o = c["outputs"]
    label = f"{summary['medium']['name']}, drive={sim['drive']}"
    if o["wcon"]:
        write_wcon(outdir / "body.wcon", t_s, b["x"], b["y"], settings=c,
                   extra={k: summary[k] for k in ("speed_mm_s", "frequency_hz", "wavelength_body_lengths", "gait")})
        files["wcon"] = "body.wcon"
    if o["figures"]:
        kappa = M.curvature(b["x"], b["y"], b["phi"])
        plots.plot_kymograph(t_s, kappa, outdir / "curvature_kymograph.png", f"curvature ({label})")
        plots.plot_track(t_s, b["x"], b["y"], outdir / "centroid_track.png", f"centroid track ({label})")
        files.update(kymograph="curvature_kymograph.png", track="centroid_track.png")
    if o["animation"]:
        radius = np.asarray(sim["composite"]["body"].radius_mm)
        plots.save_animation(t_s, b["x"], b["y"], radius, b["phi"], outdir / "body.gif", medium=label,
                             fps=o["animation_fps"])
        files["animation"] = "body.gif"
    summary["files"] = files
    atomic_write_json(outdir / "summary.json", summary)
    return summary

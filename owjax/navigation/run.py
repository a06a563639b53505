"""``python -m owjax.simulate +scenario=thermotaxis | klinotaxis``: a batch of worms in the closed loop.

Thermotaxis (``owjax/conf/scenario/thermotaxis.yaml``)::

    python -m owjax.simulate +scenario=thermotaxis cultivation_temp_c=25 ablate=[AIYL,AIYR] n_worms=64 duration_s=1200

writes ``summary.json`` (``thermotaxis_index``, ``isothermal_fraction``, ``mean_final_temp_c``,
``sd_final_temp_c``, ``left_plate_fraction``, the settings, where the parameters came from, wall
time), ``tracks.npz`` (``t_s``, ``pos_cm`` (worms, T, 2), ``temp_c``) and ``tracks.png`` (tracks over
the field, the T_c isotherm dashed).

Klinotaxis (``owjax/conf/scenario/klinotaxis.yaml``): the same loop on the Izquierdo–Lockery NaCl
peak (λ = 1.61 cm), worms starting 4.5 cm away; the AFD transducer reads the NaCl field through an
affine map (``navigation.stimulus_map``) because owjax has no ASE transducer — a stand-in, said so in
the summary. ``summary.json`` has ``chemotaxis_index`` (A − C)/(A + C).

Body level (``navigation.body_level``): ``navigation`` (default; the point body of
:mod:`owjax.navigation.body`, minutes-long runs) or ``mechanical`` (the same circuit and couplings
driving BBC's motor loop and 49-rod body, :mod:`owjax.navigation.mechanical`; settings under
``navigation.mechanical``: ``medium``, ``neck_amplitude``, ``neck_segments``, ``batch``; pirouettes are
events when ``navigation.body.pirouette_duration_s`` is set, as on the navigation body). The mechanical
level costs ≈ 0.06 s of this CPU per worm and simulated second, turns without reversing (BBC's loop has
no A-class neurons) and has no plate-edge wall; the summary says which level ran.

Parameters (``navigation.params``): ``shipped`` (``owjax/data/thermotaxis/head_circuit.npz``, written
by ``python -m owjax.fit +experiment=thermotaxis ship=true``), ``c302`` (c302's circuit untrained,
unit read-outs), or a path to a ``head_circuit.npz`` of a fit's run directory.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

__all__ = ["run_navigation"]

_NAV_KEYS = {"params", "field", "window_s", "circuit", "body", "start", "start_xy_cm", "batch", "stimulus_map", "memory_tau_s",
             "body_level", "mechanical"}
#: body levels (``navigation.body_level``) and the keys of ``navigation.mechanical``
BODY_LEVELS = ("navigation", "mechanical")
_MECH_KEYS = {"medium", "neck_amplitude", "neck_segments", "batch"}


def _nav_config(cfg) -> dict:
    from omegaconf import DictConfig, OmegaConf

    s = cfg.get("navigation")
    s = OmegaConf.to_container(s, resolve=True) if isinstance(s, DictConfig) else dict(s or {})
    unknown = sorted(set(s) - _NAV_KEYS)
    if unknown:
        raise ValueError(f"navigation: unknown key(s) {unknown}; allowed: {sorted(_NAV_KEYS)}")
    return s


def _values(params: str | None, circuit) -> tuple[dict | None, str]:
    from owjax.navigation.params import DEFAULT_DATA, load_values

    if params in (None, "c302"):
        return None, "c302 (untrained)"
    path = DEFAULT_DATA if params == "shipped" else Path(str(params))
    return load_values(path, circuit.synapse_names, circuit.cell_names), str(path)


def run_navigation(cfg, outdir: str | Path) -> dict:
    """Run the thermotaxis or klinotaxis scenario (see the module docstring); returns the summary."""
    import jax

    from owjax import __version__
    from owjax.core.checkpoint import atomic_write_json
    from owjax.navigation.arena import ScaledField
    from owjax.navigation.evaluate import run_worms
    from owjax.navigation.metrics import chemotaxis_index, thermotaxis_summary
    from owjax.navigation.plots import plot_tracks
    from owjax.navigation.setup import CULTIVATION_MEMORY_TAU_S, draw_worms, field_from_config, head_circuit, make_loop

    scenario = str(cfg.scenario)
    nav = _nav_config(cfg)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    dtype = "float32" if str(cfg.get("dtype", "float64")) == "float32" else "float64"
    circ_cfg = dict(nav.get("circuit") or {})
    bad = sorted(set(circ_cfg) - {"parameter_set", "dt_ms"})
    if bad:
        raise ValueError(f"navigation.circuit: unknown key(s) {bad}; allowed: ['dt_ms', 'parameter_set']")
    pset, dt_ms = str(circ_cfg.get("parameter_set", "C1")), float(circ_cfg.get("dt_ms", 10.0))
    n_worms, duration_s = int(cfg.n_worms), float(cfg.duration_s)
    dt_out_s = float(cfg.get("dt_out_s", 1.0))
    if n_worms < 1 or not duration_s > 0 or not dt_out_s > 0:
        raise ValueError(f"n_worms ({n_worms}) must be >= 1, duration_s ({duration_s}) and dt_out_s ({dt_out_s}) > 0")
    if not np.isclose(round(duration_s / dt_out_s) * dt_out_s, duration_s):
        raise ValueError(f"duration_s={duration_s} must be a multiple of dt_out_s={dt_out_s}")
    ablate = [str(c) for c in (cfg.get("ablate") or [])]
    circuit = head_circuit(pset, dt_ms, dtype)
    for c in ablate:
        circuit.index(c)  # unknown names raise with the valid ones
    values, source = _values(nav.get("params", "shipped"), circuit)
    base = field_from_config(nav["field"])
    field = base
    if scenario == "klinotaxis":
        m = dict(nav.get("stimulus_map") or {})
        if set(m) != {"offset", "scale"}:
            raise ValueError("navigation.stimulus_map needs exactly {offset, scale} (°C-equivalent = offset + scale·C)")
        field = ScaledField(base, float(m["offset"]), float(m["scale"]))
        tc = float(m["offset"])  # the transducer's memory: adapted to the plate's background
    else:
        tc = float(cfg.cultivation_temp_c)
    body = dict(nav.get("body") or {})
    memory_tau_s = nav.get("memory_tau_s", CULTIVATION_MEMORY_TAU_S)
    level = str(nav.get("body_level", "navigation"))
    if level not in BODY_LEVELS:
        raise ValueError(f"navigation.body_level={level!r}; allowed: {list(BODY_LEVELS)}")
    mech = dict(nav.get("mechanical") or {})
    bad = sorted(set(mech) - _MECH_KEYS)
    if bad:
        raise ValueError(f"navigation.mechanical: unknown key(s) {bad}; allowed: {sorted(_MECH_KEYS)}")
    start = str(nav.get("start", "uniform"))
    worms = draw_worms(jax.random.PRNGKey(int(cfg.get("seed", 0))), n_worms, field, [tc], duration_s,
                       float(body.get("noise_dt_s", 1.0)), start_xy_cm=nav.get("start_xy_cm"), dtype=dtype,
                       start=start)
    t_solve = time.perf_counter()
    if level == "navigation":
        loop = make_loop(field, body, values, pset, dt_ms, dtype, ablate, duration_s=duration_s,
                         memory_tau_s=memory_tau_s)
        pos, v_range = run_worms(loop, worms, duration_s, dt_out_s, batch=min(int(nav.get("batch", 64)), n_worms),
                                 return_potential_range=True)
    else:
        from owjax.navigation.mechanical import make_mechanical_loop, run_worms_mechanical

        loop = make_mechanical_loop(field, values, pset, dt_ms, dtype, ablate, memory_tau_s=memory_tau_s,
                                    medium=mech.get("medium", "agar"),
                                    neck_amplitude=float(mech.get("neck_amplitude", 0.3)),
                                    neck_segments=int(mech.get("neck_segments", 8)),
                                    pirouette_duration_s=body.get("pirouette_duration_s"),
                                    noise_dt_s=float(body.get("noise_dt_s", 1.0)))
        pos, v_range, _ = run_worms_mechanical(loop, worms, duration_s, dt_out_s,
                                               batch=min(int(mech.get("batch", 8)), n_worms))
    solve_s = time.perf_counter() - t_solve
    t = np.arange(pos.shape[1]) * dt_out_s
    on_plate = np.asarray(base.on_plate(pos[..., 0], pos[..., 1]))
    summary = {"scenario": scenario, "n_worms": n_worms, "duration_s": duration_s, "ablated": ablate,
               "parameters": source, "field": dict(nav["field"]), "circuit": f"graded reduction of c302 {pset}, "
               f"Δ = {dt_ms} ms", "dtype": dtype, "seed": int(cfg.get("seed", 0)), "owjax_version": __version__,
               "transducer_memory_tau_s": memory_tau_s, "body_level": level,
               "start": "start_xy_cm" if nav.get("start_xy_cm") is not None else start}
    if level == "mechanical":
        summary["mechanical"] = {"medium": mech.get("medium", "agar"),
                                 "neck_amplitude": float(mech.get("neck_amplitude", 0.3)),
                                 "neck_segments": int(mech.get("neck_segments", 8)),
                                 "pirouette_duration_s": body.get("pirouette_duration_s"),
                                 "note": "BBC motor loop + 49-rod body; a pirouette is a ventral turn (half the AVB "
                                         "drive, neck bent ventrally; no backward crawling); no plate-edge wall"}
    if scenario == "klinotaxis":
        summary.update(chemotaxis_index(pos[:, -1]))
        summary["left_plate_fraction"] = float(np.mean(~np.all(on_plate, axis=1)))
        summary["stimulus"] = ("NaCl read by the AFD transducer through navigation.stimulus_map (°C-equivalent "
                               f"= {field.offset} + {field.scale}·C/mM): a stand-in, owjax has no ASE transducer")
        title = f"klinotaxis: CI {summary['chemotaxis_index']:.2f} ({n_worms} worms, {duration_s:g} s)"
        iso = None
    else:
        temp = np.asarray(field(pos[..., 0], pos[..., 1]))
        summary.update(thermotaxis_summary(t, temp, tc, window_s=float(nav.get("window_s", 600.0)),
                                           on_plate=on_plate))
        title = (f"T_c = {tc:g} °C{' ablated ' + ','.join(ablate) if ablate else ''}: final "
                 f"{summary['mean_final_temp_c']:.1f} ± {summary['sd_final_temp_c']:.1f} °C, index "
                 f"{summary['thermotaxis_index']:.2f}, isothermal {summary['isothermal_fraction']:.2f}")
        iso = tc
        np.savez_compressed(outdir / "tracks.npz", t_s=t, pos_cm=pos, temp_c=temp)
    if scenario == "klinotaxis":
        np.savez_compressed(outdir / "tracks.npz", t_s=t, pos_cm=pos)
    summary.update(v_range)
    summary["solve_wall_time_s"] = round(solve_s, 3)
    summary["wall_time_s"] = round(time.perf_counter() - t0, 3)
    if bool(cfg.get("figures", True)):
        plot_tracks(outdir / "tracks.png", base, pos, title, isotherm=iso)
    atomic_write_json(outdir / "summary.json", summary)
    return summary


"""``python -m owjax.simulate``: simulate a c302 network and write traces, a figure and a summary.

Hydra app (``conf/simulate.yaml``), groups ``model`` (c302_C0/C1/C2), ``network`` (full, muscles,
iclamp, syns, oscillator, social, neuroml, custom), ``stimulus`` (c302, none, pulses) and ``solver``
(tsit5, fast, dopri5, dopri8, kvaerno5, kencarp4, euler, heun). Examples::

    python -m owjax.simulate                                   # C1, Full, c302's stimulus, 1000 ms
    python -m owjax.simulate model=c302_C2 network=muscles duration_ms=500
    python -m owjax.simulate solver=fast dtype=float32              # ≈ 2× faster, ≈ same accuracy
    python -m owjax.simulate network=neuroml network.file=/path/c302_C1_Full.net.nml
    python -m owjax.simulate network=custom network.cells=[AVBL,AVBR,DB1] stimulus=pulses

Writes into the Hydra run directory: ``traces.h5`` (DESIGN.md layout), ``overview.png`` and
``summary.json`` (settings, wall time, solver statistics, validation metrics).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("owjax.simulate")
logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # no "no TPU" chatter


def _param_file(path, with_network: bool, with_intestine: bool) -> tuple[str | None, str | None]:
    """``params=PATH`` (a file written by ``owjax.fit``) and the model it belongs to: ``"network"``
    (applied to the c302 network) or ``"intestine"`` (applied to the intestine oscillator)."""
    if path in (None, "", "None"):
        return None, None
    from owjax.fitting.param_files import load_param_file

    kind = str(load_param_file(path).get("model_kind"))
    wanted = {"network": with_network, "intestine": with_intestine}
    if kind not in wanted:
        raise ValueError(f"params={path}: parameters of a {kind!r} model; simulate applies 'network' or "
                         "'intestine' parameter files")
    if not wanted[kind]:
        raise ValueError(f"params={path} holds {kind} parameters but this run has no {kind} "
                         + ("(network=none)" if kind == "network" else "(set model.intestine=true or +scenario=intestine)"))
    return str(path), kind


def run_simulation(cfg: DictConfig | dict, outdir: str | Path) -> dict:
    """Do what ``python -m owjax.simulate`` does, with ``cfg`` as composed by Hydra. Returns the summary."""
    from owjax import __version__
    from owjax.core.checkpoint import atomic_write_json
    from owjax.neural.build import build_model, build_spec
    from owjax.organs.muscles import muscle_activation, plot_kymograph
    from owjax.plotting import plot_overview
    from owjax.core.solve import get_solver, solve
    from owjax.traces import Traces, write_traces
    from owjax.core.units import CA_STATE_SCALE
    from owjax.validate import basic_metrics, muscle_checks

    cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    check_config(cfg)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    scenario = str(cfg.get("scenario", "default"))
    if scenario == "locomotion":  # the body and its neuromechanical loop (owjax.body)
        from owjax.body.run import run_locomotion

        return run_locomotion(cfg, outdir)
    if scenario == "sensory":  # a stimulus → the shipped transducer → c302 (owjax.sensory)
        from owjax.sensory.scenario import run_sensory

        return run_sensory(cfg, outdir)
    if scenario in ("thermotaxis", "klinotaxis"):  # the closed loop arena → transducer → circuit → body
        from owjax.navigation.run import run_navigation

        return run_navigation(cfg, outdir)
    t_start = time.perf_counter()
    net = cfg.network
    with_intestine = bool(cfg.model.get("intestine", False))
    with_network = str(net.get("config")).lower() != "none"
    if not (with_network or with_intestine):
        raise ValueError("network=none simulates nothing unless the intestine is on (model.intestine=true)")
    solver = get_solver(OmegaConf.to_container(cfg.solver, resolve=True))
    params_path, params_kind = _param_file(cfg.get("params"), with_network, with_intestine)
    model = spec = None
    if with_network:
        spec = build_spec(
            parameter_set=cfg.model.parameter_set,
            network=net.get("config"),
            file=net.get("file"),
            cells=list(net.cells) if net.get("cells") else None,
            stimulus_mode=cfg.stimulus.mode,
            pulses=[dict(p) for p in cfg.stimulus.get("pulses") or []],
        )
        model = build_model(spec, cfg.dtype, params_path if params_kind == "network" else None)
        log.info(
            "simulating %s (%d cells: %d neurons, %d muscles; %d chemical, %d electrical connections, "
            "%d inputs) for %g ms with %s in %s",
            spec.name, len(spec.cells), len(spec.neuron_names), len(spec.muscle_names), len(spec.chemical),
            len(spec.electrical), len(spec.inputs), cfg.duration_ms, solver.method, cfg.dtype,
        )
    else:
        from owjax.core.precision import require_dtype

        require_dtype(cfg.dtype, "simulate")
    pops = {}
    extra_metrics: dict = {}
    stats: dict
    body_opt = cfg.get("body", False)
    with_body = body_opt is True
    if body_opt not in (None, False, True):
        raise ValueError(f"body={body_opt!r}: outside +scenario=locomotion, body is true or false "
                         "(true attaches owjax's body to c302's muscles; the medium is body_medium)")
    if with_body and not with_network:
        raise ValueError("body=true needs a network with body-wall muscles (network=full or network=muscles)")
    if with_intestine or with_body:
        from owjax.organs.intestine_run import build_intestine, intestine_population
        from owjax.worm import DifferentiableWorm, solve_worm

        intestine = build_intestine(cfg.get("intestine") or {}) if with_intestine else None
        if params_kind == "intestine":
            from owjax.fitting.param_files import apply_param_file

            intestine = apply_param_file(intestine, params_path)
            log.info("intestine parameters from %s", params_path)
        body = None
        if with_body:
            from owjax.body import RodBody

            body = RodBody(cfg.get("body_medium", "agar"))
            if solver.method == "etd2":
                log.warning("the body declares no decay rates, so solver=exponential integrates it as Heun's "
                            "method (slow, ≈ 20× the steps of tsit5 with the body): pass solver=tsit5")
            log.info("with the body (BBC 2012 rod model, medium %s) driven by c302's muscles", cfg.get("body_medium", "agar"))
        worm = DifferentiableWorm(model, intestine, body=body)
        if with_intestine:
            log.info("with the intestine (20 cells%s), strategy %s", ", uncoupled" if
                     (cfg.get("intestine") or {}).get("uncoupled") else "",
                     (cfg.get("intestine") or {}).get("strategy", "coupled"))
        wsol = solve_worm(worm, float(cfg.duration_ms), float(cfg.dt_out_ms), solver,
                          strategy=(cfg.get("intestine") or {}).get("strategy", "coupled"),
                          progress=bool(cfg.progress))
        t_ms, ys, stats = wsol.t_ms, wsol.network, dict(wsol.stats)
        solve_wall, compile_s = wsol.wall_time_s, wsol.compile_time_s
        if with_intestine:
            pops["intestine"], extra_metrics = intestine_population(t_ms, wsol.intestine)
        if with_body:
            from owjax.body.metrics import locomotion_summary

            b = wsol.body
            pops["body"] = {"names": np.array([f"rod{i:02d}" for i in range(b["x"].shape[1])]),
                            "t": t_ms / 1000.0, "x": b["x"].T, "y": b["y"].T, "phi": b["phi"].T}
            extra_metrics["body"] = locomotion_summary(t_ms / 1000.0, b["x"], b["y"], b["phi"],
                                                       transient_s=min(2.0, 0.2 * float(cfg.duration_ms) / 1000.0))
    else:
        sol = solve(model, float(cfg.duration_ms), float(cfg.dt_out_ms), solver, progress=bool(cfg.progress),
                    save=("V", "Ca"))
        t_ms, ys, stats = sol.t_ms, sol.ys, sol.stats
        solve_wall, compile_s = sol.wall_time_s, sol.compile_time_s
    if with_network:
        V = ys["V"].T.astype(np.float64)
        Ca = (ys["Ca"].T / CA_STATE_SCALE).astype(np.float64)
        muscle = model.muscle_mask
        if (~muscle).any():
            pops["neurons"] = dict(names=np.array(model.cell_names)[~muscle], V=V[~muscle], Ca=Ca[~muscle])
        if muscle.any():
            ca_m = Ca[muscle]
            pops["muscles"] = dict(
                names=np.array(model.cell_names)[muscle], V=V[muscle], Ca=ca_m,
                activation=np.asarray(muscle_activation(ca_m, float(cfg.get("muscle_max_ca_mM", 4e-7)))),
            )
    network_name = spec.name if spec is not None else "none"
    traces = Traces(
        t_ms=t_ms,
        populations=pops,
        attrs=dict(
            model=cfg.model.name, network=network_name, simulator="owjax", solver=solver.method,
            dt_out_ms=float(cfg.dt_out_ms), duration_ms=float(cfg.duration_ms), dtype=cfg.dtype,
        ),
    )
    write_traces(outdir / "traces.h5", traces)
    figures = []
    if cfg.get("figures", True) and with_network:
        figures.append(str(plot_overview(traces, outdir / "overview.png",
                                         title=f"owjax {cfg.model.name} {network_name}").name))
        if "muscles" in pops:
            m = pops["muscles"]
            figures.append(str(plot_kymograph(t_ms, m["activation"], m["names"], outdir / "muscle_kymograph.png",
                                              title=f"{cfg.model.name} {network_name}: muscle activation").name))
    if cfg.get("figures", True) and with_intestine:
        from owjax.organs.intestine_run import plot_intestine

        figures.append(str(plot_intestine(traces, outdir / "intestine_ca_wave.png").name))
    metrics = basic_metrics(traces)
    metrics.update(extra_metrics)
    warnings_ = physiology_warnings(metrics)
    for w in warnings_:
        log.warning(w)
    if "muscles" in pops:
        mc = muscle_checks(t_ms, pops["muscles"]["activation"], pops["muscles"]["Ca"])
        metrics.update({f"muscle_{k}": v for k, v in mc.items()})
    summary = dict(
        owjax_version=__version__,
        model=cfg.model.name,
        parameter_set=cfg.model.parameter_set,
        network=network_name,
        counts=spec.counts() if spec is not None else {},
        intestine=with_intestine,
        params=dict(file=params_path, model=params_kind) if params_path else None,
        duration_ms=float(cfg.duration_ms),
        dt_out_ms=float(cfg.dt_out_ms),
        dtype=cfg.dtype,
        solver=dict(OmegaConf.to_container(cfg.solver, resolve=True)),
        solver_stats=stats,
        compile_time_s=round(compile_s, 3),
        solve_wall_time_s=round(solve_wall, 3),
        total_wall_time_s=round(time.perf_counter() - t_start, 3),
        metrics=metrics,
        **{k: extra_metrics[k] for k in ("defecation_period_s", "wave_direction", "n_cycles") if k in extra_metrics},
        files=["traces.h5", *figures],
        warnings=warnings_,
    )
    atomic_write_json(outdir / "summary.json", summary)
    return summary


@hydra.main(config_path="conf", config_name="simulate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from owjax.core.solve import SolverStepsExhausted
    from owjax.neural.spec import UnknownCellError

    from owjax.core.precision import PrecisionError, set_precision

    outdir = Path(HydraConfig.get().runtime.output_dir)
    try:
        set_precision(str(cfg.get("dtype", "float64")))  # once, here at the entry point
        s = run_simulation(cfg, outdir)
    except (ValueError, UnknownCellError, FileNotFoundError, SolverStepsExhausted, PrecisionError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if s.get("scenario") == "sensory":
        print(f"\nowjax sensory ({s['modality']}): stimulus {s['stimulus_range']}, transducer response "
              f"{s['response_range']}, driven {s['driven_cells']}, peak Ca {s['driven_cell_peak_ca_mM']}\n"
              f"  outputs in {outdir}")
        return
    if s.get("scenario") in ("thermotaxis", "klinotaxis"):
        keys = ("thermotaxis_index", "isothermal_fraction", "mean_final_temp_c", "sd_final_temp_c",
                "chemotaxis_index", "left_plate_fraction")
        print(f"\nowjax {s['scenario']} ({s['n_worms']} worms, {s['duration_s']:g} s, ablated {s['ablated']}): "
              + ", ".join(f"{k} {s[k]:.3g}" for k in keys if k in s) + f"\n  outputs in {outdir}")
        return
    if "speed_mm_s" in s:  # the locomotion scenario (owjax.body)
        print(f"\nowjax locomotion: speed {s['speed_mm_s']:.3g} mm/s ({s.get('direction')}), frequency "
              f"{s['frequency_hz']:.3g} Hz, wavelength {s['wavelength_body_lengths']:.3g} body lengths, "
              f"gait {s.get('gait')}\n  outputs in {outdir}")
        return
    m = s["metrics"]
    lines = [
        f"\nowjax {s['model']} {s['network']}{' + intestine' if s['intestine'] else ''}: "
        f"{s['counts'].get('cells', 0)} network cells, {s['duration_ms']:g} ms in "
        f"{s['solve_wall_time_s']:.2f} s ({s['compile_time_s']:.2f} s compile), steps {s['solver_stats']}",
        f"  V range {m['V_min_mV']:.1f} … {m['V_max_mV']:.1f} mV, all finite: {m['all_finite']}, "
        f"spiking cells: {m['n_spiking_cells']}"
        + (f", muscle activation peak {m['muscle_activation_peak']:.3f}" if "muscle_activation_peak" in m else ""),
    ]
    if s["intestine"]:
        lines.append(
            f"  intestine: defecation period {m['defecation_period_s']:.1f} s, wave {m['wave_direction']}, "
            f"{m['n_cycles']} cycles, all cells oscillate: {m['all_cells_oscillate']}"
        )
    lines.append(f"  outputs in {outdir}")
    print("\n".join(lines))


#: membrane potentials outside this range (mV) are not physiological: the run is flagged
PHYSIOLOGICAL_V_mV = (-150.0, 100.0)


def physiology_warnings(metrics: dict) -> list[str]:
    """Warnings for results no cell can produce (non-finite values, V outside ±100–150 mV); they are
    logged and recorded in ``summary.json`` (the run itself is not stopped: the traces are kept)."""
    out = []
    if not metrics.get("all_finite", True):
        out.append("non-finite values in the traces (NaN/Inf): the solve diverged; check inputs and parameters")
    lo, hi = PHYSIOLOGICAL_V_mV
    vmin, vmax = metrics.get("V_min_mV"), metrics.get("V_max_mV")
    if vmin is not None and vmax is not None and (vmin < lo or vmax > hi):
        out.append(f"membrane potential reached {vmin:.4g} … {vmax:.4g} mV, outside the physiological "
                   f"range {lo:g} … {hi:g} mV: check stimulus amplitudes (pA) and parameter values")
    return out


def _scenario_dir() -> Path:
    return Path(__file__).resolve().parent / "conf" / "scenario"


def available_scenarios() -> list[str]:
    """Names of the simulation scenarios (``owjax/conf/scenario/NAME.yaml``)."""
    return sorted(p.stem for p in _scenario_dir().glob("*.yaml"))


def _allowed_top_keys() -> set[str]:
    import yaml

    keys = {"model", "network", "stimulus", "solver", "hydra", "scenario"}
    base = yaml.safe_load((Path(__file__).resolve().parent / "conf" / "simulate.yaml").read_text()) or {}
    keys |= set(base)
    for p in _scenario_dir().glob("*.yaml"):
        keys |= set(yaml.safe_load(p.read_text()) or {})
    return keys - {"defaults"}


_TYPES = {"duration_ms": (int, float), "dt_out_ms": (int, float), "progress": (bool,), "figures": (bool,),
          "muscle_max_ca_mM": (int, float)}


def check_config(cfg) -> None:
    """Typed check of the composed configuration: unknown top-level keys and wrong types are errors.

    Raises:
        ValueError: naming the key and what is allowed.
    """
    unknown = sorted(set(cfg.keys()) - _allowed_top_keys())
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}: simulate reads {sorted(_allowed_top_keys() - {'hydra'})}")
    for k, types in _TYPES.items():
        v = cfg.get(k)
        if v is not None and (not isinstance(v, types) or (bool not in types and isinstance(v, bool))):
            raise ValueError(f"{k}={v!r} must be {' or '.join(t.__name__ for t in types)}")
    for k in ("duration_ms", "dt_out_ms"):
        v = cfg.get(k)
        if v is not None and not (float(v) > 0):
            raise ValueError(f"{k} must be positive, got {v!r}")
    if cfg.get("dtype") is not None and str(cfg.dtype) not in ("float32", "float64"):
        raise ValueError(f"dtype={cfg.dtype!r}: allowed float32, float64")


def check_experiment_argument(argv: list[str]) -> str | None:
    """One clear line when the command line names a scenario that does not exist, or uses
    ``+experiment=`` (fitting) instead of ``+scenario=``; ``None`` when it is fine."""
    from owjax.fitting.loop import available_experiments
    from owjax.core.errors import unknown_name_message

    scenarios = available_scenarios()
    for a in argv:
        key, _, name = a.partition("=")
        if key in ("+experiment", "experiment") and name:
            if name in available_experiments():
                return (f"{name!r} is a fitting experiment: run it with python -m owjax.fit +experiment={name}; "
                        f"simulation scenarios are chosen with +scenario=NAME ({', '.join(scenarios)})")
            hint = f" (did you mean +scenario={name}?)" if name in scenarios else ""
            return f"simulate takes +scenario=NAME, not +experiment={name}{hint}; scenarios: {', '.join(scenarios)}"
        if key in ("+scenario", "scenario") and name:
            for n in name.split(","):
                if n not in scenarios:
                    return unknown_name_message("simulation scenario", n, tuple(scenarios))
    return None


if __name__ == "__main__":
    _msg = check_experiment_argument(sys.argv[1:])
    if _msg:
        print(f"error: {_msg}", file=sys.stderr)
        sys.exit(2)
    main()

"""``python -m owjax.simulate``: simulate a c302 network and write traces, a figure and a summary.

Hydra app (``conf/simulate.yaml``), groups ``model`` (c302_C0/C1/C2), ``network`` (full, muscles,
iclamp, syns, oscillator, social, neuroml, custom), ``stimulus`` (c302, none, pulses) and ``solver``
(tsit5, dopri5, dopri8, kvaerno5, kencarp4, euler, heun). Examples::

    python -m owjax.simulate                                   # C1, Full, c302's stimulus, 1000 ms
    python -m owjax.simulate model=c302_C2 network=muscles duration_ms=500
    python -m owjax.simulate network=neuroml network.file=/path/c302_C1_Full.net.nml
    python -m owjax.simulate network=custom network.cells=[AVBL,AVBR,DB1] stimulus=pulses

Writes into the Hydra run directory: ``traces.h5`` (DESIGN.md layout), ``overview.png`` and
``summary.json`` (settings, wall time, solver statistics, validation metrics).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("owjax.simulate")
logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # no "no TPU" chatter


def run_simulation(cfg: DictConfig | dict, outdir: str | Path) -> dict:
    """Do what ``python -m owjax.simulate`` does, with ``cfg`` as composed by Hydra. Returns the summary."""
    from . import __version__
    from .build import build_model, build_spec
    from .muscles import muscle_activation, plot_kymograph
    from .plotting import plot_overview
    from .solve import get_solver, solve
    from .traces import Traces, write_traces
    from .units import CA_STATE_SCALE
    from .validate import basic_metrics, muscle_checks

    cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    net = cfg.network
    spec = build_spec(
        parameter_set=cfg.model.parameter_set,
        network=net.get("config"),
        file=net.get("file"),
        cells=list(net.cells) if net.get("cells") else None,
        stimulus_mode=cfg.stimulus.mode,
        pulses=[dict(p) for p in cfg.stimulus.get("pulses") or []],
    )
    model = build_model(spec, cfg.dtype, cfg.get("params"))
    solver = get_solver(OmegaConf.to_container(cfg.solver, resolve=True))
    log.info(
        "simulating %s (%d cells: %d neurons, %d muscles; %d chemical, %d electrical connections, "
        "%d inputs) for %g ms with %s in %s",
        spec.name, len(spec.cells), len(spec.neuron_names), len(spec.muscle_names), len(spec.chemical),
        len(spec.electrical), len(spec.inputs), cfg.duration_ms, solver.method, cfg.dtype,
    )
    sol = solve(model, float(cfg.duration_ms), float(cfg.dt_out_ms), solver, progress=bool(cfg.progress))
    V = sol.ys["V"].T.astype(np.float64)
    Ca = (sol.ys["Ca"].T / CA_STATE_SCALE).astype(np.float64)
    muscle = model.muscle_mask
    pops = {}
    if (~muscle).any():
        pops["neurons"] = dict(names=np.array(model.cell_names)[~muscle], V=V[~muscle], Ca=Ca[~muscle])
    if muscle.any():
        ca_m = Ca[muscle]
        pops["muscles"] = dict(
            names=np.array(model.cell_names)[muscle], V=V[muscle], Ca=ca_m,
            activation=np.asarray(muscle_activation(ca_m, float(cfg.get("muscle_max_ca_mM", 4e-7)))),
        )
    traces = Traces(
        t_ms=sol.t_ms,
        populations=pops,
        attrs=dict(
            model=cfg.model.name, network=spec.name, simulator="owjax", solver=solver.method,
            dt_out_ms=float(cfg.dt_out_ms), duration_ms=float(cfg.duration_ms), dtype=cfg.dtype,
        ),
    )
    write_traces(outdir / "traces.h5", traces)
    figures = []
    if cfg.get("figures", True):
        figures.append(str(plot_overview(traces, outdir / "overview.png",
                                         title=f"owjax {cfg.model.name} {spec.name}").name))
        if "muscles" in pops:
            m = pops["muscles"]
            figures.append(str(plot_kymograph(sol.t_ms, m["activation"], m["names"], outdir / "muscle_kymograph.png",
                                              title=f"{cfg.model.name} {spec.name}: muscle activation").name))
    metrics = basic_metrics(traces)
    if "muscles" in pops:
        mc = muscle_checks(sol.t_ms, pops["muscles"]["activation"], pops["muscles"]["Ca"])
        metrics.update({f"muscle_{k}": v for k, v in mc.items()})
    summary = dict(
        owjax_version=__version__,
        model=cfg.model.name,
        parameter_set=cfg.model.parameter_set,
        network=spec.name,
        counts=spec.counts(),
        duration_ms=float(cfg.duration_ms),
        dt_out_ms=float(cfg.dt_out_ms),
        dtype=cfg.dtype,
        solver=dict(OmegaConf.to_container(cfg.solver, resolve=True)),
        solver_stats=sol.stats,
        compile_time_s=round(sol.compile_time_s, 3),
        solve_wall_time_s=round(sol.wall_time_s, 3),
        total_wall_time_s=round(time.perf_counter() - t_start, 3),
        metrics=metrics,
        files=["traces.h5", *figures],
    )
    tmp = outdir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=float) + "\n")
    os.replace(tmp, outdir / "summary.json")
    return summary


@hydra.main(config_path="../conf", config_name="simulate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from .spec import UnknownCellError

    outdir = Path(HydraConfig.get().runtime.output_dir)
    try:
        s = run_simulation(cfg, outdir)
    except (ValueError, UnknownCellError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    m = s["metrics"]
    print(
        f"\nowjax {s['model']} {s['network']}: {s['counts']['cells']} cells, {s['duration_ms']:g} ms in "
        f"{s['solve_wall_time_s']:.2f} s ({s['compile_time_s']:.2f} s compile), "
        f"{s['solver_stats'].get('num_steps')} steps\n"
        f"  V range {m['V_min_mV']:.1f} … {m['V_max_mV']:.1f} mV, all finite: {m['all_finite']}, "
        f"spiking cells: {m['n_spiking_cells']}"
        + (f", muscle activation peak {m['muscle_activation_peak']:.3f}" if "muscle_activation_peak" in m else "")
        + f"\n  outputs in {outdir}"
    )


if __name__ == "__main__":
    main()

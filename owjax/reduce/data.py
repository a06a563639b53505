"""Reduced-order training data from an owjax network: input-current waveforms in, membrane potentials out.

:func:`generate` builds a c302 network (parameter set, config, optional cell subset), brings it to
rest (``settle_ms`` without input), then solves it once per waveform table
(:mod:`owjax.reduce.waveforms`) with the table injected through
:class:`~owjax.reduce.drive.WaveformCurrents` + :class:`~owjax.reduce.drive.CurrentInjection` in a
:class:`~owjax.core.component.Composite`, by :func:`owjax.core.solve.solve_ys` under
``jax.vmap`` over tables (``batch`` tables per compiled call). The network is solved with the
adaptive solver (default ``tsit5``, rtol = atol = 1e-6) and sampled every ``dt_out_ms``; several
sampling steps (the study's 0.5 and 0.1 ms) come from one solve sampled at the finest step, so the
datasets differ only in sampling, not in the simulation.

Units: time ms, input currents pA (inward positive), outputs membrane potential mV.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from owjax.reduce.dataset import ReduceData
from owjax.reduce.waveforms import FAMILIES, make_waveforms

__all__ = ["GeneratorConfig", "generate", "build_network", "rest_state", "simulate_tables", "batch_solver",
           "PAPER_INPUTS", "PAPER_OUTPUTS", "FORWARD_CIRCUIT"]

PAPER_INPUTS = ("PLML", "PLMR", "AVBL", "AVBR")
PAPER_OUTPUTS = ("DB1", "LUAL", "PVR", "VB1")
#: a small forward-locomotion sub-network (for CI-sized data): the study's cells, their command
#: interneurons and neighbouring motor neurons
FORWARD_CIRCUIT = ("PLML", "PLMR", "AVBL", "AVBR", "PVCL", "PVCR", "AVAL", "AVAR", "AVDL", "AVDR", "LUAL", "LUAR",
                   "PVR", "DB1", "DB2", "VB1", "VB2", "DVA", "PVDL", "PVDR")


@dataclass(frozen=True)
class GeneratorConfig:
    """What :func:`generate` simulates.

    Attributes:
        parameter_set: c302 parameter set (``C0``, ``C1``, ``C2``).
        config: c302 config (``Full`` = the whole hermaphrodite network, as in the study).
        cells: restrict the network to these cells (``None``: all of the config).
        keep_c302_inputs: keep the config's own pulse inputs (c302 Full drives PLML/PLMR with 5 pA);
            default ``False``: the waveforms are the only drive, as in the study.
        inputs: cells receiving the waveform currents; outputs: cells whose V is recorded.
        duration_ms: length of each sequence (ms).
        dt_out_ms: sampling step(s) (ms); one dataset per step, all from the finest.
        n_waveforms: number of sequences; families: waveform families, cycled.
        amplitude_pA: peak current per input cell (pA; default 2: c302 C1 stays graded, the study's
            regime; 10 pA: spiking); min_fraction: smallest peak fraction.
        tie_bilateral: L/R pairs share a waveform.
        seed: waveform seed.
        settle_ms: rest period before t = 0 (no input), ms.
        solver: a solve preset or mapping; dtype: float64 (needs JAX's 64-bit mode) or float32.
        batch: waveforms per vmapped solve.
    """

    parameter_set: str = "C1"
    config: str = "Full"
    cells: tuple[str, ...] | None = None
    keep_c302_inputs: bool = False
    inputs: tuple[str, ...] = PAPER_INPUTS
    outputs: tuple[str, ...] = PAPER_OUTPUTS
    duration_ms: float = 500.0
    dt_out_ms: tuple[float, ...] = (0.5, 0.1)
    n_waveforms: int = 40
    families: tuple[str, ...] = FAMILIES
    amplitude_pA: float | tuple[float, ...] = 2.0
    min_fraction: float = 0.2
    tie_bilateral: bool = True
    seed: int = 0
    settle_ms: float = 300.0
    solver: str | dict = "tsit5"
    dtype: str = "float64"
    batch: int = 8

    def finest_dt(self) -> float:
        return float(min(self.dt_out_ms))


def build_network(cfg: GeneratorConfig):
    """The network component of ``cfg`` (checks that the input and output cells exist)."""
    from owjax.core.errors import unknown_name_message
    from owjax.neural.build import build_model, build_spec

    spec = build_spec(cfg.parameter_set, cfg.config, cells=list(cfg.cells) if cfg.cells else None,
                      stimulus_mode="c302" if cfg.keep_c302_inputs else "none")
    model = build_model(spec, cfg.dtype)
    names = list(model.cell_names)
    for kind, cells in (("input cell", cfg.inputs), ("output cell", cfg.outputs)):
        for c in cells:
            if c not in names:
                raise ValueError(unknown_name_message(kind, c, names))
    return model


def rest_state(model, settle_ms: float, solver="tsit5"):
    """The network state after ``settle_ms`` without input (c302's initial state is not at rest)."""
    import jax

    from owjax.core.solve import solve_ys

    if settle_ms <= 0:
        return model.initial_state()
    sol = solve_ys(model, settle_ms, settle_ms, solver)
    return jax.tree_util.tree_map(lambda a: a[-1], sol.ys)


def batch_solver(model, y_rest, table_dt_ms: float, cells: Sequence[str], duration_ms: float, dt_out_ms: float,
                 solver="tsit5", record: Sequence[str] | None = None):
    """A jitted function ``tables (B, K, n_in) pA → (V (B, T, n_record) mV, steps (B,))``: the network
    driven by each table (:func:`~owjax.reduce.drive.driven_network`), solved by
    :func:`owjax.core.solve.solve_ys` from ``y_rest`` under ``jax.vmap``, the batch split over all
    devices (:func:`owjax.core.sharding.sharded_vmap`). Build it once and call it with batches of
    one shape (each new shape compiles once)."""
    import jax.numpy as jnp

    from owjax.core.sharding import sharded_vmap
    from owjax.core.solve import solve_ys
    from owjax.reduce.drive import driven_network

    names = list(model.cell_names)
    rec = jnp.asarray([names.index(c) for c in (record or names)])
    y0 = {"network": y_rest, "drive": {}}

    def one(table):
        comp = driven_network(model, table, table_dt_ms, cells)
        sol = solve_ys(comp, duration_ms, dt_out_ms, solver, y0=y0, save=("network.V",))
        return sol.ys["network"]["V"][:, rec], sol.stats["num_steps"]

    return sharded_vmap(one)  # jit(vmap(one)), the batch split over all devices JAX sees


def simulate_tables(model, y_rest, tables_pA: np.ndarray, table_dt_ms: float, cells: Sequence[str],
                    duration_ms: float, dt_out_ms: float, solver="tsit5", batch: int = 8,
                    record: Sequence[str] | None = None):
    """Solve the network driven by each table; returns (V (N, T, n_record) mV, steps (N,)).

    ``tables_pA`` is (N, K, n_in) on the grid ``k · table_dt_ms``; ``record`` names the cells whose V
    is returned (default: all). :func:`batch_solver` runs ``batch`` tables at a time (the last batch
    is padded with copies).
    """
    import jax.numpy as jnp

    fn = batch_solver(model, y_rest, table_dt_ms, cells, duration_ms, dt_out_ms, solver, record)
    tables = np.asarray(tables_pA)
    n = tables.shape[0]
    b = max(1, min(int(batch), n))
    vs, steps = [], []
    for s in range(0, n, b):
        chunk = tables[s:s + b]
        pad = b - chunk.shape[0]
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
        v, k = fn(jnp.asarray(chunk, model.dtype))
        vs.append(np.asarray(v)[:b - pad])
        steps.append(np.asarray(k)[:b - pad])
    return np.concatenate(vs), np.concatenate(steps)


def generate(cfg: GeneratorConfig) -> dict[float, ReduceData]:
    """Simulate ``cfg`` → ``{dt_out_ms: ReduceData}`` (inputs pA, outputs mV, time ms).

    The recorded inputs are the waveform tables sampled at the output times (exact: the tables live
    on the finest output grid). ``meta`` holds the configuration, the waveform families, solver
    steps per sequence, the rest potentials and the wall time.
    """
    dts = sorted({float(d) for d in cfg.dt_out_ms})
    fine = dts[0]
    for d in dts:
        r = d / fine
        if abs(r - round(r)) > 1e-9:
            raise ValueError(f"dt_out_ms {dts}: each step must be a multiple of the finest ({fine} ms)")
    t0 = time.perf_counter()
    model = build_network(cfg)
    y_rest = rest_state(model, cfg.settle_ms, cfg.solver)
    wf = make_waveforms(cfg.inputs, cfg.n_waveforms, cfg.duration_ms, fine, cfg.seed, cfg.families,
                        cfg.amplitude_pA, cfg.min_fraction, cfg.tie_bilateral)
    V, steps = simulate_tables(model, y_rest, wf.currents_pA, fine, cfg.inputs, cfg.duration_ms, fine,
                               cfg.solver, cfg.batch, record=cfg.outputs)
    wall = time.perf_counter() - t0
    names = list(model.cell_names)
    v_rest = np.asarray(y_rest["V"])[[names.index(c) for c in cfg.outputs]]
    meta = dict(generator=asdict(cfg), network=f"c302 {cfg.parameter_set} {cfg.config}"
                + (f" subset of {len(cfg.cells)} cells" if cfg.cells else ""),
                n_cells=len(names), families=list(wf.families), solver_steps=[int(s) for s in steps],
                rest_V_mV=dict(zip(cfg.outputs, [float(v) for v in v_rest])), wall_time_s=round(wall, 2),
                units={"t": "ms", "inputs": "pA (inward positive)", "outputs": "mV"})
    out = {}
    seq_names = tuple(f"seq_{i + 1:03d}_{f}" for i, f in enumerate(wf.families))
    for d in dts:
        every = int(round(d / fine))
        out[d] = ReduceData(wf.t_ms[::every], wf.currents_pA[:, ::every], V[:, ::every], tuple(cfg.inputs),
                            tuple(cfg.outputs), seq_names, "pA", "mV", "ms", dict(meta, dt_out_ms=d))
    return out

"""``reduce_circuit``: a reduced-order recurrent model (RNN/LSTM/GRU) of an owjax input→output map.

The data are owjax-generated (``data.source: generate``: c302 network driven by waveform families,
:mod:`owjax.reduce.data`; cached in the run directory as ``data.h5``) or read from a path (an
``owjax.reduce`` HDF5 file or a folder of column files, :mod:`owjax.reduce.dataset`). The task is
:class:`owjax.reduce.training.ReduceTask`: ``model.runs`` independent models trained as one vmapped
problem (seeds on a batch axis), Adam from the loop, best-on-validation per run through the task's
``validate`` hook. See docs/reduce.md and experiments/reduced_order/.
"""

from __future__ import annotations

from typing import ClassVar

import logging
from collections.abc import Mapping
from pathlib import Path

from owjax.fitting.tasks.base import AbstractExperiment, section

__all__ = ["ReduceCircuit", "data_from_config"]

log = logging.getLogger("owjax.fitting.tasks.reduce_circuit")

_DATA_KEYS = ("source", "columns", "split", "split_seed", "inputs", "outputs", "dt_out_ms")
_GEN_KEYS = ("parameter_set", "config", "cells", "keep_c302_inputs", "duration_ms", "n_waveforms", "families",
             "amplitude_pA", "min_fraction", "tie_bilateral", "seed", "settle_ms", "solver", "batch")
_MODEL_KEYS = ("cell", "hidden", "runs", "normalisation", "seed")


def data_from_config(cfg: Mapping, run_dir: Path | None):
    """The :class:`~owjax.reduce.dataset.ReduceData` of the ``data:`` (and ``generator:``) sections."""
    from owjax.reduce.dataset import load_dataset, load_h5, save_h5

    d = section(cfg, "data", required=("source", "inputs", "outputs"), allowed=_DATA_KEYS)
    inputs, outputs = list(d["inputs"]), list(d["outputs"])
    if str(d["source"]) != "generate":
        return load_dataset(d["source"], inputs, outputs, d.get("columns"))
    from owjax.reduce.data import GeneratorConfig, generate

    g = section(cfg, "generator", allowed=_GEN_KEYS)
    dt = float(d.get("dt_out_ms") or 0.5)
    cache = Path(run_dir) / "data.h5" if run_dir is not None else None
    if cache is not None and cache.exists():
        return load_h5(cache)
    gc = GeneratorConfig(
        inputs=tuple(inputs), outputs=tuple(outputs), dt_out_ms=(dt,), dtype=str(cfg.get("dtype", "float64")),
        **{k: (tuple(v) if isinstance(v, list) else v) for k, v in g.items()})
    log.info("generating %d sequences of %s ms from c302 %s %s", gc.n_waveforms, gc.duration_ms, gc.parameter_set,
             gc.config)
    data = generate(gc)[dt]
    if cache is not None:
        save_h5(cache, data)
    return data


class ReduceCircuit(AbstractExperiment):
    """``kind: reduce_circuit`` → :class:`owjax.reduce.training.ReduceTask`."""

    kind = "reduce_circuit"
    requires_parameters_block: ClassVar[bool] = False  # the task's parameters are its own pytree

    def build(self, cfg: Mapping, seed: int, run_dir: Path | None = None):
        from owjax.reduce.dataset import split_sequences
        from owjax.reduce.training import ReduceTask, TrainConfig

        data = data_from_config(cfg, run_dir)
        d = dict(cfg["data"])
        split = split_sequences(data.names, d.get("split") or "0.5,0.25,0.25", int(d.get("split_seed") or 0))
        m = section(cfg, "model", required=("cell", "hidden", "runs"), allowed=_MODEL_KEYS)
        o = dict(cfg.get("optim") or {})
        tc = TrainConfig(cell=str(m["cell"]), hidden=int(m["hidden"]), runs=int(m["runs"]),
                         epochs=int(o.get("steps", 1000)), lr=float(o["lr"]) if o.get("lr") else None,
                         seed=int(m.get("seed", seed) if m.get("seed") is not None else seed),
                         normalisation=str(m.get("normalisation", "zscore")))
        if o.get("clip_norm") not in (None, 0, "null"):
            log.warning("optim.clip_norm=%s clips the global norm over all runs, which couples them; "
                        "set optim.clip_norm=null for independent runs", o.get("clip_norm"))
        return ReduceTask(data, split, tc)

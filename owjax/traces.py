"""The traces file (HDF5) shared by ``simulate``, ``reference`` and ``compare``.

Layout (see DESIGN.md)::

    attrs: owjax_version, model, network, simulator, solver, dt_out_ms, duration_ms, created
    /t                   (T,)   float64  ms
    /neurons/names       (N,)   str
    /neurons/V           (N,T)  mV
    /neurons/Ca          (N,T)  mM (c302 concentration units)
    /muscles/names|V|Ca  as above; /muscles/activation (M,T) in [0,1] when computed
    /intestine/...       when the intestine is simulated

Files are written to a temporary name and renamed, so a killed run never leaves half a file.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from owjax import __version__

__all__ = ["Traces", "write_traces", "read_traces"]


@dataclass
class Traces:
    """Traces in memory: time plus one dict of arrays per population (``names``, ``V``, ``Ca`` …)."""

    t_ms: np.ndarray
    populations: dict[str, dict[str, np.ndarray]]
    attrs: dict = field(default_factory=dict)

    def cell(self, name: str, var: str = "V") -> np.ndarray:
        """The trace of ``var`` for cell ``name`` (any population)."""
        for pop in self.populations.values():
            names = list(pop.get("names", []))
            if name in names and var in pop:
                return pop[var][names.index(name)]
        from owjax.neural.spec import unknown_name_message

        allnames = [n for p in self.populations.values() for n in p.get("names", [])]
        raise KeyError(unknown_name_message("cell", name, allnames))


def write_traces(path: str | os.PathLike, traces: Traces) -> Path:
    """Write ``traces`` to ``path`` atomically (temporary file + rename). Returns the path."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    attrs = {
        "owjax_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **traces.attrs,
    }
    with h5py.File(tmp, "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v if isinstance(v, (int, float, np.number)) else str(v)
        f.create_dataset("t", data=np.asarray(traces.t_ms, dtype=np.float64))
        for pop, arrays in traces.populations.items():
            g = f.create_group(pop)
            for k, v in arrays.items():
                if k == "names":
                    g.create_dataset("names", data=np.array([str(n) for n in v], dtype=h5py.string_dtype()))
                else:
                    g.create_dataset(k, data=np.asarray(v, dtype=np.float64), compression="gzip", compression_opts=4)
    os.replace(tmp, path)
    return path


def read_traces(path: str | os.PathLike) -> Traces:
    """Read a traces file written by owjax (or converted from NEURON/jNML by ``owjax.reference.runner``)."""
    pops: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        t = f["t"][()]
        for name, g in f.items():
            if not isinstance(g, h5py.Group):
                continue
            pops[name] = {}
            for k, d in g.items():
                pops[name][k] = (
                    np.array([s.decode() if isinstance(s, bytes) else str(s) for s in d[()]])
                    if k == "names"
                    else d[()]
                )
    return Traces(t_ms=t, populations=pops, attrs=attrs)

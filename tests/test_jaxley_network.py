"""The Jaxley version of the c302 network (benchmarks/jaxley_network.py) is the same model as owjax's.

On a 12-cell piece of C1 Full (PLML/PLMR, driven by a 5-pA pulse, and the cells they reach by graded
synapses and gap junctions: 38 synapses, 14 gap-junction entries, every channel, the Ca pool),
Jaxley's first-order backward-Euler traces converge to owjax's (Tsit5, rtol = atol = 1e-8; 100 ms): the error
halves when Jaxley's dt halves, and at dt 0.01 ms it is a few % of each cell's V range. A wrong
equation or unit (a channel, the Ca pool, the synapse or gap-junction sign) would leave an error
that does not shrink with dt. Skipped when jaxley (the ``bench`` extra) is not installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)
jx = pytest.importorskip("jaxley", reason="jaxley is not installed (pip install jaxley==0.14.0; the bench extra)")

sys.path.insert(0, str(Path(__file__).parents[1]))  # the benchmarks package lives at the repository root

import jax.numpy as jnp  # noqa: E402

from benchmarks.jaxley_network import build_jaxley_network  # noqa: E402
from owjax.core.solve import get_solver, solve  # noqa: E402
from owjax.neural.c302_data import load_c302_network  # noqa: E402
from owjax.neural.network import NetworkModel  # noqa: E402
from owjax.neural.spec import PulseInput  # noqa: E402

DURATION_MS = 100.0


def _piece():
    spec = load_c302_network("C1", "Full")
    src = ("PLML", "PLMR")
    reached = {c.post for c in spec.chemical if c.pre in src}
    reached |= {c.post for c in spec.electrical if c.pre in src} | {c.pre for c in spec.electrical if c.post in src}
    cells = list(src) + sorted(reached - set(src))[:10]
    return spec.subset(cells).with_inputs([PulseInput(c, 10.0, 60.0, 5.0) for c in src])


def test_jaxley_network_converges_to_owjax():
    import dataclasses

    spec = _piece()
    assert len(spec.chemical) > 0 and len(spec.electrical) > 0
    model = NetworkModel.from_spec(spec, jnp.float64)
    cfg = dataclasses.replace(get_solver("tsit5"), rtol=1e-8, atol=1e-8)
    v_ref = np.asarray(solve(model, DURATION_MS, 0.1, cfg, save=("V",)).ys["V"])
    rng = np.maximum(np.ptp(v_ref, axis=0), 1.0)
    assert np.ptp(v_ref[:, 0]) > 50.0  # PLML spikes: the comparison covers the active range

    errs = {}
    for dt in (0.02, 0.01):
        net, names = build_jaxley_network(spec, DURATION_MS, dt, record_ca=False)
        assert names == list(model.cell_names)
        v = np.asarray(jx.integrate(net, delta_t=dt, t_max=DURATION_MS))[:, :: round(0.1 / dt)].T
        assert v.shape == v_ref.shape
        errs[dt] = float((np.abs(v - v_ref).max(axis=0) / rng).max())
    assert errs[0.01] < 0.05, errs
    assert 1.6 < errs[0.02] / errs[0.01] < 2.5, errs  # first-order convergence to the same solution


def test_jaxley_network_rejects_what_it_cannot_express():
    spec = load_c302_network("C0", "Full").subset(["AVAL", "AVAR", "PVCL"])
    with pytest.raises(ValueError, match="no Jaxley version"):
        build_jaxley_network(spec, 10.0, 0.05)

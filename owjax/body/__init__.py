"""The worm body: a differentiable planar viscoelastic rod model after Boyle, Berri & Cohen (2012).

* :class:`~owjax.body.mechanics.RodBody` — 49 rods / 48 segments, muscles, resistive-force drag;
  an owjax component (time unit s) with input ``muscle_activation`` (2, 48|24) in [0, 1].
* :mod:`owjax.body.media` — agar, water, BBC medium numbers in [0, 1], explicit coefficients.
* :mod:`owjax.body.drive` — travelling activation waves and recorded activation (stateless components).
* :class:`~owjax.body.circuit.BBCCircuit` — BBC's proprioceptive B/D-class loop (no CPG).
* :mod:`owjax.body.metrics`, :mod:`owjax.body.wcon`, :mod:`owjax.body.plots` — outputs.
* :func:`~owjax.body.run.run_locomotion` — the ``+scenario=locomotion`` entry.

Units: mm, s, µN (see :mod:`owjax.body.geometry`). docs/body.md has equations, constants and solver
measurements.
"""

from owjax.body.circuit import ActivationToBody, BBCCircuit, BodyToStretchReceptors
from owjax.body.drive import RecordedActivation, TravellingWave, load_activation_file
from owjax.body.integrate import BodySolver, integrate
from owjax.body.mechanics import RodBody
from owjax.body.media import AGAR, WATER, Medium, resolve_medium

__all__ = ["RodBody", "Medium", "resolve_medium", "AGAR", "WATER", "TravellingWave", "RecordedActivation",
           "load_activation_file", "BBCCircuit", "BodyToStretchReceptors", "ActivationToBody", "BodySolver",
           "integrate", "run_locomotion"]


def run_locomotion(cfg, outdir):
    """See :func:`owjax.body.run.run_locomotion` (imported lazily: it pulls in matplotlib and h5py)."""
    from owjax.body.run import run_locomotion as _run

    return _run(cfg, outdir)

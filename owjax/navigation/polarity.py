"""The signs of the head circuit's connections: c302's, or the transmitter prior of ``synapse_polarity``.

Issue 17 asks for the thermotaxis circuit's signs to be "held to the transmitter prior as in
``synapse_polarity``". That prior (:mod:`owjax.fitting.tasks.synapse_polarity_metrics`) reads the
presynaptic cell's transmitter identity (Wang et al. 2024, via cect) and fixes a sign only where the
identity decides it:

* cholinergic without GABA → **excitatory** (AFD, AIY, AVA, AVB, RMD in the head circuit);
* GABAergic without acetylcholine → **inhibitory** (RIB — which c302 makes excitatory);
* glutamatergic, mixed ACh + GABA, aminergic or unknown → **free** (AIZ, AIB, RIA, RIM, SMD):
  glutamate acts on excitatory (GLR) and inhibitory (GLC, Cl⁻) receptors, and which ones a
  synapse carries is not in the connectome.

c302 instead gives every connection one of two reversal potentials, from a list of inhibitory cells
(in this circuit only RIA's connections are inhibitory).

**Polarity as a receptor mix.** A free connection's conductance is split between an excitatory part
(fraction ``p_exc``, reversal :data:`E_EXC_MV`) and an inhibitory part (1 − ``p_exc``,
:data:`E_INH_MV`). The current ``w g s [p (E_exc − V) + (1 − p)(E_inh − V)]`` equals one synapse with
the mixed reversal ``E = E_inh + p (E_exc − E_inh)`` exactly, so the circuit's equations are unchanged:
only ``erev_mV`` becomes a bounded, trainable value in (E_inh, E_exc) for the free connections and is
held at E_exc or E_inh for the fixed ones. A connection whose glutamate receptors are both kinds (AFD →
AIY has both; Ohnishi et al. 2011) is what p between 0 and 1 describes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

__all__ = ["POLARITIES", "E_EXC_MV", "E_INH_MV", "FREE", "EXCITATORY", "INHIBITORY", "connection_classes",
           "c302_p_exc", "fixed_p_exc", "p_exc_from_raw", "reversal_from_p_exc", "check_polarity"]

#: the polarity rules a thermotaxis circuit can be trained under
POLARITIES = ("c302", "transmitter")
#: reversal potentials of c302's excitatory and inhibitory graded synapses (C1/C2 parameter sets), mV
E_EXC_MV, E_INH_MV = 0.0, -70.0
#: class codes (those of :data:`owjax.fitting.tasks.synapse_polarity_metrics.NT_CLASSES`)
FREE, EXCITATORY, INHIBITORY = 0, 1, 2


def check_polarity(polarity: str) -> str:
    """``polarity`` if it is one of :data:`POLARITIES`, else a ValueError naming them."""
    if polarity not in POLARITIES:
        raise ValueError(f"circuit.polarity={polarity!r}: the polarity rules are {list(POLARITIES)} "
                         "(c302: c302's signs, fixed; transmitter: the synapse_polarity prior, free where it is)")
    return polarity


def connection_classes(pre_cells: Sequence[str], transmitters: Mapping[str, Any] | None = None) -> Int[np.ndarray, " e"]:
    """The transmitter-prior class of each connection from its presynaptic cell.

    Arguments:
        pre_cells: the presynaptic cell of each connection (e.g. ``[circuit.cell_names[i] for i in circuit.pre]``).
        transmitters: ``{cell: identities}`` to use instead of Wang et al. 2024 (for tests).

    Returns:
        one code per connection: :data:`FREE` (0), :data:`EXCITATORY` (1) or :data:`INHIBITORY` (2).
    """
    from owjax.fitting.tasks.synapse_polarity_metrics import nt_classes

    codes, _ = nt_classes(list(pre_cells), transmitters)
    return np.asarray(codes, np.int32)


def c302_p_exc(erev_mV) -> np.ndarray:
    """c302's sign as an excitatory fraction: 1 for E_EXC_MV, 0 for E_INH_MV (ValueError for anything else)."""
    e = np.asarray(erev_mV, np.float64)
    p = (e - E_INH_MV) / (E_EXC_MV - E_INH_MV)
    bad = ~(np.isclose(p, 0.0) | np.isclose(p, 1.0))
    if np.any(bad):
        raise ValueError(f"c302_p_exc: reversal potentials {np.unique(e[bad]).tolist()} mV are neither c302's "
                         f"excitatory ({E_EXC_MV}) nor inhibitory ({E_INH_MV}) value")
    return np.round(p)


def fixed_p_exc(classes: Int[np.ndarray, " e"]) -> np.ndarray:
    """The excitatory fraction the prior fixes: 1 for :data:`EXCITATORY`, 0 otherwise (the value of a
    :data:`FREE` connection is trained, not this)."""
    return np.where(np.asarray(classes) == EXCITATORY, 1.0, 0.0)


def p_exc_from_raw(raw: Float[Array, " e"], classes: Int[np.ndarray, " e"]) -> Float[Array, " e"]:
    """The excitatory fraction of each connection: σ(raw) where the prior leaves it free, 1 or 0 where it
    fixes it (the raw value of a fixed connection has no effect and no gradient)."""
    fixed = jnp.asarray(fixed_p_exc(classes), raw.dtype)
    return jnp.where(jnp.asarray(classes) == FREE, jax.nn.sigmoid(raw), fixed)


def reversal_from_p_exc(p_exc: Float[Array, " e"]) -> Float[Array, " e"]:
    """The mixed reversal potential E_inh + p (E_exc − E_inh) (mV) of connections with excitatory fraction p."""
    return E_INH_MV + p_exc * (E_EXC_MV - E_INH_MV)

"""Extrasynaptic (wireless) connectomes from cect: neuropeptide and monoamine signalling.

Sources (all read through ``cect``'s readers, matrices re-indexed by model cell names):

=================  ==========================================================================
``ripoll_short``   Ripoll-Sánchez et al. 2023 (*Neuron* 111:3570), neuropeptide connectome, short-range
``ripoll_mid``     … mid-range diffusion model (the paper's main model)
``ripoll_long``    … long-range model; weights = number of distinct NPP–GPCR pathways from pre to post
``bentley_ma``     Bentley et al. 2016 (*PLoS Comput Biol* 12:e1005283) monoamine connectome, one
                   binary matrix per amine: ``dopamine``, ``serotonin``, ``tyramine``, ``octopamine``
``bentley_np``     Bentley et al. 2016 neuropeptide connectome (binary, all peptides pooled)
=================  ==========================================================================

A *family* is one signed coupling with its own gain in a model (the Ripoll-Sánchez and Bentley
peptide matrices are one family each, ``peptide``; each amine is its own family). Families whose
signalling needs dense-core-vesicle release (UNC-31/CAPS; neuropeptides) are listed in
:data:`DCV_FAMILIES` — the *unc-31* strain of the Randi 2023 atlas lacks them.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from jaxtyping import Float

__all__ = ["EXTRASYNAPTIC_SOURCES", "DCV_FAMILIES", "extrasynaptic_connectome", "source_families"]

#: source name → (cect reader module, {family: cect synapse class})
EXTRASYNAPTIC_SOURCES: dict[str, tuple[str, dict[str, str]]] = {
    "ripoll_short": ("RipollSanchezShortRangeReader", {"peptide": "Peptidergic"}),
    "ripoll_mid": ("RipollSanchezMidRangeReader", {"peptide": "Peptidergic"}),
    "ripoll_long": ("RipollSanchezLongRangeReader", {"peptide": "Peptidergic"}),
    "bentley_ma": ("Bentley2016MAReader", {"dopamine": "Dopamine", "serotonin": "Serotonin",
                                           "tyramine": "Tyramine", "octopamine": "Octopamine"}),
    "bentley_np": ("Bentley2016PepReader", {"peptide": "Peptidergic"}),
}

#: families released from dense-core vesicles (absent in unc-31 mutants)
DCV_FAMILIES = ("peptide",)


def source_families(source: str) -> tuple[str, ...]:
    """The family names a source provides (see the module table)."""
    if source not in EXTRASYNAPTIC_SOURCES:
        from owjax.neural.spec import unknown_name_message

        raise ValueError(unknown_name_message("extrasynaptic source", source, tuple(EXTRASYNAPTIC_SOURCES)))
    return tuple(EXTRASYNAPTIC_SOURCES[source][1])


@lru_cache(maxsize=8)
def _reader(module: str):
    try:
        mod = importlib.import_module(f"cect.{module}")
    except ModuleNotFoundError:
        mod = importlib.import_module(f"cect.readers.{module}")
    return mod.get_instance()


def extrasynaptic_connectome(source: str, cell_names: Sequence[str]) -> dict[str, Float[np.ndarray, "n n"]]:
    """One source's coupling matrices on the model's cells.

    Arguments:
        source: a key of :data:`EXTRASYNAPTIC_SOURCES`.
        cell_names: the model's cells (matrix rows/columns, in this order); cect names are matched
            by :func:`owjax.reference.atlas.normalize_neuron_name` (``DA01`` → ``DA1``), cells the
            source lacks get zero rows and columns.

    Returns:
        ``{family: A}`` with ``A[post, pre]`` ≥ 0 the source's weight from ``pre`` to ``post``
        (row = receiving cell, column = sending cell, as in the atlas), float64; self-couplings kept.
    """
    from owjax.reference.atlas import normalize_neuron_name

    families = source_families(source)
    module, classes = EXTRASYNAPTIC_SOURCES[source]
    cds = _reader(module)
    pos = {normalize_neuron_name(n): k for k, n in enumerate(cell_names)}
    src_idx = np.array([pos.get(normalize_neuron_name(n), -1) for n in cds.nodes])
    ok = src_idx >= 0
    out = {}
    for fam in families:
        cls = classes[fam]
        if cls not in cds.connections:
            raise ValueError(f"cect's {module} has no synapse class {cls!r} (has {sorted(cds.connections)})")
        m = np.asarray(cds.connections[cls], dtype=np.float64)  # m[pre, post]
        a = np.zeros((len(cell_names), len(cell_names)))
        sub = m[np.ix_(ok, ok)]
        a[np.ix_(src_idx[ok], src_idx[ok])] = sub.T
        out[fam] = a
    return out

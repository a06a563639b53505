"""Randi et al. 2023 signal-propagation atlas (``funatlas.h5`` of the ``wormneuroatlas`` wheel).

Randi F, Sharma AK, Dvali S, Leifer AM (2023) "Neural signal propagation atlas of *Caenorhabditis
elegans*". Nature 623:406–414, doi:10.1038/s41586-023-06683-4. Single neurons were stimulated
optogenetically (GUR-3/PRDX-2) one at a time while the calcium activity (GCaMP6s, ΔF/F) of the rest
of the head (and some of the body) was imaged. The atlas summarises, for every pair, the mean
response of neuron *i* when neuron *j* was stimulated.

The file (read directly with h5py; ``wormneuroatlas.NeuroAtlas()`` contacts a web service at start
up) holds, per strain (``wt``; ``unc31`` = *unc-31* mutants without dense-core-vesicle release,
i.e. with much less neuropeptide signalling):

============  =========  ====================================================================
dataset       shape      meaning (row *i* = responding neuron, column *j* = stimulated neuron)
============  =========  ====================================================================
``dFF``       (300,300)  mean ΔF/F response of *i* to stimulation of *j*; NaN where never seen.
                         The diagonal is the stimulated neuron's own response.
``q``         (300,300)  q value (false-discovery-rate corrected) that *i* responds to *j*
``q_eq``      (300,300)  q value of the equivalence test (evidence of *no* response)
``occ1``      (300,300)  number of observations of the pair (trials pooled over animals)
``dFF_all``   (300,300)  per-observation responses (object arrays)
``kernels``   (300,300)  fitted response kernels (object arrays)
============  =========  ====================================================================

Neuron ids are stored as 5-byte strings, so ``AWCOFF`` reads back truncated as ``AWCOF``. The
atlas follows the anatomical convention of ``wormneuroatlas`` for the asymmetric AWC pair:
``AWCL -> AWCOFF`` and ``AWCR -> AWCON`` (left = OFF, right = ON); owjax maps them back to
c302's ``AWCL`` / ``AWCR``. CANL/CANR are not in the atlas. Leading zeros of numbered neurons
(``VB01`` in some datasets) are dropped (c302 writes ``VB1``).

:func:`load_atlas` returns a :class:`SignalPropagationAtlas` re-indexed by model cell names;
:meth:`SignalPropagationAtlas.pairs` selects the pairs a fit or an evaluation uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "RANDI2023_DOI",
    "STRAINS",
    "atlas_path",
    "normalize_neuron_name",
    "atlas_to_model_name",
    "map_atlas_names",
    "AtlasPairs",
    "SignalPropagationAtlas",
    "load_atlas",
]

RANDI2023_DOI = "10.1038/s41586-023-06683-4"
STRAINS = ("wt", "unc31")

#: atlas ids that are not c302 names: the AWC pair (wormneuroatlas convention AWCL->AWCOFF,
#: AWCR->AWCON) and the 5-character truncation of AWCOFF in the HDF5 file
_SPECIAL = {"AWCOFF": "AWCL", "AWCOF": "AWCL", "AWCON": "AWCR"}
_NUMBERED = re.compile(r"^([A-Z]+?)0+(\d+)$")


def atlas_path() -> Path:
    """Path of ``funatlas.h5`` inside the installed ``wormneuroatlas`` package (not imported: its
    ``__init__`` is cheap, but ``NeuroAtlas()`` would contact a web service)."""
    import importlib.util

    spec = importlib.util.find_spec("wormneuroatlas")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the wormneuroatlas package is not installed; `pip install wormneuroatlas` ships the Randi 2023 atlas"
        )
    p = Path(list(spec.submodule_search_locations)[0]) / "data" / "funatlas.h5"
    if not p.exists():
        raise FileNotFoundError(f"funatlas.h5 not found in the wormneuroatlas package (looked at {p})")
    return p


def normalize_neuron_name(name: str | bytes) -> str:
    """Canonical form of a neuron id: decoded, stripped, upper case, AWC ON/OFF -> R/L, no leading
    zeros in the number (``VB01`` -> ``VB1``, ``DA09`` -> ``DA9``, ``AS10`` stays)."""
    if isinstance(name, (bytes, np.bytes_)):
        name = bytes(name).decode("utf-8")
    s = str(name).strip().upper().replace(" ", "")
    if s in _SPECIAL:
        return _SPECIAL[s]
    m = _NUMBERED.match(s)
    if m:
        s = f"{m.group(1)}{int(m.group(2))}"
    return s


def atlas_to_model_name(atlas_id: str | bytes, model_names: Iterable[str]) -> str | None:
    """The model cell name of an atlas id, or ``None`` when the model has no such neuron."""
    canon = {normalize_neuron_name(n): n for n in model_names}
    return canon.get(normalize_neuron_name(atlas_id))


def map_atlas_names(atlas_ids: Sequence[str | bytes], model_names: Iterable[str]) -> tuple[list[str | None], list[str]]:
    """Map every atlas id onto a model name.

    Returns:
        ``(mapped, unmatched)``: the model name per atlas id (``None`` if none) and the atlas ids
        that did not map.

    Raises:
        ValueError: two atlas ids map onto the same model neuron.
    """
    model_names = list(model_names)
    canon: dict[str, str] = {}
    for n in model_names:
        canon.setdefault(normalize_neuron_name(n), n)
    mapped: list[str | None] = []
    seen: dict[str, str] = {}
    unmatched = []
    for a in atlas_ids:
        a_str = bytes(a).decode() if isinstance(a, (bytes, np.bytes_)) else str(a)
        m = canon.get(normalize_neuron_name(a_str))
        if m is None:
            unmatched.append(a_str)
        elif m in seen:
            raise ValueError(f"atlas ids {seen[m]!r} and {a_str!r} both map onto model neuron {m!r}")
        else:
            seen[m] = a_str
        mapped.append(m)
    return mapped, unmatched


@dataclass(frozen=True)
class AtlasPairs:
    """A selection of (responding, stimulated) pairs of the atlas.

    Attributes:
        resp, stim: row / column index into the atlas' ``names`` (responding, stimulated neuron).
        target: atlas ΔF/F of each pair.
        q: q value of each pair.
        occ: number of observations of each pair.
        weight: weight of each pair in a loss (see :meth:`SignalPropagationAtlas.pairs`).
        names: the atlas' neuron names (so ``names[resp[k]]`` is the responding neuron).
    """

    resp: np.ndarray
    stim: np.ndarray
    target: np.ndarray
    q: np.ndarray
    occ: np.ndarray
    weight: np.ndarray
    names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.resp.size)

    @property
    def stimulated(self) -> tuple[str, ...]:
        """Names of the stimulated neurons that have at least one pair, in atlas order."""
        return tuple(self.names[j] for j in np.unique(self.stim))

    def subset(self, mask) -> "AtlasPairs":
        m = np.asarray(mask, dtype=bool)
        return AtlasPairs(self.resp[m], self.stim[m], self.target[m], self.q[m], self.occ[m], self.weight[m],
                          self.names)

    def for_stimulated(self, names: Iterable[str]) -> "AtlasPairs":
        """The pairs whose stimulated neuron is in ``names``."""
        keep = {self.names.index(n) for n in names if n in self.names}
        return self.subset(np.isin(self.stim, sorted(keep)))


@dataclass(frozen=True)
class SignalPropagationAtlas:
    """Randi 2023 atlas of one strain, indexed by model cell names (row = responding neuron,
    column = stimulated neuron).

    Attributes:
        names: model names of the atlas neurons, in atlas order (only those that map).
        atlas_ids: the original atlas ids of the same neurons.
        response: (n, n) mean ΔF/F, NaN where the pair was never observed.
        q: (n, n) q values (NaN where not tested).
        q_eq: (n, n) equivalence-test q values.
        occ: (n, n) int observation counts.
        strain: ``wt`` or ``unc31``.
        unmatched: atlas ids with no model neuron (dropped).
        missing: model neurons that the atlas lacks (empty if no model names were given).
        source: the HDF5 file.
        compiled: the atlas' ``time_compiled`` attribute.
        file_index: row/column of each neuron in the HDF5 file (for the per-trial data,
            :meth:`trials`).
    """

    names: tuple[str, ...]
    atlas_ids: tuple[str, ...]
    response: np.ndarray
    q: np.ndarray
    q_eq: np.ndarray
    occ: np.ndarray
    strain: str
    unmatched: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    source: str = ""
    compiled: str = ""
    doi: str = RANDI2023_DOI
    file_index: tuple[int, ...] = ()
    _index: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        self._index.update({n: i for i, n in enumerate(self.names)})

    @property
    def n(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Row/column of a model neuron name; unknown names raise with close matches."""
        if name not in self._index:
            from owjax.neural.spec import UnknownCellError, unknown_name_message

            raise UnknownCellError(unknown_name_message("atlas neuron", name, self.names))
        return self._index[name]

    def stimulated_neurons(self, min_occ: int = 1) -> tuple[str, ...]:
        """Neurons stimulated at least once with some other neuron observed ``min_occ`` times."""
        occ = self.occ.copy()
        np.fill_diagonal(occ, 0)
        cols = np.nonzero((occ >= min_occ).any(axis=0))[0]
        return tuple(self.names[j] for j in cols)

    def pairs(
        self,
        q_max: float | None = 0.05,
        min_occ: int = 1,
        stimulated: Iterable[str] | None = None,
        responding: Iterable[str] | None = None,
        include_self: bool = False,
        weighting: str = "uniform",
        clip: float | None = None,
        q_eq_max: float | None = None,
    ) -> AtlasPairs:
        """Select pairs.

        Arguments:
            q_max: keep pairs with ``q < q_max`` (significant responses); ``None`` keeps every
                observed pair (finite ΔF/F).
            min_occ: minimum number of observations.
            stimulated, responding: restrict to these neurons (model names).
            include_self: keep the diagonal (the stimulated neuron's own response).
            weighting: ``uniform`` (1 per pair), ``occ`` (observation count) or ``sqrt_occ``.
            clip: clip the targets to ``[-clip, clip]`` (a few ΔF/F values are huge because the
                baseline fluorescence was tiny; None keeps them).
            q_eq_max: keep only pairs whose equivalence test says "no response", ``q_eq < q_eq_max``
                (None: no such condition).

        Returns:
            An :class:`AtlasPairs` in (stimulated, responding) order.
        """
        if weighting not in ("uniform", "occ", "sqrt_occ"):
            raise ValueError(f"weighting must be 'uniform', 'occ' or 'sqrt_occ', got {weighting!r}")
        ok = np.isfinite(self.response) & (self.occ >= max(1, int(min_occ)))
        if q_max is not None:
            ok &= np.isfinite(self.q) & (self.q < float(q_max))
        if q_eq_max is not None:
            ok &= np.isfinite(self.q_eq) & (self.q_eq < float(q_eq_max))
        if not include_self:
            np.fill_diagonal(ok, False)
        if stimulated is not None:
            cols = np.zeros(self.n, bool)
            cols[[self.index(s) for s in stimulated]] = True
            ok &= cols[None, :]
        if responding is not None:
            rows = np.zeros(self.n, bool)
            rows[[self.index(s) for s in responding]] = True
            ok &= rows[:, None]
        stim, resp = np.nonzero(ok.T)  # column-major: grouped by stimulated neuron
        target = self.response[resp, stim].astype(np.float64)
        if clip is not None:
            target = np.clip(target, -float(clip), float(clip))
        occ = self.occ[resp, stim].astype(np.int64)
        w = {"uniform": np.ones_like(target), "occ": occ.astype(np.float64),
             "sqrt_occ": np.sqrt(occ.astype(np.float64))}[weighting]
        return AtlasPairs(resp.astype(np.int64), stim.astype(np.int64), target, self.q[resp, stim], occ, w,
                          self.names)

    def restrict(self, names: Iterable[str]) -> "SignalPropagationAtlas":
        """The atlas on the given neurons only (in the atlas' order)."""
        keep = set(names)
        idx = np.array([i for i, n in enumerate(self.names) if n in keep], dtype=int)
        sub = np.ix_(idx, idx)
        return SignalPropagationAtlas(
            tuple(self.names[i] for i in idx), tuple(self.atlas_ids[i] for i in idx), self.response[sub],
            self.q[sub], self.q_eq[sub], self.occ[sub], self.strain, self.unmatched, self.missing, self.source,
            self.compiled, self.doi, tuple(self.file_index[i] for i in idx) if self.file_index else (),
        )

    def trials(self, resp, stim) -> list[np.ndarray]:
        """Per-trial ΔF/F of pairs (the HDF5's ``dFF_all``; trials pooled over animals).

        Arguments:
            resp, stim: responding / stimulated neuron of each pair, as indices into ``names`` (e.g.
                an :class:`AtlasPairs`' ``resp`` and ``stim``) or as model names.

        Returns:
            One float64 array of trial responses per pair (empty where the pair was never observed);
            its mean is ``response[resp, stim]`` (the file's ``dFF`` is the mean of ``dFF_all``). A pair
            can have fewer trials than ``occ`` (``occ1`` counts every observation, ``dFF_all`` only
            those with a response value).

        Raises:
            ValueError: the atlas was built without file indices (not by :func:`load_atlas`), or
                ``resp`` and ``stim`` differ in length.
        """
        if not self.file_index or not self.source:
            raise ValueError("this atlas has no link to its HDF5 file (build it with load_atlas) to read trials from")
        resp, stim = list(resp), list(stim)
        if len(resp) != len(stim):
            raise ValueError(f"resp and stim must have the same length, got {len(resp)} and {len(stim)}")
        ri = [self.index(r) if isinstance(r, str) else int(r) for r in resp]
        si = [self.index(s) if isinstance(s, str) else int(s) for s in stim]
        allt = _read_object(self.source, self.strain, "dFF_all")
        return [np.asarray(allt[self.file_index[i], self.file_index[j]], dtype=np.float64).ravel()
                for i, j in zip(ri, si)]

    def kernels(self, resp, stim, t_s) -> np.ndarray:
        """The atlas' fitted response kernels of pairs, evaluated in float64 at times ``t_s`` (s).

        Randi et al. fitted, for every pair, the kernel k that maps the stimulated neuron's ΔF/F to
        the responding neuron's by convolution, ``ΔF_i = k ⋆ ΔF_j``, as a sum of terms
        ``factor · t^power · exp(−g·t)`` (rows ``g, factor, power_t, branch`` of the file's
        ``kernels``; attribute ``kernels_keys``). Some terms nearly cancel (factors of 10⁶ with
        opposite signs), so they are summed here in float64, never in a model's float32.

        Arguments:
            resp, stim: responding / stimulated neuron of each pair (indices into ``names`` or model names).
            t_s: (T,) non-negative times after the input, in seconds.

        Returns:
            (P, T) kernel values (ΔF/F of the responder per ΔF/F·s of the stimulated neuron); a row of
            NaN where the atlas has no kernel for the pair (never fitted: every factor 0).

        Raises:
            ValueError: no link to the HDF5 file, ``resp`` and ``stim`` differ in length, or a time is
                negative or not finite.
        """
        if not self.file_index or not self.source:
            raise ValueError("this atlas has no link to its HDF5 file (build it with load_atlas) to read kernels from")
        resp, stim = list(resp), list(stim)
        if len(resp) != len(stim):
            raise ValueError(f"resp and stim must have the same length, got {len(resp)} and {len(stim)}")
        t = np.asarray(t_s, dtype=np.float64)
        if t.ndim != 1 or not np.all(np.isfinite(t)) or np.any(t < 0):
            raise ValueError(f"t_s must be a 1-D array of finite times >= 0 (s); got shape {t.shape}, "
                             f"min {t.min() if t.size else None}")
        ri = [self.index(r) if isinstance(r, str) else int(r) for r in resp]
        si = [self.index(s) if isinstance(s, str) else int(s) for s in stim]
        allk = _read_object(self.source, self.strain, "kernels")
        out = np.full((len(ri), t.size), np.nan)
        for p, (i, j) in enumerate(zip(ri, si)):
            terms = np.asarray(allk[self.file_index[i], self.file_index[j]], dtype=np.float64).reshape(-1, 4)
            if not np.any(terms[:, 1] != 0.0):
                continue
            val = np.zeros_like(t)
            for g, factor, power, _branch in terms:
                val += factor * (t ** power if power else 1.0) * np.exp(-g * t)
            out[p] = val
        return out

    def summary(self) -> dict:
        """Counts and distributions (JSON-ready)."""
        off = ~np.eye(self.n, dtype=bool)
        obs = np.isfinite(self.response) & off
        sig = obs & np.isfinite(self.q) & (self.q < 0.05)
        occ = self.occ[obs]
        return dict(
            strain=self.strain, n_neurons=self.n, unmatched=list(self.unmatched), missing=list(self.missing),
            n_stimulated=len(self.stimulated_neurons()),
            n_responding=int((obs.any(axis=1)).sum()),
            n_observed_pairs=int(obs.sum()), n_significant_pairs_q05=int(sig.sum()),
            frac_significant_negative=float((self.response[sig] < 0).mean()) if sig.any() else float("nan"),
            occ_quantiles_0_25_50_75_100=[float(x) for x in np.percentile(occ, [0, 25, 50, 75, 100])] if occ.size else [],
            dff_significant_quantiles_5_50_95=[float(x) for x in np.percentile(self.response[sig], [5, 50, 95])]
            if sig.any() else [],
        )


@lru_cache(maxsize=4)
def _read_object(path: str, strain: str, key: str) -> np.ndarray:
    """A (300, 300) object array of one strain: ``dFF_all`` (each entry: that pair's trials) or
    ``kernels`` (each entry: that pair's fitted kernel terms, flattened rows of 4)."""
    import h5py

    with h5py.File(path, "r") as f:
        if strain not in f:
            from owjax.neural.spec import unknown_name_message

            raise ValueError(unknown_name_message("atlas strain", strain, tuple(k for k in f if k in STRAINS)))
        return f[strain][key][:]


@lru_cache(maxsize=8)
def _read(path: str, strain: str):
    import h5py

    with h5py.File(path, "r") as f:
        if strain not in f:
            from owjax.neural.spec import unknown_name_message

            raise ValueError(unknown_name_message("atlas strain", strain, tuple(k for k in f if k in STRAINS)))
        ids = tuple(bytes(x).decode("utf-8").strip() for x in f["neuron_ids"][:])
        g = f[strain]
        arrays = tuple(np.asarray(g[k][:]) for k in ("dFF", "q", "q_eq", "occ1"))
        compiled = f.attrs.get("time_compiled", b"")
        compiled = compiled.decode() if isinstance(compiled, (bytes, np.bytes_)) else str(compiled)
    for a in arrays:
        a.setflags(write=False)
    return ids, arrays, compiled


def load_atlas(
    strain: str = "wt", model_names: Iterable[str] | None = None, path: str | Path | None = None
) -> SignalPropagationAtlas:
    """Read the atlas and index it by model cell names.

    Arguments:
        strain: ``wt`` (default) or ``unc31``.
        model_names: the model's cell names (e.g. ``model.cell_names``); atlas ids that map onto
            none of them are dropped and listed in ``unmatched``; model neurons the atlas lacks are
            listed in ``missing`` (body-wall muscles are ignored). ``None``: the 302 c302 neurons.
        path: the HDF5 file (default: the one in the ``wormneuroatlas`` package).

    Returns:
        A :class:`SignalPropagationAtlas`.
    """
    if strain not in STRAINS:
        from owjax.neural.spec import unknown_name_message

        raise ValueError(unknown_name_message("atlas strain", strain, STRAINS))
    path = Path(path) if path is not None else atlas_path()
    ids, (dff, q, q_eq, occ), compiled = _read(str(path), strain)
    if model_names is None:
        from owjax.neural.c302_data import load_c302_network

        model_names = load_c302_network("C1", "Full").neuron_names
    model_names = list(model_names)
    mapped, unmatched = map_atlas_names(ids, model_names)
    keep = np.array([i for i, m in enumerate(mapped) if m is not None], dtype=int)
    sub = np.ix_(keep, keep)
    from owjax.neural.spec import is_body_wall_muscle

    names = tuple(mapped[i] for i in keep)
    missing = tuple(n for n in model_names if n not in set(names) and not is_body_wall_muscle(n))
    return SignalPropagationAtlas(
        names=names, atlas_ids=tuple(ids[i] for i in keep), response=np.array(dff[sub], dtype=np.float64),
        q=np.array(q[sub], dtype=np.float64), q_eq=np.array(q_eq[sub], dtype=np.float64),
        occ=np.array(occ[sub], dtype=np.int64), strain=strain, unmatched=tuple(unmatched), missing=missing,
        source=str(path), compiled=compiled, file_index=tuple(int(i) for i in keep),
    )

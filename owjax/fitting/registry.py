"""Component registry: where every model parameter value comes from, and what would replace it.

DD017 asks that every parameter carry its provenance, so a user can see at a glance which values
are measured, which come from the literature or a mechanism, which were hand-tuned, and which were
produced by a fit or a learned model — and what measurement would retire a guess. Sources:

================  ========================================================================
source            meaning
================  ========================================================================
``measured``      a C. elegans measurement (reference given), e.g. EM synapse counts
``literature``    literature / mechanistic value (another preparation, a model's equations,
                  or computed from other parameters)
``hand_tuned``    set by hand: c302's values (c302 marks them ``BlindGuess``), assumptions
``auto_fitted``   produced by ``python -m owjax.fit`` (experiment, data, loss, date, commit)
``ml_predicted``  predicted by a learned model (model and checkpoint)
================  ========================================================================

A :class:`Registry` is a list of :class:`RegistryEntry` — one per kind of parameter (leaf ×
subsystem × channel/synapse type) with the number of values it covers — built for a model with
:meth:`Registry.for_model`; a fit re-labels the rows it changed (:meth:`Registry.with_fit`). Every
fitted parameter file embeds its registry. From the shell::

    python -m owjax.registry                      # c302 C1 Full network + intestine defaults
    python -m owjax.registry outputs/fit/.../params.json --figure registry.png
    python -m owjax.registry --source auto_fitted --subsystem neurons params.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from owjax.fitting.leaves import SUBSYSTEMS, get_leaf, leaf_catalogue, leaf_rows, model_kind
from owjax.neural.spec import unknown_name_message

__all__ = [
    "SOURCES",
    "SOURCE_LABELS",
    "Provenance",
    "RegistryEntry",
    "Registry",
    "git_commit",
    "auto_fitted_provenance",
    "main",
]

SOURCES = ("measured", "literature", "hand_tuned", "auto_fitted", "ml_predicted")
SOURCE_LABELS = {
    "measured": "measured",
    "literature": "literature / mechanistic",
    "hand_tuned": "hand-tuned (c302 BlindGuess, assumptions)",
    "auto_fitted": "auto-fitted (owjax.fit)",
    "ml_predicted": "ML-predicted",
}
_SOURCE_COLORS = {
    "measured": "#2b8cbe",
    "literature": "#7bccc4",
    "hand_tuned": "#fdae6b",
    "auto_fitted": "#e6550d",
    "ml_predicted": "#756bb1",
}

BOYLE_COHEN_2008 = (
    "Boyle JH, Cohen N (2008) Caenorhabditis elegans body wall muscles are simple actuators. "
    "Biosystems 94:170-181 (HH kinetics used by c302's C/C1 channels)"
)
WHITE_1986 = (
    "White JG et al. (1986) Phil Trans R Soc B 314:1-340, via c302's default connectome reader "
    "(legacy OpenWorm spreadsheet)"
)


@dataclass(frozen=True)
class Provenance:
    """Where a value comes from.

    Attributes:
        source: one of :data:`SOURCES`.
        reference: citation, c302 BioParameter, or experiment name.
        certainty: c302's certainty (0–1) where it gives one.
        details: auto-fitted: ``experiment, data, loss, date, git_commit, run_dir``; ML-predicted:
            ``model, checkpoint``; anything else useful.
        replacement: the measurement that would replace the value.
    """

    source: str
    reference: str = ""
    certainty: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    replacement: str = ""

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(unknown_name_message("provenance source", self.source, SOURCES))
        if self.source == "auto_fitted":
            missing = [k for k in ("experiment", "data", "loss", "date", "git_commit") if k not in self.details]
            if missing:
                raise ValueError(f"auto_fitted provenance needs details {missing}")
        if self.source == "ml_predicted":
            missing = [k for k in ("model", "checkpoint") if k not in self.details]
            if missing:
                raise ValueError(f"ml_predicted provenance needs details {missing}")


@dataclass(frozen=True)
class RegistryEntry:
    """One kind of parameter and its provenance.

    Attributes:
        key: unique id (``neurons/channels.g_max_nS/k_slow``, ``fit:param_recovery/conductances``).
        leaf: model leaf path.
        subsystem: one of :data:`owjax.fitting.leaves.SUBSYSTEMS`.
        kind: row kind (channel id, ``exc``/``inh``, ``gap``, ``cell``, ``value``).
        description: what it is.
        unit: unit of ``value_min``/``value_max``.
        n_values: how many model values (rows) this entry covers.
        value_min, value_max: range of the values (fitted unit).
        provenance: the :class:`Provenance`.
        rows: row names (for fitted entries; ``None`` for defaults, which cover "the rest").
        groups: fitted group labels and values (fitted entries).
    """

    key: str
    leaf: str
    subsystem: str
    kind: str
    description: str
    unit: str
    n_values: int
    value_min: float
    value_max: float
    provenance: Provenance
    rows: tuple[str, ...] | None = None
    groups: Mapping[str, float] | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["provenance"] = asdict(self.provenance)
        d["rows"] = list(self.rows) if self.rows is not None else None
        d["groups"] = dict(self.groups) if self.groups is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "RegistryEntry":
        d = dict(d)
        d["provenance"] = Provenance(**d["provenance"])
        d["rows"] = tuple(d["rows"]) if d.get("rows") is not None else None
        return cls(**d)


# ---------------------------------------------------------------------------- defaults
_REPLACEMENT = {
    "channels.g_max_nS": (
        "whole-cell voltage clamp of the identified cell class with channel blockers (as for RMD, "
        "AWA, AVA; Goodman 1998, Liu 2018); interim: CeNGEN expression × unit conductance (DD005/DD025)"
    ),
    "channels.erev_mV": "ion-substitution reversal measurements, or Nernst potentials from measured ion concentrations",
    "gates": "voltage-clamp activation/inactivation curves and time constants of the channel (SHK-1, EGL-19, "
    "SLO-2 …) in identified neurons/muscle; interim: DD025 predicted kinetics",
    "ca_gates": "Ca-dependent inactivation of EGL-19 measured with Ca buffers/caged Ca in body-wall muscle",
    "membranes.capacitance_pF": "whole-cell capacitance measurements; membrane areas from EM reconstructions",
    "membranes.area_um2": "membrane areas from EM reconstructions (White 1986, Witvliet 2021 volumes)",
    "membranes.v_init_mV": "resting potentials from perforated-patch recordings",
    "membranes.ca": "calibrated Ca imaging (GCaMP with [Ca] calibration): decay τ, buffering, resting [Ca]",
    "graded.weight": "already EM counts; refine with synaptic contact areas (Witvliet 2021, Cook 2019) or functional "
    "strengths (Randi 2023 signal-propagation atlas)",
    "graded": "paired recordings / optogenetic stimulation with patch clamp of the postsynaptic cell "
    "(Liu 2009 NMJ; Randi 2023 kernels) for conductance, threshold and kinetics",
    "gaps.weight": "already EM counts; refine with innexin expression maps",
    "gaps.g_nS": "dual whole-cell recordings of coupling coefficients (e.g. AVA–A-motor neurons)",
    "intestine": "intestinal Ca imaging of wild type and mutants (Espelt 2005, Teramoto & Iwasaki 2006, "
    "Peters 2007): period, wave speed, amplitude; IP3R/SERCA kinetics from biochemical measurements",
}


def _replacement_for(leaf: str) -> str:
    if leaf in _REPLACEMENT:
        return _REPLACEMENT[leaf]
    head = leaf.split(".")[0]
    if leaf.startswith("membranes.ca"):
        return _REPLACEMENT["membranes.ca"]
    if head in ("graded", "graded2"):
        return _REPLACEMENT["graded.weight"] if leaf.endswith("weight") else _REPLACEMENT["graded"]
    return _REPLACEMENT.get(head, _REPLACEMENT["intestine"] if "." not in leaf else "a direct measurement")


def _bioparameters(parameter_set: str | None) -> dict[str, dict]:
    if not parameter_set:
        return {}
    try:
        from owjax.neural.c302_data import c302_parameters

        return {p["name"]: p for p in c302_parameters(parameter_set)}
    except Exception:  # unknown set / data missing
        return {}


def _c302(bp: Mapping[str, dict], names: Iterable[str], parameter_set: str | None, what: str) -> Provenance:
    names = list(names)
    found = [bp[n] for n in names if n in bp]
    ref_set = f"c302 parameters_{parameter_set}" if parameter_set else "c302"
    if found:
        ref = "; ".join(f"{ref_set}.{p['name']} = {p['value']} ({p['source']})" for p in found)
        certs = [float(p["certainty"]) for p in found if p.get("certainty") not in (None, "")]
        src = "hand_tuned" if all(p["source"] in ("BlindGuess", "KnownError") for p in found) else "literature"
        return Provenance(src, ref, min(certs) if certs else None, {}, _replacement_for(what))
    return Provenance("hand_tuned", f"{ref_set} ({', '.join(names)})", None, {}, _replacement_for(what))


def _network_provenance(leaf: str, subsystem: str, kind: str, cell_kind: str, bp, ps) -> Provenance:
    who = "neuron" if subsystem == "neurons" else "muscle"
    chan = kind.split("/")[0]
    chan_l = chan.lower().replace("_muscle", "")
    if leaf == "channels.g_max_nS":
        return _c302(bp, [f"{who}_{chan_l}_cond_density"], ps, leaf)
    if leaf == "channels.erev_mV":
        return _c302(bp, [f"{chan_l}_erev"], ps, leaf)
    if leaf.startswith("gates.") or leaf.startswith("ca_gates."):
        return Provenance("literature", BOYLE_COHEN_2008 + f" ({chan} kinetics)", None, {},
                          _replacement_for(leaf.split(".")[0]))
    if leaf in ("membranes.capacitance_pF", "membranes.area_um2"):
        geo = "cell_diameter" if who == "neuron" else "muscle_length"
        return _c302(bp, ["specific_capacitance", geo], ps, leaf)
    if leaf == "membranes.v_init_mV":
        return _c302(bp, ["initial_memb_pot"], ps, leaf)
    if leaf.startswith("membranes.ca_rho"):
        return _c302(bp, ["ca_conc_rho"], ps, leaf)
    if leaf.startswith("membranes.ca_decay"):
        return _c302(bp, ["ca_conc_decay_time"], ps, leaf)
    if leaf.startswith("membranes.ca"):
        return Provenance("hand_tuned", "NeuroML/c302 defaults (resting and initial Ca = 0)", None, {},
                          _replacement_for(leaf))
    if leaf.endswith(".weight"):
        what = "synapse" if leaf.startswith("graded") else "gap junction"
        return Provenance("measured", f"{what} counts from serial-section EM: {WHITE_1986}", None, {},
                          _replacement_for(leaf))
    if leaf.startswith("graded"):
        field_ = leaf.split(".")[1].split("_")[0]
        if field_ == "g":
            return _c302(bp, [f"neuron_to_{cell_kind}_{kind}_syn_conductance"], ps, leaf)
        return _c302(bp, [f"{kind}_syn_{field_}"], ps, leaf)
    if leaf == "gaps.g_nS":
        return _c302(bp, [f"neuron_to_{cell_kind}_elec_syn_gbase"], ps, leaf)
    return Provenance("hand_tuned", "c302", None, {}, _replacement_for(leaf))


def _intestine_sources() -> dict[str, str]:
    try:
        import yaml

        from owjax.organs.intestine import DEFAULT_PARAMETER_FILE

        doc = yaml.safe_load(Path(DEFAULT_PARAMETER_FILE).read_text())
        return {k: str(v.get("source", "")) for k, v in doc.get("parameters", {}).items()}
    except Exception:  # pragma: no cover - intestine data missing
        return {}


def _intestine_provenance(leaf: str, sources: Mapping[str, str]) -> Provenance:
    if leaf == "v_plc":
        src = "; ".join(f"{k}: {sources.get(k, '?')}" for k in ("v_plc_posterior", "plc_gradient"))
    elif leaf in sources:
        src = sources[leaf]
    elif leaf.endswith("0") or leaf == "IP3_0":
        src = sources.get(leaf, "computed")
    else:
        src = ""
    ref = f"owjax/data/intestine_parameters.yaml: {src}" if src else "owjax/data/intestine_parameters.yaml"
    up = src.upper()
    if "FIT" in up or "ASSUMED" in up or not src:
        source = "hand_tuned"
    else:
        source = "literature"
    return Provenance(source, ref, None, {}, _REPLACEMENT["intestine"])


def git_commit(repo: str | Path | None = None) -> str:
    """``HEAD`` commit of the owjax checkout (``+dirty`` with uncommitted changes), or ``unknown``."""
    repo = Path(repo) if repo else Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty and head else "")


def auto_fitted_provenance(
    experiment: str, data: str, loss: str, run_dir: str | Path = "", replacement: str = "", **details
) -> Provenance:
    """Provenance of values produced by ``owjax.fit`` (date and git commit filled in now)."""
    d = dict(
        experiment=experiment, data=data, loss=loss,
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        git_commit=git_commit(), run_dir=str(run_dir), **details,
    )
    return Provenance("auto_fitted", f"owjax.fit experiment {experiment}", None, d, replacement)


# ---------------------------------------------------------------------------- registry
class Registry:
    """The provenance of every parameter of a model (see the module docstring).

    Arguments:
        entries: the entries.
        model: free-text name of the model(s) covered.
    """

    def __init__(self, entries: Iterable[RegistryEntry], model: str = ""):
        self.entries: list[RegistryEntry] = list(entries)
        self.model = model
        keys = [e.key for e in self.entries]
        dup = [k for k, c in Counter(keys).items() if c > 1]
        if dup:
            raise ValueError(f"duplicate registry keys: {dup[:5]}")

    # ------------------------------------------------------------- building
    @classmethod
    def for_model(cls, model, parameter_set: str | None = None) -> "Registry":
        """Default provenance of every parameter of ``model`` (network or intestine).

        Arguments:
            model: a :class:`~owjax.neural.network.NetworkModel` or an intestine model.
            parameter_set: c302 parameter set whose BioParameters give references and certainty
                (default: read from the model name ``c302_<SET>_<config>``).
        """
        kind = model_kind(model)
        entries = []
        if kind == "network":
            name = str(getattr(model, "name", ""))
            if parameter_set is None:
                m = re.match(r"c302_([A-Z]\w*?)_", name)
                parameter_set = m.group(1) if m else None
            bp = _bioparameters(parameter_set)
            for leaf, info in leaf_catalogue(model).items():
                if leaf.startswith("stimuli."):
                    continue  # the experimental protocol, not a model parameter
                rows = leaf_rows(model, leaf)
                if len(rows) == 0:
                    continue
                vals = np.asarray(get_leaf(model, leaf), dtype=np.float64).reshape(-1) / rows.scale
                part: dict[tuple[str, str, str], list[int]] = defaultdict(list)
                for i in range(len(rows)):
                    ck = "muscle" if rows.subsystem[i] in ("synapses", "gap_junctions") and rows.cell[i].startswith("M") and \
                        re.match(r"^M[DV][LR]\d\d$", rows.cell[i]) else "neuron"
                    part[(rows.subsystem[i], rows.kind[i], ck)].append(i)
                for (sub, kd, ck), idx in part.items():
                    prov = _network_provenance(leaf, sub, kd, ck, bp, parameter_set)
                    tail = kd if ck == "neuron" or sub not in ("synapses", "gap_junctions") else f"{kd}/to_muscle"
                    v = vals[idx]
                    entries.append(RegistryEntry(
                        key=f"{sub}/{leaf}/{tail}", leaf=leaf, subsystem=sub, kind=tail,
                        description=info.description, unit=info.unit, n_values=len(idx),
                        value_min=float(v.min()), value_max=float(v.max()), provenance=prov,
                    ))
            return cls(entries, model=name)
        if kind == "intestine":
            srcs = _intestine_sources()
            for leaf, info in leaf_catalogue(model).items():
                if leaf.startswith("trigger_") or leaf == "event_threshold":
                    sub_desc = " (trigger to the enteric neurons)"
                else:
                    sub_desc = ""
                v = np.asarray(get_leaf(model, leaf), dtype=np.float64).reshape(-1)
                entries.append(RegistryEntry(
                    key=f"intestine/{leaf}", leaf=leaf, subsystem="intestine", kind="value",
                    description=info.description + sub_desc, unit=info.unit, n_values=int(v.size),
                    value_min=float(v.min()), value_max=float(v.max()), provenance=_intestine_provenance(leaf, srcs),
                ))
            return cls(entries, model=type(model).__name__)
        raise TypeError(f"no default registry for {type(model).__name__}; build entries by hand")

    def with_fit(self, space, raw, provenance: Provenance, prefix: str = "fit") -> "Registry":
        """A new registry in which the rows set by ``space`` carry ``provenance``.

        Trainable blocks get ``provenance`` (normally ``auto_fitted``); fixed blocks with an
        ``init`` become ``hand_tuned`` (set by the experiment). Default entries lose the rows.

        Arguments:
            space: the :class:`~owjax.fitting.params.ParameterSpace` of the fit.
            raw: its unconstrained values (the fit result).
            provenance: provenance of the fitted values.
            prefix: key prefix of the new entries.
        """
        vals = space.values(raw)
        taken: Counter = Counter()
        new = []
        exp = provenance.details.get("experiment", "fit")
        for b in space.blocks:
            rows = b.rows
            for i in b.row_index:
                taken[(b.spec.leaf, rows.subsystem[i], rows.kind[i])] += 1
            v = np.asarray(vals[b.name], dtype=np.float64)
            subs = Counter(rows.subsystem[i] for i in b.row_index)
            for sub, n in subs.items():
                rr = tuple(rows.names[i] for i in b.row_index if rows.subsystem[i] == sub)
                g_in = sorted({int(b.group_of_row[j]) for j, i in enumerate(b.row_index) if rows.subsystem[i] == sub})
                prov = provenance if b.spec.trainable else Provenance(
                    "hand_tuned", f"set by experiment {exp} (block {b.name})", None, {}, provenance.replacement)
                prov = replace(prov, replacement=b.spec.replacement or _replacement_for(b.spec.leaf))
                key = f"{prefix}:{exp}/{b.name}" + (f"/{sub}" if len(subs) > 1 else "")
                new.append(RegistryEntry(
                    key=key, leaf=b.spec.leaf, subsystem=sub, kind=",".join(sorted({rows.kind[i] for i in b.row_index})),
                    description=b.spec.description or rows.info.description, unit=b.unit, n_values=n,
                    value_min=float(v[g_in].min()), value_max=float(v[g_in].max()), provenance=prov,
                    rows=rr, groups={b.labels[g]: float(v[g]) for g in g_in},
                ))
        out = []
        for e in self.entries:
            if e.rows is None:
                kd = e.kind.replace("/to_muscle", "")
                n_taken = taken.get((e.leaf, e.subsystem, kd), 0)
                if n_taken:
                    # the default entry may be split by target (neuron/muscle): take at most its size
                    used = min(n_taken, e.n_values)
                    taken[(e.leaf, e.subsystem, kd)] -= used
                    if e.n_values - used <= 0:
                        continue
                    e = replace(e, n_values=e.n_values - used)
            out.append(e)
        return Registry(out + new, model=self.model)

    # ------------------------------------------------------------- queries
    def query(
        self, source: str | None = None, subsystem: str | None = None, leaf: str | None = None,
        key_contains: str | None = None,
    ) -> list[RegistryEntry]:
        """Entries matching every given filter (``leaf`` may be a prefix such as ``channels``)."""
        if source is not None and source not in SOURCES:
            raise ValueError(unknown_name_message("provenance source", source, SOURCES))
        if subsystem is not None and subsystem not in SUBSYSTEMS:
            raise ValueError(unknown_name_message("subsystem", subsystem, SUBSYSTEMS))
        out = []
        for e in self.entries:
            if source and e.provenance.source != source:
                continue
            if subsystem and e.subsystem != subsystem:
                continue
            if leaf and not (e.leaf == leaf or e.leaf.startswith(leaf + ".") or e.leaf.startswith(leaf)):
                continue
            if key_contains and key_contains not in e.key:
                continue
            out.append(e)
        return out

    def provenance_of(self, leaf: str, row: str | None = None) -> Provenance:
        """Provenance of one value: the fitted entry that lists ``row``, else the default entry of ``leaf``."""
        if row is not None:
            for e in self.entries:
                if e.leaf == leaf and e.rows is not None and row in e.rows:
                    return e.provenance
        cands = [e for e in self.entries if e.leaf == leaf and e.rows is None]
        if row is not None and cands:
            kinds = [e for e in cands if "/" in row and row.split("/", 1)[1].startswith(e.kind.split("/")[0])]
            cands = kinds or cands
        if not cands:
            raise KeyError(unknown_name_message("registry leaf", leaf, sorted({e.leaf for e in self.entries})))
        return cands[0].provenance

    def counts(self) -> dict[str, dict[str, int]]:
        """``{subsystem: {source: number of values}}``."""
        out: dict[str, dict[str, int]] = {}
        for e in self.entries:
            out.setdefault(e.subsystem, {s: 0 for s in SOURCES})[e.provenance.source] += e.n_values
        return out

    def __len__(self) -> int:
        return len(self.entries)

    def __add__(self, other: "Registry") -> "Registry":
        return Registry(self.entries + other.entries, model=" + ".join(x for x in (self.model, other.model) if x))

    # ------------------------------------------------------------- I/O
    def to_dict(self) -> dict:
        return dict(format="owjax-registry/1", model=self.model, entries=[e.to_dict() for e in self.entries],
                    counts=self.counts())

    @classmethod
    def from_dict(cls, d: Mapping) -> "Registry":
        if d.get("format") != "owjax-registry/1":
            raise ValueError("not an owjax registry (format must be 'owjax-registry/1')")
        return cls([RegistryEntry.from_dict(e) for e in d["entries"]], model=d.get("model", ""))

    @classmethod
    def from_param_file(cls, path: str | Path) -> "Registry":
        """The registry embedded in a parameter file written by ``owjax.fit``."""
        doc = json.loads(Path(path).read_text())
        if not doc.get("registry"):
            raise ValueError(f"{path} has no registry")
        return cls.from_dict(doc["registry"])

    def table(self, markdown: bool = False) -> str:
        """A text (or markdown) table: key, subsystem, values, source, range, reference, replacement."""
        head = ["parameter", "subsystem", "n", "source", "range", "unit", "reference", "replacement pathway"]
        rows = []
        for e in sorted(self.entries, key=lambda e: (SUBSYSTEMS.index(e.subsystem) if e.subsystem in SUBSYSTEMS
                                                      else 99, e.key)):
            rng = f"{e.value_min:.4g}" if e.value_min == e.value_max else f"{e.value_min:.4g}…{e.value_max:.4g}"
            ref = e.provenance.reference
            if e.provenance.source == "auto_fitted":
                d = e.provenance.details
                ref = f"{ref}; loss {d.get('loss')}; {d.get('date')}; commit {str(d.get('git_commit'))[:12]}"
            rows.append([e.key, e.subsystem, str(e.n_values), e.provenance.source, rng, e.unit, ref,
                         e.provenance.replacement])
        if markdown:
            esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
            lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
            return "\n".join(lines)
        lines = [f"{'parameter':44s} {'n':>6s}  {'source':12s} {'value':24s} reference"]
        for r in rows:
            key = r[0] if len(r[0]) <= 44 else r[0][:43] + "…"
            val = f"{r[4]} {r[5]}"
            lines.append(f"{key:44s} {r[2]:>6s}  {r[3]:12s} {val[:24]:24s} {r[6][:100]}")
        lines.append("\nreplacement pathways (what measurement would replace each kind of value):")
        by_repl: dict[str, list[str]] = {}
        for e in self.entries:
            if e.provenance.source in ("measured",):
                continue
            by_repl.setdefault(e.provenance.replacement, [])
            if e.leaf not in by_repl[e.provenance.replacement]:
                by_repl[e.provenance.replacement].append(e.leaf)
        for repl, leaves in by_repl.items():
            shown = ", ".join(leaves[:6]) + (" …" if len(leaves) > 6 else "")
            lines.append(f"  - {shown}: {repl}")
        return "\n".join(lines)

    def summary(self) -> str:
        """Counts per subsystem and source as a small text table."""
        c = self.counts()
        subs = [s for s in SUBSYSTEMS if s in c] + [s for s in c if s not in SUBSYSTEMS]
        lines = ["subsystem       " + "".join(f"{s:>14s}" for s in SOURCES) + "         total"]
        for s in subs:
            lines.append(f"{s:16s}" + "".join(f"{c[s][k]:14d}" for k in SOURCES) + f"{sum(c[s].values()):14d}")
        return "\n".join(lines)

    def figure(self, path: str | Path | None = None, title: str | None = None):
        """Bar chart: number of values per source in each subsystem (log scale). Saves to ``path``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        c = self.counts()
        subs = [s for s in SUBSYSTEMS if s in c]
        fig, ax = plt.subplots(figsize=(8.5, 4.2))
        width = 0.8 / len(SOURCES)
        x = np.arange(len(subs))
        for j, s in enumerate(SOURCES):
            vals = np.array([c[sub][s] for sub in subs], dtype=float)
            bars = ax.bar(x + (j - (len(SOURCES) - 1) / 2) * width, np.where(vals > 0, vals, np.nan), width,
                          label=SOURCE_LABELS[s], color=_SOURCE_COLORS[s])
            for b, v in zip(bars, vals):
                if v > 0:
                    ax.text(b.get_x() + b.get_width() / 2, v * 1.08, f"{int(v)}", ha="center", va="bottom", fontsize=7)
        ax.set_yscale("log")
        ax.set_xticks(x, [s.replace("_", " ") for s in subs])
        ax.set_ylabel("number of parameter values")
        ax.set_title(title or f"Component registry: {self.model}")
        ax.legend(fontsize=7, loc="upper right")
        ax.set_ylim(0.8, max([1] + [v for d in c.values() for v in d.values()]) * 4)
        fig.tight_layout()
        if path is not None:
            from owjax.core.checkpoint import atomic_savefig

            atomic_savefig(fig, path, dpi=120)
            plt.close(fig)
        return fig


# ---------------------------------------------------------------------------- CLI
def _default_registry(parameter_set: str, network: str, intestine: bool) -> Registry:
    from owjax.neural.c302_data import load_c302_network
    from owjax.neural.network import NetworkModel

    reg = Registry.for_model(NetworkModel.from_spec(load_c302_network(parameter_set, network)), parameter_set)
    if intestine:
        from owjax.organs.intestine import IntestineOscillator

        reg = reg + Registry.for_model(IntestineOscillator.from_yaml())
    return reg


def main(argv: list[str] | None = None) -> int:
    """``python -m owjax.registry [PARAM_FILE]``: print the registry table (and draw its figure)."""
    p = argparse.ArgumentParser(prog="python -m owjax.registry", description=__doc__.split("\n\n")[0])
    p.add_argument("param_file", nargs="?", help="parameter file written by owjax.fit (default: the c302 model)")
    p.add_argument("--parameter-set", default="C1", help="c302 parameter set for the default registry")
    p.add_argument("--network", default="Full", help="c302 config for the default registry")
    p.add_argument("--no-intestine", action="store_true", help="leave the intestine out of the default registry")
    p.add_argument("--source", choices=SOURCES, help="show only entries of this source")
    p.add_argument("--subsystem", choices=SUBSYSTEMS, help="show only entries of this subsystem")
    p.add_argument("--figure", help="write the counts figure (PNG) here")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("--json", action="store_true", help="print the registry as JSON")
    a = p.parse_args(argv)
    from owjax.core.precision import set_precision

    set_precision("float64")  # the entry point chooses the precision (c302's values in float64)
    try:
        if a.param_file:
            reg = Registry.from_param_file(a.param_file)
        else:
            reg = _default_registry(a.parameter_set, a.network, not a.no_intestine)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    shown = Registry(reg.query(source=a.source, subsystem=a.subsystem), model=reg.model)
    if a.json:
        print(json.dumps(shown.to_dict(), indent=1))
    else:
        print(f"Component registry — {reg.model} ({len(shown)} of {len(reg)} entries)\n")
        print(shown.table(markdown=a.markdown))
        print()
        print(shown.summary())
    if a.figure:
        reg.figure(a.figure)
        print(f"\nfigure: {a.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

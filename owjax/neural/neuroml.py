"""Read the NeuroML networks that c302 generates into a :class:`~owjax.neural.spec.NetworkSpec`.

Supported (everything c302's parameter sets C0, C1 and C2 produce):

* ``ionChannel`` — ``ionChannelPassive`` and ``ionChannelHH`` with ``gateHHtauInf`` gates
  (``fixedTimeCourse`` τ; ``HHSigmoidVariable`` / ``MuscleSigmoidVariable`` steady state) and c302's
  ``customHGate`` (instantaneous Ca-dependent h);
* ``fixedFactorConcentrationModel`` (Ca pool); ``cell`` with a single-segment morphology,
  ``channelDensity``, ``specificCapacitance``, ``initMembPotential``, ``spikeThresh`` and a Ca species;
* ``gradedSynapse``, c302's ``gradedSynapse2``, ``gapJunction``, ``silentSynapse``;
* ``pulseGenerator``; ``network`` with ``population``, ``continuousProjection``,
  ``electricalProjection`` and ``inputList``.

Anything else raises :class:`UnsupportedNeuroMLError` naming the element, so a network is never
silently simulated without a part of it. ``<include href=...>`` is followed relative to the file
(gzip-compressed copies ``NAME.gz`` are accepted, which is how owjax ships c302's files).
"""

from __future__ import annotations

import gzip
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from owjax.neural.spec import (
    CaPoolSpec,
    CellTypeSpec,
    ChannelDensity,
    ChannelSpec,
    Connection,
    GateSpec,
    NetworkSpec,
    PulseInput,
    SynapseSpec,
)
from owjax.core.units import parse_quantity

__all__ = ["read_network", "UnsupportedNeuroMLError"]


class UnsupportedNeuroMLError(ValueError):
    """The NeuroML file uses an element or attribute value owjax cannot simulate."""


# Elements that carry no dynamics and are skipped on purpose.
_IGNORED = {"notes", "annotation", "property", "ComponentType", "Include"}


def _tag(el: ET.Element) -> str:
    return el.tag.rsplit("}", 1)[-1]


def _children(el: ET.Element, name: str | None = None):
    for c in el:
        if not isinstance(c.tag, str):  # comments
            continue
        if name is None or _tag(c) == name:
            yield c


def _open(path: Path) -> bytes:
    if path.exists():
        data = path.read_bytes()
    elif Path(str(path) + ".gz").exists():
        data = Path(str(path) + ".gz").read_bytes()
    else:
        raise FileNotFoundError(f"NeuroML file not found: {path} (nor {path}.gz)")
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data


class _Reader:
    def __init__(self) -> None:
        self.channels: dict[str, ChannelSpec] = {}
        self.ca_pools: dict[str, CaPoolSpec] = {}
        self.cell_types: dict[str, CellTypeSpec] = {}
        self.synapses: dict[str, SynapseSpec] = {}
        self.pulses: dict[str, dict] = {}
        self.networks: list[tuple[ET.Element, Path]] = []
        self.seen: set[Path] = set()
        self.channel_errors: dict[str, str] = {}

    # -------------------------------------------------------------- documents
    def read_file(self, path: Path) -> None:
        path = Path(path).resolve()
        key = Path(str(path).removesuffix(".gz"))
        if key in self.seen:
            return
        self.seen.add(key)
        root = ET.fromstring(_open(key))
        if _tag(root) != "neuroml":
            raise UnsupportedNeuroMLError(f"{path}: root element is <{_tag(root)}>, not <neuroml>")
        for el in _children(root):
            self.read_element(el, key)

    def read_element(self, el: ET.Element, path: Path) -> None:
        t = _tag(el)
        if t in _IGNORED:
            return
        if t == "include":
            self.read_file(path.parent / el.attrib["href"])
        elif t == "ionChannel" or t == "ionChannelHH" or t == "ionChannelPassive":
            try:
                self.read_channel(el, path)
            except UnsupportedNeuroMLError as e:  # only an error if a cell uses the channel
                self.channel_errors[el.attrib["id"]] = str(e)
        elif t == "fixedFactorConcentrationModel":
            a = el.attrib
            self.ca_pools[a["id"]] = CaPoolSpec(
                id=a["id"],
                resting_mM=parse_quantity(a["restingConc"], "concentration"),
                decay_ms=parse_quantity(a["decayConstant"], "time"),
                rho=parse_quantity(a["rho"], "rho_factor"),
            )
        elif t == "cell":
            self.read_cell(el, path)
        elif t == "gradedSynapse":
            a = el.attrib
            self.synapses[a["id"]] = SynapseSpec(
                a["id"],
                "graded",
                (
                    ("conductance_nS", parse_quantity(a["conductance"], "conductance")),
                    ("delta_mV", parse_quantity(a["delta"], "voltage")),
                    ("vth_mV", parse_quantity(a["Vth"], "voltage")),
                    ("k_per_ms", parse_quantity(a["k"], "per_time")),
                    ("erev_mV", parse_quantity(a["erev"], "voltage")),
                ),
            )
        elif t == "gradedSynapse2":
            a = el.attrib
            self.synapses[a["id"]] = SynapseSpec(
                a["id"],
                "graded2",
                (
                    ("conductance_nS", parse_quantity(a["conductance"], "conductance")),
                    ("ar_per_ms", parse_quantity(a["ar"], "per_time")),
                    ("ad_per_ms", parse_quantity(a["ad"], "per_time")),
                    ("beta_per_mV", parse_quantity(a["beta"], "per_voltage")),
                    ("vth_mV", parse_quantity(a["vth"], "voltage")),
                    ("erev_mV", parse_quantity(a["erev"], "voltage")),
                ),
            )
        elif t == "gapJunction":
            a = el.attrib
            self.synapses[a["id"]] = SynapseSpec(
                a["id"], "gap", (("conductance_nS", parse_quantity(a["conductance"], "conductance")),)
            )
        elif t == "silentSynapse":
            pass  # the presynaptic side of c302's continuous projections: no dynamics
        elif t == "pulseGenerator":
            a = el.attrib
            self.pulses[a["id"]] = dict(
                delay_ms=parse_quantity(a["delay"], "time"),
                duration_ms=parse_quantity(a["duration"], "time"),
                amplitude_pA=parse_quantity(a["amplitude"], "current"),
            )
        elif t == "network":
            self.networks.append((el, path))
        else:
            raise UnsupportedNeuroMLError(
                f"{path.name}: unsupported NeuroML element <{t} id={el.attrib.get('id')!r}>; owjax "
                "supports the component types of c302's parameter sets C0, C1 and C2 (see "
                "owjax.neural.neuroml)"
            )

    # -------------------------------------------------------------- channels
    def read_channel(self, el: ET.Element, path: Path) -> None:
        a = el.attrib
        ctype = a.get("type", _tag(el))
        cid = a["id"]
        if ctype == "ionChannelPassive":
            self.channels[cid] = ChannelSpec(cid, "passive", a.get("species", "non_specific"))
            return
        if ctype != "ionChannelHH":
            raise UnsupportedNeuroMLError(f"{path.name}: channel {cid!r} has unsupported type {ctype!r}")
        gates = []
        for g in _children(el):
            gt = _tag(g)
            if gt in _IGNORED:
                continue
            n = int(g.attrib.get("instances", "1"))
            if gt == "gateHHtauInf":
                tc = next(_children(g, "timeCourse"), None)
                ss = next(_children(g, "steadyState"), None)
                if tc is None or ss is None:
                    raise UnsupportedNeuroMLError(f"{cid}/{g.attrib['id']}: needs timeCourse and steadyState")
                if tc.attrib.get("type") != "fixedTimeCourse":
                    raise UnsupportedNeuroMLError(
                        f"{cid}/{g.attrib['id']}: timeCourse type {tc.attrib.get('type')!r} unsupported "
                        "(only fixedTimeCourse)"
                    )
                sst = ss.attrib.get("type")
                if sst not in ("HHSigmoidVariable", "MuscleSigmoidVariable"):
                    raise UnsupportedNeuroMLError(
                        f"{cid}/{g.attrib['id']}: steadyState type {sst!r} unsupported "
                        "(HHSigmoidVariable, MuscleSigmoidVariable)"
                    )
                gates.append(
                    GateSpec(
                        name=g.attrib["id"],
                        kind="hh_sigmoid",
                        instances=n,
                        rate=float(ss.attrib.get("rate", "1")),
                        midpoint_mV=parse_quantity(ss.attrib["midpoint"], "voltage"),
                        scale_mV=parse_quantity(ss.attrib["scale"], "voltage"),
                        tau_ms=parse_quantity(tc.attrib["tau"], "time"),
                    )
                )
            elif gt == "customHGate":
                if n != 1:
                    raise UnsupportedNeuroMLError(f"{cid}: customHGate with instances={n}")
                gates.append(
                    GateSpec(
                        name=g.attrib["id"],
                        kind="ca_dependent_h",
                        alpha=float(g.attrib["alpha"]),
                        ca_half_mM=parse_quantity(g.attrib["ca_half"], "concentration"),
                        k_mM=parse_quantity(g.attrib["k"], "concentration"),
                    )
                )
            else:
                raise UnsupportedNeuroMLError(f"{path.name}: channel {cid!r}: unsupported gate <{gt}>")
        self.channels[cid] = ChannelSpec(cid, "hh", a.get("species", "non_specific"), tuple(gates))

    # -------------------------------------------------------------- cells
    def read_cell(self, el: ET.Element, path: Path) -> None:
        cid = el.attrib["id"]
        morph = next(_children(el, "morphology"), None)
        if morph is None:
            raise UnsupportedNeuroMLError(f"cell {cid!r}: no morphology")
        segs = list(_children(morph, "segment"))
        if len(segs) != 1:
            raise UnsupportedNeuroMLError(
                f"cell {cid!r} has {len(segs)} segments; owjax simulates single-compartment cells only"
            )
        prox = next(_children(segs[0], "proximal"))
        dist = next(_children(segs[0], "distal"))
        p = [float(prox.attrib[k]) for k in "xyz"]
        d = [float(dist.attrib[k]) for k in "xyz"]
        r1, r2 = float(prox.attrib["diameter"]) / 2, float(dist.attrib["diameter"]) / 2
        length = math.dist(p, d)
        if length == 0.0:
            area = 4.0 * math.pi * r1 * r1  # a spherical soma
        else:  # lateral surface of the frustum, as NeuroML / NEURON compute it
            area = math.pi * (r1 + r2) * math.sqrt(length**2 + (r1 - r2) ** 2)
        bio = next(_children(el, "biophysicalProperties"))
        mem = next(_children(bio, "membraneProperties"))
        intra = next(_children(bio, "intracellularProperties"), None)
        dens, cap, vinit, thresh = [], None, None, 0.0
        for m in _children(mem):
            t = _tag(m)
            a = m.attrib
            if t == "channelDensity":
                if "segmentGroup" in a and a["segmentGroup"] != "all":
                    raise UnsupportedNeuroMLError(f"cell {cid!r}: channelDensity on segmentGroup {a['segmentGroup']!r}")
                dens.append(
                    ChannelDensity(
                        channel=a["ionChannel"],
                        g_density_nS_per_um2=parse_quantity(a["condDensity"], "conductance_density"),
                        erev_mV=parse_quantity(a["erev"], "voltage"),
                        ion=a.get("ion", "non_specific"),
                    )
                )
            elif t == "specificCapacitance":
                cap = parse_quantity(a["value"], "specific_capacitance")
            elif t == "initMembPotential":
                vinit = parse_quantity(a["value"], "voltage")
            elif t == "spikeThresh":
                thresh = parse_quantity(a["value"], "voltage")
            elif t in _IGNORED:
                pass
            else:
                raise UnsupportedNeuroMLError(f"cell {cid!r}: unsupported membrane property <{t}>")
        if cap is None or vinit is None:
            raise UnsupportedNeuroMLError(f"cell {cid!r}: needs specificCapacitance and initMembPotential")
        pool, ca0 = None, 0.0
        if intra is not None:
            for sp in _children(intra, "species"):
                if sp.attrib.get("ion") != "ca":
                    raise UnsupportedNeuroMLError(f"cell {cid!r}: species {sp.attrib.get('ion')!r} unsupported")
                pool = sp.attrib["concentrationModel"]
                ca0 = parse_quantity(sp.attrib["initialConcentration"], "concentration")
        self.cell_types[cid] = CellTypeSpec(
            id=cid,
            area_um2=area,
            specific_capacitance_pF_per_um2=cap,
            v_init_mV=vinit,
            spike_thresh_mV=thresh,
            channels=tuple(dens),
            ca_pool=pool,
            ca_init_mM=ca0,
        )

    # -------------------------------------------------------------- network
    def build(self, source: str) -> NetworkSpec:
        if len(self.networks) != 1:
            raise UnsupportedNeuroMLError(f"{source}: expected one <network>, found {len(self.networks)}")
        net, path = self.networks[0]
        cells: list[tuple[str, str]] = []
        chem: list[Connection] = []
        elec: list[Connection] = []
        inputs: list[PulseInput] = []
        meta = {"source": str(source), "network_id": net.attrib.get("id", "")}
        for el in _children(net):
            t = _tag(el)
            a = el.attrib
            if t == "property":
                meta[a["tag"]] = a["value"]
            elif t in _IGNORED:
                pass
            elif t == "population":
                size = int(a.get("size", "1"))
                if size != 1:
                    raise UnsupportedNeuroMLError(f"population {a['id']!r} has size {size}; c302 uses 1")
                if a["component"] not in self.cell_types:
                    raise UnsupportedNeuroMLError(
                        f"population {a['id']!r}: unknown cell component {a['component']!r}"
                    )
                cells.append((a["id"], a["component"]))
            elif t == "continuousProjection":
                for ci in _children(el):
                    if _tag(ci) not in ("continuousConnectionInstanceW", "continuousConnectionInstance"):
                        raise UnsupportedNeuroMLError(f"{a['id']}: unsupported <{_tag(ci)}>")
                    pre_c, post_c = ci.attrib["preComponent"], ci.attrib["postComponent"]
                    if pre_c != "silent" and pre_c not in self.synapses:
                        raise UnsupportedNeuroMLError(f"{a['id']}: unknown preComponent {pre_c!r}")
                    if pre_c != "silent":
                        raise UnsupportedNeuroMLError(
                            f"{a['id']}: presynaptic component {pre_c!r}; owjax expects c302's 'silent'"
                        )
                    if post_c not in self.synapses or self.synapses[post_c].kind == "gap":
                        raise UnsupportedNeuroMLError(f"{a['id']}: unsupported postComponent {post_c!r}")
                    chem.append(
                        Connection(
                            a["presynapticPopulation"],
                            a["postsynapticPopulation"],
                            post_c,
                            float(ci.attrib.get("weight", "1")),
                        )
                    )
            elif t == "electricalProjection":
                for ci in _children(el):
                    if _tag(ci) not in ("electricalConnectionInstanceW", "electricalConnectionInstance"):
                        raise UnsupportedNeuroMLError(f"{a['id']}: unsupported <{_tag(ci)}>")
                    syn = ci.attrib["synapse"]
                    if syn not in self.synapses or self.synapses[syn].kind != "gap":
                        raise UnsupportedNeuroMLError(f"{a['id']}: unknown gap junction {syn!r}")
                    elec.append(
                        Connection(
                            a["presynapticPopulation"],
                            a["postsynapticPopulation"],
                            syn,
                            float(ci.attrib.get("weight", "1")),
                        )
                    )
            elif t == "inputList":
                comp = a["component"]
                if comp not in self.pulses:
                    raise UnsupportedNeuroMLError(
                        f"inputList {a['id']!r}: input component {comp!r} is not a pulseGenerator"
                    )
                for _ in _children(el, "input"):
                    inputs.append(PulseInput(cell=a["population"], id=comp, **self.pulses[comp]))
            elif t == "projection":
                raise UnsupportedNeuroMLError(
                    f"<projection id={a.get('id')!r}>: event-based (spiking) synapses are not supported; "
                    "owjax supports c302's continuous (graded) and electrical projections"
                )
            else:
                raise UnsupportedNeuroMLError(f"network {net.attrib.get('id')!r}: unsupported element <{t}>")
        names = {c for c, _ in cells}
        for c in chem + elec:
            for n in (c.pre, c.post):
                if n not in names:
                    raise UnsupportedNeuroMLError(f"connection {c} refers to unknown population {n!r}")
        # only the parts the network uses
        used_types = {t for _, t in cells}
        used_channels = {d.channel for t in used_types for d in self.cell_types[t].channels}
        for c in sorted(used_channels):
            if c in self.channel_errors:
                raise UnsupportedNeuroMLError(self.channel_errors[c])
        missing = sorted(used_channels - set(self.channels))
        if missing:
            raise UnsupportedNeuroMLError(f"{source}: channels {missing} are used but not defined")
        return NetworkSpec(
            name=meta["network_id"] or Path(source).stem,
            cells=tuple(cells),
            cell_types={t: self.cell_types[t] for t in sorted(used_types)},
            channels={c: self.channels[c] for c in sorted(used_channels)},
            ca_pools=dict(self.ca_pools),
            synapses=dict(self.synapses),
            chemical=tuple(chem),
            electrical=tuple(elec),
            inputs=tuple(inputs),
            metadata=meta,
        )


def read_network(path: str | os.PathLike) -> NetworkSpec:
    """Read a c302-generated NeuroML network file (``*.net.nml``, or ``*.net.nml.gz``).

    Arguments:
        path: the network file; files it includes are looked up beside it.

    Returns:
        The network as a :class:`~owjax.neural.spec.NetworkSpec` in owjax units.

    Raises:
        FileNotFoundError: the file (or an included file) does not exist.
        UnsupportedNeuroMLError: the file uses an element owjax cannot simulate (named in the message).
    """
    r = _Reader()
    r.read_file(Path(path))
    return r.build(str(path))

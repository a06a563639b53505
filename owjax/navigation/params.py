"""The trainable parameters of the thermotaxis loop: bounded, sign-preserving parametrisation, and files.

Raw (unconstrained) parameters → values (:func:`values_from_raw`):

* ``weight`` (one per c302 chemical connection of the head circuit) = ``w_c302 · S · M · σ(ρ + logit(1/M))``
  — positive and at most ``M`` times its starting value ``S · w_c302`` (``weight_max_factor`` M,
  ``weight_scale`` S); ρ = 0 is the start: c302's weights, all scaled by S (S = 1: c302's own). The sign
  is the connection's reversal potential, c302's, never trained. Only existing connections exist.
  Why S < 1: with c302's weights the graded reduction of the head circuit is bistable — its
  all-excitatory loops latch every interneuron at ≈ −25 mV whatever AFD does (measured,
  experiments/thermotaxis/README.md) — and a latched circuit has no gradient.
* ``vth_mV`` (per connection) = ``−70 + 70 · σ(raw)`` mV, bounded in (−70, 0) mV;
* ``bias_pA`` (per cell) = ``B · tanh(raw)``, bounded in (−B, B) pA (``bias_max_pA``);
* ``tau_ms`` (per connection, only when ``init_raw(tau_init_ms=…)`` asks for it) = the synapse's time
  constant 1/k, ``τ_min · (τ_max/τ_min)^σ(raw)`` — bounded in (τ_min, τ_max) = (c302's 1/k = 40 ms,
  ``TAU_MAX_MS``), log-uniform. c302's graded synapses all have k = 0.025/ms, so the reduction has no
  memory beyond ≈ 0.1 s; a slow synapse gives it one (the seconds over which a worm compares the
  temperature it feels now with the one it felt: a derivative). Without it, c302's k is kept.
* ``p_exc`` (per connection, only when ``init_raw(p_exc_init=…)`` asks for it: the transmitter-prior
  polarity of :mod:`owjax.navigation.polarity`) = ``σ(raw)`` where the prior leaves the sign free, 1 or 0
  where it fixes it: the excitatory fraction of the connection's conductance, applied as the mixed
  reversal potential ``E_inh + p (E_exc − E_inh)``. Without it, c302's signs are kept.
* ``afd_gain_pA`` = ``5 σ(raw)`` in (0, 5) pA, ``afd_offset_pA`` = ``2 tanh(raw)`` in (−2, 2) pA;
* ``steer_gain`` = ``20 σ(raw)``, ``reversal_gain`` = ``20 σ(raw)`` in (0, 20),
  ``reversal_threshold_mV`` = ``30 tanh(raw)`` in (−30, 30) mV;
* only when ``init_raw(afd_phasic=…)`` asks for it, AFD's phasic channel
  (:class:`~owjax.sensory.phasic.PhasicResponse`): ``afd_phasic_pA`` = ``500 σ(raw)`` in (0, 500) pA per
  unit of band-passed response, and its two time constants, log-uniform in ``afd_phasic_tau_fast_s`` ∈
  (0.05, 5) s and ``afd_phasic_tau_slow_s`` ∈ (0.2, 30) s (:data:`PHASIC_BOUNDS`). Values with these
  keys build a loop with the channel (:func:`afd_phasic_from_values`).

:func:`apply_values` writes the values into a loop built by :func:`owjax.navigation.loop.build_loop`;
:func:`save_values` / :func:`load_values` store them (``.npz`` + ``.json`` with provenance, the
connection names checked on load).
"""

from __future__ import annotations

import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from owjax.core.component import Composite
from owjax.navigation.loop import AFD_PHASIC_KEYS, check_afd_phasic

__all__ = ["init_raw", "values_from_raw", "raw_from_values", "apply_values", "save_values", "load_values", "SCALAR_KEYS",
           "DEFAULT_DATA", "TAU_MAX_MS", "PHASIC_BOUNDS", "afd_phasic_from_values", "phasic_values", "phasic_raw"]

#: the loop-level (coupling) parameters
SCALAR_KEYS = ("afd_gain_pA", "afd_offset_pA", "steer_gain", "reversal_gain", "reversal_threshold_mV")
#: the shipped trained parameters
DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data" / "thermotaxis" / "head_circuit.npz"
#: upper bound of a trained synaptic time constant (ms)
TAU_MAX_MS = 20_000.0


def _logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


#: the synaptic thresholds' bounds (mV) and squashing (see :data:`_SCALAR_BOUNDS`)
_VTH = (-70.0, 0.0, "sigmoid")
#: the loop-level read-outs' bounds and squashing: ``sigmoid`` = lo + (hi − lo)·σ(raw), ``tanh`` = hi·tanh(raw)
#: (symmetric bounds, lo = −hi)
_SCALAR_BOUNDS = {"afd_gain_pA": (0.0, 5.0, "sigmoid"), "afd_offset_pA": (-2.0, 2.0, "tanh"),
                  "steer_gain": (0.0, 20.0, "sigmoid"), "reversal_gain": (0.0, 20.0, "sigmoid"),
                  "reversal_threshold_mV": (-30.0, 30.0, "tanh")}


#: AFD's phasic channel (optional): value key → (raw key, lo, hi, squashing; ``log``: lo · (hi/lo)^σ(raw))
PHASIC_BOUNDS = {"afd_phasic_pA": ("phasic_gain", 0.0, 500.0, "sigmoid"),
                 "afd_phasic_tau_fast_s": ("phasic_tau_fast", 0.05, 5.0, "log"),
                 "afd_phasic_tau_slow_s": ("phasic_tau_slow", 0.2, 30.0, "log")}
#: value key → the key of ``build_loop``'s ``afd_phasic`` it holds
_PHASIC_SETTING = dict(zip(PHASIC_BOUNDS, AFD_PHASIC_KEYS))


def _bounded(raw, lo: float, hi: float, kind: str):
    """A bounded value from its raw parameter (``kind`` as in :data:`_SCALAR_BOUNDS`, or ``log``)."""
    if kind == "log":
        return lo * jnp.exp(np.log(hi / lo) * jax.nn.sigmoid(raw))
    return lo + (hi - lo) * jax.nn.sigmoid(raw) if kind == "sigmoid" else hi * jnp.tanh(raw)


def _unbounded(value, lo: float, hi: float, kind: str):
    """The raw parameter of a value strictly inside (lo, hi): the inverse of :func:`_bounded` (numpy)."""
    value = np.asarray(value, np.float64)
    if kind == "log":
        return _logit(np.log(value / lo) / np.log(hi / lo))
    return _logit((value - lo) / (hi - lo)) if kind == "sigmoid" else np.arctanh(value / hi)


def phasic_raw(afd_phasic, dtype=jnp.float32) -> dict:
    """The raw parameters of AFD's phasic channel starting at ``afd_phasic`` (``{"gain_pA", "tau_fast_s",
    "tau_slow_s"}``, each strictly inside its :data:`PHASIC_BOUNDS`, or a clear error)."""
    check_afd_phasic(afd_phasic)
    if not float(afd_phasic["tau_fast_s"]) < float(afd_phasic["tau_slow_s"]):
        raise ValueError(f"afd_phasic: tau_fast_s ({afd_phasic['tau_fast_s']}) must be < tau_slow_s "
                         f"({afd_phasic['tau_slow_s']})")
    out = {}
    for vkey, (rkey, lo, hi, kind) in PHASIC_BOUNDS.items():
        k = _PHASIC_SETTING[vkey]
        if not lo < float(afd_phasic[k]) < hi:
            raise ValueError(f"afd_phasic {k}={afd_phasic[k]} outside its bounds ({lo:g}, {hi:g}) ({vkey})")
        out[rkey] = jnp.asarray(_unbounded(afd_phasic[k], lo, hi, kind), dtype)
    return out


def _has_phasic(values) -> bool:
    """Whether ``values`` carry AFD's phasic channel (all of its keys; a partial set is an error)."""
    have = [k for k in PHASIC_BOUNDS if k in values]
    if have and len(have) != len(PHASIC_BOUNDS):
        raise ValueError(f"values: AFD's phasic channel needs all of {list(PHASIC_BOUNDS)}, got only {have}")
    return bool(have)


def afd_phasic_from_values(values) -> dict | None:
    """``build_loop``'s ``afd_phasic`` (``{"gain_pA", "tau_fast_s", "tau_slow_s"}``, floats) from values that
    carry AFD's phasic channel; ``None`` when ``values`` is ``None`` or has none of its keys (a partial set is
    an error). Not for traced values (use it where the loop is built)."""
    if values is None or not _has_phasic(values):
        return None
    return {k: float(values[vkey]) for vkey, k in _PHASIC_SETTING.items()}


def phasic_values(afd_phasic) -> dict:
    """The value entries (:data:`PHASIC_BOUNDS`' keys) of ``build_loop``'s ``afd_phasic``: the inverse of
    :func:`afd_phasic_from_values`."""
    check_afd_phasic(afd_phasic)
    return {vkey: afd_phasic[k] for vkey, k in _PHASIC_SETTING.items()}


def init_raw(n_cells: int, n_syn: int, vth_init_mV: float, afd_gain_pA: float, afd_offset_pA: float,
             steer_gain: float, reversal_gain: float, reversal_threshold_mV: float, bias_max_pA: float,
             dtype=jnp.float32, tau_init_ms=None, tau_min_ms: float = 40.0, p_exc_init=None,
             afd_phasic=None) -> dict:
    """Raw parameters whose values are c302's weights, thresholds at ``vth_init_mV``, zero bias and
    the given read-outs; with ``tau_init_ms`` (a number, or one per connection) the synaptic time
    constants are trained too, starting there (bounded in (``tau_min_ms``, :data:`TAU_MAX_MS`)); with
    ``p_exc_init`` (one value in (0, 1) per connection) the free connections' polarity is trained too,
    starting there (what fixed connections get is ignored: their class fixes them); with ``afd_phasic``
    (``{"gain_pA", "tau_fast_s", "tau_slow_s"}``) AFD's phasic channel is trained too, starting there."""
    f = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    if not -70.0 < vth_init_mV < 0.0:
        raise ValueError(f"vth_init_mV={vth_init_mV} must lie in (−70, 0) mV")
    readouts = {"afd_gain_pA": afd_gain_pA, "afd_offset_pA": afd_offset_pA, "steer_gain": steer_gain,
                "reversal_gain": reversal_gain, "reversal_threshold_mV": reversal_threshold_mV}
    for k, v in readouts.items():
        lo, hi, _ = _SCALAR_BOUNDS[k]
        if not lo < float(v) < hi:
            raise ValueError(f"{k}={v} outside its bounds ({lo:g}, {hi:g})")
    extra = {}
    if tau_init_ms is not None:
        tau0 = np.broadcast_to(np.asarray(tau_init_ms, np.float64), (n_syn,))
        if not np.all((tau0 > tau_min_ms) & (tau0 < TAU_MAX_MS)):
            raise ValueError(f"tau_init_ms must lie in ({tau_min_ms}, {TAU_MAX_MS}) ms, got {np.unique(tau0)}")
        extra["tau"] = f(_logit(np.log(tau0 / tau_min_ms) / np.log(TAU_MAX_MS / tau_min_ms)))
    if p_exc_init is not None:
        p0 = np.asarray(p_exc_init, np.float64)
        if p0.shape != (n_syn,) or not np.all((p0 > 0.0) & (p0 < 1.0)):
            raise ValueError(f"p_exc_init must be one value in (0, 1) per connection ({n_syn}), got shape {p0.shape}, "
                             f"range [{p0.min() if p0.size else 'empty'}, {p0.max() if p0.size else 'empty'}]")
        extra["p_exc"] = f(_logit(p0))
    if afd_phasic is not None:
        extra |= phasic_raw(afd_phasic, dtype)
    return extra | {
        "rho": f(np.zeros(n_syn)),
        "vth": f(np.full(n_syn, _unbounded(vth_init_mV, *_VTH))),
        "bias": f(np.zeros(n_cells)),
    } | {k: f(_unbounded(v, *_SCALAR_BOUNDS[k])) for k, v in readouts.items()}


def values_from_raw(raw: dict, weight_c302, weight_max_factor: float, bias_max_pA: float,
                    weight_scale: float = 1.0, tau_min_ms: float = 40.0, polarity_classes=None) -> dict:
    """Physical values from raw parameters (see the module docstring); ``polarity_classes`` (one
    :mod:`~owjax.navigation.polarity` class per connection) is needed when ``raw`` has ``p_exc``."""
    m = float(weight_max_factor)
    if not m > 1.0:
        raise ValueError(f"weight_max_factor must be > 1 (the starting weight must be reachable), got {m}")
    if not 0.0 < float(weight_scale) <= 1.0:
        raise ValueError(f"weight_scale must lie in (0, 1] (a factor on c302's weights), got {weight_scale}")
    shift = float(_logit(1.0 / m))
    extra = {}
    if "tau" in raw:
        extra["tau_ms"] = tau_min_ms * jnp.exp(np.log(TAU_MAX_MS / tau_min_ms) * jax.nn.sigmoid(raw["tau"]))
    if "p_exc" in raw:
        from owjax.navigation.polarity import p_exc_from_raw

        if polarity_classes is None:
            raise ValueError("values_from_raw: raw has p_exc (trained polarity) but no polarity_classes were given")
        extra["p_exc"] = p_exc_from_raw(raw["p_exc"], polarity_classes)
    extra |= {vkey: _bounded(raw[rkey], lo, hi, kind) for vkey, (rkey, lo, hi, kind) in PHASIC_BOUNDS.items()
              if rkey in raw}
    return extra | {
        "weight": jnp.asarray(weight_c302) * float(weight_scale) * m * jax.nn.sigmoid(raw["rho"] + shift),
        "vth_mV": _bounded(raw["vth"], *_VTH),
        "bias_pA": _bounded(raw["bias"], -bias_max_pA, bias_max_pA, "tanh"),
    } | {k: _bounded(raw[k], *b) for k, b in _SCALAR_BOUNDS.items()}


def raw_from_values(values: dict, weight_c302, weight_max_factor: float, bias_max_pA: float,
                    weight_scale: float = 1.0, tau_min_ms: float = 40.0, dtype=jnp.float32,
                    polarity_classes=None) -> dict:
    """The inverse of :func:`values_from_raw`: raw parameters whose values are ``values`` (e.g. a
    trained circuit from :func:`load_values`, to continue training from it). Every value must lie
    strictly inside its bounds under the given ``weight_max_factor``/``weight_scale``/``bias_max_pA``;
    one that does not is an error naming it (nothing is clipped). ``tau_ms`` is inverted when present,
    and ``p_exc`` when ``polarity_classes`` is given (the fixed connections must hold their class's value,
    the free ones lie strictly inside (0, 1)); ``polarity_classes`` with values that have no ``p_exc``
    (a circuit trained with c302's signs) is an error."""
    m, scale = float(weight_max_factor), float(weight_scale)
    if not m > 1.0:
        raise ValueError(f"weight_max_factor must be > 1, got {m}")
    f = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    v = {k: np.asarray(x, np.float64) for k, x in values.items()}

    def unit(name, x, lo, hi):
        u = (x - lo) / (hi - lo)
        if not np.all((u > 0.0) & (u < 1.0)):
            bad = np.ravel(x)[~np.ravel((u > 0.0) & (u < 1.0))]
            raise ValueError(f"raw_from_values: {name} has {bad.size} value(s) outside ({lo:g}, {hi:g}), "
                             f"e.g. {bad[:3].tolist()} (trained with other bounds?)")
        return u

    w_max = np.asarray(weight_c302, np.float64) * scale * m
    if np.shape(v["weight"]) != w_max.shape:
        raise ValueError(f"raw_from_values: weight {np.shape(v['weight'])} does not match c302's {w_max.shape}")
    frac = v["weight"] / w_max
    unit("weight / (weight_scale · weight_max_factor · w_c302)", frac, 0.0, 1.0)
    out = {}
    if "tau_ms" in v:
        u = unit("tau_ms", np.log(v["tau_ms"]), np.log(tau_min_ms), np.log(TAU_MAX_MS))
        out["tau"] = f(_logit(u))
    if polarity_classes is None and "p_exc" in v:
        raise ValueError("raw_from_values: the values carry trained polarities (p_exc, the transmitter prior) but "
                         "no polarity_classes were given (continue it with circuit.polarity=transmitter)")
    if polarity_classes is not None and "p_exc" not in v:
        raise ValueError("raw_from_values: the transmitter polarity was asked for, but the values have no "
                         "p_exc (a circuit trained with c302's signs cannot continue under another prior)")
    if polarity_classes is not None:
        from owjax.navigation.polarity import FREE, fixed_p_exc

        cls, p = np.asarray(polarity_classes), v["p_exc"]
        fixed_ok = np.isclose(p, fixed_p_exc(cls)) | (cls == FREE)
        if not np.all(fixed_ok):
            raise ValueError(f"raw_from_values: p_exc of {int(np.sum(~fixed_ok))} connection(s) whose sign the "
                             "transmitter prior fixes differs from it (trained under another prior?)")
        unit("p_exc (free connections)", p[cls == FREE], 0.0, 1.0)
        out["p_exc"] = f(np.where(cls == FREE, _logit(p), 0.0))
    bounded = {"vth": ("vth_mV", _VTH), "bias": ("bias_pA", (-bias_max_pA, bias_max_pA, "tanh"))} | {
        k: (k, b) for k, b in _SCALAR_BOUNDS.items()}
    if _has_phasic(v):
        bounded |= {rkey: (vkey, (lo, hi, kind)) for vkey, (rkey, lo, hi, kind) in PHASIC_BOUNDS.items()}
    for name, (lo, hi, _) in bounded.values():  # every value inside its bounds, or a clear error
        unit(name, v[name], lo, hi)
    return out | {"rho": f(_logit(frac) - _logit(1.0 / m))} | {
        k: f(_unbounded(v[name], *b)) for k, (name, b) in bounded.items()}


def apply_values(loop: Composite, values: dict) -> Composite:
    """The loop with ``values`` (from :func:`values_from_raw` or :func:`load_values`) written in."""
    from owjax.navigation.loop import NeckSteering, ReversalCommand
    from owjax.sensory.component import TransducerDrive

    ci = {type(c): i for i, c in enumerate(loop.couplings)}
    for cls in (TransducerDrive, NeckSteering, ReversalCommand):
        if cls not in ci:
            raise ValueError(f"apply_values: the loop has no {cls.__name__} coupling")
    c = loop.components["circuit"]
    dt = c.dtype
    a = lambda k: jnp.asarray(values[k], dt)  # noqa: E731
    if np.shape(values["weight"]) != c.weight.shape or np.shape(values["bias_pA"]) != c.bias_pA.shape:
        raise ValueError(f"apply_values: weight {np.shape(values['weight'])} / bias {np.shape(values['bias_pA'])} "
                         f"do not match the circuit ({c.weight.shape}, {c.bias_pA.shape})")
    td, ns, rc = ci[TransducerDrive], ci[NeckSteering], ci[ReversalCommand]
    if "tau_ms" in values:
        if np.shape(values["tau_ms"]) != c.k_per_ms.shape:
            raise ValueError(f"apply_values: tau_ms {np.shape(values['tau_ms'])} does not match the circuit's "
                             f"{c.k_per_ms.shape} connections")
        loop = eqx.tree_at(lambda m: m.components["circuit"].k_per_ms, loop, 1.0 / a("tau_ms"))
    if "p_exc" in values:
        from owjax.navigation.polarity import reversal_from_p_exc

        if np.shape(values["p_exc"]) != c.erev_mV.shape:
            raise ValueError(f"apply_values: p_exc {np.shape(values['p_exc'])} does not match the circuit's "
                             f"{c.erev_mV.shape} connections")
        loop = eqx.tree_at(lambda m: m.components["circuit"].erev_mV, loop, reversal_from_p_exc(a("p_exc")))
    loop = _apply_phasic(loop, values, dt)
    return eqx.tree_at(
        lambda m: (m.components["circuit"].weight, m.components["circuit"].vth_mV, m.components["circuit"].bias_pA,
                   m.couplings[td].gain_pA, m.couplings[td].offset_pA, m.couplings[ns].gain, m.couplings[rc].gain,
                   m.couplings[rc].threshold_mV),
        loop, (a("weight"), a("vth_mV"), a("bias_pA"), a("afd_gain_pA"), a("afd_offset_pA"), a("steer_gain"),
               a("reversal_gain"), a("reversal_threshold_mV")))


def _apply_phasic(loop: Composite, values: dict, dt) -> Composite:
    """``apply_values``' part for AFD's phasic channel: the loop has it exactly when the values do."""
    from owjax.sensory.phasic import PhasicDrive

    phasic = _has_phasic(values)
    idx = [i for i, c in enumerate(loop.couplings) if isinstance(c, PhasicDrive)]
    if phasic != bool(idx):
        raise ValueError("apply_values: " + ("the values carry AFD's phasic channel but the loop has none (build it "
                                             "with afd_phasic=afd_phasic_from_values(values))" if phasic
                                             else "the loop has AFD's phasic channel but the values do not"))
    if not phasic:
        return loop
    a = {k: jnp.asarray(values[vkey], dt) for vkey, k in _PHASIC_SETTING.items()}
    return eqx.tree_at(lambda m: (m.couplings[idx[0]].gain_pA, m.components["afd_phasic"].tau_fast_s,
                                  m.components["afd_phasic"].tau_slow_s),
                       loop, (a["gain_pA"], a["tau_fast_s"], a["tau_slow_s"]))


def save_values(path: str | Path, values: dict, synapse_names, cell_names, provenance: dict) -> Path:
    """Write ``values`` to ``path`` (.npz) and ``path.with_suffix('.json')`` (names + provenance)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: np.asarray(v, np.float64) for k, v in values.items()})
    meta = {"synapses": list(synapse_names), "cells": list(cell_names), "provenance": provenance,
            "values": {k: np.asarray(v).tolist() for k, v in values.items() if np.ndim(v) == 0}}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1, default=float) + "\n")
    return path


def load_values(path: str | Path, synapse_names=None, cell_names=None) -> dict:
    """Read values written by :func:`save_values`; with names given, they must match the circuit's."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no thermotaxis parameter file (train one with "
                                "python -m owjax.fit +experiment=thermotaxis)")
    meta = json.loads(path.with_suffix(".json").read_text())
    for what, names in (("synapses", synapse_names), ("cells", cell_names)):
        if names is not None and list(names) != meta[what]:
            raise ValueError(f"{path}: its {what} differ from the circuit's (it was trained on another circuit)")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}

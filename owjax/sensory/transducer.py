"""Recurrent sensory transducers: stimulus time series → the sensory neuron's calcium response.

The recurrent layers are flax ``linen.GRUCell`` s; everything else is plain JAX, and the interface is
pure functions of ``(spec, params, …)`` so that the same parameters drive the discrete model used for
training (:func:`predict`) and the continuous-time component solved by diffrax together with the
equinox c302 network (:mod:`owjax.sensory.component`).

**The flax ↔ equinox boundary.** flax is used only as a *stateless cell definition*: :func:`gru_cells`
rebuilds the ``linen.GRUCell`` modules from the static :class:`TransducerSpec`, and
``cell.apply({"params": p}, h, x)`` is called on a plain dict of arrays ``p``. Those dicts live in the
``params`` pytree, which equinox modules hold as an ordinary leaf-bearing field; nothing flax-specific
(no ``nnx`` state, no module instances) crosses into equinox, so ``jax.grad``, ``jit`` and ``vmap`` see
one pytree.

**The model (one step of Δ = ``spec.dt_s`` seconds).** State = two first-order stimulus filters
(``u_fast``, time constant ``tau_rate_s``; ``u_slow``, time constant τ_a = ``exp(log_tau_adapt_s)``,
learnt) and the hidden states ``h`` (depth × hidden) of the stacked GRU. Features at sample k, chosen
by ``spec.inputs``:

* ``stimulus``: (u − center)/scale, the absolute stimulus;
* ``rate``: (u − u_fast)/τ_rate / rate_scale, a causal low-pass estimate of du/dt;
* ``adapted``: (u − u_slow)/scale, the stimulus relative to a slow adaptation state that starts at the
  holding value (the hybrid for AFD's threshold following the holding temperature).

Update (the forward-Euler step of the ODE in :mod:`owjax.sensory.component`, so the two agree exactly)::

    u_fast' = u_fast + Δ/τ_rate (u_k − u_fast)       u_slow' = u_slow + Δ/τ_a (u_k − u_slow)
    h1'     = GRU_1(h1, features_k)                   h_l' = GRU_l(h_l, h_{l−1})   (old h_{l−1})
    y_k     = w · h_depth + b     (normalised response; response = y · resp_scale)

``y_k`` is read from the state *before* the update (the state has seen u_0 … u_{k−1}). The state
starts at the steady state of the first stimulus sample (filters = u_0, ``h`` iterated
``burn_in_steps`` times at constant input): the recording starts after a long hold.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

__all__ = ["TransducerSpec", "INPUT_SETS", "default_spec", "gru_cells", "init_params", "initial_carry",
           "step", "readout", "predict", "save_transducer", "load_transducer", "Params", "Carry"]

#: named input sets for model selection
INPUT_SETS: dict[str, tuple[str, ...]] = {
    "plain": ("stimulus", "rate"),
    "adaptive": ("adapted", "rate"),
    "both": ("stimulus", "adapted", "rate"),
    "stimulus": ("stimulus",),
}
FEATURES = ("stimulus", "rate", "adapted")

Params = PyTree[Array]
Carry = tuple[Float[Array, "2"], Float[Array, "depth hidden"]]


@dataclass(frozen=True)
class TransducerSpec:
    """Static hyperparameters of a transducer (hashable: an equinox static field).

    Attributes:
        modality: ``"afd"`` or ``"bag"``.
        hidden: GRU units per layer.
        depth: stacked GRU layers.
        inputs: feature names (subset of ``stimulus``, ``rate``, ``adapted``).
        dt_s: step Δ, s (the sampling interval of the training data).
        tau_rate_s: time constant of the derivative filter, s.
        tau_adapt_init_s: initial adaptation time constant, s (learnt).
        stim_center: stimulus offset for normalisation (°C or % O2).
        stim_scale: stimulus scale (same unit).
        rate_scale: derivative scale (unit/s).
        resp_scale: response unit of the normalised output (% ΔR/R or ΔF/F).
        burn_in_steps: GRU iterations to reach the steady state of the first sample.
    """

    modality: str
    hidden: int = 32
    depth: int = 1
    inputs: tuple[str, ...] = ("stimulus", "rate")
    dt_s: float = 1.0
    tau_rate_s: float = 5.0
    tau_adapt_init_s: float = 1000.0
    stim_center: float = 20.0
    stim_scale: float = 5.0
    rate_scale: float = 0.05
    resp_scale: float = 100.0
    burn_in_steps: int = 200

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        bad = [f for f in self.inputs if f not in FEATURES]
        if bad or not self.inputs:
            raise ValueError(f"TransducerSpec.inputs {self.inputs!r}: unknown {bad}; choose from {FEATURES}")
        for k in ("hidden", "depth", "burn_in_steps"):
            if int(getattr(self, k)) < (0 if k == "burn_in_steps" else 1):
                raise ValueError(f"TransducerSpec.{k} must be ≥ 1, got {getattr(self, k)}")
        for k in ("dt_s", "tau_rate_s", "tau_adapt_init_s", "stim_scale", "rate_scale", "resp_scale"):
            v = float(getattr(self, k))
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"TransducerSpec.{k} must be a positive number, got {v}")
        if self.tau_rate_s < self.dt_s:
            raise ValueError(f"tau_rate_s={self.tau_rate_s} < dt_s={self.dt_s}: the Euler filter would be unstable")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["inputs"] = list(self.inputs)
        return d


def default_spec(modality: str, **overrides) -> TransducerSpec:
    """The normalisation constants of a modality (AFD: °C, 1 s; BAG: % O2, 0.5 s) plus ``overrides``."""
    base = {
        "afd": dict(dt_s=1.0, tau_rate_s=5.0, stim_center=20.0, stim_scale=5.0, rate_scale=0.05, resp_scale=100.0,
                    tau_adapt_init_s=1000.0),
        "bag": dict(dt_s=0.5, tau_rate_s=1.0, stim_center=12.5, stim_scale=8.5, rate_scale=2.0, resp_scale=1.0,
                    tau_adapt_init_s=100.0),
    }
    if modality not in base:
        raise ValueError(f"unknown modality {modality!r}; known: {sorted(base)}")
    return TransducerSpec(modality=modality, **{**base[modality], **overrides})


def gru_cells(spec: TransducerSpec):
    """The flax ``linen.GRUCell`` of every layer (stateless definitions)."""
    import flax.linen as nn

    return tuple(nn.GRUCell(features=int(spec.hidden)) for _ in range(int(spec.depth)))


def init_params(spec: TransducerSpec, key: PRNGKeyArray, dtype=jnp.float32) -> Params:
    """Random initial parameters: flax's GRU initialisation, a zero readout, τ_a = ``tau_adapt_init_s``.

    Returns:
        ``{"cells": (flax params per layer), "readout": {"w", "b"}, "log_tau_adapt_s": ()}``.
    """
    keys = jax.random.split(key, spec.depth)
    cells = []
    n_in = len(spec.inputs)
    for i, cell in enumerate(gru_cells(spec)):
        x = jnp.zeros((n_in if i == 0 else spec.hidden,), dtype)
        p = cell.init(keys[i], jnp.zeros((spec.hidden,), dtype), x)["params"]
        cells.append(jax.tree.map(lambda a: a.astype(dtype), p))
    return {
        "cells": tuple(cells),
        "readout": {"w": jnp.zeros((spec.hidden,), dtype), "b": jnp.zeros((), dtype)},
        "log_tau_adapt_s": jnp.asarray(np.log(spec.tau_adapt_init_s), dtype),
    }


def _features(spec: TransducerSpec, params: Params, filt, u):
    f = {
        "stimulus": (u - spec.stim_center) / spec.stim_scale,
        "rate": (u - filt[0]) / spec.tau_rate_s / spec.rate_scale,
        "adapted": (u - filt[1]) / spec.stim_scale,
    }
    return jnp.stack([jnp.asarray(f[k], filt.dtype) for k in spec.inputs])


def gru_map(spec: TransducerSpec, params: Params, hs: Array, x: Array) -> Array:
    """G(h, x): every layer's GRU update with the previous state of the layer below as its input."""
    cells = gru_cells(spec)
    new = []
    for i, cell in enumerate(cells):
        inp = x if i == 0 else hs[i - 1]
        h, _ = cell.apply({"params": params["cells"][i]}, hs[i], inp)
        new.append(h)
    return jnp.stack(new)


def filter_rates(spec: TransducerSpec, params: Params, filt: Array, u) -> Array:
    """d(u_fast, u_slow)/dt, unit/s."""
    tau_a = jnp.exp(params["log_tau_adapt_s"])
    return jnp.stack([(u - filt[0]) / spec.tau_rate_s, (u - filt[1]) / tau_a])


def step(spec: TransducerSpec, params: Params, carry: Carry, u) -> Carry:
    """One discrete step Δ = ``spec.dt_s`` with stimulus sample ``u`` (see the module docstring)."""
    filt, hs = carry
    x = _features(spec, params, filt, u)
    return filt + spec.dt_s * filter_rates(spec, params, filt, u), gru_map(spec, params, hs, x)


def readout(spec: TransducerSpec, params: Params, hs: Array) -> Array:
    """Normalised response y = w · h_depth + b (response = y · ``resp_scale``)."""
    return jnp.dot(params["readout"]["w"], hs[-1]) + params["readout"]["b"]


def initial_carry(spec: TransducerSpec, params: Params, u0) -> Carry:
    """Steady state for a stimulus held at ``u0``: filters = u0, GRU iterated ``burn_in_steps`` times."""
    dtype = params["readout"]["w"].dtype
    u0 = jnp.asarray(u0, dtype)
    filt = jnp.stack([u0, u0])
    x = _features(spec, params, filt, u0)
    hs = jnp.zeros((spec.depth, spec.hidden), dtype)
    hs = jax.lax.fori_loop(0, int(spec.burn_in_steps), lambda i, h: gru_map(spec, params, h, x), hs)
    return filt, hs


def predict(spec: TransducerSpec, params: Params, stimulus: Float[Array, " T"]) -> Float[Array, " T"]:
    """The predicted response to a stimulus sampled every ``spec.dt_s`` s.

    Arguments:
        spec: hyperparameters.
        params: parameters (:func:`init_params` / :func:`load_transducer`).
        stimulus: (T,) stimulus in the modality's unit (°C, % O2), starting after a hold at ``stimulus[0]``.

    Returns:
        (T,) response in the modality's unit (% ΔR/R for AFD, ΔF/F for BAG).
    """
    stimulus = jnp.asarray(stimulus, params["readout"]["w"].dtype)
    if stimulus.ndim != 1:
        raise ValueError(f"predict: stimulus must be 1-D (T,), got shape {stimulus.shape}")

    def body(carry, u):
        y = readout(spec, params, carry[1])
        return step(spec, params, carry, u), y

    _, ys = jax.lax.scan(body, initial_carry(spec, params, stimulus[0]), stimulus)
    return ys * spec.resp_scale


# ---------------------------------------------------------------------------- files
def _flat(params: Params) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


def save_transducer(path: str | Path, spec: TransducerSpec, params: Params, provenance: dict | None = None) -> Path:
    """Write a transducer (``.npz``: every parameter leaf by its pytree path, plus the spec) and
    ``<path>.json`` (spec + provenance: data, command, date, git commit, metrics).

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = _flat(params)
    np.savez(path, __spec__=np.asarray(json.dumps(spec.to_dict(), sort_keys=True)), **flat)
    meta = dict(spec=spec.to_dict(), provenance=provenance or {})
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=float) + "\n")
    return path


def load_transducer(path: str | Path, dtype=jnp.float32) -> tuple[TransducerSpec, Params]:
    """Read a transducer written by :func:`save_transducer`.

    Raises:
        FileNotFoundError: no such file. ValueError: a leaf is missing or has the wrong shape.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no transducer file")
    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    spec_d = json.loads(str(d.pop("__spec__").reshape(-1)[0]))
    spec_d["inputs"] = tuple(spec_d["inputs"])
    spec = TransducerSpec(**spec_d)
    template = init_params(spec, jax.random.PRNGKey(0), dtype)
    leaves, tdef = jax.tree_util.tree_flatten_with_path(template)
    out = []
    for p, v in leaves:
        k = jax.tree_util.keystr(p)
        if k not in d or d[k].shape != v.shape:
            raise ValueError(f"{path}: parameter {k} missing or of shape {d.get(k, np.zeros(0)).shape}, "
                             f"expected {v.shape}")
        out.append(jnp.asarray(d[k], dtype))
    return spec, jax.tree_util.tree_unflatten(tdef, out)

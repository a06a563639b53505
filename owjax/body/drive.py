"""Prescribed muscle activation for the body: stateless owjax components with one output,
``muscle_activation`` (2, 48) in [0, 1] (row 0 dorsal, row 1 ventral, column 0 at the head).

* :class:`TravellingWave` — a sinusoidal wave of activation running along the body (frequency,
  wavelength, amplitude, direction, dorsal/ventral bias for turning); differentiable in all four
  float parameters.
* :class:`RecordedActivation` — a recorded activation time course (linearly interpolated), e.g.
  from a ``.npz`` file or from c302 muscles in an owjax traces file (:func:`load_activation_file`).
"""

from __future__ import annotations

import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from owjax.body.geometry import N_SEGMENTS
from owjax.body.mechanics import check_activation
from owjax.core.component import AbstractSource, AbstractCoupling, ParameterInfo

__all__ = ["TravellingWave", "RecordedActivation", "load_activation_file", "segments_from_c302", "DIRECTIONS",
           "C302MusclesToBody", "c302_segment_matrix"]

DIRECTIONS = {"forward": 1.0, "backward": -1.0}


def _concrete(x) -> float | None:
    return None if isinstance(x, jax.core.Tracer) else float(np.asarray(x))


class TravellingWave(AbstractSource):
    """A travelling sine wave of muscle activation (time unit s).

    With ψ = 2π (f t − direction · s / λ) at segment centre s ∈ (0, 1) (head 0):

        A_dorsal  = amplitude · (1 + sin ψ)/2 + max(bias, 0)
        A_ventral = amplitude · (1 − sin ψ)/2 + max(−bias, 0)

    so dorsal and ventral alternate, the wave runs head → tail for ``direction="forward"`` (which
    propels the worm head first) and a positive ``dorsal_bias`` adds tonic dorsal activation
    (turning dorsally).

    Arguments:
        frequency_hz: wave frequency (Hz), > 0.
        wavelength_body_lengths: wavelength λ in body lengths, > 0.
        amplitude: peak activation in [0, 1].
        direction: ``"forward"`` or ``"backward"``.
        dorsal_bias: tonic offset in [−1, 1]; amplitude + |bias| ≤ 1 so activation stays in [0, 1].
        n_segments: body segments (48).
    """

    time_unit_ms = 1000.0

    frequency_hz: Float[Array, ""]
    wavelength_body_lengths: Float[Array, ""]
    amplitude: Float[Array, ""]
    dorsal_bias: Float[Array, ""]
    direction: float = eqx.field(static=True)
    n_segments: int = eqx.field(static=True)

    def __init__(self, frequency_hz=0.44, wavelength_body_lengths=0.6, amplitude=0.8, direction="forward",
                 dorsal_bias=0.0, n_segments: int = N_SEGMENTS, dtype=None):
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown wave direction {direction!r}; allowed: {list(DIRECTIONS)}")
        vals = {"frequency_hz": frequency_hz, "wavelength_body_lengths": wavelength_body_lengths,
                "amplitude": amplitude, "dorsal_bias": dorsal_bias}
        conc = {k: _concrete(v) for k, v in vals.items()}
        for k, v in conc.items():
            if v is not None and not math.isfinite(v):
                raise ValueError(f"wave {k} must be finite, got {v!r}")
        if conc["frequency_hz"] is not None and conc["frequency_hz"] <= 0:
            raise ValueError(f"wave frequency_hz must be > 0, got {conc['frequency_hz']}")
        if conc["wavelength_body_lengths"] is not None and conc["wavelength_body_lengths"] <= 0:
            raise ValueError(f"wave wavelength_body_lengths must be > 0, got {conc['wavelength_body_lengths']}")
        a, b = conc["amplitude"], conc["dorsal_bias"]
        if a is not None and not 0.0 <= a <= 1.0:
            raise ValueError(f"wave amplitude must be in [0, 1], got {a}")
        if b is not None and not -1.0 <= b <= 1.0:
            raise ValueError(f"wave dorsal_bias must be in [-1, 1], got {b}")
        if a is not None and b is not None and a + abs(b) > 1.0 + 1e-12:
            raise ValueError(f"wave amplitude + |dorsal_bias| must be <= 1 so activation stays in [0, 1]; "
                             f"got {a} + {abs(b)}")
        if int(n_segments) < 2:
            raise ValueError(f"n_segments must be >= 2, got {n_segments}")
        dt = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
        self.frequency_hz = jnp.asarray(frequency_hz, dt)
        self.wavelength_body_lengths = jnp.asarray(wavelength_body_lengths, dt)
        self.amplitude = jnp.asarray(amplitude, dt)
        self.dorsal_bias = jnp.asarray(dorsal_bias, dt)
        self.direction = DIRECTIONS[direction]
        self.n_segments = int(n_segments)

    def activation(self, t: Float[ArrayLike, ""]) -> Float[Array, "2 seg"]:
        """Activation (2, n_segments) at time ``t`` (s)."""
        s = (jnp.arange(self.n_segments, dtype=self.amplitude.dtype) + 0.5) / self.n_segments
        psi = 2 * jnp.pi * (self.frequency_hz * t - self.direction * s / self.wavelength_body_lengths)
        wave = jnp.sin(psi)
        d = self.amplitude * (1 + wave) / 2 + jnp.maximum(self.dorsal_bias, 0.0)
        v = self.amplitude * (1 - wave) / 2 + jnp.maximum(-self.dorsal_bias, 0.0)
        return jnp.stack([d, v], 0)

    def outputs(self, t, state) -> dict[str, Array]:
        return {"muscle_activation": self.activation(t)}

    def parameter_info(self) -> dict[str, ParameterInfo]:
        P = ParameterInfo
        return {
            "frequency_hz": P("frequency_hz", "Hz", (0.01, 10.0), "", "wave frequency", "physiological range"),
            "wavelength_body_lengths": P("wavelength_body_lengths", "L", (0.2, 5.0), "", "wavelength", "physiological range"),
            "amplitude": P("amplitude", "1", (0.0, 1.0), "", "peak activation", "activation range"),
            "dorsal_bias": P("dorsal_bias", "1", (-1.0, 1.0), "", "tonic dorsal (+) / ventral (−) activation", "activation range"),
        }


class RecordedActivation(AbstractSource):
    """A recorded activation time course, linearly interpolated (held constant outside the record).

    Arguments:
        t_s: sample times (T,), strictly increasing, seconds.
        activation: (T, 2, n) with n = 48 or 24, values in [0, 1] (checked, never clipped).
    """

    time_unit_ms = 1000.0

    t_s: Float[Array, " T"]
    values: Float[Array, "T 2 n"]

    def __init__(self, t_s: ArrayLike, activation: ArrayLike, dtype=None):
        t = np.asarray(t_s, dtype=np.float64)
        a = np.asarray(activation, dtype=np.float64)
        if t.ndim != 1 or t.size < 2:
            raise ValueError(f"recorded activation needs at least 2 sample times (T,), got shape {t.shape}")
        if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
            raise ValueError("recorded activation times must be finite and strictly increasing")
        if a.ndim != 3 or a.shape[0] != t.size or a.shape[1] != 2 or a.shape[2] not in (N_SEGMENTS, N_SEGMENTS // 2):
            raise ValueError(f"recorded activation must have shape (T={t.size}, 2, {N_SEGMENTS} or {N_SEGMENTS // 2}), "
                             f"got {a.shape}")
        check_activation(a, "recorded muscle activation")
        if a.shape[2] == N_SEGMENTS // 2:
            a = np.repeat(a, 2, axis=2)
        dt = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
        self.t_s = jnp.asarray(t, dt)
        self.values = jnp.asarray(a, dt)

    def activation(self, t):
        """Activation (2, 48) at time ``t`` (s)."""
        n = self.t_s.shape[0]
        i = jnp.clip(jnp.searchsorted(self.t_s, t, side="right") - 1, 0, n - 2)
        t0, t1 = self.t_s[i], self.t_s[i + 1]
        w = jnp.clip((t - t0) / (t1 - t0), 0.0, 1.0)
        return self.values[i] * (1 - w) + self.values[i + 1] * w

    def outputs(self, t, state) -> dict[str, Array]:
        return {"muscle_activation": self.activation(t)}

    def parameter_info(self) -> dict[str, ParameterInfo]:
        return {"t_s": ParameterInfo("t_s", "s", None, "sample", "sample times", "data", trainable=False),
                "values": ParameterInfo("values", "1", (0.0, 1.0), "sample", "recorded activation", "data", trainable=False)}


def segments_from_c302(activation: ArrayLike, names) -> np.ndarray:
    """(T, 2, 24) dorsal/ventral segment activation from c302 muscle activation (M, T) in [0, 1].

    Uses :func:`owjax.organs.muscles.to_segments` and divides by the number of muscles present in
    each quadrant pair (2, or 1 for ventral segment 24 which has only MVR24), so the result is the
    mean of left and right and stays in [0, 1].
    """
    from owjax.organs.muscles import to_segments

    a = np.asarray(activation, dtype=np.float64)
    names = [str(n) for n in names]
    dorsal, ventral = to_segments(a, names)
    present = set(names)
    nd = np.array([(f"MDL{i:02d}" in present) + (f"MDR{i:02d}" in present) for i in range(1, 25)], float)
    nv = np.array([(f"MVL{i:02d}" in present) + (f"MVR{i:02d}" in present) for i in range(1, 25)], float)
    dorsal = dorsal / np.maximum(nd, 1)[:, None]
    ventral = ventral / np.maximum(nv, 1)[:, None]
    return np.stack([dorsal, ventral], 0).transpose(2, 0, 1)


def load_activation_file(path: str | Path) -> RecordedActivation:
    """A :class:`RecordedActivation` from ``.npz`` (arrays ``t_s`` (T,) and ``activation`` (T, 2, n))
    or from an owjax traces file (``.h5``: ``/t`` in ms, ``/muscles/activation`` and names)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"activation file {str(path)!r} does not exist")
    if path.suffix == ".npz":
        with np.load(path) as z:
            missing = {"t_s", "activation"} - set(z.files)
            if missing:
                raise ValueError(f"{path}: .npz activation file needs arrays 't_s' and 'activation'; missing {sorted(missing)}")
            return RecordedActivation(z["t_s"], z["activation"])
    if path.suffix in (".h5", ".hdf5"):
        from owjax.traces import read_traces

        tr = read_traces(path)
        mus = tr.populations.get("muscles", {})
        if "activation" not in mus:
            raise ValueError(f"{path}: traces file has no /muscles/activation (run simulate with muscles)")
        return RecordedActivation(np.asarray(tr.t_ms) / 1000.0, segments_from_c302(mus["activation"], mus["names"]))
    raise ValueError(f"unknown activation file type {path.suffix!r}; allowed: .npz, .h5/.hdf5 (owjax traces)")


def c302_segment_matrix(names) -> np.ndarray:
    """(48, M) averaging matrix from c302 muscle rows (names like MDL07) to the body's 24 dorsal then
    24 ventral muscle segments (mean of the muscles present: left + right, MVR24 alone)."""
    names = [str(n) for n in names]
    m = np.zeros((48, len(names)))
    for j, n in enumerate(names):
        q, idx = n[:3], int(n[3:]) - 1 if n[3:].isdigit() else -1
        if q not in ("MDL", "MDR", "MVL", "MVR") or not 0 <= idx < 24:
            raise ValueError(f"not a body-wall muscle name: {n!r}; expected MDL01 … MVR24")
        m[(0 if q[1] == "D" else 24) + idx, j] = 1.0
    counts = m.sum(1, keepdims=True)
    return m / np.maximum(counts, 1.0)


class C302MusclesToBody(AbstractCoupling):
    """c302 muscle Ca (network output ``Ca_mM``) → the body's (2, 24) segment activation.

    activation = min(1, Ca / max_ca_mM) per muscle (DD002, as :func:`owjax.organs.muscles.muscle_activation`),
    then the mean of the muscles of each segment and side.

    Arguments:
        muscle_index: rows of the muscles in the source's ``Ca_mM`` output.
        muscle_names: their names (MDL01 … MVR24).
        max_ca_mM: Ca of full activation (c302 units, default 4e-7).
        source: name of the network component in the composite.
    """

    segment_matrix: Float[Array, "48 M"]
    muscle_index: Array
    max_ca_mM: Float[Array, ""]
    source: str = "network"
    target: str = "body"
    target_input: str = "muscle_activation"

    def __init__(self, muscle_index, muscle_names, max_ca_mM: float = 4e-7, source: str = "network", dtype=None):
        from owjax.organs.muscles import DEFAULT_MAX_CA_mM

        idx = np.asarray(muscle_index, dtype=np.int32)
        if idx.ndim != 1 or idx.size != len(list(muscle_names)):
            raise ValueError(f"muscle_index ({idx.shape}) and muscle_names ({len(list(muscle_names))}) must match")
        dt = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
        self.segment_matrix = jnp.asarray(c302_segment_matrix(muscle_names), dt)
        self.muscle_index = jnp.asarray(idx)
        self.max_ca_mM = jnp.asarray(max_ca_mM if max_ca_mM is not None else DEFAULT_MAX_CA_mM, dt)
        self.source = source

    def __call__(self, t, source_outputs):
        ca = source_outputs["Ca_mM"][self.muscle_index]
        act = jnp.minimum(1.0, ca / self.max_ca_mM)
        return (self.segment_matrix @ act).reshape(2, 24)

"""Body-wall muscle activation (DD002) and its maps to Sibernetic and to a 2-D body.

activation = min(1, [Ca] / max_ca) with max_ca = 4e-7 (c302's Ca unit, mM) and
force = activation × max_muscle_force (4000, Sibernetic's units); both are parameters of
:class:`MuscleActivation`.

c302 has 95 body-wall muscles: MDL01–24, MDR01–24, MVR01–24 and MVL01–23. The worm has no MVL24
(the ventral-left quadrant has 23 cells), but Sibernetic's body has 96 muscle slots in 4 rows of 24,
ordered **MDR, MVR, MVL, MDL**. :func:`to_sibernetic` fills the MVL24 slot according to
``mvl24``: ``"zero"`` (default: no muscle there, no force), ``"mvl23"`` (copy its anterior neighbour)
or ``"mvr24"`` (mirror the right-hand partner). :func:`to_segments` gives the 24 dorsal and 24 ventral
body segments of a 2-D body model, left + right summed (ventral segment 24 is MVR24 alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

__all__ = [
    "MuscleActivation",
    "SIBERNETIC_ORDER",
    "BODY_WALL_MUSCLES",
    "muscle_activation",
    "to_sibernetic",
    "to_segments",
    "plot_kymograph",
]

QUADRANTS = ("MDR", "MVR", "MVL", "MDL")  # Sibernetic's row order
#: the 96 Sibernetic slots, row by row (MDR01..24, MVR01..24, MVL01..24, MDL01..24)
SIBERNETIC_ORDER: tuple[str, ...] = tuple(f"{q}{i:02d}" for q in QUADRANTS for i in range(1, 25))
#: the 95 muscles that exist (no MVL24)
BODY_WALL_MUSCLES: tuple[str, ...] = tuple(m for m in SIBERNETIC_ORDER if m != "MVL24")

DEFAULT_MAX_CA_mM = 4e-7
DEFAULT_MAX_FORCE = 4000.0


def muscle_activation(ca_mM: Float[Array, "..."], max_ca_mM: float | Array = DEFAULT_MAX_CA_mM) -> Float[Array, "..."]:
    """DD002 activation = min(1, Ca / max_ca) (dimensionless; Ca in c302's mM)."""
    return jnp.minimum(1.0, ca_mM / max_ca_mM)


class MuscleActivation(eqx.Module):
    """Ca → activation → force of the body-wall muscles (DD002), with both constants as parameters.

    Attributes:
        max_ca_mM: Ca at which activation saturates (c302's Ca unit; default 4e-7).
        max_force: force at full activation (Sibernetic units; default 4000).
    """

    max_ca_mM: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=DEFAULT_MAX_CA_mM)
    max_force: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=DEFAULT_MAX_FORCE)

    def activation(self, ca_mM: Float[Array, "..."]) -> Float[Array, "..."]:
        """Activation in [0, 1] from Ca (mM)."""
        return muscle_activation(ca_mM, self.max_ca_mM)

    def force(self, ca_mM: Float[Array, "..."]) -> Float[Array, "..."]:
        """Force (Sibernetic units) from Ca (mM)."""
        return self.activation(ca_mM) * self.max_force


def _rows(values, names: Sequence[str]) -> dict[str, np.ndarray]:
    names = [str(n) for n in names]
    if len(names) != len(values):
        raise ValueError(f"{len(values)} activation rows but {len(names)} names")
    unknown = sorted(set(names) - set(BODY_WALL_MUSCLES))
    if unknown:
        raise ValueError(f"not body-wall muscle names: {unknown[:5]}; expected names like MDL01 … MVR24")
    return dict(zip(names, values))


def to_sibernetic(activation, names: Sequence[str], mvl24: str = "zero"):
    """Map muscle rows (any order, named) to Sibernetic's 96 slots.

    Arguments:
        activation: (M, T) activation, one row per muscle in ``names``.
        names: the muscle name of each row (e.g. ``traces.populations["muscles"]["names"]``).
        mvl24: how to fill the MVL24 slot: ``"zero"``, ``"mvl23"`` or ``"mvr24"`` (module docstring).

    Returns:
        (96, T) array in the order of :data:`SIBERNETIC_ORDER`. Muscles absent from ``names`` (e.g.
        in a sub-network) are zero.
    """
    if mvl24 not in ("zero", "mvl23", "mvr24"):
        raise ValueError(f"mvl24 must be 'zero', 'mvl23' or 'mvr24', got {mvl24!r}")
    a = np.asarray(activation)
    rows = _rows(a, names)
    zero = np.zeros(a.shape[1:], a.dtype)
    out = []
    for slot in SIBERNETIC_ORDER:
        if slot == "MVL24":
            src = {"zero": None, "mvl23": "MVL23", "mvr24": "MVR24"}[mvl24]
            out.append(rows.get(src, zero) if src else zero)
        else:
            out.append(rows.get(slot, zero))
    return np.stack(out)


def to_segments(activation, names: Sequence[str]):
    """Dorsal and ventral activation of 24 body segments (left + right summed).

    Returns:
        ``(dorsal, ventral)``, each (24, T); segment 1 is the head. Values can exceed 1 (two muscles).
    """
    a = np.asarray(activation)
    rows = _rows(a, names)
    zero = np.zeros(a.shape[1:], a.dtype)
    dorsal = np.stack([rows.get(f"MDL{i:02d}", zero) + rows.get(f"MDR{i:02d}", zero) for i in range(1, 25)])
    ventral = np.stack([rows.get(f"MVL{i:02d}", zero) + rows.get(f"MVR{i:02d}", zero) for i in range(1, 25)])
    return dorsal, ventral


def plot_kymograph(t_ms, activation, names, path: str | Path, title: str = "") -> Path:
    """Dorsal and ventral activation per body segment over time (two panels), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d, v = to_segments(activation, names)
    fig, axes = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True, constrained_layout=True)
    vmax = max(float(d.max()), float(v.max()), 1e-9)
    for ax, x, lab in ((axes[0], d, "dorsal (MDL+MDR)"), (axes[1], v, "ventral (MVL+MVR)")):
        im = ax.imshow(x, aspect="auto", origin="upper", extent=(t_ms[0], t_ms[-1], 24.5, 0.5),
                       vmin=0, vmax=vmax, cmap="magma", interpolation="nearest")
        ax.set_ylabel(f"{lab}\nsegment (head → tail)")
    fig.colorbar(im, ax=axes, label="activation (left + right)")
    axes[0].set_title(title or "body-wall muscle activation kymograph")
    axes[1].set_xlabel("time (ms)")
    path = Path(path)
    from owjax.core.checkpoint import atomic_savefig

    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    return path

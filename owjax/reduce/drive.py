"""Time-varying input currents as an owjax component, coupled into a network's ``i_ext_pA``.

:class:`WaveformCurrents` is a stateless component (no state variables) whose output ``current_pA``
is a table of currents linearly interpolated on a uniform time grid; :class:`CurrentInjection` is
the coupling that places those currents on the chosen cells of a network's ``i_ext_pA`` input.
:func:`driven_network` joins them in a :class:`~owjax.core.component.Composite`, which
:func:`owjax.core.solve.solve_ys` solves like any component (jit, vmap over tables, grad).

Why a component and not ``inputs=``: ``solve_ys(inputs=...)`` passes *constant* inputs; a waveform
that changes in time must be a function of ``t`` inside the vector field, which is what a source
component + coupling is for (the same pattern as the sensory transducer's drive).
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from owjax.core.component import AbstractComponent, AbstractSource, AbstractCoupling, Composite, ParameterInfo

__all__ = ["WaveformCurrents", "CurrentInjection", "driven_network"]


class WaveformCurrents(AbstractSource):
    """Prescribed currents (pA) from a table on a uniform grid, linearly interpolated; no state.

    Arguments:
        currents_pA: (K, n) currents, pA (inward positive), row k at time ``k · dt_ms``.
        dt_ms: table step, ms.
        cells: the names of the n columns (the cells they will be injected into).

    Output ``current_pA`` (n,) at time t (ms); before 0 and after the table's end the first / last
    row holds. Time unit: ms.
    """

    currents_pA: Float[Array, "K n"]
    dt_ms: float = eqx.field(static=True)
    cells: tuple[str, ...] = eqx.field(static=True)

    def __init__(self, currents_pA, dt_ms: float, cells: Sequence[str]):
        c = jnp.asarray(currents_pA)
        if c.ndim != 2 or c.shape[0] < 2 or c.shape[1] != len(cells):
            raise ValueError(f"WaveformCurrents: currents_pA must be (K ≥ 2, {len(cells)}) for cells {list(cells)}, "
                             f"got {c.shape}")
        if not dt_ms > 0:
            raise ValueError(f"WaveformCurrents: dt_ms must be positive, got {dt_ms}")
        self.currents_pA = c
        self.dt_ms = float(dt_ms)
        self.cells = tuple(cells)

    def current_at(self, t: Float[Array, ""]) -> Float[Array, " n"]:
        """Linear interpolation of the table at ``t`` (ms) → (n,) pA."""
        k = self.currents_pA.shape[0]
        u = jnp.clip(t / self.dt_ms, 0.0, k - 1.0)
        i0 = jnp.clip(jnp.floor(u).astype(jnp.int32), 0, k - 2)
        w = u - i0
        return (1.0 - w) * self.currents_pA[i0] + w * self.currents_pA[i0 + 1]

    def outputs(self, t, state) -> dict[str, Array]:
        return {"current_pA": self.current_at(t)}

    def parameter_info(self) -> dict[str, ParameterInfo]:
        return {"currents_pA": ParameterInfo("currents_pA", "pA", None, "time × cell",
                                             "prescribed input-current table (data, not a parameter)",
                                             "owjax.reduce.waveforms", trainable=False)}


class CurrentInjection(AbstractCoupling):
    """``current_pA`` of a :class:`WaveformCurrents` → the network's ``i_ext_pA`` at ``cell_index`` (pA).

    Arguments:
        source, target: component names in the composite.
        cell_index: network indices of the driven cells (column order of the source table).
        n_cells: number of cells of the network.
    """

    source: str = eqx.field(static=True)
    target: str = eqx.field(static=True)
    target_input: str = eqx.field(static=True)
    cell_index: tuple[int, ...] = eqx.field(static=True)
    n_cells: int = eqx.field(static=True)

    def __init__(self, source: str, target: str, cell_index: Sequence[int], n_cells: int):
        self.source, self.target, self.target_input = source, target, "i_ext_pA"
        self.cell_index = tuple(int(i) for i in cell_index)
        self.n_cells = int(n_cells)

    def __call__(self, t, source_outputs) -> Array:
        i = source_outputs["current_pA"]
        return jnp.zeros((self.n_cells,), i.dtype).at[jnp.asarray(self.cell_index)].add(i)


def driven_network(network: AbstractComponent, currents_pA, dt_ms: float, cells: Sequence[str]) -> Composite:
    """``Composite({"network", "drive"}, [CurrentInjection])``: ``network`` driven by a current table.

    Arguments:
        network: a network component with input ``i_ext_pA`` and ``cell_names``.
        currents_pA: (K, n) table, pA; ``dt_ms`` its step (ms); ``cells`` the driven cells.
    """
    if "i_ext_pA" not in network.input_names:
        raise ValueError(f"{type(network).__name__} has no input 'i_ext_pA'; inputs: {sorted(network.input_names)}")
    names = list(network.cell_names)
    missing = [c for c in cells if c not in names]
    if missing:
        from owjax.core.errors import unknown_name_message

        raise ValueError(unknown_name_message("input cell", missing[0], names))
    drive = WaveformCurrents(jnp.asarray(currents_pA, network.dtype), dt_ms, cells)
    inj = CurrentInjection("drive", "network", [names.index(c) for c in cells], len(names))
    return Composite({"network": network, "drive": drive}, [inj])

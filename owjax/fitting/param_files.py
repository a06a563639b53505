"""Parameter files: fitted values written by ``python -m owjax.fit`` (``params.json``), read back and
applied to a model (``python -m owjax.simulate params=PATH``).

Split from :mod:`owjax.fitting.params` (the parameter space itself); re-exported there.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from owjax.fitting.leaves import UnknownLeafError, get_leaf, leaf_rows, model_kind
from owjax.fitting.params import PARAM_FILE_FORMAT, ParameterSpace, ParameterSpecError, log

__all__ = ["save_param_file", "load_param_file", "apply_param_file"]


# ---------------------------------------------------------------------------- parameter files
def save_param_file(
    path: str | Path,
    model,
    space: ParameterSpace,
    raw: Mapping[str, Array],
    registry: Mapping | None = None,
    metadata: Mapping | None = None,
) -> Path:
    """Write fitted parameters (JSON, atomically).

    Arguments:
        path: output file (``params.json``).
        model: the *base* model the space was built on (for row names and units).
        space: the parameter space.
        raw: unconstrained values (e.g. the optimiser's final state).
        registry: the component registry to embed (:meth:`owjax.fitting.registry.Registry.to_dict`).
        metadata: anything else (experiment, date, commit …).

    Returns:
        The path.
    """
    from owjax.core.checkpoint import atomic_write_json

    fitted = space.apply(model, raw)
    vals = space.values(raw)
    groups = {}
    for b in space.blocks:
        leaf = np.asarray(get_leaf(fitted, b.spec.leaf), dtype=np.float64).reshape(-1)
        groups[b.name] = dict(
            leaf=b.spec.leaf, unit=b.unit,
            trainable=b.spec.trainable, groupby=b.spec.groupby, transform=b.transform,
            bounds=[b.lower, b.upper], labels=list(b.labels),
            values=[float(x) for x in np.asarray(vals[b.name], dtype=np.float64)],
            init=[float(x) for x in b.init], default=[float(x) for x in b.default],
            spec=b.spec.to_dict(),
            rows=dict(
                names=[b.rows.names[i] for i in b.row_index],
                group=[int(g) for g in b.group_of_row],
                values=[float(leaf[i]) for i in b.row_index],
                scale=[float(b.rows.scale[i]) for i in b.row_index],
            ),
        )
    doc = dict(
        format=PARAM_FILE_FORMAT,
        model_kind=space.model_kind,
        model_name=str(getattr(model, "name", type(model).__name__)),
        groups=groups,
        metadata=dict(metadata or {}),
        registry=dict(registry) if registry is not None else None,
    )
    return atomic_write_json(path, doc)


def load_param_file(path: str | Path) -> dict:
    """Read and check a parameter file; returns the document (a dict)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"parameter file not found: {path}")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ParameterSpecError(f"{path}: not a JSON parameter file ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != PARAM_FILE_FORMAT:
        raise ParameterSpecError(f"{path}: not an owjax parameter file (format must be {PARAM_FILE_FORMAT!r})")
    for name, g in doc.get("groups", {}).items():
        for key in ("leaf", "bounds", "values", "rows"):
            if key not in g:
                raise ParameterSpecError(f"{path}: group {name!r} lacks {key!r}")
        vals = np.asarray(g["values"], dtype=np.float64)
        lo, hi = (float(x) for x in g["bounds"])
        if not np.all(np.isfinite(vals)):
            raise ParameterSpecError(f"{path}: group {name!r} has NaN/Inf values")
        if np.any(vals < lo) or np.any(vals > hi):
            raise ParameterSpecError(f"{path}: group {name!r} has values outside its bounds [{lo}, {hi}]")
        rv = np.asarray(g["rows"]["values"], dtype=np.float64)
        if not np.all(np.isfinite(rv)) or len(rv) != len(g["rows"]["names"]):
            raise ParameterSpecError(f"{path}: group {name!r}: rows malformed (NaN or length mismatch)")
    return doc


def apply_param_file(model, path: str | Path, strict: bool = False):
    """Put the values of a parameter file into ``model`` (matched by row name).

    Rows of the file that the model does not have are skipped (e.g. a fit on a sub-network applied
    to the full network sets just those cells); with ``strict=True`` they raise instead. A group
    none of whose rows exist in the model raises.

    Arguments:
        model: e.g. a :class:`~owjax.neural.network.NetworkModel` built from the same c302 network.
        path: parameter file written by ``python -m owjax.fit``.
        strict: require every row of the file to exist in the model.

    Returns:
        The model with the file's values.

    Raises:
        ParameterSpecError: wrong model kind, unknown leaf, or no matching rows.
    """
    doc = load_param_file(path)
    kind = model_kind(model)
    if doc.get("model_kind") != kind:
        raise ParameterSpecError(
            f"{path} holds parameters of a {doc.get('model_kind')!r} model; this model is {kind!r}"
        )
    n_set = n_skip = 0
    for name, g in doc["groups"].items():
        try:
            rows = leaf_rows(model, g["leaf"])
        except UnknownLeafError as e:
            raise ParameterSpecError(f"{path}: group {name!r}: {e}") from None
        index = {n: i for i, n in enumerate(rows.names)}
        names, vals = g["rows"]["names"], g["rows"]["values"]
        hit = [(index[n], v) for n, v in zip(names, vals) if n in index]
        missing = [n for n in names if n not in index]
        if not hit:
            raise ParameterSpecError(
                f"{path}: none of the {len(names)} rows of group {name!r} ({names[:3]} …) exist in this "
                f"model ({getattr(model, 'name', '')}); was it fitted on another network?"
            )
        if missing and strict:
            raise ParameterSpecError(f"{path}: group {name!r}: rows not in the model: {missing[:10]}")
        leaf = get_leaf(model, g["leaf"])
        flat = leaf.reshape(-1)
        ii = jnp.asarray([i for i, _ in hit])
        flat = flat.at[ii].set(jnp.asarray([v for _, v in hit], dtype=flat.dtype))
        model = eqx.tree_at(lambda m, p=g["leaf"]: get_leaf(m, p), model, flat.reshape(leaf.shape))
        n_set += len(hit)
        n_skip += len(missing)
    if n_skip:
        warnings.warn(f"{path}: {n_skip} row(s) of the file are not in this model and were skipped", stacklevel=2)
    log.info("applied %d parameter values from %s (%d rows skipped)", n_set, path, n_skip)
    return model

"""Input/output sequence datasets for reduced-order models: column files, HDF5, splits, normalisation.

A dataset is a set of sequences of equal length, each with ``n_in`` input channels (e.g. currents
into PLML, PLMR, AVBL, AVBR, pA) and ``n_out`` output channels (e.g. the membrane potentials of DB1,
LUAL, PVR, VB1, mV) sampled on one time grid. Sources:

* **a folder of column files** (one sequence per file; whitespace- or comma-separated numbers; the
  columns named by a header line — optionally starting with ``#`` — or by ``columns=`` such as
  ``idx,t,DB1,LUAL,PVR,VB1,PLML,PLMR,AVBL,AVBR``, the layout of the study's ``Sequence_NN.dat``
  files). Columns not named as inputs or outputs are ignored; a column called ``t``, ``t_ms``,
  ``t_s`` or ``time`` gives the time axis (``t_s`` in seconds, otherwise in the file's own unit);
* **an owjax reduce dataset** (HDF5 written by :func:`save_h5` / ``python -m owjax.reduce generate``).

Splits are by file (sequence): :func:`split_sequences` takes a JSON file naming the files of
``train``, ``val`` and ``test`` or fractions with a seed (files sorted by name first, so the split
does not depend on directory order). :class:`Normalisation` is a per-channel z-score computed on the
training sequences only and stored with the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ReduceData", "DatasetError", "Normalisation", "load_columns", "write_columns", "save_h5", "load_h5",
           "load_dataset", "split_sequences", "Split"]

TIME_COLUMNS = ("t", "t_ms", "t_s", "time")


class DatasetError(ValueError):
    """A dataset file or request that cannot be read as asked (the message names the file and line)."""


@dataclass
class ReduceData:
    """Sequences of inputs and outputs on one time grid.

    Attributes:
        t: (T,) sample times (``time_unit``; ms for owjax data).
        x: (N, T, n_in) inputs (``input_unit``).
        y: (N, T, n_out) outputs (``output_unit``).
        input_names, output_names: channel names.
        names: (N,) sequence names (file names for column data).
        input_unit, output_unit, time_unit: units, as text.
        meta: provenance (generator settings, network, solver …).
    """

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    names: tuple[str, ...]
    input_unit: str = "pA"
    output_unit: str = "mV"
    time_unit: str = "ms"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.x = np.asarray(self.x, float)
        self.y = np.asarray(self.y, float)
        n, t, _ = self.x.shape
        if self.y.shape[:2] != (n, t) or self.x.shape[2] != len(self.input_names) \
                or self.y.shape[2] != len(self.output_names) or len(self.names) != n:
            raise DatasetError(f"inconsistent dataset shapes: x {self.x.shape}, y {self.y.shape}, "
                               f"{len(self.input_names)} inputs, {len(self.output_names)} outputs, {len(self.names)} names")

    @property
    def n(self) -> int:
        return self.x.shape[0]

    def take(self, idx: Sequence[int]) -> "ReduceData":
        """The sequences ``idx`` (in that order)."""
        idx = list(idx)
        return ReduceData(self.t, self.x[idx], self.y[idx], self.input_names, self.output_names,
                          tuple(self.names[i] for i in idx), self.input_unit, self.output_unit, self.time_unit,
                          dict(self.meta))

    def select(self, inputs: Sequence[str] | None = None, outputs: Sequence[str] | None = None) -> "ReduceData":
        """Only the named channels (input ablation: drop some inputs)."""
        def pick(names, want, kind):
            if want is None:
                return list(range(len(names)))
            bad = [w for w in want if w not in names]
            if bad:
                raise DatasetError(f"unknown {kind} channel(s) {bad}; the data have {list(names)}")
            return [list(names).index(w) for w in want]
        ii = pick(self.input_names, inputs, "input")
        oo = pick(self.output_names, outputs, "output")
        return ReduceData(self.t, self.x[:, :, ii], self.y[:, :, oo], tuple(self.input_names[i] for i in ii),
                          tuple(self.output_names[i] for i in oo), self.names, self.input_unit, self.output_unit,
                          self.time_unit, dict(self.meta))

    def subsample(self, every: int) -> "ReduceData":
        """Every ``every``-th sample (a coarser time step)."""
        return ReduceData(self.t[::every], self.x[:, ::every], self.y[:, ::every], self.input_names,
                          self.output_names, self.names, self.input_unit, self.output_unit, self.time_unit,
                          dict(self.meta))


# ------------------------------------------------------------------------------------------ column files
_NUM = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(nan|inf)$", re.IGNORECASE)


def _split_line(line: str) -> list[str]:
    return [p for p in re.split(r"[,\s]+", line.strip()) if p != ""]


def _read_column_file(path: Path, columns: Sequence[str] | None) -> tuple[list[str], np.ndarray]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    if not lines:
        raise DatasetError(f"{path}: the file is empty")
    first_no, first = lines[0]
    toks = _split_line(first.lstrip("#"))
    header = None
    if first.lstrip().startswith("#") or not all(_NUM.match(t) for t in toks):
        header = toks
        lines = lines[1:]
    names = list(columns) if columns is not None else header
    if names is None:
        raise DatasetError(f"{path}: no header line; name the columns (columns=idx,t,DB1,… / --columns)")
    if columns is not None and header is not None and len(header) != len(columns):
        raise DatasetError(f"{path}: header has {len(header)} columns {header} but columns= names {len(columns)}")
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: repeated column names in {names}")
    rows = []
    for no, ln in lines:
        parts = _split_line(ln)
        if len(parts) != len(names):
            raise DatasetError(f"{path}, line {no}: {len(parts)} values, expected {len(names)} ({','.join(names)})")
        try:
            rows.append([float(p) for p in parts])
        except ValueError:
            bad = next(p for p in parts if not _NUM.match(p))
            raise DatasetError(f"{path}, line {no}: {bad!r} is not a number") from None
    if len(rows) < 2:
        raise DatasetError(f"{path}: fewer than two rows of data")
    arr = np.asarray(rows, float)
    if not np.all(np.isfinite(arr)):
        r, c = np.argwhere(~np.isfinite(arr))[0]
        raise DatasetError(f"{path}, line {lines[r][0]}: column {names[c]!r} is not finite ({arr[r, c]})")
    return names, arr


def load_columns(folder: str | Path, inputs: Sequence[str], outputs: Sequence[str],
                 columns: Sequence[str] | None = None, pattern: str = "*",
                 input_unit: str = "", output_unit: str = "") -> ReduceData:
    """Read a folder of column files (one sequence per file, sorted by name) as a :class:`ReduceData`.

    Arguments:
        folder: the folder (or one file).
        inputs, outputs: column names of the model's inputs and outputs.
        columns: names of all columns, when the files have no header (overrides a header).
        pattern: glob of the files to read (default: every regular file not starting with ``.``).
        input_unit, output_unit: units as text (recorded; the data are not converted).

    Raises:
        DatasetError: no files, unreadable or malformed files (named, with the line), missing
            columns, sequences of different lengths or time grids.
    """
    folder = Path(folder)
    if folder.is_file():
        files = [folder]
    elif folder.is_dir():
        files = sorted(p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith("."))
    else:
        raise DatasetError(f"{folder}: no such file or folder")
    if not files:
        raise DatasetError(f"{folder}: no files match {pattern!r}")
    inputs, outputs = list(inputs), list(outputs)
    if not inputs or not outputs:
        raise DatasetError("name at least one input and one output column")
    xs, ys, t_ref, t_name = [], [], None, None
    for f in files:
        names, arr = _read_column_file(f, columns)
        missing = [c for c in inputs + outputs if c not in names]
        if missing:
            raise DatasetError(f"{f}: no column(s) {missing}; its columns are {names}")
        tcol = next((c for c in TIME_COLUMNS if c in names), None)
        t = arr[:, names.index(tcol)] if tcol else np.arange(arr.shape[0], dtype=float)
        if t_ref is None:
            t_ref, t_name, first = t, tcol, f
        elif t.shape != t_ref.shape:
            raise DatasetError(f"{f}: {t.shape[0]} rows but {first} has {t_ref.shape[0]}; all sequences must have "
                               "the same length (trim or resample them)")
        elif not np.allclose(t, t_ref, rtol=1e-6, atol=1e-9 * max(1.0, float(np.abs(t_ref).max()))):
            raise DatasetError(f"{f}: its time column differs from {first}'s; all sequences need one time grid")
        xs.append(arr[:, [names.index(c) for c in inputs]])
        ys.append(arr[:, [names.index(c) for c in outputs]])
    unit = "s" if t_name == "t_s" else ("ms" if t_name == "t_ms" else ("sample" if t_name is None else "file"))
    return ReduceData(t_ref, np.stack(xs), np.stack(ys), tuple(inputs), tuple(outputs), tuple(f.name for f in files),
                      input_unit, output_unit, unit, {"source": str(folder), "format": "columns"})


def write_columns(folder: str | Path, data: ReduceData, prefix: str = "Sequence_") -> list[Path]:
    """Write one column file per sequence (header ``# idx t_ms <outputs> <inputs>``, the study's column order)."""
    from owjax.core.checkpoint import atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tname = "t_ms" if data.time_unit == "ms" else ("t_s" if data.time_unit == "s" else "t")
    head = "# idx " + " ".join([tname, *data.output_names, *data.input_names])
    paths = []
    width = max(2, len(str(data.n)))
    for s in range(data.n):
        block = np.column_stack([np.arange(data.t.size), data.t, data.y[s], data.x[s]])
        lines = [head] + [" ".join([str(int(r[0]))] + [f"{v:.9g}" for v in r[1:]]) for r in block]
        p = folder / f"{prefix}{s + 1:0{width}d}.dat"
        atomic_write_text(p, "\n".join(lines) + "\n")
        paths.append(p)
    return paths


# ------------------------------------------------------------------------------------------ HDF5
def save_h5(path: str | Path, data: ReduceData) -> Path:
    """Write the dataset to HDF5 (``/t``, ``/x``, ``/y``; names, units and ``meta`` as attributes), atomically."""
    import os

    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = "owjax.reduce dataset v1"
        f.create_dataset("t", data=data.t)
        f.create_dataset("x", data=data.x, compression="gzip")
        f.create_dataset("y", data=data.y, compression="gzip")
        for k in ("input_names", "output_names", "names"):
            f.attrs[k] = json.dumps(list(getattr(data, k)))
        for k in ("input_unit", "output_unit", "time_unit"):
            f.attrs[k] = getattr(data, k)
        f.attrs["meta"] = json.dumps(data.meta, default=str)
    os.replace(tmp, path)
    return path


def load_h5(path: str | Path) -> ReduceData:
    """Read a dataset written by :func:`save_h5`."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        if f.attrs.get("format") != "owjax.reduce dataset v1":
            raise DatasetError(f"{path}: not an owjax.reduce dataset (attribute format={f.attrs.get('format')!r}); "
                               "write one with python -m owjax.reduce generate, or use a folder of column files")
        return ReduceData(np.asarray(f["t"]), np.asarray(f["x"]), np.asarray(f["y"]),
                          tuple(json.loads(f.attrs["input_names"])), tuple(json.loads(f.attrs["output_names"])),
                          tuple(json.loads(f.attrs["names"])), str(f.attrs["input_unit"]), str(f.attrs["output_unit"]),
                          str(f.attrs["time_unit"]), json.loads(f.attrs["meta"]))


def load_dataset(path: str | Path, inputs: Sequence[str] | None = None, outputs: Sequence[str] | None = None,
                 columns: Sequence[str] | None = None) -> ReduceData:
    """An HDF5 dataset (``*.h5``) or a folder of column files; ``inputs``/``outputs`` select channels."""
    path = Path(path)
    if path.suffix in (".h5", ".hdf5"):
        return load_h5(path).select(inputs, outputs)
    if inputs is None or outputs is None:
        raise DatasetError(f"{path}: column files need the input and output column names (--inputs, --outputs)")
    return load_columns(path, inputs, outputs, columns)


# ------------------------------------------------------------------------------------------ splits
@dataclass(frozen=True)
class Split:
    """Indices of the train / validation / test sequences."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]

    def to_names(self, names: Sequence[str]) -> dict[str, list[str]]:
        return {k: [names[i] for i in getattr(self, k)] for k in ("train", "val", "test")}


def split_sequences(names: Sequence[str], split: str | Path | Sequence[float] = (0.5, 0.25, 0.25),
                    seed: int = 0) -> Split:
    """Split sequences by file: a JSON file ``{"train": [...], "val": [...], "test": [...]}`` naming files,
    or fractions (a ``"0.5,0.25,0.25"`` string or three numbers) with ``seed``.

    With fractions the names are sorted, permuted with ``numpy.random.default_rng(seed)`` and cut
    (each part gets at least one sequence); the same names and seed always give the same split.
    """
    names = list(names)
    if isinstance(split, (str, Path)) and not re.fullmatch(r"[\d.,\s]+", str(split)):
        p = Path(split)
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DatasetError(f"{p}: cannot read the split ({e})") from None
        if not isinstance(d, dict) or sorted(d) != ["test", "train", "val"]:
            raise DatasetError(f"{p}: a split file holds exactly the keys train, val, test (lists of file names)")
        seen: dict[str, str] = {}
        out = {}
        for k in ("train", "val", "test"):
            idx = []
            for n in d[k]:
                if n not in names:
                    from owjax.core.errors import unknown_name_message

                    raise DatasetError(f"{p} ({k}): " + unknown_name_message("sequence", str(n), names))
                if n in seen:
                    raise DatasetError(f"{p}: {n!r} is in both {seen[n]} and {k}")
                seen[n] = k
                idx.append(names.index(n))
            if not idx:
                raise DatasetError(f"{p}: the {k} set is empty")
            out[k] = tuple(idx)
        return Split(**out)
    fr = [float(v) for v in str(split).split(",")] if isinstance(split, str) else [float(v) for v in split]
    if len(fr) != 3 or min(fr) <= 0 or not np.isclose(sum(fr), 1.0):
        raise DatasetError(f"split fractions {fr}: need three positive numbers summing to 1 (train,val,test)")
    if len(names) < 3:
        raise DatasetError(f"{len(names)} sequence(s) cannot be split into train, validation and test")
    order = sorted(range(len(names)), key=lambda i: names[i])
    perm = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
    n_val = max(1, int(round(fr[1] * len(names))))
    n_test = max(1, int(round(fr[2] * len(names))))
    n_train = len(names) - n_val - n_test
    if n_train < 1:
        raise DatasetError(f"split {fr} of {len(names)} sequences leaves no training sequence")
    return Split(tuple(perm[:n_train]), tuple(perm[n_train:n_train + n_val]), tuple(perm[n_train + n_val:]))


# ------------------------------------------------------------------------------------------ normalisation
@dataclass(frozen=True)
class Normalisation:
    """Per-channel affine map ``z = (v − mean)/scale`` (``mode="zscore"``) or identity (``"none"``).

    Attributes:
        mode: ``zscore`` or ``none``.
        x_mean, x_scale: (n_in,) in the input unit; y_mean, y_scale: (n_out,) in the output unit.
    """

    mode: str
    x_mean: tuple[float, ...]
    x_scale: tuple[float, ...]
    y_mean: tuple[float, ...]
    y_scale: tuple[float, ...]

    @staticmethod
    def fit(data: ReduceData, mode: str = "zscore") -> "Normalisation":
        """Statistics of ``data`` (the training sequences) over sequences and time; scale floored at 1e-6·max."""
        if mode not in ("zscore", "none"):
            raise DatasetError(f"normalisation {mode!r} unknown; allowed: zscore, none")
        nx, ny = data.x.shape[2], data.y.shape[2]
        if mode == "none":
            return Normalisation(mode, (0.0,) * nx, (1.0,) * nx, (0.0,) * ny, (1.0,) * ny)

        def stats(a):
            m = a.reshape(-1, a.shape[2]).mean(0)
            s = a.reshape(-1, a.shape[2]).std(0)
            s = np.where(s > 1e-6 * max(1.0, float(np.abs(a).max())), s, 1.0)
            return tuple(float(v) for v in m), tuple(float(v) for v in s)
        xm, xs = stats(data.x)
        ym, ys = stats(data.y)
        return Normalisation(mode, xm, xs, ym, ys)

    def x(self, x):
        return (np.asarray(x) - np.asarray(self.x_mean)) / np.asarray(self.x_scale)

    def y(self, y):
        return (np.asarray(y) - np.asarray(self.y_mean)) / np.asarray(self.y_scale)

    def y_inverse(self, z):
        return np.asarray(z) * np.asarray(self.y_scale) + np.asarray(self.y_mean)

    def x_inverse(self, z):
        return np.asarray(z) * np.asarray(self.x_scale) + np.asarray(self.x_mean)

    def to_dict(self) -> dict:
        return {"mode": self.mode, "x_mean": list(self.x_mean), "x_scale": list(self.x_scale),
                "y_mean": list(self.y_mean), "y_scale": list(self.y_scale),
                "formula": "normalised = (value - mean) / scale, per channel, statistics of the training sequences"}

    @staticmethod
    def from_dict(d: dict) -> "Normalisation":
        return Normalisation(d["mode"], tuple(d["x_mean"]), tuple(d["x_scale"]), tuple(d["y_mean"]), tuple(d["y_scale"]))

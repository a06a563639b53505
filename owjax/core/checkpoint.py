"""Runs that lose nothing: atomic files and resumable optimiser checkpoints.

* :func:`atomic_write_text`, :func:`atomic_write_json`, :func:`atomic_savefig` write to a temporary
  file in the same directory and ``os.replace`` it, so a reader (or a killed run) never sees half a
  file.
* :class:`FitCheckpointer` saves the whole optimiser state (parameters, optax states, step counter,
  loss history, accumulated wall time) with orbax-checkpoint (synchronous, atomic: orbax commits a
  step directory only once it is complete), keeps the newest few, and restores the latest into
  the structure of a freshly initialised state. Restoring is exact (bit-for-bit), so a resumed run
  continues on the same trajectory as one that was never interrupted.
* The run directory remembers the configuration it was started with (``fit_config.yaml`` and its
  hash); resuming with a different configuration raises :class:`CheckpointMismatchError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

__all__ = [
    "atomic_write_text",
    "atomic_write_json",
    "atomic_savefig",
    "config_hash",
    "FitCheckpointer",
    "CheckpointMismatchError",
]

log = logging.getLogger("owjax.core.checkpoint")
logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every save/restore at INFO via absl


class CheckpointMismatchError(RuntimeError):
    """The run directory holds a checkpoint of a different configuration."""


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file + ``os.replace``). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray) or hasattr(x, "__array__"):
        return np.asarray(x).tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically (NumPy scalars/arrays become numbers/lists)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default, allow_nan=True) + "\n")


def atomic_savefig(fig, path: str | Path, **kwargs) -> Path:
    """``fig.savefig`` to a temporary file, then ``os.replace`` it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, **kwargs)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def config_hash(text: str) -> str:
    """Short SHA-256 of a configuration's canonical text."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flatten(d, prefix=""):
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = d
    return out


def _config_diff(old: str, new: str) -> list[tuple[str, Any, Any]]:
    """Dotted keys whose values differ between two YAML configurations."""
    import yaml

    a, b = _flatten(yaml.safe_load(old) or {}), _flatten(yaml.safe_load(new) or {})
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


class FitCheckpointer:
    """Orbax checkpoints of an optimisation state under ``run_dir/checkpoints``.

    Arguments:
        run_dir: the run directory.
        config_text: canonical text of the configuration that determines the result (YAML);
            stored beside the checkpoints and compared on resume.
        keep: how many checkpoints to keep (the newest).
    """

    def __init__(self, run_dir: str | Path, config_text: str, keep: int = 2):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.run_dir = Path(run_dir)
        self.dir = (self.run_dir / "checkpoints").absolute()
        self.config_text = config_text
        self.hash = config_hash(config_text)
        if keep < 1:
            raise ValueError(f"checkpoint.keep must be >= 1, got {keep}")
        self.keep = int(keep)
        self._manager = None

    # ----------------------------------------------------------------- bookkeeping
    @property
    def config_file(self) -> Path:
        return self.run_dir / "fit_config.yaml"

    def _manager_(self):
        if self._manager is None:
            ocp = self._ocp
            self.dir.mkdir(parents=True, exist_ok=True)
            self._manager = ocp.CheckpointManager(
                self.dir,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=self.keep, enable_async_checkpointing=False, create=True
                ),
            )
        return self._manager

    def latest_step(self) -> int | None:
        """Step of the newest complete checkpoint, or ``None``."""
        if not self.dir.exists():
            return None
        return self._manager_().latest_step()

    def check_config(self) -> None:
        """Raise :class:`CheckpointMismatchError` when the run dir was started with another config."""
        if not self.config_file.exists():
            return
        old = self.config_file.read_text()
        if config_hash(old) != self.hash:
            diff = "\n".join(f"  {k}: {a!r} (checkpoint) → {b!r} (now)" for k, a, b in _config_diff(old, self.config_text))
            raise CheckpointMismatchError(
                f"{self.run_dir} holds a run of a different configuration; resuming it would mix two "
                f"fits. Differences:\n{diff}\nStart afresh with resume=false, or use another run "
                "directory (hydra.run.dir=...)."
            )

    def clear(self) -> None:
        """Delete all checkpoints and the remembered configuration (``resume=false``)."""
        self.close()
        if self.dir.exists():
            shutil.rmtree(self.dir)
        if self.config_file.exists():
            self.config_file.unlink()

    # ----------------------------------------------------------------- save / restore
    def save(self, step: int, state: Any) -> None:
        """Save ``state`` (a pytree of arrays) as checkpoint ``step`` (synchronously, atomically)."""
        if not self.config_file.exists():
            atomic_write_text(self.config_file, self.config_text)
        mngr = self._manager_()
        if mngr.latest_step() == step:
            return
        mngr.save(step, args=self._ocp.args.StandardSave(state), force=True)
        mngr.wait_until_finished()

    def restore(self, template: Any, step: int | None = None) -> tuple[int, Any]:
        """Restore checkpoint ``step`` (default: the latest) into the structure of ``template``.

        Returns:
            ``(step, state)``.
        """
        self.check_config()
        mngr = self._manager_()
        step = mngr.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.dir}")
        abstract = jax.tree.map(self._ocp.utils.to_shape_dtype_struct, template)
        state = mngr.restore(step, args=self._ocp.args.StandardRestore(abstract))
        log.info("restored checkpoint step %d from %s", step, self.dir)
        return step, state

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None

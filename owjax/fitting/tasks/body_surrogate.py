"""``body_surrogate``: train the body surrogate (an equinox FNO, :mod:`owjax.surrogate`) on owjax's
own body, generating the data first when the data folder lacks it.

``python -m owjax.fit +experiment=body_surrogate`` (``run=ci``: a tiny dataset generated in the run
directory and a small operator, well under two minutes on 2 cores). ``ship=true`` copies the trained
surrogate to ``owjax/data/surrogate/body_fno.{npz,json}``.
"""

from __future__ import annotations

from typing import ClassVar

import shutil
from dataclasses import replace
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from owjax.fitting.tasks.base import AbstractExperiment, section

__all__ = ["BodySurrogateExperiment"]

DATA_KEYS = ("dir", "size", "seed", "dtype", "shard_size", "extra_seeds")
MODEL_KEYS = ("width", "modes", "n_layers", "pad_fraction", "posture", "n_posture", "medium_encoding", "motion",
              "operator_stride", "rod_stride", "init_from")
MODEL_REQUIRED = MODEL_KEYS[:6]  # the others have defaults (linear, direct, 1, 1, none)
TRAIN_KEYS = ("batch_size", "stride", "mirror_augment", "novelty_k", "novelty_quantile", "bound")


class BodySurrogateExperiment(AbstractExperiment):
    """Config → :class:`owjax.surrogate.training.BodySurrogateTask`."""

    kind = "body_surrogate"
    requires_parameters_block: ClassVar[bool] = False  # the task trains all FNO weights (its own pytree)

    def build(self, cfg: Mapping, seed: int, run_dir: Path | None = None):
        from owjax.core.precision import PrecisionError
        from owjax.surrogate.data import (SIZES, DatasetSpec, dataset_complete, generate_dataset, generation_cost,
                                          load_dataset)
        from owjax.surrogate.training import POSTURE_KINDS, BodySurrogateTask

        d = section(cfg, "data", DATA_KEYS, DATA_KEYS)
        m = section(cfg, "model", MODEL_REQUIRED, MODEL_KEYS)
        t = section(cfg, "train", TRAIN_KEYS, TRAIN_KEYS)
        if m["posture"] not in POSTURE_KINDS:
            raise ValueError(f"unknown model.posture {m['posture']!r}; allowed: {list(POSTURE_KINDS)}")
        if str(d["size"]) not in SIZES:
            raise ValueError(f"unknown data.size {d['size']!r}; allowed: {sorted(SIZES)}")
        weights = dict((cfg.get("loss") or {}).get("weights") or {})
        bad = sorted(set(weights) - {"centroid", "posture"})
        if bad:
            raise ValueError(f"loss.weights: unknown term(s) {bad}; allowed: ['centroid', 'posture']")
        data_dir = Path(d["dir"]) if d["dir"] else Path(run_dir or ".") / "data"
        kw = dict(SIZES[str(d["size"])])
        spec = DatasetSpec(seed=int(d["seed"]), dtype=str(d["dtype"]), **{**kw, "shard_size": int(d["shard_size"])})
        extra = [Path(f"{data_dir}_seed{int(x)}") for x in (d["extra_seeds"] or [])]
        for folder, seed_ in [(data_dir, int(d["seed"])), *zip(extra, [int(x) for x in (d["extra_seeds"] or [])])]:
            if dataset_complete(folder):
                continue
            try:
                generate_dataset(folder, replace(spec, seed=seed_), progress=bool(cfg.get("progress", True)))
            except PrecisionError as e:
                raise PrecisionError(f"{e}\nGenerate the float64 dataset first: python -m owjax.surrogate.generate "
                                     f"--out {folder} --size {d['size']} --seed {seed_} --shard-size "
                                     f"{d['shard_size']}") from None
        data = {s: load_dataset(data_dir, s) for s in ("train", "val", "test", "ood")}
        if extra:  # more training data: every train/val/test sample of the other seeds' datasets
            parts = {k: [v] for k, v in data["train"].items() if isinstance(v, np.ndarray) and k != "t_s"}
            for x in extra:
                more = load_dataset(x)
                keep = more["split"] < 3
                for k in parts:
                    # activations are used in float32 only (BodySurrogateTask): kept so, to halve the memory
                    parts[k].append(more[k][keep].astype(np.float32) if k == "activation" else more[k][keep])
            for k, v in parts.items():  # one concatenation (repeated ones copied everything once per seed)
                data["train"][k] = np.concatenate(v, 0, dtype=np.float32 if k == "activation" else None)
        info = {"dataset": {"dir": str(data_dir), "extra_dirs": [str(x) for x in extra], "size": str(d["size"]),
                            "dtype": str(d["dtype"]),
                            **{f"n_{s}": int(len(v["activation"])) for s, v in data.items()},
                            "generation": [generation_cost(x) for x in [data_dir, *extra]]},
                "command": "python -m owjax.fit " + " ".join(sys.argv[1:])}
        task = BodySurrogateTask(data, m, t, weights, seed=seed, info=info)
        if bool(cfg.get("ship", False)):
            task.ship_to = Path(__file__).resolve().parents[2] / "data" / "surrogate" / "body_fno"
        return task


def ship(run_dir: Path, dest: Path) -> None:
    """Copy ``run_dir/surrogate.{npz,json}`` to ``dest.{npz,json}``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    for ext in (".npz", ".json"):
        shutil.copyfile(Path(run_dir) / f"surrogate{ext}", dest.with_suffix(ext))

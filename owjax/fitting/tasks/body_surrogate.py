"""``body_surrogate``: train the body surrogate (an equinox FNO, :mod:`owjax.surrogate`) on owjax's
own body, generating the data first when the data folder lacks it.

``python -m owjax.fit +experiment=body_surrogate`` (``run=ci``: a tiny dataset generated in the run
directory and a small operator, well under two minutes on 2 cores). ``ship=true`` copies the trained
surrogate to ``owjax/data/surrogate/body_fno.{npz,json}``.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from owjax.fitting.tasks.base import AbstractExperiment, section

__all__ = ["BodySurrogateExperiment"]

DATA_KEYS = ("dir", "size", "seed", "dtype", "shard_size")
MODEL_KEYS = ("width", "modes", "n_layers", "pad_fraction", "posture", "n_posture")
TRAIN_KEYS = ("batch_size", "stride", "novelty_k", "novelty_quantile", "bound")


class BodySurrogateExperiment(AbstractExperiment):
    """Config → :class:`owjax.surrogate.training.BodySurrogateTask`."""

    kind = "body_surrogate"

    def build(self, cfg: Mapping, seed: int, run_dir: Path | None = None):
        from owjax.core.precision import PrecisionError
        from owjax.surrogate.data import (SIZES, DatasetSpec, dataset_complete, generate_dataset, generation_cost,
                                          load_dataset)
        from owjax.surrogate.training import POSTURE_KINDS, BodySurrogateTask

        d = section(cfg, "data", DATA_KEYS, DATA_KEYS)
        m = section(cfg, "model", MODEL_KEYS, MODEL_KEYS)
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
        if not dataset_complete(data_dir):
            try:
                generate_dataset(data_dir, spec, progress=bool(cfg.get("progress", True)))
            except PrecisionError as e:
                raise PrecisionError(f"{e}\nGenerate the float64 dataset first: python -m owjax.surrogate.generate "
                                     f"--out {data_dir} --size {d['size']} --seed {d['seed']} --shard-size "
                                     f"{d['shard_size']}") from None
        data = {s: load_dataset(data_dir, s) for s in ("train", "val", "test", "ood")}
        info = {"dataset": {"dir": str(data_dir), "size": str(d["size"]), "dtype": str(d["dtype"]),
                            **{f"n_{s}": int(len(v["activation"])) for s, v in data.items()},
                            "generation": generation_cost(data_dir)},
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

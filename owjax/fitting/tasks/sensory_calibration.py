"""``python -m owjax.fit +experiment=sensory_afd_calibration``: calibrate the transducer → c302 drive.

Builds a :class:`~owjax.sensory.calibration.DriveCalibrationTask`: the shipped (or given) transducer
drives the modality's cells of a c302 network (``network``: parameter set and cells) in one solve, and
the loop fits the drive's ``gain_pA`` / ``offset_pA`` by gradient so that the driven cells' calcium
follows the worm-averaged measured response of one protocol (targets by worm: the transducer's own
train / validation / test split). ``ship: true`` writes the result to
``owjax/data/sensory/<modality>_calibration.json``, which the sensory scenario uses with
``sensory.gain_pA=calibrated``.

Config sections: ``data`` (modality, protocol, split_seed, val_fraction, test_fraction, window_s),
``network`` (parameter_set, cells, solver: a preset name or mapping), ``drive`` (gain_init_pA,
offset_init_pA, max_gain_pA, transducer), plus the loop's ``optim`` / ``validation`` / ``checkpoint``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from owjax.fitting.tasks.base import AbstractExperiment, section

__all__ = ["SensoryCalibration"]

DATA_KEYS = ("modality", "protocol", "split_seed", "val_fraction", "test_fraction", "window_s")
NETWORK_KEYS = ("parameter_set", "cells", "solver")
DRIVE_KEYS = ("gain_init_pA", "offset_init_pA", "max_gain_pA", "transducer")


class SensoryCalibration(AbstractExperiment):
    """Config → :class:`~owjax.sensory.calibration.DriveCalibrationTask`."""

    kind: ClassVar[str] = "sensory_calibration"
    requires_parameters_block: ClassVar[bool] = False  # the task's parameters are the drive's gain and offset

    def build(self, cfg: Mapping, seed: int, run_dir: Path | None = None):
        from owjax.core.precision import require_dtype
        from owjax.fitting.tasks.sensory_transducer import records_for
        from owjax.neural.build import build_model, build_spec
        from owjax.sensory.calibration import DriveCalibrationTask, calibration_path, population_target
        from owjax.sensory.records import MODALITIES
        from owjax.sensory.training import split_by_worm

        data = section(cfg, "data", required=("modality", "protocol", "window_s"), allowed=DATA_KEYS)
        net = section(cfg, "network", required=("parameter_set", "cells"), allowed=NETWORK_KEYS)
        drive = section(cfg, "drive", allowed=DRIVE_KEYS)
        modality = str(data["modality"])
        if modality not in MODALITIES:
            raise ValueError(f"data.modality={modality!r}; allowed: {sorted(MODALITIES)}")
        window = list(data["window_s"])
        if len(window) != 2:
            raise ValueError(f"data.window_s={window}: give [start, stop] in s")
        recs = records_for({"modality": modality, "path": None})
        protos = sorted({r.protocol for r in recs})
        if data["protocol"] not in protos:
            raise ValueError(f"data.protocol={data['protocol']!r}; the {modality} data has {protos}")
        split = split_by_worm(recs, float(data.get("val_fraction", 0.2)), float(data.get("test_fraction", 0.25)),
                              int(data.get("split_seed", 0)))
        targets = {}
        for which, idx in split.items():
            sel = [recs[i] for i in idx if recs[i].protocol == data["protocol"]]
            if sel:
                targets[which] = population_target(sel, data["protocol"])
        spec = build_spec(parameter_set=str(net["parameter_set"]), network="Full", cells=list(net["cells"]),
                          stimulus_mode="none")
        model = build_model(spec, require_dtype(str(cfg.get("dtype", "float64")), "sensory_calibration"))
        from owjax.fitting.tasks.base import solver_from_config

        task = DriveCalibrationTask(model, modality, targets, (float(window[0]), float(window[1])),
                                    gain_init_pA=float(drive.get("gain_init_pA", 10.0)),
                                    offset_init_pA=float(drive.get("offset_init_pA", 0.0)),
                                    solver=solver_from_config(net.get("solver")),
                                    transducer=drive.get("transducer"),
                                    max_gain_pA=float(drive.get("max_gain_pA", 100.0)))
        task.info = dict(task.info, parameter_set=str(net["parameter_set"]), network_cells_list=list(net["cells"]))
        if bool(cfg.get("ship", False)):
            task.ship_to = calibration_path(modality)
        return task

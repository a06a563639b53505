"""Calibration of the transducer → network drive: fit ``gain_pA`` (and ``offset_pA``) of
:class:`~owjax.sensory.component.TransducerDrive` **through the c302 network, by gradient**, so that
the calcium of the driven cells (AFDL/AFDR or BAGL/BAGR) follows the measured response.

The learned transducer predicts the response in the recording's unit (AFD: % ΔR/R of a ratiometric
indicator). c302's cells report calcium concentration (mM). The two are related by an unknown
indicator transform, so the calibration asks for the *shape* to agree: the loss is
``1 − r(Ca_driven(t_k), R(t_k))`` (Pearson r over the samples of a window of the protocol, Ca the
mean of the driven cells), and the affine readout ``R ≈ a·Ca + b`` (least squares, reported, not
trained) states the indicator scale that makes the units meet. The gradient of that loss with
respect to the drive's gain and offset goes through the whole solve: transducer (GRU) → drive →
c302 network, one ``diffrax`` solve, one ``jax.grad`` (``jax.value_and_grad`` of
:meth:`DriveCalibrationTask.loss`).

Target: the worm-averaged response of one protocol (the transducer's training worms by default;
validation and test worms give held-out targets, same split as the transducer's: see
:func:`owjax.sensory.training.split_by_worm`), and the stimulus the transducer sees is the
worm-averaged stimulus of the same worms. Time: the solve starts at the protocol's start (so the
transducer's slow adaptation state sees the holding period) and the loss reads the window
``window_s`` only.

Run it with ``python -m owjax.fit +experiment=sensory_afd_calibration`` (``run=ci``: a short window);
the calibrated ``gain_pA`` / ``offset_pA`` are written to ``calibration.json`` in the run directory,
and ``ship=true`` copies that file to ``owjax/data/sensory/<modality>_calibration.json``, which
``python -m owjax.simulate +scenario=sensory sensory.gain_pA=calibrated`` reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from owjax.fitting.task import AbstractFitTask
from owjax.sensory.records import MODALITIES, SensoryRecord

__all__ = ["PopulationTarget", "population_target", "pearson_r", "affine_readout", "DriveCalibrationTask",
           "calibration_path", "load_calibration"]


@dataclass(frozen=True)
class PopulationTarget:
    """The worm-averaged stimulus and response of one protocol on a common 1-sample grid.

    Attributes:
        time_s: (T,) sample times from the protocol's start, s.
        stimulus: (T,) mean stimulus (°C or % O2).
        response: (T,) mean response (record units: % ΔR/R or ΔF/F); NaN where no worm has data.
        worm_ids: the worms averaged.
        protocol: the protocol's name.
    """

    time_s: np.ndarray
    stimulus: np.ndarray
    response: np.ndarray
    worm_ids: tuple[str, ...]
    protocol: str


def population_target(records: Sequence[SensoryRecord], protocol: str | None = None) -> PopulationTarget:
    """Average recordings of one protocol (shortest common length; the records must share ``dt_s``).

    Arguments:
        records: recordings (any protocols; only ``protocol``'s are used).
        protocol: which protocol (default: the only one present).

    Returns:
        The :class:`PopulationTarget`.
    """
    protos = sorted({r.protocol for r in records})
    if protocol is None:
        if len(protos) != 1:
            raise ValueError(f"population_target: several protocols {protos}; name one")
        protocol = protos[0]
    recs = [r for r in records if r.protocol == protocol]
    if not recs:
        raise ValueError(f"population_target: no recording of protocol {protocol!r}; protocols: {protos}")
    dts = sorted({round(float(r.dt_s), 9) for r in recs})
    if len(dts) != 1:
        raise ValueError(f"population_target: recordings sampled at different steps {dts} s; resample first")
    n = min(r.n_samples for r in recs)
    stim = np.mean([r.stimulus[:n] for r in recs], axis=0)
    with np.errstate(all="ignore"):
        resp = np.nanmean(np.stack([r.response[:n] for r in recs]), axis=0)
    return PopulationTarget(time_s=np.arange(n) * dts[0], stimulus=stim, response=resp,
                            worm_ids=tuple(r.worm_id for r in recs), protocol=protocol)


def pearson_r(a: Float[Array, " T"], b: Float[Array, " T"], mask: Float[Array, " T"]) -> Float[Array, ""]:
    """Masked Pearson correlation of two series (pure JAX; differentiable; ``mask`` 1 where both count)."""
    n = jnp.maximum(jnp.sum(mask), 1.0)
    ma = jnp.sum(mask * a) / n
    mb = jnp.sum(mask * b) / n
    da, db = mask * (a - ma), mask * (b - mb)
    return jnp.sum(da * db) / jnp.sqrt(jnp.sum(da * da) * jnp.sum(db * db) + 1e-30)


def affine_readout(ca: np.ndarray, response: np.ndarray) -> tuple[float, float]:
    """Least-squares ``response ≈ a·ca + b`` over finite samples: ``(a, b)`` (response units per mM, response units)."""
    ok = np.isfinite(ca) & np.isfinite(response)
    A = np.stack([ca[ok], np.ones(ok.sum())], 1)
    (a, b), *_ = np.linalg.lstsq(A, response[ok], rcond=None)
    return float(a), float(b)


def calibration_path(modality: str) -> Path:
    """Where the shipped calibration of ``modality`` lives (``owjax/data/sensory/<modality>_calibration.json``)."""
    from owjax.sensory.loaders import DATA_DIR

    return Path(DATA_DIR) / f"{modality}_calibration.json"


def load_calibration(modality: str, path: str | Path | None = None) -> dict:
    """The calibration (``gain_pA``, ``offset_pA``, its network and provenance) of ``modality``.

    Raises:
        FileNotFoundError: naming the command that creates it, when there is none.
    """
    p = Path(path) if path else calibration_path(modality)
    if not p.exists():
        raise FileNotFoundError(f"no calibration for {modality!r} at {p}; create it with "
                                f"python -m owjax.fit +experiment=sensory_{modality}_calibration ship=true")
    return json.loads(p.read_text())


class DriveCalibrationTask(AbstractFitTask):
    """Fit the drive's gain (pA per unit of normalised response) and offset (pA) through the network.

    Arguments:
        network: a c302 network component holding the modality's cells.
        modality: ``"afd"`` or ``"bag"``.
        targets: ``{"train": PopulationTarget, "val": …, "test": …}`` (``val``/``test`` optional).
        window_s: ``(start, stop)`` of the window the loss reads, s from the protocol's start.
        gain_init_pA, offset_init_pA: the starting drive.
        solver: solver preset or mapping (:func:`owjax.core.solve.get_solver`).
        transducer: transducer file (default: the shipped one).
        max_gain_pA: upper bound of the gain (the gain is ``max_gain_pA · sigmoid(raw)``, so it stays
            in (0, max_gain_pA): a positive drive of physiological size).

    Params: ``{"gain_raw", "offset_pA"}``. Loss terms: ``one_minus_r`` (train target).
    """

    validation_metric = "val_one_minus_r"

    def __init__(self, network, modality: str, targets: Mapping[str, PopulationTarget],
                 window_s: tuple[float, float], gain_init_pA: float = 10.0, offset_init_pA: float = 0.0,
                 solver: Mapping | str = "tsit5", transducer: str | Path | None = None,
                 max_gain_pA: float = 100.0):
        from owjax.core.solve import get_solver
        from owjax.sensory.loaders import DATA_DIR
        from owjax.sensory.transducer import load_transducer

        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; known: {sorted(MODALITIES)}")
        if "train" not in targets:
            raise ValueError("DriveCalibrationTask: targets need a 'train' entry")
        missing = [c for c in MODALITIES[modality]["cells"] if c not in network.cell_names]
        if missing:
            raise ValueError(f"the network has no {missing}; the {modality} transducer drives "
                             f"{list(MODALITIES[modality]['cells'])}")
        t0, t1 = (float(x) for x in window_s)
        tr = targets["train"]
        if not 0 <= t0 < t1 <= float(tr.time_s[-1]):
            raise ValueError(f"window_s={list(window_s)}: need 0 <= start < stop <= {float(tr.time_s[-1])} s "
                             f"(the protocol's length)")
        if not 0 < gain_init_pA < max_gain_pA:
            raise ValueError(f"gain_init_pA={gain_init_pA}: need 0 < gain_init_pA < max_gain_pA={max_gain_pA}")
        self.network = network
        self.modality = modality
        self.targets = dict(targets)
        self.window_s = (t0, t1)
        self.solver = get_solver(solver)
        self.max_gain_pA = float(max_gain_pA)
        self.gain_init_pA, self.offset_init_pA = float(gain_init_pA), float(offset_init_pA)
        self.transducer_file = Path(transducer) if transducer else Path(DATA_DIR) / f"{modality}_transducer.npz"
        self.dtype = network.dtype
        self.tspec, self.tparams = load_transducer(self.transducer_file, dtype=self.dtype)
        self.cell_index = jnp.asarray([network.index(c) for c in MODALITIES[modality]["cells"]])
        dt = float(tr.time_s[1] - tr.time_s[0])
        self.sample_s = tr.time_s[(tr.time_s >= t0) & (tr.time_s <= t1)]
        self.dt_s = dt
        self.data_description = (f"{modality.upper()} worm-averaged response, protocol {tr.protocol!r}: "
                                 + ", ".join(f"{k} {len(v.worm_ids)} worms" for k, v in self.targets.items())
                                 + f"; window {t0:g}–{t1:g} s")
        self.loss_description = ("1 − Pearson r between the driven cells' mean c302 calcium and the measured "
                                 "response over the window")
        self.info = dict(modality=modality, window_s=[t0, t1], protocol=tr.protocol,
                         worm_ids={k: list(v.worm_ids) for k, v in self.targets.items()},
                         cells=list(MODALITIES[modality]["cells"]), network_cells=len(network.cell_names),
                         transducer=str(self.transducer_file), solver=self.solver.method)
        self._solve = None

    # -- the model -----------------------------------------------------------------------------------
    def gain_pA(self, params) -> Array:
        """The gain (pA) of raw parameters."""
        return self.max_gain_pA * jax.nn.sigmoid(params["gain_raw"])

    def worm(self, params, target: PopulationTarget):
        """The composite (transducer with ``target``'s stimulus → drive → network) at ``params``."""
        return self._composite(params, jnp.asarray(target.time_s, self.dtype),
                               jnp.asarray(target.stimulus, self.dtype))

    def _composite(self, params, stim_t, stim_v):
        from owjax.sensory.component import GRUTransducer, sensory_worm

        tr = GRUTransducer(self.tspec, self.tparams, stim_t, stim_v)
        return sensory_worm(self.network, tr, gain_pA=self.gain_pA(params), offset_pA=params["offset_pA"])

    def _driven_calcium(self, params, target: PopulationTarget):
        return self._calcium(params, jnp.asarray(target.time_s, self.dtype), jnp.asarray(target.stimulus, self.dtype))

    def _calcium(self, params, stim_t, stim_v):
        from owjax.core.solve import solve_ys
        from owjax.core.units import CA_STATE_SCALE

        worm = self._composite(params, stim_t, stim_v)
        ts = jnp.concatenate([jnp.zeros((1,), self.dtype), jnp.asarray(self.sample_s * 1000.0, self.dtype)])
        sol = solve_ys(worm, 0.0, 1.0, solver=self.solver, save=("network.Ca",), ts_ms=ts)
        ca = sol.ys["network"]["Ca"][1:] / CA_STATE_SCALE
        return jnp.mean(ca[:, self.cell_index], axis=1)

    def driven_calcium(self, params, target: PopulationTarget) -> np.ndarray:
        """Mean calcium (mM) of the driven cells at the window's sample times, for ``target``'s stimulus."""
        if self._solve is None:  # one compiled solve for every target (the stimulus is an argument)
            self._solve = jax.jit(self._calcium)
        return np.asarray(self._solve(params, jnp.asarray(target.time_s, self.dtype),
                                      jnp.asarray(target.stimulus, self.dtype)))

    def _window_response(self, target: PopulationTarget) -> tuple[np.ndarray, np.ndarray]:
        sel = (target.time_s >= self.window_s[0]) & (target.time_s <= self.window_s[1])
        resp = target.response[sel]
        if resp.size != self.sample_s.size:
            raise ValueError(f"target {target.protocol!r} has {resp.size} samples in the window, the training "
                             f"target {self.sample_s.size}")
        ok = np.isfinite(resp)
        return np.where(ok, resp, 0.0), ok.astype(float)

    # -- the protocol ----------------------------------------------------------------------------------
    def init(self, key):
        g = self.gain_init_pA / self.max_gain_pA
        return {"gain_raw": jnp.asarray(np.log(g / (1 - g)), self.dtype),
                "offset_pA": jnp.asarray(self.offset_init_pA, self.dtype)}

    def batches(self, step, key):
        tr = self.targets["train"]
        resp, mask = self._window_response(tr)
        return {"response": jnp.asarray(resp, self.dtype), "mask": jnp.asarray(mask, self.dtype)}

    def loss(self, params, batch, key):
        ca = self._driven_calcium(params, self.targets["train"])
        r = pearson_r(ca, batch["response"], batch["mask"])
        return 1.0 - r, {"one_minus_r": 1.0 - r}

    def _r(self, params, which: str) -> float:
        t = self.targets[which]
        ca = self.driven_calcium(params, t)
        resp, mask = self._window_response(t)
        return float(pearson_r(jnp.asarray(ca), jnp.asarray(resp), jnp.asarray(mask)))

    def validate(self, params, key) -> dict[str, float]:
        if "val" not in self.targets:
            return {}
        return {"val_one_minus_r": 1.0 - self._r(params, "val")}

    def objective(self, params, key):
        v = 1.0 - self._r(params, "train")
        return v, {"one_minus_r": v}

    def describe(self) -> str:
        return (f"{self.modality} drive calibration through a {len(self.network.cell_names)}-cell c302 network: "
                f"gain_pA, offset_pA")

    def calibration(self, params) -> dict:
        """The fitted drive and its fit quality (host side): what ``calibration.json`` holds."""
        out = {"modality": self.modality, "gain_pA": float(self.gain_pA(params)),
               "offset_pA": float(params["offset_pA"]), "window_s": list(self.window_s),
               "protocol": self.targets["train"].protocol, "cells": list(MODALITIES[self.modality]["cells"])}
        for which, t in self.targets.items():
            ca = self.driven_calcium(params, t)
            resp, mask = self._window_response(t)
            ok = mask > 0
            a, b = affine_readout(ca[ok], resp[ok])
            out[which] = {"r": float(pearson_r(jnp.asarray(ca), jnp.asarray(resp), jnp.asarray(mask))),
                          "readout_per_mM": a, "readout_offset": b, "n_worms": len(t.worm_ids),
                          "ca_range_mM": [float(ca.min()), float(ca.max())]}
        return out

    def report(self, params_init, params, run_dir, figures):
        before, after = self.calibration(params_init), self.calibration(params)
        out = {"gain_pA": after["gain_pA"], "offset_pA": after["offset_pA"],
               "gain_init_pA": before["gain_pA"], "offset_init_pA": before["offset_pA"]}
        for which in self.targets:
            out[f"{which}_r"] = after[which]["r"]
            out[f"{which}_r_init"] = before[which]["r"]
            out[f"{which}_readout_per_mM"] = after[which]["readout_per_mM"]
        if figures and run_dir is not None:
            out["figure"] = self.figure(params_init, params, Path(run_dir) / "calibration.png")
        return out

    def figure(self, params_init, params, path) -> str:
        """Measured response vs c302 calcium (affine readout) before and after calibration, per target."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(len(self.targets), 1, figsize=(8, 2.6 * len(self.targets)), squeeze=False)
        for ax, (which, t) in zip(axes[:, 0], self.targets.items()):
            resp, mask = self._window_response(t)
            ok = mask > 0
            ax.plot(self.sample_s[ok], resp[ok], "k", lw=1.5, label=f"measured (mean of {len(t.worm_ids)} worms)")
            for p, style, lab in ((params_init, "--", "initial drive"), (params, "-", "calibrated drive")):
                ca = self.driven_calcium(p, t)
                a, b = affine_readout(ca[ok], resp[ok])
                r = float(pearson_r(jnp.asarray(ca), jnp.asarray(resp), jnp.asarray(mask)))
                ax.plot(self.sample_s, a * ca + b, style, lw=1,
                        label=f"c302 Ca, {lab} (gain {float(self.gain_pA(p)):.3g} pA), r={r:.2f}")
            ax.set_title(f"{self.modality.upper()} {which} worms, protocol {t.protocol}", fontsize=9)
            ax.set_ylabel(MODALITIES[self.modality]["response_unit"])
            ax.legend(fontsize=7)
        axes[-1, 0].set_xlabel("time from protocol start (s)")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return Path(path).name

    def save_outputs(self, params, run_dir, provenance, metadata):
        from owjax.core.checkpoint import atomic_write_json

        if hasattr(provenance, "details"):
            prov = dict(provenance.details, source=str(getattr(provenance, "source", "")))
        elif isinstance(provenance, Mapping):
            prov = dict(provenance)
        else:
            prov = {"provenance": str(provenance)}
        cal = dict(self.calibration(params), network=self.info, provenance=prov,
                   metadata={k: v for k, v in dict(metadata).items() if isinstance(v, (str, int, float, bool))})
        atomic_write_json(Path(run_dir) / "calibration.json", cal)
        if getattr(self, "ship_to", None):
            atomic_write_json(self.ship_to, cal)

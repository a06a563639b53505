"""Training the body surrogate as a fitting task on the one loop (``python -m owjax.fit
+experiment=body_surrogate``; the experiment class is :mod:`owjax.fitting.tasks.body_surrogate`).

:class:`BodySurrogateTask` trains a :class:`~owjax.surrogate.fno.BodyFNO` on the *coarse* time grid
(every ``stride``-th sample of the data's grid) with minibatches drawn from the training split,
loss = w_c · mean |Δcentroid|² / L² + w_p · mean Δθ² (θ the 48 tangent angles, rad), and reports
the errors on the test split on the coarse grid *and* on the data's fine grid (resolution
independence), and on the OOD set (fine grid). The trainable parameters handed to the loop are the
FNO's weight arrays as a flat dict (``w000`` …), so they checkpoint and resume like any fit; the
posture decoder is fixed. ``save_outputs`` writes the surrogate (``surrogate.npz``/``.json``,
loadable by :meth:`owjax.surrogate.component.BodySurrogate.load`) with its calibrated fallback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from owjax.fitting.task import AbstractFitTask
from owjax.surrogate.component import BodySurrogate, NoveltyEstimator, indicators, model_hyperparameters
from owjax.surrogate.evaluate import _fallback, _spearman, compare, latent_batch, predict_batch, trajectory_errors
from owjax.surrogate.fno import MOTIONS, FNO1d, BodyFNO, PostureDecoder, angle_basis, eigenworm_basis, n_input_channels

__all__ = ["BodySurrogateTask", "POSTURE_KINDS", "posture_representation_error"]

POSTURE_KINDS = ("angles", "eigenworms")
_GAIT_FAMILIES = ("nominal", "perturbed", "wave", "ood_fast", "ood_amplitude", "ood_wavelength", "ood_mixture")


def _basis(kind: str, n: int, angles: np.ndarray) -> np.ndarray:
    if kind == "angles":
        return angle_basis(n)
    if kind == "eigenworms":
        return eigenworm_basis(angles, n)
    raise ValueError(f"unknown model.posture {kind!r}; allowed: {list(POSTURE_KINDS)}")


def posture_representation_error(kind: str, n: int, train_angles: np.ndarray, test_angles: np.ndarray) -> float:
    """RMS (rad) of the tangent angles after projection onto a posture basis of ``n`` channels."""
    b = _basis(kind, n, train_angles)
    a = test_angles.reshape(-1, test_angles.shape[-1]).astype(np.float64)
    rec = a @ np.linalg.pinv(b).T @ b.T
    return float(np.sqrt(np.mean((rec - a) ** 2)))


class BodySurrogateTask(AbstractFitTask):
    """The surrogate's training problem.

    Arguments:
        data: ``{"train", "val", "test", "ood"}`` → datasets from :func:`owjax.surrogate.data.load_dataset`.
        model: ``{width, modes, n_layers, pad_fraction, posture, n_posture, medium_encoding, motion,
            operator_stride, rod_stride, init_from}`` (``motion``: ``direct`` or ``rft``,
            :data:`owjax.surrogate.fno.MOTIONS`; the strides: :class:`~owjax.surrogate.fno.BodyFNO`;
            ``init_from``: a saved surrogate's stem, or ``shipped``, to start from its weights and
            posture decoder instead of a random operator — its architecture must match).
        train: ``{batch_size, stride, mirror_augment, novelty_k, novelty_quantile, bound}``
            (``mirror_augment``: half of every batch mirrored dorsal ↔ ventral, an exact symmetry of the body).
        loss_weights: ``{centroid, posture}``.
        seed: initialisation seed.
        info: facts for metrics.json (data cost, dataset settings).
    """

    validation_metric = "val_traj_rmse_body_lengths"

    def __init__(self, data: Mapping, model: Mapping, train: Mapping, loss_weights: Mapping, seed: int = 0,
                 info: Mapping | None = None):
        self.data = dict(data)
        self.hp = dict(model)
        self.train_cfg = dict(train)
        self.w_c = float(loss_weights.get("centroid", 1.0))
        self.w_p = float(loss_weights.get("posture", 0.25))
        tr = self.data["train"]
        if len(tr["activation"]) < 2:
            raise ValueError(f"the training split has {len(tr['activation'])} sample(s); generate more data")
        self.stride = int(self.train_cfg.get("stride", 2))
        self.mirror = bool(self.train_cfg.get("mirror_augment", True))
        self.batch_size = min(int(self.train_cfg.get("batch_size", 32)), len(tr["activation"]))
        self.t_fine = np.asarray(tr["t_s"], np.float64)
        self.t_coarse = self.t_fine[::self.stride]
        self.medium_encoding = str(self.hp.get("medium_encoding", "linear"))
        n_input_channels(self.medium_encoding)  # raises naming the allowed encodings
        kind, n_post = str(self.hp.get("posture", "angles")), int(self.hp.get("n_posture", 12))
        self.motion = str(self.hp.get("motion", "direct"))
        if self.motion not in MOTIONS:
            raise ValueError(f"unknown model.motion {self.motion!r}; allowed: {list(MOTIONS)}")
        if self.motion == "rft" and kind != "eigenworms":
            raise ValueError("model.motion=rft needs model.posture=eigenworms (its mean-angle channel carries the "
                             f"turning-rate correction), got model.posture={kind!r}")
        self.operator_stride = int(self.hp.get("operator_stride") or 1)
        self.rod_stride = int(self.hp.get("rod_stride") or 1)
        # the operator's own time step: kept there on other grids (BodyFNO.on_grid)
        self.operator_dt_s = float(self.t_coarse[1] - self.t_coarse[0]) * self.operator_stride \
            if self.operator_stride > 1 else None
        self.init_from = self.hp.get("init_from") or None
        self._init_leaves = None
        if self.init_from is not None:
            self.decoder, self._init_leaves = self._load_init(str(self.init_from), kind)
        else:
            basis = _basis(kind, n_post, tr["tangent_angle_rad"][:, ::self.stride])
            coef = tr["tangent_angle_rad"].reshape(-1, 48) @ np.linalg.pinv(basis).T
            c_scale = float(np.std(tr["centroid_mm"])) + 1e-3
            self.decoder = PostureDecoder(basis, c_scale, coef.std(0) + 1e-3, kind)
        # the strides are checked here, before any training (BodyFNO raises naming what is allowed)
        BodyFNO(self._fno(jax.random.PRNGKey(0)), self.decoder, self.medium_encoding, self.motion,
                self.operator_stride, self.rod_stride)
        # coarse training arrays (host side; batches are gathered here)
        self._act = tr["activation"][:, ::self.stride].astype(np.float32)
        self._med = tr["medium"].astype(np.float32)
        self._c = tr["centroid_mm"][:, ::self.stride].astype(np.float32)
        self._th = tr["tangent_angle_rad"][:, ::self.stride].astype(np.float32)
        self._t = jnp.asarray(self.t_coarse, jnp.float32)
        self._treedef = None
        self.seed = int(seed)
        self.data_description = (f"owjax body (BBC 2012 rod model) runs: {len(tr['activation'])} training samples, "
                                 f"{self.t_fine[-1]:g} s, data dt {self.t_fine[1]:g} s, trained on dt "
                                 f"{self.t_coarse[1]:g} s")
        self.loss_description = (f"{self.w_c} · mean |Δcentroid|² / L² + {self.w_p} · mean Δθ² (48 tangent angles, rad)")
        self.info = {"posture": kind, "n_posture": n_post, **dict(info or {})}
        self._report: dict = {}

    # ------------------------------------------------------------------ the model
    def _load_init(self, stem: str, kind: str):
        """The posture decoder and operator weights of the saved surrogate ``stem`` (``shipped``: the
        packaged one), after checking that its architecture is the one configured."""
        sur = BodySurrogate.load(None if stem == "shipped" else stem, ensemble=False)
        have = model_hyperparameters(sur.model)
        want = {"width": int(self.hp.get("width", 32)), "modes": int(self.hp.get("modes", 24)),
                "n_layers": int(self.hp.get("n_layers", 4)), "pad_fraction": float(self.hp.get("pad_fraction", 0.25)),
                "n_posture": int(self.hp.get("n_posture", 12)), "medium_encoding": self.medium_encoding,
                "motion": self.motion}
        diff = {k: (v, have[k]) for k, v in want.items() if have[k] != v}
        if sur.model.decoder.kind != kind:
            diff["posture"] = (kind, sur.model.decoder.kind)
        if diff:
            raise ValueError(f"model.init_from={stem!r}: its architecture differs from the configured one "
                             f"(key: (configured, saved)): {diff}")
        return sur.model.decoder, [jnp.asarray(v, jnp.float32) for v in jax.tree_util.tree_leaves(sur.model.fno)]

    def _fno(self, key) -> FNO1d:
        h = self.hp
        return FNO1d(n_input_channels(self.medium_encoding), 2 + self.decoder.n_posture, int(h.get("width", 32)),
                     int(h.get("modes", 24)), int(h.get("n_layers", 4)), float(h.get("pad_fraction", 0.25)), key=key)

    def model(self, params) -> BodyFNO:
        """The :class:`BodyFNO` of flat parameters ``params``."""
        if self._treedef is None:
            self._treedef = jax.tree_util.tree_structure(self._fno(jax.random.PRNGKey(0)))
        leaves = [params[k] for k in sorted(params)]
        return BodyFNO(jax.tree_util.tree_unflatten(self._treedef, leaves), self.decoder, self.medium_encoding,
                       self.motion, self.operator_stride, self.rod_stride, self.operator_dt_s)

    def describe(self) -> str:
        h = self.hp
        n = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(self._fno(jax.random.PRNGKey(0))))
        return (f"BodyFNO: width {h.get('width', 32)}, modes {h.get('modes', 24)}, {h.get('n_layers', 4)} Fourier "
                f"layers, posture {self.decoder.kind} × {self.decoder.n_posture}; {n} weights; operator stride "
                f"{self.operator_stride}, rod stride {self.rod_stride}"
                + (f"; started from {self.init_from}" if self.init_from else ""))

    # ------------------------------------------------------------------ protocol
    def init(self, key):
        leaves = (self._init_leaves if self._init_leaves is not None else
                  jax.tree_util.tree_leaves(self._fno(jax.random.fold_in(jax.random.PRNGKey(self.seed), 1))))
        self._treedef = None
        return {f"w{i:03d}": jnp.asarray(v, jnp.float32) for i, v in enumerate(leaves)}

    def batches(self, step, key):
        seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(self._act), self.batch_size, replace=False)
        act, c, th = self._act[idx], self._c[idx].copy(), self._th[idx].copy()
        if self.mirror:
            # the body is mirror-symmetric (tests/test_body.py): swapping dorsal and ventral activation
            # reflects the trajectory across the x axis (y → −y, θ → −θ)
            flip = rng.uniform(size=self.batch_size) < 0.5
            act = np.where(flip[:, None, None, None], act[:, :, ::-1], act)
            sign = np.where(flip, -1.0, 1.0).astype(np.float32)
            c[..., 1] *= sign[:, None]
            th *= sign[:, None, None]
        return {"activation": act, "medium": self._med[idx], "centroid_mm": c, "tangent_angle_rad": th}

    def loss(self, params, batch, key):
        model = self.model(params)
        c, th = jax.vmap(model, in_axes=(None, 0, 0))(self._t, batch["activation"], batch["medium"])
        lc = jnp.mean(jnp.sum((c - batch["centroid_mm"]) ** 2, -1))  # mm² = L² (L = 1 mm)
        lp = jnp.mean((th - batch["tangent_angle_rad"]) ** 2)
        return self.w_c * lc + self.w_p * lp, {"centroid": lc, "posture": lp}

    def validate(self, params, key) -> dict[str, float]:
        v = self.data["val"]
        c, th = predict_batch(self.model(params), self.t_coarse, v["activation"][:, ::self.stride], v["medium"])
        e = trajectory_errors(c, th, v["centroid_mm"][:, ::self.stride], v["tangent_angle_rad"][:, ::self.stride])
        return {"val_traj_rmse_body_lengths": float(np.mean(e["traj_rmse_body_lengths"])),
                "val_posture_rmse_rad": float(np.mean(e["posture_rmse_rad"]))}

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, model, ds: Mapping, stride: int) -> dict:
        t = self.t_fine[::stride]
        fams = np.asarray(ds["families"])[ds["family"]]
        c, th = predict_batch(model, t, ds["activation"][:, ::stride], ds["medium"])
        return compare(t, c, th, ds["centroid_mm"][:, ::stride], ds["tangent_angle_rad"][:, ::stride], fams,
                       np.isin(fams, _GAIT_FAMILIES))

    #: the training error is reported on at most this many training samples (a seeded draw): predicting
    #: and comparing all of 30 seeds' 46 000 samples at once needed > 24 GB of memory
    N_TRAIN_REPORT = 4096

    def _train_subset(self) -> dict:
        tr = self.data["train"]
        n = len(tr["activation"])
        if n <= self.N_TRAIN_REPORT:
            return tr
        idx = np.sort(np.random.default_rng(self.seed).choice(n, self.N_TRAIN_REPORT, replace=False))
        return {k: (v[idx] if isinstance(v, np.ndarray) and v.ndim and len(v) == n and k != "t_s" else v)
                for k, v in tr.items()}

    def surrogate(self, params, bound: float | None = None) -> tuple[BodySurrogate, dict]:
        """The trained :class:`BodySurrogate` with its novelty estimator calibrated on the validation
        split (fine grid), and the calibration facts."""
        tr, va = self.data["train"], self.data["val"]
        model = self.model(params)
        nov = NoveltyEstimator.fit(latent_batch(model, self.t_fine, tr["activation"], tr["medium"]),
                                   k=int(self.train_cfg.get("novelty_k", 5)))
        ind = indicators(model, self.t_fine, va["activation"], va["medium"])
        err = trajectory_errors(ind["centroid_mm"], ind["tangent_angle_rad"], va["centroid_mm"],
                                va["tangent_angle_rad"])["traj_rmse_body_lengths"]
        cal = nov.calibrate(ind["latent"], ind["mirror_gap_mm"], err, float(self.train_cfg.get("novelty_quantile", 0.9)))
        settings = {"duration_s": float(self.t_fine[-1]), "dt_data_s": float(self.t_fine[1]),
                    "dt_train_s": float(self.t_coarse[1]),
                    "hyperparameters": model_hyperparameters(model)}
        b = float(bound if bound is not None else self.train_cfg.get("bound", 0.15))
        return BodySurrogate(model, nov, settings, b), {"calibration": cal}

    def fallback_stats(self, sur: BodySurrogate, ds: Mapping) -> dict:
        """How often ``auto`` falls back on ``ds`` and how often it should (true error > bound)."""
        ind = indicators(sur.model, self.t_fine, ds["activation"], ds["medium"])
        est = sur.estimate_from_indicators(self.t_fine, ds["activation"], ds["medium"], ind)
        err = trajectory_errors(ind["centroid_mm"], ind["tangent_angle_rad"], ds["centroid_mm"],
                                ds["tangent_angle_rad"])["traj_rmse_body_lengths"]
        return {**_fallback(est, err, sur.bound), "error_estimate_spearman": _spearman(est, err)}

    def report(self, params_init, params, run_dir: Path, figures: bool) -> dict:
        t0 = time.perf_counter()
        model = self.model(params)
        out = {}
        sets = {"test_coarse": (self.data["test"], self.stride), "test_fine": (self.data["test"], 1),
                "ood_fine": (self.data["ood"], 1), "train_coarse": (self._train_subset(), self.stride)}
        per = {}
        for name, (ds, stride) in sets.items():
            if len(ds.get("activation", [])) == 0:
                continue
            r = self._evaluate(model, ds, stride)
            per[name] = r.pop("_per_sample")
            out[name] = r
        sur, cal = self.surrogate(params)
        out["fallback"] = {"bound_body_lengths": sur.bound, **cal,
                           "test": self.fallback_stats(sur, self.data["test"]),
                           "ood": self.fallback_stats(sur, self.data["ood"])}
        head = {}
        for key, src in (("traj_rmse_body_lengths", "test_fine"), ("speed_rel_err", "test_fine"),
                         ("wavelength_rel_err", "test_fine"), ("frequency_rel_err", "test_fine")):
            head[key] = out.get(src, {}).get(key)
        head["traj_rmse_body_lengths_coarse"] = out.get("test_coarse", {}).get("traj_rmse_body_lengths")
        head["ood_traj_rmse_body_lengths"] = out.get("ood_fine", {}).get("traj_rmse_body_lengths")
        head["ood_speed_rel_err"] = out.get("ood_fine", {}).get("speed_rel_err")
        head["ood_wavelength_rel_err"] = out.get("ood_fine", {}).get("wavelength_rel_err")
        head["fallback_precision"] = out["fallback"]["ood"]["fallback_precision"]
        head["fallback_recall"] = out["fallback"]["ood"]["fallback_recall"]
        out = {**head, "sets": out, "report_s": round(time.perf_counter() - t0, 1)}
        self._surrogate = sur
        self._report = json.loads(json.dumps(out, default=float))
        if figures:
            self._figures(model, run_dir)
        return self._report

    def _figures(self, model, run_dir: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from owjax.core.checkpoint import atomic_savefig

        fig, axes = plt.subplots(2, 4, figsize=(13, 6))
        for row, (name, ds) in enumerate((("test", self.data["test"]), ("OOD", self.data["ood"]))):
            n = min(4, len(ds.get("activation", [])))
            if n == 0:
                continue
            fams = np.asarray(ds["families"])[ds["family"]]
            c, th = predict_batch(model, self.t_fine, ds["activation"][:n], ds["medium"][:n])
            for j in range(n):
                ax = axes[row, j]
                ax.plot(ds["centroid_mm"][j, :, 0], ds["centroid_mm"][j, :, 1], "k", lw=1.5, label="physics")
                ax.plot(c[j, :, 0], c[j, :, 1], "C1--", lw=1.5, label="surrogate (fine grid)")
                ax.set_title(f"{name}: {fams[j]}, m={ds['medium'][j]:.2f}", fontsize=8)
                ax.set_aspect("equal", "datalim")
                ax.set_xlabel("x (mm)", fontsize=7)
            axes[row, 0].legend(fontsize=7)
        fig.suptitle("centroid tracks, 5 s: owjax body vs FNO surrogate")
        fig.tight_layout()
        atomic_savefig(fig, run_dir / "tracks.png", dpi=90)
        plt.close(fig)

    def save_outputs(self, params, run_dir: Path, provenance, metadata) -> None:
        sur = getattr(self, "_surrogate", None) or self.surrogate(params)[0]
        prov = {"experiment": metadata.get("experiment"), "date": metadata.get("date"),
                "git_commit": metadata.get("git_commit"), "n_steps": metadata.get("n_steps"),
                "final_loss": metadata.get("final_loss"), "data": self.data_description,
                "loss": self.loss_description, "dataset": self.info.get("dataset"),
                "command": self.info.get("command"), "config": metadata.get("config")}
        sur.settings["metrics"] = self._report
        sur.save(Path(run_dir) / "surrogate", provenance=prov)
        ship_to = getattr(self, "ship_to", None)
        if ship_to is not None:  # ship=true: the packaged surrogate (owjax/data/surrogate/)
            sur.save(ship_to, provenance=prov)

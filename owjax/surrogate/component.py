"""The body surrogate at run time: predict a trajectory from activations, estimate the error of each
prediction, and fall back to the physics by itself where the estimate exceeds the bound.

:class:`BodySurrogate` holds a trained :class:`~owjax.surrogate.fno.BodyFNO`, its novelty estimator
and the settings it was trained with. ``predict(t_s, activation, medium, backend=...)``:

* ``backend="surrogate"`` — the FNO only (flagged where the estimate exceeds the bound);
* ``backend="physics"`` — owjax's body (:class:`owjax.surrogate.data.PhysicsRunner`);
* ``backend="auto"`` (default) — the FNO, except for the samples whose estimated error exceeds
  ``bound`` (DD017: 0.15) or whose time grid or medium lies outside what the surrogate was trained
  on: those are run with the physics, logged (``owjax.surrogate`` logger, WARNING) and flagged in
  the result (``fell_back``, ``reasons``).

It is not an :class:`~owjax.core.component.AbstractComponent`: an operator maps a whole activation
history to a whole trajectory, it has no state and vector field to integrate.

**Error estimate** (:class:`NoveltyEstimator`): two signs that an input is unlike the training
data — the distance of the operator's own summary of the input (:meth:`BodyFNO.latent
<owjax.surrogate.fno.BodyFNO.latent>`) from its k nearest training inputs, and the *mirror gap*, how
far the prediction is from the mirror image of the prediction for the dorsal ↔ ventral mirrored
input (the body is exactly mirror-symmetric and the operator is trained to be; away from the data
it is not) — combined by a log-linear fit to the true errors of the validation set and raised to
its 90 % quantile. The estimate is in body lengths, like the trajectory error it bounds.

**Ensemble members** (used by default when a model has any; the shipped surrogate has three): other trained operators whose
centroid predictions are compared with the primary's; member j's disagreement d_j (RMS over time of
the centroid difference, body lengths) is scaled by α_j, the 0.9 quantile of true error / d_j on
held-out validation data, and the error estimate is the largest of the novelty estimate and the
α_j d_j. They make the fallback catch more of the inputs the novelty estimate ranks as familiar
(experiments/body_surrogate/ensemble_fallback.py). Each costs one more operator evaluation per call.
Since ``auto`` computes their predictions anyway, it also returns the mean of the primary's and
those of the members marked ``in_mean`` (chosen on held-out validation data:
experiments/body_surrogate/ensemble_mean.py); ``backend="surrogate"`` returns the primary's alone.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from owjax.surrogate import families as F

log = logging.getLogger("owjax.surrogate")

__all__ = ["BodySurrogate", "NoveltyEstimator", "SurrogateResult", "indicators", "model_hyperparameters", "BACKENDS",
           "DEFAULT_BOUND", "SHIPPED", "SurrogateInputError"]

BACKENDS = ("surrogate", "physics", "auto")
#: DD017: beyond this estimated error (trajectory RMSE in body lengths) the physics runs instead
DEFAULT_BOUND = 0.15
SHIPPED = Path(__file__).resolve().parents[1] / "data" / "surrogate" / "body_fno"


class SurrogateInputError(ValueError):
    """An input of the wrong shape, range or type."""


# ----------------------------------------------------------------------------- the error estimate
def _mirror(activation: np.ndarray) -> np.ndarray:
    """Dorsal ↔ ventral swap of (B, T, 2, 24) activations (the body's mirror symmetry)."""
    return np.asarray(activation)[:, :, ::-1]


def indicators(model, t_s: np.ndarray, activation: np.ndarray, medium: np.ndarray) -> dict:
    """What the error estimate reads, with the prediction it comes with.

    Returns:
        ``centroid_mm`` (B, T, 2), ``tangent_angle_rad`` (B, T, 48): the surrogate's prediction;
        ``latent`` (B, 2·width): :meth:`~owjax.surrogate.fno.BodyFNO.latent`;
        ``mirror_gap_mm`` (B,): RMS over time of |c(x) − R c(M x)| — the prediction against the mirror
        image of the prediction for the mirrored input (zero for an exactly equivariant operator).
    """
    from owjax.surrogate.evaluate import latent_batch, predict_batch

    c, th = predict_batch(model, t_s, activation, medium)
    cm, _ = predict_batch(model, t_s, _mirror(activation), medium)
    cm = cm * np.array([1.0, -1.0])
    gap = np.sqrt(np.mean(np.sum((c - cm) ** 2, -1), -1))
    return {"centroid_mm": c, "tangent_angle_rad": th, "latent": latent_batch(model, t_s, activation, medium),
            "mirror_gap_mm": gap}


@dataclass
class NoveltyEstimator:
    """Estimated trajectory error (body lengths) of a prediction:

        log ê = a + b · log d + c · log g + z · σ

    with d the mean distance from the input's latent summary to its ``k`` nearest training inputs
    (standardised), g the mirror gap (mm), (a, b, c) fitted by least squares to the log errors of a
    held-out (validation) set, σ the residual standard deviation there and z the normal quantile of
    ``quantile`` (0.9: the estimate exceeds the true error for about 90 % of held-out inputs).

    Attributes:
        train_features: (N, F) standardised latent summaries of training inputs.
        mean, std: (F,) standardisation.
        k: neighbours.
        coef: (a, b, c).
        sigma: residual standard deviation of log error (held-out set).
        quantile: calibration quantile.
    """

    train_features: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    k: int = 5
    coef: tuple = (0.0, 1.0, 0.0)
    sigma: float = 0.0
    quantile: float = 0.9

    @classmethod
    def fit(cls, train_features: np.ndarray, k: int = 5, max_points: int = 2000, seed: int = 0) -> NoveltyEstimator:
        """Standardise and keep (at most ``max_points`` of) the training inputs' latent summaries."""
        f = np.asarray(train_features, np.float64)
        if len(f) > max_points:
            f = f[np.random.default_rng(seed).choice(len(f), max_points, replace=False)]
        mean, std = f.mean(0), f.std(0) + 1e-6
        return cls(((f - mean) / std).astype(np.float32), mean, std, int(k))

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Mean Euclidean distance (standardised units) to the k nearest training inputs (B,)."""
        z = (np.asarray(features, np.float64) - self.mean) / self.std
        tr = self.train_features.astype(np.float64)
        d2 = (z**2).sum(1)[:, None] + (tr**2).sum(1)[None] - 2 * z @ tr.T
        d = np.sqrt(np.maximum(d2, 0))
        d.sort(1)
        return d[:, :self.k].mean(1)

    def _design(self, features, gap_mm):
        d = self.distance(features)
        g = np.asarray(gap_mm, np.float64)
        return np.stack([np.ones_like(d), np.log(np.maximum(d, 1e-6)), np.log(np.maximum(g, 1e-5))], 1)

    def calibrate(self, features: np.ndarray, gap_mm: np.ndarray, errors: np.ndarray, quantile: float = 0.9) -> dict:
        """Fit (a, b, c) and σ on a held-out set's true errors (body lengths); returns the fit's facts."""
        from statistics import NormalDist

        x = self._design(features, gap_mm)
        y = np.log(np.maximum(np.asarray(errors, np.float64), 1e-6))
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        resid = y - x @ coef
        self.coef = tuple(float(v) for v in coef)
        self.sigma = float(np.std(resid))
        self.quantile = float(quantile)
        self._z = NormalDist().inv_cdf(quantile)
        return {"coef": list(self.coef), "sigma_log": self.sigma, "quantile": self.quantile,
                "r2_log": float(1 - np.var(resid) / max(np.var(y), 1e-12)), "n": int(len(y))}

    def estimate_differentiable(self, model, t_s, activation, medium):
        """The same estimate for one input (T, 2, 24), written in JAX so that it can be differentiated
        with respect to the activation (e.g. to keep an optimisation within the error bound).

        Returns:
            A scalar: estimated trajectory error (body lengths).
        """
        import jax.numpy as jnp
        from statistics import NormalDist

        feat = model.latent(t_s, activation, medium)
        z = (feat - jnp.asarray(self.mean, feat.dtype)) / jnp.asarray(self.std, feat.dtype)
        tr = jnp.asarray(self.train_features, feat.dtype)
        d = jnp.sqrt(jnp.maximum(jnp.sum((tr - z[None]) ** 2, -1), 1e-12))
        d = -jax.lax.top_k(-d, self.k)[0].mean()
        c, _ = model(t_s, activation, medium)
        cm, _ = model(t_s, activation[:, ::-1], medium)
        g = jnp.sqrt(jnp.mean(jnp.sum((c - cm * jnp.array([1.0, -1.0], c.dtype)) ** 2, -1)))
        a, b, cc = self.coef
        zq = NormalDist().inv_cdf(self.quantile)
        return jnp.exp(a + b * jnp.log(jnp.maximum(d, 1e-6)) + cc * jnp.log(jnp.maximum(g, 1e-5)) + zq * self.sigma)

    def estimate(self, features: np.ndarray, gap_mm: np.ndarray) -> np.ndarray:
        """Estimated trajectory error (body lengths) per input (B,)."""
        from statistics import NormalDist

        z = NormalDist().inv_cdf(self.quantile)
        return np.exp(self._design(features, gap_mm) @ np.asarray(self.coef) + z * self.sigma)


# ----------------------------------------------------------------------------- the runtime
@dataclass
class SurrogateResult:
    """A batch of predicted (or simulated) trajectories.

    Attributes:
        t_s: (T,) times (s).
        centroid_mm: (B, T, 2) centroid displacement from the start (mm).
        tangent_angle_rad: (B, T, 48) tangent angles head → tail (rad).
        backend: (B,) ``"surrogate"`` or ``"physics"`` — what produced each sample.
        error_estimate: (B,) estimated trajectory error of the surrogate (body lengths; NaN if not computed).
        fell_back: (B,) True where ``auto`` ran the physics instead of the surrogate.
        beyond_bound: (B,) True where the estimate exceeds the bound (flag, whatever the backend).
        reasons: per sample, why it fell back ("" if it did not).
        n_models: how many operators' predictions the surrogate's samples are the mean of (1: the
            primary's alone; 0: no sample is the surrogate's — the physics ran them all).
    """

    t_s: np.ndarray
    centroid_mm: np.ndarray
    tangent_angle_rad: np.ndarray
    backend: np.ndarray
    error_estimate: np.ndarray
    fell_back: np.ndarray
    beyond_bound: np.ndarray
    reasons: list = field(default_factory=list)
    n_models: int = 1

    def skeleton(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) (B, T, 49) mm (inextensible segments; see :func:`owjax.surrogate.data.skeleton_from_features`)."""
        from owjax.surrogate.data import skeleton_from_features

        return skeleton_from_features(self.centroid_mm, self.tangent_angle_rad)


class BodySurrogate:
    """A trained body surrogate with its error estimate and physics fallback.

    Arguments:
        model: :class:`~owjax.surrogate.fno.BodyFNO`.
        novelty: :class:`NoveltyEstimator`.
        settings: the JSON-able facts it was trained with (``duration_s``, ``dt_train_s``,
            ``dt_data_s``, hyperparameters, metrics, provenance).
        bound: fallback bound on the estimated trajectory error (body lengths; DD017 0.15).
    """

    def __init__(self, model, novelty: NoveltyEstimator, settings: dict, bound: float = DEFAULT_BOUND,
                 members: list | tuple = ()):
        if not (np.isfinite(bound) and bound > 0):
            raise ValueError(f"bound must be a positive number (body lengths), got {bound!r}")
        self.model = model
        self.novelty = novelty
        self.settings = dict(settings)
        self.bound = float(bound)
        #: ensemble members: (BodyFNO, α, description dict) — see the module docstring
        self.members = []
        for m in members:
            mod, alpha, info = m
            if not (np.isfinite(alpha) and alpha > 0):
                raise ValueError(f"ensemble member {info.get('name', '?')}: α must be a positive number, got {alpha!r}")
            self.members.append((mod, float(alpha), dict(info)))
        #: batches run by the physics are padded to this size (one compilation)
        self.physics_batch = 16

    # -------------------------------------------------------------- persistence
    def save(self, stem: str | Path, provenance: dict | None = None) -> tuple[Path, Path]:
        """Write ``STEM.npz`` (weights, decoder, novelty data) and ``STEM.json`` (settings + provenance)."""
        from owjax.core.checkpoint import atomic_write_json

        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        arrays = _model_arrays(self.model)
        d = self.model.decoder
        arrays.update(novelty_train=self.novelty.train_features, novelty_mean=self.novelty.mean,
                      novelty_std=self.novelty.std, novelty_coef=np.asarray(self.novelty.coef))
        for j, (mod, _, _) in enumerate(self.members):
            arrays.update(_model_arrays(mod, f"member{j}_"))
        npz = stem.with_suffix(".npz")
        tmp = stem.with_name(stem.name + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(npz)
        meta = {**self.settings, "bound": self.bound, "posture_kind": d.kind,
                "novelty": {"k": self.novelty.k, "sigma": self.novelty.sigma, "quantile": self.novelty.quantile,
                            "coef": list(self.novelty.coef)}}
        meta.pop("members", None)  # what is written is what is loaded: the members' weights go with them
        if self.members:
            meta["members"] = [{**info, "alpha": alpha, "hyperparameters": model_hyperparameters(mod),
                                "posture_kind": mod.decoder.kind} for mod, alpha, info in self.members]
        if provenance is not None:
            meta["provenance"] = provenance
        atomic_write_json(stem.with_suffix(".json"), meta)
        return npz, stem.with_suffix(".json")

    @classmethod
    def load(cls, stem: str | Path | None = None, bound: float | None = None,
             ensemble: bool | None = None) -> BodySurrogate:
        """Load ``STEM.npz``/``STEM.json`` (default: the shipped surrogate in owjax/data/surrogate/).

        Arguments:
            bound: the fallback's error bound (body lengths; default: the file's, DD017's 0.15).
            ensemble: load its ensemble members, so that the error estimate includes their
                disagreement (module docstring). ``None`` (default): if the file has any; ``True``:
                an error if it has none; ``False``: the primary's own estimate only. The members make
                the fallback catch more bad predictions — recall at the 0.15-L bound 0.66 → 0.92 on
                the fresh seed-2000 test ∪ OOD sets (0.77 → 0.94 on seed 1000), precision 0.44 →
                0.37 — at the price of more physics runs and one more operator evaluation per member
                per call (experiments/body_surrogate/README.md).
        """
        stem = Path(stem) if stem is not None else SHIPPED
        stem = stem.with_suffix("") if stem.suffix in (".npz", ".json") else stem
        npz, js = stem.with_suffix(".npz"), stem.with_suffix(".json")
        if not (npz.exists() and js.exists()):
            raise FileNotFoundError(f"no surrogate at {stem} (need {npz.name} and {js.name}); train one with "
                                    "python -m owjax.fit +experiment=body_surrogate")
        meta = json.loads(js.read_text())
        with np.load(npz) as z:
            arrays = {k: z[k] for k in z.files}
        model = _model_from_arrays(arrays, meta["hyperparameters"], meta["posture_kind"], "", npz)
        nv = meta["novelty"]
        novelty = NoveltyEstimator(arrays["novelty_train"], arrays["novelty_mean"], arrays["novelty_std"], int(nv["k"]),
                                   tuple(float(v) for v in arrays["novelty_coef"]), float(nv["sigma"]),
                                   float(nv["quantile"]))
        if ensemble is None:
            ensemble = bool(meta.get("members"))
        if ensemble and not meta.get("members"):
            raise ValueError(f"{js}: this surrogate has no ensemble members (attach them with "
                             "experiments/body_surrogate/ensemble_fallback.py --ship)")
        members = []
        for j, info in enumerate(meta.get("members", []) if ensemble else []):
            mod = _model_from_arrays(arrays, info["hyperparameters"], info["posture_kind"], f"member{j}_", npz)
            members.append((mod, float(info["alpha"]), {k: v for k, v in info.items()
                                                         if k not in ("alpha", "hyperparameters", "posture_kind")}))
        return cls(model, novelty, meta, bound if bound is not None else meta.get("bound", DEFAULT_BOUND), members)

    # -------------------------------------------------------------- checks
    def _check(self, t_s, activation, medium):
        t = np.asarray(t_s, np.float64)
        a = np.asarray(activation, np.float64)
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4 or a.shape[2] != 2 or a.shape[3] not in (F.N_MUSCLE_SEGMENTS, 2 * F.N_MUSCLE_SEGMENTS):
            raise SurrogateInputError(f"activation must have shape (B, T, 2, 24|48) or (T, 2, 24|48) (row 0 dorsal, "
                                      f"column 0 at the head), got {np.shape(activation)}")
        if a.shape[3] == 2 * F.N_MUSCLE_SEGMENTS:
            a = F.pool_segments(a)
        if t.ndim != 1 or t.size != a.shape[1]:
            raise SurrogateInputError(f"t_s must be (T,) with T = {a.shape[1]} (the activation's time axis), got {t.shape}")
        if t.size < 8 or abs(t[0]) > 1e-9 or np.any(np.diff(t) <= 0) or np.ptp(np.diff(t)) > 1e-6 * max(1.0, t[-1]):
            raise SurrogateInputError("t_s must start at 0 and be evenly spaced and increasing, with at least 8 times")
        if not np.all(np.isfinite(a)):
            raise SurrogateInputError("activation contains NaN or Inf")
        if a.min() < 0 or a.max() > 1:
            raise SurrogateInputError(f"activation must lie in [0, 1] (it is not clipped); got [{a.min():.4g}, "
                                      f"{a.max():.4g}]")
        m = np.broadcast_to(np.asarray(self._medium_numbers(medium), np.float64), (a.shape[0],)).copy()
        return t, a, m

    @staticmethod
    def _medium_numbers(medium):
        from owjax.body.media import resolve_medium

        items = medium if isinstance(medium, (list, tuple, np.ndarray)) else [medium]
        out = []
        for x in np.asarray(items, dtype=object).ravel():
            try:
                med = resolve_medium(float(x) if isinstance(x, (np.floating, np.integer)) else x)
            except ValueError as e:
                raise SurrogateInputError(str(e)) from None
            if med.value is None:
                raise SurrogateInputError(f"the surrogate (and its physics fallback) take media on the water–agar "
                                          f"line (a number in [0, 1], 'agar', 'water'); got {med.name}")
            out.append(med.value)
        return np.asarray(out) if isinstance(medium, (list, tuple, np.ndarray)) else out[0]

    def grid_reason(self, t: np.ndarray) -> str:
        """Why the surrogate cannot be trusted on this time grid ("" if it can)."""
        dur, dt = float(t[-1]), float(t[1] - t[0])
        d0 = float(self.settings["duration_s"])
        lo, hi = float(self.settings["dt_data_s"]) / 2, float(self.settings["dt_train_s"]) * 1.25
        if abs(dur - d0) > 1e-6 * d0 + dt / 2:
            return f"duration {dur:g} s differs from the trained {d0:g} s"
        if not lo <= dt <= hi:
            return f"time step {dt:g} s outside the validated [{lo:g}, {hi:g}] s"
        return ""

    # -------------------------------------------------------------- running
    def physics(self, t, a, m) -> tuple[np.ndarray, np.ndarray]:
        """The body itself on grid ``t`` (Tsit5, rtol = atol = 1e-5; float64 when JAX's 64-bit mode is on)."""
        import jax.numpy as jnp

        from owjax.body.integrate import BodySolver
        from owjax.surrogate.data import PhysicsRunner

        dtype = jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
        runner = PhysicsRunner.cached(float(t[-1]), float(t[1] - t[0]), BodySolver(rtol=1e-5, atol=1e-5), dtype,
                                      batch_size=self.physics_batch)
        res = runner(a, m)
        if not np.all(res["ok"]):
            raise RuntimeError(f"the body solve failed for {int(np.sum(~res['ok']))} sample(s)")
        return res["centroid_mm"], res["tangent_angle_rad"]

    def error_estimate(self, t_s, activation, medium) -> np.ndarray:
        """Estimated trajectory error (body lengths) of the surrogate for each input (B,)."""
        t, a, m = self._check(t_s, activation, medium)
        return self.estimate_from_indicators(t, a, m, indicators(self.model, t, a, m))

    def member_predictions(self, t: np.ndarray, a: np.ndarray, m: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each ensemble member's (centroid (B, T, 2) mm, tangent angles (B, T, 48) rad) on checked inputs."""
        from owjax.surrogate.evaluate import predict_batch

        return [predict_batch(mod, t, a, m) for mod, _, _ in self.members]

    def member_disagreement(self, t: np.ndarray, a: np.ndarray, m: np.ndarray, centroid_mm: np.ndarray,
                            predictions: list | None = None) -> np.ndarray:
        """(n_members, B): RMS over time of |member centroid − ``centroid_mm``| (body lengths); the
        members' ``predictions`` (:meth:`member_predictions`) are computed if not given."""
        from owjax.body.geometry import BODY_LENGTH_MM

        preds = self.member_predictions(t, a, m) if predictions is None else predictions
        out = [np.sqrt(np.mean(np.sum((c - centroid_mm) ** 2, -1), -1)) / BODY_LENGTH_MM for c, _ in preds]
        return np.asarray(out).reshape(len(self.members), len(a))

    def estimate_from_indicators(self, t: np.ndarray, a: np.ndarray, m: np.ndarray, ind: dict,
                                 member_predictions: list | None = None) -> np.ndarray:
        """The error estimate (B,) from :func:`indicators`' output on checked inputs: the novelty
        estimate, raised to the largest α_j · disagreement_j of the ensemble members (if any)."""
        est = self.novelty.estimate(ind["latent"], ind["mirror_gap_mm"])
        if self.members:
            alphas = np.asarray([alpha for _, alpha, _ in self.members])[:, None]
            d = self.member_disagreement(t, a, m, ind["centroid_mm"], member_predictions)
            est = np.maximum(est, np.max(alphas * d, 0))
        return est

    @property
    def averaged_members(self) -> list[int]:
        """The members whose predictions ``auto`` averages with the primary's (``in_mean`` in their
        description: chosen on held-out validation data, experiments/body_surrogate/ensemble_mean.py)."""
        return [j for j, (_, _, info) in enumerate(self.members) if info.get("in_mean")]

    def ensemble_mean(self, ind: dict, member_predictions: list) -> tuple[np.ndarray, np.ndarray, int]:
        """(centroid, tangent angles, number of models): the mean of the primary's prediction (``ind``)
        and those of the :attr:`averaged_members` (the primary's alone if there are none)."""
        idx = self.averaged_members
        cs = [ind["centroid_mm"]] + [member_predictions[j][0] for j in idx]
        ths = [ind["tangent_angle_rad"]] + [member_predictions[j][1] for j in idx]
        return np.mean(cs, 0), np.mean(ths, 0), len(cs)

    def predict(self, t_s, activation, medium, backend: str = "auto", average: bool | None = None) -> SurrogateResult:
        """Trajectories for activations (B, T, 2, 24|48) or (T, 2, 24|48) in [0, 1] on times ``t_s`` (s;
        from 0, evenly spaced) in ``medium`` (a number in [0, 1], 'agar', 'water', or one per sample).

        ``average``: the surrogate's trajectory is the mean of the primary's and the
        :attr:`averaged_members`' predictions, which ``auto`` computes anyway for its error estimate
        (None: for ``auto`` only; ``surrogate`` stays the fastest, the primary alone). On four fresh
        seeded test sets the mean of the shipped primary and its two 40 000-step members was 9.5–15 %
        closer to the physics on the track (experiments/body_surrogate/README.md; the wavelength error
        rose on two of them, 5.2 → 6.3 % and 4.3 → 5.1 %). The error estimate is the primary's either way.

        Raises:
            SurrogateInputError: wrong shapes, values outside [0, 1], NaN, a bad time grid or medium.
            ValueError: unknown backend.
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown surrogate backend {backend!r}; allowed: {list(BACKENDS)}")
        t, a, m = self._check(t_s, activation, medium)
        b = a.shape[0]
        est = np.full(b, np.nan)
        n_models = 0
        reasons = [""] * b
        use_physics = np.zeros(b, bool)
        if backend == "physics":
            use_physics[:] = True
        else:
            ind = indicators(self.model, t, a, m)
            preds = self.member_predictions(t, a, m) if self.members else []
            est = self.estimate_from_indicators(t, a, m, ind, preds)
            if average if average is not None else backend == "auto":
                c_sur, th_sur, n_models = self.ensemble_mean(ind, preds)
            else:
                c_sur, th_sur, n_models = ind["centroid_mm"], ind["tangent_angle_rad"], 1
            grid = self.grid_reason(t)
            for i in range(b):
                if grid:
                    reasons[i] = grid
                elif est[i] > self.bound:
                    reasons[i] = f"estimated error {est[i]:.3g} L > bound {self.bound:g} L"
            if backend == "auto":
                use_physics = np.array([bool(r) for r in reasons])
            elif grid:
                raise SurrogateInputError(f"backend='surrogate' on an unvalidated time grid: {grid}")
        c = np.zeros((b, t.size, 2))
        th = np.zeros((b, t.size, 2 * F.N_MUSCLE_SEGMENTS))
        sur = ~use_physics
        if sur.any():
            c[sur], th[sur] = c_sur[sur], th_sur[sur]
        if use_physics.any():
            c[use_physics], th[use_physics] = self.physics(t, a[use_physics], m[use_physics])
        fell_back = use_physics if backend == "auto" else np.zeros(b, bool)
        if fell_back.any():
            log.warning("surrogate: %d of %d sample(s) run with the physics instead (%s)", int(fell_back.sum()), b,
                        "; ".join(sorted({r for r in reasons if r}))[:300])
        beyond = np.isfinite(est) & (est > self.bound)
        if backend == "surrogate" and beyond.any():
            log.warning("surrogate: %d of %d prediction(s) beyond the error bound (backend='surrogate': no fallback)",
                        int(beyond.sum()), b)
        return SurrogateResult(t, c, th, np.where(use_physics, "physics", "surrogate"), est, fell_back, beyond,
                               [r if fb else "" for r, fb in zip(reasons, fell_back)],
                               n_models if sur.any() else 0)


# ----------------------------------------------------------------------------- weights on disk
def model_hyperparameters(model) -> dict:
    """A BodyFNO's constructor arguments, medium encoding, motion and strides, as saved in the JSON (``hyperparameters``)."""
    f = model.fno
    return {"in_channels": int(f.in_channels), "out_channels": int(f.out_channels),
            "width": int(f.width), "modes": int(f.modes), "n_layers": int(f.n_layers),
            "pad_fraction": float(f.pad_fraction), "medium_encoding": model.medium_encoding,
            "motion": model.motion, "n_posture": int(model.decoder.n_posture),
            "operator_stride": int(model.operator_stride), "rod_stride": int(model.rod_stride),
            "operator_dt_s": None if model.operator_dt_s is None else float(model.operator_dt_s)}


def _model_arrays(model, prefix: str = "") -> dict:
    """A BodyFNO's weights and decoder as named arrays (``prefix`` for ensemble members)."""
    d = model.decoder
    arrays = {f"{prefix}fno_{i:03d}": np.asarray(v, np.float32) for i, v in enumerate(jax.tree_util.tree_leaves(model.fno))}
    arrays.update({f"{prefix}basis": np.asarray(d.basis), f"{prefix}centroid_scale_mm": np.asarray(d.centroid_scale_mm),
                   f"{prefix}posture_scale": np.asarray(d.posture_scale)})
    return arrays


def _model_from_arrays(arrays: dict, h: dict, posture_kind: str, prefix: str, where) -> "BodyFNO":  # noqa: F821
    """The BodyFNO saved by :func:`_model_arrays` under ``prefix``."""
    from owjax.surrogate.fno import FNO1d, BodyFNO, PostureDecoder

    skeleton = FNO1d(h["in_channels"], h["out_channels"], h["width"], h["modes"], h["n_layers"], h["pad_fraction"],
                     key=jax.random.PRNGKey(0))
    leaves, treedef = jax.tree_util.tree_flatten(skeleton)
    names = [f"{prefix}fno_{i:03d}" for i in range(len(leaves))]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(f"{where}: lacks the weights {missing[:3]}{'…' if len(missing) > 3 else ''}")
    for n, a in zip(names, leaves):
        if a.shape != arrays[n].shape:
            raise ValueError(f"{where}: weight shapes do not match its hyperparameters ({a.shape} vs {arrays[n].shape})")
    fno = jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(arrays[n]) for n in names])
    dec = PostureDecoder(arrays[f"{prefix}basis"], arrays[f"{prefix}centroid_scale_mm"],
                         arrays[f"{prefix}posture_scale"], posture_kind)
    return BodyFNO(fno, dec, h.get("medium_encoding", "linear"), h.get("motion", "direct"),
                   int(h.get("operator_stride", 1)), int(h.get("rod_stride", 1)), h.get("operator_dt_s"))

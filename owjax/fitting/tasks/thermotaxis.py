"""``thermotaxis``: train the c302 head circuit, closed loop, so that worms migrate to and track
their cultivation temperature (issue 17).

Model (:mod:`owjax.navigation`): arena (a linear thermal gradient) → the shipped AFD GRU transducer
(its slow adaptation filter starts at the cultivation temperature T_c) → current into AFDL/R → the
graded reduction of c302 C1's head circuit (:data:`~owjax.navigation.circuit.HEAD_CELLS`) → neck
steering (SMD/RMD dorsal − ventral) and pirouette drive (AVA − AVB) → navigation body → position.
One :func:`owjax.core.solve.solve_ys` (forward Euler at the circuit's Δ, i.e. exponential Euler for
the circuit), vmapped over a batch of worms; gradients by backpropagation through the whole episode
(diffrax's recursive checkpointing: memory ∝ log of the steps).

Trained (:mod:`owjax.navigation.params`): every existing c302 connection's weight (positive,
≤ ``weight_max_factor`` × c302's; sign = c302's reversal potential, held), every connection's
threshold ``vth_mV`` in (−70, 0) mV, a tonic bias per cell in ±``bias_max_pA``, the AFD drive's
gain/offset and the two motor read-outs. Per step: ``n_worms`` worms, random start positions on the
plate and headings, T_c cycling through ``cultivation_temps_c``, fresh body noise.

Loss: ``track`` = mean over worms and over t ≥ ``score_after_s`` of log cosh((T(t) − T_c)/``band_c``)
(T at the centroid); ``reg`` = mean ρ² (log-weight change, pulls towards c302's weights).

Report (``metrics.json``): for the initial and the trained circuit, on the held-out evaluation field
(another gradient, other start positions and noise), per T_c: thermotaxis index, isothermal
fraction, mean/sd final temperature; for the trained circuit the same with AFD, AIY and AIZ killed
(never trained on); weight movement (per-connection factor w/w_c302) and the connections that
moved most; figures of the tracks. ``ship=true`` copies the trained values to
``owjax/data/thermotaxis/head_circuit.{npz,json}`` (what ``+scenario=thermotaxis`` loads).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from owjax.fitting.task import AbstractFitTask
from owjax.fitting.tasks.base import AbstractExperiment, section

log = logging.getLogger("owjax.thermotaxis")

__all__ = ["Thermotaxis", "ThermotaxisTask", "ABLATIONS", "LOSS_TERMS", "moving_away"]

#: the loss terms (``loss.weights``; a term left out has weight 1, ``away`` 0)
LOSS_TERMS = ("track", "away", "reg")

#: the 1995 ablations (Mori & Ohshima): AFD → athermotactic, AIY → cryophilic, AIZ → thermophilic
ABLATIONS = {"AFD": ("AFDL", "AFDR"), "AIY": ("AIYL", "AIYR"), "AIZ": ("AIZL", "AIZR")}

_CIRCUIT = ("parameter_set", "dt_ms", "weight_max_factor", "bias_max_pA", "vth_init_mV")
_CIRCUIT_OPTIONAL = ("weight_scale", "tau_init_ms", "init_from", "polarity", "p_exc_init")
_READOUT = ("afd_gain_pA", "afd_offset_pA", "steer_gain", "reversal_gain", "reversal_threshold_mV")
_READOUT_OPTIONAL = ("afd_phasic",)
_EPISODE = ("duration_s", "dt_out_s", "n_worms", "cultivation_temps_c", "score_after_s", "band_c")
_EPISODE_OPTIONAL = ("pirouette_rate",)
_EVAL = ("n_worms", "duration_s", "seed", "window_s", "ablations", "fields")


class ThermotaxisTask(AbstractFitTask):
    """The minibatch BPTT task (see the module docstring)."""

    def __init__(self, cfg: Mapping, seed: int):
        from owjax.navigation.setup import BODY_KEYS, CULTIVATION_MEMORY_TAU_S, field_from_config, make_loop

        self.circuit_cfg = section(cfg, "circuit", _CIRCUIT, _CIRCUIT + _CIRCUIT_OPTIONAL)
        self.readout = section(cfg, "readout", _READOUT, _READOUT + _READOUT_OPTIONAL)
        self.episode = section(cfg, "episode", _EPISODE, _EPISODE + _EPISODE_OPTIONAL)
        self.evaluation = section(cfg, "evaluation", _EVAL, _EVAL)
        self.body = section(cfg, "body", (), BODY_KEYS)
        arena = section(cfg, "arena", ("train",), ("train",))
        self.weights = {k: float(v) for k, v in ((cfg.get("loss") or {}).get("weights") or {}).items()}
        bad = sorted(set(self.weights) - set(LOSS_TERMS))
        if bad:
            raise ValueError(f"loss.weights: unknown term(s) {bad}; terms are {sorted(LOSS_TERMS)}")
        self.dtype = str(cfg.get("dtype", "float32"))
        tau = cfg.get("memory_tau_s", CULTIVATION_MEMORY_TAU_S)
        self.memory_tau_s = None if tau is None else float(tau)
        self.ship = bool(cfg.get("ship", False))
        self.seed = int(seed)
        self.field = field_from_config(arena["train"])
        e = self.episode
        if float(e["score_after_s"]) >= float(e["duration_s"]):
            raise ValueError(f"episode.score_after_s ({e['score_after_s']}) must be < duration_s ({e['duration_s']})")
        c = self.circuit_cfg
        self.afd_phasic, self.afd_phasic_from_file = self._afd_phasic()
        self.loop = make_loop(self.field, self.body, None, str(c["parameter_set"]), float(c["dt_ms"]), self.dtype,
                              duration_s=float(e["duration_s"]), memory_tau_s=self.memory_tau_s,
                              afd_phasic=self.afd_phasic)
        circ = self.loop["circuit"]
        self.w_c302 = circ.weight
        self.tau_c302_ms = float(np.max(1.0 / np.asarray(circ.k_per_ms)))  # c302: 40 ms for every connection
        self.synapse_names, self.cell_names = circ.synapse_names, circ.cell_names
        self.polarity, self.polarity_classes, self.p_exc_init = self._polarity(circ)
        self.data_description = (f"closed-loop episodes on {type(self.field).__name__} "
                                 f"({dict(arena['train'])}), T_c in {list(e['cultivation_temps_c'])}")
        self.loss_description = ("track · mean log cosh((T_centroid − T_c)/band) after score_after_s + away · "
                                 "(pirouette drive towards T_c − away from it, at a set mean rate) + reg · "
                                 "mean ρ² (log-weight change)")
        self.info = {"cells": list(self.cell_names), "n_connections": len(self.synapse_names),
                     "n_gap_junctions": len(circ.gap_names), "circuit": f"graded reduction of c302 "
                     f"{c['parameter_set']}, Δ = {c['dt_ms']} ms"}

    def _afd_phasic(self):
        """``(AFD's phasic channel or None, whether it comes from circuit.init_from)``: a saved circuit that
        has the channel keeps it (and ``readout.afd_phasic`` is then ignored, with a warning); otherwise
        ``readout.afd_phasic`` (``null``: none; ``{gain_pA, tau_fast_s, tau_slow_s}``: its start)."""
        from owjax.navigation.params import afd_phasic_from_values, phasic_raw

        given = self.readout.get("afd_phasic")
        if given is not None:
            given = {k: float(v) for k, v in dict(given).items()}
            phasic_raw(given)  # the keys and bounds checked here, with a clear error
        where = self.circuit_cfg.get("init_from")
        if where:
            saved = afd_phasic_from_values(self._saved_values(str(where)))
            if saved is not None:
                if given is not None:
                    log.warning("readout.afd_phasic is ignored: circuit.init_from has its own phasic channel %s", saved)
                return saved, True
        return given, False

    @staticmethod
    def _saved_path(where: str) -> Path:
        """The file ``circuit.init_from`` names: ``shipped`` (the package's) or a path."""
        from owjax.navigation.params import DEFAULT_DATA

        return DEFAULT_DATA if where == "shipped" else Path(where).expanduser()

    def _saved_values(self, where: str) -> dict:
        from owjax.navigation.params import load_values

        return load_values(self._saved_path(where))

    def _polarity(self, circ):
        """``(rule, classes per connection or None, starting p_exc or None)`` from ``circuit.polarity``
        (``c302``, the default: c302's signs, fixed; ``transmitter``: the synapse_polarity prior,
        :mod:`owjax.navigation.polarity`) and ``circuit.p_exc_init`` (``c302``, the default: a free
        connection starts at c302's sign, p = 0.9 or 0.1; or a number in (0, 1) for all free ones)."""
        from owjax.navigation.polarity import FREE, c302_p_exc, check_polarity, connection_classes

        c = self.circuit_cfg
        rule = check_polarity(str(c.get("polarity") or "c302"))
        init = c.get("p_exc_init")
        if rule == "c302":
            if init is not None:
                raise ValueError("circuit.p_exc_init is for circuit.polarity=transmitter (c302's signs are fixed)")
            return rule, None, None
        classes = connection_classes([circ.cell_names[i] for i in np.asarray(circ.pre)])
        if init is None or init == "c302":
            p0 = np.where(c302_p_exc(circ.erev_mV) > 0.5, 0.9, 0.1)
        else:
            try:
                v = float(init)
            except (TypeError, ValueError):
                v = float("nan")
            if not 0.0 < v < 1.0:
                raise ValueError(f"circuit.p_exc_init={init!r}: 'c302' or a number in (0, 1)")
            p0 = np.full(len(classes), v)
        p0 = np.where(classes == FREE, p0, 0.5)  # fixed connections: ignored (their class fixes them)
        return rule, classes, p0

    def describe(self) -> str:
        return (f"thermotaxis: {len(self.synapse_names)} c302 connections (weights, thresholds), "
                f"{len(self.cell_names)} cell biases, AFD drive and motor read-outs")

    # ------------------------------------------------------------------ protocol
    def init(self, key):
        from owjax.navigation.params import init_raw

        c, r = self.circuit_cfg, self.readout
        if c.get("init_from"):
            return self.raw_from_file(str(c["init_from"]))
        return init_raw(len(self.cell_names), len(self.synapse_names), float(c["vth_init_mV"]),
                        float(r["afd_gain_pA"]), float(r["afd_offset_pA"]), float(r["steer_gain"]),
                        float(r["reversal_gain"]), float(r["reversal_threshold_mV"]), float(c["bias_max_pA"]),
                        dtype=jnp.dtype(self.dtype), tau_init_ms=c.get("tau_init_ms"),
                        tau_min_ms=self.tau_c302_ms, p_exc_init=self.p_exc_init, afd_phasic=self.afd_phasic)

    def raw_from_file(self, where: str) -> dict:
        """Raw parameters that start training from a saved circuit: ``where`` = ``shipped`` (the
        package's owjax/data/thermotaxis/head_circuit.npz) or a path written by ``save_values``. Its
        connections and cells must be this circuit's, and its values inside this experiment's bounds;
        its time constants (if it has them) are trained on, and so is its phasic channel; a circuit without
        one gets ``readout.afd_phasic``'s start when that is set."""
        from owjax.navigation.params import load_values, phasic_raw, raw_from_values

        path = self._saved_path(where)
        vals = load_values(path, self.synapse_names, self.cell_names)
        c = self.circuit_cfg
        raw = raw_from_values(vals, self.w_c302, float(c["weight_max_factor"]), float(c["bias_max_pA"]),
                              float(c.get("weight_scale", 1.0)), tau_min_ms=self.tau_c302_ms,
                              dtype=jnp.dtype(self.dtype), polarity_classes=self.polarity_classes)
        if self.afd_phasic is not None and not self.afd_phasic_from_file:
            raw |= phasic_raw(self.afd_phasic, jnp.dtype(self.dtype))
        log.info("training starts from %s (%s)", path, "time constants trained" if "tau" in raw else "c302's kinetics")
        return raw

    def values(self, params) -> dict:
        from owjax.navigation.params import values_from_raw

        return values_from_raw(params, self.w_c302, float(self.circuit_cfg["weight_max_factor"]),
                               float(self.circuit_cfg["bias_max_pA"]), float(self.circuit_cfg.get("weight_scale", 1.0)),
                               tau_min_ms=self.tau_c302_ms, polarity_classes=self.polarity_classes)

    def batches(self, step, key):
        from owjax.navigation.setup import draw_worms

        e = self.episode
        return draw_worms(key, int(e["n_worms"]), self.field, list(e["cultivation_temps_c"]), float(e["duration_s"]),
                          float(self.body.get("noise_dt_s", 1.0)), dtype=self.dtype)

    def loss(self, params, batch, key):
        from owjax.navigation.loop import simulate_worms
        from owjax.navigation.params import apply_values

        e = self.episode
        loop = apply_values(self.loop, self.values(params))
        w_away = self.weights.get("away", 0.0)
        save = ("body.pos", "body.heading", "circuit.V") if w_away else ("body.pos",)
        sol = simulate_worms(loop, batch["xy"], batch["heading"], batch["noise"], batch["tc"], float(e["duration_s"]),
                             float(e["dt_out_s"]), save=save)
        pos = sol.ys["body"]["pos"]
        temp = self.field(pos[..., 0], pos[..., 1])
        t = jnp.arange(temp.shape[1]) * float(e["dt_out_s"])
        mask = (t >= float(e["score_after_s"])).astype(temp.dtype)
        err = (temp - batch["tc"][:, None]) / float(e["band_c"])
        logcosh = jnp.abs(err) + jnp.log1p(jnp.exp(-2.0 * jnp.abs(err))) - jnp.log(2.0)
        track = jnp.sum(logcosh * mask[None, :]) / (jnp.sum(mask) * temp.shape[0])
        reg = jnp.mean(params["rho"] ** 2)
        terms = {"track": track, "reg": reg}
        if w_away:
            terms["away"] = self.away_loss(loop, sol.ys, batch["tc"], mask)
        value = sum(self.weights.get(k, 0.0 if k == "away" else 1.0) * v for k, v in terms.items())
        return value, terms

    def away_loss(self, loop, ys, tc, mask):
        """How much more often the circuit starts pirouettes when the worm crawls towards T_c than
        away from it: ``−(P̄_away − P̄_towards) + (P̄ − rate)²/rate²``, P̄ the pirouette drive averaged
        over the samples of each label (:func:`moving_away`, weighted by how far from T_c the worm is
        and how straight it crawls along the gradient; t ≥ ``score_after_s``) and ``rate`` =
        ``episode.pirouette_rate`` the mean drive wanted. A privileged, per-second training signal
        (the simulation knows where T_c lies; the worm does not): a biased random walk that
        pirouettes when moving away from T_c is the strategy that reaches it (the oracle of
        experiments/thermotaxis/policy_bounds.py); a drive that ignores AFD scores 0."""
        from owjax.navigation.loop import ReversalCommand

        rc = [c for c in loop.couplings if isinstance(c, ReversalCommand)][0]
        v = ys["circuit"]["V"]
        d = jnp.mean(v[..., jnp.asarray(rc.reverse)], -1) - jnp.mean(v[..., jnp.asarray(rc.forward)], -1)
        drive = jax.nn.sigmoid(rc.gain * (d - rc.threshold_mV) / 10.0)
        pos, heading = ys["body"]["pos"], ys["body"]["heading"]
        y, w = moving_away(self.field, pos, heading, tc[:, None], float(self.episode["band_c"]))
        w = w * mask[None, :]
        p_away = jnp.sum(w * y * drive) / jnp.maximum(jnp.sum(w * y), 1e-6)
        p_towards = jnp.sum(w * (1 - y) * drive) / jnp.maximum(jnp.sum(w * (1 - y)), 1e-6)
        rate = float(self.episode.get("pirouette_rate", 0.05))
        p_mean = jnp.sum(mask[None, :] * drive) / (jnp.sum(mask) * drive.shape[0])
        return -(p_away - p_towards) + ((p_mean - rate) / rate) ** 2

    # ------------------------------------------------------------------ report
    def evaluate(self, values: Mapping | None, run_dir: Path | None, figures: bool, label: str,
                 ablations: Mapping | None = None) -> dict:
        """Per evaluation field and T_c: metrics of the circuit (and of each ablation)."""
        from owjax.navigation.evaluate import evaluate_thermotaxis
        from owjax.navigation.plots import plot_tracks
        from owjax.navigation.setup import field_from_config

        ev, c = self.evaluation, self.circuit_cfg
        out = {}
        cases = {"wild_type": ()} | {k: tuple(v) for k, v in (ablations or {}).items()}
        for fname, fcfg in self.eval_fields().items():
            field = field_from_config(fcfg)
            for case, cells in cases.items():
                for tc in self.episode["cultivation_temps_c"]:
                    s, tr = evaluate_thermotaxis(field, self.body, values, float(tc), int(ev["n_worms"]),
                                                 float(ev["duration_s"]), int(ev["seed"]), cells,
                                                 float(self.episode["dt_out_s"]), str(c["parameter_set"]),
                                                 float(c["dt_ms"]), self.dtype, window_s=float(ev["window_s"]),
                                                 memory_tau_s=self.memory_tau_s)
                    out[f"{fname}/{case}/{tc:g}C"] = s
                    log.info("%s %s %s T_c=%g: final %.2f ± %.2f °C, isothermal %.2f, index %.2f", label, fname, case,
                             tc, s["mean_final_temp_c"], s["sd_final_temp_c"], s["isothermal_fraction"],
                             s["thermotaxis_index"])
                    if figures and run_dir is not None:
                        plot_tracks(run_dir / f"tracks_{label}_{fname}_{case}_{tc:g}C.png", field, tr["pos_cm"],
                                    f"{label}, {case}, T_c = {tc:g} °C: final {s['mean_final_temp_c']:.1f} ± "
                                    f"{s['sd_final_temp_c']:.1f} °C, isothermal {s['isothermal_fraction']:.2f}",
                                    isotherm=float(tc), max_tracks=32)
        return out

    def eval_fields(self) -> dict:
        """The evaluation fields (a field set to null is left out: how ``run=ci`` keeps one)."""
        fields = {k: v for k, v in dict(self.evaluation["fields"]).items() if v is not None}
        if not fields:
            raise ValueError("evaluation.fields: no field to evaluate on")
        return fields

    def weight_movement(self, values) -> dict:
        """How far the trained circuit moved from c302's (``factor_*``: w / w_c302) and from its start
        (``factor_vs_start_*``: w / (weight_scale · w_c302); ``most_moved`` ranks by this one)."""
        f = np.asarray(values["weight"], float) / np.asarray(self.w_c302, float)
        scale = float(self.circuit_cfg.get("weight_scale", 1.0))
        fs = f / scale
        order = np.argsort(-np.abs(np.log(fs)))
        return {"weight_scale": scale, "factor_vs_start_median": float(np.median(fs)),
                "factor_vs_start_min": float(fs.min()), "factor_vs_start_max": float(fs.max()),
                "factor_median": float(np.median(f)), "factor_min": float(f.min()), "factor_max": float(f.max()),
                "abs_log2_factor_vs_start_mean": float(np.mean(np.abs(np.log2(fs)))),
                "fraction_within_2x_of_start": float(np.mean((fs >= 0.5) & (fs <= 2.0))),
                "most_moved": {self.synapse_names[i]: round(float(fs[i]), 3) for i in order[:10]},
                "vth_mV_median": float(np.median(np.asarray(values["vth_mV"]))),
                "bias_pA": {c: round(float(b), 3) for c, b in zip(self.cell_names, np.asarray(values["bias_pA"]))}
                } | self.polarity_report(values)

    def polarity_report(self, values) -> dict:
        """Under the transmitter prior: each free connection's excitatory fraction, and the connections
        whose sign differs from c302's (p_exc on the other side of 0.5, or a sign the prior fixes)."""
        if self.polarity_classes is None or "p_exc" not in values:
            return {"polarity": "c302"}
        from owjax.navigation.polarity import FREE, c302_p_exc

        p = np.asarray(values["p_exc"], float)
        c302 = c302_p_exc(np.asarray(self.loop["circuit"].erev_mV))
        flipped = [n for n, a, b in zip(self.synapse_names, p, c302) if (a > 0.5) != (b > 0.5)]
        free = self.polarity_classes == FREE
        return {"polarity": "transmitter", "n_free": int(free.sum()),
                "p_exc_free": {n: round(float(x), 3) for n, x, f in zip(self.synapse_names, p, free) if f},
                "sign_differs_from_c302": flipped}

    def report(self, params_init, params, run_dir, figures):
        from owjax.navigation.params import PHASIC_BOUNDS

        t0 = time.perf_counter()
        v0, v1 = self.values(params_init), self.values(params)
        out = {"evaluation_initial": self.evaluate(v0, run_dir, figures, "initial"),
               "evaluation_trained": self.evaluate(v1, run_dir, figures, "trained",
                                                   {k: v for k, v in ABLATIONS.items()
                                                    if k in set(self.evaluation["ablations"])}),
               "weights": self.weight_movement(v1),
               "readout_trained": {k: float(v1[k]) for k in _READOUT} | {
                   k: float(v1[k]) for k in PHASIC_BOUNDS if k in v1}}
        out["targets"] = self.targets(out["evaluation_trained"])
        out["report_wall_time_s"] = round(time.perf_counter() - t0, 2)
        return out

    def targets(self, ev: Mapping) -> dict:
        """The issue's targets, per evaluation field, from the trained evaluation."""
        res = {}
        for fname in self.eval_fields():
            wt = {k: v for k, v in ev.items() if k.startswith(f"{fname}/wild_type/")}
            r = {"wild_type_within_1C": all(abs(s["mean_final_temp_c"] - s["cultivation_temp_c"]) <= 1.0
                                            for s in wt.values()),
                 "wild_type_isothermal_ge_0.5": all(s["isothermal_fraction"] >= 0.5 for s in wt.values())}
            for case, test in (("AFD", lambda s: abs(s["thermotaxis_index"]) < 0.2),
                               ("AIY", lambda s: s["mean_final_temp_c"] <= s["cultivation_temp_c"] - 2.0),
                               ("AIZ", lambda s: s["mean_final_temp_c"] >= s["cultivation_temp_c"] + 2.0)):
                sel = [s for k, s in ev.items() if k.startswith(f"{fname}/{case}/")]
                if sel:
                    r[f"{case}_ablation_phenotype"] = all(test(s) for s in sel)
            res[fname] = r
        return res

    def save_outputs(self, params, run_dir, provenance, metadata):
        from owjax.navigation.params import DEFAULT_DATA, save_values

        import dataclasses

        if dataclasses.is_dataclass(provenance):
            provenance = dataclasses.asdict(provenance)
        prov = {"experiment": metadata.get("experiment"), "final_loss": metadata.get("final_loss"),
                "n_steps": metadata.get("n_steps"), "provenance": provenance,
                "transducer_memory_tau_s": self.memory_tau_s,
                "command": "python -m owjax.fit +experiment=thermotaxis ship=true",
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        path = save_values(Path(run_dir) / "head_circuit.npz", self.values(params), self.synapse_names,
                           self.cell_names, prov)
        if self.ship:
            DEFAULT_DATA.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DEFAULT_DATA)
            shutil.copyfile(path.with_suffix(".json"), DEFAULT_DATA.with_suffix(".json"))
            log.info("shipped the trained head circuit to %s", DEFAULT_DATA)


def moving_away(field, pos_cm, heading_rad, cultivation_temp_c, band_c: float = 1.0):
    """Whether a worm crawling forwards moves away from its cultivation temperature, and a weight.

    Arguments:
        field: the temperature field (°C). pos_cm: (..., 2) centroid, cm. heading_rad: (...) rad.
        cultivation_temp_c: T_c, °C (broadcast against ``heading_rad``). band_c: °C scale of the weight.

    Returns:
        ``(label, weight)``: label 1 where (T − T_c) · dT/dt_forward > 0 (warming above T_c or
        cooling below it), else 0; weight ``tanh(|T − T_c|/band_c) · |cos|`` of the angle between the
        heading and the gradient (0 on an isotherm or at T_c, where either choice is right).
    """
    x, y = pos_cm[..., 0], pos_cm[..., 1]
    temp = field(x, y)
    gx, gy = jax.vmap(jax.grad(lambda a, b: field(a, b), argnums=(0, 1)))(x.reshape(-1), y.reshape(-1))
    gx, gy = gx.reshape(x.shape), gy.reshape(x.shape)
    along = gx * jnp.cos(heading_rad) + gy * jnp.sin(heading_rad)
    gnorm = jnp.sqrt(gx * gx + gy * gy) + 1e-12
    off = temp - cultivation_temp_c
    label = (off * along > 0).astype(temp.dtype)
    weight = jnp.tanh(jnp.abs(off) / band_c) * jnp.abs(along) / gnorm
    return jax.lax.stop_gradient(label), jax.lax.stop_gradient(weight)


class Thermotaxis(AbstractExperiment):
    """``owjax.fit`` experiment kind ``thermotaxis`` (its own parametrisation: no ``parameters:`` block)."""

    kind: ClassVar[str] = "thermotaxis"
    requires_parameters_block: ClassVar[bool] = False

    def build(self, cfg: Mapping, seed: int, run_dir: Path | None = None):
        lbfgs = int(((cfg.get("optim") or {}).get("lbfgs") or {}).get("steps", 0) or 0)
        if lbfgs:
            raise ValueError("thermotaxis draws new worms every step; L-BFGS needs one objective: set optim.lbfgs.steps=0")
        if cfg.get("parameters"):
            raise ValueError("thermotaxis has its own parametrisation (owjax.navigation.params): remove parameters:")
        return ThermotaxisTask(cfg, seed)


# the loop's key derivation needs nothing else; jax is imported for users of values() under jit
_ = jax

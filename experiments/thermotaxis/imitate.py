"""Train the c302 head circuit by imitation of the best hand-wired policy, then test it in the closed loop.

Closed-loop BPTT did not make the circuit use AFD (README, "Third attempt"). This script asks a
narrower question with a low-variance, deterministic objective: can the graded c302 head circuit
reproduce, from the AFD transducer's response alone, the pirouette drive of the best hand-wired
policy of ``policy_bounds.py``? And if it partly can, what does the circuit do in the closed loop?

1. **Data.** 72 worms wander for 20 min on the radial plate, pirouetting at a constant rate
   (``policy_bounds.wander_response``); their AFD response r(t) is saved every second. The teacher's
   drive q(t) is the best policy of ``results/policy_bounds.json`` applied to r(t) (its two filters
   run exactly on the 1-s grid). Worms 0–47 train, 48–71 test.
2. **Fit, open loop.** The circuit (events-mode settings of the experiment; time constants trained
   from 1 s; c302's connections only, signs held, weights ≤ 4 × 0.05 × c302's) receives
   ``afd_gain · r(t) + afd_offset`` into AFDL/R (r linear between samples, forward/exponential Euler
   at 10 ms) from a settled start. Its drive σ(gain · (AVA − AVB − threshold)/10 mV) is compared with
   q every second after the first 10 s of each 120-s segment, by KL(q ‖ drive). Adam (lr 0.05, clip 1),
   300 steps of 16 segments. The few non-finite gradient entries (a handful of steps, source not
   traced) are zeroed and counted. Options build a structure into the circuit: ``--tau-fixed`` holds
   named connections' time constants (e.g. a fast and a slow path from AFD that meet with opposite
   signs), ``--weight-fixed`` their weights, ``--p-exc-start`` starts named free connections at a chosen sign, ``--aux`` adds, per named
   cell, w · (1 − r²) of its potential against one of the teacher's intermediate signals
   (:data:`AUX_TARGETS`) to the loss (a loss on intermediate cells), ``--aux-amplitude`` asks named cells'
   potentials to vary by at least so many mV, ``--steps`` sets the number of steps. Other losses shape the
   drive: ``--logit-weight`` (its logit against the teacher's), ``--direction-weight`` (its direction gain;
   ``drive_gain.py``), ``--profile-weight`` (its mean per level bin and direction; ``drive_profile.py``).
3. **Closed loop.** The fitted values, in the thermotaxis loop with pirouette events: 24 worms per
   T_c (15, 20, 25 °C), 20 min on the radial plate, held-out seed 1234; wild type and the AFD, AIY
   and AIZ ablations (never trained on).

Run: ``.venv/bin/python experiments/thermotaxis/imitate.py [--teacher random|refined] [--rank K]
[--init-from shipped|PATH] [--lr LR] [--out NAME] [--ship]`` (≈ 10–20 min on the 2-core CPU; ``refined``:
the teacher of ``policy_refine.py``). Writes ``results/imitation.{json,md}``
and ``results/imitation/head_circuit.{npz,json}`` (``imitation_refined…`` for the refined teacher); with
``--ship`` also ``owjax/data/thermotaxis/head_circuit.{npz,json}`` (what ``+scenario=thermotaxis``
loads).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import ndtr
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import policy_bounds as pb  # noqa: E402

from owjax.fitting.tasks.thermotaxis import ABLATIONS, ThermotaxisTask  # noqa: E402
from owjax.navigation.evaluate import evaluate_thermotaxis  # noqa: E402
from owjax.navigation.loop import ReversalCommand  # noqa: E402
from owjax.navigation.circuit import IV_GRID_MV  # noqa: E402
from owjax.navigation.params import (DEFAULT_DATA, afd_phasic_from_values, apply_values, phasic_values,  # noqa: E402
                                     save_values)
from owjax.sensory.component import TransducerDrive  # noqa: E402
from owjax.sensory.phasic import PhasicDrive  # noqa: E402

HERE = Path(__file__).resolve().parent
CONF = HERE.parents[1] / "owjax" / "conf" / "experiment" / "thermotaxis.yaml"
SEG_S, SUBSTEPS, SKIP_S = 120, 100, 10
STEPS, BATCH, LR, TAU_INIT_MS, PIROUETTE_S = 300, 16, 0.05, 1000.0, 3.0
N_TRAIN = 48
#: ``--logit-weight``: the teacher's drive logit is clipped to ± this before it is regressed on
LOGIT_FLOOR = 6.0
#: where each teacher's results go (results/NAME.{json,md}, results/NAME/head_circuit.{npz,json})
OUT_NAME = {"random": "imitation", "refined": "imitation_refined", "compressed": "imitation_compressed"}


def teacher_filters(r: np.ndarray, p: dict) -> tuple[np.ndarray, np.ndarray]:
    """The policy's two low-pass filters of ``r`` (worms, seconds): level z_f and slow z_s (of the
    log-compressed response when the teacher has ``compress_c``: ``policy_bounds.compressed``)."""
    r = pb.compressed(r, p.get("compress_c"))
    def low_pass(tau_s):
        a = np.exp(-1.0 / tau_s)
        z = np.empty_like(r)
        z[:, 0] = r[:, 0]
        for i in range(1, r.shape[1]):
            z[:, i] = a * z[:, i - 1] + (1 - a) * r[:, i]
        return z
    return low_pass(p["tau_fast_s"]), low_pass(p["tau_slow_s"])


#: the teacher's intermediate signals a cell's potential can be asked to carry (``--aux``): its derivative
#: z_f − z_s (each segment's mean removed), the two halves of its pirouette rule — rising above θ and
#: falling below it (products of the policy's two tanh terms, ≥ 0) — and their sum ``away``. A plain name
#: scores (1 − r²), either sign; "+name" / "−name" ("-name") scores (1 ∓ r), a chosen sign.
AUX_TARGETS = ("derivative", "rising_above", "falling_below", "away")


def aux_sign(which: str) -> tuple[str, float]:
    """(target, sign) of an ``--aux`` target name: sign 0 for a plain name (r² scored), ±1 for "+name"/"-name"."""
    if which[:1] in "+-":
        return which[1:], 1.0 if which[0] == "+" else -1.0
    return which, 0.0


def aux_target(which: str, zf: np.ndarray, zs: np.ndarray, p: dict) -> np.ndarray:
    """The teacher's intermediate signal ``which`` (:data:`AUX_TARGETS`) on the filters ``zf``, ``zs``."""
    if which == "derivative":
        return zf - zs
    d, lvl = np.tanh((zf - zs) / p["sigma_d"]), np.tanh((zf - p["theta"]) / p["sigma_l"])
    if which == "rising_above":
        return np.maximum(d, 0) * np.maximum(lvl, 0)
    if which == "falling_below":
        return np.maximum(-d, 0) * np.maximum(-lvl, 0)
    if which == "away":
        return np.maximum(d * lvl, 0)
    raise SystemExit(f"--aux: unknown target {which!r}; allowed: {list(AUX_TARGETS)}")


#: level bins and the dead zone of the rising/falling split (z_f − z_s) of the drive-by-cell diagnostics
N_LEVELS, DIRECTION_DEADZONE = 5, 0.02


def level_direction_cells(zf: np.ndarray, zs: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Cell index 2·level + rising (level: the bin of z_f between ``edges``; rising: z_f − z_s above the
    dead zone, falling below minus it); −1 in the dead zone."""
    lvl = np.clip(np.digitize(zf, edges) - 1, 0, N_LEVELS - 1)
    d = zf - zs
    return np.where(d > DIRECTION_DEADZONE, 2 * lvl + 1, np.where(d < -DIRECTION_DEADZONE, 2 * lvl, -1))


def drive_by_level_and_direction(cells: np.ndarray, q: np.ndarray, p: np.ndarray, edges: np.ndarray) -> list[dict]:
    """Mean teacher drive ``q`` and circuit drive ``p`` per level bin, when the response rises and when it
    falls: the policy pirouettes when it falls below θ and when it rises above it."""
    rows = []
    for b in range(N_LEVELS):
        up, dn = cells == 2 * b + 1, cells == 2 * b
        rows.append({"z_f_from": float(edges[b]), "z_f_to": float(edges[b + 1]), "n_rising": int(up.sum()),
                     "n_falling": int(dn.sum()),
                     "teacher_rising": float(q[up].mean()) if up.any() else None,
                     "teacher_falling": float(q[dn].mean()) if dn.any() else None,
                     "circuit_rising": float(p[up].mean()) if up.any() else None,
                     "circuit_falling": float(p[dn].mean()) if dn.any() else None})
    return rows


def teacher_drive(r: np.ndarray, p: dict) -> np.ndarray:
    """The hand-wired policy's drive on responses ``r`` (worms, seconds)."""
    zf, zs = teacher_filters(r, p)
    away = np.tanh((zf - zs) / p["sigma_d"]) * np.tanh((zf - p["theta"]) / p["sigma_l"])
    return np.asarray(ndtr(p["k"] * away - p["base"]), np.float64)


def drive_logit(q, floor: float | None = None):
    """Logit of pirouette drives ``q`` (clipped to (1e-6, 1 − 1e-6) first), and with ``floor`` clipped to
    ± ``floor``; NumPy or JAX arrays."""
    xp = jnp if isinstance(q, jax.Array) else np
    q = xp.clip(q, 1e-6, 1 - 1e-6)
    z = xp.log(q) - xp.log1p(-q)
    return z if floor is None else xp.clip(z, -floor, floor)


#: the mean drives :func:`drive_profile_mismatch` compares are clipped to this range before their logit
PROFILE_CLIP = 0.01


def drive_profile_mismatch(z, q, cells):
    """Mean over the level bins × directions present (``cells``: :func:`level_direction_cells`, −1 left out)
    of the squared difference between the logits of the circuit's mean drive σ(``z``) and the teacher's
    mean drive ``q`` in that bin (both clipped to [PROFILE_CLIP, 1 − PROFILE_CLIP]): how far the circuit's
    drive is from the teacher's *on average* at each level and direction, which the per-second KL can trade
    away (the shipped circuit's drive is 5× too low at the highest levels; ``README.md``, "Tenth attempt")."""
    p = jax.nn.sigmoid(z)
    terms, present = [], []
    for c in range(2 * N_LEVELS):
        m = (cells == c).astype(z.dtype)
        n = jnp.sum(m)
        pm, qm = (jnp.clip(jnp.sum(a * m) / jnp.maximum(n, 1.0), PROFILE_CLIP, 1 - PROFILE_CLIP) for a in (p, q))
        ok = (n > 0).astype(z.dtype)
        terms.append(ok * (jnp.log(pm / (1 - pm)) - jnp.log(qm / (1 - qm))) ** 2)
        present.append(ok)
    return sum(terms) / jnp.maximum(sum(present), 1.0)


def kl(q, p):
    """Mean KL(q ‖ p) of Bernoulli drives (nats)."""
    p = np.clip(p, 1e-6, 1 - 1e-6)
    qc = np.clip(q, 1e-9, 1 - 1e-9)
    return float(np.mean(q * np.log(qc / p) + (1 - q) * np.log((1 - qc) / (1 - p))))


def make_task(init_from: str | None = None, polarity: str = "c302", vth_init_mV: float | None = None,
              weight_scale: float | None = None, bias_max_pA: float | None = None,
              reversal_gain: float | None = None, tau_start: dict | None = None,
              weight_max_factor: float | None = None, afd_phasic: dict | None = None) -> ThermotaxisTask:
    """The experiment's task with the imitation's settings; ``vth_init_mV``, ``weight_scale``,
    ``bias_max_pA``, ``reversal_gain``, ``weight_max_factor``: None keeps the experiment's (−40 mV, 0.05,
    3 pA, 2, 4); ``afd_phasic``: AFD's phasic channel's start (``{gain_pA, tau_fast_s, tau_slow_s}``;
    a saved circuit that has one keeps its own);
    ``tau_start``: ``{"PRE->POST": ms}``, starting time constants of those connections (the rest 1 s)."""
    cfg = OmegaConf.to_container(OmegaConf.load(CONF), resolve=True)
    cfg["circuit"]["init_from"] = init_from
    cfg["circuit"]["polarity"] = polarity
    for key, val in (("vth_init_mV", vth_init_mV), ("weight_scale", weight_scale), ("bias_max_pA", bias_max_pA),
                     ("weight_max_factor", weight_max_factor)):
        if val is not None:
            cfg["circuit"][key] = float(val)
    if reversal_gain is not None:
        cfg["readout"]["reversal_gain"] = float(reversal_gain)
    cfg["readout"]["afd_phasic"] = afd_phasic
    cfg["body"]["pirouette_duration_s"] = PIROUETTE_S
    cfg["circuit"]["tau_init_ms"] = TAU_INIT_MS
    task = ThermotaxisTask(cfg, 0)
    if tau_start:  # the connections are known once the task has built the circuit; init() reads this
        tau = np.full(len(task.synapse_names), TAU_INIT_MS)
        tau[connection_rows(task.synapse_names, tau_start, "--tau-start")] = [float(v) for v in tau_start.values()]
        task.circuit_cfg["tau_init_ms"] = tau.tolist()
    return task


def connection_rows(names, named: dict, flag: str) -> np.ndarray:
    """Rows in ``names`` of the connections named (``"PRE->POST"``) by the keys of ``named``, in their
    order; a name the head circuit lacks is an error naming ``flag``."""
    bad = sorted(set(named) - set(names))
    if bad:
        raise SystemExit(f"{flag}: no connection(s) {bad} in the head circuit")
    return np.asarray([names.index(n) for n in named])


def start_signs(task, raw: dict, p_exc_start: dict | None) -> dict:
    """``raw`` with the named free connections' excitatory fraction set to ``p_exc_start``
    (``{"PRE->POST": p}``, p in (0, 1))."""
    if not p_exc_start:
        return raw
    if "p_exc" not in raw:
        raise SystemExit("--p-exc-start needs --polarity transmitter (trained signs)")
    idx = connection_rows(task.synapse_names, p_exc_start, "--p-exc-start")
    fixed = [n for n, i in zip(p_exc_start, idx) if task.polarity_classes[i] != 0]
    if fixed:
        raise SystemExit(f"--p-exc-start: the sign of {fixed} is fixed by the transmitter prior")
    p = np.asarray([float(v) for v in p_exc_start.values()])
    if np.any((p <= 0) | (p >= 1)):
        raise SystemExit(f"--p-exc-start: fractions must lie in (0, 1), got {p_exc_start}")
    return raw | {"p_exc": raw["p_exc"].at[idx].set(jnp.asarray(np.log(p / (1 - p)), raw["p_exc"].dtype))}


def held_values(task, tau_fixed: dict | None, weight_fixed: dict | None = None, phasic_fixed: bool = False):
    """``raw → values`` of ``task`` with the time constants of the connections named in ``tau_fixed``
    (``{"PRE->POST": ms}``) and the weights of those named in ``weight_fixed`` (``{"PRE->POST": weight}``,
    within the task's bounds) held at those values (their raw entries get no gradient), with
    ``phasic_fixed`` AFD's phasic channel held at its start (``task.afd_phasic``), or ``task.values``
    when none is asked for."""
    if phasic_fixed and task.afd_phasic is None:
        raise SystemExit("--afd-phasic-fixed needs AFD's phasic channel (--afd-phasic, or an --init-from circuit with one)")
    phasic = phasic_values(task.afd_phasic) if phasic_fixed else {}
    if not tau_fixed and not weight_fixed and not phasic:
        return task.values
    held = {}
    for key, named, flag in (("tau_ms", tau_fixed, "--tau-fixed"), ("weight", weight_fixed, "--weight-fixed")):
        if named:
            held[key] = (connection_rows(task.synapse_names, named, flag), np.asarray([float(x) for x in named.values()]))
    if weight_fixed:
        c = task.circuit_cfg
        w_max = np.abs(np.asarray(task.w_c302, np.float64)) * float(c.get("weight_scale", 1.0)) * float(c["weight_max_factor"])
        idx, w = held["weight"]
        bad = [n for n, i, x in zip(weight_fixed, idx, w) if not 0 < x <= w_max[i]]
        if bad:
            raise SystemExit(f"--weight-fixed: weights of {bad} must lie in (0, their bound {w_max[idx].round(4).tolist()}]")

    def values(raw):
        v = task.values(raw)
        if "tau_ms" in held and "tau_ms" not in v:
            raise SystemExit("--tau-fixed needs trained time constants (the experiment's tau_init_ms)")
        for key, (idx, x) in held.items():
            v = v | {key: v[key].at[idx].set(jnp.asarray(x, v[key].dtype))}
        return v | {k: jnp.asarray(x, v[k].dtype) for k, x in phasic.items()}

    return values


#: starts (s) of the nine 120-s segments each held-out wandering worm is cut into by the diagnostics
#: (``cell_information.py``, ``drive_gain.py``)
HELD_OUT_SEG_STARTS = range(0, 1080, 120)


def saved_task(path: Path) -> tuple[ThermotaxisTask, dict, dict]:
    """(task, raw parameters, provenance) of a circuit saved by this script: the task built with the
    polarity and bounds its provenance records, started from the file."""
    prov = json.loads(path.with_suffix(".json").read_text())["provenance"]
    task = make_task(str(path), prov.get("polarity", "c302"), prov.get("vth_init_mV"), prov.get("weight_scale"),
                     prov.get("bias_max_pA"), weight_max_factor=prov.get("weight_max_factor"))
    return task, task.init(jax.random.PRNGKey(0)), prov


def held_out_segments(n_worms: int) -> list[tuple[int, int]]:
    """(worm, start s) of the held-out worms' segments (worms N_TRAIN …, :data:`HELD_OUT_SEG_STARTS`)."""
    return [(w, s) for w in range(N_TRAIN, n_worms) for s in HELD_OUT_SEG_STARTS]


def open_loop(task, raw, r: np.ndarray, segs) -> tuple[np.ndarray, np.ndarray]:
    """The circuit's drive logits (segments, SEG_S) and every cell's potential (segments, SEG_S, cells; mV)
    on the responses ``r`` (worms, seconds) cut into ``segs`` (:func:`held_out_segments`)."""
    rb = jnp.asarray(np.stack([r[w, s:s + SEG_S + 1] for w, s in segs]), jnp.float32)
    z, v = jax.jit(jax.vmap(lambda rs: circuit_logits(task, raw, rs, None, True)))(rb)
    return np.asarray(z), np.asarray(v)


def scored_seconds(a: np.ndarray, segs) -> np.ndarray:
    """The per-second signal ``a`` (worms, seconds) on the scored seconds of ``segs``, flattened in the
    order of :func:`open_loop`'s outputs cut at SKIP_S."""
    return np.stack([a[w, s + 1:s + SEG_S + 1] for w, s in segs])[:, SKIP_S:].ravel()


def circuit_logits(task, raw, r_seg, values=None, with_potentials: bool = False):
    """The circuit's drive logit every second of a segment of responses ``r_seg`` (SEG_S + 1,);
    ``values``: raw → values (default ``task.values``); ``with_potentials``: also every cell's potential
    (mV) at those seconds, (SEG_S, n_cells). The response is linearly interpolated between seconds and
    the circuit stepped at its Δ, as in the loop; with AFD's phasic channel
    (:class:`owjax.sensory.phasic.PhasicResponse`) its two filters are stepped alongside (forward Euler),
    starting at the segment's first response."""
    lp = apply_values(task.loop, (values or task.values)(raw))
    c = lp["circuit"]
    td = [x for x in lp.couplings if isinstance(x, TransducerDrive)][0]
    rc = [x for x in lp.couplings if isinstance(x, ReversalCommand)][0]
    pd = [x for x in lp.couplings if isinstance(x, PhasicDrive)]
    afd = jnp.asarray([c.index("AFDL"), c.index("AFDR")])
    if pd:
        ph, gain_ph = lp["afd_phasic"], pd[0].gain_pA
        k_fast, k_slow = c.dt_ms / 1000.0 / ph.tau_fast_s, c.dt_ms / 1000.0 / ph.tau_slow_s

    def current(rj, filt):
        i = td.gain_pA * rj + td.offset_pA + (gain_ph * (filt[0] - filt[1]) if pd else 0.0)
        return jnp.zeros(c.n_cells, r_seg.dtype).at[afd].set(i)

    def second(carry, ends):
        def step(carry, j):
            y, filt = carry
            rj = ends[0] + (ends[1] - ends[0]) * j / SUBSTEPS
            d = c.vector_field(0.0, y, {"i_ext_pA": current(rj, filt)})
            if pd:
                filt = jnp.stack([filt[0] + k_fast * (rj - filt[0]), filt[1] + k_slow * (rj - filt[1])])
            return (jax.tree.map(lambda a, b: a + c.dt_ms * b, y, d), filt), None
        carry, _ = jax.lax.scan(step, carry, jnp.arange(SUBSTEPS, dtype=r_seg.dtype))
        v = carry[0]["V"]
        diff = jnp.mean(v[jnp.asarray(rc.reverse)]) - jnp.mean(v[jnp.asarray(rc.forward)])
        return carry, (rc.gain * (diff - rc.threshold_mV) / 10.0, v)

    filt0 = jnp.stack([r_seg[0], r_seg[0]])
    y0 = c.settle(c.initial_state(), current(r_seg[0], filt0), 3000)
    _, (z, v) = jax.lax.scan(jax.checkpoint(second), (y0, filt0), jnp.stack([r_seg[:-1], r_seg[1:]], 1))
    return (z, v) if with_potentials else z


#: the AFD–AIB gap junctions of c302's head circuit, both directions and both sides (``--gap-factor``, gap_path.py)
GAPS = ("AFDL-AIBL", "AIBL-AFDL", "AFDR-AIBR", "AIBR-AFDR")


def scale_gaps(factor: float):
    """A ``transform_loop`` multiplying the weight of :data:`GAPS` by ``factor``."""

    def transform(loop):
        c = loop["circuit"]
        idx = np.array([c.gap_names.index(g) for g in GAPS])
        return eqx.tree_at(lambda m: m.components["circuit"].gap_weight, loop, c.gap_weight.at[idx].multiply(factor))

    return transform


def closed_loop(task, vals, cases, memory_tau_s, seed: int = 1234, field=None, start: str = "uniform",
                transform_loop=None, v_min_cells: tuple[str, ...] = ()) -> dict:
    """The circuit ``vals`` in the closed loop: radial plate (or ``field``), 24 worms per T_c, 20 min, worms of
    ``seed`` (held out: 1234), for each ``(name, cells killed)`` of ``cases``; ``memory_tau_s``: the AFD memory of
    T_c (s, ``None``: fitted); ``start``: ``uniform`` on the plate or on the T_c ``isotherm``; ``transform_loop``:
    applied to each built loop (``evaluate_thermotaxis``), e.g. :func:`scale_gaps`; ``v_min_cells``: living cells
    whose lowest potential over the run (mV) each row also reports, as ``v_min_mV``.
    Returns ``{"name/T_c": {mean_final_temp_c, sd_final_temp_c, isothermal_fraction, thermotaxis_index}}``."""
    closed = {}
    for case, cells in cases:
        for tc in pb.TCS:
            s, _ = evaluate_thermotaxis(pb.FIELD_ if field is None else field, task.body, vals, tc, 24, 1200.0, seed, cells, 1.0, "C1", 10.0,
                                        "float32", memory_tau_s=memory_tau_s, start=start, transform_loop=transform_loop)
            closed[f"{case}/{tc:g}"] = {k: s[k] for k in ("mean_final_temp_c", "sd_final_temp_c", "isothermal_fraction",
                                                          "thermotaxis_index")}
            if v_min_cells:
                vr = s["circuit_v_range_mV"]
                closed[f"{case}/{tc:g}"]["v_min_mV"] = {c: round(float(vr[c][0]), 1) for c in v_min_cells if c in vr}
        print(case, {k: round(v["mean_final_temp_c"], 2) for k, v in closed.items() if k.startswith(case)},
              file=sys.stderr, flush=True)
    return closed


def teacher_params(which: str, rank: int = 0) -> dict:
    """The teacher: ``random`` = the ``rank``-th best random policy of ``policy_bounds.py`` (0: the best),
    ``refined`` = the best after ``policy_refine.py``, ``compressed`` = the ``rank``-th best policy on the
    log-compressed response (``policy_bounds.py --compressed``)."""
    if which == "random":
        return json.loads((HERE / "results" / "policy_bounds.json").read_text())["search"]["best"][rank]["params"]
    if which == "compressed":
        path = HERE / "results" / "policy_bounds_compressed.json"
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run experiments/thermotaxis/policy_bounds.py --compressed first")
        res = json.loads(path.read_text())
        return res["best"][rank]["params"] | {"compress_c": res["compress_c"]}
    if which == "refined":
        path = HERE / "results" / "policy_refine.json"
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run experiments/thermotaxis/policy_refine.py first")
        return json.loads(path.read_text())["refined"]["params"]
    raise SystemExit(f"--teacher {which!r}: the teachers are 'random' and 'refined'")


def main(ship: bool, teacher: str = "random", rank: int = 0, init_from: str | None = None, lr: float = LR,
         out_name: str | None = None, polarity: str = "c302", vth_init_mV: float | None = None,
         weight_scale: float | None = None, bias_max_pA: float | None = None,
         reversal_gain: float | None = None, contrast_weight: float = 0.0, tau_start: dict | None = None,
         tau_fixed: dict | None = None, aux: dict | None = None, steps: int = STEPS,
         p_exc_start: dict | None = None, logit_weight: float = 0.0, direction_weight: float = 0.0,
         weight_max_factor: float | None = None, profile_weight: float = 0.0,
         aux_amplitude: dict | None = None, weight_fixed: dict | None = None, tc_weights: dict | None = None,
         afd_phasic: dict | None = None, afd_phasic_fixed: bool = False, range_weight: float = 0.0,
         plates: tuple[str, ...] = ("radial",), gap_factor: float = 1.0) -> dict:
    """``gap_factor``: the AFD–AIB gap junctions' weight × this (c302's otherwise), held through training and the
    closed-loop rows (:func:`scale_gaps`). It is not saved with the circuit's values (only in its provenance,
    ``afd_aib_gap_factor``): evaluated elsewhere, e.g. by ``evaluate_shipped.py``, such a circuit runs with c302's
    junctions. ``aux``: ``{cell: [target, weight]}`` (targets: :data:`AUX_TARGETS`); ``aux_amplitude``:
    ``{cell: minimum standard deviation of its potential, mV}``; ``p_exc_start``:
    ``{"PRE->POST": excitatory fraction}`` of free connections at the start."""
    t0 = time.time()
    best = teacher_params(teacher, rank)
    # --plates: the wandering worms of every named plate (the radial plate's are policy_bounds.WORMS); each
    # plate's first N_TRAIN worms train, the rest are the test set
    if not plates or len(set(plates)) != len(plates):
        raise SystemExit(f"--plates: one or more distinct plate names, got {plates}")
    plate_worms = [pb.WORMS if name == "radial" else pb.draw_on(name) for name in plates]
    # (the radial plate alone as every run before --plates, whose digits it reproduces; with other plates, every
    # plate's worms passed in, as the --plates runs were made: the radial responses then differ by ≤ 2e-5)
    r = (np.asarray(pb.wander_response(2.0)[1], np.float64) if tuple(plates) == ("radial",) else
         np.concatenate([np.asarray(pb.wander_response(2.0, None if name == "radial" else pb.plate(name), w)[1],
                                    np.float64) for name, w in zip(plates, plate_worms)]))
    n_per_plate = r.shape[0] // len(plates)
    q = teacher_drive(r, best)
    task = make_task(init_from, polarity, vth_init_mV, weight_scale, bias_max_pA, reversal_gain,
                     (tau_start or {}) | (tau_fixed or {}), weight_max_factor, afd_phasic)
    transform = None
    if gap_factor != 1.0:
        transform = scale_gaps(gap_factor)
        task.loop = transform(task.loop)
    values = held_values(task, tau_fixed, weight_fixed, afd_phasic_fixed)
    print(f"data: {r.shape[0]} worms × {r.shape[1]} s, teacher drive mean {q.mean():.3f}", flush=True)
    zf, zs = teacher_filters(r, best)
    train = np.concatenate([np.arange(N_TRAIN) + i * n_per_plate for i in range(len(plates))])
    test = np.setdiff1d(np.arange(r.shape[0]), train)
    edges = np.quantile(zf[train], np.linspace(0, 1, N_LEVELS + 1))
    cells_all = level_direction_cells(zf, zs, edges)
    aux = aux or {}
    aux_rows = np.asarray([task.loop["circuit"].index(c) for c in aux], np.int32)
    aux_w = jnp.asarray([float(w) for _, w in aux.values()], jnp.float32)
    aux_demean = np.asarray([aux_sign(t)[0] == "derivative" for t, _ in aux.values()])
    aux_signs = jnp.asarray([aux_sign(t)[1] for t, _ in aux.values()], jnp.float32)
    aux_amplitude = aux_amplitude or {}
    amp_rows = np.asarray([task.loop["circuit"].index(c) for c in aux_amplitude], np.int32)
    amp_min = jnp.asarray([float(x) for x in aux_amplitude.values()], jnp.float32)
    if aux_amplitude and not bool(jnp.all(amp_min > 0)):
        raise SystemExit(f"--aux-amplitude: every minimum (mV) must be > 0, got {aux_amplitude}")
    targets = (np.stack([aux_target(aux_sign(t)[0], zf, zs, best) for t, _ in aux.values()], 1) if aux
               else np.zeros((r.shape[0], 0, r.shape[1])))
    # --direction-weight: the direction of change tanh(D/σ_d) and the level bin (of N_LEVELS) every second
    direction = np.stack([np.tanh((zf - zs) / best["sigma_d"]),
                          np.clip(np.digitize(zf, edges) - 1, 0, N_LEVELS - 1).astype(np.float64)], 1)

    def kl_loss(raw, rb, qb):
        """(KL per second, the drive logits, every cell's potential) of a batch of segments."""
        z, v = jax.vmap(lambda rs: circuit_logits(task, raw, rs, values, True))(rb)
        t = qb[:, 1:]
        ent = -(t * jnp.log(t + 1e-9) + (1 - t) * jnp.log(1 - t + 1e-9))
        return jnp.mean((jax.nn.softplus(z) - t * z - ent)[:, SKIP_S:]), z, v

    def aux_r(v, db):
        """Correlation (n_aux,) between each ``aux`` cell's potential and its target over the
        scored seconds of the batch: about each segment's own mean for the derivative, about the batch's
        mean otherwise."""
        a = jnp.moveaxis(v[:, SKIP_S:][:, :, aux_rows], 2, 1)  # (batch, n_aux, T)
        b = db[:, :, 1:][:, :, SKIP_S:]
        dm = jnp.asarray(aux_demean)[None, :, None]
        a = a - jnp.where(dm, a.mean(2, keepdims=True), a.mean((0, 2), keepdims=True))
        b = b - jnp.where(dm, b.mean(2, keepdims=True), b.mean((0, 2), keepdims=True))
        return jnp.sum(a * b, (0, 2)) / jnp.sqrt(jnp.sum(a * a, (0, 2)) * jnp.sum(b * b, (0, 2)) + 1e-12)

    def aux_score(v, db):
        """r² (plain targets) or the signed r (signed targets) of each ``aux`` cell: what the loss scores."""
        rr = aux_r(v, db)
        return jnp.where(aux_signs == 0, rr ** 2, aux_signs * rr)

    def amplitude(v):
        """Standard deviation (mV) of each ``aux_amplitude`` cell's potential over the scored seconds."""
        return jnp.std(v[:, SKIP_S:][:, :, amp_rows], axis=(0, 1))

    def direction_gain(z, sb):
        """(N_LEVELS,) least-squares slope of the logits ``z`` (batch, T) on tanh(D/σ_d) within each
        level bin (``sb``: (batch, 2, T + 1), the direction and the bin), and whether the bin had data."""
        s, lvl = sb[:, 0, 1:][:, SKIP_S:], sb[:, 1, 1:][:, SKIP_S:]
        z = z[:, SKIP_S:]
        out, ok = [], []
        for b in range(N_LEVELS):
            m = (lvl == b).astype(z.dtype)
            n = jnp.maximum(jnp.sum(m), 1.0)
            ms, mz = jnp.sum(m * s) / n, jnp.sum(m * z) / n
            var = jnp.sum(m * (s - ms) ** 2)
            out.append(jnp.sum(m * (s - ms) * (z - mz)) / jnp.maximum(var, 1e-6))
            ok.append((var > 1.0).astype(z.dtype))
        return jnp.stack(out), jnp.stack(ok)

    def loss(raw, rb, qb, cb, db, sb):
        """KL per second + ``contrast_weight`` · mean over level bins of the squared difference between the
        circuit's and the teacher's rising − falling contrast of the drive logit (the part of the drive
        thermotaxis rests on) + Σ w · (1 − r²) of the ``aux`` cells' potentials against their targets (a
        loss on intermediate cells) + ``direction_weight`` · mean over level bins of the squared difference
        between the circuit's and the teacher's direction gain (the slope of the logit, the teacher's
        clipped to ± LOGIT_FLOOR, on tanh(D/σ_d); ``drive_gain.py``) + ``profile_weight`` ·
        :func:`drive_profile_mismatch` (the mean drive per level bin and direction) + Σ (1 − sd/minimum)²
        of the ``aux_amplitude`` cells whose potential varies less than asked (the correlation of an
        ``aux`` cell is blind to its amplitude: a sub-mV signal correlates as well as a 10-mV one, but moves
        no synapse) + ``range_weight`` · the mean over cells and seconds of ((V − bound)/10 mV)² beyond c302's
        I–V table (−100 … 60 mV; below −100 mV c302's generic cell has almost no conductance, so a few pA
        hold it volts below rest)."""
        val, z, v = kl_loss(raw, rb, qb)
        if range_weight:
            lo, hi = float(IV_GRID_MV[0]), float(IV_GRID_MV[-1])
            val = val + range_weight * jnp.mean((jax.nn.relu(lo - v) / 10.0) ** 2 + (jax.nn.relu(v - hi) / 10.0) ** 2)
        teacher_logit = drive_logit(qb[:, 1:])
        if direction_weight:
            gz, ok = direction_gain(z, sb)
            gt, _ = direction_gain(drive_logit(qb[:, 1:], LOGIT_FLOOR), sb)
            val = val + direction_weight * jnp.sum(ok * (gz - gt) ** 2) / jnp.maximum(jnp.sum(ok), 1.0)
        if logit_weight:
            val = val + logit_weight * jnp.mean((z - drive_logit(qb[:, 1:], LOGIT_FLOOR))[:, SKIP_S:] ** 2)
        if aux:
            val = val + jnp.sum(aux_w * (1.0 - aux_score(v, db)))
        if aux_amplitude:
            val = val + jnp.sum(jax.nn.relu(1.0 - amplitude(v) / amp_min) ** 2)
        if profile_weight:
            val = val + profile_weight * drive_profile_mismatch(z[:, SKIP_S:], qb[:, 1:][:, SKIP_S:], cb[:, 1:][:, SKIP_S:])
        if not contrast_weight:
            return val
        tl = teacher_logit[:, SKIP_S:]
        z, c = z[:, SKIP_S:], cb[:, 1:][:, SKIP_S:]
        terms, present = [], []
        for b in range(N_LEVELS):
            up, dn = (c == 2 * b + 1).astype(z.dtype), (c == 2 * b).astype(z.dtype)
            nu, nd = jnp.sum(up), jnp.sum(dn)
            mean = lambda a, m, n: jnp.sum(a * m) / jnp.maximum(n, 1.0)  # noqa: E731
            diff = (mean(z, up, nu) - mean(z, dn, nd)) - (mean(tl, up, nu) - mean(tl, dn, nd))
            ok = ((nu > 0) & (nd > 0)).astype(z.dtype)
            terms.append(ok * diff ** 2)
            present.append(ok)
        return val + contrast_weight * sum(terms) / jnp.maximum(sum(present), 1.0)

    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(lr))

    @jax.jit
    def update(raw, st, rb, qb, cb, db, sb):
        val, g = jax.value_and_grad(loss)(raw, rb, qb, cb, db, sb)
        bad = sum(jnp.sum(~jnp.isfinite(a)) for a in jax.tree.leaves(g))
        g = jax.tree.map(lambda a: jnp.where(jnp.isfinite(a), a, 0.0), g)
        u, st = opt.update(g, st, raw)
        return optax.apply_updates(raw, u), st, val, bad

    rng = np.random.default_rng(0)
    # --tc-weights: training segments drawn from the worms of each T_c in proportion to its weight (default 1)
    tc_of_worm = np.concatenate([np.asarray(w["tc"], np.float64) for w in plate_worms])
    unknown = sorted(set(float(k) for k in (tc_weights or {})) - set(pb.TCS))
    if unknown or any(float(v) <= 0 for v in (tc_weights or {}).values()):
        raise SystemExit(f"--tc-weights: keys must be among the T_c {list(pb.TCS)} and weights > 0, got {tc_weights}")
    worm_weight = np.asarray([float((tc_weights or {}).get(f"{t:g}", 1.0)) for t in tc_of_worm])

    def segments(worms, n):
        w = (rng.choice(worms, n, p=worm_weight[worms] / worm_weight[worms].sum()) if tc_weights
             else rng.choice(worms, n))  # (no p: the draws of the runs before --tc-weights existed)
        s = rng.integers(0, r.shape[1] - SEG_S - 1, n)
        f = lambda a, dt=jnp.float32: jnp.asarray(np.stack([a[i, j:j + SEG_S + 1] for i, j in zip(w, s)]), dt)  # noqa: E731
        g = lambda a: jnp.asarray(np.stack([a[i, :, j:j + SEG_S + 1] for i, j in zip(w, s)]), jnp.float32)  # noqa: E731
        return f(r), f(q), f(cells_all, jnp.int32), g(targets), g(direction)

    r_test, q_test, c_test, d_test, s_test = segments(test, 32)
    test_loss = jax.jit(lambda raw, rb, qb: kl_loss(raw, rb, qb)[0])
    test_r2 = jax.jit(lambda raw: aux_score(kl_loss(raw, r_test, q_test)[2], d_test))
    raw0 = raw = start_signs(task, task.init(jax.random.PRNGKey(0)), p_exc_start)
    st = opt.init(raw)
    hist, n_bad = [], 0
    for k in range(steps):
        raw, st, val, bad = update(raw, st, *segments(train, BATCH))
        n_bad += int(bad > 0)
        if k % 25 == 0 or k == steps - 1:
            hist.append({"step": k + 1, "train_loss": float(val), "test_kl": float(test_loss(raw, r_test, q_test))}
                        | ({f"test_r2_{c}_{t}": float(x) for (c, (t, _)), x in zip(aux.items(), test_r2(raw))} if aux else {}))
            print(hist[-1], f"{time.time() - t0:.0f} s", flush=True)
    fit_s = time.time() - t0
    z = np.asarray(jax.jit(jax.vmap(lambda rs: circuit_logits(task, raw, rs, values)))(r_test))[:, SKIP_S:]
    qt = np.asarray(q_test)[:, 1:][:, SKIP_S:]
    rt = np.asarray(r_test)[:, 1:][:, SKIP_S:]
    by_cell = drive_by_level_and_direction(np.asarray(c_test)[:, 1:][:, SKIP_S:], qt, 1 / (1 + np.exp(-z)), edges)
    # baselines on the same test samples: a constant drive, and the best function of r(t) alone (20 bins)
    edges = np.quantile(rt, np.linspace(0, 1, 21))
    b = np.clip(np.digitize(rt, edges) - 1, 0, 19)
    per_bin = np.array([qt[b == i].mean() if np.any(b == i) else qt.mean() for i in range(20)])
    gain = jax.jit(lambda zz: direction_gain(zz, s_test)[0])
    z_full = jnp.asarray(np.concatenate([np.zeros((z.shape[0], SKIP_S), z.dtype), z], 1))
    fit = {"test_kl_start": float(test_loss(raw0, r_test, q_test)), "test_kl_trained": kl(qt, 1 / (1 + np.exp(-z))),
           "test_direction_gain_trained": np.round(np.asarray(gain(z_full)), 3).tolist(),
           "test_direction_gain_teacher": np.round(np.asarray(gain(drive_logit(q_test[:, 1:], LOGIT_FLOOR))), 3).tolist(),
           "test_kl_constant_drive": kl(qt, np.full_like(qt, qt.mean())),
           "test_kl_best_function_of_r_now": kl(qt, per_bin[b]),
           "corr_drive_teacher_test": float(np.corrcoef(1 / (1 + np.exp(-z.ravel())), qt.ravel())[0, 1]),
           "steps_with_nonfinite_gradient": n_bad, "history": hist, "fit_wall_s": round(fit_s, 1),
           "drive_by_level_and_direction": by_cell, "contrast_weight": contrast_weight, "profile_weight": profile_weight}
    if aux:
        fit["aux"] = [{"cell": c, "target": t, "weight": float(w), "test_r2_start": float(a), "test_r2_trained": float(b)}
                      for (c, (t, w)), a, b in zip(aux.items(), test_r2(raw0), test_r2(raw))]
    if aux_amplitude:
        amp = jax.jit(lambda raw: amplitude(kl_loss(raw, r_test, q_test)[2]))
        fit["aux_amplitude"] = [{"cell": c, "minimum_sd_mV": float(m), "test_sd_mV_start": round(float(a), 3),
                                 "test_sd_mV_trained": round(float(b), 3)}
                                for (c, m), a, b in zip(aux_amplitude.items(), amp(raw0), amp(raw))]
    vals = values(raw)
    fit["tau_ms_quantiles_0_25_50_75_100"] = np.percentile(np.asarray(vals["tau_ms"]), [0, 25, 50, 75, 100]).round(
        1).tolist()
    closed = closed_loop(task, vals, [("wild_type", ())] + list(ABLATIONS.items()), task.memory_tau_s,
                         transform_loop=transform)
    for name in plates:
        if name != "radial":
            closed |= {f"{name}/{k}": v for k, v in
                       closed_loop(task, vals, [("wild_type", ())], task.memory_tau_s, field=pb.plate(name),
                                   transform_loop=transform).items()}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    command = " ".join(["python experiments/thermotaxis/imitate.py", f"--teacher {teacher}", f"--rank {rank}",
                        f"--init-from {init_from}" if init_from else "", f"--lr {lr:g}",
                        f"--out {out_name}" if out_name else "", f"--polarity {polarity}",
                        f"--vth-init {vth_init_mV:g}" if vth_init_mV is not None else "",
                        f"--weight-scale {weight_scale:g}" if weight_scale is not None else "",
                        f"--bias-max {bias_max_pA:g}" if bias_max_pA is not None else "",
                        f"--reversal-gain {reversal_gain:g}" if reversal_gain is not None else "",
                        f"--contrast-weight {contrast_weight:g}" if contrast_weight else "",
                        f"--tau-start '{json.dumps(tau_start)}'" if tau_start else "",
                        f"--tau-fixed '{json.dumps(tau_fixed)}'" if tau_fixed else "",
                        f"--weight-fixed '{json.dumps(weight_fixed)}'" if weight_fixed else "",
                        f"--tc-weights '{json.dumps(tc_weights)}'" if tc_weights else "",
                        f"--aux '{json.dumps(aux)}'" if aux else "",
                        f"--aux-amplitude '{json.dumps(aux_amplitude)}'" if aux_amplitude else "",
                        f"--p-exc-start '{json.dumps(p_exc_start)}'" if p_exc_start else "",
                        f"--steps {steps}" if steps != STEPS else "",
                        f"--logit-weight {logit_weight:g}" if logit_weight else "",
                        f"--direction-weight {direction_weight:g}" if direction_weight else "",
                        f"--profile-weight {profile_weight:g}" if profile_weight else "",
                        f"--weight-max-factor {weight_max_factor:g}" if weight_max_factor is not None else "",
                        f"--afd-phasic '{json.dumps(afd_phasic)}'" if afd_phasic else "",
                        "--afd-phasic-fixed" if afd_phasic_fixed else "",
                        f"--range-weight {range_weight:g}" if range_weight else "",
                        f"--plates {','.join(plates)}" if tuple(plates) != ("radial",) else "",
                        f"--gap-factor {gap_factor:g}" if gap_factor != 1.0 else "--ship"])
    prov = {"command": " ".join(command.split()), "teacher": best,
            "teacher_source": teacher, "teacher_rank": rank, "init_from": init_from, "lr": lr, "polarity": polarity,
            "vth_init_mV": task.circuit_cfg["vth_init_mV"], "weight_scale": task.circuit_cfg["weight_scale"],
            "bias_max_pA": task.circuit_cfg["bias_max_pA"], "reversal_gain_init": task.readout["reversal_gain"],
            "weight_max_factor": task.circuit_cfg["weight_max_factor"], "git_commit": commit, "transducer_memory_tau_s": task.memory_tau_s,
            "afd_phasic_start": task.afd_phasic, "plates": {n: pb.PLATES[n] for n in plates},
            **({"afd_aib_gap_factor": gap_factor} if gap_factor != 1.0 else {}),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "body": {"pirouette_duration_s": PIROUETTE_S},
            "fit": {k: v for k, v in fit.items() if k != "history"}}
    path = save_values(HERE / "results" / (out_name or OUT_NAME[teacher]) / "head_circuit.npz", vals, task.synapse_names,
                       task.cell_names, prov)
    if ship:
        shutil.copyfile(path, DEFAULT_DATA)
        shutil.copyfile(path.with_suffix(".json"), DEFAULT_DATA.with_suffix(".json"))
        print("shipped to", DEFAULT_DATA)
    return {"teacher": best, "teacher_source": teacher, "fit": fit, "closed_loop": closed, "wall_time_s": round(time.time() - t0, 1),
            "settings": {"teacher_rank": rank, "init_from": init_from or "c302 (scaled)", "lr": lr, "steps": steps,
                         "transducer_memory_tau_s": task.memory_tau_s, "polarity": polarity,
                         "vth_init_mV": task.circuit_cfg["vth_init_mV"], "weight_scale": task.circuit_cfg["weight_scale"],
                         "bias_max_pA": task.circuit_cfg["bias_max_pA"], "reversal_gain_init": task.readout["reversal_gain"],
                         "tau_start_ms": tau_start or {}, "tau_fixed_ms": tau_fixed or {},
                         "weight_fixed": weight_fixed or {}, "tc_weights": tc_weights or {},
                         "afd_phasic_start": task.afd_phasic, "afd_phasic_fixed": afd_phasic_fixed,
                         "range_weight": range_weight, "plates": list(plates), "afd_aib_gap_factor": gap_factor,
                         "afd_phasic_trained": afd_phasic_from_values({k: np.asarray(x) for k, x in vals.items()})},
            "polarity": task.polarity_report(vals)}


def drive_table(rows) -> list[str]:
    """Markdown lines of :func:`drive_by_level_and_direction` (nothing for results written before it)."""
    if not rows:
        return []
    fmt = lambda x: "—" if x is None else f"{x:.3f}"  # noqa: E731
    return ["## Drive by response level and direction (test segments; mean pirouette drive per s)", "",
            "| z_f (level) | teacher: rising / falling | circuit: rising / falling | samples rising / falling |",
            "|---|---|---|---|"] + [
        f"| {r['z_f_from']:.2f} … {r['z_f_to']:.2f} | {fmt(r['teacher_rising'])} / {fmt(r['teacher_falling'])} | "
        f"{fmt(r['circuit_rising'])} / {fmt(r['circuit_falling'])} | {r['n_rising']} / {r['n_falling']} |" for r in rows] + [""]


def markdown(res: dict) -> str:
    f = res["fit"]
    L = ["# The head circuit trained by imitation of the best hand-wired policy", "",
         f"Written by `experiments/thermotaxis/imitate.py` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
         f"{res['wall_time_s']} s). Teacher: the {res.get('teacher_source', 'random')} policy "
         f"({'policy_refine.py' if res.get('teacher_source') == 'refined' else 'policy_bounds.py'}): "
         f"{res['teacher']}. Settings: {res.get('settings', {})}.", "", "## Open-loop fit (test segments, KL(teacher ‖ circuit) per second, nats)", "",
         "| drive | KL |", "|---|---|",
         f"| the circuit at the start | {f['test_kl_start']:.3f} |", f"| a constant drive | {f['test_kl_constant_drive']:.3f} |",
         f"| the best function of the present response r(t) alone | {f['test_kl_best_function_of_r_now']:.3f} |",
         f"| **the trained circuit** | **{f['test_kl_trained']:.3f}** |", "| the teacher itself | 0 |", "",
         f"Correlation of the trained drive with the teacher's: {f['corr_drive_teacher_test']:.2f}. Trained time "
         f"constants (ms, min/25/50/75 %/max): {f['tau_ms_quantiles_0_25_50_75_100']}. Steps with a non-finite "
         f"gradient entry (zeroed): {f['steps_with_nonfinite_gradient']} of {res.get('settings', {}).get('steps', STEPS)}.", "",
         *drive_table(f.get("drive_by_level_and_direction")),
         "## Closed loop (radial plate, 24 worms per T_c, 20 min, seed 1234, pirouette events)", "",
         "| circuit | T_c 15 °C: final (iso, index) | T_c 20 °C | T_c 25 °C |", "|---|---|---|---|"]

    def row(label: str, key: str) -> str:
        cells = [res["closed_loop"][f"{key}/{tc:g}"] for tc in pb.TCS]
        return f"| {label} | " + " | ".join(
            f"{s['mean_final_temp_c']:.2f} ± {s['sd_final_temp_c']:.2f} ({s['isothermal_fraction']:.2f}, "
            f"{s['thermotaxis_index']:+.2f})" for s in cells) + " |"
    L += [row(case if case == "wild_type" else case + " killed", case) for case in ["wild_type"] + list(ABLATIONS)]
    L += [row(f"wild type, {name} plate", f"{name}/wild_type") for name in res.get("settings", {}).get("plates", [])
          if name != "radial"]
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ship", action="store_true", help="also copy the circuit to owjax/data/thermotaxis/")
    ap.add_argument("--teacher", choices=tuple(OUT_NAME), default="random",
                    help="random: the best policy of policy_bounds.py; refined: that of policy_refine.py; "
                    "compressed: the best on the log-compressed response (policy_bounds.py --compressed)")
    ap.add_argument("--rank", type=int, default=0, help="with --teacher random: the rank-th best policy (0: the best)")
    ap.add_argument("--init-from", default=None, help="start the circuit from c302's scaled weights (default) or "
                    "'shipped' (owjax/data/thermotaxis/head_circuit.npz) or a head_circuit.npz path")
    ap.add_argument("--lr", type=float, default=LR, help=f"Adam learning rate (default {LR})")
    ap.add_argument("--polarity", choices=("c302", "transmitter"), default="c302",
                    help="the connections' signs: c302's (fixed) or the synapse_polarity transmitter prior "
                    "(RIB inhibitory; AIZ, AIB, RIA, RIM, SMD outputs trained)")
    ap.add_argument("--vth-init", type=float, default=None,
                    help="start of the synaptic thresholds (mV; default the experiment's −40)")
    ap.add_argument("--weight-scale", type=float, default=None,
                    help="start weights as a fraction of c302's (default the experiment's 0.05)")
    ap.add_argument("--bias-max", type=float, default=None,
                    help="bound of the tonic bias per cell (pA; default the experiment's 3)")
    ap.add_argument("--reversal-gain", type=float, default=None,
                    help="start of the pirouette read-out's gain per 10 mV of AVA − AVB (default the experiment's 2)")
    ap.add_argument("--contrast-weight", type=float, default=0.0,
                    help="weight of the rising − falling contrast of the drive per level bin in the loss (default 0: KL only)")
    ap.add_argument("--tau-start", type=json.loads, default=None,
                    help='starting time constants (ms) of named connections, JSON, e.g. \'{"AFDL->AIYL": 1200}\' '
                    '(the rest start at 1 s)')
    ap.add_argument("--tau-fixed", type=json.loads, default=None,
                    help='time constants (ms) of named connections held fixed through training, JSON, e.g. '
                    '\'{"AFDL->AIYL": 1200}\' (the rest are trained, from --tau-start or 1 s)')
    ap.add_argument("--weight-fixed", type=json.loads, default=None,
                    help='weights of named connections held fixed through training, JSON, e.g. \'{"AVBR->AVAR": 0.01}\' '
                    '(within their bounds: (0, weight_max_factor × weight_scale × c302\'s])')
    ap.add_argument("--tc-weights", type=json.loads, default=None,
                    help='draw training segments from the worms of each cultivation temperature in proportion to '
                    'these weights, JSON, e.g. \'{"15": 3}\' (default 1 each)')
    ap.add_argument("--aux", type=json.loads, default=None,
                    help='cells whose potential should carry a signal of the teacher, with the weight of (1 − r²) in '
                    'the loss, JSON, e.g. \'{"AIZR": ["derivative", 0.5]}\' (targets: ' + ", ".join(AUX_TARGETS) + ")")
    ap.add_argument("--aux-amplitude", type=json.loads, default=None,
                    help='cells whose potential must vary with at least this standard deviation (mV) over the scored '
                    'seconds, JSON, e.g. \'{"AIBL": 3}\' (a loss (1 − sd/minimum)² below it; the --aux correlation '
                    'alone is blind to amplitude)')
    ap.add_argument("--p-exc-start", type=json.loads, default=None,
                    help='start of named free connections\' excitatory fraction, JSON, e.g. \'{"AIZR->AIBR": 0.1}\' '
                    '(with --polarity transmitter)')
    ap.add_argument("--direction-weight", type=float, default=0.0,
                    help="weight of the squared difference between the circuit's and the teacher's direction gain "
                    "(slope of the drive logit on tanh(D/σ_d) per level bin; drive_gain.py) in the loss (default 0)")
    ap.add_argument("--logit-weight", type=float, default=0.0,
                    help=f"weight of the squared difference between the circuit's drive logit and the teacher's "
                    f"(clipped to ±{LOGIT_FLOOR:g}) in the loss (default 0: KL only)")
    ap.add_argument("--profile-weight", type=float, default=0.0,
                    help="weight of the squared difference between the logits of the circuit's and the teacher's mean "
                    "drive in each level bin, rising and falling (drive_profile_mismatch) in the loss (default 0)")
    ap.add_argument("--weight-max-factor", type=float, default=None,
                    help="trained weights lie in (0, this × their start] (default the experiment's 4)")
    ap.add_argument("--afd-phasic", type=json.loads, default=None,
                    help='AFD\'s phasic channel (owjax.sensory.phasic: a band-pass of the transducer\'s response '
                    'injected beside the tonic current), its start, JSON, e.g. \'{"gain_pA": 100, "tau_fast_s": 0.47, '
                    '"tau_slow_s": 1.22}\' (trained; default: none, or the --init-from circuit\'s own)')
    ap.add_argument("--range-weight", type=float, default=0.0,
                    help="weight of a penalty on potentials beyond c302's I–V table (−100 … 60 mV), the mean of "
                    "((V − bound)/10 mV)² over cells and seconds, in the loss (default 0)")
    ap.add_argument("--afd-phasic-fixed", action="store_true",
                    help="hold AFD's phasic channel (gain and time constants) at its start instead of training it")
    ap.add_argument("--plates", default="radial",
                    help="comma-separated plates whose wandering worms the circuit imitates the teacher on "
                    f"(policy_bounds.PLATES: {', '.join(pb.PLATES)}; default radial); each but radial also gets "
                    "a wild-type closed-loop row")
    ap.add_argument("--gap-factor", type=float, default=1.0,
                    help="the AFD–AIB gap junctions' weight × this, held through training and the closed-loop rows "
                    "(default 1: c302's; not saved with the circuit, and --ship refuses it)")
    ap.add_argument("--steps", type=int, default=STEPS, help=f"Adam steps (default {STEPS})")
    ap.add_argument("--out", default=None, help="results name (default: imitation / imitation_refined)")
    args = ap.parse_args()
    if args.gap_factor != 1.0 and (args.ship or not args.out):
        raise SystemExit("--gap-factor needs --out and refuses --ship: the saved circuit does not carry the gap "
                         "junctions' weights (only its provenance records the factor)")
    if not args.gap_factor > 0:
        raise SystemExit(f"--gap-factor must be > 0, got {args.gap_factor}")
    out = main(args.ship, args.teacher, args.rank, args.init_from, args.lr, args.out, args.polarity, args.vth_init,
               args.weight_scale, args.bias_max, args.reversal_gain, args.contrast_weight, args.tau_start,
               args.tau_fixed, args.aux, args.steps, args.p_exc_start, args.logit_weight, args.direction_weight,
               args.weight_max_factor, args.profile_weight, args.aux_amplitude, args.weight_fixed, args.tc_weights,
               args.afd_phasic, args.afd_phasic_fixed, args.range_weight, tuple(args.plates.split(",")), args.gap_factor)
    name = args.out or OUT_NAME[args.teacher]
    (HERE / "results" / f"{name}.json").write_text(json.dumps(out, indent=1, default=float) + "\n")
    (HERE / "results" / f"{name}.md").write_text(markdown(out))
    print(markdown(out))

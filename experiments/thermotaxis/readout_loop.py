"""Would the loop reach its targets if the pirouette drive were read from the cells that carry the rule? (diagnostic)

``drive_profile.py`` found that the shipped circuit's AIB, AIZ and AIY, read out together, fit the
teacher's drive better (KL 0.117) and with more direction gain (2.1–2.6 above θ) than AVA − AVB, the
loop's read-out (KL 0.226, 1.3–1.5), and than any other read-out of AVA and AVB. This script puts such
read-outs into the closed loop *without retraining the circuit*: the loop's
:class:`~owjax.navigation.loop.ReversalCommand` is replaced by :class:`CellReadout`,
σ(Σᵢ wᵢ Vᵢ + b) over the named cells' potentials (mV), with w and b fitted by KL to the teacher's drive
on the *training* wandering worms of ``imitate.py`` (open loop; a small ridge penalty on the
standardised weights), and scored on the held-out ones. It is a diagnostic of where the circuit loses
the behaviour, not a loop the package ships: Gray et al. (2005) place the control of turning in AIB,
AIZ and AIY, but through downstream cells (RIM, AVA, …) that this read-out skips, and AIB's part here
is sub-mV.

Closed loop as ``imitate.closed_loop`` (radial plate, 24 worms per T_c, 20 min, pirouette events,
held-out worms of seed 1234); ablated cells keep their starting potential, so a read-out term of a
killed cell becomes a constant. The first row runs the loop's own read-out through the same code, to
check it against ``imitate.py``'s numbers. Each read-out is also tried with its logit multiplied by
:data:`LOGIT_SCALES` (the offset re-set to keep the mean drive on the training worms): more direction
gain, and more of everything else.

Run: ``.venv/bin/python experiments/thermotaxis/readout_loop.py [CIRCUIT.npz]`` (≈ 8 min; default:
the shipped circuit). Writes ``results/readout_loop.{json,md}``. With ``--offsets D …`` instead: the
all-cell read-out, its logit × 1 and × 2, shifted by each offset D (logit units), wild type only
(:func:`offset_sweep`; ``results/readout_loop_offsets.json``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float
from scipy.optimize import brentq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import drive_gain as dg  # noqa: E402
from drive_profile import fit_logistic  # noqa: E402
import imitate as im  # noqa: E402
import policy_bounds as pb  # noqa: E402

from owjax.core.component import AbstractCoupling  # noqa: E402
from owjax.fitting.tasks.thermotaxis import ABLATIONS  # noqa: E402
from owjax.navigation.circuit import FORWARD_CELLS, HEAD_CELLS, REVERSAL_CELLS  # noqa: E402
from owjax.navigation.evaluate import evaluate_thermotaxis  # noqa: E402
from owjax.navigation.loop import ReversalCommand  # noqa: E402
from owjax.navigation.params import DEFAULT_DATA, load_values  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
P = lambda *names: tuple(c + s for c in names for s in "LR")  # noqa: E731
#: the read-outs put into the loop: name → cells, and whether the ablations are run for it
READOUTS = {"AIB + AIZ + AIY": (P("AIB", "AIZ", "AIY"), True),
            "a weight per AVA/AVB cell": (REVERSAL_CELLS + FORWARD_CELLS, False),
            "a weight per circuit cell (bound)": (HEAD_CELLS, False)}
RIDGE = 1e-3
#: the read-outs' logits are also tried multiplied by these factors (the offset re-set so that the mean
#: drive on the training worms stays the fitted one): does more direction gain, with its noise, help?
LOGIT_SCALES = (2.0, 3.0)


class CellReadout(AbstractCoupling):
    """Circuit → body pirouette drive ``σ(Σᵢ wᵢ Vᵢ + b)`` over the potentials Vᵢ (mV) of chosen cells."""

    weight_per_mV: Float[Array, " k"]
    bias: Float[Array, ""]
    cells: tuple[int, ...] = eqx.field(static=True)
    source: str = eqx.field(static=True)
    target: str = eqx.field(static=True)
    target_input: str = eqx.field(static=True)

    def __init__(self, weight_per_mV, bias, cells):
        self.weight_per_mV, self.bias = jnp.asarray(weight_per_mV), jnp.asarray(bias)
        self.cells = tuple(int(i) for i in cells)
        self.source, self.target, self.target_input = "circuit", "body", "reversal"

    def __call__(self, t, source_outputs) -> Array:
        v = source_outputs["V_mV"][jnp.asarray(self.cells)]
        return jax.nn.sigmoid(jnp.dot(v, self.weight_per_mV.astype(v.dtype)) + self.bias.astype(v.dtype))


def fit_readout(v: np.ndarray, q: np.ndarray, rows: list[int]) -> tuple[np.ndarray, float]:
    """(w per mV, b) of the logistic read-out of ``v[:, rows]`` (mV) fitted to ``q`` by KL (+ ridge)."""
    return fit_logistic(v[:, rows], q, RIDGE)


def potentials(task, raw, r, segs):
    """(logits, potentials) of the scored seconds of ``segs``, flattened."""
    z, v = im.open_loop(task, raw, r, segs)
    return z[:, im.SKIP_S:].ravel().astype(np.float64), v[:, im.SKIP_S:].reshape(-1, v.shape[-1]).astype(np.float64)


def with_readout(readout):
    """The loop transform that replaces the loop's ReversalCommand by ``readout`` (None: the identity)."""
    def swap(loop):
        if readout is None:
            return loop
        i = [k for k, c in enumerate(loop.couplings) if isinstance(c, ReversalCommand)][0]
        return eqx.tree_at(lambda m: m.couplings[i], loop, readout)
    return swap


def closed_loop(task, vals, readout, ablate, tc, seed: int = 1234) -> dict:
    """One row of ``imitate.closed_loop`` (the same :func:`~owjax.navigation.evaluate.evaluate_thermotaxis`
    call) with the loop's ReversalCommand replaced by ``readout`` (None: kept)."""
    s, _ = evaluate_thermotaxis(pb.FIELD_, task.body, vals, tc, 24, 1200.0, seed, ablate, 1.0, "C1", 10.0, "float32",
                                memory_tau_s=task.memory_tau_s, transform_loop=with_readout(readout))
    return {k: round(float(s[k]), 3) for k in ("mean_final_temp_c", "sd_final_temp_c", "isothermal_fraction",
                                                 "thermotaxis_index")}


def offset_keeping_mean(u: np.ndarray, p_mean: float) -> float:
    """The offset b with mean σ(u + b) = ``p_mean`` over the training seconds' logits ``u`` (without offset)."""
    c = float(np.log(p_mean / (1 - p_mean)) - np.mean(u))
    return brentq(lambda bb: float(np.mean(1 / (1 + np.exp(-(u + bb))))) - p_mean, c - 50.0, c + 50.0)


class Fitted:
    """What both studies start from: the teacher, the held-out seconds, the saved circuit (task, raw,
    the file's values as saved — ``task.values(raw)`` differs by float32 rounding, which 20 minutes of
    pirouette events amplify: the loop's own read-out then ends up to 0.5 °C elsewhere), and the
    potentials and teacher drive on the training and held-out seconds."""

    def __init__(self, path: Path):
        self.teacher = im.teacher_params("compressed", 0)
        self.data = dg.HeldOutSeconds(self.teacher)
        self.task, raw, _ = im.saved_task(path)
        self.vals = load_values(path)
        self.index = self.task.loop["circuit"].index
        train_segs = [(w, s) for w in range(im.N_TRAIN) for s in im.HELD_OUT_SEG_STARTS]
        _, self.v_train = potentials(self.task, raw, self.data.r, train_segs)
        self.q_train = im.scored_seconds(im.teacher_drive(self.data.r, self.teacher), train_segs)
        self.z_test, self.v_test = potentials(self.task, raw, self.data.r, self.data.segs)
        self.q_test = self.data.drive(self.teacher)


def main(path: Path) -> dict:
    t0 = time.time()
    f = Fitted(path)
    teacher, data, task, vals, index = f.teacher, f.data, f.task, f.vals, f.index
    v_train, q_train, z_test, v_test, q_test = f.v_train, f.q_train, f.z_test, f.v_test, f.q_test
    res = {"circuit": str(path), "teacher": teacher, "ridge": RIDGE, "readouts": {}}
    res["readouts"]["the loop's (AVA − AVB)"] = {
        "kl_held_out": round(im.kl(q_test, 1 / (1 + np.exp(-z_test))), 4),
        "direction_gain_logit": dg.direction_gain(z_test, data.sign_d, data.fifth),
        "closed_loop": {f"wild_type/{tc:g}": closed_loop(task, vals, None, (), tc) for tc in pb.TCS}}
    print(json.dumps(res["readouts"]["the loop's (AVA − AVB)"]), flush=True)
    for name, (cells, with_ablations) in READOUTS.items():
        rows = [index(c) for c in cells]
        w, b = fit_readout(v_train, q_train, rows)
        z = v_test[:, rows] @ w + b
        ro = CellReadout(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32), tuple(rows))
        cases = [("wild_type", ())] + (list(ABLATIONS.items()) if with_ablations else [])
        row = {"cells": list(cells), "weight_per_mV": dict(zip(cells, np.round(w, 4).tolist())), "bias": round(b, 4),
               "kl_held_out": round(im.kl(q_test, 1 / (1 + np.exp(-z))), 4),
               "direction_gain_logit": dg.direction_gain(np.clip(z, -im.LOGIT_FLOOR, im.LOGIT_FLOOR), data.sign_d,
                                                         data.fifth),
               "closed_loop": {f"{case}/{tc:g}": closed_loop(task, vals, ro, killed, tc)
                               for case, killed in cases for tc in pb.TCS}}
        res["readouts"][name] = row
        print(name, json.dumps({k: v for k, v in row.items() if k != "weight_per_mV"}), flush=True)
        z_train = v_train[:, rows] @ w + b
        p_mean = float(np.mean(1 / (1 + np.exp(-z_train))))
        for a in LOGIT_SCALES:
            b_a = offset_keeping_mean(a * (z_train - b), p_mean)
            ro = CellReadout(jnp.asarray(a * w, jnp.float32), jnp.asarray(b_a, jnp.float32), tuple(rows))
            za = a * (v_test[:, rows] @ w) + b_a
            res["readouts"][f"{name}, logit × {a:g}"] = {
                "kl_held_out": round(im.kl(q_test, 1 / (1 + np.exp(-za))), 4),
                "direction_gain_logit": dg.direction_gain(np.clip(za, -im.LOGIT_FLOOR, im.LOGIT_FLOOR), data.sign_d,
                                                          data.fifth),
                "closed_loop": {f"wild_type/{tc:g}": closed_loop(task, vals, ro, (), tc) for tc in pb.TCS}}
            print(name, a, json.dumps(res["readouts"][f"{name}, logit × {a:g}"]), flush=True)
    res["wall_time_s"] = round(time.time() - t0, 1)
    res["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return res


def offset_sweep(path: Path, offsets: list[float], scales: tuple[float, ...] = (1.0, 2.0)) -> dict:
    """The bound read-out (a weight per circuit cell) with its logit scaled by ``scales`` (mean drive kept)
    and then shifted by each of ``offsets`` (logit units: more or fewer pirouettes everywhere), wild type in
    the closed loop: does any (scale, offset) of the best linear read-out bring the 15 °C worms home? And
    the loop's own read-out shifted by the same offsets (its threshold moved)."""
    t0 = time.time()
    f = Fitted(path)
    task, vals = f.task, f.vals
    rows = [f.index(c) for c in HEAD_CELLS]
    w, b = fit_readout(f.v_train, f.q_train, rows)
    u0 = f.v_train[:, rows] @ w
    p_mean = float(np.mean(1 / (1 + np.exp(-(u0 + b)))))
    out = {"circuit": str(path), "readout": "a weight per circuit cell (bound)", "rows": [], "loop_readout_rows": []}
    # the loop's own read-out shifted by the same logit offsets: its threshold moved by −10 mV · offset / gain
    g, thr = float(np.asarray(vals["reversal_gain"])), np.asarray(vals["reversal_threshold_mV"])
    for d in offsets:
        shifted = dict(vals) | {"reversal_threshold_mV": np.asarray(float(thr) - 10.0 * d / g, thr.dtype)}
        row = {"offset": d, "reversal_threshold_mV": round(float(thr) - 10.0 * d / g, 3),
               "closed_loop": {f"wild_type/{tc:g}": closed_loop(task, shifted, None, (), tc) for tc in pb.TCS}}
        out["loop_readout_rows"].append(row)
        print(json.dumps(row), flush=True)
    for a in scales:
        b_a = offset_keeping_mean(a * u0, p_mean)
        for d in offsets:
            ro = CellReadout(jnp.asarray(a * w, jnp.float32), jnp.asarray(b_a + d, jnp.float32), tuple(rows))
            row = {"logit_scale": a, "offset": d,
                   "mean_drive_training_worms": round(float(np.mean(1 / (1 + np.exp(-(a * u0 + b_a + d))))), 3),
                   "closed_loop": {f"wild_type/{tc:g}": closed_loop(task, vals, ro, (), tc) for tc in pb.TCS}}
            out["rows"].append(row)
            print(json.dumps(row), flush=True)
    out["wall_time_s"] = round(time.time() - t0, 1)
    out["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return out


def markdown(res: dict) -> str:
    L = ["# The shipped circuit with other pirouette read-outs, in the closed loop", "",
         f"Written by `experiments/thermotaxis/readout_loop.py` ({res['date']}, {res['wall_time_s']} s); circuit "
         f"`{Path(res['circuit']).name}` (not retrained). Read-outs fitted by KL (ridge {res['ridge']}) on the "
         "training wandering worms of `imitate.py`; KL and direction gain on the held-out ones; closed loop: radial "
         "plate, 24 worms per T_c, 20 min, seed 1234. Final temperature ± sd (isothermal fraction, index).", "",
         "| read-out | KL | direction gain | case | T_c 15 °C | T_c 20 °C | T_c 25 °C |", "|---|---|---|---|---|---|---|"]
    for name, r in res["readouts"].items():
        cases = sorted({k.split("/")[0] for k in r["closed_loop"]}, key=lambda c: (c != "wild_type", c))
        for case in cases:
            cells = [r["closed_loop"][f"{case}/{tc:g}"] for tc in pb.TCS]
            L.append(f"| {name} | {r['kl_held_out']} | {r['direction_gain_logit']} | "
                     f"{case if case == 'wild_type' else case + ' killed'} | " + " | ".join(
                         f"{s['mean_final_temp_c']:.2f} ± {s['sd_final_temp_c']:.2f} ({s['isothermal_fraction']:.2f}, "
                         f"{s['thermotaxis_index']:+.2f})" for s in cells) + " |")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("circuit", nargs="?", type=Path, default=DEFAULT_DATA, help="a head_circuit.npz (default: the shipped one)")
    ap.add_argument("--offsets", type=float, nargs="+", default=None,
                    help="instead: the bound read-out (logit × 1 and × 2) shifted by these logit offsets, wild type "
                    "only; writes results/readout_loop_offsets.json")
    args = ap.parse_args()
    path = args.circuit.resolve()
    if not path.is_file():
        raise SystemExit(f"no saved circuit at {path} (give a head_circuit.npz written by imitate.py)")
    if args.offsets:
        sweep = offset_sweep(path, args.offsets)
        (RESULTS / "readout_loop_offsets.json").write_text(json.dumps(sweep, indent=1) + "\n")
        raise SystemExit(0)
    out = main(path)
    (RESULTS / "readout_loop.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "readout_loop.md").write_text(markdown(out))
    print(markdown(out))

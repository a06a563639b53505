"""What the thermotaxis loop can do at best: hand-wired policies instead of the circuit (issue 17).

Three measurements, all on the held-out radial plate (13 °C at the centre → 27 °C at 4.5 cm, the
plate's edge a wall), 24 worms per cultivation temperature (15, 20, 25 °C), 20 min, the body in its
events mode (pirouettes of ≈ 3 s started at the commanded rate):

1. **The body's capacity** — an oracle that knows T_c and the true temperature gradient pirouettes
   when the worm crawls away from T_c: ``reversal = Φ(k · dT/dt_forward · tanh(T − T_c) / 0.05 °C/s − base)``.
2. **What the AFD transducer tells** — a worm wandering with pirouettes at a constant rate; the
   transducer's normalised response binned by T − T_c and by warming/cooling.
3. **The best policy on the AFD response alone** — a random search over a seven-parameter policy
   that sees only the response r(t): two low-pass filters of r (τ_fast, τ_slow) give a level z_f and
   a derivative z_f − z_s, and ``away = tanh((z_f − z_s)/σ_d) · tanh((z_f − θ)/σ_l)`` ("rising above
   θ or falling below it") sets ``reversal = Φ(k · away − base)``. It is what a circuit with a
   seconds-long memory could compute from AFD; the best score is a bound on what training the head
   circuit can reach with this transducer (the search is not exhaustive, so the bound is loose).

Run: ``.venv/bin/python experiments/thermotaxis/policy_bounds.py [n_policies]`` (≈ 6 s per policy on
the 2-core CPU); writes ``results/policy_bounds.{json,md}``. ``… policy_bounds.py --heldout`` scores the
five best on worms the search did not use (seeds 1234 and 4321) → ``results/policy_bounds_heldout.json``;
``--derivative-only`` searches 40 policies without the level gate → ``results/policy_bounds_derivative_only.json``;
``--compressed [N]`` searches N policies on the log-compressed response → ``results/policy_bounds_compressed.json``;
``--plates`` scores that search's five best and the oracle on every plate of :data:`SCORED_PLATES` (held-out worms,
seed 1234) → ``results/policy_bounds_plates.{json,md}``; ``--compressed-plates [N]`` searches the compressed
policies scored on the radial and linear plates at once (that search's five best, then N random ones; ≈ 15 s
per policy) → ``results/policy_bounds_compressed_plates.{json,md}``.
The AFD transducer is the loop's (:func:`owjax.navigation.setup.navigation_transducer`: memory of T_c
with τ = 4 h); the results with the fitted τ_a = 1 301 s are kept in ``results/policy_bounds_tau1301.*``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from owjax.core.component import AbstractComponent, AbstractCoupling, Composite
from owjax.core.solve import SolverConfig, solve_ys
from owjax.navigation.body import NOISE_COLUMNS, NavigationBody
from owjax.navigation.loop import ArenaAtHead, PlateEdge, adapted_transducer_state, head_temperature
from owjax.navigation.setup import draw_worms, field_from_config, navigation_transducer
from owjax.sensory.component import GRUTransducer
from owjax.sensory.transducer import readout

RESULTS = Path(__file__).resolve().parent / "results"
FIELD = {"kind": "radial_temperature", "center_c": 13.0, "edge_c": 27.0, "radius_cm": 4.5}
# Named plates (``imitate.py --plates``, ``evaluate_shipped.py --plate``): the radial plate every fit used
# until 2026-12-07 (3.1 °C/cm), a linear plate over the same range at half its gradient (1.6 °C/cm), and
# one no fit uses (``linear_wide``: 11 → 29 °C over 9 cm, 2.0 °C/cm), for generality.
PLATES = {"radial": FIELD,
          "linear": {"kind": "linear_temperature", "t_min_c": 13.0, "t_max_c": 27.0, "width_cm": 9.0, "height_cm": 9.0},
          "linear_wide": {"kind": "linear_temperature", "t_min_c": 11.0, "t_max_c": 29.0, "width_cm": 9.0,
                          "height_cm": 9.0},
          # a thought-experiment plate, 20 × 20 cm at 2 °C/cm: the T_c isotherms 7.5 cm from its ends, beyond
          # where an uninformed worm spreads in 20 min, so the walls do not bias where it ends
          "linear_large": {"kind": "linear_temperature", "t_min_c": 0.0, "t_max_c": 40.0, "width_cm": 20.0,
                           "height_cm": 20.0}}
#: the plates ``--plates`` and ``--compressed-plates`` score on (``linear_large`` came later, for the ablations)
SCORED_PLATES = ("radial", "linear", "linear_wide")
TCS = (15.0, 20.0, 25.0)
DURATION_S, N_PER_TC, SEED = 1200.0, 24, 7
PIROUETTE_S = 3.0
F32 = jnp.float32


class OracleReversal(AbstractCoupling):
    """body → body ``reversal``: Φ(k · (dT/dt forward) · tanh(T − T_c) / 0.05 − base) — knows T_c and ∇T."""

    field: object
    k: jax.Array
    base: jax.Array
    tc: jax.Array
    source: str = eqx.field(static=True)
    target: str = eqx.field(static=True)
    target_input: str = eqx.field(static=True)

    def __init__(self, field, k, base, tc):
        self.field, self.k, self.base, self.tc = field, jnp.asarray(k, F32), jnp.asarray(base, F32), jnp.asarray(tc, F32)
        self.source = self.target = "body"
        self.target_input = "reversal"

    def __call__(self, t, so):
        p, th = so["pos_cm"], so["heading_rad"]
        g = jax.grad(lambda q: self.field(q[0], q[1]))(p)
        dtemp = 0.022 * (g[0] * jnp.cos(th) + g[1] * jnp.sin(th))
        return ndtr(self.k * dtemp * jnp.tanh(self.field(p[0], p[1]) - self.tc) / 0.05 - self.base)


class ResponsePolicy(AbstractComponent):
    """The hand-wired policy on the AFD response (see the module docstring); state: the two filters."""

    params: jax.Array  # k, θ, σ_d, base, σ_l, τ_fast (s), τ_slow (s)
    compress: float | None = eqx.field(static=True, default=None)
    time_unit_ms: ClassVar[float] = 1000.0

    @property
    def input_names(self):
        return {"r": "1"}

    def initial_state(self):
        return {"z": jnp.zeros(2, F32)}

    def vector_field(self, t, s, inputs=None):
        r, z = compressed(inputs["r"], self.compress), s["z"]
        return {"z": jnp.stack([(r - z[0]) / self.params[5], (r - z[1]) / self.params[6]])}

    def outputs(self, t, s):
        k, th, sd, base, sl = (self.params[i] for i in range(5))
        zf, zs = s["z"][0], s["z"][1]
        return {"reversal": ndtr(k * jnp.tanh((zf - zs) / sd) * jnp.tanh((zf - th) / sl) - base)}

    def state_variables(self):
        return {}

    def parameter_info(self):
        return {}


def compressed(r, c: float | None):
    """The response the policy filters: ``r`` itself, or with ``c`` the logarithmic compression
    log(max(r, 0) + c) — what c302's membrane does to a current (AFD's steady potential rises ≈ 7 mV per
    doubling of the injected current above 0.25 pA; README "Seventh attempt")."""
    if c is None:
        return r
    xp = jnp if isinstance(r, jax.Array) else np
    return xp.log(xp.maximum(r, 0.0) + c)


class _Pass(AbstractCoupling):
    key: str = eqx.field(static=True)
    source: str = eqx.field(static=True)
    target: str = eqx.field(static=True)
    target_input: str = eqx.field(static=True)

    def __init__(self, source, key, target, target_input):
        self.source, self.key, self.target, self.target_input = source, key, target, target_input

    def __call__(self, t, so):
        return so[self.key]


def plate(name: str):
    """The field of the named plate (:data:`PLATES`).

    Raises:
        SystemExit: an unknown name (the message lists the known ones).
    """
    if name not in PLATES:
        raise SystemExit(f"unknown plate {name!r}; known: {sorted(PLATES)}")
    return field_from_config(dict(PLATES[name]))


def draw_on(name: str, seed: int = SEED) -> dict:
    """Worms like :data:`WORMS` (24 per T_c, 20 min) on the named plate; ``radial`` with :data:`SEED` is :data:`WORMS`."""
    return draw_worms(jax.random.PRNGKey(seed), N_PER_TC * len(TCS), plate(name), TCS, DURATION_S)


def _setup():
    field = field_from_config(dict(FIELD))
    spec, params = navigation_transducer(dtype=F32)  # the loop's: memory of T_c with τ = 4 h
    body = NavigationBody(jnp.zeros((int(DURATION_S) + 2, NOISE_COLUMNS), F32), pirouette_duration_s=PIROUETTE_S)
    worms = draw_worms(jax.random.PRNGKey(SEED), N_PER_TC * len(TCS), field, TCS, DURATION_S)
    return field, spec, params, body, worms


FIELD_, SPEC, TPARAMS, BODY, WORMS = _setup()
SOLVER = SolverConfig("euler", dt_ms=10.0, max_steps=10_000_000)


def _afd_state(lp, tc):
    yb = lp["body"].initial_state()
    return adapted_transducer_state(lp["afd"], head_temperature(lp, yb["pos"], yb["heading"], yb["phase"]), tc)


def _per_worm(lp0, fn, worms=None):
    w = WORMS if worms is None else worms

    def one(xy, hd, nz, tc):
        lp = eqx.tree_at(lambda m: (m.components["body"].start_xy_cm, m.components["body"].start_heading_rad,
                                    m.components["body"].noise), lp0, (xy, hd, nz))
        return fn(lp, tc)
    return jax.vmap(one)(w["xy"], w["heading"], w["noise"], w["tc"])


@eqx.filter_jit
def oracle_tracks(k, base, tc, worms=None, field=None):
    """Centroid tracks of the oracle (:class:`OracleReversal`) for cultivation temperature ``tc`` on
    :data:`WORMS` of the radial plate, or on ``worms`` of ``field``."""
    field = FIELD_ if field is None else field
    lp0 = Composite({"body": BODY}, [OracleReversal(field, k, base, tc), PlateEdge(field)])
    return _per_worm(lp0, lambda lp, _: solve_ys(lp, DURATION_S * 1000, 10_000.0, solver=SOLVER,
                                                  y0={"body": lp["body"].initial_state()},
                                                  save=("body.pos",)).ys["body"]["pos"], worms)


def draw(seed: int) -> dict:
    """Another set of worms like :data:`WORMS` (same plate, T_c and duration; other starts and noise)."""
    return draw_worms(jax.random.PRNGKey(seed), N_PER_TC * len(TCS), FIELD_, TCS, DURATION_S)


@eqx.filter_jit
def policy_tracks(p, worms=None, compress: float | None = None, field=None):
    """Centroid tracks (worms, 121, 2; every 10 s) of the hand-wired policy ``p`` on :data:`WORMS` (or ``worms``);
    ``compress``: the policy filters :func:`compressed` responses; ``field``: another plate (default the radial one)."""
    field = FIELD_ if field is None else field
    lp0 = Composite({"afd": GRUTransducer(SPEC, TPARAMS), "policy": ResponsePolicy(p, compress), "body": BODY},
                    [ArenaAtHead(field), _Pass("afd", "response_norm", "policy", "r"),
                     _Pass("policy", "reversal", "body", "reversal"), PlateEdge(field)])

    def fn(lp, tc):
        y0 = {"afd": _afd_state(lp, tc), "policy": {"z": jnp.zeros(2, F32)}, "body": lp["body"].initial_state()}
        return solve_ys(lp, DURATION_S * 1000, 10_000.0, solver=SOLVER, y0=y0, save=("body.pos",)).ys["body"]["pos"]
    return _per_worm(lp0, fn, worms)


@eqx.filter_jit
def wander_response(base, field=None, worms=None):
    """Pirouettes at a constant rate Φ(−base); saves the centroid and the AFD response every second — on
    :data:`WORMS` of the radial plate, or on ``worms`` of ``field`` (e.g. :func:`plate`, :func:`draw_on`)."""
    field = FIELD_ if field is None else field
    lp0 = Composite({"afd": GRUTransducer(SPEC, TPARAMS), "body": BODY},
                    [ArenaAtHead(field), PlateEdge(field)])

    def fn(lp, tc):
        y0 = {"afd": _afd_state(lp, tc), "body": lp["body"].initial_state()}
        ys = solve_ys(lp, DURATION_S * 1000, 1000.0, solver=SOLVER, y0=y0, save=("body.pos", "afd.h"),
                      inputs={"body.reversal": ndtr(-base)}).ys
        return ys["body"]["pos"], jax.vmap(lambda h: readout(SPEC, TPARAMS, h))(ys["afd"]["h"])
    return _per_worm(lp0, fn, worms)


def policy_summary(p, worms, compress: float | None, field) -> dict:
    """:func:`summarise` of the policy ``p`` (its seven parameters, in order) on ``worms`` of ``field``."""
    return summarise(np.asarray(policy_tracks(jnp.asarray(p, F32), worms, compress, field)), np.asarray(worms["tc"]),
                     field)


def summarise(pos, tcs, field=None) -> dict:
    temp = np.asarray((FIELD_ if field is None else field)(pos[..., 0], pos[..., 1]))
    out = {}
    for tc in TCS:
        m = tcs == tc
        out[f"{tc:g}"] = {"final_mean_c": round(float(temp[m, -1].mean()), 2),
                          "final_sd_c": round(float(temp[m, -1].std()), 2),
                          "isothermal_last_10min": round(float(np.mean(np.abs(temp[m, -60:] - tc) < 1.0)), 2)}
    return out


def score(s: dict) -> float:
    """Mean |final − T_c| (°C) minus the mean isothermal fraction (lower is better)."""
    return float(np.mean([abs(v["final_mean_c"] - float(k)) for k, v in s.items()])
                 - np.mean([v["isothermal_last_10min"] for v in s.values()]))


def random_search(n_policies: int, draw_params, compress: float | None = None) -> list[dict]:
    """Score ``n_policies`` policies ``draw_params()`` (the seven parameters of :class:`ResponsePolicy`,
    in order) on :data:`WORMS`; all of them, best first."""
    tcs = np.asarray(WORMS["tc"])
    found = []
    for i in range(int(n_policies)):
        p = draw_params()
        s = summarise(np.asarray(policy_tracks(jnp.asarray(p, F32), None, compress)), tcs)
        found.append({"score": round(score(s), 3), "params": dict(zip(
            ("k", "theta", "sigma_d", "base", "sigma_l", "tau_fast_s", "tau_slow_s"), np.round(p, 4).tolist())),
            "by_tc": s})
        if (i + 1) % 10 == 0:
            print(f"policy {i + 1}/{n_policies}, best score {min(f['score'] for f in found):.2f}", flush=True)
    return sorted(found, key=lambda f: f["score"])


def main(n_policies: int = 150) -> dict:
    t0 = time.time()
    tcs = np.asarray(WORMS["tc"])
    res = {"field": FIELD, "duration_s": DURATION_S, "worms_per_tc": N_PER_TC, "pirouette_duration_s": PIROUETTE_S,
           "transducer_memory_tau_s": round(float(np.exp(TPARAMS["log_tau_adapt_s"])), 1)}
    rows = []
    for k, base in ((5.0, 1.0), (20.0, 1.0), (20.0, 2.0)):
        pos = np.concatenate([np.asarray(oracle_tracks(k, base, tc))[tcs == tc] for tc in TCS])
        rows.append({"k": k, "base": base} | {"by_tc": summarise(pos, np.sort(tcs))})
    res["oracle"] = rows
    print("oracle done", round(time.time() - t0), flush=True)
    pos, r = (np.asarray(a) for a in wander_response(2.0))
    temp = np.asarray(FIELD_(pos[..., 0], pos[..., 1]))
    off, dtemp = temp - tcs[:, None], np.gradient(temp, axis=1)
    bins = []
    for lo, hi in ((-8, -4), (-4, -2), (-2, -1), (-1, 0), (0, 1), (1, 2), (2, 4), (4, 8)):
        m = (off >= lo) & (off < hi)
        w, c = m & (dtemp > 0.01), m & (dtemp < -0.01)
        bins.append({"offset_c": [lo, hi], "warming_mean": round(float(r[w].mean()), 3), "n_warming": int(w.sum()),
                     "cooling_mean": round(float(r[c].mean()), 3), "n_cooling": int(c.sum()),
                     "warming_q10_q90": [round(float(q), 2) for q in np.percentile(r[w], [10, 90])],
                     "cooling_q10_q90": [round(float(q), 2) for q in np.percentile(r[c], [10, 90])]})
    res["response_by_offset"] = bins
    print("response table done", round(time.time() - t0), flush=True)
    rng = np.random.default_rng(3)
    found = random_search(n_policies, lambda: [
        rng.uniform(0.5, 6), rng.uniform(-0.1, 1.5), 10 ** rng.uniform(-2.5, -0.5), rng.uniform(1, 3),
        10 ** rng.uniform(-2, -0.5), 10 ** rng.uniform(-1, 0.5), 10 ** rng.uniform(0, 1.5)])
    res["search"] = {"n_policies": int(n_policies), "best": found[:5]}
    res["wall_time_s"] = round(time.time() - t0, 1)
    return res


def markdown(res: dict) -> str:
    L = ["# What the thermotaxis loop can do at best (hand-wired policies)", "",
         f"Written by `experiments/thermotaxis/policy_bounds.py` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
         f"{res['wall_time_s']} s). Radial plate 13 → 27 °C over 4.5 cm, {res['worms_per_tc']} worms per T_c, "
         f"AFD transducer memory τ = {res['transducer_memory_tau_s']:g} s, "
         f"{res['duration_s']:g} s, pirouettes as events of ≈ {res['pirouette_duration_s']:g} s.", "",
         "## 1. The body's capacity: an oracle that knows T_c pirouettes when moving away from it", "",
         "| k | base | T_c 15: final (iso) | T_c 20 | T_c 25 |", "|---|---|---|---|---|"]
    fmt = lambda v: f"{v['final_mean_c']} ± {v['final_sd_c']} ({v['isothermal_last_10min']})"  # noqa: E731
    for r in res["oracle"]:
        L.append(f"| {r['k']} | {r['base']} | " + " | ".join(fmt(r["by_tc"][f"{t:g}"]) for t in TCS) + " |")
    L += ["", "## 2. The AFD transducer's response (normalised) while wandering, by T − T_c", "",
          "| T − T_c (°C) | warming: mean [q10, q90] | cooling: mean [q10, q90] |", "|---|---|---|"]
    for b in res["response_by_offset"]:
        L.append(f"| [{b['offset_c'][0]}, {b['offset_c'][1]}) | {b['warming_mean']:+.3f} {b['warming_q10_q90']} | "
                 f"{b['cooling_mean']:+.3f} {b['cooling_q10_q90']} |")
    L += ["", f"## 3. The best of {res['search']['n_policies']} random policies on the response alone", "",
          "| score | k | θ | σ_d | base | σ_l | τ_fast (s) | τ_slow (s) | T_c 15: final (iso) | T_c 20 | T_c 25 |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in res["search"]["best"]:
        p = f["params"]
        L.append(f"| {f['score']} | " + " | ".join(str(p[k]) for k in p) + " | "
                 + " | ".join(fmt(f["by_tc"][f"{t:g}"]) for t in TCS) + " |")
    return "\n".join(L) + "\n"


def heldout(seeds=(1234, 4321), best=None, compress: float | None = None) -> list[dict]:
    """Policies on worms not used in the search (other starts, headings and noise: :func:`draw` with each
    of ``seeds``): ``best`` (search results, best first; default the five best of
    ``results/policy_bounds.json``), on the response :func:`compressed` by ``compress``."""
    if best is None:
        best = json.loads((RESULTS / "policy_bounds.json").read_text())["search"]["best"]
    out = []
    for seed in seeds:
        w = draw(seed)
        tcs = np.asarray(w["tc"])
        for i, f in enumerate(best):
            s = summarise(np.asarray(policy_tracks(jnp.asarray(list(f["params"].values()), F32), w, compress)), tcs)
            out.append({"seed": seed, "rank": i, "search_score": f["score"], "heldout_score": round(score(s), 3),
                        "by_tc": s})
            print(out[-1], flush=True)
    return out


def on_plates(seed: int = 1234, n_best: int = 5) -> dict:
    """The compressed search's ``n_best`` policies and the oracle (k = 20, base = 1) on worms of ``seed`` on
    every plate of :data:`SCORED_PLATES` — how far what was found on the radial plate carries to other gradients."""
    found = json.loads((RESULTS / "policy_bounds_compressed.json").read_text())
    out = {"seed": seed, "plates": {n: PLATES[n] for n in SCORED_PLATES}, "compress_c": found["compress_c"], "rows": []}
    for name in SCORED_PLATES:
        field, w = plate(name), draw_on(name, seed)
        tcs = np.asarray(w["tc"])
        for i, f in enumerate(found["best"][:n_best]):
            s = policy_summary(list(f["params"].values()), w, found["compress_c"], field)
            out["rows"].append({"plate": name, "policy": f"compressed rank {i}", "score": round(score(s), 3), "by_tc": s})
            print(out["rows"][-1], flush=True)
        pos = np.concatenate([np.asarray(oracle_tracks(20.0, 1.0, jnp.asarray(tc, F32), w, field))[tcs == tc]
                              for tc in TCS])
        s = summarise(pos, np.sort(tcs), field)
        out["rows"].append({"plate": name, "policy": "oracle (k 20, base 1)", "score": round(score(s), 3), "by_tc": s})
        print(out["rows"][-1], flush=True)
    return out



def plates_markdown(res: dict, title: str = "The radial plate's best policies on other plates",
                    flag: str = "--plates") -> str:
    L = [f"# {title}", "",
         f"Written by `python experiments/thermotaxis/policy_bounds.py {flag}` (worms of seed {res['seed']}, "
         "24 per T_c, 20 min). Plates: " + "; ".join(f"`{n}` {d}" for n, d in res["plates"].items()) + ".", "",
         "Final mean temperature (°C) and isothermal fraction of the last 10 min per T_c; score = mean "
         "|final − T_c| − mean isothermal fraction (lower is better).", "",
         "| plate | policy | T_c 15 | T_c 20 | T_c 25 | score |", "|---|---|---|---|---|---|"]
    for r in res["rows"]:
        L.append(f"| {r['plate']} | {r['policy']} | " + " | ".join(
            f"{v['final_mean_c']:.2f} ({v['isothermal_last_10min']:.2f})" for v in r["by_tc"].values())
            + f" | {r['score']:+.2f} |")
    return "\n".join(L) + "\n"


def derivative_only(n_policies: int = 40) -> list[dict]:
    """Random policies without the level gate (θ = −10, σ_l = 0.01: away = tanh((z_f − z_s)/σ_d), i.e.
    pirouette when the response rises), on the search's worms: the five best."""
    rng = np.random.default_rng(11)
    return random_search(n_policies, lambda: [
        rng.uniform(0.5, 6), -10.0, 10 ** rng.uniform(-2.5, -0.5), rng.uniform(1, 3), 0.01,
        10 ** rng.uniform(-1, 0.5), 10 ** rng.uniform(0, 1.5)])[:5]


def _compressed_draw(rng, c: float) -> list[float]:
    """One random policy for the log-compressed response (its seven parameters, in order): level θ and the two
    widths on the log scale's range (log c … log 2.7)."""
    return [rng.uniform(0.5, 6), rng.uniform(np.log(c), 1.0), 10 ** rng.uniform(-2.5, -0.3), rng.uniform(1, 3),
            10 ** rng.uniform(-2, -0.2), 10 ** rng.uniform(-1, 0.5), 10 ** rng.uniform(0, 1.5)]


def compressed_search(n_policies: int = 100, c: float = 0.15) -> dict:
    """Random policies on the log-compressed response log(max(r, 0) + c) (:func:`compressed`): can a
    policy in the coordinates c302's membranes give reach the targets? Level θ and the two widths are
    drawn on the log scale's range (log c … log 2.7). The two best are then scored on held-out worms
    (seeds 1234 and 4321)."""
    rng = np.random.default_rng(5)
    t0 = time.time()
    found = random_search(n_policies, lambda: _compressed_draw(rng, c), compress=c)
    ho = heldout(best=found[:2], compress=c)  # the two best on worms the search did not use
    return {"compress_c": c, "n_policies": int(n_policies), "best": found[:5], "heldout": ho,
            "wall_time_s": round(time.time() - t0, 1)}


def compressed_plates_search(n_policies: int = 40, plates=("radial", "linear"), c: float = 0.15) -> dict:
    """Policies on the log-compressed response scored on several plates at once (mean of :func:`score` over
    ``plates``, each on its search worms: :data:`WORMS` on the radial plate, :func:`draw_on` with :data:`SEED`
    on the others): the compressed search's five best, then ``n_policies`` random ones drawn as that search
    drew them. The three best are then scored on held-out worms (seed 1234) of every plate of :data:`SCORED_PLATES`."""
    rng = np.random.default_rng(6)
    t0 = time.time()
    worms = {name: WORMS if name == "radial" else draw_on(name) for name in plates}
    keys = ("k", "theta", "sigma_d", "base", "sigma_l", "tau_fast_s", "tau_slow_s")
    start = [[f["params"][k] for k in keys] for f in
             json.loads((RESULTS / "policy_bounds_compressed.json").read_text())["best"]]
    draws = start + [_compressed_draw(rng, c) for _ in range(int(n_policies))]
    found = []
    for i, p in enumerate(draws):
        by_plate = {}
        for name, w in worms.items():
            field = plate(name)
            by_plate[name] = policy_summary(p, w, c, field)
        found.append({"score": round(float(np.mean([score(v) for v in by_plate.values()])), 3),
                      "params": dict(zip(keys, np.round(p, 4).tolist())), "by_plate": by_plate,
                      "source": f"compressed rank {i}" if i < len(start) else "random"})
        print(f"policy {i + 1}/{len(draws)}: score {found[-1]['score']:+.2f}, best "
              f"{min(f['score'] for f in found):+.2f}, {time.time() - t0:.0f} s", flush=True)
    found.sort(key=lambda f: f["score"])
    heldout_rows = []
    for rank, f in enumerate(found[:3]):
        for name in SCORED_PLATES:
            field, w = plate(name), draw_on(name, 1234)
            sm = policy_summary(list(f["params"].values()), w, c, field)
            heldout_rows.append({"plate": name, "policy": f"plates rank {rank} ({f['source']})",
                                 "score": round(score(sm), 3), "by_tc": sm})
            print(heldout_rows[-1], flush=True)
    return {"compress_c": c, "plates_searched": list(plates), "n_random": int(n_policies), "best": found[:5],
            "seed": 1234, "plates": {n: PLATES[n] for n in SCORED_PLATES}, "rows": heldout_rows, "wall_time_s": round(time.time() - t0, 1)}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--compressed-plates"]:  # → results/policy_bounds_compressed_plates.{json,md}
        res = compressed_plates_search(int(sys.argv[2]) if len(sys.argv) > 2 else 40)
        (RESULTS / "policy_bounds_compressed_plates.json").write_text(json.dumps(res, indent=1) + "\n")
        (RESULTS / "policy_bounds_compressed_plates.md").write_text(plates_markdown(
            res, "Policies searched on the radial and linear plates at once, on held-out worms", "--compressed-plates"))
        sys.exit(0)
    if sys.argv[1:2] == ["--compressed"]:  # → results/policy_bounds_compressed.json
        n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
        (RESULTS / "policy_bounds_compressed.json").write_text(json.dumps(compressed_search(n), indent=1) + "\n")
        sys.exit(0)
    if sys.argv[1:] == ["--derivative-only"]:  # → results/policy_bounds_derivative_only.json
        (RESULTS / "policy_bounds_derivative_only.json").write_text(json.dumps(derivative_only(), indent=1) + "\n")
        sys.exit(0)
    if sys.argv[1:] == ["--plates"]:  # the compressed search's best on every plate → results/policy_bounds_plates.*
        res = on_plates()
        (RESULTS / "policy_bounds_plates.json").write_text(json.dumps(res, indent=1) + "\n")
        (RESULTS / "policy_bounds_plates.md").write_text(plates_markdown(res))
        print(plates_markdown(res))
        sys.exit(0)
    if sys.argv[1:] == ["--heldout"]:  # the search's best policies on other worms → results/policy_bounds_heldout.json
        (RESULTS / "policy_bounds_heldout.json").write_text(json.dumps(heldout(), indent=1) + "\n")
        sys.exit(0)
    out = main(int(sys.argv[1]) if len(sys.argv) > 1 else 150)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "policy_bounds.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "policy_bounds.md").write_text(markdown(out))
    print(markdown(out))

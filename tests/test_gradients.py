"""Gradient checks: ``jax.grad`` through the diffrax solve against central finite differences.

float64, a smooth trace loss (mean of V over time and cells plus mean Ca in nM), tight solver
tolerances (Tsit5, rtol = atol = 1e-10) so that both the adjoint and the finite differences see
the ODE's own sensitivities rather than step-size noise. For every parameter group (each float
leaf of :class:`owjax.neural.network.NetworkModel`) two checks:

* a *directional* derivative along a random ±1 direction scaled by each entry's magnitude (so every
  entry of the array contributes), ∇L·d against (L(p + h·d) − L(p − h·d)) / 2h, h = 1e-4;
* the *largest single entry* (the one with the largest |∂L/∂p_k · p_k|) on its own.

Known ill-behaved directions are tested as such (see docs/gradients.md): pulse on/off times have
zero gradient (the pulse is a step function of t), and the resting Ca of the Ca pool sits at 0
where the Ca ≥ 0 clamp makes the derivative one-sided.

``python tests/test_gradients.py`` prints the table of docs/gradients.md.
"""

from __future__ import annotations

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

from owjax.neural.build import build_model, build_spec  # noqa: E402
from owjax.core.solve import SolverConfig, solve_ys  # noqa: E402

TIGHT = SolverConfig("tsit5", rtol=1e-10, atol=1e-10, max_steps=400_000)
H = 1e-4  # relative step of the central differences
REL_TOL = 1e-3  # 0.1 %
NEGLIGIBLE = 1e-8  # |dL| (mV per unit relative change) below which a group is "negligible"

#: leaves that are flags or integer-like data rather than parameters
NOT_PARAMETERS: set[str] = set()  # flags and timing are bool/static now, not float leaves
#: leaves whose gradient is knowingly not the derivative of the loss (tested separately)
ILL_BEHAVED = {".membranes.ca_resting_mM"}

#: step scale for entries whose value is 0 (a relative step is then meaningless): by unit
_ZERO_SCALE = {"_mM": 1e-7, "_mV": 1.0}


def _named_leaves(tree):
    flat = jax.tree_util.tree_flatten_with_path(eqx.filter(tree, eqx.is_inexact_array))[0]
    return {jax.tree_util.keystr(p): leaf for p, leaf in flat}


def _getter(name: str):
    parts = [p for p in name.split(".") if p]

    def get(m):
        for p in parts:
            m = getattr(m, p)
        return m

    return get


def _scale(name: str, v: np.ndarray) -> np.ndarray:
    zero = next((s for suffix, s in _ZERO_SCALE.items() if name.endswith(suffix)), 1.0)
    return np.where(np.abs(v) > 0, np.abs(v), zero)


class Problem:
    """A model, a loss, its compiled value and gradient functions."""

    def __init__(self, model, duration_ms: float, dt_out_ms: float = 0.5, solver: SolverConfig = TIGHT,
                 h: float = H):
        self.model = model
        self.h = h

        def loss(m):
            ys = solve_ys(m, duration_ms, dt_out_ms, solver).ys
            return jnp.mean(ys["V"]) + jnp.mean(ys["Ca"])  # mV + nM

        self.loss = eqx.filter_jit(loss)
        self.grad = eqx.filter_jit(eqx.filter_grad(loss))
        self._evaluate()

    def _evaluate(self):
        t0 = time.perf_counter()
        self.L0 = float(self.loss(self.model))
        self.g = _named_leaves(self.grad(self.model))
        self.setup_s = time.perf_counter() - t0

    def with_model(self, model) -> "Problem":
        """The same loss (same compiled functions) at other parameter values of the same structure."""
        other = object.__new__(Problem)
        other.__dict__.update(self.__dict__)
        other.model = model
        other._evaluate()
        return other

    def at(self, name: str, value) -> float:
        return float(self.loss(eqx.tree_at(_getter(name), self.model, jnp.asarray(value))))

    def directional(self, name: str, d: np.ndarray, h: float | None = None) -> tuple[float, float]:
        """(AD, central FD) of the derivative of L along ``d`` for leaf ``name``."""
        h = self.h if h is None else h
        v = np.asarray(_getter(name)(self.model))
        ad = float(np.sum(np.asarray(self.g[name]) * d))
        fd = (self.at(name, v + h * d) - self.at(name, v - h * d)) / (2 * h)
        return ad, fd

    def check_group(self, name: str, seed: int = 0) -> dict:
        v = np.asarray(_getter(name)(self.model))
        sc = _scale(name, v)
        d = sc * np.random.default_rng(seed).choice([-1.0, 1.0], size=v.shape)
        ad, fd = self.directional(name, d)
        k = int(np.argmax(np.abs(np.asarray(self.g[name]) * sc)))
        e = np.zeros_like(v)
        e.flat[k] = sc.flat[k]
        ad1, fd1 = self.directional(name, e)
        return dict(name=name, size=int(v.size), ad=ad, fd=fd, rel=_rel(ad, fd), entry=k, ad1=ad1, fd1=fd1,
                    rel1=_rel(ad1, fd1))


def _rel(ad: float, fd: float) -> float:
    if abs(fd) < NEGLIGIBLE and abs(ad) < NEGLIGIBLE:
        return 0.0
    return abs(ad - fd) / max(abs(fd), NEGLIGIBLE)


def _assert_group(r: dict):
    for key, a, f in (("rel", r["ad"], r["fd"]), ("rel1", r["ad1"], r["fd1"])):
        if abs(f) < NEGLIGIBLE:
            assert abs(a - f) < 10 * NEGLIGIBLE, r
        else:
            assert r[key] < REL_TOL, f"{r['name']}: AD {a:.6e} vs FD {f:.6e} (rel {r[key]:.2e})"


def _groups(problem: Problem) -> list[str]:
    return [n for n, leaf in problem.g.items() if leaf.size and n not in NOT_PARAMETERS | ILL_BEHAVED]


# ------------------------------------------------------------------------------------ problems
H_SPIKING = 1e-6


def _spiking_spec():
    pulses = [dict(cell=c, delay_ms=20.0, duration_ms=360.0, amplitude_pA=6.0) for c in ("ADAL", "PVCL", "MDR01")]
    return build_spec("C1", "IClamp", stimulus_mode="replace", pulses=pulses)


@pytest.fixture(scope="module")
def c1_syns():
    """C1 Syns (8 cells, graded synapses + gap junctions), 700 ms: the 1 pA pulses start at 500 ms."""
    return Problem(build_model(build_spec("C1", "Syns"), "float64"), 700.0)


@pytest.fixture(scope="module")
def c0_syns():
    """C0 Syns: gradedSynapse2 (Kunert-style) synapses."""
    return Problem(build_model(build_spec("C0", "Syns"), "float64"), 700.0)


@pytest.fixture(scope="module")
def spiking():
    """C1 IClamp with a 6 pA pulse 20–380 ms into each cell: 4 spikes in each cell.

    Spike times are steep functions of the parameters: the central difference needs h = 1e-6 here
    (g_max: h = 1e-3 → 1.4 % off, 1e-4 → 0.67 %, 1e-5 → 0.009 %, 1e-6 → 1e-6).
    """
    return Problem(build_model(_spiking_spec(), "float64"), 400.0, h=H_SPIKING)


# ------------------------------------------------------------------------------------ tests
def test_every_parameter_group_c1_syns(c1_syns):
    groups = _groups(c1_syns)
    assert {".channels.g_max_nS", ".gates.tau_ms", ".graded.vth_mV", ".gaps.g_nS", ".ca_gates.k_mM",
            ".membranes.ca_rho", ".stimuli.amplitude_pA"} <= set(groups)
    for name in groups:
        _assert_group(c1_syns.check_group(name))


def test_graded_synapse2_c0_syns(c0_syns):
    groups = [n for n in _groups(c0_syns) if n.startswith((".graded2", ".gaps", ".channels", ".stimuli"))]
    assert {".graded2.ar_per_ms", ".graded2.ad_per_ms", ".graded2.beta_per_mV", ".graded2.vth_mV",
            ".graded2.g_nS", ".graded2.weight", ".graded2.erev_mV"} <= set(groups)
    for name in groups:
        _assert_group(c0_syns.check_group(name))


def test_through_spikes(spiking):
    """Spike times move smoothly with the parameters as long as no spike appears or disappears."""
    from owjax.core.solve import solve
    from owjax.validate import spike_times

    sol = solve(spiking.model, 400.0, 0.05, TIGHT)
    n = [len(spike_times(sol.t_ms, sol.ys["V"][:, i])) for i in range(3)]
    assert n == [4, 4, 4], n
    for name in (".channels.g_max_nS", ".channels.erev_mV", ".gates.midpoint_mV", ".gates.scale_mV",
                 ".gates.tau_ms", ".membranes.ca_decay_ms", ".membranes.ca_rho", ".ca_gates.ca_half_mM",
                 ".ca_gates.k_mM", ".ca_gates.alpha", ".stimuli.amplitude_pA", ".membranes.capacitance_pF"):
        _assert_group(spiking.check_group(name))


def test_pulse_timing_is_static_input_not_a_parameter(c1_syns):
    """Pulse edges are the solver's jump times, so their timing is static input: not a float leaf that
    filter_grad or a fit could move (fitting it across a moved discontinuity would be wrong)."""
    names = set(c1_syns.g)
    assert ".stimuli.amplitude_pA" in names
    assert not {".stimuli.delay_ms", ".stimuli.duration_ms", ".channels.is_ca"} & names
    assert c1_syns.model.stimuli.delay_ms and isinstance(c1_syns.model.stimuli.delay_ms, tuple)
    from owjax.fitting.params import ParameterSpace, ParameterSpecError

    with pytest.raises(ParameterSpecError, match="delay_ms"):
        ParameterSpace(c1_syns.model, {"delay": {"leaf": "stimuli.delay_ms", "bounds": [0, 1000]}})


def test_ca_clamp_makes_resting_ca_one_sided(c1_syns):
    """Resting Ca is 0 in c302 and Ca ≥ 0 is enforced: the adjoint gives the right derivative."""
    name = ".membranes.ca_resting_mM"
    v = np.asarray(_getter(name)(c1_syns.model))
    assert np.all(v == 0)
    d = np.full_like(v, 1e-7)  # +1e-7 mM
    ad = float(np.sum(np.asarray(c1_syns.g[name]) * d))
    h = 1e-2
    L0 = c1_syns.L0
    right = (-3 * L0 + 4 * c1_syns.at(name, v + h * d) - c1_syns.at(name, v + 2 * h * d)) / (2 * h)
    left = (3 * L0 - 4 * c1_syns.at(name, v - h * d) + c1_syns.at(name, v - 2 * h * d)) / (2 * h)
    assert _rel(ad, right) < REL_TOL, (ad, right)
    assert _rel(ad, left) > 0.1, (ad, left)  # below 0 the clamp holds Ca at 0 in the quiet cells


def test_graded_synapse_tau_guard_region(c1_syns):
    """Drive URYDL (presynaptic to SMDDR) with 100 pA from 500 ms: V_pre > Vth + δ·ln(1e4 − 1) ≈ 46 mV
    for a while, where 1 − s∞ < 1e-4 and owjax floors the synaptic time constant. The floor is a kink
    of the vector field (continuous), so the adjoint still matches finite differences."""
    amp = np.asarray(c1_syns.model.stimuli.amplitude_pA).copy()
    k = c1_syns.model.cell_names.index("URYDL")
    rows = [i for i, c in enumerate(np.asarray(c1_syns.model.stimuli.cell)) if c == k]
    amp[rows[0]] = 100.0
    p = c1_syns.with_model(eqx.tree_at(lambda m: m.stimuli.amplitude_pA, c1_syns.model, jnp.asarray(amp)))
    from owjax.core.solve import solve

    v = solve(p.model, 700.0, 0.05, TIGHT).ys["V"][:, k]
    assert (v > 46.1).mean() > 0.01  # the guard is active for > 7 ms of the run
    for name in (".graded.vth_mV", ".graded.delta_mV", ".graded.k_per_ms", ".graded.g_nS"):
        _assert_group(p.check_group(name))


@pytest.mark.slow
def test_long_solve_oscillator():
    """C1 Oscillator (14 cells, 31 graded synapses, 24 gap junctions) for 1 s, incl. a spike in AVBL/R."""
    p = Problem(build_model(build_spec("C1", "Oscillator"), "float64"), 1000.0)
    for name in _groups(p):
        _assert_group(p.check_group(name))


# ------------------------------------------------------------------------------------ report
def _report():  # pragma: no cover - documentation helper
    problems = {
        "C1 Syns 700 ms": lambda: Problem(build_model(build_spec("C1", "Syns"), "float64"), 700.0),
        "C0 Syns 700 ms": lambda: Problem(build_model(build_spec("C0", "Syns"), "float64"), 700.0),
        "C1 IClamp 6 pA, spiking, 400 ms": lambda: Problem(build_model(_spiking_spec(), "float64"), 400.0,
                                                          h=H_SPIKING),
        "C1 Oscillator 1000 ms": lambda: Problem(build_model(build_spec("C1", "Oscillator"), "float64"), 1000.0),
    }
    for title, make in problems.items():
        t0 = time.perf_counter()
        p = make()
        print(f"\n### {title} (loss {p.L0:.6f}; compile+first value+gradient {p.setup_s:.1f} s)\n")
        print("| group | n | dL along d (AD) | FD | rel. err | largest entry: AD | FD | rel. err |")
        print("|---|---|---|---|---|---|---|---|")
        for name in [n for n, leaf in p.g.items() if leaf.size and n not in NOT_PARAMETERS]:
            r = p.check_group(name)
            print(f"| `{name[1:]}` | {r['size']} | {r['ad']:.6e} | {r['fd']:.6e} | {r['rel']:.1e} | "
                  f"{r['ad1']:.6e} | {r['fd1']:.6e} | {r['rel1']:.1e} |")
        print(f"\n(total {time.perf_counter() - t0:.1f} s)")


def _report_extras():  # pragma: no cover - documentation helper
    """Numbers of docs/gradients.md: the spike threshold, the step size through spikes, the guard."""
    sp = Problem(build_model(_spiking_spec(), "float64"), 400.0, h=H_SPIKING)
    name = ".stimuli.amplitude_pA"
    print("\n### central-difference step through spikes (g_max, random direction)\n")
    v = np.asarray(sp.model.channels.g_max_nS)
    d = np.abs(v) * np.random.default_rng(0).choice([-1.0, 1.0], size=v.shape)
    for h in (1e-3, 1e-4, 1e-5, 1e-6, 1e-7):
        ad, fd = sp.directional(".channels.g_max_nS", d, h)
        print(f"h={h:g}: AD {ad:.7e} FD {fd:.7e} rel {_rel(ad, fd):.1e}")
    print("\n### spike threshold: loss and dL/dA (all three pulses at amplitude A, 20-380 ms)\n")

    def at_amp(a):
        m = eqx.tree_at(lambda m: m.stimuli.amplitude_pA, sp.model, jnp.full(3, float(a)))
        return sp.with_model(m)

    lo, hi = 1.0, 6.0  # bisection on "ADAL spikes within 400 ms"
    from owjax.core.solve import solve
    from owjax.validate import spike_times

    def n_spikes(a):
        p = at_amp(a)
        sol = solve(p.model, 400.0, 0.05, TIGHT)
        return len(spike_times(sol.t_ms, sol.ys["V"][:, 0])), p

    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if n_spikes(mid)[0] > 0:
            hi = mid
        else:
            lo = mid
    print(f"threshold A* = {hi:.9f} pA (no spike at {lo:.9f})")
    for eps in (-1e-2, -1e-4, -1e-6, 1e-6, 1e-4, 1e-2):
        a = hi + eps if eps > 0 else lo + eps
        n, p = n_spikes(a)
        g = float(np.sum(np.asarray(p.g[name])))
        h = 1e-9
        fd = (p.at(name, np.full(3, a + h)) - p.at(name, np.full(3, a - h))) / (2 * h)
        print(f"A = A*{eps:+g}: spikes {n}, L = {p.L0:.6f} mV, dL/dA AD {g:.4e}, FD(h=1e-9) {fd:.4e}")
    print("\n### graded-synapse tau guard (URYDL driven with 100 pA from 500 ms, C1 Syns 700 ms)\n")
    syn = Problem(build_model(build_spec("C1", "Syns"), "float64"), 700.0)
    amp = np.asarray(syn.model.stimuli.amplitude_pA).copy()
    k = syn.model.cell_names.index("URYDL")
    amp[[i for i, c in enumerate(np.asarray(syn.model.stimuli.cell)) if c == k][0]] = 100.0
    g = syn.with_model(eqx.tree_at(lambda m: m.stimuli.amplitude_pA, syn.model, jnp.asarray(amp)))
    vk = solve(g.model, 700.0, 0.05, TIGHT).ys["V"][:, k]
    print(f"V_pre max {vk.max():.2f} mV, above 46.05 mV for {(vk > 46.05).mean() * 700:.2f} ms")
    for n in (".graded.vth_mV", ".graded.delta_mV", ".graded.k_per_ms"):
        r = g.check_group(n)
        print(f"{n}: AD {r['ad']:.6e} FD {r['fd']:.6e} rel {r['rel']:.1e}")


if __name__ == "__main__":  # pragma: no cover
    import sys

    _report_extras() if "--extras" in sys.argv else _report()

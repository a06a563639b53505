"""Core equations, network construction and the differentiable solve (issue: owjax core)."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

from owjax.neural.c302_data import CONFIGS, PARAMETER_SETS, load_c302_network  # noqa: E402
from owjax.neural.channels import ca_dependent_h_factor, ca_pool_rate, sigmoid_steady_state  # noqa: E402
from owjax.neural.network import NetworkModel  # noqa: E402
from owjax.neural.neuroml import UnsupportedNeuroMLError, read_network  # noqa: E402
from owjax.core.solve import SolverStepsExhausted, get_solver, solve, solve_ys  # noqa: E402
from owjax.neural.spec import UnknownCellError  # noqa: E402
from owjax.neural.synapses import graded_synapse2_rate, graded_synapse_rate  # noqa: E402
from owjax.core.units import UnitError, parse_quantity  # noqa: E402


# --------------------------------------------------------------------------- units
def test_parse_quantity_units():
    assert parse_quantity("0.09 nS", "conductance") == pytest.approx(0.09)
    assert parse_quantity("10pS", "conductance") == pytest.approx(0.01)
    assert parse_quantity("0.025per_ms", "per_time") == pytest.approx(0.025)
    assert parse_quantity(".5 per_s", "per_time") == pytest.approx(5e-4)
    # 3 mS/cm² on a 5 µm sphere (78.54 µm²) is 2.356 nS
    assert parse_quantity("3 mS_per_cm2", "conductance_density") * math.pi * 25 == pytest.approx(2.35619, rel=1e-5)
    assert parse_quantity("1 uF_per_cm2", "specific_capacitance") == pytest.approx(0.01)
    assert parse_quantity("2E-6 mol_per_cm3", "concentration") == pytest.approx(2.0)
    with pytest.raises(UnitError, match="unknown unit"):
        parse_quantity("3 furlongs")
    with pytest.raises(UnitError, match="voltage"):
        parse_quantity("3 nS", "voltage")


# --------------------------------------------------------------------------- gates, by hand
def test_k_slow_steady_state_by_hand():
    # c302 cell_C.xml k_slow n: midpoint 19.8741 mV, scale 15.8512 mV, rate 1
    v = -45.0
    expected = 1.0 / (1.0 + math.exp((19.8741 - v) / 15.8512))
    got = sigmoid_steady_state(jnp.array(v), jnp.array(19.8741), jnp.array(15.8512), jnp.array(1.0))
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_inactivation_gate_by_hand():
    # ca_boyle f: midpoint 25.1815 mV, scale -5.03176 mV (inactivation: high at rest)
    v = -60.0
    expected = 1.0 / (1.0 + math.exp((25.1815 - v) / -5.03176))
    got = sigmoid_steady_state(jnp.array(v), jnp.array(25.1815), jnp.array(-5.03176), jnp.array(1.0))
    assert float(got) == pytest.approx(expected, rel=1e-12)
    assert float(got) > 0.99


def test_ca_dependent_h_by_hand():
    # customHGate h: alpha 0.282473, ca_half 6.41889e-8 mM, k -1.00056e-8 mM
    for ca in (0.0, 6.41889e-8, 2e-7):
        h_inf = 1.0 / (1.0 + math.exp((6.41889e-8 - ca) / -1.00056e-8))
        expected = 1.0 + (h_inf - 1.0) * 0.282473
        got = ca_dependent_h_factor(jnp.array(ca), jnp.array(6.41889e-8), jnp.array(-1.00056e-8), jnp.array(0.282473))
        assert float(got) == pytest.approx(expected, rel=1e-12)


def test_ca_pool_clamped_at_zero():
    # at Ca = 0 with an outward drive (impossible physically, but the clamp must hold)
    r = ca_pool_rate(jnp.array(0.0), jnp.array(-5.0), jnp.array(78.54), jnp.array(2.38919e-7),
                     jnp.array(11.5943), jnp.array(0.0))
    assert float(r) == 0.0
    # inward Ca current raises Ca: rho * I / A
    r = ca_pool_rate(jnp.array(0.0), jnp.array(1.0), jnp.array(78.54), jnp.array(2.38919e-7),
                     jnp.array(11.5943), jnp.array(0.0))
    assert float(r) == pytest.approx(2.38919e-7 / 78.54, rel=1e-12)
    # decay towards rest
    r = ca_pool_rate(jnp.array(1e-7), jnp.array(0.0), jnp.array(78.54), jnp.array(2.38919e-7),
                     jnp.array(11.5943), jnp.array(0.0))
    assert float(r) == pytest.approx(-1e-7 / 11.5943, rel=1e-12)


def test_graded_synapse_rates_by_hand():
    # C1 exc synapse: Vth 0 mV, delta 5 mV, k 0.025/ms
    s, vpre = 0.2, -10.0
    s_inf = 1 / (1 + math.exp((0 - vpre) / 5))
    expected = 0.025 * (s_inf - s) / (1 - s_inf)
    got = graded_synapse_rate(jnp.array(s), jnp.array(vpre), jnp.array(0.0), jnp.array(5.0), jnp.array(0.025))
    assert float(got) == pytest.approx(expected, rel=1e-12)
    # C0 gradedSynapse2: ar 0.5/s, ad 20/s, beta 0.25/mV, vth -20 mV
    phi = 1 / (1 + math.exp(0.25 * (-20 - vpre)))
    expected = 5e-4 * phi * (1 - s) - 0.02 * s
    got = graded_synapse2_rate(jnp.array(s), jnp.array(vpre), jnp.array(-20.0), jnp.array(0.25),
                               jnp.array(5e-4), jnp.array(0.02))
    assert float(got) == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------- networks vs c302
def test_c1_full_counts_equal_c302():
    c = load_c302_network("C1", "Full").counts()
    assert c["neurons"] == 302 and c["muscles"] == 95
    assert c["neuron_to_neuron_exc"] == 2079
    assert c["neuron_to_neuron_inh"] == 200
    assert c["gap_junction_entries"] == 1084
    assert c["neuron_to_muscle_exc"] == 428
    assert c["neuron_to_muscle_inh"] == 124


@pytest.mark.parametrize("ps", PARAMETER_SETS)
@pytest.mark.parametrize("cfg", CONFIGS)
def test_every_captured_network_builds(ps, cfg):
    spec = load_c302_network(ps, cfg)
    m = NetworkModel.from_spec(spec)
    y0 = m.initial_state()
    dy = m.vector_field(0.0, y0)
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in dy.values())
    assert m.n_cells == len(spec.cells)


def test_full_network_matches_connectome_rule():
    """The captured c302 network equals the projections owjax.neural.connectome derives from cect."""
    from owjax.neural.connectome import c302_projections, load_connectome

    spec = load_c302_network("C1", "Full")
    proj = c302_projections(load_connectome("c302"))
    ours = sorted(
        (p.pre, p.post, p.kind, float(p.weight)) for p in proj
    )
    theirs = sorted(
        [(c.pre, c.post, "inh" if "_inh" in c.synapse else "exc", c.weight) for c in spec.chemical]
        + [(c.pre, c.post, "gap", c.weight) for c in spec.electrical]
    )
    assert ours == theirs


def test_component_parameters_come_from_c302():
    spec = load_c302_network("C1", "Full")
    neuron = spec.cell_types["GenericNeuronCell"]
    dens = {d.channel: d for d in neuron.channels}
    assert dens["k_slow"].erev_mV == -60.0 and dens["ca_boyle"].erev_mV == 40.0
    assert spec.channels["k_slow"].gates[0].tau_ms == pytest.approx(25.0007)
    assert spec.synapses["neuron_to_neuron_inh_syn"].get("erev_mV") == -70.0
    assert spec.ca_pools["CaPool"].decay_ms == pytest.approx(11.5943)
    c0 = load_c302_network("C0", "Full")
    assert {s.kind for s in c0.synapses.values()} == {"graded2", "gap"}


def test_neuroml_loader_reads_a_c302_file(tmp_path):
    from owjax.neural.c302_data import network_dir

    src = network_dir("C1", "Syns")
    for f in src.iterdir():
        (tmp_path / f.name.removesuffix(".gz")).write_bytes(gzip.decompress(f.read_bytes()))
    spec = read_network(tmp_path / "c302_C1_Syns.net.nml")
    assert spec.counts() == load_c302_network("C1", "Syns").counts()


def test_neuroml_loader_rejects_unsupported_elements(tmp_path):
    (tmp_path / "bad.net.nml").write_text(
        '<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="x">'
        '<expOneSynapse id="syn1" gbase="1nS" erev="0mV" tauDecay="2ms"/></neuroml>'
    )
    with pytest.raises(UnsupportedNeuroMLError, match="expOneSynapse"):
        read_network(tmp_path / "bad.net.nml")


def test_subset_and_unknown_cells():
    spec = load_c302_network("C1", "Full")
    sub = spec.subset(["AVBL", "AVBR", "DB1", "VB1"])
    assert sub.cell_names == ("AVBL", "AVBR", "DB1", "VB1")
    assert all(c.pre in sub.cell_names and c.post in sub.cell_names for c in sub.chemical + sub.electrical)
    with pytest.raises(UnknownCellError, match="AVBL"):
        spec.subset(["AVBX"])


# --------------------------------------------------------------------------- solve, jit, vmap, grad
@pytest.fixture(scope="module")
def full_model():
    return NetworkModel.from_spec(load_c302_network("C1", "Full"))


def test_full_network_finite(full_model):
    sol = solve(full_model, 100.0, 1.0)
    assert all(np.isfinite(v).all() for v in sol.ys.values())
    assert sol.ys["V"].shape == (101, 397)


def test_full_network_vmap_over_parameter_sets(full_model):
    scales = jnp.array([0.8, 1.0, 1.2])

    @jax.jit
    def batch(scales):
        def one(s):
            m = eqx.tree_at(lambda m: m.graded.g_nS, full_model, full_model.graded.g_nS * s)
            return solve_ys(m, 20.0, 1.0, "tsit5").ys["V"][-1]

        return jax.vmap(one)(scales)

    v = batch(scales)
    assert v.shape == (3, 397) and bool(jnp.all(jnp.isfinite(v)))
    single = solve(eqx.tree_at(lambda m: m.graded.g_nS, full_model, full_model.graded.g_nS * 1.2), 20.0, 1.0)
    np.testing.assert_allclose(np.asarray(v[2]), single.ys["V"][-1], atol=1e-5)


def test_full_network_grad_reaches_every_parameter_group(full_model):
    def loss(params, static):
        m = eqx.combine(params, static)
        ys = solve_ys(m, 60.0, 1.0, "tsit5").ys  # the c302 pulse starts at 50 ms
        return jnp.mean(ys["V"]) + 1e3 * jnp.mean(ys["Ca"])

    params, static = eqx.partition(full_model, eqx.is_inexact_array)
    grads = jax.jit(jax.grad(loss))(params, static)
    flat = {jax.tree_util.keystr(p): g for p, g in jax.tree_util.tree_flatten_with_path(grads)[0]}
    for k, g in flat.items():
        assert bool(jnp.all(jnp.isfinite(g))), k
    for group in (".membranes.capacitance_pF", ".channels.g_max_nS", ".channels.erev_mV", ".gates.tau_ms",
                  ".gates.midpoint_mV", ".graded.weight", ".graded.g_nS", ".graded.vth_mV",
                  ".gaps.g_nS", ".stimuli.amplitude_pA", ".membranes.ca_decay_ms"):
        assert float(jnp.abs(flat[group]).max()) > 0.0, group


def test_step_exhaustion_is_an_error():
    m = NetworkModel.from_spec(load_c302_network("C1", "IClamp"))
    with pytest.raises(SolverStepsExhausted, match="max_steps"):
        solve(m, 500.0, 1.0, get_solver({"method": "tsit5", "max_steps": 5}))


def test_solver_config_errors():
    with pytest.raises(ValueError, match="tsit5"):
        get_solver("tsit6")
    with pytest.raises(ValueError, match="unknown solver option"):
        get_solver({"method": "tsit5", "rtoll": 1e-3})
    with pytest.raises(ValueError, match="positive"):
        get_solver({"method": "tsit5", "rtol": -1})
    with pytest.raises(ValueError, match="checkpoints"):
        get_solver({"method": "tsit5", "checkpoints": 0})
    assert get_solver({"preset": "tsit5", "checkpoints": "null"}).checkpoints is None
    assert get_solver({"preset": "tsit5", "checkpoints": "300"}).checkpoints == 300


def test_gradient_checkpoint_count_does_not_change_the_gradient():
    """Keeping every step (checkpoints ≥ steps) or diffrax's few checkpoints only trades memory for
    recomputation: the gradient is the same to rounding."""
    m = NetworkModel.from_spec(load_c302_network("C1", "IClamp"))  # small: the compile is what costs
    params, static = eqx.partition(m, eqx.is_inexact_array)

    def grad_with(checkpoints):
        cfg = get_solver({"preset": "tsit5", "max_steps": 4000, "checkpoints": checkpoints})

        def loss(p):  # 100-250 ms: the current step at 100 ms makes ADAL spike
            return jnp.mean(solve_ys(eqx.combine(p, static), 250.0, 1.0, cfg).ys["V"][100:])

        return jax.grad(loss)(params)

    few, every = grad_with(None), grad_with(4000)
    for a, b in zip(jax.tree_util.tree_leaves(few), jax.tree_util.tree_leaves(every)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-14)


def test_nan_parameters_rejected():
    m = NetworkModel.from_spec(load_c302_network("C1", "IClamp"))
    bad = eqx.tree_at(lambda m: m.channels.g_max_nS, m, m.channels.g_max_nS.at[0].set(jnp.nan))
    with pytest.raises(ValueError, match="NaN"):
        solve(bad, 10.0, 1.0)


def test_iclamp_spikes_and_stimulus_edges():
    """C1 IClamp: ADAL fires only while the current is on (steps start at 100 ms, pulses of 800 ms)."""
    from owjax.validate import spike_times

    m = NetworkModel.from_spec(load_c302_network("C1", "IClamp"))
    sol = solve(m, 1000.0, 0.05)
    st = spike_times(sol.t_ms, sol.ys["V"][:, m.index("ADAL")])
    assert 100.0 in m.stimulus_times_ms and 900.0 in m.stimulus_times_ms
    assert np.all(st > 100.0) and np.all(st < 910.0)


def test_conf_solver_files_mirror_the_presets():
    """Each conf/solver/NAME.yaml is SOLVER_PRESETS[NAME], field by field (the docs promise it)."""
    import yaml

    from owjax.core.solve import SOLVER_PRESETS

    files = sorted((Path(__file__).parents[1] / "owjax" / "conf" / "solver").glob("*.yaml"))
    assert {f.stem for f in files} == set(SOLVER_PRESETS)
    for f in files:
        assert get_solver(yaml.safe_load(f.read_text())) == SOLVER_PRESETS[f.stem], f.name
    assert get_solver("fast").method == "ralston" and get_solver("fast").adaptive

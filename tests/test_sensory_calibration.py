"""The transducer → c302 drive calibration (owjax/sensory/calibration.py): the gradient of the
calibration loss with respect to the drive's gain and offset goes through transducer + network (one
solve) and matches finite differences; bad configurations fail with clear errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from owjax.core.precision import set_precision


@pytest.fixture(scope="module")
def task():
    set_precision("float64")
    from owjax.fitting.tasks.sensory_transducer import records_for
    from owjax.neural.build import build_model, build_spec
    from owjax.sensory.calibration import DriveCalibrationTask, population_target

    recs = records_for({"modality": "afd", "path": None})
    proto = "PseudoFictive PT"
    pt = [r for r in recs if r.protocol == proto]
    tr, va = population_target(pt[:12], proto), population_target(pt[12:], proto)
    spec = build_spec(parameter_set="C1", network="Full", cells=["AFDL", "AFDR"],
                      stimulus_mode="none")
    net = build_model(spec, "float64")
    return DriveCalibrationTask(net, "afd", {"train": tr, "val": va}, (0.5, 1.0), gain_init_pA=60.0,
                                offset_init_pA=15.0, solver={"method": "tsit5", "rtol": 1e-8, "atol": 1e-8})


def test_population_target_averages_one_protocol():
    from owjax.fitting.tasks.sensory_transducer import records_for
    from owjax.sensory.calibration import population_target

    recs = records_for({"modality": "afd", "path": None})
    t = population_target(recs, "Neg Ramp 2")
    sel = [r for r in recs if r.protocol == "Neg Ramp 2"]
    n = min(r.n_samples for r in sel)
    assert len(t.worm_ids) == len(sel) and t.response.shape == (n,)
    np.testing.assert_allclose(t.stimulus, np.mean([r.stimulus[:n] for r in sel], 0))
    with pytest.raises(ValueError, match="several protocols"):
        population_target(recs)
    with pytest.raises(ValueError, match="no recording of protocol"):
        population_target(recs, "nope")


def test_calibration_gradient_through_transducer_and_network_matches_finite_differences(task):
    """d(driven cells' calcium)/d(gain, offset) through transducer → drive → network, one solve, vs central
    differences; and the calibration loss (1 − r) has a finite gradient."""
    params = task.init(jax.random.PRNGKey(0))
    target = task.targets["train"]

    def mean_ca(p):  # µM, the window's mean calcium of AFDL/AFDR
        return 1e3 * jax.numpy.mean(task._driven_calcium(p, target))

    f = jax.jit(mean_ca)
    v, g = jax.jit(jax.value_and_grad(mean_ca))(params)
    assert np.isfinite(float(v)) and float(v) == pytest.approx(float(f(params)), rel=1e-9)
    for k, h in (("gain_raw", 1e-3), ("offset_pA", 1e-2)):
        up = dict(params, **{k: params[k] + h})
        dn = dict(params, **{k: params[k] - h})
        fd = (float(f(up)) - float(f(dn))) / (2 * h)
        assert abs(fd) > 1e-9, f"d Ca / d {k} is ~0: the drive does not reach the network"
        assert float(g[k]) == pytest.approx(fd, rel=1e-3), k
    batch = task.batches(0, None)
    lg = jax.jit(jax.grad(lambda p: task.loss(p, batch, None)[0]))(params)
    assert all(np.isfinite(float(x)) for x in jax.tree_util.tree_leaves(lg))
    cal = task.calibration(params)
    assert cal["gain_pA"] == pytest.approx(60.0) and cal["offset_pA"] == pytest.approx(15.0)
    assert set(cal) >= {"train", "val"} and -1 <= cal["val"]["r"] <= 1


def test_calibration_errors(task):
    from owjax.sensory.calibration import DriveCalibrationTask, load_calibration

    t = task.targets
    with pytest.raises(ValueError, match="window_s"):
        DriveCalibrationTask(task.network, "afd", t, (5.0, 1e6))
    with pytest.raises(ValueError, match="unknown modality"):
        DriveCalibrationTask(task.network, "ase", t, (0.5, 1.0))
    with pytest.raises(ValueError, match="gain_init_pA"):
        DriveCalibrationTask(task.network, "afd", t, (0.5, 1.0), gain_init_pA=500.0)
    with pytest.raises(FileNotFoundError, match="sensory_afd_calibration"):
        load_calibration("afd", "/nonexistent/afd_calibration.json")

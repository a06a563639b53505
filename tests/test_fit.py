"""``python -m owjax.fit``: the CI-sized experiments, bit-exact resume, sweeps and clear errors.

The experiments run through Hydra's compose API and :func:`owjax.fitting.loop.run_fit` — exactly what the
``python -m owjax.fit +experiment=NAME run=ci`` entry point calls (one test also runs the real
command line). Total ≈ 3–5 min on 2 CPU cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

jax.config.update("jax_enable_x64", True)

from owjax.core.checkpoint import CheckpointMismatchError  # noqa: E402
from owjax.fitting.loop import CONF_DIR, run_fit  # noqa: E402
from owjax.fitting.summary import collect_runs, write_summary  # noqa: E402
from owjax.fitting.params import ParameterSpecError  # noqa: E402
from owjax.fitting.param_files import load_param_file  # noqa: E402
from owjax.fitting.registry import Registry  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("params.json", "metrics.json", "loss_curve.png", "traces_before_after.png", "registry.png",
           "registry.md", "fit_config.yaml")


def config(*overrides):
    """The configuration ``python -m owjax.fit progress=false OVERRIDES`` composes (with its hydra node,
    which tells run_fit the command-line overrides)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="fit", overrides=["progress=false", *overrides], return_hydra_config=True)


def checkpoints(run_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())


class SimulatedCrash(RuntimeError):
    """A hard kill in the middle of a run (no exit checkpoint)."""


def crash_after(n: int):
    """``run_fit(on_step=…)`` hook: crash after step ``n`` without an exit checkpoint."""
    def hook(step):
        if step >= n:
            raise SimulatedCrash(f"simulated crash after step {step}")
    return hook


def exit_after(n: int):
    """``run_fit(on_step=…)`` hook: ``sys.exit`` after step ``n``, as submitit's USR2 handler does when
    it requeues a SLURM job at its time limit (the loop writes its exit checkpoint)."""
    def hook(step):
        if step >= n:
            raise SystemExit(-1)
    return hook


def interrupt_after(n: int):
    """``run_fit(on_step=…)`` hook: Ctrl-C after step ``n`` (the loop writes its exit checkpoint)."""
    def hook(step):
        if step >= n:
            raise KeyboardInterrupt(f"interrupt after step {step}")
    return hook


@pytest.fixture(scope="module")
def recovery(tmp_path_factory):
    """The CI-sized param_recovery run, uninterrupted."""
    run_dir = tmp_path_factory.mktemp("param_recovery") / "run"
    cfg = config("+experiment=param_recovery", "run=ci")
    return cfg, run_dir, run_fit(cfg, run_dir)


@pytest.mark.slow
def test_param_recovery_ci_recovers_identifiable_conductances(recovery):
    cfg, run_dir, m = recovery
    for f in OUTPUTS + ("identifiability.png",):
        assert (run_dir / f).exists(), f
    assert m == json.loads((run_dir / "metrics.json").read_text())
    assert m["n_steps"] == 50 and m["wall_time_s"] > 0
    assert m["final_loss"] < 1e-2 * m["initial_loss"]
    assert m["max_initial_rel_error"] >= 0.2  # started 20-50 % off
    assert m["n_identifiable"] == 5  # the k_slow densities of the five classes
    assert m["non_identifiable"] == ["k_fast_avb:AVB/k_fast"]  # no effect below threshold
    assert m["max_rel_error_identifiable"] < 0.05
    assert isinstance(m["non_identifiable"], list)
    for r in m["parameters"]:
        assert r["identifiable"] == (r["label"] not in m["non_identifiable"])
        assert r["identifiable"] or r["reason"]  # every non-identifiable parameter says why
    assert m["params_in_bounds"]
    # the parameter file reproduces the fit in a fresh model and carries the registry
    doc = load_param_file(run_dir / "params.json")
    g = doc["groups"]["conductance_densities"]
    assert all(0.0 < v < 100.0 for v in g["values"])
    reg = Registry.from_param_file(run_dir / "params.json")
    fitted = reg.query(source="auto_fitted")
    assert fitted and fitted[0].provenance.details["experiment"] == "param_recovery"
    assert fitted[0].provenance.details["git_commit"]


@pytest.mark.slow
def test_killed_run_resumes_to_the_identical_result(recovery, tmp_path):
    """Crash in the Adam stage (no exit checkpoint), a requeue's ``sys.exit`` later in it, Ctrl-C in the
    L-BFGS stage, resume three times."""
    cfg0, _, m0 = recovery
    run_dir = tmp_path / "resumed"
    base = ["+experiment=param_recovery", "run=ci", "checkpoint.every=5", "figures=false"]
    with pytest.raises(SimulatedCrash):
        run_fit(config(*base), run_dir, on_step=crash_after(23))
    assert checkpoints(run_dir)[-1] == 20  # the three steps after the last checkpoint are lost, nothing else
    with pytest.raises(SystemExit):
        run_fit(config(*base), run_dir, on_step=exit_after(32))  # resumes at 20; a requeue's exit at 32
    assert checkpoints(run_dir)[-1] == 32  # … writes an exit checkpoint: the requeued job loses nothing
    with pytest.raises(KeyboardInterrupt):
        run_fit(config(*base), run_dir, on_step=interrupt_after(43))  # resumes at 32, stops at 43
    assert checkpoints(run_dir)[-1] == 43  # Ctrl-C writes an exit checkpoint (in the L-BFGS stage)
    m1 = run_fit(config(*base), run_dir)
    assert m1["n_steps"] == m0["n_steps"]
    assert m1["final_loss"] == m0["final_loss"]  # bit-for-bit
    assert m1["fitted"] == m0["fitted"]
    # the same command once more: the run is complete, nothing is redone
    again = run_fit(config(*base), run_dir)
    assert again["final_loss"] == m0["final_loss"] and again["wall_time_s"] == m1["wall_time_s"]


@pytest.mark.slow
def test_a_run_dir_refuses_another_configuration(recovery):
    _, run_dir, _ = recovery
    with pytest.raises(CheckpointMismatchError, match=r"different configuration(?s:.*)optim.lr: 0.1 \(checkpoint\) → 0.01 \(now\)"):
        run_fit(config("+experiment=param_recovery", "run=ci", "optim.lr=0.01"), run_dir)


@pytest.mark.slow
def test_defecation_period_ci_reaches_50_s_within_bounds(tmp_path):
    m = run_fit(config("+experiment=defecation_period", "run=ci"), tmp_path / "run")
    assert abs(m["initial_period_s"] - 50.0) >= 0.3 * 50.0
    assert abs(m["period_s"] - 50.0) <= 2.0
    assert m["all_in_bounds"] and m["params_in_bounds"]
    assert abs(m["smooth_period_estimate_s"] - m["period_s"]) < 0.5  # the loss's estimate agrees
    assert m["final_loss"] < m["initial_loss"] and m["n_steps"] == 15
    for f in OUTPUTS:
        assert (tmp_path / "run" / f).exists(), f
    doc = load_param_file(tmp_path / "run" / "params.json")
    assert doc["model_kind"] == "intestine"
    from owjax.organs.intestine import IntestineOscillator
    from owjax.fitting.param_files import apply_param_file

    fitted = apply_param_file(IntestineOscillator.from_yaml(), tmp_path / "run" / "params.json")
    assert float(fitted.a2) == pytest.approx(m["parameters"]["ip3r_inactivation_rate"]["fitted"], rel=1e-12)

    # the fitted file drives `owjax.simulate +scenario=intestine params=...` (the intestine, not the network)
    import h5py

    def simulate(out, *extra):
        proc = subprocess.run([sys.executable, "-m", "owjax.simulate", "+scenario=intestine", "duration_ms=20000",
                               "progress=false", "figures=false", f"hydra.run.dir={out}", *extra],
                              cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        with h5py.File(out / "traces.h5") as f:
            return json.loads((out / "summary.json").read_text()), f["intestine/Ca"][:]

    s_fit, ca_fit = simulate(tmp_path / "sim_fit", f"params={tmp_path / 'run' / 'params.json'}")
    s_def, ca_def = simulate(tmp_path / "sim_default")
    assert s_fit["params"]["model"] == "intestine" and s_def["params"] is None
    assert not np.allclose(ca_fit, ca_def)


@pytest.mark.slow
def test_muscle_activation_ci_moves_towards_the_template(tmp_path):
    m = run_fit(config("+experiment=muscle_activation", "run=ci"), tmp_path / "run")
    assert m["final_loss"] < 0.85 * m["initial_loss"]
    assert m["activation_mse_exact_final"] < m["activation_mse_exact_initial"]
    assert m["dorsal_ventral_correlation_final"] > m["dorsal_ventral_correlation_initial"]
    assert m["params_in_bounds"] and m["n_weights"] == 42
    for f in OUTPUTS:
        assert (tmp_path / "run" / f).exists(), f


def test_configuration_errors_are_clear_and_early(tmp_path):
    with pytest.raises(ValueError, match="choose an experiment.*param_recovery"):
        run_fit(config(), tmp_path / "a")
    with pytest.raises(ParameterSpecError, match="serca_rate.*unknown parameter 'v_sercaa'.*Did you mean: v_serca"):
        run_fit(config("+experiment=defecation_period", "run=ci", "parameters.serca_rate.leaf=v_sercaa"),
                tmp_path / "b")
    with pytest.raises(ValueError, match="run='tiny'.*ci"):
        run_fit(config("+experiment=defecation_period", "run=tiny"), tmp_path / "c")
    with pytest.raises(ValueError, match="optim.schedule 'cosin' unknown"):
        run_fit(config("+experiment=defecation_period", "run=ci", "optim.schedule=cosin"), tmp_path / "d")


def test_command_line_without_experiment_exits_with_the_list(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "owjax.fit", f"hydra.run.dir={tmp_path}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "+experiment=NAME" in proc.stderr and "muscle_activation" in proc.stderr


def test_run_dirs_are_deterministic_and_sweeps_are_summarised(tmp_path):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("fit", overrides=["+experiment=param_recovery", "seed=3", "optim.lr=0.01", "resume=false"],
                      return_hydra_config=True)
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)
    # the run dir is a function of the experiment and the overrides that change the result
    assert cfg.hydra.run.dir == "outputs/fit/param_recovery/optim.lr=0.01,seed=3"
    assert cfg.hydra.sweep.dir == "multirun/fit/param_recovery"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("fit", overrides=["+experiment=param_recovery", "progress=false"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    assert cfg.hydra.run.dir == "outputs/fit/param_recovery/default"
    # a fake two-run sweep: the summary table lists both with their overrides and metrics
    for i, (lr, loss) in enumerate([("0.01", 0.5), ("0.1", 0.25)]):
        d = tmp_path / f"optim.lr={lr}"
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "config.yaml").write_text("seed: 0\n")
        (d / ".hydra" / "overrides.yaml").write_text(f"- +experiment=param_recovery\n- optim.lr={lr}\n")
        if i == 0:
            (d / "metrics.json").write_text(json.dumps({"final_loss": loss, "n_steps": 3, "wall_time_s": 1.0,
                                                        "status": "complete"}))
    rows = collect_runs(tmp_path)
    assert [r.get("optim.lr") for r in rows] == ["0.01", "0.1"]
    assert rows[0]["final_loss"] == 0.5 and rows[1]["status"] == "incomplete"
    csv_path, md_path = write_summary(tmp_path)
    assert "optim.lr" in csv_path.read_text() and "incomplete" in md_path.read_text()
    assert np.isfinite(rows[0]["wall_time_s"])


def test_experiment_names_are_checked_before_hydra():
    """Simulation scenarios (+scenario=, owjax/conf/scenario/) and fitting experiments (+experiment=,
    owjax/conf/experiment/): each entry point names the other one instead of failing inside Hydra."""
    from owjax import simulate
    from owjax.fitting.loop import check_experiment_argument

    assert check_experiment_argument(["+experiment=param_recovery", "run=ci"]) is None
    assert "owjax.simulate +scenario=worm" in check_experiment_argument(["+experiment=worm"])
    assert "synapse_polarity" in check_experiment_argument(["+experiment=synapse_polarty"])
    assert simulate.check_experiment_argument(["+scenario=intestine"]) is None
    assert "+scenario=intestine" in simulate.check_experiment_argument(["+experiment=intestine"])
    assert "intestine" in simulate.check_experiment_argument(["+scenario=nope"])
    assert "owjax.fit +experiment=param_recovery" in simulate.check_experiment_argument(["+experiment=param_recovery"])
    proc = subprocess.run([sys.executable, "-m", "owjax.fit", "+experiment=intestine"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "simulation scenario" in proc.stderr


# ---------------------------------------------------------------------------- validation, wall-time budget
class _ToyTask:
    """Minibatch linear regression; its validation metric is smallest half-way along the trajectory
    (sum(w) crosses 1.5 on its way from 0 to 3), so best-on-validation and early stopping have work."""

    validation_metric = "dist"

    def __init__(self, with_validation=True):
        import jax.numpy as jnp

        rng = np.random.default_rng(0)
        self.x = jnp.asarray(rng.normal(size=(64, 3)))
        self.y = self.x @ jnp.ones(3)
        self.data_description, self.loss_description, self.info = "toy", "mse", {}
        if not with_validation:
            self.validation_metric = None

    def describe(self):
        return "toy"

    def init(self, key):
        import jax.numpy as jnp

        return {"w": jnp.zeros(3)}

    def batches(self, step, key):
        idx = jax.random.choice(key, 64, (8,), replace=False)
        return {"x": self.x[idx], "y": self.y[idx]}

    def loss(self, params, batch, key):
        import jax.numpy as jnp

        r = batch["x"] @ params["w"] - batch["y"]
        return jnp.mean(r ** 2), {"mse": jnp.mean(r ** 2)}

    def validate(self, params, key):
        s = float(params["w"].sum())
        return {"dist": (s - 1.5) ** 2, "sum_w": s}

    def objective(self, params, key):
        return None

    def report(self, params_init, params, run_dir, figures):
        return {"w": np.asarray(params["w"]).tolist()}

    def save_outputs(self, params, run_dir, provenance, metadata):
        pass


def _toy_config(**over):
    from omegaconf import OmegaConf

    d = dict(experiment=dict(name="toy", kind="toy"), seed=0, dtype="float64", progress=False, figures=False,
             optim=dict(name="adam", lr=0.05, schedule="constant", steps=60, clip_norm=None,
                        lbfgs=dict(steps=0)), checkpoint=dict(every=7, keep=2),
             validation=dict(every=5, patience=None), max_fit_wall_s=None)
    for k, v in over.items():
        d[k] = dict(d[k], **v) if isinstance(v, dict) else v
    return OmegaConf.create(d)


@pytest.fixture
def toy(monkeypatch):
    """``experiment.kind: toy`` → :class:`_ToyTask` (a registered AbstractFitTask)."""
    from owjax.fitting import loop
    from owjax.fitting.task import AbstractFitTask
    from owjax.fitting.tasks.base import AbstractExperiment

    holder = {"validation": True}

    class Toy(_ToyTask, AbstractFitTask):
        pass

    class ToyExperiment(AbstractExperiment):
        kind = "toy"
        requires_parameters_block = False

        def build(self, cfg, seed, run_dir=None):
            return Toy(holder["validation"])

    monkeypatch.setattr(loop, "_experiment_class", lambda kind: ToyExperiment)
    monkeypatch.setattr(loop, "_PROBLEMS", {})
    monkeypatch.setattr(loop, "_CACHE", {})
    return holder


def test_validation_keeps_the_best_params_and_stops_early_and_resumes_exactly(toy, tmp_path):
    full = run_fit(_toy_config(), tmp_path / "full")  # never stops early
    v = full["validation"]
    assert full["n_steps"] == 60 and v["n_validations"] == 12 and not v["stopped_early"]
    assert [h["step"] for h in v["history"]] == list(range(5, 61, 5))
    dists = [h["dist"] for h in v["history"]]
    best = int(np.argmin(dists))
    assert 0 < best < len(dists) - 1  # the metric has an interior minimum
    assert full["best_step"] == v["best_step"] == v["history"][best]["step"]
    assert v["best_value"] == dists[best]
    # the outputs use the best parameters, not the last ones
    assert sum(full["w"]) == pytest.approx(v["history"][best]["sum_w"], rel=1e-12)
    # early stopping: `patience` validations without improvement after the best one
    early = run_fit(_toy_config(validation=dict(patience=2)), tmp_path / "early")
    assert early["validation"]["stopped_early"] and early["stopped"] == "early_stopping"
    assert early["n_steps"] == full["best_step"] + 2 * 5
    assert early["w"] == full["w"] and early["best_step"] == full["best_step"]
    # a crash between two checkpoints, then the same command: the identical result (history, best, stop)
    with pytest.raises(SimulatedCrash):
        run_fit(_toy_config(validation=dict(patience=2)), tmp_path / "crashed", on_step=crash_after(early["n_steps"] - 3))
    resumed = run_fit(_toy_config(validation=dict(patience=2)), tmp_path / "crashed")
    for k in ("w", "best_step", "n_steps", "final_loss", "stopped"):
        assert resumed[k] == early[k], k
    assert resumed["validation"] == early["validation"]
    # done: running it again redoes nothing
    again = run_fit(_toy_config(validation=dict(patience=2)), tmp_path / "crashed")
    assert again["wall_time_s"] == resumed["wall_time_s"]


def test_validation_settings_are_checked(toy, tmp_path):
    toy["validation"] = False  # a task without validation (validation_metric None): off, last params kept
    m = run_fit(_toy_config(), tmp_path / "a")
    assert "validation" not in m and "best_step" not in m and m["n_steps"] == 60
    m0 = run_fit(_toy_config(validation=dict(every=0)), tmp_path / "b")
    assert "validation" not in m0 and m0["w"] == m["w"]
    toy["validation"] = True
    with pytest.raises(ValueError, match="validation.patience must be >= 1"):
        run_fit(_toy_config(validation=dict(patience=0)), tmp_path / "c")


def test_wall_time_budget_stops_and_a_larger_budget_continues(toy, tmp_path):
    ref = run_fit(_toy_config(validation=dict(every=0)), tmp_path / "ref")
    cut = run_fit(_toy_config(validation=dict(every=0), max_fit_wall_s=1e-9), tmp_path / "run")
    assert cut["stopped"] == "wall_time" and cut["n_steps"] == 1
    assert checkpoints(tmp_path / "run")[-1] == 1
    done = run_fit(_toy_config(validation=dict(every=0)), tmp_path / "run")  # the budget is not the run's identity
    assert done["n_steps"] == 60 and "stopped" not in done
    assert done["final_loss"] == ref["final_loss"] and done["w"] == ref["w"]

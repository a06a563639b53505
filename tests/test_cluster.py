"""The cluster path: a ``python -m owjax.fit -m`` sweep through hydra-submitit-launcher.

``hydra/launcher=submitit_local`` runs each job of the sweep as a submitit job on this machine —
the same launcher code, pickled job and run directories as ``submitit_slurm``, with a local
process in place of a SLURM job. The test

1. submits a two-job sweep of the cheapest experiment (``defecation_period`` at ``run=ci`` with
   6 Adam steps and a checkpoint every 2 steps; ``seed=0,1``: this experiment starts from fixed
   values, the seed seeds only random perturbations it does not use, so the two jobs are the same
   fit in two run directories),
2. hard-kills job ``seed=1`` (SIGKILL to its task process: no exit checkpoint, as a node failure)
   once it has written a checkpoint and before it finishes; the sweep then fails, job ``seed=0``
   completes,
3. submits the same command again: job ``seed=0`` is recognised as complete and skipped, job
   ``seed=1`` resumes from its last checkpoint, and
4. checks that the resumed job's loss history, fitted parameters and final loss are bit-for-bit
   those of the uninterrupted job ``seed=0``.

It is skipped only when hydra-submitit-launcher (the ``cluster`` extra) is not installed. It costs
≈ 100–120 s of CPU time in all its processes (two XLA compilations run in parallel, a third on resume):
about 1–1.5 min on an idle 2-core machine, much longer on a loaded one (10 min at load ≈ 19).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("hydra_plugins.hydra_submitit_launcher",
                    reason="hydra-submitit-launcher is not installed (pip install -e '.[cluster]')")
pytest.importorskip("submitit", reason="submitit is not installed (pip install -e '.[cluster]')")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
N_STEPS = 6
EVERY = 2
SWEEP_TIMEOUT_S = 900  # per submission: generous for a loaded 2-core machine; typical is 1 min


def sweep_command(sweep_dir: Path) -> list[str]:
    return [sys.executable, "-m", "owjax.fit", "-m", "+experiment=defecation_period", "run=ci", "seed=0,1",
            f"optim.steps={N_STEPS}", f"checkpoint.every={EVERY}", "progress=false", "figures=false",
            "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=30", f"hydra.sweep.dir={sweep_dir}"]


def job_dir(sweep_dir: Path, seed: int) -> Path:
    # the sweep subdir is Hydra's override_dirname of the job (fit.yaml), e.g. run=ci,seed=1,...
    hits = [p for p in sweep_dir.iterdir() if p.is_dir() and f"seed={seed}" in p.name.split(",")]
    assert len(hits) == 1, f"expected one job directory for seed={seed} in {sweep_dir}, found {hits}"
    return hits[0]


def finished_checkpoints(run_dir: Path) -> list[int]:
    d = run_dir / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit()) if d.exists() else []


def children_of(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces, so split after the closing parenthesis
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(p.name))
    return out


def task_pid(run_dir: Path) -> int:
    """The process running the fit of a submitit_local job: a child of the job's controller, whose
    pid is the submitit job id that Hydra records as hydra.job.id in the run's .hydra/hydra.yaml."""
    from omegaconf import OmegaConf

    job_id = str(OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra.job.id)
    kids = children_of(int(job_id.split("_")[0]))
    assert len(kids) == 1, f"submitit controller {job_id} should have one task process, has {kids}"
    return kids[0]


def stop_group(proc: subprocess.Popen) -> None:
    """Kill what is left of a submission (the launcher and its submitit jobs: one process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def logs(sweep_dir: Path) -> str:
    return "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}"
                     for p in sorted((sweep_dir / ".submitit").rglob("*_log.*")))


def test_submitit_sweep_with_a_killed_job_resumes_identically(tmp_path):
    sweep_dir = tmp_path / "multirun"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    cmd = sweep_command(sweep_dir)

    # --- 1. the sweep; job seed=1 is killed after its first checkpoint
    out_file = tmp_path / "first_submission.log"  # a file, not a pipe: nobody reads while we poll
    log_handle = out_file.open("w")
    # its own process group, so that a failing test can stop the launcher and its submitit jobs
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_handle, stderr=subprocess.STDOUT,
                             start_new_session=True)
    killed_at = None
    try:
        deadline = time.monotonic() + SWEEP_TIMEOUT_S
        while killed_at is None:
            assert time.monotonic() < deadline, f"job seed=1 wrote no checkpoint in {SWEEP_TIMEOUT_S} s"
            assert first.poll() is None, (
                f"the sweep ended (exit {first.returncode}) before job seed=1 could be killed:\n"
                f"{out_file.read_text()[-4000:]}\n{logs(sweep_dir) if sweep_dir.exists() else ''}")
            if sweep_dir.exists() and any("seed=1" in p.name.split(",") for p in sweep_dir.iterdir()):
                run1 = job_dir(sweep_dir, 1)
                steps = finished_checkpoints(run1)
                if steps:
                    assert not (run1 / "metrics.json").exists() and steps[-1] < N_STEPS, (
                        f"job seed=1 finished (checkpoints {steps}) before it could be killed mid-fit")
                    os.kill(task_pid(run1), signal.SIGKILL)
                    killed_at = steps[-1]
                    break
            time.sleep(0.05)
        first.wait(timeout=SWEEP_TIMEOUT_S)
    finally:
        stop_group(first)
        log_handle.close()
    out1 = out_file.read_text()
    assert first.returncode != 0, f"the sweep should fail after its job was killed:\n{out1[-3000:]}"
    run0, run1 = job_dir(sweep_dir, 0), job_dir(sweep_dir, 1)
    assert (run0 / "metrics.json").exists(), f"job seed=0 did not complete:\n{out1[-3000:]}\n{logs(sweep_dir)}"
    assert not (run1 / "metrics.json").exists(), "the killed job seed=1 must not have written its outputs"
    left = finished_checkpoints(run1)
    assert left and killed_at <= left[-1] < N_STEPS, f"killed job's checkpoints: {left} (killed at {killed_at})"

    # --- 2. the same command again: seed=0 is complete and skipped, seed=1 resumes
    second = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        out2, err2 = second.communicate(timeout=SWEEP_TIMEOUT_S)
    finally:
        stop_group(second)
    assert second.returncode == 0, (
        f"the resubmitted sweep failed (exit {second.returncode}):\n{out2[-3000:]}\n"
        f"{err2[-3000:]}\n{logs(sweep_dir)}")
    job_logs = logs(sweep_dir)
    assert f"resuming {run1} from checkpoint at step {left[-1]}/{N_STEPS}" in job_logs, job_logs[-6000:]
    assert f"{run0} is complete" in job_logs, job_logs[-6000:]

    # --- 3. the resumed job's result is the uninterrupted one, bit for bit
    m0, m1 = (json.loads((d / "metrics.json").read_text()) for d in (run0, run1))
    assert m0["status"] == m1["status"] == "complete" and m0["n_steps"] == m1["n_steps"] == N_STEPS
    h0, h1 = (json.loads((d / "loss_history.json").read_text()) for d in (run0, run1))
    assert h1["loss"] == h0["loss"], f"loss histories differ:\n{h0['loss']}\n{h1['loss']}"
    assert h1["terms"] == h0["terms"] and h1["grad_norm"] == h0["grad_norm"]
    for key in ("final_loss", "initial_loss", "final_terms", "period_s", "initial_period_s"):
        assert m1[key] == m0[key], f"{key}: {m1[key]!r} (killed, resumed) != {m0[key]!r} (uninterrupted)"
    p0, p1 = (json.loads((d / "params.json").read_text()) for d in (run0, run1))
    assert set(p0["groups"]) == set(p1["groups"])
    for name, g in p0["groups"].items():
        assert p1["groups"][name]["values"] == g["values"], f"fitted {name} differs after the resume"
    # the sweep's summary callback ran when the second submission ended
    assert (sweep_dir / "summary.csv").exists()


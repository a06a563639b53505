"""A normal (non-editable) install works: a wheel built from this tree, installed into a fresh venv,
runs ``python -m owjax.simulate`` and ``python -m owjax.fit`` from outside the repository (configs and
data travel inside the package)."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_and_simulates(tmp_path):
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(dist), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    wheels = list(dist.glob("owjax-*.whl"))
    assert len(wheels) == 1
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    # dependencies come from this environment's site-packages (not its editable owjax: the .pth line
    # adds the directory without running its .pth hooks); owjax itself only from the wheel
    env_site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    Path(env_site, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", env_site, str(wheels[0])],
                   check=True, capture_output=True, timeout=600)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing but the wheel provides owjax
    run_dir = tmp_path / "run"
    out = subprocess.run([str(py), "-m", "owjax.simulate", f"hydra.run.dir={run_dir}", "network=custom",
                          "network.cells=[AVBL,AVBR]", "duration_ms=10", "figures=false", "progress=false"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["metrics"]["all_finite"]
    where = subprocess.run([str(py), "-c", "import owjax; print(owjax.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True, env=env).stdout
    assert str(env_site) in where and str(ROOT) not in where
    fit = subprocess.run([str(py), "-m", "owjax.fit", "+experiment=nope"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env=env)
    assert fit.returncode == 2 and "param_recovery" in fit.stderr  # its experiment configs are installed

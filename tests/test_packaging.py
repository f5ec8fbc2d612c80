"""The built wheel is a working tool on its own: conf/ inside it, console scripts, a tiny
train from a folder outside the repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, TINY_SYNTHETIC, TINY_TRAIN


@pytest.mark.slow
def test_the_wheel_ships_conf_and_trains_from_outside_the_repo(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(dist)], check=True, timeout=300)
    (wheel,) = dist.glob("recsys_sweep-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "experiments/conf/train.yaml" in names and "experiments/conf/data/synthetic.yaml" in names
    assert not any(n.startswith(("tests/", "conf/")) for n in names)
    # the benchmarks run from a clone: not in the installed tool
    assert not any(n.startswith(("experiments/benchmark", "experiments/benchmarks/"))
                   for n in names)

    # A fresh venv with the wheel installed; the heavy dependencies (TensorFlow, ...) are
    # borrowed from this environment's site-packages through a .pth file (a path line: the
    # editable install's own .pth files there are not processed, so the repo stays out).
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", str(wheel)], check=True, timeout=300)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig."
                                "get_paths()['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    (site / "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(python), "-c", "import experiments; print(experiments.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(env_dir)), where.stdout
    proc = subprocess.run([str(env_dir / "bin" / "recsys-train"), *TINY_SYNTHETIC, *TINY_TRAIN,
                           "data.cache_dir=cache"], cwd=elsewhere, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = (elsewhere / "outputs" / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and (run_dir / ".hydra" / "config.yaml").is_file()
    help_text = subprocess.run([str(env_dir / "bin" / "recsys-sweep"), "--help"], cwd=elsewhere,
                               env=env, capture_output=True, text=True, timeout=120).stdout
    assert "search: default, wide" in help_text

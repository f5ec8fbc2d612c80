"""What several benchmark modes share: the metrics their tables show, running a command as
its own process, opening a study a command left in its folder, and this process's peak
memory."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import optuna

from experiments.sweeping.folder import StudyFolder
from recsys.metrics import Metric, top

VAL_100, TEST_100, TEST_10 = top(100).name, top(100, "test").name, top(10, "test").name
TEST_NDCG_10 = Metric("test", "ndcg", 10).name


def run_module(command: list[str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.call([sys.executable, "-m", *command], stdout=out,
                               stderr=subprocess.STDOUT)
    if code != 0:
        tail = log.read_text().strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(command[:1])} exited {code}; log {log}:\n" + "\n".join(tail))
    return time.perf_counter() - start


def study_in(study_dir: Path, name: str) -> optuna.Study:
    """The study a sweep with `search.dir=study_dir` (and the default storage) wrote."""
    return optuna.load_study(study_name=name,
                             storage=f"sqlite:///{StudyFolder(study_dir).database}")


def peak_rss_gb() -> float:
    """This process's peak resident memory (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

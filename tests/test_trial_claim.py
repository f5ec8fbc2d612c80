"""Workers that race for the study's last free slots start no trial beyond n_trials.

Four processes are released together on a study that needs two trials; without the claim each
one counted "0 finished, 0 running" and started a trial (four trials; CI once saw eight of seven)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import optuna

from experiments.sweeping.run import Progress, worker_loop
from experiments.sweeping.study import FINISHED


def slow_objective(trial: optuna.Trial) -> float:
    time.sleep(1.0)
    return trial.suggest_float("x", 0.0, 1.0)


def race(storage_url: str, study_dir: str, start: multiprocessing.synchronize.Barrier) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="race", storage=storage_url)
    start.wait()
    worker_loop(study, slow_objective, 2, Progress(2, "val_top_100", time.perf_counter()),
                Path(study_dir), deadline=None)


def test_racing_workers_start_no_trial_beyond_n_trials(tmp_path: Path) -> None:
    storage_url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="race", storage=storage_url, direction="maximize")
    context = multiprocessing.get_context("fork")
    start = context.Barrier(4)
    workers = [context.Process(target=race, args=(storage_url, str(tmp_path), start))
               for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    study = optuna.load_study(study_name="race", storage=storage_url)
    assert len(study.get_trials(states=FINISHED)) == 2
    assert len(study.trials) == 2

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


def test_a_held_claim_is_announced_and_a_broken_lock_file_is_one_line(tmp_path: Path,
                                                                      capsys, monkeypatch) -> None:
    """A claim held by a stopped process made a new sweep wait in silence; a lock file that is
    a folder or a dangling link gave IsADirectoryError / FileNotFoundError tracebacks."""
    import fcntl
    import os
    import threading

    import pytest

    from experiments.sweeping import claim as claim_module
    from experiments.sweeping.claim import TrialClaim
    from recsys.errors import UserError

    monkeypatch.setattr(claim_module, "SAY_AFTER_S", 0.2)
    holder = os.open(tmp_path / ".claim.lock", os.O_CREAT | os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)  # as a stopped process would keep it
    threading.Timer(1.0, lambda: os.close(holder)).start()
    with TrialClaim(tmp_path):
        pass
    assert capsys.readouterr().out.startswith(f"waiting for '{tmp_path / '.claim.lock'}': "
                                              "another process of this study holds it")
    for broken in ("folder", "link"):
        lock = tmp_path / broken / ".claim.lock"
        lock.parent.mkdir()
        lock.mkdir() if broken == "folder" else lock.symlink_to(tmp_path / "nowhere" / "x")
        with pytest.raises(UserError, match=r"is a (folder|link to nowhere) .*not the study's "
                                            "lock file: remove it"):
            TrialClaim(lock.parent).acquire()

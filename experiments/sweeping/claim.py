"""One worker at a time between "the study still needs a trial" and "my trial is RUNNING".

Two workers that both saw one free slot each started a trial, and the study ended with one
trial more than search.n_trials (seen on CI, two workers on SQLite). The check and Optuna's
creation of the trial are not one transaction, so the workers of one machine take an
exclusive lock on a file in the study folder around both; the objective releases it as soon
as its trial is RUNNING (the trial itself runs unlocked). Workers on other machines share the
lock only where the study folder is on a shared file system; elsewhere the old race remains
(one trial too many at worst)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from experiments.sweeping.folder import StudyFolder
from recsys.errors import UserError

SAY_AFTER_S = 5.0  # a claim is held for milliseconds: longer means a stuck holder


class TrialClaim:
    """An exclusive `flock` on `<study folder>/.claim.lock`; released on close, on exit, or
    when the process dies (the kernel drops it), so a killed worker never blocks the others."""

    def __init__(self, study_dir: Path) -> None:
        self.path = StudyFolder(study_dir).claim_lock
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        except (IsADirectoryError, FileNotFoundError, NotADirectoryError) as exc:
            kind = "a folder" if self.path.is_dir() else "a link to nowhere"
            raise UserError(f"{str(self.path)!r} is {kind} ({exc.strerror}), not the study's "
                            "lock file: remove it and run the same command again") from None
        waited = time.monotonic()
        said = False
        while True:  # a lock held by a stopped (not dead) process would block silently
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not said and time.monotonic() - waited >= SAY_AFTER_S:
                    print(f"waiting for {str(self.path)!r}: another process of this study "
                          "holds it while it starts a trial (a process stopped with Ctrl-Z "
                          "keeps holding it: resume or end it)", flush=True)
                    said = True
                time.sleep(0.2)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> TrialClaim:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def releasing(self, objective: Callable[[optuna.Trial], Any]) -> Callable[[optuna.Trial], Any]:
        """The objective, releasing the claim first: by then Optuna has made the trial RUNNING,
        so the next worker to count sees it."""

        def run(trial: optuna.Trial) -> Any:
            self.release()
            return objective(trial)

        return run

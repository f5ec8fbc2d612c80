"""Running a study: worker processes, progress lines, n_trials in total, export and the table.

Every worker (the main process itself when `search.n_workers=1`) loops: fail trials whose
worker stopped sending heartbeats (their parameters are queued again), stop once n_trials
trials are complete or pruned, wait while the remaining slots are taken by running trials, else
run one more trial with `study.optimize(n_trials=1)` (which also drives the heartbeat). Trials
are pulled one at a time by whichever worker is free: no batches.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy.exc

from experiments.cli.console import command
from experiments.sweeping.claim import TrialClaim
from experiments.sweeping.confirm import confirm_winners, format_confirm_table
from experiments.sweeping.export import best_trial, record_export
from experiments.sweeping.folder import BestFolder
from experiments.sweeping.hparams import write_hparams_config
from experiments.sweeping.objective import Objective
from experiments.sweeping.outputs import (
    KeepBestVectors,
    StudyOutputs,
    tensorboard_line,
    write_study_outputs,
)
from experiments.sweeping.plan import SweepPlan
from experiments.sweeping.processes import (
    DEADLINE_ENV,
    EXIT_RETIRED,
    EXIT_STORAGE_LOST,
    check_stop,
    run_workers,
    stop_on_signals,
    worker_count,
)
from experiments.sweeping.space import optuna_params
from experiments.sweeping.study import (
    FINISHED,
    fail_dead_trials,
    heartbeat_ages,
    mask_url,
    requeue_failed_starts,
    requeue_interrupted,
    storage_lost,
)
from experiments.sweeping.study_table import format_params, study_table
from experiments.sweeping.trials import TrialRecord, complete_trials
from recsys.cache import HeldData

EXIT_INTERRUPTED = 130
MAX_FAILURES_IN_A_ROW = 5
POLL_SECONDS = 2.0
RUNNING = (optuna.trial.TrialState.RUNNING,)


class TooManyFailures(Exception):
    pass


class Progress:
    """One line per finished trial: its value, the best so far, trials done of n_trials, the
    time elapsed and an estimate of the time left.

    The estimate is the trials left x the mean seconds of the trials this process finished /
    the workers. The first trial's start-up (data, baselines, TensorFlow) is left out: its
    training seconds stand for it. A mean, not a recent median: pruned trials cost a tenth of
    complete ones, and the median of the last five swung from 7x the real remaining time
    after the first trial to a quarter of it after the seventh (on the default study,
    README command 1); the mean stays within 2x from the first trial on."""

    def __init__(self, n_trials: int, metric: str, start: float, n_workers: int = 1) -> None:
        self.n_trials, self.metric, self.start = n_trials, metric, start
        self.n_workers = max(1, n_workers)
        self.failures_in_a_row = 0
        self.costs: list[float] = []  # seconds of the trials this process finished

    def begin(self, study: optuna.Study) -> None:
        self.costs = []

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        if trial.state in FINISHED and trial.duration is not None:
            seconds = trial.duration.total_seconds()
            if not self.costs:  # the start-up is paid once, not by every trial left
                seconds = TrialRecord.of(trial).train_seconds or seconds
            self.costs.append(seconds)
        try:
            best = f"{study.best_value:.4f}"
        except ValueError:
            best = "-"
        value = f"{trial.value:.4f}" if trial.value is not None else "-"
        note = TrialRecord.of(trial).reason
        print(f"trial {trial.number:>3} {trial.state.name.lower():<8} {self.metric}={value} "
              f"best={best} [{finished}/{self.n_trials}] {time.perf_counter() - self.start:.0f}s "
              f"eta {self.eta(finished)}  {format_params(trial.params)}"
              f"{'  (' + note + ')' if note else ''}", flush=True)
        failed = trial.state == optuna.trial.TrialState.FAIL
        self.failures_in_a_row = self.failures_in_a_row + 1 if failed else 0

    def eta(self, finished: int) -> str:
        left = max(self.n_trials - finished, 0)
        if left == 0:
            return "0s"
        if not self.costs:
            return "?"
        seconds = float(np.mean(self.costs)) * left / self.n_workers
        return f"{seconds / 3600:.1f}h" if seconds >= 5400 else (
            f"{seconds / 60:.0f}min" if seconds >= 90 else f"{seconds:.0f}s")


def _storage_failure(exc: BaseException | None) -> sqlalchemy.exc.SQLAlchemyError | None:
    """The database error behind `exc`, if any. When the storage goes away while Optuna
    records a trial's end, Optuna's own bookkeeping then fails with an AssertionError whose
    context is the database error: look down the chain."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _quiet_storage_errors(args: threading.ExceptHookArgs) -> None:
    """Optuna's heartbeat thread dies with the storage; the main thread reports the outage
    in one line, so its traceback would only bury that line. The database error may come
    wrapped (Optuna's StorageInternalError when the commit of a heartbeat fails)."""
    if _storage_failure(args.exc_value) is None:
        threading.__excepthook__(args)


def worker_loop(study: optuna.Study, objective: Objective, n_trials: int, progress: Progress,
                study_dir: Path, deadline: float | None, max_trials: int = 0,
                grace_period: float = 90, callbacks: list[Any] | None = None) -> bool:
    """Run trials until the study has n_trials finished ones; True when this process retired
    after `max_trials` trials of its own (0: never) so that a fresh one continues."""
    ran, callbacks = 0, callbacks or []
    progress.begin(study)
    claim = TrialClaim(study_dir)
    waiting_for: set[int] = set()
    while True:
        check_stop()  # a signal whose interrupt was swallowed: start nothing new
        with claim:  # counted and started under one lock: no trial beyond n_trials
            fail_dead_trials(study, grace_period)  # a killed worker's trial: FAIL + queued again
            if queued := requeue_interrupted(study):
                print(f"queued again: the parameters of interrupted trial(s) "
                      f"{', '.join(map(str, queued))}", flush=True)
            finished = len(study.get_trials(deepcopy=False, states=FINISHED))
            running = len(study.get_trials(deepcopy=False, states=RUNNING))
            if finished >= n_trials:
                return False
            if deadline is not None and time.time() >= deadline:
                print("search.timeout reached: no new trials are started", flush=True)
                return False
            if progress.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                raise TooManyFailures(f"stopping: {progress.failures_in_a_row} trials failed "
                                      "in a row; see the reasons above")
            if max_trials and ran >= max_trials and finished + running < n_trials:
                return True
            if finished + running < n_trials:
                # Any error inside a trial (divergence, a full disk, an out-of-memory error, a
                # bad enqueued value) fails that trial with its reason and the study goes on;
                # five failures in a row stop it. Only an interrupt ends the loop.
                study.optimize(claim.releasing(objective), n_trials=1,
                               callbacks=[progress, *callbacks], catch=(Exception,),
                               gc_after_trial=True)
                ran += 1
                continue
        # The last slots are being worked on elsewhere, or by a worker that died: say which
        # and when a dead one's trial is retried (silence for the grace period looked hung).
        waiting_for = say_waiting(study, grace_period, waiting_for)
        time.sleep(POLL_SECONDS)


def say_waiting(study: optuna.Study, grace_period: float, said: set[int]) -> set[int]:
    """One line when the set of trials this worker waits for changes; the set now. (The
    heartbeat table is read only then, not at every poll.)"""
    running = {t.number for t in study.get_trials(deepcopy=False, states=RUNNING)}
    if running and running != said:
        ages = heartbeat_ages(study)
        last = ", ".join(f"trial {n} (last heartbeat {ages[n]:.0f} s ago)" if n in ages
                         else f"trial {n}" for n in sorted(running))
        print(f"waiting for {last}: the study's last slots; a trial without a heartbeat for "
              f"search.grace_period={grace_period:g} s is failed and queued again", flush=True)
    return running


def run_study(storage: optuna.storages.BaseStorage, plan: SweepPlan, start: float,
              data: HeldData | None = None,
              opened: tuple[optuna.Study, int | None] | None = None) -> int:
    """The sweep command's main process: open (or resume) the study, run its trials here or in
    worker processes, then `finish_study`. `data`: the prepared data the caller read (trials
    and confirmation runs here use it). `opened`: what `open_study` returned, when the caller
    already opened the study (the sweep command does, to refuse a mismatched one early)."""
    data = data or HeldData()
    set_up_process()
    n_workers, notice = worker_count(plan.search.n_workers, os.cpu_count() or 1)
    if notice:
        print(notice, flush=True)
    study, done = opened or plan.open_study(storage)
    begin_study(study, plan, done, n_workers)
    search = plan.search
    deadline = time.time() + search.timeout if search.timeout else None
    if n_workers == 1 and not search.trials_per_process:
        def run_trials() -> None:
            run_trials_in_process(study, plan, start, deadline, data)  # never retires
    else:
        def run_trials() -> int | None:
            return trials_in_workers(study, plan, n_workers, deadline)
    code = run_or_exit_code(study, plan, run_trials)
    return code if code is not None else finish_study(study, plan, start, data)


def run_worker(storage: optuna.storages.BaseStorage, plan: SweepPlan,
               data: HeldData | None = None) -> int:
    """A worker process (`experiments.sweeping.worker`): run the study's trials until it has
    n_trials, or retire (EXIT_RETIRED) after search.trials_per_process of its own."""
    set_up_process()
    study, _ = plan.open_study(storage)  # exactly as the main process: same sampler, pruner
    deadline = float(os.environ[DEADLINE_ENV]) if os.environ.get(DEADLINE_ENV) else None
    retired = run_or_exit_code(study, plan, lambda: run_trials_in_process(
        study, plan, time.perf_counter(), deadline, data, plan.search.trials_per_process),
        worker=True)
    return EXIT_RETIRED if retired is True else (retired or 0)


def set_up_process() -> None:
    """Optuna's logging off (our progress lines say it), signals that stop the trials, and no
    traceback from the heartbeat thread when the storage goes away."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our progress line reports failures
    logging.getLogger("optuna").setLevel(logging.ERROR)
    stop_on_signals()
    threading.excepthook = _quiet_storage_errors


def begin_study(study: optuna.Study, plan: SweepPlan, done: int | None, n_workers: int) -> None:
    """The first line (starting or resuming), the enqueued trials of a new study, and the
    TensorBoard experiment config."""
    search, metric = plan.search, plan.search.metric
    where = f"study {search.study_name!r} in {mask_url(search.storage)}"
    if done is not None:
        failed = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)))
        more = (f"; to add trials, run it again with search.n_trials={done + search.n_trials}"
                if done >= search.n_trials else "")
        print(f"resuming {where}: {done} of {search.n_trials} trials already finished"
              f"{f' ({failed} failed, not counted)' if failed else ''}{more}", flush=True)
    else:
        print(f"starting {where}: {search.n_trials} trials, metric {metric}, "
              f"{n_workers} worker(s)", flush=True)
    starts = [optuna_params(plan.space, params) for params in search.enqueue_trials]
    if not study.get_trials(deepcopy=False):
        for params in starts:
            study.enqueue_trial(params, skip_if_exists=True)
    else:
        with TrialClaim(plan.study_dir):
            if queued := requeue_failed_starts(study, starts):
                print(f"queued again: the start point(s) of failed trial(s) "
                      f"{', '.join(map(str, queued))}", flush=True)
    plan.study_dir.mkdir(parents=True, exist_ok=True)
    write_hparams_config(plan.folder.trials, plan.space, plan.ks, metric)


def run_trials_in_process(study: optuna.Study, plan: SweepPlan, start: float, deadline: float | None,
                data: HeldData | None = None, max_trials: int = 0) -> bool:
    """Run trials in this process (`worker_loop`); True when it retired after max_trials."""
    search = plan.search
    objective = Objective(plan.space, plan.base_overrides, plan.study_dir, search.metric,
                          plan.rungs, search.fidelity, data)
    keep = KeepBestVectors(max(search.keep_vectors, search.confirm.top_n))
    return worker_loop(study, objective, search.n_trials,
                       Progress(search.n_trials, search.metric, start,
                                worker_count(search.n_workers, os.cpu_count() or 1)[0]),
                       plan.study_dir,
                       deadline, max_trials=max_trials, grace_period=search.grace_period,
                       callbacks=[keep])


def trials_in_workers(study: optuna.Study, plan: SweepPlan, n_workers: int,
                      deadline: float | None) -> int | None:
    """Run the trials in worker processes; an exit code when the study cannot go on."""
    plan.folder.forget_said("storage-lost")
    code = run_workers(plan.argv, n_workers, deadline)
    if code == EXIT_STORAGE_LOST:  # a worker said why in one line; the storage is gone here too
        plan.folder.forget_said("storage-lost")
        return 1
    n_trials = plan.search.n_trials
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    if code != 0 and finished < n_trials:
        print(f"the workers stopped (one exited with code {code}) after {finished} of "
              f"{n_trials} finished trials; run the same command again to resume", flush=True)
        return 1
    if code != 0:  # e.g. a killed worker: the others finished its share
        print(f"a worker exited with code {code}; the study has all {n_trials} trials",
              flush=True)
    return None


def run_or_exit_code(study: optuna.Study, plan: SweepPlan, run: Callable[[], Any],
            worker: bool = False) -> Any:
    """`run()`'s result, or the exit code of a study that stopped: too many failures in a
    row, a lost storage (one line, from the first worker that lost it), or an interrupt (how
    to resume)."""
    try:
        return run()
    except TooManyFailures as exc:
        print(str(exc), flush=True)
        return 1
    except Exception as exc:
        lost = _storage_failure(exc)
        if lost is None:
            raise
        if not worker or plan.folder.say_once("storage-lost"):  # one line for all workers
            print(f"error: {storage_lost(plan.search.storage, lost)}", file=sys.stderr,
                  flush=True)
        return EXIT_STORAGE_LOST if worker else 1
    except KeyboardInterrupt:
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        print(f"interrupted after {finished} of {plan.search.n_trials} finished trials; the "
              "running trial was recorded as failed and queued to run again. Run the same command "
              "again to resume.",
              flush=True)
        return EXIT_INTERRUPTED


def finish_study(study: optuna.Study, plan: SweepPlan, start: float,
                 data: HeldData | None = None) -> int:
    """After the trials: confirm the winners, write TensorBoard baselines, best/ and report/,
    and print the table and the next steps."""
    search, study_dir = plan.search, plan.study_dir
    if not complete_trials(study):
        why = (f" before search.timeout={search.timeout:g} s ran out" if search.timeout
               else "")
        print(f"error: no trial completed{why}: there is no best config, model or report yet; "
              "run the same command again (with a larger search.timeout) to continue",
              file=sys.stderr, flush=True)
        return 1
    chosen = None
    if search.confirm.top_n:
        try:
            chosen = confirm_winners(study, search.confirm, search.metric, study_dir, data)
        except KeyboardInterrupt:
            print("interrupted during confirmation: the runs so far are kept; run the same "
                  "command again to finish it", flush=True)
            return EXIT_INTERRUPTED
    try:
        exported = chosen or best_trial(study)
        record_export(study, exported)
        outputs = write_study_outputs(study, study_dir, search.metric, exported)
    except OSError as exc:  # e.g. a full disk: the study itself is complete and stored
        print(f"error: cannot write best/ and report/ into {str(study_dir)!r} "
              f"({exc.strerror}); the study is complete: once there is room, run "
              f"{command('experiments.report')} study={search.study_name} to write them",
              file=sys.stderr)
        return 1
    print_outcome(study, plan, outputs, chosen)
    print(f"wall time: {time.perf_counter() - start:.0f} s")
    return 0


def print_outcome(study: optuna.Study, plan: SweepPlan, outputs: StudyOutputs,
                  chosen: optuna.trial.FrozenTrial | None) -> None:
    """The study table, then where everything is and the command that uses it. `chosen`:
    the confirmed winner (None without confirmation)."""
    study_dir, best_dir = plan.study_dir, outputs.best
    print(study_table(study, plan.search.metric))
    best = chosen or best_trial(study)
    for verdict in TrialRecord.of(best).verdicts() if best else []:
        print(f"paired test of trial {best.number}: the model {verdict}")
    if plan.search.confirm.top_n:
        print(format_confirm_table(study, chosen.number if chosen else None))
    best_files = BestFolder(best_dir) if best_dir else None
    if best_files:
        print(f"best config: {best_files.config}  (re-run it with: "
              f"{command('experiments.train')} --config {best_files.config})")
    if best_files and not best_files.model.exists():
        print(f"the best trial ran on another machine ({TrialRecord.of(best).worker if best else '?'}): "
              f"best/ holds its config and metrics; its model is there, or train it here with "
              f"the command above")
    print(f"report: {outputs.report}  (open it in a browser; recommend with: "
          f"{command('experiments.recommend')} {BestFolder(plan.folder.best).model} <user id>)")
    print(tensorboard_line(study_dir, outputs.tensorboard))

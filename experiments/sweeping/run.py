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
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc

from experiments.cli.console import command
from experiments.sweeping.claim import TrialClaim
from experiments.sweeping.confirm import confirm_winners, format_confirm_table
from experiments.sweeping.export import export_best
from experiments.sweeping.hparams import write_hparams_config, write_study_baselines
from experiments.sweeping.objective import Objective
from experiments.sweeping.outputs import KeepBestVectors, write_report
from experiments.sweeping.plan import SweepPlan
from experiments.sweeping.processes import DEADLINE_ENV, EXIT_RETIRED, run_workers, worker_count
from experiments.sweeping.space import optuna_params
from experiments.sweeping.study import (
    FINISHED,
    fail_dead_trials,
    heartbeat_ages,
    mask_url,
    storage_lost,
)
from experiments.sweeping.study_table import format_params, study_table

EXIT_INTERRUPTED = 130
MAX_FAILURES_IN_A_ROW = 5
POLL_SECONDS = 2.0
RUNNING = (optuna.trial.TrialState.RUNNING,)


class TooManyFailures(Exception):
    pass


class Progress:
    """One line per finished trial: its value, the best so far, trials done of n_trials, the
    time elapsed and an estimate of the time left (from the study's pace since this process
    started: with several workers the pace is theirs together)."""

    def __init__(self, n_trials: int, metric: str, start: float) -> None:
        self.n_trials, self.metric, self.start = n_trials, metric, start
        self.failures_in_a_row = 0
        self.finished_at_start: int | None = None
        self.clock_start = time.perf_counter()

    def begin(self, study: optuna.Study) -> None:
        self.finished_at_start = len(study.get_trials(deepcopy=False, states=FINISHED))
        self.clock_start = time.perf_counter()

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        try:
            best = f"{study.best_value:.4f}"
        except ValueError:
            best = "-"
        value = f"{trial.value:.4f}" if trial.value is not None else "-"
        note = trial.user_attrs.get("reason", "")
        print(f"trial {trial.number:>3} {trial.state.name.lower():<8} {self.metric}={value} "
              f"best={best} [{finished}/{self.n_trials}] {time.perf_counter() - self.start:.0f}s "
              f"eta {self.eta(finished)}  {format_params(trial.params)}"
              f"{'  (' + note + ')' if note else ''}", flush=True)
        failed = trial.state == optuna.trial.TrialState.FAIL
        self.failures_in_a_row = self.failures_in_a_row + 1 if failed else 0

    def eta(self, finished: int) -> str:
        done = finished - (self.finished_at_start or 0)
        left = max(self.n_trials - finished, 0)
        if left == 0:
            return "0s"
        if done <= 0:
            return "?"
        seconds = (time.perf_counter() - self.clock_start) / done * left
        return f"{seconds / 3600:.1f}h" if seconds >= 5400 else (
            f"{seconds / 60:.0f}min" if seconds >= 90 else f"{seconds:.0f}s")


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


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
    in one line, so its traceback would only bury that line."""
    if not isinstance(args.exc_value, sqlalchemy.exc.SQLAlchemyError):
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
        fail_dead_trials(study, grace_period)  # a killed worker's trial: FAIL + queued again
        with claim:  # counted and started under one lock: no trial beyond n_trials
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
    """One line when the set of trials this worker waits for changes; the set now."""
    ages = heartbeat_ages(study)
    running = {t.number for t in study.get_trials(deepcopy=False, states=RUNNING)}
    if running and running != said:
        last = ", ".join(f"trial {n} (last heartbeat {ages[n]:.0f} s ago)" if n in ages
                         else f"trial {n}" for n in sorted(running))
        print(f"waiting for {last}: the study's last slots; a trial without a heartbeat for "
              f"search.grace_period={grace_period:g} s is failed and queued again", flush=True)
    return running


def run_study(storage: optuna.storages.BaseStorage, plan: SweepPlan, start: float,
              worker: bool = False, opened: tuple[optuna.Study, int | None] | None = None) -> int:
    """The main process: open (or resume) the study, run trials here or in worker
    processes, then confirm, export best/, write report/ and print the table. A worker
    (`worker=True`) only runs trials. `opened`: what `open_study` returned, when the caller
    already opened the study (the sweep command does, to refuse a mismatched study early)."""
    search, space, study_dir = plan.search, plan.space, plan.study_dir
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our progress line reports failures
    logging.getLogger("optuna").setLevel(logging.ERROR)
    n_trials, metric = search.n_trials, search.metric
    n_workers, notice = worker_count(search.n_workers, os.cpu_count() or 1)
    if notice and not worker:
        print(notice, flush=True)
    where = f"study {search.study_name!r} in {mask_url(search.storage)}"
    # Workers open the study exactly as the main process does: same sampler and pruner.
    study, done = opened or plan.open_study(storage)
    if not worker:
        if done is not None:
            failed = len(study.get_trials(deepcopy=False,
                                          states=(optuna.trial.TrialState.FAIL,)))
            print(f"resuming {where}: {done} of {n_trials} trials already finished"
                  f"{f' ({failed} failed, not counted)' if failed else ''}", flush=True)
        else:
            print(f"starting {where}: {n_trials} trials, metric {metric}, "
                  f"{n_workers} worker(s)", flush=True)
        if not study.get_trials(deepcopy=False):
            for params in search.enqueue_trials:
                study.enqueue_trial(optuna_params(space, params), skip_if_exists=True)
        study_dir.mkdir(parents=True, exist_ok=True)
        write_hparams_config(study_dir / "trials", space, plan.ks, metric)

    signal.signal(signal.SIGTERM, _raise_interrupt)
    threading.excepthook = _quiet_storage_errors
    deadline = time.time() + search.timeout if search.timeout else None
    if worker and os.environ.get(DEADLINE_ENV):  # the main process's deadline, not our own
        deadline = float(os.environ[DEADLINE_ENV])
    # Each trial leaves some memory behind in its process (XLA's compiled programs, ~10 MB
    # on the tiny set); workers that retire after this many trials keep a long study flat.
    retire_after = search.trials_per_process
    try:
        if worker or (n_workers == 1 and not retire_after):
            objective = Objective(space, plan.base_overrides, study_dir, metric, plan.rungs,
                                  search.fidelity)
            retired = worker_loop(study, objective,
                                  n_trials, Progress(n_trials, metric, start), study_dir,
                                  deadline,
                                  max_trials=retire_after if worker else 0,
                                  grace_period=search.grace_period,
                                  callbacks=[KeepBestVectors(max(search.keep_vectors,
                                                                 search.confirm.top_n))])
            if retired:
                return EXIT_RETIRED
        else:
            code = run_workers(plan.argv, n_workers, deadline)
            finished = len(study.get_trials(deepcopy=False, states=FINISHED))
            if code != 0 and finished < n_trials:
                print(f"the workers stopped (one exited with code {code}) after {finished} of "
                      f"{n_trials} finished trials; run the same command again to resume",
                      flush=True)
                return 1
            if code != 0:  # e.g. a killed worker: the others finished its share
                print(f"a worker exited with code {code}; the study has all {n_trials} trials",
                      flush=True)
    except TooManyFailures as exc:
        print(str(exc), flush=True)
        return 1
    except Exception as exc:
        lost = _storage_failure(exc)
        if lost is None:
            raise
        print(f"error: {storage_lost(search.storage, lost)}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        print(f"interrupted after {finished} of {n_trials} finished trials; the running trial "
              "was recorded as failed. Run the same command again to resume.", flush=True)
        return EXIT_INTERRUPTED
    if worker:
        return 0
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        why = (f" before search.timeout={search.timeout:g} s ran out" if search.timeout
               else "")
        print(f"error: no trial completed{why}: there is no best config, model or report yet; "
              "run the same command again (with a larger search.timeout) to continue",
              file=sys.stderr, flush=True)
        return 1

    chosen = None
    if search.confirm.top_n:
        try:
            chosen = confirm_winners(study, search.confirm, metric, study_dir)
        except KeyboardInterrupt:
            print("interrupted during confirmation: the runs so far are kept; run the same "
                  "command again to finish it", flush=True)
            return EXIT_INTERRUPTED
    try:
        write_study_baselines(study_dir / "trials", study, plan.ks, plan.base.train.epochs)
        best_dir = export_best(study, study_dir, chosen)
        report = write_report(study, study_dir / "report", metric)
    except OSError as exc:  # e.g. a full disk: the study itself is complete and stored
        print(f"error: cannot write best/ and report/ into {str(study_dir)!r} "
              f"({exc.strerror}); the study is complete: once there is room, run "
              f"{command('experiments.report')} study={search.study_name} to write them",
              file=sys.stderr)
        return 1
    print(study_table(study, metric))
    if search.confirm.top_n:
        print(format_confirm_table(study, chosen.number if chosen else None))
    if best_dir:
        print(f"best config: {best_dir / 'config.yaml'}  (re-run it with: "
              f"{command('experiments.train')} --config {best_dir / 'config.yaml'})")
    if best_dir and not (best_dir / "model").exists():
        print(f"the best trial ran on another machine ({study.best_trial.user_attrs['worker']}): "
              f"best/ holds its config and metrics; its model is there, or train it here with "
              f"the command above")
    print(f"report: {report}  (open it in a browser; recommend with: "
          f"{command('experiments.recommend')} {study_dir / 'best' / 'model'} <user id>)")
    print(f"study folder: {study_dir}  (TensorBoard: {command('tensorboard')} --logdir "
          f"{study_dir / 'trials'})")
    print(f"wall time: {time.perf_counter() - start:.0f} s")
    return 0

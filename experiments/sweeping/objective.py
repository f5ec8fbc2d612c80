"""The Optuna objective: one trial = one training run of the suggested values set on the base
config (`TrialComposer`), pruned per epoch, or (on large data, fidelity.py) training on growing
data fractions first (`fit` alone), pruned between them."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import tensorflow as tf

from experiments.cli.rundir import write_run_config
from experiments.sweeping.fidelity import rung_step
from experiments.sweeping.folder import StudyFolder
from experiments.sweeping.hparams import write_trial_hparams
from experiments.sweeping.optuna_internals import storage_of, trial_id
from experiments.sweeping.processes import check_stop
from experiments.sweeping.search_config import FidelityConfig
from experiments.sweeping.space import Param, suggest
from experiments.sweeping.trial_config import TrialComposer
from experiments.sweeping.trials import INTERRUPTED, record
from recsys.cache import HeldData
from recsys.config import RunConfig
from recsys.errors import TrainingDiverged, UserError
from recsys.training import RunResult, fit, make_setup, run


class PruneOnEpoch(tf.keras.callbacks.Callback):
    """Report the study's metric after every epoch; stop the run when the pruner says so."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        super().__init__()
        self.trial, self.metric = trial, metric
        self.last: dict[str, float] = {}
        self.epochs = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        check_stop()  # a SIGTERM/Ctrl-C whose KeyboardInterrupt was swallowed mid-epoch
        self.last = dict(logs or {})
        self.epochs = epoch + 1
        self.trial.report(self.last[self.metric], step=epoch + 1)
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned after epoch {epoch + 1}: {self.metric}={self.last[self.metric]:.4f}")


class Objective:
    """Build the trial's config, train, and return the validation metric."""

    def __init__(self, space: list[Param], base_overrides: list[str], study_dir: Path,
                 metric: str, rungs: tuple[float, ...] = (),
                 fidelity: FidelityConfig | None = None, data: HeldData | None = None) -> None:
        self.space, self.compose = space, TrialComposer(base_overrides)
        self.folder, self.metric = StudyFolder(study_dir), metric
        self.data = data or HeldData()  # read once per process, not once per trial
        # More than one rung: scales of the trial's data.sample_fraction, smallest first.
        self.rungs, self.fidelity = rungs, fidelity or FidelityConfig()

    @staticmethod
    def progress(text: str) -> None:
        """A trial's progress line (the baselines' one-time computation): minutes of silence
        otherwise on a large catalog."""
        print(text, flush=True)

    def __call__(self, trial: optuna.Trial) -> float:
        """Suggest, compose, run, record: the trial's numbers on success; on any failure its
        state and reason are recorded (`record_end`) and the exception goes on to Optuna."""
        start = time.perf_counter()
        mark_started(trial)
        run_dir = self.folder.trial(trial.number)
        pruning = PruneOnEpoch(trial, self.metric)
        chosen: dict[str, Any] = {}  # filled once suggested: a failure after it names them
        try:  # every failure, suggesting and writing the run folder included, records its reason
            result = self.run_trial(trial, run_dir, pruning, chosen)
        except BaseException as exc:
            self.record_end(trial, exc, run_dir, chosen, pruning, time.perf_counter() - start)
            raise
        self.write_hparams_session(trial, run_dir, chosen, "complete")
        record(trial, seconds=time.perf_counter() - start,
               train_seconds=result.seconds["train"], epochs=result.epochs_run,
               best_epoch=result.epoch, rss_mb=resident_mb(), metrics=result.metrics,
               popularity=result.popularity, intervals=result.intervals,
               baselines=result.baselines, evaluation=result.evaluation, comparison=result.comparison)
        return result.metrics[self.metric]

    def run_trial(self, trial: optuna.Trial, run_dir: Path, pruning: PruneOnEpoch,
                  chosen: dict[str, Any]) -> RunResult:
        try:
            overrides, suggested = suggest(trial, self.space)
        except ValueError as exc:  # a choice list changed under allow_changed_base
            raise UserError(f"the search space cannot be suggested from ({exc}): Optuna "
                            "keeps one distribution per parameter for a whole study, so a "
                            "changed choice list needs a new search.study_name") from None
        chosen.update(suggested)
        config = self.compose(chosen)
        tree = config.to_dict()
        # The config: for best/ on a machine other than this one.
        record(trial, overrides=overrides, config=tree, run_dir=str(run_dir))
        write_run_config(run_dir, tree, overrides)
        prepared = self.data.get(config.data)
        if len(self.rungs) > 1:  # the cheap rungs first; the last is the trial's own run
            self.train_lower_rungs(trial, config, pruning)
            result = run(config, run_dir, prepared=prepared, baseline_curves=False,
                         progress=self.progress)
        else:
            result = run(config, run_dir, callbacks=[pruning], prepared=prepared,
                         baseline_curves=False, progress=self.progress)
        if result.write_error:  # a full disk: the trial fails with the reason
            raise OSError(result.write_error)
        return result

    def record_end(self, trial: optuna.Trial, exc: BaseException, run_dir: Path,
                   chosen: dict[str, Any], pruning: PruneOnEpoch, seconds: float) -> None:
        """Why a trial did not complete: its HParams state and its record's reason."""
        if isinstance(exc, optuna.TrialPruned):
            self.write_hparams_session(trial, run_dir, chosen, "pruned",
                         (pruning.epochs, {self.metric: pruning.last[self.metric]})
                         if pruning.last else None)
            record(trial, seconds=seconds, epochs=pruning.epochs, reason=str(exc))
        elif isinstance(exc, KeyboardInterrupt):  # Ctrl-C, SIGTERM, the main process gone:
            self.write_hparams_session(trial, run_dir, chosen, "failed")  # it is run again
            note_interrupted(trial, seconds, pruning.epochs)
        elif isinstance(exc, Exception):  # recorded on the trial; the study goes on (run.py)
            self.write_hparams_session(trial, run_dir, chosen, "failed")
            expected = isinstance(exc, (TrainingDiverged, OSError, UserError))
            reason = str(exc).strip() if expected else f"{type(exc).__name__}: {exc}".strip()
            record(trial, seconds=seconds, epochs=pruning.epochs + 1,
                   reason=(reason.splitlines() or [type(exc).__name__])[0])

    def train_lower_rungs(self, trial: optuna.Trial, config: RunConfig, pruning: PruneOnEpoch) -> None:
        """Train (`fit` alone: no final evaluation, no files) on each rung's fraction of the
        trial's data below the last; report the kept epoch's metric on the per-epoch
        validation subsample at the rung's step and stop the trial where successive halving
        says so."""
        n, records = len(self.rungs), []
        for rung, scale in enumerate(self.rungs[:-1]):
            fraction = config.data.sample_fraction * scale
            rung_config = replace(config, data=replace(config.data, sample_fraction=fraction))
            rung_start = time.perf_counter()
            history, epoch = fit(rung_config, make_setup(rung_config, self.data.get(config.data)))
            value = history[epoch - 1][self.metric]  # the kept epoch, on the val subsample
            pruning.epochs = len(history)
            records.append({"rung": rung + 1, "sample_fraction": fraction, "value": value,
                            "epochs": len(history),
                            "seconds": time.perf_counter() - rung_start})
            record(trial, rungs=records)
            trial.report(value, step=rung_step(rung, self.fidelity))
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"pruned after rung {rung + 1} of {n} (data.sample_fraction="
                    f"{fraction:.3g}): {self.metric}={value:.4f} on the validation subsample")

    def write_hparams_session(self, trial: optuna.Trial, run_dir: Path, chosen: dict[str, Any], state: str,
                last: tuple[int, dict[str, float]] | None = None) -> None:
        """The trial in TensorBoard's HParams dashboard, once its state is known."""
        study = getattr(getattr(trial, "study", None), "study_name", None) or "trial"
        with contextlib.suppress(Exception):  # an unwritable run folder: its reason is kept
            write_trial_hparams(run_dir, study, trial.number, chosen, state, last,
                                continuous_keys(self.space))


def mark_started(trial: optuna.Trial) -> None:
    """First thing, in this order: a heartbeat (Optuna's heartbeat thread writes its first one
    concurrently, and a worker killed before it lands left a trial that no stale check sees),
    then the mark. A RUNNING trial without the mark is one whose worker died before it
    started (see study.fail_dead_trials); one with it has a heartbeat."""
    study = getattr(trial, "study", None)  # None: a FixedTrial
    storage = storage_of(study) if study is not None else None
    if getattr(storage, "get_heartbeat_interval", lambda: None)():  # RDB with heartbeats
        storage.record_heartbeat(trial_id(trial))
    record(trial, started=trial.number, worker=f"{socket.gethostname()}:{os.getpid()}",
           reason="")  # a heartbeat retry copies the failed trial's attributes, its reason too


def continuous_keys(space: list[Param]) -> frozenset[str]:
    """The config keys searched over a float range (numbers in TensorBoard; the rest text)."""
    return frozenset(p.key for p in space
                     if isinstance(p.distribution, optuna.distributions.FloatDistribution))


def note_interrupted(trial: optuna.Trial, seconds: float, epochs: int) -> None:
    """Why the trial failed. Its parameters are queued again by the next run
    (`study.requeue_interrupted`): storage writes here, where the interrupt may have cut one
    short, are kept to this one best-effort record."""
    with contextlib.suppress(Exception):
        record(trial, reason=INTERRUPTED, seconds=seconds, epochs=epochs)


def resident_mb() -> float:
    """This process's resident memory now (Linux), else its peak; in MB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

"""What a trial stores beside its value, typed once: the objective writes a `TrialRecord`'s
fields (as Optuna user attributes, so every worker and later run reads them from the storage),
and export, confirmation, the tables, the report, TensorBoard and the benchmarks read them back
through `TrialRecord.of`. A misspelt field fails where it is written, not silently where read.

`best_first` is the one "which is better" rule (in the study's direction); `ranked` applies it
to the complete trials."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import optuna

COMPLETE = (optuna.trial.TrialState.COMPLETE,)
T = TypeVar("T")
INTERRUPTED = "interrupted (Ctrl-C, SIGTERM or its main process gone); queued to run again"


@dataclass(frozen=True)
class TrialRecord:
    started: int | None = None  # the trial's own number, first thing (study.fail_dead_trials)
    worker: str = ""  # host:pid of the process that ran it
    overrides: list[str] = field(default_factory=list)  # the suggested values, as overrides
    config: dict[str, Any] = field(default_factory=dict)  # the whole composed config
    run_dir: str = ""
    seconds: float = 0.0  # wall time of the trial
    train_seconds: float = 0.0
    epochs: int = 0  # epochs run (pruned: until the pruner stopped it)
    best_epoch: int = 0  # the epoch whose weights the metrics describe (RunResult.epoch)
    rss_mb: float = 0.0  # the worker's resident memory after the trial
    metrics: dict[str, float] = field(default_factory=dict)  # val_* and test_*
    popularity: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, list[float]] = field(default_factory=dict)  # 95% per metric
    baselines: dict[str, Any] = field(default_factory=dict)  # name -> metrics, intervals, ...
    evaluation: dict[str, Any] = field(default_factory=dict)  # how the numbers were computed
    reason: str = ""  # why it was pruned or failed
    rungs: list[dict[str, Any]] = field(default_factory=list)  # multi-fidelity: each rung
    requeued_from: int | None = None  # the interrupted trial whose parameters this one reruns
    comparison: list[dict[str, Any]] = field(default_factory=list)  # vs each baseline, on test

    def verdicts(self) -> list[str]:
        """Its paired tests against the strongest baseline (chosen on validation)."""
        from recsys.significance import strongest_verdicts

        return strongest_verdicts(self.comparison, self.baselines)

    @classmethod
    def of(cls, trial: optuna.trial.FrozenTrial) -> TrialRecord:
        """The record of a stored trial (fields it never got keep their defaults)."""
        return cls(**{k: v for k, v in trial.user_attrs.items() if k in FIELDS})


FIELDS = frozenset(f.name for f in dataclasses.fields(TrialRecord))


def record(trial: optuna.Trial, **values: Any) -> None:
    """Store these fields of the trial's record now (each is written as it becomes known: a
    trial that fails half-way keeps what it had)."""
    for name, value in values.items():
        if name not in FIELDS:
            raise KeyError(f"{name!r} is not a TrialRecord field")
        trial.set_user_attr(name, value)


def best_first(items: Iterable[T], value: Callable[[T], float], study: optuna.Study) -> list[T]:
    """`items` ordered best first by `value`, in the study's direction: every sort of trials
    or of their scores goes through here."""
    return sorted(items, key=value,
                  reverse=study.direction == optuna.study.StudyDirection.MAXIMIZE)


def complete_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's complete trials, in number order (not copied: read them, do not change)."""
    return study.get_trials(deepcopy=False, states=COMPLETE)


def ranked(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The complete trials, best first in the study's direction."""
    return best_first(complete_trials(study), lambda t: t.value, study)

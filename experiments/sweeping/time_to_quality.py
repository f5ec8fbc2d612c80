"""Time to a good model: the study's best-so-far against wall-clock seconds.

Seconds count from the start of the study's first trial (which computes the baselines once),
to the end of each complete trial. A trial "in hand" is a complete one: the best so far is the
best complete trial by validation, and its test value is what a user would get by stopping
the study then."""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from experiments.sweeping.trials import TrialRecord
from recsys.metrics import Metric

MINUTES = (1, 2, 5, 10, 20)


@dataclass(frozen=True)
class Point:
    seconds: float  # when this trial completed and became the best so far
    trial: int
    val: float  # the study's metric on validation
    test: float  # the same metric on test (nan when the trial did not record it)


def best_so_far(study: optuna.Study, metric: str) -> list[Point]:
    """One point each time a newly complete trial beats every earlier one on validation."""
    trials = study.get_trials(deepcopy=False)
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    complete = sorted((t for t in trials if t.state == optuna.trial.TrialState.COMPLETE
                       and t.datetime_complete is not None and t.value is not None),
                      key=lambda t: t.datetime_complete)
    if not starts or not complete:
        return []
    start, sign = min(starts), 1 if study.direction.name == "MAXIMIZE" else -1
    points: list[Point] = []
    for t in complete:
        if points and sign * t.value <= sign * points[-1].val:
            continue
        test = TrialRecord.of(t).metrics.get(Metric.parse(metric).on("test").name, float("nan"))
        points.append(Point((t.datetime_complete - start).total_seconds(), t.number, t.value,
                            test))
    return points


def study_seconds(study: optuna.Study) -> float:
    """Seconds from the first trial's start to the last trial's end (0 before any end)."""
    trials = study.get_trials(deepcopy=False)
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0


def at(points: list[Point], seconds: float) -> Point | None:
    """The best model in hand after `seconds` (None: none complete yet)."""
    held = [p for p in points if p.seconds <= seconds]
    return held[-1] if held else None


def baseline_value(study: optuna.Study, name: str, metric: str) -> float | None:
    """A baseline's validation value on the study's metric, as its trials recorded it."""
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        value = TrialRecord.of(t).baselines.get(name, {}).get("metrics", {}).get(metric)
        if value is not None:
            return float(value)
    return None


def first_past(points: list[Point], value: float | None) -> float | None:
    """Seconds until the best-so-far first passed `value` on validation (None: never)."""
    if value is None:
        return None
    return next((p.seconds for p in points if p.val > value), None)

"""Time to a good model: the study's best-so-far against wall-clock seconds.

Seconds count the time the study was running, from the start of its first trial (which
computes the baselines once) to the end of each complete trial: a stretch longer than
IDLE_SECONDS in which no trial ran (a study stopped and resumed later) is left out and
returned as a gap, or a resume next day would squeeze the curve into the left edge. A trial
"in hand" is a complete one: the best so far is the best complete trial by validation, and its
test value is what a user would get by stopping the study then."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import optuna

from experiments.sweeping.trials import TrialRecord, complete_trials
from recsys.metrics import reported_beside

MINUTES = (1, 2, 5, 10, 20)
IDLE_SECONDS = 60.0  # no trial running for longer than this: the study was stopped (the
#                      seconds between one trial's end and the next one's start are far less)


@dataclass(frozen=True)
class Point:
    seconds: float  # when this trial completed and became the best so far
    trial: int
    val: float  # the study's metric on validation
    test: float  # the same metric on test (nan when the trial did not record it)


@dataclass(frozen=True)
class Clock:
    """Running seconds since the study's first trial started, idle gaps left out."""

    start: datetime
    gaps: tuple[tuple[datetime, datetime], ...]  # (from, to): no trial ran in between

    @classmethod
    def of(cls, study: optuna.Study) -> Clock | None:
        spans = sorted((t.datetime_start, t.datetime_complete or t.datetime_start)
                       for t in study.get_trials(deepcopy=False)
                       if t.datetime_start is not None)
        if not spans:
            return None
        gaps, busy_until = [], spans[0][1]
        for begin, end in spans[1:]:
            if (begin - busy_until).total_seconds() > IDLE_SECONDS:
                gaps.append((busy_until, begin))
            busy_until = max(busy_until, end)
        return cls(spans[0][0], tuple(gaps))

    def seconds(self, when: datetime) -> float:
        idle = sum((min(when, to) - since).total_seconds()
                   for since, to in self.gaps if since < when)
        return (when - self.start).total_seconds() - idle

    def gap_marks(self) -> list[tuple[float, float]]:
        """(running seconds at which the study stopped, how long it stood idle) per gap."""
        return [(self.seconds(since), (to - since).total_seconds()) for since, to in self.gaps]


def best_so_far(study: optuna.Study, metric: str) -> list[Point]:
    """One point each time a newly complete trial beats every earlier one on validation."""
    clock = Clock.of(study)
    complete = sorted((t for t in study.get_trials(deepcopy=False)
                       if t.state == optuna.trial.TrialState.COMPLETE
                       and t.datetime_complete is not None and t.value is not None),
                      key=lambda t: t.datetime_complete)
    if clock is None or not complete:
        return []
    sign = 1 if study.direction.name == "MAXIMIZE" else -1
    points: list[Point] = []
    for t in complete:
        if points and sign * t.value <= sign * points[-1].val:
            continue
        test = TrialRecord.of(t).metrics.get(reported_beside(metric), float("nan"))
        points.append(Point(clock.seconds(t.datetime_complete), t.number, t.value, test))
    return points


def study_seconds(study: optuna.Study) -> float:
    """Running seconds from the first trial's start to the last trial's end (0 before any
    end), idle gaps left out."""
    clock = Clock.of(study)
    ends = [t.datetime_complete for t in study.get_trials(deepcopy=False)
            if t.datetime_complete is not None]
    return clock.seconds(max(ends)) if clock is not None and ends else 0.0


def at(points: list[Point], seconds: float) -> Point | None:
    """The best model in hand after `seconds` (None: none complete yet)."""
    held = [p for p in points if p.seconds <= seconds]
    return held[-1] if held else None


def baseline_value(study: optuna.Study, name: str, metric: str) -> float | None:
    """A baseline's validation value on the study's metric, as its trials recorded it."""
    for t in complete_trials(study):
        value = TrialRecord.of(t).baselines.get(name, {}).get("metrics", {}).get(metric)
        if value is not None:
            return float(value)
    return None


def first_past(points: list[Point], value: float | None) -> float | None:
    """Seconds until the best-so-far first passed `value` on validation (None: never)."""
    if value is None:
        return None
    return next((p.seconds for p in points if p.val > value), None)

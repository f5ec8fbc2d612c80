"""A pruner that holds every trial to the best trial's learning curve.

Optuna's median pruner compares a trial at epoch e with the other trials' values at epoch e.
Trials early-stop (most end by epoch 8 of a 30-epoch cap), so a slow trial at epoch 12 has no
one to be compared with and runs on to its cap, far below the best (seen: low learning rates
ending at 0.235 and 0.257 after 30 epochs against a best of 0.291). Here the reference is the
best complete trial's curve, held at its peak after its last epoch: a trial is cut at epoch
e >= n_warmup_steps once its value falls below `ratio` x that curve's best value up to e. A slow
starter that keeps within `ratio` of the best curve runs on, and may end best.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial

from experiments.sweeping.trials import complete_trials


class BestCurvePruner(optuna.pruners.BasePruner):
    def __init__(self, ratio: float = 0.9, n_warmup_steps: int = 2) -> None:
        self.ratio, self.n_warmup_steps = ratio, n_warmup_steps

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:  # as Optuna's median pruner
            return False
        reference = best_curve_value(study, step)
        if reference is None:
            return False
        value = trial.intermediate_values[step]
        if study.direction == optuna.study.StudyDirection.MAXIMIZE:
            return value < self.ratio * reference
        return value > reference / self.ratio


def best_curve_value(study: optuna.Study, step: int) -> float | None:
    """The best complete trial's best intermediate value up to `step` (its peak when its
    curve ended earlier); None before any complete trial reported one."""
    complete = [t for t in complete_trials(study)
                if t.intermediate_values and t.value is not None]
    if not complete:
        return None
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    best = (max if maximize else min)(complete, key=lambda t: t.value)
    seen = [v for s, v in best.intermediate_values.items() if s <= step] \
        or list(best.intermediate_values.values())[:1]
    return max(seen) if maximize else min(seen)

"""The best-curve pruner on a real (in-memory) Optuna study: a trial clearly behind the best
trial's curve is cut, a slow starter that keeps close runs on and may end best, and a trial
past the best trial's last epoch is held to that trial's peak (the median pruner's blind spot:
nobody else reached that epoch)."""

from __future__ import annotations

import optuna
import pytest

from experiments.sweeping.pruners import BestCurvePruner
from experiments.sweeping.search_config import PrunerConfig
from experiments.sweeping.study import make_pruner

BEST = [0.30, 0.45, 0.50, 0.52, 0.51]  # early-stopped after epoch 5; ended at 0.52


def study_with_best(pruner: optuna.pruners.BasePruner) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.add_trial(optuna.trial.create_trial(
        value=max(BEST), intermediate_values=dict(enumerate(BEST, start=1)),
        params={}, distributions={}))
    return study


def epochs_run(study: optuna.Study, curve: list[float]) -> int:
    """Report `curve` epoch by epoch as a trial does; the epochs it ran before the cut."""
    trial = study.ask()
    for epoch, value in enumerate(curve, start=1):
        trial.report(value, epoch)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return epoch
    study.tell(trial, max(curve))
    return len(curve)


def test_a_trial_clearly_behind_the_best_curve_is_cut_after_the_warm_up() -> None:
    study = study_with_best(BestCurvePruner(ratio=0.9, n_warmup_steps=3))
    assert epochs_run(study, [0.10, 0.20, 0.25, 0.30, 0.33, 0.35]) == 3


def test_a_slow_starter_close_to_the_best_curve_runs_on_and_ends_best() -> None:
    study = study_with_best(BestCurvePruner(ratio=0.9, n_warmup_steps=3))
    slow = [0.05, 0.41, 0.46, 0.49, 0.53, 0.56, 0.58]  # behind at first, best at the end
    assert epochs_run(study, slow) == len(slow)
    assert study.best_value == pytest.approx(0.58)


def test_past_the_best_trials_last_epoch_the_reference_is_its_peak() -> None:
    # A low learning rate creeping up for 30 epochs: the median pruner has no trial at epoch 6+
    study = study_with_best(BestCurvePruner(ratio=0.9, n_warmup_steps=3))
    creeping = [0.2 + 0.01 * e for e in range(1, 31)]  # 0.21 ... 0.50: never within 0.9 x 0.52
    assert epochs_run(study, creeping) == 3
    median = study_with_best(optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=3))
    assert epochs_run(median, creeping) == 3  # the median prunes it too, while it has company
    late = BEST + [0.40] * 10  # as the best, then falls back after its last epoch
    assert epochs_run(study_with_best(BestCurvePruner(0.9, 3)), late) == 6
    median = study_with_best(optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=3))
    assert epochs_run(median, late) == len(late)  # nobody at epoch 6+: it runs to its cap


def test_no_reference_no_cut_and_the_config_builds_it() -> None:
    study = optuna.create_study(direction="maximize", pruner=BestCurvePruner(0.9, 0))
    assert epochs_run(study, [0.01, 0.01, 0.01]) == 3  # no complete trial yet
    pruner = make_pruner(PrunerConfig(name="best_curve", ratio=0.8, n_warmup_steps=4), 30)
    assert isinstance(pruner, BestCurvePruner) and (pruner.ratio, pruner.n_warmup_steps) == (0.8, 4)


def test_eta_is_the_mean_trial_times_the_trials_left_without_the_start_up() -> None:
    """The first trial counts by its training seconds (its baselines and start-up are paid
    once); the mean of the trials so far, times the trials left, over the workers."""
    from datetime import datetime, timedelta

    from experiments.sweeping.run import Progress

    study = optuna.create_study(direction="maximize")
    progress = Progress(15, "val_top_100", 0.0, n_workers=1)
    assert progress.eta(0) == "?"
    t0 = datetime(2026, 1, 1)
    for number, seconds in enumerate([90, 16, 9, 3, 3]):
        trial = optuna.trial.FrozenTrial(
            number=number, state=optuna.trial.TrialState.COMPLETE, value=0.5,
            datetime_start=t0, datetime_complete=t0 + timedelta(seconds=seconds), params={},
            distributions={}, user_attrs={"train_seconds": 19.0} if number == 0 else {},
            system_attrs={}, intermediate_values={}, trial_id=number)
        study.add_trial(trial)
        progress(study, study.trials[-1])
        if number == 0:
            assert progress.eta(1) == "4min"  # 19 s x 14 left, not 90 s x 14 (21 min)
    assert progress.eta(5) == "2min"  # 100 s: mean(19, 16, 9, 3, 3) = 10 s x 10 trials left
    assert Progress(15, "m", 0.0, n_workers=2).eta(5) == "?"
    progress.n_workers = 2
    assert progress.eta(5) == "50s" and progress.eta(15) == "0s"

"""The typed trial record: what the objective writes is what every reader gets back."""

from __future__ import annotations

import optuna
import pytest

from experiments.sweeping.trials import TrialRecord, ranked, record


def test_fields_round_trip_through_a_real_storage_and_typos_fail_where_written(tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="r", storage=storage, direction="minimize")
    trial = study.ask()
    record(trial, started=trial.number, best_epoch=3, metrics={"val_top_100": 0.5},
           intervals={"val_top_100": [0.4, 0.6]})
    with pytest.raises(KeyError, match="'best_epcoh' is not a TrialRecord field"):
        record(trial, best_epcoh=4)
    study.tell(trial, 0.5)
    stored = TrialRecord.of(optuna.load_study(study_name="r", storage=storage).trials[0])
    assert (stored.started, stored.best_epoch, stored.metrics, stored.intervals) == (
        0, 3, {"val_top_100": 0.5}, {"val_top_100": [0.4, 0.6]})
    assert stored.reason == "" and stored.rungs == []  # never written: the defaults


def test_ranked_follows_the_study_direction() -> None:
    for direction, order in (("maximize", [2, 0, 1]), ("minimize", [1, 0, 2])):
        study = optuna.create_study(direction=direction)
        for value in (0.5, 0.1, 0.9):
            study.add_trial(optuna.trial.create_trial(value=value))
        assert [t.number for t in ranked(study)] == order


def test_a_failed_start_point_is_queued_again_once(tmp_path) -> None:
    """A start point whose trial failed for a reason of its own (a damaged cache) runs again
    on the next resume; other failed trials, and interrupted ones (requeue_interrupted's),
    are left alone."""
    import optuna

    from experiments.sweeping.study import requeue_failed_starts
    from experiments.sweeping.trials import INTERRUPTED, record

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    starts = [{"x": 1.0}, {"x": 2.0}]
    for params in starts:
        study.enqueue_trial(params)
    dist = {"x": optuna.distributions.FloatDistribution(0, 3)}
    for reason in ("BadZipFile: cache", INTERRUPTED, "diverged"):
        trial = study.ask(dist)  # the two start points, then a sampled trial
        record(trial, started=trial.number, reason=reason)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert requeue_failed_starts(study, starts) == [0]
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [starts[0]]
    assert requeue_failed_starts(study, starts) == []

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

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from experiments.sweeping.outputs import write_report

DISTS = {"optimizer.learning_rate": FloatDistribution(1e-3, 1.0, log=True),
         "model.embedding_dim": CategoricalDistribution([16, 32, 64])}


def add(study: optuna.Study, state: TrialState, lr: float, dim: int, curve: list[float]) -> None:
    last = curve[-1] if curve else 0.0
    metrics = {f"{s}_top_{k}": last * k / 100 for s in ("val", "test") for k in (1, 5, 10, 50, 100)}
    study.add_trial(create_trial(
        state=state, value=curve[-1] if state == TrialState.COMPLETE else None,
        params={"optimizer.learning_rate": lr, "model.embedding_dim": dim}, distributions=DISTS,
        intermediate_values=dict(enumerate(curve, start=1)),
        user_attrs={"metrics": metrics, "seconds": 3.0,
                    "popularity": {"val_top_100": 0.2, "test_top_100": 0.21},
                    "baselines": {"popularity": {"name": "popularity", "metrics": {
                        "val_top_100": 0.2, "test_top_100": 0.21}},
                        "ease": {"name": "EASE", "metrics": {"val_top_100": 0.25}}}}
        if curve else {}))


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_report_for_study_with_complete_pruned_and_failed_trials(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize",
                                storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="r")
    for i, (lr, dim) in enumerate([(0.1, 32), (0.01, 16), (0.3, 64), (0.05, 32)]):
        add(study, TrialState.COMPLETE, lr, dim, [0.1 + 0.02 * i, 0.2 + 0.03 * i, 0.3 + 0.01 * i])
    add(study, TrialState.PRUNED, 0.002, 16, [0.05])
    add(study, TrialState.FAIL, 0.9, 64, [])
    index = write_report(study, tmp_path / "report", "val_top_100")
    summary = tmp_path / "report" / "summary.md"

    page = index.read_text()
    assert index.name == "index.html" and page.lower().startswith("<!doctype html>")
    # history, time to quality, importances, parallel, slices, curves
    assert page.count("Plotly.newPlot") == 6
    assert "Time to quality: the best trial so far: passed EASE after" in page
    assert "<script src=" not in page and len(page) > 3_000_000  # plotly.js inlined: no network
    assert page.count("plotly.js v") <= 2  # ... once (its banner), not per figure
    assert "Objective Value" not in page and page.count("val_top_100") >= 5
    assert "pruned (last reported value)" in page and "trial 4 (pruned)" in page
    assert "<table>" in page and "<td>best</td>" in page
    assert not list((tmp_path / "report").glob("*.js"))
    assert is_png(tmp_path / "report" / "optimization_history.png")
    assert is_png(tmp_path / "report" / "param_importances.png")
    # trials.csv: every trial, its parameters, state and metrics (the study's first)
    import pandas as pd

    trials = pd.read_csv(tmp_path / "report" / "trials.csv")
    assert trials["number"].tolist() == list(range(6))
    assert trials["state"].tolist() == ["COMPLETE"] * 4 + ["PRUNED", "FAIL"]
    assert trials["params_optimizer.learning_rate"].tolist()[:2] == [0.1, 0.01]
    metric_columns = [c for c in trials.columns if c.startswith(("val_", "test_"))]
    assert metric_columns[:3] == ["val_top_100", "test_top_100", "val_top_1"]
    assert trials.loc[3, "val_top_100"] == pytest.approx(0.33)
    assert pd.isna(trials.loc[5, "val_top_100"])  # the failed trial recorded none
    assert {"duration", "epochs", "seconds", "reason"} <= set(trials.columns)
    text = summary.read_text()
    assert "4 complete, 1 pruned, 1 failed" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")
            and ("complete" in line or "best" in line)]
    assert len(rows) == 4 and rows[0].startswith("| 3 | best |")  # best (0.33) first
    assert "| popularity | baseline |" in text and "0.2000" in text
    assert "Not enough trials" not in text
    from experiments.sweeping.outputs import png_figure

    # The PNGs name the study's metric too, not Optuna's "Objective Value".
    history = png_figure(study, "optimization_history", "val_ndcg_10")
    assert history.axes[0].get_ylabel() == "val_ndcg_10"


def test_report_for_single_trial_explains_missing_importances(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    add(study, TrialState.COMPLETE, 0.1, 32, [0.2, 0.3])
    index = write_report(study, tmp_path / "report", "val_top_100")
    assert "Not enough trials for importances" in (tmp_path / "report" / "summary.md").read_text()
    assert "Not enough complete trials to draw it" in index.read_text()
    assert is_png(tmp_path / "report" / "optimization_history.png")
    assert is_png(tmp_path / "report" / "intermediate_values.png")


def test_time_to_quality_follows_the_best_complete_trial_by_wall_clock() -> None:
    """Seconds from the first trial's start to each new best's completion; pruned trials and
    trials that do not beat the best so far add no point; EASE is passed at the first best
    above its validation value."""
    from datetime import datetime, timedelta

    from experiments.sweeping.time_to_quality import at, best_so_far, first_past, study_seconds

    study = optuna.create_study(direction="maximize")
    t0 = datetime(2026, 1, 1)
    for number, (state, value, start, end) in enumerate([
            (TrialState.COMPLETE, 0.30, 0, 100), (TrialState.PRUNED, None, 100, 130),
            (TrialState.COMPLETE, 0.20, 130, 200), (TrialState.COMPLETE, 0.40, 200, 400)]):
        study.add_trial(optuna.trial.FrozenTrial(
            number=number, state=state, value=value, datetime_start=t0 + timedelta(seconds=start),
            datetime_complete=t0 + timedelta(seconds=end), params={}, distributions={},
            user_attrs={"metrics": {"test_top_100": (value or 0) + 0.01}}, system_attrs={},
            intermediate_values={1: value or 0.1}, trial_id=number))
    points = best_so_far(study, "val_top_100")
    assert [(p.seconds, p.trial, p.val) for p in points] == [(100, 0, 0.30), (400, 3, 0.40)]
    assert points[1].test == pytest.approx(0.41)
    assert at(points, 60) is None and at(points, 120).trial == 0 and at(points, 600).trial == 3
    assert first_past(points, 0.35) == 400 and first_past(points, 0.5) is None
    assert study_seconds(study) == 400


def test_the_console_study_table_fits_120_columns_with_whole_parameters() -> None:
    from experiments.sweeping.study_table import study_table

    study = optuna.create_study(direction="maximize")
    long = {"optimizer.learning_rate": FloatDistribution(1e-4, 1.0, log=True),
            "model.embedding_dim": CategoricalDistribution([16, 32, 64])}
    for i in range(3):
        study.add_trial(create_trial(
            value=0.3 + i / 100, params={"optimizer.learning_rate": 0.0012345 * (i + 1),
                                         "model.embedding_dim": 64},
            distributions=long, intermediate_values={1: 0.3},
            user_attrs={"metrics": {f"{s}_top_{k}": 0.3 for s in ("val", "test")
                                    for k in (1, 10, 100)},
                        "intervals": {"val_top_100": [0.25, 0.35]}, "seconds": 12.0,
                        "baselines": {"ease": {"name": "EASE", "param": "lambda=500",
                                               "metrics": {"val_top_100": 0.2}}}}))
    text = study_table(study, "val_top_100")
    assert max(len(line) for line in text.splitlines()) <= 120
    assert "    optimizer.learning_rate=0.003703 model.embedding_dim=64" in text  # whole tokens
    assert "    tuned on validation: lambda=500" in text
    assert "val@1 " not in text  # top-1 lives in summary.md and the report
    assert "val@1 " in study_table(study, "val_top_100", markdown=True)


def test_hparams_values_read_as_written_and_sessions_sort_numerically() -> None:
    from experiments.sweeping.hparams import hparam_value, session_name

    assert hparam_value(0.25) == "0.25" and hparam_value(0.0) == "0" and hparam_value(64) == "64"
    assert hparam_value(0.003, continuous=True) == 0.003  # a searched range stays a number
    names = [session_name("s", n) for n in (1, 2, 10, 19)]
    assert sorted(names) == names


def test_time_to_quality_leaves_out_the_idle_time_between_a_stop_and_a_resume() -> None:
    """A study stopped after 200 s and resumed 30 minutes later: the second run's best lands
    at 200 + its own seconds, and the page marks where the study stood idle."""
    from datetime import datetime, timedelta

    from experiments.sweeping.report_page import time_figure
    from experiments.sweeping.time_to_quality import Clock, best_so_far, study_seconds

    study = optuna.create_study(direction="maximize")
    t0 = datetime(2026, 1, 1)
    # two workers overlap in the first run (no gap between them); 1800 s idle; then a resume
    for number, (value, start, end) in enumerate([(0.30, 0, 150), (0.25, 10, 200),
                                                  (0.35, 2000, 2100), (0.40, 2105, 2300)]):
        study.add_trial(optuna.trial.FrozenTrial(
            number=number, state=TrialState.COMPLETE, value=value,
            datetime_start=t0 + timedelta(seconds=start),
            datetime_complete=t0 + timedelta(seconds=end), params={}, distributions={},
            user_attrs={"metrics": {"test_top_100": value}}, system_attrs={},
            intermediate_values={1: value}, trial_id=number))
    assert [(p.seconds, p.trial) for p in best_so_far(study, "val_top_100")] == \
        [(150, 0), (300, 2), (500, 3)]
    assert study_seconds(study) == 500
    clock = Clock.of(study)
    assert clock is not None and clock.gap_marks() == [(200, 1800)]
    fig = time_figure(study, "val_top_100")
    assert fig is not None and max(fig.data[0].x) == 500
    assert any("resumed 30 min later" in (a.text or "") for a in fig.layout.annotations)

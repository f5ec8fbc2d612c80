"""Paired tests of the model against a baseline: against direct computations (pandas groupby,
Holm by hand) on data small enough to check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from recsys.metrics import Metric, per_pair_metrics, ranking_metrics
from recsys.significance import (
    Paired,
    compare,
    holm,
    paired_difference,
    strongest_verdicts,
)


def test_holm_by_hand() -> None:
    # sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04 -> monotone 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_the_difference_interval_and_p_value_are_per_user() -> None:
    rng = np.random.default_rng(0)
    users = np.r_[rng.integers(1, 60, size=500), np.zeros(20, int)]  # 20 unknown-user pairs
    model = rng.random(len(users)) < 0.6
    other = rng.random(len(users)) < 0.4
    diff, (lo, hi), p, n = paired_difference(model.astype(float), other.astype(float), users,
                                             resamples=2000)
    assert diff == pytest.approx(model.mean() - other.mean())
    assert lo < diff < hi and lo > 0
    unit = np.where(users > 0, users, -np.arange(1, len(users) + 1))
    per_user = pd.Series(model.astype(float) - other).groupby(unit).mean()
    assert n == len(per_user) and p < 0.05  # the interval excludes zero: so does the test
    same = paired_difference(model.astype(float), model.astype(float), users)
    assert same[0] == 0 and same[2] == 1.0


def test_the_p_value_agrees_with_the_interval_beside_it() -> None:
    """p < 0.05 exactly when the 95% interval excludes zero (one bootstrap gives both), on
    differences from clear to none."""
    rng = np.random.default_rng(3)
    users = rng.integers(1, 300, size=1500)
    for shift in (0.0, 0.02, 0.04, 0.06, 0.1, -0.05):
        model = (rng.random(len(users)) < 0.4 + shift).astype(float)
        other = (rng.random(len(users)) < 0.4).astype(float)
        _, (lo, hi), p, _ = paired_difference(model, other, users, resamples=2000, seed=1)
        assert (p < 0.05) == (lo > 0 or hi < 0), (shift, lo, hi, p)


def test_a_mean_loss_hidden_from_a_signed_rank_test_is_called_a_loss() -> None:
    """Most users tie (NDCG@10 is 0 for both), many gain a little and a few lose a lot: the
    mean the tables show is clearly lower, while a signed-rank test, which drops the ties and
    ranks the rest, sees no difference. The verdict follows the interval printed with it."""
    diff = np.r_[np.full(400, 0.01), np.full(165, -0.2), np.zeros(1435)]
    users = np.arange(1, len(diff) + 1)
    assert scipy.stats.wilcoxon(diff[diff != 0]).pvalue > 0.05
    mean, interval, p, n = paired_difference(diff, np.zeros_like(diff), users)
    assert interval[1] < 0 and p < 0.05
    paired = Paired("EASE", "test_ndcg_10", 0.1 + mean, 0.1, mean, interval, p, p, n)
    assert paired.verdict().startswith("trails EASE at ndcg_10: ")
    # Holm over several baselines can lift p above 0.05 while this interval excludes zero:
    # the line then says that Holm decided.
    lifted = Paired("EASE", "test_ndcg_10", 0.1 + mean, 0.1, mean, interval, p, 0.2, n, 5)
    assert lifted.verdict().startswith("is not distinguishable, after Holm over 5 baselines, "
                                       "from EASE at ndcg_10")


def test_compare_reports_the_tables_difference_and_the_strongest_baselines_verdict() -> None:
    rng = np.random.default_rng(1)
    users = rng.integers(1, 200, size=3000)
    model = rng.integers(0, 80, size=3000)  # better ranks than both baselines
    ranks = {"EASE": rng.integers(0, 150, size=3000), "popularity": rng.integers(0, 1000, 3000)}
    rows = compare(model, ranks, users, (10, 100), [Metric("val", "top", 100), Metric("val", "ndcg", 10)],
                   resamples=300)
    assert [(r.baseline, r.metric) for r in rows] == [
        ("EASE", "test_top_100"), ("popularity", "test_top_100"),
        ("EASE", "test_ndcg_10"), ("popularity", "test_ndcg_10")]
    ease = rows[0]
    direct = ranking_metrics(model, (100,), "test")["test_top_100"] \
        - ranking_metrics(ranks["EASE"], (100,), "test")["test_top_100"]
    assert ease.difference == pytest.approx(direct) and ease.p_holm >= ease.p_value
    assert ease.verdict().startswith(f"beats EASE at top_100: +{direct:.4f}, 95% [")
    # No resample crossed zero: the p-value printed is the bootstrap's floor, an upper bound.
    assert ease.p_value == pytest.approx(2 / 301) and "p≤0.0133 (paired bootstrap, Holm over " \
        "2 baselines; " in ease.verdict()
    baselines = {"ease": {"name": "EASE", "metrics": {"val_top_100": 0.4, "val_ndcg_10": 0.1}},
                 "popularity": {"name": "popularity", "metrics": {"val_top_100": 0.2,
                                                                 "val_ndcg_10": 0.05}}}
    lines = strongest_verdicts([r.to_json() for r in rows], baselines)
    assert len(lines) == 2 and all("EASE" in line for line in lines)
    # Each metric against the baseline strongest at it on validation: popularity at NDCG@10.
    baselines["popularity"]["metrics"]["val_ndcg_10"] = 0.2
    top, ndcg = strongest_verdicts([r.to_json() for r in rows], baselines)
    assert "EASE at top_100" in top and "popularity at ndcg_10" in ndcg


def test_a_verdict_needs_the_test_and_the_interval_to_agree() -> None:
    from recsys.significance import Paired

    row = Paired("iALS", "test_ndcg_10", 0.075, 0.0753, -0.0003, (-0.0038, 0.0035), 1e-5, 1e-5,
                 2772)
    assert row.verdict().startswith("is not distinguishable from iALS at ndcg_10: -0.0003")
    row = Paired("iALS", "test_top_100", 0.50, 0.47, 0.0294, (0.0208, 0.0388), 5e-18, 5e-18, 2772)
    assert row.verdict().startswith("beats iALS at top_100: +0.0294")


def test_compare_gives_each_pair_of_scorers_its_own_paired_bootstrap() -> None:
    """compare resamples every comparison with one draw of user weights; each row is what
    paired_difference computes for that baseline and metric alone."""
    rng = np.random.default_rng(3)
    users = rng.integers(0, 300, size=2000)  # user 0: unknown, a unit per pair
    model = rng.integers(0, 120, size=2000)
    ranks = {"a": rng.integers(0, 150, size=2000), "b": rng.integers(0, 90, size=2000)}
    metrics = [Metric("val", "top", 10), Metric("val", "ndcg", 10)]
    rows = compare(model, ranks, users, (10,), metrics, resamples=200)
    model_values = per_pair_metrics(model, (10,), "test")
    for row in rows:
        metric = Metric.parse(row.metric)
        other = per_pair_metrics(ranks[row.baseline], (10,), "test")[metric]
        difference, interval, p, n = paired_difference(model_values[metric], other, users, 200)
        assert row.difference == pytest.approx(difference)
        assert row.interval == pytest.approx(interval) and row.p_value == pytest.approx(p)
        assert row.users == n == len(np.unique(users[users > 0])) + np.sum(users == 0)
    assert len({r.interval for r in rows}) == 4  # four comparisons, four different intervals


def test_compare_without_baselines_has_no_rows() -> None:
    users = np.arange(1, 51)
    assert compare(np.zeros(50, int), {}, users, (10,), [Metric("val", "ndcg", 10)]) == []

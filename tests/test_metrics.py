from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_recommenders as tfrs

from recsys.metrics import exact_ranks, popularity_ranks, ranking_metrics, top_k_accuracy


def test_exact_top_k_equals_factorized_top_k() -> None:
    # FactorizedTopK scores the positive apart from the candidates (an elementwise dot vs a
    # matmul), so float rounding can push a true hit one rank down and under-report. Small
    # integer embeddings make every dot product exact in float32, so both must agree exactly
    # at every k -- including the many exact ties, where both count only strictly higher
    # scores against the true item.
    rng = np.random.default_rng(0)
    users = rng.integers(-3, 4, size=(500, 8)).astype(np.float32)
    items = rng.integers(-3, 4, size=(300, 8)).astype(np.float32)
    true = rng.integers(0, 300, size=500)
    ks = (1, 5, 10, 50, 100)
    ours = top_k_accuracy(exact_ranks(users, items, true, batch_size=128), ks, "val")

    candidates = tf.data.Dataset.from_tensor_slices(items).batch(64)
    metric = tfrs.metrics.FactorizedTopK(candidates=candidates, ks=ks)
    metric.update_state(tf.constant(users), tf.constant(items[true]))
    theirs = {m.name: float(m.result()) for m in metric.metrics}
    for k in ks:
        assert abs(ours[f"val_top_{k}"] - theirs[f"factorized_top_k/top_{k}_categorical_accuracy"]) < 1e-6
    assert 0 < ours["val_top_1"] < ours["val_top_10"] < ours["val_top_100"] < 1


def test_float_rounding_makes_factorized_top_k_under_report_not_over() -> None:
    rng = np.random.default_rng(0)
    users = rng.normal(size=(2000, 32)).astype(np.float32)
    items = rng.normal(size=(300, 32)).astype(np.float32)
    true = rng.integers(0, 300, size=2000)
    ours = top_k_accuracy(exact_ranks(users, items, true), (1, 5), "val")
    metric = tfrs.metrics.FactorizedTopK(
        candidates=tf.data.Dataset.from_tensor_slices(items).batch(64), ks=(1, 5))
    metric.update_state(tf.constant(users), tf.constant(items[true]))
    theirs = [float(m.result()) for m in metric.metrics]
    assert ours["val_top_1"] >= theirs[0] - 1e-6 and ours["val_top_5"] >= theirs[1] - 1e-6
    assert ours["val_top_5"] - theirs[1] < 0.01


def test_top_k_accuracy_counts_ranks_below_k() -> None:
    assert top_k_accuracy(np.array([0, 3, 5, 200]), (1, 10), "val") \
        == {"val_top_1": 0.25, "val_top_10": 0.75}


def test_popularity_ranks_follow_counts_with_stable_ties() -> None:
    counts = np.array([3, 10, 0, 10, 1])
    assert popularity_ranks(counts, np.arange(5)).tolist() == [2, 0, 4, 1, 3]


def test_ndcg_and_mrr_follow_their_definitions_for_one_relevant_item() -> None:
    """One held-out item per pair: NDCG@k = 1/log2(rank+2) inside the cut-off (the ideal DCG
    is 1), MRR = 1/(rank+1), and top-k = recall@k. Written out pair by pair."""
    from recsys.metrics import ranking_metrics

    ranks = np.array([0, 1, 4, 9, 10, 250])
    got = ranking_metrics(ranks, (1, 10), "val")
    assert got["val_top_10"] == 4 / 6 and got["val_top_1"] == 1 / 6
    ndcg10 = sum(1 / np.log2(r + 2) for r in ranks if r < 10) / 6
    assert got["val_ndcg_10"] == pytest.approx(ndcg10)
    assert got["val_ndcg_1"] == pytest.approx(1 / 6)  # only rank 0 counts, with gain 1
    assert got["val_mrr"] == pytest.approx(np.mean([1 / (r + 1) for r in ranks]))


def test_intervals_cover_every_metric() -> None:
    from recsys.evaluation import bootstrap_intervals
    from recsys.metrics import ranking_metrics

    rng = np.random.default_rng(0)
    ranks, users = rng.integers(0, 50, 400), rng.integers(1, 80, 400)
    bounds = bootstrap_intervals(ranks, users, (1, 10), "test", resamples=200)
    for key, value in ranking_metrics(ranks, (1, 10), "test").items():
        low, high = bounds[key]
        assert low <= value <= high and low < high, key


def test_a_metric_name_is_parsed_labelled_and_moved_between_splits_in_one_place() -> None:
    from recsys.metrics import Metric, selectable, top

    metric = Metric.parse("val_ndcg_10")
    assert (metric.split, metric.kind, metric.k) == ("val", "ndcg", 10)
    assert metric.on("test").name == "test_ndcg_10" and metric.label == "ndcg@10"
    assert Metric.parse("test_mrr").base == "mrr" and Metric.parse("val_mrr").label == "mrr"
    assert top(100).name == "val_top_100" and top(100).label == "top-100"
    assert Metric.higher_is_better
    for bad in ("val_top_0", "train_top_10", "val_ndcg", "val_top_10x", "test_pairs"):
        assert Metric.of(bad) is None
        with pytest.raises(ValueError, match=repr(bad)):
            Metric.parse(bad)
    assert selectable((10, 1)) == ["val_top_1", "val_top_10", "val_ndcg_1", "val_ndcg_10",
                                   "val_mrr"]
    # Every name a run reports parses back to itself.
    reported = ranking_metrics(np.array([0, 3, 50]), (1, 10), "test")
    assert all(Metric.parse(name).name == name for name in reported)

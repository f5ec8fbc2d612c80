from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from recsys.metrics import exact_ranks, popularity_ranks, top_k_accuracy


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
    ours = top_k_accuracy(exact_ranks(users, items, true, batch_size=128), ks)

    candidates = tf.data.Dataset.from_tensor_slices(items).batch(64)
    metric = tfrs.metrics.FactorizedTopK(candidates=candidates, ks=ks)
    metric.update_state(tf.constant(users), tf.constant(items[true]))
    theirs = {m.name: float(m.result()) for m in metric.metrics}
    for k in ks:
        assert abs(ours[f"top_{k}"] - theirs[f"factorized_top_k/top_{k}_categorical_accuracy"]) < 1e-6
    assert 0 < ours["top_1"] < ours["top_10"] < ours["top_100"] < 1


def test_float_rounding_makes_factorized_top_k_under_report_not_over() -> None:
    rng = np.random.default_rng(0)
    users = rng.normal(size=(2000, 32)).astype(np.float32)
    items = rng.normal(size=(300, 32)).astype(np.float32)
    true = rng.integers(0, 300, size=2000)
    ours = top_k_accuracy(exact_ranks(users, items, true), (1, 5))
    metric = tfrs.metrics.FactorizedTopK(
        candidates=tf.data.Dataset.from_tensor_slices(items).batch(64), ks=(1, 5))
    metric.update_state(tf.constant(users), tf.constant(items[true]))
    theirs = [float(m.result()) for m in metric.metrics]
    assert ours["top_1"] >= theirs[0] - 1e-6 and ours["top_5"] >= theirs[1] - 1e-6
    assert ours["top_5"] - theirs[1] < 0.01


def test_top_k_accuracy_counts_ranks_below_k() -> None:
    assert top_k_accuracy(np.array([0, 3, 5, 200]), (1, 10)) == {"top_1": 0.25, "top_10": 0.75}


def test_popularity_ranks_follow_counts_with_stable_ties() -> None:
    counts = np.array([3, 10, 0, 10, 1])
    assert popularity_ranks(counts, np.arange(5)).tolist() == [2, 0, 4, 1, 3]

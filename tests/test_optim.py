"""Lazy Adam: plain Adam on the rows a batch holds, nothing for the others."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from recsys.optim import LazyAdam

INIT = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)


def train(optimizer: type, batches: list[list[int]]) -> np.ndarray:
    table = tf.Variable(INIT)
    opt = optimizer(0.1)
    for rows in batches:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(tf.gather(table, tf.constant(rows))))
        grad = tape.gradient(loss, table)
        assert isinstance(grad, tf.IndexedSlices)  # an embedding lookup's sparse gradient
        opt.apply_gradients([(grad, table)])
    return table.numpy()


def test_lazy_adam_is_adam_on_the_rows_a_batch_holds() -> None:
    every_row = [[0, 1, 2, 3, 4, 5, 2]]  # row 2 twice: its gradients add up
    np.testing.assert_allclose(train(LazyAdam, every_row), train(tf.keras.optimizers.Adam,
                                                                 every_row), atol=1e-5)
    two = [[0, 1, 2, 3, 4, 5], [0, 1]]
    lazy, dense, after_one = (train(LazyAdam, two), train(tf.keras.optimizers.Adam, two),
                              train(LazyAdam, two[:1]))
    np.testing.assert_array_equal(lazy[2:], after_one[2:])  # rows 2..5 untouched by batch 2
    assert not np.allclose(dense[2:], after_one[2:])  # Adam moves them with its old moments
    np.testing.assert_allclose(lazy[:2], dense[:2], atol=1e-5)


def test_optimizer_lazy_trains_a_model(tmp_path) -> None:

    from conftest import TINY_SYNTHETIC, TINY_TRAIN

    from experiments.cli.compose import compose_run
    from recsys.training import run

    results = {}
    for lazy in (True, False):
        _, config = compose_run([f"data.cache_dir={tmp_path}", *TINY_SYNTHETIC, *TINY_TRAIN,
                                 f"optimizer.lazy={str(lazy).lower()}", "train.epochs=3"])
        results[lazy] = run(config)
    lazy = results[True]
    assert lazy.history[-1]["loss"] < lazy.history[0]["loss"]
    # About as good as Adam here (every user and item is in most batches of this tiny set).
    assert abs(lazy.metrics["val_top_100"] - results[False].metrics["val_top_100"]) < 0.1


def test_lazy_auto_follows_the_table_size() -> None:
    from recsys.config import LAZY_ADAM_ROWS, OptimizerConfig
    from recsys.errors import UserError
    from recsys.typed import build

    auto = build(OptimizerConfig, {"name": "adam", "lazy": "auto"}, "optimizer")
    assert not auto.use_lazy(LAZY_ADAM_ROWS - 1) and auto.use_lazy(LAZY_ADAM_ROWS)
    assert build(OptimizerConfig, {"lazy": True}, "optimizer").use_lazy(10)
    assert not build(OptimizerConfig, {"lazy": False}, "optimizer").use_lazy(10**8)
    with pytest.raises(UserError, match=r"optimizer.lazy='maybe' is invalid: expected true or "
                                        r"false or auto"):
        build(OptimizerConfig, {"lazy": "maybe"}, "optimizer")

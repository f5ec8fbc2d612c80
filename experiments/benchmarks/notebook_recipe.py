"""The seed notebook's model and training loop, kept as the benchmark's reference.

String ids go through `StringLookup` inside each tower, `FactorizedTopK` over all products is
the task's metric, and training is `model.fit` on a cached `tf.data` pipeline followed by
`model.evaluate`. `metrics_in_training=True` is the notebook as written (full-catalog top-k on
every training batch); False is the TFRS maintainers' advice (`compute_metrics=not training`).
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from recsys.metrics import top


class NotebookModel(tfrs.Model):
    def __init__(self, user_ids: np.ndarray, item_ids: np.ndarray, dim: int,
                 metrics_in_training: bool) -> None:
        super().__init__()
        self.user_model = tf.keras.Sequential([
            tf.keras.layers.StringLookup(vocabulary=user_ids, mask_token=None),
            tf.keras.layers.Embedding(len(user_ids) + 1, dim)])
        self.product_model = tf.keras.Sequential([
            tf.keras.layers.StringLookup(vocabulary=item_ids, mask_token=None),
            tf.keras.layers.Embedding(len(item_ids) + 1, dim)])
        candidates = tf.data.Dataset.from_tensor_slices(item_ids).batch(128).map(
            self.product_model)
        self.task = tfrs.tasks.Retrieval(metrics=tfrs.metrics.FactorizedTopK(candidates=candidates))
        self.metrics_in_training = metrics_in_training

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        users = self.user_model(features["userId"])
        products = self.product_model(features["productId"])
        return self.task(users, products,
                         compute_metrics=self.metrics_in_training or not training)


class EpochTimer(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.times.append(time.perf_counter() - self.start)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.times: list[float] = []


def train_and_evaluate(train: dict[str, np.ndarray], test: dict[str, np.ndarray],
                       user_ids: np.ndarray, item_ids: np.ndarray, dim: int, lr: float,
                       batch_size: int, epochs: int, metrics_in_training: bool,
                       seed: int) -> dict[str, float]:
    """The notebook's cells in order; returns per-epoch seconds and test top-k."""
    tf.keras.utils.set_random_seed(seed)
    train_ds = tf.data.Dataset.from_tensor_slices(train).shuffle(
        100_000, seed=seed, reshuffle_each_iteration=False).batch(batch_size).cache()
    test_ds = tf.data.Dataset.from_tensor_slices(test).batch(4096).cache()
    model = NotebookModel(user_ids, item_ids, dim, metrics_in_training)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=lr))
    timer = EpochTimer()
    model.fit(train_ds, epochs=epochs, verbose=0, callbacks=[timer])
    result = model.evaluate(test_ds, return_dict=True, verbose=0)
    return {"epoch_seconds": timer.times,
            **{top(k, "test").name: float(result[f"factorized_top_k/top_{k}_categorical_accuracy"])
               for k in (1, 5, 10, 50, 100)}}

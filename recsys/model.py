"""The two-tower retrieval model: integer ids in, in-batch softmax loss out."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from recsys.config import ModelConfig


def build_tower(vocab_size: int, cfg: ModelConfig, seed: int, name: str) -> tf.keras.Model:
    """Embedding of integer ids, optionally followed by dense layers (the last is linear)."""
    layers: list[tf.keras.layers.Layer] = [
        tf.keras.layers.Embedding(
            vocab_size, cfg.embedding_dim,
            embeddings_initializer=tf.keras.initializers.RandomUniform(-0.05, 0.05, seed=seed),
        )
    ]
    for i, width in enumerate(cfg.tower_layers):
        last = i == len(cfg.tower_layers) - 1
        layers.append(tf.keras.layers.Dense(
            width, activation=None if last else "relu",
            kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed + 1 + i),
        ))
    return tf.keras.Sequential(layers, name=name)


class TwoTowerModel(tfrs.Model):
    """User tower x item tower, trained with `tfrs.tasks.Retrieval` (in-batch softmax).

    No metrics on training batches: the notebook's `FactorizedTopK` scores the whole catalog on
    every step, which is most of its time. Evaluation is exact and separate (`recsys.metrics`).
    """

    def __init__(self, n_users: int, n_items: int, cfg: ModelConfig,
                 item_counts: np.ndarray, seed: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.user_tower = build_tower(n_users, cfg, seed, "user_tower")
        self.item_tower = build_tower(n_items, cfg, seed + 1000, "item_tower")
        self.task = tfrs.tasks.Retrieval(
            temperature=cfg.temperature if cfg.temperature != 1.0 else None,
            remove_accidental_hits=cfg.remove_accidental_hits,
        )
        # logQ correction: the probability that an item shows up as an in-batch negative is
        # its training frequency; subtracting log(q) stops popular items being over-penalised.
        freq = np.maximum(item_counts, 1) / max(int(item_counts.sum()), 1)
        self.item_probability = tf.constant(freq, dtype=tf.float32)

    def compute_loss(self, inputs: tuple[tf.Tensor, tf.Tensor], training: bool = False) -> tf.Tensor:
        users, items = inputs
        queries = self.user_tower(users)
        candidates = self.item_tower(items)
        loss = self.task(
            queries, candidates,
            candidate_sampling_probability=(tf.gather(self.item_probability, items)
                                            if self.cfg.logq_correction else None),
            candidate_ids=items if self.cfg.remove_accidental_hits else None,
            compute_metrics=False,
        )
        return loss + self.l2_penalty(queries, candidates)

    def catalog_loss(self, users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
        """The same loss as `compute_loss`, with the catalog's items as the columns.

        In-batch softmax sums exp(score) over the batch's candidate columns, so an item that
        appears n times in the batch contributes n * exp(score). Scoring each catalog item once
        and adding log(n) (its count in this batch; log 0 = -inf drops absent items) gives the
        same value and the same gradients with `n_items` columns instead of `batch_size`: at
        batch 8192 over a few thousand items, a fraction of the work and memory. Accidental-hit
        removal keeps only the positive itself in its own item's column (count 1).
        Used when the catalog is no larger than the batch (see `recsys.training`).
        """
        queries = self.user_tower(users)
        all_items = self.item_embeddings()
        n_items = tf.shape(all_items)[0]
        counts = tf.math.unsorted_segment_sum(tf.ones_like(items, tf.float32), items, n_items)
        scores = tf.matmul(queries, all_items, transpose_b=True)
        positive = tf.reduce_sum(queries * tf.gather(all_items, items), axis=1)
        if self.cfg.temperature != 1.0:
            scores /= self.cfg.temperature
            positive /= self.cfg.temperature
        column_bias = tf.math.log(counts)
        if self.cfg.logq_correction:
            log_q = tf.math.log(tf.clip_by_value(self.item_probability, 1e-6, 1.0))
            column_bias -= log_q
            positive -= tf.gather(log_q, items)
        scores += column_bias[None, :]
        if self.cfg.remove_accidental_hits:
            # Row i's own column counted n copies of its item; only the positive itself stays.
            own_log_count = tf.math.log(tf.gather(counts, items))
            scores -= tf.one_hot(items, n_items) * own_log_count[:, None]
        loss = tf.reduce_sum(tf.reduce_logsumexp(scores, axis=1) - positive)
        return loss + self.l2_penalty(queries, tf.gather(all_items, items))

    def l2_penalty(self, queries: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor | float:
        """`model.l2` on the batch's tower outputs, for both loss paths. Not a Keras activity
        regularizer (`self.losses`): the catalog path runs the item tower over every item, and
        the penalty must stay on the batch's items for the two paths to agree."""
        if self.cfg.l2 <= 0:
            return 0.0
        return self.cfg.l2 * (tf.reduce_sum(tf.square(queries))
                              + tf.reduce_sum(tf.square(candidates)))

    def item_embeddings(self, batch_size: int = 65536) -> tf.Tensor:
        n = self.item_tower.layers[0].input_dim
        ids = tf.range(n)
        return tf.concat([self.item_tower(ids[s:s + batch_size])
                          for s in range(0, n, batch_size)], axis=0)

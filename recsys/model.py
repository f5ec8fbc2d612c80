"""The two-tower retrieval model: integer ids (and the user's training items) in, softmax loss out.

Knobs (`ModelConfig`), each applied in one place and on both loss paths:
- `user_tower`: the user's vector from a user-id embedding (`id`), from the mean of the
  embeddings of the user's *training* items (`history`, as Mult-DAE / YouTube DNN: users with
  few ratings share what their items learned), or the sum of both (`id+history`). During
  training the target item is left out of its own example's history (the model cannot copy
  it) and each history item is dropped with probability `history_dropout`. `sequence`: the
  user's latest items in time order through causal self-attention (`recsys.sequence_tower`),
  trained on the next item at every position of each sequence (`sequence_loss`).
- `negatives`: `in_batch` (the other positives of the batch, TFRS's `Retrieval`), `mixed`
  (in-batch plus `sampled_negatives` items drawn uniformly from the catalog per step), or
  `catalog` (an exact softmax over every item). logQ correction subtracts the log of each
  column's expected count under its own source: B·p(item) for in-batch columns (p: training
  frequency), S/N for the S uniform samples of an N-item catalog.
- `normalize`: cosine scores (both towers L2-normalized), divided by `temperature`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from recsys.config import ModelConfig
from recsys.sequence_tower import SequenceEncoder

Seed = tf.Tensor  # shape [2] int32: a stateless RNG seed (dropout, sampled negatives)


def id_embedding(vocab_size: int, dim: int, seed: int, name: str) -> tf.keras.layers.Embedding:
    return tf.keras.layers.Embedding(
        vocab_size, dim, name=name,
        embeddings_initializer=tf.keras.initializers.RandomUniform(-0.05, 0.05, seed=seed))


def dense_layers(widths: tuple[int, ...], seed: int) -> list[tf.keras.layers.Layer]:
    """Dense layers after the embedding (relu between them, the last is linear)."""
    return [tf.keras.layers.Dense(
        width, activation=None if i == len(widths) - 1 else "relu",
        kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed + 1 + i))
        for i, width in enumerate(widths)]


class TwoTowerModel(tfrs.Model):
    """User tower x item tower, trained with `tfrs.tasks.Retrieval` (or its catalog form).

    No metrics on training batches: the notebook's `FactorizedTopK` scores the whole catalog on
    every step, which is most of its time. Evaluation is exact and separate (`recsys.metrics`).
    """

    def __init__(self, n_users: int, n_items: int, cfg: ModelConfig,
                 item_counts: np.ndarray, seed: int) -> None:
        super().__init__()
        self.cfg, self.n_items = cfg, n_items
        self.user_ids = id_embedding(n_users, cfg.embedding_dim, seed, "user_ids") \
            if cfg.uses_ids else None
        # Row 0 is the padding of shorter histories; item i is row i + 1.
        self.history_items = id_embedding(n_items + 1, cfg.embedding_dim, seed + 2000,
                                          "history_items") if cfg.uses_history else None
        self.user_layers = tf.keras.Sequential(dense_layers(cfg.tower_layers, seed),
                                               name="user_layers")
        item_table = id_embedding(n_items, cfg.embedding_dim, seed + 1000, "item_ids")
        self.item_tower = tf.keras.Sequential(
            [item_table, *dense_layers(cfg.tower_layers, seed + 1000)], name="item_tower")
        self.sequence_encoder = SequenceEncoder(
            item_table, cfg.embedding_dim, cfg.sequence_max_len, cfg.sequence_blocks,
            cfg.sequence_heads, cfg.sequence_dropout, seed + 3000, name="sequence_encoder") \
            if cfg.uses_sequence else None
        self.task = tfrs.tasks.Retrieval(
            temperature=cfg.temperature if cfg.temperature != 1.0 else None,
            remove_accidental_hits=cfg.remove_accidental_hits)
        freq = np.maximum(item_counts, 1) / max(int(item_counts.sum()), 1)
        self.item_probability = tf.constant(freq, dtype=tf.float32)

    # --- towers ------------------------------------------------------------------------------
    def user_vectors(self, users: tf.Tensor, history: tf.Tensor | None = None,
                     target: tf.Tensor | None = None, seed: Seed | None = None) -> tf.Tensor:
        """`history`: [B, L] training items + 1 (0 pads; in time order, right-aligned, for the
        sequence tower). `target` (training): each row's positive, left out of its history.
        `seed` (training): history dropout."""
        if self.sequence_encoder is not None:
            return self._user_output(self.sequence_encoder.last(history))
        parts = []
        if self.user_ids is not None:
            parts.append(self.user_ids(users))
        if self.history_items is not None:
            parts.append(self.pooled_history(history, target, seed))
        return self._user_output(tf.add_n(parts))

    def _user_output(self, x: tf.Tensor) -> tf.Tensor:
        x = self.user_layers(x)
        return tf.math.l2_normalize(x, axis=-1) if self.cfg.normalize else x

    def pooled_history(self, history: tf.Tensor, target: tf.Tensor | None,
                       seed: Seed | None) -> tf.Tensor:
        keep = history > 0
        if target is not None:
            keep &= history != target[:, None] + 1
        if seed is not None and self.cfg.history_dropout > 0:
            keep &= tf.random.stateless_uniform(tf.shape(history), seed) \
                >= self.cfg.history_dropout
        weights = tf.cast(keep, tf.float32)[..., None]
        total = tf.reduce_sum(self.history_items(history) * weights, axis=1)
        return total / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)

    def item_vectors(self, items: tf.Tensor) -> tf.Tensor:
        x = self.item_tower(items)
        return tf.math.l2_normalize(x, axis=-1) if self.cfg.normalize else x

    def item_embeddings(self, batch_size: int = 65536) -> tf.Tensor:
        ids = tf.range(self.n_items)
        return tf.concat([self.item_vectors(ids[s:s + batch_size])
                          for s in range(0, self.n_items, batch_size)], axis=0)

    def sampled_items(self, seed: Seed) -> tf.Tensor:
        """`mixed`: the step's uniformly drawn negatives, shared by every row."""
        return tf.random.stateless_uniform(
            [self.cfg.sampled_negatives], tf.random.experimental.stateless_fold_in(seed, 1),
            minval=0, maxval=self.n_items, dtype=tf.int32)

    # --- losses ------------------------------------------------------------------------------
    def compute_loss(self, inputs: tuple, training: bool = False) -> tf.Tensor:
        """`inputs`: (users, items[, history, seed]); the TFRS `Retrieval` form."""
        users, items, history, seed = (*inputs, None, None)[:4]
        queries = self.user_vectors(users, history, items if training else None,
                                    seed if training else None)
        return self.retrieval_loss(queries, items, seed)

    def sequence_loss(self, sequences: tf.Tensor, targets: tf.Tensor, seed: Seed,
                      catalog: bool) -> tf.Tensor:
        """The next item at every position of each sequence (SASRec's objective): [B, W]
        inputs and the items that followed them (0: none), through the same softmax as one
        pair a row (`retrieval_loss`, or its catalog form)."""
        outputs = self.sequence_encoder(sequences, training=True)
        present = targets > 0
        queries = self._user_output(tf.boolean_mask(outputs, present))
        items = tf.boolean_mask(targets, present) - 1
        loss = self.catalog_retrieval_loss if catalog else self.retrieval_loss
        return loss(queries, items, seed)

    def retrieval_loss(self, queries: tf.Tensor, items: tf.Tensor, seed: Seed | None,
                       ) -> tf.Tensor:
        """The softmax of each query over its positive and the negatives `model.negatives`
        names, through `tfrs.tasks.Retrieval` (or its grouped form)."""
        positives = self.item_vectors(items)
        if self.cfg.negatives == "in_batch" and self.cfg.batch_columns is not None:
            return self.grouped_loss(queries, positives, items) \
                + self.l2_penalty(queries, positives)
        candidates, ids, q, mask = positives, items, self._in_batch_q(items), None
        if self.cfg.negatives == "mixed":
            sampled = self.sampled_items(seed)
            candidates = tf.concat([positives, self.item_vectors(sampled)], axis=0)
            ids = tf.concat([items, sampled], axis=0)
            q = tf.concat([q, tf.fill(tf.shape(sampled), self._sampled_q(tf.size(items)))], 0)
        elif self.cfg.negatives == "catalog":
            # The positive column, then every catalog item but the positive itself.
            batch = tf.shape(items)[0]
            candidates = tf.concat([positives, self.item_embeddings()], axis=0)
            mask = tf.concat([tf.cast(tf.eye(batch), tf.bool),
                              items[:, None] != tf.range(self.n_items)[None, :]], axis=1)
        correct = self.cfg.logq_correction and self.cfg.negatives != "catalog"
        loss = self.task(
            queries, candidates, candidate_sampling_probability=q if correct else None,
            candidate_ids=ids if self.cfg.remove_accidental_hits else None,
            score_mask=mask, compute_metrics=False)
        return loss + self.l2_penalty(queries, positives)

    def grouped_loss(self, queries: tf.Tensor, positives: tf.Tensor, items: tf.Tensor,
                     ) -> tf.Tensor:
        """`compute_loss` with at most `batch_columns` columns per row: the batch is cut into
        groups of that many rows (the last one padded), and each row's softmax runs over its
        own group's positives, with the same temperature, logQ correction and accidental-hit
        removal. The sum over rows, as `tfrs.tasks.Retrieval`'s loss."""
        n = tf.shape(items)[0]
        g = tf.minimum(n, self.cfg.batch_columns)  # a batch no wider: one group, no padding
        pad = (g - n % g) % g
        groups = (n + pad) // g
        dim = tf.shape(queries)[1]
        q = tf.reshape(tf.pad(queries, [[0, pad], [0, 0]]), [groups, g, dim])
        c = tf.reshape(tf.pad(positives, [[0, pad], [0, 0]]), [groups, g, dim])
        ids = tf.reshape(tf.pad(items, [[0, pad]], constant_values=-1), [groups, g])
        scores = tf.matmul(q, c, transpose_b=True)  # [groups, g rows, g columns]
        if self.cfg.temperature != 1.0:
            scores /= self.cfg.temperature
        if self.cfg.logq_correction:
            scores -= tf.math.log(self._in_batch_q(tf.maximum(ids, 0)))[:, None, :]
        positive = tf.linalg.diag_part(scores)
        real = ids >= 0  # padding rows and columns
        keep = tf.broadcast_to(real[:, None, :], tf.shape(scores))
        if self.cfg.remove_accidental_hits:
            eye = tf.cast(tf.eye(g), tf.bool)[None]
            keep &= eye | (ids[:, :, None] != ids[:, None, :])
        scores = tf.where(keep, scores, tf.float32.min / 2)
        rows = tf.reduce_logsumexp(scores, axis=2) - positive
        return tf.reduce_sum(tf.where(real, rows, 0.0))

    def catalog_loss(self, users: tf.Tensor, items: tf.Tensor, history: tf.Tensor | None = None,
                     seed: Seed | None = None) -> tf.Tensor:
        """The same loss as `compute_loss` (training), with the catalog's items as the columns.

        A softmax over sampled columns sums exp(score - log q) over every copy of an item, so
        item j's column weighs w_j = sum over its copies of 1/q: (its count in the batch) /
        q_batch(j) + (its count among the sampled negatives) / q_sampled. Scoring each catalog
        item once and adding log w_j (log 0 = -inf drops absent items) gives the same value
        and gradients with `n_items` columns instead of the batch's: at batch 8192 over a few
        thousand items, a fraction of the work. `catalog` negatives: w_j = 1. With
        accidental-hit removal a row's own item column holds the positive alone.
        Used when the catalog is no larger than the batch (see `recsys.training`).
        """
        return self.catalog_retrieval_loss(self.user_vectors(users, history, items, seed),
                                           items, seed)

    def catalog_retrieval_loss(self, queries: tf.Tensor, items: tf.Tensor, seed: Seed | None,
                               ) -> tf.Tensor:
        all_items = self.item_embeddings()
        scores = tf.matmul(queries, all_items, transpose_b=True)
        positive = tf.reduce_sum(queries * tf.gather(all_items, items), axis=1)
        if self.cfg.temperature != 1.0:
            scores /= self.cfg.temperature
            positive /= self.cfg.temperature
        if self.cfg.negatives == "catalog":  # every item once: the positive is its own column
            loss = tf.reduce_sum(tf.reduce_logsumexp(scores, axis=1) - positive)
            return loss + self.l2_penalty(queries, tf.gather(all_items, items))
        correct = self.cfg.logq_correction
        q_batch = self._in_batch_q(tf.range(self.n_items)) if correct else 1.0
        weight = self._counts(items) / q_batch
        if self.cfg.negatives == "mixed":
            q_sampled = self._sampled_q(tf.size(items)) if correct else 1.0
            weight += self._counts(self.sampled_items(seed)) / q_sampled
        scores += tf.math.log(weight)[None, :]
        if correct:
            positive -= tf.math.log(tf.gather(q_batch, items))
        if self.cfg.remove_accidental_hits:  # a row's own item column holds the positive alone
            own = tf.one_hot(items, self.n_items, on_value=True, off_value=False)
            scores = tf.where(own, positive[:, None], scores)
        loss = tf.reduce_sum(tf.reduce_logsumexp(scores, axis=1) - positive)
        return loss + self.l2_penalty(queries, tf.gather(all_items, items))

    def _counts(self, items: tf.Tensor) -> tf.Tensor:
        return tf.math.unsorted_segment_sum(tf.ones_like(items, tf.float32), items, self.n_items)

    def _in_batch_q(self, items: tf.Tensor) -> tf.Tensor:
        """An in-batch column's sampling probability: its item's training frequency."""
        return tf.clip_by_value(tf.gather(self.item_probability, items), 1e-6, 1.0)

    def _sampled_q(self, batch_size: tf.Tensor) -> tf.Tensor:
        """A sampled column's, on the same scale: S/N expected copies per batch of B rows,
        against B·p(item) for in-batch columns (so divided by B)."""
        q = tf.cast(self.cfg.sampled_negatives, tf.float32) / (
            self.n_items * tf.cast(batch_size, tf.float32))
        return tf.clip_by_value(q, 1e-6, 1.0)  # as TFRS clips every probability it is given

    def l2_penalty(self, queries: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor | float:
        """`model.l2` on the batch's tower outputs, for both loss paths. Not a Keras activity
        regularizer (`self.losses`): the catalog path runs the item tower over every item, and
        the penalty must stay on the batch's items for the two paths to agree."""
        if self.cfg.l2 <= 0:
            return 0.0
        return self.cfg.l2 * (tf.reduce_sum(tf.square(queries))
                              + tf.reduce_sum(tf.square(candidates)))

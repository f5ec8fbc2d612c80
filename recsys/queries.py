"""The user tower's vectors for any set of users, and the exact ranks they give held-out pairs:
what the harness ranks with during training and at the end, and what the export serves."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from recsys.evaluation import HeldOut, Ranker
from recsys.history import UserHistory
from recsys.model import TwoTowerModel


class QueryEncoder:
    """The user tower's output for any users (their training histories looked up): each
    distinct user once, in chunks of users with similar history lengths, so that a chunk's
    [users, width, dim] gather is only as wide as its own users need."""

    def __init__(self, model: TwoTowerModel, history: UserHistory | None, chunk: int) -> None:
        self.model, self.history, self.chunk = model, history, chunk
        # One graph per chunk shape, not Python op by op: a sequence tower's self-attention
        # blocks ran 3-4x slower eagerly (Toys: 6-7 s, not 2 s, for 19k users per epoch).
        self.user_vectors = tf.function(model.user_vectors, reduce_retracing=True)

    def __call__(self, users: np.ndarray) -> tf.Tensor:
        users = np.asarray(users, np.int32)
        if self.history is None:
            parts = [self.user_vectors(tf.constant(users[s:s + self.chunk]))
                     for s in range(0, len(users), self.chunk)]
            return tf.concat(parts, axis=0) if parts else tf.zeros([0, 1])
        unique, inverse = np.unique(users, return_inverse=True)
        order = unique[np.argsort(self.history.counts[unique], kind="stable")]
        parts, budget = [], 1 << 22  # history cells per chunk
        start = 0
        while start < len(order):
            width = min(self.history.serve_len, max(1, int(self.history.counts[
                order[min(start + self.chunk, len(order)) - 1]])))
            size = max(1, min(self.chunk, budget // width))
            part = order[start:start + size]
            parts.append(self.user_vectors(tf.constant(part),
                                                 tf.constant(self.history.rows(part))))
            start += size
        vectors = tf.concat(parts, axis=0)
        place = np.empty(len(order), np.int64)
        place[np.searchsorted(unique, order)] = np.arange(len(order))
        return tf.gather(vectors, place[inverse])


def model_ranks(queries: QueryEncoder, model: TwoTowerModel, ranker: Ranker, held_out: HeldOut,
                batch_size: int) -> np.ndarray:
    """Exact ranks of the system the export serves: the model for users it was trained on,
    the popularity list for users without training pairs (index 0)."""
    return ranker.model_ranks(held_out, queries, model.item_embeddings(), batch_size)

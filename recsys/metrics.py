"""Exact full-catalog top-k accuracy, for the model and for the popularity baseline.

Definition (the one `tfrs.metrics.FactorizedTopK` uses): a held-out (user, item) pair is a hit
at k when the item is among the user's k best-scored candidates over the whole catalog. We
compute each pair's rank as the number of candidates scored strictly higher than the true item,
taking the true item's score from the same score matrix, so there is no rounding gap between
the positive's score and the candidates' (FactorizedTopK computes the positive apart and can
push a true hit to rank 2 at k=1). One batched matrix product and a comparison: no `top_k`.

Pairs whose user has no training data are ranked by popularity (see `recsys.training`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


@tf.function(reduce_retracing=True)
def _ranks(queries: tf.Tensor, candidates: tf.Tensor, true_items: tf.Tensor) -> tf.Tensor:
    scores = tf.matmul(queries, candidates, transpose_b=True)
    positive = tf.gather(scores, true_items, batch_dims=1)
    return tf.reduce_sum(tf.cast(scores > positive[:, None], tf.int32), axis=1)


def exact_ranks(query_embeddings: np.ndarray | tf.Tensor, item_embeddings: np.ndarray | tf.Tensor,
                true_items: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """0-based rank of each true item among all catalog items for its query."""
    candidates = tf.convert_to_tensor(item_embeddings, tf.float32)
    queries = tf.convert_to_tensor(query_embeddings, tf.float32)
    true_items = tf.convert_to_tensor(true_items, tf.int32)
    out = [_ranks(queries[s:s + batch_size], candidates, true_items[s:s + batch_size])
           for s in range(0, int(queries.shape[0]), batch_size)]
    return np.concatenate([o.numpy() for o in out]) if out else np.zeros(0, np.int32)


def top_k_accuracy(ranks: np.ndarray, ks: tuple[int, ...], prefix: str = "") -> dict[str, float]:
    """Fraction of pairs with rank < k."""
    n = max(len(ranks), 1)
    return {f"{prefix}top_{k}": float(np.sum(ranks < k) / n) for k in ks}


def popularity_ranks(item_counts: np.ndarray, true_items: np.ndarray) -> np.ndarray:
    """Rank of each true item in the most-rated-first list (ties broken by catalog index)."""
    order = np.lexsort((np.arange(len(item_counts)), -item_counts))
    rank_of_item = np.empty(len(item_counts), dtype=np.int64)
    rank_of_item[order] = np.arange(len(item_counts))
    return rank_of_item[true_items]

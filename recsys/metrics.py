"""Exact full-catalog top-k accuracy, NDCG@k and MRR, for the model and the popularity baseline.

Definition (the one `tfrs.metrics.FactorizedTopK` uses): a held-out (user, item) pair is a hit
at k when the item is among the user's k best-scored candidates over the whole catalog. We
compute each pair's rank as the number of candidates scored higher than the true item (exact
ties: see `recsys.evaluation`, which passes one tie order for every scorer),
taking the true item's score from the same score matrix, so there is no rounding gap between
the positive's score and the candidates' (FactorizedTopK computes the positive apart and can
push a true hit to rank 2 at k=1). One batched matrix product and a comparison: no `top_k`.

Pairs whose user has no training data are ranked by popularity (see `recsys.evaluation`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

EVAL_SETS = ("val", "test")  # what a metric is measured on (validation selects, test reports)
KINDS = ("top", "ndcg", "mrr")  # top_k: hit rate; ndcg_k; mrr (no cut-off)


@dataclass(frozen=True)
class Metric:
    """One ranking metric on one split, named once: `val_top_100`, `test_ndcg_10`, `val_mrr`.
    Every table, TensorBoard tag, report label and `search.metric` check goes through it."""

    split: str  # val | test
    kind: str  # top | ndcg | mrr
    k: int | None = None  # the cut-off (none for mrr)
    higher_is_better: ClassVar[bool] = True  # all of them: a study maximizes

    @classmethod
    def parse(cls, name: str) -> Metric:
        """`val_top_100` -> Metric("val", "top", 100); ValueError for any other form."""
        found = re.fullmatch(r"(val|test)_(?:(top|ndcg)_([1-9]\d*)|(mrr))", str(name))
        if not found:
            raise ValueError(f"{name!r} is not a metric name (val_top_<k>, val_ndcg_<k>, "
                             "val_mrr, or the same on test_)")
        split, kind, k, mrr = found.groups()
        return cls(split, mrr or kind, int(k) if k else None)

    @classmethod
    def of(cls, name: str) -> Metric | None:
        """`parse`, or None for a key that is no metric (e.g. a pair count)."""
        try:
            return cls.parse(name)
        except ValueError:
            return None

    @property
    def base(self) -> str:
        """The name without its split: `top_100`, `ndcg_10`, `mrr`."""
        return self.kind if self.k is None else f"{self.kind}_{self.k}"

    @property
    def name(self) -> str:
        return f"{self.split}_{self.base}"

    @property
    def label(self) -> str:
        """For tables and plots: `top-100`, `ndcg@10`, `mrr`."""
        return {"top": f"top-{self.k}", "ndcg": f"ndcg@{self.k}"}.get(self.kind, self.kind)

    def on(self, split: str) -> Metric:
        """The same metric on the other split (validation selects, test reports)."""
        return replace(self, split=split)

    def __str__(self) -> str:
        return self.name


def top(k: int, split: str = "val") -> Metric:
    return Metric(split, "top", k)


def reported_beside(selection: str) -> str:
    """The test metric reported beside a selection metric: `val_ndcg_10` -> `test_ndcg_10`."""
    return Metric.parse(selection).on("test").name


def every_metric(ks: tuple[int, ...] | list[int], split: str = "val") -> list[Metric]:
    """Every metric a run reports on `split`, in display order: top-k, NDCG@k, MRR."""
    ks = sorted(ks)
    return [Metric(split, "top", k) for k in ks] + [Metric(split, "ndcg", k) for k in ks] \
        + [Metric(split, "mrr")]


def selectable(ks: tuple[int, ...] | list[int]) -> list[str]:
    """The metrics a run can select on: each name `ranking_metrics` gives on validation."""
    return [m.name for m in every_metric(ks)]


@functools.cache
def _ranks_function() -> Callable:
    import tensorflow as tf  # here, not at import: configs and tables need no TensorFlow

    @tf.function(reduce_retracing=True)
    def ranks(queries: tf.Tensor, candidates: tf.Tensor, true_items: tf.Tensor,
              tie_order: tf.Tensor, masked: tf.Tensor) -> tf.Tensor:
        scores = tf.matmul(queries, candidates, transpose_b=True)
        positive = tf.gather(scores, true_items, batch_dims=1)[:, None]
        before = tf.logical_or(scores > positive, tf.logical_and(
            scores == positive, tie_order[None, :] < tf.gather(tie_order, true_items)[:, None]))
        # masked: (row, item) pairs left out of the ranking (a user's training items)
        before = tf.tensor_scatter_nd_update(before, masked,
                                             tf.zeros(tf.shape(masked)[:1], tf.bool))
        return tf.reduce_sum(tf.cast(before, tf.int32), axis=1)

    return ranks


MAX_SCORES_PER_BATCH = 2**27  # ~1 GB of scores and masks: 1392 queries against 96k items


def exact_ranks(query_embeddings: np.ndarray | tf.Tensor, item_embeddings: np.ndarray | tf.Tensor,
                true_items: np.ndarray, batch_size: int = 4096,
                tie_order: np.ndarray | None = None,
                masked: Callable[[slice], tuple[np.ndarray, np.ndarray]] | None = None,
                ) -> np.ndarray:
    """0-based rank of each true item among all catalog items for its query.

    `tie_order` (item -> place in a fixed order) breaks exact ties: an item tied with the true
    one counts before it when it comes first. Without it, only strictly higher scores count
    (FactorizedTopK's rule). `masked(rows)` gives (row in batch, item) pairs to leave out."""
    import tensorflow as tf

    candidates = tf.convert_to_tensor(item_embeddings, tf.float32)
    queries = tf.convert_to_tensor(query_embeddings, tf.float32)
    n_items = int(candidates.shape[0])
    # Without a tie order every tie counts for the true item: all places equal.
    order = tf.constant(np.zeros(n_items, np.int64) if tie_order is None else tie_order, tf.int64)
    true_items = tf.convert_to_tensor(true_items, tf.int32)
    # A batch's score matrix and masks cost ~20 bytes per score: 4096 queries against 96k
    # items held 2.7 GB at once. Fewer queries per batch for large catalogs, same ranks.
    batch_size = max(1, min(batch_size, MAX_SCORES_PER_BATCH // max(n_items, 1)))
    out = []
    for start in range(0, int(queries.shape[0]), batch_size):
        rows = slice(start, start + batch_size)
        pairs = np.zeros((0, 2), np.int64)
        if masked is not None:
            r, i = masked(rows)
            pairs = np.stack([r, i], axis=1).astype(np.int64)
        out.append(_ranks_function()(queries[rows], candidates, true_items[rows], order,
                          tf.constant(pairs, tf.int64)))
    return np.concatenate([o.numpy() for o in out]) if out else np.zeros(0, np.int32)


def top_k_accuracy(ranks: np.ndarray, ks: tuple[int, ...], split: str) -> dict[str, float]:
    """Fraction of pairs with rank < k, under each `top(k, split)` name."""
    n = max(len(ranks), 1)
    return {top(k, split).name: float(np.sum(ranks < k) / n) for k in ks}


def per_pair_metrics(ranks: np.ndarray, ks: tuple[int, ...], split: str,
                     ) -> dict[Metric, np.ndarray]:
    """Each metric's value for every held-out pair (its mean over pairs is the metric).

    One relevant item per pair (a held-out (user, item) pair), so:
    - top_k (hit rate = recall@k with one relevant item): 1 when rank < k;
    - ndcg_k: 1 / log2(rank + 2) when rank < k (the ideal DCG is 1);
    - mrr: 1 / (rank + 1) over the whole catalog (no cut-off).
    """
    ranks = np.asarray(ranks, np.float64)
    gain = 1.0 / np.log2(ranks + 2.0)
    value = {"top": lambda k: (ranks < k).astype(np.float64),
             "ndcg": lambda k: np.where(ranks < k, gain, 0.0),
             "mrr": lambda _: 1.0 / (ranks + 1.0)}
    return {m: value[m.kind](m.k) for m in every_metric(ks, split)}


def ranking_metrics(ranks: np.ndarray, ks: tuple[int, ...], split: str) -> dict[str, float]:
    """Top-k accuracy, NDCG@k and MRR of the ranks (see `per_pair_metrics`), by name
    (`val_top_100`): the form of `metrics.json` and every results dict."""
    n = max(len(ranks), 1)
    return {m.name: float(values.sum() / n)
            for m, values in per_pair_metrics(ranks, ks, split).items()}


def popularity_ranks(item_counts: np.ndarray, true_items: np.ndarray,
                     tie_order: np.ndarray | None = None) -> np.ndarray:
    """Rank of each true item in the most-rated-first list; equal counts are ordered by
    `tie_order` (default: catalog index)."""
    order = np.lexsort((np.arange(len(item_counts)) if tie_order is None else tie_order,
                        -item_counts))
    rank_of_item = np.empty(len(item_counts), dtype=np.int64)
    rank_of_item[order] = np.arange(len(item_counts))
    return rank_of_item[true_items]

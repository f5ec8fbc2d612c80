"""Ranking held-out pairs the same way for every scorer: the model, popularity, item-kNN, EASE.

A held-out (user, item) pair's rank is the number of catalog items placed before the true item.
One rule for every scorer:
- **ties** are broken by one fixed random order of the catalog (seeded, the same for every
  run of a data set): an item scored exactly like the true item is placed before it when it
  comes first in that order. Sparse scorers (item-kNN) tie most items at 0; counting only
  strictly higher scores would let those ties favour the true item (on an Amazon 5-core set,
  0.64 instead of 0.22 at top-100), counting all of them against it would punish it;
- with `eval.exclude_seen`, items the user rated in training are left out of the ranking
  (the view most published retrieval results use); by default they stay in, as TFRS's
  `FactorizedTopK` has it;
- users with no training pairs are ranked by popularity, for every scorer.

Intervals: a 95% percentile bootstrap over users (pairs of one user are not independent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

TIE_SEED = 20_261_128
BATCH = 2048


@dataclass(frozen=True)
class HeldOut:
    """The pairs to rank and, per pair, what the rule needs: the user's training items."""

    users: np.ndarray  # user index (0: unknown user, no training pairs)
    items: np.ndarray  # true item (catalog index)


class Ranker:
    """Ranks of true items under the tie rule and the seen-item option of one run."""

    def __init__(self, train_user: np.ndarray, train_item: np.ndarray, n_users: int,
                 n_items: int, item_counts: np.ndarray, exclude_seen: bool) -> None:
        self.n_items, self.exclude_seen = n_items, exclude_seen
        # tie_order[i]: item i's place in the fixed random order that breaks ties
        self.tie_order = np.random.default_rng(TIE_SEED).permutation(n_items).astype(np.int64)
        self.seen = sp.csr_matrix((np.ones(len(train_user), np.float32), (train_user, train_item)),
                                  shape=(n_users, n_items))
        self.seen.sum_duplicates()
        self.item_counts = item_counts.astype(np.float64)

    def ranks(self, held_out: HeldOut, scores: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Rank of every held-out pair; `scores(users)` gives a (len(users), n_items) array for
        known users. Unknown users get the popularity ranks."""
        out = self.popularity_ranks(held_out)
        known = np.flatnonzero(held_out.users > 0)
        for start in range(0, len(known), BATCH):
            rows = known[start:start + BATCH]
            users, items = held_out.users[rows], held_out.items[rows]
            out[rows] = self._rank_batch(np.asarray(scores(users), np.float64), users, items)
        return out

    def popularity_ranks(self, held_out: HeldOut) -> np.ndarray:
        users = held_out.users if self.exclude_seen else np.zeros_like(held_out.users)
        out = np.empty(len(held_out.items), np.int64)
        for start in range(0, len(out), BATCH):
            sl = slice(start, start + BATCH)
            scores = np.broadcast_to(self.item_counts, (len(held_out.items[sl]), self.n_items))
            out[sl] = self._rank_batch(scores, users[sl], held_out.items[sl])
        return out

    def _rank_batch(self, scores: np.ndarray, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        rows = np.arange(len(items))
        positive = scores[rows, items][:, None]
        before = (scores > positive) | ((scores == positive)
                                        & (self.tie_order[None, :] < self.tie_order[items][:, None]))
        if self.exclude_seen:
            seen = self.seen[users]
            seen_rows, seen_items = seen.nonzero()
            before[seen_rows, seen_items] = False
        return before.sum(axis=1)

    def seen_items(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, item) pairs of training items for a batch of users (for the model's mask)."""
        return self.seen[users].nonzero()


def top_k(ranks: np.ndarray, ks: tuple[int, ...], prefix: str = "") -> dict[str, float]:
    """Fraction of pairs with rank < k."""
    n = max(len(ranks), 1)
    return {f"{prefix}top_{k}": float(np.sum(ranks < k) / n) for k in ks}


def bootstrap_intervals(ranks: np.ndarray, users: np.ndarray, ks: tuple[int, ...],
                        prefix: str = "", resamples: int = 500,
                        seed: int = 0) -> dict[str, list[float]]:
    """95% percentile intervals of top-k accuracy, resampling users (with their pairs)."""
    if resamples <= 0 or len(ranks) == 0:
        return {}
    # Unknown users (index 0) are many distinct people: each of their pairs is its own unit.
    unit = np.where(users > 0, users, -np.arange(1, len(users) + 1))
    _, unit_index = np.unique(unit, return_inverse=True)
    n_units = int(unit_index.max()) + 1
    pairs = np.bincount(unit_index, minlength=n_units).astype(np.float64)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=resamples)
    weights = weights.astype(np.float64)
    totals = weights @ pairs
    out = {}
    for k in ks:
        hits = np.bincount(unit_index, weights=(ranks < k).astype(np.float64), minlength=n_units)
        estimates = (weights @ hits) / np.maximum(totals, 1)
        low, high = np.percentile(estimates, [2.5, 97.5])
        out[f"{prefix}top_{k}"] = [float(low), float(high)]
    return out

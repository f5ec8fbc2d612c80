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

Intervals: a 95% percentile (Poisson) bootstrap over users: pairs of one user are not
independent, so resampling pairs would make the interval too narrow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from recsys.metrics import exact_ranks, per_pair_metrics, popularity_ranks, top_k_accuracy

if TYPE_CHECKING:
    from recsys.sequences import UserSequences

TIE_SEED = 20_261_128
BATCH = 2048


@dataclass(frozen=True)
class HeldOut:
    """The held-out pairs to rank: one user and one true item per pair."""

    users: np.ndarray  # user index (0: unknown user, no training pairs)
    items: np.ndarray  # true item (catalog index)


def subsample(held_out: HeldOut, size: int | None, seed: int) -> HeldOut:
    """`size` pairs drawn once with `seed` (in their original order), or all of them when
    there are no more than `size` (or `size` is None)."""
    n = len(held_out.users)
    if size is None or n <= size:
        return held_out
    keep = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
    return HeldOut(held_out.users[keep], held_out.items[keep])


class Ranker:
    """Ranks of true items under the tie rule and the seen-item option of one run."""

    def __init__(self, train_user: np.ndarray, train_item: np.ndarray, n_users: int,
                 n_items: int, item_counts: np.ndarray, exclude_seen: bool,
                 sequences: UserSequences | None = None) -> None:
        """`train_user`, `train_item`: the pairs a ranked user has (their history: the
        training pairs, plus the validation pairs for test under
        eval.test_history=train+validation); `sequences`: the same in time order (the
        order-aware scorers). Popularity is `item_counts`, the training pairs' alone."""
        self.n_items, self.exclude_seen, self.sequences = n_items, exclude_seen, sequences
        # tie_order[i]: item i's place in the fixed random order that breaks ties
        self.tie_order = np.random.default_rng(TIE_SEED).permutation(n_items).astype(np.int64)
        self.seen = sp.csr_matrix((np.ones(len(train_user), np.float32), (train_user, train_item)),
                                  shape=(n_users, n_items))
        self.seen.sum_duplicates()
        self.seen.data[:] = 1.0  # binary: what the item-item baselines read
        self.item_counts = item_counts.astype(np.float64)
        # each item's place in the most-rated-first list (ties by the same order)
        self.popular_place = popularity_ranks(self.item_counts, np.arange(n_items),
                                              self.tie_order)

    def popularity_ranks(self, held_out: HeldOut) -> np.ndarray:
        """Most-rated first: the popularity baseline, and every scorer's unknown users."""
        ranks = self.popular_place[held_out.items]
        if self.exclude_seen:  # minus the user's training items ranked before the true one
            seen = self.seen[held_out.users]
            rows = np.repeat(np.arange(len(ranks)), np.diff(seen.indptr))
            before = self.popular_place[seen.indices] < ranks[rows]
            ranks = ranks - np.bincount(rows, weights=before,
                                        minlength=len(ranks)).astype(np.int64)
        return ranks

    def model_ranks(self, held_out: HeldOut, query_vectors: Callable[[np.ndarray], object],
                    item_vectors: object, batch_size: int) -> np.ndarray:
        """The model's exact ranks for known users, popularity for the others."""
        out = self.popularity_ranks(held_out)
        known = np.flatnonzero(held_out.users > 0)
        if len(known):
            users = held_out.users[known]

            def masked(rows: slice) -> tuple[np.ndarray, np.ndarray]:
                return self.seen[users[rows]].nonzero()

            out[known] = exact_ranks(query_vectors(users), item_vectors, held_out.items[known],
                                     batch_size, tie_order=self.tie_order,
                                     masked=masked if self.exclude_seen else None)
        return out

    def ranks(self, held_out: HeldOut, scores: Callable[[Ranker, np.ndarray], np.ndarray],
              ) -> np.ndarray:
        """Ranks from dense scores: `scores(ranker, users)` gives a (len(users), n_items) array
        for known users (the baselines), from the histories this ranker holds. Unknown users
        get the popularity ranks."""
        out = self.popularity_ranks(held_out)
        known = np.flatnonzero(held_out.users > 0)
        # Score each user once (a user has many held-out pairs), a chunk of users at a time.
        users, pair_user = np.unique(held_out.users[known], return_inverse=True)
        chunk = max(1, min(BATCH, 50_000_000 // max(self.n_items, 1)))
        for start in range(0, len(users), chunk):
            block = users[start:start + chunk]
            # Compared as given: widening float32 to float64 is exact and only copies.
            user_scores = np.asarray(scores(self, block))
            in_block = np.flatnonzero((pair_user >= start) & (pair_user < start + len(block)))
            for sub in range(0, len(in_block), BATCH):
                rows = in_block[sub:sub + BATCH]
                out[known[rows]] = self._rank_batch(user_scores[pair_user[rows] - start],
                                                    held_out.users[known[rows]],
                                                    held_out.items[known[rows]])
        return out

    def _rank_batch(self, scores: np.ndarray, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Per row: the items scored above the true one, plus its exact ties that come first
        in the fixed tie order, minus the user's seen items among those (when excluded). One
        pass over the whole matrix, and one more over the rows with ties only."""
        rows = np.arange(len(items))
        positive = scores[rows, items][:, None]
        counts = np.count_nonzero(scores > positive, axis=1)
        equal = scores == positive
        tied = np.flatnonzero(np.count_nonzero(equal, axis=1) > 1)  # not the true item alone
        if len(tied):
            # A dense mask, not np.nonzero: a sparse scorer (item-kNN, transitions) ties a
            # missed item with most of the catalog at 0, and listing those ties cost 5-9x
            # the comparison (item-kNN at 18k items: 13 s to rank the test pairs, not 1.5 s).
            before = self.tie_order[None, :] < self.tie_order[items[tied]][:, None]
            counts[tied] += np.count_nonzero(equal[tied] & before, axis=1)
        if self.exclude_seen:
            seen_rows, seen_items = self.seen[users].nonzero()
            seen, pos = scores[seen_rows, seen_items], positive[seen_rows, 0]
            counted = (seen > pos) | ((seen == pos) & (self.tie_order[seen_items]
                                                        < self.tie_order[items[seen_rows]]))
            counts -= np.bincount(seen_rows[counted], minlength=len(items))
        return counts


def split_by_user(ranks: np.ndarray, users: np.ndarray, ks: tuple[int, ...], split: str,
                  group: str) -> dict[str, float]:
    """Top-k over the pairs of users with training pairs ("known", ranked by the scorer) or
    without ("unknown", ranked by popularity), and how many pairs that is: how much of a
    number comes from each group."""
    rows = users > 0 if group == "known" else users == 0
    return {f"{split}_pairs": int(rows.sum()),
            **(top_k_accuracy(ranks[rows], ks, split) if rows.any() else {})}


def bootstrap_intervals(ranks: np.ndarray, users: np.ndarray, ks: tuple[int, ...],
                        split: str, resamples: int = 500,
                        seed: int = 0) -> dict[str, list[float]]:
    """95% percentile intervals of every metric (top-k, NDCG@k, MRR), resampling users with their pairs (a
    Poisson bootstrap: each user weighs Poisson(1) per resample, so memory stays one chunk
    of resamples x users even with millions of users)."""
    if resamples <= 0 or len(ranks) == 0:
        return {}
    # Unknown users (index 0) are many distinct people: each of their pairs is its own unit.
    unit = np.where(users > 0, users, -np.arange(1, len(users) + 1))
    _, unit_index = np.unique(unit, return_inverse=True)
    n_units = int(unit_index.max()) + 1
    pairs = np.bincount(unit_index, minlength=n_units).astype(np.float64)
    values = per_pair_metrics(ranks, ks, split)
    hits = np.stack([np.bincount(unit_index, weights=v, minlength=n_units)
                     for v in values.values()], axis=1)  # units x metrics
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, 20_000_000 // n_units))
    estimates = []
    for start in range(0, resamples, chunk):
        weights = rng.poisson(1.0, size=(min(chunk, resamples - start), n_units)).astype(
            np.float64)
        estimates.append((weights @ hits) / np.maximum(weights @ pairs, 1.0)[:, None])
    low, high = np.percentile(np.concatenate(estimates), [2.5, 97.5], axis=0)
    return {m.name: [float(lo), float(hi)] for m, lo, hi in zip(values, low, high, strict=True)}

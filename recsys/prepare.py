"""Turn loaded ratings into a fixed evaluation task plus a training sample.

Order of steps, and why:

1. Drop rows with missing fields (the loader does this and counts them) and duplicate
   (user, item) pairs (the latest rating is kept), so no pair can be both trained and tested.
2. Filter on the **whole** file: items with fewer than `min_item_ratings` ratings, then users
   with fewer than `min_user_ratings` (one pass each, not iterated to a fixed point). What is
   left defines the candidate catalog.
3. Split the filtered pairs once, seeded by `data.seed`: `random`; `temporal` (global time:
   the latest `test_fraction` of timestamps is test, the ones before that validation);
   `leave_one_out` (each user's last pair by time is test and the one before validation, for
   users with at least 3 pairs; the rest train); `user_temporal` (each user's latest
   `test_fraction` of pairs is test and the `val_fraction` before them validation, rounded
   per user, at least one pair left to train). Equal timestamps are ordered at random
   (seeded) by the global splits; the per-user splits order a user's equal timestamps as
   the file does (a file of sequences often has one timestamp per session, in order), so
   their held-out pairs are the ones the ordered histories (`recsys.sequences`) end on.
   Every metric is per held-out pair: with one pair per
   user (leave_one_out) top-k accuracy is the hit rate HR@k; with several (user_temporal) it
   is recall@k averaged over pairs, not per user.
4. Only then apply `sample_fraction`, to the training pool alone: a seeded permutation of the
   pool whose first `round(f * n)` rows are kept, so a larger fraction is a superset of a
   smaller one.

Steps 1-3 do not depend on `sample_fraction` or on any model or optimizer setting, so every
trial of a study is scored on the same validation and test pairs against the same catalog; a
smaller catalog would make top-100 easier and a search would learn to shrink it. Steps 1-3 are
the expensive part and are cached on disk (`recsys.cache`); step 4 is cheap and runs per trial.

How this differs from the seed notebook: the notebook samples 10% of rows first, then keeps
products with >= 50 ratings *within the sample*, then takes 180k train / 20k test, and reports
(and would select) on that test set. Here the filter counts ratings in the whole file (so 50
in the notebook's 10% sample corresponds to about 500 here), the held-out sets are fixed
before sampling, selection uses validation and test is reported once.

Users of validation/test pairs who have no training pair (common: most Amazon users rate one
product) have no learned embedding; they map to index 0 (out of vocabulary), and evaluation
ranks their items with the popularity list, which is what the exported model serves such users
(`recsys.serving`). Their count is reported. Catalog items without training pairs keep their
(untrained) embedding and stay rankable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recsys.config import PER_USER_SPLITS, DataConfig
from recsys.errors import UserError
from recsys.loading import Ratings

TRAIN, VALID, TEST = 0, 1, 2


@dataclass(frozen=True)
class PreparedData:
    """Filtered, de-duplicated, split interactions with integer codes (cacheable)."""

    user_ids: pa.Array  # string per user code
    item_ids: pa.Array  # string per item code: the candidate catalog, sorted
    user: np.ndarray  # int32 user code per interaction
    item: np.ndarray  # int32 item code per interaction
    split: np.ndarray  # int8: TRAIN pool, VALID or TEST
    sample_rank: np.ndarray  # int32 rank in the seeded pool permutation; -1 outside the pool
    stats: dict[str, int] = field(default_factory=dict)

    def most_seen(self) -> int:
        """The most training-pool pairs of a user with a validation or test pair."""
        return most_seen_count(self.user[self.split == TRAIN], self.user[self.split != TRAIN])


@dataclass(frozen=True)
class TrialData:
    """What one training run consumes: integer ids ready for the model."""

    train_user: np.ndarray  # int32, 1..n_users (0 is reserved for unknown users)
    train_item: np.ndarray  # int32 catalog index
    val_user: np.ndarray
    val_item: np.ndarray
    test_user: np.ndarray
    test_item: np.ndarray
    user_vocab: np.ndarray  # str; index 0 is the out-of-vocabulary slot ("")
    item_vocab: np.ndarray  # str; the catalog
    item_counts: np.ndarray  # training pairs per catalog item (popularity, logQ)
    stats: dict[str, float]
    # Each pair's place in time (its row in the prepared data: timestamp order, equal
    # timestamps in file order): what orders a user's history (`recsys.sequences`).
    train_time: np.ndarray | None = None
    val_time: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return len(self.user_vocab)

    @property
    def n_items(self) -> int:
        return len(self.item_vocab)

    def history_pairs(self, with_validation: bool = False,
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user, item, time) of what a ranked user has had: the training pairs, plus the
        validation pairs of known users (a test history under
        eval.test_history=train+validation)."""
        if not with_validation:
            return self.train_user, self.train_item, self.train_time
        known = self.val_user > 0
        return (np.concatenate([self.train_user, self.val_user[known]]),
                np.concatenate([self.train_item, self.val_item[known]]),
                np.concatenate([self.train_time, self.val_time[known]]))


def prepare(ratings: Ratings, cfg: DataConfig) -> PreparedData:
    """Steps 1-3: de-duplicate, filter on the whole data, split (see module docstring).

    Works on integer codes only; id strings stay in Arrow dictionaries, so 7.8M rows take
    seconds.
    """
    user, item, time, duplicates = _latest_pairs(ratings)
    # Said in every "too little data" error: a file of repeats shrinks to a few pairs here.
    deduped = (f"; {duplicates} of {len(ratings)} rows were repeats of a (user, item) pair, "
               "only the latest kept" if duplicates else "")
    user, item, time = _filtered(user, item, time, cfg, deduped, len(ratings.user_ids),
                                 len(ratings.item_ids))
    user_vocab, user = _recoded(ratings.user_ids, user, sort=False)
    item_vocab, item = _recoded(ratings.item_ids, item, sort=True)  # the catalog, by id
    split, sample_rank, tied = _split(time, user, cfg, deduped)
    stats = {
        "rows_in": len(ratings),
        "duplicates_dropped": duplicates,
        "rows_after_filters": len(item),
        "catalog_items": len(item_vocab),
        "users": len(user_vocab),
        "train_pool": int((split == TRAIN).sum()),
        "validation": int((split == VALID).sum()),
        "test": int((split == TEST).sum()),
        **({"temporal_tied_at_cuts": tied} if tied else {}),
        # One timestamp for all (or no timestamp column): a per-user split's "latest" pairs
        # are the last in the file's order; the console says so.
        **({"per_user_file_order": 1} if cfg.split in PER_USER_SPLITS and len(time)
           and time.min() == time.max() else {}),
    }
    return PreparedData(user_vocab, item_vocab, user, item, split, sample_rank, stats)


def _latest_pairs(ratings: Ratings) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """User and item codes and timestamps in time order, each (user, item) pair once (its
    latest rating), and how many repeats were dropped."""
    order = np.argsort(ratings.timestamp, kind="stable")  # "latest" needs a stable order
    user, item = ratings.user[order], ratings.item[order]
    time = np.asarray(ratings.timestamp)[order]
    pair = user.astype(np.int64) * max(len(ratings.item_ids), 1) + item
    keep = ~pd.Series(pair).duplicated(keep="last").to_numpy()
    return user[keep], item[keep], time[keep], int((~keep).sum())


def _filtered(user: np.ndarray, item: np.ndarray, time: np.ndarray, cfg: DataConfig,
              deduped: str, n_users: int, n_items: int,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items below data.min_item_ratings, then users below data.min_user_ratings, dropped
    (counted on the whole data; one pass each)."""
    counts = np.bincount(item, minlength=n_items)
    keep = counts[item] >= cfg.min_item_ratings
    _check_not_empty(keep, "data.min_item_ratings", cfg.min_item_ratings, len(item),
                     int(counts.max(initial=0)), "ratings per item", deduped)
    user, item, time = user[keep], item[keep], time[keep]
    if cfg.min_user_ratings > 1:
        counts = np.bincount(user, minlength=n_users)
        keep = counts[user] >= cfg.min_user_ratings
        _check_not_empty(keep, "data.min_user_ratings", cfg.min_user_ratings, len(user),
                         int(counts.max(initial=0)), "ratings per user", deduped)
        user, item, time = user[keep], item[keep], time[keep]
    return user, item, time


def _recoded(ids: pa.Array, codes: np.ndarray, sort: bool) -> tuple[pa.Array, np.ndarray]:
    """A compact vocabulary of the ids still used (sorted by id, or in code order) and the
    codes into it."""
    used = np.flatnonzero(np.bincount(codes, minlength=len(ids)))
    vocab = ids.take(pa.array(used))
    if sort:
        by_id = pc.sort_indices(vocab).to_numpy()
        vocab, used = vocab.take(pa.array(by_id)), used[by_id]
    remap = np.full(len(ids), -1, dtype=np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    return vocab, remap[codes]


def _split(time: np.ndarray, user: np.ndarray, cfg: DataConfig, deduped: str,
           ) -> tuple[np.ndarray, np.ndarray, int]:
    """Each pair's split (rows are in time order), its rank in the seeded permutation of the
    training pool (-1 outside it: `sample_fraction` keeps the lowest ranks), and, for a
    global temporal split, how many pairs share the timestamp at a cut (their side is drawn
    in a seeded random order, not taken from the file's order)."""
    n = len(time)
    rng = np.random.default_rng(cfg.seed)
    if cfg.split in PER_USER_SPLITS:
        split, tied = _per_user_split(user, cfg), 0
        _check_held_out(split, cfg, deduped)
    else:
        split, tied = _global_split(time, cfg, deduped, rng)
    pool = np.flatnonzero(split == TRAIN)
    sample_rank = np.full(n, -1, dtype=np.int32)
    sample_rank[pool[rng.permutation(len(pool))]] = np.arange(len(pool), dtype=np.int32)
    return split, sample_rank, tied


def _global_split(time: np.ndarray, cfg: DataConfig, deduped: str,
                  rng: np.random.Generator) -> tuple[np.ndarray, int]:
    n = len(time)
    n_test = int(round(cfg.test_fraction * n))
    n_val = int(round(cfg.val_fraction * n))
    if n - n_test - n_val < 1 or n_test < 1 or n_val < 1:
        raise UserError(f"data.val_fraction={cfg.val_fraction} and data.test_fraction="
                        f"{cfg.test_fraction} of {n} ratings leave {n - n_test - n_val} for "
                        f"training, {n_val} for validation and {n_test} for test: each needs "
                        f">= 1 (use more data or other fractions{deduped})")
    tied = 0
    if cfg.split == "random":
        order = rng.permutation(n)
    else:  # latest first; equal timestamps in a seeded random order
        if n and time.min() == time.max():
            raise UserError(f"data.split=temporal: all {n} ratings have the same timestamp "
                            f"({time[0]}), so there is no time order to split by; use "
                            "data.split=random")
        order = np.lexsort((rng.random(n), -time.astype(np.float64)))
        for cut in (n_test, n_test + n_val):
            at = time[order[cut - 1]]
            if time[order[cut]] == at:  # the cut falls inside a group of equal timestamps
                tied += int((time == at).sum())
    split = np.full(n, TRAIN, dtype=np.int8)
    split[order[:n_test]] = TEST
    split[order[n_test:n_test + n_val]] = VALID
    return split, tied


def _per_user_split(user: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """Each user's pairs by time (ties in the file's order: rows arrive in time order,
    stable), the latest held out."""
    order = np.argsort(user, kind="stable")  # by user, then time, then file order
    by_user = user[order]
    starts = np.flatnonzero(np.r_[True, by_user[1:] != by_user[:-1]])
    counts = np.diff(np.r_[starts, len(order)])
    # position of each pair from its user's end: 0 = the user's latest
    from_end = np.repeat(starts + counts, counts) - 1 - np.arange(len(order))
    n_of = np.repeat(counts, counts)
    if cfg.split == "leave_one_out":
        n_test = np.where(n_of >= 3, 1, 0)
        n_val = n_test
    else:
        n_test = np.round(cfg.test_fraction * n_of).astype(np.int64)
        n_val = np.round(cfg.val_fraction * n_of).astype(np.int64)
        n_val = np.minimum(n_val, np.maximum(n_of - n_test - 1, 0))  # one pair left to train
        n_test = np.minimum(n_test, n_of - 1)
    split_sorted = np.full(len(order), TRAIN, dtype=np.int8)
    split_sorted[from_end < n_test] = TEST
    split_sorted[(from_end >= n_test) & (from_end < n_test + n_val)] = VALID
    split = np.empty(len(order), dtype=np.int8)
    split[order] = split_sorted
    return split


def _check_held_out(split: np.ndarray, cfg: DataConfig, deduped: str) -> None:
    n_val, n_test = int((split == VALID).sum()), int((split == TEST).sum())
    if n_val < 1 or n_test < 1:
        need = ("users with at least 3 ratings" if cfg.split == "leave_one_out" else
                "users with enough ratings for data.val_fraction and data.test_fraction")
        raise UserError(f"data.split={cfg.split} holds out {n_val} validation and {n_test} test "
                        f"pairs: it needs {need} (use data.split=random, or more data"
                        f"{deduped})")


def _check_not_empty(keep: np.ndarray, key: str, value: int, before: int, best: int,
                     what: str, deduped: str) -> None:
    if not keep.any():
        raise UserError(f"{key}={value} drops every rating ({before} before, 0 after; the "
                        f"most {what} is {best}{deduped}): use a value <= {best}")


def as_strings(ids: pa.Array) -> np.ndarray:
    return np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object)


def training_mask(data: PreparedData, sample_fraction: float) -> np.ndarray:
    """The rows a run trains on: the lowest-ranked `sample_fraction` of the training pool."""
    n_keep = max(1, int(round(sample_fraction * data.stats["train_pool"])))
    return (data.split == TRAIN) & (data.sample_rank < n_keep)


def select_training(data: PreparedData, sample_fraction: float) -> TrialData:
    """Step 4: sample the training pool and index users for the model (cheap, per trial)."""
    in_train = training_mask(data, sample_fraction)
    # Keep the seeded permutation's order: it is the shuffle the notebook does once.
    rows = np.flatnonzero(in_train)
    rows = rows[np.argsort(data.sample_rank[rows], kind="stable")]
    train_users, train_user = np.unique(data.user[rows], return_inverse=True)
    # Code -> model index; 0 is "unknown user" for held-out users without training pairs.
    to_index = np.zeros(len(data.user_ids), dtype=np.int32)
    to_index[train_users] = np.arange(1, len(train_users) + 1, dtype=np.int32)
    user_vocab = np.concatenate([np.array([""], dtype=object), as_strings(
        data.user_ids.take(pa.array(train_users)))])

    def held_out(kind: int) -> tuple[np.ndarray, np.ndarray]:
        mask = data.split == kind
        return to_index[data.user[mask]], data.item[mask]

    val_user, val_item = held_out(VALID)
    test_user, test_item = held_out(TEST)
    val_time = np.flatnonzero(data.split == VALID)
    train_item = data.item[rows]
    item_counts = np.bincount(train_item, minlength=len(data.item_ids))
    stats = dict(data.stats)
    stats.update(
        train=len(rows),
        train_users=len(train_users),
        catalog_items_without_training_pairs=int((item_counts == 0).sum()),
        validation_unknown_users=int((val_user == 0).sum()),
        test_unknown_users=int((test_user == 0).sum()),
    )
    return TrialData(
        train_user=(train_user + 1).astype(np.int32), train_item=train_item,
        val_user=val_user, val_item=val_item, test_user=test_user, test_item=test_item,
        user_vocab=user_vocab, item_vocab=as_strings(data.item_ids), item_counts=item_counts,
        stats=stats, train_time=rows.astype(np.int64), val_time=val_time.astype(np.int64),
    )


def most_seen_count(train_user: np.ndarray, held_user: np.ndarray) -> int:
    """The most training pairs of any user who also has a held-out pair (0: none)."""
    if len(train_user) == 0 or len(held_user) == 0:
        return 0
    counts = np.bincount(train_user, minlength=int(max(train_user.max(), held_user.max())) + 1)
    return int(counts[held_user].max())

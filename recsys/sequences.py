"""Each user's items in time order: what the sequence tower and the transitions baseline read.

A user's sequence is their training items by time (timestamp, equal timestamps in the file's
order: `TrialData.train_time`); a held-out pair is ranked from the items before it. Under
`eval.test_history=train+validation` a test pair reads the validation items too, as the
sequential-recommendation literature does under leave-one-out.

Rows hold item index + 1 and are right-aligned (0 pads on the left), so a user's latest item
is always the last column: the one whose output is the user's vector.

Causality in training: `windows` pairs each input column with the item that follows it, and
the sequence tower's causal attention lets column t see columns <= t only, so no example's
history holds its own target or anything after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from recsys.prepare import TrialData


class UserSequences:
    def __init__(self, users: np.ndarray, items: np.ndarray, times: np.ndarray, n_users: int,
                 max_len: int) -> None:
        order = np.lexsort((np.asarray(times), np.asarray(users)))  # by user, then time
        self.items = np.asarray(items)[order].astype(np.int32)
        self.counts = np.bincount(np.asarray(users), minlength=n_users).astype(np.int64)
        self.end = np.cumsum(self.counts)
        self.max_len = self.serve_len = max_len  # the interface QueryEncoder reads

    def rows(self, users: np.ndarray, length: int | None = None) -> np.ndarray:
        """[len(users), width] int32: each user's last items (index + 1), right-aligned, 0 on
        the left; width: the longest of these users' (<= length, default max_len), rounded up
        to a power of two (a few shapes to trace)."""
        users = np.asarray(users)
        cap = length or self.max_len
        n = np.minimum(self.counts[users], cap)
        width = min(cap, 1 << int(max(1, n.max(initial=1)) - 1).bit_length())
        column = np.arange(width)[None, :]
        first = width - n[:, None]  # the first filled column
        valid = column >= first
        index = self.end[users][:, None] - (width - column)
        index = np.clip(index, 0, max(len(self.items) - 1, 0))
        out = np.where(valid, self.items[index] + 1 if len(self.items) else 0, 0)
        return out.astype(np.int32)

    def windows(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Training examples of these users: (inputs, targets), both [len(users), width];
        targets[:, t] is the item that followed inputs[:, t] (0 where there is none). Each
        user's last max_len + 1 items."""
        both = self.rows(users, length=self.max_len + 1)
        inputs, targets = both[:, :-1], both[:, 1:]
        return inputs, np.where(inputs > 0, targets, 0)

    def targets_per_user(self) -> np.ndarray:
        """How many training targets `windows` gives each user."""
        return np.clip(self.counts - 1, 0, self.max_len)

    def last_items(self, users: np.ndarray, n: int) -> np.ndarray:
        """[len(users), n]: each user's n latest items (catalog index), the latest last, -1
        where the user has fewer."""
        rows = self.rows(users, length=n)[:, -n:] if n else np.zeros((len(users), 0), np.int32)
        rows = np.pad(rows, [(0, 0), (n - rows.shape[1], 0)])  # as wide as n: 0 on the left
        return rows.astype(np.int64) - 1

    def transitions(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (item, the item right after it) of the same user."""
        same_user = np.ones(len(self.items), bool)
        same_user[self.end[self.counts > 0] - 1] = False  # a user's last item: nothing after
        start = np.flatnonzero(same_user[:-1]) if len(self.items) else np.zeros(0, np.int64)
        return self.items[start], self.items[start + 1]


def training_sequences(data: TrialData, max_len: int, with_validation: bool = False,
                       ) -> UserSequences:
    """The users' training items in time order (plus their validation items, which come
    after them under a per-user split, when `with_validation`)."""
    return UserSequences(*data.history_pairs(with_validation), data.n_users, max_len)

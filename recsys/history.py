"""Each user's training items, as the fixed-width rows the history towers read.

Built from the training pairs only, so a user's held-out (validation, test) items can never
enter the vector that ranks them. Users with more than `max_len` training items keep a seeded
random `max_len` of them; rows are padded with 0 and hold item index + 1.
"""

from __future__ import annotations

import numpy as np


class UserHistory:
    def __init__(self, train_user: np.ndarray, train_item: np.ndarray, n_users: int,
                 max_len: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        # Shuffle, then stable-sort by user: each user's items in a random order, so the
        # first max_len of them are a random subset.
        order = rng.permutation(len(train_user))
        order = order[np.argsort(train_user[order], kind="stable")]
        self.items = train_item[order].astype(np.int32)
        counts = np.bincount(train_user, minlength=n_users)
        self.start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.length = np.minimum(counts, max_len).astype(np.int64)
        self.width = int(max(1, self.length.max(initial=0)))

    def rows(self, users: np.ndarray) -> np.ndarray:
        """[len(users), width] int32: item index + 1 of each user's history, 0-padded."""
        users = np.asarray(users)
        offsets = np.arange(self.width)
        valid = offsets[None, :] < self.length[users][:, None]
        index = np.minimum(self.start[users][:, None] + offsets[None, :],
                           max(len(self.items) - 1, 0))
        out = np.where(valid, self.items[index] + 1 if len(self.items) else 0, 0)
        return out.astype(np.int32)

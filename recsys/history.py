"""Each user's training items, as the fixed-width rows the history towers read.

Built from the training pairs only, so a user's held-out (validation, test) items can never
enter the vector that ranks them. A training step reads at most `max_len` items per user (a
fresh random draw for heavier users: the tower's cost grows with the width); evaluation and
serving read all of them (up to SERVE_MAX_LEN). Rows are padded with 0, hold item index + 1,
as wide as the longest history among the users read (rounded up to a power of two).
"""

from __future__ import annotations

import numpy as np

SERVE_MAX_LEN = 1000  # evaluation and serving read at most this many items per user


class UserHistory:
    def __init__(self, train_user: np.ndarray, train_item: np.ndarray, n_users: int,
                 max_len: int, seed: int, serve_len: int = SERVE_MAX_LEN) -> None:
        rng = np.random.default_rng(seed)
        # Shuffle, then stable-sort by user: each user's items in a random order, so the
        # first serve_len of them are a random subset.
        order = rng.permutation(len(train_user))
        order = order[np.argsort(train_user[order], kind="stable")]
        self.items = train_item[order].astype(np.int32)
        self.counts = np.bincount(train_user, minlength=n_users).astype(np.int64)
        self.start = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self.max_len, self.serve_len = max_len, max(serve_len, max_len)

    def rows(self, users: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """[len(users), width] int32: item index + 1 of each user's history, 0-padded.
        Training (`rng` given): at most `max_len` items, a fresh random draw (with
        replacement) for users with more. Evaluation and serving: every item up to
        `serve_len` (a seeded subset beyond). The mean of a random draw estimates the mean
        of every item without bias, so the served vector is what training saw on average."""
        users = np.asarray(users)
        cap = self.max_len if rng is not None else self.serve_len
        length = np.minimum(self.counts[users], cap)
        # As wide as these users need, rounded up to a power of two (a few shapes to trace).
        width = min(cap, 1 << int(max(1, length.max(initial=1)) - 1).bit_length())
        offsets = np.arange(width)
        valid = offsets[None, :] < length[:, None]
        position = np.broadcast_to(offsets, valid.shape)
        if rng is not None:
            long = self.counts[users] > length
            if long.any():  # one vectorized draw per step
                draw = (rng.random((int(long.sum()), width))
                        * self.counts[users][long][:, None]).astype(np.int64)
                position = position.copy()
                position[long] = draw
        index = np.minimum(self.start[users][:, None] + position, max(len(self.items) - 1, 0))
        out = np.where(valid, self.items[index] + 1 if len(self.items) else 0, 0)
        return out.astype(np.int32)

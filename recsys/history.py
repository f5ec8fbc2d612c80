"""Each user's training items, as the fixed-width rows the history towers read.

Built from the training pairs only, so a user's held-out (validation, test) items can never
enter the vector that ranks them. Users with more than `max_len` training items are read
through a seeded random `max_len` of them (evaluation, serving), or a fresh random draw of
`max_len` at every training step (more of their items seen over the epochs). Rows are padded
with 0, hold item index + 1, and are only as wide as the batch's longest history (rounded up
to a power of two, so that a compiled step sees a few shapes): most users of a 5-core set have
a handful of items, and the tower's cost grows with the width.
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

        self.counts = counts.astype(np.int64)

    def rows(self, users: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """[len(users), width] int32: item index + 1 of each user's history, 0-padded.
        `rng` (training): users with more than `max_len` items get a fresh random draw."""
        users = np.asarray(users)
        length = self.length[users]
        width = min(self.width, 1 << int(max(1, length.max(initial=1)) - 1).bit_length())
        offsets = np.arange(width)
        valid = offsets[None, :] < length[:, None]
        position = np.broadcast_to(offsets, valid.shape)
        if rng is not None:
            long = self.counts[users] > length
            if long.any():  # with replacement: one vectorized draw per step
                draw = (rng.random((int(long.sum()), width))
                        * self.counts[users][long][:, None]).astype(np.int64)
                position = position.copy()
                position[long] = draw
        index = np.minimum(self.start[users][:, None] + position, max(len(self.items) - 1, 0))
        out = np.where(valid, self.items[index] + 1 if len(self.items) else 0, 0)
        return out.astype(np.int32)

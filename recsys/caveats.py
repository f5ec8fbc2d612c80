"""When the data makes the headline number say little: plain warnings, before training.

A slice of a large file, heavy filters or a random split can leave a catalog so small that
top-100 covers most of it, held-out pairs whose users the model never saw (ranked by
popularity, whatever it learns), or about one training pair per user. The number is then
computed correctly and means almost nothing; a data-stats line was the only hint."""

from __future__ import annotations

import numpy as np

from recsys.prepare import TRAIN, PreparedData, training_mask

CATALOG_SHARE = 0.25  # top-k over at least this share of the catalog: a random list hits it
UNSEEN_SHARE = 0.5  # held-out pairs of users without a training pair
PAIRS_PER_USER = 1.5  # training pairs per training user


def caveats(data: PreparedData, sample_fraction: float, k: int) -> list[str]:
    """One line per way the data makes top-k (and the model's part in it) near meaningless."""
    out = []
    catalog = len(data.item_ids)
    if catalog and k >= CATALOG_SHARE * catalog:
        out.append(f"top-{k} ranks {k} of the {catalog} catalog items: a random list already "
                   f"holds {min(k / catalog, 1):.0%} of the held-out items, so top-{k} says "
                   "little; report a smaller k (train.top_ks, train.monitor) or keep more "
                   "items (data.min_item_ratings, data.sample_fraction)")
    in_train = training_mask(data, sample_fraction)
    known = np.zeros(len(data.user_ids), dtype=bool)
    known[data.user[in_train]] = True
    held = data.user[data.split != TRAIN]
    unseen = float(1 - known[held].mean()) if len(held) else 0.0
    if unseen > UNSEEN_SHARE:
        out.append(f"{unseen:.0%} of the held-out pairs are of users with no training pair: "
                   "they are ranked by popularity whatever the model learns; keep each "
                   "user's earlier pairs in training (data.split=leave_one_out or "
                   "user_temporal) or use more of the data")
    users = int(known.sum())
    if users and int(in_train.sum()) < PAIRS_PER_USER * users:
        out.append(f"{in_train.sum() / users:.2f} training pairs per training user: a user's "
                   "vector learns from almost nothing; use more of the data (a larger "
                   "data.sample_fraction, a lower data.min_item_ratings)")
    return out

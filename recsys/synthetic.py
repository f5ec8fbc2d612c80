"""The embedded default data set: seeded synthetic ratings shaped like Amazon Electronics.

What makes it a fair stand-in:
- string ids in Amazon's shapes (users `A1B2...`, products `0132793040` with leading zeros or
  `B00...`), written as a header-less `user,item,rating,timestamp` CSV read by the real loader;
- heavy-tailed item popularity (Zipf-like bias) and user activity (most users rate 1-2 items);
- a planted low-rank preference structure (user and item factors of rank `rank`), so a
  two-tower model can learn something a popularity ranking cannot.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.config import SyntheticConfig
from recsys.files import atomic_path

_ALNUM = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))


def _ids(rng: np.random.Generator, n: int, prefix: str, length: int, digits_only: bool) -> list[str]:
    alphabet = _ALNUM[26:] if digits_only else _ALNUM
    chars = alphabet[rng.integers(0, len(alphabet), size=(n * 2, length))]
    ids = pd.unique(np.array([prefix + "".join(row) for row in chars]))[:n]
    if len(ids) < n:  # pragma: no cover - needs an astronomically unlucky draw
        raise RuntimeError("could not draw enough distinct synthetic ids")
    return list(ids)


def generate(cfg: SyntheticConfig) -> pd.DataFrame:
    """Return a DataFrame with columns user, item, rating, timestamp (ids as strings)."""
    rng = np.random.default_rng(cfg.seed)
    # Item ids: half classic 10-digit ISBN-like ids (leading zeros kept), half ASIN-like.
    n_isbn = cfg.n_items // 2
    items = np.array(_ids(rng, n_isbn, "0", 9, True) + _ids(rng, cfg.n_items - n_isbn, "B00", 7, False))
    users = np.array(_ids(rng, cfg.n_users, "A", 13, False))

    # User activity: Zipf-like counts, so most users have 1 or 2 ratings and a few have many.
    activity = rng.zipf(cfg.user_activity_exponent, size=cfg.n_users).astype(np.float64)
    activity = np.minimum(activity, cfg.n_items / 4)
    per_user = np.maximum(1, np.round(activity * cfg.n_interactions / activity.sum())).astype(int)
    per_user = np.minimum(per_user, cfg.n_items)  # few users, many ratings: each item once

    # Preferences: low-rank affinity plus a heavy-tailed popularity bias.
    user_f = rng.normal(size=(cfg.n_users, cfg.rank)) / np.sqrt(cfg.rank)
    item_f = rng.normal(size=(cfg.n_items, cfg.rank))
    pop_bias = -cfg.popularity_exponent * np.log(rng.permutation(cfg.n_items) + 1.0)

    user_rows, item_cols = [], []
    chunk = max(1, min(2048, 20_000_000 // cfg.n_items))  # users per block: ~160 MB of logits
    for start in range(0, cfg.n_users, chunk):
        stop = min(start + chunk, cfg.n_users)
        logits = cfg.preference_strength * user_f[start:stop] @ item_f.T + pop_bias
        logits -= logits.max(axis=1, keepdims=True)
        # Gumbel-top-k draws distinct items per user without replacement.
        gumbel = logits - np.log(-np.log(rng.random(logits.shape)))
        order = np.argsort(-gumbel, axis=1)
        for offset, count in enumerate(per_user[start:stop]):
            user_rows.append(np.full(count, start + offset))
            item_cols.append(order[offset, :count])
    u = np.concatenate(user_rows)
    i = np.concatenate(item_cols)
    affinity = np.einsum("nd,nd->n", user_f[u], item_f[i])
    rating = np.clip(np.round(3.5 + 1.2 * affinity + rng.normal(0, 0.7, size=len(u))), 1, 5)
    timestamp = rng.integers(1_200_000_000, 1_400_000_000, size=len(u))
    shuffle = rng.permutation(len(u))
    return pd.DataFrame({
        "user": users[u[shuffle]],
        "item": items[i[shuffle]],
        "rating": rating[shuffle],
        "timestamp": timestamp[shuffle],
    })


def ensure_csv(cfg: SyntheticConfig, directory: str | Path) -> Path:
    """Write the synthetic data as an Amazon-format CSV (no header) once; return its path.

    The file name carries a hash of the generator settings, so a changed setting writes a new
    file and an unchanged one is reused (and the prepared-data cache keyed on it stays valid).
    """
    key = hashlib.sha256(json.dumps(cfg.__dict__, sort_keys=True).encode()).hexdigest()[:12]
    path = Path(directory) / f"synthetic_{key}.csv"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    df = generate(cfg)
    df["rating"] = df["rating"].map("{:.1f}".format)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, header=False, index=False)
    return path

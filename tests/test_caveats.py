"""Warnings where the data makes top-k near meaningless (small catalog, unseen users, about
one training pair per user), and none on data where it means something."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import ratings_from_frame

from recsys.caveats import caveats
from recsys.config import DataConfig, SyntheticConfig
from recsys.prepare import prepare
from recsys.synthetic import generate


def prepared(df: pd.DataFrame, **data: object):  # noqa: ANN201
    return prepare(ratings_from_frame(df), DataConfig(**data))


def test_meaningful_data_gets_no_warning() -> None:
    data = prepared(generate(SyntheticConfig(n_users=800, n_items=500, n_interactions=12000)))
    assert caveats(data, 1.0, 100) == []


def test_top_k_over_most_of_a_small_catalog_is_named() -> None:
    data = prepared(generate(SyntheticConfig(n_users=800, n_items=150, n_interactions=6000)))
    (line,) = caveats(data, 1.0, 100)
    assert line.startswith("top-100 ranks 100 of the 150 catalog items: a random list already "
                           "holds 67% of the held-out items")
    assert caveats(data, 1.0, 10) == []


def test_held_out_users_never_seen_and_one_pair_per_user_are_named() -> None:
    """The notebook's slice of a large file: nearly every user rated once."""
    rng = np.random.default_rng(0)
    n = 4000
    df = pd.DataFrame({"user": [f"u{i}" for i in range(n)],
                       "item": [f"i{j}" for j in rng.integers(0, 1000, n)],
                       "rating": 5.0, "timestamp": np.arange(n)})
    lines = caveats(prepared(df), 1.0, 10)
    assert len(lines) == 2
    assert lines[0].startswith("100% of the held-out pairs are of users with no training pair")
    assert lines[1].startswith("1.00 training pairs per training user")

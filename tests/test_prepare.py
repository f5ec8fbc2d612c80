from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ratings_from_frame

from recsys.cache import load_prepared
from recsys.config import DataConfig, SyntheticConfig
from recsys.errors import UserError
from recsys.prepare import TEST, TRAIN, VALID, PreparedData, prepare, select_training
from recsys.synthetic import generate

SMALL = SyntheticConfig(n_users=800, n_items=200, n_interactions=6000)


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return generate(SMALL)


def prepare_frame(df: pd.DataFrame, cfg: DataConfig) -> PreparedData:
    return prepare(ratings_from_frame(df), cfg)


def pairs(users: np.ndarray, items: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(users.tolist(), items.tolist(), strict=True))


def test_split_is_deterministic_and_disjoint(ratings: pd.DataFrame) -> None:
    a = prepare_frame(ratings, DataConfig(seed=3))
    b = prepare_frame(ratings.sample(frac=1.0, random_state=0), DataConfig(seed=3))  # row order
    for arr in ("split", "user", "item"):
        again = prepare_frame(ratings, DataConfig(seed=3))
        np.testing.assert_array_equal(getattr(a, arr), getattr(again, arr))
    assert a.stats["test"] == b.stats["test"]
    train = pairs(a.user[a.split == TRAIN], a.item[a.split == TRAIN])
    test = pairs(a.user[a.split == TEST], a.item[a.split == TEST])
    val = pairs(a.user[a.split == VALID], a.item[a.split == VALID])
    assert train and test and val
    assert not train & test and not train & val and not val & test
    c = prepare_frame(ratings, DataConfig(seed=4))
    assert not np.array_equal(a.split, c.split)


def test_duplicate_pairs_are_dropped_keeping_the_latest(ratings: pd.DataFrame) -> None:
    dup = ratings.iloc[[0]].assign(rating=1.0, timestamp=ratings["timestamp"].max() + 1)
    data = prepare_frame(pd.concat([ratings, dup]), DataConfig())
    assert data.stats["duplicates_dropped"] == 1
    assert data.stats["rows_after_filters"] == len(ratings)


def test_eval_sets_and_catalog_do_not_depend_on_sample_fraction(ratings: pd.DataFrame) -> None:
    data = prepare_frame(ratings, DataConfig())
    small, full = select_training(data, 0.2), select_training(data, 1.0)
    np.testing.assert_array_equal(small.item_vocab, full.item_vocab)
    np.testing.assert_array_equal(small.val_item, full.val_item)
    np.testing.assert_array_equal(small.test_item, full.test_item)
    # Same held-out users (by id string; unknown ones map to "" in both).
    np.testing.assert_array_equal(small.user_vocab[small.test_user][small.test_user > 0],
                                  full.user_vocab[full.test_user][small.test_user > 0])
    assert len(small.train_user) == round(0.2 * data.stats["train_pool"])
    # Nested samples: a larger fraction is a superset of a smaller one.
    assert pairs(small.user_vocab[small.train_user], small.train_item) <= pairs(
        full.user_vocab[full.train_user], full.train_item)
    assert small.stats["test_unknown_users"] >= full.stats["test_unknown_users"]


def test_temporal_split_puts_latest_ratings_in_test(ratings: pd.DataFrame) -> None:
    cfg = DataConfig(split="temporal")
    data = prepare_frame(ratings, cfg)
    ts = ratings.sort_values("timestamp", kind="stable")["timestamp"].to_numpy()
    assert ts[data.split == TRAIN].max() <= ts[data.split == VALID].min()
    assert ts[data.split == VALID].max() <= ts[data.split == TEST].min()


def test_temporal_ties_at_a_cut_are_drawn_not_taken_from_the_file_order(
        ratings: pd.DataFrame) -> None:
    """Every timestamp equal: refused with the count (all test users were unseen and the
    model equalled popularity). Half the ratings sharing the latest timestamp: the cut falls
    in that group, its side is drawn at random (seeded), and the count is in the stats."""
    flat = ratings.assign(timestamp=1000)
    with pytest.raises(UserError, match=rf"all {len(ratings)} ratings have the same timestamp "
                                        r"\(1000\), so there is no time order"):
        prepare_frame(flat, DataConfig(split="temporal"))
    half = len(ratings) // 2
    tied = ratings.assign(timestamp=np.r_[np.arange(half), np.full(len(ratings) - half, 10**6)])
    data = prepare_frame(tied, DataConfig(split="temporal"))
    assert data.stats["temporal_tied_at_cuts"] == 2 * (len(ratings) - half)  # both cuts in it
    test_rows = np.flatnonzero(data.split == TEST)
    assert test_rows.min() >= half  # still the latest timestamps only
    n_test = len(test_rows)  # the file's order would have taken the last rows exactly
    assert set(test_rows.tolist()) != set(range(len(ratings) - n_test, len(ratings)))
    assert "temporal_tied_at_cuts" not in prepare_frame(ratings, DataConfig(split="temporal")).stats


def test_item_filter_defines_the_catalog_and_can_empty_it(ratings: pd.DataFrame) -> None:
    counts = ratings["item"].value_counts()
    data = prepare_frame(ratings, DataConfig(min_item_ratings=20))
    assert set(data.item_ids.to_pylist()) == set(counts[counts >= 20].index)
    with pytest.raises(UserError, match=r"data.min_item_ratings=100000 drops every rating "
                                        rf"\({len(ratings)} before, 0 after"):
        prepare_frame(ratings, DataConfig(min_item_ratings=100000))


def test_cache_hit_and_invalidation(tmp_path: Path, ratings: pd.DataFrame) -> None:
    path = tmp_path / "r.csv"
    ratings.to_csv(path, header=False, index=False)
    cfg = DataConfig(path=str(path), cache_dir=str(tmp_path / "cache"))
    first, info1 = load_prepared(cfg)
    second, info2 = load_prepared(cfg)
    assert (info1["cache"], info2["cache"]) == ("miss", "hit")
    np.testing.assert_array_equal(first.user_ids, second.user_ids)
    np.testing.assert_array_equal(first.split, second.split)
    # Sampling fraction is applied per trial: same cache entry.
    assert load_prepared(DataConfig(path=str(path), cache_dir=cfg.cache_dir,
                                    sample_fraction=0.5))[1]["cache"] == "hit"
    # A different data setting or a changed file is a miss.
    assert load_prepared(DataConfig(path=str(path), cache_dir=cfg.cache_dir, seed=1))[1]["cache"] == "miss"
    ratings.iloc[:-10].to_csv(path, header=False, index=False)
    third, info3 = load_prepared(cfg)
    assert info3["cache"] == "miss" and third.stats["rows_in"] == len(ratings) - 10


@pytest.mark.parametrize(("users", "items", "interactions"), [(3000, 1000, 60000), (1, 300, 200)])
def test_the_generator_gives_each_user_an_item_once_even_when_dense(users, items,
                                                                     interactions) -> None:
    """Many ratings per user (or one user) asked more distinct items of a user than the
    catalog holds: a broadcast error. Each user's items are distinct and within the catalog."""
    df = generate(SyntheticConfig(n_users=users, n_items=items, n_interactions=interactions))
    assert not df.duplicated(["user", "item"]).any()
    assert df["item"].nunique() <= items and df.groupby("user").size().max() <= items


@pytest.mark.parametrize("split", ["leave_one_out", "user_temporal"])
def test_per_user_splits_hold_out_each_users_latest_pairs(ratings: pd.DataFrame,
                                                          split: str) -> None:
    """leave_one_out: a user with >= 3 pairs has their latest pair in test and the one before
    in validation; user_temporal: each user's latest round(0.1 n) pairs in test, the round(0.1 n)
    before them in validation, one pair at least left to train. Never earlier than training."""
    data = prepare_frame(ratings, DataConfig(split=split))
    order = ratings.sort_values("timestamp", kind="stable")
    ts = order["timestamp"].to_numpy()
    users = data.user
    for u in np.unique(users):
        rows = np.flatnonzero(users == u)
        kinds = data.split[rows]
        n = len(rows)
        n_test = (1 if n >= 3 else 0) if split == "leave_one_out" else min(round(0.1 * n), n - 1)
        n_val = n_test if split == "leave_one_out" else min(round(0.1 * n), max(n - n_test - 1, 0))
        assert (kinds == TEST).sum() == n_test and (kinds == VALID).sum() == n_val, (u, n)
        assert (kinds == TRAIN).sum() >= 1
        if n_test:
            assert ts[rows[kinds == TEST]].min() >= ts[rows[kinds != TEST]].max()
        if n_val:
            assert ts[rows[kinds == VALID]].min() >= ts[rows[kinds == TRAIN]].max()
    # every held-out user is known (has training pairs): no popularity fallback is needed
    assert set(users[data.split != TRAIN]) <= set(users[data.split == TRAIN])
    trial = select_training(data, 1.0)
    assert trial.stats["test_unknown_users"] == 0


def test_leave_one_out_needs_users_with_three_ratings(ratings: pd.DataFrame) -> None:
    few = ratings.drop_duplicates("user").head(50)  # one rating per user
    with pytest.raises(UserError, match="data.split=leave_one_out holds out 0 validation and 0 "
                                        "test pairs: it needs users with at least 3 ratings"):
        prepare_frame(few, DataConfig(split="leave_one_out"))


@pytest.mark.parametrize("damage", ["{}", '{"users": 1}', "", "[1, 2]"])
def test_a_damaged_meta_json_is_discarded_and_rebuilt(tmp_path: Path, ratings: pd.DataFrame,
                                                      damage: str) -> None:
    path = tmp_path / "r.csv"
    ratings.to_csv(path, header=False, index=False)
    cfg = DataConfig(path=str(path), cache_dir=str(tmp_path / "cache"))
    first, _ = load_prepared(cfg)
    (meta,) = (tmp_path / "cache").rglob("meta.json")
    meta.write_text(damage)
    again, info = load_prepared(cfg)
    assert info["cache"] == "miss" and "was unreadable" in info["notice"]
    assert again.stats == first.stats
    assert load_prepared(cfg)[1]["cache"] == "hit"


@pytest.mark.parametrize("split", ["leave_one_out", "user_temporal"])
def test_one_timestamp_for_all_holds_out_the_files_last_pairs_with_a_note(
        ratings: pd.DataFrame, split: str) -> None:
    """With every timestamp equal, a per-user split's "latest" pairs are the last in the file
    (not drawn at random), and the stats carry the note's flag; real times carry none."""
    flat = ratings.assign(timestamp=7)
    data = prepare_frame(flat, DataConfig(split=split))
    assert data.stats.get("per_user_file_order") == 1
    for u in np.unique(data.user)[:50]:
        rows = np.flatnonzero(data.user == u)  # in the file's order
        kinds = data.split[rows]
        held = np.flatnonzero(kinds != TRAIN)
        assert held.size == 0 or held.min() > np.flatnonzero(kinds == TRAIN).max()
    assert "per_user_file_order" not in prepare_frame(ratings, DataConfig(split=split)).stats

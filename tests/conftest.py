"""Shared fixtures. Importing recsys first selects Keras 2 before TensorFlow loads."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import recsys  # noqa: F401
from recsys.loading import Ratings

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

# A small synthetic data set with the default's structure: trains in a couple of seconds.
TINY_SYNTHETIC = [
    "data.synthetic.n_users=1500",
    "data.synthetic.n_items=300",
    "data.synthetic.n_interactions=15000",
]
TINY_TRAIN = ["train.epochs=2", "train.batch_size=1024", "train.eval_batch_size=1024",
              # one iALS fit instead of the default grid's twelve (tests/test_evaluation.py
              # checks the grid search itself)
              "eval.ials_factors=[16]", "eval.ials_regularization=[100]", "eval.ials_alpha=[10]"]


@pytest.fixture
def tiny_overrides(tmp_path: Path) -> list[str]:
    """Overrides that keep every artefact under tmp_path and the model tiny."""
    return [f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC, *TINY_TRAIN]


def write_lines(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    return path


def ratings_from_frame(df: pd.DataFrame) -> Ratings:
    """Ratings from a DataFrame with columns user, item, rating, timestamp (ids as strings),
    coded as `read_ratings` codes a file."""
    users = pa.array(df["user"].astype(str).to_numpy(), pa.string()).dictionary_encode()
    items = pa.array(df["item"].astype(str).to_numpy(), pa.string()).dictionary_encode()
    return Ratings(user=users.indices.to_numpy().astype(np.int32),
                   item=items.indices.to_numpy().astype(np.int32),
                   user_ids=users.dictionary, item_ids=items.dictionary,
                   rating=df["rating"].to_numpy(np.float64),
                   timestamp=df["timestamp"].to_numpy(np.int64))


def frame_of(ratings: Ratings) -> pd.DataFrame:
    """The ratings with their id strings, one row each."""
    return pd.DataFrame({
        "user": ratings.user_ids.take(pa.array(ratings.user)).to_numpy(zero_copy_only=False),
        "item": ratings.item_ids.take(pa.array(ratings.item)).to_numpy(zero_copy_only=False),
        "rating": ratings.rating, "timestamp": ratings.timestamp})


@contextlib.contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of `size` (e.g. "1m") mounted at `folder` for the block: a disk that
    fills up. Mounting needs root, as CI runs; elsewhere the test skips."""
    folder.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)

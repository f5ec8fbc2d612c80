"""Shared fixtures. Importing recsys first selects Keras 2 before TensorFlow loads."""

from __future__ import annotations

from pathlib import Path

import pytest

import recsys  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

# A small synthetic data set with the default's structure: trains in a couple of seconds.
TINY_SYNTHETIC = [
    "data.synthetic.n_users=1500",
    "data.synthetic.n_items=300",
    "data.synthetic.n_interactions=15000",
]
TINY_TRAIN = ["train.epochs=2", "train.batch_size=1024", "train.eval_batch_size=1024"]


@pytest.fixture
def tiny_overrides(tmp_path: Path) -> list[str]:
    """Overrides that keep every artefact under tmp_path and the model tiny."""
    return [f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC, *TINY_TRAIN]


def write_lines(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    return path

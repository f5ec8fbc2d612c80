"""Atomic file writes: a crash, a kill or a full disk leaves the old file or the new one,
never half of one (a study folder is read by other processes while it is written)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# A run folder's files, named once (the vectors: recsys.serving.VECTORS_FILE).
CONFIG_FILE = "config.yaml"  # the whole composed config: `train --config` re-runs it
METRICS_FILE = "metrics.json"  # the run's numbers beside its baselines


@contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """A temporary name beside `path` to write to; renamed onto `path` when the block ends
    without error, removed otherwise. `suffix` for writers that insist on one (np.savez)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")

"""Will a run fit in this machine's memory? An estimate made before anything is built.

`model.embedding_dim=1000000000` failed deep inside TensorFlow with ResourceExhaustedError,
and `model.tower_layers=[100000000]` was killed by the kernel at 23 GB without a word: the
sizes follow from the config and the data's counts, so they are checked up front."""

from __future__ import annotations

import os
from pathlib import Path

from recsys.config import RunConfig
from recsys.errors import UserError

FLOAT = 4  # bytes: every weight and score is float32
GIB = 2**30
SLOTS = {"adam": 2, "adagrad": 1, "sgd": 0}  # optimizer state per weight (SGD momentum: 1)


def training_bytes(cfg: RunConfig, n_users: int, n_items: int) -> dict[str, int]:
    """A lower bound on the memory a run needs, by part: the model with its optimizer state,
    and the evaluation (one batch of users scored against the catalog, every item's vector)."""
    model, dim = cfg.model, cfg.model.embedding_dim
    rows = n_items + (n_users + 1 if model.uses_ids else 0) \
        + (n_items + 1 if model.uses_history else 0)
    dense, width = 0, dim
    for out in model.tower_layers:
        dense += 2 * (width * out + out)  # the user's and the item's tower
        width = out
    slots = SLOTS[cfg.optimizer.name] + (1 if cfg.optimizer.momentum else 0)
    activations = cfg.train.batch_size * max((dim, *model.tower_layers)) * FLOAT * 4
    return {
        "model": (rows * dim + dense) * FLOAT * (1 + slots) + dense * FLOAT + activations,
        "evaluation": ((min(cfg.train.eval_batch_size, n_users) + 1) * n_items
                       + n_items * width) * FLOAT,
    }


def machine_bytes() -> int | None:
    """Memory this process may use: the cgroup's limit where one is set, else the machine's."""
    for limit in (Path("/sys/fs/cgroup/memory.max"),
                  Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")):
        try:
            text = limit.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(cfg: RunConfig, n_users: int, n_items: int) -> None:
    """Refuse a run that cannot fit in this machine's memory (before anything is built)."""
    available = machine_bytes()
    parts = training_bytes(cfg, n_users, n_items)
    needed = sum(parts.values())
    if available is None or needed <= available:
        return
    fix = ("a smaller model.embedding_dim or model.tower_layers"
           if parts["model"] >= parts["evaluation"] else "a smaller train.eval_batch_size")
    raise UserError(
        f"model.embedding_dim={cfg.model.embedding_dim} with model.tower_layers="
        f"{list(cfg.model.tower_layers)} on {n_users:,} users and {n_items:,} items needs at "
        f"least {needed / GIB:,.1f} GiB (model with {cfg.optimizer.name}'s state "
        f"{parts['model'] / GIB:,.1f}, evaluation {parts['evaluation'] / GIB:,.1f}), more "
        f"than this machine's {available / GIB:,.1f} GiB: use {fix}")

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


def training_bytes(cfg: RunConfig, n_users: int, n_items: int,
                   n_pairs: int | None = None) -> dict[str, int]:
    """A lower bound on the memory a run needs, by part: the model with its optimizer state,
    one training step (a batch is at most the `n_pairs` training pairs there are: its
    activations and in-batch scores), and the evaluation (one batch of users scored against
    the catalog, every item's vector)."""
    model, dim = cfg.model, cfg.model.embedding_dim
    rows = n_items + (n_users + 1 if model.uses_ids else 0) \
        + (n_items + 1 if model.uses_history else 0)
    dense, width = 0, dim
    for out in model.tower_layers:
        dense += 2 * (width * out + out)  # the user's and the item's tower
        width = out
    slots = cfg.optimizer.state_slots
    batch = effective_batch(cfg, n_pairs)
    columns = cfg.step_columns(n_items, batch)
    return {
        "model": (rows * dim + dense) * FLOAT * (1 + slots) + dense * FLOAT,
        "step": batch * max((dim, *model.tower_layers)) * FLOAT * 4
        + 2 * batch * columns * FLOAT,
        "evaluation": ((min(cfg.train.eval_batch_size, n_users) + 1) * n_items
                       + n_items * width) * FLOAT,
    }


def effective_batch(cfg: RunConfig, n_pairs: int | None) -> int:
    """The rows of a training step: the batch size, or every pair when there are fewer."""
    return cfg.train.batch_size if n_pairs is None else max(1, min(cfg.train.batch_size, n_pairs))


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


def check_fits(cfg: RunConfig, n_users: int, n_items: int, n_pairs: int | None = None) -> None:
    """Refuse a run that cannot fit in this machine's memory (before anything is built),
    naming the setting behind the largest part."""
    available = machine_bytes()
    parts = training_bytes(cfg, n_users, n_items, n_pairs)
    needed = sum(parts.values())
    if available is None or needed <= available:
        return
    largest = max(parts, key=parts.get)
    fix = {"model": "a smaller model.embedding_dim or model.tower_layers",
           "step": "a smaller train.batch_size",
           "evaluation": "a smaller train.eval_batch_size"}[largest]
    batch = effective_batch(cfg, n_pairs)
    raise UserError(
        f"model.embedding_dim={cfg.model.embedding_dim} with model.tower_layers="
        f"{list(cfg.model.tower_layers)} and batches of {batch:,} rows (train.batch_size="
        f"{cfg.train.batch_size:,}) on {n_users:,} users and {n_items:,} items needs at least "
        f"{needed / GIB:,.1f} GiB (model with {cfg.optimizer.name}'s state "
        f"{parts['model'] / GIB:,.1f}, training step {parts['step'] / GIB:,.1f}, evaluation "
        f"{parts['evaluation'] / GIB:,.1f}), more than this machine's {available / GIB:,.1f} "
        f"GiB: use {fix}")

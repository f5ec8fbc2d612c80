"""The sequential literature's protocol (`experiment=sequential`: leave-one-out, the whole
catalog ranked, seen items left out, the validation item read at test time): each user tower
and every baseline on the same pairs, HR@k and NDCG@k at 5, 10 and 20 (the published tables'
columns), with each run's seconds side by side (one process; prepared data read once per set).
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING

import numpy as np

from experiments.benchmarks.search import DataSet
from recsys.config import BASELINE_NAMES
from recsys.metrics import Metric

if TYPE_CHECKING:
    from recsys.config import RunConfig
    from recsys.prepare import PreparedData

PROTOCOL = ["experiment=sequential", "train.epochs=60"]
TOWERS: dict[str, list[str]] = {
    "history tower": ["model.user_tower=history"],
    "sequence, in-batch": ["model.user_tower=sequence", "model.embedding_dim=64"],
    # The default study's start point for the sequence tower (conf/search/default.yaml)
    "sequence, catalog softmax": ["model.user_tower=sequence", "model.embedding_dim=128",
                                  "model.sequence_dropout=0.5", "model.negatives=catalog"],
}
COLUMNS = [Metric("test", kind, k) for kind in ("top", "ndcg") for k in (5, 10, 20)]
# ICLRec (Chen et al., WWW 2022), the authors' README, Amazon Toys 5-core under this protocol
PUBLISHED = {"toys": ("ICLRec (published)", [0.0598, 0.0834, 0.1138, 0.0404, 0.0480, 0.0557])}


VERSUS = "NDCG@10 - transitions, paired 95%"


def versus_transitions(comparison: list[dict]) -> str:
    """The paired test against the transitions baseline at NDCG@10 (recsys.significance), as
    `+0.0016 [-0.0004, +0.0036]`; empty when it was not computed."""
    for row in comparison:
        if row["baseline"] == BASELINE_NAMES["transitions"] and row["metric"] == "test_ndcg_10":
            low, high = row["interval"]
            return f"{row['difference']:+.4f} [{low:+.4f}, {high:+.4f}]"
    return ""


def sequential_table(data_sets: list[DataSet], overrides: list[str],
                     towers: list[str] | None = None) -> str:
    from experiments.cli.compose import compose_run
    from recsys.cache import load_prepared
    from recsys.training import run

    head = " ".join(f"{('HR' if m.kind == 'top' else 'NDCG') + f'@{m.k}':>8}" for m in COLUMNS)
    lines = ["sequential protocol: test HR@k and NDCG@k (leave-one-out, whole catalog, seen items "
             "left out, validation item in the test history); kept epoch; seconds of the run "
             "(baselines cached after the first), its mean training and validation seconds an "
             "epoch, and the run's seconds over the history tower's (x-hist)",
             f"{'data':<24} {'method':<28} {head} {'epoch':>7} {'s':>6} {'train/ep':>8} "
             f"{'val/ep':>6} {'x-hist':>6}  {VERSUS}"]
    notes: list[str] = []
    for data in data_sets:
        first, history_seconds = None, None
        for name in towers or list(TOWERS):
            _, cfg = compose_run([*data.overrides, *PROTOCOL, *TOWERS[name], *overrides])
            prepared, _ = load_prepared(cfg.data)
            start = time.perf_counter()
            result = run(cfg, prepared=prepared)
            seconds = time.perf_counter() - start - result.seconds.get("baselines", 0.0)
            if name == "history tower":
                history_seconds = seconds
            ratio = f"{seconds / history_seconds:.1f}x" if history_seconds else "-"
            train, val = (np.mean([h[key] for h in result.history])
                          for key in ("epoch_seconds", "eval_seconds"))
            values = " ".join(f"{result.metrics[m.name]:>8.4f}" for m in COLUMNS)
            lines.append(f"{data.label[:24]:<24} {name:<28} {values} "
                         f"{f'{result.epoch}/{result.epochs_run}':>7} {seconds:>6.0f} "
                         f"{train:>8.1f} {val:>6.1f} {ratio:>6}  "
                         f"{versus_transitions(result.comparison)}")
            if cfg.model.uses_sequence and cfg.model.negatives == "catalog":
                notes.append(f"{data.label[:24]:<24} {name}: {softmax_floor(cfg, prepared)}")
            print(lines[-1], file=sys.stderr, flush=True)
            first = first or result
        for b in first.baselines.values():
            if b.get("metrics"):
                values = " ".join(f"{b['metrics'][m.name]:>8.4f}" for m in COLUMNS)
                lines.append(f"{data.label[:24]:<24} {b['name'][:28]:<28} {values}")
        for key, (name, published) in PUBLISHED.items():
            if key in data.label.lower():
                values = " ".join(f"{v:>8.4f}" for v in published)
                lines.append(f"{data.label[:24]:<24} {name:<28} {values}")
    return "\n".join([*lines, *notes])


def softmax_floor(cfg: RunConfig, prepared: PreparedData) -> str:
    """What the exact softmax's matrix products alone cost an epoch: the scores of every
    next-item target against every item and their two gradients, 3 x 2 x targets x items x
    dim FLOP, at this machine's float32 matrix-product rate (a 2048^3 product, its best of 5):
    a lower bound on the epoch, whatever the rest of the step does."""
    import tensorflow as tf

    from recsys.prepare import select_training
    from recsys.sequences import training_sequences

    data = select_training(prepared, cfg.data.sample_fraction)
    targets = int(training_sequences(data, cfg.model.sequence_max_len).targets_per_user().sum())
    flop = 6.0 * targets * data.n_items * cfg.model.embedding_dim
    a = tf.random.normal([2048, 2048])
    product = tf.function(lambda x: tf.reduce_sum(tf.matmul(x, x)))
    product(a).numpy()
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        product(a).numpy()
        best = min(best, time.perf_counter() - start)
    rate = 2 * 2048 ** 3 / best
    return (f"the exact softmax's products: {targets} targets x {data.n_items} items x "
            f"{cfg.model.embedding_dim} dims = {flop / 1e9:.3g} GFLOP an epoch, "
            f"{flop / rate:.1f} s at this machine's float32 matrix-product rate "
            f"({rate / 1e9:.0f} GFLOPS)")

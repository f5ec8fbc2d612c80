"""Which knobs pay? One change at a time from the fixed recipe, on each data set (one process,
prepared data read once per data set). The evidence behind conf/search/default.yaml."""

from __future__ import annotations

import sys
import time

from experiments.benchmarks.common import TEST_10, TEST_100, TEST_NDCG_10, VAL_100
from experiments.benchmarks.search import DataSet

# The fixed recipe, exactly (40-epoch cap, patience 3).
BASE = ["model.logq_correction=true", "optimizer=adam", "optimizer.learning_rate=0.003",
        "train.batch_size=1024", "train.epochs=40", "train.early_stopping_patience=3",
        "model.user_tower=id", "model.embedding_dim=32"]
HISTORY = ["model.user_tower=history"]
VARIANTS: dict[str, list[str]] = {
    "fixed recipe": [],
    "no logQ": ["model.logq_correction=false"],
    "adam lr 0.01": ["optimizer.learning_rate=0.01"],
    "adam lr 0.001": ["optimizer.learning_rate=0.001"],
    "batch 256": ["train.batch_size=256"],
    "batch 4096": ["train.batch_size=4096"],
    "batch 4096 + lr 0.01": ["train.batch_size=4096", "optimizer.learning_rate=0.01"],
    "adagrad 0.1 + batch 8192": ["optimizer=adagrad", "optimizer.learning_rate=0.1",
                                "train.batch_size=8192"],
    "adagrad 0.5": ["optimizer=adagrad", "optimizer.learning_rate=0.5"],
    "temperature 0.2": ["model.temperature=0.2"],
    "temperature 0.5": ["model.temperature=0.5"],
    "dim 16": ["model.embedding_dim=16"],
    "dim 64": ["model.embedding_dim=64"],
    "dim 128": ["model.embedding_dim=128"],
    "l2 1e-5": ["model.l2=1e-5"],
    "sample_fraction 0.5": ["data.sample_fraction=0.5"],
    # issue #20: the wider model space, one change at a time from the fixed recipe, then on
    # top of the history tower
    "history tower": HISTORY,
    "id+history tower": ["model.user_tower=id+history"],
    "history, dropout 0.3": [*HISTORY, "model.history_dropout=0.3"],
    "history, dropout 0.5": [*HISTORY, "model.history_dropout=0.5"],
    "history, dim 64": [*HISTORY, "model.embedding_dim=64"],
    "history, dim 128": [*HISTORY, "model.embedding_dim=128"],
    "history, mixed negatives": [*HISTORY, "model.negatives=mixed"],
    "history, cosine t=0.1": [*HISTORY, "model.normalize=true", "model.temperature=0.1"],
    "history, l2 1e-4": [*HISTORY, "model.l2=1e-4"],
    "history, cosine t=0.05": [*HISTORY, "model.normalize=true", "model.temperature=0.05"],
    "history, cosine t=0.2": [*HISTORY, "model.normalize=true", "model.temperature=0.2"],
    "history, layer 64": [*HISTORY, "model.tower_layers=[64]"],
    "history, max_len 64": [*HISTORY, "model.history_max_len=64"],
    "history, max_len 128": [*HISTORY, "model.history_max_len=128"],
    "history, mixed, cosine t=0.1": [*HISTORY, "model.negatives=mixed", "model.normalize=true",
                                     "model.temperature=0.1"],
    # A large batch's cost: B x B in-batch scores a step, or B x model.batch_columns.
    "history, adagrad 0.1, 8192": [*HISTORY, "optimizer=adagrad", "optimizer.learning_rate=0.1",
                                   "train.batch_size=8192"],
    "history, adagrad 8192/2048c": [*HISTORY, "optimizer=adagrad", "optimizer.learning_rate=0.1",
                                    "train.batch_size=8192", "model.batch_columns=2048"],
    "history, adagrad 8192/1024c": [*HISTORY, "optimizer=adagrad", "optimizer.learning_rate=0.1",
                                    "train.batch_size=8192", "model.batch_columns=1024"],
    "history, adam 0.01, 4096": [*HISTORY, "optimizer.learning_rate=0.01", "train.batch_size=4096"],
    "history, adam 4096/1024c": [*HISTORY, "optimizer.learning_rate=0.01", "train.batch_size=4096",
                                 "model.batch_columns=1024"],
    "mixed negatives": ["model.negatives=mixed"],
    "catalog softmax": ["model.negatives=catalog"],
    "cosine t=0.1": ["model.normalize=true", "model.temperature=0.1"],
    "cosine t=0.05": ["model.normalize=true", "model.temperature=0.05"],
}


def knobs_table(data_sets: list[DataSet], overrides: list[str],
                variants: list[str] | None = None) -> str:
    from experiments.cli.compose import compose_run
    from recsys.cache import load_prepared
    from recsys.training import run

    lines = ["knobs: one change from the fixed recipe; val top-100, the monitored validation "
             "metric (train.monitor: it picks the kept epoch), test top-100, top-10 and "
             "NDCG@10, kept epoch, seconds",
             f"{'data':<28} {'variant':<24} {'val@100':>8} {'monitor':>8} {'test@100':>9} "
             f"{'test@10':>8} {'ndcg@10':>8} {'epoch':>9} {'s':>5}"]
    for data in data_sets:
        first = None  # the baselines of the first variant's data (a variant may change it)
        for name in variants or list(VARIANTS):
            _, cfg = compose_run([*data.overrides, *BASE, *VARIANTS[name], *overrides])
            prepared, _ = load_prepared(cfg.data)
            start = time.perf_counter()
            r = run(cfg, prepared=prepared)
            m = r.metrics
            lines.append(f"{data.label[:28]:<28} {name:<24} {m[VAL_100]:>8.4f} "
                         f"{m[cfg.train.monitor_metric]:>8.4f} "
                         f"{m[TEST_100]:>9.4f} {m[TEST_10]:>8.4f} "
                         f"{m[TEST_NDCG_10]:>8.4f} {f'{r.epoch}/{r.epochs_run}':>9} "
                         f"{time.perf_counter() - start:>5.0f}")
            print(lines[-1], file=sys.stderr, flush=True)
            if first is None:
                first = r
        for b in first.baselines.values():
            if b.get("metrics"):
                m = b["metrics"]
                lines.append(f"{data.label[:28]:<28} {b['name'][:24]:<24} {m[VAL_100]:>8.4f} "
                             f"{m.get(cfg.train.monitor_metric, float('nan')):>8.4f} "
                             f"{m[TEST_100]:>9.4f} {m[TEST_10]:>8.4f} "
                             f"{m[TEST_NDCG_10]:>8.4f}")
    return "\n".join(lines)

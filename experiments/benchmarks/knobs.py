"""Which knobs pay? One change at a time from the fixed recipe, on each data set (one process,
prepared data read once per data set). The evidence behind conf/search/default.yaml."""

from __future__ import annotations

import sys
import time

from experiments.benchmarks.search import DataSet

# The fixed recipe, exactly (40-epoch cap, patience 3).
BASE = ["model.logq_correction=true", "optimizer=adam", "optimizer.learning_rate=0.003",
        "train.batch_size=1024", "train.epochs=40", "train.early_stopping_patience=3"]
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
}


def knobs_table(data_sets: list[DataSet], overrides: list[str],
                variants: list[str] | None = None) -> str:
    from experiments.cli.compose import compose_run
    from recsys.cache import load_prepared
    from recsys.training import run

    lines = ["knobs: one change from the fixed recipe; val / test top-100, kept epoch, seconds",
             f"{'data':<28} {'variant':<24} {'val@100':>8} {'test@100':>9} {'epoch':>9} "
             f"{'s':>5}"]
    for data in data_sets:
        for name in variants or list(VARIANTS):
            _, cfg = compose_run([*data.overrides, *BASE, *VARIANTS[name], *overrides])
            prepared, _ = load_prepared(cfg.data)
            start = time.perf_counter()
            r = run(cfg, prepared=prepared)
            lines.append(f"{data.label[:28]:<28} {name:<24} {r.metrics['val_top_100']:>8.4f} "
                         f"{r.metrics['test_top_100']:>9.4f} {f'{r.epoch}/{r.epochs_run}':>9} "
                         f"{time.perf_counter() - start:>5.0f}")
            print(lines[-1], file=sys.stderr, flush=True)
        lines.append(f"{data.label[:28]:<28} {'popularity':<24} "
                     f"{r.popularity['val_top_100']:>8.4f} {r.popularity['test_top_100']:>9.4f}")
    return "\n".join(lines)

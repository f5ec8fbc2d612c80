"""Trial mode of the speed benchmark: the notebook as written (a), the notebook with metrics
only in evaluation (b) and our training run (c), each in its own process (peak memory is per
process) on the same data and hyperparameters:

    python -m experiments.benchmarks.trial --variant c --json out.json [overrides]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from experiments.benchmarks.common import TEST_100, peak_rss_gb
from experiments.cli.compose import compose_run

NOTEBOOK_SIZE = [
    "data.synthetic.n_users=60000", "data.synthetic.n_items=4600",
    "data.synthetic.n_interactions=225000", "data.val_fraction=0.1",
    "data.test_fraction=0.0889", "model.embedding_dim=32", "optimizer=adagrad",
    "optimizer.learning_rate=0.1", "train.batch_size=8192", "train.epochs=10",
    "model.logq_correction=false", "train.early_stopping_patience=null",
    "model.user_tower=id",  # the notebook's towers: the speed comparison is on the same model
]


def run_variant(variant: str, overrides: list[str]) -> dict[str, float]:
    """One variant in this process, from prepared data in memory to test metrics."""
    from recsys.cache import load_prepared
    from recsys.prepare import TEST, TRAIN, as_strings

    _, config = compose_run([*NOTEBOOK_SIZE, *overrides])
    prepared, _ = load_prepared(config.data)
    start = time.perf_counter()  # data ready
    if variant == "c":
        from recsys.training import run

        result = run(config, prepared=prepared)
        out = {"epoch_seconds": [h["epoch_seconds"] for h in result.history],
               **{k: v for k, v in result.metrics.items() if k.startswith("test_")},
               "popularity_test_top_100": result.popularity[TEST_100]}
    else:
        from experiments.benchmarks.notebook_recipe import train_and_evaluate

        # The whole training pool: the benchmark compares at sample_fraction 1.
        train_rows = prepared.split == TRAIN
        test_rows = prepared.split == TEST
        users = as_strings(prepared.user_ids).astype(str)
        items = as_strings(prepared.item_ids).astype(str)

        def strings(rows: np.ndarray) -> dict[str, np.ndarray]:
            return {"userId": users[prepared.user[rows]], "productId": items[prepared.item[rows]]}

        # As in the notebook: the user vocabulary is every user id of the data set.
        out = train_and_evaluate(
            strings(train_rows), strings(test_rows), np.unique(users), items,
            config.model.embedding_dim, config.optimizer.learning_rate, config.train.batch_size,
            config.train.epochs, metrics_in_training=variant == "a", seed=config.train.seed)
    out["trial_seconds"] = time.perf_counter() - start
    out["peak_gb"] = peak_rss_gb()
    return out


def trial_table(overrides: list[str]) -> str:
    results = {}
    for variant in ("a", "b", "c"):
        with tempfile.NamedTemporaryFile(suffix=".json") as fh:
            subprocess.run([sys.executable, "-m", "experiments.benchmarks.trial", "--variant", variant,
                            "--json", fh.name, *overrides], check=True)
            results[variant] = json.loads(Path(fh.name).read_text())
    names = {"a": "(a) notebook as written", "b": "(b) notebook, metrics only in eval",
             "c": "(c) recsys-sweep"}
    lines = [f"{'variant':<36} {'s/epoch':>8} {'s/trial':>8} {'peak GB':>8} {'test top-100':>13}"]
    for v, r in results.items():
        epochs = r["epoch_seconds"]
        steady = float(np.mean(epochs[1:] or epochs))
        lines.append(f"{names[v]:<36} {steady:>8.2f} {r['trial_seconds']:>8.1f} "
                     f"{r['peak_gb']:>8.2f} {r[TEST_100]:>13.4f}")
    a, b, c = results["a"], results["b"], results["c"]
    lines.append(f"{'popularity baseline':<36} {'':>8} {'':>8} {'':>8} "
                 f"{c['popularity_test_top_100']:>13.4f}")
    lines.append(f"ratios per whole trial: (a)/(c) = {a['trial_seconds'] / c['trial_seconds']:.1f}x, "
                 f"(b)/(c) = {b['trial_seconds'] / c['trial_seconds']:.1f}x; s/epoch excludes the "
                 "first (compilation) epoch")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.benchmarks.trial")
    parser.add_argument("--variant", choices=("a", "b", "c"), required=True)
    parser.add_argument("--json", required=True)
    args, overrides = parser.parse_known_args(argv)
    Path(args.json).write_text(json.dumps(run_variant(args.variant, overrides)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

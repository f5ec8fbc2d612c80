"""Speed benchmark, side by side in one invocation; prints tables.

    python -m experiments.benchmark                  # trial: notebook (a), (b) vs ours (c)
    python -m experiments.benchmark --mode load      # 7.8M-row load + prepare vs the notebook's
    python -m experiments.benchmark --mode pruning   # default study: no pruner vs pruners
    python -m experiments.benchmark --mode search [--movielens PATH] [--amazon PATH]
                                                     # popularity, notebook, fixed recipe, study
    python -m experiments.benchmark --mode knobs [--movielens PATH] [--amazon PATH]
                                                     # one change at a time from the fixed recipe
    OPTUNA_STORAGE=postgresql+psycopg://... python -m experiments.benchmark --mode soak
                                                     # 2 commands x 2 workers, kills, SIGINT
    python -m experiments.benchmark --mode all [hydra overrides for the data/model/train]

Trial mode runs each variant in its own process (peak memory is per process) on the same data
and hyperparameters, by default the synthetic generator at the notebook's size (~180k train /
20k test pairs, 4.6k items, emb 32, Adagrad 0.1, batch 8192, 10 epochs):
  (a) the notebook as written: StringLookup towers, FactorizedTopK on every training batch,
      model.fit + model.evaluate;
  (b) the same with the TFRS maintainers' advice, compute_metrics=not training;
  (c) our training run (recsys.training.run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from experiments.common import compose_config, job_config, run_config

NOTEBOOK_SIZE = [
    "data.synthetic.n_users=60000", "data.synthetic.n_items=4600",
    "data.synthetic.n_interactions=225000", "data.val_fraction=0.1",
    "data.test_fraction=0.0889", "model.embedding_dim=32", "optimizer=adagrad",
    "optimizer.learning_rate=0.1", "train.batch_size=8192", "train.epochs=10",
    "model.logq_correction=false", "train.early_stopping_patience=null",
]


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def run_variant(variant: str, overrides: list[str]) -> dict[str, float]:
    """One variant in this process, from prepared data in memory to test metrics."""
    from recsys.cache import load_prepared
    from recsys.prepare import TEST, TRAIN, as_strings

    config = run_config(job_config(compose_config("train", [*NOTEBOOK_SIZE, *overrides])), None)
    prepared, _ = load_prepared(config.data)
    start = time.perf_counter()  # data ready
    if variant == "c":
        from recsys.training import run

        result = run(config, prepared=prepared)
        out = {"epoch_seconds": [h["epoch_seconds"] for h in result.history],
               **{k: v for k, v in result.metrics.items() if k.startswith("test_")},
               "popularity_test_top_100": result.popularity["test_top_100"]}
    else:
        from experiments.notebook_recipe import train_and_evaluate

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
            subprocess.run([sys.executable, "-m", "experiments.benchmark", "--variant", variant,
                            "--json", fh.name, *overrides], check=True)
            results[variant] = json.loads(Path(fh.name).read_text())
    names = {"a": "(a) notebook as written", "b": "(b) notebook, metrics only in eval",
             "c": "(c) recsys-sweep"}
    lines = [f"{'variant':<36} {'s/epoch':>8} {'s/trial':>8} {'peak GB':>8} {'test top-100':>13}"]
    for v, r in results.items():
        epochs = r["epoch_seconds"]
        steady = float(np.mean(epochs[1:] or epochs))
        lines.append(f"{names[v]:<36} {steady:>8.2f} {r['trial_seconds']:>8.1f} "
                     f"{r['peak_gb']:>8.2f} {r['test_top_100']:>13.4f}")
    a, b, c = results["a"], results["b"], results["c"]
    lines.append(f"{'popularity baseline':<36} {'':>8} {'':>8} {'':>8} "
                 f"{c['popularity_test_top_100']:>13.4f}")
    lines.append(f"ratios per whole trial: (a)/(c) = {a['trial_seconds'] / c['trial_seconds']:.1f}x, "
                 f"(b)/(c) = {b['trial_seconds'] / c['trial_seconds']:.1f}x; s/epoch excludes the "
                 "first (compilation) epoch")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.benchmark",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("trial", "load", "pruning", "search", "knobs", "soak", "all"),
                        default="trial")
    parser.add_argument("--variant", choices=("a", "b", "c"), help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=7_800_000, help="load mode: rows to generate")
    parser.add_argument("--trials", type=int, default=None,
                        help="pruning mode: trials per study (20); search mode: search.n_trials "
                             "(default: the default study's)")
    parser.add_argument("--movielens", action="append", default=[], metavar="PATH",
                        help="search mode: a MovieLens ratings.csv (header userId,movieId,...)")
    parser.add_argument("--amazon", action="append", default=[], metavar="PATH",
                        help="search mode: an Amazon-layout ratings CSV (no header)")
    parser.add_argument("--dataset", action="append", default=[], metavar="'LABEL: OVERRIDES'",
                        help="search mode: any data set as Hydra overrides, e.g. "
                             "'ml-100k: data=movielens_100k data.path=/data/u.data'")
    parser.add_argument("--pruners", default=None,
                        help="pruning mode: comma-separated subset of none, default, "
                             "'median no warm-up', 'median warm-up 2', hyperband (the first "
                             "is the reference for the epoch share)")
    parser.add_argument("--variants", default=None,
                        help="knobs mode: comma-separated subset of the variant names")
    parser.add_argument("--generated-rows", type=int, default=200_000,
                        help="search mode: rows of the Amazon-format synthetic file the "
                             "benchmark writes (0: leave it out)")
    parser.add_argument("--memory-trials", type=int, default=100,
                        help="soak mode: trials of the long-lived worker memory check (0: skip)")
    args, overrides = parser.parse_known_args(argv)
    if args.variant:
        Path(args.json).write_text(json.dumps(run_variant(args.variant, overrides)))
        return 0
    print(f"machine: {os.cpu_count()} cores, {platform_line()}", flush=True)
    if args.mode in ("trial", "all"):
        print(trial_table(overrides), flush=True)
    if args.mode in ("load", "all"):
        from experiments.benchmark_load import load_table

        print(load_table(args.rows), flush=True)
    if args.mode in ("pruning", "search", "knobs", "all"):
        from experiments.benchmark_search import default_data_sets

        data_sets = default_data_sets(args.generated_rows, args.movielens, args.amazon,
                                      args.dataset, bench_dir())
    if args.mode in ("pruning", "all"):
        from experiments.benchmark_pruning import pruning_table

        folder = Path(tempfile.mkdtemp(prefix="pruning.", dir=bench_dir()))
        print(pruning_table(data_sets, args.trials or 20, overrides, folder,
                            args.pruners.split(",") if args.pruners else None), flush=True)
    if args.mode in ("search", "all"):
        from experiments.benchmark_search import search_table

        folder = Path(tempfile.mkdtemp(prefix="search.", dir=bench_dir()))
        print(search_table(data_sets, overrides, args.trials, folder), flush=True)
    if args.mode in ("knobs", "all"):
        from experiments.benchmark_knobs import knobs_table

        print(knobs_table(data_sets, overrides,
                          args.variants.split(",") if args.variants else None), flush=True)
    if args.mode == "soak":  # not in `all`: it needs a PostgreSQL server
        from experiments.benchmark_soak import soak_table

        storage = os.environ.get("OPTUNA_STORAGE", "")
        if not storage.startswith(("postgresql", "mysql")):
            print("error: --mode soak needs OPTUNA_STORAGE set to a PostgreSQL (or MySQL) URL, "
                  "e.g. postgresql+psycopg://user:password@host:5432/db", file=sys.stderr)
            return 2
        folder = Path(tempfile.mkdtemp(prefix="soak.", dir=bench_dir())).resolve()
        print(soak_table(storage, folder, n_trials=args.trials or 40,
                         memory_trials=args.memory_trials), flush=True)
    return 0


def bench_dir() -> Path:
    path = Path("outputs") / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def platform_line() -> str:
    import platform

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"{platform.processor() or platform.machine()}, TensorFlow {tf.__version__}, " \
           f"{'GPU: ' + str(len(gpus)) if gpus else 'no GPU'}"


if __name__ == "__main__":
    sys.exit(main())

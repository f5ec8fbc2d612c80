"""Full-size cost of one trial on an Amazon-Electronics-shaped file (`--mode scale`):
prepare time (cold and cached), seconds per epoch at batch 8192 and 1024 beside the FLOP
estimate at this machine's measured matmul throughput, per-epoch validation on the subsample
vs every pair, final evaluation, peak memory and disk per trial; then a study estimate.

Each batch size trains in its own process (`--variant BATCH --json OUT`), so peak memory is
per trial."""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.benchmarks.load import amazon_shaped_csv

BATCHES = (8192, 1024)
DIM = 32
FLOP_PER_SCORE = 6  # forward + backward of the in-batch score matrix, multiply-adds x 2


def data_overrides(path: Path, cache: Path) -> list[str]:
    return ["data=amazon_electronics", f"data.path={path}", "data.min_item_ratings=5",
            f"data.cache_dir={cache}"]


def matmul_gflops(seconds: float = 3.0) -> float:
    """Float32 matmul throughput of this machine, at the shape of a training step's scores."""
    import tensorflow as tf

    a = tf.random.normal((8192, DIM))
    b = tf.random.normal((8192, DIM))
    step = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b, transpose_b=True)))
    step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step().numpy()
        n += 1
    return 2 * 8192 * 8192 * DIM * n / (time.perf_counter() - start) / 1e9


def step_table(n_users: int = 3_316_665, n_items: int = 96_364, batch: int = 1024,
               steps: int = 30) -> str:
    """Milliseconds per training step by optimizer on embedding tables of the full file's
    size (`--mode steps`): Keras's Adam rewrites every row of a table at every step."""
    import numpy as np
    import tensorflow as tf

    from recsys.config import ModelConfig, OptimizerConfig
    from recsys.model import TwoTowerModel
    from recsys.training import _make_train_step, make_optimizer

    rng = np.random.default_rng(0)
    users = tf.constant(rng.integers(0, n_users, batch), tf.int32)
    items = tf.constant(rng.integers(0, n_items, batch), tf.int32)
    lines = [f"steps: {n_users:,} users x {n_items:,} items, dim {DIM}, batch {batch}, XLA step, "
             f"{steps} steps after warm-up", f"{'optimizer':<24} {'ms/step':>8}"]
    for label, opt in (("adam", OptimizerConfig("adam", 0.003, lazy=False)),
                       ("adam, optimizer.lazy", OptimizerConfig("adam", 0.003, lazy=True)),
                       ("adagrad", OptimizerConfig("adagrad", 0.1))):
        model = TwoTowerModel(n_users, n_items, ModelConfig(embedding_dim=DIM),
                              rng.integers(1, 100, n_items), 0)
        step = _make_train_step(model, make_optimizer(opt), True, False)
        for _ in range(3):
            step(users, items).numpy()
        start = time.perf_counter()
        for _ in range(steps):
            step(users, items).numpy()
        lines.append(f"{label:<24} {(time.perf_counter() - start) / steps * 1000:>8.1f}")
    return "\n".join(lines)


def run_variant(batch: int, overrides: list[str], run_dir: Path) -> dict[str, float]:
    """One epoch at `batch` with the default validation subsample, then the final full
    evaluation, in this process."""
    from experiments.cli.compose import compose_run
    from recsys.cache import load_prepared
    from recsys.training import run

    _, config = compose_run([*overrides, f"train.batch_size={batch}", "train.epochs=1",
                             f"model.embedding_dim={DIM}", "eval.baselines=[]"], str(run_dir))
    prepared, _ = load_prepared(config.data)
    full = 0.0
    if batch == BATCHES[0]:  # per-epoch validation on every pair, for the comparison
        from recsys.evaluation import HeldOut, Ranker
        from recsys.training import select_training

        data = select_training(prepared, 1.0)
        ranker = Ranker(data.train_user, data.train_item, data.n_users, data.n_items,
                        data.item_counts, config.eval.exclude_seen)
        import numpy as np

        rng = np.random.default_rng(0)
        users = rng.normal(size=(data.n_users, DIM)).astype(np.float32)
        items = rng.normal(size=(data.n_items, DIM)).astype(np.float32)
        start = time.perf_counter()
        ranker.model_ranks(HeldOut(data.val_user, data.val_item), lambda u: users[u], items,
                           config.train.eval_batch_size)
        full = time.perf_counter() - start
    result = run(config, prepared=prepared)
    s, h = result.seconds, result.history[0]
    disk = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file())
    vectors = (run_dir / "vectors.npz").stat().st_size
    return {"epoch_seconds": h["epoch_seconds"], "val_epoch_seconds": h["eval_seconds"],
            "val_full_seconds": full, "final_val_seconds": s["final_val_ranks"],
            "final_test_seconds": s["final_test_ranks"], "final_eval_seconds": s["test_eval"],
            "train_pairs": result.data_stats["train"],
            "val_pairs": result.data_stats["validation"],
            "catalog": result.data_stats["catalog_items"], "users": result.data_stats["train_users"],
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "disk_mb": disk / 1e6, "vectors_mb": vectors / 1e6, "loss_path": result.loss_path}


def scale_table(rows: int, folder: Path) -> str:
    path = amazon_shaped_csv(rows, folder / f"amazon_shaped_{rows}.csv")
    cache = Path(tempfile.mkdtemp(prefix="scale-cache.", dir=folder))
    runs = Path(tempfile.mkdtemp(prefix="scale-runs.", dir=folder))
    overrides = data_overrides(path, cache)
    try:
        from experiments.cli.compose import compose_run
        from recsys.cache import load_prepared

        _, config = compose_run(overrides)
        start = time.perf_counter()
        load_prepared(config.data)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        load_prepared(config.data)
        cached = time.perf_counter() - start
        gflops = matmul_gflops()
        results = {}
        for batch in BATCHES:
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                subprocess.run([sys.executable, "-m", "experiments.benchmarks.scale", "--variant",
                                str(batch), "--json", out.name, "--run-dir",
                                str(runs / str(batch)), *overrides], check=True)
                results[batch] = json.loads(Path(out.name).read_text())
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(runs, ignore_errors=True)
    first = results[BATCHES[0]]
    pairs = first["train_pairs"]
    lines = [f"scale: {rows:,} rows -> {pairs:,} training pairs, {first['val_pairs']:,} "
             f"validation pairs, {first['catalog']:,} catalog items, {first['users']:,} users; "
             f"dim {DIM}; matmul {gflops:.1f} GFLOP/s",
             f"{'measure':<52} {'value':>10} {'target':>10}",
             f"{'prepare, cold (parse, filter, split, cache) s':<52} {cold:>10.1f}",
             f"{'prepare, cached s':<52} {cached:>10.2f}"]
    for batch in BATCHES:
        r = results[batch]
        flops = pairs * batch * DIM * FLOP_PER_SCORE
        predicted = flops / (gflops * 1e9)
        target = "<= 1.5x" if batch == BATCHES[0] else ""
        lines += [f"{f'epoch s, batch {batch} ' + '(' + r['loss_path'] + ' loss)':<52} "
                  f"{r['epoch_seconds']:>10.1f}",
                  f"{'  FLOP estimate s (pairs x batch x dim x 6)':<52} {predicted:>10.1f}",
                  f"{'  measured / estimate':<52} {r['epoch_seconds'] / predicted:>9.2f}x "
                  f"{target:>10}"]
    lines += [f"{'per-epoch validation s, subsample (train.val_subsample)':<52} "
              f"{first['val_epoch_seconds']:>10.2f} {'<= 5':>10}",
              f"{'per-epoch validation s, every pair':<52} {first['val_full_seconds']:>10.1f}",
              f"{'final evaluation s (every val + test pair, intervals)':<52} "
              f"{first['final_eval_seconds']:>10.1f}",
              f"{'peak memory of one trial GB (batch 8192 / 1024)':<52} "
              f"{first['peak_gb']:>5.1f}/{results[BATCHES[1]]['peak_gb']:<4.1f} {'<= 6':>10}",
              f"{'disk of a trial that keeps vectors MB (float32)':<52} {first['disk_mb']:>10.0f}",
              f"{'disk of a trial without vectors MB (search.keep_vectors)':<52} "
              f"{first['disk_mb'] - first['vectors_mb']:>10.1f} {'<= 50':>10}"]
    # A 30-trial study: the trials of the default space train ~8 epochs on average before
    # early stopping or pruning (README: default study on the benchmark sets); batch sizes
    # 256..8192 average ~2.7k: between the two measured points.
    small = results[BATCHES[1]]
    per_epoch = small["epoch_seconds"] * 2.7 + small["val_epoch_seconds"]
    trial = 8 * per_epoch + small["final_eval_seconds"]
    folder_gb = (3 * first["disk_mb"] + 27 * (first["disk_mb"] - first["vectors_mb"])) / 1e3
    lines += [f"{'estimate: one default-space trial s (8 epochs)':<52} {trial:>10.0f}",
              f"{'estimate: 30-trial default study h (2 cores)':<52} "
              f"{(30 * trial + cached * 30) / 3600:>10.1f} {'<= 8':>10}",
              f"{'estimate: 30-trial study folder GB (3 keep vectors)':<52} {folder_gb:>10.2f} "
              f"{'<= 2':>10}",
              "estimate: 8 epochs a trial and a mean batch 2.7x the 1024 point's cost per "
              "epoch (the default space's batch choices); not a measured study"]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.benchmarks.scale")
    parser.add_argument("--variant", type=int, required=True)
    parser.add_argument("--json", required=True)
    parser.add_argument("--run-dir", required=True)
    args, overrides = parser.parse_known_args(argv)
    from experiments.cli.console import quiet_tensorflow

    quiet_tensorflow()
    result = run_variant(args.variant, overrides, Path(args.run_dir))
    Path(args.json).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

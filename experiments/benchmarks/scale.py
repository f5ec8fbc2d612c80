"""Full-size cost of one trial on an Amazon-Electronics-shaped file (`--mode scale`):
prepare time (cold and cached), seconds per epoch at batch 8192 and 1024 beside the FLOP
estimate at this machine's measured matmul throughput, an epoch on the smallest multi-fidelity
rung, per-epoch validation on the subsample vs every pair, final evaluation, peak memory and
disk per trial; then an estimate of a 30-trial default study, with and without the rungs.

Each variant trains in its own process (`--variant BATCH[@SCALE] --json OUT`), so peak memory
is per trial."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.benchmarks.common import peak_rss_gb
from experiments.benchmarks.load import amazon_shaped_csv

BATCHES = (8192, 1024)
SPACE_BATCHES = (256, 512, 1024, 2048, 4096, 8192)  # the default space's batch choices
EPOCHS = 8  # assumed epochs per trial before early stopping (the default study's mean)
N_TRIALS = 30
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

    from recsys.config import AdagradConfig, AdamConfig, ModelConfig
    from recsys.model import TwoTowerModel
    from recsys.optim import make_optimizer
    from recsys.training import make_train_step

    rng = np.random.default_rng(0)
    users = tf.constant(rng.integers(0, n_users, batch), tf.int32)
    items = tf.constant(rng.integers(0, n_items, batch), tf.int32)
    lines = [f"steps: {n_users:,} users x {n_items:,} items, dim {DIM}, batch {batch}, XLA step, "
             f"{steps} steps after warm-up", f"{'optimizer':<24} {'ms/step':>8}"]
    for label, opt in (("adam", AdamConfig(learning_rate=0.003, lazy=False)),
                       ("adam, optimizer.lazy", AdamConfig(learning_rate=0.003, lazy=True)),
                       ("adagrad", AdagradConfig(learning_rate=0.1))):
        model = TwoTowerModel(n_users, n_items, ModelConfig(embedding_dim=DIM, user_tower="id"),
                              rng.integers(1, 100, n_items), 0)
        step = make_train_step(model, make_optimizer(opt), True, False)
        seed = tf.constant([0, 0], tf.int32)
        for _ in range(3):
            step(users, items, None, seed).numpy()
        start = time.perf_counter()
        for _ in range(steps):
            step(users, items, None, seed).numpy()
        lines.append(f"{label:<24} {(time.perf_counter() - start) / steps * 1000:>8.1f}")
    return "\n".join(lines)


def run_variant(batch: int, scale: float, overrides: list[str], run_dir: Path,
                ) -> dict[str, float]:
    """One epoch at `batch` on `scale` of the data with the default validation subsample,
    then the final full evaluation, in this process."""
    from experiments.cli.compose import compose_run
    from recsys.cache import load_prepared
    from recsys.training import fit, make_setup, run

    _, config = compose_run([*overrides, f"train.batch_size={batch}", "train.epochs=1",
                             f"data.sample_fraction={scale!r}",
                             f"model.embedding_dim={DIM}", "eval.baselines=[]"])
    prepared, _ = load_prepared(config.data)
    full = 0.0
    if batch == BATCHES[0] and scale == 1.0:  # per-epoch validation on every pair, for the comparison
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
    if scale != 1.0:  # a cheap rung, as a multi-fidelity study runs it: fit alone
        start = time.perf_counter()
        setup = make_setup(config, prepared)
        data_seconds = time.perf_counter() - start
        h = fit(config, setup)[0][0]
        return {"epoch_seconds": h["epoch_seconds"], "val_epoch_seconds": h["eval_seconds"],
                "data_seconds": data_seconds, "peak_gb": peak_rss_gb()}
    result = run(config, run_dir, prepared=prepared)
    s, h = result.seconds, result.history[0]
    disk = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file())
    vectors = (run_dir / "vectors.npz").stat().st_size
    return {"epoch_seconds": h["epoch_seconds"], "val_epoch_seconds": h["eval_seconds"],
            "val_full_seconds": full, "final_val_seconds": s["final_val_ranks"],
            "final_test_seconds": s["final_test_ranks"], "final_eval_seconds": s["test_eval"],
            "data_seconds": s["data"], "val_epoch_pairs": config.train.epoch_val_pairs(
                result.data_stats["catalog_items"]),
            "optimizer": config.optimizer.name + (" (lazy)" if config.optimizer.use_lazy(
                len(prepared.user_ids) + result.data_stats["catalog_items"]) else ""),
            "train_pairs": result.data_stats["train"],
            "val_pairs": result.data_stats["validation"],
            "catalog": result.data_stats["catalog_items"], "users": result.data_stats["train_users"],
            "peak_gb": peak_rss_gb(),
            "disk_mb": disk / 1e6, "vectors_mb": vectors / 1e6, "loss_path": result.loss_path,
            "history_mb": history_mb(config, prepared)}


def history_mb(config: Any, prepared: Any) -> float:
    """The history tower's table (each user's training items, as a training step reads them)."""
    if not config.model.uses_history:
        return 0.0
    from recsys.history import UserHistory
    from recsys.training import select_training

    data = select_training(prepared, 1.0)
    table = UserHistory(data.train_user, data.train_item, data.n_users,
                        config.model.history_max_len, 0)
    return (table.items.nbytes + table.counts.nbytes + table.start.nbytes) / 1e6


def asha_counts(rungs: int, factor: int, trend: float, repeats: int = 200) -> list[float]:
    """Mean number of a 30-trial study's trials that reach each rung under Optuna's
    SuccessiveHalvingPruner as the study uses it, for trial qualities drawn i.i.d.
    (`trend` 0) or improving by `trend` standard deviations per trial (a sampler that learns)."""
    import numpy as np
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    reached = np.zeros(rungs)
    for seed in range(repeats):
        rng = np.random.default_rng(seed)
        study = optuna.create_study(direction="maximize",
                                    pruner=optuna.pruners.SuccessiveHalvingPruner(
                                        min_resource=1, reduction_factor=factor))
        for number in range(N_TRIALS):
            trial, quality = study.ask(), rng.normal() + trend * number
            for rung in range(rungs):
                reached[rung] += 1
                if rung == rungs - 1:
                    study.tell(trial, quality)
                    break
                trial.report(quality, step=factor ** rung)
                if trial.should_prune():
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    break
    return list(reached / repeats)


def mean_epoch_seconds(pairs: int, measured: dict[int, float], columns: dict[int, int]) -> float:
    """An epoch's seconds averaged over the default space's batch sizes, from a fit of
    `steps x per-step cost + pairs x batch x per-score cost` to the two measured batches."""
    import numpy as np

    rows = [[pairs / b, pairs * columns[b]] for b in BATCHES]
    per_step, per_score = np.linalg.solve(np.array(rows), np.array([measured[b] for b in BATCHES]))
    per_step, per_score = max(per_step, 0.0), max(per_score, 0.0)
    return float(np.mean([pairs / b * per_step + pairs * columns[b] * per_score
                          for b in SPACE_BATCHES]))


def variant(folder: Path, overrides: list[str], batch: int, scale: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, "-m", "experiments.benchmarks.scale", "--variant",
                        str(batch), "--scale", repr(scale), "--json", out.name, "--run-dir",
                        str(folder / f"{batch}@{scale:.4f}"), *overrides], check=True)
        return json.loads(Path(out.name).read_text())


@dataclass
class Measured:
    """What scale mode measures on the generated file."""

    prepare_cold: float  # seconds: parse, filter, split, write the cache
    prepare_cached: float
    scales: list[float]  # the default study's rungs on this data
    gflops: float  # this machine's float32 matmul speed
    results: dict[int, dict[str, Any]]  # batch size -> one full-data trial's figures
    columns: dict[int, int]  # batch size -> the columns each row is scored against
    rung0: dict[str, Any] | None  # the smallest rung's epoch at BATCHES[1]


def scale_table(rows: int, folder: Path, extra: list[str] | None = None) -> str:
    measured = measure(rows, folder, extra or [])
    return "\n".join([*measured_rows(rows, measured), *study_estimate_rows(measured)])


def _row(label: str, value: str, target: str = "") -> str:
    return f"{label:<66} {value:>10} {target:>8}"


def measure(rows: int, folder: Path, extra: list[str]) -> Measured:
    from experiments.cli.compose import compose_run
    from experiments.sweeping.fidelity import rung_scales
    from experiments.sweeping.search_config import FidelityConfig
    from recsys.cache import load_prepared

    path = amazon_shaped_csv(rows, folder / f"amazon_shaped_{rows}.csv")
    cache = Path(tempfile.mkdtemp(prefix="scale-cache.", dir=folder))
    runs = Path(tempfile.mkdtemp(prefix="scale-runs.", dir=folder))
    overrides = [*data_overrides(path, cache), *extra]  # the caller's overrides last
    try:
        _, config = compose_run(overrides)
        start = time.perf_counter()
        prepared, _ = load_prepared(config.data)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        load_prepared(config.data)
        cached = time.perf_counter() - start
        scales = rung_scales(prepared.stats["train_pool"], FidelityConfig())
        columns = {b: config.step_columns(len(prepared.item_ids), b) for b in SPACE_BATCHES}
        del prepared
        gflops = matmul_gflops()
        results = {batch: variant(runs, overrides, batch, 1.0) for batch in BATCHES}
        rung0 = variant(runs, overrides, BATCHES[1], scales[0]) if len(scales) > 1 else None
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(runs, ignore_errors=True)
    return Measured(cold, cached, list(scales), gflops, results, columns, rung0)


def measured_rows(rows: int, m: Measured) -> list[str]:
    first, second = m.results[BATCHES[0]], m.results[BATCHES[1]]
    pairs = first["train_pairs"]
    lines = [f"scale: {rows:,} rows -> {pairs:,} training pairs, {first['val_pairs']:,} "
             f"validation pairs, {first['catalog']:,} catalog items, {first['users']:,} users; "
             f"dim {DIM}, {first['optimizer']}; matmul {m.gflops:.1f} GFLOP/s",
             _row("measure", "value", "target"),
             _row("prepare, cold (parse, filter, split, cache) s", f"{m.prepare_cold:.1f}"),
             _row("prepare, cached s", f"{m.prepare_cached:.2f}")]
    for batch in BATCHES:
        r = m.results[batch]
        predicted = pairs * m.columns[batch] * DIM * FLOP_PER_SCORE / (m.gflops * 1e9)
        lines += [_row(f"epoch s, batch {batch} ({r['loss_path']} loss)",
                       f"{r['epoch_seconds']:.1f}"),
                  _row("  FLOP estimate s (pairs x columns x dim x 6)", f"{predicted:.1f}"),
                  _row("  measured / estimate", f"{r['epoch_seconds'] / predicted:.2f}x",
                       "<= 1.5x" if batch == BATCHES[0] else "")]
    if m.rung0:
        share = m.scales[0]
        lines += [_row(f"epoch s, batch {BATCHES[1]}, smallest rung ({share:.3g} of the pairs)",
                       f"{m.rung0['epoch_seconds']:.1f}"),
                  _row("  / (all pairs' epoch x the rung's share)",
                       f"{m.rung0['epoch_seconds'] / (second['epoch_seconds'] * share):.2f}x")]
    return lines + [
        _row(f"per-epoch validation s, subsample ({first['val_epoch_pairs']:,} pairs)",
             f"{first['val_epoch_seconds']:.2f}", "<= 5"),
        _row("per-epoch validation s, every pair", f"{first['val_full_seconds']:.1f}"),
        _row("final evaluation s (every val + test pair, intervals)",
             f"{first['final_eval_seconds']:.1f}"),
        _row("history table MB (model.user_tower: history)", f"{first['history_mb']:.0f}"),
        _row("peak memory of one trial GB (batch 8192 / 1024)",
             f"{first['peak_gb']:.1f}/{second['peak_gb']:.1f}", "<= 6"),
        _row("disk of a trial that keeps vectors MB (float32)", f"{first['disk_mb']:.0f}"),
        _row("disk of a trial without vectors MB (search.keep_vectors)",
             f"{first['disk_mb'] - first['vectors_mb']:.1f}", "<= 50")]


def study_estimate_rows(m: Measured) -> list[str]:
    """The study: each trial trains EPOCHS epochs per rung at the default space's mean epoch
    cost (steps and scores scale with the rung's share of the pairs), validates each epoch on
    the subsample, and only trials on the last rung pay the final evaluation."""
    first = m.results[BATCHES[0]]
    epoch = mean_epoch_seconds(first["train_pairs"],
                               {b: m.results[b]["epoch_seconds"] for b in BATCHES}, m.columns)
    val, final, select = (first["val_epoch_seconds"], first["final_eval_seconds"],
                          first["data_seconds"])

    def rung_cost(share: float, last: bool) -> float:
        return select + EPOCHS * (share * epoch + val) + (final if last else 0.0)

    plain = N_TRIALS * rung_cost(1.0, True)
    lines = [_row(f"estimate: mean epoch s over batches {min(SPACE_BATCHES)}.."
                  f"{max(SPACE_BATCHES)}", f"{epoch:.0f}"),
             _row(f"estimate: {N_TRIALS}-trial study h, every trial on all pairs",
                  f"{plain / 3600:.1f}")]
    from experiments.sweeping.search_config import FidelityConfig

    factor = FidelityConfig().reduction_factor  # the default study's
    for label, trend in (("i.i.d. trials", 0.0), ("improving trials", 0.05)):
        counts = asha_counts(len(m.scales), factor, trend)
        hours = sum(n * rung_cost(share, r == len(m.scales) - 1)
                    for r, (n, share) in enumerate(zip(counts, m.scales, strict=True))) / 3600
        reach = "/".join(f"{n:.1f}" for n in counts)
        lines.append(_row(f"estimate: {N_TRIALS}-trial study h, {len(m.scales)} rungs "
                          f"({label}: {reach})", f"{hours:.1f}", "<= 8"))
    folder_gb = (3 * first["disk_mb"] + (N_TRIALS - 3) * (first["disk_mb"] - first["vectors_mb"])
                 ) / 1e3
    return lines + [
        _row(f"estimate: {N_TRIALS}-trial study folder GB (3 keep vectors)",
             f"{folder_gb:.2f}", "<= 2"),
        f"estimate: {EPOCHS} epochs per trial and rung (assumed, not measured), the mean "
        "epoch over the space's batch sizes from a per-step + per-score fit to the two "
        "measured batches; trials reaching each rung: Optuna's SuccessiveHalvingPruner "
        f"over 200 simulated {N_TRIALS}-trial studies (improving: +0.05 sd per trial)"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.benchmarks.scale")
    parser.add_argument("--variant", type=int, required=True)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--json", required=True)
    parser.add_argument("--run-dir", required=True)
    args, overrides = parser.parse_known_args(argv)
    from experiments.cli.console import quiet_tensorflow

    quiet_tensorflow()
    result = run_variant(args.variant, args.scale, overrides, Path(args.run_dir))
    Path(args.json).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

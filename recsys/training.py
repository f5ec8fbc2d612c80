"""One training run: prepared data -> model -> per-epoch validation -> test -> artefacts."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from recsys.baselines import cached_baselines, run_baselines
from recsys.cache import derived_file, load_prepared
from recsys.config import OptimizerConfig, RunConfig, TrainConfig
from recsys.errors import TrainingDiverged
from recsys.evaluation import HeldOut, Ranker, bootstrap_intervals, split_by_user, subsample
from recsys.events import RunWriter
from recsys.files import write_text_atomic
from recsys.history import UserHistory
from recsys.memory import check_fits
from recsys.metrics import ranking_metrics
from recsys.model import TwoTowerModel
from recsys.optim import LazyAdam
from recsys.prepare import PreparedData, select_training
from recsys.serving import VECTORS_FILE, save_vectors

DIVERGED_FACTOR = 100  # an epoch's mean loss this many times the first step's: diverged


@dataclass
class RunResult:
    """What a run returns: the metrics it selected on, the test report, timings and paths."""

    metrics: dict[str, float]  # val_top_k and test_top_k of the reported weights
    popularity: dict[str, float]  # the same metrics for the most-rated-items baseline
    intervals: dict[str, list[float]]  # 95% interval of each metric (bootstrap over users)
    baselines: dict[str, dict[str, Any]]  # popularity, item-kNN, EASE: metrics, intervals
    evaluation: dict[str, Any]  # the ranking rule: candidates, seen items, ties, intervals
    history: list[dict[str, float]]  # per epoch: loss, val_top_k, seconds
    epoch: int  # 1-based epoch whose weights the metrics describe
    epochs_run: int
    seconds: dict[str, float]
    loss_path: str  # "catalog" or "in_batch": how the (identical) loss was computed
    data_stats: dict[str, Any]
    run_dir: str | None
    write_error: str = ""  # why the run's files could not be written (the metrics stand)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def make_optimizer(cfg: OptimizerConfig, table_rows: int = 0) -> tf.keras.optimizers.Optimizer:
    """`table_rows`: users + items of the embedding tables (decides `lazy: auto`)."""
    if cfg.name == "adagrad":
        return tf.keras.optimizers.Adagrad(cfg.learning_rate,
                                           initial_accumulator_value=cfg.initial_accumulator_value)
    if cfg.name == "adam":
        if cfg.use_lazy(table_rows):
            return LazyAdam(cfg.learning_rate)
        return tf.keras.optimizers.Adam(cfg.learning_rate)
    return tf.keras.optimizers.SGD(cfg.learning_rate, momentum=cfg.momentum)


_threads_set = False


def configure_threads(cfg: TrainConfig) -> None:
    """Set TensorFlow's thread pools once per process (it refuses after the runtime starts)."""
    global _threads_set
    if _threads_set or cfg.threads <= 0:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(cfg.threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, cfg.threads))
    except RuntimeError:
        pass  # runtime already initialised in this process: keep its pools
    _threads_set = True


def run(cfg: RunConfig, callbacks: list[tf.keras.callbacks.Callback] | None = None,
        prepared: PreparedData | None = None, baseline_runs: bool = True,
        final_evaluation: bool = True, note: Callable[[str], None] | None = None) -> RunResult:
    """Train and evaluate one configuration; write metrics.json, vectors.npz and TensorBoard
    events to run_dir (when set). `prepared` skips loading when the caller already has the data.

    Callbacks see `on_epoch_end(epoch, logs)` with `loss` and `val_top_k` in logs; setting
    `model.stop_training = True` (or raising) ends training early. `baseline_runs`: write the
    baselines as TensorBoard runs of their own beside the run's (a study writes them once).
    `note(text)`: progress lines for the console (the baselines' first computation).
    `final_evaluation=False` (a cheap rung of a multi-fidelity study): no baselines, no final
    ranking of every pair; the metrics are the kept epoch's on the per-epoch subsample.
    """
    t0 = time.perf_counter()
    configure_threads(cfg.train)
    if prepared is None:
        prepared, cache_info = load_prepared(cfg.data)
    else:
        cache_info = {"cache": "given"}
    data = select_training(prepared, cfg.data.sample_fraction)
    t_data = time.perf_counter()

    ks = tuple(sorted(cfg.train.top_ks))
    tf.keras.utils.set_random_seed(cfg.train.seed)
    cfg.check_data(data.n_users, data.n_items)
    check_fits(cfg, data.n_users, data.n_items)
    model = TwoTowerModel(data.n_users, data.n_items, cfg.model, data.item_counts, cfg.train.seed)
    user_history = UserHistory(data.train_user, data.train_item, data.n_users,
                          cfg.model.history_max_len, cfg.train.seed) \
        if cfg.model.uses_history else None
    queries = QueryEncoder(model, user_history, cfg.train.eval_batch_size)
    # `lazy: auto` decides on the whole data set's users, so every sample fraction of it (the
    # rungs of a multi-fidelity study) trains with the same optimizer.
    model.optimizer = make_optimizer(cfg.optimizer, len(prepared.user_ids) + data.n_items)
    # Catalog columns beat in-batch columns whenever the catalog is no larger than a batch.
    use_catalog_loss = cfg.train.fast_loss and data.n_items <= cfg.train.batch_size
    train_step = make_train_step(model, model.optimizer, cfg.train.jit_compile,
                                  use_catalog_loss)

    ranker = Ranker(data.train_user, data.train_item, data.n_users, data.n_items,
                    data.item_counts, cfg.eval.exclude_seen)
    val, test = HeldOut(data.val_user, data.val_item), HeldOut(data.test_user, data.test_item)
    # The per-epoch signal: a fixed sample (seeded by the data, so every trial of a study
    # ranks the same pairs); the reported numbers come from every pair, once, at the end.
    val_epoch = subsample(val, cfg.train.epoch_val_pairs(data.n_items), cfg.data.seed)
    def compute_baselines() -> dict:
        if note and cfg.eval.baselines:  # minutes on a large catalog: say so first
            note(f"computing {' and '.join(cfg.eval.baselines)} once for this data set "
                 f"({data.n_items:,} items; cached for later runs and trials)...")
        return run_baselines(ranker, val, test, ks, cfg.eval.baselines,
                             cfg.eval.baseline_max_items, cfg.eval.knn_neighbors,
                             cfg.eval.ease_lambdas, cfg.eval.interval_resamples,
                             cfg.train.monitor_metric)

    baselines = {} if not final_evaluation else cached_baselines(
        derived_file(cfg.data, "baselines", {"eval": asdict(cfg.eval), "ks": ks, "version": 2,
                                             "monitor": cfg.train.monitor_metric,
                                             "sample_fraction": cfg.data.sample_fraction}),
        compute_baselines)
    t_baselines = time.perf_counter() - t_data  # booked apart from training
    t_data = time.perf_counter()
    pop = baselines["popularity"].metrics if baselines else {}
    writer = RunWriter(cfg.run_dir, ks, baseline_runs) if cfg.run_dir else None
    rng = np.random.default_rng(cfg.train.seed)
    n, bs = len(data.train_user), cfg.train.batch_size
    callback_list = tf.keras.callbacks.CallbackList(callbacks or [], model=model,
                                                    epochs=cfg.train.epochs,
                                                    steps=math.ceil(n / bs))
    history: list[dict[str, float]] = []
    best_score, best_epoch, best_weights, since_best = -math.inf, 0, None, 0
    first_loss: float | None = None
    monitor = cfg.train.monitor_metric
    model.stop_training = False
    try:
        callback_list.on_train_begin()
        for epoch in range(1, cfg.train.epochs + 1):
            callback_list.on_epoch_begin(epoch - 1)
            start = time.perf_counter()
            perm = rng.permutation(n)
            total = tf.zeros((), tf.float32)
            for step, s in enumerate(range(0, n, bs)):
                idx = perm[s:s + bs]
                callback_list.on_train_batch_begin(step)  # no-ops unless a callback has them
                batch_users = data.train_user[idx]
                step_loss = train_step(
                    tf.constant(batch_users), tf.constant(data.train_item[idx]),
                    None if user_history is None else tf.constant(user_history.rows(batch_users, rng)),
                    tf.constant([cfg.train.seed, (epoch << 20) + step], tf.int32))
                callback_list.on_train_batch_end(step)
                if first_loss is None:  # the untrained model's loss: the scale to judge by
                    first_loss = float(step_loss)
                total += step_loss
            loss = float(total) / math.ceil(n / bs)
            train_seconds = time.perf_counter() - start
            # Not only inf/NaN: a huge learning rate can leave a finite loss ~1e16 whose
            # metrics are noise. Training lowers the loss; far above the start it diverged.
            if not math.isfinite(loss) or loss > DIVERGED_FACTOR * max(first_loss or 0, 1e-3):
                scale = "" if not math.isfinite(loss) else (
                    f", more than {DIVERGED_FACTOR}x the untrained model's {first_loss:.4g}")
                raise TrainingDiverged(
                    f"training loss became {loss:.4g} at epoch {epoch}{scale}: the run diverged "
                    f"(too high a learning rate is the usual cause: optimizer.learning_rate="
                    f"{cfg.optimizer.learning_rate}; a very low model.temperature="
                    f"{cfg.model.temperature:g} or a large model.l2 can also do it)")
            val_metrics = ranking_metrics(
                _ranks(queries, model, ranker, val_epoch, cfg.train.eval_batch_size), ks, "val_")
            logs = {"loss": loss, **val_metrics, "epoch_seconds": train_seconds,
                    "eval_seconds": time.perf_counter() - start - train_seconds}
            history.append({"epoch": epoch, **logs})
            if writer:
                writer.epoch(epoch, logs, {n: b.metrics for n, b in baselines.items()})
            if logs[monitor] > best_score:
                best_score, best_epoch, since_best = logs[monitor], epoch, 0
                if cfg.train.early_stopping_patience:
                    best_weights = model.get_weights()
            else:
                since_best += 1
            callback_list.on_epoch_end(epoch - 1, logs)
            if model.stop_training:
                break
            if cfg.train.early_stopping_patience and since_best >= cfg.train.early_stopping_patience:
                break
        callback_list.on_train_end()
    except BaseException:
        if writer:
            writer.close()
        raise
    t_train = time.perf_counter()

    reported_epoch = len(history)
    if best_weights is not None and best_epoch != reported_epoch:
        model.set_weights(best_weights)
        reported_epoch = best_epoch
    if not final_evaluation:
        if writer:
            writer.close()
        return _rung_result(cfg, history, reported_epoch, data.n_items, {
            "data": t_data - t0, "train": t_train - t_data, "total": time.perf_counter() - t0})
    val_ranks = _ranks(queries, model, ranker, val, cfg.train.eval_batch_size)
    val_metrics = ranking_metrics(val_ranks, ks, "val_")  # every pair (see val_subsample)
    t_val = time.perf_counter()
    test_ranks = _ranks(queries, model, ranker, test, cfg.train.eval_batch_size)
    test_metrics = ranking_metrics(test_ranks, ks, "test_")
    t_test = time.perf_counter()
    resamples = cfg.eval.interval_resamples
    intervals = {**bootstrap_intervals(val_ranks, val.users, ks, "val_", resamples),
                 **bootstrap_intervals(test_ranks, test.users, ks, "test_", resamples)}
    by_user = {group: {**split_by_user(val_ranks, val.users, ks, "val_", group),
                       **split_by_user(test_ranks, test.users, ks, "test_", group)}
               for group in ("known", "unknown")}
    t_end = time.perf_counter()

    epoch_times = [h["epoch_seconds"] for h in history]
    result = RunResult(
        metrics={**val_metrics, **test_metrics},
        popularity=pop,
        intervals=intervals,
        baselines={name: asdict(b) for name, b in baselines.items()},
        evaluation={**evaluation_info(cfg, data.n_items), "by_user": by_user},
        history=history,
        epoch=reported_epoch,
        epochs_run=len(history),
        seconds={
            "data": t_data - t0 - t_baselines,
            "baselines": t_baselines,
            "train": t_train - t_data,
            "test_eval": t_end - t_train,  # final validation and test ranks, intervals
            "final_val_ranks": t_val - t_train,
            "final_test_ranks": t_test - t_val,
            "total": t_end - t0,
            "per_epoch_mean": float(np.mean(epoch_times)),
            # The first epoch includes tracing and XLA compilation.
            "per_epoch_after_first": float(np.mean(epoch_times[1:] or epoch_times)),
        },
        loss_path="catalog" if use_catalog_loss else "in_batch",
        data_stats={**data.stats, "cache": cache_info.get("cache")},
        run_dir=cfg.run_dir,
    )
    try:  # every file is written whole or not at all (temp file + rename)
        if writer:
            writer.final(reported_epoch, result.metrics)
            writer.close()
        if cfg.run_dir:
            write_json(Path(cfg.run_dir) / "metrics.json", result.to_json())
        if cfg.run_dir and cfg.train.save_vectors:
            save_vectors(queries, model, data, Path(cfg.run_dir) / VECTORS_FILE,
                         cfg.train.vectors_dtype)
    except (OSError, tf.errors.OpError) as exc:  # a full disk: the numbers are still here
        result.write_error = (f"cannot write into {cfg.run_dir!r} "
                              f"({getattr(exc, 'strerror', None) or type(exc).__name__})")
    return result


def _rung_result(cfg: RunConfig, history: list[dict[str, float]], epoch: int, n_items: int,
                 seconds: dict[str, float]) -> RunResult:
    """A run without its final evaluation: the kept epoch's per-epoch (subsample) metrics."""
    kept = history[epoch - 1]
    return RunResult(
        metrics={k: v for k, v in kept.items() if k.startswith("val_top_")}, popularity={},
        intervals={}, baselines={}, evaluation=evaluation_info(cfg, n_items), history=history,
        epoch=epoch, epochs_run=len(history), seconds=seconds, loss_path="", data_stats={},
        run_dir=None)


def make_train_step(model: TwoTowerModel, optimizer: tf.keras.optimizers.Optimizer,
                     jit_compile: bool, catalog_loss: bool):
    """One optimizer step on a batch: `train_step(users, items, history, seed) -> loss`.

    A history tower's step runs without XLA: its [batch, width] rows change width with the
    batch (most users have a few items), which would recompile an XLA step per width, and at
    one fixed width XLA was no faster (1.40 vs 1.43 s an epoch on the embedded set; 1.24 s
    without XLA at the batch's own width)."""
    @tf.function(jit_compile=jit_compile and model.history_items is None,
                 reduce_retracing=True)
    def train_step(users: tf.Tensor, items: tf.Tensor, history: tf.Tensor | None,
                   seed: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            if catalog_loss:
                loss = model.catalog_loss(users, items, history, seed)
            else:
                loss = model.compute_loss((users, items, history, seed), training=True)
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    return train_step


class QueryEncoder:
    """The user tower's output for any users (their training histories looked up): each
    distinct user once, in chunks of users with similar history lengths, so that a chunk's
    [users, width, dim] gather is only as wide as its own users need."""

    def __init__(self, model: TwoTowerModel, history: UserHistory | None, chunk: int) -> None:
        self.model, self.history, self.chunk = model, history, chunk

    def __call__(self, users: np.ndarray) -> tf.Tensor:
        users = np.asarray(users, np.int32)
        if self.history is None:
            parts = [self.model.user_vectors(tf.constant(users[s:s + self.chunk]))
                     for s in range(0, len(users), self.chunk)]
            return tf.concat(parts, axis=0) if parts else tf.zeros([0, 1])
        unique, inverse = np.unique(users, return_inverse=True)
        order = unique[np.argsort(self.history.counts[unique], kind="stable")]
        parts, budget = [], 1 << 22  # history cells per chunk
        start = 0
        while start < len(order):
            width = min(self.history.serve_len, max(1, int(self.history.counts[
                order[min(start + self.chunk, len(order)) - 1]])))
            size = max(1, min(self.chunk, budget // width))
            part = order[start:start + size]
            parts.append(self.model.user_vectors(tf.constant(part),
                                                 tf.constant(self.history.rows(part))))
            start += size
        vectors = tf.concat(parts, axis=0)
        place = np.empty(len(order), np.int64)
        place[np.searchsorted(unique, order)] = np.arange(len(order))
        return tf.gather(vectors, place[inverse])


def _ranks(queries: QueryEncoder, model: TwoTowerModel, ranker: Ranker, held_out: HeldOut,
           batch_size: int) -> np.ndarray:
    """Exact ranks of the system the export serves: the model for users it was trained on,
    the popularity list for users without training pairs (index 0)."""
    return ranker.model_ranks(held_out, queries, model.item_embeddings(), batch_size)


def evaluation_info(cfg: RunConfig, n_items: int) -> dict[str, Any]:
    """How the numbers were computed, for every output that shows them."""
    return {"candidates": f"all {n_items} catalog items",
            "exclude_seen": cfg.eval.exclude_seen,
            "ties": "broken by one fixed random item order (the same for every scorer)",
            "intervals": (f"95% percentile Poisson bootstrap over users, "
                          f"{cfg.eval.interval_resamples} resamples"
                          if cfg.eval.interval_resamples else "off")}


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (temp file + rename): a crash never leaves half a file."""
    write_text_atomic(path, json.dumps(payload, indent=2, default=float))

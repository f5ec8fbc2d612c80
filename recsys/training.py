"""One training run, as steps a reader can name: `make_setup` (data, model, step, ranking rule),
`evaluate_baselines`, `fit` (epochs, divergence, early stopping), `evaluate` (every held-out
pair, intervals), `save_run` (files). `run` calls them in that order."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from recsys.baselines import cached_baselines, run_baselines
from recsys.cache import derived_file, load_prepared
from recsys.config import RunConfig, TrainConfig
from recsys.errors import TrainingDiverged
from recsys.evaluation import HeldOut, Ranker, bootstrap_intervals, split_by_user, subsample
from recsys.events import RunWriter
from recsys.files import METRICS_FILE, write_text_atomic
from recsys.history import UserHistory
from recsys.memory import check_fits
from recsys.metrics import Metric, ranking_metrics
from recsys.model import TwoTowerModel
from recsys.optim import make_optimizer
from recsys.prepare import PreparedData, TrialData, most_seen_count, select_training
from recsys.queries import QueryEncoder, model_ranks
from recsys.sequences import UserSequences, training_sequences
from recsys.serving import VECTORS_FILE, save_vectors
from recsys.significance import compare

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
    loss_path: str  # "catalog", "in_batch" or "in_batch groups of N": how the loss was computed
    data_stats: dict[str, Any]
    run_dir: str | None
    write_error: str = ""  # why the run's files could not be written (the metrics stand)
    # The model against each baseline on the test pairs, paired by user (significance.py)
    comparison: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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


def run(cfg: RunConfig, run_dir: str | Path | None = None,
        callbacks: list[tf.keras.callbacks.Callback] | None = None,
        prepared: PreparedData | None = None, baseline_curves: bool = True,
        progress: Callable[[str], None] | None = None) -> RunResult:
    """Train and evaluate one configuration; write metrics.json, vectors.npz and TensorBoard
    events to `run_dir` (None: no files). `prepared` skips loading when the caller already has
    the data.

    Callbacks see `on_epoch_end(epoch, logs)` with `loss` and `val_top_k` in logs; setting
    `model.stop_training = True` (or raising) ends training early. `baseline_curves`: write
    each baseline as a flat TensorBoard curve of its own under the run's folder (False when
    the caller writes them once for many runs). `progress(text)`: progress lines for the console
    (the baselines' first computation). Training alone, without the final evaluation and
    files: `fit(cfg, make_setup(cfg, prepared))`.
    """
    t0 = time.perf_counter()
    cache_info = {"cache": "given"}
    if prepared is None:
        prepared, cache_info = load_prepared(cfg.data)
    setup = make_setup(cfg, prepared)
    t_data = time.perf_counter()
    baselines = evaluate_baselines(cfg, setup, progress)
    t_baselines = time.perf_counter()  # booked apart from training
    run_dir = str(run_dir) if run_dir is not None else None
    writer = RunWriter(run_dir, setup.ks, cfg.train.monitor_metric, baseline_curves) \
        if run_dir else None
    try:
        history, epoch = fit(cfg, setup, callbacks or [], writer,
                             {n: b.metrics for n, b in baselines.items()})
    except BaseException:
        if writer:
            writer.close()
        raise
    seconds = {"data": t_data - t0, "baselines": t_baselines - t_data,
               "train": time.perf_counter() - t_baselines}
    result = evaluate(cfg, setup, history, epoch, baselines, seconds, run_dir)
    result.data_stats = {"split": cfg.data.split, **setup.data.stats,
                         "cache": cache_info.get("cache")}
    result.seconds["total"] = time.perf_counter() - t0
    save_run(cfg, setup, result, writer, run_dir)
    return result


@dataclass
class Setup:
    """What a run builds before its first step: the trial's data, the model with its
    optimizer and step, and the ranking of held-out pairs (one rule for every scorer)."""

    data: TrialData
    model: TwoTowerModel
    user_history: UserHistory | UserSequences | None  # what the user tower reads
    queries: QueryEncoder
    train_step: Callable[..., tf.Tensor]
    catalog_loss: bool
    ranker: Ranker
    val: HeldOut
    test: HeldOut
    val_epoch: HeldOut  # the per-epoch sample of validation pairs
    ks: tuple[int, ...]
    # Test pairs are ranked from these histories (eval.test_history): the training ones
    # (the same objects as above) or those plus the validation items.
    test_ranker: Ranker | None = None
    test_queries: QueryEncoder | None = None


def make_setup(cfg: RunConfig, prepared: PreparedData) -> Setup:
    configure_threads(cfg.train)
    data = select_training(prepared, cfg.data.sample_fraction)
    tf.keras.utils.set_random_seed(cfg.train.seed)
    cfg.check_data(data.n_users, data.n_items, most_seen_count(
        data.train_user, np.concatenate([data.val_user, data.test_user])))
    check_fits(cfg, data.n_users, data.n_items, len(data.train_user))
    model = TwoTowerModel(data.n_users, data.n_items, cfg.model, data.item_counts, cfg.train.seed)
    user_history, test_history = user_histories(cfg, data)
    # `lazy: auto` decides on the whole data set's users, so every sample fraction of it (the
    # rungs of a multi-fidelity study) trains with the same optimizer.
    model.optimizer = make_optimizer(cfg.optimizer, len(prepared.user_ids) + data.n_items)
    # Catalog columns beat in-batch columns whenever the catalog is no larger than a batch.
    catalog_loss = cfg.uses_catalog_loss(data.n_items)
    val = HeldOut(data.val_user, data.val_item)
    def ranker(with_validation: bool, tower_reads: UserHistory | UserSequences | None) -> Ranker:
        # The order-aware baselines read the same sequences as a sequence tower (built once)
        sequences = tower_reads if isinstance(tower_reads, UserSequences) else \
            training_sequences(data, cfg.model.sequence_max_len, with_validation)
        users, items, _ = data.history_pairs(with_validation)
        return Ranker(users, items, data.n_users, data.n_items, data.item_counts,
                      cfg.eval.exclude_seen, sequences)

    val_ranker = ranker(False, user_history)
    queries = QueryEncoder(model, user_history, cfg.train.eval_batch_size)
    test_ranker, test_queries = val_ranker, queries
    if cfg.test_history_has_validation:
        test_ranker = ranker(True, test_history)
        test_queries = QueryEncoder(model, test_history, cfg.train.eval_batch_size)
    return Setup(
        data=data, model=model, user_history=user_history, queries=queries,
        train_step=(make_sequence_step if cfg.model.uses_sequence else make_train_step)(
            model, model.optimizer, cfg.train.jit_compile, catalog_loss),
        catalog_loss=catalog_loss, ranker=val_ranker, test_ranker=test_ranker,
        test_queries=test_queries, val=val, test=HeldOut(data.test_user, data.test_item),
        # The per-epoch signal: a fixed sample (seeded by the data, so every trial of a study
        # ranks the same pairs); the reported numbers come from every pair, once, at the end.
        val_epoch=subsample(val, cfg.train.epoch_val_pairs(data.n_items), cfg.data.seed),
        ks=tuple(sorted(cfg.train.top_ks)))


def user_histories(cfg: RunConfig, data: TrialData,
                   ) -> tuple[UserHistory | UserSequences | None, UserHistory | UserSequences | None]:
    """What the user tower reads for training and validation, and for test (the same, or
    with the validation items under eval.test_history=train+validation)."""
    model = cfg.model

    def read(with_validation: bool) -> UserHistory | UserSequences | None:
        if model.uses_sequence:
            return training_sequences(data, model.sequence_max_len, with_validation)
        if not model.uses_history:
            return None
        users, items, _ = data.history_pairs(with_validation)
        return UserHistory(users, items, data.n_users, model.history_max_len, cfg.train.seed)

    train = read(False)
    return train, (read(True) if cfg.test_history_has_validation else train)


def evaluate_baselines(cfg: RunConfig, setup: Setup,
                       progress: Callable[[str], None] | None) -> dict[str, Any]:
    """Popularity, item-kNN and EASE on the run's pairs: computed once per data set and
    evaluation settings, then read from the cache beside the prepared data."""
    def compute() -> dict:
        if progress and cfg.eval.baselines:  # a minute on a large catalog: say so first
            progress(f"computing {' and '.join(cfg.eval.baselines)} once for this data set "
                     f"({setup.data.n_items:,} items; cached for later runs and trials)...")
        return run_baselines(setup.ranker, setup.val, setup.test, setup.ks, cfg.eval,
                             cfg.train.monitor_metric, progress, setup.test_ranker)

    key = {"eval": asdict(cfg.eval), "ks": setup.ks, "version": 5,
           "monitor": cfg.train.monitor_metric, "sample_fraction": cfg.data.sample_fraction}
    return cached_baselines(derived_file(cfg.data, "baselines", key), compute)


def fit(cfg: RunConfig, setup: Setup, callbacks: list[tf.keras.callbacks.Callback] | None = None,
        writer: RunWriter | None = None, baselines: dict[str, dict[str, float]] | None = None,
        ) -> tuple[list[dict[str, float]], int]:
    """The epochs: train, check for divergence, rank the validation sample, stop early on
    train.monitor. Returns the per-epoch history and the 1-based epoch whose weights the
    model holds at the end (the best one when early stopping keeps weights). `writer`:
    TensorBoard curves, with `baselines` (name -> metrics) drawn beside them."""
    model, data = setup.model, setup.data
    rng = np.random.default_rng(cfg.train.seed)
    n_steps = math.ceil(len(data.train_user) / cfg.train.batch_size)
    callbacks = [*lr_schedule(cfg.train), *(callbacks or [])]
    callback_list = tf.keras.callbacks.CallbackList(callbacks, model=model,
                                                    epochs=cfg.train.epochs, steps=n_steps)
    history: list[dict[str, float]] = []
    best_score, best_epoch, best_weights, since_best = -math.inf, 0, None, 0
    first_loss: list[float] = []  # the untrained model's loss: the scale to judge by
    monitor, patience = cfg.train.monitor_metric, cfg.train.early_stopping_patience
    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(1, cfg.train.epochs + 1):
        callback_list.on_epoch_begin(epoch - 1)
        start = time.perf_counter()
        loss = train_epoch(cfg, setup, epoch, rng, callback_list, first_loss)
        train_seconds = time.perf_counter() - start
        check_diverged(cfg, loss, first_loss[0], epoch)
        val_metrics = ranking_metrics(model_ranks(setup.queries, model, setup.ranker,
                                             setup.val_epoch, cfg.train.eval_batch_size),
                                      setup.ks, "val")
        logs = {"loss": loss, **val_metrics, "learning_rate": learning_rate(model),
                "epoch_seconds": train_seconds,
                "eval_seconds": time.perf_counter() - start - train_seconds}
        history.append({"epoch": epoch, **logs})
        if writer:
            writer.epoch(epoch, logs, baselines or {})
        if logs[monitor] > best_score:
            best_score, best_epoch, since_best = logs[monitor], epoch, 0
            best_weights = model.get_weights() if patience else None
        else:
            since_best += 1
        callback_list.on_epoch_end(epoch - 1, logs)
        if model.stop_training or (patience and since_best >= patience):
            break
    callback_list.on_train_end()
    if best_weights is not None and best_epoch != len(history):
        model.set_weights(best_weights)
        return history, best_epoch
    return history, len(history)


def lr_schedule(cfg: TrainConfig) -> list[tf.keras.callbacks.Callback]:
    """Keras's ReduceLROnPlateau on the run's monitor when train.lr_plateau_factor is set:
    a transformer tower that has stopped improving at one rate often improves again at half
    of it (Amazon Toys, sequence tower: docs/sequential.md)."""
    if cfg.lr_plateau_factor is None:
        return []
    return [tf.keras.callbacks.ReduceLROnPlateau(
        monitor=cfg.monitor_metric, mode="max", factor=cfg.lr_plateau_factor,
        patience=cfg.lr_plateau_patience, min_delta=0.0, verbose=0)]


def learning_rate(model: tf.keras.Model) -> float:
    """The optimizer's rate this epoch trained at."""
    return float(tf.keras.backend.get_value(model.optimizer.learning_rate))


def train_epoch(cfg: RunConfig, setup: Setup, epoch: int, rng: np.random.Generator,
                callback_list: tf.keras.callbacks.CallbackList, first_loss: list[float],
                ) -> float:
    """One pass over the shuffled training pairs; the epoch's mean loss. `first_loss` gets
    the very first step's loss."""
    seed = cfg.train.seed
    total, steps = tf.zeros((), tf.float32), 0
    for step, inputs in enumerate(training_batches(cfg, setup, rng)):
        callback_list.on_train_batch_begin(step)  # no-ops unless a callback has them
        step_loss = setup.train_step(*inputs, tf.constant([seed, (epoch << 20) + step], tf.int32))
        callback_list.on_train_batch_end(step)
        if not first_loss:
            first_loss.append(float(step_loss))
        total += step_loss
        steps += 1
    return float(total) / max(steps, 1)


def training_batches(cfg: RunConfig, setup: Setup, rng: np.random.Generator,
                     ) -> Iterator[tuple[tf.Tensor | None, ...]]:
    """One epoch's steps, shuffled. Pairs: `train.batch_size` (user, item) pairs a step, with
    the users' histories. Sequences (the sequence tower): every user's latest items once, as
    many users a step as give about `train.batch_size` next-item targets."""
    data, bs = setup.data, cfg.train.batch_size
    if isinstance(setup.user_history, UserSequences):
        for users in sequence_steps(setup.user_history.targets_per_user(), bs, rng):
            inputs, next_items = setup.user_history.windows(users)
            yield tf.constant(inputs), tf.constant(next_items)
        return
    n = len(data.train_user)
    perm = rng.permutation(n)
    for s in range(0, n, bs):
        idx = perm[s:s + bs]
        users = data.train_user[idx]
        history = None if setup.user_history is None \
            else tf.constant(setup.user_history.rows(users, rng))
        yield tf.constant(users), tf.constant(data.train_item[idx]), history


def sequence_steps(targets: np.ndarray, batch_size: int, rng: np.random.Generator,
                   ) -> list[np.ndarray]:
    """The users of each step, about `batch_size` next-item targets a step, in random order.

    Users of similar length share a step (bucketing, as tf.data's `bucket_by_sequence_length`):
    a step's rows are as wide as its longest sequence, and on 5-core shopping data most users
    have a handful of items, so a random mix pads ~85% of the encoder's positions (Toys: 9,250
    positions a step for 1,015 targets). Equal lengths are shuffled, and so are the steps."""
    users = np.flatnonzero(targets)
    users = users[np.lexsort((rng.random(len(users)), targets[users]))]
    step = (np.cumsum(targets[users]) - 1) // max(batch_size, 1)
    steps = np.split(users, np.flatnonzero(np.diff(step)) + 1) if len(users) else []
    return [steps[i] for i in rng.permutation(len(steps))]


def check_diverged(cfg: RunConfig, loss: float, first_loss: float, epoch: int) -> None:
    """Not only inf/NaN: a huge learning rate can leave a finite loss ~1e16 whose metrics are
    noise. Training lowers the loss; far above where it started, the run diverged."""
    if math.isfinite(loss) and loss <= DIVERGED_FACTOR * max(first_loss, 1e-3):
        return
    scale = "" if not math.isfinite(loss) else (
        f", more than {DIVERGED_FACTOR}x the untrained model's {first_loss:.4g}")
    raise TrainingDiverged(
        f"training loss became {loss:.4g} at epoch {epoch}{scale}: the run diverged "
        f"(too high a learning rate is the usual cause: optimizer.learning_rate="
        f"{cfg.optimizer.learning_rate}; a very low model.temperature="
        f"{cfg.model.temperature:g} or a large model.l2 can also do it)")


def evaluate(cfg: RunConfig, setup: Setup, history: list[dict[str, float]], epoch: int,
             baselines: dict[str, Any], seconds: dict[str, float], run_dir: str | None,
             ) -> RunResult:
    """Every validation and test pair ranked once with the kept weights, their intervals
    and known/unknown-user split, beside the baselines."""
    ks, batch = setup.ks, cfg.train.eval_batch_size
    start = time.perf_counter()
    val_ranks = model_ranks(setup.queries, setup.model, setup.ranker, setup.val, batch)
    t_val = time.perf_counter()
    test_ranks = model_ranks(setup.test_queries or setup.queries, setup.model,
                             setup.test_ranker or setup.ranker, setup.test, batch)
    t_test = time.perf_counter()
    resamples = cfg.eval.interval_resamples
    val_users, test_users = setup.val.users, setup.test.users
    intervals = {**bootstrap_intervals(val_ranks, val_users, ks, "val", resamples),
                 **bootstrap_intervals(test_ranks, test_users, ks, "test", resamples)}
    by_user = {group: {**split_by_user(val_ranks, val_users, ks, "val", group),
                       **split_by_user(test_ranks, test_users, ks, "test", group)}
               for group in ("known", "unknown")}
    epoch_times = [h["epoch_seconds"] for h in history]
    return RunResult(
        metrics={**ranking_metrics(val_ranks, ks, "val"),
                 **ranking_metrics(test_ranks, ks, "test")},
        popularity=baselines["popularity"].metrics if baselines else {},
        intervals=intervals,
        baselines={name: b.to_json() for name, b in baselines.items()},
        comparison=paired_tests(cfg, setup, test_ranks, baselines),
        evaluation={**evaluation_info(cfg, setup.data.n_items), "by_user": by_user},
        history=history, epoch=epoch, epochs_run=len(history),
        seconds={
            **seconds,
            "test_eval": time.perf_counter() - start,  # final val and test ranks, intervals
            "final_val_ranks": t_val - start,
            "final_test_ranks": t_test - t_val,
            "per_epoch_mean": float(np.mean(epoch_times)),
            # The first epoch includes tracing and XLA compilation.
            "per_epoch_after_first": float(np.mean(epoch_times[1:] or epoch_times)),
        },
        loss_path=loss_path(cfg, setup.catalog_loss),
        data_stats={}, run_dir=run_dir)


def paired_tests(cfg: RunConfig, setup: Setup, test_ranks: np.ndarray,
                 baselines: dict[str, Any]) -> list[dict[str, Any]]:
    """The model against every computed baseline on test, paired by user, on the selection
    metric and NDCG@10 (see recsys.significance); none without intervals (resamples 0)."""
    ranks = {b.name: b.test_ranks for b in baselines.values()
             if getattr(b, "test_ranks", None) is not None and len(b.test_ranks) == len(test_ranks)}
    if not ranks or not cfg.eval.interval_resamples:
        return []
    metric, ndcg_10 = Metric.parse(cfg.train.monitor_metric), Metric("val", "ndcg", 10)
    metrics = [metric, *([ndcg_10] if 10 in setup.ks and metric != ndcg_10 else [])]
    return [p.to_json() for p in compare(test_ranks, ranks, setup.test.users, setup.ks, metrics,
                                         cfg.eval.interval_resamples)]


def save_run(cfg: RunConfig, setup: Setup, result: RunResult, writer: RunWriter | None,
             run_dir: str | None) -> None:
    """TensorBoard's selected metrics, metrics.json and vectors.npz, each written whole or
    not at all (temp file + rename). What went wrong, and what was saved before it, is left
    in `result.write_error` (the numbers are still in `result`)."""
    saved: list[str] = []
    try:
        if writer:
            writer.final(result.epoch, result.metrics)
            writer.close()
        if run_dir:
            write_json(Path(run_dir) / METRICS_FILE, result.to_json())
            saved.append(METRICS_FILE)
        if run_dir and cfg.train.save_vectors:
            save_vectors(setup.queries, setup.model, setup.data,
                         Path(run_dir) / VECTORS_FILE, cfg.train.vectors_dtype)
    except (MemoryError, tf.errors.ResourceExhaustedError) as exc:  # not a disk at all
        result.write_error = (
            f"out of memory while computing {VECTORS_FILE} ({type(exc).__name__}): every "
            f"user's and item's vector at model.embedding_dim={cfg.model.embedding_dim} does "
            f"not fit{'; ' + ', '.join(saved) + ' was saved' if saved else ''}. Set "
            "train.save_vectors=false or use a smaller model.embedding_dim")
    except (OSError, tf.errors.OpError) as exc:  # a full disk: the numbers are still here
        kept = f" ({', '.join(saved)} was saved)" if saved else ""
        result.write_error = (f"cannot write into {run_dir!r} "
                              f"({getattr(exc, 'strerror', None) or type(exc).__name__}): "
                              f"the numbers above were not all saved{kept}; free some space "
                              "and run again")


def loss_path(cfg: RunConfig, catalog_loss: bool) -> str:
    if catalog_loss:
        return "catalog"
    if cfg.model.groups_batch(cfg.train.batch_size):
        return f"in_batch groups of {cfg.model.batch_columns}"
    return "in_batch"


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


def make_sequence_step(model: TwoTowerModel, optimizer: tf.keras.optimizers.Optimizer,
                       jit_compile: bool, catalog_loss: bool):
    """The sequence tower's step: `step(sequences, next_items, seed) -> loss`, the next item
    at every position (`TwoTowerModel.sequence_loss`). Without XLA: a batch's width and its
    number of targets vary."""
    @tf.function(reduce_retracing=True)
    def step(sequences: tf.Tensor, next_items: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = model.sequence_loss(sequences, next_items, seed, catalog_loss)
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    return step


def evaluation_info(cfg: RunConfig, n_items: int) -> dict[str, Any]:
    """How the numbers were computed, for every output that shows them."""
    return {"candidates": f"all {n_items} catalog items",
            "exclude_seen": cfg.eval.exclude_seen,
            "test_history": cfg.eval.test_history,
            "ties": "broken by one fixed random item order (the same for every scorer)",
            "intervals": (f"95% percentile Poisson bootstrap over users, "
                          f"{cfg.eval.interval_resamples} resamples"
                          if cfg.eval.interval_resamples else "off")}


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (temp file + rename): a crash never leaves half a file."""
    write_text_atomic(path, json.dumps(payload, indent=2, default=float))

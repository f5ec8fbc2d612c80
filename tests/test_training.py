from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from recsys.cache import load_prepared
from recsys.config import (
    AdagradConfig,
    DataConfig,
    ModelConfig,
    RunConfig,
    SGDConfig,
    SyntheticConfig,
    TrainConfig,
)
from recsys.errors import TrainingDiverged
from recsys.model import TwoTowerModel
from recsys.prepare import select_training
from recsys.training import run


def tiny(tmp_path: Path, **train: object) -> RunConfig:
    return RunConfig(
        data=DataConfig(cache_dir=str(tmp_path / "cache"),
                        synthetic=SyntheticConfig(n_users=1500, n_items=300, n_interactions=15000)),
        # Adagrad 0.1 learns this tiny set within 2-3 epochs; the last epoch is kept unless a
        # test turns early stopping on.
        model=ModelConfig(embedding_dim=16, logq_correction=False),
        optimizer=AdagradConfig(learning_rate=0.1),
        train=TrainConfig(**{"epochs": 2, "batch_size": 1024, "eval_batch_size": 1024,
                             "early_stopping_patience": None, **train}),
    )


def test_short_run_beats_popularity_and_writes_tensorboard(tmp_path: Path) -> None:
    result = run(tiny(tmp_path, epochs=3), tmp_path / "run")
    assert result.metrics["val_top_100"] > result.popularity["val_top_100"] + 0.05
    assert result.metrics["test_top_10"] > result.popularity["test_top_10"]
    assert result.epochs_run == 3 and result.epoch == 3
    assert (tmp_path / "run" / "metrics.json").exists()

    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"tensors": 0})
    events.Reload()
    tags = set(events.Tags()["tensors"])
    expected = {"train/loss", "time/epoch_seconds", "epoch_other/val_top_1", "epoch/val_top_100",
                "selected/val_top_100", "selected/test_top_100"}
    assert expected <= tags
    # the metric the run selects on is the first group's only chart (Time Series sorts by name)
    assert {t for t in tags if t.startswith("epoch/")} == {"epoch/val_top_100"}
    steps = [e.step for e in events.Tensors("epoch/val_top_100")]
    assert steps == [1, 2, 3]
    last = tf.make_ndarray(events.Tensors("epoch/val_top_100")[-1].tensor_proto)
    assert abs(float(last) - result.history[-1]["val_top_100"]) < 1e-6
    (test,) = events.Tensors("selected/test_top_100")
    assert test.step == result.epoch
    assert float(tf.make_ndarray(test.tensor_proto)) == pytest.approx(result.metrics["test_top_100"])
    # The popularity baseline is a run of its own with the model's tag: a line on epoch/val_top_100.
    popularity = EventAccumulator(str(tmp_path / "run" / "baselines" / "popularity"),
                                  size_guidance={"tensors": 0})
    popularity.Reload()
    line = popularity.Tensors("epoch/val_top_100")
    assert [e.step for e in line] == [1, 2, 3]
    values = [float(tf.make_ndarray(e.tensor_proto)) for e in line]
    assert values == pytest.approx([result.popularity["val_top_100"]] * 3)


def test_same_config_gives_same_numbers(tmp_path: Path) -> None:
    a = run(tiny(tmp_path))
    b = run(tiny(tmp_path))
    for key, value in a.metrics.items():
        assert abs(value - b.metrics[key]) <= 0.002, key
    assert abs(a.history[-1]["loss"] - b.history[-1]["loss"]) / a.history[-1]["loss"] < 1e-3


def test_early_stopping_restores_best_epoch(tmp_path: Path) -> None:
    # Adagrad at lr 0.5 overfits this data after a few epochs; patience 1 must stop and
    # report the best epoch's weights, not the last epoch's.
    cfg = replace(tiny(tmp_path, epochs=12, early_stopping_patience=1),
                  optimizer=AdagradConfig(learning_rate=0.5))
    result = run(cfg)
    best = max(h["val_top_100"] for h in result.history)
    assert result.epochs_run < 12
    assert result.epoch == result.epochs_run - 1
    assert result.metrics["val_top_100"] == best


def test_the_learning_rate_halves_after_each_epoch_without_a_better_monitor(
        tmp_path: Path) -> None:
    """train.lr_plateau_factor=0.5, patience 1: each epoch trains at the rate a direct
    replay of the validation curve gives (halved after every epoch that did not beat the
    best so far), and TensorBoard draws that rate."""
    cfg = replace(tiny(tmp_path, epochs=8, lr_plateau_factor=0.5),
                  optimizer=AdagradConfig(learning_rate=0.5))  # overfits: plateaus come early
    result = run(cfg, tmp_path / "run")
    rate, best, expected = 0.5, -np.inf, []
    for epoch in result.history:
        expected.append(rate)
        if epoch["val_top_100"] > best:
            best = epoch["val_top_100"]
        else:
            rate *= 0.5
    rates = [h["learning_rate"] for h in result.history]
    assert rates == pytest.approx(expected) and rates[-1] < 0.5
    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"tensors": 0})
    events.Reload()
    drawn = [float(tf.make_ndarray(e.tensor_proto))
             for e in events.Tensors("train/learning_rate")]
    assert drawn == pytest.approx(expected)
    assert run(tiny(tmp_path, epochs=3)).history[-1]["learning_rate"] == pytest.approx(0.1)


def test_callbacks_can_stop_training(tmp_path: Path) -> None:
    seen: list[float] = []

    class StopAfterOne(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            seen.append(logs["val_top_100"])
            self.model.stop_training = True

    result = run(tiny(tmp_path, epochs=5), callbacks=[StopAfterOne()])
    assert result.epochs_run == 1 and len(seen) == 1


def test_divergence_is_detected(tmp_path: Path) -> None:
    cfg = replace(tiny(tmp_path, epochs=3),
                  optimizer=SGDConfig(learning_rate=1e6, momentum=0.9))
    with pytest.raises(TrainingDiverged, match="learning_rate=1000000"):
        run(cfg)


def _log_softmax_loss(logits: np.ndarray, positive_column: np.ndarray) -> float:
    top = logits.max(1, keepdims=True)
    lse = np.log(np.exp(logits - top).sum(1)) + top[:, 0]
    return float(np.sum(lse - logits[np.arange(len(logits)), positive_column]))


@pytest.mark.parametrize("knob", [{}, {"logq_correction": True}, {"temperature": 0.5},
                                  {"remove_accidental_hits": True}, {"l2": 0.01},
                                  {"tower_layers": (8,)}, {"normalize": True, "temperature": 0.1},
                                  {"negatives": "mixed", "sampled_negatives": 5},
                                  {"negatives": "mixed", "sampled_negatives": 7,
                                   "logq_correction": False, "remove_accidental_hits": True},
                                  {"negatives": "catalog"},
                                  {"negatives": "catalog", "temperature": 0.5, "l2": 0.01}])
def test_loss_matches_a_direct_numpy_softmax(knob: dict) -> None:
    """Each loss variant against the softmax written out: in-batch columns corrected by
    log p(item), sampled ones by log(S / (N B)), accidental hits removed, or every item."""
    cfg = ModelConfig(**{"embedding_dim": 4, "user_tower": "id", "batch_columns": None, **knob})
    counts = np.array([5, 1, 3, 1, 0, 2])
    model = TwoTowerModel(n_users=4, n_items=6, cfg=cfg, item_counts=counts, seed=0)
    users = tf.constant([1, 2, 3, 1])
    items = tf.constant([0, 2, 0, 5])  # item 0 twice: an accidental hit for rows 0 and 2
    seed = tf.constant([3, 4])
    loss = float(model.compute_loss((users, items, None, seed), training=True))

    q = model.user_vectors(users).numpy().astype(np.float64)
    c = model.item_vectors(items).numpy().astype(np.float64)
    everything = model.item_embeddings().numpy().astype(np.float64)
    ids, b = items.numpy(), 4
    p = np.maximum(counts, 1) / counts.sum()
    if cfg.negatives == "catalog":
        logits = q @ everything.T / cfg.temperature
        expected = _log_softmax_loss(logits, ids)
    else:
        correction = np.log(p[ids])
        columns, column_ids = c, ids
        if cfg.negatives == "mixed":
            sampled = model.sampled_items(seed).numpy()
            columns = np.concatenate([c, everything[sampled]])
            column_ids = np.concatenate([ids, sampled])
            correction = np.concatenate([correction, np.full(len(sampled),
                                         np.log(cfg.sampled_negatives / (6 * b)))])
        logits = q @ columns.T / cfg.temperature
        if cfg.logq_correction:
            logits -= correction[None, :]
        if cfg.remove_accidental_hits:
            same = ids[:, None] == column_ids[None, :]
            same[np.arange(b), np.arange(b)] = False
            logits[same] = -1e30
        expected = _log_softmax_loss(logits, np.arange(b))
    expected += cfg.l2 * ((q ** 2).sum() + (c ** 2).sum())
    assert loss == pytest.approx(expected, rel=1e-5)
    if cfg.normalize:
        np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize("knob", [{}, {"logq_correction": True}, {"temperature": 0.3},
                                  {"remove_accidental_hits": True}, {"l2": 0.01},
                                  {"tower_layers": (8, 4)},
                                  {"logq_correction": True, "remove_accidental_hits": True,
                                   "temperature": 0.5},
                                  {"negatives": "mixed", "sampled_negatives": 17},
                                  {"negatives": "mixed", "sampled_negatives": 9,
                                   "remove_accidental_hits": True, "logq_correction": False},
                                  {"negatives": "catalog", "normalize": True, "temperature": 0.2},
                                  {"user_tower": "history", "history_dropout": 0.5},
                                  {"user_tower": "id+history", "negatives": "mixed",
                                   "sampled_negatives": 11, "tower_layers": (8,)}])
def test_catalog_loss_equals_tfrs_loss_and_gradients(knob: dict) -> None:
    # A batch with many repeated items, as real batches have: the case the catalog form
    # must get exactly right (counts, accidental hits, sampled copies).
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 50, size=30)
    cfg = ModelConfig(**{"embedding_dim": 6, "user_tower": "id", "batch_columns": None, **knob})
    model = TwoTowerModel(n_users=40, n_items=30, cfg=cfg, item_counts=counts, seed=3)
    users = tf.constant(rng.integers(1, 40, size=64), tf.int32)
    items = tf.constant(rng.choice(30, size=64, p=np.arange(30, 0, -1) / 465), tf.int32)
    history = tf.constant(rng.integers(0, 31, size=(64, 5)), tf.int32) \
        if cfg.uses_history else None
    seed = tf.constant([5, 6])
    assert len(np.unique(items.numpy())) < 40  # duplicates present
    with tf.GradientTape(persistent=True) as tape:
        reference = model.compute_loss((users, items, history, seed), training=True)
        fast = model.catalog_loss(users, items, history, seed)
    assert float(fast) == pytest.approx(float(reference), rel=1e-5)
    variables = model.trainable_variables
    for ref_grad, fast_grad in zip(tape.gradient(reference, variables),
                                   tape.gradient(fast, variables), strict=True):
        np.testing.assert_allclose(tf.convert_to_tensor(fast_grad).numpy(),
                                   tf.convert_to_tensor(ref_grad).numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("knob", [{}, {"temperature": 0.3, "logq_correction": False},
                                  {"remove_accidental_hits": True, "l2": 0.01},
                                  {"user_tower": "history", "tower_layers": (8,)}])
def test_batch_columns_is_the_tfrs_loss_of_each_group_summed(knob: dict) -> None:
    """70 rows at 16 columns: groups of 16, 16, 16, 16 and 6 rows (the last one padded). Each
    group's loss is TFRS's in-batch loss over that group alone; a batch no wider than the
    columns is the plain in-batch loss."""
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 50, size=30)
    base = {"embedding_dim": 6, "user_tower": "id", "logq_correction": True, **knob}
    grouped = TwoTowerModel(n_users=40, n_items=30, item_counts=counts, seed=3,
                            cfg=ModelConfig(**base, batch_columns=16))
    plain = TwoTowerModel(n_users=40, n_items=30, item_counts=counts, seed=3,
                          cfg=ModelConfig(**base, batch_columns=None))  # TFRS's Retrieval
    n = 70
    users = tf.constant(rng.integers(1, 40, size=n), tf.int32)
    items = tf.constant(rng.integers(0, 30, size=n), tf.int32)
    history = tf.constant(rng.integers(0, 31, size=(n, 5)), tf.int32) \
        if grouped.cfg.uses_history else None
    seed = tf.constant([5, 6])

    def part(model: TwoTowerModel, s: slice) -> tf.Tensor:
        h = None if history is None else history[s]
        return model.compute_loss((users[s], items[s], h, seed), training=True)

    with tf.GradientTape(persistent=True) as tape:
        loss = part(grouped, slice(None))
        expected = tf.add_n([part(plain, slice(s, s + 16)) for s in range(0, n, 16)])
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    for got, want in zip(tape.gradient(loss, grouped.trainable_variables),
                         tape.gradient(expected, plain.trainable_variables), strict=True):
        np.testing.assert_allclose(tf.convert_to_tensor(got).numpy(),
                                   tf.convert_to_tensor(want).numpy(), rtol=1e-4, atol=1e-6)
    narrow = slice(0, 12)
    assert float(part(grouped, narrow)) == pytest.approx(float(part(plain, narrow)), rel=1e-5)
    assert float(part(grouped, slice(0, 32))) != pytest.approx(float(part(plain, slice(0, 32))))


def test_batch_columns_turns_the_catalog_form_off_where_it_groups() -> None:
    cfg = RunConfig(train=TrainConfig(batch_size=8192), model=ModelConfig(batch_columns=2048))
    assert not cfg.uses_catalog_loss(n_items=3000)  # grouped: each row sees its group only
    assert cfg.step_columns(n_items=3000) == 2048
    assert cfg.uses_catalog_loss(n_items=2000)  # no costlier than the groups, and exact
    assert cfg.step_columns(n_items=2000) == 2000
    whole = replace(cfg, model=ModelConfig(batch_columns=None))
    assert whole.uses_catalog_loss(n_items=3000) and whole.step_columns(n_items=9000) == 8192
    assert replace(cfg, train=TrainConfig(batch_size=1024)).uses_catalog_loss(n_items=1000)


def test_history_tower_is_the_mean_of_the_other_training_items() -> None:
    """Training: the row's own item (the target) and dropped items leave the mean; serving:
    every history item counts."""
    cfg = ModelConfig(embedding_dim=3, user_tower="history", history_dropout=0.0)
    model = TwoTowerModel(n_users=3, n_items=5, cfg=cfg, item_counts=np.ones(5), seed=0)
    history = tf.constant([[1, 3, 4, 0], [2, 0, 0, 0]])  # items 0, 2, 3 / item 1
    serving = model.user_vectors(tf.constant([1, 2]), history).numpy()
    table = model.history_items.embeddings.numpy()
    np.testing.assert_allclose(serving[0], table[[1, 3, 4]].mean(0), rtol=1e-6)
    training = model.user_vectors(tf.constant([1, 2]), history, target=tf.constant([2, 1]),
                                  seed=tf.constant([0, 0])).numpy()
    np.testing.assert_allclose(training[0], table[[1, 4]].mean(0), rtol=1e-6)  # not item 2
    np.testing.assert_allclose(training[1], 0, atol=1e-7)  # its only item is the target


def test_user_history_holds_training_items_only(tmp_path: Path) -> None:
    """No user's held-out (validation, test) item is ever in the history that ranks it."""
    from recsys.history import UserHistory

    prepared, _ = load_prepared(tiny(tmp_path).data)
    data = select_training(prepared, 1.0)
    history = UserHistory(data.train_user, data.train_item, data.n_users, 4, seed=0)
    trained = set(zip(data.train_user.tolist(), data.train_item.tolist(), strict=True))
    # evaluation rows, and two training draws (fresh random items for heavier users)
    for rng in (None, np.random.default_rng(0), np.random.default_rng(1)):
        rows = history.rows(np.arange(data.n_users), rng) - 1
        for user, row in enumerate(rows):
            got = row[row >= 0]
            count = int(np.sum(data.train_user == user))
            assert len(got) == (count if rng is None else min(4, count))  # serving reads all
            assert all((user, int(i)) in trained for i in got)
        for users, items in ((data.val_user, data.val_item), (data.test_user, data.test_item)):
            held = rows[users] == items[:, None]
            # a pair in both train and held out cannot exist (de-duplicated split)
            assert not held.any()


def test_unknown_users_are_ranked_by_popularity_known_ones_by_the_model() -> None:
    from recsys.evaluation import HeldOut, Ranker
    from recsys.metrics import exact_ranks, popularity_ranks, top_k_accuracy
    from recsys.queries import QueryEncoder, model_ranks

    counts = np.array([9, 1, 5, 0, 3, 7])
    model = TwoTowerModel(n_users=5, n_items=6, cfg=ModelConfig(embedding_dim=4, user_tower="id"),
                          item_counts=counts, seed=0)
    users = np.array([0, 0, 2, 3, 0])
    items = np.array([3, 0, 1, 4, 5])
    ranker = Ranker(np.array([1, 2]), np.array([0, 2]), 5, 6, counts, exclude_seen=False)
    got = top_k_accuracy(model_ranks(QueryEncoder(model, None, 16), model, ranker,
                                HeldOut(users, items), 16), (1, 2, 6), "val")
    ranks = popularity_ranks(counts, items, ranker.tie_order)
    known = users > 0
    ranks[known] = exact_ranks(model.user_vectors(tf.constant(users[known])),
                               model.item_embeddings(), items[known], tie_order=ranker.tie_order)
    assert got == top_k_accuracy(ranks, (1, 2, 6), "val")
    assert top_k_accuracy(popularity_ranks(counts, items[~known]), (1,), "val")["val_top_1"] \
        == 1 / 3

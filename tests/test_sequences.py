"""Order-aware scoring: causal training windows, the sequence tower, the transitions baseline,
the validation item in a test history, and the SavedModel serving an ordered history."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import write_lines

from recsys.baselines import run_baselines, transition_counts
from recsys.cache import load_prepared
from recsys.config import DataConfig, EvalConfig, ModelConfig, RunConfig, TrainConfig
from recsys.errors import UserError
from recsys.evaluation import HeldOut, Ranker
from recsys.prepare import select_training
from recsys.sequence_tower import SequenceEncoder
from recsys.sequences import UserSequences, training_sequences
from recsys.serving import export_saved_model, load_vectors
from recsys.training import run, sequence_steps

N_ITEMS = 40


def chains(path: Path, n_users: int = 400, seed: int = 0) -> Path:
    """Each user walks a cycle of items one step at a time (item s, s+1, s+2, ... mod 40),
    timestamps increasing; rows shuffled, so the file's order is not the time order."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start, length = rng.integers(N_ITEMS), rng.integers(5, 12)
        t0 = rng.integers(1_000_000)
        rows += [f"u{u},i{(start + t) % N_ITEMS},5,{t0 + 10 * t}" for t in range(length)]
    return write_lines(path, [rows[i] for i in rng.permutation(len(rows))])


def chain_config(tmp_path: Path, **changes: object) -> RunConfig:
    data = DataConfig(name="chains", path=str(chains(tmp_path / "chains.csv")),
                      split="leave_one_out", cache_dir=str(tmp_path / "cache"))
    cfg = RunConfig(data=data,
                    model=ModelConfig(embedding_dim=16, user_tower="sequence",
                                      sequence_max_len=8, sequence_blocks=1),
                    train=TrainConfig(epochs=3, batch_size=256, eval_batch_size=256,
                                      top_ks=(1, 5, 10), early_stopping_patience=None),
                    eval=EvalConfig(baselines=("transitions",), interval_resamples=0,
                                    exclude_seen=True, test_history="train+validation"))
    return replace(cfg, **changes)


def test_training_windows_hold_only_items_before_their_target(tmp_path: Path) -> None:
    """Every input of a training example comes before its target in time, and no validation
    or test item enters a training window."""
    cfg = chain_config(tmp_path)
    data = select_training(load_prepared(cfg.data)[0], 1.0)
    time = {(u, i): t for u, i, t in zip(data.train_user, data.train_item, data.train_time,
                                         strict=True)}
    sequences = training_sequences(data, max_len=6)
    users = np.arange(1, data.n_users)
    inputs, targets = sequences.windows(users)
    checked = 0
    for row, user in enumerate(users):
        for t in np.flatnonzero(targets[row]):
            target_time = time[(user, targets[row, t] - 1)]
            earlier = inputs[row, :t + 1]
            assert all(time[(user, i - 1)] < target_time for i in earlier[earlier > 0])
            checked += 1
    assert checked == int(sequences.targets_per_user().sum()) > 1000
    held = {(u, i) for u, i in zip(np.r_[data.val_user, data.test_user],
                                   np.r_[data.val_item, data.test_item], strict=True)}
    windowed = {(u, i - 1) for row, u in enumerate(users) for i in inputs[row] if i}
    assert not windowed & held
    # The chain: each target is the item after its input (mod 40), as the file was written.
    ids = data.item_vocab
    step = [(int(ids[targets[r, t] - 1][1:]) - int(ids[inputs[r, t] - 1][1:])) % N_ITEMS
            for r in range(len(users)) for t in np.flatnonzero(targets[r])]
    assert set(step) == {1}


def test_the_encoder_is_causal() -> None:
    """Changing the latest item changes the last column's output and no earlier column's."""
    table = tf.keras.layers.Embedding(10, 8)
    encoder = SequenceEncoder(table, 8, max_len=6, blocks=2, heads=2, dropout=0.0, seed=1)
    a = encoder(tf.constant([[0, 0, 3, 4, 5, 6]]))
    b = encoder(tf.constant([[0, 0, 3, 4, 5, 9]]))
    np.testing.assert_allclose(a[0, 2:5], b[0, 2:5], atol=1e-6)
    assert np.abs(a[0, 5] - b[0, 5]).max() > 1e-3
    # Padding on the left is never read and positions count from the right edge: the same
    # items in a narrower row (as a batch of shorter users gets) give the same outputs.
    narrow = encoder(tf.constant([[3, 4, 5, 6]]))
    np.testing.assert_allclose(narrow[0], a[0, 2:], atol=1e-5)


def test_a_users_vector_is_the_last_column_of_the_full_causal_pass() -> None:
    """`last` computes the final block at the last column only; it must equal the full
    pass's last column, for padded rows and for a row of padding alone."""
    table = tf.keras.layers.Embedding(10, 8)
    encoder = SequenceEncoder(table, 8, max_len=6, blocks=2, heads=2, dropout=0.0, seed=1)
    rows = tf.constant([[0, 0, 3, 4, 5, 6], [0, 0, 0, 0, 0, 7], [1, 2, 3, 4, 5, 6],
                        [0, 0, 0, 0, 0, 0]])
    full = encoder(rows)
    assert full.shape == (4, 6, 8)
    np.testing.assert_allclose(encoder.last(rows), full[:, -1], atol=1e-5)


def test_a_sequence_epoch_steps_through_every_user_once_with_similar_lengths() -> None:
    """Bucketing: each user once an epoch, steps of about batch_size targets, and a step's
    users of nearly equal length (its rows are as wide as the longest), in a new order each
    epoch."""
    rng = np.random.default_rng(0)
    targets = np.r_[0, rng.choice([2, 3, 4, 5, 6, 8, 12, 20, 50], size=3000,
                                  p=[.3, .2, .15, .1, .08, .07, .05, .03, .02])]
    first = sequence_steps(targets, 256, np.random.default_rng(1))
    users = np.concatenate(first)
    assert sorted(users) == list(np.flatnonzero(targets))  # every user with a target, once
    sizes = np.array([targets[s].sum() for s in first])
    assert np.median(sizes) >= 256 - 50 and sizes.max() < 256 + 50
    spread = [targets[s].max() - targets[s].min() for s in first]
    assert np.median(spread) == 0 and max(spread) <= 50 - 20  # no 2-target user beside 50s
    second = sequence_steps(targets, 256, np.random.default_rng(2))
    assert [list(s) for s in second] != [list(s) for s in first]


def test_transition_counts_match_a_direct_count() -> None:
    rng = np.random.default_rng(3)
    users, items = rng.integers(1, 6, 60), rng.integers(0, 7, 60)
    times = rng.permutation(60)
    sequences = UserSequences(users, items, times, n_users=6, max_len=50)
    ranker = Ranker(users, items, 6, 7, np.bincount(items, minlength=7), False, sequences)
    expected = np.zeros((7, 7))
    for u in range(6):
        ordered = items[users == u][np.argsort(times[users == u])]
        for a, b in zip(ordered[:-1], ordered[1:], strict=True):
            expected[a, b] += 1
    np.testing.assert_array_equal(transition_counts(ranker).toarray(), expected)
    # Wider than any user's history: -1 fills the columns before the first item.
    assert (sequences.last_items(np.arange(1, 6), 40)[:, :20] == -1).all()
    latest = sequences.last_items(np.arange(1, 6), 2)
    for u in range(1, 6):
        ordered = items[users == u][np.argsort(times[users == u])]
        assert latest[u - 1].tolist() == ordered[-2:].tolist()


def test_a_test_history_with_the_validation_item_is_what_the_chain_needs(tmp_path: Path,
                                                                          ) -> None:
    """On chains the item after the latest one is the answer: read from the validation item
    (train+validation), the transitions baseline finds the test item first; read from the
    training items alone it cannot (their next item is the validation item)."""
    cfg = chain_config(tmp_path)
    data = select_training(load_prepared(cfg.data)[0], 1.0)
    val, test = HeldOut(data.val_user, data.val_item), HeldOut(data.test_user, data.test_item)

    def ranker(with_validation: bool) -> Ranker:
        known = data.val_user > 0 if with_validation else np.zeros(len(data.val_user), bool)
        return Ranker(np.r_[data.train_user, data.val_user[known]],
                      np.r_[data.train_item, data.val_item[known]], data.n_users, data.n_items,
                      data.item_counts, True, training_sequences(data, 64, with_validation))

    train_only = ranker(False)
    eval_cfg = replace(cfg.eval, transition_windows=(1,), transition_blends=(0.1,))
    both = run_baselines(train_only, val, test, (1, 5), eval_cfg, "val_top_1",
                         test_ranker=ranker(True))["transitions"].metrics
    alone = run_baselines(train_only, val, test, (1, 5), eval_cfg,
                          "val_top_1")["transitions"].metrics
    assert both["val_top_1"] > 0.95 and both["test_top_1"] > 0.95
    assert alone["test_top_1"] < 0.1  # the chain's next item after training is validation's


def test_test_history_needs_a_per_user_split() -> None:
    with pytest.raises(UserError, match=r"eval.test_history='train\+validation' is invalid: "
                                        r"expected train with data.split=random"):
        RunConfig(eval=EvalConfig(test_history="train+validation"))
    with pytest.raises(UserError, match="a divisor of model.embedding_dim=32"):
        ModelConfig(sequence_heads=3)


@pytest.fixture(scope="module")
def sequence_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    tmp = tmp_path_factory.mktemp("sequence")
    cfg = chain_config(tmp, optimizer=replace(RunConfig().optimizer, learning_rate=0.01))
    result = run(cfg, tmp / "run")
    export_saved_model(tmp / "run" / "vectors.npz", tmp / "model", max_k=10)
    return tmp, result


def test_the_sequence_tower_learns_what_comes_next(sequence_run: tuple[Path, object]) -> None:
    """Chains have one right next item; popularity is flat. A few epochs find most of it."""
    _, result = sequence_run
    assert result.metrics["test_top_1"] > 0.5
    assert result.metrics["test_top_5"] > result.popularity["test_top_5"] + 0.3
    assert result.evaluation["test_history"] == "train+validation"


def test_the_saved_model_recommends_from_an_ordered_history(sequence_run: tuple[Path, object],
                                                            ) -> None:
    """A known user's training items given oldest first rebuild that user's served vector
    (the same list); the same items in another order give another vector."""
    tmp, _ = sequence_run
    vectors = load_vectors(tmp / "run" / "vectors.npz")
    model = tf.saved_model.load(str(tmp / "model"))
    user = int(np.argmax(np.bincount(vectors["train_user"])))
    # vectors.npz keeps training pairs in sample order; the chain gives their time order
    rated = vectors["train_item"][vectors["train_user"] == user]
    numbers = np.array([int(vectors["item_ids"][i][1:]) for i in rated])
    start = next(n for n in numbers if (n - 1) % N_ITEMS not in set(numbers))
    ordered = [f"i{(start + t) % N_ITEMS}" for t in range(len(rated))]
    out = model.recommend_from_history(tf.constant(ordered), tf.constant(5))
    assert bool(out["from_history"].numpy())
    scores = vectors["item_vectors"] @ vectors["user_vectors"][user]
    scores[rated] = -np.inf
    expected = vectors["item_ids"][np.argsort(-scores, kind="stable")[:5]]
    assert out["item_ids"].numpy().astype(str).tolist() == expected.tolist()
    shuffled = model.recommend_from_history(tf.constant(ordered[::-1]), tf.constant(5))
    assert not np.allclose(shuffled["scores"].numpy(), out["scores"].numpy())


@pytest.mark.slow
def test_a_study_under_the_protocol_searches_the_sequence_tower(tmp_path: Path) -> None:
    """experiment=sequential with the default space: the study ranks on val_ndcg_10, starts
    from the sequence tower, reports HR/NDCG at 5/10/20 beside the transitions baseline, and
    exports a SavedModel that serves an ordered history."""
    import optuna

    from experiments import sweep

    data = chains(tmp_path / "chains.csv")
    args = [f"data.path={data}", "data.name=chains", f"data.cache_dir={tmp_path / 'cache'}",
            "experiment=sequential", "search.study_name=seq", f"search.dir={tmp_path / 'seq'}",
            "search.n_trials=2", "train.epochs=2", "train.eval_batch_size=512",
            "model.sequence_max_len=8", "eval.baselines=[transitions]",
            "eval.interval_resamples=50"]
    assert sweep.main(args) == 0
    study = optuna.load_study(study_name="seq", storage=f"sqlite:///{tmp_path}/seq/study.db")
    first = study.trials[0]
    assert first.params["model.user_tower"] == "sequence"
    assert first.params["model.negatives"] == "catalog"
    metrics = first.user_attrs["metrics"]
    assert first.value == metrics["val_ndcg_10"]
    assert {"test_top_5", "test_top_10", "test_top_20", "test_ndcg_20"} <= set(metrics)
    stored = json.loads((tmp_path / "seq" / "trials" / "0" / "metrics.json").read_text())
    assert stored["baselines"]["transitions"]["metrics"]["test_ndcg_5"] > 0.9
    assert stored["evaluation"]["test_history"] == "train+validation"
    assert stored["evaluation"]["exclude_seen"] is True
    model = tf.saved_model.load(str(tmp_path / "seq" / "best" / "model"))
    out = model.recommend_from_history(tf.constant(["i3", "i4", "i5"]), tf.constant(3))
    assert bool(out["from_history"].numpy()) == (study.best_trial.params["model.user_tower"]
                                                 in ("history", "sequence"))

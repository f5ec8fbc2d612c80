"""A history tower end to end: trained, ranked, exported; the SavedModel serves known users as
the harness ranked them and builds a vector for a new user from items given at call time."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO
from test_training import tiny

from recsys.config import ModelConfig
from recsys.serving import export_saved_model, load_vectors
from recsys.training import run


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("history")
    cfg = tiny(tmp, epochs=2)
    cfg = replace(cfg, model=ModelConfig(embedding_dim=8, user_tower="history",
                                         history_dropout=0.2, tower_layers=(8,),
                                         history_max_len=4),
                  eval=replace(cfg.eval, baselines=()))
    result = run(cfg, tmp / "run")
    assert result.metrics["val_top_100"] > result.popularity["val_top_100"]
    export_saved_model(tmp / "run" / "vectors.npz", tmp / "model", max_k=20)
    return tmp


def test_saved_model_serves_known_users_with_the_ranked_vectors(trained: Path) -> None:
    vectors = load_vectors(trained / "run" / "vectors.npz")
    model = tf.saved_model.load(str(trained / "model"))
    users = vectors["user_ids"][1:30].tolist()
    out = model.recommend(tf.constant(users), tf.constant(20), tf.constant(False))
    scores = vectors["user_vectors"][1:30] @ vectors["item_vectors"].T
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :20]
    got = out["item_ids"].numpy().astype(str)
    np.testing.assert_array_equal(got[:, :5], vectors["item_ids"][expected][:, :5])


def test_a_new_user_gets_a_vector_from_the_items_given(trained: Path) -> None:
    """The items a known user rated in training, given as a new user's history, give that
    user's ranking (minus the given items): the same vector, built at call time."""
    vectors = load_vectors(trained / "run" / "vectors.npz")
    model = tf.saved_model.load(str(trained / "model"))
    user = int(np.argmax(np.bincount(vectors["train_user"])))  # the most active user
    rated = vectors["train_item"][vectors["train_user"] == user]
    given = vectors["item_ids"][rated].tolist()
    out = model.recommend_from_history(tf.constant(given + ["not-an-item"]), tf.constant(10))
    assert bool(out["from_history"].numpy())
    scores = vectors["item_vectors"] @ vectors["user_vectors"][user]
    scores[rated] = -np.inf
    expected = vectors["item_ids"][np.argsort(-scores, kind="stable")[:10]]
    assert out["item_ids"].numpy().astype(str).tolist() == expected.tolist()
    nobody = model.recommend_from_history(tf.constant(["not-an-item"]), tf.constant(3))
    assert not bool(nobody["from_history"].numpy())
    popular = vectors["item_ids"][np.argsort(-vectors["item_counts"], kind="stable")[:3]]
    assert nobody["item_ids"].numpy().astype(str).tolist() == popular.tolist()


def test_recommend_cli_takes_a_history(trained: Path, capsys) -> None:
    """No user id needed; ids are trimmed and counted once; unknown ones are named in one line
    and the known ones used; a known user's id with --history is refused."""
    from experiments import recommend

    vectors = load_vectors(trained / "run" / "vectors.npz")
    a, b, c = vectors["item_ids"][:3].tolist()
    model = str(trained / "model")
    assert recommend.main([model, "--history", f"{a}, {b},{a},{a},nope,{c}", "--k", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "note: 1 of the 4 given item(s) are not in the model's catalog and are " \
                     "left out: nope"
    assert "someone new from the 3 known given item(s)" in out[1] and len(out) == 6
    assert not {line.split()[1] for line in out[2:]} & {a, b, c}
    # The same list as the three distinct known items given plainly.
    assert recommend.main([model, "--history", f"{a},{b},{c}", "--k", "4"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == out[2:]
    known = str(vectors["user_ids"][1])
    assert recommend.main([model, known, "--history", a]) == 2
    err = capsys.readouterr().err
    assert f"user {known!r} is in the model's training data" in err
    assert recommend.main([model]) == 2
    assert "give a user id, or --history" in capsys.readouterr().err
    # Popularity (an unknown user) prints whole training-rating counts, not 287.0000.
    assert recommend.main([model, "nobody-at-all", "--k", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith(" ratings")


def test_recommend_prints_the_list_and_nothing_of_tensorflow(trained: Path) -> None:
    """As every other command: no CUDA probing or absl lines on a machine without a GPU."""
    user = str(load_vectors(trained / "run" / "vectors.npz")["user_ids"][1])
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # recsys set it
    proc = subprocess.run([sys.executable, "-m", "experiments.recommend", str(trained / "model"),
                           user, "--k", "3"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.splitlines()[0].startswith(f"top 3 items for user {user!r}")


def test_ids_are_stored_by_their_own_length(tmp_path: Path) -> None:
    """One 100,000-character junk id must not pad every other id to its width."""
    from recsys.serving import pack_strings

    ids = np.array(["", "u1", "ü-ß", "x" * 100_000] + [f"user{i}" for i in range(5000)])
    np.savez(tmp_path / "v.npz", **pack_strings("user_ids", ids))
    assert (tmp_path / "v.npz").stat().st_size < 200_000  # fixed-width: 5004 x 400 kB
    back = load_vectors(tmp_path / "v.npz")["user_ids"]
    assert back.tolist() == ids.tolist()

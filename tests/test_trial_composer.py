"""A trial's config set from typed values on a cached composition equals the composition of
the same values as override text (the way every trial was composed before)."""

from __future__ import annotations

import pytest
from conftest import TINY_SYNTHETIC

from experiments.cli.compose import TrialComposer, compose_run
from experiments.sweeping.space import format_value

BASE = [*TINY_SYNTHETIC, "train.epochs=2",
        # a user's interpolation: must follow the trial's batch size, as a composition would
        "train.eval_batch_size=${train.batch_size}"]


@pytest.mark.parametrize("chosen", [
    {"optimizer": "adagrad", "optimizer.learning_rate": 0.25, "model.embedding_dim": 64},
    {"optimizer": "adam", "optimizer.learning_rate": 0.003, "train.batch_size": 2048,
     "model.history_dropout": 0.25, "model.user_tower": "id+history"},
    {"optimizer": "sgd", "optimizer.momentum": 0.9, "model.normalize": True,
     "model.tower_layers": [32, 16], "data.sample_fraction": 0.5},
])
def test_typed_values_give_the_tree_text_overrides_give(chosen: dict) -> None:
    composer = TrialComposer(BASE)
    tree, config = composer(chosen)
    texts = [f"{k}={format_value(v).replace(' ', '')}" for k, v in chosen.items()]
    expected_tree, expected_config = compose_run([*BASE, *texts])
    assert tree == expected_tree
    assert config == expected_config
    assert tree["train"]["eval_batch_size"] == tree["train"]["batch_size"]
    again, _ = composer(chosen)  # from the cache: a copy, untouched by the first trial
    assert again == tree and again is not tree


def test_one_composition_per_group_choice() -> None:
    composer = TrialComposer(BASE)
    for lr in (0.1, 0.2, 0.3):
        composer({"optimizer": "adagrad", "optimizer.learning_rate": lr})
    composer({"optimizer": "adam", "optimizer.learning_rate": 0.001})
    assert len(composer.composed) == 2

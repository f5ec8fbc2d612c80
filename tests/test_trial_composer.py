"""A trial's config set from typed values on a cached composition equals the composition of
the same values as override text (the way every trial was composed before)."""

from __future__ import annotations

import pytest
from conftest import TINY_SYNTHETIC

from experiments.cli.compose import compose_run
from experiments.sweeping.space import format_value
from experiments.sweeping.trial_config import TrialComposer
from recsys.errors import UserError

BASE = [*TINY_SYNTHETIC, "train.epochs=2"]
# A user's interpolation: it must follow the trial's batch size, as a composition would.
LINKED = [*BASE, "train.eval_batch_size=${train.batch_size}"]


@pytest.mark.parametrize("chosen", [
    {"optimizer": "adagrad", "optimizer.learning_rate": 0.25, "model.embedding_dim": 64},
    {"optimizer": "adam", "optimizer.learning_rate": 0.003, "train.batch_size": 2048,
     "model.history_dropout": 0.25, "model.user_tower": "id+history"},
    {"optimizer": "sgd", "optimizer.momentum": 0.9, "model.normalize": True,
     "model.tower_layers": [32, 16], "data.sample_fraction": 0.5},
])
@pytest.mark.parametrize("base", [BASE, LINKED], ids=["typed", "interpolated"])
def test_typed_values_give_the_tree_text_overrides_give(chosen: dict, base: list[str]) -> None:
    composer = TrialComposer(base)
    config = composer(chosen)
    texts = [f"{k}={format_value(v).replace(' ', '')}" for k, v in chosen.items()]
    expected_tree, expected_config = compose_run([*base, *texts])
    assert config == expected_config
    # One config per trial: its config.yaml, written from it, is the composition's tree
    # (each optimizer's own keys only).
    assert config.to_dict() == expected_tree
    if base is LINKED:
        assert config.train.eval_batch_size == config.train.batch_size
    assert composer(chosen) == config  # from the cache, untouched by the first


def test_a_bad_value_names_its_key() -> None:
    composer = TrialComposer(BASE)
    with pytest.raises(UserError, match=r"^model.embedding_dim='x' is invalid: expected an "
                                        r"integer$"):
        composer({"model.embedding_dim": "x"})
    with pytest.raises(UserError, match=r"model.embedding_dimm is not a known setting \(did "
                                        r"you mean embedding_dim\?\)"):
        composer({"model.embedding_dimm": 8})
    with pytest.raises(UserError, match=r"^optimizer.learning_rate=-1.0 is invalid"):
        composer({"optimizer": "adam", "optimizer.learning_rate": -1.0})


def test_one_composition_per_group_choice() -> None:
    composer = TrialComposer(BASE)
    for lr in (0.1, 0.2, 0.3):
        composer({"optimizer": "adagrad", "optimizer.learning_rate": lr})
    composer({"optimizer": "adam", "optimizer.learning_rate": 0.001})
    assert len(composer.composed) == 2


def test_each_optimizer_has_its_own_keys() -> None:
    """One dataclass per optimizer: SGD's momentum on Adam is an unknown setting, not a
    value the flat config used to carry silently."""
    from recsys.config import AdagradConfig, AdamConfig, RunConfig, SGDConfig

    composer = TrialComposer(BASE)
    assert isinstance(composer({"optimizer": "adagrad"}).optimizer, AdagradConfig)
    assert isinstance(composer({"optimizer": "sgd"}).optimizer, SGDConfig)
    with pytest.raises(UserError, match=r"optimizer.momentum is not a known setting"):
        composer({"optimizer": "adam", "optimizer.momentum": 0.9})
    assert "momentum" not in composer({"optimizer": "adam"}).to_dict()["optimizer"]
    with pytest.raises(UserError, match=r"^optimizer.name='rmsprop' is invalid: expected "
                                        r"adagrad or adam or sgd"):
        RunConfig.from_dict({"optimizer": {"name": "rmsprop"}})
    assert RunConfig().optimizer == AdamConfig()

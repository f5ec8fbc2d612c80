"""conf/ and recsys/config.py state one schema: every key a group's default option sets has
the dataclass's default, and each optimizer option holds exactly its own dataclass's keys.
A default changed in one place only fails here."""

from __future__ import annotations

import dataclasses

import pytest

from experiments.cli.compose import compose_run
from recsys.config import GROUP_TYPES, OPTIMIZER_CONFIGS, RunConfig


def test_the_composed_defaults_are_the_dataclass_defaults() -> None:
    tree, config = compose_run([])
    assert config == RunConfig()
    assert tree == RunConfig().to_dict()
    assert set(tree) == set(GROUP_TYPES)


@pytest.mark.parametrize("name", sorted(OPTIMIZER_CONFIGS))
def test_each_optimizer_option_is_its_dataclass(name: str) -> None:
    tree, config = compose_run([f"optimizer={name}"])
    cls = OPTIMIZER_CONFIGS[name]
    assert type(config.optimizer) is cls and config.optimizer == cls()
    assert set(tree["optimizer"]) == {f.name for f in dataclasses.fields(cls)}

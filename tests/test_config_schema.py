"""conf/ and recsys/config.py state one schema: every key a group's default option sets has
the dataclass's default, each optimizer option holds exactly its own dataclass's keys, and
Hydra composes every option onto the structured config derived from its dataclass. A default
changed in one place only fails here."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from experiments.cli import schema
from experiments.cli.compose import CONF_DIR, compose_config, compose_run
from recsys.config import GROUP_TYPES, OPTIMIZER_CONFIGS, RunConfig
from recsys.errors import UserError


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


def conf_options() -> list[tuple[str, str]]:
    return [(p.parent.name, p.stem) for p in sorted(CONF_DIR.glob("*/*.yaml"))
            if p.parent.name in GROUP_TYPES]


@pytest.mark.parametrize(("group", "option"), conf_options())
def test_every_option_in_conf_is_typed_by_its_dataclass_schema(group: str, option: str) -> None:
    """Hydra composes each option onto the structured config derived from its dataclass (the
    YAML holds values only): the composed node's type is that schema."""
    cfg = compose_config("sweep", [f"{group}={option}", "data.path=x.csv"])
    cls = OPTIMIZER_CONFIGS[option] if group == "optimizer" else GROUP_TYPES[group]
    assert OmegaConf.get_type(cfg[group]) is schema.structured(cls)


def test_hydra_refuses_a_wrong_type_in_an_option_file(tmp_path: Path) -> None:
    """A hand-edited option with a value of the wrong type fails while Hydra composes, as one
    line naming the key, the value and what the key takes."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    option = conf / "model" / "two_tower.yaml"
    option.write_text(option.read_text().replace("embedding_dim: 32", "embedding_dim: wide"))
    with pytest.raises(UserError, match=r"^model\.embedding_dim='wide' is invalid: expected an "
                                        r"integer$"):
        compose_config("train", [], conf)


def test_a_search_space_can_still_be_replaced_whole() -> None:
    """`~search.params` (a deletion, which a structured config refuses) stays possible: the
    search group is checked by SearchConfig, not by a schema."""
    cfg = compose_config("sweep", ["~search.params", "~search.conditional_params",
                                   "+search.params={model.embedding_dim: 'choice(8, 16)'}"])
    assert dict(cfg.search.params) == {"model.embedding_dim": "choice(8, 16)"}
    assert "conditional_params" not in cfg.search


@pytest.mark.parametrize(("override", "message"), [
    ("model.embedding_dim=abc", "model.embedding_dim='abc' is invalid: expected an integer"),
    ("train.top_ks=[10,a]", "train.top_ks=[10,a] is invalid: expected a list of integers"),
    ("optimizer.learning_rate=fast", "optimizer.learning_rate='fast' is invalid: expected a "
                                     "finite number"),
    ("data.synthetic.n_users=x", "data.synthetic.n_users='x' is invalid: expected an integer"),
])
def test_a_wrong_type_is_refused_by_the_schema_while_composing(override: str,
                                                              message: str) -> None:
    with pytest.raises(UserError) as refused:
        compose_config("sweep", [override])
    assert str(refused.value) == message


def test_the_search_defaults_are_the_dataclass_defaults() -> None:
    """conf/search/default.yaml's settings are SearchConfig's defaults; only the space (params,
    conditional_params, enqueue_trials) is the YAML's own."""
    from experiments.cli.compose import job_config
    from experiments.sweeping.search_config import SearchConfig

    composed = SearchConfig.from_dict(job_config(compose_config("sweep", []))["search"])
    space = ("params", "conditional_params", "enqueue_trials")
    assert dataclasses.replace(composed, **{k: getattr(SearchConfig(), k) for k in space}) == \
        SearchConfig()
    assert composed.params and composed.enqueue_trials  # the YAML does define a space

"""Typed configuration objects for one training run.

Hydra composes YAML in `conf/`; `experiments/` turns the composed tree into these dataclasses
with `RunConfig.from_dict`. Every field is checked here, so a bad value is reported by key name
before any data is read or any model is built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from recsys.errors import UserError

OPTIMIZERS = ("adagrad", "adam", "sgd")
SPLITS = ("random", "temporal")
BAD_LINE_POLICIES = ("error", "skip")


def _require(ok: bool, key: str, value: Any, valid: str) -> None:
    if not ok:
        raise UserError(f"{key}={value!r} is invalid: expected {valid}")


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of the embedded default data set (see `recsys.data.synthetic`)."""

    n_users: int = 8_000
    n_items: int = 2_000
    n_interactions: int = 80_000
    rank: int = 8
    popularity_exponent: float = 0.6
    preference_strength: float = 4.0
    user_activity_exponent: float = 2.0
    seed: int = 7

    def __post_init__(self) -> None:
        for key in ("n_users", "n_items", "n_interactions", "rank"):
            value = getattr(self, key)
            _require(isinstance(value, int) and value > 0, f"data.synthetic.{key}", value,
                     "a positive integer")


@dataclass(frozen=True)
class DataConfig:
    """Where the ratings come from and how they become train / validation / test."""

    name: str = "synthetic"
    path: str | None = None
    separator: str = ","
    header: bool = False
    column_names: tuple[str, ...] = ("userId", "productId", "Rating", "timestamp")
    user_column: str = "userId"
    item_column: str = "productId"
    rating_column: str = "Rating"
    timestamp_column: str | None = "timestamp"
    on_bad_lines: Literal["error", "skip"] = "error"
    sample_fraction: float = 1.0
    min_item_ratings: int = 1
    min_user_ratings: int = 1
    split: Literal["random", "temporal"] = "random"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 42
    cache_dir: str | None = "outputs/cache"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        _require(bool(self.path) or self.name == "synthetic", "data.path", self.path,
                 f"the path of a ratings file for data={self.name}")
        f = self.sample_fraction
        _require(isinstance(f, (int, float)) and 0 < f <= 1, "data.sample_fraction", f,
                 "a number in (0, 1]")
        for key in ("min_item_ratings", "min_user_ratings"):
            value = getattr(self, key)
            _require(isinstance(value, int) and value >= 1, f"data.{key}", value,
                     "an integer >= 1")
        for key in ("val_fraction", "test_fraction"):
            value = getattr(self, key)
            _require(isinstance(value, (int, float)) and 0 < value < 1, f"data.{key}", value,
                     "a number in (0, 1)")
        held_out = self.val_fraction + self.test_fraction
        _require(held_out < 1, "data.val_fraction + data.test_fraction", round(held_out, 6),
                 "a sum below 1 so that training data remains")
        _require(self.split in SPLITS, "data.split", self.split, " or ".join(SPLITS))
        _require(self.on_bad_lines in BAD_LINE_POLICIES, "data.on_bad_lines", self.on_bad_lines,
                 " or ".join(BAD_LINE_POLICIES))
        _require(len(self.separator) == 1, "data.separator", self.separator,
                 "a single character such as ',' or '\\t'")
        columns = [self.user_column, self.item_column, self.rating_column]
        if self.timestamp_column:
            columns.append(self.timestamp_column)
        if not self.header:
            for col in columns:
                _require(col in self.column_names, "data column", col,
                         f"one of data.column_names {list(self.column_names)}")
        if self.split == "temporal":
            _require(bool(self.timestamp_column), "data.timestamp_column", self.timestamp_column,
                     "a column name when data.split=temporal")


@dataclass(frozen=True)
class ModelConfig:
    """Two-tower model and the loss knobs that decide retrieval quality."""

    embedding_dim: int = 32
    tower_layers: tuple[int, ...] = ()
    logq_correction: bool = True
    temperature: float = 1.0
    remove_accidental_hits: bool = False
    l2: float = 0.0

    def __post_init__(self) -> None:
        d = self.embedding_dim
        _require(isinstance(d, int) and d > 0, "model.embedding_dim", d, "a positive integer")
        for width in self.tower_layers:
            _require(isinstance(width, int) and width > 0, "model.tower_layers", width,
                     "a list of positive integers")
        _require(self.temperature > 0, "model.temperature", self.temperature, "a number > 0")
        _require(self.l2 >= 0, "model.l2", self.l2, "a number >= 0")


@dataclass(frozen=True)
class OptimizerConfig:
    name: Literal["adagrad", "adam", "sgd"] = "adam"
    learning_rate: float = 0.003
    momentum: float = 0.0  # SGD only
    initial_accumulator_value: float = 0.1  # Adagrad only (Keras default)

    def __post_init__(self) -> None:
        _require(self.name in OPTIMIZERS, "optimizer.name", self.name, " or ".join(OPTIMIZERS))
        lr = self.learning_rate
        _require(isinstance(lr, (int, float)) and lr > 0, "optimizer.learning_rate", lr,
                 "a number > 0")
        _require(0 <= self.momentum < 1, "optimizer.momentum", self.momentum, "a number in [0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30  # a cap: early stopping ends most runs sooner
    batch_size: int = 1024
    eval_batch_size: int = 4096
    seed: int = 42
    early_stopping_patience: int | None = 3  # None: keep the last epoch
    jit_compile: bool = True
    fast_loss: bool = True  # catalog-column form of the same loss when n_items <= batch_size
    threads: int = 0  # 0: let TensorFlow use every core
    top_ks: tuple[int, ...] = (1, 5, 10, 50, 100)

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, key)
            _require(isinstance(value, int) and value > 0, f"train.{key}", value,
                     "a positive integer")
        p = self.early_stopping_patience
        _require(p is None or (isinstance(p, int) and p > 0), "train.early_stopping_patience",
                 p, "null or a positive integer")
        _require(self.threads >= 0, "train.threads", self.threads, "0 (auto) or a positive count")
        _require(len(self.top_ks) > 0 and all(k > 0 for k in self.top_ks), "train.top_ks",
                 list(self.top_ks), "a non-empty list of positive integers")


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run_dir: str | None = None  # where config, metrics and TensorBoard events go

    @classmethod
    def from_dict(cls, tree: dict[str, Any], run_dir: str | None = None) -> RunConfig:
        """Build from a plain nested dict (e.g. `OmegaConf.to_container(cfg, resolve=True)`)."""
        return cls(
            data=_build(DataConfig, tree.get("data", {}), "data"),
            model=_build(ModelConfig, tree.get("model", {}), "model"),
            optimizer=_build(OptimizerConfig, tree.get("optimizer", {}), "optimizer"),
            train=_build(TrainConfig, tree.get("train", {}), "train"),
            run_dir=run_dir,
        )


T = TypeVar("T")


def _build(cls: type[T], values: dict[str, Any], prefix: str) -> T:
    """Construct a config dataclass, turning lists into tuples and unknown keys into errors."""
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in (values or {}).items():
        if key not in known:
            raise UserError(f"{prefix}.{key} is not a known setting: valid keys are "
                            f"{sorted(known)}")
        if key == "synthetic":
            value = _build(SyntheticConfig, value, f"{prefix}.synthetic")
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)

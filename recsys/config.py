"""Typed configuration objects for one training run.

Hydra composes YAML in `conf/`; `experiments/` turns the composed tree into these dataclasses
with `RunConfig.from_dict`. Every field is checked here, so a bad value is reported by key name
before any data is read or any model is built.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from recsys.errors import UserError
from recsys.metrics import selectable, top
from recsys.typed import build, plain, require, unknown_setting, with_value

# Each choice list is spelled once, as the type of its field; the tuples that checks and
# messages list are read back from it.
Optimizer = Literal["adagrad", "adam", "sgd"]
Split = Literal["random", "temporal", "leave_one_out", "user_temporal"]
BadLinePolicy = Literal["error", "skip"]
Negatives = Literal["in_batch", "mixed", "catalog"]
UserTower = Literal["id", "history", "id+history", "sequence"]
OPTIMIZERS: tuple[str, ...] = typing.get_args(Optimizer)
SPLIT_STRATEGIES: tuple[str, ...] = typing.get_args(Split)
BAD_LINE_POLICIES: tuple[str, ...] = typing.get_args(BadLinePolicy)
NEGATIVES: tuple[str, ...] = typing.get_args(Negatives)
USER_TOWERS: tuple[str, ...] = typing.get_args(UserTower)
# Each baseline's key (eval.baselines) and the name tables print: spelled here only.
BASELINE_NAMES = {"popularity": "popularity", "itemknn": "item-kNN (cosine)", "ease": "EASE",
                  "ials": "iALS", "transitions": "transitions"}
BASELINES = tuple(BASELINE_NAMES)
TestHistory = Literal["train", "train+validation"]
TEST_HISTORIES: tuple[str, ...] = typing.get_args(TestHistory)
PER_USER_SPLITS = ("leave_one_out", "user_temporal")


MAX_SEED = 2**32 - 1  # NumPy's and TensorFlow's seeds
SEED_RANGE = f"an integer in [0, {MAX_SEED}] (2**32 - 1)"


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of the embedded default data set (see `recsys.synthetic`)."""

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
            require(isinstance(value, int) and value > 0, f"data.synthetic.{key}", value,
                     "a positive integer")
        require(0 <= self.seed <= MAX_SEED, "data.synthetic.seed", self.seed, SEED_RANGE)
        for key, most in (("n_users", 10_000_000), ("n_items", 1_000_000),
                          ("n_interactions", 50_000_000)):
            require(getattr(self, key) <= most, f"data.synthetic.{key}", getattr(self, key),
                    f"at most {most:,} (the generator holds the data in memory; for larger "
                    "sets use a ratings file: data.path=...)")
        require(self.n_interactions <= self.n_users * self.n_items,
                "data.synthetic.n_interactions", self.n_interactions,
                f"at most n_users x n_items = {self.n_users * self.n_items:,} (each user rates "
                "an item at most once)")
        require(self.user_activity_exponent > 1, "data.synthetic.user_activity_exponent",
                self.user_activity_exponent, "a number > 1 (a Zipf exponent)")


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
    on_bad_lines: BadLinePolicy = "error"
    sample_fraction: float = 1.0
    min_item_ratings: int = 1
    min_user_ratings: int = 1
    split: Split = "random"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 42
    cache_dir: str | None = "outputs/cache"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def unused(self) -> dict[str, str]:
        """Keys this configuration carries but does not read, and why (every option has every
        key: a reader of `--cfg job` should not take them for settings in force)."""
        unused = {}
        if self.path:
            unused["data.synthetic"] = "data.path is set: the file is read, nothing generated"
        if self.header:
            unused["data.column_names"] = "data.header=true: the file's first line names them"
        return unused

    def __post_init__(self) -> None:
        require(bool(self.path) or self.name == "synthetic", "data.path", self.path,
                 f"the path of a ratings file for data={self.name}")
        require(0 <= self.seed <= MAX_SEED, "data.seed", self.seed, SEED_RANGE)
        roles = {"user": self.user_column, "item": self.item_column,
                 "rating": self.rating_column, "timestamp": self.timestamp_column}
        for role, column in roles.items():
            shared = [r for r, c in roles.items() if c == column and r != role and c]
            require(not shared, f"data.{role}_column", column,
                    f"a column of its own (data.{shared[0] if shared else ''}_column names it "
                    "too)")
        f = self.sample_fraction
        require(isinstance(f, (int, float)) and 0 < f <= 1, "data.sample_fraction", f,
                 "a number in (0, 1]")
        for key in ("min_item_ratings", "min_user_ratings"):
            value = getattr(self, key)
            require(isinstance(value, int) and value >= 1, f"data.{key}", value,
                     "an integer >= 1")
        for key in ("val_fraction", "test_fraction"):
            value = getattr(self, key)
            require(isinstance(value, (int, float)) and 0 < value < 1, f"data.{key}", value,
                     "a number in (0, 1)")
        held_out = self.val_fraction + self.test_fraction
        require(held_out < 1, "data.val_fraction + data.test_fraction", round(held_out, 6),
                 "a sum below 1 so that training data remains")
        require(self.split in SPLIT_STRATEGIES, "data.split", self.split,
                " or ".join(SPLIT_STRATEGIES))
        require(self.on_bad_lines in BAD_LINE_POLICIES, "data.on_bad_lines", self.on_bad_lines,
                 " or ".join(BAD_LINE_POLICIES))
        if self.separator in ("\\t", "tab"):  # a shell and Hydra pass '\t' as two characters
            object.__setattr__(self, "separator", "\t")
        require(len(self.separator) == 1, "data.separator", self.separator,
                 "a single character such as ',' or tab (data.separator=tab)")
        columns = [self.user_column, self.item_column, self.rating_column]
        if self.timestamp_column:
            columns.append(self.timestamp_column)
        if not self.header:
            for col in columns:
                require(col in self.column_names, "data column", col,
                         f"one of data.column_names {list(self.column_names)}")
        if self.split != "random":
            require(bool(self.timestamp_column), "data.timestamp_column", self.timestamp_column,
                     f"a column name when data.split={self.split}")


# negatives=catalog scores every item for every row of a batch (and keeps the scores for the
# gradient): above this catalog size a step at batch 1024 holds > 1 GB of scores.
CATALOG_SOFTMAX_MAX_ITEMS = 100_000


@dataclass(frozen=True)
class ModelConfig:
    """Two-tower model and the loss knobs that decide retrieval quality (`recsys.model`)."""

    embedding_dim: int = 32
    tower_layers: tuple[int, ...] = ()
    user_tower: UserTower = "history"
    history_dropout: float = 0.0  # history towers: drop each history item with this probability
    history_max_len: int = 32  # history towers: items per user in a training step (a fresh
    #                            random draw for heavier users; serving reads them all)
    # sequence tower (SASRec): the latest items read, attention blocks, heads, dropout
    sequence_max_len: int = 50
    sequence_blocks: int = 2
    sequence_heads: int = 1
    sequence_dropout: float = 0.2
    negatives: Negatives = "in_batch"
    sampled_negatives: int = 1024  # negatives=mixed: uniform catalog samples per step
    # negatives=in_batch: at most this many columns per row. A larger batch is scored in
    # groups of this many rows, each row against its own group's positives (one optimizer
    # step for the whole batch): B x columns scores a step instead of B x B. None: the batch.
    batch_columns: int | None = 2048
    logq_correction: bool = True
    normalize: bool = False  # cosine scores (both towers L2-normalized), / temperature
    temperature: float = 1.0
    remove_accidental_hits: bool = False
    l2: float = 0.0

    @property
    def uses_ids(self) -> bool:
        return self.user_tower in ("id", "id+history")

    @property
    def uses_history(self) -> bool:
        return self.user_tower in ("history", "id+history")

    @property
    def uses_sequence(self) -> bool:
        return self.user_tower == "sequence"

    def groups_batch(self, batch_size: int) -> bool:
        """`batch_columns` cuts a batch of this size into groups."""
        return self.negatives == "in_batch" and self.batch_columns is not None \
            and batch_size > self.batch_columns

    def __post_init__(self) -> None:
        d = self.embedding_dim
        require(isinstance(d, int) and d > 0, "model.embedding_dim", d, "a positive integer")
        for width in self.tower_layers:
            require(isinstance(width, int) and width > 0, "model.tower_layers", width,
                     "a list of positive integers")
        require(self.user_tower in USER_TOWERS, "model.user_tower", self.user_tower,
                " or ".join(USER_TOWERS))
        require(self.negatives in NEGATIVES, "model.negatives", self.negatives,
                " or ".join(NEGATIVES))
        require(0 <= self.history_dropout < 1, "model.history_dropout", self.history_dropout,
                "a number in [0, 1)")
        require(self.history_max_len > 0, "model.history_max_len", self.history_max_len,
                "a positive integer")
        for key in ("sequence_max_len", "sequence_blocks", "sequence_heads"):
            value = getattr(self, key)
            require(isinstance(value, int) and value > 0, f"model.{key}", value,
                    "a positive integer")
        require(d % self.sequence_heads == 0, "model.sequence_heads", self.sequence_heads,
                f"a divisor of model.embedding_dim={d} (each head reads dim / heads)")
        require(0 <= self.sequence_dropout < 1, "model.sequence_dropout", self.sequence_dropout,
                "a number in [0, 1)")
        require(self.sampled_negatives > 0, "model.sampled_negatives", self.sampled_negatives,
                "a positive integer")
        require(self.batch_columns is None or (isinstance(self.batch_columns, int)
                                               and self.batch_columns >= 2),
                "model.batch_columns", self.batch_columns, "null or an integer >= 2")
        require(self.temperature > 0, "model.temperature", self.temperature, "a number > 0")
        require(self.l2 >= 0, "model.l2", self.l2, "a number >= 0")


LAZY_ADAM_ROWS = 1_000_000


@dataclass(frozen=True)
class OptimizerConfig:
    """What every optimizer takes. Each option of the `optimizer` group is its own subclass
    with its own keys (`AdamConfig`, `AdagradConfig`, `SGDConfig`), as its YAML file holds
    them: a key of another optimizer is an unknown setting, not a silent no-op."""

    name: Optimizer = "adam"
    learning_rate: float = 0.003

    @classmethod
    def variant(cls, values: dict[str, Any]) -> type[OptimizerConfig]:
        """The subclass a plain tree names (`name: adagrad` -> AdagradConfig)."""
        name = values.get("name", "adam")
        require(name in OPTIMIZERS, "optimizer.name", name, " or ".join(OPTIMIZERS))
        return OPTIMIZER_CONFIGS[name]

    @property
    def state_slots(self) -> int:
        """Optimizer state kept per weight (memory estimates)."""
        return 0

    def use_lazy(self, table_rows: int) -> bool:
        return False

    def __post_init__(self) -> None:
        require(self.name in OPTIMIZERS, "optimizer.name", self.name, " or ".join(OPTIMIZERS))
        own = next((n for n, c in OPTIMIZER_CONFIGS.items() if c is type(self)), self.name)
        require(self.name == own, "optimizer.name", self.name, f"{own} ({type(self).__name__})")
        lr = self.learning_rate
        require(isinstance(lr, (int, float)) and lr > 0, "optimizer.learning_rate", lr,
                 "a number > 0")


@dataclass(frozen=True)
class AdamConfig(OptimizerConfig):
    name: Optimizer = "adam"
    learning_rate: float = 0.003
    # Update only the rows a batch touches (recsys.optim); "auto": when the embedding tables
    # hold LAZY_ADAM_ROWS rows or more, where dense Adam's per-step rewrite of every row
    # dominates the step (13x a lazy step at 3.3M users, --mode steps).
    lazy: bool | Literal["auto"] = "auto"

    @property
    def state_slots(self) -> int:
        return 2

    def use_lazy(self, table_rows: int) -> bool:
        return self.lazy is True or (self.lazy == "auto" and table_rows >= LAZY_ADAM_ROWS)


@dataclass(frozen=True)
class AdagradConfig(OptimizerConfig):
    name: Optimizer = "adagrad"
    learning_rate: float = 0.1  # the seed notebook's
    initial_accumulator_value: float = 0.1  # Keras default

    @property
    def state_slots(self) -> int:
        return 1


@dataclass(frozen=True)
class SGDConfig(OptimizerConfig):
    name: Optimizer = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9  # 0: plain SGD

    @property
    def state_slots(self) -> int:
        return 1 if self.momentum else 0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 <= self.momentum < 1, "optimizer.momentum", self.momentum, "a number in [0, 1)")


OPTIMIZER_CONFIGS: dict[str, type[OptimizerConfig]] = {
    "adagrad": AdagradConfig, "adam": AdamConfig, "sgd": SGDConfig}


MIN_VAL_PAIRS = 2_000  # below this a per-epoch signal is mostly noise (SE ~0.01 at 0.2)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30  # a cap: early stopping ends most runs sooner
    batch_size: int = 1024
    eval_batch_size: int = 4096
    seed: int = 42
    early_stopping_patience: int | None = 3  # None: keep the last epoch
    # The learning rate is multiplied by this after `lr_plateau_patience` epochs without a
    # better monitor (Keras's ReduceLROnPlateau); None: a constant rate.
    lr_plateau_factor: float | None = None
    lr_plateau_patience: int = 1
    jit_compile: bool = True  # XLA for id towers (a history tower's step runs without it)
    fast_loss: bool = True  # catalog-column form of the same loss when n_items <= batch_size
    threads: int = 0  # 0: let TensorFlow use every core
    top_ks: tuple[int, ...] = (1, 5, 10, 50, 100)
    # Per-epoch validation (early stopping, pruning) on this many validation pairs, drawn once
    # with data.seed (the same pairs for every trial); reported metrics use every pair.
    val_subsample: int | None = 25_000  # null: every pair every epoch
    # ... and at most this many (pair, catalog item) scores, so that the per-epoch cost stays
    # flat as the catalog grows: fewer pairs for larger catalogs (never under MIN_VAL_PAIRS).
    val_score_budget: int | None = 600_000_000  # null: no limit
    # The validation metric that picks the kept epoch (early stopping) and the baselines' k
    # and λ: val_top_<k>, val_ndcg_<k> (k in top_ks) or val_mrr; null: val_top_<max(top_ks)>.
    monitor: str | None = None
    save_vectors: bool = True  # vectors.npz (what best/model is built from)
    vectors_dtype: str = "float32"  # float16 halves vectors.npz

    @property
    def monitor_metric(self) -> str:
        return self.monitor or top(max(self.top_ks)).name

    def epoch_val_pairs(self, n_items: int) -> int | None:
        """How many validation pairs each epoch ranks against `n_items` candidates (None:
        all): `val_subsample`, lowered to fit `val_score_budget`."""
        by_budget = None if self.val_score_budget is None else max(
            MIN_VAL_PAIRS, self.val_score_budget // max(n_items, 1))
        limits = [v for v in (self.val_subsample, by_budget) if v is not None]
        return min(limits) if limits else None

    def __post_init__(self) -> None:
        v = self.val_subsample
        require(v is None or (isinstance(v, int) and v > 0), "train.val_subsample", v,
                "null (every pair) or a positive number of validation pairs")
        b = self.val_score_budget
        require(b is None or (isinstance(b, int) and b > 0), "train.val_score_budget", b,
                "null (no limit) or a positive number of scores")
        require(self.vectors_dtype in ("float32", "float16"), "train.vectors_dtype",
                self.vectors_dtype, "float32 or float16")
        for key in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, key)
            require(isinstance(value, int) and value > 0, f"train.{key}", value,
                     "a positive integer")
        require(0 <= self.seed <= MAX_SEED, "train.seed", self.seed, SEED_RANGE)
        p = self.early_stopping_patience
        require(p is None or (isinstance(p, int) and p > 0), "train.early_stopping_patience",
                 p, "null or a positive integer")
        f = self.lr_plateau_factor
        require(f is None or 0 < f < 1, "train.lr_plateau_factor", f,
                "null (a constant learning rate) or a number between 0 and 1")
        require(isinstance(self.lr_plateau_patience, int) and self.lr_plateau_patience > 0,
                "train.lr_plateau_patience", self.lr_plateau_patience, "a positive integer")
        require(self.threads >= 0, "train.threads", self.threads, "0 (auto) or a positive count")
        require(len(self.top_ks) > 0 and all(k > 0 for k in self.top_ks), "train.top_ks",
                 list(self.top_ks), "a non-empty list of positive integers")
        metrics = selectable(self.top_ks)
        require(self.monitor is None or self.monitor in metrics, "train.monitor", self.monitor,
                "null or one of " + ", ".join(metrics))


@dataclass(frozen=True)
class EvalConfig:
    """How held-out pairs are ranked and what is reported beside the model."""

    exclude_seen: bool = False  # leave each user's training items out of the ranking
    # What a test pair's user is ranked from: their training items, or (per-user splits)
    # those and their validation items, which come right before the test item (the
    # sequential-recommendation literature's leave-one-out protocol).
    test_history: TestHistory = "train"
    baselines: tuple[str, ...] = ("itemknn", "ease", "ials", "transitions")  # + popularity
    baseline_max_items: int = 20_000  # item-kNN and EASE keep a dense item x item matrix
    # Each baseline's grid is compared on at most this many validation pairs (one fixed draw);
    # the chosen value is then reported on all of them and on test (None: every pair)
    baseline_tune_pairs: int | None = 10_000
    knn_neighbors: tuple[int, ...] = (10, 50, 200)  # item-kNN's k, tuned on validation
    ease_lambdas: tuple[float, ...] = (100.0, 500.0, 2500.0)  # EASE's λ, tuned likewise
    ease_tune_items: int = 4000  # λ is tuned on this many most-rated items (0: every item)
    # iALS (implicit's AlternatingLeastSquares), each combination tried on validation
    ials_factors: tuple[int, ...] = (32, 128)
    ials_regularization: tuple[float, ...] = (10.0, 100.0, 1000.0)
    ials_alpha: tuple[float, ...] = (10.0, 40.0)
    ials_iterations: int = 15
    ials_tune_iterations: int = 5  # the grid is compared at this many; the chosen is refitted
    ials_max_pairs: int = 20_000_000  # skipped above this many training pairs (time)
    # transitions: the latest items read (the latest weighs 1, each earlier one half) and the
    # weight of item-cosine beside the counts, each combination tried on validation
    transition_windows: tuple[int, ...] = (1, 3)
    transition_blends: tuple[float, ...] = (0.1, 1.0)
    interval_resamples: int = 500  # bootstrap resamples of users for 95% intervals (0: off)

    def __post_init__(self) -> None:
        for name in self.baselines:
            require(name in BASELINES, "eval.baselines", name, " or ".join(BASELINES))
        require(self.baseline_max_items > 0, "eval.baseline_max_items",
                self.baseline_max_items, "a positive integer")
        v = self.baseline_tune_pairs
        require(v is None or (isinstance(v, int) and v > 0), "eval.baseline_tune_pairs", v,
                "a positive integer, or null for every validation pair")
        require(all(k > 0 for k in self.knn_neighbors), "eval.knn_neighbors",
                list(self.knn_neighbors), "a list of positive integers")
        require(all(lam > 0 for lam in self.ease_lambdas), "eval.ease_lambdas",
                list(self.ease_lambdas), "a list of numbers > 0")
        for name, grid in (("itemknn", self.knn_neighbors), ("ease", self.ease_lambdas)):
            key = "knn_neighbors" if name == "itemknn" else "ease_lambdas"
            require(bool(grid) or name not in self.baselines, f"eval.{key}", list(grid),
                    f"at least one value while eval.baselines holds {name} (or drop it "
                    "from eval.baselines)")
        for key in ("ials_factors", "ials_regularization", "ials_alpha"):
            grid = getattr(self, key)
            require(all(v > 0 for v in grid) and (bool(grid) or "ials" not in self.baselines),
                    f"eval.{key}", list(grid), "a non-empty list of numbers > 0")
        require(self.test_history in TEST_HISTORIES, "eval.test_history", self.test_history,
                " or ".join(TEST_HISTORIES))
        for key in ("transition_windows", "transition_blends"):
            grid = getattr(self, key)
            require(all(v > 0 for v in grid) and (bool(grid) or "transitions" not in
                                                  self.baselines),
                    f"eval.{key}", list(grid), "a non-empty list of numbers > 0")
        require(self.ials_iterations >= 1, "eval.ials_iterations", self.ials_iterations,
                "an integer >= 1")
        require(1 <= self.ials_tune_iterations <= self.ials_iterations,
                "eval.ials_tune_iterations", self.ials_tune_iterations,
                f"an integer in [1, eval.ials_iterations={self.ials_iterations}]")
        require(self.ials_max_pairs >= 1, "eval.ials_max_pairs", self.ials_max_pairs,
                "a positive integer")
        require(self.ease_tune_items >= 0, "eval.ease_tune_items", self.ease_tune_items,
                "an integer >= 0 (0: tune on the whole catalog)")
        require(self.interval_resamples >= 0, "eval.interval_resamples",
                self.interval_resamples, "an integer >= 0")


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=AdamConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        require(self.eval.test_history == "train" or self.data.split in PER_USER_SPLITS,
                "eval.test_history", self.eval.test_history,
                f"train with data.split={self.data.split} (train+validation needs a per-user "
                f"split, {' or '.join(PER_USER_SPLITS)}, where a user's validation items come "
                "before their test items)")

    @property
    def test_history_has_validation(self) -> bool:
        return self.eval.test_history == "train+validation"

    @classmethod
    def from_dict(cls, tree: dict[str, Any]) -> RunConfig:
        """Build from a plain nested dict (e.g. `OmegaConf.to_container(cfg, resolve=True)`)."""
        groups = tuple(GROUP_TYPES)
        unknown = sorted(set(tree) - set(groups))
        if unknown:
            raise unknown_setting("", unknown[0], list(groups))
        return cls(**{g: build(GROUP_TYPES[g], tree.get(g, {}), g) for g in groups})

    def uses_catalog_loss(self, n_items: int, batch: int | None = None) -> bool:
        """The catalog-column form of the whole batch's in-batch loss (`train.fast_loss`):
        no more items than the batch has rows. Where `model.batch_columns` groups the batch,
        only for a catalog no larger than a group: its B x items scores then cost no more
        than the groups' B x columns, and every row sees the whole batch's positives.
        negatives=catalog: always (the exact softmax, B x items; the in-batch form would add
        the batch's B columns to them)."""
        batch = batch or self.train.batch_size
        if self.model.negatives == "catalog":
            return self.train.fast_loss
        columns = self.model.batch_columns
        grouped = self.model.groups_batch(batch)
        return self.train.fast_loss and n_items <= batch \
            and (not grouped or n_items <= (columns or 0))

    def step_columns(self, n_items: int, batch: int | None = None) -> int:
        """The columns each row of a training step is scored against: the catalog's items
        in the catalog form, else a group's rows or the whole batch's."""
        batch = batch or self.train.batch_size
        if self.uses_catalog_loss(n_items, batch):
            return n_items
        return self.model.batch_columns if self.model.groups_batch(batch) else batch

    def to_dict(self) -> dict[str, Any]:
        """The plain tree `from_dict` reads back: what a run's config.yaml holds."""
        return plain(dataclasses.asdict(self))

    def with_values(self, values: dict[str, Any]) -> RunConfig:
        """This config with dotted keys set (`{"model.embedding_dim": 64}`: a trial's
        suggested values), each checked as `from_dict` checks it."""
        config = self
        for key, value in values.items():
            config = with_value(config, key.split("."), value, "")
        return config

    def check_data(self, n_users: int, n_items: int, most_seen: int = 0) -> None:
        """What the config asks of data with these counts (checked before anything is
        written): top-k below the catalog (less the items a held-out user rated in training,
        `most_seen` at most, when eval.exclude_seen leaves them out), an exact softmax on a
        small catalog. Whether the model fits in memory: `recsys.memory.check_fits`."""
        k = max(self.train.top_ks)
        if n_items < 2:
            raise UserError(f"the catalog holds {n_items} item(s) after data.min_item_ratings="
                            f"{self.data.min_item_ratings}: there is nothing to rank; use data "
                            "with more items or a lower data.min_item_ratings")
        candidates = n_items - (most_seen if self.eval.exclude_seen else 0)
        if k >= candidates and candidates < n_items:
            raise UserError(f"eval.exclude_seen=true leaves a held-out user {candidates} "
                            f"candidate items (they rated {most_seen} of the {n_items} in "
                            f"training), not more than k={k} of train.top_ks: every scorer "
                            f"would score 1.0 at that k; use train.top_ks below {candidates} "
                            "or eval.exclude_seen=false")
        if k >= n_items:  # every scorer would hit at that k: a constant to select on
            raise UserError(f"train.top_ks={sorted(self.train.top_ks)} holds k={k}, not below "
                            f"the catalog's {n_items} items (every scorer would score 1.0 at "
                            f"that k): use values below {n_items}")
        sampled = self.model.sampled_negatives
        if self.model.negatives == "mixed" and sampled > n_items:
            raise UserError(f"model.sampled_negatives={sampled} is more than the catalog's "
                            f"{n_items} items: use at most {n_items} (each step draws that many "
                            "items; model.negatives=catalog is the exact softmax over all)")
        if self.model.negatives == "catalog" and n_items > CATALOG_SOFTMAX_MAX_ITEMS:
            raise UserError(f"model.negatives=catalog scores all {n_items} items for every row:"
                            f" allowed up to {CATALOG_SOFTMAX_MAX_ITEMS} items; use mixed or "
                            "in_batch")


GROUP_TYPES: dict[str, type] = {"data": DataConfig, "model": ModelConfig,
                                 "optimizer": OptimizerConfig, "train": TrainConfig,
                                 "eval": EvalConfig}

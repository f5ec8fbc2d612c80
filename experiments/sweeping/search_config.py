"""The `search` config group as typed settings, checked where they are read (like the training
config in recsys.config): a wrong type, value or unknown key is one error naming the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from recsys.config import MAX_SEED, SEED_RANGE
from recsys.errors import UserError
from recsys.metrics import top
from recsys.typed import build, require


@dataclass(frozen=True)
class SamplerConfig:
    name: Literal["tpe", "random"] = "tpe"
    seed: int | None = 42
    n_startup_trials: int = 8

    def __post_init__(self) -> None:
        require(self.seed is None or 0 <= self.seed <= MAX_SEED, "search.sampler.seed",
                self.seed, f"null or {SEED_RANGE}")
        require(self.n_startup_trials >= 0, "search.sampler.n_startup_trials",
                 self.n_startup_trials, "an integer >= 0")


@dataclass(frozen=True)
class PrunerConfig:
    name: Literal["median", "best_curve", "hyperband", "none"] = "best_curve"
    n_startup_trials: int = 5
    n_warmup_steps: int = 2
    min_resource: int = 2
    reduction_factor: int = 3
    ratio: float = 0.9  # best_curve: cut below this share of the best trial's curve

    def __post_init__(self) -> None:
        for key in ("n_startup_trials", "n_warmup_steps"):
            require(getattr(self, key) >= 0, f"search.pruner.{key}", getattr(self, key),
                     "an integer >= 0")
        require(self.min_resource >= 1, "search.pruner.min_resource", self.min_resource,
                 "an integer >= 1")
        require(self.reduction_factor >= 2, "search.pruner.reduction_factor",
                 self.reduction_factor, "an integer >= 2")
        require(0 < self.ratio <= 1, "search.pruner.ratio", self.ratio,
                 "a number in (0, 1]")


@dataclass(frozen=True)
class ConfirmConfig:
    top_n: int = 0  # after the study, train the best N trials again (0: off)
    seeds: int = 3  # ... this many times each, with new training seeds

    def __post_init__(self) -> None:
        require(self.top_n >= 0, "search.confirm.top_n", self.top_n, "an integer >= 0")
        require(self.seeds >= 1, "search.confirm.seeds", self.seeds, "an integer >= 1")


@dataclass(frozen=True)
class FidelityConfig:
    """Successive halving over data.sample_fraction (experiments/sweeping/fidelity.py)."""

    max_rungs: int = 4  # 1: off; else at most this many data fractions, 1/factor apart
    reduction_factor: int = 3  # each rung trains on `factor` x the data of the one below and
    #                            admits the best 1/factor of the trials that reached it
    min_rung_pairs: int = 200_000  # the smallest rung trains on at least this many pairs

    def __post_init__(self) -> None:
        require(self.max_rungs >= 1, "search.fidelity.max_rungs", self.max_rungs,
                 "an integer >= 1 (1: off)")
        require(self.reduction_factor >= 2, "search.fidelity.reduction_factor",
                 self.reduction_factor, "an integer >= 2")
        require(self.min_rung_pairs >= 1, "search.fidelity.min_rung_pairs",
                 self.min_rung_pairs, "an integer >= 1")


# A study maximizes: every metric (top-k accuracy, NDCG@k, MRR) is better higher, and trials
# early-stop and the baselines tune by the larger value. There is no search.direction: its
# only valid value would be this one.
DIRECTION = "maximize"


@dataclass(frozen=True)
class SearchConfig:
    study_name: str = "default"
    dir: str = "outputs/sweeps/default"
    storage: str = "sqlite:///outputs/sweeps/default/study.db"
    n_trials: int = 20
    timeout: float | None = None
    metric: str = top(100).name
    n_workers: int = 1
    heartbeat_interval: int = 30
    grace_period: int = 90
    max_retry: int = 2
    trials_per_process: int = 0
    keep_vectors: int = 3
    allow_changed_base: bool = False
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    confirm: ConfirmConfig = field(default_factory=ConfirmConfig)
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)
    enqueue_trials: tuple[dict[str, Any], ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    conditional_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, low in (("n_trials", 1), ("n_workers", 1), ("trials_per_process", 0),
                         ("heartbeat_interval", 1), ("grace_period", 1), ("max_retry", 0),
                         ("keep_vectors", 1)):
            require(getattr(self, key) >= low, f"search.{key}", getattr(self, key),
                     f"an integer >= {low}")
        require(self.timeout is None or self.timeout > 0, "search.timeout", self.timeout,
                 "null or a number of seconds > 0")
        name = self.study_name
        require(bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")
                and name.isprintable() and len(name.encode()) <= 200,
                "search.study_name", name, "a non-empty name of at most 200 bytes, without / "
                "or control characters (it names the study's folder under outputs/sweeps)")
        require(":memory:" not in self.storage and self.storage.rstrip("/") != "sqlite:",
                "search.storage", self.storage, "a storage every worker and later run can "
                "open: an in-memory SQLite database is private to one process and lost at "
                "its end (use sqlite:///path/study.db)")
        require(self.grace_period > self.heartbeat_interval, "search.grace_period",
                 self.grace_period, f"more seconds than search.heartbeat_interval "
                 f"({self.heartbeat_interval}), or every running trial looks dead")
        for i, params in enumerate(self.enqueue_trials):
            if not isinstance(params, dict):
                raise UserError(f"search.enqueue_trials[{i}]={params!r} is invalid: expected a "
                                "mapping such as {optimizer.learning_rate: 0.003}")
        for key in ("params", "conditional_params"):
            value = getattr(self, key)
            if not isinstance(value, dict):
                raise UserError(f"search.{key}={value!r} is invalid: expected a mapping of "
                                "config keys to search expressions")

    @classmethod
    def from_dict(cls, tree: dict[str, Any]) -> SearchConfig:
        tree = dict(tree)
        for key in ("params", "conditional_params", "enqueue_trials"):
            if tree.get(key) is None:  # `~search.params` or `null`: nothing of that kind
                tree.pop(key, None)
        return build(cls, tree, "search")

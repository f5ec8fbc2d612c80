"""A sweep's plan: the composed config, the typed search settings and the checked search
space; built by the sweep command and, from the same command line, by each worker."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from optuna.distributions import CategoricalDistribution

from experiments.cli.compose import (
    CONF_DIR,
    TRAIN_GROUPS,
    compose_config,
    job_config,
)
from experiments.sweeping.folder import StudyFolder
from experiments.sweeping.search_config import SearchConfig
from experiments.sweeping.space import (
    Param,
    dead_conditions,
    format_value,
    optuna_params,
    parse_space,
)
from experiments.sweeping.trial_config import TrialComposer
from recsys.config import PER_USER_SPLITS, RunConfig
from recsys.errors import UserError
from recsys.metrics import selectable

GROUPS = (*TRAIN_GROUPS, "experiment")  # conf/experiment/ presets choose among the others


@dataclass(frozen=True)
class SweepPlan:
    search: SearchConfig
    space: list[Param]
    base_overrides: list[str]  # the user's overrides that shape every trial's training config
    base: RunConfig  # the training config every trial starts from
    fingerprint: dict[str, Any]  # what a resumed study must share with the one stored
    argv: list[str]  # the command line, for worker processes
    # Each multi-fidelity rung's share of a trial's training pairs (fidelity.py), known once
    # the data is: () or one rung: plain trials, pruned per epoch.
    rungs: tuple[float, ...] = ()

    @property
    def study_dir(self) -> Path:
        return Path(self.search.dir)

    @property
    def folder(self) -> StudyFolder:
        return StudyFolder(self.study_dir)

    @property
    def ks(self) -> list[int]:
        return sorted(self.base.train.top_ks)

    def with_rungs(self, pool_pairs: int) -> SweepPlan:
        """This plan with its rungs for a training pool of `pool_pairs` (see fidelity.py)."""
        from experiments.sweeping.fidelity import rung_scales

        if any(p.key == "data.sample_fraction" and p.distribution is not None
               for p in self.space):  # the fraction is the fidelity: it cannot be both
            return replace(self, rungs=())
        rungs = rung_scales(pool_pairs * self.base.data.sample_fraction, self.search.fidelity)
        if len(rungs) == 1:
            return replace(self, rungs=rungs)
        # Trials pruned on other rungs are not comparable: a resume must use the same ones.
        fingerprint = {**self.fingerprint, "search.fidelity.rungs": [round(r, 6) for r in rungs],
                       "search.fidelity.reduction_factor": self.search.fidelity.reduction_factor}
        return replace(self, rungs=rungs, fingerprint=fingerprint)

    def open_study(self, storage: Any) -> tuple[Any, int | None]:
        """Create or resume the study (see study.open_study); the main process and every
        worker open it alike: same sampler, pruner and fingerprint check."""
        from experiments.sweeping.study import open_study

        return open_study(storage, self.search, max_resource=self.base.train.epochs,
                          fingerprint=self.fingerprint, rungs=len(self.rungs))


def plan_sweep(tree: dict[str, Any], argv: list[str], check: bool = True) -> SweepPlan:
    """`tree`: conf/sweep.yaml composed with `argv`. `check`: compose every choice and bound
    of the space now and check the enqueued trials (the main process; workers skip it)."""
    from experiments.sweeping.study import base_fingerprint  # Optuna storages: not for --help

    tree = dict(tree)
    search = SearchConfig.from_dict(tree.pop("search"))  # typed: bad values stop here
    base_overrides = trial_overrides(argv)
    base = RunConfig.from_dict(tree)
    metrics = selectable(base.train.top_ks)
    given = any(arg.lstrip("+~").startswith("search.metric=") for arg in argv)
    if base.train.monitor and not given:
        # train.monitor set by an experiment option (experiment=sequential) or on the
        # command line: the study ranks on it unless search.metric says otherwise.
        search = replace(search, metric=base.train.monitor)
    if search.metric not in metrics:
        raise UserError(f"search.metric={search.metric!r} is not a validation metric: "
                        f"available are {', '.join(metrics)}")
    explicit = explicit_values(base_overrides)
    if "train.monitor" in explicit and base.train.monitor_metric != search.metric:
        raise UserError(f"train.monitor={base.train.monitor_metric} differs from search.metric="
                        f"{search.metric}: a sweep keeps each trial's epoch by the metric it "
                        f"ranks trials on; set search.metric={base.train.monitor_metric} to "
                        "rank on it, or drop train.monitor")
    if check and (option := explicit.get("experiment")):
        note_experiment_searched(option, search, explicit)
    search = pin_explicit(search, explicit, tree, notes=check)
    search = drop_inert(search, base, notes=check)
    if search.metric != base.train.monitor_metric:
        # Early stopping, pruning and the baselines' tuning follow the study's metric, and
        # each trial's saved config says so (its re-run selects the same way).
        base_overrides = [*base_overrides, f"train.monitor={search.metric}"]
        tree = {**tree, "train": {**tree["train"], "monitor": search.metric}}
        base = RunConfig.from_dict(tree)
    space = parse_space(search.params, search.conditional_params, tree, group_options())
    if check:
        for note in dead_conditions(space):
            print(note, flush=True)
        check_space(space, base_overrides)
        keys = {p.key for p in space}
        for params in search.enqueue_trials:
            unknown = sorted(set(params) - keys)
            if unknown:
                raise UserError(f"search.enqueue_trials names {unknown}, which are not search "
                                f"parameters: valid are {sorted(keys)} (replacing search.params? "
                                "set search.enqueue_trials=[] or enqueue your own)")
            check_enqueued(space, params)
    return SweepPlan(search, space, base_overrides, base, base_fingerprint(tree, search),
                     list(argv))


def explicit_values(overrides: list[str]) -> dict[str, str]:
    """The keys the user set on the command line (`key=value`, not `+key`/`~key`) and their
    values as typed."""
    out = {}
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and not key.startswith(("+", "~")):
            out[key] = value
    return out


def pin_explicit(search: SearchConfig, explicit: dict[str, str], tree: dict[str, Any],
                 notes: bool = True) -> SearchConfig:
    """A searched key the user set on the command line is fixed at that value for every
    trial (as `search.params.KEY=VALUE` would), with a note: it was silently searched over.
    Enqueued start points take the pinned value."""
    from experiments.sweeping.space import flatten

    flat, params = flatten(tree), dict(search.params)
    conditional = {c: dict(block or {}) for c, block in search.conditional_params.items()}
    pinned: dict[str, Any] = {}
    for key, text in explicit.items():
        if key not in params and not any(key in block for block in conditional.values()):
            continue
        value = text if key in GROUPS else flat.get(key, text)
        pinned[key] = value
        if notes:
            searched = params.get(key) or next(b[key] for b in conditional.values() if key in b)
            print(f"note: {key}={format_value(value)} is set on the command line: fixed for "
                  f"every trial (the study searched {searched})", flush=True)
        if key in params:
            params[key] = value
        for block in conditional.values():
            if key in block:
                block[key] = value
    if not pinned:
        return search
    # A start point keeps its other values at the pinned one; one that chose another group
    # option (optimizer=adam, with Adam's learning rate) is another recipe: dropped.
    enqueued: list[dict[str, Any]] = []
    for start in search.enqueue_trials:
        if any(start.get(k, v) != v for k, v in pinned.items() if k in GROUPS):
            continue
        start = {k: pinned.get(k, v) for k, v in start.items()}
        if start not in enqueued:
            enqueued.append(start)
    return replace(search, params=params, conditional_params=conditional,
                   enqueue_trials=tuple(enqueued))


def note_experiment_searched(option: str, search: SearchConfig,
                             explicit: dict[str, str]) -> None:
    """`experiment=notebook` in a sweep: the keys the preset sets that the space searches are
    drawn per trial, not the preset's; say so (an explicit key already gets its own note)."""
    import yaml

    from experiments.sweeping.space import flatten

    try:
        preset = yaml.safe_load((CONF_DIR / "experiment" / f"{option}.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return
    # `- override /optimizer: adagrad` chooses the group `optimizer` (`_self_` is a string)
    keys = {next(iter(entry)).removeprefix("override /").lstrip("/")
            for entry in preset.get("defaults", []) if isinstance(entry, dict)}
    keys |= set(flatten({k: v for k, v in preset.items() if k != "defaults"}))
    searched = set(search.params) | {k for block in search.conditional_params.values()
                                     for k in (block or {})}
    drawn = sorted(k for k in keys & searched if k not in explicit)
    if drawn:
        print(f"note: experiment={option} sets {', '.join(drawn)}, which the search space "
              f"searches: each trial draws them; set one on the command line to fix it for "
              f"every trial", flush=True)


HISTORY_KEYS = ("model.history_dropout", "model.history_max_len")
TOWER = "model.user_tower"


def drop_unordered_towers(search: SearchConfig, base: RunConfig,
                          notes: bool = True) -> SearchConfig:
    """The user tower is searched only under a per-user time split, where each held-out item
    comes right after the history the tower reads. Elsewhere (data.split=random: held-out
    items drawn from anywhere in a user's history) the base config's tower is used, and so
    where the tower is pinned: the choice, the other towers' conditional knobs and start
    points are left out (under the random split the study is the one the space held before
    the sequence tower; docs/sequential.md). A space without the tower (search.params
    replaced) drops the other towers' conditional knobs alike: their condition never holds."""
    expression = search.params.get(TOWER)
    searched = str(expression).startswith("choice(")
    if searched and base.data.split in PER_USER_SPLITS:
        return search
    if searched and notes:
        print(f"note: {TOWER} not searched under data.split={base.data.split}: the base "
              f"config's {base.model.user_tower} tower is used (order-aware towers are searched "
              f"under data.split={' or '.join(PER_USER_SPLITS)}, e.g. experiment=sequential)",
              flush=True)
    tower = base.model.user_tower
    params = {k: v for k, v in search.params.items() if k != TOWER or not searched}
    conditional, dropped = {}, set()
    for condition, block in search.conditional_params.items():
        key, _, value = (part.strip() for part in condition.partition("="))
        if key == TOWER and value != tower:
            dropped |= set(block or {})
        else:
            conditional[condition] = block
    enqueued = []
    for start in search.enqueue_trials:
        if start.get(TOWER, tower) != tower:
            continue
        start = {k: v for k, v in start.items()
                 if k not in dropped and (k != TOWER or not searched)}
        if start not in enqueued:
            enqueued.append(start)
    return replace(search, params=params, conditional_params=conditional,
                   enqueue_trials=tuple(enqueued))


def drop_inert(search: SearchConfig, base: RunConfig, notes: bool = True) -> SearchConfig:
    """Searched keys that do nothing with the base config are left out of the space, with a
    note: an id user tower reads no history, so its dropout would only spend trials."""
    search = drop_unordered_towers(search, base, notes)
    if base.model.uses_history or str(search.params.get(TOWER)).startswith("choice("):
        return search
    inert = [k for k in HISTORY_KEYS if k in search.params]
    if not inert:
        return search
    if notes:
        print(f"note: {', '.join(inert)} not searched: {'it does' if len(inert) == 1 else 'they do'}"
              f" nothing with model.user_tower={base.model.user_tower}", flush=True)
    params = {k: v for k, v in search.params.items() if k not in inert}
    enqueued = []
    for start in search.enqueue_trials:
        start = {k: v for k, v in start.items() if k not in inert}
        if start not in enqueued:
            enqueued.append(start)
    return replace(search, params=params, enqueue_trials=tuple(enqueued))


def plan_from_argv(argv: list[str], check: bool = True) -> SweepPlan:
    return plan_sweep(job_config(compose_config("sweep", argv)), argv, check)


def group_options() -> dict[str, list[str]]:
    return {g: sorted(p.stem for p in (CONF_DIR / g).glob("*.yaml")) for g in GROUPS}


def trial_overrides(argv: list[str]) -> list[str]:
    """The user's overrides that shape every trial's training config (not search or hydra)."""
    skip = ("search.", "search=", "+search", "~search", "hydra.", "+hydra", "++search")
    return [a for a in argv if not a.startswith(skip)]


def check_space(space: list[Param], base_overrides: list[str]) -> None:
    """Build the training config at each choice and bound, as trials will (TrialComposer: one
    Hydra composition per group choice), so bad values fail now."""
    compose = TrialComposer(base_overrides)
    for param in space:
        dist = param.distribution
        if dist is None:
            values = [param.fixed]
        elif hasattr(dist, "choices"):
            values = list(dist.choices)
        else:
            values = [dist.low, dist.high]
        condition = dict([param.condition]) if param.condition else {}
        for value in values:
            try:
                compose({**condition, param.key: value})
            except UserError as exc:
                raise UserError(f"search parameter {param.key} ({param.expression}) reaches an "
                                f"invalid value: {exc}") from None


def check_enqueued(space: list[Param], params: dict[str, Any]) -> None:
    """An enqueued choice must be one of the parameter's choices (ranges may be left on
    purpose, e.g. a hopeless learning rate to see the pruner work; Optuna warns then)."""
    by_name = {p.optuna_name: p for p in space}
    for name, value in optuna_params(space, params).items():
        dist = by_name[name].distribution
        if isinstance(dist, CategoricalDistribution) and value not in dist.choices:
            choices = ", ".join(format_value(c) for c in dist.choices)
            raise UserError(f"search.enqueue_trials sets {by_name[name].key}={format_value(value)}"
                            f", which is not one of its choices: {choices}")

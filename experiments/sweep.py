"""An Optuna study over Hydra-composed training runs: `python -m experiments.sweep [overrides]`.

Overrides for data/model/optimizer/train set the base of every trial; `search.*` configures the
study (see conf/search/default.yaml). The same command with the same study name and storage
resumes the study and stops at `search.n_trials` finished (complete or pruned) trials in total.

Layout: <search.dir>/ study.db, trials/<number>/ (config.yaml, metrics.json, tensorboard/),
best/ (config.yaml, params.json, metrics.json).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from optuna.distributions import CategoricalDistribution

from experiments.common import (
    CONF_DIR,
    cli,
    compose_config,
    job_config,
    load_data,
    remove_leftovers,
    run_config,
)
from experiments.search_config import SearchConfig
from experiments.search_space import Param, format_value, optuna_params, parse_space
from recsys.errors import UserError

GROUPS = ("data", "model", "optimizer", "train", "eval", "experiment")


def group_options() -> dict[str, list[str]]:
    return {g: sorted(p.stem for p in (CONF_DIR / g).glob("*.yaml")) for g in GROUPS}


def trial_overrides(argv: list[str]) -> list[str]:
    """The user's overrides that shape every trial's training config (not search or hydra)."""
    skip = ("search.", "search=", "+search", "~search", "hydra.", "+hydra", "++search")
    return [a for a in argv if not a.startswith(skip)]


def check_space(space: list[Param], base_overrides: list[str]) -> None:
    """Compose the training config at each choice and bound, so bad values fail now."""
    for param in space:
        dist = param.distribution
        if dist is None:
            values = [param.fixed]
        elif hasattr(dist, "choices"):
            values = list(dist.choices)
        else:
            values = [dist.low, dist.high]
        condition = [f"{param.condition[0]}={format_value(param.condition[1])}"] \
            if param.condition else []
        for value in values:
            cfg = compose_config("train", [*base_overrides, *condition,
                                           f"{param.key}={format_value(value)}"])
            try:
                run_config(job_config(cfg), None)
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


def ensure_writable(folder: Path, key: str) -> None:
    """Fail now, naming the folder, rather than after the first trial."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"{key}={str(folder)!r} is not a writable folder ({exc.strerror}); "
                        f"set {key} to one") from None


@cli
def main(argv: list[str]) -> int:
    worker = "--worker" in argv  # started by a main process with search.n_workers > 1
    argv = [a for a in argv if a != "--worker"]
    cfg = compose_config("sweep", argv)
    tree = job_config(cfg)
    search = SearchConfig.from_dict(tree.pop("search"))  # typed: bad values stop here
    base_overrides = trial_overrides(argv)
    base = run_config(tree, None)
    ks = sorted(base.train.top_ks)
    metrics = [f"val_top_{k}" for k in ks]
    if search.metric not in metrics:
        raise UserError(f"search.metric={search.metric!r} is not a validation metric: "
                        f"available are {', '.join(metrics)}")
    train_cfg = compose_config("train", base_overrides)
    space = parse_space(search.params, search.conditional_params, train_cfg, group_options())
    check_space(space, base_overrides)
    keys = {p.key for p in space}
    for params in search.enqueue_trials:
        unknown = sorted(set(params) - keys)
        if unknown:
            raise UserError(f"search.enqueue_trials names {unknown}, which are not search "
                            f"parameters: valid are {sorted(keys)} (replacing search.params? "
                            "set search.enqueue_trials=[] or enqueue your own)")
        check_enqueued(space, params)
    if not worker:  # data errors stop the sweep before any trial; fills the cache
        load_data(base.data)
    from experiments.study import base_fingerprint, open_storage

    storage = open_storage(search)  # bad URL or refused connection: stop here
    ensure_writable(Path(search.dir), "search.dir")
    if not worker and (removed := remove_leftovers(Path(search.dir))):
        print(f"note: removed {removed} temporary file(s) left in {search.dir} by an "
              "interrupted run", flush=True)

    from experiments.driver import run_study  # imports TensorFlow: after the checks above

    return run_study(storage, search, space, base_overrides, Path(search.dir), ks,
                     base.train.epochs, time.perf_counter(), argv, worker=worker,
                     fingerprint=base_fingerprint(tree, search))


if __name__ == "__main__":
    sys.exit(main())

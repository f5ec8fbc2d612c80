"""An Optuna study over Hydra-composed training runs: `python -m experiments.sweep [overrides]`.

Overrides for data/model/optimizer/train set the base of every trial; `search.*` configures the
study (see conf/search/default.yaml). The same command with the same study name and storage
resumes the study and stops at `search.n_trials` finished (complete or pruned) trials in total.
A Hydra application: `--help`, `--cfg job`; `.hydra/` is written into the study folder.

Layout: <search.dir>/ study.db, trials/<number>/ (config.yaml, metrics.json, tensorboard/),
best/ (config.yaml, params.json, metrics.json, model/), report/.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import optuna
from omegaconf import DictConfig

from experiments.cli.app import Job, run_command
from experiments.cli.compose import job_config
from experiments.cli.console import load_data, pipe_safe, quiet_tensorflow, warn_about_data
from experiments.sweeping.fidelity import rungs_line
from experiments.sweeping.folder import claim_folder, mark_study_folder
from experiments.sweeping.outputs import remove_leftovers
from experiments.sweeping.plan import plan_sweep
from recsys.cache import HeldData
from recsys.memory import check_fits


def set_up(cfg: DictConfig, overrides: list[str]) -> Job:
    start = time.perf_counter()
    plan = plan_sweep(job_config(cfg), overrides)
    prepared = load_data(plan.base.data)  # data errors stop the sweep before any trial
    plan.base.check_data(len(prepared.user_ids), len(prepared.item_ids), prepared.most_seen())
    check_fits(plan.base, len(prepared.user_ids), len(prepared.item_ids),
               round(prepared.stats["train_pool"] * plan.base.data.sample_fraction))
    warn_about_data(prepared, plan.base)
    plan = plan.with_rungs(prepared.stats["train_pool"])  # large data: multi-fidelity
    if len(plan.rungs) > 1:
        pairs = prepared.stats["train_pool"] * plan.base.data.sample_fraction
        print(rungs_line(plan.rungs, pairs, plan.search.fidelity), flush=True)
    storage = claim_folder(plan.study_dir, plan.search)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own lines report the study
    opened = plan.open_study(storage)  # a mismatched stored study is refused here
    mark_study_folder(plan.study_dir, plan.search.study_name, plan.search.storage, opened[0])
    if removed := remove_leftovers(plan.study_dir):
        print(f"note: removed {removed} temporary file(s) left in {plan.study_dir} by an "
              "interrupted run", flush=True)

    def job(run_dir: Path) -> int:
        quiet_tensorflow()
        from experiments.sweeping.run import run_study

        return run_study(storage, plan, start, HeldData().hold(plan.base.data, prepared),
                         opened=opened)

    return job


@pipe_safe
def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--config" in args:
        print("error: sweep does not take --config (it searches around conf/ and your "
              "overrides); re-run a saved config with: python -m experiments.train --config "
              "PATH", file=sys.stderr)
        return 2
    return run_command(args, "sweep", set_up)


if __name__ == "__main__":
    sys.exit(main())

"""One training run: `python -m experiments.train [--config saved.yaml] [hydra overrides]`.

A Hydra application (`--help`, `--cfg job`, `-m` for a plain multirun). Writes `config.yaml`,
`overrides.yaml`, `metrics.json`, `vectors.npz`, `tensorboard/` and Hydra's `.hydra/` into the
run directory (`outputs/runs/<date_time>/` unless `hydra.run.dir=...`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from experiments.cli.app import Job, run_command
from experiments.cli.compose import job_config
from experiments.cli.console import (
    epoch_lines,
    load_data,
    pipe_safe,
    quiet_tensorflow,
    warn_about_data,
)
from experiments.cli.rundir import write_run_config
from recsys.config import RunConfig
from recsys.errors import TrainingDiverged
from recsys.memory import check_fits


def set_up(cfg: DictConfig, overrides: list[str]) -> Job:
    tree = job_config(cfg)
    config = RunConfig.from_dict(tree)  # every value checked here
    prepared = load_data(config.data)  # bad data fails here, before anything is written
    config.check_data(len(prepared.user_ids), len(prepared.item_ids), prepared.most_seen())
    check_fits(config, len(prepared.user_ids), len(prepared.item_ids),
               round(prepared.stats["train_pool"] * config.data.sample_fraction))
    warn_about_data(prepared, config)

    def job(run_dir: Path) -> int:
        write_run_config(run_dir, tree, overrides)
        quiet_tensorflow()
        from recsys.run_table import format_run_table
        from recsys.training import run

        metric = config.train.monitor_metric
        try:
            result = run(config, run_dir, prepared=prepared,
                         callbacks=[epoch_lines(config.train.epochs, metric)],
                         progress=lambda text: print(text, flush=True))
        except TrainingDiverged as exc:
            print(f"error: {exc}; run directory: {run_dir}", file=sys.stderr)
            return 1
        print(format_run_table(result, metric))
        if result.write_error:
            print(f"error: {result.write_error}", file=sys.stderr)
            return 1
        print(f"run directory: {run_dir}")
        return 0

    return job


@pipe_safe
def main(argv: Sequence[str] | None = None) -> int:
    return run_command(argv, "train", set_up, claim_run_dir=True, saved_config=True)


if __name__ == "__main__":
    sys.exit(main())

"""One training run: `python -m experiments.train [--config saved.yaml] [hydra overrides]`.

Writes `config.yaml`, `overrides.yaml`, `metrics.json` and `tensorboard/` into Hydra's run
directory (`outputs/runs/<date_time>/` unless `hydra.run.dir=...`).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from experiments.common import (
    claim_new_dir,
    cli,
    compose_config,
    job_config,
    pop_config_flag,
    prepare_run_dir,
    run_config,
)
from recsys.cache import load_prepared
from recsys.errors import TrainingDiverged


@cli
def main(argv: list[str]) -> int:
    argv, saved = pop_config_flag(argv)
    if saved is None:
        cfg = compose_config("train", argv)
    else:
        cfg = compose_config(saved.stem, argv, config_dir=saved.parent)
    tree = job_config(cfg)
    run_dir = str(cfg.hydra.run.dir)
    config = run_config(tree, run_dir)
    prepared, _ = load_prepared(config.data)  # bad data fails here, before anything is written
    if not any(a.startswith("hydra.run.dir=") for a in argv):  # the dated default: make it ours
        run_dir = str(claim_new_dir(Path(run_dir)))
        config = dataclasses.replace(config, run_dir=run_dir)
    prepare_run_dir(run_dir, tree, argv)
    # TensorFlow is imported only now, so that a mistake above is reported without its noise.
    from recsys.report import format_run_table
    from recsys.training import run

    try:
        result = run(config, prepared=prepared)
    except TrainingDiverged as exc:
        print(f"error: {exc}; run directory: {run_dir}", file=sys.stderr)
        return 1
    print(format_run_table(result))
    print(f"run directory: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One training run: `python -m experiments.train [--config saved.yaml] [hydra overrides]`.

Writes `config.yaml`, `overrides.yaml`, `metrics.json` and `tensorboard/` into Hydra's run
directory (`outputs/runs/<date_time>/` unless `hydra.run.dir=...`).
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from experiments.common import (
    claim_new_dir,
    cli,
    compose_config,
    job_config,
    load_data,
    pop_config_flag,
    prepare_run_dir,
    run_config,
)
from recsys.errors import TrainingDiverged, UserError

GROUPS = ("data", "model", "optimizer", "train", "eval")


def compose_saved(saved: Path, argv: list[str]) -> DictConfig:
    """A saved, fully composed config (e.g. a study's best/config.yaml) with overrides on top.
    A group choice (`optimizer=adagrad`) replaces that whole section with the group's option
    from conf/, as it would on conf/train.yaml; value overrides then apply as usual."""
    choices = [a for a in argv if a.split("=", 1)[0] in GROUPS]
    if not choices:
        return compose_config(saved.stem, argv, config_dir=saved.parent)
    try:
        tree = OmegaConf.load(saved)
    except (OSError, OmegaConfBaseException, yaml.YAMLError) as exc:
        raise UserError(f"--config {str(saved)!r} is not a readable YAML config: "
                        f"{(str(exc).strip().splitlines() or [''])[0]}") from None
    for choice in choices:
        group = choice.split("=", 1)[0]
        tree[group] = compose_config("train", [choice])[group]
    with tempfile.TemporaryDirectory() as folder:
        OmegaConf.save(tree, Path(folder) / "config.yaml")
        return compose_config("config", [a for a in argv if a not in choices],
                              config_dir=Path(folder))


@cli
def main(argv: list[str]) -> int:
    argv, saved = pop_config_flag(argv)
    cfg = compose_config("train", argv) if saved is None else compose_saved(saved, argv)
    tree = job_config(cfg)
    run_dir = str(cfg.hydra.run.dir)
    config = run_config(tree, run_dir)
    prepared = load_data(config.data)  # bad data fails here, before anything is written
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

"""Run folders: claiming a fresh one, and the config files written into it."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiments.cli.secrets import mask_secrets
from recsys.errors import UserError
from recsys.files import CONFIG_FILE, write_text_atomic


def write_run_config(run_dir: Path, tree: dict[str, Any], overrides: Sequence[str]) -> Path:
    """The composed config (`config.yaml`, runnable with `--config`) and the overrides that
    made it, beside Hydra's own `.hydra/` copies."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / CONFIG_FILE, OmegaConf.to_yaml(OmegaConf.create(tree)))
        write_text_atomic(run_dir / "overrides.yaml",
                          OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    except OSError as exc:
        raise UserError(f"cannot write run directory {str(run_dir)!r}: {exc.strerror}; set "
                        "hydra.run.dir to a writable folder") from None
    return run_dir


def write_hydra_record(run_dir: Path, cfg: DictConfig, overrides: Sequence[str]) -> None:
    """What Hydra's run mode writes beside a job's outputs, from the one composition the
    command made: `.hydra/config.yaml` (the config without Hydra's section), `hydra.yaml`
    and `overrides.yaml` (the user's non-Hydra overrides), each with passwords masked."""
    if not cfg.hydra.output_subdir:  # hydra.output_subdir=null: no record, as with Hydra
        return
    cfg = copy.deepcopy(cfg)
    OmegaConf.update(cfg, "hydra.run.dir", str(run_dir), merge=False)
    OmegaConf.update(cfg, "hydra.runtime.output_dir", str(run_dir.resolve()), merge=False)
    task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    files = {"config.yaml": OmegaConf.to_yaml(task),
             "hydra.yaml": OmegaConf.to_yaml(OmegaConf.masked_copy(cfg, ["hydra"])),
             "overrides.yaml": OmegaConf.to_yaml(OmegaConf.create(
                 [o for o in overrides if not o.lstrip("+~").startswith("hydra")]))}
    folder = run_dir / str(cfg.hydra.output_subdir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            write_text_atomic(folder / name, mask_secrets(text))
    except OSError as exc:
        raise UserError(f"cannot write run directory {str(run_dir)!r}: {exc.strerror}; set "
                        "hydra.run.dir to a writable folder") from None


def make_run_dir(path: Path) -> Path:
    """Create the run folder Hydra will write into, or say in one line why it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write run directory {str(path)!r}: {exc.strerror}; set "
                        "hydra.run.dir to a writable folder") from None
    return path


def claim_new_dir(path: Path) -> Path:
    """Create `path`, or `path_1`, `path_2`, ... when another process took it first: two runs
    started in the same second must not share (and overwrite) one run directory. `mkdir` is
    atomic, so exactly one process wins each name."""
    candidate, n = path, 0
    while True:
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            n += 1
            candidate = path.with_name(f"{path.name}_{n}")
        except OSError as exc:
            raise UserError(f"cannot create run directory {str(candidate)!r}: {exc.strerror}; "
                            "set hydra.run.dir to a writable folder") from None

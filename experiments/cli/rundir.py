"""Run folders: claiming a fresh one, and the config files written into it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from recsys.errors import UserError
from recsys.files import write_text_atomic


def write_run_config(run_dir: Path, tree: dict[str, Any], overrides: Sequence[str]) -> Path:
    """The composed config (`config.yaml`, runnable with `--config`) and the overrides that
    made it, beside Hydra's own `.hydra/` copies."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(tree)))
        write_text_atomic(run_dir / "overrides.yaml",
                          OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    except OSError as exc:
        raise UserError(f"cannot write run directory {str(run_dir)!r}: {exc.strerror}; set "
                        "hydra.run.dir to a writable folder") from None
    return run_dir


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

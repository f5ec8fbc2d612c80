"""What every entry point shares: config composition, one-line errors, run directories."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from recsys.config import RunConfig
from recsys.errors import UserError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
EXIT_USER_ERROR = 2


DEFAULT_RUN_DIR = "outputs/runs/${now:%Y-%m-%d_%H-%M-%S}"


def compose_config(config_name: str, overrides: Sequence[str],
                   config_dir: Path = CONF_DIR) -> DictConfig:
    """Compose `<config_dir>/<config_name>.yaml` with Hydra overrides; errors become UserError.

    `config_dir` other than `conf/` is for a saved, fully composed config (e.g. a study's
    best/config.yaml): it has no defaults list, so only value overrides apply to it.
    """
    overrides = list(overrides)
    if config_dir != CONF_DIR and not any(o.startswith("hydra.run.dir=") for o in overrides):
        overrides.append(f"hydra.run.dir={DEFAULT_RUN_DIR}")
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(config_dir.resolve())):
            cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
        OmegaConf.resolve(cfg)
    except MissingConfigException as exc:
        # Hydra's message lists the options one per line, then its search path: keep the list.
        first = str(exc).strip().splitlines()[0].removeprefix(f"In '{config_name}': ")
        options = ", ".join(exc.options or [])
        raise UserError(f"{first.rstrip('.')}: available options are {options}" if options
                        else first) from None
    except (HydraException, OmegaConfBaseException) as exc:
        raise UserError(_one_line(str(exc))) from None
    return cfg


def job_config(cfg: DictConfig) -> dict[str, Any]:
    """The composed config without Hydra's own section, as plain containers."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(tree, dict)
    tree.pop("hydra", None)
    return tree


def run_config(tree: dict[str, Any], run_dir: str | None) -> RunConfig:
    return RunConfig.from_dict(tree, run_dir=run_dir)


def prepare_run_dir(run_dir: str | Path, tree: dict[str, Any], overrides: Sequence[str]) -> Path:
    """Create the run directory and write the composed config and overrides atomically."""
    path = Path(run_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(tree)))
        write_text_atomic(path / "overrides.yaml",
                          OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
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


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def pop_config_flag(argv: list[str]) -> tuple[list[str], Path | None]:
    """Take `--config PATH` (a saved config.yaml to run instead of conf/train.yaml) out of argv."""
    if "--config" not in argv:
        return argv, None
    i = argv.index("--config")
    if i + 1 >= len(argv):
        raise UserError("--config needs a path to a config.yaml, e.g. "
                        "--config outputs/sweeps/default/best/config.yaml")
    path = Path(argv[i + 1])
    if not path.is_file() or path.suffix not in (".yaml", ".yml"):
        raise UserError(f"--config {str(path)!r} is not a .yaml file")
    return argv[:i] + argv[i + 2:], path


def _one_line(message: str) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return "; ".join(lines)


def cli(main: Callable[[list[str]], int]) -> Callable[[list[str] | None], int]:
    """Wrap an entry point: user mistakes print one line and exit 2, no traceback.

    `--verbose` (or HYDRA_FULL_ERROR=1) re-raises so the full traceback is shown.
    """

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        args = list(sys.argv[1:] if argv is None else argv)
        verbose = "--verbose" in args or os.environ.get("HYDRA_FULL_ERROR") == "1"
        args = [a for a in args if a != "--verbose"]
        try:
            return main(args)
        except UserError as exc:
            if verbose:
                raise
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR

    return wrapper

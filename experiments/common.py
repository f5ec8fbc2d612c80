"""What every entry point shares: config composition, one-line errors, run directories."""

from __future__ import annotations

import difflib
import functools
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from recsys.cache import load_prepared
from recsys.config import DataConfig, RunConfig
from recsys.errors import UserError
from recsys.prepare import PreparedData

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
    except yaml.YAMLError as exc:  # a hand-edited --config file
        raise UserError(f"{config_dir / config_name}.yaml is not valid YAML: "
                        f"{_one_line(str(exc))}") from None
    except (HydraException, OmegaConfBaseException) as exc:
        secret = _storage_override(overrides)
        if secret is not None and secret in str(exc):  # never echo a typed password
            raise UserError("the search.storage=... override could not be parsed (a URL whose "
                            "password holds , ' or another special character): quote it, e.g. "
                            "'search.storage=\"postgresql+psycopg://user:pw@host/db\"', or "
                            "put the URL in an environment variable and pass "
                            "'search.storage=${oc.env:OPTUNA_STORAGE}' (the URL is not shown "
                            "here, as it holds a password)") from None
        unknown = re.match(r"Could not override '([^']+)'", str(exc))
        if unknown and unknown.group(1).startswith(("search.params", "search.conditional_params")):
            group = ".".join(unknown.group(1).split(".")[:2])
            raise UserError(f"{group} has no key {_new_key(exc) or '(new)'}: add keys with "
                            f"'+{group}={{KEY: EXPR}}' (a mapping: the keys hold dots), or "
                            f"replace the whole space with '~{group}' '+{group}={{...}}'") from None
        if unknown:
            raise UserError(_unknown_key(unknown.group(1), config_name, overrides,
                                         config_dir) or _one_line(str(exc))) from None
        raise UserError(_one_line(str(exc))) from None
    return cfg


def _storage_override(overrides: Sequence[str]) -> str | None:
    """The password part of a `search.storage=` override typed on the command line, if any."""
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+") == "search.storage":
            found = re.match(r"^[^:]+://[^:@/]*:(.+)@[^@]*$", value)
            return found.group(1) if found else None
    return None


def _new_key(exc: Exception) -> str | None:
    """The key OmegaConf refused, from the exception Hydra wraps."""
    found = re.search(r"Key '([^']+)' is not in struct", str(exc.__cause__ or ""))
    return found.group(1) if found else None


def _unknown_key(key: str, config_name: str, overrides: list[str],
                 config_dir: Path) -> str | None:
    """`model.embedding_dimm=3`: name the key and the closest valid ones, not Hydra's hint."""
    parent, _, leaf = key.rpartition(".")
    rest = [o for o in overrides if not o.split("=", 1)[0].lstrip("+~").startswith(key)]
    try:
        node = compose_config(config_name, rest, config_dir)
        for part in parent.split(".") if parent else []:
            node = node[part]
        if not isinstance(node, DictConfig):  # e.g. a key below a plain value
            raise TypeError(parent)
        valid = sorted(str(k) for k in node)
    except (UserError, KeyError, AttributeError, TypeError):
        return f"{key} is not a known setting (to add a new key on purpose, use +{key}=...)"
    if leaf in valid:  # the key exists: the value was the problem (Hydra's message says so)
        return None
    close = difflib.get_close_matches(leaf, valid, n=3)
    hint = f"did you mean {' or '.join(f'{parent}.{c}' if parent else c for c in close)}? " \
        if close else ""
    where = f"under {parent}" if parent else "at the top level"
    return f"{key} is not a known setting: {hint}valid keys {where} are {', '.join(valid)}"


def load_data(cfg: DataConfig) -> PreparedData:
    """Load (or read the cached) prepared data; say on the console what was dropped or
    rebuilt, so that no row disappears silently."""
    prepared, info = load_prepared(cfg)
    notes = [str(info["notice"])] if info.get("notice") else []
    missing = int(prepared.stats.get("rows_missing_fields", 0) or 0)
    skipped = int(prepared.stats.get("bad_lines_skipped", 0) or 0)
    if missing:
        notes.append(f"{missing} row(s) with an empty user, item or rating field (or rating "
                     "NaN) were dropped")
    if skipped:
        notes.append(f"{skipped} malformed line(s) were skipped (data.on_bad_lines=skip)")
    for note in notes:
        print(f"note: {note}", flush=True)
    return prepared


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
    try:
        tmp.write_text(text)
        tmp.replace(path)
    finally:  # a full disk: no half-written file left behind
        tmp.unlink(missing_ok=True)


def remove_leftovers(study_dir: Path, older_than_s: float = 3600) -> int:
    """Temporary files and folders a killed process left in a study folder (a half-built
    best/, a trial's unfinished config or vectors). Only old ones: a live writer is fast."""
    now, removed = time.time(), 0
    patterns = (".best.*", "trials/*/.*.tmp*")
    for path in [p for pattern in patterns for p in study_dir.glob(pattern)]:
        try:
            if now - path.lstat().st_mtime < older_than_s:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
        except OSError:
            continue
    return removed


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

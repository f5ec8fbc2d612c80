"""The commands as Hydra applications, with one-line errors for user mistakes.

A command is `set_up(cfg, overrides) -> job`: `set_up` checks the composed config and loads
what the job needs; `job(run_dir)` then writes into the run folder. A plain run is composed
once, here, with our own error messages; `set_up` runs *before* any folder is created, so a
bad value or a bad data file leaves nothing behind; then the run folder is claimed and gets
the `.hydra/` record Hydra's run mode writes (config, hydra, overrides; passwords masked).
Hydra's own flags (`--help`, `--cfg job`, `--info`, `-m`, `--shell-completion`, ...) go to
Hydra, which then runs `set_up` inside each job (a multirun: one per job).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml
from hydra import version
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from experiments.cli.compose import (
    CONF_DIR,
    DEFAULT_RUN_DIR,
    compose_config,
    saved_config_dir,
    unparsable,
    without_group_choices,
)
from experiments.cli.console import (
    VERBOSE_ENV,
    commented_settings,
    printable,
    unused_settings,
)
from experiments.cli.hydra_internals import args_parser, flag_actions, run_hydra
from experiments.cli.rundir import claim_new_dir, make_run_dir, write_hydra_record
from experiments.cli.secrets import mask_secrets, typed_passwords
from recsys.errors import UserError

EXIT_USER_ERROR = 2
# Hydra's command-line flags, short and long, read from its own parser: which take a value,
# and which take one only when it is one of theirs (`--info [all|config|...]`).
FLAG_ACTIONS = flag_actions()
HYDRA_FLAGS = set(FLAG_ACTIONS)
VALUED = {f for f, a in FLAG_ACTIONS.items() if a.nargs is None}
OPTIONAL_VALUE = {f: set(a.choices or ()) for f, a in FLAG_ACTIONS.items() if a.nargs == "?"}
# Shell completion reads its words (install=bash, uninstall=bash, query=...) as overrides of
# its own: handed to Hydra untouched, never composed.
COMPLETION = {"--shell-completion", "-sc"}

# Flags with which Hydra prints (the composed config, its search path, help) and runs nothing.
PRINT_ONLY = {"--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help"}
Job = Callable[[Path], int]
SetUp = Callable[[DictConfig, list[str]], Job]


def run_command(argv: Sequence[str] | None, config_name: str, set_up: SetUp, *,
                claim_run_dir: bool = False, saved_config: bool = False) -> int:
    """Run one command line; the exit code (2: a user mistake, reported in one line).

    `claim_run_dir`: the dated default run folder is created here, atomically, so two runs
    started in the same second get two folders. `saved_config`: accept `--config PATH` (a
    saved config.yaml to run instead of conf/<config_name>.yaml).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args or os.environ.get("HYDRA_FULL_ERROR") == "1" \
        or os.environ.get(VERBOSE_ENV) == "1"
    args = [a for a in args if a != "--verbose"]
    if verbose:  # worker processes and Hydra show everything too
        os.environ[VERBOSE_ENV] = os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        with tempfile.TemporaryDirectory(prefix="recsys-config.") as scratch:
            config_dir, name = CONF_DIR, config_name
            args, saved = _pop_config_flag(args) if saved_config else (args, None)
            if saved is not None:
                config_dir, name = saved_config_dir(saved, args, Path(scratch)), saved.stem
                args = without_group_choices(args) if config_dir != saved.parent else args
            if COMPLETION & set(args):
                return _hydra(config_dir, name, args, lambda cfg, run_dir: 0, verbose)
            if any(a.split("=", 1)[0] in HYDRA_FLAGS for a in args):
                overrides = _overrides_only(args)
                if unreadable := unparsable(overrides):  # not Hydra's lexer wall
                    raise UserError(unreadable)
                if not {"-m", "--multirun"} & set(args):  # our one-line errors, not Hydra's
                    compose_config(name, overrides, config_dir)
                if saved is not None and not any(a.startswith("hydra.run.dir=") for a in args):
                    args.append(f"hydra.run.dir={DEFAULT_RUN_DIR}")  # a saved one has no hydra:
                def task(cfg: DictConfig, run_dir: Path) -> int:
                    return set_up(cfg, list(HydraConfig.get().overrides.task))(run_dir)

                if any(a in PRINT_ONLY for a in args):  # Hydra prints the config: mask it
                    printed, errors = io.StringIO(), io.StringIO()
                    try:
                        with contextlib.redirect_stdout(printed), \
                                contextlib.redirect_stderr(errors):
                            code = _hydra(config_dir, name, args, task, verbose)
                    finally:
                        secrets = typed_passwords(args)
                        print(mask_secrets(printed.getvalue(), secrets), end="", flush=True)
                        print(mask_secrets(errors.getvalue(), secrets), end="",
                              file=sys.stderr, flush=True)
                else:
                    code = _hydra(config_dir, name, args, task, verbose)
                if "--help" in args or "-h" in args:
                    print(commented_settings(config_dir, name, _overrides_only(args)))
                elif code == 0 and _prints_job_config(args):
                    print(unused_settings(config_dir, name, _overrides_only(args)), end="")
                return code
            # A plain run: composed once, here, and never handed to Hydra again.
            cfg = compose_config(name, args, config_dir)  # our one-line errors
            job = set_up(cfg, args)  # every check and the data load: nothing written yet
            if claim_run_dir and not any(a.startswith("hydra.run.dir=") for a in args):
                run_dir = claim_new_dir(Path(cfg.hydra.run.dir).expanduser())
            else:
                run_dir = make_run_dir(Path(cfg.hydra.run.dir).expanduser())
            write_hydra_record(run_dir, cfg, args)
            return job(run_dir)
    except UserError as exc:
        if verbose:
            raise
        print(printable(mask_secrets(f"error: {exc}", typed_passwords(args))), file=sys.stderr)
        return EXIT_USER_ERROR


def _hydra(config_dir: Path, config_name: str, args: list[str],
           task: Callable[[DictConfig, Path], int], verbose: bool) -> int:
    """Hand the command line to Hydra (`hydra.main`); the task's exit code (the first
    non-zero one of a multirun), or Hydra's own for its flags and its errors."""
    codes: list[int] = []

    def task_function(cfg: DictConfig) -> None:
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:  # which job this is (Hydra's logging is off)
            print(f"job {hydra_cfg.job.num}: {' '.join(hydra_cfg.overrides.task)}", flush=True)
        try:
            codes.append(task(cfg, Path(HydraConfig.get().runtime.output_dir)))
        except UserError as exc:
            if verbose:
                raise
            print(printable(mask_secrets(f"error: {exc}", typed_passwords(args))),
                  file=sys.stderr)
            codes.append(EXIT_USER_ERROR)

    # What `hydra.main` does with sys.argv, done with our list instead: no global state is
    # swapped (its private entry lives in hydra_internals, pinned by a test).
    version.setbase("1.3")
    parser = args_parser()
    parsed = parser.parse_args(flags_first(args))  # argparse's usage and exit 2 on a bad flag
    if parsed.experimental_rerun is not None:  # needs Hydra's pickled job, never written here
        raise UserError("--experimental-rerun is not supported: re-run a run's or a study's "
                        "saved config with --config PATH/config.yaml")
    # Hydra's logging set-up would replace every handler in the process (absl's included:
    # it closes the stream it was given); the commands print instead.
    parsed.overrides = [*parsed.overrides, "hydra/job_logging=none", "hydra/hydra_logging=none"]
    if parsed.cfg and parsed.multirun:  # Hydra's ValueError: "Only one of --run, ..."
        raise UserError("--cfg prints one composed config and runs nothing: leave out -m "
                        "(--multirun), or run the multirun without --cfg")
    try:
        run_hydra(parsed, parser, task_function, str(config_dir), config_name)
    except SystemExit as exc:  # --help, --cfg, ... and Hydra's own errors end this way
        if exc.code not in (0, None):
            return exc.code if isinstance(exc.code, int) else 1
    return next((c for c in codes if c != 0), 0)


def split_flags(args: list[str]) -> tuple[list[str], list[str]]:
    """(the overrides, Hydra's flags with their values), as argparse will read them: `--info`
    takes a value only when the next word is one of its own."""
    flags, overrides, i = [], [], 0
    while i < len(args):
        arg = args[i]
        valued = arg in VALUED or (arg in OPTIONAL_VALUE and args[i + 1:i + 2] and
                                   args[i + 1] in OPTIONAL_VALUE[arg])
        if valued and i + 1 < len(args):
            flags += args[i:i + 2]
            i += 2
        elif arg.startswith("-"):
            flags.append(arg)
            i += 1
        else:
            overrides.append(arg)
            i += 1
    return overrides, flags


def flags_first(args: list[str]) -> list[str]:
    """The overrides, then Hydra's flags (with their values): argparse reads the overrides
    as one run of positionals, so `a=1 -m b=2,3` left `b=2,3` "unrecognized" (and an override
    right after `--info` would be read as its value)."""
    overrides, flags = split_flags(args)
    return [*overrides, *flags]


def _pop_config_flag(argv: list[str]) -> tuple[list[str], Path | None]:
    """Take `--config PATH` (a saved config.yaml to run instead of conf/) out of argv."""
    if "--config" not in argv:
        return argv, None
    i = argv.index("--config")
    if i + 1 >= len(argv):
        raise UserError("--config needs a path to a config.yaml, e.g. "
                        "--config outputs/sweeps/default/best/config.yaml")
    # Absolute: Hydra reads a relative config path as relative to the calling module.
    path = Path(argv[i + 1]).expanduser().resolve()
    if not path.is_file() or path.suffix not in (".yaml", ".yml"):
        raise UserError(f"--config {str(path)!r} is not a .yaml file")
    rest = argv[:i] + argv[i + 2:]
    if "--config" in rest:
        raise UserError("--config is given twice: run one saved config at a time")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError, OSError) as exc:
        raise UserError(f"--config {str(path)!r} is not valid YAML, or not readable "
                        f"({type(exc).__name__}): expected a config.yaml saved by a run or "
                        "a study") from None
    if not isinstance(tree, dict) or not tree:
        raise UserError(f"--config {str(path)!r} holds {type(tree).__name__} {tree!r:.40}, not "
                        "a config: expected a mapping such as a run's or a study's "
                        "config.yaml") from None
    return rest, path


def _prints_job_config(args: list[str]) -> bool:
    """`--cfg job` or `--cfg all` (`-c`, `--cfg=job`): the printed config holds `data`."""
    for i, arg in enumerate(args):
        flag, _, value = arg.partition("=")
        if flag in ("--cfg", "-c"):
            value = value or (args[i + 1] if i + 1 < len(args) else "")
            return value in ("job", "all")
    return False


def _overrides_only(args: list[str]) -> list[str]:
    """The key=value overrides of a command line that also holds Hydra's flags."""
    return [a for a in split_flags(args)[0] if "=" in a]

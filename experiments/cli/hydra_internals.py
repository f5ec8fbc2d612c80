"""Every use of Hydra's internals, in one place: its private command-line entry (what
`hydra.main` runs with `sys.argv`, here run with a given list) and the parts of its error
texts that carry no exception type or attribute of their own. `tests/test_internals.py` pins
each one against the installed hydra-core: a version that moves one fails there, loudly,
instead of turning a one-line error into a traceback."""

from __future__ import annotations

import argparse
import re
from typing import Any

from hydra._internal.utils import _run_hydra, get_args_parser
from hydra.core.override_parser.types import Sweep


def args_parser() -> argparse.ArgumentParser:
    """Hydra's own command-line parser (its flags: --cfg, -m, --info, ...)."""
    return get_args_parser()


def flag_actions() -> dict[str, argparse.Action]:
    """Each of Hydra's flags (short and long) and what its parser does with it: `nargs` None
    takes the next word, "?" takes it when it is one of `choices` (`--info`), 0 none."""
    return {flag: action for action in args_parser()._actions
            for flag in action.option_strings}


def run_hydra(args: argparse.Namespace, parser: argparse.ArgumentParser, task: Any,
              config_path: str, config_name: str) -> None:
    """What `hydra.main` does with parsed arguments: compose, set up the run folder, run."""
    _run_hydra(args=args, args_parser=parser, task_function=task, config_path=config_path,
               config_name=config_name)


def sweep_in_mapping(exc: Exception) -> str | None:
    """An unquoted search expression inside a mapping: the name of the sweep class Hydra
    parsed it to (OmegaConf's `object_type` of the refused value)."""
    kind = getattr(exc.__cause__, "object_type", None)
    return kind.__name__ if isinstance(kind, type) and issubclass(kind, Sweep) else None


def refused_key(exc: Exception) -> str | None:
    """The key OmegaConf refused (not in the struct config), from the error Hydra wraps."""
    key = getattr(exc.__cause__, "key", None)
    return str(key) if key is not None else None


def needs_multirun(exc: Exception) -> bool:
    """A sweep expression given as a plain value (Hydra: "... requires --multirun")."""
    return "requires --multirun" in str(exc)


def not_overridable(exc: Exception) -> str | None:
    """The key of "Could not override 'KEY'" (an unknown key without '+')."""
    found = re.match(r"Could not override '([^']+)'", str(exc))
    return found.group(1) if found else None


def failed_override(exc: Exception) -> str | None:
    """The override named in "Error merging override OVERRIDE"."""
    found = re.search(r"override (\S.*)$", str(exc).splitlines()[0])
    return found.group(1) if found else None


def grammar_stop(exc: Exception) -> str | None:
    """Where Hydra's override grammar stopped reading, quoted (from its lexer's message)."""
    found = re.search(r"(?:at: |input )('[^']*')", str(exc))
    return found.group(1) if found else None

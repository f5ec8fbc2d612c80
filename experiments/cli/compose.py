"""Composing configs from conf/ (or a saved config.yaml) with Hydra's compose API, and
turning Hydra's and OmegaConf's errors into one line that names the bad key or value."""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException, ValidationError

from experiments.cli import resolvers, schema
from experiments.cli.hydra_internals import (
    failed_override,
    grammar_stop,
    needs_multirun,
    not_overridable,
    refused_key,
    sweep_in_mapping,
)
from experiments.cli.secrets import mask_secrets, typed_passwords
from recsys.config import GROUP_TYPES, RunConfig
from recsys.errors import UserError
from recsys.typed import invalid


def _find_conf() -> Path:
    """conf/ inside the installed package (a wheel ships it as experiments/conf), else the
    source checkout's top-level conf/ (an editable install, or running from the repo)."""
    packaged = Path(__file__).resolve().parents[1] / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf"


CONF_DIR = _find_conf()
schema.register()  # conf/'s options extend these structured configs
resolvers.register(CONF_DIR)
TRAIN_GROUPS = tuple(GROUP_TYPES)  # the training config's groups, as recsys.config types them


DEFAULT_RUN_DIR = "outputs/runs/${now:%Y-%m-%d_%H-%M-%S}"


def compose_config(config_name: str, overrides: Sequence[str],
                   config_dir: Path = CONF_DIR, resolve: bool = True) -> DictConfig:
    """Compose `<config_dir>/<config_name>.yaml` with Hydra overrides; errors become UserError.

    `config_dir` other than `conf/` is for a saved, fully composed config (e.g. a study's
    best/config.yaml): it has no defaults list, so only value overrides apply to it.
    """
    overrides = list(overrides)
    if config_dir != CONF_DIR and not any(o.startswith("hydra.run.dir=") for o in overrides):
        overrides.append(f"hydra.run.dir={DEFAULT_RUN_DIR}")
    try:
        with _detached_app(), initialize_config_dir(version_base="1.3",
                                                    config_dir=str(config_dir.resolve())):
            cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
        if resolve:
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
    except OverrideParseException as exc:
        raise UserError(unparsable(overrides) or _one_line(mask_secrets(str(exc)))) from None
    except (HydraException, OmegaConfBaseException) as exc:
        secret = _storage_override(overrides)
        if secret is not None and secret in str(exc):  # never echo a typed password
            raise _storage_unparsable() from None
        if refused := _refused_value(exc, overrides):
            raise UserError(refused) from None
        sweep = sweep_in_mapping(exc)
        if sweep:  # `{k: choice(8, 16)}` unquoted inside a mapping is a Hydra sweep object
            raise UserError(f"cannot read the override {_failed_override(exc, overrides)!r}: a "
                            f"search expression inside a mapping must be quoted, e.g. "
                            f"'+search.params={{model.embedding_dim: \"choice(8, 16)\"}}' "
                            f"(Hydra read it as a {sweep})") from None
        if needs_multirun(exc):  # a sweep expression typed as a value
            raise _multirun_error(exc, overrides) from None
        unknown = not_overridable(exc)
        if unknown and unknown.startswith(("search.params", "search.conditional_params")):
            group = ".".join(unknown.split(".")[:2])
            raise UserError(f"{group} has no key {refused_key(exc) or '(new)'}: add keys with "
                            f"'+{group}={{KEY: EXPR}}' (a mapping: the keys hold dots), or "
                            f"replace the whole space with '~{group}' '+{group}={{...}}'") from None
        if unknown:
            raise UserError(_unknown_key(unknown, config_name, overrides,
                                         config_dir) or _one_line(str(exc))) from None
        raise UserError(_one_line(str(exc))) from None
    return cfg


def _multirun_error(exc: Exception, overrides: Sequence[str]) -> UserError:
    override = next((o for o in overrides if o.split("=", 1)[0].lstrip("+~") in str(exc)),
                    _one_line(str(exc)))
    key, _, value = override.partition("=")
    if key.lstrip("+").startswith("search."):
        return UserError(
            f"cannot read the override {override!r}: Hydra takes {value!r} for a sweep of its "
            f"own; a search expression goes in search.params as quoted text, e.g. "
            f"'++search.params={{{key.split('.', 2)[-1]}: \"{value}\"}}'")
    return UserError(f"the override {override!r} lists several values: add -m to run one job "
                     "per value, or search them with experiments.sweep")


@contextlib.contextmanager
def _detached_app() -> Iterator[None]:
    """Inside a running Hydra app (a sweep composes every trial's config) the app holds
    Hydra's global state: set it aside while composing, then put it back."""
    app = GlobalHydra.instance()
    held = app.hydra
    app.clear()
    try:
        yield
    finally:
        app.clear()
        app.hydra = held


def _storage_override(overrides: Sequence[str]) -> str | None:
    """The password part of a `search.storage=` override typed on the command line, if any."""
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+") == "search.storage":
            return next(iter(typed_passwords([value])), None)
    return None


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


def job_config(cfg: DictConfig) -> dict[str, Any]:
    """The composed config without Hydra's own section, as plain containers; `~` in the
    settings that name a file or folder is the user's home, as a shell would have it."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(tree, dict)
    tree.pop("hydra", None)
    return expand_home(tree)


HOME_PATHS = (("data", "path"), ("data", "cache_dir"), ("search", "dir"))


def expand_home(tree: dict[str, Any]) -> dict[str, Any]:
    """`~/x` -> `/home/me/x` in data.path, data.cache_dir, search.dir and a SQLite
    search.storage (an unexpanded one made a folder named `~` in the working directory)."""
    for group, key in HOME_PATHS:
        section = tree.get(group)
        value = section.get(key) if isinstance(section, dict) else None
        if isinstance(value, str) and value.startswith("~"):
            section[key] = os.path.expanduser(value)
    search = tree.get("search")
    storage = search.get("storage") if isinstance(search, dict) else None
    if isinstance(storage, str) and storage.startswith("sqlite:///~"):
        search["storage"] = "sqlite:///" + os.path.expanduser(storage[len("sqlite:///"):])
    return tree


def compose_run(overrides: Sequence[str], config_name: str = "train",
                config_dir: Path = CONF_DIR) -> tuple[dict[str, Any], RunConfig]:
    """conf/train.yaml (or a saved config) with overrides, as the plain tree written to
    config.yaml and the typed RunConfig the library takes (which checks every value)."""
    tree = job_config(compose_config(config_name, overrides, config_dir))
    return tree, RunConfig.from_dict(tree)


def saved_config_dir(saved: Path, overrides: Sequence[str], scratch: Path) -> Path:
    """The folder to compose a saved, fully composed config (e.g. a study's best/config.yaml)
    from. A group choice (`optimizer=adagrad`) replaces that whole section with the group's
    option from conf/, as it would on conf/train.yaml; such a config is written into
    `scratch` as config.yaml. Value overrides then apply as usual."""
    choices = [o for o in overrides if o.split("=", 1)[0] in TRAIN_GROUPS]
    if not choices:
        return saved.parent
    try:
        tree = OmegaConf.load(saved)
    except (OSError, OmegaConfBaseException, yaml.YAMLError) as exc:
        raise UserError(f"--config {str(saved)!r} is not a readable YAML config: "
                        f"{(str(exc).strip().splitlines() or [''])[0]}") from None
    for choice in choices:
        group = choice.split("=", 1)[0]
        tree[group] = compose_config("train", [choice])[group]
    OmegaConf.save(tree, scratch / f"{saved.stem}.yaml")
    return scratch


def without_group_choices(overrides: Sequence[str]) -> list[str]:
    """The overrides left for a saved config once `saved_config_dir` applied the choices."""
    return [o for o in overrides if o.split("=", 1)[0] not in TRAIN_GROUPS]


def _storage_unparsable() -> UserError:
    return UserError("the search.storage=... override could not be parsed (a URL whose "
                     "password holds , ' or another special character): quote it, e.g. "
                     "'search.storage=\"postgresql+psycopg://user:pw@host/db\"', or put the URL "
                     "in an environment variable and pass "
                     "'search.storage=${oc.env:OPTUNA_STORAGE}' (the URL is not shown here, as "
                     "it holds a password)")


def _refused_value(exc: Exception, overrides: Sequence[str]) -> str | None:
    """A value of the wrong type (`model.embedding_dim=abc`), refused by the schema: the key,
    the value as typed and what the key takes."""
    # Hydra chains the schema's error as the cause (an override) or the context (a file)
    error = next((e for e in (exc, exc.__cause__, exc.__context__)
                  if isinstance(e, ValidationError)), None)
    if error is None or not error.full_key:
        return None
    key, index, _ = str(error.full_key).partition("[")  # train.top_ks[0]: an element
    takes = schema.expected(key)
    if takes is None:
        return None
    if index:  # a list's element: the whole list as typed (train.top_ks=[10,a])
        typed = next((o.lstrip("+") for o in overrides
                      if o.lstrip("+").partition("=")[0] == key), f"{key}=[...]")
        return f"{typed} is invalid: expected {takes}"
    return str(invalid(key, error.value, takes))


def _failed_override(exc: Exception, overrides: Sequence[str]) -> str:
    return failed_override(exc) or " ".join(overrides)


def unparsable(overrides: Sequence[str]) -> str | None:
    """The first override Hydra's grammar cannot read, and how to quote it. Hydra's own
    message names a lexer state (`LexerNoViableAltException: data.path=~/x.csv; ^`). A
    storage URL with a password is not echoed."""
    parser = OverridesParser.create()
    for override in overrides:
        try:
            parsed = parser.parse_override(override)
            if parsed.is_sweep_override() and _storage_override([override]) is not None:
                return str(_storage_unparsable())  # a ',' in the password: two URLs, halves
        except HydraException as exc:  # OverrideParseException, or the lexer's plain one
            if _storage_override([override]) is not None:
                return str(_storage_unparsable())
            key, _, value = override.partition("=")
            at = grammar_stop(exc)
            quoted = value.replace('"', '\\"')
            stops = (f"cannot read the override {override!r}: Hydra's override grammar stops "
                     f"at {at or 'a special character'}; quote the value, e.g. ")
            if "'" in value:  # the shell's single quotes cannot hold it: double ones instead
                hydra = value.replace("\\", "\\\\").replace("'", "\\'")
                shell = hydra.replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
                return stops + f"\"{key}='{shell}'\" (the outer double quotes are for the shell)"
            return stops + f"'{key}=\"{quoted}\"' (the outer single quotes are for the shell)"
    return None


def _one_line(message: str) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return "; ".join(lines)

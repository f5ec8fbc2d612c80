"""The config schema, registered in Hydra's ConfigStore: one structured config per option of
each training group, derived from the dataclasses of `recsys.config`, so the schema is
written once, in Python.

Each YAML option in `conf/` extends its schema (`defaults: [/schema/model@_here_, _self_]`)
and holds values and comments only. Hydra then refuses a wrong type or an unknown key while
composing, and `compose.py` turns its error into the project's one line. OmegaConf 2.3 has no
`Literal` or mixed `Union` type: a choice is a `str` here (its values are checked by the
dataclass, as every other range is) and `bool | Literal["auto"]` is `Any`.

The `search` group has no schema here: a structured config refuses deletion, and replacing
the search space is `~search.params '+search.params={...}'`. `SearchConfig` checks it where
the sweep reads it."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Literal, Optional

from hydra.core.config_store import ConfigStore

from recsys.config import GROUP_TYPES, OPTIMIZER_CONFIGS

SCHEMA_GROUP = "schema"


def _options() -> dict[str, dict[str, type]]:
    """Each group's schema per option name (`""`: one schema for every option)."""
    groups: dict[str, dict[str, type]] = {g: {"": t} for g, t in GROUP_TYPES.items()}
    groups["optimizer"] = dict(OPTIMIZER_CONFIGS)
    return groups


def register() -> None:
    """Store every group's schema (idempotent: a second call stores the same nodes)."""
    store = ConfigStore.instance()
    for group, options in _options().items():
        for option, cls in options.items():
            if option:
                store.store(group=f"{SCHEMA_GROUP}/{group}", name=option, node=structured(cls))
            else:
                store.store(group=SCHEMA_GROUP, name=group, node=structured(cls))


@functools.cache  # one class per dataclass: a nested field's type and default must agree
def structured(cls: type) -> type:
    """An OmegaConf structured config with `cls`'s fields, types and defaults."""
    hints = typing.get_type_hints(cls)
    fields = [(f.name, _schema_type(hints[f.name]), _default(f))
              for f in dataclasses.fields(cls)]
    return dataclasses.make_dataclass(f"{cls.__name__}Schema", fields)


def _schema_type(hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return str
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) > 1:  # `bool | Literal["auto"]`
            return Any
        kind = _schema_type(inner[0])
        return Optional[kind] if type(None) in args else kind  # noqa: UP045 (OmegaConf's type)
    if origin is tuple:
        return list[_schema_type(args[0])]
    if origin is dict:
        return dict[str, Any]
    if dataclasses.is_dataclass(hint):
        return structured(hint)  # type: ignore[arg-type]
    return hint


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        if dataclasses.is_dataclass(value):
            nested = structured(type(value))
            return dataclasses.field(default_factory=nested)
        return dataclasses.field(default_factory=lambda: _plain(value))
    if isinstance(f.default, tuple):
        return dataclasses.field(default_factory=lambda: _plain(f.default))
    return f.default


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def expected(key: str) -> str | None:
    """What a dotted key takes, in the words of the dataclass checks (`model.embedding_dim`:
    "an integer"; `train.top_ks`: "a list of integers"); None for a key no schema types."""
    from recsys.typed import expected_form

    group, *path = key.split(".")
    for cls in _options().get(group, {}).values():
        hint: Any = cls
        for part in path:
            fields = typing.get_type_hints(hint) if dataclasses.is_dataclass(hint) else {}
            if part not in fields:
                break
            hint = fields[part]
        else:
            if path:
                return expected_form(hint)
    return None

"""Typed settings from plain values: a config dataclass built from a composed tree, each
value checked against its field's type, and the one-line error for a bad or unknown key.
Generic: `recsys/config.py` holds the schema, this module the machinery that reads it."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Literal, TypeVar

from recsys.errors import UserError


def invalid(key: str, value: Any, valid: str) -> UserError:
    """The one line for a bad setting: the key, its value as typed and what it takes."""
    shown = str(value).lower() if isinstance(value, bool) else repr(value)
    return UserError(f"{key}={shown} is invalid: expected {valid}")


def require(ok: bool, key: str, value: Any, valid: str) -> None:
    if not ok:
        raise invalid(key, value, valid)


T = TypeVar("T")


def plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [plain(v) for v in node]
    return node


def with_value(section: Any, path: list[str], value: Any, prefix: str) -> Any:
    """`section` with the field at `path` replaced (its sections rebuilt, so each one's
    checks run again)."""
    name, key = path[0], f"{prefix}.{path[0]}" if prefix else path[0]
    known = [f.name for f in dataclasses.fields(section)]
    if name not in known:
        raise unknown_setting(prefix, name, known)
    if len(path) > 1:
        inner = getattr(section, name)
        if not dataclasses.is_dataclass(inner):
            raise UserError(f"{'.'.join([key, *path[1:]])} is not a known setting: {key} is a "
                            "value, not a section")
        return dataclasses.replace(section, **{name: with_value(inner, path[1:], value, key)})
    hint = typing.get_type_hints(type(section))[name]
    return dataclasses.replace(section, **{name: typed_value(value, hint, key)})


def unknown_setting(prefix: str, key: str, known: list[str] | set[str]) -> UserError:
    """`key` is not among `known` (under `prefix`; at the top, `known` are the groups)."""
    if not prefix:  # e.g. `+foo=1`: a typo that would otherwise change nothing
        return UserError(f"{key} is not a known setting: the config has the groups "
                         f"{', '.join(known)}")
    close = difflib.get_close_matches(str(key), sorted(known), n=3)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return UserError(f"{prefix}.{key} is not a known setting{hint}: valid keys are "
                     f"{sorted(known)}")


def build(cls: type[T], values: dict[str, Any] | None, prefix: str) -> T:
    """Construct a config dataclass from plain values, checking each against its field's type:
    booleans must be booleans, numbers numbers (finite), lists lists, choices one of theirs,
    and unknown keys are errors that list the valid ones. Nested dataclasses are built too."""
    if values is not None and not isinstance(values, dict):
        raise UserError(f"{prefix}={values!r} is invalid: expected a mapping of settings")
    if hasattr(cls, "variant"):  # a group whose options carry different keys
        cls = cls.variant(values or {})
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in (values or {}).items():
        if key not in known:
            raise unknown_setting(prefix, key, known)
        kwargs[key] = typed_value(value, hints[key], f"{prefix}.{key}")
    return cls(**kwargs)


def typed_value(value: Any, hint: Any, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):  # `X | None`
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            require(value is not None, key, value, expected_form(inner[0]))
            return typed_value(value, inner[0], key)
        for option in inner:  # `bool | Literal["auto"]`: the first type that fits
            with contextlib.suppress(UserError):
                return typed_value(value, option, key)
        require(False, key, value, expected_form(hint))
    if origin is Literal:
        require(value in args and not isinstance(value, bool), key, value,
                 " or ".join(str(a) for a in args))
        return value
    if origin is tuple:
        require(isinstance(value, (list, tuple)), key, value, expected_form(hint))
        return tuple(typed_value(v, args[0], key) for v in value)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)  # type: ignore[arg-type]
    if hint is bool:
        require(isinstance(value, bool), key, value, "true or false")
    elif hint is int:
        require(isinstance(value, int) and not isinstance(value, bool), key, value,
                 "an integer")
    elif hint is float:
        require(isinstance(value, (int, float)) and not isinstance(value, bool)
                 and math.isfinite(value), key, value, "a finite number")
    elif hint is str:  # `data.path=2024` arrives as a number: it is still a name
        require(isinstance(value, (str, int, float)) and not isinstance(value, bool), key,
                 value, "a string")
        return str(value)
    return value


def expected_form(hint: Any) -> str:
    """A field type in words, as the checks' messages name it ("an integer", "a or b")."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [expected_form(a) for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(["null", *inner] if type(None) in typing.get_args(hint) else inner)
    if origin is Literal:
        return " or ".join(str(a) for a in typing.get_args(hint))
    if origin is tuple:
        inner = typing.get_args(hint)[0]
        return "a list of " + {int: "integers", float: "numbers", str: "strings"}.get(
            inner, str(inner))
    return {bool: "true or false", int: "an integer", float: "a finite number",
            str: "a string"}.get(hint, str(hint))

"""Passwords out of everything printed or written: storage URLs on the console, in error lines
and in Hydra's `.hydra/` copies of the command line."""

from __future__ import annotations

import re
from collections.abc import Sequence

# user:password@ in a URL. The password may hold spaces (a quoted override) and '@' (then the
# last '@' before the host ends it); anything up to that last '@' is hidden.
_USERINFO = re.compile(r"(://[^:/@\s'\"]*:)(?:[^@'\"]|@(?=[^'\"]*@))*@")
_QUERY = re.compile(r"(?i)([?&]password=)[^&\s'\"]*")


_TYPED = re.compile(r"://[^:/@\s'\"]*:(.+)@")


def mask_secrets(text: str, typed: Sequence[str] = ()) -> str:
    """`postgresql://u:pw@host/db?password=x` -> `postgresql://u:***@host/db?password=***`;
    and every password in `typed` (see `typed_passwords`) wherever it appears, as a message
    quoting a command line may cut or escape the URL around it."""
    for secret in sorted(typed, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _QUERY.sub(r"\1***", _USERINFO.sub(r"\1***@", text))


def typed_passwords(args: Sequence[str]) -> list[str]:
    """The passwords of the URLs (`scheme://user:password@host`) on a command line."""
    found = (m.group(1).strip("'\"") for a in args for m in _TYPED.finditer(a))
    return [p for p in found if len(p) >= 2]  # a one-character one would mask letters

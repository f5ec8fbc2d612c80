"""Passwords out of everything printed or written: storage URLs on the console, in error lines
and in Hydra's `.hydra/` copies of the command line."""

from __future__ import annotations

import re

# user:password@ in a URL. The password may hold spaces (a quoted override) and '@' (then the
# last '@' before the host ends it); anything up to that last '@' is hidden.
_USERINFO = re.compile(r"(://[^:/@\s'\"]*:)(?:[^@'\"]|@(?=[^'\"]*@))*@")
_QUERY = re.compile(r"(?i)([?&]password=)[^&\s'\"]*")


def mask_secrets(text: str) -> str:
    """`postgresql://u:pw@host/db?password=x` -> `postgresql://u:***@host/db?password=***`."""
    return _QUERY.sub(r"\1***", _USERINFO.sub(r"\1***@", text))

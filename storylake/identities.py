"""Which storylake user an OIDC identity is, defined once for the dashboards' sign-in and the HTTP API.

The claims' subject (`sub`) is looked up first in the mapping of subjects/emails to storylake user ids, then the
email (never an email the provider says is unverified). The API also accepts a `sub` that is itself a storylake
user id (its own HS256 development tokens); the dashboards do not (their subjects come from an OIDC provider).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from storylake.errors import StorylakeError

INT64_MAX = 2**63 - 1


class IdentityMapError(StorylakeError, ValueError):
    """The subject/email -> user id mapping file is unreadable (the message names the file and the bad entry)."""


def lookup_keys(claims: Mapping[str, Any]) -> list[str]:
    """The keys to look up, in order: the subject, then the email unless marked unverified."""
    keys = [str(claims["sub"])] if claims.get("sub") else []
    if claims.get("email") and claims.get("email_verified", True) is not False:
        keys.append(str(claims["email"]))
    return keys


def mapped_user(claims: Mapping[str, Any], users: Mapping[str, Any]) -> int | None:
    """The storylake user id the claims map to through `users` (subject or email -> id), or None."""
    return next((int(users[k]) for k in lookup_keys(claims) if k in users), None)


def numeric_subject(claims: Mapping[str, Any]) -> int | None:
    """`sub` when it is a storylake user id (decimal digits, 1..int64 max), else None."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.isascii() or not sub.isdigit() or len(sub) > 19:
        return None
    value = int(sub)
    return value if 1 <= value <= INT64_MAX else None


def load_users(path: Path) -> dict[str, int]:
    """A TOML file of `"subject or email" = user_id` lines (optionally under a [users] table)."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise IdentityMapError(f"identity map {path}: {exc}") from exc
    table = doc.get("users", doc)
    out: dict[str, int] = {}
    for key, value in table.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= INT64_MAX:
            raise IdentityMapError(f"identity map {path}: {key!r} must map to a user id (1..2^63-1), got {value!r}")
        out[str(key)] = value
    return out

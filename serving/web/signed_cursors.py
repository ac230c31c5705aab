"""Cursors as the API hands them out: the serving library's cursor (which already pins the list, the snapshot,
the caller and the position) with an HMAC-SHA256 tag, so a client can neither forge nor alter one.

    <library cursor>.<tag>     tag = base64url(HMAC(key, library cursor))[:22]   (128 bits)
"""

from __future__ import annotations

import base64
import hashlib
import hmac

TAG_CHARS = 22


class TamperedCursorError(ValueError):
    """The cursor's tag does not match: altered, forged or from another deployment."""


def sign(key: bytes, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    return f"{cursor}.{_tag(key, cursor)}"


def verify(key: bytes, token: str | None) -> str | None:
    """The library cursor inside `token` (None for None); TamperedCursorError when the tag is wrong."""
    if token is None:
        return None
    body, dot, tag = token.rpartition(".")
    if not dot or not body or not hmac.compare_digest(tag.encode(), _tag(key, body).encode()):
        raise TamperedCursorError("cursor: not issued by this service or altered; request the first page again")
    return body


def _tag(key: bytes, body: str) -> str:
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode()[:TAG_CHARS]

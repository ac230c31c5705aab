"""Opaque, signed pagination cursors: base64url (no padding) of a small JSON document and an HMAC tag.

    <base64url(JSON)>.<base64url(HMAC-SHA256(key, base64url(JSON)))[:22]>      (a 128-bit tag)

A cursor pins everything a page depends on: the kind of list, the snapshot, the subject (viewer or
segment + requester), the `now` of the first page and the position key of the last row served.
The next page continues the first page's keyset against the same snapshot, so pages never repeat a row; a cursor
presented for another snapshot, list or subject is refused as stale. The key is the snapshot's own
(Snapshot.cursor_key: random bytes written into the snapshot file at publish), so every process serving a snapshot
accepts its cursors, no secret has to be configured or rotated, and a cursor is worthless once its snapshot is
replaced (it is stale then anyway). Any change to a cursor is refused ("invalid cursor"): a client cannot move
its `now` or position. The lists never let a cursor's `now` widen what the caller's own `now` shows (tray.py,
seen_by.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from storylake.errors import InvalidInputError

CURSOR_VERSION = 1
TAG_CHARS = 22


class InvalidCursorError(InvalidInputError):
    """A cursor this service cannot use: malformed, not issued here (TamperedCursorError) or for another list,
    snapshot or caller (StaleCursorError). The message says to request the first page."""


class TamperedCursorError(InvalidCursorError):
    """The cursor's tag does not match: altered, forged, or signed for another snapshot."""


def _tag(key: bytes, body: str) -> str:
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode()[:TAG_CHARS]


class StaleCursorError(InvalidCursorError):
    """The cursor belongs to another snapshot, list or subject (restart from the first page)."""


@dataclass(frozen=True)
class Cursor:
    kind: str  # 'tray' | 'seen_by'
    snapshot_id: str
    subject: tuple[int, ...]  # (viewer_id,) or (segment_id, requester_id)
    now: datetime
    position: tuple[Any, ...]

    def encode(self, key: bytes) -> str:
        doc = {
            "v": CURSOR_VERSION,
            "k": self.kind,
            "s": self.snapshot_id,
            "u": list(self.subject),
            "n": _micros(self.now),
            "p": list(self.position),
        }
        raw = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
        body = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return f"{body}.{_tag(key, body)}"


def decode(token: str, *, key: bytes, kind: str, snapshot_id: str, subject: tuple[int, ...]) -> Cursor:
    """Check and parse a cursor; TamperedCursorError when its tag is wrong, StaleCursorError when it does not belong
    here, InvalidCursorError when malformed."""
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise InvalidCursorError("invalid cursor: request the first page")
    body, dot, tag = token.rpartition(".")
    if not dot or not body:
        raise InvalidCursorError("invalid cursor: not a cursor this service issued; request the first page")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("v") != CURSOR_VERSION:
            raise ValueError("unsupported cursor version")
        cur = Cursor(
            kind=str(doc["k"]),
            snapshot_id=str(doc["s"]),
            subject=tuple(int(x) for x in doc["u"]),
            now=_from_micros(int(doc["n"])),
            position=tuple(doc["p"]),
        )
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError, OverflowError) as exc:
        raise InvalidCursorError("invalid cursor: not a cursor this service issued; request the first page") from exc
    if cur.kind != kind:
        raise StaleCursorError(f"stale cursor: it pages a {cur.kind} list, not a {kind} list")
    if cur.snapshot_id != snapshot_id:
        raise StaleCursorError(
            f"stale cursor: it was issued for snapshot {cur.snapshot_id}, the serving snapshot is now {snapshot_id}; "
            "request the first page again"
        )
    # the list and snapshot are checked first only to say "stale" rather than "invalid" after a publish; nothing
    # the cursor says is used before its tag is verified
    if not hmac.compare_digest(tag.encode(), _tag(key, body).encode()):
        raise TamperedCursorError("invalid cursor: not issued for this snapshot or altered; request the first page")
    if cur.subject != tuple(subject):
        raise StaleCursorError(f"stale cursor: it was issued for {list(cur.subject)}, not {list(subject)}")
    return cur


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(t: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


micros = _micros
from_micros = _from_micros

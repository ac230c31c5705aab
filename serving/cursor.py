"""Opaque pagination cursors: base64url (no padding) of a small JSON document.

A cursor pins everything a page depends on: the kind of list, the snapshot, the subject (viewer or
segment + requester), the `now` of the first page and the position key of the last row served.
The next page is computed against the same snapshot and the same `now`, so pages never repeat or
skip a row; a cursor presented for another snapshot, list or subject is refused as stale.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

CURSOR_VERSION = 1


class StaleCursorError(ValueError):
    """The cursor belongs to another snapshot, list or subject (restart from the first page)."""


@dataclass(frozen=True)
class Cursor:
    kind: str  # 'tray' | 'seen_by'
    snapshot_id: str
    subject: tuple[int, ...]  # (viewer_id,) or (segment_id, requester_id)
    now: datetime
    position: tuple[Any, ...]

    def encode(self) -> str:
        doc = {
            "v": CURSOR_VERSION,
            "k": self.kind,
            "s": self.snapshot_id,
            "u": list(self.subject),
            "n": _micros(self.now),
            "p": list(self.position),
        }
        raw = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, *, kind: str, snapshot_id: str, subject: tuple[int, ...]) -> Cursor:
    """Parse and check a cursor; ValueError when malformed, StaleCursorError when it does not belong here."""
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise ValueError("invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
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
        raise ValueError(f"invalid cursor: {exc}") from exc
    if cur.kind != kind:
        raise StaleCursorError(f"stale cursor: it pages a {cur.kind} list, not a {kind} list")
    if cur.snapshot_id != snapshot_id:
        raise StaleCursorError(
            f"stale cursor: it was issued for snapshot {cur.snapshot_id}, the serving snapshot is now {snapshot_id}; "
            "request the first page again"
        )
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

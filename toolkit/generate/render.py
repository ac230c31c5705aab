"""Serialisation: rows to JSON lines.

Clean rows are formatted column-wise with numpy (byte matrices, no per-row Python work; nested stickers and
free text are pre-serialised with orjson). Faulty rows go through a dict and orjson. Both paths give the
same bytes for a clean row (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from .faults import MALFORMED, OUT_OF_RANGE, WRONG_TYPE
from .schema import (
    AUDIENCES,
    ENGAGEMENT_KINDS,
    ID_PREFIX,
    MEDIA_TYPES,
    MS_DAY,
    NAV_ACTIONS,
    POLL,
    QUESTION,
    QUIZ,
    RELATIONSHIP_KINDS,
    SLIDER,
    STICKER_TYPES,
    VIEW_SOURCES,
)
from .table import I64, EventTable

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE = date(1970, 1, 1)


class _Lines:
    """Builds many JSON lines at once: each piece is a (rows x width) byte matrix plus a mask of the bytes
    that belong to the line; the lines are the masked bytes in row-major order."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.mats: list[npt.NDArray[np.uint8]] = []
        self.masks: list[npt.NDArray[np.bool_]] = []

    def const(self, text: str) -> None:
        b = np.frombuffer(text.encode("utf-8"), np.uint8)
        self.mats.append(np.broadcast_to(b, (self.n, b.size)))
        self.masks.append(np.broadcast_to(np.ones(b.size, np.bool_), (self.n, b.size)))

    def ints(self, v: I64, pad: int = 1) -> None:
        """Non-negative ints; -1 is written as null. `pad` zero-pads to at least that many digits."""
        null = v < 0
        x = np.where(null, 0, v).astype(np.int64)
        top = int(x.max()) if self.n else 0
        w = max(len(str(top)), pad, 4 if null.any() else 1)
        mat = np.empty((self.n, w), np.uint8)
        nd = np.ones(self.n, np.int64)
        for c in range(w - 1, -1, -1):
            mat[:, c] = 48 + x % 10
            x //= 10
        for i in range(1, w):
            nd += v >= 10**i
        nd = np.maximum(nd, pad)
        if null.any():
            mat[null, w - 4 :] = np.frombuffer(b"null", np.uint8)
            nd[null] = 4
        self.mats.append(mat)
        self.masks.append(np.arange(w)[None, :] >= (w - nd)[:, None])

    def enum(self, codes: I64, values: tuple[str, ...]) -> None:
        enc = [s.encode("utf-8") for s in values]
        w = max(len(e) for e in enc)
        table = np.zeros((len(enc), w), np.uint8)
        for i, e in enumerate(enc):
            table[i, : len(e)] = np.frombuffer(e, np.uint8)
        lens = np.array([len(e) for e in enc])
        self.mats.append(table[codes])
        self.masks.append(np.arange(w)[None, :] < lens[codes][:, None])

    def ratio(self, bp: I64) -> None:
        """bp / 10000 as Python's repr writes it (0.0, 0.05, 0.1234, 1.0); bp in [0, 10000], -1 = null."""
        null = bp < 0
        mat = np.empty((self.n, 6), np.uint8)
        mat[:, 0] = np.where(bp >= 10_000, ord("1"), ord("0"))
        mat[:, 1] = ord(".")
        x = np.where((bp >= 10_000) | null, 0, bp)
        sig = np.zeros(self.n, np.int64)
        for c in range(5, 1, -1):
            d = x % 10
            mat[:, c] = 48 + d
            sig = np.where((sig == 0) & (d != 0), c - 1, sig)
            x //= 10
        length = 2 + np.maximum(sig, 1)
        if null.any():
            mat[null, :4] = np.frombuffer(b"null", np.uint8)
            length[null] = 4
        self.mats.append(mat)
        self.masks.append(np.arange(6)[None, :] < length[:, None])

    def raw(self, values: npt.NDArray[np.object_]) -> None:
        """Pre-serialised JSON values (bytes objects), written as they are."""
        items = values.tolist()
        lens = np.fromiter(map(len, items), np.int64, len(items))
        w = max(int(lens.max()) if self.n else 1, 1)
        mat = np.array(items, dtype=f"S{w}").view(np.uint8).reshape(self.n, w)
        self.mats.append(mat)
        self.masks.append(np.arange(w)[None, :] < lens[:, None])

    def time(self, ms: I64) -> None:
        """ISO-8601 UTC with milliseconds and Z (24 bytes)."""
        days = ms // MS_DAY
        d0 = int(days.min()) if self.n else 0
        span = int(days.max()) - d0 + 1 if self.n else 1
        dates = np.frombuffer(
            "".join(f"{_EPOCH_DATE + timedelta(days=d0 + i):%Y-%m-%d}" for i in range(span)).encode(),
            np.uint8,
        ).reshape(span, 10)
        mat = np.empty((self.n, 24), np.uint8)
        mat[:, :10] = dates[days - d0]
        rest = ms - days * MS_DAY
        h, rest = rest // 3_600_000, rest % 3_600_000
        mi, rest = rest // 60_000, rest % 60_000
        sec, milli = rest // 1000, rest % 1000
        mat[:, 10] = ord("T")
        mat[:, 11], mat[:, 12] = 48 + h // 10, 48 + h % 10
        mat[:, 13] = ord(":")
        mat[:, 14], mat[:, 15] = 48 + mi // 10, 48 + mi % 10
        mat[:, 16] = ord(":")
        mat[:, 17], mat[:, 18] = 48 + sec // 10, 48 + sec % 10
        mat[:, 19] = ord(".")
        mat[:, 20], mat[:, 21], mat[:, 22] = 48 + milli // 100, 48 + milli // 10 % 10, 48 + milli % 10
        mat[:, 23] = ord("Z")
        self.mats.append(mat)
        self.masks.append(np.broadcast_to(np.ones(24, np.bool_), (self.n, 24)))

    def build(self) -> tuple[bytes, I64]:
        """All lines, each ending with a newline, and the byte offset of each line (n + 1 offsets)."""
        self.const("\n")
        mat = np.hstack(self.mats)
        mask = np.hstack(self.masks)
        self.mats, self.masks = [], []
        offsets = np.zeros(self.n + 1, np.int64)
        np.cumsum(mask.sum(axis=1), out=offsets[1:])
        return mat[mask].tobytes(), offsets


def _head(lines: _Lines, etype: str, eids: I64, ms: I64) -> None:
    lines.const(f'{{"event_id":"{ID_PREFIX[etype]}-')
    lines.ints(eids, pad=9)
    lines.const(f'","event_type":"{etype}","event_time":"')
    lines.time(ms)


def _views(t: EventTable, eids: I64) -> tuple[bytes, I64]:
    c = t.cols
    b = _Lines(len(t))
    _head(b, t.event_type, eids, t.time)
    b.const('","segment_id":')
    b.ints(c["segment_id"])
    b.const(',"viewer_id":')
    b.ints(c["viewer_id"])
    b.const(',"view_duration_ms":')
    b.ints(c["view_duration_ms"])
    b.const(',"completion_pct":')
    b.ratio(c["completion_bp"])
    b.const(',"view_source":"')
    b.enum(c["view_source"], VIEW_SOURCES)
    b.const('","idempotency_key":"')
    b.ints(c["viewer_id"])
    b.const(":")
    b.ints(c["segment_id"])
    b.const(":")
    b.ints(c["rep"])
    b.const('"}')
    return b.build()


def _navigation(t: EventTable, eids: I64) -> tuple[bytes, I64]:
    c = t.cols
    b = _Lines(len(t))
    _head(b, t.event_type, eids, t.time)
    b.const('","segment_id":')
    b.ints(c["segment_id"])
    b.const(',"viewer_id":')
    b.ints(c["viewer_id"])
    b.const(',"action":"')
    b.enum(c["action"], NAV_ACTIONS)
    b.const('"}')
    return b.build()


def _engagement(t: EventTable, eids: I64) -> tuple[bytes, I64]:
    c = t.cols
    b = _Lines(len(t))
    _head(b, t.event_type, eids, t.time)
    b.const('","kind":"')
    b.enum(c["kind"], ENGAGEMENT_KINDS)
    b.const('","actor_id":')
    b.ints(c["actor_id"])
    b.const(',"target_user_id":')
    b.ints(c["target_user_id"])
    b.const(',"segment_id":')
    b.ints(c["segment_id"])
    b.const("}")
    return b.build()


def _relationship(t: EventTable, eids: I64) -> tuple[bytes, I64]:
    c = t.cols
    b = _Lines(len(t))
    _head(b, t.event_type, eids, t.time)
    b.const('","kind":"')
    b.enum(c["kind"], RELATIONSHIP_KINDS)
    b.const('","user_id":')
    b.ints(c["user_id"])
    b.const(',"other_user_id":')
    b.ints(c["other_user_id"])
    b.const("}")
    return b.build()


def _segment_deleted(t: EventTable, eids: I64) -> tuple[bytes, I64]:
    c = t.cols
    b = _Lines(len(t))
    _head(b, t.event_type, eids, t.time)
    b.const('","segment_id":')
    b.ints(c["segment_id"])
    b.const(',"author_id":')
    b.ints(c["author_id"])
    b.const("}")
    return b.build()


def _segment_archived(t: EventTable, eids: I64) -> tuple[bytes, I64]:
    c = t.cols
    b = _Lines(len(t))
    _head(b, t.event_type, eids, t.time)
    b.const('","segment_id":')
    b.ints(c["segment_id"])
    b.const(',"author_id":')
    b.ints(c["author_id"])
    b.const(',"highlight_id":')
    b.ints(c["highlight_id"])
    b.const("}")
    return b.build()


def _segment_created(t: EventTable, eids: I64) -> tuple[bytes, I64]:
    c = t.cols
    b = _Lines(len(t))
    _head(b, t.event_type, eids, t.time)
    b.const('","segment_id":')
    b.ints(c["segment_id"])
    b.const(',"author_id":')
    b.ints(c["author_id"])
    b.const(',"media_id":')
    b.ints(c["media_id"])
    b.const(',"media_type":"')
    b.enum(c["media_type"], MEDIA_TYPES)
    b.const('","audience":"')
    b.enum(c["audience"], AUDIENCES)
    b.const('","duration_ms":')
    b.ints(c["duration_ms"])
    b.const(',"stickers":')
    b.raw(c["stickers"])
    b.const("}")
    return b.build()


def _sticker_interaction(t: EventTable, eids: I64) -> tuple[bytes, I64]:
    c = t.cols
    b = _Lines(len(t))
    _head(b, t.event_type, eids, t.time)
    b.const('","sticker_id":')
    b.ints(c["sticker_id"])
    b.const(',"segment_id":')
    b.ints(c["segment_id"])
    b.const(',"user_id":')
    b.ints(c["user_id"])
    b.const(',"sticker_type":"')
    b.enum(c["sticker_type"], STICKER_TYPES)
    b.const('","option_index":')
    b.ints(c["option_index"])
    b.const(',"value":')
    b.ratio(c["value_bp"])
    b.const(',"text":')
    b.raw(c["text"])
    b.const(',"idempotency_key":"')
    b.ints(c["user_id"])
    b.const(":")
    b.ints(c["sticker_id"])
    b.const(":")
    b.ints(c["rep"])
    b.const('"}')
    return b.build()


def _profile_updated(t: EventTable, eids: I64) -> tuple[bytes, I64]:
    c = t.cols
    b = _Lines(len(t))
    _head(b, t.event_type, eids, t.time)
    b.const('","user_id":')
    b.ints(c["user_id"])
    b.const(',"username":')
    b.raw(c["username"])
    b.const(',"profile_picture_media_id":')
    b.ints(c["picture"])
    b.const("}")
    return b.build()


_FAST: dict[str, Callable[[EventTable, I64], tuple[bytes, I64]]] = {
    "profile_updated": _profile_updated,
    "segment_created": _segment_created,
    "sticker_interaction": _sticker_interaction,
    "segment_view": _views,
    "navigation": _navigation,
    "engagement": _engagement,
    "relationship": _relationship,
    "segment_deleted": _segment_deleted,
    "segment_archived": _segment_archived,
}


def _opt(v: int) -> int | None:
    return v if v >= 0 else None


def row_dict(t: EventTable, i: int, eid: int, ts: str) -> dict[str, Any]:
    """One row as the dict written for it (key order = line order)."""
    c = t.cols
    etype = t.event_type
    d: dict[str, Any] = {"event_id": f"{ID_PREFIX[etype]}-{eid:09d}", "event_type": etype, "event_time": ts}

    def g(name: str) -> int:
        return int(c[name][i])

    if etype == "segment_created":
        d |= {
            "segment_id": g("segment_id"),
            "author_id": g("author_id"),
            "media_id": g("media_id"),
            "media_type": MEDIA_TYPES[g("media_type")],
            "audience": AUDIENCES[g("audience")],
            "duration_ms": g("duration_ms"),
            "stickers": orjson.loads(c["stickers"][i]),
        }
    elif etype in ("segment_deleted", "segment_archived"):
        d |= {"segment_id": g("segment_id"), "author_id": g("author_id")}
        if etype == "segment_archived":
            d["highlight_id"] = _opt(g("highlight_id"))
    elif etype == "segment_view":
        seg, viewer = g("segment_id"), g("viewer_id")
        d |= {
            "segment_id": seg,
            "viewer_id": viewer,
            "view_duration_ms": g("view_duration_ms"),
            "completion_pct": g("completion_bp") / 10_000,
            "view_source": VIEW_SOURCES[g("view_source")],
            "idempotency_key": f"{viewer}:{seg}:{g('rep')}",
        }
    elif etype == "navigation":
        d |= {"segment_id": g("segment_id"), "viewer_id": g("viewer_id"), "action": NAV_ACTIONS[g("action")]}
    elif etype == "sticker_interaction":
        sticker, user, value = g("sticker_id"), g("user_id"), g("value_bp")
        d |= {
            "sticker_id": sticker,
            "segment_id": g("segment_id"),
            "user_id": user,
            "sticker_type": STICKER_TYPES[g("sticker_type")],
            "option_index": _opt(g("option_index")),
            "value": value / 10_000 if value >= 0 else None,
            "text": orjson.loads(c["text"][i]),
            "idempotency_key": f"{user}:{sticker}:{g('rep')}",
        }
    elif etype == "engagement":
        d |= {
            "kind": ENGAGEMENT_KINDS[g("kind")],
            "actor_id": g("actor_id"),
            "target_user_id": g("target_user_id"),
            "segment_id": _opt(g("segment_id")),
        }
    elif etype == "relationship":
        d |= {
            "kind": RELATIONSHIP_KINDS[g("kind")],
            "user_id": g("user_id"),
            "other_user_id": _opt(g("other_user_id")),
        }
    elif etype == "profile_updated":
        d |= {
            "user_id": g("user_id"),
            "username": orjson.loads(c["username"][i]),
            "profile_picture_media_id": _opt(g("picture")),
        }
    else:  # pragma: no cover - guarded by EVENT_TYPES
        raise ValueError(f"unknown event type {etype!r}")
    return d


def dumps(d: dict[str, Any]) -> str:
    return orjson.dumps(d).decode("utf-8")


def event_time(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render_block(t: EventTable, eids: I64) -> tuple[bytes, I64]:
    """Clean lines of all rows, newline-terminated, and the byte offset of each line (len(t) + 1 offsets)."""
    fast = _FAST.get(t.event_type)
    if fast is not None and len(t):
        return fast(t, eids)
    enc = [
        orjson.dumps(row_dict(t, i, e, event_time(ms)))
        for i, (e, ms) in enumerate(zip(eids.tolist(), t.time.tolist(), strict=True))
    ]
    offsets = np.zeros(len(enc) + 1, np.int64)
    np.cumsum([len(e) + 1 for e in enc], out=offsets[1:])
    return b"".join(e + b"\n" for e in enc), offsets


_LONG_TEXT = " ".join(["this answer is far too long for the question sticker"] * 12)


def faulty_line(t: EventTable, i: int, eid: int, ts: str, code: int, variant: int) -> str:
    """The line of a row that carries a malformed_json, wrong_type or out_of_range fault."""
    d = row_dict(t, i, eid, ts)
    etype = t.event_type
    if code == MALFORMED:
        line = dumps(d)
        after_id = line.index(',"event_type"')
        if variant % 10 < 7:  # truncated mid-line
            cut = after_id + 1 + (variant >> 4) % max(len(line) - after_id - 2, 1)
            return line[:cut]
        return line[:-1] + "]"  # garbled: object closed with the wrong bracket
    if code == WRONG_TYPE:
        if etype == "segment_view":
            field = ("segment_id", "view_duration_ms", "completion_pct", "viewer_id")[variant % 4]
            d[field] = "abc" if field == "segment_id" and variant & 16 else str(d[field])
        else:
            field = ("sticker_id", "user_id", "option_index", "value")[variant % 4]
            if d[field] is None:
                field = "segment_id"
            d[field] = str(d[field])
        return dumps(d)
    if code == OUT_OF_RANGE:
        small = (1 + (variant >> 3) % 50) / 100
        if etype == "segment_view":
            which = variant % 3
            if which == 0:
                d["completion_pct"] = round(1.0 + small + 0.2, 2)
            elif which == 1:
                d["view_duration_ms"] = -(1 + (variant >> 3) % 5_000)
            else:
                d["completion_pct"] = -small
            return dumps(d)
        typ = int(t.cols["sticker_type"][i])
        if typ == SLIDER:
            d["value"] = -small if variant % 2 else round(1.0 + small, 2)
        elif typ == QUESTION:
            d["text"] = _LONG_TEXT[: 301 + (variant >> 3) % 150]
        elif typ in (POLL, QUIZ):
            nopt = int(t.cols["_nopt"][i])
            d["option_index"] = -1 if variant % 3 == 0 else nopt + (variant >> 3) % 3
        return dumps(d)
    raise ValueError(f"row code {code} has no faulty rendering")

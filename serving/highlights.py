"""Highlights and the archive (seed: stories-architecture "Story Highlights"; events: segment_archived).

A segment its author archived (`segment_archived`, optionally into a highlight) is kept after it expires. The
snapshot's `archived_segments` holds every archived, non-deleted segment:
  - highlights(): a user's highlights as another user (or the user) sees them at `now`: each highlight's segments
    the audience rules (storylake.rules.audience, through audience_table.allowed_table) let the requester see,
    with the flags that hold at `now` between them (blocks, hides, close friends, the author's private account and
    the requester's approval). A public account's public highlights are visible to non-followers, as on a profile.
  - archive(): the requester's own archived segments, newest first, in keyset pages (private: author only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from serving import audience_table
from serving import cursor as cursors
from serving.snapshot import Snapshot
from storylake.clock import utc
from storylake.rules.audience import BOOL_FLAGS, holds_at_sql

MAX_LIMIT = 500
_COLUMNS = (
    "segment_id, story_id, media_id, media_type, duration_ms, epoch_us(created_at), epoch_us(expires_at), "
    "audience, highlight_id"
)
HIGHLIGHT_SQL = (
    f"SELECT {_COLUMNS} FROM archived_segments WHERE author_id = $author AND highlight_id IS NOT NULL "  # noqa: S608
    "AND created_at <= $now ORDER BY highlight_id, created_at, segment_id"
)
# the requester's flags toward the author at $now, and whether the author's account is private at $now
FLAGS_SQL = f"""
SELECT flag_code FROM viewer_pairs
WHERE viewer_id = $viewer AND author_id = $author AND {holds_at_sql("viewer_pairs", "$now")}
"""  # noqa: S608 (constant SQL; values are bound parameters)
PRIVATE_SQL = f"""
SELECT EXISTS (SELECT 1 FROM private_intervals p WHERE user_id = $author AND {holds_at_sql("p", "$now")})
"""  # noqa: S608
_ARCHIVE = f"SELECT {_COLUMNS} FROM archived_segments WHERE author_id = $author"  # noqa: S608
ARCHIVE_SQL = {
    False: _ARCHIVE + " ORDER BY created_at DESC, segment_id LIMIT $lim",
    True: _ARCHIVE + " AND (created_at < $t OR (created_at = $t AND segment_id > $s)) "
                     "ORDER BY created_at DESC, segment_id LIMIT $lim",
}


@dataclass(frozen=True)
class ArchivedSegment:
    segment_id: int
    story_id: int | None
    media_id: int | None
    media_type: str
    duration_ms: int
    created_at: datetime
    expires_at: datetime
    audience: str
    highlight_id: int | None


@dataclass(frozen=True)
class Highlight:
    highlight_id: int
    segments: tuple[ArchivedSegment, ...]


@dataclass(frozen=True)
class ArchivePage:
    segments: tuple[ArchivedSegment, ...]
    has_more: bool
    next_cursor: str | None
    snapshot_id: str


def _segment(r: tuple[Any, ...]) -> ArchivedSegment:
    return ArchivedSegment(
        segment_id=int(r[0]), story_id=r[1], media_id=r[2], media_type=str(r[3]), duration_ms=int(r[4]),
        created_at=cursors.from_micros(r[5]), expires_at=cursors.from_micros(r[6]), audience=str(r[7]),
        highlight_id=r[8],
    )


def allowed_audiences(snapshot: Snapshot, author_id: int, requester_id: int, now: datetime) -> set[str]:
    """The audiences of `author_id`'s segments that `requester_id` may see at `now` (audience rules)."""
    flags = np.zeros(len(BOOL_FLAGS), dtype=np.int64)
    if requester_id == author_id:
        flags[BOOL_FLAGS.index("is_self")] = 1
    else:
        db = snapshot.db()
        params = {"viewer": requester_id, "author": author_id, "now": now}
        for (code,) in db.execute(FLAGS_SQL, params).fetchall():
            flags[audience_table.pair_flag_column(audience_table.PAIR_FLAGS[int(code)])] = 1
        if db.execute(PRIVATE_SQL, {"author": author_id, "now": now}).fetchone()[0]:
            flags[BOOL_FLAGS.index("author_private")] = 1
    table = audience_table.allowed_table()
    return {aud for k, aud in enumerate(audience_table.AUDIENCES) if table[(k, *flags.tolist())]}


def highlights(snapshot: Snapshot, user_id: int, requester_id: int, now: datetime) -> tuple[Highlight, ...]:
    """`user_id`'s highlights as `requester_id` may see them at `now` (highlights left empty are not listed)."""
    user_id, requester_id, now = int(user_id), int(requester_id), utc(now)
    rows = snapshot.db().execute(HIGHLIGHT_SQL, {"author": user_id, "now": now}).fetchall()
    if not rows:
        return ()
    allowed = allowed_audiences(snapshot, user_id, requester_id, now)
    out: dict[int, list[ArchivedSegment]] = {}
    for r in rows:
        seg = _segment(r)
        if seg.audience in allowed and seg.highlight_id is not None:
            out.setdefault(int(seg.highlight_id), []).append(seg)
    return tuple(Highlight(h, tuple(segs)) for h, segs in out.items())


def archive(snapshot: Snapshot, requester_id: int, limit: int = 50, cursor: str | None = None) -> ArchivePage:
    """One page of the requester's own archive, newest first."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be within 1..{MAX_LIMIT}, got {limit}")
    requester_id = int(requester_id)
    params: dict[str, Any] = {"author": requester_id, "lim": limit + 1}
    if cursor is not None:
        cur = cursors.decode(cursor, key=snapshot.cursor_key, kind="archive", snapshot_id=snapshot.snapshot_id,
                             subject=(requester_id,))
        try:
            t_us, s = cur.position
            params.update(t=cursors.from_micros(int(t_us)), s=int(s))
        except (TypeError, ValueError) as exc:
            raise cursors.InvalidCursorError("invalid cursor: request the first page") from exc
    rows = snapshot.db().execute(ARCHIVE_SQL[cursor is not None], params).fetchall()
    segs = tuple(_segment(r) for r in rows[:limit])
    has_more = len(rows) > limit
    next_cursor = None
    if has_more:
        last = segs[-1]
        next_cursor = cursors.Cursor(
            kind="archive", snapshot_id=snapshot.snapshot_id, subject=(requester_id,), now=last.created_at,
            position=(cursors.micros(last.created_at), last.segment_id),
        ).encode(snapshot.cursor_key)
    return ArchivePage(segs, has_more, next_cursor, snapshot.snapshot_id)

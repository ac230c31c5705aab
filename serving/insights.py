"""Creator insights of one author, for that author only (DESIGN §5): per segment, per story, per day, per hour,
sticker results and the question-sticker inbox, as published in the snapshot.

Rows keep the gold/silver contract column names. `now` decides the per-segment `is_active` and
`seen_by_available` flags (active: created_at <= now < expires_at and not deleted; Seen By: now <
created_at + 48 h).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from serving.snapshot import Snapshot
from storylake.clock import utc
from storylake.errors import NotFoundError
from storylake.rules.lifetimes import seen_by_open

# segment_insights is sorted by author (zone maps); the catalog (sorted by segment) is the fallback for
# segments gold has not aggregated yet.
_KNOWN_SQL = (
    "SELECT EXISTS (SELECT 1 FROM segment_insights WHERE author_id = $author) "
    "OR EXISTS (SELECT 1 FROM segment_catalog WHERE author_id = $author)"
)
_QUERIES = {
    "segments": "SELECT * FROM segment_insights WHERE author_id = $author ORDER BY created_at, segment_id",
    "stories": "SELECT * FROM story_insights WHERE author_id = $author ORDER BY story_start, story_id",
    "daily": "SELECT * FROM author_daily_insights WHERE author_id = $author ORDER BY day",
    "hourly": "SELECT * FROM author_hourly_insights WHERE author_id = $author ORDER BY hour",
    "stickers": "SELECT * FROM sticker_results WHERE author_id = $author ORDER BY segment_id, sticker_id",
    "question_responses": (
        "SELECT sticker_id, segment_id, user_id, text, responded_at FROM question_inbox "
        "WHERE author_id = $author ORDER BY responded_at DESC, sticker_id, user_id"
    ),
}


def insights(snapshot: Snapshot, author_id: int, requester_id: int, now: datetime) -> dict[str, Any]:
    """{'author_id', 'now', 'snapshot_id', 'as_of', 'segments', 'stories', 'daily', 'hourly' (the last two
    days' hours), 'stickers', 'question_responses'}; PermissionError for anyone but the author, NotFoundError for
    an author with no segment in the snapshot."""
    author_id, requester_id, now = int(author_id), int(requester_id), utc(now)
    if requester_id != author_id:
        raise PermissionError(
            f"user {requester_id} may not read the insights of author {author_id}: only the author can"
        )
    db = snapshot.db()
    if not db.execute(_KNOWN_SQL, {"author": author_id}).fetchone()[0]:
        raise NotFoundError(f"author {author_id} has no segments in serving snapshot {snapshot.snapshot_id}")
    out: dict[str, Any] = {
        "author_id": author_id,
        "now": now,
        "snapshot_id": snapshot.snapshot_id,
        "as_of": snapshot.as_of,
    }
    for name, sql in _QUERIES.items():
        res = db.execute(sql, {"author": author_id})
        cols = [d[0] for d in res.description]
        out[name] = [dict(zip(cols, r, strict=True)) for r in res.fetchall()]
    for seg in out["segments"]:
        created, expires = utc(seg["created_at"]), utc(seg["expires_at"])
        seg["is_active"] = (not seg["is_deleted"]) and created <= now < expires
        seg["seen_by_available"] = (not seg["is_deleted"]) and created <= now and seen_by_open(created, now)
    return out

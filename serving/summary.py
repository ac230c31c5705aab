"""Read-only summaries of the CURRENT snapshot for `storylake demo` (top creators, sample ids)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from serving.snapshot import open_current
from serving.tray import tray
from storylake.rules.lifetimes import seen_by_open_sql
from storylake.settings import Settings


def top_creators(settings: Settings, limit: int = 5) -> list[dict[str, Any]]:
    """Authors by total story reach in the snapshot, with their stories, impressions, exits and replies."""
    snap = open_current(settings)
    rows = snap.db().execute(
        """SELECT author_id, count(*) AS stories, sum(reach) AS reach, sum(impressions) AS impressions,
                  sum(exits) AS exits, sum(replies) AS replies
           FROM story_insights GROUP BY author_id ORDER BY reach DESC, author_id LIMIT ?""",
        [limit],
    ).fetchall()
    keys = ("author_id", "stories", "reach", "impressions", "exits", "replies")
    return [dict(zip(keys, (int(v) for v in r), strict=True)) for r in rows]


def sample_viewer(settings: Settings, now: datetime, candidates: int = 50) -> int | None:
    """The most active viewer whose tray at `now` is not empty (None if there is none)."""
    snap = open_current(settings)
    viewers = snap.db().execute(
        "SELECT viewer_id FROM viewer_seen GROUP BY viewer_id ORDER BY count(*) DESC, viewer_id LIMIT ?",
        [candidates],
    ).fetchall()
    for (viewer,) in viewers:
        if tray(snap, int(viewer), now, limit=1).rings:
            return int(viewer)
    return None


def sample_segment(settings: Settings, now: datetime) -> tuple[int, int] | None:
    """(segment_id, author_id) of the segment with the most viewers whose Seen By is still available."""
    snap = open_current(settings)
    row = snap.db().execute(
        f"""SELECT segment_id, author_id FROM segment_catalog
           WHERE created_at <= $now AND {seen_by_open_sql("created_at", "$now")} AND NOT is_deleted
           ORDER BY viewer_rows DESC, segment_id LIMIT 1""",  # noqa: S608 (constant SQL; now is bound)
        {"now": now},
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else None


def snapshot_as_of(settings: Settings) -> datetime:
    return open_current(settings).as_of




"""JSON shapes of the query API (seed: stories-viewer-design). Times are ISO-8601 UTC with a Z suffix."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from serving.seen_by import SeenByPage
from serving.tray import SegmentColumns, TrayPage, ring_state
from storylake.clock import iso


def tray_dict(
    page: TrayPage,
    ring_extra: Callable[[int], dict[str, Any]] | None = None,
    segment_extra: dict[str, list[Any]] | None = None,
    segments: list[Any] | None = None,
) -> dict[str, Any]:
    """{"users": [{"userId", "isOwn", "hasUnseen", "ringState", "isCloseFriends", "rankScore",
    "latestSegmentAt", "segmentCount", "segments": [{"segmentId", "storyId", "mediaType", "durationMs", "expiresAt",
    "seen"}]}], "nextCursor"}, rendered from the page's columns. What only the HTTP API adds comes in the same pass:
    `ring_extra(author_id)` -> fields of a ring (names, pictures); `segment_extra` -> per-segment columns (media
    URLs), in page order. `segments`: the page's segment objects already rendered (in page order), used as they
    are (the HTTP API's per-segment JSON fragments)."""
    c = page.ring_columns
    if segments is None:
        segments = segment_dicts(page.segments, segment_extra)
    users, k = [], 0
    for i, n in enumerate(c.counts):
        unseen = c.has_unseen[i]
        ring = {"userId": c.author_id[i], "isOwn": c.is_own[i], "hasUnseen": unseen,
                "ringState": ring_state(unseen, c.is_close_friends[i]), "isCloseFriends": c.is_close_friends[i],
                "rankScore": c.rank_score[i], "latestSegmentAt": c.latest_iso[i], "segmentCount": n,
                "segments": segments[k:k + n]}
        k += n
        if ring_extra is not None:
            ring.update(ring_extra(c.author_id[i]))
        users.append(ring)
    return {"users": users, "nextCursor": page.next_cursor}


def segment_dicts(s: SegmentColumns, extra: dict[str, list[Any]] | None = None) -> list[dict[str, Any]]:
    """A tray's segment objects ({"segmentId", "storyId", "mediaType", "durationMs", "expiresAt", "seen"}, then the
    `extra` columns), one per row of `s`."""
    names = ["segmentId", "storyId", "mediaType", "durationMs", "expiresAt", "seen"]
    cols: list[list[Any]] = [s.segment_id, s.story_id, s.media_type, s.duration_ms, s.expires_iso, s.seen]
    for name, values in (extra or {}).items():
        names.append(name)
        cols.append(values)
    return [dict(zip(names, row, strict=True)) for row in zip(*cols, strict=True)]


def seen_by_dict(page: SeenByPage) -> dict[str, Any]:
    """{"segmentId", "total", "viewers": [{"viewerId", "viewedAt", "viewSource", "completionPct"}],
    "hasMore", "nextCursor"}"""
    return {
        "segmentId": page.segment_id,
        "total": page.total,
        "viewers": [
            {
                "viewerId": v.viewer_id,
                "viewedAt": v.viewed_iso,
                "viewSource": v.view_source,
                "completionPct": v.completion_pct,
            }
            for v in page.viewers
        ],
        "hasMore": page.has_more,
        "nextCursor": page.next_cursor,
    }


def insights_dict(result: dict[str, Any]) -> dict[str, Any]:
    """insights() with camelCase top-level keys; rows keep their contract column names; JSON-safe values."""
    return {
        "authorId": result["author_id"],
        "now": iso(result["now"]),
        "snapshotId": result["snapshot_id"],
        "asOf": iso(result["as_of"]),
        "segments": jsonable(result["segments"]),
        "stories": jsonable(result["stories"]),
        "daily": jsonable(result["daily"]),
        "stickers": jsonable(result["stickers"]),
        "questionResponses": jsonable(result["question_responses"]),
    }


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def tray_json(page: TrayPage) -> str:
    return dumps(tray_dict(page))


def seen_by_json(page: SeenByPage) -> str:
    return dumps(seen_by_dict(page))


def insights_json(result: dict[str, Any]) -> str:
    return dumps(insights_dict(result))

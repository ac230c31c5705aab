"""JSON shapes of the query API (seed: stories-viewer-design). Times are ISO-8601 UTC with a Z suffix."""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from serving.seen_by import SeenByPage
from serving.tray import TrayPage
from storylake.clock import iso


def tray_dict(page: TrayPage) -> dict[str, Any]:
    """{"users": [{"userId", "isOwn", "hasUnseen", "ringState", "isCloseFriends", "rankScore",
    "latestSegmentAt", "segmentCount", "segments": [{"segmentId", "storyId", "mediaType", "durationMs", "expiresAt",
    "seen"}]}], "nextCursor"}"""
    return {
        "users": [
            {
                "userId": r.author_id,
                "isOwn": r.is_own,
                "hasUnseen": r.has_unseen,
                "ringState": r.ring_state,
                "isCloseFriends": r.is_close_friends,
                "rankScore": r.rank_score,
                "latestSegmentAt": iso(r.latest_segment_at),
                "segmentCount": r.segment_count,
                "segments": [
                    {
                        "segmentId": s.segment_id,
                        "storyId": s.story_id,
                        "mediaType": s.media_type,
                        "durationMs": s.duration_ms,
                        "expiresAt": iso(s.expires_at),
                        "seen": s.seen,
                    }
                    for s in r.segments
                ],
            }
            for r in page.rings
        ],
        "nextCursor": page.next_cursor,
    }


def seen_by_dict(page: SeenByPage) -> dict[str, Any]:
    """{"segmentId", "total", "viewers": [{"viewerId", "viewedAt", "viewSource", "completionPct"}],
    "hasMore", "nextCursor"}"""
    return {
        "segmentId": page.segment_id,
        "total": page.total,
        "viewers": [
            {
                "viewerId": v.viewer_id,
                "viewedAt": iso(v.viewed_at),
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

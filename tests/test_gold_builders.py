"""Hand-built silver rows for the gold and export tests (shared by tests/test_gold_*.py and tests/test_export*.py).

Rows are plain dicts; `frames(spark, **rows)` turns them into DataFrames of the silver contracts' schemas
(every silver table present, empty when not given). Only the fields a test cares about need to be given.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from jobs.spark_schemas import spark_schema
from storylake import contracts

T0 = datetime(2024, 5, 1, tzinfo=UTC)
H, D = timedelta(hours=1), timedelta(days=1)
US = timedelta(microseconds=1)
SILVER = (
    "segments",
    "view_events",
    "segment_viewers",
    "navigation",
    "engagements",
    "sticker_responses",
    "relationships",
)
_ids = itertools.count(1)


def segment(
    segment_id: int,
    author_id: int,
    created_at: datetime,
    *,
    story_id: int | None = None,
    frame_index: int = 1,
    story_start: datetime | None = None,
    audience: str = "public",
    stickers: Sequence[dict[str, Any]] = (),
    media_type: str = "photo",
) -> dict[str, Any]:
    return {
        "segment_id": segment_id,
        "author_id": author_id,
        "media_id": segment_id * 10,
        "media_type": media_type,
        "audience": audience,
        "duration_ms": 5000,
        "created_at": created_at,
        "expires_at": created_at + 24 * H,
        "story_id": segment_id if story_id is None else story_id,
        "frame_index": frame_index,
        "story_start": story_start or created_at,
        "is_deleted": False,
        "deleted_at": None,
        "is_archived": False,
        "highlight_id": None,
        "stickers": [{"options": None, "correct_index": None, **s} for s in stickers],
    }


def view(
    seg: dict[str, Any], viewer_id: int, viewed_at: datetime, *, ms: int = 3000, completion: float = 1.0
) -> dict[str, Any]:
    event_id = f"v{next(_ids)}"
    return {
        "event_id": event_id,
        "idempotency_key": event_id,
        "segment_id": seg["segment_id"],
        "author_id": seg["author_id"],
        "story_id": seg["story_id"],
        "frame_index": seg["frame_index"],
        "viewer_id": viewer_id,
        "viewed_at": viewed_at,
        "view_date": viewed_at.date(),
        "view_duration_ms": ms,
        "completion_pct": completion,
        "view_source": "tray",
    }


def nav(seg: dict[str, Any], viewer_id: int, action: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": f"n{next(_ids)}",
        "segment_id": seg["segment_id"],
        "author_id": seg["author_id"],
        "story_id": seg["story_id"],
        "viewer_id": viewer_id,
        "action": action,
        "at": at,
    }


def engagement(kind: str, actor_id: int, target_user_id: int, at: datetime, seg: dict | None = None) -> dict[str, Any]:
    return {
        "event_id": f"e{next(_ids)}",
        "kind": kind,
        "actor_id": actor_id,
        "target_user_id": target_user_id,
        "segment_id": seg["segment_id"] if seg else None,
        "at": at,
    }


def response(
    seg: dict[str, Any],
    sticker_id: int,
    user_id: int,
    at: datetime,
    *,
    option_index: int | None = None,
    value: float | None = None,
    text: str | None = None,
    interactions: int = 1,
) -> dict[str, Any]:
    sticker_type = next(s["type"] for s in seg["stickers"] if s["sticker_id"] == sticker_id)
    return {
        "sticker_id": sticker_id,
        "segment_id": seg["segment_id"],
        "author_id": seg["author_id"],
        "user_id": user_id,
        "sticker_type": sticker_type,
        "option_index": option_index,
        "value": value,
        "text": text,
        "responded_at": at,
        "interactions": interactions,
    }


def relation(
    rel: str, user_id: int, other_user_id: int, valid_from: datetime, valid_to: datetime | None = None
) -> dict[str, Any]:
    return {
        "relation": rel,
        "user_id": user_id,
        "other_user_id": other_user_id,
        "valid_from": valid_from,
        "valid_to": valid_to,
    }


def segment_viewers(views: Iterable[dict[str, Any]], segments: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Seen By rows (one per segment x viewer) that silver derives from view_events."""
    created = {s["segment_id"]: s["created_at"] for s in segments}
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for v in sorted(views, key=lambda v: v["viewed_at"]):
        key = (v["segment_id"], v["viewer_id"])
        row = out.setdefault(
            key,
            {
                "segment_id": v["segment_id"],
                "viewer_id": v["viewer_id"],
                "author_id": v["author_id"],
                "first_viewed_at": v["viewed_at"],
                "view_count": 0,
                "max_completion_pct": 0.0,
                "total_view_ms": 0,
                "first_view_source": v["view_source"],
                "segment_created_at": created[v["segment_id"]],
            },
        )
        row["last_viewed_at"] = v["viewed_at"]
        row["view_count"] += 1
        row["max_completion_pct"] = max(row["max_completion_pct"], v["completion_pct"])
        row["total_view_ms"] += v["view_duration_ms"]
    return list(out.values())


def _as_row(value: Any, col: contracts.Column) -> Any:
    if value is None:
        return None
    if col.physical_type == "array":
        assert col.items is not None
        return [_as_row(v, col.items) for v in value]
    if col.physical_type == "struct":
        return tuple(_as_row(value.get(f.name), f) for f in col.fields)
    return value


def frame(spark: Any, name: str, rows: Iterable[dict[str, Any]]) -> Any:
    """A DataFrame of silver.<name>'s schema from dict rows (missing keys -> null)."""
    contract = contracts.get(f"silver.{name}")
    data = [tuple(_as_row(r.get(c.name), c) for c in contract.columns) for r in rows]
    return spark.createDataFrame(data, spark_schema(contract))


def frames(spark: Any, **rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Every silver table as a DataFrame (empty unless rows are given)."""
    unknown = set(rows) - set(SILVER)
    assert not unknown, unknown
    return {name: frame(spark, name, rows.get(name, ())) for name in SILVER}


def collect(df: Any, key: str | Sequence[str]) -> dict[Any, dict[str, Any]]:
    """Rows as dicts keyed by one column (or a tuple of columns)."""
    keys = [key] if isinstance(key, str) else list(key)
    out = {}
    for row in df.collect():
        d = row.asDict(recursive=True)
        out[d[keys[0]] if len(keys) == 1 else tuple(d[k] for k in keys)] = d
    return out


def test_frames_follow_the_silver_contracts(spark):
    seg = segment(1, 7, T0, stickers=[{"sticker_id": 5, "type": "poll", "options": ["a", "b"]}])
    fs = frames(spark, segments=[seg], view_events=[view(seg, 9, T0 + H)])
    assert set(fs) == set(SILVER)
    for name, df in fs.items():
        assert tuple(df.columns) == contracts.get(f"silver.{name}").column_names
    [row] = fs["segments"].collect()
    assert row["stickers"][0]["options"] == ["a", "b"] and row["stickers"][0]["correct_index"] is None
    assert fs["view_events"].count() == 1 and fs["navigation"].count() == 0


def test_segment_viewers_builder_is_one_row_per_segment_and_viewer():
    seg = segment(1, 7, T0)
    rows = segment_viewers([view(seg, 9, T0 + H, completion=0.5), view(seg, 9, T0 + 2 * H)], [seg])
    assert len(rows) == 1 and rows[0]["view_count"] == 2 and rows[0]["max_completion_pct"] == 1.0

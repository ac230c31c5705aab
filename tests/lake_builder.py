"""Hand-built silver/gold Delta lakes for serving tests and benchmarks (schemas from the contracts).

    lake = LakeBuilder(settings)
    lake.segment(1, author_id=10, created_at=T0)
    lake.follow(20, 10, since=T0 - DAY)
    lake.view(1, viewer_id=20, at=T0 + HOUR)
    lake.write()                     # writes all nine source tables (empty ones too)

Gold segment_insights / story_insights are derived from the hand-built segments and views unless rows
are given explicitly, so Seen By counts and gold reach agree the way the real jobs make them agree.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from storylake.lake import write_table
from storylake.settings import Settings

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
TABLES = (
    "silver.segments",
    "silver.relationships",
    "silver.segment_viewers",
    "silver.sticker_responses",
    "silver.profiles",
    "gold.segment_insights",
    "gold.story_insights",
    "gold.author_daily_insights",
    "gold.author_hourly_insights",
    "gold.sticker_results",
    "gold.ring_features",
)


@dataclass
class LakeBuilder:
    settings: Settings
    as_of: datetime = field(default_factory=lambda: datetime(2026, 11, 2, tzinfo=UTC))
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    explicit: set[str] = field(default_factory=set)

    # silver ------------------------------------------------------------------------------------
    def segment(
        self,
        segment_id: int,
        author_id: int,
        created_at: datetime,
        *,
        audience: str = "public",
        media_type: str = "photo",
        duration_ms: int = 5000,
        is_deleted: bool = False,
        is_archived: bool = False,
        highlight_id: int | None = None,
        story_id: int | None = None,
        frame_index: int = 1,
    ) -> LakeBuilder:
        self.rows["silver.segments"].append(
            {
                "segment_id": segment_id,
                "author_id": author_id,
                "media_id": segment_id * 10,
                "media_type": media_type,
                "audience": audience,
                "duration_ms": duration_ms,
                "created_at": created_at,
                "expires_at": created_at + DAY,
                "story_id": story_id if story_id is not None else segment_id,
                "frame_index": frame_index,
                "story_start": created_at,
                "is_deleted": is_deleted,
                "deleted_at": created_at + HOUR if is_deleted else None,
                "is_archived": is_archived,
                "highlight_id": highlight_id,
                "stickers": [],
            }
        )
        return self

    def rel(
        self, relation: str, user_id: int, other_user_id: int, since: datetime, until: datetime | None = None
    ) -> LakeBuilder:
        self.rows["silver.relationships"].append(
            {"relation": relation, "user_id": user_id, "other_user_id": other_user_id, "valid_from": since,
             "valid_to": until}
        )
        return self

    def follow(self, viewer: int, author: int, since: datetime, until: datetime | None = None) -> LakeBuilder:
        return self.rel("follow", viewer, author, since, until)

    def private(self, user: int, since: datetime, until: datetime | None = None) -> LakeBuilder:
        return self.rel("private", user, 0, since, until)

    def view(
        self,
        segment_id: int,
        viewer_id: int,
        at: datetime,
        *,
        source: str = "tray",
        completion_pct: float = 1.0,
    ) -> LakeBuilder:
        seg = self._segment(segment_id)
        self.rows["silver.segment_viewers"].append(
            {
                "segment_id": segment_id,
                "viewer_id": viewer_id,
                "author_id": seg["author_id"],
                "first_viewed_at": at,
                "last_viewed_at": at,
                "view_count": 1,
                "max_completion_pct": completion_pct,
                "total_view_ms": 5000,
                "first_view_source": source,
                "segment_created_at": seg["created_at"],
            }
        )
        return self

    def question(self, sticker_id: int, segment_id: int, user_id: int, text: str, at: datetime) -> LakeBuilder:
        seg = self._segment(segment_id)
        self.rows["silver.sticker_responses"].append(
            {"sticker_id": sticker_id, "segment_id": segment_id, "author_id": seg["author_id"], "user_id": user_id,
             "sticker_type": "question", "text": text, "responded_at": at, "interactions": 1}
        )
        return self

    # gold --------------------------------------------------------------------------------------
    def features(
        self, viewer: int, author: int, *, dm: int = 0, likes: int = 0, comments: int = 0, replies: int = 0
    ) -> LakeBuilder:
        self.rows["gold.ring_features"].append(
            {"viewer_id": viewer, "author_id": author, "dm_count_30d": dm, "likes_given_30d": likes,
             "comments_given_30d": comments, "story_replies_30d": replies, "profile_visits_30d": 0,
             "story_views_30d": 0, "completion_rate_30d": None, "is_close_friend": False, "follows": True,
             "as_of": self.as_of, "feature_version": "test"}
        )
        return self

    def gold_row(self, key: str, **row: Any) -> LakeBuilder:
        """An explicit gold row (disables derivation of that table)."""
        self.explicit.add(key)
        self.rows[key].append(row)
        return self

    # writing -----------------------------------------------------------------------------------
    def write(self) -> LakeBuilder:
        rows = {k: list(v) for k, v in self.rows.items()}
        if "gold.segment_insights" not in self.explicit:
            rows["gold.segment_insights"] = self._segment_insights()
        if "gold.story_insights" not in self.explicit:
            rows["gold.story_insights"] = self._story_insights()
        for key in TABLES:
            write_table(self.settings, key, rows.get(key, []))
        return self

    def _segment(self, segment_id: int) -> dict[str, Any]:
        for s in self.rows["silver.segments"]:
            if s["segment_id"] == segment_id:
                return s
        raise KeyError(f"declare segment {segment_id} before its views")

    def _segment_insights(self) -> list[dict[str, Any]]:
        reach: dict[int, int] = defaultdict(int)
        for v in self.rows["silver.segment_viewers"]:
            if v["viewer_id"] != v["author_id"]:  # the author's own view never counts (storylake.rules.views)
                reach[v["segment_id"]] += 1
        out = []
        for s in self.rows["silver.segments"]:
            n = reach[s["segment_id"]]
            out.append(
                {
                    **{k: s[k] for k in ("segment_id", "author_id", "story_id", "frame_index", "story_start",
                                         "created_at", "expires_at", "audience", "media_type", "is_deleted")},
                    **dict.fromkeys(("exits", "taps_forward", "taps_back", "swipe_forward", "replies", "shares",
                                     "profile_visits", "follows", "link_clicks", "sticker_interactions",
                                     "total_view_ms", "completed_viewers"), 0),
                    "impressions": n, "reach": n, "as_of": self.as_of,
                }
            )
        return out

    def _story_insights(self) -> list[dict[str, Any]]:
        stories: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for s in self.rows["silver.segments"]:
            stories[s["story_id"]].append(s)
        viewers: dict[int, set[int]] = defaultdict(set)
        for v in self.rows["silver.segment_viewers"]:
            viewers[self._segment(v["segment_id"])["story_id"]].add(v["viewer_id"])
        return [
            {
                "story_id": sid, "author_id": segs[0]["author_id"],
                "story_start": min(s["created_at"] for s in segs), "story_end": max(s["expires_at"] for s in segs),
                "segment_count": len(segs), "impressions": len(viewers[sid]), "reach": len(viewers[sid]),
                **dict.fromkeys(("completed_viewers", "total_view_ms", "exits", "taps_forward", "taps_back",
                                 "swipe_forward", "replies", "shares", "profile_visits", "follows", "link_clicks",
                                 "sticker_interactions"), 0),
                "as_of": self.as_of,
            }
            for sid, segs in stories.items()
        ]

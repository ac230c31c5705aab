"""Invariants of the gold layer on generated silver rows (hypothesis)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.gold.author_daily_insights import author_daily_insights
from jobs.gold.ring_features import FEATURES, ring_features_at
from jobs.gold.segment_insights import segment_insights
from jobs.gold.story_insights import story_insights
from tests.test_gold_builders import T0, US, D, H, collect, engagement, frames, relation, segment, view

AS_OF = T0 + 3 * D
# Two stories of author 1 (two frames each) and a one-frame story of author 2.
SEGMENTS = [
    segment(10, 1, T0, story_id=10, frame_index=1),
    segment(11, 1, T0 + H, story_id=10, frame_index=2, story_start=T0),
    segment(20, 1, T0 + 30 * H, story_id=20, frame_index=1),
    segment(21, 1, T0 + 31 * H, story_id=20, frame_index=2, story_start=T0 + 30 * H),
    segment(30, 2, T0 + 2 * H, story_id=30, frame_index=1),
]
views_strategy = st.lists(
    st.tuples(
        st.sampled_from(range(len(SEGMENTS))),
        st.integers(1, 6),  # viewer
        st.integers(0, 23 * 60),  # minutes after the segment was created
        st.sampled_from([0.4, 1.0]),
        st.sampled_from([3000, 4500]),
    ),
    max_size=25,
)


@settings(max_examples=15, deadline=None)
@given(generated=views_strategy)
def test_reach_never_exceeds_impressions_and_story_reach_is_distinct_viewers(spark, generated):
    views = [
        view(SEGMENTS[i], viewer, SEGMENTS[i]["created_at"] + minutes * H / 60, ms=ms, completion=c)
        for i, viewer, minutes, c, ms in generated
    ]
    silver = frames(spark, segments=SEGMENTS, view_events=views)
    args = {k: silver[k] for k in ("segments", "view_events", "navigation", "engagements")}
    segs = collect(segment_insights(**args, sticker_responses=silver["sticker_responses"], as_of=AS_OF), "segment_id")
    stories = collect(story_insights(**args, sticker_responses=silver["sticker_responses"], as_of=AS_OF), "story_id")
    days = collect(author_daily_insights(**args, as_of=AS_OF), ["author_id", "day"])

    seen_by: dict[int, set[int]] = defaultdict(set)  # segment -> viewers (the Seen By list)
    story_viewers: dict[int, set[int]] = defaultdict(set)
    for v in views:
        if v["viewer_id"] == v["author_id"]:  # the author's own views never count
            continue
        seen_by[v["segment_id"]].add(v["viewer_id"])
        story_viewers[v["story_id"]].add(v["viewer_id"])
    for segment_id, row in segs.items():
        assert row["reach"] <= row["impressions"]
        assert row["reach"] == len(seen_by[segment_id])
    for story_id, row in stories.items():
        assert row["reach"] <= row["impressions"]
        assert row["reach"] == len(story_viewers[story_id])
        assert row["impressions"] == sum(segs[s]["impressions"] for s in segs if segs[s]["story_id"] == story_id)
    for row in days.values():
        assert row["reach"] <= row["impressions"]
        assert row["reach"] <= row["reach_7d"] <= row["reach_28d"]


# --- no leakage --------------------------------------------------------------------------------

TS = (T0 + 40 * D, T0 + 41 * D, T0 + 71 * D)
INSTANTS = sorted({x for t in TS for x in (t, t - US, t + US, t - 30 * D, t - 30 * D - US, t - 12 * H, t + 12 * H)})
USERS = (1, 2, 3)
AUTHOR_SEGMENTS = {a: segment(100 * a, a, T0) for a in USERS}
instant = st.sampled_from(INSTANTS)
signals_strategy = st.fixed_dictionaries(
    {
        "engagements": st.lists(
            st.tuples(
                st.sampled_from(["dm_sent", "like", "comment", "reply", "profile_visit", "share"]),
                st.sampled_from(USERS),
                st.sampled_from(USERS),
                instant,
            ),
            max_size=15,
        ),
        "views": st.lists(
            st.tuples(st.sampled_from(USERS), st.sampled_from(USERS), instant, st.sampled_from([0.5, 1.0])),
            max_size=10,
        ),
        "relationships": st.lists(
            st.tuples(
                st.sampled_from(["follow", "close_friend"]),
                st.sampled_from(USERS),
                st.sampled_from(USERS),
                instant,
                st.one_of(st.none(), instant),
            ),
            max_size=8,
            unique_by=lambda r: r[:4],
        ),
    }
)


def _known_before(rows: dict[str, list[dict]], t: datetime) -> dict[str, list[dict]]:
    """Only what had happened strictly before t: later events dropped, intervals ending at/after t still open."""
    return {
        "engagements": [e for e in rows["engagements"] if e["at"] < t],
        "view_events": [v for v in rows["view_events"] if v["viewed_at"] < t],
        "relationships": [
            {**r, "valid_to": r["valid_to"] if r["valid_to"] is not None and r["valid_to"] < t else None}
            for r in rows["relationships"]
            if r["valid_from"] < t
        ],
    }


@settings(max_examples=15, deadline=None)
@given(generated=signals_strategy)
def test_ring_features_use_no_event_at_or_after_t(spark, generated):
    rows = {
        "engagements": [engagement(k, a, b, at) for k, a, b, at in generated["engagements"]],
        "view_events": [view(AUTHOR_SEGMENTS[a], v, at, completion=c) for v, a, at, c in generated["views"]],
        "relationships": [
            relation(r, u, o, start, end if end is not None and end > start else None)
            for r, u, o, start, end in generated["relationships"]
        ],
    }
    points = [(v, a, t) for v in USERS for a in USERS for t in TS]
    schema = "viewer_id bigint, author_id bigint, t timestamp"

    everything = frames(spark, **rows)
    got = collect(
        ring_features_at(
            everything["engagements"], everything["view_events"], everything["relationships"],
            spark.createDataFrame(points, schema),
        ),
        ["viewer_id", "author_id", "t"],
    )  # fmt: skip
    for t in TS:
        known = frames(spark, **_known_before(rows, t))
        expected = collect(
            ring_features_at(
                known["engagements"], known["view_events"], known["relationships"],
                spark.createDataFrame([p for p in points if p[2] == t], schema),
            ),
            ["viewer_id", "author_id", "t"],
        )  # fmt: skip
        for key, row in expected.items():
            assert {f: got[key][f] for f in FEATURES} == {f: row[f] for f in FEATURES}, key

"""silver.segment_viewers: one row per (segment, viewer) from view_events; rows per segment == reach."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.silver import relationships, segment_viewers, segments, view_events
from tests.bronze_builders import T0, H, bronze, local, rows

AS_OF = T0 + 30 * H


@pytest.fixture(scope="module")
def inputs(spark):
    created = bronze(
        spark,
        "segment_created",
        [
            {"event_id": "c100", "event_time": T0, "segment_id": 100, "author_id": 1},
            {"event_id": "c101", "event_time": T0 + H, "segment_id": 101, "author_id": 1},
        ],
    )
    segs = segments.transform(
        created, bronze(spark, "segment_deleted", []), bronze(spark, "segment_archived", []), AS_OF
    ).segments
    rels = relationships.transform(bronze(spark, "relationship", []))
    return local(spark, segs, "silver.segments"), local(spark, rels, "silver.relationships")


def test_one_row_per_segment_and_viewer_with_first_view_source(spark, inputs):
    segs, rels = inputs
    src = bronze(
        spark,
        "segment_view",
        [
            {"event_id": "sv-b", "segment_id": 100, "viewer_id": 10, "event_time": T0 + H, "view_source": "tray",
             "completion_pct": 0.5, "view_duration_ms": 4000},
            {"event_id": "sv-a", "segment_id": 100, "viewer_id": 10, "event_time": T0 + H, "view_source": "profile",
             "completion_pct": 0.5, "view_duration_ms": 3500},
            {"event_id": "sv-c", "segment_id": 100, "viewer_id": 10, "event_time": T0 + 2 * H,
             "view_source": "mention", "completion_pct": 1.0, "view_duration_ms": 5000},
            {"event_id": "sv-d", "segment_id": 101, "viewer_id": 11, "event_time": T0 + 3 * H,
             "view_source": "reshare", "completion_pct": 1.0, "view_duration_ms": 6000},
        ],
    )
    ve = view_events.transform(src, segs, rels, AS_OF).view_events
    assert rows(segment_viewers.transform(ve, segs)) == [
        # segment, viewer, author, first, last, views, max completion, total ms, first source, created
        (100, 10, 1, T0 + H, T0 + 2 * H, 3, 1.0, 12500, "profile", T0),  # tie at T0+1h: sv-a < sv-b
        (101, 11, 1, T0 + 3 * H, T0 + 3 * H, 1, 1.0, 6000, "reshare", T0 + H),
    ]


receipt = st.tuples(
    st.sampled_from([100, 101]),  # segment
    st.integers(1, 4),  # viewer
    st.integers(1, 20),  # hours after T0 (inside both lifetimes)
    st.sampled_from([1000, 3000, 8000]),  # duration (1000 ms with completion 0.5 is not a view)
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(receipt, max_size=10))
def test_property_segment_viewers_rows_per_segment_equal_distinct_viewers(spark, inputs, receipts):
    segs, rels = inputs
    src = bronze(
        spark,
        "segment_view",
        [
            {"segment_id": s, "viewer_id": v, "event_time": T0 + timedelta(hours=h), "view_duration_ms": d,
             "completion_pct": 0.5}
            for s, v, h, d in receipts
        ],
    )
    ve_df = view_events.transform(src, segs, rels, AS_OF).view_events
    ve = rows(ve_df, "segment_id", "viewer_id", "viewed_at", "view_duration_ms")
    sv = rows(
        segment_viewers.transform(ve_df, segs),
        "segment_id", "viewer_id", "view_count", "first_viewed_at", "last_viewed_at", "total_view_ms",
    )
    reach: dict[int, set[int]] = defaultdict(set)
    pairs: dict[tuple[int, int], list[tuple[object, int]]] = defaultdict(list)
    for s, v, at, ms in ve:
        reach[s].add(v)
        pairs[(s, v)].append((at, ms))
    per_segment: dict[int, int] = defaultdict(int)
    for s, _, _, _, _, _ in sv:
        per_segment[s] += 1
    assert dict(per_segment) == {s: len(v) for s, v in reach.items()}
    # watched once or rewatched, each pair's row is the aggregate of its views
    assert sorted(sv) == sorted(
        (s, v, len(views), min(at for at, _ in views), max(at for at, _ in views), sum(ms for _, ms in views))
        for (s, v), views in pairs.items()
    )
    assert len(ve) == sum(1 for r in receipts if r[3] >= 3000)

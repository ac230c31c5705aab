"""A late event (event_time before T, landed after a run) through bronze -> silver -> gold on real Delta tables:
the next run with the same T picks it up and changes exactly the aggregates it belongs to, nothing else."""

from __future__ import annotations

from typing import Any

from jobs.gold import GOLD_TABLES, build_gold
from jobs.silver import build_silver
from jobs.spark_io import write_table
from storylake import merge_on_read
from tests.bronze_builders import T0, H, bronze

AS_OF = T0 + 30 * H
# author 1 posts segments 1 and 2 (one story), author 5 posts segment 3; viewers 2 and 3 follow both
WORLD: dict[str, list[dict[str, Any]]] = {
    "segment_created": [
        {"event_time": T0, "segment_id": 1, "author_id": 1},
        {"event_time": T0 + H, "segment_id": 2, "author_id": 1},
        {"event_time": T0, "segment_id": 3, "author_id": 5},
    ],
    "segment_deleted": [],
    "segment_archived": [],
    "relationship": [
        {"event_time": T0 - H, "kind": "follow", "user_id": v, "other_user_id": a} for v in (2, 3) for a in (1, 5)
    ],
    "segment_view": [
        {"event_time": T0 + H, "segment_id": 1, "viewer_id": 2},
        {"event_time": T0 + 2 * H, "segment_id": 2, "viewer_id": 3},
        {"event_time": T0 + H, "segment_id": 3, "viewer_id": 2},
        {"event_time": T0 + 2 * H, "segment_id": 3, "viewer_id": 3},
    ],
    "navigation": [{"event_time": T0 + H, "segment_id": 1, "viewer_id": 2, "action": "tap_exit"}],
    "sticker_interaction": [],
    "engagement": [{"event_time": T0 + H, "kind": "dm_sent", "actor_id": 2, "target_user_id": 1}],
}


def _gold(settings) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """Every gold table as {primary key: row} (a merge-on-read table as its readers see it)."""
    out = {}
    for name in GOLD_TABLES:
        key = f"gold.{name}"
        if key in merge_on_read.CHANGES_TABLES:
            continue
        pk = merge_on_read.readers_key(key)
        rows = merge_on_read.read_table(settings, key).to_pylist()
        out[name] = {tuple(r[c] for c in pk): r for r in rows}
    return out


def _changes(before: dict[tuple[Any, ...], dict[str, Any]], after: dict[tuple[Any, ...], dict[str, Any]]):
    """{key: {column: (before, after)}} for the rows that differ (a new or gone row shows as None on one side)."""
    out = {}
    for key in before.keys() | after.keys():
        b, a = before.get(key) or {}, after.get(key) or {}
        diff = {c: (b.get(c), a.get(c)) for c in b.keys() | a.keys() if b.get(c) != a.get(c)}
        if diff:
            out[key] = diff
    return out


def test_late_view_changes_exactly_its_segment_story_day_and_ring(spark, settings):
    for event, rows in WORLD.items():
        write_table(bronze(spark, event, rows), settings, "bronze", event)
    build_silver(spark, settings, AS_OF)
    build_gold(spark, settings, AS_OF)
    before = _gold(settings)
    viewers_before = merge_on_read.read_table(settings, "silver.segment_viewers").num_rows  # as readers see it

    # viewer 2's view of segment 2 happened before T but landed after the run (a later ingest batch)
    late = bronze(spark, "segment_view", [{"event_time": T0 + 3 * H, "segment_id": 2, "viewer_id": 2,
                                           "view_duration_ms": 4000, "completion_pct": 0.5}])
    late.write.format("delta").mode("append").save(str(settings.table_path("bronze", "segment_view")))
    build_silver(spark, settings, AS_OF)
    build_gold(spark, settings, AS_OF)
    after = _gold(settings)

    assert merge_on_read.read_table(settings, "silver.segment_viewers").num_rows == viewers_before + 1
    seg = _changes(before["segment_insights"], after["segment_insights"])
    assert set(seg) == {(1,), (2,)}
    # frame 1's viewer 2 (who watched it while frame 2 was live) now went on to frame 2: its continuation changes
    assert seg[(1,)] == {"continued_viewers": (0, 1), "continuation_rate": (0.0, 1.0)}
    # one more viewer, who did not complete (completed_viewers stays 1); frame 2's reach is now twice frame 1's
    assert seg[(2,)] == {
        "impressions": (1, 2), "reach": (1, 2), "total_view_ms": (5000, 9000), "avg_view_ms": (5000.0, 4500.0),
        "completion_rate": (1.0, 0.5), "retention_from_first": (1.0, 2.0),
    }

    story_key = (before["segment_insights"][(2,)]["story_id"],)
    story = _changes(before["story_insights"], after["story_insights"])
    assert set(story) == {story_key}
    # viewer 2 had already seen frame 1: the story's reach stays 2 (distinct viewers, not a sum), impressions 2 -> 3
    assert "reach" not in story[story_key]
    assert story[story_key]["impressions"] == (2, 3)

    day = _changes(before["author_daily_insights"], after["author_daily_insights"])
    assert set(day) == {(1, T0.date())}
    assert day[(1, T0.date())]["impressions"] == (2, 3)
    assert not {"reach", "reach_7d", "reach_28d"} & set(day[(1, T0.date())])
    # the daily partial behind the trailing reach: viewer 2's row of that day counts one view more
    partial = _changes(before["author_viewer_days"], after["author_viewer_days"])
    assert partial == {(1, T0.date(), 2): {"views": (1, 2), "view_ms": (5000, 9000)}}

    ring = _changes(before["ring_features"], after["ring_features"])
    assert set(ring) == {(2, 1)}
    assert ring[(2, 1)]["story_views_30d"] == (1, 2)
    assert ring[(2, 1)]["completion_rate_30d"] == (1.0, 0.5)

    assert _changes(before["sticker_results"], after["sticker_results"]) == {}

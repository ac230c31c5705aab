"""silver.segments: dedupe, 24 h lifetime, story chaining / frame_index, delete and archive rules."""

from __future__ import annotations

import pytest

from jobs.silver import segments
from tests.bronze_builders import MS, T0, H, bronze, by, rows, sticker

AS_OF = T0 + 100 * H


@pytest.fixture(scope="module")
def out(spark):
    created = bronze(
        spark,
        "segment_created",
        [
            # author 1: T0 and T0+23h are one story (24 h span); T0+47h-1ms starts the next, which T0+71h-1ms
            # reaches exactly at its end: a third story
            {"event_id": "c10", "event_time": T0, "segment_id": 10, "author_id": 1,
             "stickers": [sticker(500, "poll", ["a", "b"])]},
            {"event_id": "c10", "event_time": T0, "segment_id": 10, "author_id": 1,
             "stickers": [sticker(500, "poll", ["a", "b"])]},  # same event delivered twice
            {"event_id": "c11", "event_time": T0 + 23 * H, "segment_id": 11, "author_id": 1},
            {"event_id": "c12", "event_time": T0 + 47 * H - MS, "segment_id": 12, "author_id": 1},
            {"event_id": "c13", "event_time": T0 + 71 * H - MS, "segment_id": 13, "author_id": 1},
            # author 2: same created_at, ordered by segment_id
            {"event_id": "c21", "event_time": T0, "segment_id": 21, "author_id": 2, "audience": "close_friends"},
            {"event_id": "c20", "event_time": T0, "segment_id": 20, "author_id": 2},
            # author 3: segment 30 created by two different events: the earliest wins
            {"event_id": "c30-late", "event_time": T0 + H, "segment_id": 30, "author_id": 3, "media_id": 2},
            {"event_id": "c30-early", "event_time": T0, "segment_id": 30, "author_id": 3, "media_id": 1},
            # author 4: t0+47h exactly at the expiry of the t0+23h segment -> new story
            {"event_id": "c40", "event_time": T0, "segment_id": 40, "author_id": 4},
            {"event_id": "c41", "event_time": T0 + 23 * H, "segment_id": 41, "author_id": 4},
            {"event_id": "c42", "event_time": T0 + 47 * H, "segment_id": 42, "author_id": 4},
        ],
    )
    deleted = bronze(
        spark,
        "segment_deleted",
        [
            {"event_id": "d1", "event_time": T0 + 26 * H, "segment_id": 11, "author_id": 1},
            {"event_id": "d2", "event_time": T0 + 25 * H, "segment_id": 11, "author_id": 1},
            {"event_id": "d3", "event_time": T0 + 48 * H, "segment_id": 12, "author_id": 9},
        ],
    )
    archived = bronze(
        spark,
        "segment_archived",
        [
            {"event_id": "a1", "event_time": T0 + 2 * H, "segment_id": 10, "author_id": 1, "highlight_id": 100},
            {"event_id": "a2", "event_time": T0 + 3 * H, "segment_id": 10, "author_id": 1, "highlight_id": 200},
            {"event_id": "a3", "event_time": T0 + 3 * H, "segment_id": 20, "author_id": 9, "highlight_id": 300},
        ],
    )
    o = segments.transform(created, deleted, archived, AS_OF)
    return by(o.segments, "segment_id", *[c for c in o.segments.columns if c != "segment_id"]), rows(
        o.quarantine, "stage", "contract", "event_id", "rule", "field", "reason", "line", "batch_id"
    )


def test_one_row_per_segment_and_expires_24h_after_created(out):
    segs, _ = out
    assert sorted(segs) == [10, 11, 12, 13, 20, 21, 30, 40, 41, 42]
    for s in segs.values():
        assert s["expires_at"] - s["created_at"] == 24 * H
    assert segs[10]["stickers"][0]["sticker_id"] == 500


def test_a_story_spans_24_hours_from_its_first_frame(out):
    """A story collects the author's segments of the 24 h from its first one (never an endless chain): the
    segment at T0+47h-1ms is still live-overlapping the one before, yet starts the next story."""
    segs, _ = out
    assert [(segs[i]["story_id"], segs[i]["frame_index"], segs[i]["story_start"]) for i in (10, 11, 12, 13)] == [
        (10, 1, T0), (10, 2, T0), (12, 1, T0 + 47 * H - MS), (13, 1, T0 + 71 * H - MS),
    ]


def test_segment_created_at_the_story_span_end_starts_new_story(out):
    segs, _ = out
    # t0, t0+23h, t0+47h: the third is created after the first story's 24 h -> a new story
    assert [(segs[i]["story_id"], segs[i]["frame_index"]) for i in (40, 41, 42)] == [(40, 1), (40, 2), (42, 1)]


def test_same_created_at_ordered_by_segment_id(out):
    segs, _ = out
    assert [(segs[i]["story_id"], segs[i]["frame_index"]) for i in (20, 21)] == [(20, 1), (20, 2)]


def test_segment_created_twice_keeps_earliest_and_quarantines_the_other(out):
    segs, quarantine = out
    assert (segs[30]["created_at"], segs[30]["media_id"]) == (T0, 1)
    dup = [q for q in quarantine if q[3] == "duplicate_segment"]
    assert len(dup) == 1
    assert dup[0][:5] == ("silver.segments", "bronze.segment_created", "c30-late", "duplicate_segment", "segment_id")
    assert dup[0][5] == (
        "segment_created.segment_id 30 was already created by event c30-early at 2026-11-01T10:00:00Z; "
        "this later creation at 2026-11-01T11:00:00Z is ignored"
    )
    assert dup[0][7] == "silver@2026-11-05T14:00:00Z"


def test_delete_by_author_sets_earliest_deleted_at(out):
    segs, _ = out
    assert (segs[11]["is_deleted"], segs[11]["deleted_at"]) == (True, T0 + 25 * H)
    assert (segs[10]["is_deleted"], segs[10]["deleted_at"]) == (False, None)


def test_delete_not_by_author_is_quarantined(out):
    segs, quarantine = out
    assert segs[12]["is_deleted"] is False
    q = [r for r in quarantine if r[3] == "delete_not_by_author"]
    assert [r[:6] for r in q] == [
        ("silver.segments", "bronze.segment_deleted", "d3", "delete_not_by_author", "author_id",
         "segment_deleted.author_id 9 is not the author 1 of segment 12"),
    ]


def test_latest_archive_wins_and_archive_not_by_author_is_quarantined(out):
    segs, quarantine = out
    assert (segs[10]["is_archived"], segs[10]["highlight_id"]) == (True, 200)
    assert (segs[20]["is_archived"], segs[20]["highlight_id"]) == (False, None)
    assert [r[2:5] for r in quarantine if r[3] == "archive_not_by_author"] == [
        ("a3", "archive_not_by_author", "author_id")
    ]


def test_rebuild_from_a_horizon_equals_the_full_rebuild(spark, settings):
    """Incremental runs rebuild the segments created at or after their horizon; the author's last segment before
    it seeds the story chain, so story ids, starts and frame numbers continue across the boundary."""
    from jobs import spark_io
    from storylake import lake

    data = {
        "segment_created": [
            {"event_id": "a", "event_time": T0, "segment_id": 1, "author_id": 1},
            {"event_id": "b", "event_time": T0 + 3 * H, "segment_id": 2, "author_id": 1},  # continues story 1
            {"event_id": "c", "event_time": T0 + 20 * H, "segment_id": 3, "author_id": 1},  # still story 1
            {"event_id": "f", "event_time": T0 + 25 * H, "segment_id": 6, "author_id": 1},  # past its 24 h: story 6
            {"event_id": "d", "event_time": T0 + 50 * H, "segment_id": 4, "author_id": 1},  # a new story
            {"event_id": "e", "event_time": T0 + H, "segment_id": 5, "author_id": 2},
            {"event_id": "e2", "event_time": T0 + 4 * H, "segment_id": 5, "author_id": 2},  # a losing creation
        ],
        "segment_deleted": [
            {"event_id": "x", "event_time": T0 + 5 * H, "segment_id": 2, "author_id": 1},
            {"event_id": "y", "event_time": T0 + 30 * MS, "segment_id": 5, "author_id": 2},  # before creation
        ],
        "segment_archived": [{"event_id": "z", "event_time": T0 + 21 * H, "segment_id": 3, "author_id": 1,
                              "highlight_id": 9}],
    }
    for event, events in data.items():
        spark_io.write_table(bronze(spark, event, events), settings, "bronze", event)

    def snapshot():
        return {key: sorted(map(repr, lake.read_arrow(settings.table_path(*key.split("."))).to_pylist()))
                for key in ("silver.segments", "ops.quarantine")}

    segments.run(spark, settings, AS_OF)
    full = snapshot()
    got = {r["segment_id"]: (r["story_id"], r["frame_index"])
           for r in lake.read_arrow(settings.table_path("silver", "segments")).to_pylist()}
    assert got == {1: (1, 1), 2: (1, 2), 3: (1, 3), 6: (6, 1), 4: (4, 1), 5: (5, 1)}
    quarantined = sorted((r["event_id"], r["rule"])
                         for r in lake.read_arrow(settings.table_path("ops", "quarantine")).to_pylist())
    assert quarantined == [("e2", "duplicate_segment"), ("y", "before_creation")]
    for since in (T0 + 2 * H, T0 + 4 * H, T0 + 21 * H, T0 + 26 * H, T0 + 60 * H):
        segments.run(spark, settings, AS_OF, since)
        assert snapshot() == full, since


def test_patching_the_lifecycle_of_older_segments_equals_the_full_rebuild(spark, settings):
    """A delete or archive of a segment created before the horizon patches its lifecycle columns (and replaces the
    quarantine rows of its invalid events at their anchors) instead of moving the horizon back: with every such
    segment patched, any horizon gives the full rebuild."""
    from jobs import spark_io
    from storylake import lake

    data = {
        "segment_created": [
            {"event_id": "a", "event_time": T0, "segment_id": 1, "author_id": 1},
            {"event_id": "b", "event_time": T0 + 3 * H, "segment_id": 2, "author_id": 1},
            {"event_id": "e", "event_time": T0 + H, "segment_id": 5, "author_id": 2},
            {"event_id": "f", "event_time": T0 + 30 * H, "segment_id": 6, "author_id": 2},
        ],
        "segment_deleted": [
            {"event_id": "x", "event_time": T0 + 5 * H, "segment_id": 2, "author_id": 1},
            {"event_id": "x2", "event_time": T0 + 4 * H, "segment_id": 2, "author_id": 1},  # the earliest wins
            {"event_id": "y", "event_time": T0 + 30 * MS, "segment_id": 5, "author_id": 2},  # before creation
            {"event_id": "w", "event_time": T0 + 2 * H, "segment_id": 1, "author_id": 9},  # not the author
        ],
        "segment_archived": [
            {"event_id": "z", "event_time": T0 + 21 * H, "segment_id": 1, "author_id": 1, "highlight_id": 9},
            {"event_id": "z2", "event_time": T0 + 22 * H, "segment_id": 1, "author_id": 1, "highlight_id": 7},
        ],
    }
    frames = {event: bronze(spark, event, events) for event, events in data.items()}  # line numbers fixed once
    none = {event: bronze(spark, event, []) for event in ("segment_deleted", "segment_archived")}

    def land(events_by_type):
        for event, frame in events_by_type.items():
            spark_io.write_table(frame, settings, "bronze", event)

    def snapshot():
        return {key: sorted(map(repr, lake.read_arrow(settings.table_path(*key.split("."))).to_pylist()))
                for key in ("silver.segments", "ops.quarantine")}

    land(frames)
    segments.run(spark, settings, AS_OF)
    full = snapshot()
    rows = {r["segment_id"]: r for r in lake.read_arrow(settings.table_path("silver", "segments")).to_pylist()}
    assert (rows[2]["deleted_at"], rows[1]["highlight_id"], rows[5]["is_deleted"]) == (T0 + 4 * H, 7, False)
    quarantined = sorted((r["event_id"], r["rule"])
                         for r in lake.read_arrow(settings.table_path("ops", "quarantine")).to_pylist())
    assert quarantined == [("w", "delete_not_by_author"), ("y", "before_creation")]
    # the deletes and archives arrive after a run that knew only the creations: the segments created before the
    # horizon that they name are patched (jobs.horizon.segments_scope picks exactly those)
    for since, patch in ((T0 + 2 * H, (1, 5)), (T0 + 26 * H, (1, 2, 5)), (T0 + 40 * H, (1, 2, 5))):
        land({**frames, **none})
        segments.run(spark, settings, AS_OF)
        assert snapshot() != full
        land(frames)
        segments.run(spark, settings, AS_OF, since, patch)
        assert snapshot() == full, (since, patch)

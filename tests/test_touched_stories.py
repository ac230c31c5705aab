"""An incremental run recomputes in gold only the stories its new bronze rows can change (jobs/gold/touched.py) and
keeps every other story's rows as the last good run left them. Each dependency rule is exercised by a late event
that changes a story none of the run's other rows touch; the incremental tables must equal one full run."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobs.gold.touched import touched_segments
from jobs.horizon import from_increment
from jobs.ingest import ingest
from jobs.silver import build_silver
from storylake import increments, lake, merge_on_read
from storylake.settings import Settings
from tests.landing_builders import created, view, write_landing
from tests.test_incremental import assert_same, lake_state, run

pytestmark = pytest.mark.slow

DAY = "2026-11-01"
AS_OF_1 = datetime(2026, 11, 1, 13, tzinfo=UTC)
AS_OF_2 = datetime(2026, 11, 1, 14, tzinfo=UTC)


def relationship(eid: str, kind: str, user: int, other: int, t: str) -> dict[str, Any]:
    return {"event_id": eid, "event_type": "relationship", "event_time": t, "kind": kind, "user_id": user,
            "other_user_id": other}


def first_batch(landing: Path) -> None:
    """Author 1 posts segment 10, author 5 segment 52; viewers 2 and 3 watch both (arrival hour 12)."""
    write_landing(landing, "segment_created", [
        created("c10", 10, 1, f"{DAY}T10:00:00Z"), created("c52", 52, 5, f"{DAY}T10:00:00Z"),
    ], dt=DAY, hour="12")
    write_landing(landing, "segment_view", [
        view("v1", 10, 2, f"{DAY}T10:30:00Z"), view("v2", 10, 3, f"{DAY}T10:40:00Z"),
        view("v3", 52, 2, f"{DAY}T10:30:00Z"), view("v4", 52, 3, f"{DAY}T10:50:00Z"),
    ], dt=DAY, hour="12")


def late_batch(landing: Path) -> None:
    """Arrival hour 13, every event late: author 1 blocked viewer 2 before viewer 2's view of segment 10 (the view
    is now denied), and author 5 had posted segment 51 the evening before segment 52 (52 joins 51's story)."""
    write_landing(landing, "relationship", [relationship("r1", "block", 1, 2, f"{DAY}T10:15:00Z")],
                  dt=DAY, hour="13")
    write_landing(landing, "segment_created", [created("c51", 51, 5, "2026-10-31T20:00:00Z")], dt=DAY, hour="13")


def gold_row(settings: Settings, table: str, key: str, value: int) -> dict[str, Any]:
    """The row readers see (segment and story insights are stored as restated rows)."""
    rows = [r for r in merge_on_read.read_table(settings, f"gold.{table}").to_pylist() if r[key] == value]
    assert len(rows) == 1, rows
    return rows[0]


def test_late_block_and_late_creation_change_stories_nothing_else_touches(spark: Any, tmp_path: Path) -> None:
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1)
    assert gold_row(s, "segment_insights", "segment_id", 10)["reach"] == 2
    assert gold_row(s, "segment_insights", "segment_id", 52)["story_id"] == 52

    late_batch(s.landing)
    run(spark, s, AS_OF_2)
    plan = increments.last(s)
    assert plan is not None and not plan.full
    # the blocked viewer's view no longer counts; segment 52 is now frame 2 of story 51
    assert gold_row(s, "segment_insights", "segment_id", 10)["reach"] == 1
    moved = gold_row(s, "segment_insights", "segment_id", 52)
    assert (moved["story_id"], moved["frame_index"]) == (51, 2)
    assert gold_row(s, "story_insights", "story_id", 51)["reach"] == 2
    assert not [r for r in merge_on_read.read_table(s, "gold.story_insights").to_pylist() if r["story_id"] == 52]
    # the hour appended its changed rows: story 52, gone, as a tombstone (its last row again, restated, removed)
    stored = lake.read_arrow(s.table_path("gold", "story_insights")).to_pylist()
    assert sorted((r["story_id"], r["as_of"] == AS_OF_2, r["restated"], r["removed"]) for r in stored) == [
        (10, False, False, False), (10, True, True, False), (51, True, False, False), (52, False, False, False),
        (52, True, True, True)]

    full = Settings(lake=tmp_path / "full_lake", landing=tmp_path / "full_landing")
    shutil.copytree(s.landing, full.landing)
    run(spark, full, AS_OF_2)
    assert_same(lake_state(s), lake_state(full))


def test_touched_segments_follow_each_rule(spark: Any, tmp_path: Path) -> None:
    """The late batch touches segment 10 only through the block (author 1 live after 10:15) and segment 52 only
    through the creation (author 5's later segment); 51 is the created segment itself."""
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1)
    late_batch(s.landing)
    previous = increments.last(s)
    assert previous is not None
    ingest(s, progress=False)  # the late batch in bronze, then the silver run that plans for it
    build_silver(spark, s, AS_OF_2)
    plan = increments.planned(s, AS_OF_2)
    assert plan is not None
    got = sorted(r["segment_id"] for r in touched_segments(spark, s, from_increment(plan), previous).collect())
    assert got == [10, 51, 52]

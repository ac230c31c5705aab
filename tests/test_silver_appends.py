"""An incremental run appends the new rows of silver.view_events, silver.navigation and silver.engagements when no
re-decided row changed (jobs.silver.touched.write_rows), and rewrites the slice when one did; the lake equals one
full run either way."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from jobs.ingest import ingest
from jobs.silver import build_silver
from storylake import audit, increments, lake, merge_on_read
from storylake.settings import Settings
from tests.landing_builders import created, view, write_landing
from tests.test_incremental import assert_same, lake_state, run
from tests.test_touched_receipts import AS_OF_1, AS_OF_2, DAY, first_batch, gesture, late_batch


def last_commit(path: Path) -> dict[str, int]:
    """{"add": n, "remove": m} data-changing actions of the table's latest commit."""
    latest = max(p for p in (path / "_delta_log").glob("*.json"))
    out = {"add": 0, "remove": 0}
    for line in latest.read_text().splitlines():
        action = json.loads(line)
        for kind in out:
            if kind in action and action[kind].get("dataChange", True):
                out[kind] += 1
    return out


def reply(eid: str, seg: int, actor: int, t: str) -> dict[str, Any]:
    """A story reply by `actor` to segment `seg` of author 1."""
    return {"event_id": eid, "event_type": "engagement", "event_time": t, "kind": "reply", "actor_id": actor,
            "target_user_id": 1, "segment_id": seg}


def full_state(spark: Any, s: Settings, tmp_path: Path, as_of: datetime) -> dict[str, list[str]]:
    full = Settings(lake=tmp_path / "full_lake", landing=tmp_path / "full_landing")
    shutil.copytree(s.landing, full.landing)
    run(spark, full, as_of)
    return lake_state(full)


@pytest.mark.slow
def test_new_receipts_and_a_story_refold_are_appended(spark: Any, tmp_path: Path) -> None:
    """Hour 13 brings new views, gestures and story replies and late creations by author 1 at 09:30, which refolds
    segment 10 into story 9 as its frame 2, and of segment 11, which an hour-12 reply named before it was known: no
    receipt, gesture or engagement row names a story or whether it counts (the replies to segments 10 and 11 from
    hour 12 are decided again unchanged; gold counts the reply to 11 now), so each of the three tables takes one
    appended file (and so does silver.segment_viewers); the lake equals one full run."""
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    write_landing(s.landing, "engagement", [reply("e1", 10, 2, f"{DAY}T10:31:00Z"),
                                            reply("e3", 11, 3, f"{DAY}T10:40:00Z")], dt=DAY, hour="12")
    run(spark, s, AS_OF_1)
    write_landing(s.landing, "segment_created", [created("c9", 9, 1, f"{DAY}T09:30:00Z"),
                                                 created("c11", 11, 1, f"{DAY}T10:20:00Z")], dt=DAY, hour="13")
    write_landing(s.landing, "segment_view", [view("v7", 10, 5, f"{DAY}T12:30:00Z"),
                                              view("v8", 9, 3, f"{DAY}T12:40:00Z")], dt=DAY, hour="13")
    write_landing(s.landing, "navigation", [gesture("n3", 10, 5, f"{DAY}T12:31:00Z")], dt=DAY, hour="13")
    write_landing(s.landing, "engagement", [reply("e2", 10, 5, f"{DAY}T12:32:00Z")], dt=DAY, hour="13")
    run(spark, s, AS_OF_2)
    segments = {r["segment_id"]: (r["story_id"], r["frame_index"])
                for r in lake.read_arrow(s.table_path("silver", "segments")).to_pylist()}
    assert segments[9] == (9, 1) and segments[10] == (9, 2)
    for table, new in (("view_events", {"v7", "v8"}), ("navigation", {"n3"}), ("engagements", {"e2"})):
        path = s.table_path("silver", table)
        assert last_commit(path) == {"add": 1, "remove": 0}, table
        version = lake.version(path)
        assert version is not None
        before = {r["event_id"] for r in DeltaTable(str(path), version=version - 1).to_pyarrow_table().to_pylist()}
        after = {r["event_id"] for r in lake.read_arrow(path).to_pylist()}  # type: ignore[union-attr]
        assert after - before == new and before <= after, table
    # no (segment, viewer) row names a story either: the new pairs' rows are appended
    assert last_commit(s.table_path("silver", "segment_viewers")) == {"add": 1, "remove": 0}
    insights = merge_on_read.read_table(s, "gold.segment_insights")
    assert insights is not None
    assert {r["segment_id"]: r["replies"] for r in insights.to_pylist()}[11] == 1  # e3, now in its lifetime
    assert_same(lake_state(s), full_state(spark, s, tmp_path, AS_OF_2))


@pytest.mark.slow
def test_grown_and_new_viewer_pairs_are_appended_and_readers_see_the_latest(spark: Any, tmp_path: Path) -> None:
    """Hour 13 brings viewer 2's second view of segment 10 (its pair had 1 view) and viewer 4's first of segment 52:
    silver.segment_viewers takes one appended file with the two pairs' new rows, keeps the pair's 1-view row
    stored, and readers see each pair's row with the most views; the lake equals one full run."""
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1)
    write_landing(s.landing, "segment_view", [view("v7", 10, 2, f"{DAY}T12:30:00Z", dur=3000, pct=0.5, src="profile"),
                                              view("v8", 52, 4, f"{DAY}T12:40:00Z")], dt=DAY, hour="13")
    run(spark, s, AS_OF_2)
    path = s.table_path("silver", "segment_viewers")
    assert last_commit(path) == {"add": 1, "remove": 0}
    columns = ["segment_id", "viewer_id", "view_count", "first_viewed_at", "last_viewed_at", "total_view_ms",
               "max_completion_pct", "first_view_source"]
    t = datetime.fromisoformat

    def pairs(rows: pa.Table | None) -> list[tuple[Any, ...]]:
        assert rows is not None
        return sorted(tuple(r[c] for c in columns) for r in rows.to_pylist())

    first_v1 = (t(f"{DAY}T10:30:00+00:00"), t(f"{DAY}T10:30:00+00:00"), 5000, 1.0, "tray")
    grown = (10, 2, 2, t(f"{DAY}T10:30:00+00:00"), t(f"{DAY}T12:30:00+00:00"), 8000, 1.0, "tray")
    new = (52, 4, 1, t(f"{DAY}T12:40:00+00:00"), t(f"{DAY}T12:40:00+00:00"), 5000, 1.0, "tray")
    version = lake.version(path)
    assert version is not None
    appended = pairs(DeltaTable(str(path), version=version).to_pyarrow_table())
    before = pairs(DeltaTable(str(path), version=version - 1).to_pyarrow_table())
    assert (10, 2, 1, *first_v1) in before and appended == sorted([*before, grown, new])
    readers = pairs(merge_on_read.read_table(s, "silver.segment_viewers"))
    assert readers == sorted([r for r in before if r[:2] != (10, 2)] + [grown, new])
    assert_same(lake_state(s), full_state(spark, s, tmp_path, AS_OF_2))


@pytest.mark.slow
def test_pairs_after_an_unfinished_run_are_rewritten_not_appended(spark: Any, tmp_path: Path) -> None:
    """A run planned since the last done one did not finish (it may have died between appending the receipts and
    their pairs: on a lake without gates the current versions of the two tables would then not match): the next run
    rewrites silver.segment_viewers' slice instead of appending, and the lake equals one full run."""
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1)
    done = increments.last(s)
    assert done is not None and increments.unfinished(s) is None
    increments.record(s, done, increments.PLANNED)  # planned again after the last done run, never finished
    write_landing(s.landing, "segment_view", [view("v7", 10, 2, f"{DAY}T12:30:00Z")], dt=DAY, hour="13")
    run(spark, s, AS_OF_2)
    assert last_commit(s.table_path("silver", "segment_viewers"))["remove"] >= 1
    assert_same(lake_state(s), full_state(spark, s, tmp_path, AS_OF_2))


@pytest.mark.slow
def test_a_receipt_decided_again_differently_rewrites_the_slice(spark: Any, tmp_path: Path) -> None:
    """Hour 13 brings an earlier retry of v4 (the retry group's first receipt moves to v4r) and a block and a
    private account that deny earlier receipts: rows of the slice change, so it is rewritten (its old files
    removed), and the lake equals one full run."""
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1)
    late_batch(s.landing)
    run(spark, s, AS_OF_2)
    commit = last_commit(s.table_path("silver", "view_events"))
    assert commit["remove"] >= 1 and commit["add"] >= 1
    ids = {r["event_id"] for r in lake.read_arrow(s.table_path("silver", "view_events")).to_pylist()}  # type: ignore[union-attr]
    assert "v4r" in ids and "v4" not in ids
    assert_same(lake_state(s), full_state(spark, s, tmp_path, AS_OF_2))


@pytest.mark.slow
def test_a_run_onto_rows_its_last_good_version_lacks_rewrites_the_slice(spark: Any, tmp_path: Path) -> None:
    """The table holds rows its last good (audited) version does not: a silver build whose gate has not passed
    yet. Building silver again does not append onto them (it compares the new rows with the last good version's):
    it rewrites the slice from the last good version, and the rows are those of one build."""
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1)
    path = s.table_path("silver", "view_events")
    good = lake.version(path)
    assert good is not None
    audit.start(s)
    audit.record(s, "test", "silver", AS_OF_1, {"silver.view_events": good})
    write_landing(s.landing, "segment_view", [view("v7", 10, 5, f"{DAY}T12:30:00Z")], dt=DAY, hour="13")
    ingest(s, progress=False)
    build_silver(spark, s, AS_OF_2)
    assert last_commit(path) == {"add": 1, "remove": 0}
    once = sorted(r["event_id"] for r in lake.read_arrow(path).to_pylist())  # type: ignore[union-attr]
    build_silver(spark, s, AS_OF_2)  # its gate never ran: the last good version is still `good`
    assert last_commit(path)["remove"] >= 1
    assert sorted(r["event_id"] for r in lake.read_arrow(path).to_pylist()) == once  # type: ignore[union-attr]
    assert "v7" in once


def test_rows_unchanged_since_follows_data_changes_not_compactions(tmp_path: Path) -> None:
    path = tmp_path / "t"
    write_deltalake(str(path), pa.table({"a": [1, 2]}))
    write_deltalake(str(path), pa.table({"a": [3]}), mode="append")
    assert lake.rows_unchanged_since(path, 1)
    assert not lake.rows_unchanged_since(path, 0) and not lake.rows_unchanged_since(path, 2)
    DeltaTable(str(path)).optimize.compact()  # files rearranged, rows kept: dataChange false
    assert lake.version(path) == 2 and lake.rows_unchanged_since(path, 1)
    DeltaTable(str(path)).delete("a = 3")
    assert not lake.rows_unchanged_since(path, 1) and lake.rows_unchanged_since(path, 3)
    assert not lake.rows_unchanged_since(tmp_path / "missing", 0)

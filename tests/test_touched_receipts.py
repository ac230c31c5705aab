"""An incremental silver run re-decides only the receipts its new bronze rows can change (jobs/silver/touched.py)
and keeps every other row of its horizon as the last good run left it. Each rule is exercised by a late event that
changes receipts nothing else touches; the touched keys are checked exactly, and the incremental lake must equal one
full run."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from jobs import spark_io
from jobs.horizon import SegmentsScope, from_increment, read_bronze, segments_scope
from jobs.ingest import ingest
from jobs.silver import build_silver, view_events
from jobs.silver import touched as touch
from jobs.silver.dedupe import dedupe_event_id
from storylake import increments, lake
from storylake.settings import Settings
from tests.landing_builders import created, view, write_landing
from tests.test_incremental import assert_same, lake_state, run, table_rows
from tests.test_touched_stories import relationship

pytestmark = pytest.mark.slow

DAY = "2026-11-01"
AS_OF_1 = datetime(2026, 11, 1, 13, tzinfo=UTC)
AS_OF_2 = datetime(2026, 11, 1, 14, tzinfo=UTC)


def first_batch(landing: Path) -> None:
    """Authors 1, 5 and 7 post segments 10, 52 and 70 at 10:00; viewers 2-4 watch them (arrival hour 12)."""
    write_landing(landing, "segment_created", [
        created("c10", 10, 1, f"{DAY}T10:00:00Z"), created("c52", 52, 5, f"{DAY}T10:00:00Z"),
        created("c70", 70, 7, f"{DAY}T10:00:00Z"),
    ], dt=DAY, hour="12")
    write_landing(landing, "segment_view", [
        view("v1", 10, 2, f"{DAY}T10:30:00Z"), view("v2", 10, 3, f"{DAY}T10:40:00Z"),
        view("v3", 52, 2, f"{DAY}T10:30:00Z"), view("v4", 52, 3, f"{DAY}T10:50:00Z"),
        view("v5", 70, 3, f"{DAY}T10:35:00Z"), view("v6", 70, 4, f"{DAY}T10:45:00Z"),
    ], dt=DAY, hour="12")
    write_landing(landing, "navigation", [gesture("n1", 70, 3, f"{DAY}T10:36:00Z"),
                                          gesture("n2", 10, 3, f"{DAY}T10:41:00Z")], dt=DAY, hour="12")


def gesture(eid: str, seg: int, viewer: int, t: str) -> dict[str, Any]:
    return {"event_id": eid, "event_type": "navigation", "event_time": t, "segment_id": seg, "viewer_id": viewer,
            "action": "tap_forward"}


def late_batch(landing: Path) -> None:
    """Arrival hour 13: author 1 blocked viewer 2 at 10:15 (a pair change), author 7 went private at 10:20 (every
    viewer of 70), viewer 3's client retried v4 with an earlier event time (v4's retry group), and v3 was
    delivered again with another viewer (the first delivery stays v3's; both groups are touched)."""
    write_landing(landing, "relationship", [
        relationship("r1", "block", 1, 2, f"{DAY}T10:15:00Z"),
        {"event_id": "r2", "event_type": "relationship", "event_time": f"{DAY}T10:20:00Z", "kind": "set_private",
         "user_id": 7, "other_user_id": None},
    ], dt=DAY, hour="13")
    write_landing(landing, "segment_view", [
        view("v4r", 52, 3, f"{DAY}T10:45:00Z", key="v4"),
        view("v3", 52, 6, f"{DAY}T10:30:00Z"),
    ], dt=DAY, hour="13")


def test_touched_keys_follow_each_rule(spark: Any, tmp_path: Path) -> None:
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1)
    late_batch(s.landing)
    previous = increments.last(s)
    assert previous is not None
    ingest(s, progress=False)
    build_silver(spark, s, AS_OF_2)
    plan = increments.planned(s, AS_OF_2)
    assert plan is not None and not plan.full
    # the block at 10:15 reaches views of segments created from 24 h before it, but no view before 10:15: the
    # day-keyed gold tables are rewritten from 2026-11-01, not from the horizon's day
    assert (plan.horizon, plan.event_horizon) == (datetime(2026, 10, 31, 10, 15, tzinfo=UTC),
                                                  datetime(2026, 11, 1, 10, 15, tzinfo=UTC))
    horizon = from_increment(plan)
    assert horizon.first_day == date(2026, 11, 1)
    with spark_io.scratch(s) as materialize:
        views = read_bronze(spark, s, "segment_view", horizon)
        changes = touch.changes(spark, s, horizon, materialize)
        keys = touch.touched(spark, s, horizon, changes, "segment_view", "view_events", view_events.RETRY_DEDUPE[0],
                             "viewer_id", materialize)
        assert keys is not None
        assert sorted(r[0] for r in keys.segments.collect()) == [70]  # the private author's live segment
        assert sorted(tuple(r) for r in keys.pairs.collect()) == [(10, 2)]  # author 1's segment, viewer 2
        assert keys.groups.count() == 2  # the arrived deliveries': (52, v4, 3), (52, v3, 6)
        _, keys = touch.named_events(views, keys, materialize)  # v3's earlier delivery, in another group
        assert keys.groups.count() == 3 and keys.arrived is None  # and (52, v3, 2)
        chosen = touch.select(dedupe_event_id(views), keys)
        # v3's first delivery (viewer 2) stays the receipt; v4 and its retry, v1 (the pair), v5 and v6 (segment 70)
        assert sorted(r["event_id"] for r in chosen.collect()) == ["v1", "v3", "v4", "v4r", "v5", "v6"]
        gestures = read_bronze(spark, s, "navigation", horizon)
        nav = touch.touched(spark, s, horizon, changes, "navigation", "navigation", ["event_id"], "viewer_id",
                            materialize)
        assert nav is not None and nav.groups.count() == 0  # no gesture arrived
        assert [r["event_id"] for r in touch.select(dedupe_event_id(gestures), nav).collect()] == ["n1"]
    # v2 (viewer 3 on segment 10) was not re-decided: the lake equals one full run all the same
    rows = {r["event_id"]: r for r in lake.read_arrow(s.table_path("silver", "view_events")).to_pylist()}
    assert sorted(rows) == ["v2", "v3", "v4r"]  # v1 blocked, 70 now private, v4r the earlier retry
    assert [r["event_id"] for r in lake.read_arrow(s.table_path("silver", "navigation")).to_pylist()] == ["n2"]
    full = Settings(lake=tmp_path / "full_lake", landing=tmp_path / "full_landing")
    shutil.copytree(s.landing, full.landing)
    run(spark, full, AS_OF_2)
    run(spark, s, AS_OF_2)  # gold and the gates of the incremental run
    assert_same(lake_state(s), lake_state(full))


def test_a_late_delivery_that_sorts_first_moves_the_events_receipt_to_its_group(spark: Any, tmp_path: Path) -> None:
    """v3 (viewer 2) arrived in hour 12; a delivery of v3 with another viewer (6) lands later in the hour-11 folder,
    so it is v3's first delivery now (by file, line) and the receipt moves to viewer 6's group. The run finds the
    earlier delivery's group from the arrived event (not from the new delivery's group alone) and re-decides it too:
    viewer 2's receipt is gone, not kept beside the new one, and the lake equals one full run."""
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1)
    write_landing(s.landing, "segment_view", [view("v3", 52, 6, f"{DAY}T10:30:00Z")], dt=DAY, hour="11")
    run(spark, s, AS_OF_2)
    rows = [(r["event_id"], r["viewer_id"]) for r in lake.read_arrow(s.table_path("silver", "view_events")).to_pylist()
            if r["event_id"] == "v3"]
    assert rows == [("v3", 6)]
    full = Settings(lake=tmp_path / "full_lake", landing=tmp_path / "full_landing")
    shutil.copytree(s.landing, full.landing)
    run(spark, full, AS_OF_2)
    assert_same(lake_state(s), lake_state(full))


def test_a_failed_later_run_makes_the_run_recompute_its_whole_horizon(spark: Any, tmp_path: Path) -> None:
    """A run planned for a later as_of after the last good one (its gate failed) may have written rows for events
    after this run's as_of: the keyed path is refused."""
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1)
    late_batch(s.landing)
    ingest(s, progress=False)
    build_silver(spark, s, datetime(2026, 11, 1, 16, tzinfo=UTC))  # planned, never done
    build_silver(spark, s, AS_OF_2)
    plan = increments.planned(s, AS_OF_2)
    assert plan is not None and not plan.full
    with spark_io.scratch(s) as materialize:
        horizon = from_increment(plan)
        assert touch.changes(spark, s, horizon, materialize) is None


def after_as_of_2(landing: Path) -> None:
    """Arrival hour 14: events of every kind after AS_OF_2 (14:00), which a run for 16:00 processes: a view and a
    gesture on segment 10 (created 10:00: the view is anchored there), a delete of 52, a block, a new segment 80 and
    its view, a reply and a profile update."""
    write_landing(landing, "segment_view", [view("v9", 10, 4, f"{DAY}T14:30:00Z"),
                                            view("v10", 80, 2, f"{DAY}T14:50:00Z")], dt=DAY, hour="14")
    write_landing(landing, "navigation", [gesture("n9", 10, 4, f"{DAY}T14:31:00Z")], dt=DAY, hour="14")
    write_landing(landing, "segment_deleted", [
        {"event_id": "d52", "event_type": "segment_deleted", "event_time": f"{DAY}T14:10:00Z", "segment_id": 52,
         "author_id": 5}], dt=DAY, hour="14")
    write_landing(landing, "relationship", [relationship("r9", "block", 1, 3, f"{DAY}T14:05:00Z")], dt=DAY,
                  hour="14")
    write_landing(landing, "segment_created", [created("c80", 80, 7, f"{DAY}T14:15:00Z")], dt=DAY, hour="14")
    write_landing(landing, "engagement", [
        {"event_id": "e9", "event_type": "engagement", "event_time": f"{DAY}T14:40:00Z", "kind": "reply",
         "actor_id": 2, "target_user_id": 1, "segment_id": 10}], dt=DAY, hour="14")
    write_landing(landing, "profile_updated", [
        {"event_id": "p9", "event_type": "profile_updated", "event_time": f"{DAY}T14:20:00Z", "user_id": 2,
         "username": "two.later", "profile_picture_media_id": None}], dt=DAY, hour="14")


def test_a_run_after_a_failed_later_run_removes_what_that_run_wrote(spark: Any, tmp_path: Path) -> None:
    """A run for 16:00 processed events after 14:00 and its gold gate failed (silver and gold written, the run not
    done); the run for 14:00 then leaves every silver and gold table as a full run for 14:00 does: what the failed
    run wrote for later events is recomputed, wherever it is anchored (the view at 14:30 of a segment created at
    10:00 used to stay: the plan looked only at events before 14:00, whose slices start after it)."""
    from jobs.quality import gate_hook

    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1, gate=gate_hook("gate-1"))
    after_as_of_2(s.landing)
    hook = gate_hook("gate-2")

    def failing_gold_gate(spark_: Any, settings: Settings, layer: str, as_of: datetime) -> Any:
        if layer == "gold":
            raise RuntimeError("gold gate failed")
        return hook(spark_, settings, layer, as_of)

    with pytest.raises(RuntimeError, match="gold gate failed"):
        run(spark, s, datetime(2026, 11, 1, 16, tzinfo=UTC), gate=failing_gold_gate)
    assert increments.latest_attempt_since_done(s) == datetime(2026, 11, 1, 16, tzinfo=UTC)
    run(spark, s, AS_OF_2, gate=gate_hook("gate-3"))
    full = Settings(lake=tmp_path / "full", landing=tmp_path / "landing")
    run(spark, full, AS_OF_2)
    assert_same(lake_state(s), lake_state(full))
    # profiles too: the failed run folded in user 2's 14:20 update, which the 14:00 run folds out again
    assert table_rows(s, "silver", "profiles") == table_rows(full, "silver", "profiles")
    assert "two.later" not in "".join(table_rows(s, "silver", "profiles"))


def test_segments_a_run_wrote_before_it_died_are_removed(spark: Any, tmp_path: Path) -> None:
    """A run for 16:00 wrote silver.segments (segment 80, created at 14:15) and died before its plan was recorded
    (segments and relationships run before it): the run for 14:00, with no segment event before 14:00, still
    rewrites the segments' empty slice from 14:00 (the files' statistics show a row there) and ends as a full run."""
    from jobs.silver import segments

    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1)
    write_landing(s.landing, "segment_created", [created("c80", 80, 7, f"{DAY}T14:15:00Z")], dt=DAY, hour="14")
    ingest(s, progress=False)
    later = datetime(2026, 11, 1, 16, tzinfo=UTC)
    scope = segments_scope(spark, s, later)
    segments.run(spark, s, later, scope.since, scope.patch)
    assert increments.latest_attempt_since_done(s) is None  # no plan recorded: the run died before it
    assert 80 in lake.read_arrow(s.table_path("silver", "segments")).column("segment_id").to_pylist()
    run(spark, s, AS_OF_2)
    full = Settings(lake=tmp_path / "full", landing=tmp_path / "landing")
    run(spark, full, AS_OF_2)
    assert_same(lake_state(s), lake_state(full))


def test_an_hour_with_nothing_new_writes_no_silver_table(spark: Any, tmp_path: Path) -> None:
    """No event arrived since the last good run: the jobs whose slice starts at as_of (nothing can be anchored in
    it), relationships (no relationship event) and segments (no segment event) write nothing (no new version), nor
    do the story and author-day insights and sticker results of gold (no story, author or segment touched), and the
    lake still equals a full run for the later as_of."""
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1)
    skipped = ("segments", "relationships", "view_events", "segment_viewers", "navigation", "sticker_responses",
               "engagements")
    versions = {t: lake.open_table(s.table_path("silver", t)).version() for t in skipped}
    counts = build_silver(spark, s, AS_OF_2)
    assert not set(counts) & {*skipped, *(f"quarantine.{t}" for t in skipped)}, counts
    assert {t: lake.open_table(s.table_path("silver", t)).version() for t in skipped} == versions
    # no story and no author touched: gold would write them back as they are
    stories = ("segment_insights", "story_insights", "author_daily_insights", "author_viewer_days",
               "author_hourly_insights", "sticker_results")
    gold = {t: lake.open_table(s.table_path("gold", t)).version() for t in stories}
    run(spark, s, AS_OF_2)  # gold and the gates of the run
    assert {t: lake.open_table(s.table_path("gold", t)).version() for t in stories} == gold
    full = Settings(lake=tmp_path / "full", landing=tmp_path / "landing")
    run(spark, full, AS_OF_2)
    assert_same(lake_state(s), lake_state(full))


def test_an_hour_recomputes_the_author_days_of_the_authors_it_touches_only(spark: Any, tmp_path: Path) -> None:
    """A new view of author 1's segment: the day-keyed tables recompute author 1's rows and keep authors 5 and 7's
    as the last good run left them (their as_of the earlier one); author 1's day and new hour carry the new as_of,
    its earlier hour, recomputed to the same values, the earlier one (a row's as_of is the run that last changed
    it); the lake equals one full run."""
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1)
    write_landing(s.landing, "segment_view", [view("v9", 10, 4, f"{DAY}T13:10:00Z")], dt=DAY, hour="13")
    run(spark, s, AS_OF_2)
    def stamps(table: str, key: str) -> set[tuple[Any, ...]]:
        return {(r["author_id"], r[key], r["as_of"]) for r in lake.read_arrow(s.table_path("gold", table)).to_pylist()}

    day = date.fromisoformat(DAY)
    assert stamps("author_daily_insights", "day") == {(1, day, AS_OF_2), (5, day, AS_OF_1), (7, day, AS_OF_1)}
    hours = {(a, h.hour, t) for a, h, t in stamps("author_hourly_insights", "hour")}
    assert hours == {(1, 10, AS_OF_1), (1, 13, AS_OF_2), (5, 10, AS_OF_1), (7, 10, AS_OF_1)}
    daily = {r["author_id"]: r["reach"] for r in
             lake.read_arrow(s.table_path("gold", "author_daily_insights")).to_pylist()}
    assert daily == {1: 3, 5: 2, 7: 2}
    full = Settings(lake=tmp_path / "full", landing=tmp_path / "landing")
    run(spark, full, AS_OF_2)
    assert_same(lake_state(s), lake_state(full))


def test_a_late_delete_rewrites_the_author_days_from_its_own_time(spark: Any, tmp_path: Path) -> None:
    """A delete at 23:30 arriving after midnight denies a 23:40 view of the day before: the event horizon is the
    delete's time, so the day-keyed tables are rewritten from that day (not from the run's other changes)."""
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    write_landing(s.landing, "segment_created", [created("c10", 10, 1, f"{DAY}T10:00:00Z")], dt=DAY, hour="12")
    write_landing(s.landing, "segment_view", [view("v1", 10, 2, f"{DAY}T23:40:00Z")], dt=DAY, hour="23")
    write_landing(s.landing, "segment_view", [view("v2", 10, 3, "2026-11-02T00:20:00Z")], dt="2026-11-02",
                  hour="00")
    run(spark, s, datetime(2026, 11, 2, 1, tzinfo=UTC))
    day = {r["day"]: r["reach"] for r in lake.read_arrow(s.table_path("gold", "author_daily_insights")).to_pylist()}
    assert day == {date(2026, 11, 1): 1, date(2026, 11, 2): 1}
    write_landing(s.landing, "segment_deleted", [
        {"event_id": "d10", "event_type": "segment_deleted", "event_time": f"{DAY}T23:30:00Z", "segment_id": 10,
         "author_id": 1}], dt="2026-11-02", hour="01")
    ingest(s, progress=False)
    as_of = datetime(2026, 11, 2, 2, tzinfo=UTC)
    # no creation in the hour: nothing is rebuilt, segment 10's lifecycle is patched (with Parquet storage, whose
    # slices are folders named by their predicate, the rebuild goes back to segment 10 instead)
    assert segments_scope(spark, s, as_of) == SegmentsScope(as_of, (10,))
    assert segments_scope(spark, replace(s, storage="parquet"), as_of) == SegmentsScope(
        datetime(2026, 11, 1, 10, tzinfo=UTC))
    run(spark, s, as_of)
    plan = increments.last(s)
    assert plan is not None and plan.event_horizon == datetime(2026, 11, 1, 23, 30, tzinfo=UTC)
    day = {r["day"]: r["reach"] for r in lake.read_arrow(s.table_path("gold", "author_daily_insights")).to_pylist()}
    assert day == {date(2026, 11, 1): 0}  # the day it was posted; 11-02 has no activity left
    full = Settings(lake=tmp_path / "full_lake", landing=tmp_path / "full_landing")
    shutil.copytree(s.landing, full.landing)
    run(spark, full, datetime(2026, 11, 2, 2, tzinfo=UTC))
    assert_same(lake_state(s), lake_state(full))


def test_a_creation_of_a_segment_id_another_author_created_later_moves_that_authors_stories(
        spark: Any, tmp_path: Path) -> None:
    """Author 3's late creation of segment 10 predates author 1's: the segment becomes author 3's, and author 1's
    next segment (11) starts a story of its own. The run touches the receipts of both authors' later segments (the
    view of segment 11 moves to story 11), not only the new creation's author's; the lake equals one full run."""
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    write_landing(s.landing, "segment_created", [
        created("c10", 10, 1, f"{DAY}T10:00:00Z"), created("c11", 11, 1, f"{DAY}T11:00:00Z"),
        created("c52", 52, 5, f"{DAY}T10:00:00Z"),
    ], dt=DAY, hour="12")
    write_landing(s.landing, "segment_view", [view("v1", 11, 2, f"{DAY}T11:30:00Z"),
                                              view("v2", 52, 2, f"{DAY}T11:40:00Z")], dt=DAY, hour="12")
    run(spark, s, AS_OF_1)
    write_landing(s.landing, "segment_created", [created("c10x", 10, 3, f"{DAY}T09:30:00Z")], dt=DAY, hour="13")
    ingest(s, progress=False)
    build_silver(spark, s, AS_OF_2)
    plan = increments.planned(s, AS_OF_2)
    assert plan is not None and not plan.full
    with spark_io.scratch(s) as materialize:
        keys = touch.changes(spark, s, from_increment(plan), materialize)
        assert keys is not None
        assert sorted(r[0] for r in keys.segments.collect()) == [10, 11]
    rows = {r["segment_id"]: (r["author_id"], r["story_id"], r["frame_index"])
            for r in lake.read_arrow(s.table_path("silver", "segments")).to_pylist()}
    assert rows == {10: (3, 10, 1), 11: (1, 11, 1), 52: (5, 52, 1)}
    run(spark, s, AS_OF_2)
    views = {r["event_id"]: r["segment_id"] for r in lake.read_arrow(s.table_path("silver", "view_events")).to_pylist()}
    assert views == {"v1": 11, "v2": 52}
    full = Settings(lake=tmp_path / "full_lake", landing=tmp_path / "full_landing")
    shutil.copytree(s.landing, full.landing)
    run(spark, full, AS_OF_2)
    assert_same(lake_state(s), lake_state(full))

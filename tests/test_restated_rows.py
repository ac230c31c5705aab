"""Gold's story-keyed insights stored as restated rows (storylake/latest_rows.py): an hourly run appends the rows it
changed, flagged when their key had a row; readers see each key's latest row without the flag, in every form (Arrow,
DuckDB, Spark); the daily fold (jobs/restated_fold.py) removes the superseded rows and changes nothing readers see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.restated_fold import fold, fold_all
from storylake import audit, contracts, lake, merge_on_read
from storylake.latest_rows import STORY_INSIGHTS, arrow
from storylake.settings import Settings
from tests.test_latest_rows import by_duckdb, by_spark

T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
KEY = "gold.story_insights"


def story(story_id: int, hour: int, impressions: int, *, restated: bool, removed: bool = False) -> dict[str, Any]:
    """A stored row of story `story_id` as of T0 + `hour` h (its other columns follow from `impressions`)."""
    return {"story_id": story_id, "author_id": 7, "story_start": T0, "story_end": T0 + timedelta(days=1),
            "segment_count": 1, "impressions": impressions, "reach": impressions, "completed_viewers": 0,
            "total_view_ms": 1000 * impressions, "exits": 0, "taps_forward": 0, "taps_back": 0, "swipe_forward": 0,
            "replies": 0, "shares": 0, "profile_visits": 0, "follows": 0, "link_clicks": 0,
            "sticker_interactions": 0, "as_of": T0 + timedelta(hours=hour), "restated": restated, "removed": removed}


def seen(rows: list[dict[str, Any]]) -> list[tuple[int, int, datetime]]:
    return sorted((r["story_id"], r["impressions"], r["as_of"].astimezone(UTC)) for r in rows)


# story 1: written at hour 1, restated at 2 and 3; story 2 written once; story 3 first written at hour 2 (a new
# key appended, not flagged); story 4: written at 1, restated at 3; story 5: written at 1, gone at 2 (folded into
# another: a tombstone, its last row again); stored out of order
STORED = [story(1, 3, 9, restated=True), story(2, 1, 3, restated=False), story(1, 1, 5, restated=False),
          story(4, 3, 1, restated=True), story(3, 2, 4, restated=False), story(1, 2, 7, restated=True),
          story(4, 1, 2, restated=False), story(5, 1, 6, restated=False),
          story(5, 2, 6, restated=True, removed=True)]
LATEST = [(1, 9, T0 + timedelta(hours=3)), (2, 3, T0 + timedelta(hours=1)), (3, 4, T0 + timedelta(hours=2)),
          (4, 1, T0 + timedelta(hours=3))]


def test_each_story_shows_its_latest_row_without_the_flag_in_every_form(spark: Any) -> None:
    stored = lake.arrow_table(KEY, STORED)
    readers = [c for c in contracts.get(KEY).column_names if c not in ("restated", "removed")]
    for got in (arrow(STORY_INSIGHTS, stored).to_pylist(), by_duckdb(stored, STORY_INSIGHTS),
                by_spark(spark, stored, STORY_INSIGHTS)):
        assert seen(got) == LATEST
        assert list(got[0]) == readers


def test_a_hand_built_row_without_the_flag_restates_nothing() -> None:
    """lake.arrow_table fills the storage columns false where a builder leaves them out: rows written whole restate
    and remove nothing."""
    rows = [{k: v for k, v in story(1, 1, 5, restated=False).items() if k not in ("restated", "removed")}]
    table = lake.arrow_table(KEY, rows)
    assert (table.column("restated").to_pylist(), table.column("removed").to_pylist()) == ([False], [False])


@st.composite
def runs(draw: st.DrawFn) -> list[list[tuple[int, int | None]]]:
    """Hourly runs, each appending (story, impressions) rows for distinct stories of 1-6; impressions None: the
    story is gone (a tombstone, when it had a row)."""
    out = []
    for _ in range(draw(st.integers(1, 5))):
        keys = draw(st.lists(st.integers(1, 6), unique=True, max_size=4))
        out.append([(k, draw(st.none() | st.integers(0, 50))) for k in keys])
    return out


@given(runs(), st.randoms(use_true_random=False))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_forms_agree_with_the_last_row_appended_per_story(spark: Any, hours: list[list[tuple[int, int | None]]],
                                                              rnd: Any) -> None:
    """Rows appended run after run (flagged when their story had a row; a tombstone, its last row again, when it is
    gone) read as each story's last appended row, none after a tombstone, in every form, whatever order the files
    list them in."""
    rows, last = [], {}
    had: dict[int, dict[str, Any]] = {}
    for hour, appended in enumerate(hours, start=1):
        for key, impressions in appended:
            if impressions is None:  # gone: a tombstone of a story that has a row
                if key in had and key in last:
                    rows.append({**had[key], "as_of": T0 + timedelta(hours=hour), "restated": True, "removed": True})
                    del last[key]
                continue
            row = story(key, hour, impressions, restated=key in had)
            rows.append(row)
            last[key] = (key, impressions, T0 + timedelta(hours=hour))
            had[key] = row
    rnd.shuffle(rows)
    stored = lake.arrow_table(KEY, rows)
    want = sorted(last.values())
    assert seen(arrow(STORY_INSIGHTS, stored).to_pylist()) == want
    assert seen(by_duckdb(stored, STORY_INSIGHTS)) == want
    assert seen(by_spark(spark, stored, STORY_INSIGHTS)) == want


def _files(path: Path) -> set[str]:
    return set(DeltaTable(str(path)).file_uris())


def _stored(settings: Settings) -> list[tuple[int, int, datetime, bool, bool]]:
    rows = lake.read_arrow(settings.table_path("gold", "story_insights")).to_pylist()
    return sorted((r["story_id"], r["impressions"], r["as_of"].astimezone(UTC), r["restated"], r["removed"])
                  for r in rows)


def _build(settings: Settings) -> Path:
    """gold.story_insights in four files: old stories 100-101 (no restated key in their key range), then STORED's rows
    in the runs that wrote them (hours 1, 2, 3)."""
    path = settings.table_path("gold", "story_insights")
    lake.write_table(settings, KEY, [story(100, 0, 1, restated=False), story(101, 0, 2, restated=False)])
    for hour in (1, 2, 3):
        lake.write_table(settings, KEY, [r for r in STORED if r["as_of"] == T0 + timedelta(hours=hour)], mode="append")
    return path


def test_the_fold_removes_superseded_rows_and_changes_nothing_readers_see(settings: Settings) -> None:
    path = _build(settings)
    old_file = next(iter(DeltaTable(str(path), version=0).file_uris()))
    before = merge_on_read.read_table(settings, KEY).to_pylist()
    result = fold(settings, STORY_INSIGHTS)
    # story 1's rows of hours 1 and 2, story 4's of hour 1, story 5's two rows (the second a tombstone)
    assert (result.flagged_rows, result.rows_removed, result.files_removed, result.files_added) == (4, 5, 3, 3)
    assert (result.version_before, result.version_after) == (3, 4)
    assert _stored(settings) == [(1, 9, T0 + timedelta(hours=3), False, False),
                                 (2, 3, T0 + timedelta(hours=1), False, False),
                                 (3, 4, T0 + timedelta(hours=2), False, False),
                                 (4, 1, T0 + timedelta(hours=3), False, False),
                                 (100, 1, T0, False, False), (101, 2, T0, False, False)]
    assert merge_on_read.read_table(settings, KEY).to_pylist() == before
    assert old_file in _files(path)  # a file without a restated key's row is left as it is
    again = fold(settings, STORY_INSIGHTS)
    assert (again.flagged_rows, again.version_after) == (0, None)


def test_the_fold_of_a_good_version_is_recorded_good_and_a_failed_one_is_left(settings: Settings) -> None:
    """With write-audit-publish, the fold of the last good version becomes the version consumers read (same rows);
    a table whose newest version did not pass its gate is not folded."""
    _build(settings)
    audit.start(settings)
    audit.record(settings, "run-1", "gold", T0 + timedelta(hours=3), {KEY: 3})
    results = {r.table: r for r in fold_all(settings)}
    assert results[KEY].version_after == 4
    assert results["gold.segment_insights"].skipped == "no table"
    assert audit.last_good_version(settings, KEY) == 4
    lake.write_table(settings, KEY, [story(1, 4, 11, restated=True)], mode="append")  # a run whose gate failed
    later = fold(settings, STORY_INSIGHTS)
    assert (later.skipped, later.version_after) == ("its newest version did not pass its gate", None)
    assert audit.last_good_version(settings, KEY) == 4


@pytest.mark.slow
def test_the_daily_maintenance_folds_and_the_next_hour_appends(spark: Any, tmp_path: Path) -> None:
    """Hour 13's view of segment 10 is appended as a restated row (the run changed it); the daily maintenance folds
    it, consumers read the folded version at once, and hour 14's view is appended again: every table's readers'
    rows equal a full run's over the same files."""
    from jobs.maintenance import maintain
    from jobs.quality import gate_hook
    from tests.landing_builders import view, write_landing
    from tests.test_incremental import assert_same, lake_state, run
    from tests.test_touched_stories import AS_OF_1, AS_OF_2, DAY, first_batch

    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1, gate=gate_hook())
    write_landing(s.landing, "segment_view", [view("v9", 10, 4, f"{DAY}T12:10:00Z")], dt=DAY, hour="13")
    run(spark, s, AS_OF_2, gate=gate_hook())
    stored = lake.read_arrow(s.table_path("gold", "segment_insights")).to_pylist()
    assert sorted((r["segment_id"], r["restated"]) for r in stored) == [(10, False), (10, True), (52, False)]
    report = maintain(s)
    assert [(f.table, f.rows_removed) for f in report.folds] == [("gold.segment_insights", 1),
                                                                 ("gold.story_insights", 1)]
    good = audit.last_good_version(s, "gold.segment_insights")
    assert good is not None and good >= report.folds[0].version_after  # type: ignore[operator]
    stored = lake.read_arrow(s.table_path("gold", "segment_insights")).to_pylist()
    assert sorted((r["segment_id"], r["restated"]) for r in stored) == [(10, False), (52, False)]
    write_landing(s.landing, "segment_view", [view("v10", 10, 6, f"{DAY}T13:10:00Z")], dt=DAY, hour="14")
    as_of_3 = AS_OF_2 + timedelta(hours=1)
    run(spark, s, as_of_3, gate=gate_hook())
    stored = lake.read_arrow(s.table_path("gold", "segment_insights")).to_pylist()
    assert sorted((r["segment_id"], r["restated"]) for r in stored) == [(10, False), (10, True), (52, False)]
    full = Settings(lake=tmp_path / "full", landing=s.landing)
    run(spark, full, as_of_3)
    assert_same(lake_state(s), lake_state(full))

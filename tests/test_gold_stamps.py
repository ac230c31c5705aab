"""A gold row's as_of is the as_of of the run that last changed it (jobs/gold/touched.py, stamped): a row an hourly
run recomputes to the same values keeps its as_of, so the rows that differ between two gold versions are the rows
that changed (publish copies only those, serving/insights_history.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobs.gold.touched import stamped
from storylake import increments, merge_on_read
from storylake.settings import Settings
from tests.landing_builders import view, write_landing
from tests.test_incremental import run
from tests.test_touched_stories import AS_OF_1, AS_OF_2, DAY, first_batch, relationship

T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
T1 = datetime(2026, 11, 1, 11, tzinfo=UTC)
COLUMNS = ["k", "j", "x", "y", "tags", "as_of"]
SCHEMA = "k bigint, j bigint, x bigint, y bigint, tags array<string>, as_of timestamp"


def test_a_recomputed_row_equal_to_its_previous_row_keeps_its_as_of(spark: Any) -> None:
    """Keyed on (k, j): an equal row keeps T0 (nulls equal to nulls, arrays compared element by element); a changed
    value, an array element, a value moving from one null column to the other, and a new key take the run's T1. The
    previous rows of keys not recomputed add nothing."""
    previous = spark.createDataFrame([
        (1, 1, 5, None, ["a"], T0),   # recomputed the same
        (2, 1, 5, 6, ["a"], T0),      # x changes
        (3, 1, None, 7, None, T0),    # 7 moves from y to x
        (4, 1, 1, 1, ["a", "b"], T0),  # an array element changes
        (5, 1, 1, 1, None, T0),       # not recomputed
        (1, 2, 5, None, ["a"], T0),   # same values, another key
    ], SCHEMA)
    recomputed = spark.createDataFrame([
        (1, 1, 5, None, ["a"], T1),
        (2, 1, 9, 6, ["a"], T1),
        (3, 1, 7, None, None, T1),
        (4, 1, 1, 1, ["a", "c"], T1),
        (6, 1, 5, None, ["a"], T1),   # new key, values equal to key (1, 1)'s
        (1, 2, 5, None, ["a"], T1),
    ], SCHEMA)
    out = stamped(recomputed, previous, ["k", "j"], COLUMNS)
    assert out.columns == COLUMNS
    got = sorted((r["k"], r["j"], r["x"], r["y"], r["tags"], r["as_of"].astimezone(UTC)) for r in out.collect())
    assert got == [
        (1, 1, 5, None, ["a"], T0),
        (1, 2, 5, None, ["a"], T0),
        (2, 1, 9, 6, ["a"], T1),
        (3, 1, 7, None, None, T1),
        (4, 1, 1, 1, ["a", "c"], T1),
        (6, 1, 5, None, ["a"], T1),
    ]


def _rows(settings: Settings, table: str) -> list[dict[str, Any]]:
    """gold.<table>'s rows as its readers see them (segment and story insights are stored as restated rows)."""
    return merge_on_read.read_table(settings, f"gold.{table}").to_pylist()


@pytest.mark.slow
def test_an_hourly_run_restamps_only_the_rows_it_changes(spark: Any, tmp_path: Path) -> None:
    """Hour 13 brings one view of author 1's segment 10 and a follow between author 5 and user 9, who never
    viewed: the follow touches author 5's story (its audience rules read the pair from then on), which the run
    recomputes to the same values. Segment 10, its story and author 1's day take the run's as_of; author 5's rows
    keep the first run's."""
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1)
    write_landing(s.landing, "segment_view", [view("v9", 10, 4, f"{DAY}T12:10:00Z")], dt=DAY, hour="13")
    write_landing(s.landing, "relationship", [relationship("r9", "follow", 9, 5, f"{DAY}T12:20:00Z")],
                  dt=DAY, hour="13")
    run(spark, s, AS_OF_2)
    plan = increments.last(s)
    assert plan is not None and not plan.full

    def stamps(table: str, key: str) -> dict[int, datetime]:
        return {r[key]: r["as_of"].astimezone(UTC) for r in _rows(s, table)}

    assert {r["segment_id"]: r["reach"] for r in _rows(s, "segment_insights")} == {10: 3, 52: 2}
    assert stamps("segment_insights", "segment_id") == {10: AS_OF_2, 52: AS_OF_1}
    assert stamps("story_insights", "story_id") == {10: AS_OF_2, 52: AS_OF_1}
    assert stamps("author_daily_insights", "author_id") == {1: AS_OF_2, 5: AS_OF_1}
    hourly = {(r["author_id"], r["as_of"].astimezone(UTC)) for r in _rows(s, "author_hourly_insights")}
    assert (1, AS_OF_2) in hourly and (5, AS_OF_1) in hourly and (5, AS_OF_2) not in hourly


@pytest.mark.slow
def test_without_last_good_story_insights_the_hour_recomputes_both_story_tables(spark: Any, tmp_path: Path) -> None:
    """One job writes gold.segment_insights and gold.story_insights from the same activity (jobs/gold/
    segment_insights.py): when either has no last good version to keep rows from (here no gate ever passed
    gold.story_insights), the hour recomputes every story of its horizon for both, so every row of both takes the
    run's as_of (segment 52, untouched, included), and both tables equal a full run's."""
    from deltalake import DeltaTable

    from jobs.quality import gate_hook
    from storylake import audit
    from tests.test_incremental import assert_same, lake_state
    from tests.test_silver_appends import full_state

    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1, gate=gate_hook("gate-1"))
    DeltaTable(str(s.table_path(*audit.TABLE.split(".")))).delete("table_key = 'gold.story_insights'")
    assert audit.last_good_version(s, "gold.story_insights") is None
    assert audit.last_good_version(s, "gold.segment_insights") is not None
    write_landing(s.landing, "segment_view", [view("v9", 10, 4, f"{DAY}T12:10:00Z")], dt=DAY, hour="13")
    run(spark, s, AS_OF_2, gate=gate_hook("gate-2"))
    assert {r["segment_id"]: r["as_of"].astimezone(UTC) for r in _rows(s, "segment_insights")} == {
        10: AS_OF_2, 52: AS_OF_2}
    assert {r["story_id"]: (r["reach"], r["as_of"].astimezone(UTC)) for r in _rows(s, "story_insights")} == {
        10: (3, AS_OF_2), 52: (2, AS_OF_2)}
    got, want = lake_state(s), full_state(spark, s, tmp_path, AS_OF_2)
    assert_same({k: got[k] for k in ("gold.segment_insights", "gold.story_insights")},
                {k: want[k] for k in ("gold.segment_insights", "gold.story_insights")})

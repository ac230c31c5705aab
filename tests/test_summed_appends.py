"""gold.ring_signal_days and gold.author_viewer_days stored as summed rows (storylake/summed_rows.py): an hourly run
whose silver views and engagements only gained rows appends the sums of its new rows, stamped with its as_of, and
leaves the stored rows as they were; readers (Arrow, Spark) see one row per key with the counts summed (a flag: the
largest), equal to a full run's; a run that decided a receipt again rewrites its days."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from jobs.merged_tables import summed_frame
from jobs.spark_schemas import spark_schema
from storylake import contracts, lake, merge_on_read, summed_rows
from storylake.settings import Settings
from tests.landing_builders import view, write_landing
from tests.test_incremental import assert_same, lake_state, run
from tests.test_ring_features_changes import engagement
from tests.test_silver_appends import full_state, last_commit
from tests.test_touched_receipts import AS_OF_1, AS_OF_2, DAY, first_batch, late_batch

TABLE = summed_rows.RING_SIGNAL_DAYS
VIEWER_DAYS = summed_rows.AUTHOR_VIEWER_DAYS
DAY_KEY = ["author_id", "day", "viewer_id"]
KEY = ["viewer_id", "author_id", "day"]
COUNTS = ["dm_count", "likes_given", "comments_given", "story_replies", "profile_visits", "story_views",
          "completed_views"]
D = date.fromisoformat(DAY)


def row(viewer: int, author: int, as_of: datetime, *, views: int = 0, completed: int = 0, likes: int = 0,
        day: date = D) -> dict[str, Any]:
    return {"viewer_id": viewer, "author_id": author, "day": day, "dm_count": 0, "likes_given": likes,
            "comments_given": 0, "story_replies": 0, "profile_visits": 0, "story_views": views,
            "completed_views": completed, "as_of": as_of}


def keyed(rows: list[dict[str, Any]], stamp: bool = True) -> list[tuple[Any, ...]]:
    """Rows as sorted (key, counts[, as_of]) tuples."""
    columns = [*KEY, *COUNTS, *(["as_of"] if stamp else [])]
    return sorted(tuple(r[c] for c in columns) for r in rows)


def test_readers_see_each_keys_counts_summed_over_its_stored_rows(spark: Any) -> None:
    t1, t2 = AS_OF_1, AS_OF_2
    stored = [row(2, 1, t1, views=2, completed=1), row(2, 1, t2, views=1, likes=3), row(3, 1, t1, views=1),
              row(2, 1, t2, views=4, day=date(2026, 11, 2))]
    want = [row(2, 1, t2, views=3, completed=1, likes=3), row(3, 1, t1, views=1),
            row(2, 1, t2, views=4, day=date(2026, 11, 2))]
    schema = contracts.get(TABLE.table).arrow_schema()
    arrow = summed_rows.arrow(TABLE, pa.Table.from_pylist(stored, schema=schema))
    assert arrow.column_names == [*KEY, *COUNTS]
    assert keyed(arrow.to_pylist(), stamp=False) == keyed(want, stamp=False)
    frame = spark.createDataFrame([tuple(r[f.name] for f in spark_schema(contracts.get(TABLE.table)).fields)
                                   for r in stored], spark_schema(contracts.get(TABLE.table)))
    spark_rows = [r.asDict() for r in summed_frame(TABLE, frame).collect()]
    assert summed_frame(TABLE, frame).columns == [*KEY, *COUNTS]
    assert keyed(spark_rows, stamp=False) == keyed(want, stamp=False)


def test_readers_see_a_flag_as_the_largest_of_its_stored_rows(spark: Any) -> None:
    def viewer_day(author: int, viewer: int, views: int, ms: int | None, completed: int, as_of: datetime
                   ) -> dict[str, Any]:
        return {"author_id": author, "day": D, "viewer_id": viewer, "views": views, "view_ms": ms,
                "completed": completed, "as_of": as_of}

    stored = [viewer_day(1, 2, 1, 5000, 1, AS_OF_1), viewer_day(1, 2, 2, None, 0, AS_OF_2),
              viewer_day(1, 3, 1, None, 0, AS_OF_1)]
    want = [(1, D, 2, 3, 5000, 1), (1, D, 3, 1, None, 0)]
    contract = contracts.get(VIEWER_DAYS.table)
    arrow = summed_rows.arrow(VIEWER_DAYS, pa.Table.from_pylist(stored, schema=contract.arrow_schema()))
    assert sorted(tuple(r.values()) for r in arrow.to_pylist()) == want
    frame = spark.createDataFrame([tuple(r[f.name] for f in spark_schema(contract).fields) for r in stored],
                                  spark_schema(contract))
    assert sorted(tuple(r) for r in summed_frame(VIEWER_DAYS, frame).collect()) == want


def stored_at(path: Path, version: int) -> list[dict[str, Any]]:
    rows = DeltaTable(str(path), version=version).to_pyarrow_table().to_pylist()
    for r in rows:
        r["as_of"] = r["as_of"].astimezone(UTC)
    return rows


@pytest.mark.slow
def test_an_hour_of_new_views_and_actions_appends_their_counts(spark: Any, tmp_path: Path) -> None:
    """Hour 13 brings viewer 5's first view of author 1's segment 10, viewer 3's second view of author 5's segment 52
    (half watched) and viewer 4's like of author 1: silver.view_events and silver.engagements take one appended file
    each, and gold.ring_signal_days and gold.author_viewer_days take appended files, with exactly those sums stamped
    with the run's as_of beside the rows as they were; readers see (3, 5)'s two views summed, and the lake equals
    one full run."""
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1)
    write_landing(s.landing, "segment_view", [view("v7", 10, 5, f"{DAY}T12:30:00Z"),
                                              view("v8", 52, 3, f"{DAY}T12:40:00Z", pct=0.5)], dt=DAY, hour="13")
    write_landing(s.landing, "engagement", [engagement("e1", "like", 4, 1, f"{DAY}T12:50:00Z")], dt=DAY, hour="13")
    run(spark, s, AS_OF_2)
    for table in ("view_events", "engagements"):
        assert last_commit(s.table_path("silver", table)) == {"add": 1, "remove": 0}, table
    path = s.table_path("gold", "ring_signal_days")
    assert last_commit(path)["remove"] == 0  # an append: added files only
    version = lake.version(path)
    assert version is not None
    before, after = stored_at(path, version - 1), stored_at(path, version)
    appended = [row(5, 1, AS_OF_2, views=1, completed=1), row(3, 5, AS_OF_2, views=1), row(4, 1, AS_OF_2, likes=1)]
    assert keyed(after) == keyed([*before, *appended])
    assert {r["as_of"] for r in before} == {AS_OF_1}
    readers = merge_on_read.read_table(s, TABLE.table)
    assert readers is not None
    (pair,) = [r for r in readers.to_pylist() if (r["viewer_id"], r["author_id"]) == (3, 5)]
    assert (pair["story_views"], pair["completed_views"]) == (2, 1)

    path = s.table_path("gold", "author_viewer_days")
    assert last_commit(path)["remove"] == 0
    version = lake.version(path)
    assert version is not None
    columns = [*DAY_KEY, "views", "view_ms", "completed", "as_of"]
    before, after = stored_at(path, version - 1), stored_at(path, version)
    appended = [(1, D, 5, 1, 5000, 1, AS_OF_2), (5, D, 3, 1, 5000, 0, AS_OF_2)]
    assert sorted(tuple(r[c] for c in columns) for r in after) == sorted(
        [*(tuple(r[c] for c in columns) for r in before), *appended])
    days = merge_on_read.read_table(s, VIEWER_DAYS.table)
    assert days is not None
    (viewer,) = [r for r in days.to_pylist() if (r["author_id"], r["viewer_id"]) == (5, 3)]
    assert (viewer["views"], viewer["view_ms"], viewer["completed"]) == (2, 10000, 1)
    assert_same(lake_state(s), full_state(spark, s, tmp_path, AS_OF_2))


@pytest.mark.slow
def test_a_receipt_decided_again_rewrites_the_days(spark: Any, tmp_path: Path) -> None:
    """Hour 13 brings a block and a private account that deny earlier receipts and an earlier retry of v4: silver
    rewrites view_events' slice, so gold.ring_signal_days and gold.author_viewer_days rewrite their days (one stored
    row per key, each stamped with the run's as_of: every author is touched) instead of appending, and the lake
    equals one full run."""
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    first_batch(s.landing)
    run(spark, s, AS_OF_1)
    late_batch(s.landing)
    run(spark, s, AS_OF_2)
    for name, key in (("ring_signal_days", KEY), ("author_viewer_days", DAY_KEY)):
        path = s.table_path("gold", name)
        assert last_commit(path)["remove"] >= 1, name
        version = lake.version(path)
        assert version is not None
        after = stored_at(path, version)
        assert {r["as_of"] for r in after} == {AS_OF_2}, name
        assert len({tuple(r[k] for k in key) for r in after}) == len(after), name
    assert_same(lake_state(s), full_state(spark, s, tmp_path, AS_OF_2))

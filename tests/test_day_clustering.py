"""Day-clustered compaction (jobs/day_clustering.py): files regrouped by the UTC day of a time column, exactly the
same rows, only the unsettled files rewritten; through maintain() on a bronze table and read back by Sail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from jobs.day_clustering import cluster
from jobs.maintenance import maintain
from storylake.settings import Settings

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SCHEMA = pa.schema([("id", pa.int64()), ("event_time", pa.timestamp("us", tz="UTC")), ("v", pa.string())])


def _append(path: Path, rows: list[tuple[int, datetime | None]]) -> None:
    write_deltalake(str(path), pa.table({"id": [r[0] for r in rows], "event_time": [r[1] for r in rows],
                                         "v": [f"v{r[0]}" for r in rows]}, schema=SCHEMA), mode="append")


def _rows(path: Path) -> list[dict[str, Any]]:
    return sorted(DeltaTable(str(path)).to_pyarrow_table().to_pylist(), key=lambda r: r["id"])


def _file_days(path: Path) -> list[tuple[int, str | None, str | None]]:
    """(rows, first day, last day) of every active file, sorted."""
    adds = pa.table(DeltaTable(str(path)).get_add_actions(flatten=True)).to_pydict()
    out = []
    for i in range(len(adds["path"])):
        lo, hi = adds["min.event_time"][i], adds["max.event_time"][i]
        last = hi and max(lo.date(), (hi - timedelta(microseconds=1)).date())  # bounds are rounded to the ms
        out.append((adds["num_records"][i], lo and lo.date().isoformat(), last and last.isoformat()))
    return sorted(out, key=lambda x: (x[1] or "", x[0]))


def test_maintain_clusters_bronze_by_event_day_and_leaves_settled_files(settings: Settings, spark: Any) -> None:
    path = settings.table_path("bronze", "segment_view")
    h = timedelta(hours=1)
    _append(path, [(1, T0 + 22 * h), (2, T0 + 25 * h)])  # an arrival hour spanning midnight
    _append(path, [(3, T0 + 29 * h), (4, T0 + 47 * h + timedelta(minutes=59, seconds=59))])
    _append(path, [(5, None)])  # null in its only row, alone, and no rewritten file holds a null row: left alone
    _append(path, [(6, T0 + 74 * h)])  # alone in its day: settled
    before = _rows(path)
    report = maintain(settings)
    (t,) = report.tables
    assert (t.clustered_by, t.compact_files_removed, t.compact_files_added) == ("event_time", 2, 2)
    assert _rows(path) == before
    assert _file_days(path) == [(1, None, None), (1, "2026-11-01", "2026-11-01"), (3, "2026-11-02", "2026-11-02"),
                                (1, "2026-11-04", "2026-11-04")]
    # settled: a second pass rewrites nothing
    assert maintain(settings).tables[0].compact_files_removed == 0
    # the engine reads the clustered files, pruning by the new statistics
    got = spark.read.format("delta").load(str(path)).where("event_time >= '2026-11-02T00:00:00Z'")
    assert sorted(r["id"] for r in got.collect()) == [2, 3, 4, 6]


def test_a_large_day_is_split_and_small_files_of_one_day_merge(tmp_path: Path) -> None:
    path = tmp_path / "t"
    for i in range(4):
        _append(path, [(10 * i + j, T0 + timedelta(hours=i, minutes=j)) for j in range(10)])
    result = cluster(path, "event_time", target_bytes=10**9)
    assert (result.files_removed, result.files_added, result.days, result.rows) == (4, 1, 1, 40)
    assert _file_days(path) == [(40, "2026-11-01", "2026-11-01")]
    rows = [(100 + j, T0 + timedelta(days=1, minutes=j)) for j in range(300)]
    _append(path, rows[:150])
    _append(path, rows[150:])
    size = sum(DeltaTable(str(path)).get_add_actions(flatten=True).column("size_bytes").to_pylist())
    result = cluster(path, "event_time", target_bytes=size)  # the new day's ~300 rows go in ~2 files of ~target
    assert result.files_removed == 2 and result.days == 1
    days = _file_days(path)
    assert sum(n for n, _, _ in days) == 340 and {d for _, d, _ in days} == {"2026-11-01", "2026-11-02"}
    assert all(first == last for _, first, last in days)
    ids = [r["id"] for r in _rows(path)]
    assert ids == sorted(ids) and len(ids) == 340


def test_a_days_file_is_sorted_in_row_groups_that_a_horizon_read_skips(tmp_path: Path, spark: Any) -> None:
    """A run's horizon starts within a day: the row groups of a day's file hold disjoint, ascending time ranges, so
    the engine skips those before the horizon by their statistics instead of reading the whole day."""
    path = tmp_path / "t"
    minutes = [37, 5, 51, 12, 44, 0, 29, 58, 18, 33, 7, 22]  # two arrival files, out of order
    _append(path, [(m, T0 + timedelta(hours=m % 24, minutes=m)) for m in minutes[:6]])
    _append(path, [(m, T0 + timedelta(hours=m % 24, minutes=m)) for m in minutes[6:]])
    assert cluster(path, "event_time", row_group_rows=5).files_added == 1
    (name,) = [p for p in DeltaTable(str(path)).file_uris()]
    meta = pq.ParquetFile(name).metadata
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    time_col = SCHEMA.names.index("event_time")
    bounds = [(g.num_rows, g.column(time_col).statistics.min, g.column(time_col).statistics.max) for g in groups]
    assert [n for n, _, _ in bounds] == [5, 5, 2]
    assert all(lo <= hi < next_lo for (_, lo, hi), (_, next_lo, _) in zip(bounds, bounds[1:], strict=False))
    expected = sorted(T0 + timedelta(hours=m % 24, minutes=m) for m in minutes)
    assert [lo for _, lo, _ in bounds] == [expected[0], expected[5], expected[10]]
    got = spark.read.format("delta").load(str(path)).where(f"event_time >= '{expected[7].isoformat()}'")
    at = {T0 + timedelta(hours=m % 24, minutes=m): m for m in minutes}
    assert sorted(r["id"] for r in got.collect()) == sorted(at[t] for t in expected[7:])


def test_files_whose_column_is_null_in_every_row_merge(tmp_path: Path) -> None:
    """ops.quarantine's ingest rows have no anchor_at: one such file per ingest batch merges into one file instead
    of piling up; a lone one is settled."""
    path = tmp_path / "t"
    _append(path, [(1, None)])
    assert cluster(path, "event_time").files_removed == 0  # alone: settled
    _append(path, [(2, None), (3, None)])
    _append(path, [(4, T0)])  # alone in its day: settled, left as it is
    _append(path, [(5, None)])
    before = _rows(path)
    result = cluster(path, "event_time")
    assert (result.files_removed, result.files_added, result.days, result.rows) == (3, 1, 0, 4)
    assert _rows(path) == before
    assert _file_days(path) == [(4, None, None), (1, "2026-11-01", "2026-11-01")]
    assert cluster(path, "event_time").files_removed == 0


def test_a_lone_null_only_file_joins_only_a_rewrite_that_writes_null_rows(tmp_path: Path) -> None:
    path = tmp_path / "t"
    _append(path, [(1, None)])
    _append(path, [(2, T0), (3, T0 + timedelta(hours=1))])
    _append(path, [(4, T0 + timedelta(hours=2))])  # a second small file of the day: the day is rewritten
    assert cluster(path, "event_time").files_removed == 2  # the null-only file is left: no null row rewritten
    _append(path, [(5, T0 + timedelta(days=1)), (6, None)])
    _append(path, [(7, T0 + timedelta(days=1))])
    before = _rows(path)
    assert cluster(path, "event_time").files_removed == 3  # with the null row of (5, 6): the lone file joins
    assert _rows(path) == before
    assert _file_days(path) == [(2, None, None), (3, "2026-11-01", "2026-11-01"), (2, "2026-11-02", "2026-11-02")]


instants = st.one_of(st.none(), st.integers(0, 5 * 86400 * 1000).map(lambda ms: T0 + timedelta(milliseconds=ms)))


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(files=[[T0 + timedelta(hours=23), T0 + timedelta(days=1)]])  # a row exactly at midnight
@given(files=st.lists(st.lists(instants, min_size=1, max_size=8), min_size=1, max_size=6))
def test_clustering_keeps_every_row_and_leaves_one_day_per_file(tmp_path_factory: Any, files: list[list[Any]]
                                                              ) -> None:
    path = tmp_path_factory.mktemp("c") / "t"
    n = 0
    for times in files:
        _append(path, [(n + i, t) for i, t in enumerate(times)])
        n += len(times)
    before = _rows(path)
    cluster(path, "event_time")
    assert _rows(path) == before
    days = _file_days(path)
    assert all(first == last for _, first, last in days)  # a bounded file holds one day
    firsts = [first for _, first, _ in days if first is not None]
    assert len(firsts) == len(set(firsts))  # small files: one per day
    assert cluster(path, "event_time").files_removed == 0

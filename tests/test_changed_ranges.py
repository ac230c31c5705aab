"""storylake.lake.changed_ranges: where a Delta table's rows changed between two versions, from its log alone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from storylake import lake

T = datetime(2026, 11, 2, 12, 0, 0, 123456, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def _rows(*days: int) -> pa.Table:
    return pa.table({"at": pa.array([T + timedelta(days=d) for d in days], pa.timestamp("us", tz="UTC")),
                     "day": pa.array([(T + timedelta(days=d)).date() for d in days], pa.date32())})


def test_appends_deletes_and_compactions(tmp_path: Path) -> None:
    path = tmp_path / "t"
    write_deltalake(str(path), _rows(0, 1))  # v0
    write_deltalake(str(path), _rows(5, 6), mode="append")  # v1
    assert lake.changed_ranges(path, 0, 0, "at") == []
    # an append: its file's range, the max moved up past the statistics' millisecond cut
    assert lake.changed_ranges(path, 0, 1, "at") == [(T.replace(microsecond=123000) + timedelta(days=5),
                                                      T.replace(microsecond=123000) + timedelta(days=6) + MS)]
    assert lake.changed_ranges(path, 0, 1, "day") == [(date(2026, 11, 7), date(2026, 11, 8))]
    DeltaTable(str(path)).optimize.compact()  # v2: rows moved, none changed
    assert lake.changed_ranges(path, 1, 2, "day") == []
    DeltaTable(str(path)).delete("day = '2026-11-02'")  # v3: the compacted file removed, its other rows added again
    ranges = lake.changed_ranges(path, 2, 3, "day")
    assert ranges is not None and (date(2026, 11, 2), date(2026, 11, 8)) in ranges
    assert lake.changed_ranges(path, 3, 1, "day") is None  # not a forward span
    assert lake.changed_ranges(path, 7, 9, "day") is None  # versions the table does not have


def test_a_metadata_change_or_a_missing_commit_means_anything_may_have_changed(tmp_path: Path) -> None:
    path = tmp_path / "t"
    write_deltalake(str(path), _rows(0))
    write_deltalake(str(path), _rows(1).append_column("extra", pa.array([1], pa.int64())), mode="append",
                    schema_mode="merge")
    assert lake.changed_ranges(path, 0, 1, "day") is None
    write_deltalake(str(path), _rows(2).append_column("extra", pa.array([2], pa.int64())), mode="append")
    (path / "_delta_log" / f"{2:020d}.json").unlink()
    assert lake.changed_ranges(path, 1, 2, "day") is None

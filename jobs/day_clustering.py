"""Compaction that keeps a table's files clustered by the UTC day of its time column (maintain's step 1).

An hourly run reads and rewrites only the rows at or after its horizon (jobs/horizon.py): bronze rows by
event_time, silver/gold rows by their anchor. Readers skip a file by its min/max statistics of that column, and a
slice write (replaceWhere) rewrites only the files whose statistics overlap the slice. delta-rs's compact() bins
files by size whatever their time ranges, so after it every file spans the table's whole history: each hourly run
then reads and rewrites all of it, a cost that grows with the lake's age.

cluster() instead rewrites only the files that spread over several days, or that share a day with other small
files (under half of TARGET_BYTES), into one file per day (several for a day larger than TARGET_BYTES), in one
commit that removes them (data_change false, as OPTIMIZE). Files already alone in their day are left as they are,
so a daily maintenance rewrites about the days the runs since the last one touched, not the table.
Content-preserving: the same rows, only in other files (rows whose column is null keep a file of their own).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from storylake import lake

log = logging.getLogger(__name__)
TARGET_BYTES = 128 * 1024 * 1024  # a day's file is split when larger (delta-rs's compact targets 100 MiB)
# Rows per row group of a day's file, which is sorted by the column. A run's horizon starts within a day (its
# reads keep rows at/after an instant): the engines skip the row groups wholly before it by their statistics. With
# pyarrow's default (1Mi rows) a day's file at 1M views a day was one row group, so an hourly run whose horizon
# began at 20:42 read that day's 24 hours of bronze views to keep 3 of them; 64Ki rows is ~1.5 h of that day.
ROW_GROUP_ROWS = 64 * 1024
# The time column of each table by contract key; bronze tables by event_time. Tables absent here (relationships,
# profiles, ring_features, ops bookkeeping) are rebuilt whole or small: compact() as before.
EXTRA_COLUMNS = {"silver.segments": "created_at", "ops.quarantine": "anchor_at"}


def cluster_column(key: str) -> str | None:
    """The column whose day the table's files are clustered by (None: not clustered)."""
    from jobs.horizon import ANCHORS, DAY_ANCHORED

    if key.startswith("bronze."):
        return "event_time"
    if key in ANCHORS:
        return ANCHORS[key][0]
    if key in DAY_ANCHORED:
        return "day"
    return EXTRA_COLUMNS.get(key)


@dataclass(frozen=True)
class _File:
    uri: str  # as in the add action (relative to the table root unless absolute)
    size: int
    first: date | None  # day of the column's min (None: no statistics, or only nulls)
    last: date | None
    all_null: bool = False  # the statistics say every row's column is null (e.g. ingest's quarantined lines)
    null_rows: int | None = None  # rows whose column is null (None: no statistics)

    @property
    def days(self) -> int:
        return 0 if self.first is None or self.last is None else (self.last - self.first).days + 1


@dataclass
class ClusterResult:
    files_removed: int = 0
    files_added: int = 0
    days: int = 0  # days rewritten
    rows: int = 0


def _day(v: object, *, upper: bool) -> date | None:
    """The day of a statistics bound. An upper timestamp bound is rounded up to the millisecond (lake.file_stats,
    as delta-rs): one exactly at midnight is taken as the day before, or every day-aligned file would span two."""
    if v is None:
        return None
    if isinstance(v, datetime):
        t = v.astimezone(UTC) if v.tzinfo else v.replace(tzinfo=UTC)
        if upper and t.time() == datetime.min.time():
            t -= timedelta(milliseconds=1)
        return t.date()
    if isinstance(v, date):
        return v
    return None


def _files(dt: object, column: str) -> list[_File]:
    adds = lake.add_actions(dt).to_pydict()  # type: ignore[arg-type]
    n = len(adds["path"])
    lo, hi = adds.get(f"min.{column}", [None] * n), adds.get(f"max.{column}", [None] * n)
    nulls, rows = adds.get(f"null_count.{column}", [None] * n), adds.get("num_records", [None] * n)
    out = []
    for i in range(n):
        first, last = _day(lo[i], upper=False), _day(hi[i], upper=True)
        if first is not None and last is not None:
            last = max(first, last)  # rows all at one midnight
        all_null = first is None and nulls[i] is not None and rows[i] is not None and nulls[i] == rows[i]
        out.append(_File(adds["path"][i], int(adds["size_bytes"][i]), first, last, all_null,
                         None if nulls[i] is None else int(nulls[i])))
    return out


def to_rewrite(files: list[_File], target_bytes: int = TARGET_BYTES) -> list[_File]:
    """The files cluster() rewrites: those spanning several days, the small single-day files of a day that
    holds another file (small, or touched by a spanning one), and the small files whose column is null in every
    row when there are several or a rewritten file holds null rows too (ops.quarantine's ingest rows have no
    anchor: one such file per ingest batch would otherwise pile up forever). Other files without bounds (no
    statistics) are left alone."""
    spanning = [f for f in files if f.days > 1]
    per_day: dict[date, list[_File]] = defaultdict(list)
    for f in files:
        if f.days == 1:
            assert f.first is not None
            per_day[f.first].append(f)
    touched = {f.first + timedelta(days=i) for f in spanning for i in range(f.days)}  # type: ignore[operator]
    out = list(spanning)
    for day, same_day in per_day.items():
        small = [f for f in same_day if f.size < target_bytes // 2]
        if len(small) > 1 or (small and day in touched):
            out.extend(small)
    null_only = [f for f in files if f.all_null and f.size < target_bytes // 2]
    # a lone one joins a rewrite that writes null rows of other files (no statistics: maybe), not any other
    if len(null_only) > 1 or (null_only and any(f.null_rows is None or f.null_rows > 0 for f in out)):
        out.extend(null_only)
    return out


def cluster(path: Path, column: str, *, target_bytes: int = TARGET_BYTES, row_group_rows: int = ROW_GROUP_ROWS
            ) -> ClusterResult:
    """Rewrite to_rewrite()'s files of the Delta table at `path` into one file per day of `column` (more for a day
    over `target_bytes`; single-day files under half of it count as small), sorted by `column` in row groups of
    `row_group_rows`, in one commit; returns what it did (nothing when every file is settled)."""
    from deltalake import DeltaTable
    from deltalake.transaction import AddAction, RemoveAction

    dt = DeltaTable(str(path))
    chosen = to_rewrite(_files(dt, column), target_bytes)
    result = ClusterResult()
    if not chosen:
        return result
    t0 = time.perf_counter()
    dataset = dt.to_pyarrow_dataset()  # the table's logical schema (refuses tables with deletion vectors)
    root = dt.table_uri.rstrip("/")
    wanted = {f.uri if "://" in f.uri else f"{root}/{f.uri}" for f in chosen}
    fragments = [fr for fr in dataset.get_fragments() if file_uri(fr.path, root) in wanted]
    if len(fragments) != len(chosen):
        raise RuntimeError(f"{path}: {len(chosen)} files to cluster, but the table's dataset lists {len(fragments)}")
    source = ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
    field = ds.field(column)
    expected = source.count_rows()
    bytes_per_row = max(1.0, sum(f.size for f in chosen) / max(1, expected))
    rows_per_file = max(1, int(target_bytes / bytes_per_row))
    bounded = [f for f in chosen if f.first is not None and f.last is not None]
    first = min((f.first for f in bounded), default=None)
    # the day after too: a row exactly at midnight is counted in the file's day before (_day) but belongs after
    last = max((f.last for f in bounded), default=None)
    col_type = dataset.schema.field(column).type
    added: list[lake.DataFile] = []
    day = first
    while day is not None and last is not None and day <= last + timedelta(days=1):
        rows = source.to_table(filter=(field >= _bound(day, col_type)) & (field < _bound(day + timedelta(days=1),
                                                                                           col_type)))
        if rows.num_rows:
            result.days += 1
            added.extend(_write(path, rows.sort_by(column), rows_per_file, row_group_rows))
        day += timedelta(days=1)
    nulls = source.to_table(filter=field.is_null())
    if nulls.num_rows:
        added.extend(_write(path, nulls, rows_per_file, row_group_rows))
    result.rows = sum(f.rows for f in added)
    if result.rows != expected:  # rows outside [first, last]: statistics that do not bound the rows
        for f in added:
            (path / f.name).unlink(missing_ok=True)
        raise RuntimeError(f"{path}: clustering by {column} wrote {result.rows} rows of {expected}; nothing committed")
    now_ms = int(time.time() * 1000)
    actions: list[AddAction | RemoveAction] = [RemoveAction(f.uri, False, now_ms, f.size) for f in chosen]
    actions += [AddAction(f.name, f.size, {}, f.modified_ms, False, f.stats) for f in added]
    dt.create_write_transaction(actions, mode="append", schema=dataset.schema)
    result.files_removed, result.files_added = len(chosen), len(added)
    log.info("%s: clustered %d files into %d (%d days, %d rows by %s) in %.2fs", path.name, len(chosen), len(added),
             result.days, result.rows, column, time.perf_counter() - t0)
    return result


def _bound(day: date, col_type: pa.DataType) -> pa.Scalar:
    """The start of `day` (UTC midnight for a timestamp column) as a scalar of the column's type."""
    return pa.scalar(day if pa.types.is_date(col_type) else datetime.combine(day, datetime.min.time(), UTC), col_type)


def file_uri(path: str, root: str) -> str:
    """A fragment's path as the add actions' absolute URI."""
    if "://" in path:
        return path
    prefix = root.split("://", 1)[0] + "://" if "://" in root else ""
    return prefix + path if path.startswith("/") else f"{root}/{path}"


def _write(table_dir: Path, rows: pa.Table, rows_per_file: int, row_group_rows: int) -> list[lake.DataFile]:
    out = []
    for offset in range(0, rows.num_rows, rows_per_file):
        chunk = rows.slice(offset, rows_per_file).combine_chunks()
        out.append(lake.write_data_file(table_dir, lake.new_data_file_name("part-clustered"), chunk,
                                        row_group_rows=row_group_rows))
    return out

"""Delta reads and writes from Spark jobs, with the Sail guardrails of DESIGN §2 built in.

- Tables are written in their contract's column order and types, every column nullable (Sail's
  mergeSchema divergence cannot bite) and without CDF.
- Overwrites are whole-table or `replaceWhere` with the rows validated against the predicate in the same
  pass (Sail accepts rows outside the predicate where Delta rejects them); never dynamic partition overwrite
  (Sail ignores it and overwrites the whole table).
"""

from __future__ import annotations

import itertools
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobs.engine_workarounds import (
    WriteGuardError,
    guard_error,
    guard_replace_where,
    has_nested,
    nullable,
    replace_slice_with_delta_rs,
)
from jobs.spark_schemas import spark_ddl_type, spark_schema
from storylake import contracts, lake, latest_rows, merge_on_read, summed_rows
from storylake.clock import utc
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType


def read_table(spark: SparkSession, settings: Settings, layer: str, name: str) -> DataFrame:
    """The table as its readers see it: a table stored merge-on-read (storylake.merge_on_read) merged from its base
    and its changes at their current versions (read_merged), one stored as growing rows (storylake.latest_rows)
    each key's latest row, one stored as summed rows (storylake.summed_rows) each key's sums, any other as stored
    (read_stored)."""
    stored = merge_on_read.merged(f"{layer}.{name}")
    if stored is not None and settings.storage == "delta":
        return read_merged(spark, settings, stored)
    growing = latest_rows.growing(f"{layer}.{name}")
    if growing is not None:
        from jobs.merged_tables import latest_frame

        return latest_frame(growing, read_stored(spark, settings, layer, name))
    added_up = summed_rows.summed(f"{layer}.{name}")
    if added_up is not None:
        from jobs.merged_tables import summed_frame

        return summed_frame(added_up, read_stored(spark, settings, layer, name))
    return read_stored(spark, settings, layer, name)


def read_merged(spark: SparkSession, settings: Settings, table: merge_on_read.MergedTable,
                versions: tuple[int | None, int | None] = (None, None)) -> DataFrame:
    """A merge-on-read table's rows from its base and its changes at `versions` (None: current); the base as it is
    without a changes table (a lake written before it existed). The stamp is the changes version's largest (from its
    files' statistics), the base's own when the changes are empty."""
    from pyspark.sql import functions as F

    from jobs.merged_tables import merged_frame

    base_layer, base_name = table.key.split(".")
    layer, name = table.changes.split(".")
    base_v, changes_v = versions
    base = (read_stored(spark, settings, base_layer, base_name) if base_v is None
            else read_version(spark, settings, base_layer, base_name, base_v))
    path = settings.table_path(layer, name)
    if not lake.exists(path):
        return base
    changes = (read_stored(spark, settings, layer, name) if changes_v is None
               else read_version(spark, settings, layer, name, changes_v))
    stamp = None
    version = None if table.stamp is None else changes_v if changes_v is not None else lake.version(path)
    if table.stamp is not None and version is not None:
        stats = lake.version_stats(path, version, table.stamp)
        if stats is not None and stats[1] is not None:
            stamp = F.lit(utc(stats[1]))  # exact: the client sends an aware datetime as epoch microseconds
    return merged_frame(table, base, changes, stamp)


def read_stored(spark: SparkSession, settings: Settings, layer: str, name: str) -> DataFrame:
    """The Delta table as stored, as a DataFrame; an empty DataFrame of the contract's schema when it does not
    exist."""
    path = settings.table_path(layer, name)
    contract = contracts.get(f"{layer}.{name}")
    if settings.storage == "parquet":
        return _read_parquet(spark, settings, layer, name)
    if not lake.exists(path):
        return spark.createDataFrame([], spark_schema(contract))
    return spark.read.format("delta").load(str(path))


def read_version(spark: SparkSession, settings: Settings, layer: str, name: str, version: int) -> DataFrame:
    """The Delta table as of `version`: the data files delta-rs lists for that version, read as Parquet in the
    contract's schema (protocol 1/2, no deletion vectors). Not Sail's `versionAsOf`: its log replay fails for a
    version between two checkpoints that is not one ("Missing commit file: expected version 0, found 2", pysail
    0.x; the daily maintenance writes a checkpoint after the version the gates audited). Those files are never
    vacuumed before the retention (7 days), so a pinned reader finds them."""
    from deltalake import DeltaTable

    files = DeltaTable(str(settings.table_path(layer, name)), version=version).file_uris()
    return read_files(spark, layer, name, files)


def read_version_as_seen(spark: SparkSession, settings: Settings, layer: str, name: str, version: int) -> DataFrame:
    """The table's rows at `version` as its readers saw them (read_version's rows; of a table stored as growing or
    restated rows, storylake.latest_rows, each key's latest row, without the flag)."""
    rows = read_version(spark, settings, layer, name, version)
    growing = latest_rows.growing(f"{layer}.{name}")
    if growing is None:
        return rows
    from jobs.merged_tables import latest_frame

    return latest_frame(growing, rows)


def read_pinned(spark: SparkSession, settings: Settings, layer: str, name: str) -> DataFrame | None:
    """The Delta table's current version as read_version() reads it: a job that overwrites the table can read these
    rows while it writes the next version (an overwrite removes files from the log, not from the disk), without
    first copying them into scratch. None with Parquet storage (its overwrite replaces the folder it would read)
    or without the table."""
    dt = lake.open_table(settings.table_path(layer, name)) if settings.storage == "delta" else None
    return None if dt is None else read_files(spark, layer, name, dt.file_uris())


def overwrite_from_current(spark: SparkSession, settings: Settings, layer: str, name: str,
                           build: Callable[[DataFrame], DataFrame], materialize: Materialize) -> int:
    """Overwrite table `layer`.`name` with build(its current rows); rows written. The rows are read from the current
    version's files while the overwrite writes the next one (read_pinned), without a first copy; with Parquet
    storage, whose overwrite replaces the folder it would read, the result is materialized before it."""
    pinned = read_pinned(spark, settings, layer, name)
    out = build(read_table(spark, settings, layer, name) if pinned is None else pinned)
    if pinned is None:  # computed before the table it reads is overwritten
        out = materialize(out, name)
    return write_table(out, settings, layer, name)


def constant_dates(spark: SparkSession, settings: Settings, layer: str, name: str, columns: tuple[str, ...]
                   ) -> tuple[Any, ...] | None:
    """The values of `columns` that every row of the table holds (a state table's bounds, e.g. the day it is
    sealed before); None without the table, without rows, or when a column holds more than one value. From the
    Delta log's file statistics when it has them, without the engine."""
    from pyspark.sql import functions as F

    dt = lake.open_table(settings.table_path(layer, name)) if settings.storage == "delta" else None
    if dt is not None:

        adds = lake.add_actions(dt).to_pydict()
        if not adds.get("path"):
            return None
        bounds = [[*adds.get(f"min.{c}", [None]), *adds.get(f"max.{c}", [None])] for c in columns]
        if all(None not in b for b in bounds):
            return tuple(b[0] for b in bounds) if all(len(set(b)) == 1 for b in bounds) else None
    row = read_stored(spark, settings, layer, name).agg(
        *[f(c).alias(f"{f.__name__}_{c}") for c in columns for f in (F.min, F.max)]).collect()[0]
    values = [(row[f"min_{c}"], row[f"max_{c}"]) for c in columns]
    if any(lo is None or lo != hi for lo, hi in values):
        return None
    return tuple(lo for lo, _ in values)


def read_files(spark: SparkSession, layer: str, name: str, files: list[str]) -> DataFrame:
    """The Parquet data files `files` (URIs: a version's, storylake.lake.appended_files') of table `layer`.`name`,
    read in its contract's schema."""
    schema = spark_schema(contracts.get(f"{layer}.{name}"))
    if not files:
        return spark.createDataFrame([], schema)
    return spark.read.schema(schema).parquet(*files)


def _read_parquet(spark: SparkSession, settings: Settings, layer: str, name: str) -> DataFrame:
    """Parquet storage mode: a Delta table's active files (protocol 1/2, no deletion vectors), else a
    Parquet folder written by this mode."""
    path = settings.table_path(layer, name)
    contract = contracts.get(f"{layer}.{name}")
    dt = lake.open_table(path)
    files = dt.file_uris() if dt is not None else (
        [str(p) for p in sorted(path.glob("*.parquet"))] if path.is_dir() else []
    )
    if not files:
        return spark.createDataFrame([], spark_schema(contract))
    return spark.read.schema(spark_schema(contract)).parquet(*files)


def conform(df: DataFrame, layer: str, name: str) -> DataFrame:
    """Select the contract's columns in order, cast to their types. Lazy: asking the frame for its columns would
    make the engine analyze the job's whole plan (up to ~0.6 s a write on a gold table); a missing column fails
    the write instead, and missing_columns names it."""
    from pyspark.sql import functions as F

    contract = contracts.get(f"{layer}.{name}")
    return df.select(*[F.col(c.name).cast(spark_ddl_type(c)).alias(c.name) for c in contract.columns])


def missing_columns(df: DataFrame, layer: str, name: str) -> WriteGuardError | None:
    """The error naming the contract columns `df` lacks (None when it has them all, or cannot be analyzed)."""
    try:
        columns = set(df.columns)
    except Exception:  # noqa: BLE001 - the write's own error is reported instead
        return None
    missing = [c for c in contracts.get(f"{layer}.{name}").column_names if c not in columns]
    return WriteGuardError(f"{layer}.{name}: transform output lacks contract columns {missing}") if missing else None


def write_table(
    df: DataFrame,
    settings: Settings,
    layer: str,
    name: str,
    *,
    replace_where: str | None = None,
) -> int:
    """Idempotent write of a whole table (or of the slice `replace_where`); returns rows written.

    A slice write checks its rows against the predicate inside the write itself (a row outside it fails the
    write through raise_error, before the commit), instead of a separate pass that would run the plan twice.
    """
    out, schema = _prepared(df, layer, name, replace_where)
    path = settings.table_path(layer, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if settings.storage == "parquet":
            if replace_where is not None:  # each slice in its own folder (no transactional replace in Parquet)
                path = path.parent / (name + "__" + "".join(ch if ch.isalnum() else "_" for ch in replace_where))
            out.write.mode("overwrite").parquet(str(path))
            return int(sum(pq_rows(p) for p in path.glob("*.parquet")))
        if replace_where is not None and lake.exists(path) and has_nested(schema):
            staging = settings.lake / "_staging" / uuid.uuid4().hex[:12]
            try:  # every row written is inside the slice (guarded) and the slice held no other: its row count
                return replace_slice_with_delta_rs(out, str(path), replace_where, staging)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        else:
            writer = out.write.format("delta").mode("overwrite")
            if replace_where is not None and lake.exists(path):
                writer = writer.option("replaceWhere", replace_where)
            else:  # the whole table in its contract's schema, whatever schema it was stored with
                writer = writer.option("overwriteSchema", "true")
            writer.save(str(path))
    except Exception as exc:
        raise guard_error(exc) or missing_columns(df, layer, name) or exc from exc
    return _rows_now(out, settings, layer, name, replace_where)


def append_table(df: DataFrame, settings: Settings, layer: str, name: str, *, inside: str | None) -> int:
    """Append `df` to the Delta table `layer.name` (its contract's columns; every row inside the predicate `inside`,
    checked inside the write as write_table checks a slice's); returns the rows of the slice `inside` now (of the
    table without it). Delta storage only (a Parquet lake's slices are folders rewritten whole)."""
    if settings.storage != "delta":
        raise ValueError(f"append_table: {layer}.{name} is stored as {settings.storage}, not Delta")
    out, _ = _prepared(df, layer, name, inside)
    try:
        out.write.format("delta").mode("append").save(str(settings.table_path(layer, name)))
    except Exception as exc:
        raise guard_error(exc) or missing_columns(df, layer, name) or exc from exc
    return _rows_now(out, settings, layer, name, inside)


def _prepared(df: DataFrame, layer: str, name: str, inside: str | None) -> tuple[DataFrame, StructType]:
    """(`df` in the contract's columns and types, every column nullable, each row checked inside the write to lie
    within the predicate `inside` (guard_replace_where); the contract's schema)."""
    schema = spark_schema(contracts.get(f"{layer}.{name}"))
    out = conform(df, layer, name)
    if inside is not None:
        out = guard_replace_where(out, inside, f"{layer}.{name}", schema.fieldNames())
    return nullable(out, schema), schema


def _rows_now(out: DataFrame, settings: Settings, layer: str, name: str, inside: str | None) -> int:
    """The Delta table's rows after a write: of the slice `inside`, counted by the engine (its scan skips the files
    whose statistics miss the slice), else of the whole table from the log's statistics."""
    if inside is None:
        return lake_rows(settings, layer, name)
    return int(out.sparkSession.read.format("delta").load(str(settings.table_path(layer, name))).where(inside).count())


Materialize = Callable[["DataFrame", str], "DataFrame"]


def lazily(df: DataFrame, name: str) -> DataFrame:
    """The default Materialize of the pure transforms: keep `df` as a plan (each use recomputes it)."""
    del name
    return df


def remove_stale_scratch(settings: Settings) -> int:
    """Remove every scratch folder left under LAKE/_staging by a killed job (a failing one removes its own); call
    it only while holding the lake's writer lock, when no other job can be using one. Returns how many."""
    root = settings.lake / "_staging"
    stale = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return len(stale)


@contextmanager
def scratch(settings: Settings) -> Iterator[Materialize]:
    """A Materialize that computes a frame once into a Parquet scratch folder under the lake and returns a
    frame reading it back; the folder is removed on exit.

    Sail has no cache(): a frame used by several writes or joined with itself is otherwise recomputed for
    each use. Jobs pass this to their transforms, which take it as `materialize` (default: `lazily`).
    """
    root = settings.lake / "_staging" / uuid.uuid4().hex[:12]
    root.mkdir(parents=True, exist_ok=True)

    taken = itertools.count()

    def materialize(df: DataFrame, name: str) -> DataFrame:
        path = root / f"{next(taken):03d}-{name}"  # a name may be used twice (e.g. by two dedupes of one job)
        df.write.mode("overwrite").parquet(str(path))
        if any(path.glob("*.parquet")):  # the files' schema: asking `df` would analyze its whole plan again
            return df.sparkSession.read.parquet(str(path))
        # an empty result leaves no file to take a schema from
        return df.sparkSession.read.schema(df.schema).parquet(str(path))

    try:
        yield materialize
    finally:
        shutil.rmtree(root, ignore_errors=True)


def pq_rows(path: object) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(str(path)).metadata.num_rows)


def lake_rows(settings: Settings, layer: str, name: str) -> int:
    """Row count from the Delta log's file statistics (no scan)."""
    dt = lake.open_table(settings.table_path(layer, name))
    if dt is None:
        return 0
    adds = lake.add_actions(dt)
    return int(sum(adds.column("num_records").to_pylist())) if adds.num_rows else 0


def ts_literal(t: datetime) -> str:
    """A Spark SQL timestamp literal for an aware UTC datetime (internal values, never user text)."""
    return f"TIMESTAMP '{t.strftime('%Y-%m-%d %H:%M:%S.%f')}'"

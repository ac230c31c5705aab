"""Every workaround for a behaviour of the Sail engine (pysail 0.7.x) that the jobs rely on, in one place.

Each names the engine behaviour it answers and has a regression test (tests/test_engine_workarounds.py):

- lookup: the embedded Sail runs with join swap off (jobs.engine), so the left input of a hash join is its
  build side; every join of a large frame with a smaller one is written small-side-left through lookup.
- any_true: max(boolean) is several times slower than bool_or on Sail.
- nullable: Sail writes columns it infers as non-null as NOT NULL Delta columns, which delta-rs then cannot
  read after a schema merge (DESIGN §2); written frames are unioned with the contract's nullable schema.
- guard_replace_where / WriteGuardError: Sail's replaceWhere accepts rows outside its predicate (Delta rejects
  them); the write checks every row inside the write itself and fails naming the predicate.
- has_nested / replace_slice_with_delta_rs: Sail's replaceWhere on a table with a list column fails ("UnionExec
  requires all inputs to have the same data type ... List(Utf8, field: 'element') ... expects List(Utf8)": the
  rows it keeps are read back with Parquet's list field name); such slices are written by delta-rs (predicate
  overwrite), which rewrites only the files the predicate touches.
- lost_operation: when a Spark Connect response stream breaks after Sail has sent its last response, the client
  reattaches to an operation Sail has already forgotten (its executor, back to idle, refuses to start again:
  INTERNAL "task context not found for operation"); the job is run again from its start (jobs.lanes).
Others are documented where they are avoided: dynamic partition overwrite (never used: Sail overwrites the whole
table), element_at on map columns (jobs/gold/sticker_results.py), first() and min(struct) aggregates
(jobs/silver/segment_viewers.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructType

_GUARD_MARK = "[storylake-write-guard]"


class WriteGuardError(RuntimeError):
    """A write would break a table's invariants (rows outside replaceWhere, missing columns...)."""


def lookup(big: DataFrame, small: DataFrame, on: Column | str | list[str], how: str = "left") -> DataFrame:
    """`big` LEFT (or INNER, `how="inner"`) JOIN `small`, written with `small` as the left input.

    The embedded Sail runs with join swap disabled (jobs.engine), so the left input of a hash join is its
    build side, held in memory, and the right input streams through it. Stats-based swapping cannot see
    that an aggregate or a filter is small, and built hash tables over tens of millions of wide rows.
    Every join of a large frame with a smaller one goes through here, so the smaller side is built.
    Columns come out as small's, then big's (select what you need afterwards).
    """
    if how not in ("left", "inner"):
        raise ValueError(f"lookup: how must be 'left' or 'inner', not {how!r}")
    return small.join(big, on, "right" if how == "left" else "inner")


def without(big: DataFrame, small: DataFrame, on: Column, small_columns: Sequence[str]) -> DataFrame:
    """`big` LEFT ANTI JOIN `small` (the rows of `big` that match no row of `small`, a null key matching none),
    with `small` as the hash join's build side (lookup): a left anti join builds its left input, which held every
    kept gold row of an hourly run's slice in memory (2.8M segment insights at 10M views a day: Sail's peak rose
    by ~2.5 GB while it was built). `small_columns`: small's columns, none of them a column of `big`; they are
    dropped, which spares asking the engine for big's columns (an analysis of its whole plan)."""
    from pyspark.sql import functions as F

    hit = "_without_hit"
    return lookup(big, small.withColumn(hit, F.lit(True)), on).filter(F.col(hit).isNull()).drop(*small_columns, hit)


def any_true(col: Column | str) -> Column:
    """Aggregate: any row true. bool_or, never max(boolean): max over booleans is several times slower on Sail."""
    from pyspark.sql import functions as F

    return F.bool_or(col)


def nullable(df: DataFrame, schema: StructType) -> DataFrame:
    """`df` (already in `schema`'s columns and types) with every column nullable, as the contracts' storage
    schemas are.

    Sail 0.7.2 writes columns it infers as non-null (literals, coalesce(..., 0), count) as NOT NULL Delta
    columns; casts, DataFrame.to(schema) and CASE WHEN keep that inference. A union with an empty frame of
    the nullable schema does not, portably (a union's nullability is the OR of its inputs').
    """
    return df.unionByName(df.sparkSession.createDataFrame([], schema))


def guard_replace_where(df: DataFrame, predicate: str, table: str, columns: list[str]) -> DataFrame:
    """`df` with a check that fails the write itself (raise_error, before the commit) when a row lies outside
    `predicate`. Sail's replaceWhere accepts rows outside its predicate (Delta rejects them), which would put them
    in the table and let a later slice write delete them; checking inside the write avoids a second pass over the
    plan. guard_error turns the failure into a WriteGuardError. `columns`: the frame's columns, from its contract
    (asking the frame would analyze its whole plan)."""
    from pyspark.sql import functions as F

    first = columns[0]
    inside = F.expr(f"coalesce(({predicate}), false)")
    message = F.lit(f"{_GUARD_MARK} {table}: a row is outside the replaceWhere predicate {predicate!r}")
    return df.select(F.when(inside, F.col(first)).otherwise(F.raise_error(message)).alias(first), *columns[1:])


def guard_error(exc: BaseException) -> WriteGuardError | None:
    """The WriteGuardError a failed write raised through guard_replace_where (None for any other failure)."""
    text = str(exc)
    if _GUARD_MARK not in text:
        return None
    return WriteGuardError(text[text.index(_GUARD_MARK) + len(_GUARD_MARK) + 1 :].splitlines()[0])


_LOST_OPERATION = "task context not found for operation"


def lost_operation(exc: BaseException) -> bool:
    """The error Sail gives a client that reattaches to an operation it has finished and forgotten.

    pyspark reattaches (ReattachExecute) whenever a response stream breaks with a retryable error. Sail's executor
    (sail-spark-connect executor.rs, Executor::start) can resume a paused operation, but one that completed meanwhile
    is idle and fails with INTERNAL "task context not found for operation", although it succeeded. Seen once in
    CI, with three engines on two busy cores. Turning reattachment off is no cure: pyspark then retries a broken
    stream by executing the plan again and yields its batches a second time. Every job writes by replacing its
    slices, so running the job again from its start is safe (jobs.lanes does, once)."""
    return _LOST_OPERATION in str(exc)


def has_nested(schema: StructType) -> bool:
    """The schema has a list, map or struct column (Sail cannot replaceWhere such a table)."""
    from pyspark.sql.types import ArrayType, MapType, StructType

    return any(isinstance(f.dataType, ArrayType | MapType | StructType) for f in schema.fields)


def replace_slice_with_delta_rs(df: DataFrame, path: str, replace_where: str, staging: Path) -> int:
    """Replace the rows of the Delta table at `path` matching `replace_where` with `df` (already guarded and
    conformed), through delta-rs; returns the rows written (the slice's rows now). The engine writes the slice as
    Parquet into the empty folder `staging` (the caller removes it), and delta-rs streams it from there into the
    table: the rows never cross the Spark Connect channel as Arrow (collecting ~480k segment rows cost ~1 s more
    than writing and reading them as files)."""
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq
    from deltalake import DeltaTable, write_deltalake

    df.write.mode("overwrite").parquet(str(staging))
    target = pa.schema(DeltaTable(path).schema().to_arrow())
    files = sorted(str(p) for p in staging.glob("*.parquet"))
    rows = sum(pq.read_metadata(f).num_rows for f in files)
    # an empty slice may leave no file: the predicate's rows are then only removed
    data = pads.dataset(files, format="parquet").scanner().to_reader().cast(target) if files else target.empty_table()
    # DataFusion reads TIMESTAMP '...' as a zone-less nanosecond timestamp, which it will not compare with the
    # table's UTC microseconds: the same instant as an explicit UTC microsecond literal
    predicate = re.sub(r"TIMESTAMP '([^']*)'", r"""arrow_cast('\1', 'Timestamp(Microsecond, Some("UTC"))')""",
                       replace_where)
    write_deltalake(path, data, mode="overwrite", predicate=predicate)  # type: ignore[arg-type]
    return int(rows)

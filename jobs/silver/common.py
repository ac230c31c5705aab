"""Helpers shared by the silver jobs: as_of handling, dedupe, ISO formatting and quarantine rows.

Everything here is portable Spark (DataFrame API + Spark SQL expressions): no Python UDFs, no Sail-only
features, so the pure transforms give the same result on embedded Sail and on classic JVM Spark.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from jobs import spark_io
from jobs.spark_io import Materialize
from jobs.spark_schemas import spark_ddl_type
from storylake import contracts
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

# Seen receipts (and gestures, sticker answers) whose segment is still unknown wait this long for a late
# segment_created before they are quarantined as unknown_segment.
UNKNOWN_SEGMENT_GRACE = timedelta(hours=48)
SEGMENT_LIFETIME_SQL = "INTERVAL 24 HOURS"
# A dedupe step: (key columns, order within a key; the first row by the order is kept).
KeyOrder = tuple[list[str], list["Column | str"]]
EVENT_ID_DEDUPE: KeyOrder = (["event_id"], ["_source_file", "_line"])
BRONZE_META = tuple(name for name, _, _ in contracts.BRONZE_METADATA)
# to_json's default timestamp text differs between engines (Sail: 10:00:00.001000Z, JVM Spark: 10:00:00.001Z,
# which also drops microseconds): pin one lossless format so `raw` is identical on both.
JSON_OPTIONS = {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"}


def utc(as_of: datetime) -> datetime:
    """as_of as an aware UTC datetime (a naive value is taken to be UTC already)."""
    return as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of.astimezone(UTC)


def iso_utc(t: datetime) -> str:
    """2026-11-02T00:00:00Z (fraction only when non-zero, trailing zeros trimmed)."""
    t = utc(t)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{t.strftime('%f').rstrip('0')}Z" if t.microsecond else f"{base}Z"


def run_id(as_of: datetime) -> str:
    """Batch id of a silver run: derived from as_of only, so a rerun writes identical quarantine rows."""
    return f"silver@{iso_utc(as_of)}"


def ts_lit(t: datetime) -> Column:
    from pyspark.sql import functions as F

    return F.lit(utc(t)).cast("timestamp")


def before(df: DataFrame, as_of: datetime, column: str = "event_time") -> DataFrame:
    """Rows strictly before as_of (a run sees only events that happened before its data time)."""
    from pyspark.sql import functions as F

    return df.filter(F.col(column) < ts_lit(as_of))


def iso_col(col: str | Column) -> Column:
    """Spark expression formatting a timestamp like iso_utc: 2026-11-02T10:00:00.001Z / ...10:00:00Z."""
    from pyspark.sql import functions as F

    c = F.col(col) if isinstance(col, str) else col
    micros = F.unix_micros(c) % F.lit(1_000_000)
    frac = F.regexp_replace(F.lpad(micros.cast("string"), 6, "0"), "0+$", "")
    base = F.date_format(c, "yyyy-MM-dd'T'HH:mm:ss")
    return (
        F.when(c.isNull(), F.lit("null"))
        .when(micros == 0, F.concat(base, F.lit("Z")))
        .otherwise(F.concat(base, F.lit("."), frac, F.lit("Z")))
    )


def txt(col: str | Column) -> Column:
    """A value as text for reasons ('null' when missing)."""
    from pyspark.sql import functions as F

    c = F.col(col) if isinstance(col, str) else col
    return F.coalesce(c.cast("string"), F.lit("null"))


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


def split_repeated(
    df: DataFrame, keys: list[list[str]], materialize: Materialize = spark_io.lazily
) -> tuple[DataFrame, DataFrame]:
    """(rows of `df` whose every key is unique in `df`, the other rows): same columns out.

    Made for keys that rarely repeat (redeliveries, retries, rewatches), so that only the second frame needs
    windows or aggregates. A key's repetition is found by a 64-bit hash of it (narrow aggregates); a
    collision only moves a few unique rows to the second frame, so every use stays exact: all rows of a
    repeated key are in the second frame. Keys compare null-safely (equal keys, nulls included, hash equal).

    Each row is marked by small-side joins against the repeated hashes of every key (built in memory, the big
    frame streams), then split: two streams of `df`, never a hash table of it. `materialize` computes the small
    sets of repeated hashes once for both streams (Sail would otherwise aggregate `df` again for each).
    """
    from pyspark.sql import functions as F

    hashes = [f"_dh{i}" for i in range(len(keys))]
    marked = df.select("*", *[F.xxhash64(*key).alias(h) for key, h in zip(keys, hashes, strict=True)])
    for i, h in enumerate(hashes):
        repeated = materialize(
            marked.groupBy(h).agg(F.count(F.lit(1)).alias("_n")).filter(F.col("_n") > 1)
            .select(F.col(h).alias(f"_r{h}"), F.lit(True).alias(f"_m{h}")),
            f"repeated_keys_{i}",
        )
        marked = lookup(marked, repeated, F.col(h) == F.col(f"_r{h}")).drop(f"_r{h}")
    any_repeated = F.lit(False)
    for h in hashes:
        any_repeated = any_repeated | F.col(f"_m{h}").isNotNull()
    return marked.filter(~any_repeated).select(*df.columns), marked.filter(any_repeated).select(*df.columns)


def first_per_keys(df: DataFrame, steps: list[KeyOrder], materialize: Materialize = spark_io.lazily) -> DataFrame:
    """Apply dedupe steps in order: each keeps one row per key, the first by its order (a total order within
    a key). Same columns out.

    Duplicates are rare, so only the rows of keys repeated in `df` (split_repeated) go through the windows,
    which partition by the real keys: every other row passes straight through. This is exact: a step only
    removes rows, so a key unique in `df` stays unique, and a row repeated under one step's key only is unique
    under every other step's key, which keeps it.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not steps:
        raise ValueError("first_per_keys: no dedupe steps")
    unique, rest = split_repeated(df, [keys for keys, _ in steps], materialize)
    for keys, order in steps:
        w = Window.partitionBy(*keys).orderBy(*order)
        rest = rest.withColumn("_rk", F.row_number().over(w)).filter(F.col("_rk") == 1).drop("_rk")
    return unique.unionByName(rest)


def first_per_key(
    df: DataFrame, keys: list[str], order: list[Column | str], materialize: Materialize = spark_io.lazily
) -> DataFrame:
    """Keep one row per key: the first by `order` (which must be a total order within a key)."""
    return first_per_keys(df, [(keys, order)], materialize)


def dedupe_event_id(df: DataFrame, materialize: Materialize = spark_io.lazily) -> DataFrame:
    """At-least-once delivery: the same event_id is one event; keep its first delivery by (_source_file, _line)."""
    return first_per_keys(df, [EVENT_ID_DEDUPE], materialize)


def with_raw(df: DataFrame, columns: list[str]) -> DataFrame:
    """Add `_raw` = the bronze row as JSON (the quarantine's `raw`) from its bronze `columns`, in bronze order.
    Apply it to the rejected rows only: to_json over every row is costly."""
    from pyspark.sql import functions as F

    return df.withColumn("_raw", F.to_json(F.struct(*[F.col(c) for c in columns]), JSON_OPTIONS))


def quarantine_rows(
    df: DataFrame,
    *,
    stage: str,
    contract: str,
    rule: str | Column,
    field: str | Column,
    reason: Column,
    as_of: datetime,
    raw_columns: list[str],
) -> DataFrame:
    """ops.quarantine rows for the offending bronze rows of `df`, whose bronze columns (`raw_columns`, in
    bronze order; they include _source_file, _line, event_id) become the `raw` JSON."""
    from pyspark.sql import functions as F

    r = F.lit(rule) if isinstance(rule, str) else rule
    f = F.lit(field) if isinstance(field, str) else field
    return with_raw(df, raw_columns).select(
        F.lit(stage).alias("stage"),
        F.lit(contract).alias("contract"),
        F.col("_source_file").alias("source_file"),
        F.col("_line").cast("bigint").alias("line"),
        F.col("event_id"),
        r.alias("rule"),
        f.alias("field"),
        reason.alias("reason"),
        F.col("_raw").alias("raw"),
        F.lit(run_id(as_of)).alias("batch_id"),
        ts_lit(as_of).alias("quarantined_at"),
    )


def project(df: DataFrame, key: str) -> DataFrame:
    """The contract's columns in order, cast to their types (like spark_io.conform, which write_table applies
    again with its missing-column check, but without an analysis round trip: transforms stay lazy)."""
    from pyspark.sql import functions as F

    contract = contracts.get(key)
    return df.select(*[F.col(col.name).cast(spark_ddl_type(col)).alias(col.name) for col in contract.columns])


def read_bronze(spark: SparkSession, settings: Settings, event: str, as_of: datetime) -> DataFrame:
    return before(spark_io.read_table(spark, settings, "bronze", event), as_of)


def write_quarantine(df: DataFrame, settings: Settings, stage: str) -> int:
    """Replace this stage's quarantine rows (other stages, ingest's included, are untouched)."""
    if "'" in stage:  # stages are internal constants; keep the predicate well-formed
        raise ValueError(f"bad stage {stage!r}")
    return spark_io.write_table(df, settings, "ops", "quarantine", replace_where=f"stage = '{stage}'")

"""ops.quarantine rows of the silver jobs: the offending bronze row as JSON, the rule, the field and a reason text
naming the bad value."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from jobs import spark_io
from jobs.silver.bronze import ts_lit
from storylake.clock import iso_trimmed
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from jobs.horizon import Horizon

_ONE_WRITER = threading.Lock()  # write_quarantine's commits to ops.quarantine, one at a time
# to_json's default timestamp text differs between engines (Sail: 10:00:00.001000Z, JVM Spark: 10:00:00.001Z,
# which also drops microseconds): pin one lossless format so `raw` is identical on both.
JSON_OPTIONS = {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"}


def run_id(as_of: datetime) -> str:
    """Batch id of a silver run: derived from as_of only, so a rerun writes identical quarantine rows."""
    return f"silver@{iso_trimmed(as_of)}"


def iso_col(col: str | Column) -> Column:
    """Spark expression formatting a timestamp like clock.iso_trimmed: 2026-11-02T10:00:00.001Z / ...10:00:00Z."""
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
    anchor: Column | None = None,
) -> DataFrame:
    """ops.quarantine rows for the offending bronze rows of `df`, whose bronze columns (`raw_columns`, in
    bronze order; they include _source_file, _line, event_id) become the `raw` JSON. `anchor` (default: the
    row's event_time) places the row in a run's horizon (jobs/horizon.py)."""
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
        (F.col("event_time") if anchor is None else anchor).cast("timestamp").alias("anchor_at"),
    )


def other_events(rows: DataFrame, decided: DataFrame) -> DataFrame:
    """`rows` (with event_id) but those of the events `decided` (its event_id) holds: the quarantine rows a run keeps
    beside the ones it decides again (the decided events are the small, built side)."""
    from pyspark.sql import functions as F

    from jobs.engine_workarounds import without

    ids = decided.select(F.col("event_id").alias("_d_eid")).distinct()
    return without(rows, ids, F.col("event_id") == F.col("_d_eid"), ["_d_eid"])


def write_quarantine(df: DataFrame, settings: Settings, stage: str, horizon: Horizon | None = None,
                     also_at: Sequence[datetime] = ()) -> int:
    """Replace this stage's quarantine rows anchored in the run's horizon (all of them without one), and those
    anchored at the instants `also_at` (`df` holds every row of the stage it keeps there); other stages, ingest's
    included, are untouched."""
    from jobs.spark_io import ts_literal

    if "'" in stage:  # stages are internal constants; keep the predicate well-formed
        raise ValueError(f"bad stage {stage!r}")
    where = f"stage = '{stage}'"
    slice_ = horizon.where("anchor_at") if horizon is not None else None
    if slice_ is not None and also_at:
        slice_ = f"({slice_} OR anchor_at IN ({', '.join(ts_literal(t) for t in also_at)}))"
    if slice_ is not None:
        where = f"{where} AND {slice_}"
    with _ONE_WRITER:  # jobs in parallel lanes (jobs.silver) replace their stages in turn: one commit at a time
        return spark_io.write_table(df, settings, "ops", "quarantine", replace_where=where)

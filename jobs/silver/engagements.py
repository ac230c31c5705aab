"""silver.engagements: engagement actions deduplicated by event_id; story actions carry their story_id."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from jobs import spark_io
from jobs.silver.bronze import project, read_bronze
from jobs.silver.dedupe import dedupe_event_id
from jobs.spark_io import Materialize
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def transform(events: DataFrame, segments: DataFrame, materialize: Materialize = spark_io.lazily) -> DataFrame:
    """Bronze engagement (cut at as_of) + silver.segments -> engagements (story_id null when the segment is
    unset or not known)."""
    from pyspark.sql import functions as F

    ev = dedupe_event_id(events, materialize)
    seg = segments.select(F.col("segment_id").alias("_sid"), "story_id")
    out = ev.join(seg, F.col("segment_id") == F.col("_sid"), "left").withColumn("at", F.col("event_time"))
    return project(out, "silver.engagements")


def run(spark: SparkSession, settings: Settings, as_of: datetime) -> dict[str, int]:
    with spark_io.scratch(settings) as materialize:
        out = transform(
            read_bronze(spark, settings, "engagement", as_of),
            spark_io.read_table(spark, settings, "silver", "segments"),
            materialize,
        )
        return {"engagements": spark_io.write_table(out, settings, "silver", "engagements")}

"""silver.segment_viewers: one row per (segment, viewer) with a counted view (feeds Seen By; rows == reach)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from jobs import spark_io
from jobs.settings import Settings
from jobs.silver import common as c

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def transform(view_events: DataFrame, segments: DataFrame) -> DataFrame:
    """silver.view_events + silver.segments -> silver.segment_viewers.

    first_view_source is the source of the earliest view (ties by event_id); segment_created_at comes from
    segments (every view_events row has a known segment by construction).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    first = Window.partitionBy("segment_id", "viewer_id").orderBy("viewed_at", "event_id")
    firsts = (
        view_events.withColumn("_rk", F.row_number().over(first))
        .filter("_rk = 1")
        .select(F.col("segment_id").alias("_fs"), F.col("viewer_id").alias("_fv"), F.col("view_source"))
    )
    agg = view_events.groupBy("segment_id", "viewer_id").agg(
        F.first("author_id").alias("author_id"),
        F.first("story_id").alias("story_id"),
        F.min("viewed_at").alias("first_viewed_at"),
        F.max("viewed_at").alias("last_viewed_at"),
        F.count(F.lit(1)).alias("view_count"),
        F.max("completion_pct").alias("max_completion_pct"),
        F.sum("view_duration_ms").alias("total_view_ms"),
    )
    seg = segments.select(F.col("segment_id").alias("_sid"), F.col("created_at").alias("segment_created_at"))
    out = (
        agg.join(firsts, (F.col("segment_id") == F.col("_fs")) & (F.col("viewer_id") == F.col("_fv")), "inner")
        .withColumnRenamed("view_source", "first_view_source")
        .join(seg, F.col("segment_id") == F.col("_sid"), "inner")
    )
    return c.project(out, "silver.segment_viewers")


def run(spark: SparkSession, settings: Settings, as_of: datetime) -> dict[str, int]:
    del as_of  # derived entirely from silver.view_events, which is already cut at as_of
    out = transform(
        spark_io.read_table(spark, settings, "silver", "view_events"),
        spark_io.read_table(spark, settings, "silver", "segments"),
    )
    return {"segment_viewers": spark_io.write_table(out, settings, "silver", "segment_viewers")}

"""silver.segment_viewers: one row per (segment, viewer) with a counted view (feeds Seen By; rows == reach)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs import spark_io
from jobs.engine_workarounds import lookup
from jobs.horizon import Horizon, segments_for
from jobs.silver.bronze import project
from jobs.silver.dedupe import split_repeated
from jobs.spark_io import Materialize
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Added to unix micros so every instant before year 9000 is a non-negative number of at most 19 digits.
_MICROS_SHIFT = 9_000_000_000_000_000_000


def transform(view_events: DataFrame, segments: DataFrame, materialize: Materialize = spark_io.lazily) -> DataFrame:
    """silver.view_events + silver.segments -> silver.segment_viewers.

    first_view_source is the source of the earliest view (ties by event_id); author_id, story_id and
    segment_created_at come from segments (every view_events row has a known segment by construction).
    Most viewers see a segment once: those rows become their (segment, viewer) row as they are, only the
    rewatched pairs are aggregated (split_repeated; `materialize` keeps the set of repeated pairs).
    """
    from pyspark.sql import functions as F

    once, rewatched = split_repeated(view_events, [["segment_id", "viewer_id"]], materialize)
    single = once.select(
        "segment_id",
        "viewer_id",
        F.col("viewed_at").alias("first_viewed_at"),
        F.col("viewed_at").alias("last_viewed_at"),
        F.lit(1).cast("bigint").alias("view_count"),
        F.col("completion_pct").alias("max_completion_pct"),
        F.col("view_duration_ms").cast("bigint").alias("total_view_ms"),
        F.col("view_source").alias("first_view_source"),
    )
    # The earliest view's source (ties by event_id) in the same hash aggregate as the other columns (no
    # window, no self-join): min over the text "<viewed_at micros, shifted non-negative and zero-padded so
    # text order is time order>|<event_id>|<view_source>", whose last field is that view's source
    # (view_source is a required enum without '|'). Sail's min over a struct needed > 20 GB at
    # 10M views.
    micros = F.lpad((F.unix_micros("viewed_at") + F.lit(_MICROS_SHIFT)).cast("string"), 19, "0")
    first_key = F.concat(micros, F.lit("|"), F.col("event_id"), F.lit("|"), F.col("view_source"))
    several = (
        rewatched.groupBy("segment_id", "viewer_id")
        .agg(
            F.min("viewed_at").alias("first_viewed_at"),
            F.max("viewed_at").alias("last_viewed_at"),
            F.count(F.lit(1)).alias("view_count"),
            F.max("completion_pct").alias("max_completion_pct"),
            F.sum("view_duration_ms").cast("bigint").alias("total_view_ms"),
            F.min(first_key).alias("_first"),
        )
        .withColumn("first_view_source", F.substring_index("_first", "|", -1))
        .drop("_first")
    )
    # author and story come from the segment (not first() in the aggregate: Sail's first is 5x slower)
    seg = segments.select(
        F.col("segment_id").alias("_sid"), "author_id", "story_id", F.col("created_at").alias("segment_created_at")
    )
    out = lookup(single.unionByName(several), seg, F.col("segment_id") == F.col("_sid"), "inner")
    return project(out, "silver.segment_viewers")


def run(spark: SparkSession, settings: Settings, horizon: Horizon) -> dict[str, int]:
    """The (segment, viewer) rows of segments created in the horizon, from their silver.view_events (already
    cut at as_of)."""
    views = spark_io.read_table(spark, settings, "silver", "view_events").filter(horizon.admits("segment_created_at"))
    with spark_io.scratch(settings) as materialize:
        out = transform(
            views,
            segments_for(spark, settings, horizon, views),
            materialize,
        )
        return {"segment_viewers": spark_io.write_table(
            out, settings, "silver", "segment_viewers", replace_where=horizon.where("segment_created_at")
        )}

"""silver.engagements: engagement actions deduplicated by event_id; a story action carries its story_id when it
happened within its segment's lifetime (DESIGN §5: only then does it count for the segment and story).

Rows are anchored at their own time `at` (an action has no retries: its copies share its event_id and time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs import spark_io
from jobs.engine_workarounds import lookup
from jobs.horizon import Admit, Horizon, read_bronze, segments_for
from jobs.silver.bronze import project
from jobs.silver.dedupe import dedupe_event_id
from jobs.spark_io import Materialize
from storylake.rules import lifetimes
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def transform(
    events: DataFrame, segments: DataFrame, materialize: Materialize = spark_io.lazily, admit: Admit | None = None
) -> DataFrame:
    """Bronze engagement + silver.segments -> engagements (story_id null when the segment is unset, not known or
    not live at the action). `admit(time column)`: the rows a run recomputes (default all)."""
    from pyspark.sql import functions as F

    ev = events if admit is None else events.filter(admit("event_time"))
    seg = segments.select(F.col("segment_id").alias("_sid"), F.col("story_id").alias("_story"), "created_at")
    out = lookup(dedupe_event_id(ev, materialize), seg, F.col("segment_id") == F.col("_sid")).withColumn(
        "at", F.col("event_time")
    )
    live = F.coalesce(F.expr(lifetimes.in_lifetime_sql("at", "created_at")), F.lit(False))
    return project(out.withColumn("story_id", F.when(live, F.col("_story"))), "silver.engagements")


def run(spark: SparkSession, settings: Settings, horizon: Horizon) -> dict[str, int]:
    events = read_bronze(spark, settings, "engagement", horizon)
    with spark_io.scratch(settings) as materialize:
        out = transform(
            events,
            segments_for(spark, settings, horizon, events),
            materialize,
            admit=horizon.admits,
        )
        return {
            "engagements": spark_io.write_table(
                out, settings, "silver", "engagements", replace_where=horizon.where("at")
            )
        }

"""silver.navigation: viewer gestures deduplicated by event_id, attached to their segment's author and story.

A gesture on a segment not known (yet) waits (the table is recomputed from bronze every run); 48 h after
its event_time it is quarantined `unknown_segment` (stage silver.navigation).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from jobs import spark_io
from jobs.silver import common as c
from jobs.spark_io import Materialize
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

STAGE = "silver.navigation"


class NavigationOutput(NamedTuple):
    navigation: DataFrame
    quarantine: DataFrame


def transform(
    events: DataFrame, segments: DataFrame, as_of: datetime, materialize: Materialize = spark_io.lazily
) -> NavigationOutput:
    """Bronze navigation (cut at as_of) + silver.segments -> navigation + quarantine (`materialize`: for the
    dedupe's sets of repeated keys)."""
    from pyspark.sql import functions as F

    ev = c.dedupe_event_id(events, materialize)
    seg = segments.select(F.col("segment_id").alias("_sid"), "author_id", "story_id")
    known = c.lookup(ev, seg, F.col("segment_id") == F.col("_sid"), "inner").withColumn("at", F.col("event_time"))
    # Only a gesture older than the grace can be quarantined: the (few) event_ids of old gestures on unknown
    # segments are deduplicated on their own, over all their deliveries (a dedupe is per event_id, so this
    # gives the rows the whole dedupe would), instead of a second pass of the dedupe over every gesture.
    cutoff = c.ts_lit(as_of - c.UNKNOWN_SEGMENT_GRACE)
    seg_ids = segments.select(F.col("segment_id").alias("_sid"))
    old_unknown = (
        c.lookup(events.filter(F.col("event_time") < cutoff), seg_ids, F.col("segment_id") == F.col("_sid"))
        .filter(F.col("_sid").isNull())
        .select(F.col("event_id").alias("_eid"))
        .distinct()
    )
    deliveries = c.lookup(events, old_unknown, F.col("event_id") == F.col("_eid"), "inner").select(*events.columns)
    stale = c.lookup(c.dedupe_event_id(deliveries), seg_ids, F.col("segment_id") == F.col("_sid")).filter(
        F.col("_sid").isNull() & (F.col("event_time") < cutoff)
    )
    quarantine = c.quarantine_rows(
        stale,
        stage=STAGE,
        contract="bronze.navigation",
        rule="unknown_segment",
        field="segment_id",
        reason=F.concat(
            F.lit("navigation.segment_id "), c.txt("segment_id"), F.lit(" is not a known segment 48 h after "),
            F.lit("event_time "), c.iso_col("event_time"),
        ),
        as_of=as_of,
        raw_columns=events.columns,
    )
    return NavigationOutput(c.project(known, "silver.navigation"), quarantine)


def run(spark: SparkSession, settings: Settings, as_of: datetime) -> dict[str, int]:
    with spark_io.scratch(settings) as materialize:
        out = transform(
            c.read_bronze(spark, settings, "navigation", as_of),
            spark_io.read_table(spark, settings, "silver", "segments"),
            as_of,
            materialize,
        )
        return {
            "navigation": spark_io.write_table(out.navigation, settings, "silver", "navigation"),
            "quarantine.navigation": c.write_quarantine(out.quarantine, settings, STAGE),
        }

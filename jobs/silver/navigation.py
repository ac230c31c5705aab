"""silver.navigation: viewer gestures deduplicated by event_id, attached to their segment's author and story.

A gesture on a segment not known (yet) waits (the table is recomputed from bronze every run); 48 h after
its event_time it is quarantined `unknown_segment` (stage silver.navigation).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from jobs import spark_io
from jobs.engine_workarounds import lookup
from jobs.silver.bronze import project, read_bronze, ts_lit
from jobs.silver.dedupe import dedupe_event_id
from jobs.silver.quarantine import iso_col, quarantine_rows, txt, write_quarantine
from jobs.spark_io import Materialize
from storylake.rules import lifetimes
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

WAIT = lifetimes.duration_text(lifetimes.PENDING_VIEW_WAIT)  # in reason texts
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

    ev = dedupe_event_id(events, materialize)
    seg = segments.select(F.col("segment_id").alias("_sid"), "author_id", "story_id")
    known = lookup(ev, seg, F.col("segment_id") == F.col("_sid"), "inner").withColumn("at", F.col("event_time"))
    # Only a gesture older than the grace can be quarantined: the (few) event_ids of old gestures on unknown
    # segments are deduplicated on their own, over all their deliveries (a dedupe is per event_id, so this
    # gives the rows the whole dedupe would), instead of a second pass of the dedupe over every gesture.
    cutoff = ts_lit(as_of - lifetimes.PENDING_VIEW_WAIT)
    seg_ids = segments.select(F.col("segment_id").alias("_sid"))
    old_unknown = (
        lookup(events.filter(F.col("event_time") < cutoff), seg_ids, F.col("segment_id") == F.col("_sid"))
        .filter(F.col("_sid").isNull())
        .select(F.col("event_id").alias("_eid"))
        .distinct()
    )
    deliveries = lookup(events, old_unknown, F.col("event_id") == F.col("_eid"), "inner").select(*events.columns)
    stale = lookup(dedupe_event_id(deliveries), seg_ids, F.col("segment_id") == F.col("_sid")).filter(
        F.col("_sid").isNull() & (F.col("event_time") < cutoff)
    )
    quarantine = quarantine_rows(
        stale,
        stage=STAGE,
        contract="bronze.navigation",
        rule="unknown_segment",
        field="segment_id",
        reason=F.concat(
            F.lit("navigation.segment_id "), txt("segment_id"), F.lit(f" is not a known segment {WAIT} after "),
            F.lit("event_time "), iso_col("event_time"),
        ),
        as_of=as_of,
        raw_columns=events.columns,
    )
    return NavigationOutput(project(known, "silver.navigation"), quarantine)


def run(spark: SparkSession, settings: Settings, as_of: datetime) -> dict[str, int]:
    with spark_io.scratch(settings) as materialize:
        out = transform(
            read_bronze(spark, settings, "navigation", as_of),
            spark_io.read_table(spark, settings, "silver", "segments"),
            as_of,
            materialize,
        )
        return {
            "navigation": spark_io.write_table(out.navigation, settings, "silver", "navigation"),
            "quarantine.navigation": write_quarantine(out.quarantine, settings, STAGE),
        }

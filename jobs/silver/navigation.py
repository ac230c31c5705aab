"""silver.navigation: viewer gestures deduplicated by event_id, attached to their segment's author and story.

A gesture counts only within its segment's lifetime and audience (DESIGN §5): on a segment not known (yet) it is
quarantined `unknown_segment` (re-checked when the late segment_created arrives), outside [created_at, expires_at)
`outside_lifetime`, by a viewer the audience rules deny the segment at that instant (jobs/silver/audience_check.py)
with the denial (`blocked`, `hidden_from_viewer`, ...; stage silver.navigation). Rows are anchored at their own
time `at` (a gesture has no retries: its copies share its event_id and time).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from jobs import spark_io
from jobs.engine_workarounds import lookup
from jobs.horizon import Admit, Horizon, read_bronze, segments_for
from jobs.silver.audience_check import DENIAL, audience_source, denial_reason, with_denial
from jobs.silver.bronze import project
from jobs.silver.dedupe import dedupe_event_id
from jobs.silver.quarantine import iso_col, quarantine_rows, txt, write_quarantine
from jobs.spark_io import Materialize
from storylake.rules import lifetimes
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from jobs.silver.audience_check import AudienceEdges, Relationships
    from jobs.silver.touched import Changes

STAGE = "silver.navigation"


class NavigationOutput(NamedTuple):
    navigation: DataFrame
    quarantine: DataFrame


def transform(
    events: DataFrame,
    segments: DataFrame,
    relationships: Relationships,
    as_of: datetime,
    materialize: Materialize = spark_io.lazily,
    admit: Admit | None = None,
) -> NavigationOutput:
    """Bronze navigation + silver.segments + silver.relationships -> navigation + quarantine (`materialize`: for the
    dedupe's sets of repeated keys; `admit(time column)`: the gestures a run recomputes, default all)."""
    ev = events if admit is None else events.filter(admit("event_time"))
    return decide(dedupe_event_id(ev, materialize), segments, relationships, as_of, events.columns, materialize)


def decide(
    gestures: DataFrame,
    segments: DataFrame,
    relationships: Relationships,
    as_of: datetime,
    raw_columns: list[str],
    materialize: Materialize = spark_io.lazily,
) -> NavigationOutput:
    """transform() of gestures already deduplicated by event_id (`raw_columns`: the bronze columns, for the
    quarantine's raw JSON)."""
    from pyspark.sql import functions as F

    seg = segments.select(F.col("segment_id").alias("_sid"), "author_id", "audience", "created_at",
                          "expires_at")
    joined = materialize(
        with_denial(
            lookup(gestures, seg, F.col("segment_id") == F.col("_sid"))
            .withColumn("at", F.col("event_time")),
            relationships, "viewer_id", "at",
        ),
        "gestures",
    )
    known = F.col("_sid").isNotNull()
    in_life = F.coalesce(F.expr(lifetimes.in_lifetime_sql("at", "created_at")), F.lit(False))
    denied = F.col(DENIAL).isNotNull()
    bad = joined.filter(~in_life | denied)
    at = F.concat(F.lit("navigation.event_time "), iso_col("at"))
    quarantine = quarantine_rows(
        bad,
        stage=STAGE,
        contract="bronze.navigation",
        rule=F.when(~known, F.lit("unknown_segment")).when(~in_life, F.lit("outside_lifetime"))
        .otherwise(F.col(DENIAL)),
        field=F.when(~known, F.lit("segment_id")).when(~in_life, F.lit("event_time"))
        .otherwise(F.lit("viewer_id")),
        reason=F.when(
            ~known,
            F.concat(
                F.lit("navigation.segment_id "), txt("segment_id"), F.lit(" is not a known segment at event_time "),
                iso_col("at"), F.lit(" (re-checked when its segment_created arrives)"),
            ),
        )
        .when(F.col("at") < F.col("created_at"),
              F.concat(at, F.lit(" is before created_at "), iso_col("created_at"), F.lit(" of segment "),
                       txt("segment_id")))
        .when(~in_life,
              F.concat(at, F.lit(" is at/after expires_at "), iso_col("expires_at"), F.lit(" of segment "),
                       txt("segment_id")))
        .otherwise(denial_reason("navigation.viewer_id", "viewer_id", "at")),
        as_of=as_of,
        raw_columns=raw_columns,
    )
    return NavigationOutput(project(joined.filter(in_life & ~denied), "silver.navigation"), quarantine)


def run(spark: SparkSession, settings: Settings, horizon: Horizon, changes: Changes | None = None,
        audience: AudienceEdges | None = None) -> dict[str, int]:
    """Recompute the job's horizon: every gesture in it, or on an incremental run only the touched ones
    (jobs.silver.touched: a gesture is its own group), beside the other rows as the last good run left them
    (`changes`: the run's touched keys, None: the whole horizon; `audience`: the run's shared audience edges,
    default derived here)."""
    from jobs.silver import touched as touch

    events = read_bronze(spark, settings, "navigation", horizon)
    with spark_io.scratch(settings) as materialize:
        gestures, keys = touch.to_decide(spark, settings, horizon, changes, "navigation", "navigation", ["event_id"],
                                      "viewer_id", events.filter(horizon.admits("event_time")), materialize)
        out = decide(
            gestures,
            segments_for(spark, settings, horizon, gestures),
            audience_source(spark, settings, audience),
            horizon.as_of,
            events.columns,
            materialize,
        )
        bad = touch.with_kept_quarantine(spark, settings, keys, horizon, STAGE, gestures, out.quarantine)
        return {
            "navigation": touch.write_rows(spark, settings, "navigation", keys, horizon, "at", out.navigation,
                                           materialize),
            "quarantine.navigation": write_quarantine(bad, settings, STAGE, horizon),
        }

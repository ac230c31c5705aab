"""silver.engagements: engagement actions deduplicated by event_id, with the segment a story action names. Only an
action within its segment's lifetime counts for the segment and its story (DESIGN §5): gold checks that against
silver.segments (jobs.gold.activity.story_engagements_before), so that nothing a later event changes (a late
creation of the segment, a refold of the author's stories) is copied onto the action's row.

A story action within the lifetime passes the same audience check as a view at its own instant
(jobs/silver/audience_check.py): an action on a segment the actor could not see (a blocked user's reply, a share
by a viewer the author hides from) is quarantined with the denial (stage silver.engagements), so it reaches neither
the author's insights nor the ring features. Rows are anchored at their own time `at` (an action has no retries:
its copies share its event_id and time).
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
from jobs.silver.quarantine import quarantine_rows, write_quarantine
from jobs.spark_io import Materialize
from storylake.rules import lifetimes
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from jobs.silver.audience_check import AudienceEdges, Relationships
    from jobs.silver.touched import Changes

STAGE = "silver.engagements"


class EngagementOutput(NamedTuple):
    engagements: DataFrame
    quarantine: DataFrame


def transform(
    events: DataFrame,
    segments: DataFrame,
    relationships: Relationships,
    as_of: datetime,
    materialize: Materialize = spark_io.lazily,
    admit: Admit | None = None,
) -> EngagementOutput:
    """Bronze engagement + silver.segments + silver.relationships -> engagements (an action on a segment not known or
    not live at it is kept unchecked: it counts for no segment) + quarantine (story actions the audience rules
    deny). `admit(time column)`: the rows a run recomputes (default all)."""
    ev = events if admit is None else events.filter(admit("event_time"))
    return decide(dedupe_event_id(ev, materialize), segments, relationships, as_of, events.columns, materialize)


def decide(
    actions: DataFrame,
    segments: DataFrame,
    relationships: Relationships,
    as_of: datetime,
    raw_columns: list[str],
    materialize: Materialize = spark_io.lazily,
) -> EngagementOutput:
    """transform() of actions already deduplicated by event_id (`raw_columns`: the bronze columns, for the
    quarantine's raw JSON)."""
    from pyspark.sql import functions as F

    seg = segments.select(F.col("segment_id").alias("_sid"), "author_id", "audience", "created_at")
    out = lookup(actions, seg, F.col("segment_id") == F.col("_sid")).withColumn(
        "at", F.col("event_time")
    )
    live = F.coalesce(F.expr(lifetimes.in_lifetime_sql("at", "created_at")), F.lit(False))
    # only story actions within the lifetime are checked: the others attach to no segment
    story = materialize(with_denial(out.filter(live), relationships, "actor_id", "at"), "story_actions")
    denied = F.col(DENIAL).isNotNull()
    kept = story.filter(~denied).drop(DENIAL).unionByName(out.filter(~live))
    quarantine = quarantine_rows(
        story.filter(denied), stage=STAGE, contract="bronze.engagement", rule=F.col(DENIAL), field="actor_id",
        reason=denial_reason("engagement.actor_id", "actor_id", "at"), as_of=as_of, raw_columns=raw_columns,
        anchor=F.col("at"),
    )
    return EngagementOutput(project(kept, "silver.engagements"), quarantine)


def run(spark: SparkSession, settings: Settings, horizon: Horizon, changes: Changes | None = None,
        audience: AudienceEdges | None = None) -> dict[str, int]:
    """Recompute the job's horizon: every action in it, or on an incremental run only the touched ones
    (jobs.silver.touched: an action is its own group), beside the other rows as the last good run left them
    (jobs.silver.touched.write_rows: appended when only new actions differ; `changes`: the run's touched keys,
    None: the whole horizon; `audience`: the run's shared audience edges, default derived here)."""
    from jobs.silver import touched as touch

    events = read_bronze(spark, settings, "engagement", horizon)
    with spark_io.scratch(settings) as materialize:
        actions, keys = touch.to_decide(spark, settings, horizon, changes, "engagement", "engagements", ["event_id"],
                                      "actor_id", events.filter(horizon.admits("event_time")), materialize)
        out = decide(
            actions,
            segments_for(spark, settings, horizon, actions),
            audience_source(spark, settings, audience),
            horizon.as_of,
            events.columns,
            materialize,
        )
        bad = touch.with_kept_quarantine(spark, settings, keys, horizon, STAGE, actions, out.quarantine)
        # the new actions appended when no re-decided row changed, else the slice rewritten (write_rows): an hour's
        # ~40k actions instead of the ~550k of a slice at 10M views a day
        return {
            "engagements": touch.write_rows(spark, settings, "engagements", keys, horizon, "at", out.engagements,
                                            materialize),
            "quarantine.engagements": write_quarantine(bad, settings, STAGE, horizon),
        }

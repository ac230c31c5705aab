"""gold.author_hourly_insights: per author and UTC hour, the additive counts and the viewers first seen that day.

The creator dashboards compare "today so far" with the same hours of yesterday from these rows: the additive
counts add up over hours, and a day's reach until an instant is the sum of new_viewers over its hours before it
(each viewer counts once a day, in the hour of their first view of the author's segments that day).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import spark_io
from jobs.gold import activity
from jobs.gold.output import write_gold
from jobs.horizon import Horizon
from storylake.rules.lifetimes import SEGMENT_LIFETIME
from storylake.settings import Settings

NAME = "author_hourly_insights"
KEYS = ["author_id", "hour"]


def _hour(column: str) -> F.Column:
    return F.date_trunc("hour", F.col(column))


def author_hourly_insights(
    segments: DataFrame, view_events: DataFrame, navigation: DataFrame, engagements: DataFrame, as_of: datetime,
) -> DataFrame:
    """One row per (author, UTC hour) with a counted view, an exit or a story engagement before as_of."""
    segs = activity.known_segments(segments, as_of)
    views = activity.views_before(view_events, segs, as_of)
    firsts = views.groupBy("author_id", "day", "viewer_id").agg(F.min("viewed_at").alias("_first"))
    new_viewers = firsts.groupBy("author_id", _hour("_first").alias("hour")).agg(
        F.count(F.lit(1)).alias("new_viewers"))
    impressions = views.groupBy("author_id", _hour("viewed_at").alias("hour")).agg(
        F.count(F.lit(1)).alias("impressions"))
    exits = activity.navigation_counts(
        activity.navigation_before(navigation, segs, as_of).withColumn("hour", _hour("at")), KEYS
    ).select(*KEYS, "exits")
    engaged = activity.engagement_counts(
        activity.story_engagements_before(engagements, segs, as_of).withColumn("hour", _hour("at")), KEYS)
    # the hours with any of the counts, each count 0 when none (one aggregate over the four frames' union)
    frames = [(new_viewers, ["new_viewers"]), (impressions, ["impressions"]), (exits, ["exits"]),
              (engaged, list(activity.ENGAGEMENT_COUNTS))]
    out = activity.combined_counts(KEYS, frames)
    return out.withColumns({"day": F.to_date("hour"), "as_of": activity.instant(as_of)})


def run(spark: SparkSession, settings: Settings, horizon: Horizon, authors: DataFrame | None = None
        ) -> dict[str, int]:
    """The hours of the days from the run's first day on (Horizon.first_day: every view, gesture or engagement a run
    changes happens at or after its event horizon; new_viewers needs the whole day's first views), from their silver
    rows; with `authors` (jobs.gold.touched) only the touched authors' hours are recomputed and the other authors'
    are kept as the last good run left them."""
    from jobs.gold import touched as touch

    silver = {name: spark_io.read_table(spark, settings, "silver", name)
              for name in ("segments", "view_events", "navigation", "engagements")}
    if horizon.lo is None:
        return write_gold(author_hourly_insights(**silver, as_of=horizon.as_of), settings, NAME)
    first_day = horizon.first_day
    assert first_day is not None
    if touch.unchanged(settings, NAME, authors):
        return {}
    # without kept rows (mine None) every author's hours are recomputed
    kept, mine = touch.keep(spark, settings, NAME, F.col("day") >= F.lit(first_day), authors, "author_id")
    since = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    start = F.lit(since).cast("timestamp")
    # an interaction from that day on is with a segment created at most one lifetime before (the filter prunes)
    created_since = F.lit(since - SEGMENT_LIFETIME).cast("timestamp")
    df = author_hourly_insights(
        touch.of_keys(silver["segments"].filter(F.col("created_at") >= created_since), mine, "author_id"),
        touch.of_keys(activity.views_since(silver["view_events"], since), mine, "author_id"),
        touch.of_keys(silver["navigation"].filter(F.col("at") >= start), mine, "author_id"),
        silver["engagements"].filter(F.col("at") >= start),  # attributed through the (touched authors') segments
        horizon.as_of,
    )
    return write_gold(touch.with_kept(df, kept), settings, NAME, f"day >= DATE '{first_day.isoformat()}'")

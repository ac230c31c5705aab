"""gold.author_daily_insights: per author and UTC day of the activity, with exact trailing 7/28-day reach."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import spark_io
from jobs.engine_workarounds import lookup
from jobs.gold import activity
from jobs.gold.output import write_gold
from jobs.horizon import Horizon
from storylake.rules.lifetimes import SEGMENT_LIFETIME
from storylake.settings import Settings

NAME = "author_daily_insights"
KEYS = ["author_id", "day"]
TRAILING_DAYS = {"reach_7d": 7, "reach_28d": 28}


def trailing_reach(viewer_days: DataFrame, as_of: datetime, since_day: date | None = None) -> DataFrame:
    """reach_7d / reach_28d per (author_id, day): exact distinct viewers over the N days ending that day.

    `viewer_days` has one row per distinct (author_id, viewer_id, day) with a view (activity.per_viewer rows).
    Each is fanned out to the (up to 28) days whose trailing window contains it, never past as_of's day (no
    activity day of the table lies after it), then viewers are counted distinct per window: an equi-join-free
    formulation that distributes well. `since_day`: only the windows of that day and later (a row of `viewer_days`
    must then be at most 27 days before it).
    """
    longest = max(TRAILING_DAYS.values())
    last_day = F.to_date(activity.instant(as_of))
    span = F.least(F.lit(longest - 1), F.datediff(last_day, F.col("day")))
    first = F.lit(0) if since_day is None else F.greatest(F.lit(0), F.datediff(F.lit(since_day), F.col("day")))
    fanned = (
        viewer_days.select("author_id", "viewer_id", "day")
        .withColumn("_lag", F.explode(F.sequence(first, span)))
        .withColumn("day", F.date_add(F.col("day"), F.col("_lag")))
    )
    # per (author, day, viewer) the nearest view day, then per (author, day): two hash aggregates, exact, and
    # faster on Sail than count(DISTINCT) per window length
    nearest = fanned.groupBy(*KEYS, "viewer_id").agg(F.min("_lag").alias("_lag"))
    return nearest.groupBy(*KEYS).agg(
        *[F.count(F.when(F.col("_lag") < n, F.col("viewer_id"))).alias(name) for name, n in TRAILING_DAYS.items()]
    )


def author_daily_insights(
    segments: DataFrame,
    view_events: DataFrame,
    navigation: DataFrame,
    engagements: DataFrame,
    as_of: datetime,
    materialize: spark_io.Materialize = spark_io.lazily,
    since_day: date | None = None,
) -> DataFrame:
    """One row per (author, UTC day) with any activity before as_of: a segment posted, a counted view of the
    author's segments, a gesture on them or a story engagement with them (`since_day`: only the days from it on;
    the views of the 27 days before feed their trailing reach).

    The attributed facts are aggregated once per (author, day): views per viewer (which give the view counts,
    the trailing reach and the days with views), gestures and engagements to their counts; `materialize` keeps
    these aggregates, each read by the day list and by the counts."""
    segs = activity.known_segments(segments, as_of)
    window_viewers = materialize(
        activity.per_viewer(activity.views_before(view_events, segs, as_of), KEYS), "viewers"
    )
    viewers = window_viewers if since_day is None else window_viewers.filter(F.col("day") >= F.lit(since_day))
    nav = materialize(activity.navigation_counts(activity.navigation_before(navigation, segs, as_of), KEYS), "nav")
    eng = materialize(
        activity.engagement_counts(activity.story_engagements_before(engagements, segs, as_of), KEYS), "engagements"
    )
    posted = segs.groupBy("author_id", F.to_date("created_at").alias("day")).agg(
        F.count(F.lit(1)).alias("segments_posted")
    )
    days = (
        posted.select(*KEYS)
        .unionByName(viewers.select(*KEYS))
        .unionByName(nav.select(*KEYS))
        .unionByName(eng.select(*KEYS))
        .distinct()
    )
    out = activity.with_counts(days, KEYS, [activity.viewer_rollup(viewers, KEYS), nav, eng])
    out = lookup(lookup(out, posted, KEYS), trailing_reach(window_viewers, as_of, since_day), KEYS)
    out = activity.zero_filled(out, ["segments_posted", *TRAILING_DAYS])
    return out.withColumn("as_of", activity.instant(as_of))


def run(spark: SparkSession, settings: Settings, horizon: Horizon) -> dict[str, int]:
    """gold.author_daily_insights of the days from the silver horizon's day on: every silver row a run changes is
    at or after the horizon. They read the views of the 28 days before (trailing reach) and the rest from that
    day."""
    silver = {
        name: spark_io.read_table(spark, settings, "silver", name)
        for name in ("segments", "view_events", "navigation", "engagements")
    }
    if horizon.lo is None:
        with spark_io.scratch(settings) as materialize:
            return write_gold(author_daily_insights(**silver, as_of=horizon.as_of, materialize=materialize),
                              settings, NAME)
    first_day = horizon.lo.date()
    since = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    window = since - timedelta(days=max(TRAILING_DAYS.values())) - SEGMENT_LIFETIME
    start = F.lit(since).cast("timestamp")
    silver = {
        # a story engagement from that day on is on a segment live then (created at most 24 h before)
        "segments": silver["segments"].filter(F.col("created_at") >= F.lit(since - SEGMENT_LIFETIME).cast("timestamp")),
        "view_events": silver["view_events"].filter(
            F.col("segment_created_at") >= F.lit(window).cast("timestamp")
        ),
        "navigation": silver["navigation"].filter(F.col("at") >= start),
        "engagements": silver["engagements"].filter(F.col("at") >= start),
    }
    with spark_io.scratch(settings) as materialize:
        df = author_daily_insights(**silver, as_of=horizon.as_of, materialize=materialize, since_day=first_day)
        return write_gold(df.filter(F.col("day") >= F.lit(first_day)), settings, NAME,
                          f"day >= DATE '{first_day.isoformat()}'")

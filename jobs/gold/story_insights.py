"""gold.story_insights: creator insights per author story; reach is exact distinct viewers, never a sum."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import spark_io
from jobs.gold import activity
from jobs.gold.output import write_gold
from jobs.gold.segment_insights import horizon_inputs
from jobs.horizon import Horizon
from storylake.settings import Settings

NAME = "story_insights"
# The columns of silver.segments it reads (stories(), the attribution of every input to its story)
SEGMENT_COLUMNS = ("segment_id", "story_id", "author_id", "created_at", "expires_at", "story_start")


def stories(segments: DataFrame, as_of: datetime) -> DataFrame:
    """One row per story with a segment created before as_of: story_id, author_id, story_start, story_end
    (last segment's expires_at), segment_count."""
    return (
        activity.known_segments(segments, as_of)
        .groupBy("story_id")
        .agg(
            F.min("author_id").alias("author_id"),
            F.min("story_start").alias("story_start"),
            F.max("expires_at").alias("story_end"),
            F.count(F.lit(1)).alias("segment_count"),
        )
    )


def story_insights(
    segments: DataFrame,
    view_events: DataFrame,
    navigation: DataFrame,
    engagements: DataFrame,
    sticker_responses: DataFrame,
    as_of: datetime,
    materialize: spark_io.Materialize = spark_io.lazily,
    story_on_rows: bool = False,
) -> DataFrame:
    """Per story: additive counts summed over its segments; reach / completed_viewers counted distinct over the
    story's views (a viewer of several frames counts once). The known segments' few columns it reads are
    materialized once: every input is joined to them (views and gestures for their story, which silver keeps on
    the segment row only), but views and gestures that already carry their segment's story_id (`story_on_rows`:
    jobs.gold.touched.restrict gave it to them)."""
    segs = materialize(activity.known_segments(segments, as_of).select(*SEGMENT_COLUMNS), "segments")
    if story_on_rows:
        views = activity.views_before(view_events, segs, as_of, ["story_id"])
        nav = activity.navigation_before(navigation, segs, as_of, ["story_id"])
    else:
        views = activity.with_story(activity.views_before(view_events, segs, as_of), segs)
        nav = activity.with_story(activity.navigation_before(navigation, segs, as_of), segs)
    metrics = activity.additive_counts(
        stories(segs, as_of),
        ["story_id"],
        viewers=activity.per_viewer(views, ["story_id"]),
        nav=nav,
        eng=activity.story_engagements_before(engagements, segs, as_of),
        stickers=activity.sticker_responses_before(sticker_responses, segs, as_of),
    )
    return activity.with_rates(metrics).withColumn("as_of", activity.instant(as_of))


def run(spark: SparkSession, settings: Settings, horizon: Horizon, touched: DataFrame | None = None) -> dict[str, int]:
    """gold.story_insights of the stories that start in the gold horizon; with `touched` (jobs.gold.touched) only
    those are recomputed and the horizon's other rows are kept as the last good run left them."""
    from jobs.gold import touched as touch

    if touch.unchanged(settings, NAME, touched):
        return {}
    inputs, kept = touch.scope(spark, settings, NAME, horizon, touched, horizon_inputs(spark, settings, horizon),
                               with_story=("view_events", "navigation"))
    with spark_io.scratch(settings) as materialize:
        df = story_insights(**inputs, as_of=horizon.as_of, materialize=materialize, story_on_rows=kept is not None)
        return write_gold(touch.with_kept(df, kept), settings, NAME, horizon.where("story_start", gold=True))

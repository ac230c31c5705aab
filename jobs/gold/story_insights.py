"""gold.story_insights: creator insights per author story; reach is exact distinct viewers, never a sum. Written by
the job of jobs/gold/segment_insights.py, from the activity it reads for the segments' insights."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs import spark_io
from jobs.gold import activity

NAME = "story_insights"
# the columns of a segment its story's rows read (the segment job's activity carries more: SEGMENT_COLUMNS of
# jobs/gold/segment_insights.py)
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
) -> DataFrame:
    """Per story with a segment created before as_of, from silver rows strictly before as_of (from_activity)."""
    return from_activity(activity.story_activity(segments, view_events, navigation, engagements, sticker_responses,
                                                 as_of, SEGMENT_COLUMNS, materialize), as_of)


# the counts a story adds up over its segments (every additive count but the views', which are counted per viewer)
SUMMED = (*activity.NAVIGATION_COUNTS, *activity.ENGAGEMENT_COUNTS, "sticker_interactions")


def from_activity(acts: activity.StoryActivity, as_of: datetime) -> DataFrame:
    """The stories' insights from their segments' activity (activity.story_activity; the job of
    jobs/gold/segment_insights.py writes both tables from one): the gestures, engagements and sticker interactions
    summed over the story's segments; impressions, view time, reach and completed_viewers from its viewers' rows
    (per story and viewer first, so that a viewer of several frames counts once: reach is exact distinct viewers).
    The same facts as the segments' insights, so the two tables always add up to each other."""
    viewers = acts.viewers.groupBy("story_id", "viewer_id").agg(
        F.sum("_views").alias("_views"), F.sum("_view_ms").alias("_view_ms"), F.max("_completed").alias("_completed"))
    summed = acts.counts.groupBy("story_id").agg(*[F.sum(c).cast("bigint").alias(c) for c in SUMMED])
    metrics = activity.with_counts(stories(acts.segments, as_of), ["story_id"],
                                   [activity.viewer_rollup(viewers, ["story_id"]), summed])
    return finished(metrics, as_of)


def finished(counts: DataFrame, as_of: datetime) -> DataFrame:
    """The stories' insights from their counts (one row per story: its columns and every count): the rates and the
    run's as_of."""
    return activity.with_rates(counts).withColumn("as_of", activity.instant(as_of))

"""gold.segment_insights: creator insights per segment (every known segment, zeros when it has no activity); its job
also writes gold.story_insights, from the same activity (jobs/gold/story_insights.py)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import spark_io
from jobs.engine_workarounds import lookup
from jobs.gold import activity, story_insights
from jobs.gold.output import write_gold
from jobs.horizon import Horizon
from storylake import latest_rows, merge_on_read
from storylake.settings import Settings

if TYPE_CHECKING:
    from jobs.gold.touched import Kept

log = logging.getLogger(__name__)

NAME = "segment_insights"
SEGMENT_COLUMNS = activity.INSIGHT_SEGMENT_COLUMNS


def segment_insights(
    segments: DataFrame,
    view_events: DataFrame,
    navigation: DataFrame,
    engagements: DataFrame,
    sticker_responses: DataFrame,
    as_of: datetime,
    materialize: spark_io.Materialize = spark_io.lazily,
) -> DataFrame:
    """One row per segment created before as_of, from silver rows strictly before as_of."""
    acts = activity.story_activity(segments, view_events, navigation, engagements, sticker_responses, as_of,
                                   SEGMENT_COLUMNS, materialize)
    return from_activity(acts, navigation, as_of)


def from_activity(acts: activity.StoryActivity, navigation: DataFrame, as_of: datetime) -> DataFrame:
    """The segments' insights from their activity (activity.story_activity): its counts with their rates, the
    retention, the continuation and the exits (`navigation`: silver rows holding the segments' exit gestures)."""
    viewers = acts.viewers.drop("story_id")
    continued = continuation(acts.segments, viewers)
    exited = exit_viewers(viewers, navigation, as_of)
    out = lookup(lookup(acts.counts, continued, "segment_id"), exited, "segment_id")
    return finished(activity.zero_filled(out, ["continuation_viewers", "continued_viewers", "exit_viewers"]), as_of)


def finished(counts: DataFrame, as_of: datetime) -> DataFrame:
    """The segments' insights from their counts (one row per segment: its columns and every count, the continuation
    and exit viewers too): the rates, the retention and the run's as_of."""
    return with_retention(activity.with_rates(counts)).withColumns({
        "continuation_rate": activity.ratio("continued_viewers", "continuation_viewers"),
        "as_of": activity.instant(as_of),
    })


def continuation(segments: DataFrame, viewers: DataFrame) -> DataFrame:
    """Per frame with a next frame (DESIGN §5): continuation_viewers = the viewers whose first view
    of the frame came while the next frame was live, continued_viewers = those of them who viewed the next frame.

    The chain links a story's non-deleted frames of one audience in frame order, so a close-friends frame is only
    compared with close-friends frames. `viewers`: activity.per_viewer(..., ["segment_id"], first=True) rows of the
    counted views (the author's own already left out)."""
    first = viewers.select("segment_id", "viewer_id", "_first")
    could = lookup(first, activity.chain(segments), "segment_id", "inner").filter(
        activity.could_continue(F.col("_first")))
    went_on = first.select(F.col("segment_id").alias("next_segment_id"), "viewer_id", F.lit(1).alias("_went"))
    counted = could.join(went_on, ["next_segment_id", "viewer_id"], "left").groupBy("segment_id").agg(
        F.count(F.lit(1)).alias("continuation_viewers"), F.count("_went").alias("continued_viewers")
    )
    return counted


def exit_viewers(viewers: DataFrame, navigation: DataFrame, as_of: datetime) -> DataFrame:
    """Per segment: exit_viewers = its viewers (`viewers`: one row per segment and viewer with a counted view,
    activity.per_viewer rows) with an exit gesture (DESIGN §5: tap_exit or swipe_down) on it before as_of. Counting
    viewers, not gestures, keeps exit rate = exit_viewers / reach within [0, 1]."""
    exits = (
        navigation.filter(F.col("action").isin(list(activity.NAVIGATION_COUNTS["exits"]))
                          & (F.col("at") < activity.instant(as_of)))
        .select("segment_id", "viewer_id").distinct()
    )
    return exits.join(viewers.select("segment_id", "viewer_id"), ["segment_id", "viewer_id"]).groupBy("segment_id").agg(
        F.count(F.lit(1)).alias("exit_viewers")
    )


def with_retention(metrics: DataFrame) -> DataFrame:
    """retention_from_first = reach / reach of frame 1 of the same story (null when that is 0 or there is no frame
    1). The ratio to the previous frame is not kept: above 1 whenever frames are posted hours apart, the per-frame
    curve uses continuation (DESIGN §5)."""
    first = metrics.filter(F.col("frame_index") == 1).select("story_id", F.col("reach").alias("_first_reach"))
    return (
        lookup(metrics, first, "story_id")  # one row per story
        .withColumn("retention_from_first", activity.ratio("reach", "_first_reach"))
        .drop("_first_reach")
    )


def run(spark: SparkSession, settings: Settings, horizon: Horizon, touched: DataFrame | None = None) -> dict[str, int]:
    """gold.segment_insights and gold.story_insights of the stories that start in the gold horizon (retention needs
    the story's first frame), from their silver rows read once (activity.story_activity); with `touched`
    (jobs.gold.touched) only those stories are recomputed, or updated from their last good rows by the rows the run
    added (from_added): the rows that changed are appended (both tables are stored as restated rows,
    storylake.latest_rows) when append_restated can, else the horizon's slice is rewritten with the other rows as
    the last good run left them."""
    from jobs.gold import touched as touch

    names = (NAME, story_insights.NAME)
    if all(touch.unchanged(settings, name, touched) for name in names):
        return {}
    whole = horizon_inputs(spark, settings, horizon)
    inputs, kept = touch.scope(spark, settings, NAME, horizon, touched, whole, with_story=("view_events",))
    story_kept = None
    if kept is not None:
        story_kept, _ = touch.keep(spark, settings, story_insights.NAME, horizon.admits("story_start", gold=True),
                                   touched, "story_id", touch.story_rows_around(settings, horizon))
        if story_kept is None:  # no last good story_insights to keep rows from: both recompute the whole horizon
            inputs, kept = whole, None
    where = horizon.where("story_start", gold=True)
    with spark_io.scratch(settings) as materialize:
        updated = None
        if kept is not None and story_kept is not None and touched is not None:
            updated = from_added(spark, settings, horizon, touched, whole, kept, story_kept, materialize)
        if updated is not None:
            inputs, kept, story_kept = updated.inputs, updated.kept, updated.story_kept
        acts = activity.story_activity(**inputs, as_of=horizon.as_of, columns=SEGMENT_COLUMNS,
                                       materialize=materialize, story_on_rows=kept is not None)
        segments = from_activity(acts, inputs["navigation"], horizon.as_of)
        stories = story_insights.from_activity(acts, horizon.as_of)
        if updated is not None:
            segments = segments.unionByName(finished(updated.segments, horizon.as_of))
            stories = stories.unionByName(story_insights.finished(updated.stories, horizon.as_of))
        if kept is not None and story_kept is not None:
            appended = append_restated(settings, horizon, {NAME: (segments, kept), story_insights.NAME:
                                                           (stories, story_kept)})
            if appended is not None:
                return appended
        # a rewritten slice holds one row per key: it restates and removes nothing
        plain = [F.lit(False).alias(c) for c in latest_rows.SEGMENT_INSIGHTS.storage_columns]
        rows = write_gold(touch.with_kept(segments, kept).select("*", *plain), settings, NAME, where)
        plain = [F.lit(False).alias(c) for c in latest_rows.STORY_INSIGHTS.storage_columns]
        return rows | write_gold(touch.with_kept(stories, story_kept).select("*", *plain), settings,
                                 story_insights.NAME, where)


class Updated(NamedTuple):
    """The touched stories' insights split between the two ways (from_added)."""

    inputs: dict[str, DataFrame]  # the silver inputs of the stories recomputed from all their rows
    segments: DataFrame  # the other touched stories' segment counts (insight_deltas.updated)
    stories: DataFrame  # their story counts
    kept: Kept  # the segment insights' kept rows, their previous rows materialized (read three times)
    story_kept: Kept  # the story insights'


def from_added(spark: SparkSession, settings: Settings, horizon: Horizon, touched: DataFrame,
               whole: dict[str, DataFrame], kept: Kept, story_kept: Kept, materialize: spark_io.Materialize
               ) -> Updated | None:
    """The touched stories (`touched`: a Touched frame) split (jobs/gold/insight_deltas.py): the inputs of those to
    recompute from all their silver rows (`whole`: horizon_inputs), and the counts of the others, updated from
    their last good rows (Kept.previous of both tables) by the silver rows the run added. None, having read
    nothing, when the run's restated rows cannot be appended, its silver inputs changed other than by added rows,
    or it touches fewer stories than Settings.insight_update_min_stories (at 1M views a day, ~7k stories an hour,
    the update's dozen small engine steps cost more than the aggregate they replace): every touched story is
    recomputed."""
    from jobs.engine_workarounds import without
    from jobs.gold import insight_deltas
    from jobs.gold import touched as touch
    from storylake import increments

    last = increments.last(settings)
    if last is None or touch.rewrite_reason(settings, [NAME, story_insights.NAME], horizon) is not None:
        return None
    stories = touched.count()
    if stories < settings.insight_update_min_stories:
        log.info("segment and story insights: %d touched stories recomputed (the update from the added rows starts at "
                 "%d: STORYLAKE_INSIGHT_UPDATE_MIN_STORIES)", stories, settings.insight_update_min_stories)
        return None
    added = insight_deltas.added(spark, settings, horizon)
    if added is None:
        return None
    story = touch.STORY
    # the last good rows of the touched stories: split, updated and the restated rows' comparison read them
    kept = kept._replace(previous=materialize(kept.previous, "previous_segments"))
    story_kept = story_kept._replace(previous=materialize(story_kept.previous, "previous_stories"))
    segments = materialize(touch.of_keys(whole["segments"], touched, "story_id"), "touched_story_segments")
    again = materialize(insight_deltas.split(segments, kept.previous, story_kept.previous, touched, horizon.as_of,
                                             last.as_of, insight_deltas.retained_from(settings)),
                        "recomputed_stories")
    rest = materialize(without(touched, again.select(F.col(story).alias("_ag_story")),
                               F.col(story) == F.col("_ag_story"), ["_ag_story"]), "updated_stories")
    log.info("segment and story insights: %d touched stories updated by the added rows, %d recomputed",
             rest.count(), again.count())
    seg_counts, story_counts = insight_deltas.updated(
        touch.of_keys(segments, rest, "story_id"), touch.of_keys(kept.previous, rest, "story_id"),
        touch.of_keys(story_kept.previous, rest, "story_id"), added, whole["sticker_responses"], horizon.as_of,
        materialize)
    return Updated(touch.restrict(whole, again, ("view_events",)), seg_counts, story_counts, kept, story_kept)


def append_restated(settings: Settings, horizon: Horizon, tables: dict[str, tuple[DataFrame, Kept]]
                    ) -> dict[str, int] | None:
    """Append to each table (name -> (its rows recomputed for the touched stories, its kept rows)) the recomputed rows
    that changed and a tombstone for each key gone (jobs.gold.touched.restated): the rows readers see are then those
    a rewrite of the slice would write, at the cost of the changed rows (at 10M views a day ~0.2M segment insights
    instead of a 2.9M-row slice). None, having written nothing, when the slice must be rewritten instead
    (touched.rewrite_reason)."""
    from jobs.gold import touched as touch

    why = touch.rewrite_reason(settings, list(tables), horizon)
    if why is not None:
        log.info("segment and story insights: rewriting the slice (%s)", why)
        return None
    where = horizon.where("story_start", gold=True)
    out = {}
    for name, (rows, kept) in tables.items():
        key = f"gold.{name}"
        columns = touch.readers_columns(key)
        changed = touch.restated(rows.select(*columns), kept.previous, merge_on_read.readers_key(key), columns,
                                 horizon.as_of)
        out[name] = spark_io.append_table(changed, settings, "gold", name, inside=where)
    log.info("segment and story insights: appended the changed rows")
    return out


def horizon_inputs(spark: SparkSession, settings: Settings, horizon: Horizon) -> dict[str, DataFrame]:
    """The silver rows of the stories that start in the gold horizon (every input of their insights)."""
    anchors = {"segments": "story_start", "view_events": "segment_created_at", "navigation": "at",
               "engagements": "at", "sticker_responses": "segment_created_at"}
    return {name: spark_io.read_table(spark, settings, "silver", name).filter(horizon.admits(col, gold=True))
            for name, col in anchors.items()}

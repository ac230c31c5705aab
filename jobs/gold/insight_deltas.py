"""The insights of the stories an hourly run only added interactions to, from their last good rows and the silver
rows the run added (gold.segment_insights and gold.story_insights, written by jobs/gold/segment_insights.py).

A story's insights are a function of its segments' silver rows and of their interaction rows (jobs.gold.activity).
When the run's silver interaction inputs (view_events, navigation, engagements) only gained rows since the versions
the last good run left (lake.appended_files), a touched story whose segment rows are still those of its last good
insight rows (split) changes only by its gained rows:
- its sums (impressions, view time, gestures, engagements) grow by those of the gained rows;
- its viewer counts (reach, completed viewers, exit viewers, continuation and continued viewers; a story's distinct
  reach and completed viewers) count (segment, viewer) pairs whose state (viewed, first view, completed, exited, and
  the next frame's pair) meets a condition. Only the pairs the gained views and exits name change state: each count
  changes by the sum over those pairs of the condition after minus before. "Before" is the pair's row in
  silver.segment_viewers and its exits in silver.navigation as the last good run left them; "after" adds the
  gained rows. A story's counts read every pair of the viewer in the story, so those are looked up for each
  (story, viewer) a gained row names;
- its sticker interactions (one row per sticker and user, replaced by a later answer) are counted again from
  silver.sticker_responses (a few rows per segment).
The same holds for a story that gained frames created since the last good run at the end of their chains (a new
story too: it had no rows): no pair of before that run could go on to them. Any other touched story (a frame
deleted, moved into or out of it, created late or inserted between two) is recomputed from all its silver rows
(split). tests/test_incremental.py checks that runs taking either way equal full runs.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from jobs import spark_io
from jobs.engine_workarounds import any_true, lookup, without
from jobs.gold import activity, story_insights
from jobs.gold.touched import STORY
from jobs.horizon import Horizon
from jobs.merged_tables import same_values
from storylake import increments, lake, latest_rows
from storylake.rules.views import FULL_COMPLETION, others_view_sql
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

SEGMENT_COLUMNS = activity.INSIGHT_SEGMENT_COLUMNS
# counts of a segment that grow by its gained rows' (sums, and viewer counts changed by their pairs)
GROWN = ("impressions", "total_view_ms", "reach", "completed_viewers", "exit_viewers", "continuation_viewers",
         "continued_viewers", *activity.NAVIGATION_COUNTS, *activity.ENGAGEMENT_COUNTS)


class Added(NamedTuple):
    """The silver rows the run added, and the tables as the last good run left them, that updated() reads."""

    views: DataFrame  # silver.view_events rows the run added
    navigation: DataFrame  # silver.navigation rows the run added
    engagements: DataFrame  # silver.engagements rows the run added
    old_viewers: DataFrame  # silver.segment_viewers' stored rows at the last good run (storylake.latest_rows)
    old_navigation: DataFrame  # silver.navigation at the last good run


def added(spark: SparkSession, settings: Settings, horizon: Horizon) -> Added | None:
    """Added, when the run's silver interaction inputs only gained rows since the versions the last good run left
    them at (recorded in the run's plan before silver wrote, storylake.increments; latest_rows.INSIGHT_INPUTS);
    None otherwise (the touched stories are recomputed from all their rows)."""
    plan = increments.planned(settings, horizon.as_of)
    if plan is None or horizon.refresh or settings.storage != "delta":
        return None
    gained: dict[str, DataFrame] = {}
    versions: dict[str, int] = {}
    for key in latest_rows.INSIGHT_INPUTS:
        layer, name = key.split(".")
        since = plan.silver_version(key)
        if since is None or lake.version_files(settings.table_path(layer, name), since) is None:
            log.info("story insights: recomputing the touched stories (no last good version of %s with its files)",
                     key)
            return None
        versions[name] = since
        if name == "segment_viewers":
            continue
        files = lake.appended_files(settings.table_path(layer, name), since)
        if files is None:
            log.info("story insights: recomputing the touched stories (%s changed other than by added rows)", key)
            return None
        gained[name] = spark_io.read_files(spark, layer, name, files)
    # the horizon's stories' rows only, as their recomputation reads them (jobs/gold/segment_insights.py
    # horizon_inputs): a gesture on a segment comes after its creation, at or after its story's start
    return Added(
        gained["view_events"], gained["navigation"], gained["engagements"],
        spark_io.read_version(spark, settings, "silver", "segment_viewers", versions["segment_viewers"]
                              ).filter(horizon.admits("segment_created_at", gold=True)),
        spark_io.read_version(spark, settings, "silver", "navigation", versions["navigation"]
                              ).filter(horizon.admits("at", gold=True)),
    )


def retained_from(settings: Settings) -> datetime | None:
    """The latest retention cutoff applied to the tables updated() reads as the last good run left them
    (jobs/retention.py; None before any): silver.segment_viewers keeps 2 days, shorter than a story's late views
    may reach back, so a story with a segment created before it may have lost the pairs its update needs (its
    recomputation reads silver.view_events, kept 30 days)."""
    from jobs.retention import applied_cutoffs

    cutoffs = applied_cutoffs(settings)
    found = [cutoffs[key] for key in latest_rows.INSIGHT_INPUTS if key in cutoffs]
    return max(found) if found else None


def split(segments: DataFrame, previous: DataFrame, previous_stories: DataFrame, stories: DataFrame,
          as_of: datetime, since: datetime, retained: datetime | None = None) -> DataFrame:
    """The touched `stories` (a Touched frame: STORY) to recompute from all their silver rows; same column. The
    other touched stories take updated(). `segments`: silver.segments rows of the touched stories; `previous`,
    `previous_stories`: their last good insight rows; `since`: the last good run's as_of (every silver row it read
    is before it); `retained`: retained_from().

    A story is recomputed when one of its known segments differs from its segment columns in `previous` (deleted,
    moved in from or out to another story), is new there but created before `since` (a late creation: earlier
    pairs may be in its continuation window), or was created before `retained`; when one of its frames that was in
    `previous` now links to another next frame in its chain than before, other than a new frame where it had none
    (a new frame inserted before another); and when it has no last good story row but segment rows. So an updated
    story's frames are those it had, as they were, and frames created since, at the end of their chains: no pair
    of before `since` could go on to those, so only the pairs the added rows name change."""
    from pyspark.sql import functions as F

    now = activity.known_segments(segments, as_of).select(*SEGMENT_COLUMNS)
    was = previous.select(*[F.col(c).alias(f"_p_{c}") for c in SEGMENT_COLUMNS])
    both = now.join(was, F.col("segment_id") == F.col("_p_segment_id"), "full")
    new = F.col("_p_segment_id").isNull()
    fresh = new & (F.col("created_at") >= activity.instant(since))
    trimmed = F.lit(False) if retained is None else F.coalesce(
        F.least(F.col("created_at"), F.col("_p_created_at")) < activity.instant(retained), F.lit(True))
    differs = both.filter(F.col("segment_id").isNull() | (new & ~fresh)
                          | (~new & ~same_values(list(SEGMENT_COLUMNS), "_p_")) | trimmed)
    changed = differs.select(F.col("story_id").alias(STORY)).unionByName(
        differs.select(F.col("_p_story_id").alias(STORY)))
    # the chains' links of the frames that were there: as they were, or to a new frame where they had none
    fresh_ids = both.filter(fresh).select(F.col("segment_id").alias("_f_sid"))
    olds = previous.select(*SEGMENT_COLUMNS)
    links = lookup(lookup(
        olds.select("segment_id", "story_id"),
        activity.chain(olds).select(F.col("segment_id").alias("_ol_sid"), F.col("next_segment_id").alias("_ol_next")),
        F.col("segment_id") == F.col("_ol_sid")),
        activity.chain(now).select(F.col("segment_id").alias("_nl_sid"), F.col("next_segment_id").alias("_nl_next")),
        F.col("segment_id") == F.col("_nl_sid"))
    links = lookup(links, fresh_ids, F.col("_nl_next") == F.col("_f_sid"))
    relinked = links.filter(~F.col("_ol_next").eqNullSafe(F.col("_nl_next"))
                            & ~(F.col("_ol_next").isNull() & F.col("_f_sid").isNotNull())).select(
        F.col("story_id").alias(STORY))
    # a touched story without a last good story row: updated from nothing when every segment of it is new
    unknown = without(stories, previous_stories.select(F.col("story_id").alias("_ps_story")),
                      F.col(STORY) == F.col("_ps_story"), ["_ps_story"])
    had = previous.select(F.col("story_id").alias("_h_story")).distinct()
    unknown = lookup(unknown, had, F.col(STORY) == F.col("_h_story"), "inner").select(STORY)
    return changed.unionByName(relinked).unionByName(unknown).filter(F.col(STORY).isNotNull()).distinct()


def updated(segments: DataFrame, previous: DataFrame, previous_stories: DataFrame, rows: Added,
            sticker_responses: DataFrame, as_of: datetime, materialize: spark_io.Materialize = spark_io.lazily
            ) -> tuple[DataFrame, DataFrame]:
    """(the segments' counts, the stories' counts) as of `as_of` of the stories whose known silver.segments rows are
    `segments` (every segment of each, split() let them through), from their last good insight rows `previous`
    (gold.segment_insights readers' rows; none of a new segment) and `previous_stories` (gold.story_insights; none
    of a new story) and the silver rows the run added (module docstring). The segments' counts: SEGMENT_COLUMNS and
    every count segment_insights.finished() reads; the stories': their columns but the rates and as_of."""
    from pyspark.sql import functions as F

    segs = activity.known_segments(segments, as_of).select(*SEGMENT_COLUMNS)
    pairs = materialize(pair_states(segs, rows, as_of, materialize), "delta_pairs")
    counts = activity.combined_counts(["segment_id"], [
        (viewer_changes(pairs), ["impressions", "total_view_ms", "reach", "completed_viewers", "exit_viewers"]),
        (continuation_changes(segs, pairs), ["continuation_viewers", "continued_viewers"]),
        (activity.navigation_counts(_on(rows.navigation.filter(F.col("at") < activity.instant(as_of)), segs),
                                    ["segment_id"]), list(activity.NAVIGATION_COUNTS)),
        (activity.engagement_counts(activity.story_engagements_before(rows.engagements, segs, as_of), ["segment_id"]),
         list(activity.ENGAGEMENT_COUNTS)),
    ])
    stickers = activity.sticker_interaction_counts(activity.sticker_responses_before(sticker_responses, segs, as_of),
                                                   ["segment_id"])
    before = previous.select(F.col("segment_id").alias("_p_sid"), *[F.col(c).alias(f"_p_{c}") for c in GROWN])
    grown = counts.select(F.col("segment_id").alias("_d_sid"), *[F.col(c).alias(f"_d_{c}") for c in GROWN])
    joined = lookup(segs, before, F.col("segment_id") == F.col("_p_sid"))
    joined = lookup(joined, grown, F.col("segment_id") == F.col("_d_sid"))
    joined = lookup(joined, stickers.select(F.col("segment_id").alias("_st_sid"), F.col("sticker_interactions")
                                            .alias("_d_st")), F.col("segment_id") == F.col("_st_sid"))
    joined = activity.zero_filled(joined, [*[f"_p_{c}" for c in GROWN], *[f"_d_{c}" for c in GROWN], "_d_st"])
    out = materialize(joined.select(*SEGMENT_COLUMNS, *[(F.col(f"_p_{c}") + F.col(f"_d_{c}")).alias(c) for c in GROWN],
                                    F.col("_d_st").alias("sticker_interactions")), "delta_segments")
    return out, story_counts(segs, previous_stories, out, pairs, as_of)


def story_counts(segs: DataFrame, previous_stories: DataFrame, segments: DataFrame, pairs: DataFrame,
                 as_of: datetime) -> DataFrame:
    """The stories of `segs` (their known segments, SEGMENT_COLUMNS) as story_insights.stories() makes them, with the
    counts of their `segments` (every segment of each, as updated() counts them): sums of the segments' for every
    count but the distinct viewers', the last good reach and completed viewers (`previous_stories`; 0 for a new
    story) changed by the stories' pairs (pair_states) that change them."""
    from pyspark.sql import functions as F

    per_viewer = pairs.groupBy("story_id", "viewer_id").agg(*[any_true(c).alias(c) for c in
                                                               ("_was", "_is", "_done_was", "_done_is")])
    viewers = per_viewer.groupBy("story_id").agg(
        _changed("_is", "_was").alias("_d_reach"), _changed("_done_is", "_done_was").alias("_d_completed_viewers"))
    sums = segments.groupBy("story_id").agg(*[F.sum(c).cast("bigint").alias(c) for c in
                                              ("impressions", "total_view_ms", *story_insights.SUMMED)])
    before = previous_stories.select(F.col("story_id").alias("_p_story"), F.col("reach").alias("_p_reach"),
                                     F.col("completed_viewers").alias("_p_completed_viewers"))
    out = lookup(story_insights.stories(segs, as_of), before, F.col("story_id") == F.col("_p_story"))
    out = activity.zero_filled(lookup(out, viewers, "story_id"),
                               ["_p_reach", "_p_completed_viewers", "_d_reach", "_d_completed_viewers"])
    out = out.select("story_id", "author_id", "story_start", "story_end", "segment_count",
                     (F.col("_p_reach") + F.col("_d_reach")).alias("reach"),
                     (F.col("_p_completed_viewers") + F.col("_d_completed_viewers")).alias("completed_viewers"))
    return lookup(out, sums, "story_id")


def _on(rows: DataFrame, segs: DataFrame) -> DataFrame:
    """`rows` of the segments `segs`, with their story (story_id) and author (_author)."""
    from pyspark.sql import functions as F

    ids = segs.select(F.col("segment_id").alias("_on_sid"), F.col("story_id").alias("_on_story"),
                      F.col("author_id").alias("_author"))
    hit = lookup(rows, ids, F.col("segment_id") == F.col("_on_sid"), "inner")
    return hit.drop("_on_sid", *(["story_id"] if "story_id" in rows.columns else [])).withColumnRenamed(
        "_on_story", "story_id")


def _changed(after: str, before: str) -> Column:
    """Sum over the rows of (after - before), two boolean conditions: how much a count of the rows meeting one
    changed."""
    from pyspark.sql import functions as F

    return F.sum(F.col(after).cast("bigint") - F.col(before).cast("bigint")).cast("bigint")


def pair_states(segs: DataFrame, rows: Added, as_of: datetime, materialize: spark_io.Materialize) -> DataFrame:
    """Every (segment, viewer) pair of the stories of `segs` whose viewer a gained view or exit names in the story
    (the viewer's other pairs in the story too: a story counts its viewers once), the author's own never: segment_id,
    story_id, viewer_id; the gained views' _views and _view_ms (0 when none); and the pair's state before the gained
    rows and after them: _was / _is (a counted view), _first_was / _first_is (its first), _done_was / _done_is (a
    completed view), _exit_was / _exit_is (a counted view and an exit gesture)."""
    from pyspark.sql import functions as F

    before = activity.instant(as_of)
    others = F.expr(others_view_sql("viewer_id", "_author"))
    views = _on(rows.views.filter(F.col("viewed_at") < before), segs).filter(others)
    gained = materialize(activity.per_viewer(views, ["segment_id", "story_id"], first=True), "delta_viewers")
    exit_actions = list(activity.NAVIGATION_COUNTS["exits"])
    exits = materialize(_on(rows.navigation.filter(F.col("action").isin(exit_actions) & (F.col("at") < before)), segs)
                        .select("segment_id", "story_id", "viewer_id").distinct(), "delta_exits")
    named = gained.select("segment_id", "story_id", "viewer_id").unionByName(exits)
    keys = named.select(F.col("story_id").alias("_k_story"), F.col("viewer_id").alias("_k_viewer")).distinct()
    # a pair's stored rows (one per run that grew it, storylake.latest_rows) only ever gained views: its first view
    # is the earliest of theirs and it completed when one of them did, so the named pairs' rows are aggregated
    # after the join instead of deduplicating every stored row first
    old = lookup(_on(rows.old_viewers, segs).filter(others), keys,
                 (F.col("story_id") == F.col("_k_story")) & (F.col("viewer_id") == F.col("_k_viewer")), "inner"
                 ).groupBy("segment_id", "story_id", "viewer_id").agg(
        F.min("first_viewed_at").alias("_o_first"),
        (F.max("max_completion_pct") >= FULL_COMPLETION).alias("_o_done")).withColumn("_o", F.lit(True))
    candidates = named.select(F.col("segment_id").alias("_c_sid"), F.col("viewer_id").alias("_c_viewer")).distinct()
    old_exits = lookup(
        rows.old_navigation.filter(F.col("action").isin(exit_actions) & (F.col("at") < before)), candidates,
        (F.col("segment_id") == F.col("_c_sid")) & (F.col("viewer_id") == F.col("_c_viewer")), "inner",
    ).select(F.col("segment_id").alias("_x_sid"), F.col("viewer_id").alias("_x_viewer")).distinct()
    new = gained.select("segment_id", "story_id", "viewer_id", "_views", "_view_ms",
                        (F.col("_completed") == 1).alias("_n_done"), "_first", F.lit(True).alias("_n"))
    state = old.join(new, ["segment_id", "story_id", "viewer_id"], "full")
    state = lookup(state, old_exits.withColumn("_x_was", F.lit(True)),
                   (F.col("segment_id") == F.col("_x_sid")) & (F.col("viewer_id") == F.col("_x_viewer")))
    state = lookup(state, exits.select(F.col("segment_id").alias("_y_sid"), F.col("viewer_id").alias("_y_viewer"),
                                       F.lit(True).alias("_x_new")),
                   (F.col("segment_id") == F.col("_y_sid")) & (F.col("viewer_id") == F.col("_y_viewer")))
    was = F.coalesce(F.col("_o"), F.lit(False))
    is_ = was | F.coalesce(F.col("_n"), F.lit(False))
    done_was = was & F.coalesce(F.col("_o_done"), F.lit(False))
    exit_was = F.coalesce(F.col("_x_was"), F.lit(False))
    return state.select(
        "segment_id", "story_id", "viewer_id",
        F.coalesce(F.col("_views"), F.lit(0)).cast("bigint").alias("_views"),
        F.coalesce(F.col("_view_ms"), F.lit(0)).cast("bigint").alias("_view_ms"),
        was.alias("_was"), is_.alias("_is"),
        F.col("_o_first").alias("_first_was"), F.least(F.col("_o_first"), F.col("_first")).alias("_first_is"),
        done_was.alias("_done_was"), (done_was | F.coalesce(F.col("_n_done"), F.lit(False))).alias("_done_is"),
        (was & exit_was).alias("_exit_was"),
        (is_ & (exit_was | F.coalesce(F.col("_x_new"), F.lit(False)))).alias("_exit_is"),
    )


def viewer_changes(pairs: DataFrame) -> DataFrame:
    """Per segment of the pairs (pair_states): the gained views' impressions and view time, and how much its reach,
    completed viewers and exit viewers changed."""
    from pyspark.sql import functions as F

    return pairs.groupBy("segment_id").agg(
        F.sum("_views").cast("bigint").alias("impressions"),
        F.sum("_view_ms").cast("bigint").alias("total_view_ms"),
        _changed("_is", "_was").alias("reach"),
        _changed("_done_is", "_done_was").alias("completed_viewers"),
        _changed("_exit_is", "_exit_was").alias("exit_viewers"),
    )


def continuation_changes(segs: DataFrame, pairs: DataFrame) -> DataFrame:
    """Per frame with a next frame (activity.chain of `segs`): how much its continuation viewers (a viewer whose
    first view came while the next frame was live) and continued viewers (of those, one who viewed the next frame)
    changed, over the pairs (pair_states) of the frame and of its next frame."""
    from pyspark.sql import functions as F

    def could(seen: str, first: str) -> Column:
        return F.col(seen) & F.coalesce(activity.could_continue(F.col(first)), F.lit(False))

    nxt = pairs.select(F.col("segment_id").alias("_nx_sid"), F.col("viewer_id").alias("_nx_viewer"),
                       F.col("_was").alias("_nx_was"), F.col("_is").alias("_nx_is"))
    linked = lookup(pairs, activity.chain(segs), "segment_id", "inner")
    linked = linked.join(nxt, (F.col("next_segment_id") == F.col("_nx_sid"))
                         & (F.col("viewer_id") == F.col("_nx_viewer")), "left")
    return linked.select(
        "segment_id",
        could("_was", "_first_was").alias("_c_was"), could("_is", "_first_is").alias("_c_is"),
        F.coalesce(F.col("_nx_was"), F.lit(False)).alias("_nx_was"),
        F.coalesce(F.col("_nx_is"), F.lit(False)).alias("_nx_is"),
    ).select(
        "segment_id", "_c_was", "_c_is",
        (F.col("_c_was") & F.col("_nx_was")).alias("_g_was"), (F.col("_c_is") & F.col("_nx_is")).alias("_g_is"),
    ).groupBy("segment_id").agg(
        _changed("_c_is", "_c_was").alias("continuation_viewers"),
        _changed("_g_is", "_g_was").alias("continued_viewers"),
    )

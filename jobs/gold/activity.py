"""Story activity before as_of, attributed to known segments, and the counts every insight table shares.

Every gold insight table reads the same silver facts the same way: only rows strictly before `as_of`, each
view / gesture / engagement attributed to its segment's author and story through silver.segments (so the
segment, story and author-day tables always add up to each other). The count functions are parameterised
by their grouping keys: ["segment_id"], ["story_id"] or ["author_id", "day"].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.engine_workarounds import lookup
from storylake.clock import utc
from storylake.rules.lifetimes import SEGMENT_LIFETIME, in_lifetime_sql
from storylake.rules.views import FULL_COMPLETION, OTHERS_VIEW_SQL

# The segment columns a segment's insight row carries (gold.segment_insights), from its silver.segments row.
INSIGHT_SEGMENT_COLUMNS = ("segment_id", "author_id", "story_id", "frame_index", "created_at", "expires_at",
                           "story_start", "audience", "media_type", "is_deleted")
# Navigation gestures counted per insight column (DESIGN §5: exits = tap_exit + swipe_down).
NAVIGATION_COUNTS: dict[str, tuple[str, ...]] = {
    "exits": ("tap_exit", "swipe_down"),
    "taps_forward": ("tap_forward",),
    "taps_back": ("tap_back",),
    "swipe_forward": ("swipe_forward",),
}
# Story engagements (attributed to a segment) counted per insight column.
ENGAGEMENT_COUNTS: dict[str, str] = {
    "replies": "reply",
    "shares": "share",
    "profile_visits": "profile_visit",
    "follows": "follow",
    "link_clicks": "link_click",
}


def instant(t: datetime) -> Column:
    """A timestamp literal for `t` (exact: the client converts an aware datetime to epoch microseconds)."""
    return F.lit(utc(t))


def ratio(numerator: Column | str, denominator: Column | str) -> Column:
    """numerator / denominator as a double, null when the denominator is 0 or null (never a division error)."""
    num, den = _col(numerator), _col(denominator)
    return num.cast("double") / F.when(den != 0, den).cast("double")


def _col(c: Column | str) -> Column:
    return F.col(c) if isinstance(c, str) else c


def zero_filled(df: DataFrame, columns: Sequence[str]) -> DataFrame:
    """Counts that a left join left null (no activity) become 0."""
    return df.withColumns({c: F.coalesce(F.col(c), F.lit(0).cast("bigint")) for c in columns})


def known_segments(segments: DataFrame, as_of: datetime) -> DataFrame:
    """Segments published strictly before as_of."""
    return segments.filter(F.col("created_at") < instant(as_of))


def _attributed(events: DataFrame, segs: DataFrame, time_col: str, as_of: datetime, cols: Sequence[str],
                *, in_lifetime: bool = False) -> DataFrame:
    """`events` before as_of on the known segments `segs`, with the segment's author and story (`in_lifetime`: only
    those within the segment's lifetime)."""
    owners = segs.select("segment_id", "author_id", "story_id", F.col("created_at").alias("_a_created"))
    facts = events.filter(F.col(time_col) < instant(as_of)).select("segment_id", *cols).withColumn(
        "day", F.to_date(time_col)
    )
    # the segments are the hash join's build side: fewer rows than views or gestures
    out = lookup(facts, owners, "segment_id", "inner")
    if in_lifetime:
        out = out.filter(F.expr(in_lifetime_sql(time_col, "_a_created")))
    return out.drop("_a_created")


def _own_attribution(events: DataFrame, time_col: str, as_of: datetime, cols: Sequence[str],
                     extra: Sequence[str] = ()) -> DataFrame:
    """Silver rows that carry their segment's author_id already (view_events, navigation: silver keeps only rows of
    known segments and stamps them from silver.segments in the same run), before as_of. No join: a row before as_of
    has a segment created before it (views outside a segment's lifetime, and gestures on unknown segments, never
    reach silver), so it is attributed exactly as a join would. The story is not on the row (with_story)."""
    return events.filter(F.col(time_col) < instant(as_of)).select(
        "segment_id", *cols, F.to_date(time_col).alias("day"), "author_id", *extra
    )


def with_story(rows: DataFrame, segs: DataFrame) -> DataFrame:
    """`rows` (views_before, navigation_before) with their segment's story_id from `segs` (silver.segments rows,
    holding every segment the rows name): silver keeps a segment's story only on its segment row, which a late
    creation that refolds the story changes, not on every interaction with it."""
    return lookup(rows, segs.select(F.col("segment_id").alias("_ws_sid"), "story_id"),
                  F.col("segment_id") == F.col("_ws_sid"), "inner").select(*rows.columns, "story_id")


def views_since(view_events: DataFrame, since: datetime) -> DataFrame:
    """The view_events rows viewed at or after `since`. A view is of a segment created at most one lifetime before it,
    so the filter on segment_created_at (the table's clustering column) lets the scan skip older files."""
    return view_events.filter((F.col("segment_created_at") >= instant(since - SEGMENT_LIFETIME))
                              & (F.col("viewed_at") >= instant(since)))


def views_before(view_events: DataFrame, segs: DataFrame | None, as_of: datetime, extra: Sequence[str] = ()
                 ) -> DataFrame:
    """Counted views before as_of of known segments, the author's own excluded: segment_id, viewer_id, viewed_at,
    view_duration_ms, completion_pct, day (UTC), author_id, and the `extra` columns of the rows. `segs` is unused
    (see _own_attribution); kept so every *_before has one signature."""
    del segs
    cols = ("viewer_id", "viewed_at", "view_duration_ms", "completion_pct")
    # the author's own views never count (storylake.rules.views)
    return _own_attribution(view_events, "viewed_at", as_of, cols, extra).filter(F.expr(OTHERS_VIEW_SQL))


def navigation_before(navigation: DataFrame, segs: DataFrame | None, as_of: datetime) -> DataFrame:
    """Gestures before as_of on known segments: segment_id, action, at, day, author_id."""
    del segs
    return _own_attribution(navigation, "at", as_of, ("action", "at"))


def story_engagements_before(engagements: DataFrame, segs: DataFrame, as_of: datetime) -> DataFrame:
    """Story engagements (reply, share, profile_visit, follow, link_click) attributed to a known segment within
    its lifetime (storylake.rules.lifetimes), with the segment's author and story from `segs`."""
    kinds = list(ENGAGEMENT_COUNTS.values())
    story_kinds = engagements.filter(F.col("kind").isin(kinds) & F.col("segment_id").isNotNull())
    return _attributed(story_kinds, segs, "at", as_of, ("kind", "at"), in_lifetime=True)


def sticker_responses_before(sticker_responses: DataFrame, segs: DataFrame, as_of: datetime) -> DataFrame:
    """Sticker responses whose winning response is before as_of, on known segments."""
    return _attributed(sticker_responses, segs, "responded_at", as_of, ("sticker_id", "interactions", "responded_at"))


class StoryActivity(NamedTuple):
    """The facts of a set of stories that both their insight tables read (story_activity), computed once."""

    segments: DataFrame  # their known segments (silver.segments rows created before as_of)
    viewers: DataFrame  # per_viewer(..., first=True) rows per (segment_id, story_id, viewer_id) of the counted views
    counts: DataFrame  # one row per known segment: `columns` of the segment, every additive count (0 when none)


def story_activity(segments: DataFrame, view_events: DataFrame, navigation: DataFrame, engagements: DataFrame,
                   sticker_responses: DataFrame, as_of: datetime, columns: Sequence[str],
                   materialize: Callable[[DataFrame, str], DataFrame], *, story_on_rows: bool = False
                   ) -> StoryActivity:
    """The segments' viewers and counts, materialized once: a segment's insights read them (with its continuation,
    exits and retention), a story's add them up (reach counted distinct over the story's viewer rows). Views that
    already carry their segment's story_id (`story_on_rows`: jobs.gold.touched.restrict gave it to them) are not
    joined to the segments for it."""
    segs = known_segments(segments, as_of)
    views = views_before(view_events, segs, as_of, ["story_id"] if story_on_rows else [])
    if not story_on_rows:
        views = with_story(views, segs)
    viewers = materialize(per_viewer(views, ["segment_id", "story_id"], first=True), "viewers")
    counts = additive_counts(
        segs.select(*columns),
        ["segment_id"],
        viewers=viewers.drop("_first", "story_id"),
        nav=navigation_before(navigation, segs, as_of),
        eng=story_engagements_before(engagements, segs, as_of),
        stickers=sticker_responses_before(sticker_responses, segs, as_of),
    )
    return StoryActivity(segs, viewers, materialize(counts, "counts"))


def per_viewer(views: DataFrame, keys: Sequence[str], *, first: bool = False) -> DataFrame:
    """Per (key, viewer_id): _views, _view_ms and _completed (1 when one of the views has completion_pct = 1); with
    `first` also _first, the earliest viewed_at."""
    done = F.when(F.col("completion_pct") >= FULL_COMPLETION, F.lit(1)).otherwise(F.lit(0))
    return views.groupBy(*keys, "viewer_id").agg(
        F.count(F.lit(1)).alias("_views"),
        F.sum("view_duration_ms").alias("_view_ms"),
        F.max(done).alias("_completed"),
        *([F.min("viewed_at").alias("_first")] if first else []),
    )


# viewer_rollup's count columns
VIEWER_ROLLUP_COLUMNS = ("impressions", "total_view_ms", "reach", "completed_viewers")


def viewer_rollup(per_viewer: DataFrame, keys: Sequence[str]) -> DataFrame:
    """From per_viewer() rows of the same keys, per key: impressions (counted views, rewatches count),
    total_view_ms, reach (exact distinct viewers) and completed_viewers (distinct viewers with a completion_pct = 1
    view). Two hash aggregates, per (key, viewer) then per key, instead of two count(DISTINCT) in one: exact, and
    2x faster on Sail."""
    return per_viewer.groupBy(*keys).agg(
        F.sum("_views").cast("bigint").alias("impressions"),
        F.sum("_view_ms").cast("bigint").alias("total_view_ms"),
        F.count("viewer_id").alias("reach"),  # count(column) skips a null viewer, as count(DISTINCT) does
        F.sum(F.when(F.col("viewer_id").isNotNull(), F.col("_completed"))).cast("bigint").alias("completed_viewers"),
    )


def navigation_counts(nav: DataFrame, keys: Sequence[str]) -> DataFrame:
    return nav.groupBy(*keys).agg(
        *[F.count(F.when(F.col("action").isin(list(acts)), 1)).alias(name) for name, acts in NAVIGATION_COUNTS.items()]
    )


def engagement_counts(eng: DataFrame, keys: Sequence[str]) -> DataFrame:
    return eng.groupBy(*keys).agg(
        *[F.count(F.when(F.col("kind") == kind, 1)).alias(name) for name, kind in ENGAGEMENT_COUNTS.items()]
    )


def sticker_interaction_counts(responses: DataFrame, keys: Sequence[str]) -> DataFrame:
    return responses.groupBy(*keys).agg(F.sum("interactions").cast("bigint").alias("sticker_interactions"))


def additive_counts(
    base: DataFrame,
    keys: Sequence[str],
    *,
    viewers: DataFrame,
    nav: DataFrame,
    eng: DataFrame,
    stickers: DataFrame | None = None,
) -> DataFrame:
    """`base` (one row per key) with every additive count and reach/completed_viewers joined on, zeros when none;
    the view counts from `viewers`, the views' per_viewer() rows of the same keys."""
    counts = [viewer_rollup(viewers, keys), navigation_counts(nav, keys), engagement_counts(eng, keys)]
    if stickers is not None:
        counts.append(sticker_interaction_counts(stickers, keys))
    return with_counts(base, keys, counts)


def with_counts(base: DataFrame, keys: Sequence[str], counts: Sequence[DataFrame]) -> DataFrame:
    """`base` left-joined with count frames (one row per key each; *_counts above), their counts 0 when none."""
    keys = list(keys)
    out = base
    columns: list[str] = []
    for frame in counts:
        out = lookup(out, frame, keys)  # a count frame has at most base's keys
        columns.extend(c for c in frame.columns if c not in keys)
    return zero_filled(out, columns)


def combined_counts(keys: Sequence[str], counts: Sequence[tuple[DataFrame, Sequence[str]]]) -> DataFrame:
    """One row per key that any of the count frames has: the keys and every frame's count columns, 0 where that
    frame has no row for the key. `counts`: (frame, its count columns) pairs, each frame
    one row per key with bigint counts (*_counts above, viewer_rollup, count() aggregates); the columns are given,
    not asked of the frames, which would make the engine analyze each plan.

    For keys that are the count frames' own (the hours of author_hourly_insights, the days of
    author_daily_insights): one aggregate over the frames' union, where with_counts over their distinct keys built
    and probed a hash table per frame (author_hourly_insights at 10M views a day: 5.0-5.3 s, 2.7-3.1 s this way).
    Where a base frame holds keys without any count (segments, stories) with_counts' joins stay: joining this
    aggregate onto the base instead was no faster there."""
    keys = list(keys)
    columns = [c for _frame, cols in counts for c in cols]
    union: DataFrame | None = None
    for frame, own in counts:
        part = frame.select(*keys, *[F.col(c) if c in own else F.lit(None).cast("bigint").alias(c) for c in columns])
        union = part if union is None else union.unionByName(part)
    if union is None:
        raise ValueError("combined_counts: no count frame")
    # max: each column has one value per key (its frame's), the others are null
    return zero_filled(union.groupBy(*keys).agg(*[F.max(c).alias(c) for c in columns]), columns)


def with_rates(df: DataFrame) -> DataFrame:
    """completion_rate = completed_viewers / reach and avg_view_ms = total_view_ms / impressions (null on 0)."""
    return df.withColumns(
        {
            "completion_rate": ratio("completed_viewers", "reach"),
            "avg_view_ms": ratio("total_view_ms", "impressions"),
        }
    )


def chain(segments: DataFrame) -> DataFrame:
    """Each frame's next frame in its chain (continuation): segment_id, next_segment_id and the next frame's
    lifetime (_next_created, _next_expires), for every non-deleted frame of `segments` (silver.segments columns
    segment_id, story_id, audience, frame_index, created_at, expires_at, is_deleted) that has one."""
    from pyspark.sql import Window

    order = Window.partitionBy("story_id", "audience").orderBy("frame_index", "created_at", "segment_id")
    return (
        segments.filter(~F.coalesce(F.col("is_deleted"), F.lit(False)))
        .select("segment_id", "story_id", "audience", "frame_index", "created_at", "expires_at")
        .withColumns({
            "next_segment_id": F.lead("segment_id").over(order),
            "_next_created": F.lead("created_at").over(order),
            "_next_expires": F.lead("expires_at").over(order),
        })
        .filter(F.col("next_segment_id").isNotNull())
        .select("segment_id", "next_segment_id", "_next_created", "_next_expires")
    )


def could_continue(first: Column) -> Column:
    """A viewer whose first view of a frame came at `first` could go on to its next frame (chain's columns): that
    frame was live then."""
    return (first >= F.col("_next_created")) & (first < F.col("_next_expires"))

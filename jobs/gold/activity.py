"""Story activity before as_of, attributed to known segments, and the counts every insight table shares.

Every gold insight table reads the same silver facts the same way: only rows strictly before `as_of`, each
view / gesture / engagement attributed to its segment's author and story through silver.segments (so the
segment, story and author-day tables always add up to each other). The count functions are parameterised
by their grouping keys: ["segment_id"], ["story_id"] or ["author_id", "day"].
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

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
VIEW_COUNTS = ("impressions", "total_view_ms")
VIEWER_COUNTS = ("reach", "completed_viewers")
STICKER_COUNTS = ("sticker_interactions",)
ADDITIVE_COUNTS = (*VIEW_COUNTS, *NAVIGATION_COUNTS, *ENGAGEMENT_COUNTS, *STICKER_COUNTS)


def utc(t: datetime) -> datetime:
    """`t` as an aware UTC datetime (a naive value is taken to be UTC already)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


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


def _attributed(events: DataFrame, segs: DataFrame, time_col: str, as_of: datetime, cols: Sequence[str]) -> DataFrame:
    owners = segs.select("segment_id", "author_id", "story_id")
    return (
        events.filter(F.col(time_col) < instant(as_of))
        .select("segment_id", *cols)
        .withColumn("day", F.to_date(time_col))
        .join(owners, "segment_id")
    )


def views_before(view_events: DataFrame, segs: DataFrame, as_of: datetime) -> DataFrame:
    """Counted views before as_of of known segments: segment_id, viewer_id, viewed_at, view_duration_ms,
    completion_pct, day (UTC), author_id, story_id."""
    cols = ("viewer_id", "viewed_at", "view_duration_ms", "completion_pct")
    return _attributed(view_events, segs, "viewed_at", as_of, cols)


def navigation_before(navigation: DataFrame, segs: DataFrame, as_of: datetime) -> DataFrame:
    """Gestures before as_of on known segments: segment_id, action, at, day, author_id, story_id."""
    return _attributed(navigation, segs, "at", as_of, ("action", "at"))


def story_engagements_before(engagements: DataFrame, segs: DataFrame, as_of: datetime) -> DataFrame:
    """Story engagements (reply, share, profile_visit, follow, link_click) attributed to a known segment."""
    kinds = list(ENGAGEMENT_COUNTS.values())
    story_kinds = engagements.filter(F.col("kind").isin(kinds) & F.col("segment_id").isNotNull())
    return _attributed(story_kinds, segs, "at", as_of, ("kind", "at"))


def sticker_responses_before(sticker_responses: DataFrame, segs: DataFrame, as_of: datetime) -> DataFrame:
    """Sticker responses whose winning response is before as_of, on known segments."""
    return _attributed(sticker_responses, segs, "responded_at", as_of, ("sticker_id", "interactions", "responded_at"))


def view_counts(views: DataFrame, keys: Sequence[str]) -> DataFrame:
    """impressions (counted views, rewatches count) and total_view_ms per key."""
    return views.groupBy(*keys).agg(
        F.count(F.lit(1)).alias("impressions"),
        F.sum("view_duration_ms").cast("bigint").alias("total_view_ms"),
    )


def viewer_counts(views: DataFrame, keys: Sequence[str]) -> DataFrame:
    """reach (exact distinct viewers) and completed_viewers (distinct viewers with a completion_pct = 1 view)."""
    return views.groupBy(*keys).agg(
        F.countDistinct("viewer_id").alias("reach"),
        F.countDistinct(F.when(F.col("completion_pct") >= 1.0, F.col("viewer_id"))).alias("completed_viewers"),
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
    views: DataFrame,
    nav: DataFrame,
    eng: DataFrame,
    stickers: DataFrame | None = None,
) -> DataFrame:
    """`base` (one row per key) with every additive count and reach/completed_viewers joined on, zeros when none."""
    keys = list(keys)
    out = (
        base.join(view_counts(views, keys), keys, "left")
        .join(viewer_counts(views, keys), keys, "left")
        .join(navigation_counts(nav, keys), keys, "left")
        .join(engagement_counts(eng, keys), keys, "left")
    )
    counts = [*VIEW_COUNTS, *VIEWER_COUNTS, *NAVIGATION_COUNTS, *ENGAGEMENT_COUNTS]
    if stickers is not None:
        out = out.join(sticker_interaction_counts(stickers, keys), keys, "left")
        counts.extend(STICKER_COUNTS)
    return zero_filled(out, counts)


def with_rates(df: DataFrame) -> DataFrame:
    """completion_rate = completed_viewers / reach and avg_view_ms = total_view_ms / impressions (null on 0)."""
    return df.withColumns(
        {
            "completion_rate": ratio("completed_viewers", "reach"),
            "avg_view_ms": ratio("total_view_ms", "impressions"),
        }
    )

"""silver.segment_viewers: one row per (segment, viewer) with a counted view as readers see it (feeds Seen By; rows
== reach), stored as growing rows (storylake/latest_rows.py)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NamedTuple

from jobs import spark_io
from jobs.engine_workarounds import lookup
from jobs.horizon import Horizon, segments_for
from jobs.merged_tables import latest_frame, same_keys, same_values
from jobs.silver.bronze import project
from jobs.silver.dedupe import split_repeated
from jobs.silver.touched import SEGMENT_KEY
from jobs.spark_io import Materialize
from storylake import audit, lake
from storylake.latest_rows import SEGMENT_VIEWERS
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from jobs.silver.touched import Changes

log = logging.getLogger(__name__)

# The silver.view_events columns transform() reads.
VIEW_COLUMNS = ("segment_id", "viewer_id", "viewed_at", "completion_pct", "view_duration_ms", "view_source", "event_id")
# Added to unix micros so every instant before year 9000 is a non-negative number of at most 19 digits.
_MICROS_SHIFT = 9_000_000_000_000_000_000


def transform(view_events: DataFrame, segments: DataFrame, materialize: Materialize = spark_io.lazily) -> DataFrame:
    """silver.view_events + silver.segments -> silver.segment_viewers.

    first_view_source is the source of the earliest view (ties by event_id); author_id and segment_created_at come
    from segments (every view_events row has a known segment by construction).
    Most viewers see a segment once: those rows become their (segment, viewer) row as they are, only the
    rewatched pairs are aggregated (split_repeated; `materialize` keeps the set of repeated pairs).
    """
    from pyspark.sql import functions as F

    once, rewatched = split_repeated(view_events, [["segment_id", "viewer_id"]], materialize)
    single = once.select(
        "segment_id",
        "viewer_id",
        F.col("viewed_at").alias("first_viewed_at"),
        F.col("viewed_at").alias("last_viewed_at"),
        F.lit(1).cast("bigint").alias("view_count"),
        F.col("completion_pct").alias("max_completion_pct"),
        F.col("view_duration_ms").cast("bigint").alias("total_view_ms"),
        F.col("view_source").alias("first_view_source"),
    )
    # The earliest view's source (ties by event_id) in the same hash aggregate as the other columns (no
    # window, no self-join): min over the text "<viewed_at micros, shifted non-negative and zero-padded so
    # text order is time order>|<event_id>|<view_source>", whose last field is that view's source
    # (view_source is a required enum without '|'). Sail's min over a struct needed > 20 GB at
    # 10M views.
    micros = F.lpad((F.unix_micros("viewed_at") + F.lit(_MICROS_SHIFT)).cast("string"), 19, "0")
    first_key = F.concat(micros, F.lit("|"), F.col("event_id"), F.lit("|"), F.col("view_source"))
    several = (
        rewatched.groupBy("segment_id", "viewer_id")
        .agg(
            F.min("viewed_at").alias("first_viewed_at"),
            F.max("viewed_at").alias("last_viewed_at"),
            F.count(F.lit(1)).alias("view_count"),
            F.max("completion_pct").alias("max_completion_pct"),
            F.sum("view_duration_ms").cast("bigint").alias("total_view_ms"),
            F.min(first_key).alias("_first"),
        )
        .withColumn("first_view_source", F.substring_index("_first", "|", -1))
        .drop("_first")
    )
    # the author comes from the segment (not first() in the aggregate: Sail's first is 5x slower); not its story,
    # which a later story fold can change without a new view (readers join silver.segments for it)
    seg = segments.select(F.col("segment_id").alias("_sid"), "author_id",
                          F.col("created_at").alias("segment_created_at"))
    out = lookup(single.unionByName(several), seg, F.col("segment_id") == F.col("_sid"), "inner")
    return project(out, "silver.segment_viewers")


class GoodVersions(NamedTuple):
    """The versions of silver.view_events and silver.segment_viewers the last good run left, taken before the run
    writes either: their audited versions, or their current ones on a lake without gates."""

    view_events: int | None
    segment_viewers: int | None


def good_versions(settings: Settings) -> GoodVersions | None:
    """GoodVersions, read before the run's silver jobs write (before it records its plan); None when a run was
    planned since the last done one (it failed, its gate did, or it died, possibly between writing the receipts and
    their pairs: on a lake without gates the current versions would then not match each other)."""
    left = audit.versions_left(settings, ["silver.view_events", "silver.segment_viewers"])
    return None if left is None else GoodVersions(left["silver.view_events"], left["silver.segment_viewers"])


def run(spark: SparkSession, settings: Settings, horizon: Horizon, changes: Changes | None = None,
        good: GoodVersions | None = None) -> dict[str, int]:
    """The (segment, viewer) rows of segments created in the horizon, from their silver.view_events (already
    cut at as_of): the grown pairs' rows appended when the run only added views (grown_rows), else the horizon's
    slice rewritten (`changes`: the run's touched keys, jobs.silver.touched, None: the whole horizon recomputed;
    `good`: good_versions() before the run wrote, None: rewrite)."""
    views = spark_io.read_table(spark, settings, "silver", "view_events").filter(horizon.admits("segment_created_at"))
    with spark_io.scratch(settings) as materialize:
        appended = grown_rows(spark, settings, horizon, changes, good, views, materialize)
        if appended is not None and appended.limit(1).count() == 0:
            log.info("silver.segment_viewers: no pair grew (nothing to write)")
            return {}
        if appended is not None:
            log.info("silver.segment_viewers: appending the grown pairs' rows (the run only added views)")
            return {"segment_viewers": spark_io.append_table(
                appended, settings, "silver", "segment_viewers", inside=horizon.where("segment_created_at"))}
        out = transform(
            views,
            segments_for(spark, settings, horizon, views),
            materialize,
        )
        return {"segment_viewers": spark_io.write_table(
            out, settings, "silver", "segment_viewers", replace_where=horizon.where("segment_created_at")
        )}


def grown_rows(spark: SparkSession, settings: Settings, horizon: Horizon, changes: Changes | None,
               good: GoodVersions | None, views: DataFrame, materialize: Materialize) -> DataFrame | None:
    """The rows to append to silver.segment_viewers (storylake.latest_rows: each pair's row with the most views is
    the pair's row) when that gives the rows a rewrite of the slice would, else None (rewrite it).

    A pair's row is the aggregate of its views and its segment's columns. When silver.view_events only gained rows
    since its last good version (appended_files: its job appended the hour's receipts, no decision changed) and
    silver.segment_viewers holds its last good version, only two kinds of pair can change: a pair with a new view
    (a new pair, or one with more views than before) and a pair of a segment whose silver row the run can change
    (`changes.segments`: a late earlier creation can move its author or creation time; those receipts are decided
    again, so this is a check). Those pairs' rows are recomputed from their views and
    compared with their rows now: every pair that is new or has more views gets its new row appended; an unchanged
    one nothing. Any other difference (a pair whose row changed without more views, or lost its views) means a
    rewrite. At 10M views a day an hour grows ~0.4M of the slice's 6.3M pairs."""
    from pyspark.sql import functions as F

    def rewrite(why: str) -> None:
        log.info("silver.segment_viewers: rewriting the slice (%s)", why)

    if changes is None or settings.storage != "delta":
        return rewrite("the run recomputes its whole horizon")
    if good is None:
        return rewrite("a run since the last good one did not finish")
    if good.view_events is None or good.segment_viewers is None:
        return rewrite("no last good version")
    if not lake.rows_unchanged_since(settings.table_path("silver", "segment_viewers"), good.segment_viewers):
        return rewrite("written since its last good version")
    fresh = lake.appended_files(settings.table_path("silver", "view_events"), good.view_events)
    if fresh is None:
        return rewrite("silver.view_events changed other than by appended views")
    added = spark_io.read_files(spark, "silver", "view_events", fresh)
    pairs = materialize(added.select(F.col("segment_id").alias("_g_segment"), F.col("viewer_id").alias("_g_viewer"))
                        .distinct().withColumn("_g_pair", F.lit(True)), "grown_pairs")
    segments = changes.segments.withColumn("_g_seg", F.lit(True))

    def touched(rows: DataFrame) -> DataFrame:
        marked = lookup(rows, pairs, (F.col("segment_id") == F.col("_g_segment"))
                        & (F.col("viewer_id") == F.col("_g_viewer")))
        marked = lookup(marked, segments, F.col("segment_id") == F.col(SEGMENT_KEY))
        return marked.filter(F.col("_g_pair").isNotNull() | F.col("_g_seg").isNotNull()).select(*rows.columns)

    # only the columns transform() reads: the scan of the slice's receipts skips their other columns' pages
    their_views = materialize(touched(views.select(*VIEW_COLUMNS)), "grown_views")
    after = materialize(transform(their_views, segments_for(spark, settings, horizon, their_views), materialize),
                        "grown_after")
    stored = spark_io.read_stored(spark, settings, "silver", "segment_viewers").filter(
        horizon.admits("segment_created_at"))
    before = materialize(latest_frame(SEGMENT_VIEWERS, touched(stored)), "grown_before")
    columns = list(SEGMENT_VIEWERS.value_columns())
    key = list(SEGMENT_VIEWERS.key)
    was = before.select(*[F.col(c).alias(f"_b_{c}") for c in columns])
    on, same = same_keys(key, "_b_"), same_values(columns, "_b_")
    # every row now of a touched pair that is not as it was: appendable when the pair is new or has more views
    new = lookup(after, was, on).filter(F.col("_b_segment_id").isNull() | ~same)
    # a grown row keeps its segment's columns (the anchor retention and the slice writes cut by), else a rewrite
    grown = F.col("_b_segment_id").isNull() | (
        (F.col("view_count") > F.col("_b_view_count")) & F.col("author_id").eqNullSafe(F.col("_b_author_id"))
        & F.col("segment_created_at").eqNullSafe(F.col("_b_segment_created_at")))
    kept = materialize(new.select(*columns, grown.alias("_g_grown")), "grown_new")
    # a pair's row that is gone (its views no longer counted) or changed without more views: rewrite
    gone = lookup(before, after.select(*[F.col(k).alias(f"_a_{k}") for k in key]), same_keys(key, "_a_"))
    if (kept.filter(~F.col("_g_grown")).limit(1).count() > 0
            or gone.filter(F.col("_a_segment_id").isNull()).limit(1).count() > 0):
        return rewrite("a pair's row changed without more views")
    return kept.drop("_g_grown")

"""gold.author_daily_insights: per author and UTC day of the activity, with exact trailing 7/28-day reach."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import spark_io
from jobs.engine_workarounds import lookup
from jobs.gold import activity
from jobs.gold.appended import gained_rows, with_stamp
from jobs.gold.output import write_gold
from jobs.horizon import Horizon
from jobs.merged_tables import summed_frame
from storylake.clock import utc
from storylake.rules.arrival import sealed_day
from storylake.rules.lifetimes import SEGMENT_LIFETIME
from storylake.settings import Settings
from storylake.summed_rows import AUTHOR_VIEWER_DAYS

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
    if since_day is not None:
        ends = [since_day + timedelta(days=i) for i in range((utc(as_of).date() - since_day).days + 1)]
        if 0 < len(ends) <= LATEST_DAY_ENDS:
            return _reach_from_latest_days(viewer_days, ends)
    longest = max(TRAILING_DAYS.values())
    last_day = F.to_date(activity.instant(as_of))
    span = F.least(F.lit(longest - 1), F.datediff(last_day, F.col("day")))
    first = F.lit(0) if since_day is None else F.greatest(F.lit(0), F.datediff(F.lit(since_day), F.col("day")))
    rows = viewer_days.select("author_id", "viewer_id", "day")
    if since_day is not None:
        # Of a viewer's days before since_day only the latest matters: a window ending on since_day or later that
        # holds an earlier one holds the latest too, and is nearer to it. One row per (author, viewer) instead of
        # one per day with views: the fan-out no longer grows with the 27 days of partials before since_day.
        before = rows.filter(F.col("day") < F.lit(since_day)).groupBy("author_id", "viewer_id").agg(
            F.max("day").alias("day"))
        rows = rows.filter(F.col("day") >= F.lit(since_day)).unionByName(before)
    fanned = (
        rows
        .withColumn("_lag", F.explode(F.sequence(first, span)))
        .withColumn("day", F.date_add(F.col("day"), F.col("_lag")))
    )
    # per (author, day, viewer) the nearest view day, then per (author, day): two hash aggregates, exact, and
    # faster on Sail than count(DISTINCT) per window length
    nearest = fanned.groupBy(*KEYS, "viewer_id").agg(F.min("_lag").alias("_lag"))
    return nearest.groupBy(*KEYS).agg(
        *[F.count(F.when(F.col("_lag") < n, F.col("viewer_id"))).alias(name) for name, n in TRAILING_DAYS.items()]
    )


# Up to this many window ends (an hourly run's days from its first day: usually 2), trailing_reach counts each pair
# once, from its latest view day up to each end, instead of fanning every pair out to every end.
LATEST_DAY_ENDS = 7


def _reach_from_latest_days(viewer_days: DataFrame, ends: list[date]) -> DataFrame:
    """trailing_reach's rows for the window ends `ends`: a pair is in the N-day window ending on day e when its latest
    view day up to e is among the N days ending on e. One aggregate per (author, viewer) (its latest day up to each
    end), then one per author: the fan-out's aggregate was per (author, window end, viewer), over every pair of the
    touched authors once per end (755k pairs at 1M views a day after 7 days). Rows of the (author, end) with a
    viewer in its longest window, as the fan-out gives."""
    longest = max(TRAILING_DAYS, key=TRAILING_DAYS.__getitem__)
    latest = viewer_days.groupBy("author_id", "viewer_id").agg(
        *[F.max(F.when(F.col("day") <= F.lit(end), F.col("day"))).alias(f"_last{i}") for i, end in enumerate(ends)])
    counts = latest.groupBy("author_id").agg(*[
        F.count(F.when(F.col(f"_last{i}") >= F.lit(end - timedelta(days=n - 1)), F.lit(1))).alias(f"_{name}{i}")
        for i, end in enumerate(ends) for name, n in TRAILING_DAYS.items()])
    per_end = F.explode(F.array(*[
        F.struct(F.lit(end).alias("day"), *[F.col(f"_{name}{i}").alias(name) for name in TRAILING_DAYS])
        for i, end in enumerate(ends)]))
    return counts.select("author_id", per_end.alias("_end")).select("author_id", "_end.*").filter(
        F.col(longest) > 0)


PARTIAL = "author_viewer_days"
PARTIAL_KEYS = ["author_id", "day", "viewer_id"]
# per_viewer()'s working names <-> the partial table's columns
_PARTIAL_COLUMNS = {"_views": "views", "_view_ms": "view_ms", "_completed": "completed"}


def author_viewer_days(view_events: DataFrame, as_of: datetime) -> DataFrame:
    """The daily partial aggregate (gold.author_viewer_days): per (author, UTC day, viewer) the counted views
    before as_of, their summed view time, and 1 when one of them completed the segment."""
    per = activity.per_viewer(activity.views_before(view_events, None, as_of), KEYS)
    return per.select(*PARTIAL_KEYS, *[F.col(k).alias(v) for k, v in _PARTIAL_COLUMNS.items()])


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
    the views of the 27 days before feed their trailing reach). from_viewer_days over author_viewer_days()."""
    viewer_days = materialize(author_viewer_days(view_events, as_of), "viewers")
    return from_viewer_days(segments, viewer_days, navigation, engagements, as_of, since_day)


def from_viewer_days(
    segments: DataFrame,
    viewer_days: DataFrame,
    navigation: DataFrame,
    engagements: DataFrame,
    as_of: datetime,
    since_day: date | None = None,
    reach_days: DataFrame | None = None,
) -> DataFrame:
    """author_daily_insights from the daily partials (author_viewer_days() rows, at least those of the 27 days
    before since_day and later): the views per viewer give the view counts, the trailing reach and the days with
    views; gestures and engagements are aggregated once per (author, day), and the days are those of any count (one
    aggregate over the count frames, activity.combined_counts). `reach_days` (author_id, viewer_id, day rows;
    default: the partials') feeds the trailing reach instead: with since_day, any rows that keep each pair's latest
    day before it among the 27 days before it (gold.author_viewer_latest's) and every day from it on."""
    segs = activity.known_segments(segments, as_of)
    window_viewers = viewer_days.select(*PARTIAL_KEYS, *[F.col(v).alias(k) for k, v in _PARTIAL_COLUMNS.items()])
    if reach_days is None:
        reach_days = window_viewers
    viewers = window_viewers if since_day is None else window_viewers.filter(F.col("day") >= F.lit(since_day))
    nav = activity.navigation_counts(activity.navigation_before(navigation, segs, as_of), KEYS)
    eng = activity.engagement_counts(activity.story_engagements_before(engagements, segs, as_of), KEYS)
    posted = segs.groupBy("author_id", F.to_date("created_at").alias("day")).agg(
        F.count(F.lit(1)).alias("segments_posted")
    )
    # the author-days with a segment posted, a view, a gesture or an engagement, each count 0 when none (one
    # aggregate over the count frames' union)
    frames = [(posted, ["segments_posted"]), (activity.viewer_rollup(viewers, KEYS), activity.VIEWER_ROLLUP_COLUMNS),
              (nav, list(activity.NAVIGATION_COUNTS)), (eng, list(activity.ENGAGEMENT_COUNTS))]
    out = lookup(activity.combined_counts(KEYS, frames), trailing_reach(reach_days, as_of, since_day), KEYS)
    out = activity.zero_filled(out, list(TRAILING_DAYS))
    return out.withColumn("as_of", activity.instant(as_of))


LATEST = "author_viewer_latest"


def latest_days(days: DataFrame, before_day: date) -> DataFrame:
    """gold.author_viewer_latest from rows (author_id, viewer_id, day) with a view that day: per pair the latest day
    before `before_day`, for the pairs with one among the 27 days before it (what trailing_reach needs of the days
    before its since_day, the sealed day or later: a 28-day window ending on since_day reaches 27 days back)."""
    start = before_day - timedelta(days=max(TRAILING_DAYS.values()) - 1)
    return (
        days.filter((F.col("day") >= F.lit(start)) & (F.col("day") < F.lit(before_day)))
        .groupBy("author_id", "viewer_id")
        .agg(F.max("day").alias("latest_day"))
        .withColumn("before_day", F.lit(before_day))
    )


def as_reach_days(latest: DataFrame) -> DataFrame:
    """gold.author_viewer_latest rows as trailing-reach rows: (author_id, viewer_id, day = latest_day)."""
    return latest.select("author_id", "viewer_id", F.col("latest_day").alias("day"))


def sealed_before(spark: SparkSession, settings: Settings) -> date | None:
    """gold.author_viewer_latest's before_day (None: no table, no rows, or not one day in every row)."""
    held = spark_io.constant_dates(spark, settings, "gold", LATEST, ("before_day",))
    return None if held is None else held[0]


def advance_latest(spark: SparkSession, settings: Settings, horizon: Horizon, partials: DataFrame
                   ) -> tuple[dict[str, int], date]:
    """Bring gold.author_viewer_latest to the run's sealed day (after the run wrote its partials); (rows written,
    the sealed day). Unchanged while the sealed day stays and the run recomputes no day before it; advanced from
    its rows and the now sealed days' partials when the sealed day moves; rebuilt from 27 days of partials when
    the run recomputed days it had sealed, on a full refresh, or without the table."""
    seal = sealed_day(horizon.as_of, settings.lateness_window)
    held = None if horizon.refresh else sealed_before(spark, settings)
    first_day = horizon.first_day
    if held is None or first_day is None or first_day < held or seal < held:
        return write_gold(latest_days(partials.select("author_id", "viewer_id", "day"), seal), settings, LATEST), seal
    if held == seal:
        return {}, seal
    sealed_now = partials.filter((F.col("day") >= F.lit(held)) & (F.col("day") < F.lit(seal))).select(
        "author_id", "viewer_id", "day")
    with spark_io.scratch(settings) as materialize:
        rows = spark_io.overwrite_from_current(
            spark, settings, "gold", LATEST,
            lambda state: latest_days(as_reach_days(state).unionByName(sealed_now), seal), materialize)
    return {LATEST: rows}, seal


def run(spark: SparkSession, settings: Settings, horizon: Horizon, authors: DataFrame | None = None
        ) -> dict[str, int]:
    """gold.author_viewer_days and gold.author_daily_insights of the days from the run's first day on (Horizon
    .first_day: every view, gesture or engagement a run changes happens at or after its event horizon). The day's
    partials are rebuilt from the views of that day on; the trailing reach reads the partials of the 27 days before
    (not 28 days of views), the other counts the silver rows from that day. With `authors` (jobs.gold.touched) only
    the touched authors' rows of both tables are recomputed, the other authors' kept as the last good run left
    them. The partials are stored as summed rows (storylake.summed_rows): a run whose silver views only gained rows
    appends the per-viewer sums of its new views (jobs.gold.appended) instead of rewriting its days."""
    from jobs.gold import touched as touch

    silver = {
        name: spark_io.read_table(spark, settings, "silver", name)
        for name in ("segments", "view_events", "navigation", "engagements")
    }
    as_of = horizon.as_of
    if horizon.lo is None:
        rows = write_gold(with_stamp(author_viewer_days(silver["view_events"], as_of), AUTHOR_VIEWER_DAYS, horizon),
                          settings, PARTIAL)
        # the whole table was just written, one row per key: its stored rows are its rows
        partials = spark_io.read_stored(spark, settings, "gold", PARTIAL)
        rows |= advance_latest(spark, settings, horizon, partials)[0]
        rows |= write_gold(from_viewer_days(silver["segments"], partials, silver["navigation"],
                                            silver["engagements"], as_of), settings, NAME)
        return rows
    first_day = horizon.first_day
    assert first_day is not None
    since = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    start = F.lit(since).cast("timestamp")
    day_slice = f"day >= DATE '{first_day.isoformat()}'"
    created_since = F.lit(since - SEGMENT_LIFETIME).cast("timestamp")
    rows: dict[str, int] = {}
    gained = gained_rows(spark, settings, horizon, AUTHOR_VIEWER_DAYS)
    if gained is not None:  # the views the run added: their per-viewer sums appended
        if gained.files:
            added = with_stamp(author_viewer_days(gained.rows["view_events"], as_of), AUTHOR_VIEWER_DAYS, horizon)
            rows |= {PARTIAL: spark_io.append_table(added, settings, "gold", PARTIAL, inside=day_slice)}
    elif not touch.unchanged(settings, PARTIAL, authors):
        # without kept rows (mine None) every author's partials are recomputed
        kept, mine = touch.keep(spark, settings, PARTIAL, F.col("day") >= F.lit(first_day), authors, "author_id")
        days = author_viewer_days(touch.of_keys(activity.views_since(silver["view_events"], since), mine,
                                                "author_id"), as_of)
        rows |= write_gold(touch.with_kept(with_stamp(days, AUTHOR_VIEWER_DAYS, horizon), kept), settings, PARTIAL,
                           day_slice)
    window_start = first_day - timedelta(days=max(TRAILING_DAYS.values()) - 1)
    # the stored rows: the sealed days' state and the trailing reach take each pair's latest day, which a key's
    # several stored rows do not change; the day rows below are summed per key (summed_frame), after the cut to the
    # touched authors
    partials = spark_io.read_stored(spark, settings, "gold", PARTIAL)
    written, seal = advance_latest(spark, settings, horizon, partials)
    rows |= written
    if touch.unchanged(settings, NAME, authors):
        return rows
    kept, mine = touch.keep(spark, settings, NAME, F.col("day") >= F.lit(first_day), authors, "author_id")
    reach_days = None
    if seal <= first_day:  # each pair's latest day before the sealed day, then the partials from it on
        reach_days = touch.of_keys(as_reach_days(spark_io.read_table(spark, settings, "gold", LATEST)).unionByName(
            partials.filter(F.col("day") >= F.lit(seal)).select("author_id", "viewer_id", "day")
        ).filter(F.col("day") >= F.lit(window_start)), mine, "author_id")
    df = from_viewer_days(
        # a story engagement from that day on is on a segment live then (created at most 24 h before)
        touch.of_keys(silver["segments"].filter(F.col("created_at") >= created_since), mine, "author_id"),
        summed_frame(AUTHOR_VIEWER_DAYS, touch.of_keys(partials.filter(
            F.col("day") >= F.lit(first_day if reach_days is not None else window_start)), mine, "author_id")),
        touch.of_keys(silver["navigation"].filter(F.col("at") >= start), mine, "author_id"),
        silver["engagements"].filter(F.col("at") >= start),  # attributed through the (touched authors') segments
        as_of, since_day=first_day, reach_days=reach_days,
    ).filter(F.col("day") >= F.lit(first_day))
    rows |= write_gold(touch.with_kept(df, kept), settings, NAME, day_slice)
    return rows

"""gold.ring_features: ranking features per (viewer, author) as of T, with no leakage.

`ring_features_at` computes the features for arbitrary (viewer_id, author_id, t) points from events strictly
before each point's t: counts over [t - 30 d, t) of the viewer's actions toward the author, and the
relationship state after every relationship event strictly before t (intervals evaluated at t - 1 us, so a
follow / close-friend change stamped exactly at t is not known yet). The gold table evaluates it at
(pairs, T = as_of); the ranking export (jobs/export.py) reuses it at t = story_start.

The gold table's counts come from the daily partial aggregate gold.ring_signal_days (per viewer, author and UTC
day: the signals of `_signal_counts`), so that time advancing does not rescan 30 days of views and engagements:
an hourly run rewrites the partials of the days from its event horizon on, then sums the window's whole days from
the partials and reads silver only for the window's first day, which [T - 30 d, T) covers in part.
"""

from __future__ import annotations

import operator
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import spark_io
from jobs.engine_workarounds import any_true
from jobs.gold import activity
from jobs.gold.output import write_gold
from jobs.horizon import Horizon
from jobs.relation_flags import POINT_KEYS, relation_edges, relation_flags_at, relation_instant
from storylake.clock import utc
from storylake.rules.arrival import sealed_day
from storylake.rules.audience import holds_at_sql
from storylake.rules.lifetimes import interval_sql
from storylake.rules.views import FULL_COMPLETION
from storylake.settings import Settings

NAME = "ring_features"
FEATURE_VERSION = "ring_features/v1"
WINDOW_DAYS = 30
# Feature column -> engagement kind counted (actor = viewer, target = author).
ENGAGEMENT_FEATURES: dict[str, str] = {
    "dm_count_30d": "dm_sent",
    "likes_given_30d": "like",
    "comments_given_30d": "comment",
    "story_replies_30d": "reply",
    "profile_visits_30d": "profile_visit",
}
VIEW_FEATURES = ("story_views_30d", "completion_rate_30d")
RELATION_FEATURES = {"is_close_friend": "close_friend", "follows": "follows"}  # feature -> audience flag
FEATURES = (*ENGAGEMENT_FEATURES, *VIEW_FEATURES, *RELATION_FEATURES)
_VIEW = "__view__"


def in_window(time_col: str, t: str = "t") -> Column:
    """[t - 30 d, t): an event exactly 30 days before t counts, one at t does not."""
    start = F.col(t) - F.expr(interval_sql(timedelta(days=WINDOW_DAYS)))
    return (F.col(time_col) >= start) & (F.col(time_col) < F.col(t))


def _signals(engagements: DataFrame, view_events: DataFrame) -> DataFrame:
    """Viewer -> author actions as one stream: (s_viewer, s_author, at, kind, completion_pct)."""
    eng = engagements.filter(F.col("kind").isin(list(ENGAGEMENT_FEATURES.values()))).select(
        F.col("actor_id").alias("s_viewer"),
        F.col("target_user_id").alias("s_author"),
        "at",
        "kind",
        F.lit(None).cast("double").alias("completion_pct"),
    )
    views = view_events.select(
        F.col("viewer_id").alias("s_viewer"),
        F.col("author_id").alias("s_author"),
        F.col("viewed_at").alias("at"),
        F.lit(_VIEW).alias("kind"),
        "completion_pct",
    )
    return eng.unionByName(views)


def _signal_counts() -> dict[str, Column]:
    """Per signal row of _signals, 1 when it counts toward each count column, else 0 (null kind: 0): the
    engagement features, story_views_30d and _completed_views (the numerator of completion_rate_30d)."""
    is_view = F.col("kind") == _VIEW
    indicators = {name: F.col("kind") == kind for name, kind in ENGAGEMENT_FEATURES.items()}
    indicators["story_views_30d"] = is_view
    indicators["_completed_views"] = is_view & (F.col("completion_pct") >= FULL_COMPLETION)
    return {name: F.when(cond, 1).otherwise(0) for name, cond in indicators.items()}


def ring_features_at(
    engagements: DataFrame,
    view_events: DataFrame,
    relationships: DataFrame,
    points: DataFrame,
) -> DataFrame:
    """Features for every distinct (viewer_id, author_id, t) of `points`, using only events with time < t
    (and >= t - 30 d for counts). Returns viewer_id, author_id, t, *FEATURES, feature_version."""
    keys = points.select(*POINT_KEYS).distinct()
    signals = _signals(engagements, view_events)
    joined = keys.join(
        signals,
        (F.col("viewer_id") == F.col("s_viewer")) & (F.col("author_id") == F.col("s_author")) & in_window("at"),
        "left",
    )
    counts = joined.groupBy(*POINT_KEYS).agg(
        *[F.sum(one).cast("bigint").alias(name) for name, one in _signal_counts().items()]
    )
    flags = relation_flags_at(relationships, keys, list(RELATION_FEATURES.values()), strictly_before=True)
    return (
        counts.withColumn("completion_rate_30d", activity.ratio("_completed_views", "story_views_30d"))
        .join(flags, POINT_KEYS, "left")
        .select(
            *POINT_KEYS,
            *ENGAGEMENT_FEATURES,
            *VIEW_FEATURES,
            *[F.coalesce(F.col(flag), F.lit(False)).alias(name) for name, flag in RELATION_FEATURES.items()],
            F.lit(FEATURE_VERSION).alias("feature_version"),
        )
    )


PARTIAL = "ring_signal_days"
# _signal_counts()'s names -> the partial table's columns
PARTIAL_COLUMNS = {
    "dm_count_30d": "dm_count", "likes_given_30d": "likes_given", "comments_given_30d": "comments_given",
    "story_replies_30d": "story_replies", "profile_visits_30d": "profile_visits", "story_views_30d": "story_views",
    "_completed_views": "completed_views",
}


def signal_days(engagements: DataFrame, view_events: DataFrame, as_of: datetime) -> DataFrame:
    """gold.ring_signal_days: per (viewer, author, UTC day of the signal) the counts of every signal of the viewer
    toward the author before as_of (self pairs left out, as the features leave them)."""
    counts = _signal_counts()
    return (
        _signals(engagements, view_events)
        .filter((F.col("at") < activity.instant(as_of)) & (F.col("s_viewer") != F.col("s_author")))
        .groupBy(F.col("s_viewer").alias("viewer_id"), F.col("s_author").alias("author_id"),
                 F.to_date("at").alias("day"))
        .agg(*[F.sum(one).cast("bigint").alias(PARTIAL_COLUMNS[name]) for name, one in counts.items()])
    )


def window_days(as_of: datetime) -> tuple[datetime, datetime, date]:
    """(window start as_of - 30 d, the midnight after it, as_of's day): [start, midnight) is read from silver, the
    days from the midnight's through as_of's from the partials (as_of's own day holds only signals before as_of)."""
    start = as_of - timedelta(days=WINDOW_DAYS)
    midnight = datetime.combine(start.date() + timedelta(days=1), time(), UTC)
    return start, midnight, as_of.date()


def ring_features(
    engagements: DataFrame,
    view_events: DataFrame,
    relationships: DataFrame,
    as_of: datetime,
    days: DataFrame | None = None,
    whole_days: DataFrame | None = None,
) -> DataFrame:
    """The gold table: ring_features_at evaluated at t = as_of for every pair with a non-default feature (a
    counted signal in [as_of - 30 d, as_of) or a follow / close-friend edge holding just before as_of; self
    pairs left out), t exposed as as_of.

    The counts are the window's whole days from `days` (signal_days() rows, at least those of the days after the
    window's first through as_of's; default: computed from the events) plus the signals of the window's first,
    partial day from the events; with one t for all pairs there is nothing to join: those and the holding edges are
    one union, aggregated per pair (tests check it equals ring_features_at on the same pairs). `whole_days`
    (viewer_id, author_id and the partial's count columns) replaces `days`: any rows whose per-pair sums are those
    of the window's whole days (gold.ring_signal_sums' and the partials from its sealed day on).
    """
    as_of = utc(as_of)
    t = activity.instant(as_of)
    counts = _signal_counts()
    start, midnight, last_day = window_days(as_of)
    if days is None:
        days = signal_days(engagements, view_events, as_of)
    relation_false = [F.lit(False).alias(name) for name in RELATION_FEATURES]
    first_day = (
        _signals(engagements, view_events)
        .filter((F.col("at") >= activity.instant(start)) & (F.col("at") < activity.instant(midnight)))
        .select(
            F.col("s_viewer").alias("viewer_id"),
            F.col("s_author").alias("author_id"),
            *[one.alias(name) for name, one in counts.items()],
            *relation_false,
        )
    )
    if whole_days is None:
        whole_days = days.filter((F.col("day") >= F.lit(midnight.date())) & (F.col("day") <= F.lit(last_day)))
    whole = whole_days.select(
        "viewer_id", "author_id", *[F.col(column).alias(name) for name, column in PARTIAL_COLUMNS.items()],
        *relation_false,
    )
    signals = first_day.unionByName(whole)
    holds = holds_at_sql("r", relation_instant(spark_io.ts_literal(utc(as_of)), strictly_before=True))
    edges = (
        relation_edges(relationships, list(RELATION_FEATURES.values()))
        .alias("r")
        .filter(F.expr(holds))
        .select(
            F.col("viewer_key").alias("viewer_id"),
            F.col("author_key").alias("author_id"),
            *[F.lit(0).alias(name) for name in counts],
            *[(F.col("flag") == flag).alias(name) for name, flag in RELATION_FEATURES.items()],
        )
    )
    pairs = (
        signals.unionByName(edges)
        .filter(F.col("viewer_id") != F.col("author_id"))
        .groupBy("viewer_id", "author_id")
        .agg(
            *[F.sum(name).cast("bigint").alias(name) for name in counts],
            *[any_true(name).alias(name) for name in RELATION_FEATURES],
        )
    )
    return pairs.select(
        "viewer_id",
        "author_id",
        t.alias("as_of"),
        *ENGAGEMENT_FEATURES,
        "story_views_30d",
        activity.ratio("_completed_views", "story_views_30d").alias("completion_rate_30d"),
        *RELATION_FEATURES,
        F.lit(FEATURE_VERSION).alias("feature_version"),
    )


SUMS = "ring_signal_sums"
_PAIR = ["viewer_id", "author_id"]


def sums_span(as_of: datetime, lateness: timedelta) -> tuple[date, date]:
    """(from_day, before_day) of gold.ring_signal_sums as of as_of: the window's first whole day, and the day of
    as_of minus the lateness window (the partials before it are final: later events are quarantined), not before
    the first."""
    _, midnight, _ = window_days(as_of)
    return midnight.date(), max(midnight.date(), sealed_day(as_of, lateness))


def signal_sums(days: DataFrame, from_day: date, before_day: date) -> DataFrame:
    """gold.ring_signal_sums from partial rows (gold.ring_signal_days' columns; a row of negated counts takes a
    day out): per (viewer, author) the counts summed over the days in [from_day, before_day), pairs whose sums
    are all 0 left out (every partial row counts a signal, so a pair summed from none has none)."""
    counts = list(PARTIAL_COLUMNS.values())
    return (
        days.filter((F.col("day") >= F.lit(from_day)) & (F.col("day") < F.lit(before_day)))
        .groupBy(*_PAIR)
        .agg(*[F.sum(c).cast("bigint").alias(c) for c in counts])
        .filter(reduce(operator.or_, [F.col(c) != 0 for c in counts]))
        .withColumn("from_day", F.lit(from_day))
        .withColumn("before_day", F.lit(before_day))
    )


def _as_day_rows(sums: DataFrame, day: date, sign: int = 1) -> DataFrame:
    """State rows (or partial rows, sign -1: taken out) as partial rows dated `day`."""
    return sums.select(*_PAIR, F.lit(day).alias("day"),
                       *[(F.col(c) * sign).alias(c) for c in PARTIAL_COLUMNS.values()])


def advance_sums(spark: SparkSession, settings: Settings, horizon: Horizon, partials: DataFrame
                 ) -> tuple[dict[str, int], tuple[date, date]]:
    """Bring gold.ring_signal_sums to the run's span (after the run wrote its partials); (rows written, the span).
    Unchanged while the span stays and the run recomputes no day before its sealed day; when the span moves (once
    a day) the newly sealed days' partials are added and the days the window left subtracted (exact integer
    counts); rebuilt from the partials of the span's days when the run recomputed sealed days, on a full refresh,
    without the table, or when the span moved past everything the table holds."""
    from_day, before_day = span = sums_span(horizon.as_of, settings.lateness_window)
    held = None if horizon.refresh else spark_io.constant_dates(spark, settings, "gold", SUMS,
                                                                  ("from_day", "before_day"))
    first_day = horizon.first_day
    sealed_kept = held is not None and first_day is not None and first_day >= held[1]
    if sealed_kept and held == span:
        return {}, span
    if not (sealed_kept and held is not None and held[0] <= from_day <= held[1] <= before_day):
        return write_gold(signal_sums(partials, from_day, before_day), settings, SUMS), span
    held_from, held_before = held
    columns = [*_PAIR, "day", *PARTIAL_COLUMNS.values()]
    sealed_now = partials.filter((F.col("day") >= F.lit(held_before)) & (F.col("day") < F.lit(before_day)))
    left = partials.filter((F.col("day") >= F.lit(held_from)) & (F.col("day") < F.lit(from_day)))

    def advanced(state: DataFrame) -> DataFrame:
        days = (_as_day_rows(state, from_day).unionByName(sealed_now.select(*columns))
                .unionByName(_as_day_rows(left, from_day, -1)))
        return signal_sums(days, from_day, before_day)

    with spark_io.scratch(settings) as materialize:
        rows = spark_io.overwrite_from_current(spark, settings, "gold", SUMS, advanced, materialize)
    return {SUMS: rows}, span


def run(spark: SparkSession, settings: Settings, horizon: Horizon) -> dict[str, int]:
    """gold.ring_signal_days of the days from the run's first day on (Horizon.first_day: every view or engagement a
    run changes happens at or after its event horizon; every day on a full refresh, and at least the window's whole
    days on one within retention, whose horizon starts later), then gold.ring_features as of
    the run's as_of (whole-table overwrite: every pair's 30-day window moves with as_of) from those partials and the
    silver rows of the window's first day."""
    silver = {
        name: spark_io.read_table(spark, settings, "silver", name)
        for name in ("engagements", "view_events", "relationships")
    }
    as_of = utc(horizon.as_of)
    start, midnight, _ = window_days(as_of)
    if horizon.lo is None:
        rows = write_gold(signal_days(silver["engagements"], silver["view_events"], as_of), settings, PARTIAL)
    else:
        first_day = horizon.first_day
        assert first_day is not None
        if horizon.refresh:  # within retention: the window's whole days too (an upgrade that added the table). The gold
            # gate validates the partials from first_day on, ring_features (which reads them all) whole
            first_day = min(first_day, midnight.date())
        since = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
        rows = write_gold(signal_days(*_from(silver, since), as_of), settings, PARTIAL,
                          f"day >= DATE '{first_day.isoformat()}'")
    partials = spark_io.read_table(spark, settings, "gold", PARTIAL)
    written, (_, before_day) = advance_sums(spark, settings, horizon, partials)
    rows |= written
    # the window's whole days: the sums of those before the sealed day, then the partials from it on
    counts = ["viewer_id", "author_id", *PARTIAL_COLUMNS.values()]
    whole_days = spark_io.read_table(spark, settings, "gold", SUMS).select(*counts).unionByName(
        partials.filter((F.col("day") >= F.lit(before_day)) & (F.col("day") <= F.lit(as_of.date()))).select(*counts))
    engagements, views = _from(silver, start, midnight)
    return rows | write_gold(ring_features(engagements, views, silver["relationships"], as_of,
                                           whole_days=whole_days), settings, NAME)


def _from(silver: dict[str, DataFrame], since: datetime, until: datetime | None = None
          ) -> tuple[DataFrame, DataFrame]:
    """(engagements, view_events) at or after `since` (and before `until`)."""
    eng = silver["engagements"].filter(F.col("at") >= activity.instant(since))
    views = activity.views_since(silver["view_events"], since)
    if until is not None:
        eng = eng.filter(F.col("at") < activity.instant(until))
        views = views.filter(F.col("viewed_at") < activity.instant(until))
    return eng, views

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

import logging
import operator
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce
from typing import NamedTuple

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import spark_io
from jobs.engine_workarounds import any_true, lookup
from jobs.gold import activity
from jobs.gold.appended import gained_rows, with_stamp
from jobs.gold.output import write_gold
from jobs.horizon import Horizon
from jobs.merged_tables import merged_frame
from jobs.relation_flags import POINT_KEYS, relation_edges, relation_flags_at, relation_instant
from storylake import increments, lake
from storylake.clock import utc
from storylake.merge_on_read import REMOVED, RING_FEATURES
from storylake.rules.arrival import sealed_day
from storylake.rules.audience import holds_at_sql, relation_flag
from storylake.rules.lifetimes import interval_sql
from storylake.rules.views import FULL_COMPLETION
from storylake.settings import Settings
from storylake.summed_rows import RING_SIGNAL_DAYS

log = logging.getLogger(__name__)
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
    days on one within retention, whose horizon starts later), stored as summed rows (storylake.summed_rows): the
    counts of the silver rows the run added appended when that is all it changed (jobs.gold.appended), else the
    days rewritten; then gold.ring_features as of the run's as_of, stored merge-on-read (storylake.merge_on_read):
    an incremental run recomputes only the pairs whose features can differ from the last good run's
    (changed_pairs) and rewrites the changes table; the base is rewritten whole on a full refresh, without a usable
    last good state, or when the changes outgrow it (REBASE_SHARE, REBASE_AGE)."""
    silver = {
        name: spark_io.read_table(spark, settings, "silver", name)
        for name in ("engagements", "view_events", "relationships")
    }
    as_of = utc(horizon.as_of)
    start, midnight, _ = window_days(as_of)
    state = _last_good_state(settings, horizon)  # read before the partials are overwritten
    first_day = horizon.first_day
    added: DataFrame | None = None  # the partial rows the run appended
    with spark_io.scratch(settings) as materialize:
        if horizon.lo is None:
            rows = write_gold(with_stamp(signal_days(silver["engagements"], silver["view_events"], as_of),
                                      RING_SIGNAL_DAYS, horizon), settings, PARTIAL)
        else:
            assert first_day is not None
            if horizon.refresh:  # within retention: the window's whole days too (an upgrade that added the table).
                # The gold gate validates the partials from first_day on, ring_features (which reads them all) whole
                first_day = min(first_day, midnight.date())
            day_slice = f"day >= DATE '{first_day.isoformat()}'"
            gained = gained_rows(spark, settings, horizon, RING_SIGNAL_DAYS)
            if gained is not None:  # the counts of the silver rows the run added, appended
                new = signal_days(gained.rows["engagements"], gained.rows["view_events"], as_of)
                added = materialize(with_stamp(new, RING_SIGNAL_DAYS, horizon), "appended_partials")
                rows = {PARTIAL: spark_io.append_table(added, settings, "gold", PARTIAL, inside=day_slice)
                        } if gained.files else {}
            else:
                since = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
                rows = write_gold(with_stamp(signal_days(*_from(silver, since), as_of), RING_SIGNAL_DAYS, horizon),
                                  settings, PARTIAL, day_slice)
        # stored rows: every reader below sums them (per pair, or per pair and day)
        partials = spark_io.read_stored(spark, settings, "gold", PARTIAL)
        return rows | _features(spark, settings, horizon, state, silver, partials, added, materialize)


def _features(spark: SparkSession, settings: Settings, horizon: Horizon, state: LastGood | None,
              silver: dict[str, DataFrame], partials: DataFrame, added: DataFrame | None,
              materialize: spark_io.Materialize) -> dict[str, int]:
    """gold.ring_signal_sums and gold.ring_features (merge-on-read) from the run's partials (`partials`: the stored
    rows; `added`: the rows the run appended, None when it rewrote its days)."""
    as_of = utc(horizon.as_of)
    start, midnight, _ = window_days(as_of)
    first_day = horizon.first_day
    rows, (_, before_day) = advance_sums(spark, settings, horizon, partials)
    # the window's whole days: the sums of those before the sealed day, then the partials from it on
    counts = ["viewer_id", "author_id", *PARTIAL_COLUMNS.values()]
    whole_days = spark_io.read_table(spark, settings, "gold", SUMS).select(*counts).unionByName(
        partials.filter((F.col("day") >= F.lit(before_day)) & (F.col("day") <= F.lit(as_of.date()))).select(*counts))
    engagements, views = _from(silver, start, midnight)
    if state is None or first_day is None:
        log.info("ring_features: base rewritten whole (no last good state to change)")
        features = ring_features(engagements, views, silver["relationships"], as_of, whole_days=whole_days)
        return rows | write_gold(features, settings, NAME) | write_gold(_no_changes(spark, as_of), settings, CHANGES)
    partial = None if added is None else added.select("viewer_id", "author_id")
    pairs = materialize(changed_pairs(spark, settings, horizon, state, silver, partials, first_day, partial), "pairs")
    k = pairs.select(F.col("viewer_id").alias("_cv"), F.col("author_id").alias("_ca"))

    def of_pairs(df: DataFrame, viewer: str, author: str) -> DataFrame:
        hit = (F.col(viewer) == F.col("_cv")) & (F.col(author) == F.col("_ca"))
        return lookup(df, k, hit, "inner").select(*df.columns)

    rel = silver["relationships"]
    # either direction: relation_edges orients each relation (the result is cut to the pairs below)
    rel_users = k.select(F.col("_cv").alias("_u"), F.col("_ca").alias("_o")).unionByName(
        k.select(F.col("_ca").alias("_u"), F.col("_cv").alias("_o"))).distinct()
    related = lookup(rel, rel_users, (F.col("user_id") == F.col("_u")) & (F.col("other_user_id") == F.col("_o")),
                     "inner").select(*rel.columns)
    recomputed = ring_features(
        of_pairs(engagements, "actor_id", "target_user_id"), of_pairs(views, "viewer_id", "author_id"), related,
        as_of, whole_days=of_pairs(whole_days, "viewer_id", "author_id"))
    written = write_gold(_changes(spark, settings, state, pairs, recomputed, as_of), settings, CHANGES)
    n = written[CHANGES]
    log.info("ring_features: %d changes rows over a base of %d rows (the last good run as of %s)",
             n, state.base_rows, state.as_of.isoformat())
    if n <= REBASE_SHARE * state.base_rows or state.base_rows < REBASE_MIN_ROWS:
        return rows | written
    # the changes outgrew the base: merged into a new one (a crash in between leaves the changes as they are: the
    # same rows; the next run finds the base written since its last good version and rewrites both)
    base = spark_io.read_version(spark, settings, "gold", NAME, state.base_version)
    changes = spark_io.read_stored(spark, settings, "gold", CHANGES)
    table = merged_frame(RING_FEATURES, base, changes, activity.instant(as_of))
    return rows | write_gold(table, settings, NAME) | write_gold(_no_changes(spark, as_of), settings, CHANGES)


CHANGES = "ring_features_changes"
# The base is rewritten (with the changes merged in) once the changes hold more rows than this share of it, or when
# it is older than REBASE_AGE (so no base row outlives the table's 30-day retention); a base smaller than
# REBASE_MIN_ROWS is never rewritten for its changes' size (rewriting it would cost as little as the changes).
REBASE_SHARE = 0.25
REBASE_MIN_ROWS = 100_000
REBASE_AGE = timedelta(days=7)


class LastGood(NamedTuple):
    """The last good run's ring features (what an incremental run starts from)."""

    base_version: int
    base_rows: int
    changes_version: int
    partials_version: int
    as_of: datetime  # the changes' stamp: the features are as of it


def _last_good_state(settings: Settings, horizon: Horizon) -> LastGood | None:
    """The last good versions of the base, the changes and the partials, None when the run rebuilds the table whole:
    a full refresh, Parquet storage, a missing table or version, a base written since its last good version (a failed
    run's rebase), a last good run after this one's as_of, or a base older than REBASE_AGE."""
    from jobs.gold.touched import good_version

    if horizon.refresh or horizon.lo is None or settings.storage != "delta" or increments.last(settings) is None:
        return None
    versions = [good_version(settings, name) for name in (NAME, CHANGES, PARTIAL)]
    if None in versions:
        return None
    base_v, changes_v, partials_v = (int(v) for v in versions if v is not None)
    base_path = settings.table_path("gold", NAME)
    if not lake.rows_unchanged_since(base_path, base_v):
        return None
    base = lake.version_stats(base_path, base_v, "as_of")
    stamp = lake.version_stats(settings.table_path("gold", CHANGES), changes_v, "as_of")
    if base is None or stamp is None or base[1] is None:
        return None
    base_as_of = utc(base[1])
    last = base_as_of if stamp[1] is None else utc(stamp[1])  # no changes since the base: its own as_of
    as_of = utc(horizon.as_of)
    if last > as_of or base_as_of < as_of - REBASE_AGE:
        return None
    return LastGood(base_v, base[0], changes_v, partials_v, last)


def changed_pairs(spark: SparkSession, settings: Settings, horizon: Horizon, state: LastGood,
                  silver: dict[str, DataFrame], partials: DataFrame, first_day: date,
                  partial: DataFrame | None = None) -> DataFrame:
    """(viewer_id, author_id) of every pair whose features as of the run's as_of T can differ from those as of the last
    good run's T0 (a superset is harmless: a pair recomputed unchanged is written unchanged):
      - a partial (gold.ring_signal_days) of the pair changed: the pairs of the rows the run appended (`partial`), or,
        when it rewrote the days from first_day on, those of the stored rows that differ from the last good
        version's (the pair's new or re-decided signals);
      - a signal of the pair left the window: at [T0 - 30 d, T - 30 d);
      - a follow or close-friend interval of the two users starts or ends in [T0, T] (the flags are evaluated just
        before T), or the run's new relationship events name them (a late event changes older intervals);
      - the stamp key (storylake.merge_on_read), so that every run writes at least its tombstone."""
    from jobs.horizon import new_bronze

    as_of = utc(horizon.as_of)
    pair = ["viewer_id", "author_id"]
    columns = [*pair, "day", *PARTIAL_COLUMNS.values()]
    if partial is None:
        day = F.col("day") >= F.lit(first_day)
        now = partials.filter(day).select(*columns).withColumn("_n", F.lit(1))
        before = spark_io.read_version(spark, settings, "gold", PARTIAL, state.partials_version).filter(day).select(
            *columns).withColumn("_n", F.lit(-1))
        partial = now.unionByName(before).groupBy(*columns).agg(F.sum("_n").alias("_n")).filter(
            F.col("_n") != 0).select(*pair)
    engagements, views = _from(silver, state.as_of - timedelta(days=WINDOW_DAYS),
                               as_of - timedelta(days=WINDOW_DAYS))
    left = _signals(engagements, views).select(F.col("s_viewer").alias("viewer_id"),
                                               F.col("s_author").alias("author_id"))
    t0, t1 = activity.instant(state.as_of), activity.instant(as_of)
    moved = silver["relationships"].filter(
        F.col("relation").isin(*_RELATIONS)
        & (F.col("valid_from").between(t0, t1) | F.col("valid_to").between(t0, t1)))
    previous = increments.last(settings)
    assert previous is not None
    named = new_bronze(spark, settings, "relationship", previous, as_of, horizon.upto_batch).filter(
        F.col("user_id").isNotNull() & F.col("other_user_id").isNotNull())
    users = moved.select("user_id", "other_user_id").unionByName(named.select("user_id", "other_user_id"))
    related = users.select(F.col("user_id").alias("viewer_id"), F.col("other_user_id").alias("author_id")).unionByName(
        users.select(F.col("other_user_id").alias("viewer_id"), F.col("user_id").alias("author_id")))
    stamp = spark.createDataFrame([RING_FEATURES.stamp_key], "viewer_id bigint, author_id bigint")
    return partial.unionByName(left).unionByName(related).unionByName(stamp).distinct()


def _changes(spark: SparkSession, settings: Settings, state: LastGood, pairs: DataFrame, recomputed: DataFrame,
             as_of: datetime) -> DataFrame:
    """The changes table's next rows: the last good changes of the pairs not recomputed (stamped as of now), and for
    each recomputed pair its row, or a tombstone when it has none (one join of the pairs with their rows)."""
    cols = RING_FEATURES.value_columns()
    pair = ["viewer_id", "author_id"]
    t = activity.instant(as_of)
    old = spark_io.read_version(spark, settings, "gold", CHANGES, state.changes_version)
    hit = pairs.select(F.col("viewer_id").alias("_pv"), F.col("author_id").alias("_pa"), F.lit(True).alias("_hit"))
    kept = (lookup(old, hit, (F.col("viewer_id") == F.col("_pv")) & (F.col("author_id") == F.col("_pa")))
            .filter(F.col("_hit").isNull()).withColumn("as_of", t).select(*cols, REMOVED))
    tomb = _tombstone_values(as_of)
    found = pairs.join(recomputed.withColumn("_found", F.lit(True)), pair, "left")
    live = F.col("_found").isNotNull()
    now = found.select(*pair, *[F.when(live, F.col(c)).otherwise(tomb[c]).alias(c) for c in cols if c not in pair],
                       (~live).alias(REMOVED))
    return kept.unionByName(now)


def _tombstone_values(as_of: datetime) -> dict[str, Column]:
    """The values of a tombstone's columns but its pair and `removed`: counts 0, rate null, flags false."""
    return {
        **{name: F.lit(0).cast("bigint") for name in (*ENGAGEMENT_FEATURES, "story_views_30d")},
        "completion_rate_30d": F.lit(None).cast("double"),
        **{name: F.lit(False) for name in RELATION_FEATURES},
        "as_of": activity.instant(as_of),
        "feature_version": F.lit(FEATURE_VERSION),
    }


def _tombstones(pairs: DataFrame, as_of: datetime) -> DataFrame:
    """A changes row with `removed` true for each of `pairs` (viewer_id, author_id)."""
    values = _tombstone_values(as_of)
    return pairs.select("viewer_id", "author_id", *[values[c].alias(c) for c in RING_FEATURES.value_columns()
                                                    if c in values], F.lit(True).alias(REMOVED))


def _no_changes(spark: SparkSession, as_of: datetime) -> DataFrame:
    """The changes table of a freshly written base: no row (its rows are as of the base's as_of)."""
    none = spark.createDataFrame([], "viewer_id bigint, author_id bigint")
    return _tombstones(none, as_of)


_RELATIONS = sorted({relation_flag(flag).relation for flag in RELATION_FEATURES.values()})


def _from(silver: dict[str, DataFrame], since: datetime, until: datetime | None = None
          ) -> tuple[DataFrame, DataFrame]:
    """(engagements, view_events) at or after `since` (and before `until`)."""
    eng = silver["engagements"].filter(F.col("at") >= activity.instant(since))
    views = activity.views_since(silver["view_events"], since)
    if until is not None:
        eng = eng.filter(F.col("at") < activity.instant(until))
        views = views.filter(F.col("viewed_at") < activity.instant(until))
    return eng, views

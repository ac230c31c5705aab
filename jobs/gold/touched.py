"""The stories, authors and segments whose gold rows an incremental run can change, and the last good rows of every
other one.

A story's insights (gold.segment_insights, gold.story_insights) are a function of its segments and of their silver
interaction rows. An incremental run's new bronze rows (jobs.horizon.new_bronze: what arrived since the last good
run) can change those for the segments they name, and further:
- an interaction (view, gesture, sticker answer, engagement): its segment;
- a segment_created/deleted/archived: its segment; a creation also every later segment of its author (created at
  or after it), whose story the story fold may now assign differently;
- a relationship change between users u and o at t: the segments of u and of o live at or after t (the audience
  rules of every interaction with them from t on read the pair's relationships and the author's privacy).
Every story a touched segment belongs to now or belonged to in the last good gold rows is touched, and so is every
author of one. The run recomputes the touched stories of its gold horizon (segment and story insights), the touched
segments' sticker results and the touched authors' day rows (author_viewer_days, author_daily_insights,
author_hourly_insights: an author's rows are a function of the silver rows attributed to their segments), and keeps
every other row as the last good run left it (the version that passed the gold gate, not a later failed run's):
that equals recomputing the whole horizon, which tests/test_incremental.py checks against full runs on random
arrival orders.
"""

from __future__ import annotations

import functools
import logging
import operator
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from jobs import spark_io
from jobs.engine_workarounds import lookup, without
from jobs.horizon import INTERACTIONS, Horizon, ids_filter, new_bronze, of_ids, recent_floor
from jobs.silver.touched import changed_segments
from storylake import audit, contracts, increments, lake, latest_rows, merge_on_read, summed_rows
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)
STORY = "_touched_story"
AUTHOR = "_touched_author"
SEGMENT = "_touched_segment"
STAMP = contracts.CHANGED_AT  # the column stamped holds: the as_of of the run that last changed the row
# a gold row's key column -> the column of the Touched frame holding the touched keys of that kind
KEY_COLUMNS = {"story_id": STORY, "author_id": AUTHOR, "segment_id": SEGMENT}


def touched_segments(spark: SparkSession, settings: Settings, horizon: Horizon,
                     previous: increments.Increment) -> DataFrame:
    """(segment_id) of every segment whose silver rows the run's new bronze rows can change (module docstring): the
    segments the new interactions name, and jobs.silver.touched.changed_segments."""
    from pyspark.sql import functions as F

    frames = [new_bronze(spark, settings, event, previous, horizon.as_of, horizon.upto_batch).select("segment_id")
              for event in INTERACTIONS]
    out = changed_segments(spark, settings, horizon, previous)
    for frame in frames:
        out = out.unionByName(frame)
    return out.filter(F.col("segment_id").isNotNull()).distinct()


class Touched(NamedTuple):
    """What an incremental run can change in gold (touched_keys), each materialized, one column each."""

    stories: DataFrame  # (_touched_story)
    authors: DataFrame  # (_touched_author): the authors of the touched segments
    segments: DataFrame  # (_touched_segment)


def touched_keys(spark: SparkSession, settings: Settings, horizon: Horizon,
                 materialize: spark_io.Materialize) -> Touched | None:
    """The stories and authors the run can change (module docstring): those of every touched segment, now
    (silver.segments) or in the last good gold.segment_insights; None when the run recomputes its whole gold
    horizon: a full refresh, no last good run, Parquet storage, or no last good gold.segment_insights (with its
    files) to take the other stories' rows from."""
    from pyspark.sql import functions as F

    previous = increments.last(settings)
    if horizon.refresh or previous is None or settings.storage != "delta":
        return None
    version = good_version(settings, "segment_insights")
    if version is None:
        return None
    segments = materialize(touched_segments(spark, settings, horizon, previous), "touched_segments")
    ids = segments.select(F.col("segment_id").alias("_t_sid"))
    owners = [F.col("story_id").alias(STORY), F.col("author_id").alias(AUTHOR)]
    # the recent files' segments, and a stale id's own (of_ids): not two years of history
    keep = ids_filter(ids, "segment_id", recent_floor(settings, previous))
    now = of_ids(spark_io.read_table(spark, settings, "silver", "segments"), ids, "segment_id", None, keep).select(
        *owners)
    before = of_ids(spark_io.read_version_as_seen(spark, settings, "gold", "segment_insights", version), ids,
                    "segment_id", None, keep).select(*owners)
    both = materialize(now.unionByName(before), "touched_owners")
    stories = materialize(both.select(STORY).filter(F.col(STORY).isNotNull()).distinct(), "touched_stories")
    authors = materialize(both.select(AUTHOR).filter(F.col(AUTHOR).isNotNull()).distinct(), "touched_authors")
    log.info("gold: %d touched stories, %d touched authors (%d touched segments)", stories.count(), authors.count(),
             segments.count())
    return Touched(stories, authors, segments.select(F.col("segment_id").alias(SEGMENT)))


def unchanged(settings: Settings, name: str, keys: DataFrame | None) -> bool:
    """The run touches none of the table's keys (`keys`: one of the Touched frames) and gold.<name> holds its last
    good version's rows (only compactions since): every row of its horizon would be written back as it is, so the
    job writes nothing (an hour without new events otherwise rewrote ~250k segment insights of the 7-day
    benchmark's horizon)."""
    if keys is None:
        return False
    version = audit.last_good_version(settings, f"gold.{name}")
    if version is None or not lake.rows_unchanged_since(settings.table_path("gold", name), version):
        return False
    return keys.limit(1).count() == 0


def good_version(settings: Settings, name: str) -> int | None:
    """gold.<name>'s last good version when its files are still there to keep rows from, else None."""
    version = audit.last_good_version(settings, f"gold.{name}")
    if version is None or lake.version_files(settings.table_path("gold", name), version) is None:
        return None
    return version


class Kept(NamedTuple):
    """What a keyed job writes back beside its recomputed rows (keep, scope): `rows`, the slice's rows of the keys it
    does not recompute, as the last good run left them; `previous`, that run's rows of the keys it recomputes, which
    with_kept compares the recomputed rows with (a recomputed row without its previous row there, e.g. a segment
    whose previous row named an untouched story, takes the run's as_of); `name`, the gold table's."""

    rows: DataFrame
    previous: DataFrame
    name: str


def keep(spark: SparkSession, settings: Settings, name: str, within: Column, keys: DataFrame | None, column: str,
         around: Column | None = None) -> tuple[Kept | None, DataFrame | None]:
    """(the rows of gold.<name> matching `within` (the slice the job rewrites) as the last good run left them, but
    those whose `column` is a touched key: written back beside the recomputed rows; the touched `keys` to recompute,
    the Touched frame of that column). (None, None) when the job recomputes the whole slice: no touched keys given,
    or no last good version of the table with its files."""
    from pyspark.sql import functions as F

    version = None if keys is None else good_version(settings, name)
    if keys is None or version is None:
        return None, None
    key = KEY_COLUMNS[column]
    previous = spark_io.read_version_as_seen(spark, settings, "gold", name, version).filter(within)
    # the stamping compares the recomputed rows with the previous rows of the touched keys only: hashing the whole
    # slice (2.7M segment insights at 10M views a day, ~17% of them touched) cost most of the comparison
    growing = latest_rows.growing(f"gold.{name}")
    mine = (of_keys(previous, keys, column) if growing is None
            else latest_of_keys(spark, settings, growing, version, within, keys, column, around))
    return Kept(without(previous, keys, F.col(column) == F.col(key), [key]), mine, name), keys


def latest_of_keys(spark: SparkSession, settings: Settings, growing: latest_rows.LatestRows, version: int,
                   within: Column, keys: DataFrame, column: str, around: Column | None = None) -> DataFrame:
    """of_keys(the gold table stored as growing or restated rows `growing` (storylake.latest_rows) at `version` as
    its readers saw it, filtered by `within`, `keys`, `column`): only the stored rows of the keys that have a row
    naming a touched key are deduplicated (a key's latest row may name another story than its earlier rows): at 10M
    views a day ~0.3M of the slice's ~3.9M stored segment insights. `around`: a filter on the stored rows that keeps
    every row of a key whose latest row `within` admits (story_rows_around), so that their scans skip the older
    files (of two years of history) by their statistics."""
    from pyspark.sql import functions as F

    from jobs.merged_tables import latest_frame, same_keys

    layer, name = growing.table.split(".")
    stored = spark_io.read_version(spark, settings, layer, name, version)
    if around is not None:
        stored = stored.filter(around)
    named = of_keys(stored.select(*dict.fromkeys((*growing.key, column))), keys, column).select(
        *[F.col(k).alias(f"_lk_{k}") for k in growing.key]).distinct()
    theirs = lookup(stored, named, same_keys(growing.key, "_lk_"), "inner").select(
        *contracts.get(growing.table).column_names)
    return of_keys(latest_frame(growing, theirs).filter(within), keys, column)


def of_keys(rows: DataFrame, keys: DataFrame | None, column: str) -> DataFrame:
    """`rows` whose `column` is a touched key (`keys`: the Touched frame of that column; every row when None); same
    columns."""
    from pyspark.sql import functions as F

    if keys is None:
        return rows
    key = KEY_COLUMNS[column]
    return lookup(rows, keys, F.col(column) == F.col(key), "inner").drop(key)


def scope(spark: SparkSession, settings: Settings, name: str, horizon: Horizon, stories: DataFrame | None,
          inputs: dict[str, DataFrame], with_story: Sequence[str] = ()
          ) -> tuple[dict[str, DataFrame], Kept | None]:
    """(the silver inputs to recompute, gold.<name>'s kept rows) for a story-keyed job: `inputs`
    (segment_insights.horizon_inputs) restricted to the touched `stories` (the inputs named in `with_story` also
    given their segment's story_id, see restrict) and the horizon's other rows as the last good run left them
    (without a recomputed segment's, whichever story they name); `(inputs, None)` when the whole horizon is
    recomputed (no touched stories, or no last good version of the table)."""
    from pyspark.sql import functions as F

    kept, stories = keep(spark, settings, name, horizon.admits("story_start", gold=True), stories, "story_id",
                         story_rows_around(settings, horizon))
    if kept is None or stories is None:
        return inputs, None
    inputs = restrict(inputs, stories, with_story)
    if "segment_id" in contracts.get(f"gold.{name}").column_names:
        recomputed = inputs["segments"].select(F.col("segment_id").alias("_rc_sid"))
        kept = kept._replace(rows=without(kept.rows, recomputed, F.col("segment_id") == F.col("_rc_sid"), ["_rc_sid"]))
    return inputs, kept


def story_rows_around(settings: Settings, horizon: Horizon) -> Column | None:
    """A filter on the stored rows of a story-keyed gold table (segment and story insights, anchored at story_start)
    that keeps every stored row of each key whose latest row starts in the gold horizon (None: no horizon). A key's
    rows name stories of one segment (or a story's first one), which start less than a story span before its
    creation; a late duplicate creation that wins moves that creation earlier by at most the lateness window and
    the clock skew (the lifetime in the margin covers a skew of up to 24 h)."""
    from pyspark.sql import functions as F

    from storylake.rules.lifetimes import SEGMENT_LIFETIME, STORY_SPAN

    if horizon.gold_lo is None:
        return None
    margin = STORY_SPAN + SEGMENT_LIFETIME + settings.lateness_window
    return F.col("story_start") >= F.lit(horizon.gold_lo - margin).cast("timestamp")


def with_kept(df: DataFrame, kept: Kept | None) -> DataFrame:
    """The recomputed rows `df` and the kept rows (scope, keep), in the table's columns; in a table with an as_of
    column, each recomputed row equal to its row in the last good slice (Kept.previous) keeps that row's as_of
    (stamped)."""
    if kept is None:
        return df
    key = f"gold.{kept.name}"
    columns = readers_columns(key)
    # a summed table's rows carry the run that wrote them (storylake.summed_rows), not the one that last changed them
    if STAMP in columns and summed_rows.summed(key) is None:
        df = stamped(df, kept.previous, merge_on_read.readers_key(key), columns)
    return kept.rows.select(*columns).unionByName(df.select(*columns))


def readers_columns(key: str) -> list[str]:
    """The columns readers see of gold table `key` (a contract key): its contract's, but the storage columns of a table
    stored as restated rows (storylake.latest_rows)."""
    growing = latest_rows.growing(key)
    return growing.value_columns() if growing is not None else list(contracts.get(key).column_names)


def stamped(rows: DataFrame, previous: DataFrame, key: Sequence[str], columns: Sequence[str]) -> DataFrame:
    """`rows` (`columns`; recomputed by this run, each as of the run) where each row whose every column but as_of
    equals those of `previous`'s row of the same `key` (nulls equal to nulls) takes that row's as_of instead: a gold
    row's as_of is the as_of of the run that last changed it, so a row an hourly run recomputes to the same values
    is stored unchanged (publish copies only what changed, serving/insights_history.py).

    The rows are compared by two 64-bit hashes of their other columns (in two orders, the second after a constant,
    each with the columns' null flags, so that a value moving between two null columns changes both), as the gold
    gate's diff does (jobs.quality.gate): the join's build side holds 32 bytes a row. A changed row keeps an earlier
    as_of only if both its hashes equal its previous row's."""
    from pyspark.sql import functions as F

    first, second = row_hashes(columns, key)
    old = previous.select(*[F.col(k).alias(f"_st_{k}") for k in key], first.alias("_st_h"), second.alias("_st_g"),
                          F.col(STAMP).alias("_st_as_of"))
    new = rows.select(*columns, first.alias("_st_nh"), second.alias("_st_ng"))
    on = functools.reduce(operator.and_, [F.col(k) == F.col(f"_st_{k}") for k in key])
    same = (F.col("_st_nh") == F.col("_st_h")) & (F.col("_st_ng") == F.col("_st_g"))
    return lookup(new, old, on).select(
        *[F.when(same, F.col("_st_as_of")).otherwise(F.col(STAMP)).alias(STAMP) if c == STAMP else F.col(c)
          for c in columns])


def row_hashes(columns: Sequence[str], key: Sequence[str]) -> tuple[Column, Column]:
    """The two 64-bit hashes stamped() and restated() compare rows by: of `columns` but the `key` and the stamp, in
    two orders (the second after a constant), each with the columns' null flags."""
    from pyspark.sql import functions as F

    values = [c for c in columns if c not in key and c != STAMP]
    nulls = [F.col(c).isNull() for c in values]
    return F.xxhash64(*values, *nulls), F.xxhash64(F.lit("storylake"), *reversed(values), *nulls)


def restrict(inputs: dict[str, DataFrame], stories: DataFrame, with_story: Sequence[str] = ()
             ) -> dict[str, DataFrame]:
    """The silver inputs of a story's insights (segment_insights.horizon_inputs: segments and their interaction
    rows) restricted to the touched stories: their segments, and the rows of those segments. The inputs named in
    `with_story` (view_events, navigation: silver keeps a segment's story on its segment row only) also get their
    segment's story_id from the same join, instead of a second join with the segments
    (jobs.gold.activity.with_story)."""
    from pyspark.sql import functions as F

    segments = of_keys(inputs["segments"], stories, "story_id")
    ids = segments.select(F.col("segment_id").alias("_r_sid"), F.col("story_id").alias("_r_story"))
    out = {"segments": segments}
    for name, rows in inputs.items():
        if name != "segments":
            found = lookup(rows, ids, F.col("segment_id") == F.col("_r_sid"), "inner")
            out[name] = (found.select(*rows.columns, F.col("_r_story").alias("story_id")) if name in with_story
                         else found.select(*rows.columns))
    return out



def rewrite_reason(settings: Settings, names: Sequence[str], horizon: Horizon) -> str | None:
    """Why gold tables `names` (stored as restated rows, storylake.latest_rows) must have their slice rewritten by this
    run instead of taking its changed rows appended; None when they can take them: Delta storage, a last good run as
    of an earlier instant (the run's as_of, every appended row's, then supersedes every stored row's), and each table
    holding the rows of the version the last good run left it at, as the run's plan recorded it before the run wrote
    (compactions only since: no failed or unfinished run's rows, which would leave a key two rows of one as_of)."""
    last = increments.last(settings)
    plan = increments.planned(settings, horizon.as_of)
    if horizon.refresh or settings.storage != "delta" or plan is None:
        return "the run recomputes its whole horizon"
    if last is None or horizon.as_of <= last.as_of:
        return "no last good run as of an earlier instant"
    for name in names:
        version = plan.silver_version(f"gold.{name}")
        if version is None:
            return f"no version of gold.{name} that the last good run left (a run since did not finish)"
        if not lake.rows_unchanged_since(settings.table_path("gold", name), version):
            return f"gold.{name} was written since the last good run"
    return None


def restated(rows: DataFrame, previous: DataFrame, key: Sequence[str], columns: Sequence[str], as_of: datetime
             ) -> DataFrame:
    """What an incremental run appends to a table stored as restated rows (storylake.latest_rows) instead of
    rewriting its slice: `rows` (recomputed for the touched keys, `columns`, each as of the run) that differ from
    their key's row in `previous` (the last good rows of those keys; compared as stamped() compares) or have none
    there, each restated when it has one; and a tombstone for each key of `previous` that `rows` lack (a story
    folded into another by a late creation): its previous row again, as of the run (`as_of`), restated and removed.
    `columns` and the storage columns (RESTATED, REMOVED)."""
    from pyspark.sql import functions as F

    from jobs.gold.activity import instant

    first, second = row_hashes(columns, key)
    old = previous.select(*[F.col(c).alias(f"_rs_{c}") for c in columns], first.alias("_rs_h"),
                          second.alias("_rs_g"))
    new = rows.select(*columns, first.alias("_rs_nh"), second.alias("_rs_ng"), F.lit(True).alias("_rs_new"))
    on = functools.reduce(operator.and_, [F.col(k) == F.col(f"_rs_{k}") for k in key])
    joined = new.join(old, on, "full")
    had = F.col("_rs_h").isNotNull()
    same = had & (F.col("_rs_nh") == F.col("_rs_h")) & (F.col("_rs_ng") == F.col("_rs_g"))
    gone = F.col("_rs_new").isNull()
    return joined.filter(gone | ~same).select(
        *[F.when(gone, instant(as_of) if c == STAMP else F.col(f"_rs_{c}")).otherwise(F.col(c)).alias(c)
          for c in columns],
        had.alias(latest_rows.RESTATED), gone.alias(latest_rows.REMOVED))

"""silver.relationships: the social graph as validity intervals [valid_from, valid_to).

Each bronze relationship event (deduplicated by event_id) opens or closes an interval on a key
(relation, user_id, other_user_id):

  follow / unfollow                -> follow        (user_id follows other_user_id)
  close_friend_add / _remove       -> close_friend  (other_user_id is on user_id's list)
  block / unblock                  -> block
  hide_story / unhide_story        -> hide
  set_private / set_public         -> private       (other_user_id = 0)
  approve_follower                 -> approved      (user_id = the private account, other_user_id = follower)
  unfollow by F of A               -> also closes   approved(A, F)

Per key, events are ordered by (event_time, event_id). A start while open and an end while closed are
no-ops, so only state changes matter: an interval starts at a start whose previous event was not a start,
and ends at the next state change (an end); valid_to null = still holds. Zero-length intervals (start and
end at the same instant) hold at no instant and are dropped.

An incremental run (`run` with a previous run recorded) recomputes only the keys that bronze rows not yet processed
touch, and keeps the other keys' intervals as the table holds them: its cost is the new events', not the graph's (the
whole table is still rewritten, one sequential copy). A touched key is recomputed from its bronze events at or after
the new rows' earliest event time (a bound from the bronze files' statistics, `unprocessed_since`), seeded with the
intervals the table holds for it that began before then (`held_moves`): the table holds exactly what those earlier
events made of the key, and bronze is read from the run's own days on, not from the lake's first day. A full refresh,
a run behind the last one's as_of, or a missing table rebuild every key. Once retention has removed the events before
bronze.relationship's cutoff (730 days), a rebuild recomputes from the events after it, seeded the same way: a follow
older than the bronze floor stays.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from jobs import spark_io
from jobs.engine_workarounds import lookup
from jobs.horizon import full, read_bronze
from jobs.silver.bronze import project
from jobs.silver.dedupe import dedupe_event_id, split_repeated
from jobs.spark_io import Materialize
from storylake import lake
from storylake.merge_on_read import RELATIONSHIPS, REMOVED
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

# kind -> [(relation, key user, key other user, opens)]; 'u' = user_id, 'o' = other_user_id, '0' = literal 0.
KIND_EFFECTS: dict[str, tuple[tuple[str, str, str, bool], ...]] = {
    "follow": (("follow", "u", "o", True),),
    "unfollow": (("follow", "u", "o", False), ("approved", "o", "u", False)),
    "close_friend_add": (("close_friend", "u", "o", True),),
    "close_friend_remove": (("close_friend", "u", "o", False),),
    "block": (("block", "u", "o", True),),
    "unblock": (("block", "u", "o", False),),
    "hide_story": (("hide", "u", "o", True),),
    "unhide_story": (("hide", "u", "o", False),),
    "set_private": (("private", "u", "0", True),),
    "set_public": (("private", "u", "0", False),),
    "approve_follower": (("approved", "u", "o", True),),
}
_SIDE = {"u": "user_id", "o": "other_user_id", "0": "CAST(0 AS BIGINT)"}


def _effects_sql() -> str:
    """CASE kind WHEN ... THEN array(named_struct(...), ...) END: every effect of an event, in one pass."""
    arms = []
    for kind, effects in KIND_EFFECTS.items():
        items = ", ".join(
            f"named_struct('relation', '{rel}', 'k_user', {_SIDE[a]}, 'k_other', {_SIDE[b]}, "
            f"'opens', {str(op).lower()})"
            for rel, a, b, op in effects
        )
        arms.append(f"WHEN '{kind}' THEN array({items})")
    return "CASE kind " + " ".join(arms) + " END"


def _effect_rows(events: DataFrame) -> DataFrame:
    """(relation, user_id, other_user_id, at, event_id, opens): one row per effect of each row of `events`."""
    from pyspark.sql import functions as F

    return (
        events.select("event_id", F.col("event_time").alias("at"), F.explode(F.expr(_effects_sql())).alias("e"))
        .select(
            F.col("e.relation").alias("relation"),
            F.col("e.k_user").alias("user_id"),
            F.col("e.k_other").alias("other_user_id"),
            "at",
            "event_id",
            F.col("e.opens").alias("opens"),
        )
        .filter(F.col("user_id").isNotNull() & F.col("other_user_id").isNotNull())
    )


def transitions(events: DataFrame, materialize: Materialize = spark_io.lazily) -> DataFrame:
    """(relation, user_id, other_user_id, at, event_id, opens): one row per effect of a deduplicated event."""
    return _effect_rows(dedupe_event_id(events, materialize))


def transform(events: DataFrame, materialize: Materialize = spark_io.lazily, seeds: DataFrame | None = None
              ) -> DataFrame:
    """Bronze relationship events (cut at as_of) -> silver.relationships intervals (`seeds`: held_moves() of the
    intervals that began before the bronze floor, whose events retention removed).

    Most keys have a single transition (one follow, never undone): an open gives [at, null), a lone close
    nothing. Only keys with several transitions (split_repeated) are ordered by the window below, which
    sorts far fewer rows. `materialize` keeps the transitions, read by the key count and by both branches.
    """

    moves = transitions(events, materialize)
    return intervals(materialize(moves if seeds is None else moves.unionByName(seeds), "moves"), materialize)


def held_moves(held: DataFrame, floor: datetime) -> DataFrame:
    """transitions() rows standing for the bronze events before `floor` (removed by retention, or not read) that
    `held`, the intervals the table holds, were computed from: the opening of each interval that began before the
    floor, and its end when that is before the floor too (a later end is a bronze event still there). At one instant
    an end sorts before an opening, as the events did."""
    from pyspark.sql import functions as F

    before = F.lit(floor).cast("timestamp")
    old = held.filter(F.col("valid_from") < before)
    opens = old.select(*KEY, F.col("valid_from").alias("at"), F.lit("held-1").alias("event_id"),
                       F.lit(True).alias("opens"))
    ends = old.filter(F.col("valid_to") < before).select(
        *KEY, F.col("valid_to").alias("at"), F.lit("held-0").alias("event_id"), F.lit(False).alias("opens"))
    return opens.unionByName(ends)


def intervals(moves: DataFrame, materialize: Materialize = spark_io.lazily) -> DataFrame:
    """transitions() rows -> silver.relationships intervals (see transform)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    once, several = split_repeated(moves, [KEY], materialize)
    lone = (
        once.filter(F.col("opens"))
        .withColumnRenamed("at", "valid_from")
        .withColumn("valid_to", F.lit(None).cast("timestamp"))
    )
    w = Window.partitionBy(*KEY).orderBy("at", "event_id")
    changes = (
        several.withColumn("_prev_open", F.coalesce(F.lag("opens").over(w), F.lit(False)))
        .filter(F.col("opens") != F.col("_prev_open"))
    )
    # Changes now alternate open, close, open, ...: each open's interval ends at the next change.
    spans = (
        changes.withColumn("valid_to", F.lead("at").over(w))
        .filter(F.col("opens"))
        .withColumnRenamed("at", "valid_from")
        .filter(F.col("valid_to").isNull() | (F.col("valid_to") > F.col("valid_from")))
    )
    return project(lone, "silver.relationships").unionByName(project(spans, "silver.relationships"))


KEY = ["relation", "user_id", "other_user_id"]


def effect_keys(events: DataFrame) -> DataFrame:
    """(event_id, relation, user_id, other_user_id): every key each bronze row (undeduplicated) acts on."""
    return _effect_rows(events).select("event_id", *KEY)


def _keyed(keys: DataFrame) -> tuple[DataFrame, Column]:
    """(`keys` as _k_* columns with _hit = true, the condition matching a row's key to them): the small side of a
    lookup."""
    from pyspark.sql import functions as F

    k = keys.select(*[F.col(c).alias(f"_k_{c}") for c in KEY]).withColumn("_hit", F.lit(True))
    on = [F.col(c) == F.col(f"_k_{c}") for c in KEY]
    return k, on[0] & on[1] & on[2]


def recompute_keys(events: DataFrame, keys: DataFrame, materialize: Materialize = spark_io.lazily,
                   seeds: DataFrame | None = None) -> DataFrame:
    """The intervals of the (relation, user_id, other_user_id) `keys` from `events` (the bronze relationship rows,
    cut at as_of): every delivery of every event_id one of whose rows acts on a key goes through transitions() (so
    the dedupe keeps the same first delivery a full rebuild keeps), then only those keys' transitions are kept.
    Equal to transform(events) restricted to `keys`.

    An event acts on a key only if the key's user_id is the event's user_id or other_user_id (KIND_EFFECTS), so only
    the rows naming a keyed user go through the effects' explode; all deliveries of the event_ids those act on are
    then read (materialized: a few rows, read by the dedupe and by both branches of intervals())."""
    from pyspark.sql import functions as F

    k, cond = _keyed(keys)
    users = keys.select(F.col("user_id").alias("_ku")).distinct().withColumn("_ku_hit", F.lit(True))
    by_user = lookup(events, users, F.col("user_id") == F.col("_ku")).drop("_ku")
    named = lookup(by_user, users.withColumnRenamed("_ku_hit", "_ko_hit"), F.col("other_user_id") == F.col("_ku"))
    candidates = named.filter(F.col("_ku_hit").isNotNull() | F.col("_ko_hit").isNotNull()).select(*events.columns)
    ids = lookup(effect_keys(candidates), k, cond, "inner").select(F.col("event_id").alias("_eid")).distinct()
    mine = materialize(lookup(events, ids, F.col("event_id") == F.col("_eid"), "inner").select(*events.columns),
                       "key_events")
    moves = transitions(mine, materialize)
    if seeds is not None:
        moves = moves.unionByName(seeds)
    moves = lookup(moves, k, cond, "inner").select("relation", "user_id", "other_user_id", "at", "event_id", "opens")
    return intervals(materialize(moves, "key_moves"), materialize)


def run(spark: SparkSession, settings: Settings, as_of: datetime, *, full_refresh: bool = False) -> dict[str, int]:
    """Rebuild silver.relationships as of `as_of`: incrementally (see the module docstring) unless `full_refresh`."""
    from pyspark.sql import functions as F

    from jobs.horizon import Horizon, unprocessed_bronze, unprocessed_files, unprocessed_since
    from jobs.retention import applied_cutoffs
    from storylake import increments

    previous = None if full_refresh else increments.last(settings)
    exists = lake.exists(settings.table_path("silver", "relationships"))
    incremental = previous is not None and as_of >= previous.as_of and exists
    if previous is not None and incremental and not unprocessed_files(settings, "relationship", previous):
        log.info("relationships: nothing to recompute (no relationship event since the last good run)")
        return {}
    # once retention removed old events, the intervals they opened come from the table (bronze holds the rest)
    floor = applied_cutoffs(settings).get("bronze.relationship")
    if incremental:
        assert previous is not None
        # the touched keys' events before the new ones' earliest time are those of their held intervals: recomputed
        # from there on, the run reads the bronze events of its own days, not every event of the lake's history
        since = unprocessed_since(settings, "relationship", previous)
        if since is not None and (floor is None or since > floor):
            floor = min(since, as_of)
    events = read_bronze(spark, settings, "relationship",
                         full(as_of) if floor is None else Horizon(as_of=as_of, lo=floor))
    held = spark_io.read_table(spark, settings, "silver", "relationships") if exists else None  # as readers see it
    with spark_io.scratch(settings) as materialize:
        if not incremental:
            seeds = None
            if floor is not None and held is not None:
                seeds = materialize(held_moves(held, floor), "held_moves")  # before the table is overwritten
            out = materialize(transform(events, materialize, seeds), "relationships")
            return _write_base(settings, out)
        assert previous is not None and held is not None
        keys = materialize(effect_keys(unprocessed_bronze(spark, settings, "relationship", previous))
                           .select(*KEY).distinct(), "touched_keys")
        k, cond = _keyed(keys)
        seeds = None
        if floor is not None:  # the touched keys' intervals only, read before the table is overwritten
            held_keys = lookup(held, k, cond, "inner").select(*held.columns)
            seeds = materialize(held_moves(held_keys, floor), "held_moves")
        recomputed = recompute_keys(events, keys, materialize, seeds)
        cols = RELATIONSHIPS.value_columns()
        live = recomputed.select(*cols).withColumn(REMOVED, F.lit(False))
        # a touched key left without an interval (its only one now zero-length) hides its base rows with a tombstone
        found, found_cond = _keyed(recomputed.select(*KEY).distinct())
        gone = (lookup(keys, found, found_cond).filter(F.col("_hit").isNull())
                .select(*KEY, F.lit(as_of).cast("timestamp").alias("valid_from"),
                        F.lit(None).cast("timestamp").alias("valid_to"), F.lit(True).alias(REMOVED)))

        def changed(current: DataFrame) -> DataFrame:
            # the changes of the keys the run does not touch, as they are; the touched keys' intervals or tombstones
            kept = lookup(current, k, cond).filter(F.col("_hit").isNull()).select(*cols, REMOVED)
            return kept.unionByName(live).unionByName(gone)

        # the changes since the base (not the base: 15M intervals at 10M views a day), read from their current files
        # while the overwrite writes the next version (spark_io.overwrite_from_current)
        written = spark_io.overwrite_from_current(spark, settings, "silver", CHANGES, changed, materialize)
    path = settings.table_path("silver", "relationships")
    stats = lake.version_stats(path, lake.version(path) or 0, "valid_from")
    base_rows = stats[0] if stats is not None else 0
    log.info("relationships: %d changes rows over a base of %d rows", written, base_rows)
    if written <= REBASE_SHARE * base_rows or base_rows < REBASE_MIN_ROWS:
        return {CHANGES: written}
    # the changes outgrew the base: merged into a new one (a crash in between leaves the changes as they are, which
    # repeat the new base's rows of their keys: the same intervals)
    with spark_io.scratch(settings) as materialize:
        merged = spark_io.read_table(spark, settings, "silver", "relationships")  # as readers see it
        return _write_base(settings, materialize(merged, "rebased"))


CHANGES = "relationships_changes"
# The base is rewritten (with the changes merged in) once the changes hold more rows than this share of it; a base
# smaller than REBASE_MIN_ROWS is never rewritten for its changes' size.
REBASE_SHARE = 0.25
REBASE_MIN_ROWS = 100_000


def _write_base(settings: Settings, out: DataFrame) -> dict[str, int]:
    """Overwrite the base with `out` (every interval), then empty the changes."""
    from pyspark.sql import functions as F

    rows = spark_io.write_table(out, settings, "silver", "relationships")
    cols = RELATIONSHIPS.value_columns()
    none = out.limit(0).select(*cols).withColumn(REMOVED, F.lit(False))
    return {"relationships": rows, CHANGES: spark_io.write_table(none, settings, "silver", CHANGES)}

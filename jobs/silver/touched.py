"""The receipts an incremental silver run re-decides, and the last good rows of every other receipt.

A segment-keyed interaction table (silver.view_events, silver.sticker_responses) decides each receipt from its
segment's silver row, the audience rules at its instant, its event_id deliveries and its group (a view's retry
group; a user's answers on one segment). An incremental run's new bronze rows (jobs.horizon.new_bronze) can change
the decision of:
- every receipt of a group that holds a delivery of an event that arrived (its first delivery may move to another
  group: every group any delivery of such an event names is touched);
- every receipt of a segment whose silver row the run's segment events can change (segment_changes), or of an
  author whose privacy changed, on the segments live at or after the change;
- every receipt of a viewer on a segment of an author whose relationship with that viewer changed, live at or
  after the change (audience_changes).
The run re-decides those keys' receipts from bronze (within its horizon, after the event_id dedupe over all of
it) and keeps every other row anchored in its horizon as the last good run left it: the table's audited version's
rows of the other keys, and the stage's current quarantine rows of the other events (no other run has written them
since, unless a run planned a later as_of: then, as on a full refresh, with Parquet storage or without a readable
last good version, the run recomputes its whole horizon). That equals recomputing the whole horizon, which
tests/test_incremental.py checks against full runs on random arrival orders, and costs what the hour brings: an
hour's receipts touch most live segments, but few of their groups.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobs import spark_io
from jobs.engine_workarounds import lookup
from jobs.horizon import SEGMENT_EVENTS, Horizon, new_bronze, read_bronze
from jobs.merged_tables import same_keys, same_values
from jobs.silver.dedupe import dedupe_event_id
from jobs.silver.quarantine import other_events
from storylake import audit, contracts, increments, lake
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)
_GROUP, _EVENT, _ARRIVED = "_k_group", "_k_event", "_k_arrived"
SEGMENT_KEY = "_k_segment"  # Changes.segments' column


def _arrived(spark: SparkSession, settings: Settings, horizon: Horizon, previous: increments.Increment,
             event: str) -> DataFrame:
    return new_bronze(spark, settings, event, previous, horizon.as_of, horizon.upto_batch)


def _live_from(segments: DataFrame, authors: DataFrame) -> DataFrame:
    """`authors` (_a: author, _t: instant, any other columns) joined to their segments live at or after _t."""
    from pyspark.sql import functions as F

    return lookup(segments, authors.filter(F.col("_a").isNotNull() & (F.col("_a") != 0)),
                  (F.col("author_id") == F.col("_a")) & (F.col("expires_at") > F.col("_t")), "inner")


def in_reach(segments: DataFrame, horizon: Horizon) -> DataFrame:
    """silver.segments rows the run's changes can name: live at or after the horizon's `lo` (every segment when it has
    none). Every creation the run reads is at or after lo (jobs.horizon.plan: the creations' horizon), so are the
    segments created at or after one; a relationship change at t reaches segments live at or after t, and lo is at
    most t - SEGMENT_LIFETIME. So the scans skip the older files (two years of segments) by their statistics."""
    from jobs.horizon import live_since as live

    return segments if horizon.lo is None else segments.filter(live(horizon.lo))


def segment_changes(spark: SparkSession, settings: Settings, horizon: Horizon, previous: increments.Increment,
                    segments: DataFrame) -> DataFrame:
    """(segment_id) of every segment whose silver.segments row the run's new segment events can change: a segment
    event's segment; a creation's author's segments created at or after it (the story fold may assign them
    differently), and so for every other creation of the segment id a new creation names (its author may lose the
    segment to an earlier creation by another author: then that author's later stories change too)."""
    from pyspark.sql import functions as F

    frames = [_arrived(spark, settings, horizon, previous, event).select("segment_id") for event in SEGMENT_EVENTS]
    arrived = _arrived(spark, settings, horizon, previous, "segment_created")
    ids = arrived.select(F.col("segment_id").alias("_nid")).distinct()
    # the horizon holds every creation of those ids: it reaches back to the created_at (the earliest creation) of
    # each newly created segment, in the current and the last good silver.segments (jobs.horizon.plan, "creation")
    created = arrived.select(F.col("author_id").alias("_a"), F.col("event_time").alias("_t")).unionByName(
        lookup(read_bronze(spark, settings, "segment_created", horizon), ids, F.col("segment_id") == F.col("_nid"),
               "inner").select(F.col("author_id").alias("_a"), F.col("event_time").alias("_t"))).distinct()
    frames.append(lookup(segments, created, (F.col("author_id") == F.col("_a")) & (F.col("created_at") >= F.col("_t")),
                         "inner").select("segment_id"))
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out.filter(F.col("segment_id").isNotNull())


def changed_segments(spark: SparkSession, settings: Settings, horizon: Horizon,
                     previous: increments.Increment) -> DataFrame:
    """(segment_id) of every segment whose silver.segments row or audience the run's new bronze rows other than
    interactions can change: segment_changes, and the segments of both users of a relationship change at t that
    are live at or after t (the audience rules from t on read the pair's relationships and the author's
    privacy)."""
    from pyspark.sql import functions as F

    segments = in_reach(spark_io.read_table(spark, settings, "silver", "segments"), horizon)
    rels = _arrived(spark, settings, horizon, previous, "relationship")
    users = rels.select(F.col("user_id").alias("_a"), F.col("event_time").alias("_t")).unionByName(
        rels.select(F.col("other_user_id").alias("_a"), F.col("event_time").alias("_t")))
    return segment_changes(spark, settings, horizon, previous, segments).unionByName(
        _live_from(segments, users).select("segment_id")).distinct()


def audience_changes(spark: SparkSession, settings: Settings, horizon: Horizon, previous: increments.Increment,
                     segments: DataFrame) -> tuple[DataFrame, DataFrame]:
    """The receipts whose audience decision the run's new relationship rows can change, from every key each acts
    on (jobs.silver.relationships.effect_keys) at its event time t: (segment_id) of the segments of an author whose
    privacy changed, live at or after t (every viewer); (segment_id, viewer_id) of each pair relation's two users,
    each as author with the other as viewer, on the author's segments live at or after t."""
    from pyspark.sql import functions as F

    from jobs.silver.relationships import effect_keys
    from storylake.rules.audience import PRIVATE_RELATION

    rels = _arrived(spark, settings, horizon, previous, "relationship")
    at = rels.select(F.col("event_id").alias("_eid"), F.col("event_time").alias("_t"))
    keys = effect_keys(rels).join(at, F.col("event_id") == F.col("_eid"), "inner")
    private = F.col("relation") == F.lit(PRIVATE_RELATION)
    authors = keys.filter(private).select(F.col("user_id").alias("_a"), "_t")
    pairs = keys.filter(~private)
    both = pairs.select(F.col("user_id").alias("_a"), F.col("other_user_id").alias("_v"), "_t").unionByName(
        pairs.select(F.col("other_user_id").alias("_a"), F.col("user_id").alias("_v"), "_t"))
    return (_live_from(segments, authors).select("segment_id"),
            _live_from(segments, both).select("segment_id", F.col("_v").alias("viewer_id")))


@dataclass(frozen=True)
class Changes:
    """The run's touched keys common to every job (materialized): segments (_k_segment: segment_changes and the
    segments of authors whose privacy changed) and (segment, viewer) pairs (_k_psegment, _k_pviewer)."""

    previous: increments.Increment
    segments: DataFrame
    pairs: DataFrame


def changes(spark: SparkSession, settings: Settings, horizon: Horizon, materialize: spark_io.Materialize
            ) -> Changes | None:
    """The run's common touched keys, computed once for its jobs; None when the run recomputes its whole horizon
    (a full refresh, no last good run, Parquet storage, or a run planned for a later as_of since the last good
    one: it may have written rows of events after this run's as_of)."""
    from pyspark.sql import functions as F

    previous = increments.last(settings)
    if horizon.refresh or previous is None or settings.storage != "delta":
        return None
    attempt = increments.attempt_after(settings, horizon.as_of)
    if attempt is not None:
        log.info("silver: whole horizon recomputed (a run was planned for %s since the last good run)", attempt)
        return None
    segments = in_reach(spark_io.read_table(spark, settings, "silver", "segments"), horizon)
    authors, pairs = audience_changes(spark, settings, horizon, previous, segments)
    changed = materialize(segment_changes(spark, settings, horizon, previous, segments).unionByName(authors)
                          .distinct().select(F.col("segment_id").alias(SEGMENT_KEY)), "touched_segments")
    pairs = materialize(pairs.distinct().select(F.col("segment_id").alias("_k_psegment"),
                                                F.col("viewer_id").alias("_k_pviewer")), "touched_pairs")
    return Changes(previous, changed, pairs)


@dataclass(frozen=True)
class Touched:
    """The touched keys of one job's run (materialized): the run's Changes and the job's group hashes
    (_k_group). `arrived` (_k_arrived): the ids of the events that arrived, when `groups` holds only the groups their
    new deliveries name (touched()); named_events() adds those of their earlier deliveries (None: complete)."""

    table: str
    group: list[str]
    viewer: str
    segments: DataFrame
    pairs: DataFrame
    groups: DataFrame
    good_version: int
    arrived: DataFrame | None = None


def touched(spark: SparkSession, settings: Settings, horizon: Horizon, run: Changes | None, event: str, table: str,
            group: list[str], viewer: str, materialize: spark_io.Materialize) -> Touched | None:
    """The keys the run re-decides in silver.`table` (from bronze `event`; `group`: the group's columns, `viewer` its
    viewer column), None when it recomputes its whole horizon:
    `run` is None (changes()) or the table has no readable last good version."""
    from pyspark.sql import functions as F

    if run is None:
        return None
    good = audit.last_good_version(settings, f"silver.{table}")
    if good is None or lake.version_files(settings.table_path("silver", table), good) is None:
        log.info("silver.%s: whole horizon recomputed (no readable last good version)", table)
        return None
    arrived = _arrived(spark, settings, horizon, run.previous, event)
    # the groups the arrived deliveries name, from those rows alone: an earlier delivery of the same event names the
    # same group unless its content differs (or the group is the event itself), which named_events() finds in its
    # scan of the horizon's rows instead of a scan of its own (0.9 s of view_events' 6.5 at 10M views a day)
    groups = materialize(arrived.select(F.xxhash64(*group).alias(_GROUP)).distinct(), f"{table}_touched_groups")
    ids = None if group == ["event_id"] else materialize(
        arrived.select(F.col("event_id").alias(_ARRIVED)).distinct(), f"{table}_arrived_events")
    return Touched(table, group, viewer, run.segments, run.pairs, groups, good, ids)


def to_decide(spark: SparkSession, settings: Settings, horizon: Horizon, run: Changes | None, event: str, table: str,
              group: list[str], viewer: str, rows: DataFrame, materialize: spark_io.Materialize
              ) -> tuple[DataFrame, Touched | None]:
    """(the receipts the job decides, the run's keys for them): every row of `rows` (the job's bronze rows in its
    horizon) deduplicated by event_id when it recomputes its whole horizon (keys None), else touched_receipts()
    of the touched keys (touched()), materialized."""
    keys = touched(spark, settings, horizon, run, event, table, group, viewer, materialize)
    if keys is None:
        return dedupe_event_id(rows, materialize), None
    named, keys = named_events(rows, keys, materialize)
    return materialize(touched_receipts(rows, keys, materialize, named), f"{table}_touched_receipts"), keys


def named_events(rows: DataFrame, keys: Touched, materialize: spark_io.Materialize = spark_io.lazily
                 ) -> tuple[DataFrame, Touched]:
    """(the ids (_k_event) of the events the rows of the touched keys name, the keys), in one scan of `rows` (the
    job's bronze rows in its horizon). With `keys.arrived` (touched(): the groups of the arrived deliveries only),
    the scan also finds any delivery of an arrived event in another group (its content differs from the new one's):
    then every such group is touched too (an event's first delivery may move to it), the keys are widened to them
    and the rows scanned again; the keys returned have every group."""
    from dataclasses import replace

    from pyspark.sql import functions as F

    def scan(touched_keys: Touched) -> DataFrame:
        hit = F.col("_k_hit")
        if touched_keys.arrived is None:
            return _marked(rows, touched_keys).filter(hit).select(
                F.col("event_id").alias(_EVENT), hit, F.lit(None).cast("bigint").alias(_GROUP)).distinct()
        marked = lookup(_marked(rows, touched_keys, with_group=True),
                        touched_keys.arrived.withColumn("_k_a", F.lit(True)), F.col("event_id") == F.col(_ARRIVED))
        # a delivery of an arrived event in a group no arrived delivery names: its group hash, to widen the keys with
        outside = F.col("_k_a").isNotNull() & ~F.col("_k_in_group")
        return marked.filter(hit | outside).select(F.col("event_id").alias(_EVENT), hit,
                                                   F.when(outside, F.col("_k_hash")).alias(_GROUP)).distinct()

    found = materialize(scan(keys), f"{keys.table}_touched_events")
    if keys.arrived is not None:
        extra = found.filter(F.col(_GROUP).isNotNull()).select(_GROUP).distinct()
        complete = replace(keys, arrived=None)
        if extra.limit(1).count() > 0:
            log.info("silver.%s: an arrived event has an earlier delivery in another group: its group is touched too",
                     keys.table)
            complete = replace(complete, groups=materialize(keys.groups.unionByName(extra).distinct(),
                                                            f"{keys.table}_touched_groups_all"))
            found = materialize(scan(complete), f"{keys.table}_touched_events_all")
        keys = complete
    return found.filter(F.col("_k_hit")).select(_EVENT).distinct(), keys


def touched_receipts(rows: DataFrame, keys: Touched, materialize: spark_io.Materialize = spark_io.lazily,
                     named: DataFrame | None = None) -> DataFrame:
    """select(dedupe_event_id(rows), keys) (the receipts of the touched keys, each an event's first delivery), without
    deduplicating every row: the rows of the touched keys name the events whose first delivery can be one of them
    (`named`: their ids as named_events() found them with these `keys`, default found here); every delivery of
    those events is deduplicated, and the first deliveries of the touched keys are kept. An event's first delivery
    is the same among its own deliveries as among all rows, so the result is the same, at the cost of two streams of
    the rows through small hash tables instead of a hash aggregate of all of them (7.7M view receipts in the horizon
    at 10M views a day). Same columns as `rows`."""
    from pyspark.sql import functions as F

    if named is None:
        named, keys = named_events(rows, keys, materialize)
    # materialized: the dedupe reads them twice (its repeated keys, then the split), each a scan of the horizon
    deliveries = materialize(lookup(rows, named, F.col("event_id") == F.col(_EVENT), "inner").select(*rows.columns),
                             f"{keys.table}_touched_deliveries")
    return select(dedupe_event_id(deliveries, materialize), keys)


def _marked(rows: DataFrame, keys: Touched, *, with_group: bool = False) -> DataFrame:
    """`rows` (with the group's columns, segment_id and the viewer column) and _k_hit: the run re-decides the row's
    key; `with_group`: also _k_hash, the group's hash, and _k_in_group, whether it is a touched group. The keys must
    be complete (`keys.arrived` None) unless the caller looks for the groups they lack (named_events)."""
    from pyspark.sql import functions as F

    marked = lookup(rows.withColumn("_k_hash", F.xxhash64(*keys.group)),
                    keys.groups.withColumn("_k_g", F.lit(True)), F.col("_k_hash") == F.col(_GROUP))
    marked = lookup(marked, keys.segments.withColumn("_k_s", F.lit(True)), F.col("segment_id") == F.col(SEGMENT_KEY))
    marked = lookup(marked, keys.pairs.withColumn("_k_p", F.lit(True)),
                    (F.col("segment_id") == F.col("_k_psegment")) & (F.col(keys.viewer) == F.col("_k_pviewer")))
    hit = F.col("_k_g").isNotNull() | F.col("_k_s").isNotNull() | F.col("_k_p").isNotNull()
    extra = [F.col("_k_hash"), F.col("_k_g").isNotNull().alias("_k_in_group")] if with_group else []
    return marked.select(*rows.columns, hit.alias("_k_hit"), *extra)


def select(rows: DataFrame, keys: Touched) -> DataFrame:
    """The rows of `rows` (deduplicated receipts) whose key the run re-decides."""
    from pyspark.sql import functions as F

    return _marked(rows, keys).filter(F.col("_k_hit")).drop("_k_hit")


def with_kept(spark: SparkSession, settings: Settings, keys: Touched | None, horizon: Horizon, stage: str,
              anchor: str, decided: DataFrame, rows: DataFrame, quarantine: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(the table's rows, the stage's quarantine rows) a run writes over its horizon: the re-decided ones (`rows`,
    `quarantine`, from the receipts `decided`) and every other row anchored (at `anchor`) in the horizon as the last
    good run left them: the audited version's rows of untouched keys (kept_rows), and the stage's quarantine rows of
    the events not re-decided (with_kept_quarantine). Without `keys` (the whole horizon recomputed): `rows`,
    `quarantine`."""
    if keys is None:
        return rows, quarantine
    kept = kept_rows(spark, settings, keys, horizon, anchor)
    return (kept.unionByName(rows.select(*kept.columns)),
            with_kept_quarantine(spark, settings, keys, horizon, stage, decided, quarantine))


def kept_rows(spark: SparkSession, settings: Settings, keys: Touched, horizon: Horizon, anchor: str) -> DataFrame:
    """The audited version's rows anchored in the horizon whose key the run does not re-decide."""
    from pyspark.sql import functions as F

    return _good_marked(spark, settings, keys, horizon, anchor).filter(~F.col("_k_hit")).drop("_k_hit")


def _good_marked(spark: SparkSession, settings: Settings, keys: Touched, horizon: Horizon, anchor: str
                 ) -> DataFrame:
    good = spark_io.read_version(spark, settings, "silver", keys.table, keys.good_version)
    return _marked(good.filter(horizon.admits(anchor)), keys)


def with_kept_quarantine(spark: SparkSession, settings: Settings, keys: Touched | None, horizon: Horizon, stage: str,
                         decided: DataFrame, quarantine: DataFrame) -> DataFrame:
    """The stage's quarantine rows a run writes over its horizon: the re-decided `quarantine` (from the receipts
    `decided`) and the stage's current rows of the events not re-decided (all of `quarantine` without `keys`)."""
    from pyspark.sql import functions as F

    if keys is None:
        return quarantine
    bad = spark_io.read_table(spark, settings, "ops", "quarantine").filter(
        (F.col("stage") == F.lit(stage)) & horizon.admits("anchor_at"))
    return other_events(bad, decided).select(*quarantine.columns).unionByName(quarantine)


def write_rows(spark: SparkSession, settings: Settings, table: str, keys: Touched | None, horizon: Horizon,
               anchor: str, rows: DataFrame, materialize: spark_io.Materialize) -> int:
    """Write silver.<table>'s rows over the run's horizon (anchored at `anchor`): the re-decided `rows` and, for the
    keys not re-decided, the last good run's rows (without `keys`, the whole horizon recomputed: `rows`); the
    slice's rows now.

    Most re-decided receipts are new, and the others come out as they were: the table's rows change only by the
    new ones (a view's or a gesture's row holds nothing that a later event changes but its own decision: its
    segment's story and frame are silver.segments'). So when the table holds the last good version's rows (no
    write since but compactions) and none of the re-decided keys' rows there differs from its new row, the new rows
    are appended (row_changes): an hour's ~30k receipts instead of the ~700k rows of a slice that reaches back to
    the oldest live segment's creation, and the gate diffs the appended file alone. Otherwise (a receipt decided
    differently: a retry's earlier delivery, a late delete, a late relationship event; or a later write) the slice
    is rewritten: the kept rows and the re-decided ones."""
    from pyspark.sql import functions as F

    where = horizon.where(anchor)
    if keys is None:
        return spark_io.write_table(rows, settings, "silver", table, replace_where=where)
    contract = contracts.get(f"silver.{table}")
    if lake.rows_unchanged_since(settings.table_path("silver", table), keys.good_version):
        before = materialize(_good_marked(spark, settings, keys, horizon, anchor).filter(F.col("_k_hit"))
                             .drop("_k_hit"), f"{table}_redecided_before")
        removed, added = row_changes(before, rows, list(contract.primary_key), list(contract.column_names))
        if materialize(removed, f"{table}_changed_keys").limit(1).count() == 0:
            log.info("silver.%s: appending the new rows (no re-decided row changed)", table)
            return spark_io.append_table(added, settings, "silver", table, inside=where)
        log.info("silver.%s: rewriting the slice (a re-decided row changed)", table)
    else:
        log.info("silver.%s: rewriting the slice (written since its last good version)", table)
    kept = kept_rows(spark, settings, keys, horizon, anchor)
    return spark_io.write_table(kept.unionByName(rows.select(*kept.columns)), settings, "silver", table,
                                replace_where=where)


def row_changes(before: DataFrame, after: DataFrame, key: list[str], columns: list[str]
                ) -> tuple[DataFrame, DataFrame]:
    """(the `key` of every `before` row that `after` does not hold as it is, every `after` row that `before` does
    not hold as it is), comparing `columns` null-safely; `key` is unique in each frame. When the first is empty,
    `before` plus the second is `after`."""
    from pyspark.sql import functions as F

    def diff(left: DataFrame, right: DataFrame) -> DataFrame:
        other = right.select(*[F.col(c).alias(f"_o_{c}") for c in columns])
        joined = left.join(other, same_keys(key, "_o_"), "left")
        return joined.filter(F.col(f"_o_{key[0]}").isNull() | ~same_values(columns, "_o_")).select(*columns)

    return diff(before, after).select(*key), diff(after, before)

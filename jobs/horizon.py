"""What a run recomputes: its horizon, planned from the bronze rows that are new since the last good run.

State model (README "State model"): every silver/gold row has an *anchor* instant (storylake.rules.lifetimes
.anchor_sql): a view, sticker answer or Seen By row is anchored at its segment's created_at, a gesture, engagement
or quarantined interaction at its own event time, a segment/story insight at its story's start, an author-day at
its day. A run recomputes exactly the rows anchored at or after its horizon `lo`, from the bronze rows with
event_time >= lo (an in-lifetime interaction happens at or after its anchor), and keeps every older row.

`lo` is the earliest anchor the run's new data can change:
- the anchor of every new interaction row (bronze batches after the last good run's, plus rows whose event time
  the run's later as_of newly admits);
- the created_at (old and new) of every segment with a new segment_created/deleted/archived event (its
  interactions' classification and its story may change);
- t - 24 h for a relationship change at t (the audience of views of segments live at t);
- the event time of interactions quarantined as unknown_segment whose segment has just arrived.
Each interaction job also gets its own, often later, horizon from the changes it depends on (JOB_SOURCES: e.g. a
delete reaches views, not gestures or engagements); `lo` is the earliest of them.
Rows anchored before lo have no new input and unchanged dimensions, so keeping them equals recomputing them: an
incremental run gives the tables a full refresh gives (tests/test_incremental.py checks it on random arrival
orders). The gold horizon `gold_lo` goes back further, to the start of every story with a segment whose silver
rows the run may change, because a segment's insights depend on its story's other frames (first frame, next
frame): a segment created at/after the segment-anchored jobs' horizon, or live at/after the time-anchored jobs'
(navigation, engagements: a gesture on a segment created earlier changes its exits).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from jobs.spark_schemas import spark_schema
from storylake import contracts, increments, lake
from storylake.clock import iso, utc
from storylake.rules import lifetimes
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)
Admit = Callable[[str], "Column"]  # anchor column -> "the row is recomputed by this run"

# Interaction events attributed to a segment (bronze table -> the silver stage that quarantines them).
INTERACTIONS = ("segment_view", "navigation", "sticker_interaction", "engagement")
SEGMENT_EVENTS = ("segment_created", "segment_deleted", "segment_archived")
INTERACTION_STAGES = ("silver.view_events", "silver.navigation", "silver.sticker_responses")
TIME_ANCHORED = ("navigation", "engagement")  # interactions without retries: rows anchored at their own time
# What each interaction job's rows depend on (plan's change sources): its own new events, the segments' creations
# (created_at, stories), its receipts released from unknown_segment quarantine; views, gestures and sticker answers
# also relationship changes (the audience rules at each interaction), views also deletes (deleted_at). A relationship
# change at t changes the audience at instants >= t only: tables anchored at their segment's creation recompute from
# t - 24 h ("relationship"), tables anchored at the interaction's own time from t ("relationship_at").
JOB_SOURCES: dict[str, tuple[str, ...]] = {
    "view_events": ("segment_view", "creation", "segment_change", "relationship",
                    "released:silver.view_events"),
    "navigation": ("navigation", "creation", "relationship_at", "released:silver.navigation"),
    "sticker_responses": ("sticker_interaction", "creation", "relationship", "released:silver.sticker_responses"),
    "engagements": ("engagement", "creation", "relationship_at"),
}


# Anchor column of every table recomputed within a horizon, and whether it is gold's (gold_lo) or silver's (lo).
# Tables absent here are keyed otherwise (segments, relationships) or stored merge-on-read (ring_features). A table's
# primary key determines its anchor (an event's segment, a segment's story), so a key never spans the slice boundary.
ANCHORS: dict[str, tuple[str, bool]] = {
    "silver.view_events": ("segment_created_at", False),
    "silver.segment_viewers": ("segment_created_at", False),
    "silver.navigation": ("at", False),
    "silver.sticker_responses": ("segment_created_at", False),
    "silver.engagements": ("at", False),
    "gold.segment_insights": ("story_start", True),
    "gold.story_insights": ("story_start", True),
    "gold.sticker_results": ("segment_created_at", True),
}


# Tables keyed by a UTC day, rewritten from the day of the run's event horizon on (their anchor column is `day`).
DAY_ANCHORED = ("gold.author_daily_insights", "gold.author_viewer_days", "gold.author_hourly_insights",
                "gold.ring_signal_days")
# The changes that reach them, at the earliest event time of a row they change (Horizon.event_lo): a new view,
# gesture or engagement at its own time (a view's retry group keeps its earliest receipt: a new one changes it from
# its own time on), a segment's creation from its created_at (its events follow), a delete at d from d, a
# relationship change at t from t, a released receipt at its own time. Sticker answers and archives reach none.
# Assumed, not enforced: a redelivery of an event_id carries its first delivery's content (transport resends and
# client retries repeat the payload). The keyed silver jobs do not need it (every group any delivery of a new event
# names is re-decided), but event_lo counts only the new rows' own times: a redelivery that sorts first (a late file
# of an earlier landing hour) with an event_time on a later day than the delivery it displaces would leave that
# earlier day's rows counting the old content until a full refresh.
DAY_TABLE_SOURCES = ("segment_view", "navigation", "engagement", "creation", "segment_change", "relationship_at",
                     "released:silver.view_events", "released:silver.navigation")


@dataclass(frozen=True)
class Horizon:
    """The scope of one run: events strictly before as_of; rows anchored at/after lo (silver) and gold_lo (gold)
    are recomputed (None: everything, a full refresh); bronze batches up to upto_batch are read."""

    as_of: datetime
    lo: datetime | None = None
    gold_lo: datetime | None = None
    upto_batch: str | None = None
    new_rows: int | None = None
    by_job: dict[str, datetime] | None = None  # each interaction job's own horizon (>= lo); None: lo for all
    event_lo: datetime | None = None  # the earliest event time of a view, gesture or engagement it can change

    @property
    def first_day(self) -> date | None:
        """The first UTC day the day-keyed gold tables (DAY_ANCHORED) are rewritten from: event_lo's (lo's when the
        plan has none); None: every day."""
        if self.lo is None:
            return None
        return (self.event_lo or self.lo).date()

    @property
    def full(self) -> bool:
        return self.lo is None

    @property
    def refresh(self) -> bool:
        """A full refresh: everything (lo None), or everything bronze still holds completely once retention has aged
        it (_full_within_retention). Only incremental plans count their new bronze rows."""
        return self.lo is None or self.new_rows is None

    @property
    def slice_is_empty(self) -> bool:
        """An incremental plan whose slice starts at as_of (no change since the last good run reaches the job):
        every row is anchored before as_of, so the slice holds none and recomputing it writes nothing. Only a table
        that a run planned for a later as_of wrote (whose rows may be anchored after this as_of) still needs the
        slice rewritten: the caller checks that (increments.attempt_after)."""
        return not self.refresh and self.lo is not None and self.lo >= self.as_of

    def for_job(self, job: str) -> Horizon:
        """The horizon of one silver job: its own, later one when the run's changes cannot reach its older rows
        (segment_viewers follows view_events)."""
        from dataclasses import replace

        own = (self.by_job or {}).get("view_events" if job == "segment_viewers" else job)
        return self if own is None or self.lo is None else replace(self, lo=own)

    def admits(self, column: str, *, gold: bool = False) -> Column:
        """Spark condition: the row anchored at `column` is recomputed by this run."""
        from pyspark.sql import functions as F

        lo = self.gold_lo if gold else self.lo
        return F.lit(True) if lo is None else F.col(column) >= F.lit(lo).cast("timestamp")

    def where(self, column: str, *, gold: bool = False, extra: str | None = None) -> str | None:
        """The replaceWhere predicate of this run's slice of a table anchored at `column` (None: whole table)."""
        from jobs.spark_io import ts_literal

        lo = self.gold_lo if gold else self.lo
        parts = [p for p in (extra, None if lo is None else f"{column} >= {ts_literal(lo)}") if p]
        return " AND ".join(parts) or None

    def slice_start(self, table_key: str) -> datetime | None:
        """The anchor instant from which this run rewrote `table_key` (None: the whole table). author-days are
        rewritten from the silver horizon's day."""
        if self.lo is None:
            return None
        if table_key in DAY_ANCHORED:
            d = self.first_day
            assert d is not None
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        anchor = ANCHORS.get(table_key)
        if anchor is None:
            return None
        return self.gold_lo if anchor[1] else self.lo

    def describe(self) -> str:
        if self.full:
            return f"full refresh as of {iso(self.as_of)}"
        jobs = ", ".join(f"{job} {iso(t)}" for job, t in sorted((self.by_job or {}).items()))
        return (f"incremental as of {iso(self.as_of)}: {self.new_rows} new bronze rows, silver from "
                f"{iso(self.lo)}" + (f" ({jobs})" if jobs else "") + f", gold from {iso(self.gold_lo)}"
                + (f", day tables from {self.first_day}" if self.first_day else ""))


def full(as_of: datetime, upto_batch: str | None = None) -> Horizon:
    return Horizon(as_of=utc(as_of), upto_batch=upto_batch)


def to_increment(h: Horizon, run_id: str, silver_versions: str | None = None) -> increments.Increment:
    return increments.Increment(run_id=run_id, as_of=h.as_of, horizon=h.lo, gold_horizon=h.gold_lo,
                                upto_batch=h.upto_batch, new_rows=h.new_rows, event_horizon=h.event_lo,
                                silver_versions=silver_versions)


def from_increment(inc: increments.Increment) -> Horizon:
    return Horizon(as_of=inc.as_of, lo=inc.horizon, gold_lo=inc.gold_horizon, upto_batch=inc.upto_batch,
                   new_rows=inc.new_rows, event_lo=inc.event_horizon)


def newest_batch(settings: Settings) -> str | None:
    """The newest fully committed ingest batch (ops.ingest_runs): from its files' statistics when every file has
    them (the table gains a row per batch, read whole otherwise)."""
    import pyarrow.compute as pc

    path = settings.table_path("ops", "ingest_runs")
    table = lake.add_actions_cached(path)
    if table is None:
        return None
    actions = table[1]
    if actions.num_rows and "max.batch_id" in actions.column_names and actions.column("max.batch_id").null_count == 0:
        return str(pc.max(actions.column("max.batch_id")).as_py())
    runs = lake.read_arrow(path, ["batch_id"])
    if runs is None or runs.num_rows == 0:
        return None
    return str(pc.max(runs.column("batch_id")).as_py())


# --- reading bronze -------------------------------------------------------------------------------------------


def _file_stats(settings: Settings, event: str) -> list[tuple[str, list[Any]]] | None:
    """(URI, [min event_time, max event_time, min _batch_id, max _batch_id]) of each active file of the bronze
    table, a None where the file lacks that statistic (None when the table does not exist)."""
    table = lake.add_actions_cached(settings.table_path("bronze", event))
    if table is None:
        return None
    uri, actions = table
    bounds = ("min.event_time", "max.event_time", "min._batch_id", "max._batch_id")
    adds = actions.select([c for c in ("path", *bounds) if c in actions.column_names]).to_pydict()
    root = uri.rstrip("/")
    return [(path if "://" in path else f"{root}/{path}", [adds.get(k, [None] * (i + 1))[i] for k in bounds])
            for i, path in enumerate(adds["path"])]


def _files(settings: Settings, event: str, keep: Callable[..., bool]) -> list[str] | None:
    """URIs of the bronze table's active files whose statistics pass keep(min_time, max_time, min_batch, max_batch)
    (None when the table does not exist). Files without statistics are always kept."""
    stats = _file_stats(settings, event)
    return None if stats is None else [uri for uri, s in stats if None in s or keep(*s)]


def _read(spark: SparkSession, settings: Settings, event: str, files: list[str] | None) -> DataFrame:
    schema = spark_schema(contracts.get(f"bronze.{event}"))
    if not files:
        return spark.createDataFrame([], schema)
    return spark.read.schema(schema).parquet(*files)


def read_bronze(spark: SparkSession, settings: Settings, event: str, horizon: Horizon) -> DataFrame:
    """The bronze rows a run reads: event_time in [lo, as_of), from batches up to upto_batch; only the files
    whose statistics overlap are opened."""
    from pyspark.sql import functions as F

    lo, hi, upto = horizon.lo, horizon.as_of, horizon.upto_batch
    files = _files(settings, event, lambda t0, t1, b0, b1: (
        utc(t0) < hi and (lo is None or utc(t1) >= lo) and (upto is None or b0 <= upto)
    ))
    df = _read(spark, settings, event, files).filter(F.col("event_time") < F.lit(hi).cast("timestamp"))
    if lo is not None:
        df = df.filter(F.col("event_time") >= F.lit(lo).cast("timestamp"))
    if upto is not None:
        df = df.filter(F.col("_batch_id") <= F.lit(upto))
    return df


def new_bronze(
    spark: SparkSession, settings: Settings, event: str, previous: increments.Increment, as_of: datetime,
    upto: str | None,
) -> DataFrame:
    """Bronze rows this run is the first to process: from batches after the previous run's (event_time < as_of),
    and from earlier batches those with event_time in [previous as_of, as_of). They decide what a run recomputes,
    never its values (its reads of bronze are cut at as_of). So when a run was planned for a later as_of since the
    last good one (it failed, or its gate did), which may have written rows for events after this as_of, they are
    every row that run's state may reflect (unprocessed_bronze): what it wrote is recomputed too."""
    from pyspark.sql import functions as F

    if increments.attempt_after(settings, as_of) is not None:
        return unprocessed_bronze(spark, settings, event, previous)
    before, prev_as_of = previous.upto_batch, previous.as_of

    def keep(t0: datetime, t1: datetime, b0: str, b1: str) -> bool:
        if utc(t0) >= as_of:
            return False
        later_batch = before is None or b1 > before
        return (later_batch and (upto is None or b0 <= upto)) or utc(t1) >= prev_as_of

    df = _read(spark, settings, event, _files(settings, event, keep))
    t = F.col("event_time")
    batch = F.col("_batch_id")
    in_later = batch <= F.lit(upto) if upto is not None else F.lit(True)
    if before is not None:
        in_later = in_later & (batch > F.lit(before))
        admitted = (batch <= F.lit(before)) & (t >= F.lit(prev_as_of).cast("timestamp"))
    else:
        admitted = F.lit(False)
    return df.filter((t < F.lit(as_of).cast("timestamp")) & (in_later | admitted))


def unprocessed_bronze(spark: SparkSession, settings: Settings, event: str, previous: increments.Increment
                       ) -> DataFrame:
    """Bronze rows the state of the run `previous` does not reflect, whatever a later run's as_of: from batches after
    its own, and from earlier batches those with event_time at/after its as_of (new_bronze without the upper cut,
    so that a table a later run wrote, even one whose gate failed, is covered too)."""
    from pyspark.sql import functions as F

    before, prev_as_of = previous.upto_batch, previous.as_of
    df = _read(spark, settings, event, unprocessed_files(settings, event, previous))
    if before is None:
        return df
    late = F.col("event_time") >= F.lit(prev_as_of).cast("timestamp")
    return df.filter((F.col("_batch_id") > F.lit(before)) | late)


def unprocessed_files(settings: Settings, event: str, previous: increments.Increment) -> list[str] | None:
    """The bronze files that may hold rows unprocessed_bronze() returns, by their statistics (None: no table; an
    empty list: no such row, without asking the engine)."""
    return _files(settings, event, _unprocessed(previous))


def unprocessed_since(settings: Settings, event: str, previous: increments.Increment) -> datetime | None:
    """A lower bound of the event time of every row unprocessed_bronze() returns, from the statistics of the files
    that may hold them (unprocessed_files): their earliest min.event_time (a file may also hold processed rows, which
    only lowers the bound). None when there is no such file or one lacks the statistic."""
    stats = _file_stats(settings, event)
    keep = _unprocessed(previous)
    times = [s[0] for _, s in stats or [] if None in s or keep(*s)]
    return None if not times or None in times else utc(min(times))


def _unprocessed(previous: increments.Increment) -> Callable[..., bool]:
    """The _files() test of a file that may hold rows the run `previous` did not process: from a later batch, or
    with an event time at/after its as_of."""
    before, prev_as_of = previous.upto_batch, previous.as_of
    return lambda t0, t1, b0, b1: before is None or b1 > before or utc(t1) >= prev_as_of


def segments_for(spark: SparkSession, settings: Settings, horizon: Horizon, facts: DataFrame) -> DataFrame:
    """silver.segments for a job: whole on a full refresh; else only the segments `facts` (its bronze rows)
    reference, so an hourly run's joins do not build over every segment the lake has ever had."""
    from pyspark.sql import functions as F

    from jobs import spark_io

    segments = spark_io.read_table(spark, settings, "silver", "segments")
    if horizon.full:
        return segments
    return of_ids(segments, facts.select(F.col("segment_id").alias("_ref")).distinct(), "segment_id",
                  segments_floor(settings, horizon.lo - lifetimes.SEGMENT_LIFETIME))


def live_since(t: datetime) -> Column:
    """Filter on silver.segments rows: live at or after `t`."""
    from pyspark.sql import functions as F

    return F.col("expires_at") > F.lit(t).cast("timestamp")


MAX_OLD_IDS = 1000  # of_ids: old ids looked up one by one beside the recent range; more, and the whole table is read


def of_ids(rows: DataFrame, ids: DataFrame, column: str, floor: int | None, keep: Column | None = None
           ) -> DataFrame:
    """`rows` whose `column` is one of `ids` (a one-column frame, any name), read from the files that can hold them:
    `keep` (default ids_filter(ids, column, floor)) filters the scan."""
    from pyspark.sql import functions as F

    from jobs.engine_workarounds import lookup

    keep = ids_filter(ids, column, floor) if keep is None else keep
    return lookup(rows.filter(keep), ids, F.col(column) == F.col(ids.columns[0]), "inner").select(*rows.columns)


def ids_filter(ids: DataFrame, column: str, floor: int | None) -> Column:
    """A filter on rows with `column` that keeps every row of `ids` (a one-column frame, any name; computed once here
    for the ids below `floor`): `floor`, the smallest id of the table's recent rows (e.g. its files' statistics), on,
    and the few ids below it (a stale client's view of a year-old segment) one by one. In a table whose ids grow with
    the time its files are clustered by (silver.segments, the insights), an hour's lookups then read the recent
    files and not two years of history, by the files' statistics (the engine's join would prune the files by the
    ids' range alone, which one old id widens to every file). Exact whatever the ids: `floor` only decides what is
    read (None, or more than MAX_OLD_IDS ids below it: every file)."""
    from pyspark.sql import functions as F

    if floor is None:
        return F.lit(True)
    ref = ids.columns[0]
    old = [r[0] for r in ids.filter(F.col(ref) < F.lit(floor)).distinct().limit(MAX_OLD_IDS + 1).collect()]
    if len(old) > MAX_OLD_IDS:
        return F.lit(True)
    keep = F.col(column) >= F.lit(floor)
    return keep | F.col(column).isin(*old) if old else keep


def segments_floor(settings: Settings, t: datetime) -> int | None:
    """The smallest segment_id of the silver.segments files that hold a segment live at or after `t`, from the Delta
    log's statistics (no scan); None when no file says (of_ids then reads every file)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    found = lake.add_actions_cached(settings.table_path("silver", "segments"))
    if found is None:
        return None
    adds = found[1]
    if "min.segment_id" not in adds.column_names or "max.expires_at" not in adds.column_names:
        return None
    live = pc.greater(adds.column("max.expires_at"), pa.scalar(utc(t), adds.schema.field("max.expires_at").type))
    ids = pc.filter(adds.column("min.segment_id"), pc.fill_null(live, True))
    low = pc.min(ids).as_py()
    return None if low is None else int(low)


def recent_floor(settings: Settings, previous: increments.Increment) -> int | None:
    """segments_floor of the segments an hour's new rows name nearly always: live since the last good run's as_of,
    less a lifetime and the lateness window."""
    return segments_floor(settings, previous.as_of - lifetimes.SEGMENT_LIFETIME - settings.lateness_window)


def named_segments(spark: SparkSession, settings: Settings, events: tuple[str, ...], previous: increments.Increment,
                   as_of: datetime, upto: str | None) -> DataFrame:
    """(_nsid) the distinct segment ids the new bronze rows of `events` name."""
    from pyspark.sql import functions as F

    frames = [new_bronze(spark, settings, event, previous, as_of, upto).select(F.col("segment_id").alias("_nsid"))
              for event in events]
    named = frames[0]
    for frame in frames[1:]:
        named = named.unionByName(frame)
    return named.filter(F.col("_nsid").isNotNull()).distinct()


# --- planning -------------------------------------------------------------------------------------------------


def plan(
    spark: SparkSession,
    settings: Settings,
    as_of: datetime,
    *,
    full_refresh: bool = False,
    previous_segments_version: int | None = None,
) -> Horizon:
    """The run's horizon (see the module docstring). Call it after silver.segments has been rebuilt for as_of;
    `previous_segments_version` is the version silver.segments had before (None: it did not exist)."""
    as_of = utc(as_of)
    upto = newest_batch(settings)
    previous = increments.last(settings)
    if full_refresh or previous is None:
        why = "requested" if full_refresh else "no earlier run recorded in ops.increments"
        log.info("horizon: full refresh as of %s (%s)", iso(as_of), why)
        return _full_within_retention(spark, settings, as_of, upto)
    if as_of < previous.as_of:
        log.info("horizon: full refresh as of %s (behind the last run's as_of %s)", iso(as_of), iso(previous.as_of))
        return _full_within_retention(spark, settings, as_of, upto)
    from pyspark.sql import functions as F

    from jobs import spark_io

    # only the segments the new rows name (of_ids: the recent files, and a stale id's own)
    named = named_segments(spark, settings, (*INTERACTIONS, *SEGMENT_EVENTS), previous, as_of, upto)
    keep = ids_filter(named, "segment_id", recent_floor(settings, previous))
    segments = of_ids(spark_io.read_table(spark, settings, "silver", "segments"), named, "segment_id", None,
                      keep).select(F.col("segment_id").alias("_sid"), F.col("created_at").alias("_created"))
    before = None
    if previous_segments_version is not None:
        before = of_ids(spark_io.read_version(spark, settings, "silver", "segments", previous_segments_version),
                        named, "segment_id", None, keep).select(F.col("segment_id").alias("_sid"),
                                                                F.col("created_at").alias("_created"))
    # (source, anchor, event time) rows: the earliest anchor each kind of change can reach, and the earliest event
    # time of the rows it can change (a view's own time, not its segment's creation)
    frames: list[DataFrame] = []
    anchor = F.expr(lifetimes.anchor_sql("event_time", "_created"))
    for event in INTERACTIONS:
        rows = new_bronze(spark, settings, event, previous, as_of, upto).select("segment_id", "event_time")
        if event in TIME_ANCHORED:  # their rows are anchored at their own time
            frames.append(rows.select(F.lit(event).alias("src"), F.col("event_time").alias("a"),
                                      F.col("event_time").alias("e")))
            continue
        frames.append(rows.join(segments, F.col("segment_id") == F.col("_sid"), "left")
                      .select(F.lit(event).alias("src"), anchor.alias("a"), F.col("event_time").alias("e")))
    for event in SEGMENT_EVENTS:
        ids = new_bronze(spark, settings, event, previous, as_of, upto).select(
            F.col("segment_id").alias("_cid"), F.col("event_time").alias("_at"))
        # a creation can change the segment's created_at and the stories of the author's later segments, which
        # every interaction table reads; a delete or archive only the segment's own deleted/archived columns,
        # which only the views' rules read. The views a delete at d changes are at or after d (the earliest valid
        # delete is deleted_at); an archive changes none of the day-keyed tables' inputs.
        src = "creation" if event == "segment_created" else "segment_change"
        reach = {"segment_created": F.col("_created"), "segment_deleted": F.col("_at")}.get(
            event, F.lit(None).cast("timestamp"))
        for table in (segments, before):
            if table is not None:
                frames.append(ids.join(table, F.col("_cid") == F.col("_sid"), "inner")
                              .select(F.lit(src).alias("src"), F.col("_created").alias("a"), reach.alias("e")))
        if event == "segment_created":
            frames.extend(_released_from_quarantine(spark, settings, ids))
    rels = new_bronze(spark, settings, "relationship", previous, as_of, upto)
    frames.append(rels.select(F.lit("relationship").alias("src"), (
        F.col("event_time") - F.expr(lifetimes.interval_sql(lifetimes.SEGMENT_LIFETIME))).alias("a"),
        F.col("event_time").alias("e")))
    frames.append(rels.select(F.lit("relationship_at").alias("src"), F.col("event_time").alias("a"),
                              F.col("event_time").alias("e")))
    union = frames[0]
    for f in frames[1:]:
        union = union.unionByName(f)
    found = {r["src"]: (r["a"], r["n"], r["e"]) for r in union.groupBy("src").agg(
        F.min("a").alias("a"), F.count(F.lit(1)).alias("n"), F.min("e").alias("e")).collect()}

    def earliest(*sources: str) -> datetime:
        times = [utc(found[src][0]) for src in sources if src in found and found[src][0] is not None]
        return min([*times, as_of])

    by_job = {job: earliest(*sources) for job, sources in JOB_SOURCES.items()}
    lo = min(by_job.values())
    # gold recomputes whole stories: those with a segment whose segment-anchored rows (views, sticker answers) are
    # recomputed, i.e. created at/after their horizon, and those with a segment live at the time-anchored jobs'
    # horizon (a gesture or engagement at t on a segment created before the other horizon changes its insights)
    at_own_time = {job for job in JOB_SOURCES if ANCHORS[f"silver.{job}"][0] == "at"}
    anchored_lo = min(by_job[j] for j in JOB_SOURCES if j not in at_own_time)
    timed_lo = min(by_job[j] for j in at_own_time)
    gold_lo = _story_start_before(spark, settings, lo, created_from=anchored_lo, live_at=timed_lo)
    new_rows = sum(int(found[src][1]) for src in (*INTERACTIONS, "relationship") if src in found)
    # the day-keyed gold tables read views, gestures and engagements (by their own day) and the segments posted
    event_times = [utc(e) for src, (_a, _n, e) in found.items() if e is not None and src in DAY_TABLE_SOURCES]
    event_lo = max(min([*event_times, as_of]), lo)
    horizon = Horizon(as_of=as_of, lo=lo, gold_lo=gold_lo, upto_batch=upto, new_rows=new_rows, by_job=by_job,
                      event_lo=event_lo)
    log.info("horizon: %s", horizon.describe())
    return horizon


def _full_within_retention(spark: SparkSession, settings: Settings, as_of: datetime, upto: str | None) -> Horizon:
    """A full refresh: everything, or, once retention has removed old bronze rows (jobs.retention), everything its
    inputs still hold completely. Rows anchored from the bronze floor plus a story span and a segment lifetime on
    have all their events in bronze (a gold slice reaches back to the start of a story live at its horizon); older
    rows are kept as they are, which is what recomputing them from the complete bronze they came from gave."""
    from jobs.retention import retention_floor

    floor = retention_floor(settings)
    if floor is None:
        return full(as_of, upto)
    lo = min(floor + lifetimes.STORY_SPAN + lifetimes.SEGMENT_LIFETIME, as_of)
    horizon = Horizon(as_of=as_of, lo=lo, gold_lo=_story_start_before(spark, settings, lo), upto_batch=upto)
    log.info("horizon: full refresh within retention (bronze complete from %s): %s", iso(floor), horizon.describe())
    return horizon


@dataclass(frozen=True)
class SegmentsScope:
    """What an incremental run rebuilds of silver.segments: the segments created at or after `since` (None: all),
    and the lifecycle columns (deleted, archived) of the `patch` segments, created before it, that new delete or
    archive events name."""

    since: datetime | None
    patch: tuple[int, ...] = ()


def segments_scope(spark: SparkSession, settings: Settings, as_of: datetime, *, full_refresh: bool = False
                   ) -> SegmentsScope:
    """`since` is the earliest creation this run's new segment_created events make or touch (their own time, and the
    created_at in silver.segments of a segment they create again): a creation can move the author's later stories,
    so the segments from there are rebuilt from bronze. A delete or archive changes only its own segment's lifecycle
    columns: a known segment created before `since` is patched instead (jobs.silver.segments), so one archive of a
    day-old segment does not rebuild a day of segments (with Parquet storage `since` goes back to it instead).
    Whole (since None) as `plan` decides a full refresh."""
    as_of = utc(as_of)
    previous = increments.last(settings)
    if full_refresh or previous is None or as_of < previous.as_of:
        return SegmentsScope(None)
    from pyspark.sql import functions as F

    from jobs import spark_io

    upto = newest_batch(settings)
    created = new_bronze(spark, settings, "segment_created", previous, as_of, upto).select(
        "segment_id", F.col("event_time").alias("a"))
    # only the segments the new segment events name (of_ids: the recent files, and a stale id's own)
    known = of_ids(spark_io.read_table(spark, settings, "silver", "segments"),
                   named_segments(spark, settings, SEGMENT_EVENTS, previous, as_of, upto), "segment_id",
                   recent_floor(settings, previous)).select(F.col("segment_id").alias("_sid"),
                                                            F.col("created_at").alias("_c"))
    row = (created.join(known, F.col("segment_id") == F.col("_sid"), "left")
           .agg(F.least(F.min("a"), F.min("_c")).alias("lo")).collect())
    lo = row[0]["lo"] if row else None
    since = min(utc(lo), as_of) if lo is not None else as_of
    changes = None
    for event in SEGMENT_EVENTS[1:]:
        rows = new_bronze(spark, settings, event, previous, as_of, upto).select("segment_id")
        changes = rows if changes is None else changes.unionByName(rows)
    assert changes is not None
    touched = changes.join(known, F.col("segment_id") == F.col("_sid"), "inner")
    if settings.storage != "delta":  # Parquet slices are folders named by their predicate: rebuild from the oldest
        row = touched.agg(F.min("_c").alias("c")).collect()
        oldest = row[0]["c"] if row else None
        return SegmentsScope(min(since, utc(oldest)) if oldest is not None else since)
    older = touched.filter(F.col("_c") < F.lit(since).cast("timestamp")).select("segment_id").distinct().collect()
    return SegmentsScope(since, tuple(sorted(int(r["segment_id"]) for r in older)))


def _released_from_quarantine(spark: SparkSession, settings: Settings, created: DataFrame) -> list[DataFrame]:
    """(source "released:<stage>", anchor, event time: both the quarantined row's own time) of interactions
    quarantined as unknown_segment whose segment has a new segment_created in this run (`created`: its _cid
    column)."""
    from pyspark.sql import functions as F

    from jobs import spark_io

    q = spark_io.read_table(spark, settings, "ops", "quarantine").filter(
        F.col("stage").isin(*INTERACTION_STAGES) & (F.col("rule") == F.lit("unknown_segment"))
    )
    ids = q.select(
        F.concat(F.lit("released:"), F.col("stage")).alias("src"),
        F.get_json_object("raw", "$.segment_id").cast("bigint").alias("_qid"), F.col("anchor_at").alias("a"),
    )
    return [ids.join(created, F.col("_qid") == F.col("_cid"), "inner").select("src", "a", F.col("a").alias("e"))]


def _story_start_before(spark: SparkSession, settings: Settings, lo: datetime, *, created_from: datetime | None = None,
                        live_at: datetime | None = None) -> datetime:
    """min(lo, the earliest story_start of a story with a segment created at or after `created_from` or live at or
    after `live_at`); both default to lo (every story still live at lo: a full refresh's conservative bound)."""
    from pyspark.sql import functions as F

    from jobs import spark_io

    created_from = lo if created_from is None else created_from
    live_at = lo if live_at is None else live_at
    segs = spark_io.read_table(spark, settings, "silver", "segments")
    touched = (F.col("created_at") >= F.lit(created_from).cast("timestamp")) | (
        F.col("expires_at") > F.lit(live_at).cast("timestamp"))
    row = segs.filter(touched).agg(F.min("story_start").alias("s")).collect()
    start = row[0]["s"] if row else None
    return min(lo, utc(start)) if start is not None else lo

"""silver.segments: one row per segment with its lifecycle and its place in the author's story.

Rules (DESIGN §5):
- segment_created is deduplicated by event_id; when a segment_id is created by two different events the
  earliest (event_time, event_id) wins and the other is quarantined (`duplicate_segment`).
- created_at = event_time, expires_at = created_at + 24 h.
- Stories: per author, ordered by (created_at, segment_id), a story is the segments posted within 24 h of its
  first one (storylake.rules.lifetimes.STORY_SPAN); the next segment starts the next story. story_id = first
  segment_id, frame_index is 1-based, story_start = created_at of the first segment.
- segment_deleted counts only when its author_id is the segment's author (else `delete_not_by_author`) and it is
  not stamped before the segment's creation (else `before_creation`); deleted_at = earliest valid delete.
  segment_archived likewise (`archive_not_by_author`, `before_creation`); the latest valid archive (event_time,
  event_id) gives highlight_id. Deletes/archives of a segment not known (yet) wait for its creation.
Incremental runs (jobs/horizon.py: `segments_scope`) rebuild the segments created at or after their segments
horizon from the bronze segment events at or after it; the author's last segment before it seeds the story
fold (one created more than 24 h before cannot be in a story still open). A known segment created before it that
a new delete or archive names is patched: its lifecycle columns recomputed from its delete/archive events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from jobs import spark_io
from jobs.engine_workarounds import lookup, without
from jobs.silver.bronze import project
from jobs.silver.dedupe import dedupe_event_id, first_per_key
from jobs.silver.quarantine import iso_col, other_events, quarantine_rows, txt, write_quarantine
from jobs.spark_io import Materialize
from storylake.rules import lifetimes
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

STAGE = "silver.segments"


class SegmentsOutput(NamedTuple):
    segments: DataFrame
    quarantine: DataFrame


def latest_creations(created: DataFrame, materialize: Materialize = spark_io.lazily) -> tuple[DataFrame, DataFrame]:
    """(one creation per segment_id, the losing creations) after event_id dedupe.

    A segment_id is created once but for rare client bugs, so only the rows of repeated segment_ids are
    ranked by a window; the winners of every other segment pass straight through (first_per_key).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    events = materialize(dedupe_event_id(created, materialize), "created")
    order = ["event_time", "event_id"]
    winners = materialize(first_per_key(events, ["segment_id"], order, materialize), "winners")
    repeated = (
        events.groupBy(F.col("segment_id").alias("_rep_sid"))
        .agg(F.count(F.lit(1)).alias("_n"))
        .filter(F.col("_n") > 1)
        .drop("_n")
    )
    losers = (
        lookup(events, repeated, F.col("segment_id").eqNullSafe(F.col("_rep_sid")), "inner")
        .drop("_rep_sid")
        .withColumn("_rk", F.row_number().over(Window.partitionBy("segment_id").orderBy(*order)))
        .filter("_rk > 1")
        .drop("_rk")
    )
    return winners, losers


def assign_stories(
    seg: DataFrame, materialize: Materialize = spark_io.lazily, seeds: DataFrame | None = None
) -> DataFrame:
    """Add story_id, frame_index, story_start to rows with author_id, segment_id, created_at.

    A story is the segments its author posts within STORY_SPAN (24 h) of its first segment
    (storylake.rules.lifetimes); the author's next segment starts the next story. story_id is the first
    segment's id, story_start its created_at, frame_index the 1-based position in the author's order
    (created_at, segment_id). Each story's start depends on the previous story's, so the author's segments are
    folded in order (one `aggregate` over the author's sorted (created_at, segment_id) list): a short list per
    author and run.

    `seeds` (incremental runs): per author, the already assigned segment just before the rows of `seg` (author_id,
    story_id, story_start, frame_index); the fold starts in its story. Seeds are not in the output.
    """
    from pyspark.sql import functions as F

    span = lifetimes.interval_sql(lifetimes.STORY_SPAN)
    per_author = seg.groupBy("author_id").agg(
        F.array_sort(F.collect_list(F.struct(F.col("created_at").alias("c"), F.col("segment_id").alias("id"))))
        .alias("_segs")
    )
    if seeds is not None:
        per_author = lookup(per_author, seeds.select(
            F.col("author_id").alias("_seed_author"), F.col("story_id").alias("_seed_sid"),
            F.col("story_start").alias("_seed_start"), F.col("frame_index").alias("_seed_n"),
        ), F.col("author_id") == F.col("_seed_author"))
    else:
        per_author = per_author.select(
            "*", F.lit(None).cast("bigint").alias("_seed_sid"), F.lit(None).cast("timestamp").alias("_seed_start"),
            F.lit(None).cast("bigint").alias("_seed_n"),
        )
    frame = "STRUCT<id: BIGINT, story_id: BIGINT, story_start: TIMESTAMP, frame_index: BIGINT>"
    fold = f"""aggregate(
        _segs,
        named_struct('start', _seed_start, 'sid', _seed_sid, 'n', coalesce(_seed_n, CAST(0 AS BIGINT)),
                     'out', CAST(array() AS ARRAY<{frame}>)),
        (acc, x) -> CASE WHEN acc.start IS NULL OR x.c >= acc.start + {span}
            THEN named_struct('start', x.c, 'sid', x.id, 'n', CAST(1 AS BIGINT), 'out',
                concat(acc.out, array(named_struct('id', x.id, 'story_id', x.id, 'story_start', x.c,
                                                   'frame_index', CAST(1 AS BIGINT)))))
            ELSE named_struct('start', acc.start, 'sid', acc.sid, 'n', acc.n + 1, 'out',
                concat(acc.out, array(named_struct('id', x.id, 'story_id', acc.sid, 'story_start', acc.start,
                                                   'frame_index', acc.n + 1))))
            END,
        acc -> acc.out)"""
    stories = materialize(
        per_author.select(F.explode(F.expr(fold)).alias("f")).select(
            F.col("f.id").alias("_st_sid"), F.col("f.story_id").alias("story_id"),
            F.col("f.story_start").alias("story_start"), F.col("f.frame_index").alias("frame_index"),
        ),
        "stories",
    )
    return lookup(seg, stories, F.col("segment_id").eqNullSafe(F.col("_st_sid")), "inner").select(
        *seg.columns, "story_id", "frame_index", "story_start"
    )


LIFECYCLE = ("deleted_at", "is_deleted", "is_archived", "highlight_id")  # the columns delete/archive events set


def lifecycle(
    seg: DataFrame, deleted: DataFrame, archived: DataFrame, as_of: datetime, owners: DataFrame | None = None,
) -> SegmentsOutput:
    """`seg` (segment_id, author_id, created_at, ...; none of LIFECYCLE) with LIFECYCLE set from the segments'
    bronze segment_deleted / segment_archived events (cut at as_of): deleted_at the earliest valid delete, the
    latest valid archive's highlight_id; plus the quarantine rows of the invalid ones (not by the author, before the
    creation). `owners` (default `seg`): the same segments' id, author and created_at, from a cheaper plan."""
    from pyspark.sql import functions as F

    owners = (seg if owners is None else owners).select(
        F.col("segment_id").alias("_sid"), F.col("author_id").alias("_owner"), F.col("created_at").alias("_created")
    )

    def by_owner(events: DataFrame) -> DataFrame:
        ev = dedupe_event_id(events)
        return ev.join(owners, F.col("segment_id") == F.col("_sid"), "inner").drop("_sid")  # ev is the small side

    def valid(events: DataFrame) -> DataFrame:
        return events.filter((F.col("author_id") == F.col("_owner")) & (F.col("event_time") >= F.col("_created")))

    dels = by_owner(deleted)
    good_dels = (
        valid(dels)
        .groupBy("segment_id")
        .agg(F.min("event_time").alias("deleted_at"))
        .withColumnRenamed("segment_id", "_del_sid")
    )
    arcs = by_owner(archived)
    good_arcs = (
        first_per_key(
            valid(arcs),
            ["segment_id"],
            [F.col("event_time").desc(), F.col("event_id").desc()],
        )
        .select(F.col("segment_id").alias("_arc_sid"), F.col("highlight_id"), F.lit(True).alias("_archived"))
    )
    rows = (
        lookup(lookup(seg, good_dels, F.col("segment_id") == F.col("_del_sid")), good_arcs,
               F.col("segment_id") == F.col("_arc_sid"))
        .withColumn("is_deleted", F.col("deleted_at").isNotNull())
        .withColumn("is_archived", F.coalesce(F.col("_archived"), F.lit(False)))
    )

    def invalid(events: DataFrame, event: str, rule: str, raw_columns: list[str]) -> DataFrame:
        not_author = F.col("author_id") != F.col("_owner")
        return quarantine_rows(
            events.filter(not_author | (F.col("event_time") < F.col("_created"))),
            stage=STAGE,
            contract=f"bronze.{event}",
            rule=F.when(not_author, F.lit(rule)).otherwise(F.lit("before_creation")),
            field=F.when(not_author, F.lit("author_id")).otherwise(F.lit("event_time")),
            reason=F.when(not_author, F.concat(
                F.lit(f"{event}.author_id "), txt("author_id"), F.lit(" is not the author "), txt("_owner"),
                F.lit(" of segment "), txt("segment_id"),
            )).otherwise(F.concat(
                F.lit(f"{event}.event_time "), iso_col("event_time"), F.lit(" is before created_at "),
                iso_col("_created"), F.lit(" of segment "), txt("segment_id"),
            )),
            as_of=as_of,
            raw_columns=raw_columns,
            anchor=F.least("event_time", "_created"),  # read by any run whose horizon reaches either
        )

    quarantine = invalid(dels, "segment_deleted", "delete_not_by_author", deleted.columns).unionByName(
        invalid(arcs, "segment_archived", "archive_not_by_author", archived.columns))
    return SegmentsOutput(rows, quarantine)


def transform(
    created: DataFrame,
    deleted: DataFrame,
    archived: DataFrame,
    as_of: datetime,
    materialize: Materialize = spark_io.lazily,
    seeds: DataFrame | None = None,
) -> SegmentsOutput:
    """Bronze segment_created / segment_deleted / segment_archived (already cut at as_of) -> segments + quarantine.
    `materialize` keeps the deduplicated creations and their winners, used by both outputs; `seeds`: see
    assign_stories. Quarantine rows are anchored at their segment's created_at."""
    from pyspark.sql import functions as F

    winners, losers = latest_creations(created, materialize)
    base = winners.select(
        "segment_id",
        "author_id",
        "media_id",
        "media_type",
        "audience",
        "duration_ms",
        F.col("event_time").alias("created_at"),
        F.expr(lifetimes.expires_at_sql("event_time")).alias("expires_at"),
        "stickers",
    )
    stories = assign_stories(base, materialize, seeds)
    lc = lifecycle(stories, deleted, archived, as_of, owners=base)
    segments = project(lc.segments, "silver.segments")

    winner_of = winners.select(
        F.col("segment_id").alias("_w_sid"), F.col("event_id").alias("_w_eid"), F.col("event_time").alias("_w_t")
    )
    dup_q = quarantine_rows(
        losers.join(winner_of, F.col("segment_id") == F.col("_w_sid")),
        stage=STAGE,
        contract="bronze.segment_created",
        rule="duplicate_segment",
        field="segment_id",
        reason=F.concat(
            F.lit("segment_created.segment_id "), txt("segment_id"), F.lit(" was already created by event "),
            F.col("_w_eid"), F.lit(" at "), iso_col("_w_t"), F.lit("; this later creation at "),
            iso_col("event_time"), F.lit(" is ignored"),
        ),
        as_of=as_of,
        raw_columns=created.columns,
        anchor=F.col("_w_t"),
    )

    return SegmentsOutput(segments, dup_q.unionByName(lc.quarantine))


def run(spark: SparkSession, settings: Settings, as_of: datetime, since: datetime | None = None,
        patch: Sequence[int] = ()) -> dict[str, int]:
    """Rebuild silver.segments as of `as_of`: the segments created at or after `since` (all without it), and the
    lifecycle columns of the `patch` segments created before it (jobs.horizon.segments_scope).

    The job is a chain of small engine steps, and silver's other jobs wait for it (the plan reads silver.segments),
    so its independent steps run side by side (with Settings.job_lanes > 1): the patch beside the rebuild, and the
    table's write beside its quarantine's."""
    from concurrent.futures import ThreadPoolExecutor

    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from jobs.horizon import Horizon
    from jobs.horizon import read_bronze as read_since
    from jobs.spark_io import ts_literal
    from storylake.clock import utc

    h = Horizon(as_of=as_of, lo=since)
    created = read_since(spark, settings, "segment_created", h)
    seeds = None
    known = spark_io.read_table(spark, settings, "silver", "segments")
    if since is not None:
        # creations of a segment created before `since` (a later, losing duplicate) stay as they were: the few
        # created ids are the hash join's build side, the known segments stream past them
        ids = created.select(F.col("segment_id").alias("_cid")).distinct()
        final = lookup(known.filter(F.col("created_at") < F.lit(since).cast("timestamp")), ids,
                       F.col("segment_id") == F.col("_cid"), "inner").select(F.col("segment_id").alias("_final"))
        created = without(created, final, F.col("segment_id") == F.col("_final"), ["_final"])
        # the author's last segment in the story span before `since`: an older one's story is closed by then. Only
        # the columns the fold reads: with every column (the stickers' nested ones too) the window took 1.05 s
        # against 0.43 s at 10M views a day (an aggregate of the latest row per author instead: 4.5 s)
        before = known.filter(
            (F.col("created_at") < F.lit(since).cast("timestamp"))
            & (F.col("created_at") >= F.lit(since - lifetimes.STORY_SPAN).cast("timestamp"))
        ).select("author_id", "segment_id", "created_at", "story_id", "story_start", "frame_index")
        last = Window.partitionBy("author_id").orderBy(F.col("created_at").desc(), F.col("segment_id").desc())
        seeds = before.withColumn("_last", F.row_number().over(last)).filter("_last = 1").drop("_last")
    with spark_io.scratch(settings) as materialize, ThreadPoolExecutor(
            max_workers=2 if settings.job_lanes > 1 else 1, thread_name_prefix="segments") as beside:
        patching = (beside.submit(_patch, spark, settings, known, patch, as_of, materialize)
                    if since is not None and patch else None)
        out = transform(
            created,
            read_since(spark, settings, "segment_deleted", h),
            read_since(spark, settings, "segment_archived", h),
            as_of,
            materialize,
            seeds,
        )
        rows, bad, where = out.segments, out.quarantine, h.where("created_at")
        anchors: list[datetime] = []
        if patching is not None:
            patched = patching.result()
            rows = rows.unionByName(project(patched.segments, "silver.segments"))
            # bounded by the patched segments' earliest creation too, so the write's scan skips older files
            ids = ", ".join(str(int(i)) for i in patch)
            where = f"({where}) OR (created_at >= {ts_literal(patched.since)} AND segment_id IN ({ids}))"
            # the patched segments' quarantine rows are anchored before `since`: replaced at their anchors, beside
            # any other row of the stage at those instants
            anchors = sorted({utc(r["anchor_at"]) for r in patched.quarantine.select("anchor_at").distinct().collect()})
            if anchors:
                others = spark_io.read_table(spark, settings, "ops", "quarantine").filter(
                    (F.col("stage") == F.lit(STAGE)) & F.col("anchor_at").isin(*anchors))
                kept = other_events(others, patched.quarantine)
                bad = bad.unionByName(patched.quarantine).unionByName(kept.select(*bad.columns))
        quarantined = beside.submit(write_quarantine, bad, settings, STAGE, h, also_at=anchors)
        written = spark_io.write_table(rows, settings, "silver", "segments", replace_where=where)
        return {"segments": written, "quarantine.segments": quarantined.result()}


class Patched(NamedTuple):
    segments: DataFrame
    quarantine: DataFrame
    since: datetime  # the patched segments' earliest created_at


def _patch(spark: SparkSession, settings: Settings, known: DataFrame, patch: Sequence[int], as_of: datetime,
           materialize: Materialize) -> Patched:
    """The `patch` segments' rows (known: silver.segments) with their lifecycle columns recomputed from every valid
    delete/archive event of theirs (at or after their creation, so bronze is read from the earliest one's), and the
    quarantine rows of the invalid ones read (materialized)."""
    from pyspark.sql import functions as F

    from jobs.horizon import Horizon
    from jobs.horizon import read_bronze as read_since
    from storylake.clock import utc

    ids = [int(i) for i in patch]
    rows = known.filter(F.col("segment_id").isin(*ids)).drop(*LIFECYCLE)
    first = rows.agg(F.min("created_at").alias("c")).collect()[0]["c"]
    h = Horizon(as_of=as_of, lo=utc(first))

    def events(event: str) -> DataFrame:
        # the few patched segments' events, read from bronze once: both outputs (the rows, the quarantine) dedupe
        # them (at 10M views a day, 2.3k patched segments: 2.5 s with each output reading bronze again)
        return materialize(read_since(spark, settings, event, h).filter(F.col("segment_id").isin(*ids)),
                           f"patch_{event}")

    out = lifecycle(rows, events("segment_deleted"), events("segment_archived"), as_of)
    return Patched(out.segments, materialize(out.quarantine, "patch_quarantine"), utc(first))

"""silver.segments: one row per segment with its lifecycle and its place in the author's story.

Rules (DESIGN §5):
- segment_created is deduplicated by event_id; when a segment_id is created by two different events the
  earliest (event_time, event_id) wins and the other is quarantined (`duplicate_segment`).
- created_at = event_time, expires_at = created_at + 24 h.
- Stories: per author, ordered by (created_at, segment_id), a segment starts a new story when its created_at
  is at/after the max expires_at of all the author's earlier segments (nothing of the author is active any
  more); otherwise it joins the running story. story_id = first segment_id, frame_index is 1-based,
  story_start = created_at of the first segment.
- segment_deleted counts only when its author_id is the segment's author (else `delete_not_by_author`);
  deleted_at = earliest valid delete. segment_archived likewise (`archive_not_by_author`); the latest valid
  archive (event_time, event_id) gives highlight_id. Deletes/archives of a segment not known (yet) wait:
  the table is recomputed from bronze every run.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from jobs import spark_io
from jobs.engine_workarounds import lookup
from jobs.silver.bronze import project, read_bronze
from jobs.silver.dedupe import dedupe_event_id, first_per_key
from jobs.silver.quarantine import iso_col, quarantine_rows, txt, write_quarantine
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


def assign_stories(seg: DataFrame, materialize: Materialize = spark_io.lazily) -> DataFrame:
    """Add story_id, frame_index, story_start to rows with author_id, segment_id, created_at, expires_at.

    One window pass over a narrow projection (segment_id is unique in `seg`), in the author's order
    (created_at, segment_id): a segment starts a new story when it is created at or after every earlier
    segment's expiry; stories are numbered by a running count of starts. Each story's first segment gives
    story_id and story_start, and frame_index = position in the author's order - the start's position + 1:
    the starts are joined back by (author, story number) instead of a second window with first(), which is
    slow on Sail. The other columns (stickers...) are joined back rather than carried through the sort;
    `materialize` keeps the ranked projection, read by both sides of that join.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_author = Window.partitionBy("author_id").orderBy("created_at", "segment_id")
    prev_max_exp = F.max("expires_at").over(by_author.rowsBetween(Window.unboundedPreceding, -1))
    ranked = materialize(
        seg.select("author_id", "segment_id", "created_at", "expires_at")
        .withColumn("_new_story", F.when(prev_max_exp.isNull() | (F.col("created_at") >= prev_max_exp), 1).otherwise(0))
        .select(
            "author_id",
            "segment_id",
            "created_at",
            "_new_story",
            F.row_number().over(by_author).alias("_rn"),
            F.sum("_new_story").over(by_author.rowsBetween(Window.unboundedPreceding, 0)).alias("_story_no"),
        ),
        "ranked_segments",
    )
    starts = ranked.filter(F.col("_new_story") == 1).select(
        F.col("author_id").alias("_s_author"),
        F.col("_story_no").alias("_s_no"),
        F.col("segment_id").alias("story_id"),
        F.col("created_at").alias("story_start"),
        F.col("_rn").alias("_s_rn"),
    )
    stories = lookup(
        ranked, starts, (F.col("author_id") == F.col("_s_author")) & (F.col("_story_no") == F.col("_s_no")), "inner"
    ).select(
        F.col("segment_id").alias("_st_sid"),
        "story_id",
        "story_start",
        (F.col("_rn") - F.col("_s_rn") + 1).cast("bigint").alias("frame_index"),
    )
    return lookup(seg, stories, F.col("segment_id").eqNullSafe(F.col("_st_sid")), "inner").select(
        *seg.columns, "story_id", "frame_index", "story_start"
    )


def transform(
    created: DataFrame,
    deleted: DataFrame,
    archived: DataFrame,
    as_of: datetime,
    materialize: Materialize = spark_io.lazily,
) -> SegmentsOutput:
    """Bronze segment_created / segment_deleted / segment_archived (already cut at as_of) -> segments + quarantine.
    `materialize` keeps the deduplicated creations and their winners, used by both outputs."""
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
    owners = base.select(F.col("segment_id").alias("_sid"), F.col("author_id").alias("_owner"))

    def by_owner(events: DataFrame) -> DataFrame:
        ev = dedupe_event_id(events)
        return ev.join(owners, F.col("segment_id") == F.col("_sid"), "inner").drop("_sid")  # ev is the small side

    dels = by_owner(deleted)
    good_dels = (
        dels.filter(F.col("author_id") == F.col("_owner"))
        .groupBy("segment_id")
        .agg(F.min("event_time").alias("deleted_at"))
        .withColumnRenamed("segment_id", "_del_sid")
    )
    arcs = by_owner(archived)
    good_arcs = (
        first_per_key(
            arcs.filter(F.col("author_id") == F.col("_owner")),
            ["segment_id"],
            [F.col("event_time").desc(), F.col("event_id").desc()],
        )
        .select(F.col("segment_id").alias("_arc_sid"), F.col("highlight_id"), F.lit(True).alias("_archived"))
    )
    seg = (
        lookup(
            lookup(assign_stories(base, materialize), good_dels, F.col("segment_id") == F.col("_del_sid")),
            good_arcs,
            F.col("segment_id") == F.col("_arc_sid"),
        )
        .withColumn("is_deleted", F.col("deleted_at").isNotNull())
        .withColumn("is_archived", F.coalesce(F.col("_archived"), F.lit(False)))
    )
    segments = project(seg, "silver.segments")

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
    )

    def not_author(events: DataFrame, event: str, rule: str, raw_columns: list[str]) -> DataFrame:
        return quarantine_rows(
            events.filter(F.col("author_id") != F.col("_owner")),
            stage=STAGE,
            contract=f"bronze.{event}",
            rule=rule,
            field="author_id",
            reason=F.concat(
                F.lit(f"{event}.author_id "), txt("author_id"), F.lit(" is not the author "), txt("_owner"),
                F.lit(" of segment "), txt("segment_id"),
            ),
            as_of=as_of,
            raw_columns=raw_columns,
        )

    quarantine = dup_q.unionByName(
        not_author(dels, "segment_deleted", "delete_not_by_author", deleted.columns)
    ).unionByName(not_author(arcs, "segment_archived", "archive_not_by_author", archived.columns))
    return SegmentsOutput(segments, quarantine)


def run(spark: SparkSession, settings: Settings, as_of: datetime) -> dict[str, int]:
    with spark_io.scratch(settings) as materialize:
        out = transform(
            read_bronze(spark, settings, "segment_created", as_of),
            read_bronze(spark, settings, "segment_deleted", as_of),
            read_bronze(spark, settings, "segment_archived", as_of),
            as_of,
            materialize,
        )
        return {
            "segments": spark_io.write_table(out.segments, settings, "silver", "segments"),
            "quarantine.segments": write_quarantine(out.quarantine, settings, STAGE),
        }

"""silver.sticker_responses: one response per (sticker, user), rule per sticker type (DESIGN §5).

Steps: dedupe by event_id, then client retries (idempotency_key + user_id: earliest event_time, then
event_id); resolve against the segment's stickers:
- segment not known (yet): waits (recomputed every run), quarantined `unknown_segment` 48 h after event_time;
- no sticker with that sticker_id on the segment: `unknown_sticker`;
- sticker_type differs from the sticker's type: `sticker_type_mismatch`;
- poll/quiz option_index missing or not an index of the sticker's options: `option_out_of_range`.
The valid interactions give one row per (sticker_id, user_id): poll and quiz the first response wins,
slider and question the last, every other type the first; `interactions` counts the user's valid
deduplicated interactions with that sticker. Order is (event_time, event_id).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from jobs import spark_io
from jobs.silver.bronze import project, read_bronze, ts_lit
from jobs.silver.dedupe import dedupe_retries
from jobs.silver.quarantine import iso_col, quarantine_rows, txt, write_quarantine
from jobs.spark_io import Materialize
from storylake.rules import lifetimes
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

WAIT = lifetimes.duration_text(lifetimes.PENDING_VIEW_WAIT)  # in reason texts
STAGE = "silver.sticker_responses"
CONTRACT = "bronze.sticker_interaction"
LAST_WINS = ("slider", "question")
INDEXED = ("poll", "quiz")


class StickerOutput(NamedTuple):
    sticker_responses: DataFrame
    quarantine: DataFrame


def dedupe_interactions(events: DataFrame, materialize: Materialize = spark_io.lazily) -> DataFrame:
    """Remove exact duplicates (event_id) then client retries (idempotency_key + user_id). Same columns out."""
    return dedupe_retries(events, "user_id", materialize)


def segment_stickers(segments: DataFrame) -> DataFrame:
    """(segment_id, sticker_id, type, options) for every sticker of every segment."""
    from pyspark.sql import functions as F

    return segments.select("segment_id", F.explode("stickers").alias("s")).select(
        F.col("segment_id").alias("_k_seg"),
        F.col("s.sticker_id").alias("_k_stk"),
        F.col("s.type").alias("_k_type"),
        F.col("s.options").alias("_k_options"),
    )


def transform(
    events: DataFrame, segments: DataFrame, as_of: datetime, materialize: Materialize = spark_io.lazily
) -> StickerOutput:
    """Bronze sticker_interaction (cut at as_of) + silver.segments -> sticker_responses + quarantine
    (`materialize` keeps the classified interactions, read by both outputs)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ev = dedupe_interactions(events, materialize)
    seg = segments.select(F.col("segment_id").alias("_s_id"), "author_id")
    stk = segment_stickers(segments)
    joined = ev.join(seg, F.col("segment_id") == F.col("_s_id"), "left").join(
        stk, (F.col("segment_id") == F.col("_k_seg")) & (F.col("sticker_id") == F.col("_k_stk")), "left"
    )
    known_seg = F.col("_s_id").isNotNull()
    stale = F.col("event_time") < ts_lit(as_of - lifetimes.PENDING_VIEW_WAIT)
    no_sticker = F.col("_k_stk").isNull()
    mismatch = F.col("sticker_type") != F.col("_k_type")
    n_options = F.coalesce(F.size("_k_options"), F.lit(0))
    out_of_range = F.col("_k_type").isin(*INDEXED) & (
        F.col("option_index").isNull() | (F.col("option_index") >= n_options)
    )
    where = F.concat(F.lit(" on segment "), txt("segment_id"))
    rule = (
        F.when(~known_seg & stale, F.lit("unknown_segment"))
        .when(~known_seg, F.lit(None))  # waits for a late segment_created
        .when(no_sticker, F.lit("unknown_sticker"))
        .when(mismatch, F.lit("sticker_type_mismatch"))
        .when(out_of_range, F.lit("option_out_of_range"))
    )
    classified = materialize(joined.withColumn("_rule", rule), "classified")
    bad = classified.filter(F.col("_rule").isNotNull())
    field = (
        F.when(F.col("_rule") == "unknown_segment", F.lit("segment_id"))
        .when(F.col("_rule") == "unknown_sticker", F.lit("sticker_id"))
        .when(F.col("_rule") == "sticker_type_mismatch", F.lit("sticker_type"))
        .otherwise(F.lit("option_index"))
    )
    reason = (
        F.when(
            F.col("_rule") == "unknown_segment",
            F.concat(
                F.lit("sticker_interaction.segment_id "), txt("segment_id"),
                F.lit(f" is not a known segment {WAIT} after event_time "), iso_col("event_time"),
            ),
        )
        .when(
            F.col("_rule") == "unknown_sticker",
            F.concat(F.lit("sticker_interaction.sticker_id "), txt("sticker_id"), F.lit(" is not a sticker"), where),
        )
        .when(
            F.col("_rule") == "sticker_type_mismatch",
            F.concat(
                F.lit("sticker_interaction.sticker_type "), txt("sticker_type"), F.lit(" differs from type "),
                txt("_k_type"), F.lit(" of sticker "), txt("sticker_id"), where,
            ),
        )
        .otherwise(
            F.concat(
                F.lit("sticker_interaction.option_index "), txt("option_index"), F.lit(" is not in [0, "),
                n_options.cast("string"), F.lit(") for "), txt("_k_type"), F.lit(" sticker "), txt("sticker_id"),
            )
        )
    )
    quarantine = quarantine_rows(
        bad, stage=STAGE, contract=CONTRACT, rule=F.col("_rule"), field=field, reason=reason, as_of=as_of,
        raw_columns=events.columns,
    )

    good = classified.filter(known_seg & F.col("_rule").isNull())
    per_user = Window.partitionBy("sticker_id", "user_id")
    asc = per_user.orderBy("event_time", "event_id")
    desc = per_user.orderBy(F.col("event_time").desc(), F.col("event_id").desc())
    winners = (
        good.withColumn("_first", F.row_number().over(asc))
        .withColumn("_last", F.row_number().over(desc))
        .withColumn("interactions", F.count(F.lit(1)).over(per_user))
        .filter(F.when(F.col("_k_type").isin(*LAST_WINS), F.col("_last")).otherwise(F.col("_first")) == 1)
        .withColumn("sticker_type", F.col("_k_type"))
        .withColumn("responded_at", F.col("event_time"))
    )
    return StickerOutput(project(winners, "silver.sticker_responses"), quarantine)


def run(spark: SparkSession, settings: Settings, as_of: datetime) -> dict[str, int]:
    with spark_io.scratch(settings) as materialize:
        out = transform(
            read_bronze(spark, settings, "sticker_interaction", as_of),
            spark_io.read_table(spark, settings, "silver", "segments"),
            as_of,
            materialize,
        )
        return {
            "sticker_responses": spark_io.write_table(
                out.sticker_responses, settings, "silver", "sticker_responses"
            ),
            "quarantine.sticker_responses": write_quarantine(out.quarantine, settings, STAGE),
        }

"""silver.sticker_responses: one response per (sticker, user), rule per sticker type (DESIGN §5).

Steps: dedupe by event_id; resolve against the segment: not known (yet): `unknown_segment` (re-checked when the
late segment_created arrives); event_time outside [created_at, expires_at): `outside_lifetime`; a user the
audience rules deny the segment at event_time (jobs/silver/audience_check.py): the denial (`blocked`,
`hidden_from_viewer`, ...: a blocked user's answer never reaches the author's inbox); then client
retries among the segment's in-lifetime interactions (segment + idempotency_key + user_id: earliest event_time,
then event_id); then against the segment's stickers:
- no sticker with that sticker_id on the segment: `unknown_sticker`;
- sticker_type differs from the sticker's type: `sticker_type_mismatch`;
- poll/quiz option_index missing or not an index of the sticker's options: `option_out_of_range`.
The valid interactions give one row per (sticker_id, user_id): poll and quiz the first response wins,
slider and question the last, every other type the first; `interactions` counts the user's valid
deduplicated interactions with that sticker. Order is (event_time, event_id). Rows are anchored at their
segment's created_at (a user's answers to one sticker are recomputed together), quarantined ones outside the
lifetime at their event_time.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from jobs import spark_io
from jobs.engine_workarounds import lookup
from jobs.horizon import Admit, Horizon, read_bronze, segments_for
from jobs.silver.audience_check import DENIAL, audience_source, denial_reason, with_denial
from jobs.silver.bronze import project
from jobs.silver.dedupe import KeyOrder, dedupe_event_id, first_per_keys
from jobs.silver.quarantine import iso_col, quarantine_rows, txt, write_quarantine
from jobs.spark_io import Materialize
from storylake.rules import lifetimes
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from jobs.silver.audience_check import AudienceEdges, Relationships
    from jobs.silver.touched import Changes

STAGE = "silver.sticker_responses"
CONTRACT = "bronze.sticker_interaction"
LAST_WINS = ("slider", "question")
INDEXED = ("poll", "quiz")


class StickerOutput(NamedTuple):
    sticker_responses: DataFrame
    quarantine: DataFrame


# Client retries of a segment's in-lifetime interactions: (key columns, order; the first row is kept).
RETRY_DEDUPE: KeyOrder = (["segment_id", "idempotency_key", "user_id"], ["event_time", "event_id"])


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
    events: DataFrame,
    segments: DataFrame,
    relationships: Relationships,
    as_of: datetime,
    materialize: Materialize = spark_io.lazily,
    admit: Admit | None = None,
) -> StickerOutput:
    """Bronze sticker_interaction + silver.segments + silver.relationships -> sticker_responses + quarantine
    (`materialize` keeps the classified interactions, read by both outputs; `admit(anchor column)`: the rows a run
    recomputes)."""
    return decide(dedupe_event_id(events, materialize), segments, relationships, as_of, events.columns, materialize,
                  admit)


def decide(
    receipts: DataFrame,
    segments: DataFrame,
    relationships: Relationships,
    as_of: datetime,
    raw_columns: list[str],
    materialize: Materialize = spark_io.lazily,
    admit: Admit | None = None,
) -> StickerOutput:
    """transform() of interactions already deduplicated by event_id (every interaction of each (segment, user)
    they hold; `raw_columns`: the bronze columns, for the quarantine's raw JSON)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    seg = segments.select(F.col("segment_id").alias("_s_id"), "author_id", "audience", "created_at", "expires_at")
    ev = lookup(receipts, seg, F.col("segment_id") == F.col("_s_id")).withColumn(
        "_anchor", F.expr(lifetimes.anchor_sql("event_time", "created_at"))
    )
    if admit is not None:
        ev = ev.filter(admit("_anchor"))
    in_life = F.coalesce(F.expr(lifetimes.in_lifetime_sql("event_time", "created_at")), F.lit(False))
    ev = first_per_keys(ev.filter(in_life), [RETRY_DEDUPE], materialize).unionByName(ev.filter(~in_life))
    ev = with_denial(ev, relationships, "user_id", "event_time")
    stk = segment_stickers(segments)
    joined = ev.join(
        stk, (F.col("segment_id") == F.col("_k_seg")) & (F.col("sticker_id") == F.col("_k_stk")), "left"
    )
    known_seg = F.col("_s_id").isNotNull()
    no_sticker = F.col("_k_stk").isNull()
    mismatch = F.col("sticker_type") != F.col("_k_type")
    n_options = F.coalesce(F.size("_k_options"), F.lit(0))
    out_of_range = F.col("_k_type").isin(*INDEXED) & (
        F.col("option_index").isNull() | (F.col("option_index") >= n_options)
    )
    where = F.concat(F.lit(" on segment "), txt("segment_id"))
    rule = (
        F.when(~known_seg, F.lit("unknown_segment"))
        .when(~in_life, F.lit("outside_lifetime"))
        .when(F.col(DENIAL).isNotNull(), F.col(DENIAL))
        .when(no_sticker, F.lit("unknown_sticker"))
        .when(mismatch, F.lit("sticker_type_mismatch"))
        .when(out_of_range, F.lit("option_out_of_range"))
    )
    classified = materialize(joined.withColumn("_rule", rule), "classified")
    bad = classified.filter(F.col("_rule").isNotNull())
    field = (
        F.when(F.col("_rule") == "unknown_segment", F.lit("segment_id"))
        .when(F.col("_rule") == "outside_lifetime", F.lit("event_time"))
        .when(F.col("_rule") == F.col(DENIAL), F.lit("user_id"))
        .when(F.col("_rule") == "unknown_sticker", F.lit("sticker_id"))
        .when(F.col("_rule") == "sticker_type_mismatch", F.lit("sticker_type"))
        .otherwise(F.lit("option_index"))
    )
    reason = (
        F.when(
            F.col("_rule") == "unknown_segment",
            F.concat(
                F.lit("sticker_interaction.segment_id "), txt("segment_id"),
                F.lit(" is not a known segment at event_time "), iso_col("event_time"),
                F.lit(" (re-checked when its segment_created arrives)"),
            ),
        )
        .when(
            F.col("_rule") == "outside_lifetime",
            F.concat(
                F.lit("sticker_interaction.event_time "), iso_col("event_time"), F.lit(" is outside [created_at "),
                iso_col("created_at"), F.lit(", expires_at "), iso_col("expires_at"), F.lit(")"), where,
            ),
        )
        .when(F.col("_rule") == F.col(DENIAL), denial_reason("sticker_interaction.user_id", "user_id", "event_time"))
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
        raw_columns=raw_columns, anchor=F.col("_anchor"),
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
        .withColumn("segment_created_at", F.col("created_at"))
    )
    return StickerOutput(project(winners, "silver.sticker_responses"), quarantine)


# The receipts re-decided together on an incremental run (jobs.silver.touched): a user's answers on one segment
# (a response row is one user's on one sticker; its retry groups are the user's on the segment).
TOUCH_GROUP = ["segment_id", "user_id"]


def run(spark: SparkSession, settings: Settings, horizon: Horizon, changes: Changes | None = None,
        audience: AudienceEdges | None = None) -> dict[str, int]:
    """Recompute the job's horizon: every interaction anchored in it, or on an incremental run only the touched users'
    on their segments (jobs.silver.touched), beside the other rows as the last good run left them (`changes`: the
    run's touched keys, None: the whole horizon; `audience`: the run's shared audience edges, default derived here)."""
    from jobs.silver import touched as touch

    events = read_bronze(spark, settings, "sticker_interaction", horizon)
    with spark_io.scratch(settings) as materialize:
        receipts, keys = touch.to_decide(spark, settings, horizon, changes, "sticker_interaction", "sticker_responses",
                                      TOUCH_GROUP, "user_id", events, materialize)
        out = decide(
            receipts,
            segments_for(spark, settings, horizon, receipts),
            audience_source(spark, settings, audience),
            horizon.as_of,
            events.columns,
            materialize,
            admit=horizon.admits,
        )
        rows, bad = touch.with_kept(spark, settings, keys, horizon, STAGE, "segment_created_at", receipts,
                                    out.sticker_responses, out.quarantine)
        return {
            "sticker_responses": spark_io.write_table(
                rows, settings, "silver", "sticker_responses", replace_where=horizon.where("segment_created_at"),
            ),
            "quarantine.sticker_responses": write_quarantine(bad, settings, STAGE, horizon),
        }

"""silver.view_events (+ quarantine stage silver.view_events) from bronze segment_view.

Steps, in order (DESIGN §5):
1. exact duplicates: the same event_id is one receipt (first delivery by _source_file, _line);
2. each receipt is resolved against silver.segments: a segment not known (yet) quarantines it `unknown_segment`
   (it is released and counted if its late segment_created arrives: the next run recomputes it); viewed_at
   outside [created_at, expires_at) quarantines it `outside_lifetime`;
3. client retries among a segment's in-lifetime receipts: the same (idempotency_key, viewer_id) is one receipt
   (earliest event_time, then event_id);
4. only receipts that count as views are kept (completion_pct = 1 or view_duration_ms >= 3000); the others
   are simply not views (not quarantined);
5. segment deleted at or before viewed_at: `segment_deleted`; the audience rules (storylake/rules/audience.py)
   deny the viewer at viewed_at: the denial reason as rule (blocked, hidden_from_viewer, not_close_friend,
   private_not_approved); otherwise a counted view.
The audience flags are computed from silver.relationships intervals holding at viewed_at. Every row carries its
anchor (storylake.rules.lifetimes.anchor_sql): the segment's created_at for an in-lifetime receipt (so a segment's
retries are always recomputed together), else viewed_at.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from jobs import spark_io
from jobs.engine_workarounds import lookup
from jobs.horizon import Admit, Horizon, read_bronze, segments_for
from jobs.silver.audience_check import audience_flags, audience_source
from jobs.silver.bronze import project
from jobs.silver.dedupe import KeyOrder, dedupe_event_id, first_per_keys
from jobs.silver.quarantine import iso_col, quarantine_rows, txt, write_quarantine
from jobs.spark_io import Materialize
from storylake import contracts
from storylake.rules import audience, lifetimes
from storylake.rules.views import COUNTS_AS_VIEW_SQL
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from jobs.silver.audience_check import AudienceEdges, Relationships
    from jobs.silver.touched import Changes

STAGE = "silver.view_events"
CONTRACT = "bronze.segment_view"
# Statuses of a classified receipt.
VIEW, QUARANTINED = "view", "quarantine"


class ViewOutputs(NamedTuple):
    view_events: DataFrame
    quarantine: DataFrame


# Client retries of a segment's in-lifetime receipts: (key columns, order; the first row is kept).
RETRY_DEDUPE: KeyOrder = (["segment_id", "idempotency_key", "viewer_id"], ["event_time", "event_id"])


def counted(views: DataFrame) -> DataFrame:
    """Receipts that count as a view."""
    return views.filter(COUNTS_AS_VIEW_SQL)


def classify(
    views: DataFrame,
    segments: DataFrame,
    relationships: Relationships,
    materialize: Materialize = spark_io.lazily,
    admit: Admit | None = None,
) -> DataFrame:
    """Deduplicated, counted receipts with segment columns, _anchor, _status (view|quarantine), _rule, _field,
    _reason. `views` is bronze segment_view; segments / relationships are silver. `admit(anchor column)` keeps
    the receipts a run recomputes (default: all)."""
    return decide(dedupe_event_id(views, materialize), segments, relationships, materialize, admit)


def decide(
    receipts: DataFrame,
    segments: DataFrame,
    relationships: Relationships,
    materialize: Materialize = spark_io.lazily,
    admit: Admit | None = None,
) -> DataFrame:
    """classify() of receipts already deduplicated by event_id (whole retry groups: steps 2-5)."""
    from pyspark.sql import functions as F

    rcpt = receipts.withColumn("viewed_at", F.col("event_time"))
    seg = segments.select(
        F.col("segment_id").alias("_s_id"),
        "author_id",
        "audience",
        "created_at",
        "expires_at",
        "deleted_at",
    )
    joined = lookup(rcpt, seg, F.col("segment_id") == F.col("_s_id")).withColumn(
        "_anchor", F.expr(lifetimes.anchor_sql("viewed_at", "created_at"))
    )
    if admit is not None:
        joined = joined.filter(admit("_anchor"))
    in_life = F.coalesce(F.expr(lifetimes.in_lifetime_sql("viewed_at", "created_at")), F.lit(False))
    inside = first_per_keys(joined.filter(in_life), [RETRY_DEDUPE], materialize)
    rows = counted(inside.unionByName(joined.filter(~in_life)))
    flagged = audience_flags(rows, relationships).withColumn("_denial", F.expr(audience.DENIAL_REASON_SQL))

    known = F.col("_s_id").isNotNull()
    early = F.col("viewed_at") < F.col("created_at")
    late = F.col("viewed_at") >= F.col("expires_at")
    deleted = F.col("deleted_at").isNotNull() & (F.col("deleted_at") <= F.col("viewed_at"))
    denied = F.col("_denial").isNotNull()
    at = F.concat(F.lit("segment_view.event_time "), iso_col("viewed_at"))
    seg_no = F.concat(F.lit(" of segment "), txt("segment_id"))

    status = F.when(~known | early | late | deleted | denied, F.lit(QUARANTINED)).otherwise(F.lit(VIEW))
    rule = (
        F.when(~known, F.lit("unknown_segment"))
        .when(early | late, F.lit("outside_lifetime"))
        .when(deleted, F.lit("segment_deleted"))
        .when(denied, F.col("_denial"))
    )
    field = (
        F.when(~known, F.lit("segment_id"))
        .when(early | late, F.lit("event_time"))
        .when(deleted, F.lit("segment_id"))
        .when(denied, F.lit("viewer_id"))
    )
    reason = (
        F.when(
            ~known,
            F.concat(
                F.lit("segment_view.segment_id "), txt("segment_id"), F.lit(" is not a known segment at event_time "),
                iso_col("viewed_at"), F.lit(" (re-checked when its segment_created arrives)"),
            ),
        )
        .when(early, F.concat(at, F.lit(" is before created_at "), iso_col("created_at"), seg_no))
        .when(late, F.concat(at, F.lit(" is at/after expires_at "), iso_col("expires_at"), seg_no))
        .when(
            deleted,
            F.concat(
                F.lit("segment_view.segment_id "), txt("segment_id"), F.lit(" was deleted at "),
                iso_col("deleted_at"), F.lit(", at/before event_time "), iso_col("viewed_at"),
            ),
        )
        .when(
            denied,
            F.concat(
                F.lit("segment_view.viewer_id "), txt("viewer_id"), F.lit(" may not see "), F.col("audience"),
                F.lit(" segment "), txt("segment_id"), F.lit(" of author "), txt("author_id"), F.lit(" at "),
                iso_col("viewed_at"), F.lit(": "), F.col("_denial"),
            ),
        )
    )
    return flagged.select(
        "*", status.alias("_status"), rule.alias("_rule"), field.alias("_field"), reason.alias("_reason")
    )


def outputs(classified: DataFrame, as_of: datetime, raw_columns: list[str]) -> ViewOutputs:
    """Split classify()'s rows into view_events and quarantine rows (`raw_columns`: the bronze segment_view
    columns, for the quarantine's raw JSON)."""
    from pyspark.sql import functions as F

    views = classified.filter(F.col("_status") == VIEW).select(
        "*", F.to_date("viewed_at").alias("view_date"), F.col("created_at").alias("segment_created_at")
    )
    bad = classified.filter(F.col("_status") == QUARANTINED)
    quarantine = quarantine_rows(
        bad, stage=STAGE, contract=CONTRACT, rule=F.col("_rule"), field=F.col("_field"), reason=F.col("_reason"),
        as_of=as_of, raw_columns=raw_columns, anchor=F.col("_anchor"),
    )
    return ViewOutputs(project(views, "silver.view_events"), quarantine)


def slim(classified: DataFrame, raw_columns: list[str]) -> DataFrame:
    """classify()'s rows with only the columns outputs() reads; those only the rejected rows need (the bronze
    columns for `raw`, the rule and reason) are null on counted views, which are nearly all rows."""
    from pyspark.sql import functions as F

    kept = {c.name for c in contracts.get("silver.view_events").columns} - {"view_date", "segment_created_at"}
    kept |= {"_status", "_anchor", "created_at"}
    rejected_only = [n for n in [*raw_columns, "_rule", "_field", "_reason"] if n not in kept]
    not_view = F.col("_status") != F.lit(VIEW)
    return classified.select(*sorted(kept), *[F.when(not_view, F.col(n)).alias(n) for n in rejected_only])


def transform(
    views: DataFrame, segments: DataFrame, relationships: DataFrame, as_of: datetime, admit: Admit | None = None
) -> ViewOutputs:
    return outputs(classify(views, segments, relationships, admit=admit), as_of, views.columns)


def run(spark: SparkSession, settings: Settings, horizon: Horizon, changes: Changes | None = None,
        audience: AudienceEdges | None = None) -> dict[str, int]:
    """Recompute the job's horizon: every receipt anchored in it, or on an incremental run only the touched ones
    (jobs.silver.touched), beside the other rows as the last good run left them (`changes`: the run's touched keys,
    None: the whole horizon; `audience`: the run's shared audience edges, default derived here)."""
    from jobs.silver import touched as touch

    views = read_bronze(spark, settings, "segment_view", horizon)
    with spark_io.scratch(settings) as materialize:
        receipts, keys = touch.to_decide(spark, settings, horizon, changes, "segment_view", "view_events",
                                      RETRY_DEDUPE[0], "viewer_id", views, materialize)
        classified = decide(
            receipts,
            segments_for(spark, settings, horizon, receipts),
            audience_source(spark, settings, audience),
            materialize,
            admit=horizon.admits,
        )
        # classify once; its outputs are read from the materialized rows
        rows = materialize(slim(classified, views.columns), "classified")
        out = outputs(rows, horizon.as_of, views.columns)
        bad_rows = touch.with_kept_quarantine(spark, settings, keys, horizon, STAGE, receipts, out.quarantine)
        return {
            "view_events": touch.write_rows(spark, settings, "view_events", keys, horizon, "segment_created_at",
                                            out.view_events, materialize),
            "quarantine.view_events": write_quarantine(bad_rows, settings, STAGE, horizon),
        }

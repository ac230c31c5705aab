"""Audience flags in Spark, from silver.relationships, built from storylake.rules.audience's definitions.

`relation_edges` is the one Spark builder of relationship -> flag edges (silver view_events, gold ring_features
and the ranking export use it; serving's publish uses the SQL form, audience.relation_edges_sql).
`relation_flags_at` evaluates the audience flags at arbitrary (viewer_id, author_id, t) points.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.engine_workarounds import any_true
from storylake.rules.audience import (
    BOOL_FLAGS,
    DERIVED_FLAGS,
    PAIR_FLAGS,
    PRIVATE_FLAG,
    PRIVATE_RELATION,
    RELATION_FLAGS,
    derived_flag_sql,
    holds_at_sql,
    pair_flags_for,
)

POINT_KEYS = ["viewer_id", "author_id", "t"]


def relation_instant(t: str = "p.t", *, strictly_before: bool) -> str:
    """SQL for the instant the intervals are evaluated at: t itself, or the last microsecond before t (the state
    after every relationship event strictly before t and none at t: what a no-leakage feature may know)."""
    return f"{t} - INTERVAL 1 MICROSECOND" if strictly_before else t


def relation_edges(relationships: DataFrame, flags: Sequence[str] = PAIR_FLAGS) -> DataFrame:
    """(flag, author_key, viewer_key, valid_from, valid_to) for every relationship interval that sets one of the
    pair `flags` (audience.RELATION_FLAGS), in one pass over the relationships of those relations."""
    wanted = [r for r in RELATION_FLAGS if r.flag in flags]
    if not wanted:
        raise ValueError(f"no pair flag among {list(flags)}")
    arms = [
        F.when(
            F.col("relation") == r.relation,
            F.struct(
                F.lit(r.flag).alias("flag"), F.col(r.author_column).alias("author_key"),
                F.col(r.viewer_column).alias("viewer_key"),
            ),
        )
        for r in wanted
    ]
    return (
        relationships.filter(F.col("relation").isin(*sorted({r.relation for r in wanted})))
        .select(F.explode(F.array(*arms)).alias("e"), "valid_from", "valid_to")
        .filter(F.col("e").isNotNull())
        .select("e.flag", "e.author_key", "e.viewer_key", "valid_from", "valid_to")
    )


def relation_flags_at(
    relationships: DataFrame,
    points: DataFrame,
    flags: Sequence[str] = BOOL_FLAGS,
    *,
    strictly_before: bool = False,
) -> DataFrame:
    """One row per distinct (viewer_id, author_id, t) of `points` with the requested boolean flags (False when
    no relationship holds). Pair flags come from RELATION_FLAGS; derived flags (blocked: either block direction)
    from DERIVED_FLAGS; 'author_private' is the author's private relation; 'is_self' is viewer = author."""
    pair_flags = pair_flags_for(flags)
    instant = relation_instant(strictly_before=strictly_before)
    keys = points.select(*POINT_KEYS).distinct()
    out = keys
    if pair_flags:
        joined = keys.alias("p").join(
            relation_edges(relationships, pair_flags).alias("r"),
            (F.col("author_id") == F.col("author_key"))
            & (F.col("viewer_id") == F.col("viewer_key"))
            & F.expr(holds_at_sql("r", instant)),
            "left",
        )
        out = joined.groupBy(*POINT_KEYS).agg(
            *[F.coalesce(any_true(F.col("flag") == f), F.lit(False)).alias(f) for f in pair_flags]
        )
    if PRIVATE_FLAG in flags:
        private = relationships.filter(F.col("relation") == PRIVATE_RELATION).select(
            F.col("user_id").alias("author_key"), "valid_from", "valid_to"
        )
        account = (
            keys.alias("p")
            .join(private.alias("r"), (F.col("author_id") == F.col("author_key")) & F.expr(holds_at_sql("r", instant)))
            .select(*POINT_KEYS)
            .distinct()
            .withColumn(PRIVATE_FLAG, F.lit(True))
        )
        out = out.join(account, POINT_KEYS, "left").withColumn(
            PRIVATE_FLAG, F.coalesce(F.col(PRIVATE_FLAG), F.lit(False))
        )
    for derived in DERIVED_FLAGS:
        if derived in flags:
            out = out.withColumn(derived, F.expr(derived_flag_sql(derived)))
    if "is_self" in flags:
        out = out.withColumn("is_self", F.col("viewer_id") == F.col("author_id"))
    return out.select(*POINT_KEYS, *flags)

"""Audience flags of storylake.rules.audience for any (viewer_id, author_id, t) points, from silver.relationships.

The rules themselves stay in storylake.rules.audience (ALLOWED_SQL over the flags); this module only evaluates the
flags, with the relation names/directions of RELATION_FLAGS and the interval predicate of holds_at_sql.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from storylake.rules.audience import RELATION_FLAGS, holds_at_sql

POINT_KEYS = ["viewer_id", "author_id", "t"]
# Account-level flag: relation 'private' on the author (other_user_id = 0), not a pair relation.
PRIVATE_FLAG, PRIVATE_RELATION = "author_private", "private"
# Flags storylake.rules.audience.FLAGS needs that are derived from the pair flags.
AUDIENCE_FLAGS = ("is_self", "blocked", "hidden", "close_friend", "author_private", "follows", "approved")
_PAIR_FLAGS = tuple(flag for flag, _, _ in RELATION_FLAGS)


def relation_instant(t: str = "p.t", *, strictly_before: bool) -> str:
    """SQL for the instant the intervals are evaluated at: t itself, or the last microsecond before t (the state
    after every relationship event strictly before t and none at t: what a no-leakage feature may know)."""
    return f"{t} - INTERVAL 1 MICROSECOND" if strictly_before else t


def directed_relations(relationships: DataFrame, flags: Sequence[str]) -> DataFrame:
    """Relationship rows re-keyed by (author_key, viewer_key) with the flag they set, for the requested flags."""
    parts = []
    for flag, relation, direction in RELATION_FLAGS:
        if flag not in flags:
            continue
        author_side, viewer_side = ("user_id", "other_user_id")
        if direction == "viewer->author":
            author_side, viewer_side = viewer_side, author_side
        parts.append(
            relationships.filter(F.col("relation") == relation).select(
                F.col(author_side).alias("author_key"),
                F.col(viewer_side).alias("viewer_key"),
                F.lit(flag).alias("flag"),
                "valid_from",
                "valid_to",
            )
        )
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def relation_flags_at(
    relationships: DataFrame,
    points: DataFrame,
    flags: Sequence[str] = AUDIENCE_FLAGS,
    *,
    strictly_before: bool = False,
) -> DataFrame:
    """One row per distinct (viewer_id, author_id, t) of `points` with the requested boolean flags (False when
    no relationship holds). Pair flags come from RELATION_FLAGS; 'blocked' is either block direction;
    'author_private' is the author's private relation; 'is_self' is viewer = author."""
    wanted = set(flags)
    if "blocked" in wanted:
        wanted |= {"blocked_by_author", "blocked_by_viewer"}
    pair_flags = [f for f in _PAIR_FLAGS if f in wanted]
    instant = relation_instant(strictly_before=strictly_before)
    keys = points.select(*POINT_KEYS).distinct()
    out = keys
    if pair_flags:
        joined = keys.alias("p").join(
            directed_relations(relationships, pair_flags).alias("r"),
            (F.col("author_id") == F.col("author_key"))
            & (F.col("viewer_id") == F.col("viewer_key"))
            & F.expr(holds_at_sql("r", instant)),
            "left",
        )
        out = joined.groupBy(*POINT_KEYS).agg(
            *[F.coalesce(F.bool_or(F.col("flag") == f), F.lit(False)).alias(f) for f in pair_flags]
        )
    if PRIVATE_FLAG in wanted:
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
    if "blocked" in wanted:
        out = out.withColumn("blocked", F.col("blocked_by_author") | F.col("blocked_by_viewer"))
    if "is_self" in wanted:
        out = out.withColumn("is_self", F.col("viewer_id") == F.col("author_id"))
    return out.select(*POINT_KEYS, *flags)

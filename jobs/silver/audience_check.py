"""The audience rules (storylake/rules/audience.py) applied in Spark to any viewer interaction attributed to a
segment: a view, a gesture, a sticker answer, a story engagement, each at its own instant. One rule definition:
the flags come from the relationships holding at that instant and the denial is audience.DENIAL_REASON_SQL."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from jobs.engine_workarounds import lookup
from jobs.relation_flags import relation_edges
from storylake.rules import audience

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from jobs.spark_io import Materialize
    from storylake.settings import Settings

DENIAL = "_denial"


class AudienceEdges(NamedTuple):
    """What the audience rules read of silver.relationships (audience_edges): `pairs`, per (author, viewer) pair
    with a relationship interval that sets a pair flag, those intervals (_r_author, _r_viewer, _r_rels: [(flag,
    valid_from, valid_to)]; follows and approvals only of authors private at some time), and `private`, per author
    with a private interval their intervals (_p_author, _p_rels). Gathered per pair once (shared_edges: for the four
    jobs of a run), so each view, gesture or answer joins at most one row of each."""

    pairs: DataFrame
    private: DataFrame


if TYPE_CHECKING:
    from typing import TypeAlias

    # silver.relationships rows, or the audience edges already derived from them (shared_edges: once for a run's jobs)
    Relationships: TypeAlias = DataFrame | AudienceEdges


def audience_edges(relationships: DataFrame, private: DataFrame | None = None) -> AudienceEdges:
    """The edges of silver.relationships the audience rules read (AudienceEdges). Follows and approvals only decide
    anything for a private author (audience.DENIAL_REASONS): their edges are kept for authors with a private
    interval at some time, which keeps the edges few (follows are most of the graph). For every other author they
    read False, and the rules are unchanged. `private`: private_intervals(relationships) already computed (e.g.
    materialized), else derived here.

    One pass over the relationships picks the edges' rows: each follow or approval carries its author (the relation's
    author column), looked up among the private authors; a row of another relation is kept as it is. (A union of one
    scan per relation took 2.4 s at 10M views a day, 15M relationships; this 1.7 s with `private` materialized,
    before the grouping per pair.)"""
    from pyspark.sql import functions as F

    private = private_intervals(relationships) if private is None else private
    # relations that feed PRIVATE_ONLY_FLAGS only -> their author column: kept for private authors only
    private_only = {
        r.relation: r.author_column
        for r in audience.RELATION_FLAGS
        if {f.flag for f in audience.RELATION_FLAGS if f.relation == r.relation} <= set(audience.PRIVATE_ONLY_FLAGS)
    }
    author: Column | None = None
    for relation, column in private_only.items():
        arm = F.col("relation") == relation
        author = F.when(arm, F.col(column)) if author is None else author.when(arm, F.col(column))
    if author is None:  # no relation decides for private authors only: every relation's edges are kept
        return AudienceEdges(_per_pair(relation_edges(relationships)), private)
    po_author, po_hit = "_po_author", "_po_hit"
    needed = lookup(
        relationships.withColumn(po_author, author),
        private.select(F.col("_p_author").alias(po_hit)),
        F.col(po_author) == F.col(po_hit),
    ).filter(~F.col("relation").isin(*private_only) | F.col(po_hit).isNotNull())
    return AudienceEdges(_per_pair(relation_edges(needed.select(*relationships.columns))), private)


def _per_pair(edges: DataFrame) -> DataFrame:
    """relation_edges rows gathered per (author, viewer) pair: (_r_author, _r_viewer, _r_rels)."""
    from pyspark.sql import functions as F

    return edges.groupBy(F.col("author_key").alias("_r_author"), F.col("viewer_key").alias("_r_viewer")).agg(
        F.collect_list(F.struct("flag", "valid_from", "valid_to")).alias("_r_rels"))


def private_intervals(relationships: DataFrame) -> DataFrame:
    """Per author with a private interval, their intervals: (_p_author, _p_rels: [(valid_from, valid_to)])."""
    from pyspark.sql import functions as F

    return (
        relationships.filter(F.col("relation") == audience.PRIVATE_RELATION)
        .groupBy(F.col("user_id").alias("_p_author"))
        .agg(F.collect_list(F.struct("valid_from", "valid_to")).alias("_p_rels"))
    )


def shared_edges(relationships: DataFrame, materialize: Materialize) -> AudienceEdges:
    """audience_edges computed once (`materialize`d) for every job of a run that applies the audience rules: deriving
    them reads the relationships twice (the private authors first, materialized, then the edges' rows in one pass)
    and gathers the edges per pair (~1.9 s at 10M views a day; each of the four jobs gathered them again: ~0.2 s
    more each), while a job's own events then meet only the few edges of their pairs."""
    private = materialize(private_intervals(relationships), "audience_private")
    edges = audience_edges(relationships, private)
    return AudienceEdges(materialize(edges.pairs, "audience_pairs"), private)


def audience_flags(
    views: DataFrame, relationships: Relationships, viewer: str = "viewer_id", at: str = "viewed_at"
) -> DataFrame:
    """Add the storylake.rules.audience.FLAGS columns to `views` (the `viewer` column, author_id, audience and the
    instant `at`), from the relationships holding at that instant (audience.holds_at_sql). Same rows out, same order
    of columns first.

    Per-pair flags come from audience.RELATION_FLAGS (audience_edges); `blocked` is any of its blocked_* flags
    (either direction); `author_private` is the author's `private` relation (other_user_id = 0). The edges are
    gathered per (author, viewer) pair and per author, so each view joins at most one row of each (no fan-out, no
    re-grouping of the views) and the flags are `exists` over the pair's few intervals.
    """
    from pyspark.sql import functions as F

    edges = relationships if isinstance(relationships, AudienceEdges) else audience_edges(relationships)
    pair_flags = list(audience.PAIR_FLAGS)
    pairs, private = edges.pairs, edges.private
    holds = audience.holds_at_sql("x", at)
    flags = {
        f: F.coalesce(F.expr(f"exists(_r_rels, x -> x.flag = '{f}' AND {holds})"), F.lit(False)) for f in pair_flags
    }
    derived = {}
    for name, parts in audience.DERIVED_FLAGS.items():
        derived[name] = F.lit(False)
        for f in parts:
            derived[name] = derived[name] | flags[f]
    computed = {
        "is_self": F.col(viewer) == F.col("author_id"),
        **derived,
        **{f: col for f, col in flags.items() if audience.audience_flag(f) == f},
        audience.PRIVATE_FLAG: F.coalesce(F.expr(f"exists(_p_rels, x -> {holds})"), F.lit(False)),
    }
    missing = set(audience.BOOL_FLAGS) - set(computed)  # audience is the segment's column
    if missing:  # the rules grew a flag this job does not compute
        raise RuntimeError(f"audience flags not computed: {sorted(missing)}")
    computed = {name: computed[name] for name in audience.BOOL_FLAGS}
    out = lookup(
        lookup(views, pairs, (F.col("author_id") == F.col("_r_author")) & (F.col(viewer) == F.col("_r_viewer"))),
        private,
        F.col("author_id") == F.col("_p_author"),
    )
    return out.select(*views.columns, *[col.alias(name) for name, col in computed.items()])


def with_denial(events: DataFrame, relationships: Relationships, viewer: str, at: str) -> DataFrame:
    """`events` (with author_id and the segment's audience) plus `_denial`: why the audience rules deny `viewer` the
    segment at the instant `at` (blocked, hidden_from_viewer, not_close_friend, private_not_approved), null when
    they allow it (always for the author). Same rows and columns otherwise."""
    from pyspark.sql import functions as F

    flagged = audience_flags(events, relationships, viewer=viewer, at=at)
    return flagged.select(*events.columns, F.expr(audience.DENIAL_REASON_SQL).alias(DENIAL))


def denial_reason(contract_field: str, viewer: str, at: str) -> Column:
    """The quarantine reason of a denied interaction, e.g. `navigation.viewer_id 7 may not see close_friends segment
    200 of author 1 at 2026-11-01T11:00:00Z: not_close_friend` (`contract_field`: the event's viewer field)."""
    from pyspark.sql import functions as F

    from jobs.silver.quarantine import iso_col, txt

    return F.concat(
        F.lit(f"{contract_field} "), txt(viewer), F.lit(" may not see "), F.col("audience"), F.lit(" segment "),
        txt("segment_id"), F.lit(" of author "), txt("author_id"), F.lit(" at "), iso_col(at), F.lit(": "),
        F.col(DENIAL),
    )


def audience_source(spark: SparkSession, settings: Settings, shared: AudienceEdges | None) -> Relationships:
    """What a job applies the audience rules from: the run's `shared` edges (shared_edges), else silver.relationships
    as readers see it (a job run alone)."""
    from jobs import spark_io

    return shared if shared is not None else spark_io.read_table(spark, settings, "silver", "relationships")

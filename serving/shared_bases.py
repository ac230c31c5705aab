# ruff: noqa: S608  -- every SQL string here is assembled from module constants, contract column names and the
# caller's relation names (its constants and history aliases), never from values.
"""Serving tables read from a table stored merge-on-read, published as a base shared between snapshots plus each
snapshot's changes.

gold.ring_features and silver.relationships are stored as a base and the changed keys since
(storylake/merge_on_read.py). Their serving tables, `ring_features` (tray scores) and `viewer_pairs` (the audience
flags between a viewer and an author, derived from the relationships), were copied and sorted whole into every
hourly snapshot: 1.43M + ~1.4M rows at 1M views a day, 13.2M + 16M at 10M (4.0 + 7.8 s of each publish there). Now
each is kept the way its source is:

    base      the serving rows derived from the source's base alone, in a DuckDB file of its own under
              serving/history/ (written by the first publish that reads that base, and shared read-only by every
              snapshot that reads the same base rows: the source's Delta table id and a version whose rows equal
              the one read, storylake.lake.rows_unchanged_since, so a compaction keeps it);
    changes   `<name>_changes` in the snapshot: the serving rows of every key the source's changes can have changed,
              and a tombstone of each such key (so the base's rows of every touched key are replaced, whether or not
              the key still has rows);
    view      `<name>`: the merge-on-read rule (merge_on_read.duckdb_sql) over the two.

The serving keys the source's changes touch:
  ring_features   the changes' own keys (the serving table is the gold table's rows, features coalesced to 0);
  viewer_pairs    the (viewer, author) pairs of the changed relationship keys' edges (audience.relation_edges_sql,
                  both block directions), and, for an author whose private-account intervals changed, every pair in
                  which a viewer follows them (their author_private rows are joined onto the follow edges).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
from deltalake import DeltaTable

from serving import audience_table, insights_history
from serving.insights_history import BaseFile, Prior
from storylake import lake, merge_on_read
from storylake.rules import audience
from storylake.rules.tray_score import FEATURE_WEIGHTS
from storylake.settings import Settings

log = logging.getLogger(__name__)

# the serving tables' own merge rules: their keys (a changes row replaces every base row of its key) and stamp
RING_FEATURES = merge_on_read.MergedTable("serving.ring_features", ("viewer_id", "author_id"), "as_of")
VIEWER_PAIRS = merge_on_read.MergedTable("serving.viewer_pairs", ("viewer_id", "author_id"))
RING_COLUMNS = ["viewer_id", "author_id", *FEATURE_WEIGHTS, "as_of"]
PAIR_COLUMNS = ["viewer_id", "author_id", "flag_code", "valid_from", "valid_to"]
# the relationship rows other serving tables read besides the touched pairs' (private_intervals, the Seen By blocks)
KEPT_RELATIONS = (audience.PRIVATE_RELATION, audience.relation_flag("blocked_by_author").relation)
REL = "rel"  # the temp table of those rows and the touched pairs' (publish's private_intervals and catalog read it)
_REL_MERGED = "rel_merged"  # the temp view of silver.relationships as readers see it
_TOUCHED = "viewer_pairs_touched"  # the temp table of the (viewer, author) pairs the relationships' changes touch
_ENDS = "viewer_pairs_ends"  # the temp table of those pairs as (user_id, other_user_id), both orientations


@dataclass(frozen=True)
class Source:
    """A merge-on-read source as publish registered it: its base's and its changes' views, its base's Delta table and
    whether its changes have rows."""

    base_view: str
    changes_view: str
    base_path: Path
    base: DeltaTable
    with_changes: bool


def pairs_sql(rel: str) -> str:
    """viewer_pairs rows of the relationships `rel`: every relationship interval between a viewer and an author as the
    audience flag it sets (audience.relation_edges_sql, from audience.RELATION_FLAGS, the one place relation -> flag
    is defined), plus the author's private-account intervals joined onto every follow edge (flag 'author_private');
    (viewer_id, author_id, flag_code, valid_from, valid_to)."""
    edges = audience.relation_edges_sql(
        rel, flag_sql=lambda f: str(audience_table.PAIR_FLAGS.index(f)), author_key="author_id", viewer_key="viewer_id",
        flag_column="flag_code",
    )
    follows = audience.relation_flag("follows")
    # joined before the DISTINCT: the few private authors' follow edges are deduplicated, not the whole graph
    private = (
        f"SELECT DISTINCT f.{follows.author_column} AS author_id, f.{follows.viewer_column} AS viewer_id, "
        f"{audience_table.PAIR_FLAGS.index(audience.PRIVATE_FLAG)} AS flag_code, p.valid_from, p.valid_to "
        f"FROM {rel} f "
        f"JOIN (SELECT user_id, valid_from, valid_to FROM {rel} WHERE relation = '{audience.PRIVATE_RELATION}') p "
        f"ON p.user_id = f.{follows.author_column} "
        f"WHERE f.relation = '{follows.relation}'"
    )
    return (f"SELECT viewer_id, author_id, flag_code::UTINYINT AS flag_code, valid_from, valid_to "
            f"FROM ({edges} UNION ALL {private})")


def _ring_rows(view: str, *extra: str) -> str:
    picked = ", ".join(["viewer_id", "author_id", *(f"coalesce({f}, 0) AS {f}" for f in FEATURE_WEIGHTS), "as_of",
                        *extra])
    return f"SELECT {picked} FROM {view}"


def identity(dt: DeltaTable) -> str:
    """The base rows a Delta table version holds: '<table id>@<version>'."""
    return f"{dt.metadata().id}@{dt.version()}"


def _holds(settings: Settings, before: BaseFile, source: Source) -> bool:
    """The base file `before` holds the rows of the source's base as read: the same Delta table, at a version whose
    rows equal the one read (only compactions between them), and the file is there."""
    version = before.version_of(source.base)
    if version is None:
        return False
    lo, hi = sorted((version, source.base.version()))
    return lake.rows_unchanged_since(source.base_path, lo, hi) and insights_history.history_path(
        settings, before.id).exists()


def _ensure(settings: Settings, con: duckdb.DuckDBPyConnection, name: str, select_sql: str, order_by: str,
            source: Source, prior: Prior | None) -> tuple[BaseFile, bool]:
    """(the base file of serving table `name`, whether it is the previous snapshot's)."""
    before = None if prior is None else prior.bases.get(name)
    if before is not None and _holds(settings, before, source):
        return before, True
    hid = insights_history.new_file_id(f"{name}-base-")

    def fill(alias: str) -> int:
        con.execute(f"CREATE TABLE {alias}.{name} AS {select_sql} ORDER BY {order_by}")
        return int(con.execute(f"SELECT count(*) FROM {alias}.{name}").fetchone()[0])

    rows = insights_history.write_file(settings, con, hid, fill)
    log.info("base %s: %d %s rows of %s", hid, rows, name, identity(source.base))
    return BaseFile(hid, identity(source.base), rows), False


def ensure(settings: Settings, con: duckdb.DuckDBPyConnection, ring: Source, relationships: Source,
           prior: Prior | None) -> tuple[dict[str, BaseFile], dict[str, bool]]:
    """The base files the new snapshot reads ({serving table: file}), each the previous snapshot's when it still holds
    its source's base rows, else written now; and whether each was reused."""
    rf, rf_kept = _ensure(settings, con, "ring_features", _ring_rows(ring.base_view), "viewer_id, author_id", ring,
                          prior)
    vp, vp_kept = _ensure(settings, con, "viewer_pairs", pairs_sql(relationships.base_view),
                          "viewer_id, author_id, flag_code, valid_from", relationships, prior)
    return {"ring_features": rf, "viewer_pairs": vp}, {"ring_features": rf_kept, "viewer_pairs": vp_kept}


def create(con: duckdb.DuckDBPyConnection, aliases: Mapping[str, str], bases: Mapping[str, BaseFile], ring: Source,
           relationships: Source) -> tuple[dict[str, int], dict[str, float]]:
    """In the snapshot being built (its base files attached under `aliases`): `ring_features_changes`,
    `viewer_pairs_changes` and the views `ring_features` and `viewer_pairs`, and the temp table `rel` (REL): the
    relationship rows of KEPT_RELATIONS and of the touched pairs, as readers see them. Returns the two views' rows
    and seconds per step."""
    steps: dict[str, float] = {}
    t = time.perf_counter()
    con.execute(f"CREATE TABLE ring_features_changes AS {_ring_rows(ring.changes_view, merge_on_read.REMOVED)} "
                "ORDER BY viewer_id, author_id")
    con.execute("CREATE VIEW ring_features AS " + merge_on_read.duckdb_sql(
        RING_FEATURES, f"{aliases[bases['ring_features'].id]}.ring_features",
        "ring_features_changes" if ring.with_changes else None, RING_COLUMNS))
    steps["ring_features"] = time.perf_counter() - t

    t = time.perf_counter()
    con.execute(f"CREATE TEMP VIEW {_REL_MERGED} AS " + merge_on_read.duckdb_sql(
        merge_on_read.RELATIONSHIPS, relationships.base_view,
        relationships.changes_view if relationships.with_changes else None,
        ["relation", "user_id", "other_user_id", "valid_from", "valid_to"]))
    changed = relationships.changes_view
    follows = audience.relation_edges_sql(_REL_MERGED, ("follows",), author_key="author_id", viewer_key="viewer_id")
    edges = audience.relation_edges_sql(changed, author_key="author_id", viewer_key="viewer_id")
    con.execute(
        f"CREATE TEMP TABLE {_TOUCHED} AS SELECT DISTINCT viewer_id, author_id FROM ("
        f"SELECT viewer_id, author_id FROM ({edges}) "
        f"UNION ALL SELECT viewer_id, author_id FROM ({follows}) "
        f"WHERE author_id IN (SELECT user_id FROM {changed} WHERE relation = '{audience.PRIVATE_RELATION}'))")
    kept = ", ".join(f"'{r}'" for r in KEPT_RELATIONS)
    # the touched pairs in both orientations (a relationship key names either end first): an equi-join (a hash
    # join; an OR of the two orientations inside one condition made it a nested loop, 83 s at 1M views a day)
    con.execute(f"CREATE TEMP TABLE {_ENDS} AS SELECT author_id AS user_id, viewer_id AS other_user_id "
                f"FROM {_TOUCHED} UNION SELECT viewer_id, author_id FROM {_TOUCHED}")
    con.execute(
        f"CREATE TEMP TABLE {REL} AS SELECT relation, user_id, other_user_id, valid_from, valid_to "
        f"FROM {_REL_MERGED} r WHERE relation IN ({kept}) OR EXISTS (SELECT 1 FROM {_ENDS} e "
        "WHERE e.user_id = r.user_id AND e.other_user_id = r.other_user_id)")
    con.execute(f"DROP TABLE {_ENDS}")
    steps["read relationships"] = time.perf_counter() - t

    t = time.perf_counter()
    con.execute(
        f"CREATE TABLE viewer_pairs_changes AS SELECT * FROM ("
        f"SELECT p.*, false AS {merge_on_read.REMOVED} FROM ({pairs_sql(REL)}) p WHERE EXISTS (SELECT 1 FROM "
        f"{_TOUCHED} t WHERE t.viewer_id = p.viewer_id AND t.author_id = p.author_id) "
        f"UNION ALL SELECT viewer_id, author_id, NULL, NULL, NULL, true FROM {_TOUCHED}) "
        "ORDER BY viewer_id, author_id, flag_code, valid_from")
    touched = int(con.execute(f"SELECT count(*) FROM {_TOUCHED}").fetchone()[0])
    con.execute("CREATE VIEW viewer_pairs AS " + merge_on_read.duckdb_sql(
        VIEWER_PAIRS, f"{aliases[bases['viewer_pairs'].id]}.viewer_pairs",
        "viewer_pairs_changes" if touched else None, PAIR_COLUMNS))
    con.execute(f"DROP TABLE {_TOUCHED}")
    con.execute(f"DROP VIEW {_REL_MERGED}")
    steps["viewer_pairs"] = time.perf_counter() - t
    t = time.perf_counter()
    rows = {name: int(con.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
            for name in ("ring_features", "viewer_pairs")}
    steps["count merged rows"] = time.perf_counter() - t
    return rows, steps

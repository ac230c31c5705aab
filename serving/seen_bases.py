# ruff: noqa: S608  -- every SQL string here is assembled from module constants, contract column names and the
# caller's relation names (its constants and history aliases), never from values.
"""Publish's Seen By tables, as a base shared between snapshots plus the viewer rows appended since.

silver.segment_viewers (one row per segment and viewer, stored as growing rows: storylake/latest_rows.py) feeds three
serving tables: `viewer_seen` (the tray's seen state, by viewer), `segment_viewers` (Seen By's keyset pages, by
segment) and, through the per-segment counts, `segment_catalog`. Every publish read all of its live rows and sorted
them twice (12.9M rows at 10M views a day: 5.5-7.4 s of each hourly publish, reading 2.0-2.6 s, viewer_seen 1.6-2.1,
segment_viewers 2.0-2.8), although an hour appends ~2.5% of them (0.32M): its new pairs and the grown pairs' new
rows. Now:

    base      a DuckDB file of its own under serving/history/ holding `segment_viewers` (every row readers see, with the
              author and segment creation the catalog reads, sorted for Seen By's pages) and `viewer_seen` (sorted by
              viewer), from silver.segment_viewers at one version; shared read-only by the snapshots whose version
              only appended rows since (storylake.lake.appended_files: no commit removed or changed rows; a
              compaction keeps rows as they were);
    changes   `segment_viewers_changes` and `viewer_seen_changes` in the snapshot: each key's latest row among the
              appended files (the table's rule, latest_rows), each replacing the base's row of its key (an appended
              row of a key always has more views than the key's earlier rows: that is when the job appends one);
    views     `segment_viewers` (others' views only, as before) and `viewer_seen`: the base's rows of the keys without
              a change, and the changes; `segment_viewers_base` for Seen By's pages (serving/seen_by.py merges a
              page of the base with the segment's changes).

A new base is written when no known base holds rows of the version read (another table, a retention or a slice
rewrite removed rows since), or when the appended rows outgrow a quarter of the base (REBASE_SHARE): the daily
maintenance writes one after the retention (publish.prepare_ahead), so the hours after it publish their appends only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
from deltalake import DeltaTable

from serving import insights_history, shared_bases
from serving.insights_history import BaseFile, Prior
from storylake import lake, latest_rows
from storylake.rules.views import OTHERS_VIEW_SQL
from storylake.settings import Settings

log = logging.getLogger(__name__)

NAME = "seen_by"  # the base's serving name in snapshot_history (one file, both tables)
# the base's and the changes' columns: the segment_viewers row as readers see it
COLUMNS = ["segment_id", "viewer_id", "author_id", "first_viewed_at", "first_view_source", "max_completion_pct",
           "segment_created_at"]
SEEN_COLUMNS = ["viewer_id", "segment_id", "first_viewed_at"]
# the columns of the serving table `segment_viewers` (others' views: what Seen By lists)
SERVED_COLUMNS = ["segment_id", "viewer_id", "first_viewed_at", "first_view_source", "max_completion_pct"]
PAGE_ORDER = "segment_id, first_viewed_at DESC, viewer_id"  # Seen By's keyset order (serving/seen_by.py)
SEEN_ORDER = "viewer_id, segment_id"
KEY = ("segment_id", "viewer_id")
REPLACES = "replaces"  # a changes row's column: the base holds a row of its key (which it replaces)
CHANGES = "segment_viewers_changes"
SEEN_CHANGES = "viewer_seen_changes"
BASE_VIEW = "segment_viewers_base"
SEEN_BASE_VIEW = "viewer_seen_base"  # the base's viewer_seen (snapshot_indexes.SeenIndex merges it with the changes)
ALL_ROWS = "sv"  # the temp view of every row's key columns (the catalog's input; dropped before the snapshot closes)
# the columns of a row that its key decides (a segment's viewer, author and creation): a replaced base row's are its
# replacement's, so ALL_ROWS reads them from the base and the changes that replace no row, without a join
KEY_COLUMNS = ["segment_id", "viewer_id", "author_id", "segment_created_at"]
APPENDED = "read_parquet($files, union_by_name = true)"  # the appended data files, as a relation
REBASE_SHARE = 0.25  # a new base once the appended rows reach this share of the base's
REBASE_MIN_ROWS = 50_000  # ... and at least this many (a small lake keeps its base)
VIEW_SOURCE_TYPE = "view_source"  # the enum publish creates for first_view_source (in the snapshot and the base)


@dataclass(frozen=True)
class Source:
    """silver.segment_viewers as publish registered it: its stored rows' view, its table path and version read."""

    view: str
    path: Path
    table: DeltaTable


@dataclass(frozen=True)
class Seen:
    """The base the snapshot reads, the data files appended to the source since its version (up to the one read),
    and whether the base was already there (a previous snapshot's or the prepared one)."""

    base: BaseFile
    appended: list[str]
    reused: bool


def _appended(settings: Settings, base: BaseFile, version: int, source: Source) -> list[str] | None:
    """The files the source appended since `base`'s `version`, up to the version read; None when the base does not
    hold rows of that version (a removal since, a version newer than the one read, or its file is gone)."""
    if not insights_history.history_path(settings, base.id).exists():
        return None
    return lake.appended_files(source.path, version, source.table.version())


def _rows_in(con: duckdb.DuckDBPyConnection, files: list[str]) -> int:
    if not files:
        return 0
    return int(con.execute("SELECT sum(num_rows) FROM parquet_file_metadata($files)", {"files": files}).fetchone()[0])


def ensure(settings: Settings, con: duckdb.DuckDBPyConnection, source: Source, known: Sequence[Prior | None]) -> Seen:
    """The base the snapshot reads: the newest base of `known` (the previous snapshot's, the prepared one) holding rows
    of the version read with appended rows below the rebase share, else a new one written from the version read."""
    best: tuple[int, BaseFile, list[str]] | None = None
    for prior in known:
        base = None if prior is None else prior.bases.get(NAME)
        version = None if base is None else base.version_of(source.table)
        if base is None or version is None:
            continue
        files = _appended(settings, base, version, source)
        if files is not None and (best is None or version > best[0]):
            best = (version, base, files)
    if best is not None:
        _v, base, files = best
        appended = _rows_in(con, files)
        if appended <= max(REBASE_MIN_ROWS, REBASE_SHARE * base.rows):
            return Seen(base, files, True)
        log.info("seen_by base %s: %d rows appended since, more than %.0f%% of its %d: writing a new one", base.id,
                 appended, 100 * REBASE_SHARE, base.rows)
    return Seen(write(settings, con, source), [], False)


def write(settings: Settings, con: duckdb.DuckDBPyConnection, source: Source) -> BaseFile:
    """A new base file of the source's version read (`con` holds the enum type VIEW_SOURCE_TYPE)."""
    hid = insights_history.new_file_id(f"{NAME}-base-")
    values = con.execute(f"SELECT enum_range(NULL::{VIEW_SOURCE_TYPE})").fetchone()[0]

    def fill(alias: str) -> int:
        con.execute(f"CREATE TYPE {alias}.{VIEW_SOURCE_TYPE} AS ENUM ({', '.join(_quoted(v) for v in values)})")
        con.execute(f"CREATE TABLE {alias}.segment_viewers AS {_latest(source.view, f'{alias}.{VIEW_SOURCE_TYPE}')} "
                    f"ORDER BY {PAGE_ORDER}")
        con.execute(f"CREATE TABLE {alias}.viewer_seen AS SELECT {', '.join(SEEN_COLUMNS)} "
                    f"FROM {alias}.segment_viewers ORDER BY {SEEN_ORDER}")
        return int(con.execute(f"SELECT count(*) FROM {alias}.segment_viewers").fetchone()[0])

    rows = insights_history.write_file(settings, con, hid, fill)
    log.info("base %s: %d segment viewer rows of %s", hid, rows, shared_bases.identity(source.table))
    return BaseFile(hid, shared_bases.identity(source.table), rows)


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _latest(relation: str, enum_type: str) -> str:
    """Each key's row readers see (latest_rows) among the stored rows of `relation`, in COLUMNS."""
    rows = latest_rows.duckdb_sql(latest_rows.SEGMENT_VIEWERS, relation, COLUMNS)
    return f"SELECT {_picked(enum_type)} FROM ({rows})"


def _picked(enum_type: str) -> str:
    """COLUMNS, the view source cast to the enum `enum_type`."""
    return ", ".join(f"{c}::{enum_type} AS {c}" if c == "first_view_source" else c for c in COLUMNS)


def _merged(base: str, changes: str, columns: list[str]) -> str:
    """The base's rows of the keys without a row in `changes` (those it replaces), and the changes' rows."""
    cols = ", ".join(columns)
    on = " AND ".join(f"c.{k} = b.{k}" for k in KEY)
    return (f"SELECT {', '.join(f'b.{c}' for c in columns)} FROM {base} b "
            f"ANTI JOIN (SELECT {', '.join(KEY)} FROM {changes} WHERE {REPLACES}) c ON {on} "
            f"UNION ALL SELECT {cols} FROM {changes}")


def create(con: duckdb.DuckDBPyConnection, alias: str, seen: Seen) -> tuple[dict[str, int], dict[str, float]]:
    """In the snapshot being built (the base file attached as `alias`; the appended files read by their URIs): the
    changes tables, the views `segment_viewers`, `viewer_seen`, `segment_viewers_base`, `viewer_seen_base` and the
    temp view `sv` (every row's KEY_COLUMNS, for the catalog). Returns the two serving views' rows and seconds per
    step."""
    steps: dict[str, float] = {}
    t = time.perf_counter()
    base = f"{alias}.segment_viewers"
    if seen.appended:  # the appended files' rows (their URIs a bound parameter)
        con.execute(f"CREATE TEMP TABLE _seen_added AS {_latest(APPENDED, VIEW_SOURCE_TYPE)}",
                    {"files": seen.appended})
    else:  # no row appended: empty changes of the same columns
        con.execute(f"CREATE TEMP TABLE _seen_added AS SELECT {_picked(VIEW_SOURCE_TYPE)} FROM {base} LIMIT 0")
    # the keys the base holds a row of (a grown pair's): the few added rows are the join's build side, the base streams
    on = " AND ".join(f"a.{k} = b.{k}" for k in KEY)
    con.execute(f"CREATE TEMP TABLE _seen_replaced AS SELECT {', '.join(f'b.{k}' for k in KEY)} FROM {base} b "
                f"SEMI JOIN _seen_added a ON {on}")
    con.execute(f"CREATE TABLE {CHANGES} AS SELECT a.*, r.segment_id IS NOT NULL AS {REPLACES} FROM _seen_added a "
                f"LEFT JOIN _seen_replaced r ON {on.replace('b.', 'r.')} ORDER BY {PAGE_ORDER}")
    con.execute("DROP TABLE _seen_added")
    con.execute("DROP TABLE _seen_replaced")
    con.execute(f"CREATE TABLE {SEEN_CHANGES} AS SELECT {', '.join(SEEN_COLUMNS)}, {REPLACES} FROM {CHANGES} "
                f"ORDER BY {SEEN_ORDER}")
    steps["seen_by changes"] = time.perf_counter() - t
    t = time.perf_counter()
    con.execute(f"CREATE VIEW {BASE_VIEW} AS SELECT * FROM {base}")
    con.execute(f"CREATE VIEW {SEEN_BASE_VIEW} AS SELECT * FROM {alias}.viewer_seen")
    keyed = ", ".join(KEY_COLUMNS)
    con.execute(f"CREATE TEMP VIEW {ALL_ROWS} AS SELECT {keyed} FROM {base} "
                f"UNION ALL SELECT {keyed} FROM {CHANGES} WHERE NOT {REPLACES}")
    con.execute(f"CREATE VIEW segment_viewers AS SELECT {', '.join(SERVED_COLUMNS)} FROM ("
                f"{_merged(base, CHANGES, COLUMNS)}) WHERE {OTHERS_VIEW_SQL}")
    con.execute(f"CREATE VIEW viewer_seen AS {_merged(f'{alias}.viewer_seen', SEEN_CHANGES, SEEN_COLUMNS)}")
    changed = int(con.execute(f"SELECT count(*) FROM {CHANGES}").fetchone()[0])
    # viewer_seen: every base row (keys are unique there) but the replaced ones, and every changes row; segment_viewers
    # leaves out the author's own rows, which a replaced row and its replacement need not agree on: counted
    rows = {"segment_viewers": int(con.execute("SELECT count(*) FROM segment_viewers").fetchone()[0]),
            "viewer_seen": int(con.execute(
                f"SELECT (SELECT count(*) FROM {alias}.viewer_seen) + (SELECT count(*) FROM {SEEN_CHANGES} "
                f"WHERE NOT {REPLACES})").fetchone()[0])}
    steps["seen_by views"] = time.perf_counter() - t
    log.info("seen_by: base %s (%s), %d changed rows from %d appended files", seen.base.id,
             "reused" if seen.reused else "written", changed, len(seen.appended))
    return rows, steps

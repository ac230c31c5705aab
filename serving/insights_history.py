# ruff: noqa: S608  -- every SQL string in this module is assembled from module constants, contract column names and
# history aliases checked against _ALIAS.
"""The long-lived serving tables, split at a daily cut so that a publish copies what changed.

Insights are kept for 2 years (segment, story and author-day insights, sticker results), archived segments for as
long as their authors keep them, and an hourly run changes only the rows anchored in its horizon, a few days at
most. Copying all of them into every hourly snapshot would make publish grow with the lake's age. So each of these
serving tables is two parts:

    history   rows anchored before the cut (midnight UTC, HISTORY_LAG before as_of), in a DuckDB file of its own
              under serving/history/<history_id>.duckdb, written once and shared read-only by every snapshot that
              agrees with it;
    recent    rows anchored at/after the cut (or without an anchor), copied into each snapshot;

and the snapshot's table is a view `history UNION ALL recent` (DuckDB pushes the caller's filters into both parts;
the snapshot attaches its history files read-only when opened, serving/snapshot.py).

A publish reuses the previous snapshot's history of a table when the cut is the same and its history rows are
unchanged:
  1. cheap: the Delta files that may hold rows anchored before the cut (file statistics) are the ones the previous
     snapshot saw;
  2. otherwise (a compaction or a slice rewrite moved those rows into new files, or a run's gold horizon reached
     before the cut): the rows before the cut hash to the fingerprint recorded in the history file.
Otherwise it writes a new history file for that table only (daily for every table when the cut moves; after a
backfill, a retention run, or a late archive or delete of an old segment, for the tables whose old rows changed).
History files no kept snapshot refers to are removed with the snapshots. A snapshot published before the tables had
a file each attaches its one shared file as `hist`; its file is reused table by table as long as it agrees.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from storylake.settings import Settings

log = logging.getLogger(__name__)
HISTORY_SUFFIX = ".duckdb"
# rows anchored this long before as_of (rounded down to midnight UTC) go to history: beyond the gold horizon of any
# run with in-window data. A late view (48 h lateness window) of a segment created 24 h before it moves the silver
# horizon 72 h back, and gold goes back to the start of every story live there (48 h more): 120 h. Only rarer
# changes reach further (a delete of an older segment, a backfill, retention); the fingerprint catches those.
HISTORY_LAG = timedelta(days=5)


@dataclass(frozen=True)
class Part:
    source: str  # the silver or gold table it is read from
    anchor: str  # its anchor column (jobs/horizon.py ANCHORS / DAY_ANCHORED; a segment's created_at)
    order_by: str  # the serving sort order (zone maps: insights() and the archive read by author)
    columns: tuple[str, ...] | None = None  # the source's columns it holds (None: all)
    where: str | None = None  # the source's rows it holds (constant SQL; None: all)


# Seen By's lookup of a segment older than the snapshot's segment catalog (serving/seen_by.py older_segment): the
# segment_insights rows' identity columns, sorted by segment_id in the history file (zone maps find one row whatever
# its size; segment_insights itself is sorted by author for insights()), as the view `segment_lookup`.
LOOKUP = "segment_lookup"
LOOKUP_COLUMNS = "segment_id, author_id, created_at, is_deleted"

# serving table -> how it is split
PARTS: dict[str, Part] = {
    "segment_insights": Part("gold.segment_insights", "story_start", "author_id, created_at, segment_id"),
    "story_insights": Part("gold.story_insights", "story_start", "author_id, story_start, story_id"),
    "author_daily_insights": Part("gold.author_daily_insights", "day", "author_id, day"),
    "sticker_results": Part("gold.sticker_results", "segment_created_at", "author_id, segment_id, sticker_id"),
    # highlights and the archive (serving/highlights.py): archived, non-deleted segments, newest first per author
    "archived_segments": Part(
        "silver.segments", "created_at", "author_id, created_at DESC, segment_id",
        columns=("segment_id", "author_id", "story_id", "media_id", "media_type", "audience", "duration_ms",
                 "created_at", "expires_at", "highlight_id"),
        where="coalesce(is_archived, false) AND NOT coalesce(is_deleted, false)"),
}


def history_dir(settings: Settings) -> Path:
    return _dir(settings.serving_dir)


def history_path(settings: Settings, history_id: str) -> Path:
    return _path(settings.serving_dir, history_id)


def _dir(serving_dir: Path) -> Path:
    return serving_dir / "history"


def _path(serving_dir: Path, history_id: str) -> Path:
    return _dir(serving_dir) / f"{history_id}{HISTORY_SUFFIX}"


def cut_for(as_of: datetime) -> datetime:
    """Midnight UTC of as_of - HISTORY_LAG."""
    t = (as_of - HISTORY_LAG).astimezone(UTC)
    return datetime(t.year, t.month, t.day, tzinfo=UTC)


def _bound(part: Part, cut: datetime) -> datetime | date:
    return cut.date() if part.anchor == "day" else cut


def _rows_sql(part: Part, view: str, cond: str) -> str:
    picked = ", ".join(part.columns) if part.columns else "*"
    where = f"({part.where}) AND ({cond})" if part.where else cond
    return f"SELECT {picked} FROM {view} WHERE {where}"


def old_sql(part: Part, view: str) -> str:
    return _rows_sql(part, view, f"{part.anchor} < $cut")


def recent_sql(part: Part, view: str) -> str:
    return _rows_sql(part, view, f"{part.anchor} >= $cut OR {part.anchor} IS NULL")


def columns_of(part: Part, source_columns: list[str]) -> list[str]:
    """The serving table's columns (its fingerprint's)."""
    return list(part.columns) if part.columns else list(source_columns)


def files_before(dt: DeltaTable, part: Part, cut: datetime) -> str:
    """A digest of the data files of `dt` that may hold rows anchored before the cut (by their statistics; a file
    without statistics may hold any)."""
    actions = pa.table(dt.get_add_actions(flatten=True))
    paths = actions.column("path").to_pylist()
    col = f"min.{part.anchor}"
    mins = actions.column(col).to_pylist() if col in actions.column_names else [None] * len(paths)
    bound = _bound(part, cut)
    held = sorted(p for p, m in zip(paths, mins, strict=True) if m is None or m < bound)
    return hashlib.sha256("\n".join(held).encode()).hexdigest()


def fingerprint(con: duckdb.DuckDBPyConnection, rows_sql: str, columns: Iterable[str],
                params: dict[str, Any] | None = None) -> tuple[int, str]:
    """(row count, "<count>:<order-independent hash sum>") of the rows `rows_sql` selects."""
    cols = ", ".join(columns)
    n, total = con.execute(
        f"SELECT count(*), coalesce(sum(hash({cols})::HUGEINT), 0) FROM ({rows_sql})", params
    ).fetchone()
    return int(n), f"{n}:{total}"


@dataclass(frozen=True)
class History:
    cut: datetime
    ids: dict[str, str]  # serving table -> the history file it reads
    files: dict[str, str]  # serving table -> files_before digest at the versions this snapshot read
    rows: dict[str, int]  # serving table -> history rows
    reused: dict[str, bool]  # serving table -> its file is the previous snapshot's


@dataclass(frozen=True)
class Prior:
    """The history a snapshot attaches, as it recorded it (snapshot_history)."""

    cut: datetime
    ids: dict[str, str]  # serving table -> history id
    files: dict[str, str]  # serving table -> files digest
    aliases: dict[str, str]  # history id -> the name the snapshot's views read it by


def previous(snapshot: duckdb.DuckDBPyConnection) -> Prior | None:
    """The history a snapshot attaches (None for a snapshot without history). A snapshot published before each table
    had a file of its own records no alias: its views read the one shared file as `hist`."""
    try:
        cols = {r[0] for r in snapshot.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'snapshot_history'").fetchall()}
        alias = "alias" if "alias" in cols else "'hist'"
        rows = snapshot.execute(
            f"SELECT history_id, cut, serving_table, files, {alias} FROM snapshot_history").fetchall()
    except duckdb.Error:
        return None
    if not rows:
        return None
    return Prior(rows[0][1].astimezone(UTC), {r[2]: r[0] for r in rows}, {r[2]: r[3] for r in rows},
                 {r[0]: r[4] for r in rows})


def _recorded_fingerprint(path: Path, name: str) -> tuple[str, int] | None:
    """(fingerprint, row count) of the serving table `name` as its history file recorded them when it was written."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except (duckdb.Error, OSError):
        return None
    try:
        rows = con.execute("SELECT fingerprint, row_count FROM history_meta WHERE serving_table = $t",
                           {"t": name}).fetchall()
        # a file written before the segment lookup existed is not reused: the next one has it
        if name == "segment_insights" and not con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = $t", {"t": LOOKUP}).fetchone()[0]:
            return None
    except duckdb.Error:
        return None
    finally:
        con.close()
    return (rows[0][0], int(rows[0][1])) if rows else None


def ensure(
    settings: Settings, con: duckdb.DuckDBPyConnection, views: Mapping[str, str], tables: Mapping[str, DeltaTable],
    columns: Mapping[str, list[str]], as_of: datetime, prior: Prior | None,
) -> History:
    """The history files the new snapshot attaches: per serving table the previous one when still valid, else a new
    file. `con` has the sources registered under `views` (serving table -> view name); `tables` are the Delta
    tables read (serving table -> DeltaTable) and `columns` the serving tables' columns."""
    cut = cut_for(as_of)
    ids: dict[str, str] = {}
    files: dict[str, str] = {}
    rows: dict[str, int] = {}
    reused: dict[str, bool] = {}
    same_cut = prior if prior is not None and prior.cut == cut else None  # only its files can be reused
    for name, part in PARTS.items():
        files[name] = files_before(tables[name], part, cut)
        hid = same_cut.ids.get(name) if same_cut is not None else None
        path = history_path(settings, hid) if hid is not None else None
        recorded = _recorded_fingerprint(path, name) if path is not None and path.exists() else None
        if same_cut is not None and hid is not None and recorded is not None and (
            same_cut.files.get(name) == files[name]
            or fingerprint(con, old_sql(part, views[name]), columns[name], {"cut": _bound(part, cut)})[1]
            == recorded[0]
        ):
            ids[name], rows[name], reused[name] = hid, recorded[1], True
            continue
        ids[name], rows[name] = _write(settings, con, name, part, views[name], columns[name], cut)
        reused[name] = False
    return History(cut, ids, files, rows, reused)


def _write(settings: Settings, con: duckdb.DuckDBPyConnection, name: str, part: Part, view: str,
           columns: list[str], cut: datetime) -> tuple[str, int]:
    """Write the history file of one serving table; (its id, its rows)."""
    hdir = history_dir(settings)
    hdir.mkdir(parents=True, exist_ok=True)
    hid = f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
    final = history_path(settings, hid)
    tmp = hdir / f".{hid}{HISTORY_SUFFIX}.tmp"
    alias = f"h_{uuid.uuid4().hex[:8]}"
    try:
        con.execute(f"ATTACH $path AS {alias}", {"path": str(tmp)})
        try:
            con.execute(f"CREATE TABLE {alias}.{name} AS {old_sql(part, view)} ORDER BY {part.order_by}",
                        {"cut": _bound(part, cut)})
            # hashed from the table just written, not by reading the source again
            rows, printed = fingerprint(con, f"SELECT * FROM {alias}.{name}", columns)
            if name == "segment_insights":
                con.execute(f"CREATE TABLE {alias}.{LOOKUP} AS SELECT {LOOKUP_COLUMNS} FROM {alias}.{name} "
                            "ORDER BY segment_id")
            con.execute(f"CREATE TABLE {alias}.history_meta (cut TIMESTAMPTZ, serving_table VARCHAR, "
                        "fingerprint VARCHAR, row_count BIGINT)")
            con.execute(f"INSERT INTO {alias}.history_meta VALUES (?, ?, ?, ?)", [cut, name, printed, rows])
            con.execute(f"CHECKPOINT {alias}")
        finally:
            con.execute(f"DETACH {alias}")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        for p in (tmp, Path(f"{tmp}.wal")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        raise
    log.info("history %s: %d %s rows anchored before %s", hid, rows, name, cut.isoformat())
    return hid, rows


_ALIAS = re.compile(r"hist(_\d+)?")


def _aliases(ids: Iterable[str]) -> dict[str, str]:
    """A name per distinct history file (a file of an earlier layout serves several tables, and DuckDB attaches a
    file once)."""
    return {hid: f"hist_{i}" for i, hid in enumerate(sorted(set(ids)))}


def attach_and_union(con: duckdb.DuckDBPyConnection, settings: Settings, history: History,
                     views: Mapping[str, str]) -> dict[str, int]:
    """In the snapshot being built: the recent part of each table (`<name>_recent`), the view `<name>` over history
    and recent, the view `segment_lookup` (LOOKUP) and `snapshot_history`; returns each table's recent rows. The
    history files stay attached until detach()."""
    recent: dict[str, int] = {}
    aliases = _aliases(history.ids.values())
    for hid, alias in aliases.items():
        con.execute(f"ATTACH $path AS {alias} (READ_ONLY)", {"path": str(history_path(settings, hid))})
    for name, part in PARTS.items():
        con.execute(f"CREATE TABLE {name}_recent AS {recent_sql(part, views[name])} ORDER BY {part.order_by}",
                    {"cut": _bound(part, history.cut)})
        recent[name] = int(con.execute(f"SELECT count(*) FROM {name}_recent").fetchone()[0])
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM {aliases[history.ids[name]]}.{name} "
                    f"UNION ALL SELECT * FROM {name}_recent")
    con.execute(f"CREATE VIEW {LOOKUP} AS SELECT * FROM {aliases[history.ids['segment_insights']]}.{LOOKUP} "
                f"UNION ALL SELECT {LOOKUP_COLUMNS} FROM segment_insights_recent")
    con.execute("CREATE TABLE snapshot_history (history_id VARCHAR, cut TIMESTAMPTZ, serving_table VARCHAR, "
                "files VARCHAR, history_rows BIGINT, alias VARCHAR)")
    con.executemany("INSERT INTO snapshot_history VALUES (?, ?, ?, ?, ?, ?)",
                    [[history.ids[name], history.cut, name, history.files[name], history.rows[name],
                      aliases[history.ids[name]]] for name in PARTS])
    return recent


def detach(con: duckdb.DuckDBPyConnection, history: History) -> None:
    """Detach the history files attach_and_union attached (before the snapshot is closed)."""
    for alias in _aliases(history.ids.values()).values():
        con.execute(f"DETACH {alias}")


def attach(con: duckdb.DuckDBPyConnection, serving_dir: Path) -> list[str]:
    """Attach (read-only, under the names its views read) the history files a snapshot's views read; their ids."""
    found = previous(con)
    if found is None:
        return []
    attached = {r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
    for hid, alias in found.aliases.items():
        if not _ALIAS.fullmatch(alias):  # read from the file: never pasted into SQL unless it is one of ours
            raise ValueError(f"snapshot_history names history file {hid!r} by an unexpected alias {alias!r}")
        # a file opened twice in one process is one DuckDB instance: the first open attached it already
        if alias not in attached:
            con.execute(f"ATTACH $path AS {alias} (READ_ONLY)", {"path": str(_path(serving_dir, hid))})
    return sorted(found.aliases)


def remove_unreferenced(settings: Settings, referenced: set[str]) -> list[str]:
    """Delete history files no kept snapshot refers to (and leftovers of a crashed write)."""
    removed = []
    hdir = history_dir(settings)
    if not hdir.is_dir():
        return removed
    for p in hdir.glob(".*.tmp*"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    for p in hdir.glob(f"*{HISTORY_SUFFIX}"):
        hid = p.name[: -len(HISTORY_SUFFIX)]
        if hid not in referenced:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(hid)
    return removed


def referenced_by(snapshot_files: Iterable[Path]) -> set[str]:
    """History ids the given snapshot files refer to."""
    out: set[str] = set()
    for path in snapshot_files:
        try:
            con = duckdb.connect(str(path), read_only=True)
        except (duckdb.Error, OSError):
            continue
        try:
            found = previous(con)
        finally:
            con.close()
        if found is not None:
            out.update(found.ids.values())
    return out


def describe(history: History, recent: Mapping[str, int]) -> dict[str, Any]:
    return {"history_ids": dict(history.ids), "cut": history.cut.isoformat(),
            "reused": all(history.reused.values()),
            "rewritten": sorted(name for name, kept in history.reused.items() if not kept),
            "history_rows": dict(history.rows), "recent_rows": dict(recent)}

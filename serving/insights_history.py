# ruff: noqa: S608  -- every SQL string in this module is assembled from module constants and contract column names.
"""The long-lived insights of the serving snapshot, split at a daily cut so that a publish copies what changed.

Insights are kept for 2 years (segment, story and author-day insights, sticker results) and an hourly run changes
only the rows anchored in its horizon, a few days at most. Copying all of them into every hourly snapshot would make
publish grow with the lake's age. So each of these serving tables is two parts:

    history   rows anchored before the cut (midnight UTC, HISTORY_LAG before as_of), in a DuckDB file under
              serving/history/<history_id>.duckdb, written once and shared read-only by every snapshot that agrees
              with it;
    recent    rows anchored at/after the cut (or without an anchor), copied into each snapshot;

and the snapshot's table is a view `history UNION ALL recent` (DuckDB pushes the caller's filters into both parts;
the snapshot attaches its history file read-only when opened, serving/snapshot.py).

A publish reuses the previous snapshot's history when the cut is the same and the history rows are unchanged:
  1. cheap: the Delta files that may hold rows anchored before the cut (file statistics) are the ones the previous
     snapshot saw, for every source table;
  2. otherwise (a compaction or a slice rewrite moved those rows into new files, or a run's gold horizon reached
     before the cut): the rows before the cut hash to the fingerprint recorded in the history file.
Otherwise it writes a new history file (daily when the cut moves, and after a backfill or a retention run changed
old rows). History files no kept snapshot refers to are removed with the snapshots.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
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
    source: str  # the gold table it is read from
    anchor: str  # its anchor column (jobs/horizon.py ANCHORS / DAY_ANCHORED)
    order_by: str  # the serving sort order (zone maps: insights() reads by author)


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


def old_sql(part: Part, view: str) -> str:
    return f"SELECT * FROM {view} WHERE {part.anchor} < $cut"


def recent_sql(part: Part, view: str) -> str:
    return f"SELECT * FROM {view} WHERE {part.anchor} >= $cut OR {part.anchor} IS NULL"


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
    history_id: str
    cut: datetime
    files: dict[str, str]  # serving table -> files_before digest at the versions this snapshot read
    rows: dict[str, int]  # serving table -> history rows


def previous(snapshot: duckdb.DuckDBPyConnection) -> tuple[str, datetime, dict[str, str]] | None:
    """(history_id, cut, files digests) recorded by a snapshot (None for a snapshot without history)."""
    try:
        rows = snapshot.execute("SELECT history_id, cut, serving_table, files FROM snapshot_history").fetchall()
    except duckdb.Error:
        return None
    if not rows:
        return None
    return rows[0][0], rows[0][1].astimezone(UTC), {r[2]: r[3] for r in rows}


def _recorded_fingerprints(path: Path) -> tuple[dict[str, str], dict[str, int]] | None:
    """(fingerprints, row counts) per serving table, as the history file recorded them when it was written."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except (duckdb.Error, OSError):
        return None
    try:
        rows = con.execute("SELECT serving_table, fingerprint, row_count FROM history_meta").fetchall()
        # a file written before the segment lookup existed is not reused: the next one has it
        if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = $t", {"t": LOOKUP}).fetchone()[0]:
            return None
    except duckdb.Error:
        return None
    finally:
        con.close()
    if not rows:
        return None
    return {r[0]: r[1] for r in rows}, {r[0]: int(r[2]) for r in rows}


def ensure(
    settings: Settings, con: duckdb.DuckDBPyConnection, views: Mapping[str, str], tables: Mapping[str, DeltaTable],
    columns: Mapping[str, list[str]], as_of: datetime, prior: tuple[str, datetime, dict[str, str]] | None,
) -> tuple[History, bool]:
    """The history the new snapshot attaches: the previous one when still valid, else a new file; and whether it was
    reused. `con` has the sources registered under `views` (serving table -> view name); `tables` are the Delta
    tables read (serving table -> DeltaTable) and `columns` their column names."""
    cut = cut_for(as_of)
    files = {name: files_before(tables[name], part, cut) for name, part in PARTS.items()}
    if prior is not None:
        hid, prior_cut, prior_files = prior
        path = history_path(settings, hid)
        recorded = _recorded_fingerprints(path) if path.exists() and prior_cut == cut else None
        if recorded is not None:
            prints, rows = recorded
            if prior_files == files:
                return History(hid, cut, files, rows), True
            same = all(
                fingerprint(con, old_sql(part, views[name]), columns[name], {"cut": _bound(part, cut)})[1]
                == prints.get(name)
                for name, part in PARTS.items()
            )
            if same:
                return History(hid, cut, files, rows), True
    return _write(settings, con, views, columns, cut, files), False


def _write(
    settings: Settings, con: duckdb.DuckDBPyConnection, views: Mapping[str, str], columns: Mapping[str, list[str]],
    cut: datetime, files: dict[str, str],
) -> History:
    hdir = history_dir(settings)
    hdir.mkdir(parents=True, exist_ok=True)
    hid = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
    final = history_path(settings, hid)
    tmp = hdir / f".{hid}{HISTORY_SUFFIX}.tmp"
    alias = f"h_{uuid.uuid4().hex[:8]}"
    rows: dict[str, int] = {}
    try:
        con.execute(f"ATTACH $path AS {alias}", {"path": str(tmp)})
        try:
            meta = []
            for name, part in PARTS.items():
                bound = {"cut": _bound(part, cut)}
                con.execute(f"CREATE TABLE {alias}.{name} AS {old_sql(part, views[name])} ORDER BY {part.order_by}",
                            bound)
                # hashed from the table just written, not by reading the source again
                rows[name], printed = fingerprint(con, f"SELECT * FROM {alias}.{name}", columns[name])
                meta.append([cut, name, printed, rows[name]])
            con.execute(f"CREATE TABLE {alias}.{LOOKUP} AS SELECT {LOOKUP_COLUMNS} FROM {alias}.segment_insights "
                        "ORDER BY segment_id")
            con.execute(f"CREATE TABLE {alias}.history_meta (cut TIMESTAMPTZ, serving_table VARCHAR, "
                        "fingerprint VARCHAR, row_count BIGINT)")
            con.executemany(f"INSERT INTO {alias}.history_meta VALUES (?, ?, ?, ?)", meta)
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
    log.info("insights history %s: rows anchored before %s (%s)", hid, cut.isoformat(),
             ", ".join(f"{k} {v}" for k, v in rows.items()))
    return History(hid, cut, files, rows)


def attach_and_union(con: duckdb.DuckDBPyConnection, settings: Settings, history: History,
                     views: Mapping[str, str]) -> dict[str, int]:
    """In the snapshot being built: the recent part of each table (`<name>_recent`), the view `<name>` over history
    and recent, the view `segment_lookup` (LOOKUP) and `snapshot_history`; returns each table's recent rows."""
    recent: dict[str, int] = {}
    con.execute("ATTACH $path AS hist (READ_ONLY)", {"path": str(history_path(settings, history.history_id))})
    for name, part in PARTS.items():
        con.execute(f"CREATE TABLE {name}_recent AS {recent_sql(part, views[name])} ORDER BY {part.order_by}",
                    {"cut": _bound(part, history.cut)})
        recent[name] = int(con.execute(f"SELECT count(*) FROM {name}_recent").fetchone()[0])
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM hist.{name} UNION ALL SELECT * FROM {name}_recent")
    con.execute(f"CREATE VIEW {LOOKUP} AS SELECT * FROM hist.{LOOKUP} "
                f"UNION ALL SELECT {LOOKUP_COLUMNS} FROM segment_insights_recent")
    con.execute("CREATE TABLE snapshot_history (history_id VARCHAR, cut TIMESTAMPTZ, serving_table VARCHAR, "
                "files VARCHAR, history_rows BIGINT)")
    con.executemany("INSERT INTO snapshot_history VALUES (?, ?, ?, ?, ?)",
                    [[history.history_id, history.cut, name, history.files[name], history.rows[name]]
                     for name in PARTS])
    return recent


def attach(con: duckdb.DuckDBPyConnection, serving_dir: Path) -> str | None:
    """Attach (read-only, as `hist`) the history file a snapshot's views read; its id, None without one."""
    found = previous(con)
    if found is None:
        return None
    hid = found[0]
    # a file opened twice in one process is one DuckDB instance: the first open attached it already
    if not con.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = 'hist'").fetchone()[0]:
        con.execute("ATTACH $path AS hist (READ_ONLY)", {"path": str(_path(serving_dir, hid))})
    return hid


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
            out.add(found[0])
    return out


def describe(history: History, reused: bool, recent: Mapping[str, int]) -> dict[str, Any]:
    return {"history_id": history.history_id, "cut": history.cut.isoformat(), "reused": reused,
            "history_rows": dict(history.rows), "recent_rows": dict(recent)}

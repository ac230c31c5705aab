"""The published serving snapshot: layout on disk, the CURRENT pointer, read-only handles.

Layout under `settings.serving_dir`:

    snapshots/<snapshot_id>.duckdb   immutable DuckDB files, one per publish
    history/<history_id>.duckdb      immutable DuckDB files, two per long-lived table (insights, the archive): its
                                     rows anchored before a daily cut, and its warm rows from that cut to a later
                                     one, attached read-only by the snapshots that share them
                                     (serving/insights_history.py); and the bases of ring_features and
                                     viewer_pairs, shared while their merge-on-read sources' bases are unchanged
                                     (serving/shared_bases.py), and of the Seen By tables, shared while
                                     silver.segment_viewers only appends rows (serving/seen_bases.py)
    CURRENT                          one line: the snapshot_id being served (replaced atomically)

Readers resolve CURRENT once and keep their handle: a reader opened before a publish goes on
reading its snapshot (the file is never modified; it is only unlinked when it falls out of the
retention window, and an open handle keeps reading an unlinked file on POSIX).
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from serving import insights_history
from storylake.errors import NotFoundError, StorylakeError
from storylake.settings import Settings

SNAPSHOT_SUFFIX = ".duckdb"
CURRENT_NAME = "CURRENT"
# snapshot_meta.format_version of the snapshots publish writes: 6 = the long-lived tables' recent part a file per
# table too (snapshot_history's tier `recent`, lo its lower bound; serving/recent_part.py), no longer a table
# `<name>_recent` in the snapshot; 5 = the long-lived tables' history in calendar periods
# (snapshot_history's tiers `history` and `history:<day>`, none for a period without rows) and the Delta table id of
# each source beside its version (snapshot_meta.table_id), and since session 32 the warm tier a file per day (tiers
# `warm:<day>`, where earlier format-5 snapshots record one `warm` file: either is read and followed alike, so the
# format did not change); 4 = ring_features and viewer_pairs are views over a
# base file shared between snapshots and the snapshot's changes (snapshot_history's tier 'base',
# serving/shared_bases.py); 3 = a history and a warm file per long-lived table (snapshot_history's `tier`, `lo`);
# 2 = a history file per long-lived table, attached under the alias snapshot_history records; 1 = one shared file
# attached as `hist`. A reader opens versions up to it, and publish
# refuses to follow a CURRENT snapshot of a newer one (its cleanup would not know the newer files it attaches).
FORMAT_VERSION = 6


def snapshots_dir(settings: Settings) -> Path:
    return settings.serving_dir / "snapshots"


def current_pointer(settings: Settings) -> Path:
    return settings.serving_dir / CURRENT_NAME


def snapshot_path(settings: Settings, snapshot_id: str) -> Path:
    return snapshots_dir(settings) / f"{snapshot_id}{SNAPSHOT_SUFFIX}"


def current_id(settings: Settings) -> str | None:
    """The snapshot id CURRENT names (None when nothing was published yet)."""
    try:
        text = current_pointer(settings).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


@dataclass
class Snapshot:
    """A read-only handle on one published snapshot. Thread-safe: each thread gets its own cursor."""

    snapshot_id: str
    path: Path
    con: duckdb.DuckDBPyConnection
    as_of: datetime
    built_at: datetime
    sources: dict[str, dict[str, Any]]
    tray_window_start: datetime | None = None
    cursor_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)  # signs its cursors
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # derived read-only structures (tray index)
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def db(self) -> duckdb.DuckDBPyConnection:
        """A connection usable from the calling thread (DuckDB connections are not shared across threads)."""
        cur = getattr(self._local, "cur", None)
        if cur is None:
            cur = self.con.cursor()
            cur.execute("SET enable_progress_bar = false")
            # a missing table must be an error, never a Python variable of the caller's scope picked up by name
            cur.execute("SET python_enable_replacements = false")
            self._local.cur = cur
        return cur

    def meta(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "as_of": self.as_of,
            "built_at": self.built_at,
            "sources": self.sources,
            "tray_window_start": self.tray_window_start,
        }

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Snapshots published by earlier versions may lack a table added since (profiles, snapshot_keys)."""
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = $t", {"t": table}).fetchone()[0])


def view_exists(con: duckdb.DuckDBPyConnection, view: str) -> bool:
    """Snapshots published by earlier versions may lack a view added since (segment_lookup, viewer_seen_base)."""
    return bool(con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = $v", {"v": view}).fetchone()[0])


def format_of(con: duckdb.DuckDBPyConnection) -> int | None:
    """snapshot_meta.format_version of an open snapshot (None when it has none)."""
    try:
        fmt = con.execute("SELECT max(format_version) FROM snapshot_meta").fetchone()[0]
    except duckdb.Error:
        return None
    return None if fmt is None else int(fmt)


class SnapshotFormatError(StorylakeError, ValueError):
    """A snapshot written by a newer publish than this reader knows (the message names both formats)."""


def open_snapshot(path: Path) -> Snapshot:
    """Open a snapshot file read-only and load its snapshot_meta."""
    if not path.exists():
        raise NotFoundError(f"serving snapshot {path} does not exist")
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET GLOBAL TimeZone = 'UTC'")
        fmt = format_of(con)
        if fmt is not None and fmt > FORMAT_VERSION:
            raise SnapshotFormatError(f"serving snapshot {path} has format {fmt}, newer than this reader's "
                                      f"{FORMAT_VERSION}: upgrade the serving code before publishing with newer code")
        # the long-lived tables' history parts (serving/insights_history.py), shared with other snapshots
        insights_history.attach(con, path.parent.parent)
        rows = con.execute(
            "SELECT snapshot_id, as_of, built_at, source_table, delta_version, row_count, tray_window_start "
            "FROM snapshot_meta ORDER BY source_table"
        ).fetchall()
    except (duckdb.Error, SnapshotFormatError):
        con.close()
        raise
    if not rows:
        con.close()
        raise ValueError(f"serving snapshot {path} has an empty snapshot_meta")
    sources = {r[3]: {"version": r[4], "rows": r[5]} for r in rows}
    # Snapshots published before cursors were signed have no key: a random one per process then (its cursors are
    # accepted by the process that issued them only).
    keys = con.execute("SELECT cursor_key FROM snapshot_keys").fetchone() if table_exists(con, "snapshot_keys") \
        else None
    return Snapshot(
        cursor_key=bytes(keys[0]) if keys else secrets.token_bytes(32),
        snapshot_id=rows[0][0],
        path=path,
        con=con,
        as_of=rows[0][1].astimezone(UTC),
        built_at=rows[0][2].astimezone(UTC),
        sources=sources,
        tray_window_start=rows[0][6].astimezone(UTC) if rows[0][6] is not None else None,
    )


_cache_lock = threading.Lock()
_cache: dict[Path, Snapshot] = {}


def open_current(settings: Settings) -> Snapshot:
    """The snapshot CURRENT names, opened read-only (cached per process; re-resolved on every call so a
    new publish is picked up by the next request while earlier handles keep their snapshot)."""
    sid = current_id(settings)
    if sid is None:
        raise NotFoundError(
            f"no serving snapshot has been published under {settings.serving_dir}; "
            "run `storylake run` (or `storylake publish`) first"
        )
    path = snapshot_path(settings, sid).resolve()
    with _cache_lock:
        snap = _cache.get(path)
        if snap is None:
            snap = open_snapshot(path)
            _cache[path] = snap
            # Drop handles on snapshots that are no longer current for this serving dir (callers holding
            # them keep working: closing is left to the garbage collector, never forced here).
            for other in [p for p in _cache if p != path and p.parent == path.parent]:
                _cache.pop(other, None)
        return snap

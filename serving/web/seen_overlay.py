"""Read-your-writes for trays: the segments a viewer has seen according to receipts accepted since the serving
snapshot was built.

A SQLite database (WAL) beside the snapshots, shared by every server process on the host:
    seen(viewer_id, segment_id, viewed_at_us)   one row per (viewer, segment), the earliest accepted view
Only receipts that count as a view (storylake.rules.views) are added, after their landing file is durable. A tray
ORs these into the snapshot's seen state. Rows are dropped once a published snapshot includes them (its
viewer_seen has the pair) and, for receipts the pipeline does not count (quarantined later), once the segment
has necessarily expired: a segment expires 24 h after it was created, at most 24 h after it was seen.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from storylake.rules.lifetimes import SEGMENT_LIFETIME

US = 1_000_000
KEEP_US = int(SEGMENT_LIFETIME.total_seconds()) * US
_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    viewer_id INTEGER NOT NULL, segment_id INTEGER NOT NULL, viewed_at_us INTEGER NOT NULL,
    PRIMARY KEY (viewer_id, segment_id)
) WITHOUT ROWID
"""
_ADD = """
INSERT INTO seen VALUES (?, ?, ?)
ON CONFLICT (viewer_id, segment_id) DO UPDATE SET viewed_at_us = min(viewed_at_us, excluded.viewed_at_us)
"""


class SeenOverlay:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._db() as db:
            db.execute(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=True)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def add(self, rows: Iterable[tuple[int, int, int]]) -> None:
        """(viewer_id, segment_id, viewed_at_us) rows."""
        rows = list(rows)
        if not rows:
            return
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_ADD, rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def seen(self, viewer_id: int, now_us: int) -> np.ndarray:
        """Segment ids the viewer saw by `now` per the overlay."""
        rows = self._db().execute(
            "SELECT segment_id FROM seen WHERE viewer_id = ? AND viewed_at_us <= ?", (viewer_id, now_us)
        ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def count(self) -> int:
        return int(self._db().execute("SELECT count(*) FROM seen").fetchone()[0])

    def drop_published(self, snapshot_db: Any) -> int:
        """Delete the rows the snapshot's viewer_seen includes (snapshot_db: a DuckDB connection on it)."""
        rows = self._db().execute("SELECT viewer_id, segment_id FROM seen").fetchall()
        if not rows:
            return 0
        pending = pa.table({"viewer_id": pa.array([r[0] for r in rows], pa.int64()),
                            "segment_id": pa.array([r[1] for r in rows], pa.int64())})
        snapshot_db.register("overlay_rows", pending)
        try:
            done = snapshot_db.execute(
                "SELECT o.viewer_id, o.segment_id FROM overlay_rows o "
                "SEMI JOIN viewer_seen v ON v.viewer_id = o.viewer_id AND v.segment_id = o.segment_id"
            ).fetchall()
        finally:
            snapshot_db.unregister("overlay_rows")
        return self._delete(done)

    def drop_expired(self, now_us: int) -> int:
        db = self._db()
        return db.execute("DELETE FROM seen WHERE viewed_at_us < ?", (now_us - KEEP_US,)).rowcount

    def _delete(self, pairs: list[tuple[int, int]]) -> int:
        if not pairs:
            return 0
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("DELETE FROM seen WHERE viewer_id = ? AND segment_id = ?", pairs)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return len(pairs)

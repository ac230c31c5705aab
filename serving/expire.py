"""Expiry (seed: "Lazy + Batch Cleanup"; DESIGN §5) without deleting analytics inputs, through delta-rs, no Spark.

Lifecycle is serving-time filtering plus retention by age, never a delete of rows that analytics still need:
  - serving hides an expired segment at read time (lazy expiry: created_at <= now < expires_at) and refuses a
    Seen By list after SEEN_BY_LIFETIME, whatever the tables hold;
  - this job only lists what must physically disappear outside the lake: the media of every expired,
    non-archived segment more than CLEANUP_GRACE past its expiry, appended once to ops.media_deletions
    (segment, author, media, expires_at, due_at) for the media service to consume;
  - silver and gold keep what insights, sticker results and the ranking export need; each table's contract
    retention is enforced by age by the retention job (jobs/retention.py), never by this one.

So running expiry between any two steps of the pipeline, or in any order with them, changes no silver or gold
table and no export. Idempotent: a segment already listed is not listed again, and a run with nothing new writes
no Delta version.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from storylake import contracts, lake
from storylake.clock import iso, utc
from storylake.rules.lifetimes import CLEANUP_GRACE
from storylake.settings import Settings
from storylake.writer_lock import holding_writer_lock

TABLE = "ops.media_deletions"


@dataclass
class ExpireReport:
    now: datetime
    listed: int = 0  # segments added to ops.media_deletions by this run
    pending: int = 0  # all segments on the list after the run
    version: int | None = None  # ops.media_deletions version after the run (None: no table yet)
    missing: list[str] = field(default_factory=list)  # source tables that do not exist (nothing to expire)
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "now": iso(self.now),
            "listed": self.listed,
            "pending": self.pending,
            "version": self.version,
            "missing": list(self.missing),
            "duration_s": round(self.duration_s, 3),
        }


def expired_media(segments: pa.Table, now: datetime) -> pa.Table:
    """silver.segments rows (segment_id, author_id, media_id, expires_at, is_archived) -> the media_deletions rows
    of the non-archived segments whose expires_at + CLEANUP_GRACE is strictly before `now`."""
    due = pc.add(segments.column("expires_at"), pa.scalar(CLEANUP_GRACE, pa.duration("us")))
    keep = pc.and_(pc.less(due, pa.scalar(now, pa.timestamp("us", tz="UTC"))),
                   pc.invert(pc.fill_null(segments.column("is_archived"), False)))
    rows = segments.append_column("due_at", due).filter(keep)
    return pa.table({
        **{c: rows.column(c) for c in ("segment_id", "author_id", "media_id", "expires_at", "due_at")},
        "listed_at": pa.array([now] * rows.num_rows, pa.timestamp("us", tz="UTC")),
    }).cast(contracts.get(TABLE).arrow_schema())


@holding_writer_lock("expire")
def expire(settings: Settings, now: datetime) -> ExpireReport:
    """Append the newly expired media to ops.media_deletions as of `now`; nothing else is written."""
    now = utc(now)
    t0 = time.perf_counter()
    report = ExpireReport(now=now)
    segments = lake.read_arrow(settings.table_path("silver", "segments"),
                               ["segment_id", "author_id", "media_id", "expires_at", "is_archived"])
    path = settings.table_path(*TABLE.split("."))
    listed = lake.read_arrow(path, ["segment_id"])
    before = 0 if listed is None else listed.num_rows
    if segments is None:
        report.missing.append("silver.segments")
    else:
        due = expired_media(segments, now)
        if before:
            due = due.filter(pc.invert(pc.is_in(due.column("segment_id"), value_set=listed.column("segment_id"))))
        if due.num_rows:
            lake.write_table(settings, TABLE, due.sort_by("segment_id"), mode="append")
        report.listed = due.num_rows
    report.version = lake.version(path)
    report.pending = before + report.listed
    report.duration_s = time.perf_counter() - t0
    return report

"""Batch expiry cleanup (seed: "Lazy + Batch Cleanup"; DESIGN §5), through delta-rs deletes, no Spark.

  silver.segments:        delete rows with expires_at < now - 1 h AND NOT is_archived
  silver.segment_viewers: delete rows with segment_created_at < now - 48 h (Seen By lives 48 h)

Gold tables and sticker data are kept (2-year retention). Idempotent: rows are counted first and a
table with nothing to delete gets no new Delta version, so a second run deletes 0 rows and commits
nothing. Serving never depends on this having run: the tray hides expired segments at read time and
Seen By refuses lists older than 48 h whatever is still stored.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow.compute as pc
import pyarrow.dataset as pds
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from storylake.clock import iso, utc
from storylake.rules.lifetimes import CLEANUP_GRACE, SEEN_BY_LIFETIME
from storylake.settings import Settings
from storylake.writer_lock import holding_writer_lock

MAX_ATTEMPTS = 5


@dataclass
class ExpireReport:
    now: datetime
    deleted: dict[str, int] = field(default_factory=dict)  # table -> rows deleted by this run
    versions: dict[str, int | None] = field(default_factory=dict)  # table -> Delta version after the run
    missing: list[str] = field(default_factory=list)  # tables that do not exist (nothing to clean)
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "now": iso(self.now),
            "deleted": dict(self.deleted),
            "versions": dict(self.versions),
            "missing": list(self.missing),
            "duration_s": round(self.duration_s, 3),
        }


def _rules(now: datetime) -> list[tuple[str, str, pds.Expression]]:
    """(table, delta-rs predicate, equivalent Arrow filter) per cleanup rule. Only our own timestamps are
    formatted into the predicates (never user input)."""
    seg_cut = now - CLEANUP_GRACE
    view_cut = now - SEEN_BY_LIFETIME
    return [
        (
            "silver.segments",
            f"expires_at < '{iso(seg_cut)}' AND NOT is_archived",
            (pc.field("expires_at") < seg_cut) & ~pc.field("is_archived"),
        ),
        (
            "silver.segment_viewers",
            f"segment_created_at < '{iso(view_cut)}'",
            pc.field("segment_created_at") < view_cut,
        ),
    ]


@holding_writer_lock("expire")
def expire(settings: Settings, now: datetime) -> ExpireReport:
    now = utc(now)
    t0 = time.perf_counter()
    report = ExpireReport(now=now)
    for key, predicate, arrow_filter in _rules(now):
        layer, name = key.split(".")
        path = settings.table_path(layer, name)
        if not (path / "_delta_log").is_dir():
            report.missing.append(key)
            report.deleted[key] = 0
            report.versions[key] = None
            continue
        report.deleted[key], report.versions[key] = _delete(str(path), predicate, arrow_filter)
    report.duration_s = time.perf_counter() - t0
    return report


def _delete(path: str, predicate: str, arrow_filter: pds.Expression) -> tuple[int, int]:
    """Delete matching rows; (rows deleted, version after). No commit when nothing matches. Retries
    optimistic-concurrency conflicts with writers (the pipeline appends/merges meanwhile)."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        dt = DeltaTable(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            matching = dt.to_pyarrow_dataset().count_rows(filter=arrow_filter)
        if matching == 0:
            return 0, dt.version()
        try:
            metrics = dt.delete(predicate)
        except CommitFailedError:
            if attempt == MAX_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)
            continue
        return int(metrics.get("num_deleted_rows", 0)), DeltaTable(path).version()
    raise AssertionError("unreachable")

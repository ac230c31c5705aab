"""Retention by age: each table loses the rows older than its contract's retention, nothing else (delta-rs, no Spark).

The contract names the column a row's age is counted from (ODCS slaProperties `element`, e.g. silver.view_events
by `viewed_at`, 30 days; gold.segment_insights by `created_at`, 2 years). A row is removed when that column is
before the table's cutoff:

    cutoff = min(now, the lake's newest finished as_of) - retention

so retention never reaches into a window a later run still reads (a run's 30-day windows end at its as_of, which only
moves forward). Bronze rows are removed only once they are aggregated and final as well: from ingest batches the
last finished run processed, and older than that run's as_of minus the lateness window.

Tables without an element keep their rows: the ledgers that make ingest exactly-once and runs write-audit-publish
(ops.ingest_ledger, ops.ingest_runs, ops.increments, ops.audited_versions) and silver.profiles (each user's latest
profile, not a history). A full refresh after retention recomputes only what its inputs still hold completely
(`retention_floor`, jobs/horizon.py), so it still equals the incremental tables.

On a lake with write-audit-publish, a delete from a table's last good version is recorded as good too
(storylake.audit.carry_over_retention): it holds audited rows less the expired ones, so consumers read it at once
and the next hourly run appends to it (silver.segment_viewers after its daily 2-day retention) instead of treating
it as a changed table. A table whose newest version failed its gate keeps its record.

Every run appends what it did per table to ops.retention_runs (cutoff, rows removed, version). Idempotent: a second
run with the same `now` removes nothing and writes no table version.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from storylake import audit, contracts, increments, lake
from storylake.clock import iso, utc
from storylake.settings import Settings
from storylake.writer_lock import holding_writer_lock

log = logging.getLogger(__name__)
TABLE = "ops.retention_runs"
LAYERS = ("bronze", "silver", "gold", "ops")


@dataclass
class TableRetention:
    table: str
    column: str
    retention_days: float
    cutoff: datetime
    rows_removed: int = 0
    version: int | None = None


@dataclass
class RetentionReport:
    now: datetime
    reached: datetime  # min(now, the lake's newest finished as_of): cutoffs count back from here
    tables: list[TableRetention] = field(default_factory=list)
    # tables whose version after the delete was recorded as good (storylake.audit.carry_over_retention): version
    carried_over: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def rows_removed(self) -> int:
        return sum(t.rows_removed for t in self.tables)

    def as_dict(self) -> dict[str, object]:
        return {
            "now": iso(self.now),
            "reached": iso(self.reached),
            "rows_removed": self.rows_removed,
            "tables": {t.table: {**asdict(t), "cutoff": iso(t.cutoff)} for t in self.tables},
            "carried_over": self.carried_over,
            "duration_s": round(self.duration_s, 3),
        }


def cutoffs(settings: Settings, now: datetime) -> tuple[datetime, dict[str, tuple[str, datetime, str | None]]]:
    """(reached, {table: (column, cutoff, newest bronze batch a row may come from)}) for every table whose contract
    names a retention element. Pure planning: reads ops.increments only."""
    now = utc(now)
    newest = increments.newest_as_of(settings)
    reached = min(now, newest) if newest is not None else now
    last = increments.last(settings)
    out: dict[str, tuple[str, datetime, str | None]] = {}
    for key, c in sorted(contracts.load_all().items()):
        if c.layer not in LAYERS or c.retention_column is None or c.retention_days is None:
            continue
        cutoff = reached - timedelta(days=c.retention_days)
        upto = None
        if c.layer == "bronze":
            if last is None:
                continue  # nothing aggregated yet
            cutoff = min(cutoff, last.as_of - settings.lateness_window)
            upto = last.upto_batch
        out[key] = (c.retention_column, cutoff, upto)
    return reached, out


def _predicate(column: str, physical_type: str, cutoff: datetime, upto_batch: str | None) -> str:
    """The delete predicate: `column` before the cutoff (and, for bronze, a batch the last finished run processed).
    Built from a contract's column name and values this module computed, never from user text."""
    literal = cutoff.date().isoformat() if physical_type == "date" else iso(cutoff)
    pred = f"{column} < '{literal}'"
    if upto_batch is not None:
        pred += f" AND _batch_id <= '{upto_batch}'"
    return pred


@holding_writer_lock("retention")
def enforce_retention(settings: Settings, now: datetime) -> RetentionReport:
    """Remove the rows past each contract's retention (see the module docstring); recorded in ops.retention_runs."""
    t0 = time.perf_counter()
    reached, plan = cutoffs(settings, now)
    report = RetentionReport(now=utc(now), reached=reached)
    deletes: dict[str, tuple[int, int]] = {}  # key -> (version deleted from, version written)
    for key, (column, cutoff, upto) in plan.items():
        dt = lake.open_table(settings.table_path(*key.split(".")))
        if dt is None:
            continue
        before = dt.version()
        c = contracts.get(key)
        cut = datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC) if c.column(column).physical_type == "date" \
            else cutoff
        metrics = dt.delete(_predicate(column, c.column(column).physical_type, cut, upto))
        removed = int(metrics.get("num_deleted_rows") or 0)
        after = lake.version(settings.table_path(*key.split(".")))
        report.tables.append(TableRetention(key, column, float(c.retention_days or 0), cut, removed, after))
        if removed:
            log.info("retention: %s lost %d rows with %s before %s (%g days)", key, removed, column, iso(cut),
                     c.retention_days)
            if after is not None:
                deletes[key] = (before, after)
    report.carried_over = audit.carry_over_retention(settings, deletes) if deletes else {}
    report.duration_s = time.perf_counter() - t0
    if report.tables:
        rows = [{"run_at": datetime.now(UTC), "now": report.now, "reached": reached, **asdict(t)}
                for t in report.tables]
        lake.write_table(settings, TABLE, rows, mode="append")
    log.info("retention as of %s: %d rows removed from %d tables in %.1fs", iso(reached), report.rows_removed,
             sum(1 for t in report.tables if t.rows_removed), report.duration_s)
    return report


def applied_cutoffs(settings: Settings) -> dict[str, datetime]:
    """The latest cutoff each table's retention was applied with ({} before the first retention run)."""
    import pyarrow.compute as pc

    runs = lake.read_arrow(settings.table_path(*TABLE.split(".")), ["table", "cutoff"])
    if runs is None or runs.num_rows == 0:
        return {}
    grouped = runs.group_by("table").aggregate([("cutoff", "max")])
    return {str(t): utc(c) for t, c in zip(grouped.column("table").to_pylist(),
                                            pc.cast(grouped.column("cutoff_max"), runs.schema.field("cutoff").type)
                                            .to_pylist(), strict=True)}


def retention_floor(settings: Settings) -> datetime | None:
    """The earliest instant from which every bronze table still holds all its rows: the latest cutoff a retention run
    applied to bronze (None: none has). A full refresh recomputes only from there on (jobs/horizon.py)."""
    bronze = [c for t, c in applied_cutoffs(settings).items() if t.startswith("bronze.")]
    return max(bronze) if bronze else None


def reapply(settings: Settings, layer: str) -> dict[str, int]:
    """Remove again, from the tables of `layer`, the rows before the cutoff each last had applied (a full refresh
    recomputes rows a table with a shorter retention than its inputs had already lost); rows removed per table."""
    out: dict[str, int] = {}
    for key, cutoff in applied_cutoffs(settings).items():
        if not key.startswith(f"{layer}."):
            continue
        c = contracts.get(key)
        dt = lake.open_table(settings.table_path(*key.split(".")))
        if dt is None or c.retention_column is None:
            continue
        metrics = dt.delete(_predicate(c.retention_column, c.column(c.retention_column).physical_type, cutoff, None))
        out[key] = int(metrics.get("num_deleted_rows") or 0)
        if out[key]:
            log.info("retention: %s lost again %d recomputed rows before its cutoff %s", key, out[key], iso(cutoff))
    return out

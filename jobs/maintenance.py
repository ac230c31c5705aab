"""Delta table maintenance through delta-rs (Sail has no OPTIMIZE/VACUUM, DESIGN §2).

First the tables stored as restated rows (gold's segment and story insights) are folded: their superseded rows
removed (jobs/restated_fold.py; the rows readers see unchanged, the fold of a last good version recorded as good).
Then for every Delta table under the lake, in order:
  0. repair_stats()          a table with data files lacking min/max statistics (written before ingest wrote
                             complete ones) is rewritten with complete statistics (jobs/lake_health.py);
  1. compaction               small files (hourly overwrites, delta-rs appends) -> fewer, larger files: tables
                             with a time column (bronze, the anchored silver/gold tables) by day of it
                             (jobs/day_clustering.py: an hourly run's reads and slice writes skip the older
                             days' files), the others by optimize.compact();
  2. create_checkpoint()     readers replay the log from the checkpoint instead of every JSON commit;
  3. vacuum(retention_hours, enforce_retention_duration, dry_run=False, full=True)
                             delete data files no version younger than the retention references. `full`
                             also removes files no commit references (a crashed writer's leftovers),
                             again only when older than the retention;
  4. cleanup_metadata()      drop commit files older than the log retention (30 days) before the checkpoint.

Retention: 168 h (7 days) by default, the Delta default, so a reader that opened a version up to a week ago
(a long export, a backfill, a time-travel read) still finds its files. It is configurable down to a
24 h floor; anything lower is refused (MaintenanceError). Below the table's own
delta.deletedFileRetentionDuration (7 days unless set) delta-rs refuses a vacuum unless
enforce_retention_duration is off, so it is turned off only for 24 h <= retention < 168 h, where our floor
applies instead.

Compaction and vacuum are content-preserving: a table reads the same rows before and after (tests check it on
delta-rs and Sail). A failure on one table (e.g. a commit conflict with a concurrent writer) is recorded and
the others are still maintained; maintain() raises at the end if any table failed, so Airflow retries.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jobs import day_clustering
from jobs.lake_health import repair_stats
from jobs.restated_fold import FoldResult, fold_all
from storylake import audit, failpoints
from storylake.errors import StorylakeError
from storylake.settings import Settings
from storylake.writer_lock import holding_writer_lock

log = logging.getLogger(__name__)
DEFAULT_RETENTION_HOURS = 168
MIN_RETENTION_HOURS = 24


class MaintenanceError(StorylakeError, RuntimeError):
    """Refused configuration (retention below the floor) or tables that could not be maintained."""

    def __init__(self, message: str, report: MaintenanceReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class TableMaintenance:
    table: str  # path relative to the lake, e.g. silver/view_events
    version_before: int | None = None
    version_after: int | None = None
    files_before: int = 0
    files_after: int = 0
    stats_repaired_files: int = 0
    compact_files_added: int = 0
    compact_files_removed: int = 0
    clustered_by: str | None = None  # the time column whose days the files were clustered by (else compact())
    vacuumed_files: int = 0
    checkpoint_version: int | None = None
    duration_s: float = 0.0
    error: str | None = None


@dataclass
class MaintenanceReport:
    retention_hours: int
    dry_run: bool
    tables: list[TableMaintenance] = field(default_factory=list)
    duration_s: float = 0.0
    # silver/gold tables whose compacted version was recorded as good (storylake.audit.carry_forward): version
    carried_forward: dict[str, int] = field(default_factory=dict)
    folds: list[FoldResult] = field(default_factory=list)  # the restated tables' folds (jobs/restated_fold.py)

    @property
    def failed(self) -> list[TableMaintenance]:
        folds = [TableMaintenance(table=f"fold of {f.table}", error=f.error) for f in self.folds if f.error]
        return [*folds, *(t for t in self.tables if t.error is not None)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "retention_hours": self.retention_hours,
            "dry_run": self.dry_run,
            "duration_s": round(self.duration_s, 3),
            "tables": [asdict(t) for t in self.tables],
            "carried_forward": dict(self.carried_forward),
            "folds": [asdict(f) for f in self.folds],
        }


def check_retention(retention_hours: int) -> int:
    """The retention if allowed; MaintenanceError below the 24 h floor."""
    if retention_hours < MIN_RETENTION_HOURS:
        raise MaintenanceError(
            f"vacuum retention {retention_hours} h is below the {MIN_RETENTION_HOURS} h floor: files that running "
            f"readers (exports, backfills, dashboards) may still open would be deleted; use >= {MIN_RETENTION_HOURS} "
            f"h (default {DEFAULT_RETENTION_HOURS} h)"
        )
    return retention_hours


def find_tables(lake: Path) -> list[Path]:
    """Every Delta table (a folder holding _delta_log) under the lake root, sorted; tables are not nested."""
    found: list[Path] = []
    if not lake.is_dir():
        return found
    for root, dirs, _files in os.walk(lake):
        if "_delta_log" in dirs:
            found.append(Path(root))
            dirs.clear()
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return sorted(found)


def maintain_table(path: Path, *, retention_hours: int = DEFAULT_RETENTION_HOURS, dry_run: bool = False,
                   name: str | None = None) -> TableMaintenance:
    """Compact, checkpoint, vacuum and clean up one table (dry_run: only report what vacuum would delete)."""
    from deltalake import DeltaTable

    check_retention(retention_hours)
    t0 = time.perf_counter()
    out = TableMaintenance(table=name or path.name)
    dt = DeltaTable(str(path))
    partitioned = bool(dt.metadata().partition_columns)
    out.version_before = dt.version()
    out.files_before = len(dt.file_uris())
    if not dry_run:
        out.stats_repaired_files = repair_stats(path)
        column = day_clustering.cluster_column((name or f"{path.parent.name}/{path.name}").replace("/", "."))
        if column is not None and not partitioned:  # (a partitioned table's files keep to their partition)
            clustered = day_clustering.cluster(path, column)
            out.clustered_by = column
            out.compact_files_added, out.compact_files_removed = clustered.files_added, clustered.files_removed
        else:
            metrics = DeltaTable(str(path)).optimize.compact()
            out.compact_files_added = int(metrics.get("numFilesAdded", 0))
            out.compact_files_removed = int(metrics.get("numFilesRemoved", 0))
        dt = DeltaTable(str(path))
        dt.create_checkpoint()
        out.checkpoint_version = dt.version()
    removed = dt.vacuum(
        retention_hours=retention_hours,
        enforce_retention_duration=retention_hours >= DEFAULT_RETENTION_HOURS,
        dry_run=dry_run,
        full=True,
    )
    out.vacuumed_files = len(removed)
    if not dry_run:
        dt.cleanup_metadata()
    dt = DeltaTable(str(path))
    out.version_after = dt.version()
    out.files_after = len(dt.file_uris())
    out.duration_s = time.perf_counter() - t0
    return out


@holding_writer_lock("maintain")
def maintain(settings: Settings, *, retention_hours: int = DEFAULT_RETENTION_HOURS, dry_run: bool = False,
             raise_on_error: bool = True) -> MaintenanceReport:
    """Maintain every Delta table under settings.lake; one line per table in the log and the report."""
    check_retention(retention_hours)
    t0 = time.perf_counter()
    report = MaintenanceReport(retention_hours=retention_hours, dry_run=dry_run)
    if not dry_run:
        report.folds = fold_all(settings)
    for path in find_tables(settings.lake):
        name = path.relative_to(settings.lake).as_posix()
        try:
            result = maintain_table(path, retention_hours=retention_hours, dry_run=dry_run, name=name)
        except Exception as exc:  # noqa: BLE001 - recorded per table, raised after the others ran
            log.warning("maintenance of %s failed: %s: %s", name, type(exc).__name__, exc)
            result = TableMaintenance(table=name, error=f"{type(exc).__name__}: {exc}")
        else:
            log.info("maintained %s: v%s -> v%s, files %d -> %d (compaction +%d/-%d, vacuum removed %d) in %.2fs",
                     name, result.version_before, result.version_after, result.files_before, result.files_after,
                     result.compact_files_added, result.compact_files_removed, result.vacuumed_files,
                     result.duration_s)
        report.tables.append(result)
        failpoints.reach(f"maintain.after_{name}")
    if not dry_run:
        # silver and gold versions a compaction made of versions that passed their gates passed too (same rows)
        done = {t.table for t in report.tables if t.error is None}
        report.carried_forward = audit.carry_forward(settings, {
            name.replace("/", "."): settings.lake / name for name in sorted(done)
            if name.split("/")[0] in ("silver", "gold")})
    report.duration_s = time.perf_counter() - t0
    if raise_on_error and report.failed:
        details = "; ".join(f"{t.table}: {t.error}" for t in report.failed)
        raise MaintenanceError(
            f"{len(report.failed)} of {len(report.tables)} tables not maintained: {details}", report
        )
    return report

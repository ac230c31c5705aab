"""Interval-scoped steps: what the Airflow tasks call (dags/). Thin: the logic lives in jobs/ and serving/.

Every step records one row in ops.pipeline_runs (success or failure, with its as_of, rows and duration), opens
its own Spark session when it needs one (jobs.engine.spark_session: embedded Sail unless configured
otherwise) and is idempotent, so Airflow retries and clears are safe. Steps never import Airflow: their settings
and run id come in as parameters (dags/storylake_airflow.py resolves both inside the tasks).

Effective as_of of an hourly run (`effective_as_of`)
----------------------------------------------------
Silver and gold are computed "as of T" from bronze (incrementally: the rows that arrived since the last good run
and what they touch, jobs/horizon.py), and bronze only grows (exactly-once ingest). A run for the interval
[start, end) therefore runs with T = max(end, watermark), where the watermark is the newest as_of whose gold
passed its gate (or, on a lake without gates, of a successful gold step). Why not simply T = end:
  - hours processed out of order (a backfill, a late retry, `airflow dags test` of an old hour) would rebuild
    silver/gold as of an older T and publish it: serving would go back in time and lose hours it had shown;
  - with T = max(end, watermark) a rerun or backfill of an old hour ingests that hour's landing files (the
    ledger skips what is already in bronze) and the next run recomputes what they touch as of the newest T the
    lake has reached: the tables converge to exactly what one clean run over all the hours gives, whatever order
    the hours ran in (tests/test_airflow_e2e.py checks forward, rerun and reverse orders).
The watermark only moves forward. A run whose end is older than the watermark still ingests its hour and
republishes; it never rolls the lake back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storylake.clock import utc
from storylake.errors import StorylakeError
from storylake.rules.arrival import arrival_hour
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.ingest.run import IngestReport
    from jobs.maintenance import MaintenanceReport
    from jobs.quality import GateReport

log = logging.getLogger(__name__)
HOUR = timedelta(hours=1)


class StepError(StorylakeError, ValueError):
    """A step was called with an unusable interval or time (the message says which and why)."""


# --- run ids and intervals (plain values; reading them from Airflow: dags/storylake_airflow.py) -------


def attempt_run_id(dag_id: str, run_id: str, try_number: int | None = None) -> str:
    """Run id for ops.pipeline_runs / ops.quality_results: the DAG run, plus the attempt after a retry (so a
    retried step gets its own (run_id, step) row)."""
    rid = f"{dag_id}/{run_id}"
    return f"{rid}/try{try_number}" if try_number and try_number > 1 else rid


def require_interval(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """(start, end) as aware UTC datetimes; StepError for a missing or empty interval."""
    if start is None or end is None:
        raise StepError("this step needs a data interval: trigger the DAG with a logical date "
                        "(e.g. `airflow dags trigger storylake_hourly --logical-date 2026-11-01T11:00:00+00:00`)")
    start, end = utc(start), utc(end)
    if not start < end:
        raise StepError(f"empty data interval [{start.isoformat()}, {end.isoformat()}): the schedule must be a "
                        "timetable with an interval (CronTriggerTimetable(..., interval=...))")
    return start, end


# --- run bookkeeping ---------------------------------------------------------------------------


@contextmanager
def _recorded(settings: Settings, run_id: str | None, step: str, as_of: datetime | None) -> Iterator[dict[str, int]]:
    """pipeline.run.recorded with a run id made up when Airflow gave none."""
    from pipeline.run import recorded

    rid = run_id or f"{step}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    with recorded(settings, rid, step, as_of) as rows:
        yield rows


@contextmanager
def _session(settings: Settings, spark: SparkSession | None) -> Iterator[SparkSession]:
    if spark is not None:
        yield spark
        return
    from jobs.engine import spark_session

    with spark_session(settings) as session:
        yield session


# --- ingest ------------------------------------------------------------------------------------


def in_interval(rel_path: str, start: datetime, end: datetime) -> bool:
    """The file's hour folder [h, h + 1 h) overlaps [start, end)."""
    h = arrival_hour(rel_path)
    return h is not None and h < end and h + HOUR > start


def ingest_interval(
    settings: Settings,
    start: datetime,
    end: datetime,
    *,
    run_id: str | None = None,
    workers: int | None = None,
    max_batch_bytes: int | None = None,
) -> IngestReport:
    """Ingest the landing files whose hour folder lies in [start, end) and are not in the ledger yet.

    jobs.ingest.ingest restricted to the interval's hour folders, same exactly-once protocol: an interrupted
    batch is completed first whatever its hours, then the interval's new files are committed in
    batches. Files of other hours stay in landing for their own runs (or `storylake ingest`).
    """
    start, end = require_interval(start, end)
    from jobs.ingest import ingest

    with _recorded(settings, run_id, "ingest", end) as rows:
        report = ingest(settings, workers=workers, progress=False, select=lambda rel: in_interval(rel, start, end),
                        **({"max_batch_bytes": max_batch_bytes} if max_batch_bytes else {}))
        rows.update(report.rows_by_table)
    return report


# --- silver / gold / gate / publish ------------------------------------------------------------


def lake_watermark(settings: Settings) -> datetime | None:
    """The newest as_of whose gold passed its quality gate (storylake.audit; None before the first). On a lake where
    no gate ever ran, the largest as_of of a successful gold step in ops.pipeline_runs."""
    import pyarrow.compute as pc

    from storylake import audit, lake

    if audit.enabled(settings):
        return audit.watermark(settings)
    runs = lake.read_arrow(settings.table_path("ops", "pipeline_runs"), ["step", "status", "as_of"])
    if runs is None or runs.num_rows == 0:
        return None
    ok = runs.filter(pc.and_(pc.equal(runs.column("step"), "gold"), pc.equal(runs.column("status"), "success")))
    latest = pc.max(ok.column("as_of")).as_py() if ok.num_rows else None
    return utc(latest) if latest is not None else None


def effective_as_of(settings: Settings, interval_end: datetime) -> datetime:
    """T = max(interval_end, lake watermark): see the module docstring."""
    end = utc(interval_end)
    mark = lake_watermark(settings)
    if mark is not None and mark > end:
        log.info("interval end %s is behind the lake watermark %s: rebuilding as of the watermark",
                 end.isoformat(), mark.isoformat())
        return mark
    return end


def lake_is_at(settings: Settings, t: datetime | str) -> bool:
    """Gold has been built as of t or later (the lake watermark reached t)."""
    mark = lake_watermark(settings)
    return mark is not None and mark >= utc(t)


def silver(settings: Settings, as_of: datetime, *, run_id: str | None = None,
           spark: SparkSession | None = None, full_refresh: bool = False) -> dict[str, int]:
    """Silver as of `as_of` (jobs.silver.build_silver: incremental after the first good run, everything with
    `full_refresh`); rows written per table."""
    from jobs.silver import build_silver

    as_of = utc(as_of)
    with _recorded(settings, run_id, "silver", as_of) as rows, _session(settings, spark) as session:
        rows.update(build_silver(session, settings, as_of, full_refresh=full_refresh, run_id=run_id))
    return rows


def gold(settings: Settings, as_of: datetime, *, run_id: str | None = None,
         spark: SparkSession | None = None) -> dict[str, int]:
    """Rebuild every gold table as of `as_of` (jobs.gold.build_gold); rows per table. Its success row in
    ops.pipeline_runs is what moves the lake watermark."""
    from jobs.gold import build_gold

    as_of = utc(as_of)
    with _recorded(settings, run_id, "gold", as_of) as rows, _session(settings, spark) as session:
        rows.update(build_gold(session, settings, as_of))
    return rows


def gate(settings: Settings, layer: str, run_id: str, *, as_of: datetime | None = None) -> GateReport:
    """Great Expectations gate over a layer (jobs.quality.run_gate); raises QualityGateError on a critical failure."""
    from jobs.quality import run_gate

    with _recorded(settings, run_id, f"gate_{layer}", utc(as_of) if as_of else None) as rows:
        report = run_gate(settings, layer, run_id, as_of=utc(as_of) if as_of else None)
        rows.update(report.rows)
    return report


def publish(settings: Settings, as_of: datetime, *, run_id: str | None = None) -> Any:
    """Build and atomically switch the serving snapshot (serving.publish.publish); its PublishReport."""
    from serving.publish import publish as publish_snapshot

    as_of = utc(as_of)
    with _recorded(settings, run_id, "publish", as_of) as rows:
        report = publish_snapshot(settings, as_of)
        rows.update(dict(getattr(report, "tables", {}) or {}))
    return report


def prepare_history(settings: Settings, now: datetime, *, run_id: str | None = None) -> Any:
    """Write ahead the history period files of today's and tomorrow's publishes (serving.publish.prepare_ahead);
    its PrepareReport."""
    from serving.publish import prepare_ahead

    now = utc(now)
    with _recorded(settings, run_id, "prepare_history", now) as rows:
        report = prepare_ahead(settings, now)
        rows.update(report.rows_written)
    return report


# --- expiry, export, maintenance ---------------------------------------------------------------


def expire(settings: Settings, now: datetime, *, run_id: str | None = None) -> Any:
    """Expiry as of `now` (serving.expire.expire: newly expired media onto ops.media_deletions); its ExpireReport."""
    from serving.expire import expire as expire_rows

    now = utc(now)
    with _recorded(settings, run_id, "expire", now) as rows:
        report = expire_rows(settings, now)
        rows["media_deletions"] = report.listed
    return report


def retention(settings: Settings, now: datetime, *, run_id: str | None = None) -> Any:
    """Retention by age as of `now` (jobs.retention.enforce_retention); its RetentionReport."""
    from jobs.retention import enforce_retention

    now = utc(now)
    with _recorded(settings, run_id, "retention", now) as rows:
        report = enforce_retention(settings, now)
        rows.update({t.table: t.rows_removed for t in report.tables if t.rows_removed})
    return report


def export_dir(settings: Settings, day: date | datetime) -> Path:
    """LAKE/exports/tray_training_set/dt=YYYY-MM-DD/ for the exported day."""
    d = day.date() if isinstance(day, datetime) else day
    return settings.lake / "exports" / "tray_training_set" / f"dt={d:%Y-%m-%d}"


def export(settings: Settings, as_of: datetime, out_dir: Path | str, *, run_id: str | None = None,
           spark: SparkSession | None = None) -> Any:
    """Ranking-features export as of `as_of` into out_dir (Parquet + manifest.json); its ExportManifest."""
    from jobs.export import export_features

    as_of = utc(as_of)
    with _recorded(settings, run_id, "export", as_of) as rows, _session(settings, spark) as session:
        manifest = export_features(session, settings, as_of, out_dir)
        rows["tray_training_set"] = int(getattr(manifest, "rows", 0) or 0)
    return manifest


def maintain(settings: Settings, *, retention_hours: int | None = None, run_id: str | None = None) -> MaintenanceReport:
    """Compact, checkpoint, vacuum and clean up every Delta table of the lake (jobs.maintenance)."""
    from jobs.maintenance import DEFAULT_RETENTION_HOURS, MaintenanceError
    from jobs.maintenance import maintain as maintain_lake

    hours = DEFAULT_RETENTION_HOURS if retention_hours is None else retention_hours
    with _recorded(settings, run_id, "maintain", None) as rows:
        report = maintain_lake(settings, retention_hours=hours, raise_on_error=False)
        rows.update({t.table: t.compact_files_removed + t.vacuumed_files for t in report.tables})
        if report.failed:
            details = "; ".join(f"{t.table}: {t.error}" for t in report.failed)
            raise MaintenanceError(f"{len(report.failed)} of {len(report.tables)} tables not maintained: {details}",
                                   report)
    return report

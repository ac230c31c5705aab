"""Queries behind the ops dashboard (dashboards/ops/health.py), for data engineers, not per creator.

They read the lake's Delta tables directly with delta-rs (no Spark): table freshness from the Delta log
(latest version and commit time), row counts from the log's per-file statistics, and the ops tables
(quarantine, quality_results, pipeline_runs) through DuckDB over Arrow with constant SQL. A table that does
not exist yet gives an empty result, never an error: the page must work on a half-built lake.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from serving.snapshot import current_id, open_snapshot, snapshot_path
from storylake import contracts, lake
from storylake.clock import utc
from storylake.settings import Settings

LAYERS = ("bronze", "silver", "gold", "ops")
RAW_SAMPLE_CHARS = 300


def _open(path: Path) -> DeltaTable | None:
    if not (path / "_delta_log").is_dir():
        return None
    try:
        return DeltaTable(str(path))
    except TableNotFoundError:
        return None


def _dataset(settings: Settings, layer: str, name: str) -> Any | None:
    dt = _open(settings.table_path(layer, name))
    if dt is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dt.to_pyarrow_dataset()


def _query(sql: str, params: dict[str, Any] | None = None, **tables: Any) -> pd.DataFrame:
    """Run constant SQL over Arrow tables/datasets registered under the given names."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, data in tables.items():
            con.register(name, data)
        return con.execute(sql, params or {}).df()
    finally:
        con.close()


# --- freshness and rows -------------------------------------------------------------------------

FRESHNESS_COLUMNS = ["table", "layer", "version", "last_commit", "operation", "age_h", "freshness_sla_h", "status",
                     "rows", "files"]


def table_freshness(settings: Settings, now: datetime) -> pd.DataFrame:
    """One row per Delta table under the lake: latest version, commit time and operation (Delta history),
    age at `now` in hours, the contract's freshness SLA and status ('ok', 'stale', 'no SLA'), rows and files
    (from the log's add actions; no data file is read)."""
    now = utc(now)
    slas = {k: c.freshness_hours for k, c in contracts.load_all().items()}
    rows = []
    for layer in LAYERS:
        root = settings.lake / layer
        if not root.is_dir():
            continue
        for path in sorted(p for p in root.iterdir() if p.is_dir()):
            dt = _open(path)
            if dt is None:
                continue
            key = f"{layer}.{path.name}"
            last = dt.history(limit=1)[0]
            committed = datetime.fromtimestamp(last["timestamp"] / 1000, tz=UTC)
            age_h = (now - committed).total_seconds() / 3600
            sla = slas.get(key)
            n_rows, n_files = _rows_and_files(dt)
            rows.append({
                "table": key,
                "layer": layer,
                "version": dt.version(),
                "last_commit": committed,
                "operation": last.get("operation"),
                "age_h": round(age_h, 2),
                "freshness_sla_h": sla,
                "status": "no SLA" if sla is None else ("ok" if age_h <= sla else "stale"),
                "rows": n_rows,
                "files": n_files,
            })
    return pd.DataFrame(rows, columns=FRESHNESS_COLUMNS)


def _rows_and_files(dt: DeltaTable) -> tuple[int, int]:
    actions = lake.add_actions(dt)
    if actions.num_rows == 0:
        return 0, 0
    if "num_records" in actions.column_names and actions["num_records"].null_count == 0:
        return int(pa.compute.sum(actions["num_records"]).as_py() or 0), actions.num_rows
    with warnings.catch_warnings():  # no statistics in the log: count from the Parquet footers
        warnings.simplefilter("ignore")
        return dt.to_pyarrow_dataset().count_rows(), actions.num_rows


def rows_by_layer(freshness: pd.DataFrame) -> pd.DataFrame:
    """layer, tables, rows (from table_freshness), in lake order."""
    out = (
        freshness.groupby("layer", sort=False).agg(tables=("table", "count"), rows=("rows", "sum")).reset_index()
        if len(freshness) else pd.DataFrame(columns=["layer", "tables", "rows"])
    )
    order = {layer: i for i, layer in enumerate(LAYERS)}
    return out.sort_values("layer", key=lambda s: s.map(order), ignore_index=True)


# --- serving snapshot ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotStatus:
    snapshot_id: str | None
    as_of: datetime | None
    built_at: datetime | None
    sources: pd.DataFrame  # source_table, delta_version, row_count, lake_version (now), behind (versions)


def snapshot_status(settings: Settings, freshness: pd.DataFrame | None = None) -> SnapshotStatus:
    """The CURRENT serving snapshot and, per source table, the Delta version it was built from against the
    lake's version now (behind > 0: a newer commit is not published yet)."""
    cols = ["source_table", "delta_version", "row_count", "lake_version", "behind"]
    sid = current_id(settings)
    if sid is None or not snapshot_path(settings, sid).exists():
        return SnapshotStatus(None, None, None, pd.DataFrame(columns=cols))
    with open_snapshot(snapshot_path(settings, sid)) as snap:
        lake_versions = dict(zip(freshness["table"], freshness["version"], strict=True)) if freshness is not None \
            else {}
        rows = [
            {"source_table": t, "delta_version": s["version"], "row_count": s["rows"],
             "lake_version": lake_versions.get(t)}
            for t, s in sorted(snap.sources.items())
        ]
        status = SnapshotStatus(snap.snapshot_id, snap.as_of, snap.built_at, pd.DataFrame(rows, columns=cols[:-1]))
    src = status.sources
    src["lake_version"] = src["lake_version"].astype("Int64")
    src["behind"] = (src["lake_version"] - src["delta_version"]).astype("Int64")
    return status


# --- quarantine ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuarantineSummary:
    total: int
    by_rule: pd.DataFrame  # stage, contract, rule, rows, first_at, last_at (most rows first)
    samples: pd.DataFrame  # stage, rule, field, reason, source_file, line, raw (truncated), quarantined_at


_QUARANTINE_BY_RULE = """
SELECT stage, contract, rule, count(*) AS rows, min(quarantined_at) AS first_at, max(quarantined_at) AS last_at
FROM q GROUP BY stage, contract, rule ORDER BY rows DESC, stage, contract, rule
"""
_QUARANTINE_SAMPLES = """
SELECT stage, rule, field, reason, source_file, line,
       CASE WHEN length(raw) > $chars THEN left(raw, $chars) || '…' ELSE raw END AS raw, quarantined_at
FROM q
QUALIFY row_number() OVER (PARTITION BY stage, rule ORDER BY quarantined_at DESC, source_file, line) <= $n
ORDER BY stage, rule, quarantined_at DESC, source_file, line
"""


def quarantine_summary(settings: Settings, samples_per_rule: int = 3) -> QuarantineSummary:
    """Quarantined rows by stage and rule, with the newest few samples of each (raw lines truncated)."""
    ds = _dataset(settings, "ops", "quarantine")
    if ds is None:
        return QuarantineSummary(0, pd.DataFrame(columns=["stage", "contract", "rule", "rows", "first_at", "last_at"]),
                                 pd.DataFrame(columns=["stage", "rule", "field", "reason", "source_file", "line", "raw",
                                                       "quarantined_at"]))
    by_rule = _query(_QUARANTINE_BY_RULE, q=ds)
    samples = _query(_QUARANTINE_SAMPLES, {"n": int(samples_per_rule), "chars": RAW_SAMPLE_CHARS}, q=ds)
    return QuarantineSummary(int(by_rule["rows"].sum()) if len(by_rule) else 0, by_rule, samples)


# --- quality gate ------------------------------------------------------------------------------------

_LATEST_QUALITY = """
WITH latest AS (SELECT run_id FROM r GROUP BY run_id ORDER BY max(validated_at) DESC, run_id DESC LIMIT 1)
SELECT run_id, table_name, expectation, critical, success, observed_value, unexpected_count, sample_keys,
       validated_at
FROM r WHERE run_id = (SELECT run_id FROM latest)
ORDER BY success, critical DESC, table_name, expectation
"""


def latest_quality_results(settings: Settings) -> pd.DataFrame | None:
    """The latest contract-gate run's results, failures first (None when ops.quality_results does not exist)."""
    ds = _dataset(settings, "ops", "quality_results")
    if ds is None:
        return None
    return _query(_LATEST_QUALITY, r=ds)


# --- pipeline runs -------------------------------------------------------------------------------------

_RUNS = """
SELECT run_id, max(as_of) AS as_of, min(started_at) AS started_at, max(finished_at) AS finished_at,
       sum(duration_s) AS duration_s, epoch(max(finished_at) - min(started_at)) AS wall_s,
       CASE WHEN bool_or(status = 'failed') THEN 'failed' ELSE 'success' END AS status,
       string_agg(step, ' → ' ORDER BY started_at) AS steps, sum(rows_written)::BIGINT AS rows_written
FROM p GROUP BY run_id ORDER BY min(started_at) DESC, run_id DESC LIMIT $n
"""
_STEPS = """
SELECT run_id, step, started_at, finished_at, duration_s, status, rows_written, detail
FROM p WHERE run_id IN (SELECT unnest($runs::VARCHAR[])) ORDER BY started_at DESC, run_id DESC
"""


@dataclass(frozen=True)
class PipelineRuns:
    runs: pd.DataFrame  # run_id, as_of, started_at, finished_at, duration_s, wall_s, status, steps, rows_written
    steps: pd.DataFrame  # run_id, step, started_at, finished_at, duration_s, status, rows_written, detail


def pipeline_runs(settings: Settings, limit: int = 10) -> PipelineRuns:
    """The last `limit` pipeline runs (newest first) and their steps with durations."""
    ds = _dataset(settings, "ops", "pipeline_runs")
    run_cols = ["run_id", "as_of", "started_at", "finished_at", "duration_s", "wall_s", "status", "steps",
                "rows_written"]
    step_cols = ["run_id", "step", "started_at", "finished_at", "duration_s", "status", "rows_written", "detail"]
    if ds is None:
        return PipelineRuns(pd.DataFrame(columns=run_cols), pd.DataFrame(columns=step_cols))
    runs = _query(_RUNS, {"n": int(limit)}, p=ds)
    steps = _query(_STEPS, {"runs": runs["run_id"].tolist()}, p=ds)
    return PipelineRuns(runs, steps)


# --- everything the page shows -------------------------------------------------------------------------


@dataclass(frozen=True)
class OpsReport:
    now: datetime
    freshness: pd.DataFrame
    layers: pd.DataFrame
    snapshot: SnapshotStatus
    quarantine: QuarantineSummary
    quality: pd.DataFrame | None
    runs: PipelineRuns


def ops_report(settings: Settings, now: datetime, runs: int = 10) -> OpsReport:
    """Every panel of the ops page, read at `now` (wall-clock time: freshness is about the real lake)."""
    freshness = table_freshness(settings, now)
    return OpsReport(
        now=utc(now),
        freshness=freshness,
        layers=rows_by_layer(freshness),
        snapshot=snapshot_status(settings, freshness),
        quarantine=quarantine_summary(settings),
        quality=latest_quality_results(settings),
        runs=pipeline_runs(settings, runs),
    )

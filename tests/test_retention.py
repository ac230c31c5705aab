"""Retention by age (jobs/retention.py): rows older than each contract's retention go, younger rows stay; bronze waits
for aggregation and the lateness window; running it between pipeline steps changes no gold table, and a full refresh
after it gives the tables the incremental runs left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable

from jobs.quality import gate_hook
from jobs.retention import cutoffs, enforce_retention, retention_floor
from pipeline.run import run_pipeline
from storylake import audit, contracts, increments, lake
from storylake.settings import Settings
from tests.bronze_builders import bronze_rows
from tests.test_dags_steps import lake_tables
from toolkit.generate import generate

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
D = timedelta(days=1)


def _done(settings: Settings, as_of: datetime, upto: str) -> None:
    inc = increments.Increment(run_id="r", as_of=as_of, horizon=None, gold_horizon=None, upto_batch=upto)
    increments.record(settings, inc, increments.DONE)


def _ids(settings: Settings, key: str, column: str) -> list[Any]:
    return sorted(lake.read_arrow(settings.table_path(*key.split(".")), [column]).column(column).to_pylist())


def test_rows_past_each_retention_go_and_younger_rows_stay(settings: Settings) -> None:
    _done(settings, NOW - D, "b00000002")  # the lake reached NOW - 1 day: cutoffs count back from there
    reached = NOW - D
    lake.write_table(settings, "silver.view_events", [  # 30 days by viewed_at
        {"event_id": "old", "viewed_at": reached - 30 * D - timedelta(seconds=1)},
        {"event_id": "edge", "viewed_at": reached - 30 * D},
        {"event_id": "young", "viewed_at": reached - D},
    ])
    lake.write_table(settings, "silver.segment_viewers", [  # 2 days by segment_created_at
        {"segment_id": 1, "viewer_id": 1, "segment_created_at": reached - 3 * D},
        {"segment_id": 2, "viewer_id": 1, "segment_created_at": reached - D},
    ])
    lake.write_table(settings, "gold.author_daily_insights", [  # 730 days by day
        {"author_id": 1, "day": (reached - 731 * D).date()},
        {"author_id": 1, "day": (reached - 729 * D).date()},
    ])
    lake.write_table(settings, "silver.profiles", [  # no element: the latest profile is kept however old
        {"user_id": 1, "username": "a", "updated_at": reached - 1000 * D},
    ])
    # bronze (30 days for segment_view): only rows aggregated (batch <= the last run's) and past the lateness window
    schema = contracts.get("bronze.segment_view")
    rows = bronze_rows("segment_view", [
        {"event_id": "b-old", "event_time": reached - 31 * D, "_batch_id": "b00000001"},
        {"event_id": "b-old-unprocessed", "event_time": reached - 31 * D, "_batch_id": "b00000003"},
        {"event_id": "b-young", "event_time": reached - 29 * D, "_batch_id": "b00000002"},
    ])
    lake.write_table(settings, "bronze.segment_view",
                     pa.Table.from_pylist([dict(zip(schema.column_names, r, strict=True)) for r in rows],
                                          schema=schema.arrow_schema()))

    report = enforce_retention(settings, NOW)

    assert report.reached == reached
    assert _ids(settings, "silver.view_events", "event_id") == ["edge", "young"]
    assert _ids(settings, "silver.segment_viewers", "segment_id") == [2]
    assert _ids(settings, "gold.author_daily_insights", "day") == [(reached - 729 * D).date()]
    assert _ids(settings, "silver.profiles", "user_id") == [1]
    assert _ids(settings, "bronze.segment_view", "event_id") == ["b-old-unprocessed", "b-young"]
    removed = {t.table: t.rows_removed for t in report.tables if t.rows_removed}
    assert removed == {"silver.view_events": 1, "silver.segment_viewers": 1, "gold.author_daily_insights": 1,
                       "bronze.segment_view": 1}
    runs = lake.read_arrow(settings.table_path("ops", "retention_runs")).to_pylist()
    assert {r["table"]: r["rows_removed"] for r in runs if r["rows_removed"]} == removed
    assert {r["table"]: r["cutoff"] for r in runs}["silver.view_events"] == reached - 30 * D
    assert retention_floor(settings) == reached - 30 * D

    versions = {k: lake.version(settings.table_path(*k.split("."))) for k in removed}
    again = enforce_retention(settings, NOW)
    assert again.rows_removed == 0
    assert {k: lake.version(settings.table_path(*k.split("."))) for k in removed} == versions  # no new version


def test_a_delete_from_a_good_version_is_good_and_one_after_a_failed_gate_is_not(settings: Settings) -> None:
    """On a lake with write-audit-publish, retention's delete from a table's last good version is recorded as good
    (with the good record's run, layer and as_of: the watermark stays); a table whose newest version is not its
    good one (its gate failed since) keeps its record, so consumers keep reading the version that passed."""
    _done(settings, NOW - D, "b00000002")
    reached = NOW - D
    old, young = reached - 3 * D, reached - D
    for key in ("silver.segment_viewers", "silver.view_events"):
        lake.write_table(settings, key, [])
    lake.write_table(settings, "silver.segment_viewers", [
        {"segment_id": 1, "viewer_id": 1, "segment_created_at": old},
        {"segment_id": 2, "viewer_id": 1, "segment_created_at": young}], mode="append")
    lake.write_table(settings, "silver.view_events", [
        {"event_id": "old", "viewed_at": reached - 31 * D}, {"event_id": "young", "viewed_at": young}], mode="append")
    audit.start(settings)
    audit.record(settings, "run-1", "silver", reached, {"silver.segment_viewers": 1, "silver.view_events": 1})
    lake.write_table(settings, "silver.view_events", [{"event_id": "bad", "viewed_at": young}], mode="append")

    report = enforce_retention(settings, NOW)

    assert {t.table: (t.rows_removed, t.version) for t in report.tables if t.rows_removed} == {
        "silver.segment_viewers": (1, 2), "silver.view_events": (1, 3)}
    assert report.carried_over == {"silver.segment_viewers": 2}
    assert audit.last_good_version(settings, "silver.segment_viewers") == 2
    assert audit.last_good_version(settings, "silver.view_events") == 1  # v2 failed its gate: v3 is not good
    records = lake.read_arrow(settings.table_path("ops", "audited_versions")).to_pylist()
    assert sorted((r["version"], r["run_id"], r["layer"], r["as_of"]) for r in records
                  if r["table_key"] == "silver.segment_viewers") == [(1, "run-1", "silver", reached),
                                                                       (2, "run-1", "silver", reached)]
    assert enforce_retention(settings, NOW).carried_over == {}  # nothing deleted: nothing recorded


def test_nothing_is_cut_before_the_lake_has_a_finished_run(settings: Settings) -> None:
    reached, plan = cutoffs(settings, NOW)
    assert reached == NOW
    assert not any(k.startswith("bronze.") for k in plan)  # bronze waits until a run has aggregated it
    assert plan["silver.view_events"] == ("viewed_at", NOW - 30 * D, None)
    assert "ops.ingest_ledger" not in plan and "silver.profiles" not in plan


def test_retention_between_steps_changes_no_gold_and_a_full_refresh_equals_the_incremental_tables(
    tmp_path: Path, spark: Any
) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    landing = tmp_path / "landing"
    generate(landing, users=30, days=3, seed=5, start=start, progress=False)
    end = start + 3 * D
    plain = Settings(lake=tmp_path / "plain", landing=landing)
    cut = Settings(lake=tmp_path / "cut", landing=landing)
    for s in (plain, cut):  # with the quality gates (write-audit-publish)
        run_pipeline(s, end - timedelta(hours=1), spark=spark, publish=False, progress=False, gate=gate_hook("g1"))
    # between the two runs, retention on one lake (its clock ahead of the lake: cutoffs count back from the lake's
    # as_of): segment_viewers (2 days) loses the Seen By rows of the first day's segments, nothing else is that old
    report = enforce_retention(cut, end + 2 * D)
    assert report.reached == end - timedelta(hours=1)
    assert {t.table for t in report.tables if t.rows_removed} == {"silver.segment_viewers"}
    viewers = cut.table_path("silver", "segment_viewers")
    # the delete was from the good version: recorded as good, so the next run appends its grown pairs' rows
    assert report.carried_over == {"silver.segment_viewers": lake.version(viewers)}
    for s in (plain, cut):
        run_pipeline(s, end, spark=spark, publish=False, progress=False, gate=gate_hook("g2"))
    assert DeltaTable(str(viewers)).history(1)[0]["operationParameters"]["mode"] == "Append"
    plain_tables, cut_tables = lake_tables(plain), lake_tables(cut)
    assert {k: v for k, v in cut_tables.items() if k.startswith("gold.")} == {
        k: v for k, v in plain_tables.items() if k.startswith("gold.")}
    assert len(cut_tables["silver.segment_viewers"]) < len(plain_tables["silver.segment_viewers"])
    # a full refresh recomputes the old Seen By rows from bronze, and removes them again: the same tables
    run_pipeline(cut, end, spark=spark, publish=False, progress=False, full_refresh=True)
    assert lake_tables(cut) == cut_tables


def test_an_upgrade_on_a_retained_lake_writes_the_ring_partials_of_the_whole_window(tmp_path: Path, spark: Any
                                                                                     ) -> None:
    """A lake whose bronze retention has cut (its full refresh starts after the floor) and that lacks
    gold.ring_signal_days (built before the partials existed): the upgrade run's full refresh writes the partials of
    every whole day of the 30-day window, so ring_features comes out as before, not from the horizon's day only."""
    import shutil

    start = datetime(2026, 11, 1, tzinfo=UTC)
    landing = tmp_path / "landing"
    generate(landing, users=30, days=3, seed=5, start=start, progress=False)
    end = start + 3 * D
    s = Settings(lake=tmp_path / "lake", landing=landing)
    run_pipeline(s, end, spark=spark, publish=False, progress=False)
    before = lake_tables(s)
    assert len(before["gold.ring_features"]) > 10
    # a retention run cut bronze at the end of the first day: a full refresh recomputes from 48 h after it (= end)
    lake.write_table(s, "ops.retention_runs", [{
        "run_at": end, "now": end, "reached": end, "table": "bronze.segment_view", "column": "event_time",
        "retention_days": 30.0, "cutoff": start + D, "rows_removed": 0, "version": None}], mode="append")
    assert retention_floor(s) == start + D
    shutil.rmtree(s.table_path("gold", "ring_signal_days"))  # the upgrade: the table did not exist
    run_pipeline(s, end, spark=spark, publish=False, progress=False)
    assert lake_tables(s) == before

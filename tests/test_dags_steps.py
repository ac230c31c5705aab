"""pipeline.steps, what the DAG tasks call: interval ingest, the lake watermark, settings with Airflow Variables,
run bookkeeping, and out-of-order hours converging to one clean run (in process, real Sail and Delta)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest
from deltalake import DeltaTable

from pipeline import steps
from pipeline.run import record_step
from storylake import clock, contracts, lake, merge_on_read
from storylake.rules.arrival import arrival_hour
from storylake.settings import Settings, SettingsError
from tests.landing_builders import created, view, write_landing

H = [datetime(2026, 11, 1, h, tzinfo=UTC) for h in range(24)]


def _ledger(settings: Settings) -> list[str]:
    t = lake.read_arrow(settings.table_path("ops", "ingest_ledger"), ["source_file"])
    return sorted(t.column("source_file").to_pylist()) if t is not None else []


def _runs(settings: Settings) -> list[dict[str, Any]]:
    return DeltaTable(str(settings.table_path("ops", "pipeline_runs"))).to_pyarrow_table().to_pylist()


def _hours_landing(root: Path) -> None:
    write_landing(root, "segment_created", [created("c1", 1, 9, "2026-11-01T09:50:00.000Z")], hour="09")
    write_landing(root, "segment_view", [view("v1", 1, 2, "2026-11-01T10:10:00.000Z")], hour="10")
    write_landing(root, "segment_view", [view("v2", 1, 3, "2026-11-01T10:20:00.000Z")], hour="10", part=1)
    write_landing(root, "segment_view", [
        view("v3", 1, 4, "2026-11-01T11:05:00.000Z"),
        view("v4", 1, 5, "2026-11-01T10:59:00.000Z"),  # late: happened in hour 10, arrived in hour 11
        view("v1", 1, 2, "2026-11-01T10:10:00.000Z"),  # re-delivery of v1
    ], hour="11")
    write_landing(root, "segment_created", [created("c2", 2, 9, "2026-11-01T11:30:00.000Z")], hour="11")


def test_folder_hour_and_interval() -> None:
    assert arrival_hour("segment_view/dt=2026-11-01/hour=10/part-00000.jsonl") == H[10]
    assert arrival_hour("segment_view/misc/part-00000.jsonl") is None
    rel = "navigation/dt=2026-11-01/hour=10/x.jsonl"
    assert steps.in_interval(rel, H[10], H[11])
    assert not steps.in_interval(rel, H[11], H[12]) and not steps.in_interval(rel, H[9], H[10])
    assert steps.in_interval(rel, H[10] + timedelta(minutes=30), H[11] + timedelta(minutes=30))  # overlap
    assert steps.in_interval(rel, H[0], H[23])


def test_ingest_interval_takes_only_the_interval_hours(settings: Settings) -> None:
    _hours_landing(settings.landing)
    write_landing(settings.landing, "segment_view", [view("v9", 1, 2, "2026-11-01T10:10:00.000Z")], dt="x", hour="y")
    report = steps.ingest_interval(settings, H[10], H[11], run_id="r10")
    assert report.rows_by_table == {"segment_view": 2}
    assert _ledger(settings) == ["segment_view/dt=2026-11-01/hour=10/part-00000.jsonl",
                                 "segment_view/dt=2026-11-01/hour=10/part-00001.jsonl"]
    assert steps.ingest_interval(settings, H[10], H[11], run_id="r10-again").rows_by_table == {}
    assert steps.ingest_interval(settings, H[11], H[12], run_id="r11").rows_by_table == {
        "segment_created": 1, "segment_view": 3}
    assert len(_ledger(settings)) == 4  # hour 09 and the malformed folder wait for their own runs
    runs = [(r["run_id"], r["step"], r["as_of"], r["status"], r["rows_written"]) for r in _runs(settings)]
    assert sorted(runs) == [("r10", "ingest", H[11], "success", 2), ("r10-again", "ingest", H[11], "success", 0),
                            ("r11", "ingest", H[12], "success", 4)]


def test_interrupted_batch_of_another_hour_is_completed_first(settings: Settings, monkeypatch: Any) -> None:
    _hours_landing(settings.landing)
    real = lake.commit_files_once

    def crash_on_bronze(path: Path, *args: Any, **kwargs: Any) -> bool:
        if "bronze" in path.parts:
            raise OSError("disk full")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(lake, "commit_files_once", crash_on_bronze)
    with pytest.raises(OSError, match="disk full"):
        steps.ingest_interval(settings, H[9], H[10], run_id="crash")
    monkeypatch.setattr(lake, "commit_files_once", real)
    report = steps.ingest_interval(settings, H[10], H[11], run_id="resume")
    assert [(b.resumed, b.files) for b in report.batches] == [(True, 1), (False, 2)]
    assert report.rows_by_table == {"segment_created": 1, "segment_view": 2}
    assert [(r["run_id"], r["status"]) for r in sorted(_runs(settings), key=lambda r: r["started_at"])] == [
        ("crash", "failed"), ("resume", "success")]


def test_watermark_is_the_newest_successful_gold(settings: Settings) -> None:
    assert steps.lake_watermark(settings) is None
    assert steps.effective_as_of(settings, H[11]) == H[11]
    now = datetime.now(UTC)
    for rid, step, as_of, status in [("a", "gold", H[12], "success"), ("b", "gold", H[15], "failed"),
                                     ("c", "silver", H[14], "success"), ("d", "gold", H[10], "success")]:
        record_step(settings, rid, step, as_of, now, 1.0, status, 1, {})
    assert steps.lake_watermark(settings) == H[12]
    assert steps.effective_as_of(settings, H[11]) == H[12]  # an older hour rebuilds as of the watermark
    assert steps.effective_as_of(settings, H[13]) == H[13]
    assert steps.lake_is_at(settings, H[12]) and not steps.lake_is_at(settings, "2026-11-01T13:00:00+00:00")


def test_settings_from_airflow_variables_override_the_environment() -> None:
    """What dags/storylake_airflow.task_settings resolves: Settings.resolve with the Variables' values."""
    env = {"STORYLAKE_LAKE": "/env/lake", "STORYLAKE_LANDING": "/env/landing", "STORYLAKE_ENGINE": "embedded"}
    s = Settings.resolve(env, {"storylake_lake": "/var/lake", "storylake_landing": None,
                               "storylake_engine": "remote", "storylake_spark_remote": "sc://spark:15002"})
    assert s == Settings(lake=Path("/var/lake"), landing=Path("/env/landing"), engine="remote",
                         spark_remote="sc://spark:15002")
    assert Settings.resolve(env, {}).lake == Path("/env/lake")
    assert Settings.resolve({}, None).lake == Settings().lake
    with pytest.raises(SettingsError, match="remote"):
        Settings.resolve({}, {"storylake_engine": "remote"})


def test_run_ids_intervals_and_times() -> None:
    assert steps.attempt_run_id("storylake_hourly", "scheduled__2026-11-01T11:00:00+00:00", 1) == (
        "storylake_hourly/scheduled__2026-11-01T11:00:00+00:00")
    assert steps.attempt_run_id("d", "r", 3) == "d/r/try3"
    assert steps.attempt_run_id("d", "r", None) == steps.attempt_run_id("d", "r") == "d/r"
    assert not [name for name in vars(steps) if "airflow" in name.lower()]  # steps take plain values
    with pytest.raises(steps.StepError, match="logical date"):
        steps.require_interval(None, None)
    with pytest.raises(steps.StepError, match="empty data interval"):
        steps.require_interval(H[10], H[10])
    p = pendulum.datetime(2026, 11, 1, 12, tz="Europe/Paris")
    assert steps.require_interval(p, p.add(hours=1)) == (H[11], H[12])
    assert type(clock.utc(p)) is datetime  # pendulum in, a plain datetime out
    assert clock.utc("2026-11-01T11:00:00") == H[11]
    assert steps.export_dir(Settings(lake=Path("/l")), H[5]) == Path("/l/exports/tray_training_set/dt=2026-11-01")


# --- out-of-order hours converge (in process; tests/test_airflow_e2e.py does it through Airflow) ---------


def lake_tables(settings: Settings) -> dict[str, list[str]]:
    """Every silver and gold table's rows, each as sorted JSON, for whole-table equality. A gold row's `as_of`
    names the run that last recomputed it (an incremental run recomputes its horizon only): left out. A table stored
    merge-on-read or as growing rows is read as its readers see it (how it is stored depends on the runs)."""
    out: dict[str, list[str]] = {}
    for key, c in sorted(contracts.load_all().items()):
        if key in merge_on_read.CHANGES_TABLES:
            continue
        dt = lake.open_table(settings.table_path(c.layer, c.name)) if c.layer in ("silver", "gold") else None
        if dt is not None:
            table = merge_on_read.read_table(settings, key)
            assert table is not None
            rows = [{k: v for k, v in r.items() if not (c.layer == "gold" and k == "as_of")}
                    for r in table.to_pylist()]
            out[key] = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
    return out


def _hour(settings: Settings, spark: Any, end: datetime) -> datetime:
    steps.ingest_interval(settings, end - timedelta(hours=1), end)
    as_of = steps.effective_as_of(settings, end)
    steps.silver(settings, as_of, spark=spark)
    steps.gold(settings, as_of, spark=spark)
    return as_of


def test_hours_out_of_order_converge_to_one_clean_run(spark: Any, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    _hours_landing(landing)
    clean = Settings(lake=tmp_path / "clean", landing=landing)
    steps.ingest_interval(clean, H[9], H[12])
    steps.silver(clean, H[12], spark=spark)
    steps.gold(clean, H[12], spark=spark)
    expected = lake_tables(clean)
    assert len(expected["silver.view_events"]) == 4  # v1 (once), v2, v3 and the late v4

    forward = Settings(lake=tmp_path / "forward", landing=landing)
    assert [_hour(forward, spark, end) for end in (H[10], H[11], H[12], H[11])] == [H[10], H[11], H[12], H[12]]
    assert lake_tables(forward) == expected

    backward = Settings(lake=tmp_path / "backward", landing=landing)
    assert [_hour(backward, spark, end) for end in (H[12], H[11], H[10])] == [H[12], H[12], H[12]]
    assert lake_tables(backward) == expected

"""serving/ops_queries.py (the ops dashboard's queries) on real Delta tables, and the Ops page on a half-built lake."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from deltalake import DeltaTable
from streamlit.testing.v1 import AppTest

from dashboards import signin
from serving import ops_queries as ops
from storylake.lake import write_table
from storylake.settings import Settings
from tests import sample_lake
from tests.sample_lake import AS_OF

APP = Path(__file__).resolve().parent.parent / "dashboards" / "app.py"


@pytest.fixture()
def lake(settings: Settings) -> Settings:
    sample_lake.build(settings)
    return settings


def commit_time(settings: Settings, key: str) -> datetime:
    layer, name = key.split(".")
    ts = DeltaTable(str(settings.table_path(layer, name))).history(limit=1)[0]["timestamp"]
    return datetime.fromtimestamp(ts / 1000, tz=UTC)


def test_table_freshness_reads_versions_commit_times_and_row_counts(lake: Settings) -> None:
    committed = commit_time(lake, "gold.segment_insights")
    fresh = ops.table_freshness(lake, committed + timedelta(minutes=10)).set_index("table")
    assert list(fresh["layer"].unique()) == ["bronze", "silver", "gold", "ops"]
    row = fresh.loc["gold.segment_insights"]
    assert (row["version"], row["rows"], row["files"], row["freshness_sla_h"]) == (0, 8, 1, 1.0)
    assert row["last_commit"] == committed and row["operation"] == "WRITE" and row["status"] == "ok"
    assert fresh.loc["silver.segment_viewers", "rows"] == 72 and fresh.loc["gold.ring_features", "rows"] == 0
    assert fresh.loc["ops.pipeline_runs", "status"] == "no SLA"

    later = ops.table_freshness(lake, committed + timedelta(hours=2))
    stale = later.set_index("table")
    assert stale.loc["gold.segment_insights", "status"] == "stale"
    assert stale.loc["gold.segment_insights", "age_h"] == pytest.approx(2.0, abs=0.02)

    layers = ops.rows_by_layer(later)
    assert layers.to_dict("records") == [
        {"layer": "bronze", "tables": 1, "rows": 5}, {"layer": "silver", "tables": 5, "rows": 90},
        # gold: 82 rows + 72 author-hours (two creators, 12 hours of today and 24 of yesterday each)
        {"layer": "gold", "tables": 6, "rows": 154}, {"layer": "ops", "tables": 3, "rows": 15},
    ]


def test_snapshot_status_shows_unpublished_commits(lake: Settings) -> None:
    status = ops.snapshot_status(lake, ops.table_freshness(lake, AS_OF))
    assert status.as_of == AS_OF and status.snapshot_id is not None
    assert status.sources["behind"].tolist() == [0] * 11  # the snapshot's 11 source tables
    write_table(lake, "silver.segments", [], mode="append")  # a new commit, not published yet
    src = ops.snapshot_status(lake, ops.table_freshness(lake, AS_OF)).sources.set_index("source_table")
    assert src.loc["silver.segments", "behind"] == 1 and src.loc["silver.segments", "lake_version"] == 1


def test_quarantine_by_stage_and_rule_with_samples(lake: Settings) -> None:
    summary = ops.quarantine_summary(lake, samples_per_rule=1)
    assert summary.total == 5
    assert [tuple(r) for r in summary.by_rule[["stage", "rule", "rows"]].itertuples(index=False)] == [
        ("ingest", "malformed_json", 2), ("silver.view_events", "not_close_friend", 2),
        ("ingest", "out_of_range", 1)]
    assert summary.samples.groupby(["stage", "rule"]).size().tolist() == [1, 1, 1]
    row = summary.samples[summary.samples["rule"] == "out_of_range"].iloc[0]
    assert row["field"] == "completion_pct" and row["line"] == 12 and "1.7" in row["raw"]


def test_long_raw_lines_are_truncated(lake: Settings) -> None:
    write_table(lake, "ops.quarantine", [{
        "stage": "ingest", "contract": "landing.navigation", "rule": "malformed_json", "field": "$",
        "reason": "malformed", "raw": "x" * 1000, "batch_id": "b", "quarantined_at": AS_OF}])
    raw = ops.quarantine_summary(lake).samples["raw"].iloc[0]
    assert raw == "x" * ops.RAW_SAMPLE_CHARS + "…"


def test_latest_quality_run_failures_first(lake: Settings) -> None:
    write_table(lake, "ops.quality_results", [{
        "run_id": "gate-0", "table_name": "gold.story_insights", "expectation": "old", "critical": True,
        "success": False, "observed_value": json.dumps(1), "unexpected_count": 1, "sample_keys": "[]",
        "validated_at": AS_OF - timedelta(days=1)}], mode="append")
    results = ops.latest_quality_results(lake)
    assert set(results["run_id"]) == {"gate-1"}
    assert results["success"].tolist() == [False, True, True]
    assert results["expectation"].iloc[0] == "expect_column_values_to_be_in_set(media_type)"


def test_pipeline_runs_newest_first_with_step_durations(lake: Settings) -> None:
    runs = ops.pipeline_runs(lake)
    assert runs.runs[["run_id", "status", "steps"]].values.tolist() == [
        ["run-sample-2", "success", "ingest → silver → gold → publish"],
        ["run-sample-1", "failed", "ingest → silver → gold"]]
    assert runs.runs["duration_s"].tolist() == [32.0, 30.0] and runs.runs["wall_s"].tolist() == [32.0, 30.0]
    assert runs.runs["rows_written"].tolist() == [2400, 2100]
    assert runs.steps[runs.steps["run_id"] == "run-sample-1"]["step"].tolist() == ["gold", "silver", "ingest"]
    assert ops.pipeline_runs(lake, limit=1).runs["run_id"].tolist() == ["run-sample-2"]


def test_an_empty_lake_gives_empty_results(settings: Settings) -> None:
    report = ops.ops_report(settings, AS_OF)
    assert report.freshness.empty and report.layers.empty and report.snapshot.snapshot_id is None
    assert report.quarantine.total == 0 and report.quality is None and report.runs.runs.empty


def test_ops_page_on_a_lake_without_ops_tables(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    sample_lake.build(settings, ops=False)
    monkeypatch.setenv("STORYLAKE_LAKE", str(settings.lake))
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.secrets = {"storylake": {}}
    at.run()
    at.radio(key=signin.DEV_ROLE_KEY).set_value(signin.ROLE_OPERATOR).run()
    assert not at.exception and not at.error
    infos = " ".join(i.value for i in at.info)
    assert "ops.quality_results does not exist yet" in infos and "ops.pipeline_runs is empty" in infos
    assert {m.label: m.value for m in at.metric}["Quarantined rows"] == "0"


def test_sigterm_to_storylake_dashboard_stops_streamlit(tmp_path: Path) -> None:
    """SIGTERM (a service manager's stop) is passed on to Streamlit; no server is left running."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    import psutil

    from tests.api_server import free_port

    port = free_port()
    env = {**os.environ, "STORYLAKE_LAKE": str(tmp_path / "lake"), "STORYLAKE_LOG_LEVEL": "WARNING"}
    cli = str(Path(sys.executable).with_name("storylake"))
    proc = subprocess.Popen([cli, "dashboard", "--headless", "--port", str(port), "--address", "127.0.0.1"],
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "storylake dashboard did not start"
            time.sleep(0.3)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children  # Streamlit runs as a child of the command
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert alive == [], f"still running after SIGTERM: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()

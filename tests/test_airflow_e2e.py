"""End to end through real Airflow: `airflow dags test storylake_hourly` over two generated landing hours.

Forward (hour 1, hour 2, then hour 1 again) and reverse (hour 2, hour 1) orders, each in its own AIRFLOW_HOME
(SQLite metadata DB) and lake, must leave silver and gold exactly as one clean run of both hours in a fresh
lake. The reverse lane then runs the three other DAGs: maintenance (contents unchanged), the ranking export
and the expiry cleanup. The two lanes run concurrently to keep the test near 2.5 minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from pipeline import steps
from serving import insights_history
from serving.snapshot import current_id
from storylake.settings import Settings
from tests.test_dags_steps import lake_tables
from toolkit.generate import generate

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

REPO = Path(__file__).resolve().parent.parent
AIRFLOW = str(Path(sys.executable).parent / "airflow")
START = datetime(2026, 11, 1, tzinfo=UTC)
# `dags test <X>` is a manual run: Airflow infers the data interval [X - 1 h, X), so X is the END of the hour.
HOUR_1, HOUR_2 = "2026-11-01T01:00:00+00:00", "2026-11-01T02:00:00+00:00"
END = datetime(2026, 11, 1, 2, tzinfo=UTC)


def _env(home: Path, lake: Path, landing: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "STORYLAKE_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "STORYLAKE_LAKE": str(lake),
        "STORYLAKE_LANDING": str(landing),
        "RUST_LOG": "warn",
    })
    return env


def _airflow(env: dict[str, str], *args: str) -> str:
    home = Path(env["AIRFLOW_HOME"])
    log = home / f"{len(list(home.glob('*.log'))):02d}_{'_'.join(a.replace(':', '') for a in args)}.log"
    with log.open("w") as fh:
        proc = subprocess.run([AIRFLOW, *args], env=env, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT,
                              timeout=300)
    out = log.read_text()
    assert proc.returncode == 0, f"airflow {' '.join(args)} failed (rc {proc.returncode}); log {log}:\n{out[-4000:]}"
    return out


def _dags_test(env: dict[str, str], dag_id: str, logical_date: str) -> str:
    """`airflow dags test <dag_id> <logical_date>`; the run's final state."""
    out = _airflow(env, "dags", "test", dag_id, logical_date)
    finished = [line for line in out.splitlines() if "DagRun Finished" in line]
    assert finished, f"no DagRun Finished line for {dag_id} {logical_date}"
    return "success" if "state=success" in finished[-1] else finished[-1]


def _forward(env: dict[str, str]) -> list[str]:
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True)
    _airflow(env, "db", "migrate")
    return [_dags_test(env, "storylake_hourly", d) for d in (HOUR_1, HOUR_2, HOUR_1)]


def _backward_then_other_dags(env: dict[str, str], settings: Settings) -> tuple[list[str], dict, dict]:
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True)
    _airflow(env, "db", "migrate")
    states = [_dags_test(env, "storylake_hourly", d) for d in (HOUR_2, HOUR_1)]
    built = lake_tables(settings)
    states.append(_dags_test(env, "storylake_maintenance", "2026-11-02T03:30:00+00:00"))
    maintained = lake_tables(settings)
    states.append(_dags_test(env, "storylake_ranking_export", HOUR_2))  # the day [Oct 31 02:00, Nov 1 02:00)
    states.append(_dags_test(env, "storylake_expiry", "2026-11-03T00:05:00+00:00"))  # now = Nov 3 00:05
    return states, built, maintained


def test_hourly_dag_reruns_and_reverse_order_match_one_clean_run(tmp_path: Path, spark: Any) -> None:
    landing = tmp_path / "landing"
    generate(landing, users=40, days=1, seed=3, start=START, progress=False)
    forward = Settings(lake=tmp_path / "forward" / "lake", landing=landing)
    backward = Settings(lake=tmp_path / "backward" / "lake", landing=landing)
    with ThreadPoolExecutor(max_workers=2) as pool:
        fwd = pool.submit(_forward, _env(tmp_path / "forward" / "home", forward.lake, landing))
        bwd = pool.submit(_backward_then_other_dags, _env(tmp_path / "backward" / "home", backward.lake, landing),
                          backward)
        assert fwd.result() == ["success"] * 3
        bwd_states, bwd_built, bwd_maintained = bwd.result()
        assert bwd_states == ["success"] * 5

    clean = Settings(lake=tmp_path / "clean", landing=landing)
    steps.ingest_interval(clean, START, END)
    steps.silver(clean, END, spark=spark)
    steps.gold(clean, END, spark=spark)
    expected = lake_tables(clean)
    assert len(expected) == 18  # 8 silver (with profiles) + 10 gold (with the author_viewer_days and ring_signal_days
    # partials, the author_viewer_latest and ring_signal_sums states and the author-hours)
    assert len(expected["silver.view_events"]) > 20 and len(expected["gold.segment_insights"]) > 5
    assert lake_tables(forward) == expected
    assert bwd_built == expected
    assert bwd_maintained == expected  # compaction + vacuum changed files, not contents

    for settings in (forward, backward):
        assert current_id(settings) is not None
        runs = DeltaTable(str(settings.table_path("ops", "pipeline_runs"))).to_pyarrow_table().to_pylist()
        assert {r["status"] for r in runs} == {"success"}
        hourly = [r for r in runs if r["run_id"].startswith("storylake_hourly/manual__")]
        last = max(hourly, key=lambda r: r["started_at"])["run_id"]
        assert {r["step"]: r["as_of"] for r in hourly if r["run_id"] == last} == {
            "ingest": datetime(2026, 11, 1, 1, tzinfo=UTC),  # the hour-1 run ingests its own interval...
            "silver": END, "gate_silver": END, "gold": END, "gate_gold": END, "publish": END,  # ...as of the mark
        }
        results = DeltaTable(str(settings.table_path("ops", "quality_results"))).to_pyarrow_table()
        assert results.num_rows > 200 and all(results.column("success").to_pylist())
    assert (forward.lake / "quality" / "data_docs" / "index.html").exists()

    other = {r["step"]: r for r in runs if not r["run_id"].startswith("storylake_hourly/")}  # backward lake
    assert set(other) == {"retention", "maintain", "prepare_history", "export", "expire"}
    # the serving history files of the next publishes, written ahead (none here: a one-day world has no history)
    assert other["prepare_history"]["as_of"] == datetime(2026, 11, 2, 3, 30, tzinfo=UTC)
    assert insights_history.prepared_path(backward).exists()
    assert other["retention"]["rows_written"] == 0  # a one-day world: nothing is past any retention yet
    assert other["maintain"]["rows_written"] > 0  # files compacted or vacuumed
    assert other["export"]["as_of"] == END
    manifest = json.loads((steps.export_dir(backward, START - timedelta(days=1)) / "manifest.json").read_text())
    assert manifest["as_of"] == "2026-11-01T02:00:00Z" and manifest["rows"] == other["export"]["rows_written"]
    assert other["expire"]["as_of"] == datetime(2026, 11, 3, 0, 5, tzinfo=UTC)
    # expiry deleted nothing: it listed the expired, non-archived segments' media for the media service
    segments = DeltaTable(str(backward.table_path("silver", "segments"))).to_pyarrow_table()
    assert segments.num_rows == len(expected["silver.segments"])
    media = DeltaTable(str(backward.table_path("ops", "media_deletions"))).to_pyarrow_table()
    assert media.num_rows == other["expire"]["rows_written"] > 0
    archived = set(segments.filter(segments.column("is_archived")).column("segment_id").to_pylist())
    assert not archived & set(media.column("segment_id").to_pylist())  # archived media are never listed

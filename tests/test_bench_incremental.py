"""The incremental benchmark's repeated measured run (`storylake bench incremental --repeat`), on a tiny world."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline import steps
from storylake.settings import Settings
from toolkit.bench.incremental import GEN_START, bench_incremental

pytestmark = pytest.mark.slow


def test_each_repeat_of_the_measured_hour_starts_from_the_same_lake(tmp_path: Path) -> None:
    """Every repeat ingests and processes the same hour (the lake from before the first run is put back: without it
    the second run would find the hour ingested already), the reported run is the median (the faster of two), and
    the lake ends as after one run, without the copy. With hours_since_maintenance 2 the hour before it runs
    unmeasured, and is reported with its steps."""
    result = bench_incremental(tmp_path, views_per_day=3000, users=300, checkpoints=(1,), repeat=2,
                               hours_since_maintenance=2)
    (checkpoint,) = result["checkpoints"]
    lines = checkpoint["hour_landing_lines_runs"]
    assert len(lines) == 2 and lines[0] == lines[1] > 0, lines
    times = checkpoint["hourly_run_seconds_runs"]
    assert times == sorted(times) and checkpoint["hourly_run_seconds"] == times[0]
    assert len(checkpoint["peak_rss_mb_runs"]) == 2
    # the machine's busy cores over the reported run and each of its steps: silver keeps the engine busy
    # (None only for a step shorter than the sampling interval)
    pcts = checkpoint["steps_cpu_busy_pct"]
    assert set(pcts) == set(checkpoint["steps_seconds"])
    assert all(pct is None or 0 <= pct <= 100 for pct in pcts.values())
    assert pcts["silver"] is not None and pcts["silver"] > 0
    assert 0 < checkpoint["cpu_busy_core_seconds"] <= checkpoint["hourly_run_seconds"] * (os.cpu_count() or 1) + 1
    assert 0 < checkpoint["cpu_busy_pct"] <= 100
    (before,) = checkpoint["hours_before"]
    assert before["as_of"] == "2026-11-02T01:00:00Z"
    assert before["landing_lines"] > 0 and before["seconds"] > 0
    assert set(before["steps_seconds"]) == {"ingest", "silver", "gate_silver", "gold", "gate_gold", "publish"}
    assert before["publish_steps_seconds"]["live_segments"] >= 0
    settings = Settings(lake=tmp_path / "lake-incremental", landing=tmp_path / "landing-incremental")
    assert steps.lake_watermark(settings) == GEN_START + timedelta(days=1, hours=2)
    assert not (tmp_path / "lake-incremental.before-hour").exists()

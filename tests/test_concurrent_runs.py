"""Two `storylake run` processes started together on one lake, 20 tries (slow): the writer lock lets exactly one
write; the other exits 1 at once with one line naming the holder (STORYLAKE_WRITER_WAIT_S=0; waiting writers are
tested with ingests, tests/test_faults.py). After every try every table is whole; at the end the lake holds exactly
what one clean run gives (never doubled). The runs share one separately started Sail server (`--engine remote`), as
Airflow workers would."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobs.lake_health import table_health
from jobs.maintenance import find_tables
from storylake.settings import Settings
from tests.sail_server import sail_server
from tests.test_incremental import assert_same, lake_state
from toolkit.generate import generate

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).with_name("storylake"))
TRIES = 20
FIRST = datetime(2026, 11, 1, 4, tzinfo=UTC)


def _start(lake_dir: Path, landing: Path, url: str, as_of: datetime, wait_s: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYLAKE_")} | {
        "STORYLAKE_LAKE": str(lake_dir), "STORYLAKE_LANDING": str(landing), "STORYLAKE_ENGINE": "remote",
        "STORYLAKE_SPARK_REMOTE": url, "STORYLAKE_WRITER_WAIT_S": wait_s, "STORYLAKE_LANDING_SETTLE_S": "0",
        "STORYLAKE_LOG_LEVEL": "WARNING", "RUST_LOG": "error",
    }
    # without the quality gates (tested on their own; the lock is taken before any step): a third of each run's time
    return subprocess.Popen([CLI, "run", "--as-of", as_of.isoformat(), "--no-gate"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _assert_whole(lake_dir: Path) -> None:
    for path in find_tables(lake_dir):
        health = table_health(path, path.relative_to(lake_dir).as_posix())
        assert health.ok, health.as_dict()


def test_concurrent_runs_one_writes_the_other_names_it(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    generate(landing, users=30, days=1, seed=9, progress=False)
    lake_dir = tmp_path / "lake"
    last = FIRST + timedelta(hours=TRIES - 1)
    with sail_server() as url:
        for i in range(TRIES):
            as_of = FIRST + timedelta(hours=i)
            procs = [_start(lake_dir, landing, url, as_of, "0") for _ in range(2)]
            outs = [p.communicate(timeout=300) for p in procs]
            codes = sorted(p.returncode for p in procs)
            assert codes == [0, 1], f"try {i}: exit codes {codes}: {[err[-1500:] for _, err in outs]}"
            winner, loser = (0, 1) if procs[0].returncode == 0 else (1, 0)
            message = outs[loser][1].strip().splitlines()
            assert len(message) == 1, outs[loser][1]
            assert f"is being written by `run` (pid {procs[winner].pid} on " in message[0], message[0]
            _assert_whole(lake_dir)
        clean_dir = tmp_path / "clean"
        clean = _start(clean_dir, landing, url, last, "0")
        _, err = clean.communicate(timeout=300)
        assert clean.returncode == 0, err[-2000:]
    got, want = lake_state(Settings(lake=lake_dir)), lake_state(Settings(lake=clean_dir))
    assert sum(len(v) for v in want.values()) > 1000
    assert_same(got, want)

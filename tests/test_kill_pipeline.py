"""kill -9 of `storylake run` inside silver, gold, a gate and publish, and of `storylake maintain` (slow): after
every crash every table is readable (`storylake check`), serving answers from the last good snapshot exactly as
before, and the rerun leaves the lake a run without the crash leaves (tests/test_faults.py covers ingest)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from serving.snapshot import current_id, open_current
from serving.tray import tray
from storylake.failpoints import ENV as FAILPOINT
from storylake.settings import Settings
from tests.test_incremental import assert_same, lake_state
from toolkit.generate import generate

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).with_name("storylake"))
T1 = datetime(2026, 11, 1, 12, tzinfo=UTC)
T2 = datetime(2026, 11, 1, 18, tzinfo=UTC)
USERS = 40


def sl(lake_dir: Path, landing: Path, *args: str, failpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYLAKE_")} | {
        "STORYLAKE_LAKE": str(lake_dir), "STORYLAKE_LANDING": str(landing), "STORYLAKE_LANDING_SETTLE_S": "0",
        "STORYLAKE_LOG_LEVEL": "WARNING", "RUST_LOG": "error",
    }
    if failpoint:
        env[FAILPOINT] = failpoint
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=600, check=False)


def serving_answers(lake_dir: Path) -> tuple[str | None, list[Any]]:
    """CURRENT and every user's tray at T1 (ring authors and segment ids with their seen state)."""
    settings = Settings(lake=lake_dir)
    snap = open_current(settings)
    trays = [[(r.author_id, [(s.segment_id, s.seen) for s in r.segments]) for r in tray(snap, v, T1).rings]
             for v in range(1, USERS + 1)]
    return current_id(settings), trays


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A lake after one good run as of T1 (`base`), and the lake a second run as of T2 leaves (`want`)."""
    root = tmp_path_factory.mktemp("kill")
    landing = root / "landing"
    generate(landing, users=USERS, days=1, seed=5, progress=False)
    base = root / "base"
    done = sl(base, landing, "run", "--as-of", T1.isoformat())
    assert done.returncode == 0, done.stderr[-2000:]
    answers = serving_answers(base)
    assert sum(len(t) for t in answers[1]) > 0, "some viewer must have a tray"
    ref = root / "ref"
    shutil.copytree(base, ref)
    done = sl(ref, landing, "run", "--as-of", T2.isoformat())
    assert done.returncode == 0, done.stderr[-2000:]
    return {"landing": landing, "base": base, "answers": answers, "ref": ref, "want": lake_state(Settings(lake=ref))}


def assert_readable(lake_dir: Path, landing: Path) -> None:
    check = sl(lake_dir, landing, "check")
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]


@pytest.mark.parametrize("point", [
    "silver.after_view_events",
    "gate.before_audit_silver",
    "gold.after_segment_insights",
    "publish.before_current",
])
def test_kill_9_during_a_run_then_rerun(lakes: dict[str, Any], tmp_path: Path, point: str) -> None:
    lake_dir, landing = tmp_path / "lake", lakes["landing"]
    shutil.copytree(lakes["base"], lake_dir)
    killed = sl(lake_dir, landing, "run", "--as-of", T2.isoformat(), failpoint=point)
    assert killed.returncode == -signal.SIGKILL, (point, killed.returncode, killed.stderr[-2000:])
    assert_readable(lake_dir, landing)
    assert serving_answers(lake_dir) == lakes["answers"]  # the last good snapshot, unchanged
    done = sl(lake_dir, landing, "run", "--as-of", T2.isoformat())
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same(lake_state(Settings(lake=lake_dir)), lakes["want"])
    staging = lake_dir / "_staging"  # the killed job's scratch is gone
    assert not staging.exists() or not any(staging.iterdir())


def test_kill_9_during_maintain_then_rerun(lakes: dict[str, Any], tmp_path: Path) -> None:
    lake_dir, landing = tmp_path / "lake", lakes["landing"]
    shutil.copytree(lakes["ref"], lake_dir)
    answers = serving_answers(lake_dir)
    killed = sl(lake_dir, landing, "maintain", failpoint="maintain.after_silver/view_events")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert_readable(lake_dir, landing)
    assert serving_answers(lake_dir) == answers
    done = sl(lake_dir, landing, "maintain")
    assert done.returncode == 0, done.stderr[-2000:]
    assert_readable(lake_dir, landing)
    assert_same(lake_state(Settings(lake=lake_dir)), lakes["want"])

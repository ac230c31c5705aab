"""The benchmarks' synthetic lakes stay publishable as the contracts change (a benchmark that breaks is found here,
not on the day its figures are needed)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from serving import api
from serving.publish import publish
from storylake.settings import Settings
from toolkit.bench.serving import DEFAULT_NOW, build_lake


def test_the_serving_benchmark_lake_publishes_and_serves(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    info = build_lake(settings, segments=2_000, users=300, follows_per_viewer=40, big_segment_viewers=200)
    with caplog.at_level(logging.WARNING, logger="serving.publish"):
        publish(settings, DEFAULT_NOW)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    snap = api.open_current(settings)
    page = api.tray(snap, info["viewer_id"], DEFAULT_NOW, limit=50)
    assert page.rings and all(r.segments for r in page.rings)
    seen_by = api.seen_by(snap, info["big_segment_id"], info["big_segment_author"], DEFAULT_NOW, limit=50)
    assert seen_by.total == info["big_segment_viewers"]


def test_the_history_benchmark_moves_the_month_file_to_the_maintenance(tmp_path: Path) -> None:
    """At a tiny size: the merge day's publish writes October's month file of every long-lived table as is, and none
    after prepare_history, which wrote them; both snapshots serve the same rows."""
    from toolkit.bench.history import bench_history

    out = bench_history(tmp_path / "work", days=36, segments_per_day=700, authors_per_day=50, users=400)
    every = dict.fromkeys(("segment_insights", "story_insights", "author_daily_insights", "sticker_results",
                           "archived_segments", "question_inbox"), 1)
    assert out["merge_day_publish_as_is"]["history_files_written"] == every
    assert out["prepare_history"]["files_written"] == every
    assert out["merge_day_publish_prepared"]["history_files_written"] == {}
    assert out["merge_day_publish_prepared"]["history_files_prepared"] == every
    # and the day that left the recent rows (Nov 2) is the one warm file each publish writes when the cuts move
    assert out["merge_day_publish_as_is"]["warm_files_written"] == every
    assert out["merge_day_publish_prepared"]["warm_files_written"] == every
    # October's rows: 31 of the 36 days (Sep 30 - Nov 4) of segments, one in 7 a story
    assert out["prepare_history"]["rows_written"]["author_daily_insights"] == 31 * 50
    served = []
    for lake in ("as-is", "prepared"):
        snap = api.open_current(Settings(lake=tmp_path / "work" / lake / "lake", landing=tmp_path / "x"))
        served.append({name: sorted(map(repr, snap.db().execute(f"SELECT * FROM {name}").fetchall()))  # noqa: S608
                       for name in every})
    assert served[0] == served[1]


def test_a_benchmark_generates_its_landing_files_in_a_child_process_as_its_own_would(tmp_path: Path) -> None:
    """toolkit.bench.ingest.generate_apart (the generator's memory leaves with a child process, so it is not counted in
    the pipeline's peak RSS) writes the very files the generator writes in the caller's process."""
    from toolkit.bench.ingest import generate_apart
    from toolkit.generate import generate

    options = {"users": 60, "days": 1, "seed": 3, "views": 400}
    generate(tmp_path / "here", **options)
    generate_apart(tmp_path / "apart", **options)

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    here = files(tmp_path / "here")
    assert len(here) > 5
    assert files(tmp_path / "apart") == here
    assert sorted(p.name for p in tmp_path.iterdir()) == ["apart", "here"]  # no partial folder left beside


def test_a_generator_child_exits_once_its_parent_is_gone() -> None:
    """A benchmark stopped while its child generates the world (a SIGTERM ends the parent, not the pool's worker) once
    left the child writing into the next benchmark's world; the child's watch (toolkit.bench.ingest.exit_without)
    ends it when its parent is gone."""
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parent.parent
    # an intermediate process starts a child watching it, prints the child's pid and exits at once
    child = ("import os, time; from toolkit.bench.ingest import exit_without; "
             "exit_without(int(os.environ['WATCHED']), 0.05); time.sleep(60)")
    code = ("import os, subprocess, sys; p = subprocess.Popen([sys.executable, '-c', sys.argv[1]], "
            "env={**os.environ, 'WATCHED': str(os.getpid())}); print(p.pid, flush=True)")
    out = subprocess.run([sys.executable, "-c", code, child], capture_output=True, text=True, check=True, cwd=root,
                         timeout=60)
    pid = int(out.stdout)

    def running() -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        return state not in ("Z", "X")  # a zombie has exited (its new parent may not reap it)

    deadline = time.monotonic() + 30
    while running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running()

"""Engine factory: embedded Sail and a separately started Sail server through the same code."""

from __future__ import annotations

import pytest

from jobs.engine import spark_session
from jobs.ingest import ingest
from storylake.settings import Settings
from tests.landing_builders import created, view, write_landing
from tests.sail_server import sail_server


def test_embedded_session_runs_a_query(spark) -> None:  # type: ignore[no-untyped-def]
    rows = spark.sql("SELECT 1 + 1 AS two, current_timezone() AS tz").collect()
    assert (rows[0]["two"], rows[0]["tz"]) == (2, "UTC")


@pytest.mark.slow
def test_remote_sail_server_reads_the_bronze_tables_ingest_wrote(settings: Settings) -> None:
    write_landing(settings.landing, "segment_created", [created("c1", 1, 9, "2026-11-01T09:00:00.000Z")])
    write_landing(settings.landing, "segment_view", [view("e1", 1, 2, "2026-11-01T10:00:00.000Z"),
                                                     view("e2", 1, 3, "2026-11-01T10:00:01.000Z")])
    ingest(settings, progress=False)
    with sail_server() as url:
        remote = Settings(lake=settings.lake, landing=settings.landing, engine="remote", spark_remote=url)
        with spark_session(remote) as spark:
            df = spark.read.format("delta").load(str(settings.table_path("bronze", "segment_view")))
            assert sorted(r["event_id"] for r in df.select("event_id").collect()) == ["e1", "e2"]
            assert spark.conf.get("spark.sql.session.timeZone") == "UTC"


def test_sail_server_child_dies_with_its_parent(tmp_path) -> None:
    """kill -9 of the process that started `sail spark server` (as `storylake run` does) takes the server with it:
    no orphan keeps running under PID 1."""
    import os
    import signal
    import subprocess
    import sys
    import time

    child_pid = tmp_path / "sail.pid"
    code = (
        "import os, sys, time; from jobs import engine\n"
        "with engine.sail_server_process() as url:\n"
        "    import psutil; kids = psutil.Process().children()\n"
        f"    open({str(child_pid)!r}, 'w').write(str(kids[0].pid)); time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while not (child_pid.exists() and child_pid.read_text()):
        assert parent.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    sail = int(child_pid.read_text())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    import psutil

    deadline = time.monotonic() + 10
    while psutil.pid_exists(sail) and psutil.Process(sail).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the Sail server outlived its parent"
        time.sleep(0.1)


def _sail_children() -> list[int]:
    import psutil

    return [p.pid for p in psutil.Process().children(recursive=True)
            if p.name() == "sail" and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.timeout(120)  # a server killed under the session makes its calls retry for minutes
def test_the_engine_started_beside_ingest_outlives_the_thread_that_started_it(settings: Settings) -> None:
    """`storylake run` starts the engine in a thread while ingest runs. The Sail server dies with the thread that
    started it (PR_SET_PDEATHSIG follows the thread), so that thread must live until the engine is stopped: a query
    long after the start still runs, and the server is gone once the block ends."""
    import time

    from pipeline.run import _engine_started_beside

    others = set(_sail_children())  # any server another part of the suite keeps is not this test's
    with _engine_started_beside(settings) as session:
        time.sleep(1.5)  # ingest's time: the start has long ended
        spark = session()
        time.sleep(0.5)
        assert len(set(_sail_children()) - others) == 1  # alive (a dead server makes the query below hang)
        assert spark.range(3).count() == 3
    assert set(_sail_children()) <= others


def test_an_engine_started_beside_a_failing_ingest_is_stopped(settings: Settings) -> None:
    """When the block (ingest) fails before it asks for the session, possibly while the engine is still starting,
    the engine is stopped all the same and the block's error comes out."""
    from pipeline.run import _engine_started_beside

    others = set(_sail_children())
    with pytest.raises(RuntimeError, match="ingest failed"), _engine_started_beside(settings):
        raise RuntimeError("ingest failed")
    assert set(_sail_children()) <= others


def test_a_child_dies_with_the_thread_that_started_it() -> None:
    """die_with_parent's 'parent' is the starting thread, not the process (prctl(2)): the reason the engine's
    starting thread is kept until the engine is stopped (pipeline.run._engine_started_beside)."""
    import subprocess
    import sys
    import threading
    import time

    from storylake.processes import die_with_parent

    started: list[subprocess.Popen] = []
    thread = threading.Thread(target=lambda: started.append(subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=die_with_parent)))  # noqa: PLW1509
    thread.start()
    thread.join()
    child = started[0]
    try:
        deadline = time.monotonic() + 10
        while child.poll() is None:
            assert time.monotonic() < deadline, "the child outlived the thread that started it"
            time.sleep(0.05)
        assert child.returncode == -9
    finally:
        child.kill()
        child.wait()

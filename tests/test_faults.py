"""Fault injection on ingest (slow): kill -9 between the commits of a batch, also during the resume of an
interrupted batch, and concurrent ingests on one lake. Bronze must stay readable, never doubled, and the final lake
must hold exactly what one clean ingest gives; the loser of a race names the holder. Crashes of the later steps:
tests/test_kill_pipeline.py; concurrent runs: tests/test_concurrent_runs.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from jobs.lake_health import table_health
from jobs.maintenance import find_tables
from storylake import lake
from storylake.failpoints import ENV as FAILPOINT
from toolkit.generate import generate

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
# One ingest in its own process, in small batches (several batches per run) and inline (no worker pool).
CHILD = (
    "import sys; from pathlib import Path; from storylake.settings import Settings; from jobs.ingest import ingest; "
    "ingest(Settings.resolve(overrides={'lake': Path(sys.argv[1]), 'landing': Path(sys.argv[2])}), progress=False, "
    "workers=1, max_batch_bytes=int(sys.argv[3])); "
    # then exit as the CLI does: without the interpreter's native teardown, which Arrow's scanner threads can abort
    # ("terminate called without an active exception") after the ingest has committed
    "from toolkit.cli import _end; _end(0)"
)
BATCH_BYTES = 150_000
EXCLUDE = {"_ingested_at", "quarantined_at"}  # the time of the attempt that committed the row


def _ingest(lake_dir: Path, landing: Path, *, failpoint: str | None = None, wait_s: str | None = None,
            background: bool = False) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYLAKE_")}
    if failpoint:
        env[FAILPOINT] = failpoint
    if wait_s is not None:
        env["STORYLAKE_WRITER_WAIT_S"] = wait_s
    args = [sys.executable, "-c", CHILD, str(lake_dir), str(landing), str(BATCH_BYTES)]
    if background:
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _contents(lake_dir: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows (sorted, without per-attempt columns), after checking every table is whole."""
    out: dict[str, list[tuple[object, ...]]] = {}
    for path in find_tables(lake_dir):
        name = path.relative_to(lake_dir).as_posix()
        health = table_health(path, name)
        assert health.ok, health.as_dict()
        assert not health.missing_stats, health.as_dict()
        table = lake.read_arrow(path)
        assert table is not None
        cols = [c for c in table.column_names
                if c not in EXCLUDE and not pa.types.is_nested(table.schema.field(c).type)]
        if name == "ops/ingest_runs":
            cols = [c for c in cols if c not in ("started_at", "finished_at", "duration_s")]
        if name == "ops/ingest_ledger":
            cols = [c for c in cols if c != "planned_at"]
        rows = table.select(cols).to_pylist()
        out[name] = sorted((tuple(r.values()) for r in rows), key=repr)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[tuple[object, ...]]]]:
    """A generated landing folder and the lake one clean ingest makes of it."""
    root = tmp_path_factory.mktemp("faults")
    landing = root / "landing"
    generate(landing, users=60, days=1, seed=11, progress=False)
    clean = root / "clean"
    done = _ingest(clean, landing)
    assert done.returncode == 0, done.stderr
    contents = _contents(clean)
    runs = contents["ops/ingest_runs"]
    assert len(runs) >= 3, "the landing must make several batches"
    return landing, contents


@pytest.mark.parametrize(
    "crashes",
    [
        ["ingest.after_ledger"],
        ["ingest.after_bronze_table"],
        ["ingest.before_runs"],  # the crash that used to make a resume rewrite committed files
        ["ingest.before_runs", "ingest.after_bronze_table"],  # killed again during the resume
        ["ingest.after_bronze_table", "ingest.before_runs", "ingest.after_ledger"],
    ],
)
def test_kill_9_during_ingest_then_rerun_gives_the_clean_lake(world, tmp_path: Path, crashes: list[str]) -> None:
    landing, clean = world
    lake_dir = tmp_path / "lake"
    for point in crashes:
        killed = _ingest(lake_dir, landing, failpoint=point)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
        for path in find_tables(lake_dir):  # readable after every crash
            assert table_health(path).ok, table_health(path).as_dict()
    done = _ingest(lake_dir, landing)
    assert done.returncode == 0, done.stderr
    assert _contents(lake_dir) == clean
    # nothing left behind: every Parquet file in a bronze folder is referenced by its table
    for path in find_tables(lake_dir / "bronze"):
        on_disk = {p.name for p in path.glob("*.parquet")}
        referenced = {uri.rsplit("/", 1)[-1] for uri in lake.open_table(path).file_uris()}  # type: ignore[union-attr]
        assert on_disk == referenced, path


def test_concurrent_ingests_wait_for_each_other(world, tmp_path: Path) -> None:
    """Two ingests started together on one lake (10 tries; with the next test, 20 tries of concurrent ingests): the
    second waits for the writer lock, then finds nothing new; the lake equals the clean one every time (never
    doubled, never unreadable)."""
    landing, clean = world
    for i in range(10):
        lake_dir = tmp_path / f"lake{i}"
        procs = [_ingest(lake_dir, landing, background=True) for _ in range(2)]
        for p in procs:
            _, stderr = p.communicate(timeout=300)
            assert p.returncode == 0, stderr
        assert _contents(lake_dir) == clean


def test_concurrent_ingest_that_cannot_wait_names_the_holder(world, tmp_path: Path) -> None:
    """With STORYLAKE_WRITER_WAIT_S=0 the loser exits at once with one line naming the running ingest; the
    winner's lake is the clean one (10 tries)."""
    landing, clean = world
    for i in range(10):
        lake_dir = tmp_path / f"lake{i}"
        first = _ingest(lake_dir, landing, background=True)
        lock = lake_dir / "_locks" / "writer.lock"
        while not lock.exists() or not lock.read_text():  # the first ingest holds the lake
            assert first.poll() is None, first.communicate()
        second = _ingest(lake_dir, landing, wait_s="0")
        assert first.wait(timeout=300) == 0, first.communicate()
        assert second.returncode == 1
        assert f"is being written by `ingest` (pid {first.pid} on " in second.stderr, second.stderr
        assert _contents(lake_dir) == clean

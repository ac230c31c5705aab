"""The real `storylake` console script end to end: generate -> run -> serving commands, exit codes, reruns."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from storylake import contracts, lake, merge_on_read
from storylake.settings import Settings
from toolkit.cli import OWN_LOGGERS

pytestmark = pytest.mark.slow
AS_OF = "2026-11-02T01:00:00Z"
CLI = str(Path(sys.executable).with_name("storylake"))


def sl(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, check=False, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"storylake {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("cli")
    env = {**os.environ, "STORYLAKE_LAKE": str(root / "lake"), "STORYLAKE_LANDING": str(root / "landing"),
           "STORYLAKE_LOG_LEVEL": "WARNING", "RUST_LOG": "error"}
    sl("generate", "--users", "150", "--seed", "11", env=env)
    sl("run", "--as-of", AS_OF, env=env)
    return env


def _contents(lake_root: Path) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    for key in contracts.load_all():
        layer, name = key.split(".")
        if layer not in ("silver", "gold") or key in merge_on_read.CHANGES_TABLES:
            continue
        t = merge_on_read.read_table(Settings(lake=lake_root), key)  # as its readers see it
        if t is None:
            continue
        cols = [n for n in t.column_names if n not in ("as_of",)]
        rows = t.select(cols).to_pylist()
        out[key] = sorted(tuple(json.dumps(r[k], default=str, sort_keys=True) for k in cols) for r in rows)
    return out


def test_help_on_every_command() -> None:
    top = subprocess.run([CLI, "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("generate", "ingest", "run", "publish", "tray", "seen-by", "insights", "expire", "export-features",
                "retention", "maintain", "prepare-history", "dashboard", "demo", "contracts", "bench"):
        assert cmd in top
        res = subprocess.run([CLI, *cmd.split(), "--help"], capture_output=True, text=True, check=False)
        assert res.returncode == 0 and "Usage" in res.stdout, cmd


def test_run_twice_with_the_same_as_of_gives_identical_tables(world: dict[str, str]) -> None:
    before = _contents(Path(world["STORYLAKE_LAKE"]))
    assert {"silver.view_events", "gold.segment_insights", "gold.ring_features"} <= set(before)
    assert all(before[k] for k in ("silver.segments", "silver.view_events", "gold.segment_insights"))
    log_file = Path(world["STORYLAKE_LAKE"]).parent / "logs" / "run.log"
    env = {**world, "STORYLAKE_LOG_LEVEL": "INFO", "STORYLAKE_LOG_FILE": str(log_file)}
    again = sl("run", "--as-of", AS_OF, env=env)
    assert _contents(Path(world["STORYLAKE_LAKE"])) == before
    # the console shows storylake's own INFO records (steps, gates) and only warnings from anyone else; the log file
    # holds everything at INFO
    records = re.findall(r"^\d{4}-\d\d-\d\d [\d:,]+ (\w+) ([\w.]+):", again.stderr, re.MULTILINE)
    assert records and all(lvl != "INFO" or name.split(".")[0] in OWN_LOGGERS for lvl, name in records)
    assert len(log_file.read_text().splitlines()) >= len(records)


def test_tray_and_seen_by_json_shapes_and_exit_codes(world: dict[str, str]) -> None:
    db = Path(world["STORYLAKE_LAKE"])
    seg = lake.read_arrow(db / "gold" / "segment_insights", ["segment_id", "author_id", "reach"])
    assert seg is not None
    best = max(seg.to_pylist(), key=lambda r: (r["reach"], -r["segment_id"]))
    out = json.loads(sl("seen-by", str(best["segment_id"]), "--as", str(best["author_id"]), "--now", AS_OF,
                        "--limit", "3", env=world).stdout)
    assert set(out) == {"segmentId", "total", "viewers", "hasMore", "nextCursor"}
    assert out["segmentId"] == best["segment_id"] and out["total"] == best["reach"]
    assert [set(v) for v in out["viewers"]] == [{"viewerId", "viewedAt", "viewSource", "completionPct"}] * min(
        3, best["reach"])
    denied = sl("seen-by", str(best["segment_id"]), "--as", str(best["author_id"] + 1), "--now", AS_OF, env=world,
                check=False)
    assert denied.returncode == 3 and denied.stderr.count("\n") == 1 and "Traceback" not in denied.stderr
    unknown = sl("seen-by", "987654321", "--as", "1", "--now", AS_OF, env=world, check=False)
    assert unknown.returncode == 4 and unknown.stderr.startswith("error: not found")
    tray = json.loads(sl("tray", str(best["author_id"]), "--now", AS_OF, "--limit", "2", env=world).stdout)
    assert set(tray) == {"users", "nextCursor"}
    for ring in tray["users"]:
        assert set(ring) == {"userId", "isOwn", "hasUnseen", "ringState", "isCloseFriends", "rankScore",
                             "latestSegmentAt", "segmentCount", "segments"}
    bad = sl("tray", "1", "--now", "yesterday", env=world, check=False)
    assert bad.returncode == 2 and "--now: 'yesterday' is not an ISO-8601 time" in bad.stderr


def test_publish_as_of_mistyped_lakes_and_cursor_errors(
    world: dict[str, str], tmp_path: Path
) -> None:
    out = sl("publish", env=world).stdout  # no --as-of: the run's, not the wall clock
    assert f"(as of {AS_OF.replace('Z', '+00:00')})" in " ".join(out.split())
    older = sl("publish", "--as-of", "2026-11-01T00:00:00Z", env=world, check=False)
    assert older.returncode == 2 and older.stderr.count("\n") == 1 and "before the lake's newest finished run" in \
        older.stderr
    # a mistyped lake: one line, exit 4, nothing created there
    empty = {**world, "STORYLAKE_LAKE": str(tmp_path / "typo")}
    for cmd in (["publish"], ["expire"], ["maintain"], ["prepare-history"], ["check"],
                ["export-features", "--out", str(tmp_path / "x")]):
        res = sl(*cmd, env=empty, check=False)
        assert res.returncode == 4 and res.stderr.count("\n") == 1, (cmd, res.stderr)
        assert f"no storylake tables under {tmp_path / 'typo'}" in res.stderr
    assert not (tmp_path / "typo").exists() and not (tmp_path / "x").exists()
    for bad in ("not-a-cursor", "eyJ2IjoxfQ.AAAAAAAAAAAAAAAAAAAAAA"):
        res = sl("tray", "1", "--now", AS_OF, "--cursor", bad, env=world, check=False)
        assert res.returncode == 2 and res.stderr.startswith("error: invalid cursor") and "Traceback" not in res.stderr
        assert res.stderr.count("\n") == 1


def test_second_ingest_writes_no_new_bronze_version(world: dict[str, str]) -> None:
    root = Path(world["STORYLAKE_LAKE"]) / "bronze"
    before = {p.name: lake.version(p) for p in root.iterdir()}
    out = sl("ingest", env=world).stdout
    assert "no new landing files" in out
    assert {p.name: lake.version(p) for p in root.iterdir()} == before


def test_quarantine_reasons_name_the_field(world: dict[str, str]) -> None:
    q = lake.read_arrow(Path(world["STORYLAKE_LAKE"]) / "ops" / "quarantine")
    assert q is not None and q.num_rows > 0
    ingest_rows = [r for r in q.to_pylist() if r["stage"] == "ingest"]
    assert ingest_rows
    for r in ingest_rows:
        assert r["reason"].startswith("landing.") and r["field"] and r["raw"] is not None
        if r["rule"] != "malformed_json":
            assert f".{r['field']}" in r["reason"] or r["field"] in r["reason"]
    assert isinstance(q.schema, pa.Schema)


def test_settings_come_from_the_environment_with_the_options_over_it(world: dict[str, str]) -> None:
    bad_engine = {**world, "STORYLAKE_ENGINE": "spark"}
    failed = sl("ingest", env=bad_engine, check=False)
    assert (failed.returncode, failed.stderr) == (1, "error: engine must be one of embedded, remote, classic; "
                                                     "got 'spark'\n")
    assert "no new landing files" in sl("ingest", "--engine", "embedded", env=bad_engine).stdout  # option wins
    assert sl("contracts", "lint", env=bad_engine).returncode == 0  # commands without settings still run
    bad_now = sl("ingest", env={**world, "STORYLAKE_NOW": "yesterday"}, check=False)
    assert (bad_now.returncode, bad_now.stderr) == (
        1, "error: STORYLAKE_NOW='yesterday' is not an ISO-8601 time (e.g. 2026-11-02T12:00:00Z)\n")


def test_debug_setting_shows_the_traceback(world: dict[str, str]) -> None:
    args = ("seen-by", "987654321", "--as", "1", "--now", AS_OF)
    quiet = sl(*args, env={**world, "STORYLAKE_DEBUG": "0"}, check=False)
    assert quiet.returncode == 4 and quiet.stderr.startswith("error: not found") and "Traceback" not in quiet.stderr
    loud = sl(*args, env={**world, "STORYLAKE_DEBUG": "1"}, check=False)
    assert loud.returncode != 0 and "Traceback" in loud.stderr

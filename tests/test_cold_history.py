"""An hourly run reads its tables' recent files, not their history.

silver.segments, the insights, the sticker results and bronze keep two years of rows, clustered into one file per day
by the daily maintenance. An hourly run's cost must not grow with that history, so its scans and lookups must skip
the old days' files by their statistics. The test makes history cold: after a month and more of a small world (run,
then maintained), every data file whose rows all lie more than a month before the next hour is moved away while the
Delta logs still list it, and the next hour's silver and gold must run without opening one of them. A file that holds a
segment the hour's events can name (the lateness window's events: a stale client's view of a segment created weeks
ago) stays: the run must read that segment's row to decide the view, as a full run would. The tables then equal those
of the same hour run on a copy with every file present.

Publish is not part of it: it lists each source version's files to DuckDB, which opens every file's footer (two
years of day files, one footer each: README "Next"). ops.quarantine is not either: an hourly run reads its rows of
interactions waiting for their segment, which its 90-day retention bounds.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from jobs.day_clustering import cluster_column
from jobs.maintenance import maintain
from jobs.quality import gate_hook
from pipeline.run import run_pipeline
from storylake import lake
from storylake.clock import iso_trimmed, utc
from storylake.settings import Settings
from tests.landing_builders import view, write_landing
from tests.test_incremental import lake_state
from toolkit.bench.incremental import _land
from toolkit.generate.generator import DEFAULT_START, generate

DAYS = 40
USERS = 20
COLD = timedelta(days=35)  # beyond every window an hourly run reads (30-day ring features and view_events)
LATENESS = timedelta(days=4)  # the events whose segments the hour may name: the lateness window and the horizon
INTERACTIONS = ("segment_view", "navigation", "sticker_interaction", "engagement", "segment_deleted",
                "segment_archived")


def named_segments(settings: Settings, since: datetime) -> set[int]:
    """The segment ids bronze events since `since` name."""
    con = duckdb.connect()
    out: set[int] = set()
    for event in INTERACTIONS:
        dt = lake.open_table(settings.table_path("bronze", event))
        if dt is None:
            continue
        rows = con.execute(f"SELECT DISTINCT segment_id FROM read_parquet({dt.file_uris()!r}) "  # noqa: S608 - paths
                           "WHERE event_time >= ? AND segment_id IS NOT NULL", [since]).fetchall()
        out |= {int(r[0]) for r in rows}
    return out


def landed_segments(landing: Path, hour: datetime) -> set[int]:
    """The segment ids the landing files of the hour folder `hour` name."""
    out: set[int] = set()
    for f in landing.glob(f"*/dt={hour:%Y-%m-%d}/hour={hour:%H}/*.jsonl"):
        for line in f.read_text().splitlines():
            try:
                seg = json.loads(line).get("segment_id")
            except (ValueError, AttributeError):
                continue
            if isinstance(seg, int):
                out.add(seg)
    return out


def _day_end(value: Any) -> datetime:
    if isinstance(value, datetime):
        return utc(value)
    return datetime(value.year, value.month, value.day).replace(tzinfo=DEFAULT_START.tzinfo) + timedelta(days=1)


def make_cold(settings: Settings, before: datetime, named: set[int]) -> dict[str, list[Path]]:
    """Move away (renamed *.cold) every data file of a clustered table whose rows all lie before `before`, but those
    that may hold a segment of `named`; table -> the files moved."""
    moved: dict[str, list[Path]] = {}
    for log_dir in sorted(settings.lake.rglob("_delta_log")):
        path = log_dir.parent
        key = ".".join(path.relative_to(settings.lake).parts)
        column = cluster_column(key)
        if column is None or key == "ops.quarantine":
            continue
        dt = lake.open_table(path)
        assert dt is not None
        for add in pa.table(dt.get_add_actions(flatten=True)).to_pylist():
            newest, lo, hi = add.get(f"max.{column}"), add.get("min.segment_id"), add.get("max.segment_id")
            if newest is None or _day_end(newest) >= before:
                continue
            if lo is not None and any(lo <= s <= hi for s in named):
                continue
            f = path / add["path"]
            f.rename(f.with_name(f.name + ".cold"))
            moved.setdefault(key, []).append(f)
    return moved


def test_an_hourly_run_reads_no_file_of_history(spark: Any, tmp_path: Path) -> None:
    world = tmp_path / "world"
    generate(world, users=USERS, days=DAYS, seed=5, progress=False)
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    end = DEFAULT_START + timedelta(days=DAYS - 1)
    _land(world, s.landing, DEFAULT_START - timedelta(days=30), end)
    run_pipeline(s, end, spark=spark, publish=False, progress=False, gate=gate_hook())
    maintain(s)  # one file per day
    _land(world, s.landing, end, end + timedelta(hours=1))
    # a stale client's view, in the hour, of a segment of the world's first day: the run looks that segment up
    # (its file stays), and no other old file
    segments = lake.read_arrow(s.table_path("silver", "segments"), ["segment_id", "created_at"])
    assert segments is not None
    second_day = [r["segment_id"] for r in segments.to_pylist()
                  if DEFAULT_START + timedelta(days=1) <= r["created_at"] < DEFAULT_START + timedelta(days=2)]
    stale = end + timedelta(minutes=10)
    write_landing(s.landing, "segment_view", [view("stale-view", min(second_day), 7, iso_trimmed(stale))],
                  dt=f"{end:%Y-%m-%d}", hour=f"{end:%H}", part=99)
    warm = Settings(lake=tmp_path / "warm_lake", landing=s.landing)
    shutil.copytree(s.lake, warm.lake)

    moved = make_cold(s, end - COLD, named_segments(s, end - LATENESS) | landed_segments(s.landing, end))
    for table in ("silver.segments", "silver.view_events", "silver.engagements", "gold.segment_insights",
                  "gold.story_insights", "gold.sticker_results", "gold.author_daily_insights",
                  "bronze.segment_created"):
        assert moved.get(table), (table, {k: len(v) for k, v in moved.items()})
    run_pipeline(s, end + timedelta(hours=1), spark=spark, publish=False, progress=False, gate=gate_hook())
    # the stale view was decided from its segment's row (read from its old file): outside the segment's lifetime,
    # not an unknown segment
    quarantined = lake.read_arrow(s.table_path("ops", "quarantine"), ["stage", "rule", "raw"])
    assert quarantined is not None
    stale_rows = [(r["stage"], r["rule"]) for r in quarantined.to_pylist() if '"stale-view"' in r["raw"]]
    assert stale_rows == [("silver.view_events", "outside_lifetime")], stale_rows

    for files in moved.values():
        for f in files:
            f.with_name(f.name + ".cold").rename(f)
    run_pipeline(warm, end + timedelta(hours=1), spark=spark, publish=False, progress=False, gate=gate_hook())
    assert lake_state(s) == lake_state(warm)


def test_of_ids_keeps_exactly_the_ids_whatever_the_floor(spark: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The floor only decides what is read: ids above it, below it (looked up one by one) or too many below it (the
    whole table is read) give the same rows."""
    from jobs import horizon

    rows = spark.createDataFrame([(i, f"s{i}") for i in range(1, 11)], "segment_id bigint, v string")

    def got(ids: list[int], floor: int | None) -> list[tuple[int, str]]:
        frame = spark.createDataFrame([(i,) for i in ids], "_ref bigint")
        return sorted(tuple(r) for r in horizon.of_ids(rows, frame, "segment_id", floor).collect())

    assert got([2, 9, 12], 8) == [(2, "s2"), (9, "s9")]
    assert got([2, 9, 12], None) == [(2, "s2"), (9, "s9")]
    assert got([9, 10], 8) == [(9, "s9"), (10, "s10")]
    assert got([], 8) == []
    monkeypatch.setattr(horizon, "MAX_OLD_IDS", 1)  # two old ids: more than it looks up one by one
    assert got([1, 3, 9], 8) == [(1, "s1"), (3, "s3"), (9, "s9")]

"""Delta maintenance (delta-rs): compaction, checkpoints, vacuum and the retention floor, on real tables."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from jobs.maintenance import (
    DEFAULT_RETENTION_HOURS,
    MaintenanceError,
    find_tables,
    maintain,
    maintain_table,
)
from storylake.settings import Settings

OLD = time.time() - 30 * 86400  # 30 days ago, past any retention


def _small_appends(path: Path, n: int = 6) -> None:
    for i in range(n):
        write_deltalake(str(path), pa.table({"id": [2 * i, 2 * i + 1], "day": ["d1", "d2"], "v": [i * 0.5, -i]}),
                        mode="append", partition_by=["day"])


def _rows(path: Path) -> list[dict[str, Any]]:
    return sorted(DeltaTable(str(path)).to_pyarrow_table().to_pylist(), key=lambda r: r["id"])


def _data_files(path: Path) -> list[Path]:
    return [f for f in path.rglob("*.parquet") if "_delta_log" not in f.parts]


def _age_tombstones(path: Path) -> int:
    """Pretend the table's removes happened 30 days ago (delta-rs vacuums by tombstone deletionTimestamp)."""
    aged = 0
    for commit in sorted((path / "_delta_log").glob("*.json")):
        lines = []
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "remove" in action:
                action["remove"]["deletionTimestamp"] = int(OLD * 1000)
                aged += 1
            lines.append(json.dumps(action))
        commit.write_text("\n".join(lines) + "\n")
    for f in _data_files(path):
        os.utime(f, (OLD, OLD))
    return aged


def test_compaction_reduces_files_and_keeps_contents(settings: Settings) -> None:
    path = settings.table_path("silver", "t")
    _small_appends(path)
    before = _rows(path)
    report = maintain(settings)
    (t,) = report.tables
    assert t.table == "silver/t"
    assert (t.files_before, t.files_after) == (12, 2)
    assert (t.compact_files_removed, t.compact_files_added) == (12, 2)
    assert t.version_before == 5 and t.version_after == 6
    assert t.checkpoint_version == 6
    assert t.vacuumed_files == 0  # the compacted files were removed just now: within the retention
    assert _rows(path) == before
    assert (path / "_delta_log" / "00000000000000000006.checkpoint.parquet").exists()
    assert DeltaTable(str(path)).history(1)[0]["operation"] == "OPTIMIZE"


def test_vacuum_deletes_expired_files_and_orphans_only(settings: Settings, spark: Any) -> None:
    path = settings.table_path("gold", "t")
    _small_appends(path)
    DeltaTable(str(path)).optimize.compact()
    before = _rows(path)
    assert _age_tombstones(path) == 12
    orphan = path / "day=d1" / "part-orphan-from-a-crashed-writer.parquet"
    orphan.write_bytes(b"PAR1")
    os.utime(orphan, (OLD, OLD))
    fresh_orphan = path / "day=d2" / "part-in-flight.parquet"  # a writer's file not yet committed
    fresh_orphan.write_bytes(b"PAR1")

    (t,) = maintain(settings).tables
    assert t.vacuumed_files == 13
    assert not orphan.exists() and fresh_orphan.exists()
    assert len(_data_files(path)) == 2 + 1
    assert _rows(path) == before
    fresh_orphan.unlink()
    sail = spark.read.format("delta").load(str(path)).orderBy("id").collect()
    assert [r.asDict() for r in sail] == before


def test_sail_written_table_stays_readable_by_sail_and_delta_rs(settings: Settings, spark: Any) -> None:
    path = settings.table_path("silver", "sail_t")
    for i in range(4):
        spark.createDataFrame([(i, f"r{i}")], "id bigint, name string").write.format("delta").mode("append").save(
            str(path))
    (t,) = maintain(settings).tables
    assert t.files_after < t.files_before
    expected = [{"id": i, "name": f"r{i}"} for i in range(4)]
    assert _rows(path) == expected
    assert [r.asDict() for r in spark.read.format("delta").load(str(path)).orderBy("id").collect()] == expected


@pytest.mark.parametrize("hours", [0, 1, 23])
def test_retention_below_24_hours_is_refused(settings: Settings, hours: int) -> None:
    path = settings.table_path("silver", "t")
    _small_appends(path, 2)
    with pytest.raises(MaintenanceError, match=rf"retention {hours} h is below the 24 h floor"):
        maintain(settings, retention_hours=hours)
    with pytest.raises(MaintenanceError, match="24 h floor"):
        maintain_table(path, retention_hours=hours)
    assert DeltaTable(str(path)).version() == 1  # nothing was touched


def test_retention_between_floor_and_table_default_is_allowed(settings: Settings) -> None:
    path = settings.table_path("silver", "t")
    _small_appends(path)
    DeltaTable(str(path)).optimize.compact()
    _age_tombstones(path)
    (t,) = maintain(settings, retention_hours=48).tables  # below delta.deletedFileRetentionDuration (7 days)
    assert t.error is None and t.vacuumed_files == 12
    assert DEFAULT_RETENTION_HOURS == 168


def test_dry_run_changes_nothing(settings: Settings) -> None:
    path = settings.table_path("silver", "t")
    _small_appends(path)
    DeltaTable(str(path)).optimize.compact()
    _age_tombstones(path)
    (t,) = maintain(settings, dry_run=True).tables
    assert t.vacuumed_files == 12
    assert t.version_after == t.version_before == 6
    assert len(_data_files(path)) == 14


def test_find_tables_walks_layers_and_skips_other_folders(settings: Settings) -> None:
    for layer, name in (("bronze", "segment_view"), ("silver", "view_events"), ("ops", "pipeline_runs")):
        _small_appends(settings.table_path(layer, name), 1)
    (settings.lake / "serving" / "snapshots").mkdir(parents=True)
    (settings.lake / "quality" / "data_docs").mkdir(parents=True)
    found = [p.relative_to(settings.lake).as_posix() for p in find_tables(settings.lake)]
    assert found == ["bronze/segment_view", "ops/pipeline_runs", "silver/view_events"]
    assert find_tables(settings.lake / "missing") == []


def test_one_broken_table_does_not_stop_the_others(settings: Settings) -> None:
    good = settings.table_path("gold", "good")
    broken = settings.table_path("gold", "broken")
    _small_appends(good, 3)
    _small_appends(broken, 1)
    (broken / "_delta_log" / "00000000000000000000.json").write_text("not json\n")
    with pytest.raises(MaintenanceError, match="1 of 2 tables not maintained: gold/broken") as err:
        maintain(settings)
    report = err.value.report
    assert report is not None
    by_table = {t.table: t for t in report.tables}
    assert by_table["gold/good"].error is None and by_table["gold/good"].files_after == 2
    assert by_table["gold/broken"].error


def test_step_records_maintenance_in_pipeline_runs(settings: Settings) -> None:
    from pipeline import steps

    _small_appends(settings.table_path("silver", "t"))
    report = steps.maintain(settings, run_id="maint-1")
    assert [t.table for t in report.tables] == ["silver/t"]
    runs = DeltaTable(str(settings.table_path("ops", "pipeline_runs"))).to_pyarrow_table().to_pylist()
    assert [(r["run_id"], r["step"], r["status"], r["rows_written"]) for r in runs] == [
        ("maint-1", "maintain", "success", 12)]


def test_a_compacted_version_of_a_good_version_becomes_good(settings: Settings) -> None:
    """Compaction keeps a table's rows: the compacted version of a table at its last audited version is recorded as
    audited too (same run, layer and as_of: the watermark stays), so consumers read the compacted files and the next
    gate diffs only what changes after it. A table holding rows no gate passed (a later write) is not carried."""
    from datetime import UTC, datetime

    from storylake import audit, lake

    as_of = datetime(2026, 11, 1, 13, tzinfo=UTC)
    for name, users in (("profiles", [1, 2, 3]), ("relationships", [])):
        for user in users or [1, 2]:
            row = ({"user_id": user, "username": f"u{user}"} if name == "profiles"
                   else {"relation": "follows", "user_id": user, "other_user_id": 9})
            lake.write_table(settings, f"silver.{name}", [row], mode="append")
    audit.start(settings)
    audit.record(settings, "run-1", "silver", as_of, {"silver.profiles": 2, "silver.relationships": 1})
    audit.record(settings, "run-1", "gold", as_of, {"gold.story_insights": 0})
    lake.write_table(settings, "silver.relationships", [{"relation": "follows", "user_id": 3, "other_user_id": 9}],
                     mode="append")  # written after the audit (its gate has not passed)
    watermark = audit.watermark(settings)
    assert watermark == as_of
    report = maintain(settings)
    profiles = lake.version(settings.table_path("silver", "profiles"))
    assert profiles is not None and profiles > 2
    assert report.carried_forward == {"silver.profiles": profiles}
    assert audit.consumer_versions(settings, ["silver.profiles", "silver.relationships"]) == {
        "silver.profiles": profiles, "silver.relationships": 1}
    assert audit.watermark(settings) == watermark
    assert report.as_dict()["carried_forward"] == {"silver.profiles": profiles}


def test_repairing_statistics_rewrites_the_files_without_changing_rows(tmp_path: Path) -> None:
    """A data file committed without statistics is rewritten with complete ones in a commit that adds and removes
    with dataChange false: the rows are the same, the table is healthy, and the gates' last good version (and a
    merge-on-read base) stays valid across it (rows_unchanged_since)."""
    import pyarrow.parquet as pq
    from deltalake.transaction import AddAction

    from jobs.lake_health import repair_stats, table_health
    from storylake import lake

    path = tmp_path / "t"
    data = pa.table({"k": pa.array([3, 1, 2], pa.int64()), "s": ["c", "a", None]})
    write_deltalake(str(path), data.slice(0, 1))  # a file with statistics
    pq.write_table(data.slice(1), path / "bare.parquet")
    dt = DeltaTable(str(path))
    dt.create_write_transaction([AddAction("bare.parquet", (path / "bare.parquet").stat().st_size, {},
                                           int(time.time() * 1000), True, None)], mode="append", schema=data.schema)
    before = lake.version(path)
    assert before is not None and set(table_health(path).missing_stats) == {"bare.parquet"}
    assert repair_stats(path) == 1
    health = table_health(path)
    assert health.ok and not health.missing_stats and health.files == 2
    assert sorted(DeltaTable(str(path)).to_pyarrow_table().to_pylist(), key=lambda r: r["k"]) == [
        {"k": 1, "s": "a"}, {"k": 2, "s": None}, {"k": 3, "s": "c"}]
    assert lake.rows_unchanged_since(path, before)
    assert repair_stats(path) == 0

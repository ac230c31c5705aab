"""expire(): lists the media of expired, non-archived segments in ops.media_deletions and deletes nothing; idempotent;
serving never depends on it; running it between pipeline steps changes no silver, gold or export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable

from serving import api
from serving.expire import expire
from serving.publish import publish
from storylake import lake
from storylake.settings import Settings
from tests.lake_builder import DAY, HOUR, LakeBuilder

NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)
US = timedelta(microseconds=1)


def version(settings: Settings, layer: str, name: str) -> int:
    return DeltaTable(str(settings.table_path(layer, name))).version()


def media(settings: Settings) -> list[dict[str, object]]:
    table = lake.read_arrow(settings.table_path("ops", "media_deletions"))
    return [] if table is None else table.sort_by("segment_id").to_pylist()


def build(settings: Settings) -> LakeBuilder:
    lake_ = LakeBuilder(settings)
    lake_.segment(1, 10, NOW - DAY - HOUR - US)  # expired 1 h + 1 us ago: listed
    lake_.segment(2, 10, NOW - DAY - HOUR)  # expired exactly 1 h ago: not yet (strictly older only)
    lake_.segment(3, 10, NOW - 3 * DAY, is_archived=True)  # archived: never listed
    lake_.segment(4, 10, NOW - HOUR)  # active
    lake_.segment(5, 11, NOW - 2 * DAY - HOUR)  # long expired
    lake_.view(1, 20, NOW - DAY).view(5, 20, NOW - 2 * DAY).view(3, 21, NOW - 3 * DAY + HOUR)
    lake_.view(4, 20, NOW - HOUR / 2)
    return lake_.write()


def test_lists_expired_media_and_deletes_nothing(settings: Settings) -> None:
    build(settings)
    tables = [("silver", "segments"), ("silver", "segment_viewers"), ("gold", "segment_insights")]
    before = {t: version(settings, *t) for t in tables}
    report = expire(settings, NOW)
    assert (report.listed, report.pending, report.version, report.missing) == (2, 2, 0, [])
    assert media(settings) == [
        {"segment_id": 1, "author_id": 10, "media_id": 10, "expires_at": NOW - HOUR - US, "due_at": NOW - US,
         "listed_at": NOW},
        {"segment_id": 5, "author_id": 11, "media_id": 50, "expires_at": NOW - DAY - HOUR,
         "due_at": NOW - DAY, "listed_at": NOW},
    ]
    assert {t: version(settings, *t) for t in tables} == before  # nothing in silver or gold was touched
    assert report.as_dict()["listed"] == 2


def test_idempotent_no_new_version(settings: Settings) -> None:
    build(settings)
    expire(settings, NOW)
    again = expire(settings, NOW)
    assert (again.listed, again.pending, again.version) == (0, 2, 0)
    later = expire(settings, NOW + 2 * HOUR)  # segment 2 is now past its grace too
    assert (later.listed, later.pending, later.version) == (1, 3, 1)
    assert [r["segment_id"] for r in media(settings)] == [1, 2, 5]


def test_nothing_expired_writes_nothing(settings: Settings) -> None:
    LakeBuilder(settings).segment(1, 10, NOW - HOUR).view(1, 2, NOW).write()
    report = expire(settings, NOW)
    assert (report.listed, report.pending, report.version) == (0, 0, None)
    assert not settings.table_path("ops", "media_deletions").exists()


def test_missing_tables_reported(settings: Settings) -> None:
    report = expire(settings, NOW)
    assert report.missing == ["silver.segments"]
    assert report.listed == 0


def test_serving_hides_expired_without_cleanup(settings: Settings) -> None:
    lake_ = LakeBuilder(settings).follow(1, 10, NOW - 3 * DAY)
    lake_.segment(1, 10, NOW - DAY - 2 * HOUR).segment(2, 10, NOW - 2 * HOUR).write()
    publish(settings, NOW)
    before = api.tray(api.open_current(settings), 1, NOW)
    assert [s.segment_id for r in before.rings for s in r.segments] == [2]
    expire(settings, NOW)
    publish(settings, NOW)
    after = api.tray(api.open_current(settings), 1, NOW)
    assert after.rings == before.rings


def _gold_and_silver(settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    for layer in ("silver", "gold"):
        for path in sorted((settings.lake / layer).iterdir()):
            table = lake.read_arrow(path)
            assert table is not None
            cols = [c for c in table.column_names  # snapshot_id: the silver versions an export read
                    if not pa.types.is_nested(table.schema.field(c).type) and c != "snapshot_id"]
            out[f"{layer}.{path.name}"] = sorted(tuple(r.values()) for r in table.select(cols).to_pylist())
    return out


def test_expiry_between_steps_changes_no_table_or_export(spark, tmp_path: Path) -> None:
    """A generated day: silver, gold and the ranking export are the same whether expiry (three days later, when
    everything has expired) runs before silver, between silver and gold, or not at all."""
    from pipeline import steps
    from toolkit.generate import generate

    start = datetime(2026, 11, 1, tzinfo=UTC)
    as_of, later = start + 2 * DAY, start + 5 * DAY
    landing = tmp_path / "landing"
    generate(landing, users=60, days=1, seed=9, start=start, progress=False)
    results = []
    for order in ("none", "before_silver", "before_gold"):
        s = Settings(lake=tmp_path / order, landing=landing)
        steps.ingest_interval(s, start, as_of)
        if order == "before_silver":
            steps.silver(s, as_of, spark=spark)  # a first build for expiry to read
            expire(s, later)
        steps.silver(s, as_of, spark=spark)
        if order == "before_gold":
            expire(s, later)
        steps.gold(s, as_of, spark=spark)
        manifest = steps.export(s, as_of, tmp_path / f"export-{order}", spark=spark)
        export = pa.parquet.read_table(tmp_path / f"export-{order}" / "tray_training_set.parquet")
        export = export.drop_columns(["snapshot_id"])  # names the silver versions read: provenance, not content
        results.append((_gold_and_silver(s), manifest.rows, sorted(map(str, export.to_pylist()))))
        if order != "none":
            assert media(s), "expiry listed the expired media"
    assert results[0][1] > 0
    for other in results[1:]:
        assert other[1] == results[0][1]
        assert other[2] == results[0][2]
        for name, rows in results[0][0].items():
            assert other[0][name] == rows, name

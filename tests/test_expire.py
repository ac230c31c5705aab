"""expire(): batch cleanup through delta-rs deletes; idempotent; serving never depends on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deltalake import DeltaTable

from serving import api
from serving.expire import expire
from serving.publish import publish
from storylake.settings import Settings
from tests.lake_builder import DAY, HOUR, LakeBuilder

NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)
US = timedelta(microseconds=1)


def ids(settings: Settings, name: str, col: str) -> list[int]:
    return sorted(DeltaTable(str(settings.table_path("silver", name))).to_pyarrow_table(columns=[col])[col].to_pylist())


def version(settings: Settings, layer: str, name: str) -> int:
    return DeltaTable(str(settings.table_path(layer, name))).version()


def build(settings: Settings) -> LakeBuilder:
    lake = LakeBuilder(settings)
    lake.segment(1, 10, NOW - DAY - HOUR - US)  # expired 1h + 1us ago: purged
    lake.segment(2, 10, NOW - DAY - HOUR)  # expired exactly 1h ago: kept (strictly older only)
    lake.segment(3, 10, NOW - 3 * DAY, is_archived=True)  # archived: never purged
    lake.segment(4, 10, NOW - HOUR)  # active
    lake.segment(5, 10, NOW - 2 * DAY - HOUR)  # long expired
    lake.view(1, 20, NOW - DAY).view(5, 20, NOW - 2 * DAY).view(3, 21, NOW - 3 * DAY + HOUR)
    lake.view(4, 20, NOW - HOUR / 2)
    return lake.write()


def test_deletes_per_rule_and_keeps_gold(settings: Settings) -> None:
    build(settings)
    gold_before = version(settings, "gold", "segment_insights")
    report = expire(settings, NOW)
    assert report.deleted == {"silver.segments": 2, "silver.segment_viewers": 2}
    assert ids(settings, "segments", "segment_id") == [2, 3, 4]
    # viewer rows of segments created more than 48 h ago are gone (5 and the archived 3), the others stay
    assert ids(settings, "segment_viewers", "segment_id") == [1, 4]
    assert version(settings, "gold", "segment_insights") == gold_before
    assert report.versions == {"silver.segments": 1, "silver.segment_viewers": 1}
    assert report.as_dict()["deleted"] == report.deleted


def test_idempotent_no_new_version(settings: Settings) -> None:
    build(settings)
    expire(settings, NOW)
    before = (version(settings, "silver", "segments"), version(settings, "silver", "segment_viewers"))
    again = expire(settings, NOW)
    assert again.deleted == {"silver.segments": 0, "silver.segment_viewers": 0}
    assert (version(settings, "silver", "segments"), version(settings, "silver", "segment_viewers")) == before


def test_nothing_to_delete_writes_nothing(settings: Settings) -> None:
    LakeBuilder(settings).segment(1, 10, NOW - HOUR).view(1, 2, NOW).write()
    report = expire(settings, NOW)
    assert report.deleted == {"silver.segments": 0, "silver.segment_viewers": 0}
    assert report.versions == {"silver.segments": 0, "silver.segment_viewers": 0}


def test_missing_tables_reported(settings: Settings) -> None:
    report = expire(settings, NOW)
    assert sorted(report.missing) == ["silver.segment_viewers", "silver.segments"]
    assert report.deleted == {"silver.segment_viewers": 0, "silver.segments": 0}


def test_serving_hides_expired_without_cleanup(settings: Settings) -> None:
    lake = LakeBuilder(settings).follow(1, 10, NOW - 3 * DAY)
    lake.segment(1, 10, NOW - DAY - 2 * HOUR).segment(2, 10, NOW - 2 * HOUR).write()
    publish(settings, NOW)
    before = api.tray(api.open_current(settings), 1, NOW)
    assert [s.segment_id for r in before.rings for s in r.segments] == [2]
    expire(settings, NOW)
    publish(settings, NOW)
    after = api.tray(api.open_current(settings), 1, NOW)
    assert after.rings == before.rings

"""The long-lived insights' history part (serving/insights_history.py): every snapshot answers exactly what the gold
tables hold; a publish reuses the history while the rows before the cut are unchanged (even when their files were
rewritten), writes a new one when they change or the cut moves, and old readers keep theirs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from serving import api, insights_history
from serving.publish import publish
from storylake.lake import write_table
from storylake.settings import Settings
from tests import sample_lake

AS_OF = sample_lake.AS_OF


def _gold(settings: Settings, name: str) -> list[dict[str, Any]]:
    part = insights_history.PARTS[name]
    rows = DeltaTable(str(settings.table_path(*part.source.split(".")))).to_pyarrow_table().to_pylist()
    return sorted(rows, key=repr)


def _served(snap: api.Snapshot, name: str) -> list[dict[str, Any]]:
    cur = snap.db().execute(f"SELECT * FROM {name}")  # noqa: S608 - constant table names
    names = [d[0] for d in cur.description]
    return sorted((dict(zip(names, row, strict=True)) for row in cur.fetchall()), key=repr)


def _assert_serves_gold(settings: Settings, snap: api.Snapshot) -> None:
    for name in insights_history.PARTS:
        assert _served(snap, name) == _gold(settings, name), name
    # Seen By's lookup of older segments: every segment_insights row's identity
    keys = ("segment_id", "author_id", "created_at", "is_deleted")
    assert _served(snap, "segment_lookup") == sorted(
        ({k: r[k] for k in keys} for r in _gold(settings, "segment_insights")), key=repr)


def _history_files(settings: Settings) -> list[str]:
    return sorted(p.name for p in insights_history.history_dir(settings).glob("*.duckdb"))


def test_history_is_shared_until_old_rows_change(settings: Settings) -> None:
    first = sample_lake.build(settings)
    h = first.history
    assert not h["reused"] and h["cut"] == "2026-10-28T00:00:00+00:00"
    # 35 days of daily insights: the days before the cut are history, the last ones recent
    assert h["history_rows"]["author_daily_insights"] > 0 and h["recent_rows"]["author_daily_insights"] > 0
    assert first.tables["author_daily_insights"] == sum(h[k]["author_daily_insights"]
                                                        for k in ("history_rows", "recent_rows"))
    old_reader = api.open_current(settings)
    _assert_serves_gold(settings, old_reader)
    before = _served(old_reader, "author_daily_insights")

    # nothing changed: the next publish attaches the same file
    again = publish(settings, AS_OF)
    assert again.history["reused"] and again.history["history_id"] == h["history_id"]
    assert _history_files(settings) == [f"{h['history_id']}.duckdb"]

    # the same rows in new files (a compaction, a slice rewrite): still the same history, found by its fingerprint
    daily = settings.table_path("gold", "author_daily_insights")
    write_table(settings, "gold.author_daily_insights", DeltaTable(str(daily)).to_pyarrow_table())
    rewritten = publish(settings, AS_OF)
    assert rewritten.history["reused"] and rewritten.history["history_id"] == h["history_id"]

    # an old row changes (a backfill after a rule change): a new history, and the snapshot serves the new rows
    t = DeltaTable(str(daily)).to_pyarrow_table()
    oldest = pc.equal(t["day"], pc.min(t["day"]))
    t = t.set_column(t.schema.get_field_index("impressions"), "impressions",
                     pc.if_else(oldest, pc.add(t["impressions"], pa.scalar(1, pa.int64())), t["impressions"]))
    write_table(settings, "gold.author_daily_insights", t)
    changed = publish(settings, AS_OF, keep=1)
    assert not changed.history["reused"] and changed.history["history_id"] != h["history_id"]
    snap = api.open_current(settings)
    _assert_serves_gold(settings, snap)
    assert _served(snap, "author_daily_insights") != before
    # only what the kept snapshot attaches remains on disk; the reader opened first still reads its own
    assert _history_files(settings) == [f"{changed.history['history_id']}.duckdb"]
    assert _served(old_reader, "author_daily_insights") == before

    # the cut moves with as_of (daily): a new history
    later = publish(settings, AS_OF + timedelta(days=1))
    assert not later.history["reused"] and later.history["cut"] == "2026-10-29T00:00:00+00:00"
    _assert_serves_gold(settings, api.open_current(settings))


def test_insights_answers_are_the_same_with_or_without_history(settings: Settings) -> None:
    """An author's insights through the views equal the gold rows of that author (every part: history, recent)."""
    sample_lake.build(settings)
    snap = api.open_current(settings)
    got = api.insights(snap, sample_lake.AUTHOR_A, sample_lake.AUTHOR_A, AS_OF)
    days = [r["day"] for r in got["daily"]]
    gold_days = sorted(r["day"] for r in _gold(settings, "author_daily_insights")
                       if r["author_id"] == sample_lake.AUTHOR_A)
    assert days == gold_days and len(days) > 20

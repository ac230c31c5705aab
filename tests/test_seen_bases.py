"""Publish's Seen By tables (serving/seen_bases.py): `segment_viewers` and `viewer_seen` are a base file shared between
snapshots while silver.segment_viewers only appended rows since, plus the snapshot's changes (the appended rows,
each replacing the base's row of its key); what they serve equals a snapshot of a lake run once over every file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from serving import insights_history, seen_bases
from serving.publish import prepare_ahead
from serving.seen_by import seen_by
from storylake.settings import Settings
from tests.landing_builders import created, view, write_landing
from tests.test_shared_bases import AFTER, DAY, FIRST, LAST, current, run, t
from tests.test_touched_stories import relationship

pytestmark = pytest.mark.slow

def first(landing: Path) -> None:
    """Author 1 posts segments 10 and 11; 2, 3 (half-way) and 4 watch 10, 1 their own; 2 watches 11 (hour 12)."""
    write_landing(landing, "segment_created", [
        created("c10", 10, 1, f"{DAY}T10:00:00Z"), created("c11", 11, 1, f"{DAY}T10:05:00Z"),
    ], dt=DAY, hour="12")
    write_landing(landing, "segment_view", [
        view("v1", 10, 2, f"{DAY}T10:30:00Z"), view("v2", 10, 3, f"{DAY}T10:40:00Z", pct=0.5),
        view("v3", 10, 4, f"{DAY}T10:50:00Z"), view("v4", 10, 1, f"{DAY}T10:35:00Z"),
        view("v5", 11, 2, f"{DAY}T10:31:00Z"),
    ], dt=DAY, hour="12")


def last(landing: Path) -> None:
    """3 watches 10 again to the end (a grown pair), 5 and 6 watch it for the first time, 7 watches 11; author 8 posts
    segment 12, which 2 watches; at 15:00 author 1 blocks 5 (hour 14)."""
    write_landing(landing, "segment_created", [created("c12", 12, 8, f"{DAY}T14:00:00Z")], dt=DAY, hour="14")
    write_landing(landing, "segment_view", [
        view("v6", 10, 3, f"{DAY}T14:00:00Z"), view("v7", 10, 5, f"{DAY}T14:10:00Z"),
        view("v8", 10, 6, f"{DAY}T14:20:00Z"), view("v9", 11, 7, f"{DAY}T14:05:00Z"),
        view("v10", 12, 2, f"{DAY}T14:30:00Z"),
    ], dt=DAY, hour="14")
    write_landing(landing, "relationship", [relationship("r1", "block", 1, 5, f"{DAY}T15:00:00Z")], dt=DAY,
                  hour="14")


def served(settings: Settings) -> dict[str, Any]:
    """The Seen By tables as readers see them, and every Seen By page of segments 10 and 11 (pages of 2)."""
    with current(settings) as snap:
        db = snap.db()
        out: dict[str, Any] = {
            "segment_viewers": db.execute("SELECT * FROM segment_viewers ORDER BY ALL").fetchall(),
            "viewer_seen": db.execute("SELECT * FROM viewer_seen ORDER BY ALL").fetchall(),
            "segment_catalog": db.execute("SELECT * FROM segment_catalog ORDER BY ALL").fetchall(),
        }
        for seg in (10, 11):
            pages, cursor = [], None
            while True:
                page = seen_by(snap, seg, 1, LAST, limit=2, cursor=cursor)
                pages.append((page.total, [(v.viewer_id, v.viewed_at, v.completion_pct) for v in page.viewers]))
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            out[f"pages of {seg}"] = pages
    return out


@pytest.fixture()
def lakes(spark: Any, tmp_path: Path) -> tuple[Settings, Settings, Any]:
    """(a lake run at FIRST, then run at LAST by the test over the files that arrived since; a lake run once at LAST
    over every file; the first lake's publish report at FIRST)."""
    landing = tmp_path / "landing"
    first(landing)
    hourly = Settings(lake=tmp_path / "hourly", landing=landing)
    once = Settings(lake=tmp_path / "once", landing=landing)
    before = run(spark, hourly, FIRST)
    last(landing)
    run(spark, once, LAST)
    return hourly, once, before


PAGES_OF_10 = [  # at 15:30: 5 is blocked (hidden, not counted); 3's row is its grown one (watched to the end)
    (4, [(6, t("14:20"), 1.0), (4, t("10:50"), 1.0)]),
    (4, [(3, t("10:40"), 1.0), (2, t("10:30"), 1.0)]),
]


def test_the_next_snapshot_reuses_the_base_and_serves_the_appended_rows(spark: Any, lakes: Any) -> None:
    hourly, once, before = lakes
    assert "seen_by" not in before.history["bases_reused"]  # the first publish writes the base
    after = run(spark, hourly, LAST)
    assert after.history["bases"]["seen_by"] == before.history["bases"]["seen_by"]
    assert "seen_by" in after.history["bases_reused"]
    assert served(hourly) == served(once)
    assert served(hourly)["pages of 10"] == PAGES_OF_10
    assert after.tables["segment_viewers"] == 8  # 10: 2-6, 11: 2 and 7, 12: 2, and not the author's own view
    assert after.tables["viewer_seen"] == 9
    with current(hourly) as snap:
        changes = snap.db().execute("SELECT segment_id, viewer_id, max_completion_pct, replaces "
                                    "FROM segment_viewers_changes").fetchall()
    # in Seen By's keyset order: the appended rows, 3's replacing its base row of 10
    assert changes == [(10, 6, 1.0, False), (10, 5, 1.0, False), (10, 3, 1.0, True), (11, 7, 1.0, False),
                       (12, 2, 1.0, False)]


def test_appended_rows_past_the_rebase_share_write_a_new_base(spark: Any, lakes: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    hourly, once, before = lakes
    monkeypatch.setattr(seen_bases, "REBASE_MIN_ROWS", 0)
    monkeypatch.setattr(seen_bases, "REBASE_SHARE", 0.5)  # 5 appended rows against a base of 5
    after = run(spark, hourly, LAST)
    assert "seen_by" not in after.history["bases_reused"]
    assert after.history["bases"]["seen_by"] != before.history["bases"]["seen_by"]
    assert served(hourly) == served(once)
    with current(hourly) as snap:
        assert snap.db().execute("SELECT count(*) FROM segment_viewers_changes").fetchone()[0] == 0


def test_the_maintenance_writes_the_base_ahead_and_the_next_publish_reads_it(spark: Any, lakes: Any,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    hourly, once, _before = lakes
    after = run(spark, hourly, LAST)
    assert prepare_ahead(hourly, LAST).seen_by_rows_written == 0  # the current base holds the rows: kept
    monkeypatch.setattr(seen_bases, "REBASE_MIN_ROWS", 0)
    monkeypatch.setattr(seen_bases, "REBASE_SHARE", 0.0)  # any appended row: a new base
    prepared = prepare_ahead(hourly, LAST)
    assert prepared.seen_by_rows_written == 9  # every row readers see, the author's own view too
    record = insights_history.read_prepared(hourly)
    assert record is not None and record.bases["seen_by"].id != after.history["bases"]["seen_by"]
    monkeypatch.undo()
    again = run(spark, hourly, AFTER)
    assert again.history["bases"]["seen_by"] == record.bases["seen_by"].id
    assert "seen_by" in again.history["bases_reused"]
    assert served(hourly) == served(once)

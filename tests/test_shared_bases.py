"""Publish's shared bases (serving/shared_bases.py): `viewer_pairs` and `ring_features` are a base file shared between
snapshots while their merge-on-read sources' bases hold the same rows, plus the snapshot's changes; what they serve
equals a snapshot of a lake run once over every file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from jobs.silver import relationships
from pipeline.run import run_pipeline
from serving.snapshot import Snapshot, current_id, open_snapshot, snapshot_path
from storylake import lake
from storylake.settings import Settings
from tests.landing_builders import write_landing
from tests.test_ring_features_changes import engagement
from tests.test_touched_stories import relationship

pytestmark = pytest.mark.slow

DAY = "2026-10-02"
FIRST = datetime(2026, 10, 2, 13, tzinfo=UTC)
LAST = datetime(2026, 10, 2, 15, 30, tzinfo=UTC)
AFTER = datetime(2026, 10, 2, 16, 30, tzinfo=UTC)


def t(hh_mm: str) -> datetime:
    hour, minute = hh_mm.split(":")
    return datetime(2026, 10, 2, int(hour), int(minute), tzinfo=UTC)


def first(landing: Path) -> None:
    """10:00: 8 and 9 follow 7, who turns private; 5 blocks 6; 9 likes 7 (arrival hour 12)."""
    write_landing(landing, "relationship", [
        relationship("r1", "follow", 8, 7, f"{DAY}T10:00:00Z"), relationship("r2", "follow", 9, 7, f"{DAY}T10:00:00Z"),
        {**relationship("r3", "set_private", 7, 0, f"{DAY}T10:00:00Z"), "other_user_id": None},
        relationship("r4", "block", 5, 6, f"{DAY}T10:00:00Z"),
    ], dt=DAY, hour="12")
    write_landing(landing, "engagement", [engagement("e1", "like", 9, 7, f"{DAY}T10:05:00Z")], dt=DAY, hour="12")


def last(landing: Path) -> None:
    """14:xx: 9 unfollows 7, 7 turns public, 10 follows 11, 8 likes 7 (arrival hour 14)."""
    write_landing(landing, "relationship", [
        relationship("r5", "unfollow", 9, 7, f"{DAY}T14:10:00Z"),
        {**relationship("r6", "set_public", 7, 0, f"{DAY}T14:20:00Z"), "other_user_id": None},
        relationship("r7", "follow", 10, 11, f"{DAY}T14:30:00Z"),
    ], dt=DAY, hour="14")
    write_landing(landing, "engagement", [engagement("e2", "like", 8, 7, f"{DAY}T14:40:00Z")], dt=DAY, hour="14")


def current(settings: Settings) -> Snapshot:
    """The current snapshot, in a handle of its own (open_current's is shared by the process)."""
    sid = current_id(settings)
    assert sid is not None
    return open_snapshot(snapshot_path(settings, sid))


def served(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    with current(settings) as snap:
        db = snap.db()
        return {
            "viewer_pairs": db.execute("SELECT viewer_id, author_id, flag_code, valid_from, valid_to FROM viewer_pairs "
                                       "ORDER BY ALL").fetchall(),
            "ring_features": db.execute("SELECT viewer_id, author_id, likes_given_30d, as_of FROM ring_features "
                                        "ORDER BY ALL").fetchall(),
        }


def run(spark: Any, settings: Settings, as_of: datetime) -> Any:
    return run_pipeline(settings, as_of, spark=spark, progress=False).publish


@pytest.fixture()
def lakes(spark: Any, tmp_path: Path) -> tuple[Settings, Settings, Any]:
    """(a lake run at FIRST, then at LAST over the files that arrived since; a lake run once at LAST over every file;
    the first lake's publish report at FIRST)."""
    landing = tmp_path / "landing"
    first(landing)
    hourly = Settings(lake=tmp_path / "hourly", landing=landing)
    once = Settings(lake=tmp_path / "once", landing=landing)
    before = run(spark, hourly, FIRST)
    last(landing)
    run(spark, once, LAST)
    return hourly, once, before


OPEN = None
PAIRS_AT_LAST = [  # (viewer, author, flag code: 0 blocked_by_author, 1 blocked_by_viewer, 4 follows, 6 author_private)
    (5, 6, 1, t("10:00"), OPEN), (6, 5, 0, t("10:00"), OPEN),
    (8, 7, 4, t("10:00"), OPEN), (8, 7, 6, t("10:00"), t("14:20")),
    (9, 7, 4, t("10:00"), t("14:10")), (9, 7, 6, t("10:00"), t("14:20")),
    (10, 11, 4, t("14:30"), OPEN),
]


def test_the_next_snapshot_reuses_the_bases_and_serves_the_changes(spark: Any, lakes: Any) -> None:
    hourly, once, before = lakes
    assert before.history["bases_reused"] == []  # the first publish writes both bases
    assert served(hourly)["viewer_pairs"] == [
        (5, 6, 1, t("10:00"), OPEN), (6, 5, 0, t("10:00"), OPEN),
        (8, 7, 4, t("10:00"), OPEN), (8, 7, 6, t("10:00"), OPEN),
        (9, 7, 4, t("10:00"), OPEN), (9, 7, 6, t("10:00"), OPEN),
    ]
    after = run(spark, hourly, LAST)
    assert after.history["bases"] == before.history["bases"]  # the same files: neither source base was rewritten
    # (and the Seen By tables' base: silver.segment_viewers appended no row, serving/seen_bases.py)
    assert after.history["bases_reused"] == ["ring_features", "seen_by", "viewer_pairs"]
    assert served(hourly) == served(once)
    assert served(hourly)["viewer_pairs"] == PAIRS_AT_LAST
    assert after.tables["viewer_pairs"] == len(PAIRS_AT_LAST)
    with current(hourly) as snap:
        # 9 -> 7 (the unfollow, and the approval key it closes), 8 -> 7 (their author turned public: the
        # author_private rows of every follower change) and 10 -> 11: each a tombstone beside its rows
        changes = snap.db().execute("SELECT viewer_id, author_id, flag_code, removed FROM viewer_pairs_changes "
                                    "ORDER BY ALL").fetchall()
    assert changes == [(8, 7, 4, False), (8, 7, 6, False), (8, 7, None, True), (9, 7, 4, False), (9, 7, 6, False),
                       (9, 7, None, True), (10, 11, 4, False), (10, 11, None, True)]


def test_a_new_source_base_writes_a_new_base_and_a_compaction_keeps_it(spark: Any, lakes: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    hourly, once, before = lakes
    monkeypatch.setattr(relationships, "REBASE_MIN_ROWS", 0)  # the changes outgrow a quarter of the 5-row base
    after = run(spark, hourly, LAST)
    assert after.history["bases_reused"] == ["ring_features", "seen_by"]
    assert after.history["bases"]["viewer_pairs"] != before.history["bases"]["viewer_pairs"]
    assert served(hourly) == served(once)
    with current(hourly) as snap:
        assert snap.db().execute("SELECT count(*) FROM viewer_pairs_changes").fetchone()[0] == 0

    base = hourly.table_path("silver", "relationships")
    version = lake.version(base)
    DeltaTable(str(base)).optimize.z_order(["user_id"])  # rows unchanged (dataChange false): its file holds them
    monkeypatch.undo()
    again = run(spark, hourly, AFTER)
    assert lake.version(base) is not None and version is not None and lake.version(base) > version
    assert again.history["bases"] == after.history["bases"]
    assert served(hourly)["viewer_pairs"] == PAIRS_AT_LAST

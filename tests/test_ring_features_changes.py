"""gold.ring_features stored merge-on-read (storylake/merge_on_read.py): an incremental run rewrites only the changes
table, with the rows of the pairs whose features can differ from the last good run's, tombstones for the pairs that
lost their row, and the stamp row; what readers see (Arrow, publish's DuckDB) equals a full run's table."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobs.gold import ring_features
from pipeline.run import run_pipeline
from serving.snapshot import open_current
from storylake import lake, merge_on_read
from storylake.settings import Settings
from tests.landing_builders import write_landing
from tests.test_touched_stories import relationship

pytestmark = pytest.mark.slow

FIRST = datetime(2026, 10, 2, 13, tzinfo=UTC)
REBASE = datetime(2026, 10, 27, 10, tzinfo=UTC)  # no new event: the base is rewritten (older than REBASE_AGE)
LAST = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)
PAIR = ["viewer_id", "author_id"]


def engagement(eid: str, kind: str, actor: int, target: int, t: str) -> dict[str, Any]:
    return {"event_id": eid, "event_type": "engagement", "event_time": t, "kind": kind, "actor_id": actor,
            "target_user_id": target, "segment_id": None}


def first(landing: Path) -> None:
    """10-02 10:00: viewer 9 likes author 7, user 8 follows author 7 (arrival 10-02 12:00)."""
    write_landing(landing, "engagement", [engagement("e1", "like", 9, 7, "2026-10-02T10:00:00Z")],
                  dt="2026-10-02", hour="12")
    write_landing(landing, "relationship", [relationship("r1", "follow", 8, 7, "2026-10-02T10:00:00Z")],
                  dt="2026-10-02", hour="12")


def last(landing: Path) -> None:
    """11-01 09:xx: viewer 6 likes author 5 and user 8 unfollows author 7 (arrival 11-01 09:00)."""
    write_landing(landing, "engagement", [engagement("e2", "like", 6, 5, "2026-11-01T09:10:00Z")],
                  dt="2026-11-01", hour="09")
    write_landing(landing, "relationship", [relationship("r2", "unfollow", 8, 7, "2026-11-01T09:20:00Z")],
                  dt="2026-11-01", hour="09")


def features(settings: Settings) -> list[tuple[Any, ...]]:
    table = merge_on_read.read_table(settings, "gold.ring_features",
                                     [*PAIR, "likes_given_30d", "follows", "as_of"])
    assert table is not None
    return sorted(tuple(r.values()) for r in table.to_pylist())


def changes(settings: Settings) -> list[tuple[Any, ...]]:
    table = lake.read_arrow(settings.table_path("gold", "ring_features_changes"),
                            [*PAIR, "likes_given_30d", "follows", "removed"])
    assert table is not None
    return sorted(tuple(r.values()) for r in table.to_pylist())


def run(spark: Any, settings: Settings, as_of: datetime, **kw: Any) -> None:
    run_pipeline(settings, as_of, spark=spark, progress=False, **kw)


@pytest.fixture()
def lakes(spark: Any, tmp_path: Path) -> tuple[Settings, Settings]:
    """(a lake run at FIRST and REBASE, whose next run is at LAST with the files that arrived since; a lake run once at
    LAST over every file)."""
    landing = tmp_path / "landing"
    first(landing)
    hourly = Settings(lake=tmp_path / "hourly", landing=landing)
    once = Settings(lake=tmp_path / "once", landing=landing)
    for as_of in (FIRST, REBASE):
        run(spark, hourly, as_of, publish=False)
    last(landing)
    run(spark, once, LAST, publish=False)
    return hourly, once


def test_an_incremental_run_writes_the_changed_pairs_and_tombstones_only(spark: Any, lakes: Any) -> None:
    hourly, once = lakes
    assert features(hourly) == [(8, 7, 0, True, REBASE), (9, 7, 1, False, REBASE)]
    assert changes(hourly) == []  # the base was rewritten at REBASE (a week older than it)
    base_version = lake.version(hourly.table_path("gold", "ring_features"))
    run(spark, hourly, LAST, publish=True)
    # the like left the window [LAST - 30 d, LAST) (9, 7), the unfollow ended the follow (8, 7): both rows are gone;
    # 6 likes 5 (a new partial); (7, 8) is the unfollow's other direction and (0, 0) the stamp row: tombstones
    assert changes(hourly) == [(0, 0, 0, False, True), (6, 5, 1, False, False), (7, 8, 0, False, True),
                               (8, 7, 0, False, True), (9, 7, 0, False, True)]
    assert lake.version(hourly.table_path("gold", "ring_features")) == base_version  # the base is not rewritten
    assert features(hourly) == features(once) == [(6, 5, 1, False, LAST)]
    with open_current(hourly) as snap:  # publish reads the two through the same rule (its DuckDB form)
        served = snap.db().execute("SELECT viewer_id, author_id, likes_given_30d, as_of FROM ring_features").fetchall()
    assert served == [(6, 5, 1, LAST)]


def test_changes_outgrowing_the_base_are_merged_into_a_new_base(spark: Any, lakes: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    hourly, once = lakes
    monkeypatch.setattr(ring_features, "REBASE_SHARE", 0.0)
    monkeypatch.setattr(ring_features, "REBASE_MIN_ROWS", 0)
    run(spark, hourly, LAST, publish=False)
    assert changes(hourly) == []
    base = lake.read_arrow(hourly.table_path("gold", "ring_features"), [*PAIR, "likes_given_30d", "as_of"])
    assert base is not None and base.to_pylist() == [
        {"viewer_id": 6, "author_id": 5, "likes_given_30d": 1, "as_of": LAST}]
    assert features(hourly) == features(once)

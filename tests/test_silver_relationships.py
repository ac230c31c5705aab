"""silver.relationships: validity intervals from relationship events."""

from __future__ import annotations

import pytest

from jobs.silver import relationships
from storylake import merge_on_read
from tests.bronze_builders import T0, H, bronze, rows


def rel(event_id, hours, kind, user, other=None):
    return {"event_id": event_id, "event_time": T0 + hours * H, "kind": kind, "user_id": user, "other_user_id": other}


EVENTS = [
    rel("f1", 0, "follow", 1, 2),
    rel("f1", 0, "follow", 1, 2),  # duplicate delivery
    rel("f2", 1, "follow", 1, 2),  # start while open: no-op
    rel("f3", 2, "unfollow", 1, 2),
    rel("f4", 3, "unfollow", 1, 2),  # end while closed: no-op
    rel("f5", 5, "follow", 1, 2),
    rel("u1", 0, "unfollow", 3, 4),  # end while never opened: no-op
    rel("p1", 0, "set_private", 7),
    rel("p2", 10, "set_public", 7),
    rel("a0", 0, "follow", 8, 7),
    rel("a1", 1, "approve_follower", 7, 8),
    rel("a2", 4, "unfollow", 8, 7),  # ends follow(8,7) and approved(7,8)
    rel("c1", 0, "close_friend_add", 1, 5),
    rel("c2", 6, "close_friend_remove", 1, 5),
    rel("b1", 0, "block", 5, 1),
    rel("h1", 0, "hide_story", 1, 6),
    rel("h2", 2, "unhide_story", 1, 6),
    rel("t-b", 0, "follow", 5, 6),  # same instant as t-a; ordered by event_id: unfollow first (no-op)
    rel("t-a", 0, "unfollow", 5, 6),
    rel("z1", 0, "follow", 5, 9),  # open and closed at the same instant: holds at no instant
    rel("z2", 0, "unfollow", 5, 9),
]


@pytest.fixture(scope="module")
def intervals(spark):
    return rows(relationships.transform(bronze(spark, "relationship", EVENTS)))


def test_follow_unfollow_refollow_gives_two_intervals(intervals):
    assert [r for r in intervals if r[:3] == ("follow", 1, 2)] == [
        ("follow", 1, 2, T0, T0 + 2 * H),
        ("follow", 1, 2, T0 + 5 * H, None),
    ]


def test_end_while_closed_is_a_no_op(intervals):
    assert [r for r in intervals if r[1:3] == (3, 4)] == []


def test_private_interval_uses_other_user_zero(intervals):
    assert [r for r in intervals if r[0] == "private"] == [("private", 7, 0, T0, T0 + 10 * H)]


def test_approved_ends_at_unfollow_by_that_follower(intervals):
    assert [r for r in intervals if r[0] == "approved"] == [("approved", 7, 8, T0 + H, T0 + 4 * H)]
    assert [r for r in intervals if r[:3] == ("follow", 8, 7)] == [("follow", 8, 7, T0, T0 + 4 * H)]


def test_close_friend_block_hide_relations(intervals):
    assert [r for r in intervals if r[0] in ("close_friend", "block", "hide")] == [
        ("block", 5, 1, T0, None),
        ("close_friend", 1, 5, T0, T0 + 6 * H),
        ("hide", 1, 6, T0, T0 + 2 * H),
    ]


def test_same_instant_ordered_by_event_id_and_empty_intervals_dropped(intervals):
    assert [r for r in intervals if r[:2] == ("follow", 5)] == [("follow", 5, 6, T0, None)]
    assert len(intervals) == 9


def test_recompute_keys_equals_the_full_rebuild_on_those_keys(spark, intervals):
    """An incremental run recomputes the keys new events touch: the unfollow a2 acts on follow(8,7) and on
    approved(7,8); asking for only one of them gives exactly that key's full-rebuild intervals (the duplicate
    delivery f1 deduplicated as the full rebuild does), and an untouched key none."""
    events = bronze(spark, "relationship", EVENTS)
    keys = spark.createDataFrame([("approved", 7, 8), ("follow", 1, 2), ("close_friend", 3, 4)],
                                 "relation string, user_id bigint, other_user_id bigint")
    got = rows(relationships.recompute_keys(events, keys))
    assert got == [r for r in intervals if r[:3] in {("approved", 7, 8), ("follow", 1, 2)}]
    assert got == [("approved", 7, 8, T0 + H, T0 + 4 * H), ("follow", 1, 2, T0, T0 + 2 * H),
                   ("follow", 1, 2, T0 + 5 * H, None)]


def test_intervals_older_than_the_bronze_floor_come_from_the_table(spark, settings):
    """Retention removed bronze relationship events before its cutoff (the floor): the intervals they opened are
    seeded from what silver.relationships holds, by an incremental run (a new unfollow ends one of them) and by a
    full refresh alike; without the seeds a full refresh would keep only what bronze still holds."""
    from datetime import timedelta

    import pyarrow as pa

    from storylake import contracts, increments, lake
    from tests.bronze_builders import bronze_rows

    floor, day = T0, timedelta(days=1)
    held = [
        {"relation": "follow", "user_id": 1, "other_user_id": 2, "valid_from": floor - 900 * day, "valid_to": None},
        {"relation": "follow", "user_id": 3, "other_user_id": 4, "valid_from": floor - 900 * day,
         "valid_to": floor - 800 * day},
        {"relation": "follow", "user_id": 5, "other_user_id": 6, "valid_from": floor - 900 * day, "valid_to": None},
    ]
    lake.write_table(settings, "silver.relationships", held)
    schema = contracts.get("bronze.relationship")
    rows = bronze_rows("relationship", [rel("un", 1, "unfollow", 5, 6), rel("bl", 2, "block", 7, 8)])
    lake.write_table(settings, "bronze.relationship", pa.Table.from_pylist(
        [dict(zip(schema.column_names, r, strict=True)) for r in rows], schema=schema.arrow_schema()))
    lake.write_table(settings, "ops.retention_runs", [{
        "run_at": floor + 40 * day, "now": floor + 40 * day, "reached": floor + 40 * day,
        "table": "bronze.relationship", "column": "event_time", "retention_days": 730.0, "cutoff": floor,
        "rows_removed": 3, "version": 1}])
    increments.record(settings, increments.Increment(run_id="r", as_of=floor + H / 2, horizon=None, gold_horizon=None,
                                                     upto_batch="batch-0"), increments.DONE)
    expected = [
        ("block", 7, 8, T0 + 2 * H, None),
        ("follow", 1, 2, floor - 900 * day, None),
        ("follow", 3, 4, floor - 900 * day, floor - 800 * day),
        ("follow", 5, 6, floor - 900 * day, T0 + H),
    ]
    for full_refresh in (False, True):
        relationships.run(spark, settings, T0 + 3 * H, full_refresh=full_refresh)
        got = sorted(tuple(r.values()) for r in merge_on_read.read_table(settings, "silver.relationships")
                     .to_pylist())
        assert got == expected, full_refresh


def test_an_incremental_run_reads_bronze_from_its_new_events_on(spark, settings):
    """A touched key is recomputed from the bronze events at or after the new rows' earliest time (the files'
    statistics bound it), seeded with what the table holds of it before then: an unfollow ends an interval the
    first run opened hours earlier, a block reopens after an unblock the first run saw, a new key opens; the
    result equals a full rebuild from every event."""
    import pyarrow as pa

    from jobs.horizon import unprocessed_since
    from storylake import contracts, increments, lake
    from tests.bronze_builders import bronze_rows

    schema = contracts.get("bronze.relationship")

    def land(events, batch, day):
        landed = bronze_rows("relationship", [
            {**e, "_batch_id": batch, "_source_file": f"relationship/dt={day}/part-0.jsonl"} for e in events])
        lake.write_table(settings, "bronze.relationship", pa.Table.from_pylist(
            [dict(zip(schema.column_names, r, strict=True)) for r in landed], schema=schema.arrow_schema()),
            mode="append")

    land(EVENTS, "batch-0", "2026-11-01")
    first = T0 + 12 * H
    relationships.run(spark, settings, first, full_refresh=True)
    increments.record(settings, increments.Increment(run_id="r", as_of=first, horizon=None, gold_horizon=None,
                                                     upto_batch="batch-0"), increments.DONE)
    land([rel("n1", 20, "unfollow", 1, 2), rel("n2", 21, "block", 5, 1), rel("n3", 22, "unblock", 5, 1),
          rel("n4", 23, "follow", 10, 11), rel("n5", 22, "follow", 1, 2)], "batch-1", "2026-11-02")
    previous = increments.last(settings)
    assert previous is not None
    assert unprocessed_since(settings, "relationship", previous) == T0 + 20 * H

    def table():
        return sorted(tuple(r.values()) for r in merge_on_read.read_table(settings, "silver.relationships")
                      .to_pylist())

    relationships.run(spark, settings, T0 + 24 * H)
    incremental = table()
    relationships.run(spark, settings, T0 + 24 * H, full_refresh=True)
    assert incremental == table()
    assert [r for r in incremental if r[1:3] in {(1, 2), (5, 1), (10, 11)}] == [
        ("block", 5, 1, T0, T0 + 22 * H),
        ("follow", 1, 2, T0, T0 + 2 * H),
        ("follow", 1, 2, T0 + 5 * H, T0 + 20 * H),
        ("follow", 1, 2, T0 + 22 * H, None),
        ("follow", 10, 11, T0 + 23 * H, None),
    ]


def _land(settings, events, batch, day):
    import pyarrow as pa

    from storylake import contracts, lake
    from tests.bronze_builders import bronze_rows

    schema = contracts.get("bronze.relationship")
    landed = bronze_rows("relationship", [
        {**e, "_batch_id": batch, "_source_file": f"relationship/dt={day}/part-0.jsonl"} for e in events])
    lake.write_table(settings, "bronze.relationship", pa.Table.from_pylist(
        [dict(zip(schema.column_names, r, strict=True)) for r in landed], schema=schema.arrow_schema()),
        mode="append")


def test_an_incremental_run_writes_the_touched_keys_to_the_changes_only(spark, settings, monkeypatch):
    """The base stays as the first run wrote it; the changes hold every interval of each touched key, and a tombstone
    for a key a late event left without one (a follow undone at its own instant: zero-length); readers see what a
    full rebuild gives. When the changes outgrow the base they are merged into a new one."""
    from storylake import increments, lake

    _land(settings, [rel("f1", 0, "follow", 1, 2), rel("g1", 1, "follow", 3, 4), rel("k1", 2, "follow", 5, 6)],
          "batch-0", "2026-11-01")
    first = T0 + 12 * H
    relationships.run(spark, settings, first, full_refresh=True)
    increments.record(settings, increments.Increment(run_id="r", as_of=first, horizon=None, gold_horizon=None,
                                                     upto_batch="batch-0"), increments.DONE)
    base = lake.version(settings.table_path("silver", "relationships"))
    # late: 3's follow of 4 undone at its own instant (ordered by event id after it); 1 unfollows 2
    _land(settings, [rel("g2", 1, "unfollow", 3, 4), rel("f2", 13, "unfollow", 1, 2)], "batch-1", "2026-11-01")
    second = T0 + 14 * H
    assert relationships.run(spark, settings, second) == {"relationships_changes": 4}
    assert lake.version(settings.table_path("silver", "relationships")) == base
    changes = lake.read_arrow(settings.table_path("silver", "relationships_changes"))
    # an unfollow also acts on the private account's approval of the follower (KIND_EFFECTS): those keys have none
    assert sorted(tuple(r.values()) for r in changes.to_pylist()) == [
        ("approved", 2, 1, second, None, True),
        ("approved", 4, 3, second, None, True),
        ("follow", 1, 2, T0, T0 + 13 * H, False),
        ("follow", 3, 4, second, None, True),
    ]

    def table():
        return sorted(tuple(r.values()) for r in merge_on_read.read_table(settings, "silver.relationships")
                      .to_pylist())

    incremental = table()
    assert incremental == [("follow", 1, 2, T0, T0 + 13 * H), ("follow", 5, 6, T0 + 2 * H, None)]
    monkeypatch.setattr(relationships, "REBASE_MIN_ROWS", 0)  # 4 changes rows > a quarter of the 3-row base
    assert relationships.run(spark, settings, second) == {"relationships": 2, "relationships_changes": 0}
    assert table() == incremental
    relationships.run(spark, settings, second, full_refresh=True)
    assert table() == incremental

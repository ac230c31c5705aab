"""silver.view_events / quarantine: dedupe, retries, counting, lifetime, deletes, audience, unknown segments."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.silver import relationships, segments, view_events
from storylake import contracts
from tests.bronze_builders import MS, T0, H, bronze, by, rows

AS_OF = T0 + 60 * H
S = timedelta(seconds=1)


def view(event_id, seg, viewer, at, **kw):
    return {"event_id": event_id, "segment_id": seg, "viewer_id": viewer, "event_time": at, **kw}


def rel(event_id, at, kind, user, other=None):
    return {"event_id": event_id, "event_time": at, "kind": kind, "user_id": user, "other_user_id": other}


def silver_inputs(spark):
    created = bronze(
        spark,
        "segment_created",
        [
            {"event_id": "c100", "event_time": T0, "segment_id": 100, "author_id": 1},
            {"event_id": "c101", "event_time": T0, "segment_id": 101, "author_id": 1, "audience": "close_friends"},
            {"event_id": "c103", "event_time": T0, "segment_id": 103, "author_id": 1},
            {"event_id": "c102", "event_time": T0, "segment_id": 102, "author_id": 3},
        ],
    )
    deleted = bronze(spark, "segment_deleted", [{"event_time": T0 + 2 * H, "segment_id": 103, "author_id": 1}])
    segs = segments.transform(created, deleted, bronze(spark, "segment_archived", []), AS_OF).segments
    rels = relationships.transform(
        bronze(
            spark,
            "relationship",
            [
                rel("r1", T0 - H, "close_friend_add", 1, 20),
                rel("r2", T0 + 5 * H, "close_friend_add", 1, 25),
                rel("r3", T0 - H, "block", 1, 22),  # author blocks viewer
                rel("r4", T0 - H, "block", 23, 1),  # viewer blocks author
                rel("r5", T0 - H, "hide_story", 1, 24),
                rel("r6", T0 - H, "set_private", 3),
                rel("r7", T0 - H, "follow", 30, 3),
                rel("r8", T0 - H, "approve_follower", 3, 30),
                rel("r9", T0 - H, "follow", 31, 3),  # follows a private account, never approved
            ],
        )
    )
    return segs, rels


VIEWS = [
    view("r-b", 100, 10, T0 + H, idempotency_key="K1"),
    view("r-a", 100, 10, T0 + H + 5 * S, idempotency_key="K1"),  # client retry: the earliest one stays
    view("shared-1", 100, 18, T0 + H, idempotency_key="K2"),
    view("shared-2", 100, 19, T0 + H, idempotency_key="K2"),  # same key, other viewer: another view
    view("dup", 100, 11, T0 + H),
    view("dup", 100, 11, T0 + H),  # the same event delivered twice
    view("d29", 100, 12, T0 + H, view_duration_ms=2900, completion_pct=0.5),
    view("d30", 100, 13, T0 + H, view_duration_ms=3000, completion_pct=0.5),
    view("c100", 100, 14, T0 + H, view_duration_ms=1000, completion_pct=1.0),
    view("late", 100, 15, T0 + 24 * H + MS),
    view("edge", 100, 16, T0 + 24 * H - MS),
    view("early", 100, 17, T0 - MS),
    view("cf-no", 101, 21, T0 + H),
    view("cf-yes", 101, 20, T0 + H),
    view("self", 101, 1, T0 + H),
    view("cf-before", 101, 25, T0 + 4 * H),
    view("cf-after", 101, 25, T0 + 6 * H),
    view("blk-author", 100, 22, T0 + H),
    view("blk-viewer", 100, 23, T0 + H),
    view("hid", 100, 24, T0 + H),
    view("prv-no", 102, 31, T0 + H),
    view("prv-yes", 102, 30, T0 + H),
    view("del-at", 103, 40, T0 + 2 * H),
    view("del-before", 103, 41, T0 + H),
    view("unk-new", 999, 50, AS_OF - 48 * H),
    view("unk-old", 999, 51, AS_OF - 48 * H - MS),
]


@pytest.fixture(scope="module")
def result(spark):
    segs, rels = silver_inputs(spark)
    out = view_events.transform(bronze(spark, "segment_view", VIEWS), segs, rels, AS_OF)
    return {
        "views": by(out.view_events, "event_id", *out.view_events.columns[1:]),
        "quarantine": by(out.quarantine, "event_id", *[c for c in out.quarantine.columns if c != "event_id"]),
    }


def counted_ids(result):
    return set(result["views"])


def test_client_retries_are_one_view(result):
    assert "r-b" in counted_ids(result) and "r-a" not in counted_ids(result)
    assert "r-a" not in result["quarantine"]


def test_same_idempotency_key_from_another_viewer_is_another_view(result):
    assert {"shared-1", "shared-2"} <= counted_ids(result)


def test_exact_duplicate_event_id_is_one_view(result):
    assert result["views"]["dup"]["viewer_id"] == 11  # by() asserts one row per event_id


def test_view_counts_at_3000_ms_or_full_completion_only(result):
    ids = counted_ids(result)
    assert "d29" not in ids and "d29" not in result["quarantine"]  # not a view, not an error either
    assert {"d30", "c100"} <= ids


def test_view_1ms_after_expiry_is_quarantined_outside_lifetime(result):
    q = result["quarantine"]["late"]
    assert (q["rule"], q["field"]) == ("outside_lifetime", "event_time")
    assert q["reason"] == (
        "segment_view.event_time 2026-11-02T10:00:00.001Z is at/after expires_at 2026-11-02T10:00:00Z of segment 100"
    )
    assert "edge" in counted_ids(result)


def test_view_before_creation_is_quarantined_outside_lifetime(result):
    q = result["quarantine"]["early"]
    assert q["rule"] == "outside_lifetime"
    assert q["reason"] == (
        "segment_view.event_time 2026-11-01T09:59:59.999Z is before created_at 2026-11-01T10:00:00Z of segment 100"
    )


def test_close_friends_segment_not_close_friend_quarantined_close_friend_and_author_count(result):
    q = result["quarantine"]["cf-no"]
    assert (q["rule"], q["field"]) == ("not_close_friend", "viewer_id")
    assert q["reason"] == (
        "segment_view.viewer_id 21 may not see close_friends segment 101 of author 1 at 2026-11-01T11:00:00Z: "
        "not_close_friend"
    )
    assert {"cf-yes", "self"} <= counted_ids(result)


def test_audience_rules_apply_at_viewed_at(result):
    assert result["quarantine"]["cf-before"]["rule"] == "not_close_friend"
    assert "cf-after" in counted_ids(result)


def test_blocked_either_direction_is_quarantined(result):
    assert result["quarantine"]["blk-author"]["rule"] == "blocked"
    assert result["quarantine"]["blk-viewer"]["rule"] == "blocked"


def test_hidden_viewer_is_quarantined(result):
    assert result["quarantine"]["hid"]["rule"] == "hidden_from_viewer"


def test_private_author_with_non_approved_follower_is_quarantined(result):
    assert result["quarantine"]["prv-no"]["rule"] == "private_not_approved"
    assert "prv-yes" in counted_ids(result)


def test_delete_at_or_before_view_is_quarantined(result):
    q = result["quarantine"]["del-at"]
    assert (q["rule"], q["field"]) == ("segment_deleted", "segment_id")
    assert q["reason"] == (
        "segment_view.segment_id 103 was deleted at 2026-11-01T12:00:00Z, at/before event_time 2026-11-01T12:00:00Z"
    )
    assert "del-before" in counted_ids(result)


def test_unknown_segment_is_quarantined_whatever_its_age(result):
    for eid in ("unk-new", "unk-old"):
        q = result["quarantine"][eid]
        assert (q["rule"], q["field"]) == ("unknown_segment", "segment_id")
    assert result["quarantine"]["unk-new"]["reason"] == (
        "segment_view.segment_id 999 is not a known segment at event_time 2026-11-01T22:00:00Z "
        "(re-checked when its segment_created arrives)"
    )
    assert result["quarantine"]["unk-new"]["anchor_at"] == AS_OF - 48 * H  # its own time: no segment


def test_receipt_is_released_when_its_late_segment_arrives(spark):
    _, rels = silver_inputs(spark)
    src = bronze(spark, "segment_view", [view("unk", 999, 50, T0 + 12 * H)])
    none = segments.transform(bronze(spark, "segment_created", []), bronze(spark, "segment_deleted", []),
                              bronze(spark, "segment_archived", []), AS_OF).segments
    before = view_events.transform(src, none, rels, AS_OF)
    assert (rows(before.view_events), rows(before.quarantine, "event_id", "rule")) == ([], [("unk", "unknown_segment")])
    late = segments.transform(
        bronze(spark, "segment_created", [{"event_id": "c999", "event_time": T0 + 11 * H, "segment_id": 999,
                                           "author_id": 1}]),
        bronze(spark, "segment_deleted", []), bronze(spark, "segment_archived", []), AS_OF,
    ).segments
    after = view_events.transform(src, late, rels, AS_OF)
    assert rows(after.view_events, "event_id", "segment_created_at") == [("unk", T0 + 11 * H)]
    assert rows(after.quarantine) == []


def test_retry_outside_the_lifetime_is_not_merged_with_the_view(spark):
    """Retries are deduplicated among a segment's in-lifetime receipts (one anchor, recomputed together): a copy
    sent after expiry is quarantined on its own, the in-lifetime receipt still counts."""
    segs, rels = silver_inputs(spark)
    src = bronze(spark, "segment_view", [view("in", 100, 10, T0 + 24 * H - MS, idempotency_key="K"),
                                         view("out", 100, 10, T0 + 24 * H + S, idempotency_key="K")])
    out = view_events.transform(src, segs, rels, AS_OF)
    assert rows(out.view_events, "event_id") == [("in",)]
    assert rows(out.quarantine, "event_id", "rule", "anchor_at") == [("out", "outside_lifetime", T0 + 24 * H + S)]


def test_quarantine_row_carries_bronze_lineage(result):
    q = result["quarantine"]["late"]
    assert (q["stage"], q["contract"]) == ("silver.view_events", "bronze.segment_view")
    assert q["source_file"] == "segment_view/dt=2026-11-01/hour=10/part-0.jsonl" and q["line"] >= 1
    raw = json.loads(q["raw"])
    assert (raw["event_id"], raw["segment_id"], raw["viewer_id"], raw["_line"]) == ("late", 100, 15, q["line"])
    assert raw["event_time"] == "2026-11-02T10:00:00.001000Z"  # same text on Sail and JVM Spark (JSON_OPTIONS)
    assert q["batch_id"] == "silver@2026-11-03T22:00:00Z"
    assert q["quarantined_at"] == AS_OF


def test_view_event_columns(result):
    v = result["views"]["r-b"]
    assert {k: v[k] for k in ("segment_id", "author_id", "viewer_id", "view_date", "segment_created_at")} == {
        "segment_id": 100, "author_id": 1, "viewer_id": 10, "view_date": date(2026, 11, 1), "segment_created_at": T0,
    }
    assert (v["idempotency_key"], v["viewed_at"], v["view_source"]) == ("K1", T0 + H, "tray")
    # the segment's story and frame stay on silver.segments' row: a refold of the story changes no receipt
    assert list(v) == list(contracts.get("silver.view_events").column_names)
    assert "story_id" not in v and "frame_index" not in v


def test_every_receipt_is_accounted_for(result):
    # 26 rows in: 12 views + 11 quarantined + (second delivery of dup, retry r-a, 2.9 s d29)
    assert sorted(result["views"]) == sorted(
        ["r-b", "shared-1", "shared-2", "dup", "d30", "c100", "edge", "cf-yes", "self", "cf-after", "prv-yes",
         "del-before"]
    )
    assert sorted(result["quarantine"]) == sorted(
        ["late", "early", "cf-no", "cf-before", "blk-author", "blk-viewer", "hid", "prv-no", "del-at", "unk-old",
         "unk-new"]
    )
    assert len(VIEWS) == 12 + 11 + 3


# --- properties ----------------------------------------------------------------------------------

receipt = st.fixed_dictionaries(
    {
        "event_id": st.sampled_from([f"e{i}" for i in range(6)]),
        "idempotency_key": st.sampled_from(["k0", "k1", "k2"]),
        "viewer_id": st.integers(1, 2),
        "event_time": st.integers(0, 3).map(lambda s: T0 + s * S),
        "_source_file": st.sampled_from(["a.jsonl", "b.jsonl"]),
        "view_duration_ms": st.sampled_from([0, 2999, 3000]),
    }
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(receipt, max_size=8))
def test_property_view_dedupe_is_idempotent(spark, receipts):
    from jobs.silver.dedupe import EVENT_ID_DEDUPE, first_per_keys

    df = bronze(spark, "segment_view", [dict(r, segment_id=100, completion_pct=0.5) for r in receipts])
    steps = [EVENT_ID_DEDUPE, view_events.RETRY_DEDUPE]
    once = first_per_keys(df, steps)
    first = rows(once)
    assert rows(first_per_keys(once, steps)) == first
    col = {name: i for i, name in enumerate(once.columns)}
    ids = [r[col["event_id"]] for r in first]
    keys = [(r[col["idempotency_key"]], r[col["viewer_id"]]) for r in first]
    assert len(set(ids)) == len(ids)
    assert len(keys) == len(set(keys))


def _sequential_dedupe(records: list[dict]) -> set[tuple]:
    """The dedupe definition, row by row: first delivery per event_id, then first receipt per retry key."""
    firsts: dict = {}
    for r in sorted(records, key=lambda r: (r["_source_file"], r["_line"])):
        firsts.setdefault(r["event_id"], r)
    kept: dict = {}
    for r in sorted(firsts.values(), key=lambda r: (r["event_time"], r["event_id"])):
        kept.setdefault((r["idempotency_key"], r["viewer_id"]), r)
    return {(r["event_id"], r["_source_file"], r["_line"]) for r in kept.values()}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "event_id": st.sampled_from(["e0", "e1", "e2", "e3"]),
                "idempotency_key": st.sampled_from(["k0", "k1", None]),
                "viewer_id": st.integers(1, 2),
                "event_time": st.integers(0, 3).map(lambda s: T0 + s * S),
                "_source_file": st.sampled_from(["a.jsonl", "b.jsonl"]),
            }
        ),
        max_size=10,
    )
)
def test_property_fast_dedupe_equals_the_sequential_definition(spark, records):
    """first_per_keys (unique keys bypass the windows) keeps exactly the rows of the step-by-step definition,
    null keys included (a null retry key is one key, as in a window partition)."""
    from jobs.silver.dedupe import EVENT_ID_DEDUPE, first_per_keys

    for line, r in enumerate(records):
        r["_line"] = line
    names = ["event_id", "idempotency_key", "viewer_id", "event_time", "_source_file", "_line"]
    schema = "event_id string, idempotency_key string, viewer_id bigint, event_time timestamp, " \
             "_source_file string, _line bigint"
    df = spark.createDataFrame([tuple(r[n] for n in names) for r in records], schema)
    out = first_per_keys(
        df, [EVENT_ID_DEDUPE, (["idempotency_key", "viewer_id"], ["event_time", "event_id"])]
    )
    got = {(r["event_id"], r["_source_file"], r["_line"]) for r in out.collect()}
    assert got == _sequential_dedupe(records)


def test_shared_audience_edges_decide_every_receipt_as_the_relationships_do(spark):
    """A run derives the audience edges once for its jobs (audience_check.shared_edges): the views and quarantine
    rows are exactly those decided from silver.relationships itself (every audience rule is among VIEWS)."""
    from jobs import spark_io
    from jobs.silver.audience_check import shared_edges

    segs, rels = silver_inputs(spark)
    views = bronze(spark, "segment_view", VIEWS)
    outs = [view_events.transform(views, segs, source, AS_OF)
            for source in (rels, shared_edges(rels, spark_io.lazily))]
    assert rows(outs[1].view_events) == rows(outs[0].view_events)
    assert rows(outs[1].quarantine) == rows(outs[0].quarantine)
    assert {r["event_id"]: r["rule"] for r in outs[1].quarantine.collect() if r["rule"] != "outside_lifetime"} == {
        "cf-no": "not_close_friend", "cf-before": "not_close_friend", "blk-author": "blocked",
        "blk-viewer": "blocked", "hid": "hidden_from_viewer", "prv-no": "private_not_approved",
        "del-at": "segment_deleted", "unk-new": "unknown_segment", "unk-old": "unknown_segment"}


def test_audience_edges_keep_follows_and_approvals_of_private_authors_only(spark):
    """The edges the audience rules read: every block, hide and close-friend interval, and the follows and approvals
    of authors with a private interval (author 3) only; a follow of an author never private (viewer 40 of author 1)
    decides nothing and is left out."""
    from jobs.silver.audience_check import audience_edges

    _segs, rels = silver_inputs(spark)
    extra = relationships.transform(bronze(spark, "relationship", [rel("r10", T0 - H, "follow", 40, 1)]))
    edges = audience_edges(rels.unionByName(extra))
    assert sorted((e["flag"], r["_r_author"], r["_r_viewer"]) for r in edges.pairs.collect() for e in r["_r_rels"]) == [
        ("approved", 3, 30), ("blocked_by_author", 1, 22), ("blocked_by_author", 23, 1), ("blocked_by_viewer", 1, 23),
        ("blocked_by_viewer", 22, 1), ("close_friend", 1, 20), ("close_friend", 1, 25), ("follows", 3, 30),
        ("follows", 3, 31), ("hidden", 1, 24)]
    assert [(r["_p_author"], len(r["_p_rels"])) for r in edges.private.collect()] == [(3, 1)]

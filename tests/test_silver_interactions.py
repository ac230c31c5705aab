"""silver.sticker_responses, silver.navigation, silver.engagements."""

from __future__ import annotations

import pytest

from jobs.silver import engagements, navigation, relationships, segments, sticker_responses
from tests.bronze_builders import T0, H, bronze, by, local, rows, sticker

AS_OF = T0 + 60 * H


@pytest.fixture(scope="module")
def segs(spark):
    created = bronze(
        spark,
        "segment_created",
        [
            {"event_id": "c200", "event_time": T0, "segment_id": 200, "author_id": 1, "stickers": [
                sticker(500, "poll", ["a", "b"]),
                sticker(501, "quiz", ["x", "y", "z"], 1),
                sticker(502, "slider"),
                sticker(503, "question"),
                sticker(504, "link"),
            ]},
        ],
    )
    out = segments.transform(
        created, bronze(spark, "segment_deleted", []), bronze(spark, "segment_archived", []), AS_OF
    ).segments
    return local(spark, out, "silver.segments")


@pytest.fixture(scope="module")
def rels(spark):
    """Author 1 blocks user 8 and hides their stories from user 9, from before the segment on."""
    return relationships.transform(bronze(spark, "relationship", [
        {"event_id": "r1", "event_time": T0 - H, "kind": "block", "user_id": 1, "other_user_id": 8},
        {"event_id": "r2", "event_time": T0 - H, "kind": "hide_story", "user_id": 1, "other_user_id": 9},
    ]))


def tap(event_id, stk, type_, user, hours, **kw):
    return {"event_id": event_id, "sticker_id": stk, "segment_id": 200, "user_id": user, "sticker_type": type_,
            "event_time": T0 + hours * H, **kw}


@pytest.fixture(scope="module")
def stickers(spark, segs, rels):
    events = bronze(
        spark,
        "sticker_interaction",
        [
            tap("p1", 500, "poll", 10, 1, option_index=1),
            tap("p2", 500, "poll", 10, 2, option_index=0),
            tap("p3", 500, "poll", 11, 1, option_index=2),  # options a, b: index 2 is out of range
            tap("p5", 500, "poll", 12, 1, option_index=0, idempotency_key="KP"),
            tap("p6", 500, "poll", 12, 1.5, option_index=1, idempotency_key="KP"),  # client retry
            tap("s1", 502, "slider", 10, 1, value=0.2),
            tap("s2", 502, "slider", 10, 3, value=0.9),
            tap("s3", 502, "slider", 10, 2, value=0.5),
            tap("q1", 503, "question", 10, 1, text="hi"),
            tap("q2", 503, "question", 10, 2, text="bye"),
            tap("z1", 501, "quiz", 10, 1, option_index=2),
            tap("z2", 501, "quiz", 10, 2, option_index=1),
            tap("l1", 504, "link", 10, 1),
            tap("l1", 504, "link", 10, 1),  # duplicate delivery
            tap("l2", 504, "link", 10, 2),
            tap("u1", 599, "poll", 10, 1, option_index=0),
            tap("m1", 500, "slider", 13, 1, value=0.5),
            {**tap("o1", 1, "link", 10, 0), "segment_id": 999},
            {**tap("o2", 1, "link", 10, 13), "segment_id": 999},  # quarantined too: re-checked if 999 arrives
            tap("x1", 500, "poll", 12, 25, option_index=0),  # after the segment expired
            tap("b1", 503, "question", 8, 2, text="from a blocked user"),  # never reaches the author's inbox
        ],
    )
    out = sticker_responses.transform(events, segs, rels, AS_OF)
    return (
        by(out.sticker_responses.selectExpr("concat(sticker_id, '/', user_id) AS k", "*"), "k",
           "sticker_type", "option_index", "value", "text", "responded_at", "interactions", "author_id"),
        by(out.quarantine, "event_id", "rule", "field", "reason", "stage", "contract"),
    )


def test_first_poll_vote_wins(stickers):
    resp, _ = stickers
    assert (resp["500/10"]["option_index"], resp["500/10"]["responded_at"], resp["500/10"]["interactions"]) == (
        1, T0 + H, 2,
    )


def test_poll_retry_is_one_interaction(stickers):
    resp, _ = stickers
    assert (resp["500/12"]["option_index"], resp["500/12"]["interactions"]) == (0, 1)


def test_last_slider_value_wins(stickers):
    resp, _ = stickers
    assert (resp["502/10"]["value"], resp["502/10"]["responded_at"], resp["502/10"]["interactions"]) == (
        0.9, T0 + 3 * H, 3,
    )


def test_last_question_answer_wins_first_quiz_answer_wins_first_tap_wins(stickers):
    resp, _ = stickers
    assert resp["503/10"]["text"] == "bye"
    assert resp["501/10"]["option_index"] == 2
    assert (resp["504/10"]["responded_at"], resp["504/10"]["interactions"]) == (T0 + H, 2)
    assert {r["author_id"] for r in resp.values()} == {1}
    assert sorted(resp) == ["500/10", "500/12", "501/10", "502/10", "503/10", "504/10"]


def test_option_out_of_range_is_quarantined(stickers):
    _, q = stickers
    assert q["p3"] == {
        "event_id": "p3", "rule": "option_out_of_range", "field": "option_index",
        "reason": "sticker_interaction.option_index 2 is not in [0, 2) for poll sticker 500",
        "stage": "silver.sticker_responses", "contract": "bronze.sticker_interaction",
    }


def test_unknown_sticker_and_type_mismatch_are_quarantined(stickers):
    _, q = stickers
    assert (q["u1"]["rule"], q["u1"]["reason"]) == (
        "unknown_sticker", "sticker_interaction.sticker_id 599 is not a sticker on segment 200"
    )
    assert (q["m1"]["rule"], q["m1"]["field"], q["m1"]["reason"]) == (
        "sticker_type_mismatch", "sticker_type",
        "sticker_interaction.sticker_type slider differs from type poll of sticker 500 on segment 200",
    )


def test_sticker_on_unknown_segment_or_after_expiry_is_quarantined(stickers):
    _, q = stickers
    assert (q["o1"]["rule"], q["o2"]["rule"]) == ("unknown_segment", "unknown_segment")
    assert (q["x1"]["rule"], q["x1"]["field"]) == ("outside_lifetime", "event_time")
    assert q["x1"]["reason"] == (
        "sticker_interaction.event_time 2026-11-02T11:00:00Z is outside [created_at 2026-11-01T10:00:00Z, "
        "expires_at 2026-11-02T10:00:00Z) on segment 200"
    )
    assert sorted(q) == ["b1", "m1", "o1", "o2", "p3", "u1", "x1"]


def test_a_blocked_users_answer_is_quarantined_with_the_denial(stickers):
    resp, q = stickers
    assert (q["b1"]["rule"], q["b1"]["field"], q["b1"]["reason"]) == (
        "blocked", "user_id",
        "sticker_interaction.user_id 8 may not see public segment 200 of author 1 at 2026-11-01T12:00:00Z: blocked",
    )
    assert "503/8" not in resp


def test_navigation_dedupe_attach_author_and_unknown_segment(spark, segs, rels):
    events = bronze(
        spark,
        "navigation",
        [
            {"event_id": "n1", "event_time": T0 + H, "segment_id": 200, "viewer_id": 7, "action": "tap_exit"},
            {"event_id": "n1", "event_time": T0 + H, "segment_id": 200, "viewer_id": 7, "action": "tap_exit"},
            {"event_id": "n2", "event_time": T0 + H, "segment_id": 999, "viewer_id": 7},
            {"event_id": "n3", "event_time": T0 + 13 * H, "segment_id": 999, "viewer_id": 7},
            {"event_id": "n4", "event_time": T0 + 24 * H, "segment_id": 200, "viewer_id": 7},  # expired
            # the author hides their stories from viewer 9: that viewer's tap-exit is no exit of theirs
            {"event_id": "n5", "event_time": T0 + H, "segment_id": 200, "viewer_id": 9, "action": "tap_exit"},
        ],
    )
    out = navigation.transform(events, segs, rels, AS_OF)
    # the segment's author, not its story (silver.segments' row keeps that: a refold changes no gesture)
    assert rows(out.navigation) == [("n1", 200, 1, 7, "tap_exit", T0 + H)]
    assert rows(out.quarantine, "stage", "contract", "event_id", "rule", "field", "reason") == [
        ("silver.navigation", "bronze.navigation", "n2", "unknown_segment", "segment_id",
         "navigation.segment_id 999 is not a known segment at event_time 2026-11-01T11:00:00Z "
         "(re-checked when its segment_created arrives)"),
        ("silver.navigation", "bronze.navigation", "n3", "unknown_segment", "segment_id",
         "navigation.segment_id 999 is not a known segment at event_time 2026-11-01T23:00:00Z "
         "(re-checked when its segment_created arrives)"),
        ("silver.navigation", "bronze.navigation", "n4", "outside_lifetime", "event_time",
         "navigation.event_time 2026-11-02T10:00:00Z is at/after expires_at 2026-11-02T10:00:00Z of segment 200"),
        ("silver.navigation", "bronze.navigation", "n5", "hidden_from_viewer", "viewer_id",
         "navigation.viewer_id 9 may not see public segment 200 of author 1 at 2026-11-01T11:00:00Z: "
         "hidden_from_viewer"),
    ]


def test_navigation_redelivery_quarantined_only_when_its_first_delivery_is(spark, segs, rels):
    """The quarantine follows the dedupe: the first delivery of an event_id (by file, line) decides, even when
    a later delivery of it names another segment."""
    events = bronze(
        spark,
        "navigation",
        [
            {"event_id": "a", "event_time": T0 + H, "segment_id": 999, "viewer_id": 7},  # first: unknown
            {"event_id": "a", "event_time": T0 + H, "segment_id": 200, "viewer_id": 7},
            {"event_id": "b", "event_time": T0 + H, "segment_id": 200, "viewer_id": 7},  # first: known
            {"event_id": "b", "event_time": T0 + H, "segment_id": 999, "viewer_id": 7},
            {"event_id": "c", "event_time": T0 + H, "segment_id": 998, "viewer_id": 7},  # twice unknown
            {"event_id": "c", "event_time": T0 + H, "segment_id": 998, "viewer_id": 7},
        ],
    )
    out = navigation.transform(events, segs, rels, AS_OF)
    assert rows(out.navigation, "event_id", "segment_id") == [("b", 200)]
    assert rows(out.quarantine, "event_id", "rule") == [("a", "unknown_segment"), ("c", "unknown_segment")]
    assert '"segment_id":999' in rows(out.quarantine, "raw")[0][0]


def test_engagements_dedupe_and_keep_the_segment_they_name(spark, segs, rels):
    events = bronze(
        spark,
        "engagement",
        [
            {"event_id": "g1", "event_time": T0 + H, "kind": "reply", "actor_id": 7, "target_user_id": 1,
             "segment_id": 200},
            {"event_id": "g1", "event_time": T0 + H, "kind": "reply", "actor_id": 7, "target_user_id": 1,
             "segment_id": 200},
            {"event_id": "g2", "event_time": T0 + H, "kind": "like", "actor_id": 7, "target_user_id": 1},
            {"event_id": "g3", "event_time": T0 + H, "kind": "share", "actor_id": 7, "target_user_id": 1,
             "segment_id": 999},
            {"event_id": "g4", "event_time": T0 + 24 * H, "kind": "reply", "actor_id": 7, "target_user_id": 1,
             "segment_id": 200},  # after expiry: no story (not counted for the segment)
        ],
    )
    assert rows(engagements.transform(events, segs, rels, AS_OF).engagements) == [
        ("g1", "reply", 7, 1, 200, T0 + H),
        ("g2", "like", 7, 1, None, T0 + H),
        ("g3", "share", 7, 1, 999, T0 + H),
        ("g4", "reply", 7, 1, 200, T0 + 24 * H),
    ]


def test_a_story_action_the_actor_may_not_see_is_quarantined(spark, segs, rels):
    events = bronze(
        spark,
        "engagement",
        [
            {"event_id": "h1", "event_time": T0 + H, "kind": "reply", "actor_id": 8, "target_user_id": 1,
             "segment_id": 200},  # blocked by the author
            {"event_id": "h2", "event_time": T0 + H, "kind": "share", "actor_id": 9, "target_user_id": 1,
             "segment_id": 200},  # the author hides their stories from 9
            {"event_id": "h3", "event_time": T0 + H, "kind": "dm_sent", "actor_id": 8, "target_user_id": 1},
            {"event_id": "h4", "event_time": T0 + 25 * H, "kind": "reply", "actor_id": 8, "target_user_id": 1,
             "segment_id": 200},  # after expiry: attached to no segment, so not checked
        ],
    )
    out = engagements.transform(events, segs, rels, AS_OF)
    assert rows(out.engagements) == [
        ("h3", "dm_sent", 8, 1, None, T0 + H),
        ("h4", "reply", 8, 1, 200, T0 + 25 * H),
    ]
    assert rows(out.quarantine, "stage", "event_id", "rule", "field", "reason") == [
        ("silver.engagements", "h1", "blocked", "actor_id",
         "engagement.actor_id 8 may not see public segment 200 of author 1 at 2026-11-01T11:00:00Z: blocked"),
        ("silver.engagements", "h2", "hidden_from_viewer", "actor_id",
         "engagement.actor_id 9 may not see public segment 200 of author 1 at 2026-11-01T11:00:00Z: "
         "hidden_from_viewer"),
    ]

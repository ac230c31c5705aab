"""gold.segment_insights and gold.story_insights on hand-built silver rows, with hand-computed values."""

from __future__ import annotations

import pytest

from jobs.gold.segment_insights import segment_insights
from jobs.gold.story_insights import story_insights
from tests.test_gold_builders import (
    T0,
    H,
    collect,
    engagement,
    frames,
    nav,
    response,
    segment,
    segment_viewers,
    view,
)

AS_OF = T0 + 48 * H
NAV = ("exits", "taps_forward", "taps_back", "swipe_forward")
ENG = ("replies", "shares", "profile_visits", "follows", "link_clicks")
POLL = {"sticker_id": 900, "type": "poll", "options": ["yes", "no"]}
# Story 100 (author 1): two frames.
S1 = segment(100, 1, T0, story_id=100, frame_index=1, stickers=[POLL])
S2 = segment(101, 1, T0 + H, story_id=100, frame_index=2, story_start=T0)
# Story 300 (author 2): three frames, for retention.
R1 = segment(300, 2, T0, story_id=300, frame_index=1)
R2 = segment(301, 2, T0 + H, story_id=300, frame_index=2, story_start=T0)
R3 = segment(302, 2, T0 + 2 * H, story_id=300, frame_index=3, story_start=T0)
# Story 400 (author 3): frame 1 nobody saw, frame 2 one viewer.
Z1 = segment(400, 3, T0, story_id=400, frame_index=1)
Z2 = segment(401, 3, T0 + H, story_id=400, frame_index=2, story_start=T0)
# Story 500 (author 4): published after as_of -> absent.
LATE = segment(500, 4, AS_OF)

VIEWS = [
    # frame 1: viewer 10 twice (rewatch, completes the 2nd time), 11 completes, 12 does not -> 4 impressions, reach 3
    view(S1, 10, T0 + 0.1 * H, ms=3000, completion=0.6),
    view(S1, 10, T0 + 0.2 * H, ms=5000, completion=1.0),
    view(S1, 11, T0 + 0.3 * H, ms=5000, completion=1.0),
    view(S1, 12, T0 + 0.4 * H, ms=4000, completion=0.8),
    # frame 2: viewers 10 (completes) and 11 (not) -> 2 impressions, reach 2
    view(S2, 10, T0 + 1.1 * H, ms=5000, completion=1.0),
    view(S2, 11, T0 + 1.2 * H, ms=3000, completion=0.7),
    # at as_of: not used
    view(S2, 13, AS_OF, ms=5000, completion=1.0),
    # story 300: reach 4, 2, 1
    *[view(R1, v, T0 + 0.5 * H) for v in (20, 21, 22, 23)],
    *[view(R2, v, T0 + 1.5 * H) for v in (20, 21)],
    view(R3, 20, T0 + 2.5 * H),
    # story 400
    view(Z2, 30, T0 + 1.5 * H),
    # the authors' own views: never counted (every figure below is what it would be without them)
    view(S1, 1, T0 + 0.5 * H, ms=9000, completion=1.0),
    view(R1, 2, T0 + 0.5 * H),
    view(Z1, 3, T0 + 0.5 * H),
]
NAVIGATION = [
    nav(S1, 10, "tap_forward", T0 + 0.1 * H),
    nav(S1, 11, "tap_forward", T0 + 0.3 * H),
    nav(S1, 10, "tap_back", T0 + 0.2 * H),
    nav(S1, 12, "tap_exit", T0 + 0.4 * H),
    nav(S1, 13, "swipe_down", T0 + 0.5 * H),
    nav(S1, 14, "swipe_forward", T0 + 0.6 * H),
    nav(S2, 10, "tap_exit", T0 + 1.1 * H),
    nav(S2, 11, "swipe_down", AS_OF),  # at as_of: not used
]
ENGAGEMENTS = [
    engagement("reply", 10, 1, T0 + 0.2 * H, S1),
    engagement("reply", 11, 1, T0 + 0.3 * H, S1),
    engagement("share", 11, 1, T0 + 0.3 * H, S1),
    engagement("profile_visit", 12, 1, T0 + 0.4 * H, S1),
    engagement("follow", 12, 1, T0 + 0.4 * H, S1),
    engagement("link_click", 10, 1, T0 + 0.2 * H, S1),
    engagement("reply", 10, 1, T0 + 1.1 * H, S2),
    engagement("dm_sent", 10, 1, T0 + 0.5 * H),  # not a story engagement
    engagement("like", 10, 1, T0 + 0.5 * H, S1),  # not a story insight
]
RESPONSES = [
    response(S1, 900, 10, T0 + 0.2 * H, option_index=0, interactions=1),
    response(S1, 900, 11, T0 + 0.3 * H, option_index=1, interactions=2),
]
SEGMENTS = [S1, S2, R1, R2, R3, Z1, Z2, LATE]


@pytest.fixture(scope="module")
def silver(spark):
    return frames(
        spark,
        segments=SEGMENTS,
        view_events=VIEWS,
        # Seen By lists other people only (publish filters the author's own row the same way)
        segment_viewers=segment_viewers(
            [v for v in VIEWS if v["viewed_at"] < AS_OF and v["viewer_id"] != v["author_id"]], SEGMENTS),
        navigation=NAVIGATION,
        engagements=ENGAGEMENTS,
        sticker_responses=RESPONSES,
    )


@pytest.fixture(scope="module")
def seg_rows(silver):
    args = {k: silver[k] for k in ("segments", "view_events", "navigation", "engagements", "sticker_responses")}
    return collect(segment_insights(**args, as_of=AS_OF), "segment_id")


@pytest.fixture(scope="module")
def story_rows(silver):
    args = {k: silver[k] for k in ("segments", "view_events", "navigation", "engagements", "sticker_responses")}
    return collect(story_insights(**args, as_of=AS_OF), "story_id")


def test_segment_insights_every_metric_on_a_two_frame_story(seg_rows):
    times = ("created_at", "expires_at", "story_start", "as_of")
    first = {k: seg_rows[100][k] for k in seg_rows[100] if k not in times}
    assert first == {
        "segment_id": 100, "author_id": 1, "story_id": 100, "frame_index": 1,
        "audience": "public", "media_type": "photo", "is_deleted": False,
        "impressions": 4, "reach": 3, "completed_viewers": 2, "completion_rate": pytest.approx(2 / 3),
        "total_view_ms": 17000, "avg_view_ms": 4250.0,
        "exits": 2, "taps_forward": 2, "taps_back": 1, "swipe_forward": 1,
        "replies": 2, "shares": 1, "profile_visits": 1, "follows": 1, "link_clicks": 1,
        "sticker_interactions": 3,
        "retention_from_first": 1.0,
        "exit_viewers": 1,  # viewer 12's tap exit; 13's swipe down counts as an exit but 13 never viewed frame 1
        # every view came before frame 2 was posted: nobody could go on to it yet
        "continuation_viewers": 0, "continued_viewers": 0, "continuation_rate": None,
    }  # fmt: skip
    second = {k: seg_rows[101][k] for k in seg_rows[101] if k not in times}
    assert second == {
        "segment_id": 101, "author_id": 1, "story_id": 100, "frame_index": 2,
        "audience": "public", "media_type": "photo", "is_deleted": False,
        "impressions": 2, "reach": 2, "completed_viewers": 1, "completion_rate": 0.5,
        "total_view_ms": 8000, "avg_view_ms": 4000.0,
        "exits": 1, "taps_forward": 0, "taps_back": 0, "swipe_forward": 0,
        "replies": 1, "shares": 0, "profile_visits": 0, "follows": 0, "link_clicks": 0,
        "sticker_interactions": 0,
        "retention_from_first": pytest.approx(2 / 3), "exit_viewers": 1,
        "continuation_viewers": 0, "continued_viewers": 0, "continuation_rate": None,
    }  # fmt: skip
    assert seg_rows[100]["created_at"] == T0.replace(tzinfo=None)
    assert seg_rows[101]["expires_at"] == (T0 + 25 * H).replace(tzinfo=None)
    assert seg_rows[100]["as_of"] == AS_OF.replace(tzinfo=None)


def test_segment_insights_only_use_rows_before_as_of(seg_rows):
    assert 500 not in seg_rows  # published at as_of
    assert seg_rows[101]["reach"] == 2  # viewer 13's view at as_of ignored
    assert seg_rows[101]["exits"] == 1  # swipe_down at as_of ignored


def test_segment_insights_reach_equals_seen_by_rows(seg_rows, silver):
    seen_by = collect(silver["segment_viewers"].groupBy("segment_id").count(), "segment_id")
    for segment_id, row in seg_rows.items():
        assert row["reach"] == seen_by.get(segment_id, {"count": 0})["count"]


def test_the_authors_own_views_never_count(seg_rows, story_rows):
    # frame 1 of story 100: 4 impressions and reach 3 from viewers 10-12, not 5 and 4 with author 1's own view
    assert {k: seg_rows[100][k] for k in ("impressions", "reach", "completed_viewers", "total_view_ms")} == {
        "impressions": 4, "reach": 3, "completed_viewers": 2, "total_view_ms": 17000}
    assert seg_rows[400]["reach"] == 0 and seg_rows[400]["impressions"] == 0  # only its author saw it
    assert seg_rows[401]["retention_from_first"] is None  # frame 1's reach is 0, not 1
    assert story_rows[100]["reach"] == 3 and story_rows[300]["reach"] == 4


def test_retention_from_first_frame(seg_rows):
    got = {s: seg_rows[s]["retention_from_first"] for s in (300, 301, 302)}
    assert got == {300: 1.0, 301: 0.5, 302: 0.25}
    assert "retention_from_previous" not in seg_rows[300]


def test_retention_is_null_when_the_denominator_frame_has_no_reach(seg_rows):
    frame1, frame2 = seg_rows[400], seg_rows[401]
    assert frame1["reach"] == 0 and frame1["retention_from_first"] is None
    assert frame2["reach"] == 1 and frame2["retention_from_first"] is None


def test_segment_without_views_has_zeros_and_null_rates(seg_rows):
    row = seg_rows[400]
    zeros = ("impressions", "reach", "completed_viewers", "total_view_ms", "sticker_interactions", *NAV, *ENG)
    assert {k: row[k] for k in zeros} == dict.fromkeys(zeros, 0)
    assert row["completion_rate"] is None and row["avg_view_ms"] is None


def test_story_reach_counts_a_viewer_of_both_frames_once(story_rows):
    row = story_rows[100]
    # viewers: 10 (both frames), 11 (both frames), 12 (frame 1): 3 distinct, not 3 + 2
    assert row["reach"] == 3
    assert row["completed_viewers"] == 2  # 10 and 11 completed some frame
    assert row["completion_rate"] == pytest.approx(2 / 3)


def test_story_insights_every_metric(story_rows):
    row = dict(story_rows[100])
    assert row.pop("story_start") == T0.replace(tzinfo=None)
    assert row.pop("story_end") == (T0 + 25 * H).replace(tzinfo=None)  # last segment's expires_at
    assert row.pop("as_of") == AS_OF.replace(tzinfo=None)
    assert row == {
        "story_id": 100, "author_id": 1, "segment_count": 2,
        "impressions": 6, "reach": 3, "completed_viewers": 2, "completion_rate": pytest.approx(2 / 3),
        "total_view_ms": 25000, "avg_view_ms": pytest.approx(25000 / 6),
        "exits": 3, "taps_forward": 2, "taps_back": 1, "swipe_forward": 1,
        "replies": 3, "shares": 1, "profile_visits": 1, "follows": 1, "link_clicks": 1,
        "sticker_interactions": 3,
    }  # fmt: skip


def test_story_insights_one_row_per_story_before_as_of(story_rows):
    assert sorted(story_rows) == [100, 300, 400]
    assert (story_rows[300]["reach"], story_rows[300]["impressions"], story_rows[300]["segment_count"]) == (4, 7, 3)
    assert story_rows[400]["reach"] == 1 and story_rows[400]["segment_count"] == 2


# Story 700 (author 7), frames hours apart: F1 public at T0, F2 public at +5 h, F3 close friends at +6 h,
# F4 public at +8 h, F5 public at +9 h and deleted. The public chain is F1 -> F2 -> F4 (F3 is compared among close
# friends only, F5 is deleted); a viewer of a frame "could go on" when their first view came while the next was live.
C_T = T0 + 100 * H
F1 = segment(701, 7, C_T, story_id=700, frame_index=1)
F2 = segment(702, 7, C_T + 5 * H, story_id=700, frame_index=2, story_start=C_T)
F3 = segment(703, 7, C_T + 6 * H, story_id=700, frame_index=3, story_start=C_T, audience="close_friends")
F4 = segment(704, 7, C_T + 8 * H, story_id=700, frame_index=4, story_start=C_T)
F5 = {**segment(705, 7, C_T + 9 * H, story_id=700, frame_index=5, story_start=C_T), "is_deleted": True,
      "deleted_at": C_T + 10 * H}
CHAIN_VIEWS = [
    view(F1, 1, C_T + 1 * H),  # before F2 existed: could not go on
    view(F1, 2, C_T + 6 * H),  # could, and did (F2 below)
    view(F1, 3, C_T + 7 * H),  # could, and did not
    view(F1, 4, C_T + 23 * H),  # could, and did
    view(F1, 7, C_T + 6 * H),  # the author: never counted
    view(F2, 2, C_T + 6 * H),  # before F4 existed
    view(F2, 4, C_T + 23 * H),  # could go on to F4, did not
    view(F2, 5, C_T + 9 * H),  # could, and did
    view(F3, 6, C_T + 7 * H),
    view(F4, 5, C_T + 10 * H),
    view(F4, 2, C_T + 11 * H),
]
CHAIN_NAV = [
    nav(F1, 3, "tap_exit", C_T + 7 * H),
    # F4: viewer 5 exits twice (rewatch), viewer 2 swipes down, viewer 8 (no counted view of F4) taps exit: 4 exit
    # gestures for a reach of 2, and 2 of its 2 viewers exited
    nav(F4, 5, "tap_exit", C_T + 10 * H),
    nav(F4, 5, "tap_exit", C_T + 10.5 * H),
    nav(F4, 2, "swipe_down", C_T + 11 * H),
    nav(F4, 8, "tap_exit", C_T + 11 * H),
]


@pytest.fixture(scope="module")
def chain_rows(spark):
    silver = frames(spark, segments=[F1, F2, F3, F4, F5], view_events=CHAIN_VIEWS, navigation=CHAIN_NAV)
    args = {k: silver[k] for k in ("segments", "view_events", "navigation", "engagements", "sticker_responses")}
    return collect(segment_insights(**args, as_of=C_T + 48 * H), "segment_id")


def test_continuation_drop_off_and_exit_rate_per_frame_hours_apart(chain_rows):
    cols = ("continuation_viewers", "continued_viewers", "continuation_rate", "exits", "exit_viewers", "reach")
    got = {s: tuple(chain_rows[s][c] for c in cols) for s in (701, 702, 703, 704, 705)}
    assert got == {
        701: (3, 2, 2 / 3, 1, 1, 4),  # viewers 2, 3, 4 could go on to F2; 2 and 4 did (drop-off 1/3); exit rate 1/4
        702: (2, 1, 0.5, 0, 0, 3),  # 4 and 5 could go on to F4 (2 came before it existed); 5 did (drop-off 1/2)
        703: (0, 0, None, 0, 0, 1),  # the only close-friends frame: no next frame
        704: (0, 0, None, 4, 2, 2),  # the last public frame (F5 is deleted); exit rate 2/2 = 1, not 4/2
        705: (0, 0, None, 0, 0, 0),  # deleted: not in any chain
    }
    for row in chain_rows.values():  # every rate in [0, 1]
        assert row["continuation_rate"] is None or 0 <= row["continuation_rate"] <= 1
        assert row["exit_viewers"] <= row["reach"]
    # the reach ratio this replaces goes above 1 here (F4 has the same reach as F2, F2 less than F1)
    assert chain_rows[702]["reach"] == 3 and chain_rows[701]["reach"] == 4

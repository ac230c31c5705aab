"""tray(): candidates, audience exclusions, lazy expiry, ranking, ring states and cursor pages (hand-computed)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from serving import api
from serving.publish import publish
from storylake.settings import Settings
from tests.lake_builder import DAY, HOUR, LakeBuilder

T = datetime(2026, 11, 2, 12, tzinfo=UTC)
V = 1  # the viewer


def published(lake: LakeBuilder) -> api.Snapshot:
    lake.write()
    publish(lake.settings, T)
    return api.open_current(lake.settings)


def authors(page: api.TrayPage) -> list[int]:
    return [r.author_id for r in page.rings]


def all_pages(snap: api.Snapshot, viewer: int, now: datetime, limit: int) -> list[list[int]]:
    pages, cursor = [], None
    while True:
        page = api.tray(snap, viewer, now, limit=limit, cursor=cursor)
        pages.append(authors(page))
        assert page.has_more == (page.next_cursor is not None)
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def test_order_scores_and_ring_states(settings: Settings) -> None:
    lake = LakeBuilder(settings)
    lake.segment(100, V, T - 3 * HOUR)  # own ring, listed first whatever its score
    lake.segment(110, 10, T - HOUR).features(V, 10, dm=1)  # unseen, 100 e^(-1/12) + 50
    lake.segment(111, 11, T, audience="close_friends").rel("close_friend", 11, V, T - DAY)  # unseen CF: 150
    lake.segment(112, 12, T - 2 * HOUR).features(V, 12, likes=10)  # seen: grey, high score but after unseen
    lake.view(112, V, T - HOUR)
    for a in (10, 11, 12):
        lake.follow(V, a, T - DAY)
    snap = published(lake)

    page = api.tray(snap, V, T)
    assert authors(page) == [V, 11, 10, 12]
    own, cf, a10, a12 = page.rings
    assert own.is_own and not any(r.is_own for r in (cf, a10, a12))
    assert own.rank_score == pytest.approx(100 * math.exp(-3 / 12), rel=1e-12)
    assert cf.rank_score == 150.0  # (100 * e^0) * 1.5 exactly
    assert a10.rank_score == pytest.approx(100 * math.exp(-1 / 12) + 50, rel=1e-12)
    assert a12.rank_score == pytest.approx(100 * math.exp(-2 / 12) + 300, rel=1e-12)
    assert a12.rank_score > cf.rank_score  # ...yet it comes last: all seen
    assert [r.ring_state for r in page.rings] == ["gradient", "green", "gradient", "grey"]
    assert (cf.is_close_friends, a10.is_close_friends) == (True, False)
    assert a12.segments[0].seen and not a12.has_unseen
    assert a10.latest_segment_at == T - HOUR and a10.segment_count == 1
    assert page.next_cursor is None and not page.has_more


def test_close_friends_boost_applies_to_features_too(settings: Settings) -> None:
    lake = LakeBuilder(settings)
    lake.segment(1, 20, T - 12 * HOUR, audience="close_friends").segment(2, 20, T - 24 * HOUR + HOUR)
    lake.rel("close_friend", 20, V, T - DAY).follow(V, 20, T - DAY)
    lake.features(V, 20, dm=2, likes=1, comments=3, replies=4)
    snap = published(lake)
    (ring,) = api.tray(snap, V, T).rings
    # latest segment 12 h old; (100 e^-1 + 50*2 + 30*1 + 20*3 + 10*4) * 1.5
    assert ring.rank_score == pytest.approx((100 * math.exp(-1) + 100 + 30 + 60 + 40) * 1.5, rel=1e-12)
    assert ring.segment_count == 2 and ring.is_close_friends and ring.ring_state == "green"
    assert [s.segment_id for s in ring.segments] == [2, 1]  # play order: created_at ascending


def test_half_life_note_formula_is_kept(settings: Settings) -> None:
    """exp(-t/12) halves at 12 ln 2 ~= 8.3 h (the seed's "half-life of 12 hours" is a time constant)."""
    lake = LakeBuilder(settings).segment(1, 30, T - 12 * math.log(2) * HOUR).follow(V, 30, T - DAY)
    snap = published(lake)
    assert api.tray(snap, V, T).rings[0].rank_score == pytest.approx(50.0, rel=1e-9)


def test_ties_broken_by_author_id(settings: Settings) -> None:
    lake = LakeBuilder(settings)
    for a in (44, 42, 43):
        lake.segment(a, a, T - HOUR).follow(V, a, T - DAY)
    snap = published(lake)
    assert authors(api.tray(snap, V, T)) == [42, 43, 44]


def test_audience_exclusions(settings: Settings) -> None:
    lake = LakeBuilder(settings)
    t0 = T - DAY
    visible = {
        50: "public segment of a followed author",
        51: "close friend's close_friends segment",
        52: "private author who approved the viewer",
        53: "author with one public + one close_friends segment (viewer not a close friend)",
    }
    hidden = {
        60: "close_friends only, viewer not on the list",
        61: "hides stories from the viewer",
        62: "viewer blocked the author",
        63: "author blocked the viewer",
        64: "private author, follow not approved",
        65: "not followed",
        66: "follow ended before now",
        67: "deleted segment",
        68: "close friend relation ended before now",
        69: "approved follower whose approval ended",
    }
    for a in list(visible) + list(hidden):
        if a != 65:
            lake.follow(V, a, t0, until=T - HOUR if a == 66 else None)
    lake.segment(50, 50, T - HOUR)
    lake.segment(51, 51, T - HOUR, audience="close_friends").rel("close_friend", 51, V, t0)
    lake.segment(52, 52, T - HOUR).private(52, t0).rel("approved", 52, V, t0)
    lake.segment(53, 53, T - HOUR).segment(153, 53, T - HOUR / 2, audience="close_friends")
    lake.segment(60, 60, T - HOUR, audience="close_friends")
    lake.segment(61, 61, T - HOUR).rel("hide", 61, V, t0)
    lake.segment(62, 62, T - HOUR).rel("block", V, 62, t0)
    lake.segment(63, 63, T - HOUR).rel("block", 63, V, t0)
    lake.segment(64, 64, T - HOUR).private(64, t0)
    lake.segment(65, 65, T - HOUR)
    lake.segment(66, 66, T - 2 * HOUR)
    lake.segment(67, 67, T - HOUR, is_deleted=True)
    lake.segment(68, 68, T - 2 * HOUR, audience="close_friends").rel("close_friend", 68, V, t0, until=T - HOUR)
    lake.segment(69, 69, T - HOUR).private(69, t0).rel("approved", 69, V, t0, until=T - 2 * HOUR)
    snap = published(lake)
    page = api.tray(snap, V, T)
    assert sorted(authors(page)) == sorted(visible)
    ring53 = next(r for r in page.rings if r.author_id == 53)
    assert [s.segment_id for s in ring53.segments] == [53] and not ring53.is_close_friends
    # the same relations evaluated at an earlier instant: the follow of 66 and the close friend 68 still held
    earlier = api.tray(snap, V, T - 90 * timedelta(minutes=1))
    assert {66, 68} <= set(authors(earlier))


def test_block_or_unblock_changes_with_now(settings: Settings) -> None:
    lake = LakeBuilder(settings).follow(V, 70, T - DAY).segment(70, 70, T - 2 * HOUR)
    lake.rel("block", 70, V, T - HOUR, until=T + HOUR)
    snap = published(lake)
    assert authors(api.tray(snap, V, T - 90 * timedelta(minutes=1))) == [70]
    assert authors(api.tray(snap, V, T)) == []
    assert authors(api.tray(snap, V, T + HOUR)) == [70]


def test_segment_expiring_between_two_calls(settings: Settings) -> None:
    lake = LakeBuilder(settings).follow(V, 80, T - 2 * DAY).follow(V, 81, T - 2 * DAY)
    lake.segment(80, 80, T - 23 * HOUR)  # expires at T + 1h
    lake.segment(81, 81, T - 30 * timedelta(minutes=1))
    lake.segment(82, 80, T + 2 * HOUR)  # not yet created at T
    snap = published(lake)
    at_t = api.tray(snap, V, T)
    assert authors(at_t) == [81, 80]
    assert [s.segment_id for s in at_t.rings[1].segments] == [80]
    assert at_t.rings[1].segments[0].expires_at == T + HOUR
    assert authors(api.tray(snap, V, T + HOUR - timedelta(microseconds=1))) == [81, 80]
    assert authors(api.tray(snap, V, T + HOUR)) == [81]  # expires_at is exclusive: gone, no cleanup needed
    later = api.tray(snap, V, T + 3 * HOUR)
    assert [[s.segment_id for s in r.segments] for r in later.rings] == [[82], [81]]


def test_own_ring_only_with_active_segments(settings: Settings) -> None:
    lake = LakeBuilder(settings).follow(V, 90, T - DAY).segment(90, 90, T - HOUR)
    lake.segment(91, V, T - 25 * HOUR)  # own, expired
    snap = published(lake)
    assert authors(api.tray(snap, V, T)) == [90]
    assert authors(api.tray(snap, V, T - 2 * HOUR)) == [V]  # own segment still active then; 90's not yet created


def test_pages_neither_repeat_nor_skip(settings: Settings) -> None:
    lake = LakeBuilder(settings)
    for i, a in enumerate(range(201, 208)):
        lake.follow(V, a, T - DAY).segment(a, a, T - (i + 1) * HOUR)
    lake.view(203, V, T - HOUR / 2).view(205, V, T - HOUR / 2)
    snap = published(lake)
    pages = all_pages(snap, V, T, limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    flat = [a for p in pages for a in p]
    assert flat == [201, 202, 204, 206, 207, 203, 205]  # unseen by recency, then the seen ones
    assert flat == authors(api.tray(snap, V, T, limit=50))


def test_cursor_pins_now_and_snapshot(settings: Settings) -> None:
    lake = LakeBuilder(settings)
    for a in range(301, 305):
        lake.follow(V, a, T - DAY).segment(a, a, T - 23 * HOUR - (a - 300) * timedelta(minutes=5))
    snap = published(lake)
    first = api.tray(snap, V, T, limit=2)
    second = api.tray(snap, V, T + HOUR / 2, limit=2, cursor=first.next_cursor)  # ranked at the first page's now
    assert second.now == T and authors(first) + authors(second) == [301, 302, 303, 304]
    # Two hours later every segment has expired: a cursor never brings back what the caller's now no longer shows.
    assert api.tray(snap, V, T + 2 * HOUR, limit=2, cursor=first.next_cursor).rings == ()
    assert api.tray(snap, V, T + 2 * HOUR).rings == ()

    with pytest.raises(ValueError, match="stale cursor"):
        api.tray(snap, V + 1, T, limit=2, cursor=first.next_cursor)
    with pytest.raises(ValueError, match="invalid cursor"):
        api.tray(snap, V, T, limit=2, cursor="not-a-cursor")
    publish(settings, T)  # a new snapshot: cursors of the old one are refused by it
    with pytest.raises(api.StaleCursorError, match="stale cursor"):
        api.tray(api.open_current(settings), V, T, limit=2, cursor=first.next_cursor)


def test_cursor_never_shows_an_author_who_blocked_or_hid_the_viewer_since(settings: Settings) -> None:
    lake = LakeBuilder(settings)
    for a in range(401, 406):
        lake.segment(a, a, T - (a - 400) * HOUR)  # 401 newest: ranked first
        if a != 402:
            lake.follow(V, a, T - DAY)
    lake.rel("block", 403, V, T + HOUR)  # 403 blocks the viewer an hour after the first page
    lake.rel("hide", 404, V, T + HOUR)  # 404 hides its stories from the viewer
    lake.rel("block", V, 405, T + HOUR)  # the viewer blocks 405
    lake.follow(V, 402, T - DAY, until=T + HOUR)  # ... and unfollows 402
    snap = published(lake)
    first = api.tray(snap, V, T, limit=1)
    assert authors(first) == [401]
    rest = api.tray(snap, V, T + 2 * HOUR, limit=10, cursor=first.next_cursor)
    assert authors(rest) == [] and rest.now == T  # 402..405 are all out of reach at the caller's now
    assert authors(api.tray(snap, V, T, limit=10, cursor=first.next_cursor)) == [402, 403, 404, 405]


def test_limit_and_window_validated(settings: Settings) -> None:
    snap = published(LakeBuilder(settings))
    assert api.tray(snap, V, T).rings == ()
    with pytest.raises(ValueError, match="limit"):
        api.tray(snap, V, T, limit=0)
    assert api.tray(snap, V, T - 2 * DAY).rings == ()
    with pytest.raises(ValueError, match="tray window"):
        api.tray(snap, V, T - 2 * DAY - timedelta(microseconds=1))


def test_the_window_is_seen_bys_lifetime(settings: Settings) -> None:
    """The snapshot keeps the segments active at some instant of the 48 h before its as_of (Seen By's lifetime, as
    its segment catalog), so a tray is served for any `now` in them, and the segments that expired before are not
    copied into it."""
    lake = (LakeBuilder(settings).follow(V, 5, T - 5 * DAY)
            .segment(7, 5, T - 60 * HOUR)  # active from T - 60 h to T - 36 h
            .segment(8, 5, T - 3 * DAY))  # expired at T - 48 h: outside the window
    snap = published(lake)
    assert [r.author_id for r in api.tray(snap, V, T - 40 * HOUR).rings] == [5]
    assert [s.segment_id for s in api.tray(snap, V, T - 40 * HOUR).rings[0].segments] == [7]
    assert api.tray(snap, V, T - 30 * HOUR).rings == ()
    assert snap.db().execute("SELECT segment_id FROM live_segments ORDER BY 1").fetchall() == [(7,)]


def test_json_shape(settings: Settings) -> None:
    lake = LakeBuilder(settings).follow(V, 5, T - DAY).segment(7, 5, T - HOUR, media_type="video", duration_ms=12000)
    snap = published(lake)
    doc = api.tray_dict(api.tray(snap, V, T))
    assert doc == {
        "users": [
            {
                "userId": 5, "isOwn": False, "hasUnseen": True, "ringState": "gradient", "isCloseFriends": False,
                "rankScore": pytest.approx(100 * math.exp(-1 / 12)), "latestSegmentAt": "2026-11-02T11:00:00Z",
                "segmentCount": 1,
                "segments": [{"segmentId": 7, "storyId": 7, "mediaType": "video", "durationMs": 12000,
                              "expiresAt": "2026-11-03T11:00:00Z", "seen": False}],
            }
        ],
        "nextCursor": None,
    }

"""seen_by(): author-only access, newest-first keyset pages, 48 h lifetime, block-after-view hiding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from serving import api
from serving.expire import expire
from serving.publish import publish
from storylake.errors import NotFoundError
from storylake.settings import Settings
from tests.lake_builder import HOUR, LakeBuilder

T = datetime(2026, 11, 2, 12, tzinfo=UTC)
A = 10  # author
S = 500  # segment, created T - 2h
MIN = timedelta(minutes=1)


def lake_with_viewers(settings: Settings) -> LakeBuilder:
    lake = LakeBuilder(settings).segment(S, A, T - 2 * HOUR)
    # viewer: minutes after creation (two ties at +30 min: ids 3 and 7)
    for viewer, minutes in ((5, 10), (7, 30), (3, 30), (9, 45), (4, 60)):
        lake.view(S, viewer, T - 2 * HOUR + minutes * MIN, source="profile" if viewer == 9 else "tray",
                  completion_pct=0.5 if viewer == 4 else 1.0)
    return lake


def snap_of(lake: LakeBuilder) -> api.Snapshot:
    lake.write()
    publish(lake.settings, T)
    return api.open_current(lake.settings)


def ids(page: api.SeenByPage) -> list[int]:
    return [v.viewer_id for v in page.viewers]


def test_newest_first_ties_by_viewer_id_and_pages(settings: Settings) -> None:
    snap = snap_of(lake_with_viewers(settings))
    full = api.seen_by(snap, S, A, T)
    assert ids(full) == [4, 9, 3, 7, 5] and full.total == 5 and not full.has_more and full.next_cursor is None
    assert full.viewers[0].viewed_at == T - HOUR and full.viewers[0].completion_pct == 0.5
    assert full.viewers[1].view_source == "profile"

    pages, cursor = [], None
    while True:
        page = api.seen_by(snap, S, A, T, limit=2, cursor=cursor)
        assert page.total == 5
        pages.append(ids(page))
        if not page.has_more:
            assert page.next_cursor is None
            break
        cursor = page.next_cursor
    assert pages == [[4, 9], [3, 7], [5]]


def test_pages_with_the_tie_split_across_pages(settings: Settings) -> None:
    snap = snap_of(lake_with_viewers(settings))
    first = api.seen_by(snap, S, A, T, limit=3)
    assert ids(first) == [4, 9, 3]
    assert ids(api.seen_by(snap, S, A, T, limit=3, cursor=first.next_cursor)) == [7, 5]


def test_only_the_author(settings: Settings) -> None:
    snap = snap_of(lake_with_viewers(settings))
    with pytest.raises(PermissionError, match=r"user 5 .* segment 500"):
        api.seen_by(snap, S, 5, T)
    with pytest.raises(NotFoundError, match="segment 999"):
        api.seen_by(snap, 999, A, T)


def test_seen_by_expires_48h_after_creation(settings: Settings) -> None:
    snap = snap_of(lake_with_viewers(settings))
    created = T - 2 * HOUR
    assert api.seen_by(snap, S, A, created + 48 * HOUR - timedelta(microseconds=1)).total == 5
    with pytest.raises(api.SeenByExpiredError, match=r"Seen By for segment 500 expired at 2026-11-04T10:00:00Z"):
        api.seen_by(snap, S, A, created + 48 * HOUR)


def test_block_after_view_hides_viewer_and_reduces_total(settings: Settings) -> None:
    lake = lake_with_viewers(settings)
    lake.rel("block", A, 9, T - HOUR / 2)  # after 9's view at T - 75 min
    lake.rel("block", A, 3, T - 3 * HOUR, until=T - HOUR)  # ended: 3 shows again
    lake.rel("block", 5, A, T - HOUR / 2)  # the viewer blocked the author: the rule is "the author blocked them"
    snap = snap_of(lake)
    page = api.seen_by(snap, S, A, T)
    assert ids(page) == [4, 3, 7, 5] and page.total == 4
    # paging skips the hidden viewer as well
    p1 = api.seen_by(snap, S, A, T, limit=1)
    p2 = api.seen_by(snap, S, A, T, limit=1, cursor=p1.next_cursor)
    assert ids(p1) + ids(p2) == [4, 3] and p2.total == 4
    # before the block, 9 was listed
    assert api.seen_by(snap, S, A, T - HOUR).total == 5
    # a cursor from before the block never shows 9 to a caller after it: hidden at either instant
    early = api.seen_by(snap, S, A, T - HOUR, limit=1)
    assert ids(early) == [4] and early.total == 5
    later = api.seen_by(snap, S, A, T, limit=5, cursor=early.next_cursor)
    assert ids(later) == [3, 7, 5] and later.total == 4 and later.now == T - HOUR


def test_deleted_segment_not_found(settings: Settings) -> None:
    lake = LakeBuilder(settings).segment(S, A, T - HOUR, is_deleted=True)
    snap = snap_of(lake)
    with pytest.raises(NotFoundError, match="deleted"):
        api.seen_by(snap, S, A, T)
    with pytest.raises(PermissionError):  # existence is not revealed to others first
        api.seen_by(snap, S, 99, T)


def test_survives_segment_cleanup_until_48h(settings: Settings) -> None:
    """Past expiry and its cleanup grace (the media is listed for deletion), Seen By keeps working until 48 h."""
    lake = LakeBuilder(settings).segment(S, A, T - 30 * HOUR)
    lake.view(S, 2, T - 29 * HOUR).view(S, 3, T - 28 * HOUR)
    lake.write()
    report = expire(settings, T)
    assert (report.listed, report.pending) == (1, 1)
    publish(settings, T)
    page = api.seen_by(api.open_current(settings), S, A, T)
    assert ids(page) == [3, 2] and page.total == 2


def test_segments_older_than_the_catalog_answer_from_their_insights(settings: Settings) -> None:
    """A publish copies only the recent segments into segment_catalog (and those with viewer rows); an older one
    still gets its Seen By answer, from segment_insights: expired, deleted, not the requester's, or unknown."""
    lake = lake_with_viewers(settings)
    lake.segment(600, A, T - 72 * HOUR).segment(601, A, T - 80 * HOUR, is_deleted=True)
    lake.segment(700, 20, T - 90 * HOUR)  # an author with only old segments
    lake.segment(602, A, T - 8 * 24 * HOUR).segment(603, A, T - 9 * 24 * HOUR)  # in the insights' history part
    # older than the catalog's 48 h but with a viewer row: in the catalog (its silver and gold rows are read from the
    # earliest viewer row's creation on, not from years of insights)
    lake.segment(604, A, T - 60 * HOUR).view(604, 5, T - 59 * HOUR)
    snap = snap_of(lake)
    catalog = {r[0] for r in snap.db().execute("SELECT segment_id FROM segment_catalog").fetchall()}
    assert catalog == {S, 604}
    assert snap.db().execute("SELECT author_id, viewer_rows, gold_reach FROM segment_catalog WHERE segment_id = 604"
                             ).fetchall() == [(A, 1, 1)]
    # the history part of the lookup: in the files of segment_insights' history periods (the names they have), each
    # sorted by segment_id; 603 and 602 were created on consecutive days, each in its day's period (the later days'
    # files have none: the table's one Delta file spans them)
    aliases = snap.db().execute("SELECT alias FROM snapshot_history WHERE serving_table = 'segment_insights' AND "
                                "tier LIKE 'history%' ORDER BY cut").fetchall()
    lookups = [snap.db().execute(f"SELECT segment_id FROM {alias}.segment_lookup").fetchall()  # noqa: S608
               for (alias,) in aliases]
    assert [rows for rows in lookups if rows] == [[(603,)], [(602,)]]
    with pytest.raises(api.SeenByExpiredError, match=r"Seen By for segment 603 expired at 2026-10-26T12:00:00Z"):
        api.seen_by(snap, 603, A, T)
    with pytest.raises(api.SeenByExpiredError, match=r"Seen By for segment 600 expired at 2026-11-01T12:00:00Z"):
        api.seen_by(snap, 600, A, T)
    page = api.seen_by(snap, 600, A, T - 30 * HOUR)  # at a `now` before its end: open, without viewer rows
    assert (page.total, ids(page), page.has_more) == (0, [], False)
    with pytest.raises(NotFoundError, match="segment 601 was deleted"):
        api.seen_by(snap, 601, A, T)
    with pytest.raises(PermissionError, match=r"user 5 .* segment 700"):
        api.seen_by(snap, 700, 5, T)
    with pytest.raises(NotFoundError, match="segment 999"):
        api.seen_by(snap, 999, A, T)
    from serving.dashboard_queries import known_authors

    assert known_authors(snap) == [A, 20]


def test_cursor_checks(settings: Settings) -> None:
    lake = lake_with_viewers(settings).segment(S + 1, A, T - HOUR).view(S + 1, 5, T - HOUR / 2)
    snap = snap_of(lake)
    first = api.seen_by(snap, S, A, T, limit=2)
    with pytest.raises(ValueError, match="stale cursor"):
        api.seen_by(snap, S + 1, A, T, limit=2, cursor=first.next_cursor)
    with pytest.raises(ValueError, match="stale cursor: it pages a seen_by list"):
        api.tray(snap, A, T, limit=2, cursor=first.next_cursor)
    with pytest.raises(ValueError, match="stale cursor"):  # another requester
        api.seen_by(snap, S, A + 1, T, limit=2, cursor=first.next_cursor)


def test_json_shape(settings: Settings) -> None:
    snap = snap_of(lake_with_viewers(settings))
    doc = api.seen_by_dict(api.seen_by(snap, S, A, T, limit=1))
    assert set(doc) == {"segmentId", "total", "viewers", "hasMore", "nextCursor"}
    assert doc["segmentId"] == S and doc["total"] == 5 and doc["hasMore"] is True
    assert doc["viewers"] == [
        {"viewerId": 4, "viewedAt": "2026-11-02T11:00:00Z", "viewSource": "tray", "completionPct": 0.5}
    ]
    assert isinstance(doc["nextCursor"], str)


def test_large_list_pages_match_sorted_order(settings: Settings) -> None:
    """Many viewers, inserted in scrambled order, many ties: pages concatenate to the exact sorted order."""
    lake = LakeBuilder(settings).segment(S, A, T - 5 * HOUR)
    expected = []
    for i in range(300):
        viewer = (i * 7919) % 1000 + 1
        at = T - 5 * HOUR + ((i * 31) % 40) * MIN
        lake.view(S, viewer, at)
        if viewer != A:  # the author's own view is not in their Seen By
            expected.append((at, viewer))
    expected.sort(key=lambda x: (-x[0].timestamp(), x[1]))
    snap = snap_of(lake)
    got, cursor = [], None
    while True:
        page = api.seen_by(snap, S, A, T, limit=37, cursor=cursor)
        got += [(v.viewed_at, v.viewer_id) for v in page.viewers]
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert got == expected
    assert api.seen_by(snap, S, A, T).total == len(expected) == len({v for _, v in expected}) == 299


def test_the_authors_own_view_is_not_in_seen_by_but_marks_the_own_ring_seen(settings: Settings) -> None:
    lake = lake_with_viewers(settings).view(S, A, T - HOUR + 5 * MIN)  # the author watches their own segment
    lake.write()
    report = publish(settings, T)
    assert report.reach_mismatches == 0  # Seen By rows == gold reach: both leave the author's own view out
    snap = api.open_current(settings)
    page = api.seen_by(snap, S, A, T)
    assert ids(page) == [4, 9, 3, 7, 5] and page.total == 5
    (own,) = [r for r in api.tray(snap, A, T).rings if r.is_own]
    assert not own.has_unseen  # the author's own tray ring knows they watched it

"""Highlights and the archive on hand-built snapshots: audience rules at `now`, keyset pages of the archive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from serving import highlights as hl
from serving.cursor import StaleCursorError
from serving.publish import publish
from serving.snapshot import open_current
from storylake.settings import Settings
from tests.lake_builder import LakeBuilder

T = datetime(2026, 11, 2, 12, tzinfo=UTC)
H, D = timedelta(hours=1), timedelta(days=1)
A, FAN, STRANGER, CF, BLOCKED = 1, 2, 3, 4, 5


def _world(settings: Settings, *, private: bool = False) -> LakeBuilder:
    lake = (
        LakeBuilder(settings)
        .segment(10, A, T - 5 * D, is_archived=True, highlight_id=100)
        .segment(11, A, T - 4 * D, is_archived=True, highlight_id=100, audience="close_friends")
        .segment(12, A, T - 3 * D, is_archived=True, highlight_id=200)
        .segment(13, A, T - 2 * D, is_archived=True)  # archived, in no highlight
        .segment(14, A, T - 2 * D, is_archived=True, highlight_id=200, is_deleted=True)
        .segment(15, A, T - 1 * D)  # not archived
        .segment(16, A, T + H, is_archived=True, highlight_id=200)  # after `now`
        .follow(FAN, A, T - 30 * D).follow(CF, A, T - 30 * D)
        .rel("close_friend", A, CF, T - 30 * D)
        .rel("block", A, BLOCKED, T - 30 * D)
    )
    if private:
        lake.private(A, T - 10 * D).rel("approved", A, FAN, T - 30 * D)
    return lake


def _ids(got: tuple[hl.Highlight, ...]) -> list[tuple[int, list[int]]]:
    return [(h.highlight_id, [s.segment_id for s in h.segments]) for h in got]


def test_highlights_follow_the_audience_rules(settings: Settings) -> None:
    _world(settings).write()
    publish(settings, T)
    snap = open_current(settings)
    assert _ids(hl.highlights(snap, A, A, T)) == [(100, [10, 11]), (200, [12])]
    assert _ids(hl.highlights(snap, A, CF, T)) == [(100, [10, 11]), (200, [12])]
    assert _ids(hl.highlights(snap, A, FAN, T)) == [(100, [10]), (200, [12])]
    assert _ids(hl.highlights(snap, A, STRANGER, T)) == [(100, [10]), (200, [12])]  # public profile
    assert _ids(hl.highlights(snap, A, BLOCKED, T)) == []
    assert _ids(hl.highlights(snap, A, A, T + 2 * H)) == [(100, [10, 11]), (200, [12, 16])]
    assert hl.highlights(snap, 999, A, T) == ()
    seg = hl.highlights(snap, A, A, T)[0].segments[0]
    assert seg == hl.ArchivedSegment(10, 10, 100, "photo", 5000, T - 5 * D, T - 4 * D, "public", 100)


def test_a_private_account_shows_highlights_to_approved_followers_only(settings: Settings) -> None:
    _world(settings, private=True).write()
    publish(settings, T)
    snap = open_current(settings)
    assert _ids(hl.highlights(snap, A, FAN, T)) == [(100, [10]), (200, [12])]
    assert _ids(hl.highlights(snap, A, STRANGER, T)) == []
    assert _ids(hl.highlights(snap, A, CF, T)) == []  # follows, close friend, but not approved
    assert _ids(hl.highlights(snap, A, FAN, T - 20 * D)) == []  # no segment archived yet at that time


def test_archive_pages(settings: Settings) -> None:
    _world(settings).write()
    publish(settings, T)
    snap = open_current(settings)
    pages, cursor = [], None
    while True:
        page = hl.archive(snap, A, limit=2, cursor=cursor)
        pages.append([s.segment_id for s in page.segments])
        cursor = page.next_cursor
        if not page.has_more:
            break
    assert pages == [[16, 13], [12, 11], [10]]
    assert hl.archive(snap, FAN).segments == ()
    first = hl.archive(snap, A, limit=1)
    with pytest.raises(StaleCursorError):
        hl.archive(snap, FAN, limit=1, cursor=first.next_cursor)
    with pytest.raises(ValueError, match="limit"):
        hl.archive(snap, A, limit=0)


def test_profiles_are_looked_up_in_bulk(settings: Settings) -> None:
    from serving.profiles import Profile, profiles

    lake = _world(settings)
    lake.rows["silver.profiles"] += [
        {"user_id": A, "username": "ann", "profile_picture_media_id": 7, "updated_at": T, "event_id": "e1"},
        {"user_id": FAN, "username": "fan.2", "profile_picture_media_id": None, "updated_at": T, "event_id": "e2"},
    ]
    lake.write()
    publish(settings, T)
    snap = open_current(settings)
    assert profiles(snap, [FAN, A, A, STRANGER]) == {A: Profile("ann", 7), FAN: Profile("fan.2", None)}
    assert profiles(snap, []) == {}

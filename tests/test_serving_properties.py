"""Property tests: random small graphs and segments through the real publish + query path.

The oracle below restates the DESIGN §5 audience rules in plain Python on purpose: it is the independent
check of what serving (which evaluates storylake/rules/audience.py's SQL) returns.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from serving import api
from serving.publish import publish
from storylake.settings import Settings
from tests.lake_builder import HOUR, LakeBuilder

T = datetime(2026, 11, 2, 12, tzinfo=UTC)
USERS = range(1, 6)
RELATIONS = ("follow", "close_friend", "block", "hide", "private", "approved")


@dataclass(frozen=True)
class Rel:
    relation: str
    user: int
    other: int
    since: datetime
    until: datetime | None

    def holds(self, t: datetime) -> bool:
        return self.since <= t and (self.until is None or t < self.until)


@dataclass(frozen=True)
class Seg:
    segment_id: int
    author: int
    created: datetime
    audience: str
    deleted: bool


hours = st.integers(min_value=-30, max_value=2).map(lambda h: T + h * HOUR)
rel_st = st.builds(
    lambda relation, user, other, since, length: Rel(
        relation, user, 0 if relation == "private" else other, since,
        None if length is None else since + length * HOUR,
    ),
    st.sampled_from(RELATIONS), st.sampled_from(USERS), st.sampled_from(USERS),
    st.integers(min_value=-40, max_value=1).map(lambda h: T + h * HOUR),
    st.none() | st.integers(min_value=1, max_value=45),
).filter(lambda r: r.relation == "private" or r.user != r.other)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Seg], list[Rel], list[tuple[int, int, datetime]]]:
    n = draw(st.integers(min_value=0, max_value=9))
    segs = [
        Seg(i + 1, draw(st.sampled_from(USERS)), draw(hours), draw(st.sampled_from(["public", "close_friends"])),
            draw(st.booleans().map(lambda b: b and draw(st.integers(0, 4)) == 0)))
        for i in range(n)
    ]
    rels = draw(st.lists(rel_st, max_size=18))
    # follows are what make trays non-trivial: add a few long-lived ones
    rels += [Rel("follow", v, a, T - 50 * HOUR, None) for v, a in draw(
        st.lists(st.tuples(st.sampled_from(USERS), st.sampled_from(USERS)).filter(lambda p: p[0] != p[1]),
                 max_size=10, unique=True))]
    views = []
    if segs:
        pairs = draw(st.lists(st.tuples(st.sampled_from(segs), st.sampled_from(USERS)), max_size=12,
                              unique_by=lambda p: (p[0].segment_id, p[1])))
        views = [(s.segment_id, v, s.created + timedelta(minutes=draw(st.integers(0, 60)))) for s, v in pairs]
    return segs, rels, views


def holds(rels: list[Rel], relation: str, user: int, other: int, t: datetime) -> bool:
    return any(r.relation == relation and r.user == user and r.other == other and r.holds(t) for r in rels)


def may_see(rels: list[Rel], viewer: int, seg: Seg, t: datetime) -> bool:
    a = seg.author
    if viewer == a:
        return True
    if holds(rels, "block", a, viewer, t) or holds(rels, "block", viewer, a, t):
        return False
    if holds(rels, "hide", a, viewer, t):
        return False
    if seg.audience == "close_friends" and not holds(rels, "close_friend", a, viewer, t):
        return False
    if holds(rels, "private", a, 0, t) and not (
        holds(rels, "follow", viewer, a, t) and holds(rels, "approved", a, viewer, t)
    ):
        return False
    return True


def active(seg: Seg, t: datetime) -> bool:
    return not seg.deleted and seg.created <= t < seg.created + 24 * HOUR


@hsettings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), limit=st.integers(min_value=1, max_value=3), offset_h=st.integers(min_value=-6, max_value=6))
def test_tray_and_seen_by_invariants(
    world: tuple[list[Seg], list[Rel], list[tuple[int, int, datetime]]], limit: int, offset_h: int
) -> None:
    segs, rels, views = world
    now = T + offset_h * HOUR
    with tempfile.TemporaryDirectory(prefix="storylake-prop-") as tmp:
        settings = Settings(lake=Path(tmp) / "lake", landing=Path(tmp) / "landing")
        lake = LakeBuilder(settings)
        for s in segs:
            lake.segment(s.segment_id, s.author, s.created, audience=s.audience, is_deleted=s.deleted)
        for r in rels:
            lake.rel(r.relation, r.user, r.other, r.since, r.until)
        for seg_id, viewer, at in views:
            lake.view(seg_id, viewer, at)
        lake.write()
        publish(settings, T)
        snap = api.open_current(settings)
        by_id = {s.segment_id: s for s in segs}

        for viewer in USERS:
            rings, cursor = [], None
            while True:
                page = api.tray(snap, viewer, now, limit=limit, cursor=cursor)
                assert len(page.rings) <= limit
                rings += page.rings
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            got = [r.author_id for r in rings]
            eligible = {
                s.author for s in segs
                if active(s, now) and may_see(rels, viewer, s, now)
                and (s.author == viewer or holds(rels, "follow", viewer, s.author, now))
            }
            assert sorted(got) == sorted(eligible), (viewer, got, eligible)  # a permutation, no repeats
            event(f"rings>0: {len(got) > 0}")
            for ring in rings:
                shown = {s.segment_id for s in ring.segments}
                expected = {
                    s.segment_id for s in segs
                    if s.author == ring.author_id and active(s, now) and may_see(rels, viewer, s, now)
                }
                assert shown == expected
                for seg_id in shown:
                    seg = by_id[seg_id]
                    if viewer != seg.author:
                        if seg.audience == "close_friends":
                            assert holds(rels, "close_friend", seg.author, viewer, now)
                        assert not holds(rels, "hide", seg.author, viewer, now)
                        assert not holds(rels, "block", seg.author, viewer, now)
                        assert not holds(rels, "block", viewer, seg.author, now)
                        if holds(rels, "private", seg.author, 0, now):
                            assert holds(rels, "approved", seg.author, viewer, now)
                seen = {sid for sid, v, at in views if v == viewer and at <= now}
                assert ring.has_unseen == bool(shown - seen)
            keys = [(not r.is_own, not r.has_unseen, -r.rank_score, r.author_id) for r in rings]
            assert keys == sorted(keys)
            assert all(r.is_own == (r.author_id == viewer) for r in rings)

        reach = dict(snap.db().execute("SELECT segment_id, reach FROM segment_insights").fetchall())
        for s in segs:
            if s.deleted or now >= s.created + 48 * HOUR:
                continue
            seg_viewers = {v for sid, v, _ in views if sid == s.segment_id and v != s.author}  # never the author
            blocked_now = {v for v in seg_viewers if holds(rels, "block", s.author, v, now)}
            page = api.seen_by(snap, s.segment_id, s.author, now, limit=100)
            assert page.total == reach[s.segment_id] - len(blocked_now)
            assert {v.viewer_id for v in page.viewers} == seg_viewers - blocked_now
            if not blocked_now:
                assert page.total == reach[s.segment_id] == len(seg_viewers)

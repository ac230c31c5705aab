"""gold.author_hourly_insights: per author and UTC hour, additive counts and the viewers first seen that day (the
dashboards' "today so far vs the same hours yesterday"), hand-computed."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.gold.author_daily_insights import author_daily_insights
from jobs.gold.author_hourly_insights import author_hourly_insights
from tests.test_gold_builders import T0, D, H, collect, engagement, frames, nav, segment, view

AS_OF = T0 + D + 12 * H  # day 2, 12:00
S1 = segment(101, 1, T0 + 20 * H)  # author 1, day 1 20:00 (live until day 2 20:00)
S2 = segment(102, 1, T0 + D + 1 * H)  # author 1, day 2 01:00
OTHER = segment(201, 2, T0 + 20 * H)  # author 2
MIN = timedelta(minutes=1)
VIEWS = [
    view(S1, 10, T0 + 20 * H + 5 * MIN),  # day 1 hour 20: viewer 10 first seen on day 1
    view(S1, 10, T0 + 21 * H),  # rewatch in hour 21: an impression, not a new viewer
    view(S1, 11, T0 + 21 * H + 30 * MIN),  # day 1 hour 21: viewer 11
    view(S1, 10, T0 + D + 0 * H + 10 * MIN),  # day 2 hour 0: viewer 10 again, first seen on day 2 here
    view(S2, 10, T0 + D + 1 * H + 10 * MIN),  # day 2 hour 1: 10 again (already counted on day 2)
    view(S2, 12, T0 + D + 1 * H + 20 * MIN),  # day 2 hour 1: viewer 12
    view(S2, 1, T0 + D + 2 * H),  # the author's own view: in no count
    view(S2, 13, AS_OF),  # at as_of: not used
    view(OTHER, 10, T0 + 20 * H + 5 * MIN),  # author 2
]
NAVIGATION = [
    nav(S1, 10, "tap_exit", T0 + 21 * H + 1 * MIN),
    nav(S1, 11, "swipe_down", T0 + 21 * H + 31 * MIN),
    nav(S1, 11, "tap_forward", T0 + 21 * H + 32 * MIN),  # not an exit
    nav(S2, 12, "tap_exit", T0 + D + 3 * H),  # an hour with only an exit
]
ENGAGEMENTS = [
    engagement("reply", 11, 1, T0 + 21 * H + 40 * MIN, S1),
    engagement("share", 12, 1, T0 + D + 1 * H + 25 * MIN, S2),
    engagement("follow", 12, 1, T0 + D + 5 * H, S2),
    engagement("dm_sent", 11, 1, T0 + D + 6 * H),  # not story activity
]
COLS = ("day", "new_viewers", "impressions", "exits", "replies", "shares", "profile_visits", "follows", "link_clicks")


def hour(h: int):
    return (T0 + h * H).replace(tzinfo=None)


@pytest.fixture(scope="module")
def silver(spark):
    return frames(spark, segments=[S1, S2, OTHER], view_events=VIEWS, navigation=NAVIGATION,
                  engagements=ENGAGEMENTS)


@pytest.fixture(scope="module")
def rows(silver):
    args = {k: silver[k] for k in ("segments", "view_events", "navigation", "engagements")}
    return collect(author_hourly_insights(**args, as_of=AS_OF), ["author_id", "hour"])


def test_author_hourly_rows_hand_computed(rows):
    got = {(a, h): tuple(r[c] for c in COLS) for (a, h), r in rows.items()}
    d1, d2 = date(2024, 5, 1), date(2024, 5, 2)
    assert got == {
        (1, hour(20)): (d1, 1, 1, 0, 0, 0, 0, 0, 0),
        (1, hour(21)): (d1, 1, 2, 2, 1, 0, 0, 0, 0),
        (1, hour(24)): (d2, 1, 1, 0, 0, 0, 0, 0, 0),
        (1, hour(25)): (d2, 1, 2, 0, 0, 1, 0, 0, 0),
        (1, hour(27)): (d2, 0, 0, 1, 0, 0, 0, 0, 0),
        (1, hour(29)): (d2, 0, 0, 0, 0, 0, 0, 1, 0),
        (2, hour(20)): (d1, 1, 1, 0, 0, 0, 0, 0, 0),
    }


def test_hours_add_up_to_the_days(silver, rows):
    """A day's hours sum to its author_daily_insights row; its new_viewers to the day's reach."""
    args = {k: silver[k] for k in ("segments", "view_events", "navigation", "engagements")}
    daily = collect(author_daily_insights(**args, as_of=AS_OF), ["author_id", "day"])
    for (author, day), d in daily.items():
        hours = [r for (a, _), r in rows.items() if a == author and r["day"] == day]
        assert sum(r["new_viewers"] for r in hours) == d["reach"]
        for c in COLS[2:]:
            assert sum(r[c] for r in hours) == d[c], (author, day, c)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 47 * 60)), min_size=1, max_size=25))
def test_property_new_viewers_sum_to_the_reach_until_any_hour(spark, views):
    """For any views (viewer, minute of two days), a day's new_viewers summed over its hours before h equal the
    distinct viewers of that day before h."""
    seg = segment(301, 5, T0)
    seg2 = segment(302, 5, T0 + D)
    made = [view(seg if m < 24 * 60 else seg2, 50 + v, T0 + m * MIN) for v, m in views]
    silver = frames(spark, segments=[seg, seg2], view_events=made, navigation=[], engagements=[])
    args = {k: silver[k] for k in ("segments", "view_events", "navigation", "engagements")}
    got = collect(author_hourly_insights(**args, as_of=T0 + 2 * D), ["author_id", "hour"])
    for day in (0, 1):
        for h in range(25):
            until = T0 + day * D + h * H
            want = len({v for v, m in views if day * 24 * 60 <= m < (day * 24 + h) * 60})
            total = sum(r["new_viewers"] for (_, hr), r in got.items()
                        if (T0 + day * D).replace(tzinfo=None) <= hr < until.replace(tzinfo=None))
            assert total == want, (day, h)

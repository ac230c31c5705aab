"""gold.author_daily_insights: per author and UTC day, exact trailing reach (distinct viewers, never sums)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jobs.gold.author_daily_insights import author_daily_insights
from tests.test_gold_builders import T0, D, H, collect, engagement, frames, nav, segment, view

AS_OF = T0 + 40 * D


def day(n: int):
    """Midnight UTC of day n (day 1 = 2024-05-01)."""
    return T0 + (n - 1) * D


def d(n: int) -> date:
    return date(2024, 5, 1) + timedelta(days=n - 1)


SEGS = {n: segment(1000 + n, 1, day(n)) for n in (1, 2, 3, 5, 8, 29)}
SEGS[3] = segment(1003, 1, day(3) + H / 2)  # live until day 4, 00:30
OTHER = segment(2000, 2, day(1))  # another author's segment, viewed by the same viewers
VIEWS = [
    view(SEGS[1], 10, day(1) + 1 * H),
    view(SEGS[1], 10, day(1) + 2 * H),  # rewatch: impressions 3 on day 1, reach 2
    view(SEGS[1], 13, day(1) + 23 * H + 59 * 60 * timedelta(seconds=1)),  # 23:59:00, still day 1
    view(SEGS[2], 11, day(2) + 1 * H),
    view(SEGS[3], 10, day(3) + 1 * H),
    view(SEGS[8], 12, day(8) + 1 * H),
    view(SEGS[29], 14, day(29) + 1 * H),
    view(OTHER, 99, day(1) + 1 * H),
    view(SEGS[1], 1, day(1) + 3 * H),  # the author's own view: in no count, no reach, no partial
]
NAVIGATION = [nav(SEGS[1], 10, "tap_exit", day(1) + 1 * H), nav(SEGS[1], 13, "swipe_down", day(2) + 1 * H)]
ENGAGEMENTS = [
    engagement("reply", 11, 1, day(2) + 2 * H, SEGS[2]),
    engagement("share", 11, 1, day(2) + 2 * H, SEGS[2]),
    engagement("link_click", 10, 1, day(3) + 2 * H, SEGS[3]),
    engagement("follow", 15, 1, day(4) + H / 4, SEGS[3]),  # a day with only an engagement (in the lifetime)
    engagement("dm_sent", 11, 1, day(6) + 2 * H),  # not story activity: no row for day 6
]


@pytest.fixture(scope="module")
def rows(spark):
    silver = frames(
        spark,
        segments=[*SEGS.values(), OTHER],
        view_events=VIEWS,
        navigation=NAVIGATION,
        engagements=ENGAGEMENTS,
    )
    args = {k: silver[k] for k in ("segments", "view_events", "navigation", "engagements")}
    return collect(author_daily_insights(**args, as_of=AS_OF), ["author_id", "day"])


def test_author_daily_has_a_row_for_every_day_with_any_activity(rows):
    assert sorted(day for author, day in rows if author == 1) == [d(n) for n in (1, 2, 3, 4, 5, 8, 29)]
    assert sorted(day for author, day in rows if author == 2) == [d(1)]


def test_author_daily_counts_of_the_day(rows):
    cols = ("segments_posted", "impressions", "reach", "exits", "replies", "shares", "profile_visits", "follows",
            "link_clicks")  # fmt: skip
    got = {day: tuple(r[c] for c in cols) for (author, day), r in rows.items() if author == 1}
    assert got == {
        d(1): (1, 3, 2, 1, 0, 0, 0, 0, 0),
        d(2): (1, 1, 1, 1, 1, 1, 0, 0, 0),
        d(3): (1, 1, 1, 0, 0, 0, 0, 0, 1),
        d(4): (0, 0, 0, 0, 0, 0, 0, 1, 0),
        d(5): (1, 0, 0, 0, 0, 0, 0, 0, 0),
        d(8): (1, 1, 1, 0, 0, 0, 0, 0, 0),
        d(29): (1, 1, 1, 0, 0, 0, 0, 0, 0),
    }


def test_reach_7d_is_exact_distinct_viewers_over_the_trailing_week(rows):
    got = {day: rows[(1, day)]["reach_7d"] for day in (d(1), d(2), d(3), d(4), d(5), d(8), d(29))}
    # day 1 {10,13}; day 2 +11; day 3 10 again (not double counted); day 8 = days 2..8 -> {11,10,12} (13 left)
    assert got == {d(1): 2, d(2): 3, d(3): 3, d(4): 3, d(5): 3, d(8): 3, d(29): 1}


def test_reach_28d_is_exact_distinct_viewers_over_the_trailing_28_days(rows):
    got = {day: rows[(1, day)]["reach_28d"] for day in (d(1), d(3), d(8), d(29))}
    # day 29 = days 2..29 -> {11, 10, 12, 14}: viewer 13 (day 1 only) has left the window
    assert got == {d(1): 2, d(3): 3, d(8): 4, d(29): 4}


def test_author_daily_reach_is_per_author(rows):
    assert (rows[(2, d(1))]["reach"], rows[(2, d(1))]["reach_7d"], rows[(2, d(1))]["reach_28d"]) == (1, 1, 1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seen=st.sets(st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 40)), max_size=30),
    since=st.integers(1, 40),
)
# a run's usual 2 window ends, the most counted from each pair's latest days (7), and one more (fanned out)
@example(seen={(1, 1, 12), (1, 2, 33), (1, 1, 39), (2, 3, 40), (1, 3, 13), (2, 3, 35)}, since=39)
@example(seen={(1, 1, 6), (1, 2, 33), (1, 1, 38), (2, 3, 40), (1, 3, 27), (2, 3, 29), (3, 4, 34)}, since=34)
@example(seen={(1, 1, 6), (1, 2, 33), (1, 1, 38), (2, 3, 40), (1, 3, 27), (2, 3, 29), (3, 4, 34)}, since=33)
def test_trailing_reach_from_a_day_equals_the_brute_force_count(spark, seen, since):
    """trailing_reach(..., since_day) keeps of each viewer's days before since_day only the latest; its windows from
    since_day on hold exactly the distinct viewers with a view day among the N days ending that day (counted from
    each pair's latest days up to each end for up to LATEST_DAY_ENDS ends, else by fanning the pairs out)."""
    from pyspark.sql import types as T

    from jobs.gold.author_daily_insights import TRAILING_DAYS, trailing_reach

    schema = T.StructType([T.StructField("author_id", T.LongType()), T.StructField("viewer_id", T.LongType()),
                           T.StructField("day", T.DateType())])
    since_day, last = d(since), AS_OF.date()  # windows end on days up to as_of's
    # the run reads the partials from 27 days before since_day on
    kept = [(a, v, d(n)) for a, v, n in seen if d(n) >= since_day - timedelta(days=27)]
    got = {(r["author_id"], r["day"]): (r["reach_7d"], r["reach_28d"])
           for r in trailing_reach(spark.createDataFrame(kept, schema), AS_OF, since_day).collect()}
    want = {}
    for a in {a for a, _, _ in kept}:
        for n in range((last - since_day).days + 1):
            end = since_day + timedelta(days=n)
            reach = tuple(len({v for a2, v, x in kept if a2 == a and end - timedelta(days=w - 1) <= x <= end})
                          for w in TRAILING_DAYS.values())
            if reach[-1]:
                want[(a, end)] = reach
    assert got == want

"""gold.ring_features / ring_features_at: windows [t - 30 d, t), relationship state before t, pairs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.gold.ring_features import FEATURE_VERSION, FEATURES, ring_features, ring_features_at
from tests.test_gold_builders import T0, US, D, H, collect, engagement, frames, relation, segment, view

T = T0 + 40 * D
AUTHOR, VIEWER = 1, 10
SEG = segment(100, AUTHOR, T - 2 * D)
OLD = segment(101, AUTHOR, T - 31 * D)
OTHER = segment(200, 2, T - 2 * D)

ENGAGEMENTS = [
    engagement("dm_sent", VIEWER, AUTHOR, T - 30 * D),  # window start: counted
    engagement("dm_sent", VIEWER, AUTHOR, T - US),  # last microsecond: counted
    engagement("dm_sent", VIEWER, AUTHOR, T),  # at T: not counted
    engagement("dm_sent", VIEWER, AUTHOR, T - 30 * D - US),  # before the window: not counted
    engagement("dm_sent", AUTHOR, VIEWER, T - H),  # the author's DM to the viewer: other direction
    engagement("like", VIEWER, AUTHOR, T - 3 * D),
    engagement("like", VIEWER, AUTHOR, T - 4 * D),
    engagement("comment", VIEWER, AUTHOR, T - 5 * D),
    engagement("reply", VIEWER, AUTHOR, T - 2 * D + H, SEG),
    engagement("profile_visit", VIEWER, AUTHOR, T - 2 * D + H, SEG),
    engagement("share", VIEWER, AUTHOR, T - 2 * D + H, SEG),  # not a ring feature
    engagement("like", 11, AUTHOR, T - 40 * D),  # out of window only: no pair row
    engagement("like", 3, 3, T - H),  # self pair: no row
]
VIEWS = [
    view(SEG, VIEWER, T - 2 * D + H, completion=1.0),
    view(SEG, VIEWER, T - 2 * D + 2 * H, completion=0.5),
    view(SEG, VIEWER, T - D, completion=1.0),
    view(SEG, VIEWER, T, completion=1.0),  # at T: not counted
    view(OLD, VIEWER, T - 31 * D + H, completion=1.0),  # before the window
    view(OTHER, VIEWER, T - D, completion=1.0),  # another author
]
RELATIONSHIPS = [
    relation("follow", VIEWER, AUTHOR, T - 10 * D),
    relation("close_friend", AUTHOR, VIEWER, T - 5 * D),
    relation("follow", 12, AUTHOR, T),  # follows from exactly T: not known before T
    relation("follow", 13, AUTHOR, T - 9 * D, T),  # unfollowed exactly at T: still following just before T
    relation("close_friend", AUTHOR, 14, T - 9 * D, T - D),  # removed before T
    relation("follow", 15, AUTHOR, T - 9 * D, T - D),  # unfollowed before T
]


@pytest.fixture(scope="module")
def silver(spark):
    return frames(spark, segments=[SEG, OLD, OTHER], view_events=VIEWS, engagements=ENGAGEMENTS,
                  relationships=RELATIONSHIPS)  # fmt: skip


@pytest.fixture(scope="module")
def table(silver):
    df = ring_features(silver["engagements"], silver["view_events"], silver["relationships"], T)
    return collect(df, ["viewer_id", "author_id"])


def test_ring_features_count_window_start_inclusive_and_t_exclusive(table):
    row = table[(VIEWER, AUTHOR)]
    assert row["dm_count_30d"] == 2  # T-30d and T-1us; not T, not T-30d-1us, not the author's own DM


def test_ring_features_every_feature_of_the_viewer_toward_the_author(table):
    row = dict(table[(VIEWER, AUTHOR)])
    assert row.pop("as_of") == T.replace(tzinfo=None)
    assert row == {
        "viewer_id": VIEWER, "author_id": AUTHOR,
        "dm_count_30d": 2, "likes_given_30d": 2, "comments_given_30d": 1, "story_replies_30d": 1,
        "profile_visits_30d": 1, "story_views_30d": 3, "completion_rate_30d": pytest.approx(2 / 3),
        "is_close_friend": True, "follows": True, "feature_version": FEATURE_VERSION,
    }  # fmt: skip


def test_ring_features_relationship_events_at_t_are_not_known_yet(table):
    assert (12, AUTHOR) not in table  # follow starting exactly at T: no edge before T
    assert table[(13, AUTHOR)]["follows"] is True  # unfollow exactly at T: still following before T
    assert (14, AUTHOR) not in table and (15, AUTHOR) not in table  # ended before T


def test_ring_features_rows_are_pairs_with_a_signal_or_an_edge(table):
    # (10, 1) signals; (10, 2) a view; (1, 10) the author's DM to the viewer; (13, 1) a follow edge
    assert sorted(table) == [(1, 10), (10, 1), (10, 2), (13, 1)]
    reverse = table[(AUTHOR, VIEWER)]
    assert reverse["dm_count_30d"] == 1 and reverse["follows"] is False and reverse["is_close_friend"] is False
    assert table[(13, AUTHOR)]["story_views_30d"] == 0 and table[(13, AUTHOR)]["completion_rate_30d"] is None


def test_ring_features_at_arbitrary_points_each_with_its_own_t(spark, silver):
    points = spark.createDataFrame(
        [(VIEWER, AUTHOR, T), (VIEWER, AUTHOR, T - 4 * D), (VIEWER, AUTHOR, T0), (VIEWER, AUTHOR, T)],
        "viewer_id bigint, author_id bigint, t timestamp",
    )
    df = ring_features_at(silver["engagements"], silver["view_events"], silver["relationships"], points)
    assert df.columns == ["viewer_id", "author_id", "t", *FEATURES, "feature_version"]
    rows = collect(df, "t")
    assert len(rows) == 3  # distinct points
    earlier = rows[(T - 4 * D).replace(tzinfo=None)]
    # window [T-34d, T-4d): DMs at T-30d and T-30d-1us; the like at T-4d is at t; the comment at T-5d counts
    assert (earlier["dm_count_30d"], earlier["likes_given_30d"], earlier["comments_given_30d"]) == (2, 0, 1)
    # one view (of the old segment, at T-31d+1h), completed; close friend since T-5d, follower since T-10d
    assert (earlier["story_views_30d"], earlier["completion_rate_30d"]) == (1, 1.0)
    assert (earlier["is_close_friend"], earlier["follows"]) == (True, True)
    nothing = rows[T0.replace(tzinfo=None)]
    assert [nothing[f] for f in FEATURES] == [0, 0, 0, 0, 0, 0, None, False, False]


def test_ring_features_table_equals_ring_features_at_on_its_pairs(spark, silver, table):
    """The gold table's join-free path (one t for all pairs) agrees with the point-in-time path at t = T."""
    points = spark.createDataFrame(
        [(v, a, T) for v, a in table], "viewer_id bigint, author_id bigint, t timestamp"
    )
    at = collect(
        ring_features_at(silver["engagements"], silver["view_events"], silver["relationships"], points),
        ["viewer_id", "author_id"],
    )
    assert sorted(at) == sorted(table)
    for pair, row in table.items():
        expected = {k: v for k, v in at[pair].items() if k != "t"}
        assert {k: v for k, v in row.items() if k != "as_of"} == expected, pair


# --- the table from daily partials equals the window over the events ----------------------------------------------

_AS_OFS = (T, T + 7 * H + 123 * US, T + D - US)  # midnight, inside a day, the day's last microsecond


def _around(as_of):
    """Instants where the decomposition could slip: the window's start, the midnight after it, as_of's midnight and
    as_of itself, each +- 1 us, and one inside each part."""
    from datetime import UTC, datetime, time

    start = as_of - 30 * D
    midnight = datetime.combine(start.date() + D, time(), UTC)
    today = datetime.combine(as_of.date(), time(), UTC)
    return sorted({x for t in (start, midnight, today, as_of) for x in (t - US, t, t + US)} | {start + 3 * H,
                                                                                             as_of - 5 * D})


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_the_table_from_daily_partials_equals_the_window_over_the_events(spark, data):
    """ring_features (whole days from gold.ring_signal_days, the window's first day from the events) equals
    ring_features_at (every event of [t - 30 d, t) joined per point) on every pair of users but self pairs, and
    has a row exactly for the pairs with a non-default feature."""
    as_of = data.draw(st.sampled_from(_AS_OFS))
    at = st.sampled_from(_around(as_of))
    users = st.sampled_from((1, 2, 3))
    segments = {a: segment(100 * a, a, as_of - 40 * D) for a in (1, 2, 3)}
    engagements = [engagement(k, v, a, t) for k, v, a, t in data.draw(st.lists(st.tuples(
        st.sampled_from(["dm_sent", "like", "comment", "reply", "profile_visit", "share"]), users, users, at),
        max_size=15))]
    views = [view(segments[a], v, t, completion=c) for v, a, t, c in data.draw(st.lists(st.tuples(
        users, users, at, st.sampled_from([0.5, 1.0])), max_size=12))]
    relationships = [relation(r, u, o, t) for r, u, o, t in data.draw(st.lists(st.tuples(
        st.sampled_from(["follow", "close_friend"]), users, users, at), max_size=4))]
    silver = frames(spark, segments=list(segments.values()), view_events=views, engagements=engagements,
                    relationships=relationships)
    args = (silver["engagements"], silver["view_events"], silver["relationships"])
    table = collect(ring_features(*args, as_of), ["viewer_id", "author_id"])
    pairs = [(v, a, as_of) for v in (1, 2, 3) for a in (1, 2, 3) if v != a]
    points = spark.createDataFrame(pairs, "viewer_id bigint, author_id bigint, t timestamp")
    expected = collect(ring_features_at(*args, points), ["viewer_id", "author_id"])
    default = [0, 0, 0, 0, 0, 0, None, False, False]
    for pair, row in expected.items():
        features = [row[f] for f in FEATURES]
        if features == default:
            assert pair not in table, pair
        else:
            assert [table[pair][f] for f in FEATURES] == features, pair
    assert set(table) <= set(expected)

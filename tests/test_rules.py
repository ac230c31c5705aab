"""The business rules of storylake/rules: exact values, and the SQL generated from them run on DuckDB."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storylake.rules import audience, lifetimes, tray_score, views

T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)


def test_lifetimes_and_their_sql_and_texts() -> None:
    assert (lifetimes.SEGMENT_LIFETIME, lifetimes.CLEANUP_GRACE) == (timedelta(hours=24), timedelta(hours=1))
    assert (lifetimes.SEEN_BY_LIFETIME, lifetimes.PENDING_VIEW_WAIT) == (timedelta(hours=48), timedelta(hours=48))
    assert [lifetimes.interval_sql(d) for d in (timedelta(hours=24), timedelta(days=30), timedelta(minutes=90),
                                                timedelta(seconds=3), timedelta(microseconds=1500))] == [
        "INTERVAL 24 HOURS", "INTERVAL 720 HOURS", "INTERVAL 90 MINUTES", "INTERVAL 3 SECONDS",
        "INTERVAL 1500 MICROSECONDS",
    ]
    assert [lifetimes.duration_text(d) for d in (timedelta(hours=48), timedelta(hours=1), timedelta(days=30),
                                                 timedelta(minutes=90), timedelta(seconds=3))] == [
        "48 h", "1 h", "30 d", "90 min", "3 s"
    ]
    with pytest.raises(ValueError, match="interval must be positive"):
        lifetimes.interval_sql(timedelta(0))
    assert lifetimes.expires_at(T0) == T0 + timedelta(hours=24)
    assert lifetimes.seen_by_open(T0, T0 + timedelta(hours=47, minutes=59)) is True
    assert lifetimes.seen_by_open(T0, T0 + timedelta(hours=48)) is False


def test_lifetime_sql_agrees_with_python_on_duckdb() -> None:
    con = duckdb.connect()
    created = T0.replace(tzinfo=None)
    expires, open_before, open_at = con.execute(
        f"SELECT {lifetimes.expires_at_sql('$c')}, {lifetimes.seen_by_open_sql('$c', '$n1')}, "  # noqa: S608
        f"{lifetimes.seen_by_open_sql('$c', '$n2')}",
        {"c": created, "n1": created + timedelta(hours=48) - timedelta(microseconds=1),
         "n2": created + timedelta(hours=48)},
    ).fetchone()
    assert (expires, open_before, open_at) == (created + timedelta(hours=24), True, False)


@pytest.mark.parametrize(
    ("completion", "duration", "counted"),
    [(1.0, 0, True), (0.99, 2999, False), (0.5, 3000, True), (0.0, 2999, False), (None, 3000, True), (1.0, None, True)],
)
def test_counts_as_view_in_python_and_sql(completion: float | None, duration: int | None, counted: bool) -> None:
    assert views.counts_as_view(completion, duration) is counted
    sql = views.counts_as_view_sql("$p", "$d")
    got = duckdb.connect().execute(f"SELECT coalesce({sql}, false)", {"p": completion, "d": duration}).fetchone()[0]  # noqa: S608
    assert got is counted
    assert views.COUNTS_AS_VIEW_SQL == "(completion_pct = 1 OR view_duration_ms >= 3000)"


def test_relation_flags_definition() -> None:
    block_a, block_v = audience.relation_flag("blocked_by_author"), audience.relation_flag("blocked_by_viewer")
    assert (block_a.author_column, block_a.viewer_column) == ("user_id", "other_user_id")
    assert (block_v.author_column, block_v.viewer_column) == ("other_user_id", "user_id")
    assert audience.relation_flag("follows").relation == "follow"
    assert [audience.audience_flag(f) for f in audience.PAIR_FLAGS] == [
        "blocked", "blocked", "hidden", "close_friend", "follows", "approved"
    ]
    assert audience.pair_flags_for(["blocked", "author_private", "follows"]) == [
        "blocked_by_author", "blocked_by_viewer", "follows"
    ]
    assert audience.derived_flag_sql("blocked") == "(blocked_by_author OR blocked_by_viewer)"
    with pytest.raises(KeyError, match="no relation sets the pair flag 'blocked'"):
        audience.relation_flag("blocked")


def test_relation_edges_sql_on_duckdb() -> None:
    """Each relationship row becomes the edges of the flags it sets, oriented author -> viewer."""
    con = duckdb.connect()
    con.execute("""CREATE TABLE rel AS SELECT * FROM (VALUES
        ('block', 10, 20, TIMESTAMP '2026-11-01', NULL::TIMESTAMP),
        ('follow', 20, 10, TIMESTAMP '2026-11-01', TIMESTAMP '2026-11-02'),
        ('close_friend', 10, 30, TIMESTAMP '2026-11-01', NULL::TIMESTAMP),
        ('private', 10, 0, TIMESTAMP '2026-11-01', NULL::TIMESTAMP)
    ) AS t(relation, user_id, other_user_id, valid_from, valid_to)""")
    rows = con.execute(f"SELECT author_key, viewer_key, flag FROM ({audience.relation_edges_sql('rel')}) "  # noqa: S608
                       "ORDER BY flag, author_key").fetchall()
    assert rows == [(10, 20, "blocked_by_author"), (20, 10, "blocked_by_viewer"), (10, 30, "close_friend"),
                    (10, 20, "follows")]
    coded = audience.relation_edges_sql("rel", ["follows"], flag_sql=lambda f: "7", author_key="a", viewer_key="v",
                                        flag_column="code")
    assert con.execute(f"SELECT a, v, code FROM ({coded})").fetchall() == [(10, 20, 7)]  # noqa: S608
    with pytest.raises(ValueError, match="no pair flag among"):
        audience.relation_edges_sql("rel", ["blocked"])


def test_tray_score_weights_by_name() -> None:
    feats = {"dm_count_30d": np.array([1, 0]), "likes_given_30d": np.array([0, 2]),
             "comments_given_30d": np.array([0, 1]), "story_replies_30d": np.array([3, 0])}
    got = tray_score.rank_score(np.array([0.0, 12.0]), feats, np.array([False, True]))
    assert got[0] == pytest.approx(100 + 50 + 30, rel=1e-12)
    assert got[1] == pytest.approx((100 * math.exp(-1) + 60 + 20) * 1.5, rel=1e-12)
    assert tuple(tray_score.FEATURE_WEIGHTS) == ("dm_count_30d", "likes_given_30d", "comments_given_30d",
                                                 "story_replies_30d")


_US = st.integers(min_value=-(2**50), max_value=2**50)


@settings(max_examples=200, deadline=None)
@given(valid_from=_US, valid_to=st.none() | _US, t=_US)
def test_holds_at_us_agrees_with_holds_at_sql(valid_from: int, valid_to: int | None, t: int) -> None:
    """The interval rule of serving's in-process indexes (epoch µs, open end OPEN_END_US) is the SQL one."""
    con = duckdb.connect()
    sql = con.execute(
        f"SELECT {audience.holds_at_sql('r', '$t')} FROM (SELECT $f::BIGINT AS valid_from, $u::BIGINT AS valid_to) r",  # noqa: S608
        {"t": t, "f": valid_from, "u": valid_to},
    ).fetchone()[0]
    to = audience.OPEN_END_US if valid_to is None else valid_to
    assert bool(audience.holds_at_us(valid_from, to, t)) is sql
    as_arrays = audience.holds_at_us(np.array([valid_from]), np.array([to]), t)
    assert as_arrays.tolist() == [sql]

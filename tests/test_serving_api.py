"""insights(), JSON rendering, cursors and the audience truth table."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import duckdb
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving import api, audience_table, cursor
from serving.publish import publish
from storylake.clock import iso, iso_us
from storylake.errors import NotFoundError
from storylake.rules.audience import ALLOWED_SQL, DENIAL_REASON_SQL
from storylake.settings import Settings
from tests.lake_builder import HOUR, LakeBuilder
from toolkit.exits import exit_code_for

T = datetime(2026, 11, 2, 12, tzinfo=UTC)
A = 10


def snap_of(lake: LakeBuilder) -> api.Snapshot:
    lake.write()
    publish(lake.settings, T)
    return api.open_current(lake.settings)


def test_insights_for_the_author_only(settings: Settings) -> None:
    lake = LakeBuilder(settings, as_of=T)  # the hand-written gold rows below are as of T too (one gold state)
    lake.segment(1, A, T - 30 * HOUR, story_id=1).segment(2, A, T - 2 * HOUR, story_id=2)
    lake.segment(3, 11, T - HOUR)
    lake.view(2, 20, T - HOUR).view(2, 21, T - HOUR).view(1, 20, T - 29 * HOUR)
    lake.question(77, 2, 20, "where is this?", T - HOUR).question(77, 2, 21, "nice!", T - HOUR / 2)
    lake.question(78, 3, 20, "not for A", T - HOUR)
    lake.gold_row(
        "gold.author_daily_insights", author_id=A, day=date(2026, 11, 2), segments_posted=1, impressions=3,
        reach=2, reach_7d=2, reach_28d=2, exits=0, replies=0, shares=0, profile_visits=0, follows=0, link_clicks=0,
        as_of=T,
    )
    lake.gold_row(
        "gold.sticker_results", sticker_id=77, segment_id=2, author_id=A, sticker_type="question", responses=2,
        question_responses=2, countdown_optins=0, add_yours_reshares=0, taps=0, as_of=T,
    )
    snap = snap_of(lake)
    data = api.insights(snap, A, A, T)
    assert [s["segment_id"] for s in data["segments"]] == [1, 2]
    assert [s["reach"] for s in data["segments"]] == [1, 2]
    assert [(s["is_active"], s["seen_by_available"]) for s in data["segments"]] == [(False, True), (True, True)]
    assert [s["story_id"] for s in data["stories"]] == [1, 2]
    assert data["daily"][0]["reach"] == 2 and data["stickers"][0]["question_responses"] == 2
    assert [(q["user_id"], q["text"]) for q in data["question_responses"]] == [(21, "nice!"), (20, "where is this?")]

    doc = json.loads(api.insights_json(data))
    assert doc["authorId"] == A and doc["now"] == "2026-11-02T12:00:00Z"
    assert doc["daily"][0]["day"] == "2026-11-02" and doc["segments"][0]["created_at"] == "2026-11-01T06:00:00Z"
    assert set(doc) == {"authorId", "now", "snapshotId", "asOf", "segments", "stories", "daily", "stickers",
                        "questionResponses"}

    with pytest.raises(PermissionError, match="user 11 may not read the insights of author 10"):
        api.insights(snap, A, 11, T)
    with pytest.raises(NotFoundError, match="author 999"):
        api.insights(snap, 999, 999, T)


def test_error_exit_codes() -> None:
    assert exit_code_for(PermissionError("x"))[0] == 3
    assert exit_code_for(NotFoundError("x"))[0] == 4


def test_iso_times() -> None:
    assert iso(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert iso(datetime(2026, 1, 2, 3, 4, 5, 120, tzinfo=UTC)) == "2026-01-02T03:04:05.000120Z"
    assert iso(None) is None


@given(st.lists(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)),
                max_size=20))
def test_iso_us_renders_many_instants_as_iso(times: list[datetime]) -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    micros = np.array([(t - epoch) // timedelta(microseconds=1) for t in times], dtype=np.int64)
    assert iso_us(micros) == [iso(t) for t in times]


KEY = b"k" * 32


def test_cursor_round_trip_and_tampering() -> None:
    c = cursor.Cursor("tray", "snap1", (5,), T, (False, True, 12.345678901234567, 42))
    token = c.encode(KEY)
    assert "=" not in token and "+" not in token and "/" not in token
    back = cursor.decode(token, key=KEY, kind="tray", snapshot_id="snap1", subject=(5,))
    assert back == c
    with pytest.raises(cursor.StaleCursorError):  # after a publish: stale, whatever the key
        cursor.decode(token, key=b"x" * 32, kind="tray", snapshot_id="snap2", subject=(5,))
    with pytest.raises(cursor.TamperedCursorError, match="invalid cursor"):
        cursor.decode(token, key=b"x" * 32, kind="tray", snapshot_id="snap1", subject=(5,))
    with pytest.raises(ValueError, match="invalid cursor"):
        cursor.decode(token[:-3], key=KEY, kind="tray", snapshot_id="snap1", subject=(5,))
    with pytest.raises(ValueError, match="invalid cursor"):
        cursor.decode("", key=KEY, kind="tray", snapshot_id="snap1", subject=(5,))


@given(flip=st.integers(min_value=0), char=st.sampled_from("A0_-z."))
def test_any_change_to_a_cursor_is_refused(flip: int, char: str) -> None:
    """A client cannot move a cursor's `now` or position: every changed character breaks its tag."""
    token = cursor.Cursor("seen_by", "snap1", (7, 8), T, (1_793_534_400_000_000, 42)).encode(KEY)
    i = flip % len(token)
    if token[i] == char:
        return
    changed = token[:i] + char + token[i + 1:]
    with pytest.raises(ValueError, match="invalid cursor|stale cursor"):  # never accepted
        cursor.decode(changed, key=KEY, kind="seen_by", snapshot_id="snap1", subject=(7, 8))


def test_truth_table_matches_the_sql_rules() -> None:
    """audience_table.allowed_table() is ALLOWED_SQL evaluated by DuckDB; spot-check a few rows against the SQL."""
    table, reasons = audience_table.allowed_table(), audience_table.denial_table()
    con = duckdb.connect()
    cases = [
        dict(is_self=False, audience="public", blocked=False, hidden=False, close_friend=False, author_private=False,
             follows=True, approved=False),
        dict(is_self=False, audience="close_friends", blocked=False, hidden=False, close_friend=False,
             author_private=False, follows=True, approved=False),
        dict(is_self=True, audience="close_friends", blocked=True, hidden=True, close_friend=False,
             author_private=True, follows=False, approved=False),
        dict(is_self=False, audience="public", blocked=False, hidden=False, close_friend=False, author_private=True,
             follows=True, approved=True),
        dict(is_self=False, audience="public", blocked=False, hidden=True, close_friend=True, author_private=False,
             follows=True, approved=True),
    ]
    for case in cases:
        cols = ", ".join(f"$p_{k} AS {k}" for k in case)
        params = {f"p_{k}": v for k, v in case.items()}
        allowed, reason = con.execute(
            f"SELECT {ALLOWED_SQL}, {DENIAL_REASON_SQL} FROM (SELECT {cols})", params  # noqa: S608
        ).fetchone()
        key = (audience_table.AUDIENCES.index(case["audience"]), *(int(case[f]) for f in audience_table.BOOL_FLAGS))
        assert bool(table[key]) == allowed and reasons[key] == reason
    assert [bool(table[(0, 0, 0, 0, 0, 0, 1, 0)]), bool(table[(1, 0, 0, 0, 0, 0, 1, 0)])] == [True, False]

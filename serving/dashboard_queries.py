"""Queries behind the creator dashboards (dashboards/creator/*): shapes for the pages, read from the serving
snapshot through the query API only.

Every function takes the signed-in user as `requester_id` and returns that user's own data: it reads through
serving.api.insights / seen_by / tray with `requester_id` as the requester, so the API's permission checks
apply (PermissionError for anyone else's insights or Seen By). There is no Streamlit here: the dashboards
wrap these functions in st.cache_data with the requester as an explicit argument (dashboards/cached.py).

`now` is explicit everywhere (the dashboards use the snapshot's as_of unless STORYLAKE_NOW overrides it).
Days are UTC days.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from serving import api
from serving.snapshot import Snapshot
from storylake.clock import utc
from storylake.errors import NotFoundError

# Overview KPIs (gold author_daily_insights columns), in display order. Reach is not additive over days: a
# period's reach is the trailing distinct-viewer count gold computes (reach, reach_7d, reach_28d).
KPIS: tuple[tuple[str, str], ...] = (
    ("reach", "Reach"),
    ("impressions", "Impressions"),
    ("exits", "Exits"),
    ("replies", "Replies"),
    ("shares", "Shares"),
    ("profile_visits", "Profile visits"),
    ("link_clicks", "Link clicks"),
)
ADDITIVE = tuple(k for k, _ in KPIS if k != "reach")
PERIODS: tuple[tuple[str, str, int], ...] = (
    ("today", "Today", 1),
    ("7d", "Last 7 days", 7),
    ("28d", "Last 28 days", 28),
)
TRAILING_REACH = {1: "reach", 7: "reach_7d", 28: "reach_28d"}
TREND_DAYS = 28
# Navigation gestures of segment/story insights (DESIGN §5: exits = tap_exit + swipe_down).
NAVIGATION: tuple[tuple[str, str], ...] = (
    ("taps_forward", "Forward"),
    ("taps_back", "Back"),
    ("exits", "Exit"),
    ("swipe_forward", "Next story"),
)
SLIDER_BINS = 10


# --- time --------------------------------------------------------------------------------------


def resolve_now(as_of: datetime, override: str | None) -> datetime:
    """The dashboards' `now`: the snapshot's as_of, or the ISO-8601 value of STORYLAKE_NOW when set."""
    if not override or not override.strip():
        return utc(as_of)
    text = override.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        return utc(datetime.fromisoformat(text))
    except ValueError as exc:
        raise ValueError(
            f"STORYLAKE_NOW={override!r} is not an ISO-8601 time (e.g. 2026-11-02T12:00:00Z)"
        ) from exc


def countdown(expires_at: datetime, now: datetime) -> str:
    """'4h 12m left' before expiry, 'expired 3h 5m ago' after (minutes rounded down)."""
    delta = utc(expires_at) - utc(now)
    if delta.total_seconds() > 0:
        return f"{_duration(delta)} left"
    return f"expired {_duration(-delta)} ago"


def _duration(d: timedelta) -> str:
    minutes = int(d.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins}m"
    return f"{mins}m"


# --- who can sign in (dev mode) -----------------------------------------------------------------

# every segment once: gold's (its reach) and the catalog's recent ones gold has not aggregated yet (its viewer rows)
_AUTHORS_SQL = (
    "SELECT author_id FROM (SELECT author_id, reach AS r FROM segment_insights "
    "UNION ALL SELECT author_id, viewer_rows FROM segment_catalog WHERE gold_reach IS NULL) "
    "GROUP BY author_id ORDER BY sum(r) DESC, count(*) DESC, author_id"
)


def known_authors(snapshot: Snapshot) -> list[int]:
    """Authors with at least one segment in the snapshot, most-viewed first (the dev-mode sign-in list:
    ids only, no figures)."""
    return [int(r[0]) for r in snapshot.db().execute(_AUTHORS_SQL).fetchall()]


# --- shared -------------------------------------------------------------------------------------


def _own_insights(snapshot: Snapshot, requester_id: int, now: datetime) -> dict[str, Any]:
    """The requester's own insights, through the API's permission check (author == requester). A creator who
    has no segment in the snapshot yet gets empty insights (the API's NotFoundError, after its check)."""
    requester_id = int(requester_id)
    try:
        return api.insights(snapshot, author_id=requester_id, requester_id=requester_id, now=utc(now))
    except NotFoundError:
        empty: dict[str, Any] = {"author_id": requester_id, "now": utc(now), "snapshot_id": snapshot.snapshot_id,
                                 "as_of": snapshot.as_of}
        return empty | {k: [] for k in ("segments", "stories", "daily", "hourly", "stickers", "question_responses")}


def _num(value: Any) -> float | None:
    """A finite float, or None (SQL NULL / NaN)."""
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _int(value: Any) -> int:
    f = _num(value)
    return 0 if f is None else int(f)


def _day(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


def _story_label(story_id: int, start: datetime, frames: int, active: bool) -> str:
    state = "live" if active else "ended"
    return f"story {story_id} · {utc(start):%Y-%m-%d %H:%M} UTC · {frames} frame{'s' if frames != 1 else ''} · {state}"


# --- Overview -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OwnRing:
    """The requester's own ring in their tray at `now` (serving.api.tray): 'gradient', 'green', 'grey', or
    'none' when they have no active segment ('unknown' when the snapshot cannot serve a tray at `now`)."""

    state: str
    segment_count: int = 0
    has_unseen: bool = False
    is_close_friends: bool = False


@dataclass(frozen=True)
class Period:
    key: str
    title: str
    start: date
    end: date
    values: dict[str, int]
    previous: dict[str, int]
    # The day whose trailing reach (reach / reach_7d / reach_28d) was used: the last day with activity in the
    # period (None when there was none, reach 0). When it is before `end`, the value covers the window ending
    # that day, an upper bound of the period's reach (no viewer came after it).
    reach_day: date | None
    # "Today so far": the period covers its day until this instant and is compared with the previous day until the
    # same time of day (gold author_hourly_insights); None for whole-day periods.
    until: datetime | None = None


@dataclass(frozen=True)
class Overview:
    requester_id: int
    now: datetime
    as_of: datetime
    ring: OwnRing
    active_stories: pd.DataFrame  # story_id, frames, audience, first_posted, last_posted, expires_at, expires_in,
    # story_reach, story_impressions
    periods: tuple[Period, ...]
    daily: pd.DataFrame  # one row per day of the TREND_DAYS ending today: day, KPIs (0 without activity),
    # reach_7d, reach_28d (missing without activity)


def overview(snapshot: Snapshot, requester_id: int, now: datetime) -> Overview:
    """Active stories with the own ring state, KPIs for today / 7 / 28 days and 28 days of daily trends."""
    now = utc(now)
    data = _own_insights(snapshot, requester_id, now)
    today = now.date()
    by_day = {_day(r["day"]): r for r in data["daily"]}
    periods = tuple(
        _today_so_far(data.get("hourly", []), now, data["as_of"], key, title) if days == 1
        else _period(by_day, today, days, key, title)
        for key, title, days in PERIODS
    )
    return Overview(
        requester_id=int(requester_id),
        now=now,
        as_of=data["as_of"],
        ring=own_ring(snapshot, requester_id, now),
        active_stories=_active_stories(data, now),
        periods=periods,
        daily=_daily_trend(by_day, today),
    )


def own_ring(snapshot: Snapshot, requester_id: int, now: datetime) -> OwnRing:
    """The requester's own ring, from the first page of their own tray (the own ring is always first)."""
    try:
        page = api.tray(snapshot, viewer_id=int(requester_id), now=utc(now), limit=1)
    except ValueError:  # now is before the snapshot's tray window
        return OwnRing("unknown")
    ring = page.rings[0] if page.rings and page.rings[0].is_own else None
    if ring is None:
        return OwnRing("none")
    return OwnRing(ring.ring_state, ring.segment_count, ring.has_unseen, ring.is_close_friends)


def _period(by_day: Mapping[date, dict[str, Any]], end: date, days: int, key: str, title: str) -> Period:
    start = end - timedelta(days=days - 1)
    prev_end = start - timedelta(days=1)
    values = _sums(by_day, start, end)
    previous = _sums(by_day, prev_end - timedelta(days=days - 1), prev_end)
    values["reach"], reach_day = _trailing_reach(by_day, end, days)
    previous["reach"], _ = _trailing_reach(by_day, prev_end, days)
    return Period(key, title, start, end, values, previous, reach_day)


def _today_so_far(hourly: list[dict[str, Any]], now: datetime, as_of: datetime | None, key: str,
                  title: str) -> Period:
    """Today until the last whole hour the data covers (min(now, as_of), floored to the hour) against yesterday
    until the same time of day, from the hourly rows: additive counts summed over the hours, reach = the viewers
    first seen that day in those hours (exact). Comparing a partial day with a whole one would show a fall every
    morning."""
    cut = min(utc(now), utc(as_of)) if as_of is not None else utc(now)
    cut = cut.replace(minute=0, second=0, microsecond=0)
    today = utc(now).date()
    day_start = datetime(today.year, today.month, today.day, tzinfo=UTC)
    current = _hour_sums(hourly, day_start, cut)
    previous = _hour_sums(hourly, day_start - timedelta(days=1), cut - timedelta(days=1))
    return Period(key, title, today, today, current, previous, today if current["reach"] else None,
                  until=max(cut, day_start))


def _hour_sums(hourly: list[dict[str, Any]], start: datetime, end: datetime) -> dict[str, int]:
    rows = [r for r in hourly if start <= utc(r["hour"]) < end]
    out = {m: sum(_int(r[m]) for r in rows) for m in ADDITIVE}
    out["reach"] = sum(_int(r["new_viewers"]) for r in rows)
    return out


def _sums(by_day: Mapping[date, dict[str, Any]], start: date, end: date) -> dict[str, int]:
    rows = [r for d, r in by_day.items() if start <= d <= end]
    return {m: sum(_int(r[m]) for r in rows) for m in ADDITIVE}


def _trailing_reach(by_day: Mapping[date, dict[str, Any]], end: date, days: int) -> tuple[int, date | None]:
    inside = [d for d in by_day if end - timedelta(days=days - 1) <= d <= end]
    if not inside:
        return 0, None
    last = max(inside)
    return _int(by_day[last][TRAILING_REACH[days]]), last


def _daily_trend(by_day: Mapping[date, dict[str, Any]], today: date) -> pd.DataFrame:
    rows = []
    for i in range(TREND_DAYS - 1, -1, -1):
        d = today - timedelta(days=i)
        r = by_day.get(d)
        row: dict[str, Any] = {"day": pd.Timestamp(d)}
        row.update({m: _int(r[m]) if r else 0 for m, _ in KPIS})
        row["reach_7d"] = _int(r["reach_7d"]) if r else None
        row["reach_28d"] = _int(r["reach_28d"]) if r else None
        rows.append(row)
    df = pd.DataFrame(rows)
    for c in ("reach_7d", "reach_28d"):
        df[c] = df[c].astype("Int64")
    return df


def _active_stories(data: dict[str, Any], now: datetime) -> pd.DataFrame:
    stories = {s["story_id"]: s for s in data["stories"]}
    groups: dict[int, list[dict[str, Any]]] = {}
    for seg in data["segments"]:
        if seg["is_active"]:
            groups.setdefault(int(seg["story_id"]), []).append(seg)
    rows = []
    for story_id, segs in groups.items():
        expires = max(utc(s["expires_at"]) for s in segs)
        story = stories.get(story_id, {})
        rows.append({
            "story_id": story_id,
            "frames": len(segs),
            "audience": "close friends" if any(s["audience"] == "close_friends" for s in segs) else "public",
            "first_posted": min(utc(s["created_at"]) for s in segs),
            "last_posted": max(utc(s["created_at"]) for s in segs),
            "expires_at": expires,
            "expires_in": countdown(expires, now),
            "story_reach": _int(story.get("reach")),
            "story_impressions": _int(story.get("impressions")),
        })
    cols = ["story_id", "frames", "audience", "first_posted", "last_posted", "expires_at", "expires_in",
            "story_reach", "story_impressions"]
    return pd.DataFrame(rows, columns=cols).sort_values("last_posted", ascending=False, ignore_index=True)


# --- Story detail ---------------------------------------------------------------------------------


def stories(snapshot: Snapshot, requester_id: int, now: datetime) -> pd.DataFrame:
    """The requester's stories, newest first: story_id, story_start, segment_count, reach, impressions,
    is_active (a frame still live at `now`), label."""
    data = _own_insights(snapshot, requester_id, now)
    active = {int(s["story_id"]) for s in data["segments"] if s["is_active"]}
    rows = [
        {
            "story_id": int(s["story_id"]),
            "story_start": utc(s["story_start"]),
            "segment_count": _int(s["segment_count"]),
            "reach": _int(s["reach"]),
            "impressions": _int(s["impressions"]),
            "is_active": int(s["story_id"]) in active,
        }
        for s in data["stories"]
    ]
    df = pd.DataFrame(rows, columns=["story_id", "story_start", "segment_count", "reach", "impressions", "is_active"])
    df = df.sort_values(["story_start", "story_id"], ascending=[False, False], ignore_index=True)
    df["label"] = [
        _story_label(r.story_id, r.story_start, r.segment_count, r.is_active) for r in df.itertuples(index=False)
    ]
    return df


@dataclass(frozen=True)
class StoryDetail:
    story_id: int
    story_start: datetime
    segment_count: int
    reach: int
    impressions: int
    completed_viewers: int
    completion_rate: float | None  # completed viewers / reach
    avg_view_ms: float | None  # total view time / impressions
    totals: dict[str, int]  # navigation gestures and engagements of the whole story
    frames: pd.DataFrame  # one row per frame, see _FRAME_COLUMNS
    navigation: pd.DataFrame  # action, count (whole story)
    navigation_by_frame: pd.DataFrame  # frame_index, action, count


_FRAME_COLUMNS = [
    "frame_index", "segment_id", "media_type", "audience", "created_at", "expires_at", "status", "expires_in",
    "reach", "impressions", "viewers_lost", "drop_off", "exit_rate", "retention_from_first", "completion_rate",
    "avg_view_ms",
    "taps_forward", "taps_back", "exits", "swipe_forward",
]
_STORY_TOTALS = ("taps_forward", "taps_back", "exits", "swipe_forward", "replies", "shares", "profile_visits",
                 "follows", "link_clicks", "sticker_interactions")


def story_detail(snapshot: Snapshot, requester_id: int, now: datetime, story_id: int) -> StoryDetail:
    """Per-frame funnel (reach per frame; viewers lost and drop-off on the way to the next frame, gold's sequential
    definition; exit rate), navigation
    breakdown, completion and average view time of one of the requester's stories. NotFoundError when
    `story_id` is not one of the requester's stories."""
    now = utc(now)
    story_id = int(story_id)
    data = _own_insights(snapshot, requester_id, now)
    story = next((s for s in data["stories"] if int(s["story_id"]) == story_id), None)
    segs = sorted(
        (s for s in data["segments"] if int(s["story_id"]) == story_id),
        key=lambda s: (_int(s["frame_index"]), utc(s["created_at"]), int(s["segment_id"])),
    )
    if story is None and not segs:
        raise NotFoundError(f"story {story_id} is not one of the stories of user {int(requester_id)}")

    frames = []
    first_reach: int | None = None
    for seg in segs:
        reach = _int(seg["reach"])
        first_reach = reach if first_reach is None else first_reach
        status = "deleted" if seg["is_deleted"] else ("live" if seg["is_active"] else "expired")
        frames.append({
            "frame_index": _int(seg["frame_index"]),
            "segment_id": int(seg["segment_id"]),
            "media_type": seg["media_type"],
            "audience": seg["audience"],
            "created_at": utc(seg["created_at"]),
            "expires_at": utc(seg["expires_at"]),
            "status": status,
            "expires_in": "deleted" if status == "deleted" else countdown(seg["expires_at"], now),
            "reach": reach,
            "impressions": _int(seg["impressions"]),
            # of the viewers who could go on to the next frame (it was live when they watched), those who did not
            "viewers_lost": (None if not _int(seg.get("continuation_viewers"))
                             else _int(seg["continuation_viewers"]) - _int(seg["continued_viewers"])),
            "drop_off": None if (rate := _num(seg.get("continuation_rate"))) is None else 1.0 - rate,
            "exit_rate": None if not reach else _int(seg["exit_viewers"]) / reach,
            "retention_from_first": None if not first_reach else reach / first_reach,
            "completion_rate": _ratio(seg.get("completion_rate"), seg["completed_viewers"], reach),
            "avg_view_ms": _ratio(seg.get("avg_view_ms"), seg["total_view_ms"], _int(seg["impressions"])),
            **{k: _int(seg[k]) for k, _ in NAVIGATION},
        })
    frames_df = pd.DataFrame(frames, columns=_FRAME_COLUMNS)
    frames_df["viewers_lost"] = frames_df["viewers_lost"].astype("Int64")

    src: dict[str, Any] = story if story is not None else _sum_story(segs)
    totals = {k: _int(src.get(k)) for k in _STORY_TOTALS}
    reach, impressions = _int(src.get("reach")), _int(src.get("impressions"))
    navigation = pd.DataFrame([{"action": label, "count": totals[k]} for k, label in NAVIGATION])
    by_frame = pd.DataFrame(
        [{"frame_index": f["frame_index"], "action": label, "count": f[k]} for f in frames for k, label in NAVIGATION],
        columns=["frame_index", "action", "count"],
    )
    return StoryDetail(
        story_id=story_id,
        story_start=utc(src["story_start"]) if src.get("story_start") is not None else frames[0]["created_at"],
        segment_count=_int(src.get("segment_count")) or len(segs),
        reach=reach,
        impressions=impressions,
        completed_viewers=_int(src.get("completed_viewers")),
        completion_rate=_ratio(src.get("completion_rate"), src.get("completed_viewers"), reach),
        avg_view_ms=_ratio(src.get("avg_view_ms"), src.get("total_view_ms"), impressions),
        totals=totals,
        frames=frames_df,
        navigation=navigation,
        navigation_by_frame=by_frame,
    )


def _ratio(stored: Any, numerator: Any, denominator: int) -> float | None:
    """Gold's stored ratio, or numerator / denominator when gold left it null (None when that is 0)."""
    value = _num(stored)
    if value is not None:
        return value
    return None if not denominator else _int(numerator) / denominator


def _sum_story(segs: list[dict[str, Any]]) -> dict[str, Any]:
    """Story figures when gold has no story row yet (reach: the largest frame reach, a lower bound)."""
    out: dict[str, Any] = {k: sum(_int(s[k]) for s in segs) for k in (*_STORY_TOTALS, "impressions",
                                                                          "completed_viewers", "total_view_ms")}
    out["reach"] = max((_int(s["reach"]) for s in segs), default=0)
    out["story_start"] = min(utc(s["created_at"]) for s in segs)
    out["segment_count"] = len(segs)
    return out


# --- Seen By ----------------------------------------------------------------------------------------


def seen_by_segments(snapshot: Snapshot, requester_id: int, now: datetime) -> pd.DataFrame:
    """The requester's segments (not deleted), newest first: segment_id, story_id, frame_index, created_at,
    reach, seen_by_available (within 48 h of posting at `now`), label."""
    data = _own_insights(snapshot, requester_id, now)
    rows = [
        {
            "segment_id": int(s["segment_id"]),
            "story_id": int(s["story_id"]),
            "frame_index": _int(s["frame_index"]),
            "created_at": utc(s["created_at"]),
            "reach": _int(s["reach"]),
            "seen_by_available": bool(s["seen_by_available"]),
        }
        for s in data["segments"]
        if not s["is_deleted"]
    ]
    cols = ["segment_id", "story_id", "frame_index", "created_at", "reach", "seen_by_available"]
    df = pd.DataFrame(rows, columns=cols).sort_values(["created_at", "segment_id"], ascending=False,
                                                      ignore_index=True)
    df["label"] = [
        f"segment {r.segment_id} · story {r.story_id} frame {r.frame_index} · {r.created_at:%Y-%m-%d %H:%M} UTC"
        + ("" if r.seen_by_available else " · Seen By expired")
        for r in df.itertuples(index=False)
    ]
    return df


@dataclass(frozen=True)
class SeenByView:
    segment_id: int
    total: int
    viewers: pd.DataFrame  # viewer_id, viewed_at, view_source, completion_pct (newest first)
    has_more: bool
    next_cursor: str | None
    now: datetime


def seen_by_page(
    snapshot: Snapshot, requester_id: int, now: datetime, segment_id: int, limit: int = 50, cursor: str | None = None
) -> SeenByView:
    """One page of a segment's Seen By list as `requester_id` (serving.api.seen_by: PermissionError unless
    the requester is the author, SeenByExpiredError 48 h after posting, NotFoundError for a deleted segment)."""
    page = api.seen_by(snapshot, segment_id=int(segment_id), requester_id=int(requester_id), now=utc(now),
                       limit=int(limit), cursor=cursor)
    viewers = pd.DataFrame(
        [
            {"viewer_id": v.viewer_id, "viewed_at": v.viewed_at, "view_source": v.view_source,
             "completion_pct": v.completion_pct}
            for v in page.viewers
        ],
        columns=["viewer_id", "viewed_at", "view_source", "completion_pct"],
    )
    return SeenByView(page.segment_id, page.total, viewers, page.has_more, page.next_cursor, page.now)


# --- Stickers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChoiceResult:
    """A poll or quiz: votes per option (options: option, votes, pct, is_correct)."""

    sticker_id: int
    segment_id: int
    story_id: int | None
    sticker_type: str
    responses: int
    votes: int
    options: pd.DataFrame
    correct_index: int | None
    correct_rate: float | None


@dataclass(frozen=True)
class SliderResult:
    sticker_id: int
    segment_id: int
    story_id: int | None
    responses: int
    mean: float | None
    histogram: pd.DataFrame  # bin ("0.0–0.1"), lower, count


@dataclass(frozen=True)
class StickerBoard:
    polls: tuple[ChoiceResult, ...]
    quizzes: tuple[ChoiceResult, ...]
    sliders: tuple[SliderResult, ...]
    questions: pd.DataFrame  # inbox, newest first: sticker_id, segment_id, user_id, text, responded_at
    countdowns: pd.DataFrame  # sticker_id, segment_id, story_id, opt_ins
    others: pd.DataFrame  # sticker_id, segment_id, story_id, sticker_type, responses, add_yours_reshares, taps


def sticker_board(
    snapshot: Snapshot, requester_id: int, now: datetime, story_id: int | None = None
) -> StickerBoard:
    """The requester's sticker results (all stories, or one story), newest segment first."""
    data = _own_insights(snapshot, requester_id, now)
    seg_story = {int(s["segment_id"]): int(s["story_id"]) for s in data["segments"]}
    seg_time = {int(s["segment_id"]): utc(s["created_at"]) for s in data["segments"]}

    def wanted(segment_id: int) -> bool:
        return story_id is None or seg_story.get(int(segment_id)) == int(story_id)

    rows = [r for r in data["stickers"] if wanted(r["segment_id"])]
    oldest = datetime.min.replace(tzinfo=UTC)
    rows.sort(key=lambda r: (seg_time.get(int(r["segment_id"]), oldest), int(r["sticker_id"])), reverse=True)
    polls, quizzes, sliders, countdowns, others = [], [], [], [], []
    for r in rows:
        kind = r["sticker_type"]
        sid, seg = int(r["sticker_id"]), int(r["segment_id"])
        story = seg_story.get(seg)
        if kind in ("poll", "quiz"):
            (polls if kind == "poll" else quizzes).append(_choice(r, story))
        elif kind == "slider":
            sliders.append(_slider(r, story))
        elif kind == "countdown":
            countdowns.append({"sticker_id": sid, "segment_id": seg, "story_id": story,
                               "opt_ins": _int(r["countdown_optins"])})
        elif kind != "question":
            others.append({"sticker_id": sid, "segment_id": seg, "story_id": story, "sticker_type": kind,
                           "responses": _int(r["responses"]), "add_yours_reshares": _int(r["add_yours_reshares"]),
                           "taps": _int(r["taps"])})
    questions = pd.DataFrame(
        [
            {"sticker_id": int(q["sticker_id"]), "segment_id": int(q["segment_id"]), "user_id": int(q["user_id"]),
             "text": q["text"], "responded_at": utc(q["responded_at"])}
            for q in data["question_responses"]
            if wanted(q["segment_id"])
        ],
        columns=["sticker_id", "segment_id", "user_id", "text", "responded_at"],
    )
    return StickerBoard(
        polls=tuple(polls),
        quizzes=tuple(quizzes),
        sliders=tuple(sliders),
        questions=questions,
        countdowns=pd.DataFrame(countdowns, columns=["sticker_id", "segment_id", "story_id", "opt_ins"]),
        others=pd.DataFrame(others, columns=["sticker_id", "segment_id", "story_id", "sticker_type", "responses",
                                             "add_yours_reshares", "taps"]),
    )


def _choice(r: dict[str, Any], story_id: int | None) -> ChoiceResult:
    labels = list(r.get("options") or [])
    counts = [_int(c) for c in (r.get("option_counts") or [])]
    counts += [0] * (len(labels) - len(counts))
    pcts = list(r.get("option_pcts") or [])
    pcts += [None] * (len(labels) - len(pcts))
    correct = None if _num(r.get("correct_index")) is None else _int(r["correct_index"])
    votes = sum(counts[: len(labels)])
    options = pd.DataFrame(
        [
            {"option": label, "votes": counts[i], "pct": _num(pcts[i]), "is_correct": correct == i}
            for i, label in enumerate(labels)
        ],
        columns=["option", "votes", "pct", "is_correct"],
    )
    return ChoiceResult(
        sticker_id=int(r["sticker_id"]), segment_id=int(r["segment_id"]), story_id=story_id,
        sticker_type=r["sticker_type"], responses=_int(r["responses"]), votes=votes, options=options,
        correct_index=correct, correct_rate=_num(r.get("correct_rate")),
    )


def _slider(r: dict[str, Any], story_id: int | None) -> SliderResult:
    counts = [_int(c) for c in (r.get("slider_histogram") or [])] or [0] * SLIDER_BINS
    histogram = pd.DataFrame(
        [
            {"bin": f"{i / SLIDER_BINS:.1f}–{(i + 1) / SLIDER_BINS:.1f}", "lower": i / SLIDER_BINS, "count": c}
            for i, c in enumerate(counts)
        ],
        columns=["bin", "lower", "count"],
    )
    return SliderResult(
        sticker_id=int(r["sticker_id"]), segment_id=int(r["segment_id"]), story_id=story_id,
        responses=_int(r["responses"]), mean=_num(r.get("slider_mean")), histogram=histogram,
    )

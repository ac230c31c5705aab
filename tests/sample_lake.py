"""A small hand-built lake with a published snapshot, for working on the dashboards and for their tests.

No Spark: silver/gold/ops Delta tables are written with delta-rs from the contracts' Arrow schemas
(tests.lake_builder), then serving.publish.publish() builds the snapshot. Two creators with disjoint,
recognisable ids and figures, so a test can tell whose data a page shows:

    creator 1001 (A): a live 3-frame story 5101 (segments 5101-5103, 23/15/9 viewers 3001-3023), an older
                      story 5001 (5001-5003, Seen By expired, 5003 deleted), every sticker type (7001-7007),
                      35 days of daily insights
    creator 2002 (B): a live close-friends story 6101 (segments 6101-6102, viewers 4001-4012), a poll and a
                      question (8001-8002), figures in the thousands (impressions 9,173 today)

    python -m tests.sample_lake            # builds it under $STORYLAKE_LAKE (default .storylake/lake)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from serving.publish import PublishReport, publish
from storylake.lake import write_table
from storylake.settings import Settings
from tests.lake_builder import DAY, HOUR, LakeBuilder

AS_OF = datetime(2026, 11, 2, 12, tzinfo=UTC)
AUTHOR_A, AUTHOR_B = 1001, 2002
MINUTE = timedelta(minutes=1)
SOURCES = ("tray", "profile", "reshare", "mention")
VIEW_MS = 4200


@dataclass(frozen=True)
class Frame:
    segment_id: int
    author_id: int
    story_id: int
    frame_index: int
    created_at: datetime
    viewers: tuple[int, ...]
    completed: int  # the first `completed` viewers watched to the end
    nav: tuple[int, int, int, int]  # taps_forward, taps_back, exits, swipe_forward
    engagement: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)  # replies, shares, profile_visits, follows, links
    media_type: str = "photo"
    audience: str = "public"
    is_deleted: bool = False


def frames(as_of: datetime = AS_OF) -> tuple[Frame, ...]:
    t = as_of
    a_viewers = tuple(range(3001, 3024))
    b_viewers = tuple(range(4001, 4013))
    return (
        # A: live story 5101
        Frame(5101, AUTHOR_A, 5101, 1, t - 6 * HOUR, a_viewers, 18, (14, 2, 6, 1), (2, 1, 3, 1, 0)),
        Frame(5102, AUTHOR_A, 5101, 2, t - 5 * HOUR, a_viewers[:15], 11, (9, 3, 5, 1), (1, 0, 1, 0, 2),
              media_type="video"),
        Frame(5103, AUTHOR_A, 5101, 3, t - 4 * HOUR, a_viewers[:9], 7, (4, 1, 3, 2), (0, 1, 0, 0, 1)),
        # A: story 5001, three days old (Seen By expired), frame 3 deleted
        Frame(5001, AUTHOR_A, 5001, 1, t - 72 * HOUR, (3101, 3102, 3103, 3104), 3, (3, 0, 1, 0)),
        Frame(5002, AUTHOR_A, 5001, 2, t - 71 * HOUR, (3101, 3102), 2, (1, 0, 1, 0)),
        Frame(5003, AUTHOR_A, 5001, 3, t - 70 * HOUR, (), 0, (0, 0, 0, 0), is_deleted=True),
        # B: live close-friends story 6101
        Frame(6101, AUTHOR_B, 6101, 1, t - 3 * HOUR, b_viewers, 10, (8, 1, 3, 0), (3, 2, 0, 0, 0),
              audience="close_friends"),
        Frame(6102, AUTHOR_B, 6101, 2, t - 2 * HOUR, b_viewers[:7], 6, (5, 0, 2, 0)),
    )


def daily_rows(author_id: int, as_of: datetime = AS_OF) -> list[dict[str, Any]]:
    """35 days of author_daily_insights (a gap every 9 days: days without activity have no row)."""
    today: date = as_of.date()
    big = author_id == AUTHOR_B
    rows = []
    for d in range(35):
        if d % 9 == 4:
            continue
        reach = (4400 + 3 * d) if big else (20 + (d * 7) % 19)
        rows.append({
            "author_id": author_id,
            "day": today - timedelta(days=d),
            "segments_posted": 1 + d % 3,
            "impressions": (9173 + 10 * d) if big else (50 + (d * 13) % 37),
            "reach": reach,
            "reach_7d": reach + ((2100 + d) if big else (25 + d % 5)),
            "reach_28d": reach + ((5300 + d) if big else (60 + d % 7)),
            "exits": (1700 + d) if big else (5 + d % 6),
            "replies": (310 + d) if big else d % 4,
            "shares": (270 + d) if big else d % 3,
            "profile_visits": (830 + d) if big else (2 + d % 5),
            "follows": d % 2,
            "link_clicks": (590 + d) if big else d % 2,
            "as_of": as_of,
        })
    return rows


HOURLY_COUNTS = ("impressions", "exits", "replies", "shares", "profile_visits", "follows", "link_clicks")


def _split(total: int, hours: int) -> list[int]:
    """`total` spread over `hours` hours with weights 1, 2, 3, 4, 1, 2, ... (the remainder in the last hour)."""
    weights = [1 + h % 4 for h in range(hours)]
    parts = [total * w // sum(weights) for w in weights]
    parts[-1] += total - sum(parts)
    return parts


def hourly_rows(author_id: int, as_of: datetime = AS_OF) -> list[dict[str, Any]]:
    """author_hourly_insights of today (the hours before as_of) and yesterday (24 hours): each day's daily_rows
    counts spread over its hours, its reach as the viewers first seen in each hour (so today's hours add up to
    today's daily row)."""
    daily = {r["day"]: r for r in daily_rows(author_id, as_of)}
    rows = []
    for d in (0, 1):
        day = as_of.date() - timedelta(days=d)
        hours = as_of.hour if d == 0 else 24
        if day not in daily or hours == 0:
            continue
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        split = {m: _split(daily[day][m], hours) for m in HOURLY_COUNTS}
        new_viewers = _split(daily[day]["reach"], hours)
        for h in range(hours):
            rows.append({"author_id": author_id, "day": day, "hour": start + h * HOUR, "new_viewers": new_viewers[h],
                         **{m: split[m][h] for m in HOURLY_COUNTS}, "as_of": as_of})
    return rows


def sticker_rows(as_of: datetime = AS_OF) -> list[dict[str, Any]]:
    zero = {"question_responses": 0, "countdown_optins": 0, "add_yours_reshares": 0, "taps": 0, "as_of": as_of}
    return [
        {**zero, "sticker_id": 7001, "segment_id": 5101, "author_id": AUTHOR_A, "sticker_type": "poll",
         "responses": 20, "options": ["Beach", "Mountains"], "option_counts": [14, 6], "option_pcts": [0.7, 0.3]},
        {**zero, "sticker_id": 7002, "segment_id": 5102, "author_id": AUTHOR_A, "sticker_type": "quiz",
         "responses": 12, "options": ["1969", "1972", "1981"], "option_counts": [8, 3, 1],
         "option_pcts": [8 / 12, 3 / 12, 1 / 12], "correct_index": 0, "correct_rate": 8 / 12},
        {**zero, "sticker_id": 7003, "segment_id": 5103, "author_id": AUTHOR_A, "sticker_type": "slider",
         "responses": 11, "slider_mean": 0.61, "slider_histogram": [0, 0, 1, 1, 0, 2, 3, 2, 1, 1]},
        {**zero, "sticker_id": 7004, "segment_id": 5101, "author_id": AUTHOR_A, "sticker_type": "question",
         "responses": 2, "question_responses": 2},
        {**zero, "sticker_id": 7005, "segment_id": 5102, "author_id": AUTHOR_A, "sticker_type": "countdown",
         "responses": 5, "countdown_optins": 5},
        {**zero, "sticker_id": 7006, "segment_id": 5103, "author_id": AUTHOR_A, "sticker_type": "link",
         "responses": 4, "taps": 4},
        {**zero, "sticker_id": 7007, "segment_id": 5001, "author_id": AUTHOR_A, "sticker_type": "add_yours",
         "responses": 3, "add_yours_reshares": 3},
        {**zero, "sticker_id": 8001, "segment_id": 6101, "author_id": AUTHOR_B, "sticker_type": "poll",
         "responses": 13, "options": ["B-only-left", "B-only-right"], "option_counts": [9, 4],
         "option_pcts": [9 / 13, 4 / 13]},
        {**zero, "sticker_id": 8002, "segment_id": 6102, "author_id": AUTHOR_B, "sticker_type": "question",
         "responses": 1, "question_responses": 1},
    ]


QUESTIONS = (  # sticker, segment, user, text, minutes after the segment
    (7004, 5101, 3002, "Where is this beach?", 30),
    (7004, 5101, 3005, "Take me with you!", 50),
    (8002, 6102, 4003, "B-SECRET-ANSWER", 20),
)


def build(settings: Settings, as_of: datetime = AS_OF, *, ops: bool = True) -> PublishReport:
    """Write the sample lake under settings.lake and publish its snapshot as of `as_of`."""
    lake = LakeBuilder(settings, as_of=as_of)
    fs = frames(as_of)
    for f in fs:
        lake.segment(f.segment_id, f.author_id, f.created_at, audience=f.audience, media_type=f.media_type,
                     is_deleted=f.is_deleted, story_id=f.story_id, frame_index=f.frame_index)
    for f in fs:
        for i, v in enumerate(f.viewers):
            lake.view(f.segment_id, v, f.created_at + (i + 1) * 2 * MINUTE, source=SOURCES[i % len(SOURCES)],
                      completion_pct=1.0 if i < f.completed else round(0.4 + 0.02 * i, 2))
    for v in (3001, 3002, 3003):
        lake.follow(v, AUTHOR_A, as_of - 30 * DAY)
    for v in (4001, 4002):
        lake.follow(v, AUTHOR_B, as_of - 30 * DAY)
        lake.rel("close_friend", AUTHOR_B, v, as_of - 30 * DAY)
    by_segment = {f.segment_id: f for f in fs}
    for sticker, seg, user, text, minutes in QUESTIONS:
        lake.question(sticker, seg, user, text, by_segment[seg].created_at + minutes * MINUTE)
    for row in _segment_insights(fs, as_of):
        lake.gold_row("gold.segment_insights", **row)
    for row in _story_insights(fs, as_of):
        lake.gold_row("gold.story_insights", **row)
    for author in (AUTHOR_A, AUTHOR_B):
        for row in daily_rows(author, as_of):
            lake.gold_row("gold.author_daily_insights", **row)
        for row in hourly_rows(author, as_of):
            lake.gold_row("gold.author_hourly_insights", **row)
    for row in sticker_rows(as_of):
        lake.gold_row("gold.sticker_results", **row)
    lake.write()
    if ops:
        write_ops_tables(settings, as_of)
    return publish(settings, as_of)


def _next_frames(fs: tuple[Frame, ...]) -> dict[int, Frame]:
    """segment_id -> the next frame of its chain (same story and audience, not deleted; jobs/gold/segment_insights)."""
    chains: dict[tuple[int, str], list[Frame]] = {}
    for f in sorted(fs, key=lambda f: (f.story_id, f.frame_index)):
        if not f.is_deleted:
            chains.setdefault((f.story_id, f.audience), []).append(f)
    return {a.segment_id: b for chain in chains.values() for a, b in zip(chain, chain[1:], strict=False)}


def _segment_insights(fs: tuple[Frame, ...], as_of: datetime) -> list[dict[str, Any]]:
    nexts = _next_frames(fs)
    rows = []
    first_reach: dict[int, int] = {}
    for f in fs:
        reach = len(f.viewers)
        impressions = reach + reach // 4
        first = first_reach.setdefault(f.story_id, reach)
        tf, tb, ex, sf = f.nav
        replies, shares, visits, follows, links = f.engagement
        rows.append({
            "segment_id": f.segment_id, "author_id": f.author_id, "story_id": f.story_id, "frame_index": f.frame_index,
            "created_at": f.created_at, "expires_at": f.created_at + DAY, "audience": f.audience,
            "media_type": f.media_type, "is_deleted": f.is_deleted, "impressions": impressions, "reach": reach,
            "completed_viewers": f.completed, "completion_rate": f.completed / reach if reach else None,
            "total_view_ms": impressions * VIEW_MS, "avg_view_ms": float(VIEW_MS) if impressions else None,
            "exits": ex, "taps_forward": tf, "taps_back": tb, "swipe_forward": sf, "replies": replies,
            "shares": shares, "profile_visits": visits, "follows": follows, "link_clicks": links,
            "sticker_interactions": 0,
            "retention_from_first": reach / first if first else None,
            "exit_viewers": min(ex, reach),  # the sample's exits are gestures of distinct viewers of the frame
            # every viewer watched while the next frame was live (the sample's frames are minutes apart)
            **_continuation(f, nexts.get(f.segment_id)),
            "as_of": as_of,
        })
    return rows


def _continuation(f: Frame, nxt: Frame | None) -> dict[str, Any]:
    could = len(f.viewers) if nxt is not None else 0
    went = len(set(f.viewers) & set(nxt.viewers)) if nxt is not None else 0
    rate = went / could if could else None
    return {"continuation_viewers": could, "continued_viewers": went, "continuation_rate": rate}


def _story_insights(fs: tuple[Frame, ...], as_of: datetime) -> list[dict[str, Any]]:
    stories: dict[int, list[Frame]] = {}
    for f in fs:
        stories.setdefault(f.story_id, []).append(f)
    rows = []
    for story_id, members in stories.items():
        viewers = {v for f in members for v in f.viewers}
        completed = {v for f in members for v in f.viewers[: f.completed]}
        impressions = sum(len(f.viewers) + len(f.viewers) // 4 for f in members)
        totals = [sum(f.nav[i] for f in members) for i in range(4)]
        engagement = [sum(f.engagement[i] for f in members) for i in range(5)]
        rows.append({
            "story_id": story_id, "author_id": members[0].author_id,
            "story_start": min(f.created_at for f in members), "story_end": max(f.created_at for f in members) + DAY,
            "segment_count": len(members), "impressions": impressions, "reach": len(viewers),
            "completed_viewers": len(completed), "completion_rate": len(completed) / len(viewers) if viewers else None,
            "total_view_ms": impressions * VIEW_MS, "avg_view_ms": float(VIEW_MS) if impressions else None,
            "taps_forward": totals[0], "taps_back": totals[1], "exits": totals[2], "swipe_forward": totals[3],
            "replies": engagement[0], "shares": engagement[1], "profile_visits": engagement[2],
            "follows": engagement[3], "link_clicks": engagement[4], "sticker_interactions": 0, "as_of": as_of,
        })
    return rows


def write_ops_tables(settings: Settings, as_of: datetime) -> None:
    """ops.pipeline_runs (two runs, the older one failed in gold), ops.quarantine, ops.quality_results and a
    small bronze table, so every panel of the ops page has something to show."""
    runs = []
    for run_no, (start, failed) in enumerate(((as_of - 2 * HOUR, True), (as_of - HOUR, False))):
        run_id = f"run-sample-{run_no + 1}"
        t = start
        for step, seconds, rows in (("ingest", 2.5, 1200), ("silver", 21.0, 900), ("gold", 6.5, 300),
                                    ("publish", 2.0, 0)):
            status = "failed" if failed and step == "gold" else "success"
            runs.append({"run_id": run_id, "step": step, "as_of": start, "started_at": t,
                         "finished_at": t + timedelta(seconds=seconds), "duration_s": seconds, "status": status,
                         "rows_written": None if status == "failed" else rows,
                         "detail": json.dumps({"error": "injected"} if status == "failed" else {"rows": rows})})
            t += timedelta(seconds=seconds)
            if status == "failed":
                break
    write_table(settings, "ops.pipeline_runs", runs)
    q_at = as_of - HOUR
    quarantine = [
        {"stage": "ingest", "contract": "landing.segment_view", "source_file": "segment_view/dt=2026-11-02/hour=10/a",
         "line": n, "event_id": f"sv-{n}", "rule": rule, "field": field, "reason": reason, "raw": raw,
         "batch_id": "batch-1", "quarantined_at": q_at}
        for n, rule, field, reason, raw in (
            (3, "malformed_json", "$", "landing.segment_view: malformed JSON", '{"event_id":"sv-3",'),
            (9, "malformed_json", "$", "landing.segment_view: malformed JSON", '{"event_id":"sv-9"'),
            (12, "out_of_range", "completion_pct", "landing.segment_view.completion_pct: Expected `float` <= 1.0 "
             "(got 1.7)", '{"event_id":"sv-12","completion_pct":1.7}'),
        )
    ] + [
        {"stage": "silver.view_events", "contract": "silver.view_events", "source_file": None, "line": None,
         "event_id": f"sv-{n}", "rule": "not_close_friend", "field": "viewer_id",
         "reason": "viewer is not a close friend of the author", "raw": json.dumps({"event_id": f"sv-{n}"}),
         "batch_id": "run-sample-2", "quarantined_at": q_at}
        for n in (21, 22)
    ]
    write_table(settings, "ops.quarantine", quarantine)
    quality = [
        {"run_id": "gate-1", "table_name": table, "expectation": exp, "critical": critical, "success": ok,
         "observed_value": json.dumps(observed), "unexpected_count": bad, "sample_keys": json.dumps([]),
         "validated_at": as_of - HOUR}
        for table, exp, critical, ok, observed, bad in (
            ("gold.segment_insights", "expect_column_values_to_not_be_null(segment_id)", True, True, 0, 0),
            ("gold.segment_insights", "reach_le_impressions", True, True, 0, 0),
            ("silver.segments", "expect_column_values_to_be_in_set(media_type)", False, False, 2, 2),
        )
    ]
    write_table(settings, "ops.quality_results", quality)
    write_table(settings, "bronze.segment_view", [
        {"event_id": f"sv-{i}", "event_type": "segment_view", "event_time": as_of - HOUR, "segment_id": 5101,
         "viewer_id": 3001 + i, "view_duration_ms": 5000, "completion_pct": 1.0, "view_source": "tray",
         "idempotency_key": f"k{i}", "_source_file": "segment_view/dt=2026-11-02/hour=10/a", "_line": i + 1,
         "_ingested_at": as_of - HOUR, "_batch_id": "batch-1"}
        for i in range(5)
    ])


if __name__ == "__main__":
    s = Settings.from_env()
    print(build(s))
    print(f"sample lake ready: STORYLAKE_LAKE={s.lake} streamlit run dashboards/app.py")

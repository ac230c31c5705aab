"""History benchmark: what a month leaving the cut's month costs the hourly publish, with and without the daily
maintenance's prepare_history (serving/publish.py prepare_ahead).

    storylake bench history --segments-per-day 165000 --days 40 --work /tmp/bench-history

A synthetic lake (numpy/pyarrow + write_deltalake in the contracts' schemas, no Spark) holds `days` days of the
long-lived serving sources up to `end` (default Nov 5 00:00 UTC): `segments_per_day` segments a day (silver.segments,
~4 % archived; gold.segment_insights), a story per 7 segments (gold.story_insights), `authors_per_day` author-days a
day (gold.author_daily_insights), a sticker per 5 segments (gold.sticker_results) and a question answer per 250
segments (silver.sticker_responses); the shares are those of the 1M views/day incremental benchmark's lake (its
7-day hour's history files: ~163k segment insights, ~24k story insights, ~29k author-days, ~32k sticker results,
~7k archived segments a day). The other sources are empty.

Then, from one publish as of `end` + 1 h (cut Oct 31: October's days are day files), two copies of the lake:
  * as is: the publish of `end` + 1 day + 1 h (cut Nov 1: October's day files become one month file, written by
    that hourly publish);
  * with the maintenance: prepare_ahead as of `end` + 3.5 h (the DAG's 03:30), then the same publish.
Each step's wall time, peak RSS (this process: publish and DuckDB run in it) and the history and warm day files it
wrote (the warm tier moves a day too: one day file a table since session 32).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from storylake.settings import Settings
from toolkit.bench.measure import measure
from toolkit.bench.serving import US_DAY, _empty_lists, _ts, _us

DEFAULT_END = datetime(2026, 11, 5, tzinfo=UTC)
SEGMENTS_PER_STORY = 7
SEGMENTS_PER_STICKER = 5
SEGMENTS_PER_QUESTION = 250
ARCHIVED_SHARE = 0.043
COUNTERS = ("exits", "taps_forward", "taps_back", "swipe_forward", "replies", "shares", "profile_visits",
            "follows", "link_clicks", "sticker_interactions", "total_view_ms", "completed_viewers")


def build_lake(settings: Settings, *, days: int, segments_per_day: int, authors_per_day: int, users: int,
               end: datetime = DEFAULT_END, seed: int = 7) -> dict[str, int]:
    """Write the synthetic lake (module docstring); the rows of each table written."""
    from storylake import contracts
    from storylake.lake import arrow_table, write_table

    rng = np.random.default_rng(seed)
    end_us = _us(end)
    start_us = end_us - days * US_DAY
    n = days * segments_per_day
    sizes: dict[str, int] = {}
    seg_id = np.arange(1, n + 1, dtype=np.int64)
    story = (seg_id - 1) // SEGMENTS_PER_STORY + 1
    author = (story * 7919) % users + 1  # a story's segments share their author
    created = np.sort(start_us + rng.integers(0, days * US_DAY, size=n))
    story_start = created[(story - 1) * SEGMENTS_PER_STORY]
    frame = ((seg_id - 1) % SEGMENTS_PER_STORY + 1).astype(np.int64)
    audience = np.where(rng.random(n) < 0.10, "close_friends", "public")
    media = np.where(rng.random(n) < 0.7, "photo", "video")
    is_deleted = rng.random(n) < 0.01
    is_archived = rng.random(n) < ARCHIVED_SHARE
    stickers_type = arrow_table("silver.segments", []).schema.field("stickers").type
    write_table(settings, "silver.segments", arrow_table("silver.segments", {
        "segment_id": seg_id, "author_id": author, "media_id": seg_id * 10, "media_type": media,
        "audience": audience, "duration_ms": np.where(media == "photo", 5000, 15000).astype(np.int64),
        "created_at": _ts(created), "expires_at": _ts(created + US_DAY), "story_id": story, "frame_index": frame,
        "story_start": _ts(story_start), "is_deleted": is_deleted,
        "deleted_at": pa.nulls(n, pa.timestamp("us", tz="UTC")), "is_archived": is_archived,
        "stickers": _empty_lists(n, stickers_type),
    }))
    sizes["silver.segments"] = n
    reach = rng.poisson(40, size=n).astype(np.int64)
    as_of = _ts(np.full(n, end_us))
    write_table(settings, "gold.segment_insights", arrow_table("gold.segment_insights", {
        "segment_id": seg_id, "author_id": author, "story_id": story, "frame_index": frame,
        "created_at": _ts(created), "expires_at": _ts(created + US_DAY), "story_start": _ts(story_start),
        "audience": audience, "media_type": media, "is_deleted": is_deleted, "impressions": reach + 3,
        "reach": reach, "as_of": as_of, **{c: rng.poisson(2, size=n).astype(np.int64) for c in COUNTERS},
    }))
    sizes["gold.segment_insights"] = n
    first = np.flatnonzero(frame == 1)
    ns = first.size
    write_table(settings, "gold.story_insights", arrow_table("gold.story_insights", {
        "story_id": story[first], "author_id": author[first], "story_start": _ts(story_start[first]),
        "story_end": _ts(created[np.minimum(first + SEGMENTS_PER_STORY - 1, n - 1)] + US_DAY),
        "segment_count": np.full(ns, SEGMENTS_PER_STORY, dtype=np.int64), "impressions": reach[first] * 5,
        "reach": reach[first], "as_of": _ts(np.full(ns, end_us)),
        **{c: rng.poisson(10, size=ns).astype(np.int64) for c in COUNTERS},
    }))
    sizes["gold.story_insights"] = ns
    day0 = (end - timedelta(days=days)).date()
    day_offsets = np.repeat(np.arange(days), authors_per_day)
    na = day_offsets.size
    daily = {"author_id": np.tile(rng.choice(np.arange(1, users + 1), size=authors_per_day, replace=False), days),
             "day": pa.array([day0 + timedelta(days=int(d)) for d in day_offsets], pa.date32()),
             "as_of": _ts(np.full(na, end_us))}
    for c in contracts.get("gold.author_daily_insights").columns:
        if c.name not in daily:
            daily[c.name] = rng.poisson(20, size=na).astype(np.int64)
    write_table(settings, "gold.author_daily_insights", arrow_table("gold.author_daily_insights", daily))
    sizes["gold.author_daily_insights"] = na
    st = np.arange(0, n, SEGMENTS_PER_STICKER)
    nst = st.size
    zeros = np.zeros(nst, dtype=np.int64)
    write_table(settings, "gold.sticker_results", arrow_table("gold.sticker_results", {
        "sticker_id": np.arange(1, nst + 1, dtype=np.int64), "segment_id": seg_id[st], "author_id": author[st],
        "segment_created_at": _ts(created[st]), "sticker_type": np.full(nst, "question"),
        "responses": rng.poisson(3, size=nst).astype(np.int64), "question_responses": zeros, "countdown_optins": zeros,
        "add_yours_reshares": zeros, "taps": zeros, "as_of": _ts(np.full(nst, end_us)),
    }))
    sizes["gold.sticker_results"] = nst
    q = np.arange(0, n, SEGMENTS_PER_QUESTION)
    nq = q.size
    write_table(settings, "silver.sticker_responses", arrow_table("silver.sticker_responses", {
        "sticker_id": (q // SEGMENTS_PER_STICKER + 1).astype(np.int64), "segment_id": seg_id[q],
        "author_id": author[q], "user_id": rng.integers(1, users + 1, size=nq, dtype=np.int64),
        "sticker_type": np.full(nq, "question"), "text": np.full(nq, "what camera is that?"),
        "responded_at": _ts(created[q] + 600_000_000), "segment_created_at": _ts(created[q]),
        "interactions": np.ones(nq, dtype=np.int64),
    }))
    sizes["silver.sticker_responses"] = nq
    for key in ("silver.relationships", "silver.segment_viewers", "silver.profiles", "gold.author_hourly_insights",
                "gold.ring_features"):
        write_table(settings, key, arrow_table(key, []))
    return sizes


def _written(history: dict[str, Any]) -> dict[str, int]:
    return {name: n for name, n in history["history_written"].items() if n}


def bench_history(work: Path, *, days: int = 40, segments_per_day: int = 165_000, authors_per_day: int = 29_000,
                  users: int = 50_000, end: datetime = DEFAULT_END) -> dict[str, Any]:
    """See the module docstring."""
    from serving.publish import prepare_ahead, publish

    if work.exists():
        shutil.rmtree(work)
    as_is = Settings(lake=work / "as-is" / "lake", landing=work / "as-is" / "landing")
    with measure() as built:
        sizes = build_lake(as_is, days=days, segments_per_day=segments_per_day, authors_per_day=authors_per_day,
                           users=users, end=end)
    before, merge_day = end + timedelta(hours=1), end + timedelta(days=1, hours=1)
    with measure() as m0:
        first = publish(as_is, before)
    prepared = Settings(lake=work / "prepared" / "lake", landing=work / "prepared" / "landing")
    shutil.copytree(as_is.lake, prepared.lake, symlinks=True)
    with measure() as m1:
        plain = publish(as_is, merge_day)
    with measure() as m2:
        ahead = prepare_ahead(prepared, end + timedelta(hours=3, minutes=30))
    with measure() as m3:
        after = publish(prepared, merge_day)
    month_rows = {name: n for name, n in ahead.rows_written.items() if n}

    def step(m: Any, report: Any) -> dict[str, Any]:
        return {"seconds": round(m.seconds, 2), "peak_rss_mb": round(m.peak_rss_mb),
                "insights_history_seconds": report.step_seconds.get("insights history"),
                "history_files_written": _written(report.history),
                "warm_files_written": {name: n for name, n in report.history["warm_written"].items() if n}}

    return {
        "days": days, "segments_per_day": segments_per_day, "rows": sizes,
        "build_seconds": round(built.seconds, 1),
        "publish_before": {"as_of": before.isoformat(), "seconds": round(m0.seconds, 2),
                           "periods": len(first.history["periods"])},
        "merge_day_publish_as_is": {"as_of": merge_day.isoformat(), **step(m1, plain)},
        "prepare_history": {"seconds": round(m2.seconds, 2), "peak_rss_mb": round(m2.peak_rss_mb),
                            "files_written": {k: v for k, v in ahead.written.items() if v}, "rows_written": month_rows},
        "merge_day_publish_prepared": {"as_of": merge_day.isoformat(), **step(m3, after),
                                       "history_files_prepared": {k: v for k, v in
                                                                  after.history["history_prepared"].items() if v}},
    }

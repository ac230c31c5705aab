"""Serving benchmark: a synthetic silver/gold lake at scale -> publish -> tray and Seen By latency.

    from toolkit.bench.serving import bench_serving
    bench_serving("/tmp/bench")          # 1M active segments, 100k users, ~20M segment_viewers rows

The lake is written directly with numpy/pyarrow + write_deltalake (contract schemas), no Spark:
  * `segments` active segments (created within the 24 h before `now`) + 20 % expired history
    (archived or within the cleanup grace), 10 % close_friends, 1 % deleted;
  * `users` users; the benchmark viewer (user 1) follows `follows_per_viewer` authors (with close-friend,
    hide, block, private/approved relations sprinkled over them); every other user follows
    `follows_per_user` random authors; 10 % of accounts are private; some follows have ended;
  * segment_viewers: ~`viewers_per_segment` viewers per active segment (~20M rows at full size) and one
    segment with `big_segment_viewers` viewers; the benchmark viewer has seen ~40 % of its tray;
  * gold: segment_insights (reach = viewer rows), story_insights, author_daily_insights, author_hourly_insights,
    sticker_results,
    ring_features (the viewer's pairs + random pairs), and question responses.
Then: publish time; p50/p99 latency and queries/s of tray(viewer 1, first page of 50) and of the first
Seen By page (50) of the big segment, single process, after a short warm-up.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from storylake.settings import Settings

US_HOUR = 3_600_000_000
US_DAY = 24 * US_HOUR
DEFAULT_NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)
BENCH_VIEWER = 1


def _ts(us: np.ndarray) -> pa.Array:
    return pa.array(us.astype("int64"), type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def _empty_lists(n: int, list_type: pa.DataType) -> pa.Array:
    return pa.ListArray.from_arrays(
        pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], type=list_type.value_type), type=list_type
    )


def _us(t: datetime) -> int:
    return int((t - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


def build_lake(
    settings: Settings,
    *,
    segments: int = 1_000_000,
    users: int = 100_000,
    follows_per_viewer: int = 1000,
    follows_per_user: int = 20,
    big_segment_viewers: int = 100_000,
    viewers_per_segment: float = 19.9,
    now: datetime = DEFAULT_NOW,
    seed: int = 7,
) -> dict[str, Any]:
    """Write the synthetic lake; returns its sizes and the ids the benchmark queries."""
    from storylake.lake import arrow_table, write_table

    rng = np.random.default_rng(seed)
    now_us = _us(now)
    sizes: dict[str, int] = {}

    # --- segments ------------------------------------------------------------------------------
    n_hist = segments // 5
    n = segments + n_hist
    seg_id = np.arange(1, n + 1, dtype=np.int64)
    author = rng.integers(1, users + 1, size=n, dtype=np.int64)
    created = np.empty(n, dtype=np.int64)
    created[:segments] = now_us - rng.integers(60_000_000, US_DAY - 60_000_000, size=segments)  # active at now
    created[segments:] = now_us - US_DAY - rng.integers(1, US_DAY, size=n_hist)  # expired
    audience = np.where(rng.random(n) < 0.10, "close_friends", "public")
    is_deleted = rng.random(n) < 0.01
    is_archived = np.zeros(n, dtype=bool)
    is_archived[segments:] = rng.random(n_hist) < 0.5
    media = np.where(rng.random(n) < 0.7, "photo", "video")
    duration = np.where(media == "photo", 5000, rng.integers(1000, 60_000, size=n))
    seg_tbl = arrow_table(
        "silver.segments",
        {
            "segment_id": seg_id, "author_id": author, "media_id": seg_id * 10, "media_type": media,
            "audience": audience, "duration_ms": duration.astype(np.int64), "created_at": _ts(created),
            "expires_at": _ts(created + US_DAY), "story_id": seg_id, "frame_index": np.ones(n, dtype=np.int64),
            "story_start": _ts(created), "is_deleted": is_deleted,
            "deleted_at": pa.nulls(n, pa.timestamp("us", tz="UTC")), "is_archived": is_archived,
            "stickers": _empty_lists(n, arrow_table("silver.segments", []).schema.field("stickers").type),
        },
    )
    write_table(settings, "silver.segments", seg_tbl)
    sizes["segments"] = n
    sizes["active_segments"] = int(segments - is_deleted[:segments].sum())
    del seg_tbl

    # --- relationships -----------------------------------------------------------------------
    v = BENCH_VIEWER
    followees = rng.choice(np.arange(2, users + 1, dtype=np.int64), size=follows_per_viewer, replace=False)
    others = np.repeat(np.arange(2, users + 1, dtype=np.int64), follows_per_user)
    other_targets = rng.integers(1, users + 1, size=others.size, dtype=np.int64)
    keep = others != other_targets
    rel_rows: list[tuple[str, np.ndarray, np.ndarray]] = [
        ("follow", np.full(follows_per_viewer, v, dtype=np.int64), followees),
        ("follow", others[keep], other_targets[keep]),
    ]
    k = max(1, follows_per_viewer // 10)
    rel_rows.append(("close_friend", followees[:k], np.full(k, v, dtype=np.int64)))
    rel_rows.append(("hide", followees[k : k + 10], np.full(10, v, dtype=np.int64)))
    rel_rows.append(("block", followees[k + 10 : k + 20], np.full(10, v, dtype=np.int64)))
    rel_rows.append(("block", np.full(5, v, dtype=np.int64), followees[k + 20 : k + 25]))
    private_users = np.unique(np.concatenate([rng.choice(np.arange(2, users + 1), size=users // 10, replace=False),
                                              followees[k + 25 : k + 125]]))
    rel_rows.append(("private", private_users, np.zeros(private_users.size, dtype=np.int64)))
    approved = followees[k + 25 : k + 105]  # 80 of the viewer's 100 private followees approved them
    rel_rows.append(("approved", approved, np.full(approved.size, v, dtype=np.int64)))
    m = users
    rel_rows.append(("close_friend", rng.integers(2, users + 1, m * 2), rng.integers(2, users + 1, m * 2)))
    rel_rows.append(("hide", rng.integers(2, users + 1, m // 2), rng.integers(2, users + 1, m // 2)))
    rel_rows.append(("block", rng.integers(2, users + 1, m // 2), rng.integers(2, users + 1, m // 2)))
    relation = np.concatenate([np.full(a.size, r) for r, a, _ in rel_rows])
    uid = np.concatenate([a for _, a, _ in rel_rows])
    oid = np.concatenate([b for _, _, b in rel_rows])
    valid_from = now_us - rng.integers(US_DAY, 400 * US_DAY, size=uid.size)
    ended = rng.random(uid.size) < 0.03
    ended[: follows_per_viewer] = False
    valid_to = np.where(ended, now_us - rng.integers(1, US_DAY, size=uid.size), 0)
    rel_tbl = arrow_table(
        "silver.relationships",
        {
            "relation": relation, "user_id": uid, "other_user_id": oid, "valid_from": _ts(valid_from),
            "valid_to": pa.array(valid_to, mask=~ended).cast(pa.timestamp("us", tz="UTC")),
        },
    )
    write_table(settings, "silver.relationships", rel_tbl)
    sizes["relationships"] = rel_tbl.num_rows
    del rel_tbl

    # --- segment_viewers ---------------------------------------------------------------------
    active_idx = np.arange(segments)
    per_seg = rng.poisson(viewers_per_segment, size=segments)
    sv_seg_idx = np.repeat(active_idx, per_seg)
    sv_viewer = rng.integers(2, users + 1, size=sv_seg_idx.size, dtype=np.int64)
    # The benchmark viewer has seen ~40 % of the active segments of the authors it follows.
    fol_set = np.isin(author[:segments], followees)
    mine = np.flatnonzero(fol_set & (rng.random(segments) < 0.4))
    big_idx = int(np.flatnonzero(~is_deleted[:segments] & (author[:segments] != v))[0])
    big_viewers = rng.choice(np.arange(2, users + 1, dtype=np.int64), size=min(big_segment_viewers, users - 1),
                             replace=False)
    sv_seg_idx = np.concatenate([sv_seg_idx, mine, np.full(big_viewers.size, big_idx)])
    sv_viewer = np.concatenate([sv_viewer, np.full(mine.size, v, dtype=np.int64), big_viewers])
    key = sv_seg_idx.astype(np.int64) * (users + 1) + sv_viewer
    _, first = np.unique(key, return_index=True)
    sv_seg_idx, sv_viewer = sv_seg_idx[first], sv_viewer[first]
    other = sv_viewer != author[sv_seg_idx]  # an author's own views are never Seen By rows (silver drops them)
    sv_seg_idx, sv_viewer = sv_seg_idx[other], sv_viewer[other]
    del key, first, other
    rows = sv_seg_idx.size
    age = now_us - created[sv_seg_idx]
    first_at = created[sv_seg_idx] + (rng.random(rows) * age).astype(np.int64)
    sv_tbl = arrow_table(
        "silver.segment_viewers",
        {
            "segment_id": seg_id[sv_seg_idx], "viewer_id": sv_viewer, "author_id": author[sv_seg_idx],
            "first_viewed_at": _ts(first_at), "last_viewed_at": _ts(first_at),
            "view_count": np.ones(rows, dtype=np.int64), "max_completion_pct": np.round(rng.random(rows), 3),
            "total_view_ms": rng.integers(3000, 15000, size=rows), "first_view_source": pa.array(
                np.array(["tray", "profile", "reshare", "mention"])[rng.integers(0, 4, size=rows)]),
            "segment_created_at": _ts(created[sv_seg_idx]),
        },
    )
    write_table(settings, "silver.segment_viewers", sv_tbl)
    sizes["segment_viewers"] = rows
    del sv_tbl, first_at, age
    gc.collect()
    reach = np.bincount(sv_seg_idx, minlength=n).astype(np.int64)

    # --- gold + stickers ---------------------------------------------------------------------
    zeros = np.zeros(n, dtype=np.int64)
    as_of = _ts(np.full(n, now_us))
    counters = ("exits", "taps_forward", "taps_back", "swipe_forward", "replies", "shares", "profile_visits",
                "follows", "link_clicks", "sticker_interactions", "total_view_ms", "completed_viewers")
    write_table(settings, "gold.segment_insights", arrow_table("gold.segment_insights", {
        "segment_id": seg_id, "author_id": author, "story_id": seg_id, "frame_index": np.ones(n, dtype=np.int64),
        "created_at": _ts(created), "expires_at": _ts(created + US_DAY), "audience": audience, "media_type": media,
        "is_deleted": is_deleted, "impressions": reach, "reach": reach, "as_of": as_of,
        **dict.fromkeys(counters, zeros),
    }))
    write_table(settings, "gold.story_insights", arrow_table("gold.story_insights", {
        "story_id": seg_id, "author_id": author, "story_start": _ts(created), "story_end": _ts(created + US_DAY),
        "segment_count": np.ones(n, dtype=np.int64), "impressions": reach, "reach": reach, "as_of": as_of,
        **dict.fromkeys(counters, zeros),
    }))
    ua = np.arange(1, users + 1, dtype=np.int64)
    uz = np.zeros(users, dtype=np.int64)
    write_table(settings, "gold.author_daily_insights", arrow_table("gold.author_daily_insights", {
        "author_id": ua, "day": pa.array([now.date()] * users, pa.date32()),
        **dict.fromkeys(("segments_posted", "impressions", "reach", "reach_7d", "reach_28d", "exits", "replies",
                         "shares", "profile_visits", "follows", "link_clicks"), uz),
        "as_of": _ts(np.full(users, now_us)),
    }))
    hour_us = now_us - now_us % US_HOUR
    write_table(settings, "gold.author_hourly_insights", arrow_table("gold.author_hourly_insights", {
        "author_id": ua, "day": pa.array([now.date()] * users, pa.date32()), "hour": _ts(np.full(users, hour_us)),
        **dict.fromkeys(("new_viewers", "impressions", "exits", "replies", "shares", "profile_visits", "follows",
                         "link_clicks"), uz),
        "as_of": _ts(np.full(users, now_us)),
    }))
    ns = segments // 20
    st_seg = rng.choice(segments, size=ns, replace=False)
    nz = np.zeros(ns, dtype=np.int64)
    write_table(settings, "gold.sticker_results", arrow_table("gold.sticker_results", {
        "sticker_id": np.arange(1, ns + 1, dtype=np.int64), "segment_id": seg_id[st_seg], "author_id": author[st_seg],
        "sticker_type": np.full(ns, "question"), "responses": nz, "question_responses": nz, "countdown_optins": nz,
        "add_yours_reshares": nz, "taps": nz, "as_of": _ts(np.full(ns, now_us)),
    }))
    nq = ns * 4
    q_st = rng.integers(0, ns, size=nq)
    q_user = rng.integers(2, users + 1, size=nq, dtype=np.int64)
    qkey, qfirst = np.unique(q_st.astype(np.int64) * (users + 1) + q_user, return_index=True)
    q_st, q_user = q_st[qfirst], q_user[qfirst]
    write_table(settings, "silver.sticker_responses", arrow_table("silver.sticker_responses", {
        "sticker_id": (q_st + 1).astype(np.int64), "segment_id": seg_id[st_seg[q_st]],
        "author_id": author[st_seg[q_st]], "user_id": q_user, "sticker_type": np.full(q_st.size, "question"),
        "text": np.full(q_st.size, "what camera is that?"), "responded_at": _ts(np.full(q_st.size, now_us - US_HOUR)),
        "interactions": np.ones(q_st.size, dtype=np.int64),
    }))
    nf = users * 10
    rf_v = np.concatenate([np.full(follows_per_viewer, v, dtype=np.int64), rng.integers(2, users + 1, nf)])
    rf_a = np.concatenate([followees, rng.integers(1, users + 1, nf)])
    rk, rfirst = np.unique(rf_v * (users + 1) + rf_a, return_index=True)
    rf_v, rf_a = rf_v[rfirst], rf_a[rfirst]
    nr = rf_v.size
    write_table(settings, "gold.ring_features", arrow_table("gold.ring_features", {
        "viewer_id": rf_v, "author_id": rf_a, "dm_count_30d": rng.poisson(0.5, nr),
        "likes_given_30d": rng.poisson(1, nr),
        "comments_given_30d": rng.poisson(0.3, nr), "story_replies_30d": rng.poisson(0.2, nr),
        "profile_visits_30d": np.zeros(nr, dtype=np.int64), "story_views_30d": np.zeros(nr, dtype=np.int64),
        "is_close_friend": np.zeros(nr, dtype=bool), "follows": np.ones(nr, dtype=bool),
        "as_of": _ts(np.full(nr, now_us)), "feature_version": np.full(nr, "bench"),
    }))
    sizes["ring_features"] = nr
    uid = np.arange(1, users + 1, dtype=np.int64)
    write_table(settings, "silver.profiles", arrow_table("silver.profiles", {
        "user_id": uid, "username": np.array([f"user.{u}" for u in uid.tolist()]),
        "profile_picture_media_id": 9_000_000_000 + uid, "updated_at": _ts(np.full(users, now_us - 30 * US_DAY)),
        "event_id": np.array([f"pu-{u}" for u in uid.tolist()]),
    }))
    sizes["profiles"] = users
    return {"sizes": sizes, "viewer_id": v, "big_segment_id": int(seg_id[big_idx]),
            "big_segment_author": int(author[big_idx]), "big_segment_viewers": int(reach[big_idx])}


def _latency(fn: Any, queries: int, warmup: int = 20) -> dict[str, float]:
    """Wall-clock p50/p99/max and queries/s, plus CPU-time (process) p50/p99: the CPU figures are less
    distorted when other work shares the machine."""
    for _ in range(warmup):
        fn()
    times, cpu = [], []
    t_all = time.perf_counter()
    for _ in range(queries):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    wall = time.perf_counter() - t_all
    times.sort()
    cpu.sort()
    p99 = min(len(times) - 1, int(len(times) * 0.99))
    return {
        "p50_ms": round(statistics.median(times) * 1000, 3),
        "p99_ms": round(times[p99] * 1000, 3),
        "max_ms": round(times[-1] * 1000, 3),
        "qps": round(queries / wall, 1),
        "cpu_p50_ms": round(statistics.median(cpu) * 1000, 3),
        "cpu_p99_ms": round(cpu[p99] * 1000, 3),
    }


def bench_serving(
    settings_or_dir: Settings | str | Path,
    *,
    segments: int = 1_000_000,
    users: int = 100_000,
    follows_per_viewer: int = 1000,
    big_segment_viewers: int = 100_000,
    queries: int = 500,
    follows_per_user: int = 20,
    viewers_per_segment: float = 19.9,
    seed: int = 7,
    reuse_lake: bool = False,
) -> dict[str, Any]:
    """Build the synthetic lake (unless reuse_lake and it exists), publish, measure; returns the figures."""
    from serving import api
    from serving.publish import publish

    if isinstance(settings_or_dir, Settings):
        settings = settings_or_dir
    else:
        root = Path(settings_or_dir)
        settings = Settings(lake=root / "lake", landing=root / "landing")
    now = DEFAULT_NOW
    t0 = time.perf_counter()
    info_path = settings.lake / "bench_info.json"
    if reuse_lake and info_path.exists():
        import json

        info = json.loads(info_path.read_text())
        lake_s = 0.0
    else:
        info = build_lake(
            settings, segments=segments, users=users, follows_per_viewer=follows_per_viewer,
            follows_per_user=follows_per_user, big_segment_viewers=big_segment_viewers,
            viewers_per_segment=viewers_per_segment, now=now, seed=seed,
        )
        import json

        info_path.write_text(json.dumps(info))
        lake_s = time.perf_counter() - t0
    gc.collect()
    load_before = os.getloadavg()
    report = publish(settings, now)
    snap = api.open_current(settings)
    t_index = time.perf_counter()
    api.tray(snap, info["viewer_id"], now, limit=1)  # builds the snapshot's tray index once
    index_s = time.perf_counter() - t_index
    viewer, seg, author = info["viewer_id"], info["big_segment_id"], info["big_segment_author"]
    first = api.tray(snap, viewer, now, limit=50)
    rings_total = len(first.rings)
    page = first
    while page.next_cursor:
        page = api.tray(snap, viewer, now, limit=50, cursor=page.next_cursor)
        rings_total += len(page.rings)
    sb = api.seen_by(snap, seg, author, now, limit=50)
    tray_lat = _latency(lambda: api.tray(snap, viewer, now, limit=50), queries)
    tray_next = _latency(lambda: api.tray(snap, viewer, now, limit=50, cursor=first.next_cursor), max(50, queries // 5))
    seen_lat = _latency(lambda: api.seen_by(snap, seg, author, now, limit=50), queries)
    seen_next = _latency(
        lambda: api.seen_by(snap, seg, author, now, limit=50, cursor=sb.next_cursor), max(50, queries // 5)
    )
    return {
        "sizes": info["sizes"],
        "lake_build_s": round(lake_s, 1),
        "publish_s": round(report.duration_s, 2),
        "publish_cpu_s": report.cpu_s,
        "publish_steps_s": report.step_seconds,
        "snapshot_mb": round(report.path.stat().st_size / 1e6, 1),
        "tray_index_load_s": round(index_s, 2),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "cores": os.cpu_count(),
        "tray": {**tray_lat, "rings_first_page": len(first.rings), "rings_total": rings_total},
        "tray_next_page": tray_next,
        "seen_by_first_page": {**seen_lat, "total": sb.total, "rows": len(sb.viewers)},
        "seen_by_next_page": seen_next,
        "targets": {"tray_p99_ms": 20, "seen_by_p99_ms": 5, "publish_s": 60},
        "call": (
            f"bench_serving(..., segments={segments}, users={users}, follows_per_viewer={follows_per_viewer}, "
            f"big_segment_viewers={big_segment_viewers}, queries={queries})"
        ),
    }


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(json.dumps(bench_serving(sys.argv[1] if len(sys.argv) > 1 else "/tmp/storylake-bench",
                                   reuse_lake="--reuse" in sys.argv), indent=2))

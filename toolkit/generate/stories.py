"""Posting: stories (bursts of segments), their media, stickers, deletions and archives, one day at a time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

from .schema import (
    CLOSE_FRIENDS,
    MS_DAY,
    MS_HOUR,
    MS_MINUTE,
    NULL,
    POLL,
    QUIZ,
    STICKER_TYPES,
    VIDEO,
)
from .streams import stream
from .table import F64, I64, EventTable
from .world import World

STORIES_PER_USER_DAY = 0.9  # times the user's activity (mean 1) and the volume scale
MAX_SEGMENTS = 10
SEGMENT_GAP_MEAN_MS = 10 * MS_MINUTE
STORY_SPAN_MAX_MS = 3 * MS_HOUR
CLOSE_FRIENDS_SHARE = 0.20  # of the stories of authors who have close friends (~10% overall)
VIDEO_SHARE = 0.45
PHOTO_MS = 5_000
STICKER_SHARE = 0.20
SECOND_STICKER_SHARE = 0.10
STICKER_TYPE_P = np.array([0.18, 0.08, 0.10, 0.10, 0.04, 0.06, 0.18, 0.10, 0.08, 0.08])
DELETE_SHARE = 0.01
ARCHIVE_SHARE = 0.05
HIGHLIGHT_SHARE = 0.60
# Share of a day's stories starting in each UTC hour (evening peak, quiet night).
DIURNAL = np.array(
    [0.35, 0.25, 0.18, 0.14, 0.13, 0.16, 0.28, 0.50, 0.70, 0.80, 0.85, 0.90,
     0.95, 0.95, 0.92, 0.90, 0.95, 1.05, 1.20, 1.30, 1.30, 1.15, 0.90, 0.60]
)  # fmt: skip

POLL_OPTIONS: tuple[tuple[str, ...], ...] = (
    ("Yes", "No"),
    ("🔥", "😍", "😂", "😮"),
    ("Coffee", "Tea"),
    ("Beach", "Mountains", "City"),
    ("Today", "Tomorrow", "Never"),
    ("Cats", "Dogs"),
    ("Pizza", "Sushi", "Tacos", "Ramen"),
    ("Oui", "Non"),
    ("Left", "Right"),
    ("Café", "Thé", "Matcha"),
)
QUIZ_OPTIONS: tuple[tuple[str, ...], ...] = (
    ("Paris", "Rome", "Madrid"),
    ("1998", "2004", "2012", "2020"),
    ("Red", "Blue"),
    ("Jupiter", "Saturn", "Mars", "Venus"),
    ("True", "False"),
    ("Lisbon", "Porto", "Faro"),
)


@dataclass
class DayStories:
    """Stories starting on one day (sorted by start time) and their segments and stickers."""

    day: int
    # per story
    author: I64  # user index
    audience: I64
    reach: F64  # share of eligible followers that watch it (before volume scaling)
    start: I64  # created_at of the first segment
    seg_ptr: I64  # len stories + 1, into the segment arrays
    # per segment
    seg_id: I64
    seg_story: I64
    seg_author: I64  # user index
    created: I64
    media_type: I64
    duration: I64
    deleted_at: I64  # int64 max if never deleted
    archived_at: I64  # -1 if not archived (within the window)
    highlight: I64  # -1 = null
    stk_ptr: I64  # len segments + 1, into the sticker arrays
    # per sticker
    stk_id: I64
    stk_type: I64
    stk_nopt: I64  # number of options (poll/quiz), else 0
    stk_correct: I64  # quiz answer, else -1
    stk_options: list[tuple[str, ...] | None]
    stk_pref: F64  # (stickers, 4): vote shares of each option (poll), or slider mean in column 0

    @property
    def n_stories(self) -> int:
        return int(self.author.size)

    @property
    def n_segments(self) -> int:
        return int(self.seg_id.size)

    @property
    def n_stickers(self) -> int:
        return int(self.stk_id.size)

    def story_segments(self) -> I64:
        return np.diff(self.seg_ptr)


def make_day_stories(
    world: World, seed: int, day: int, scale: float, seg_id_base: int, sticker_id_base: int
) -> DayStories:
    """Stories whose first segment is created on `day` (segments created after the window end are dropped)."""
    rng = stream(seed, "stories", day)
    n = world.n
    day_start = world.start_ms + day * MS_DAY
    counts = rng.poisson(STORIES_PER_USER_DAY * world.activity * scale)
    author = np.repeat(np.arange(n, dtype=np.int64), counts)
    ns = author.size
    first_hour = (day_start // MS_HOUR) % 24
    p = np.roll(DIURNAL, -int(first_hour))
    hour = rng.choice(24, ns, p=p / p.sum())
    start = day_start + hour * MS_HOUR + rng.integers(0, MS_HOUR, ns)
    early = world.active_ms + rng.integers(0, MS_HOUR - (world.active_ms - world.start_ms), ns)
    start = np.where(start < world.active_ms, early, start).astype(np.int64)
    k = 1 + np.minimum(rng.poisson(2.2, ns), MAX_SEGMENTS - 1)
    cf_possible = world.eligible_count(author, np.ones(ns, np.bool_)) > 0
    audience = np.where(cf_possible & (rng.random(ns) < CLOSE_FRIENDS_SHARE), CLOSE_FRIENDS, 0).astype(
        np.int64
    )
    reach = rng.beta(2.2, 2.8, ns)

    keep = start < world.end_ms
    order = np.lexsort((author, start))
    order = order[keep[order]]
    author, start, k, audience, reach = author[order], start[order], k[order], audience[order], reach[order]
    ns = author.size

    story_of = np.repeat(np.arange(ns, dtype=np.int64), k)
    gaps = rng.exponential(SEGMENT_GAP_MEAN_MS, story_of.size).astype(np.int64) + 1
    first = np.zeros(story_of.size, np.bool_)
    first[np.cumsum(k) - k] = True
    gaps[first] = 0
    offsets = np.cumsum(gaps)
    offsets -= np.repeat(offsets[first], k)
    del gaps, first
    created = start[story_of] + np.minimum(offsets, STORY_SPAN_MAX_MS)
    del offsets
    valid = created < world.end_ms
    story_of, created = story_of[valid], created[valid]
    del valid
    nseg = created.size
    seg_ptr = np.zeros(ns + 1, np.int64)
    seg_ptr[1:] = np.cumsum(np.bincount(story_of, minlength=ns))

    video = rng.random(nseg) < VIDEO_SHARE
    media_type = np.where(video, VIDEO, 0).astype(np.int64)
    duration = np.where(video, rng.integers(1_000, 15_001, nseg), PHOTO_MS).astype(np.int64)
    deleted = rng.random(nseg) < DELETE_SHARE
    del_after = np.clip(rng.exponential(90 * MS_MINUTE, nseg), 2 * MS_MINUTE, 23 * MS_HOUR).astype(np.int64)
    deleted_at = np.where(deleted, created + del_after, np.iinfo(np.int64).max)
    archived = ~deleted & (rng.random(nseg) < ARCHIVE_SHARE)
    archived_at = np.where(archived, created + rng.integers(10 * MS_MINUTE, 23 * MS_HOUR, nseg), NULL)
    del video, deleted, del_after, archived
    seg_author = author[story_of]
    highlight = np.where(
        rng.random(nseg) < HIGHLIGHT_SHARE, (seg_author + 1) * 100 + rng.integers(1, 10, nseg), NULL
    ).astype(np.int64)

    # Stickers come from their own stream so that their draws do not shift anything else.
    srng = stream(seed, "stickers", day)
    per_seg = (srng.random(nseg) < STICKER_SHARE).astype(np.int64)
    per_seg += (per_seg > 0) & (srng.random(nseg) < SECOND_STICKER_SHARE)
    stk_ptr = np.zeros(nseg + 1, np.int64)
    stk_ptr[1:] = np.cumsum(per_seg)
    nst = int(stk_ptr[-1])
    stk_type = srng.choice(len(STICKER_TYPES), nst, p=STICKER_TYPE_P).astype(np.int64)
    bank_pick = srng.integers(0, 1 << 30, nst)
    correct_pick = srng.integers(0, 1 << 30, nst)
    pref = srng.dirichlet(np.ones(4), nst) if nst else np.zeros((0, 4))
    pref[:, 0] = np.where(stk_type == POLL, pref[:, 0], srng.beta(2.0, 2.0, nst))
    options: list[tuple[str, ...] | None] = []
    nopt = np.zeros(nst, np.int64)
    correct = np.full(nst, NULL, np.int64)
    for i, (t, b, c) in enumerate(
        zip(stk_type.tolist(), bank_pick.tolist(), correct_pick.tolist(), strict=True)
    ):
        if t == POLL:
            opts: tuple[str, ...] | None = POLL_OPTIONS[b % len(POLL_OPTIONS)]
        elif t == QUIZ:
            opts = QUIZ_OPTIONS[b % len(QUIZ_OPTIONS)]
            correct[i] = c % len(opts)
        else:
            opts = None
        options.append(opts)
        nopt[i] = len(opts) if opts else 0
    # A poll's vote shares only cover its options.
    cols = np.arange(4)[None, :]
    poll = stk_type == POLL
    masked = np.where(cols < nopt[:, None], pref, 0.0)
    pref = np.where(poll[:, None], masked / np.maximum(masked.sum(axis=1, keepdims=True), 1e-12), pref)

    return DayStories(
        day=day,
        author=author,
        audience=audience,
        reach=reach,
        start=start,
        seg_ptr=seg_ptr,
        seg_id=seg_id_base + np.arange(nseg, dtype=np.int64),
        seg_story=story_of,
        seg_author=seg_author,
        created=created.astype(np.int64),
        media_type=media_type,
        duration=duration,
        deleted_at=deleted_at.astype(np.int64),
        archived_at=archived_at.astype(np.int64),
        highlight=highlight,
        stk_ptr=stk_ptr,
        stk_id=sticker_id_base + np.arange(nst, dtype=np.int64),
        stk_type=stk_type,
        stk_nopt=nopt,
        stk_correct=correct,
        stk_options=options,
        stk_pref=pref,
    )


def _compact_json(value: object) -> bytes:
    """orjson.dumps, copied: the bytes orjson returns keep a 4 KiB buffer each."""
    return bytes(memoryview(orjson.dumps(value)))


def media_ids(seg_id: I64) -> I64:
    """Processed-media object id of a segment (a separate id space)."""
    return 7_000_000_000 + seg_id * 3


def content_tables(world: World, st: DayStories, lo_ms: int, hi_ms: int) -> list[EventTable]:
    """segment_created / segment_deleted / segment_archived events of the day's segments in [lo_ms, hi_ms)."""
    made = np.flatnonzero((st.created >= lo_ms) & (st.created < hi_ms))
    sticker_col = np.full(made.size, b"[]", dtype=object)
    ptr = st.stk_ptr
    for i in np.flatnonzero(ptr[made + 1] > ptr[made]).tolist():
        seg = int(made[i])
        sticker_col[i] = _compact_json(
            [
                {
                    "sticker_id": int(st.stk_id[j]),
                    "type": STICKER_TYPES[st.stk_type[j]],
                    "options": list(opts) if (opts := st.stk_options[j]) else None,
                    "correct_index": int(st.stk_correct[j]) if st.stk_correct[j] >= 0 else None,
                }
                for j in range(ptr[seg], ptr[seg + 1])
            ]
        )
    created = EventTable(
        "segment_created",
        st.created[made],
        {
            "segment_id": st.seg_id[made],
            "author_id": st.seg_author[made] + 1,
            "media_id": media_ids(st.seg_id[made]),
            "media_type": st.media_type[made],
            "audience": st.audience[st.seg_story[made]],
            "duration_ms": st.duration[made],
            "stickers": sticker_col,
        },
    )
    dele = np.flatnonzero((st.deleted_at >= lo_ms) & (st.deleted_at < min(hi_ms, world.end_ms)))
    deleted = EventTable(
        "segment_deleted",
        st.deleted_at[dele],
        {"segment_id": st.seg_id[dele], "author_id": st.seg_author[dele] + 1},
    )
    arch = np.flatnonzero((st.archived_at >= lo_ms) & (st.archived_at < min(hi_ms, world.end_ms)))
    archived = EventTable(
        "segment_archived",
        st.archived_at[arch],
        {
            "segment_id": st.seg_id[arch],
            "author_id": st.seg_author[arch] + 1,
            "highlight_id": st.highlight[arch],
        },
    )
    return [created, deleted, archived]

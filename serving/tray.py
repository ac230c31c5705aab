"""The story tray of one viewer at instant `now` (DESIGN §5, seed: stories-architecture "Tray Ranking").

Candidates: authors the viewer follows at `now` with at least one segment that is active at `now`
(created_at <= now < expires_at, not deleted; lazy expiry, whatever the cleanup has done) and that
the audience rules let the viewer see; plus the viewer's own ring, first, when they have an active
segment.

Score: storylake.rules.tray_score.rank_score (the seed formula, its weights named there), with age_h = hours
from the ring's latest visible active segment to `now` and the 30-day counts from gold.ring_features of the
snapshot (0 when the pair has no row).

The snapshot keeps the segments still active within publish.TRAY_WINDOW (48 h, Seen By's lifetime) before its
as_of, so a tray is served for any `now` >= as_of - 48 h (ValueError before that).

Order: own ring first, then has_unseen desc, rank_score desc, author_id asc. Pages are keyset pages
over that order: the cursor carries the snapshot id, `now` and the last ring's key, and later pages are
ranked with the first page's `now` against the same snapshot, so they never repeat a ring and keep their order.
The cursor's `now` never widens what the caller may see: a segment is shown only if it is active and its audience
rules allow it at both the first page's `now` and the caller's (a story that expired, or an author who blocked or
hid the viewer, since the first page is left out of later pages).

How it runs (measured: a single SQL statement joining segments to ~1,000 followed authors costs a full
scan of the active segments plus 20-40 ms of planning, far over the 20 ms budget):
  1. the viewer's relationship intervals toward every related author (`viewer_pairs`, including the authors'
     private-account intervals) and ranking features (`ring_features`) are slices of the snapshot's
     ViewerIndex (serving/snapshot_indexes.py); the intervals holding at `now` are kept (audience.holds_at_us);
     the live segments the viewer has seen are a slice of the SeenIndex (a DuckDB point lookup on `viewer_seen`
     instead for a `now` before the snapshot's latest view);
  2. the audience rules decide, per candidate author and audience, through audience_table.allowed_table(): the
     truth table of storylake.rules.audience.ALLOWED_SQL over its flags, evaluated by DuckDB from that SQL (the only
     per-segment flag is the audience, so this decides every segment of the author);
  3. the authors' segments come from the snapshot's SegmentIndex (`live_segments` sorted by author), gathered in
     one operation;
  4. numpy ranks the rings; only the page's rings become Python values (RingColumns); its segments stay index rows
     until a renderer asks (`TrayPage.segments`, or the HTTP API's per-segment JSON cache, which skips them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np

from serving import audience_table
from serving import cursor as cursors
from serving.snapshot import Snapshot
from serving.snapshot_indexes import FEATURES, SegmentIndex, seen_index, segment_index, sorted_lookup, viewer_index
from storylake.clock import iso_us, utc
from storylake.rules.audience import holds_at_us
from storylake.rules.tray_score import rank_score

MAX_LIMIT = 500
US_PER_HOUR = 3_600_000_000


def ring_state(has_unseen: bool, is_close_friends: bool) -> str:
    """'green' (close friends story with unseen segments), 'gradient' (unseen), 'grey' (all seen)."""
    if has_unseen:
        return "green" if is_close_friends else "gradient"
    return "grey"


class TraySegment(NamedTuple):
    segment_id: int
    media_type: str
    duration_ms: int
    expires_us: int  # epoch microseconds
    seen: bool
    story_id: int | None
    media_id: int | None
    expires_iso: str  # clock.iso of expires_at (rendered for the whole page at once: clock.iso_us)

    @property
    def expires_at(self) -> datetime:
        return cursors.from_micros(self.expires_us)


@dataclass(frozen=True)
class Ring:
    author_id: int
    is_own: bool
    has_unseen: bool
    latest_us: int  # created_at of the ring's latest visible segment, epoch microseconds
    segment_count: int
    is_close_friends: bool
    rank_score: float
    segments: tuple[TraySegment, ...]
    latest_segment_iso: str  # clock.iso of latest_segment_at

    @property
    def latest_segment_at(self) -> datetime:
        return cursors.from_micros(self.latest_us)

    @property
    def ring_state(self) -> str:
        return ring_state(self.has_unseen, self.is_close_friends)

    @property
    def position(self) -> tuple[bool, bool, float, int]:
        return (self.is_own, self.has_unseen, self.rank_score, self.author_id)


@dataclass(frozen=True)
class RingColumns:
    """A tray page's rings as columns, in page order; ring i has `counts[i]` segments."""

    author_id: list[int]
    is_own: list[bool]
    has_unseen: list[bool]
    is_close_friends: list[bool]
    rank_score: list[float]
    latest_us: list[int]
    latest_iso: list[str]
    counts: list[int]


@dataclass(frozen=True)
class SegmentColumns:
    """The page's segments as columns: the rings' segments concatenated in page order."""

    segment_id: list[int]
    story_id: list[int | None]
    media_id: list[int | None]
    media_type: list[str]
    duration_ms: list[int]
    expires_us: list[int]
    expires_iso: list[str]
    seen: list[bool]


def segment_columns(idx: SegmentIndex, rows: np.ndarray, seen: np.ndarray) -> SegmentColumns:
    """Python values of SegmentIndex `rows` (bulk conversions of numpy columns)."""
    types = ["", *idx.media_types]
    expires_us = idx.expires_us.take(rows)
    return SegmentColumns(
        segment_id=idx.segment_id.take(rows).tolist(),
        story_id=[None if v < 0 else v for v in idx.story_id.take(rows).tolist()],
        media_id=[None if v < 0 else v for v in idx.media_id.take(rows).tolist()],
        media_type=[types[m] for m in idx.media.take(rows).tolist()],
        duration_ms=idx.duration_ms.take(rows).tolist(),
        expires_us=expires_us.tolist(),
        expires_iso=iso_us(expires_us),
        seen=np.asarray(seen, dtype=bool).tolist(),
    )


@dataclass(frozen=True)
class TrayPage:
    """One tray page. Ring columns are Python values; the segments stay SegmentIndex rows (`segment_rows`,
    `segment_seen`) until `segments` (or `rings`) asks for their values, so a renderer with its own per-segment
    cache (the HTTP API's) never converts them."""

    viewer_id: int
    now: datetime
    snapshot_id: str
    ring_columns: RingColumns
    has_more: bool
    next_cursor: str | None
    segment_rows: np.ndarray = field(repr=False, compare=False)
    segment_seen: np.ndarray = field(repr=False, compare=False)
    index: SegmentIndex | None = field(repr=False, compare=False)

    @cached_property
    def segments(self) -> SegmentColumns:
        if self.index is None or self.segment_rows.size == 0:
            return SegmentColumns(*([] for _ in range(8)))
        return segment_columns(self.index, self.segment_rows, self.segment_seen)

    @property
    def rings(self) -> tuple[Ring, ...]:
        c, s = self.ring_columns, self.segments
        out, k = [], 0
        for i, n in enumerate(c.counts):
            segs = tuple(map(TraySegment._make, zip(
                s.segment_id[k:k + n], s.media_type[k:k + n], s.duration_ms[k:k + n], s.expires_us[k:k + n],
                s.seen[k:k + n], s.story_id[k:k + n], s.media_id[k:k + n], s.expires_iso[k:k + n], strict=True)))
            k += n
            out.append(Ring(
                author_id=c.author_id[i], is_own=c.is_own[i], has_unseen=c.has_unseen[i], latest_us=c.latest_us[i],
                segment_count=n, is_close_friends=c.is_close_friends[i], rank_score=c.rank_score[i], segments=segs,
                latest_segment_iso=c.latest_iso[i],
            ))
        return tuple(out)


# The segments the viewer has seen by $now (one zone-map point lookup: viewer_seen is sorted by viewer).
SEEN_SQL = "SELECT segment_id FROM viewer_seen WHERE viewer_id = $viewer AND first_viewed_at <= $now"


def tray(
    snapshot: Snapshot, viewer_id: int, now: datetime, limit: int = 50, cursor: str | None = None,
    extra_seen: np.ndarray | None = None,
) -> TrayPage:
    """One page of `viewer_id`'s tray at `now` (with a cursor: at the first page's `now`). `extra_seen`: segment ids
    the viewer has seen that the snapshot does not know yet (the HTTP API's read-your-writes overlay)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be within 1..{MAX_LIMIT}, got {limit}")
    viewer_id = int(viewer_id)
    now = utc(now)
    after: tuple[bool, bool, float, int] | None = None
    caller_now = now
    if cursor is not None:
        cur = cursors.decode(cursor, key=snapshot.cursor_key, kind="tray", snapshot_id=snapshot.snapshot_id,
                             subject=(viewer_id,))
        now = cur.now
        try:
            o, u, s, a = cur.position
            after = (bool(o), bool(u), float(s), int(a))
        except (TypeError, ValueError) as exc:
            raise cursors.InvalidCursorError("invalid cursor: request the first page") from exc
    window_start = snapshot.tray_window_start
    if window_start is not None and now < window_start:
        raise ValueError(
            f"now {now.isoformat()} is before {window_start.isoformat()}: snapshot {snapshot.snapshot_id} "
            "only serves trays from its as_of minus the tray window"
        )
    rings = _ranked_rings(snapshot, viewer_id, now, extra_seen, also_at=caller_now if caller_now != now else None)
    order = rings["order"]
    start = 0
    if after is not None:
        start = _first_after(rings, order, after)
    page_rows = order[start : start + limit]
    has_more = start + limit < order.size
    rc, seg_pos = _page_rings(rings, page_rows)
    next_cursor = None
    if has_more:
        last = (rc.is_own[-1], rc.has_unseen[-1], rc.rank_score[-1], rc.author_id[-1])
        next_cursor = cursors.Cursor(
            kind="tray", snapshot_id=snapshot.snapshot_id, subject=(viewer_id,), now=now, position=last,
        ).encode(snapshot.cursor_key)
    empty = seg_pos.size == 0
    return TrayPage(
        viewer_id=viewer_id, now=now, snapshot_id=snapshot.snapshot_id, ring_columns=rc, has_more=has_more,
        next_cursor=next_cursor,
        segment_rows=_EMPTY if empty else rings["rows"].take(seg_pos),
        segment_seen=_EMPTY_BOOL if empty else rings["seen"].take(seg_pos),
        index=None if empty else segment_index(snapshot),
    )


_EMPTY = np.empty(0, dtype=np.int64)
_EMPTY_BOOL = np.empty(0, dtype=bool)


def _seen_positions(
    snapshot: Snapshot, idx: SegmentIndex, viewer: int, now: datetime, now_us: int, extra_seen: np.ndarray | None
) -> np.ndarray:
    """Sorted SegmentIndex positions of the live segments the viewer has seen by `now` (the snapshot's SeenIndex, or
    one DuckDB lookup for a `now` before the snapshot's latest view), plus those of `extra_seen` (segment ids)."""
    pos = seen_index(snapshot).of(viewer, now_us)
    fresh = pos is not None
    if pos is None:
        found = snapshot.db().execute(SEEN_SQL, {"viewer": viewer, "now": now}).fetchnumpy()["segment_id"]
        pos = idx.positions_of(np.asarray(found, dtype=np.int64))
    if extra_seen is not None and extra_seen.size:
        pos = np.concatenate((pos, idx.positions_of(extra_seen)))
    elif fresh:
        return pos  # already sorted live positions
    pos = pos[pos >= 0]
    pos.sort()
    return pos


def _allowed_authors(snapshot: Snapshot, viewer: int, now_us: int) -> tuple[np.ndarray, np.ndarray]:
    """(candidate authors sorted, allowed[author, audience_index]): authors the viewer follows at `now` plus the
    viewer; `allowed` is the audience rules' truth table (audience_table.allowed_table) looked up per flag set."""
    author, code, valid_from, valid_to = viewer_index(snapshot).pairs(viewer)
    holding = holds_at_us(valid_from, valid_to, now_us)
    p_author, p_code = author[holding], code[holding]
    related, inv = np.unique(np.append(p_author, viewer), return_inverse=True)
    flags = np.zeros((related.size, len(audience_table.BOOL_FLAGS)), dtype=np.int64)
    flags[inv[:-1], _CODE_TO_COLUMN[p_code]] = 1
    is_self = related == viewer
    flags[:, audience_table.BOOL_FLAGS.index("is_self")] = is_self
    cand = is_self | flags[:, audience_table.BOOL_FLAGS.index("follows")].astype(bool)
    related, flags = related[cand], flags[cand]
    table = audience_table.allowed_table()
    allowed = np.stack([table[(k, *flags.T)] for k in range(len(audience_table.AUDIENCES))], axis=1)
    return related, allowed


_CODE_TO_COLUMN = np.array([audience_table.pair_flag_column(f) for f in audience_table.PAIR_FLAGS], dtype=np.int64)
_CLOSE_FRIENDS = audience_table.AUDIENCES.index("close_friends")


def _ranked_rings(
    snapshot: Snapshot, viewer: int, now: datetime, extra_seen: np.ndarray | None = None,
    also_at: datetime | None = None,
) -> dict[str, Any]:
    """The visible rings at `now`, ranked at `now`; with `also_at`, only segments also visible at that instant."""
    idx = segment_index(snapshot)
    now_us = cursors.micros(now)
    authors, allowed = _allowed_authors(snapshot, viewer, now_us)
    if also_at is not None:
        also_us = cursors.micros(also_at)
        authors_then, allowed_then = _allowed_authors(snapshot, viewer, also_us)
        known, pos = sorted_lookup(authors_then, authors)
        allowed = allowed & known[:, None]
        allowed[known] &= allowed_then[pos[known]]
    rows, author_pos = idx.rows_of(authors)
    # one gather of (created_us, expires_us) per row (np.take: fancy indexing of a 2-D array by rows is ~10x slower)
    life = np.take(idx.lifetime, rows, axis=0)
    created, expires = life[:, idx.CREATED], life[:, idx.EXPIRES]
    # visible: active at now (lazy expiry) and of an audience the rules allow for that author
    keep = (created <= now_us) & (now_us < expires)
    if also_at is not None:
        keep &= (created <= also_us) & (also_us < expires)
    audience = idx.audience.take(rows)
    keep &= allowed.ravel().take(author_pos * allowed.shape[1] + audience)
    k = np.flatnonzero(keep)
    rows, author_pos, created, audience = rows.take(k), author_pos.take(k), created[k], audience.take(k)
    if rows.size == 0:
        return {"order": np.empty(0, dtype=np.int64)}
    seen, _ = sorted_lookup(_seen_positions(snapshot, idx, viewer, now, now_us, extra_seen), rows)

    # per ring (rows are grouped by author, ascending, then by created_at)
    first = np.flatnonzero(np.diff(author_pos, prepend=-1))
    ring_author = authors[author_pos[first]]
    counts = np.diff(np.append(first, rows.size))
    latest_us = np.maximum.reduceat(created, first)
    has_unseen = np.logical_or.reduceat(~seen, first)
    is_cf = np.logical_or.reduceat(audience == _CLOSE_FRIENDS, first)
    is_own = ring_author == viewer

    f_author, f_values = viewer_index(snapshot).ring_features(viewer)
    values = np.zeros((ring_author.size, len(FEATURES)), dtype=np.float64)
    hit, pos = sorted_lookup(f_author, ring_author)
    values[hit] = f_values[pos[hit]]
    features = {f: values[:, i] for i, f in enumerate(FEATURES)}
    age_h = (now_us - latest_us) / US_PER_HOUR
    score = rank_score(age_h, features, is_cf)
    # order: is_own desc, has_unseen desc, score desc, author_id asc (lexsort: last key is primary)
    order = np.lexsort((ring_author, -score, ~has_unseen, ~is_own))
    return {
        "order": order, "author": ring_author, "first": first, "counts": counts, "latest_us": latest_us,
        "has_unseen": has_unseen, "is_cf": is_cf, "is_own": is_own, "score": score, "rows": rows, "seen": seen,
    }


def _first_after(rings: dict[str, Any], order: np.ndarray, after: tuple[bool, bool, float, int]) -> int:
    """Index in `order` of the first ring strictly after the cursor position."""
    o, u, s, a = after
    for i, r in enumerate(order):
        key_own, key_unseen = bool(rings["is_own"][r]), bool(rings["has_unseen"][r])
        key_score, key_author = float(rings["score"][r]), int(rings["author"][r])
        if key_own != o:
            if key_own < o:
                return i
            continue
        if key_unseen != u:
            if key_unseen < u:
                return i
            continue
        if key_score != s:
            if key_score < s:
                return i
            continue
        if key_author > a:
            return i
    return int(order.size)


def _page_rings(rings: dict[str, Any], page_rows: np.ndarray) -> tuple[RingColumns, np.ndarray]:
    """The page's rings as Python values, and the positions (in rings["rows"]) of their segments in page order."""
    if page_rows.size == 0:
        return RingColumns(*([] for _ in range(8))), _EMPTY
    firsts, counts = rings["first"][page_rows], rings["counts"][page_rows]
    seg_pos = np.repeat(firsts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts) + np.arange(int(counts.sum()))
    latest_us = rings["latest_us"][page_rows]
    return RingColumns(
        author_id=rings["author"][page_rows].tolist(),
        is_own=rings["is_own"][page_rows].tolist(),
        has_unseen=rings["has_unseen"][page_rows].tolist(),
        is_close_friends=rings["is_cf"][page_rows].tolist(),
        rank_score=rings["score"][page_rows].tolist(),
        latest_us=latest_us.tolist(),
        latest_iso=iso_us(latest_us),
        counts=counts.tolist(),
    ), seg_pos

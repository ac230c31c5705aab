"""Seen By: who viewed a segment, for its author only, for 48 h after it was created (DESIGN §5).

Viewers are listed newest first by first_viewed_at, ties by viewer_id ascending, in keyset pages.
A viewer the author has blocked (block author -> viewer holding at `now`) is hidden from the list and
not counted: `total` = the segment's viewer rows in the snapshot (which the publish checks against
gold segment_insights.reach: Seen By count == reach) minus those hidden viewers.

How it runs: the segment's checks come from the snapshot's in-memory CatalogIndex (serving/snapshot_indexes.py;
older segments without viewer rows from segment_insights: `older_segment`);
the page is one DuckDB statement over segment_viewers, kept in a bounded per-snapshot LRU (`_page`): the list only
changes when a new snapshot is published.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from cachetools import LRUCache

from serving import cursor as cursors
from serving import seen_bases
from serving.snapshot import Snapshot, view_exists
from serving.snapshot_indexes import SeenChangesIndex, catalog_index, seen_changes
from storylake.clock import iso, iso_us, utc
from storylake.errors import NotFoundError, StorylakeError
from storylake.rules.audience import holds_at_sql
from storylake.rules.lifetimes import SEEN_BY_LIFETIME
from storylake.rules.views import OTHERS_VIEW_SQL

MAX_LIMIT = 1000


class SeenByExpiredError(StorylakeError):
    """Seen By of a segment is only served for lifetimes.SEEN_BY_LIFETIME (48 h) after the segment was created."""


@dataclass(frozen=True)
class SeenByViewer:
    viewer_id: int
    viewed_at: datetime
    view_source: str
    completion_pct: float
    viewed_iso: str  # clock.iso of viewed_at (rendered for the whole page at once, kept with the cached page)


@dataclass(frozen=True)
class SeenByPage:
    segment_id: int
    total: int
    viewers: tuple[SeenByViewer, ...]
    has_more: bool
    next_cursor: str | None
    now: datetime
    snapshot_id: str


# Only for a segment with such blocks: the viewers its author blocks at $now or at $caller_now (hidden, not counted).
HIDDEN_SQL = f"""
SELECT list_distinct(list_transform(
           list_filter(blocked_viewers, lambda b: {holds_at_sql("b", "$now")} OR {holds_at_sql("b", "$caller_now")}),
           lambda b: b.viewer_id))
FROM segment_catalog WHERE segment_id = $seg
"""  # noqa: S608 (constant SQL; values are bound parameters)
_PAGE_BASE = (
    "SELECT viewer_id, epoch_us(first_viewed_at), first_view_source, max_completion_pct FROM segment_viewers "
    "WHERE segment_id = $seg"
)
_AFTER = " AND (first_viewed_at < $t OR (first_viewed_at = $t AND viewer_id > $v))"
_NOT_HIDDEN = " AND NOT list_contains($hidden, viewer_id)"
_ORDER = " ORDER BY 2 DESC, viewer_id ASC"
_LIMIT = " LIMIT $lim"
# segment_viewers is stored sorted by (segment_id, first_viewed_at DESC, viewer_id) and DuckDB returns the
# rows of a query without ORDER BY in insertion order (preserve_insertion_order, on by default), so the
# fast form reads the page in storage order and stops after $lim rows instead of sorting the segment's
# 100k viewers. The page is checked to be in order; SORTED_PAGE_SQL is the fallback.
PAGE_SQL = {
    (after, hidden): _PAGE_BASE + (_AFTER if after else "") + (_NOT_HIDDEN if hidden else "") + _LIMIT
    for after in (False, True)
    for hidden in (False, True)
}
SORTED_PAGE_SQL = {
    (after, hidden): _PAGE_BASE + (_AFTER if after else "") + (_NOT_HIDDEN if hidden else "") + _ORDER + _LIMIT
    for after in (False, True)
    for hidden in (False, True)
}
# A snapshot whose segment_viewers is a base shared between snapshots plus its changes (serving/seen_bases.py): a
# page merges the base's page (read as above from the base, without its rows of the viewers whose rows the changes
# replace) with the segment's changes, held in memory (snapshot_indexes.SeenChangesIndex: an hour's rows or a few).
_OTHERS = f" AND {OTHERS_VIEW_SQL}"
_FROM_BASE = _PAGE_BASE.replace(" segment_viewers ", f" {seen_bases.BASE_VIEW} ") + _OTHERS
_NOT_REPLACED = " AND NOT list_contains($replaced, viewer_id)"
BASE_PAGE_SQL = {
    (after, hidden, replaced, ordered): _FROM_BASE + (_AFTER if after else "") + (_NOT_HIDDEN if hidden else "")
    + (_NOT_REPLACED if replaced else "") + (_ORDER if ordered else "") + _LIMIT
    for after in (False, True)
    for hidden in (False, True)
    for replaced in (False, True)
    for ordered in (False, True)
}


def seen_by(
    snapshot: Snapshot,
    segment_id: int,
    requester_id: int,
    now: datetime,
    limit: int = 50,
    cursor: str | None = None,
) -> SeenByPage:
    """One page of the Seen By list of `segment_id`, as asked by `requester_id` at `now`.

    NotFoundError: unknown (or deleted) segment. PermissionError: the requester is not the author.
    SeenByExpiredError: now >= created_at + 48 h. With a cursor, pages continue the first page's keyset; a
    viewer blocked at the first page's `now` or at the caller's is hidden (the cursor never shows what the caller's
    `now` hides), and the 48 h limit is always checked at the caller's `now`.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be within 1..{MAX_LIMIT}, got {limit}")
    segment_id, requester_id, now = int(segment_id), int(requester_id), utc(now)
    page_now = now
    cur = None
    if cursor is not None:
        cur = cursors.decode(
            cursor, key=snapshot.cursor_key, kind="seen_by", snapshot_id=snapshot.snapshot_id,
            subject=(segment_id, requester_id),
        )
        page_now = cur.now
    # the segment, its viewer-row count and whether its author blocks any of its viewers at some time
    # (segment_catalog, held in memory by snapshot_indexes.CatalogIndex)
    row = catalog_index(snapshot).get(segment_id)
    if row is None:
        row = older_segment(snapshot, segment_id)
    if row is None:
        raise NotFoundError(f"segment {segment_id} is not in serving snapshot {snapshot.snapshot_id}")
    author_id, created_us, is_deleted, viewer_rows, has_blocks = row
    created_at = cursors.from_micros(created_us)
    if requester_id != author_id:
        raise PermissionError(
            f"user {requester_id} may not see the Seen By list of segment {segment_id}: only its author can"
        )
    if is_deleted:
        raise NotFoundError(f"segment {segment_id} was deleted by its author")
    expires = created_at + SEEN_BY_LIFETIME
    if now >= expires:
        raise SeenByExpiredError(f"Seen By for segment {segment_id} expired at {iso(expires)}")

    params: dict[str, Any] = {"seg": segment_id, "lim": limit + 1}
    after = cur is not None
    if cur is not None:
        try:
            t_us, v = cur.position
            params.update(t=cursors.from_micros(int(t_us)), v=int(v))
        except (TypeError, ValueError) as exc:
            raise cursors.InvalidCursorError("invalid cursor: request the first page") from exc

    hidden: list[int] = []
    if has_blocks:
        found = snapshot.db().execute(HIDDEN_SQL, {"seg": segment_id, "now": page_now, "caller_now": now}).fetchone()[0]
        hidden = sorted({int(v) for v in (found or ()) if v is not None})
    total = viewer_rows - len(hidden)  # blocked_viewers only holds viewers of this segment
    if hidden:
        params["hidden"] = hidden
    viewers, has_more = _page(snapshot, after, hidden, params, limit, viewer_rows)
    next_cursor = None
    if has_more:
        last = viewers[-1]
        next_cursor = cursors.Cursor(
            kind="seen_by", snapshot_id=snapshot.snapshot_id, subject=(segment_id, requester_id), now=page_now,
            position=(cursors.micros(last.viewed_at), last.viewer_id),
        ).encode(snapshot.cursor_key)
    return SeenByPage(
        segment_id=segment_id, total=total, viewers=viewers, has_more=has_more, next_cursor=next_cursor,
        now=page_now, snapshot_id=snapshot.snapshot_id,
    )


# A segment the catalog does not hold (created before as_of - SEEN_BY_LIFETIME, no viewer rows): its author, creation
# and deletion from its insights row, which gold keeps for 2 years, through the snapshot's segment_lookup view (the
# history and warm parts sorted by segment_id: one row group read however many years they hold; the recent part, a
# few days, scanned). Snapshots published before that view existed hold every segment in their catalog:
# segment_insights.
OLDER_SEGMENT_SQL = {
    source: f"SELECT author_id, epoch_us(created_at), coalesce(is_deleted, false) FROM {source} "  # noqa: S608
    "WHERE segment_id = $seg LIMIT 1"
    for source in ("segment_lookup", "segment_insights")
}


def older_segment(snapshot: Snapshot, segment_id: int) -> tuple[int, int, bool, int, bool] | None:
    """The catalog row (author_id, created_us, is_deleted, viewer_rows, has_blocks) of a segment older than the
    catalog, None when the snapshot does not know it. It has no viewer rows (the catalog holds every segment with
    some), so none to count or hide: its Seen By is expired or, at a `now` before its end, empty."""
    db = snapshot.db()
    source = snapshot.cache.get("older_segment_source")
    if source is None:
        source = snapshot.cache.setdefault(
            "older_segment_source", "segment_lookup" if view_exists(db, "segment_lookup") else "segment_insights")
    found = db.execute(OLDER_SEGMENT_SQL[source], {"seg": segment_id}).fetchone()
    if found is None:
        return None
    return int(found[0]), int(found[1]), bool(found[2]), 0, False


PAGE_CACHE_SIZE = 4096  # pages per snapshot handle (a page of 50 viewers: ~10 KB)
_cache_lock = threading.Lock()


def _page(
    snapshot: Snapshot, after: bool, hidden: list[int], params: dict[str, Any], limit: int, viewer_rows: int
) -> tuple[tuple[SeenByViewer, ...], bool]:
    """(the page's viewers, whether more follow). A snapshot never changes, so a page read once is kept for the
    snapshot handle's life in a bounded LRU keyed by everything the statement reads (segment, keyset position,
    limit, hidden viewers): an author refreshing a live segment's Seen By list costs no statement until the next
    publish."""
    key = (params["seg"], params.get("t"), params.get("v"), limit, tuple(hidden))
    cache = snapshot.cache.get("seen_by_pages")
    if cache is None:
        cache = snapshot.cache.setdefault("seen_by_pages", LRUCache(maxsize=PAGE_CACHE_SIZE))
    with _cache_lock:
        found = cache.get(key)
    if found is not None:
        return found  # type: ignore[no-any-return]
    db = snapshot.db()
    changes = seen_changes(snapshot)
    if changes is not None:
        rows = _merged_page(snapshot, changes, after, hidden, params, viewer_rows)
    else:
        rows = db.execute(PAGE_SQL[(after, bool(hidden))], params).fetchall()
        if not _in_order(rows):
            rows = db.execute(SORTED_PAGE_SQL[(after, bool(hidden))], params).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    texts = iso_us(np.array([r[1] for r in rows], dtype=np.int64))
    viewers = tuple(
        SeenByViewer(
            viewer_id=int(r[0]), viewed_at=cursors.from_micros(r[1]), view_source=str(r[2]),
            completion_pct=float(r[3]) if r[3] is not None else 0.0, viewed_iso=text,
        )
        for r, text in zip(rows, texts, strict=True)
    )
    page = (viewers, more)
    with _cache_lock:
        cache[key] = page
    return page


def _merged_page(snapshot: Snapshot, changes: SeenChangesIndex, after: bool, hidden: list[int],
                 params: dict[str, Any], viewer_rows: int) -> list[tuple[Any, ...]]:
    """The page's rows (up to params['lim']) of the base's and the changes' rows of the segment (`viewer_rows`: its
    others' rows as readers see them; when the changes hold all of them, the base is not read)."""
    mine, replaced = changes.page(params, hidden)
    found = list(mine)
    if changes.added(params["seg"]) < viewer_rows:
        wanted = {**params, "replaced": replaced} if replaced else params
        db = snapshot.db()
        rows = db.execute(BASE_PAGE_SQL[(after, bool(hidden), bool(replaced), False)], wanted).fetchall()
        if not _in_order(rows):
            rows = db.execute(BASE_PAGE_SQL[(after, bool(hidden), bool(replaced), True)], wanted).fetchall()
        found += rows
        found.sort(key=lambda r: (-r[1], r[0]))
    return found[: params["lim"]]


def _in_order(rows: list[tuple[Any, ...]]) -> bool:
    """Rows in (first_viewed_at DESC, viewer_id ASC) order, strictly (no duplicates)."""
    return all((a[1] > b[1]) or (a[1] == b[1] and a[0] < b[0]) for a, b in zip(rows, rows[1:], strict=False))

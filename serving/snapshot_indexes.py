"""In-process indexes of one published snapshot: the keyed tables the request paths read, as numpy arrays.

A snapshot never changes, so an index built from it never goes stale; each is built once per snapshot handle, on
first use (the HTTP server builds them before it switches to a new snapshot, snapshot_holder.py). A request then
does binary searches and slices instead of SQL statements: measured on the API benchmark's snapshot, a DuckDB
point lookup costs 0.6-1.4 ms (parse, plan, a row-group scan) where the same slice costs ~10 µs, and the tray
needs three of them per request.

    SegmentIndex   live_segments by (author_id, created_at, segment_id)   -> tray rings
    SeenIndex      viewer_seen by viewer_id, as SegmentIndex positions     -> the tray's seen state
    ViewerIndex    viewer_pairs and ring_features by viewer_id            -> tray candidates, flags and features
    CatalogIndex   segment_catalog by segment_id                          -> Seen By's segment checks
    SeenChangesIndex  segment_viewers_changes by segment, in keyset order -> Seen By's pages of a shared base
    ProfileIndex   profiles by user_id                                    -> names and pictures in answers

SeenIndex keeps 4 bytes per (viewer, live segment) pair; segment_viewers (Seen By's pages, one row per viewer and
segment with its time, source and completion) stays in DuckDB, one point lookup per page. Memory on the API
benchmark's snapshot (1.25M live segments, 25M seen pairs, 2.5M pair intervals, 1M feature rows, 1.5M catalog rows,
100k profiles): ~0.4 GB per server process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from serving import audience_table, seen_bases
from serving import cursor as cursors
from serving.snapshot import Snapshot, table_exists, view_exists
from storylake.rules.audience import OPEN_END_US
from storylake.rules.tray_score import FEATURE_WEIGHTS
from storylake.rules.views import OTHERS_VIEW_SQL

FEATURES: tuple[str, ...] = tuple(FEATURE_WEIGHTS)
_EMPTY = np.empty(0, dtype=np.int64)


def sorted_lookup(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hit, pos): whether each of `values` is in the sorted `keys`, and its position there (meaningful where hit)."""
    if keys.size == 0:
        return np.zeros(values.size, dtype=bool), np.zeros(values.size, dtype=np.int64)
    pos = np.minimum(np.searchsorted(keys, values), keys.size - 1)
    return keys[pos] == values, pos


def _key_range(keys: np.ndarray, key: int) -> tuple[int, int]:
    """[start, stop) of `key` in the sorted `keys`."""
    return int(np.searchsorted(keys, key, side="left")), int(np.searchsorted(keys, key, side="right"))


class SegmentIndex:
    """`live_segments` of one snapshot as numpy arrays sorted by (author_id, created_at, segment_id).

    `lifetime` holds (created_us, expires_us) per segment, row-major, so gathering a viewer's ~10k candidate rows is
    one fancy-indexing operation instead of one per column."""

    CREATED, EXPIRES = range(2)

    def __init__(self, snapshot: Snapshot) -> None:
        db = snapshot.db()
        self.media_types: list[str] = [r[0] for r in db.execute(
            "SELECT DISTINCT media_type FROM live_segments WHERE media_type IS NOT NULL ORDER BY 1").fetchall()]
        cols = db.execute(
            "SELECT segment_id, author_id, coalesce(story_id, -1) AS story_id, coalesce(media_id, -1) AS media_id, "
            "list_position($audiences, audience)::BIGINT - 1 AS audience, "
            "coalesce(list_position($types, media_type), 0)::INTEGER AS media, duration_ms, "
            "epoch_us(created_at) AS created_us, epoch_us(expires_at) AS expires_us "
            "FROM live_segments WHERE list_position($audiences, audience) IS NOT NULL "  # unknown audience: never shown
            "ORDER BY author_id, created_at, segment_id",
            {"types": self.media_types or [""], "audiences": list(audience_table.AUDIENCES)},
        ).fetchnumpy()
        self.segment_id = np.asarray(cols["segment_id"], dtype=np.int64)
        self.story_id = np.asarray(cols["story_id"], dtype=np.int64)  # -1: not known
        self.media_id = np.asarray(cols["media_id"], dtype=np.int64)
        self.audience = np.asarray(cols["audience"], dtype=np.int8)  # index in audience_table.AUDIENCES
        self.media = np.asarray(cols["media"], dtype=np.int32)
        self.duration_ms = np.asarray(cols["duration_ms"], dtype=np.int64)
        self.lifetime = np.column_stack((np.asarray(cols["created_us"], dtype=np.int64),
                                         np.asarray(cols["expires_us"], dtype=np.int64)))
        # contiguous copies: a gather from a column view of `lifetime` would first copy the whole column
        self.created_us = np.ascontiguousarray(self.lifetime[:, self.CREATED])
        self.expires_us = np.ascontiguousarray(self.lifetime[:, self.EXPIRES])
        self.authors, self.starts, self.counts = np.unique(
            np.asarray(cols["author_id"], dtype=np.int64), return_index=True, return_counts=True)
        # segment id -> row, a hash index over the first row of each id (silver keys segments by id: one row each)
        first = ~pd.Index(self.segment_id).duplicated()
        self._ids, self._rows = pd.Index(self.segment_id[first]), np.flatnonzero(first)

    def positions_of(self, segment_ids: np.ndarray) -> np.ndarray:
        """Row position of each segment id, -1 where the index does not hold it (a hash lookup: 25M ids in ~3 s)."""
        hit = self._ids.get_indexer(np.asarray(segment_ids, dtype=np.int64))
        return np.where(hit >= 0, self._rows[hit], -1)

    def created_us_of(self, segment_ids: np.ndarray) -> np.ndarray:
        """created_at (epoch µs) of each live segment id, -1 where the index does not hold it."""
        pos = self.positions_of(segment_ids)
        return np.where(pos >= 0, self.created_us[pos], -1)

    def rows_of(self, authors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row positions of every segment of the sorted `authors`, the position in `authors` of each row's author);
        authors without segments contribute none. Rows come grouped by author, in `authors` order."""
        pos = np.searchsorted(self.authors, authors)
        inside = pos < self.authors.size
        which = np.flatnonzero(inside)
        which = which[self.authors[pos[which]] == authors[which]]
        starts, counts = self.starts[pos[which]], self.counts[pos[which]]
        if counts.size == 0:
            return _EMPTY, _EMPTY
        total = int(counts.sum())
        # concatenated ranges [start, start + count) without a Python loop
        offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
        return np.arange(total, dtype=np.int64) + offsets, np.repeat(which, counts)


class SeenIndex:
    """`viewer_seen` restricted to live segments, as each viewer's SegmentIndex row positions (CSR: `starts` per
    viewer into `positions`, int32). viewer_seen holds the instant of each first view and a tray only counts views by
    its `now`: every view in the snapshot is at or before `latest_us`, so for `now` >= latest_us (every live request)
    all of them count; `positions` returns None for an earlier `now` and the caller asks DuckDB instead."""

    def __init__(self, snapshot: Snapshot, segments: SegmentIndex) -> None:
        db = snapshot.db()
        if table_exists(db, seen_bases.SEEN_CHANGES) and view_exists(db, seen_bases.SEEN_BASE_VIEW):
            viewer, segment, self.latest_us = _seen_of_base_and_changes(db)
        else:
            self.latest_us = int(db.execute(
                "SELECT coalesce(epoch_us(max(first_viewed_at)), -9223372036854775808) FROM viewer_seen"
            ).fetchone()[0])
            cols = db.execute("SELECT viewer_id, segment_id FROM viewer_seen").fetchnumpy()
            viewer = np.asarray(cols["viewer_id"], dtype=np.int64)
            segment = np.asarray(cols["segment_id"], dtype=np.int64)
            del cols
        pos = segments.positions_of(segment)
        del segment
        live = pos >= 0
        viewer, self.positions = viewer[live], pos[live].astype(np.int32)
        if viewer.size and not bool(np.all(viewer[1:] >= viewer[:-1])):  # stored sorted by viewer: never sorts
            order = np.argsort(viewer, kind="stable")
            viewer, self.positions = viewer[order], self.positions[order]
        self.viewers, starts = np.unique(viewer, return_index=True)
        self.starts = np.append(starts, viewer.size)

    def of(self, viewer: int, now_us: int) -> np.ndarray | None:
        """Sorted SegmentIndex positions of the live segments `viewer` has seen by `now_us` (None: ask DuckDB)."""
        if now_us < self.latest_us:
            return None
        i = int(np.searchsorted(self.viewers, viewer))
        if i >= self.viewers.size or int(self.viewers[i]) != viewer:
            return np.empty(0, dtype=np.int64)
        return np.sort(self.positions[self.starts[i]:self.starts[i + 1]]).astype(np.int64)


# a snapshot's seen pairs as a base shared between snapshots plus its changes (serving/seen_bases.py): both stored
# sorted by viewer; a changes row that replaces a base row has its (viewer, segment), so the pairs are the base's and
# the changes' that replace none, merged by viewer without a sort
_SEEN_BASE_SQL = f"SELECT viewer_id, segment_id FROM {seen_bases.SEEN_BASE_VIEW}"  # noqa: S608
_SEEN_ADDED_SQL = (f"SELECT viewer_id, segment_id FROM {seen_bases.SEEN_CHANGES} "  # noqa: S608
                   f"WHERE NOT {seen_bases.REPLACES} ORDER BY viewer_id")
# at or after every view the snapshot holds (a replaced base row's view may be later than its replacement's first
# view: SeenIndex.of then asks DuckDB for a `now` between the two, which answers the same)
_SEEN_LATEST_SQL = (
    "SELECT coalesce(epoch_us(greatest("  # noqa: S608
    f"(SELECT max(first_viewed_at) FROM {seen_bases.SEEN_BASE_VIEW}), "
    f"(SELECT max(first_viewed_at) FROM {seen_bases.SEEN_CHANGES}))), -9223372036854775808)"
)


def _seen_of_base_and_changes(db: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """(viewer_id, segment_id sorted by viewer, latest_us) of a snapshot whose viewer_seen is a shared base and its
    changes."""
    base = db.execute(_SEEN_BASE_SQL).fetchnumpy()
    added = db.execute(_SEEN_ADDED_SQL).fetchnumpy()
    base_viewer = np.asarray(base["viewer_id"], dtype=np.int64)
    added_viewer = np.asarray(added["viewer_id"], dtype=np.int64)
    at = np.searchsorted(base_viewer, added_viewer, side="right")
    viewer = np.insert(base_viewer, at, added_viewer)
    segment = np.insert(np.asarray(base["segment_id"], dtype=np.int64), at,
                        np.asarray(added["segment_id"], dtype=np.int64))
    return viewer, segment, int(db.execute(_SEEN_LATEST_SQL).fetchone()[0])


class ViewerIndex:
    """`viewer_pairs` and `ring_features` sorted by viewer: a viewer's relationship intervals and ranking features are
    one contiguous slice each."""

    def __init__(self, snapshot: Snapshot) -> None:
        db = snapshot.db()
        pairs = db.execute(
            "SELECT viewer_id, author_id, flag_code, epoch_us(valid_from) AS valid_from_us, "
            "coalesce(epoch_us(valid_to), $open) AS valid_to_us FROM viewer_pairs "
            "ORDER BY viewer_id, author_id, flag_code, valid_from",
            {"open": OPEN_END_US},
        ).fetchnumpy()
        self.pair_viewer = np.asarray(pairs["viewer_id"], dtype=np.int64)
        self.pair_author = np.asarray(pairs["author_id"], dtype=np.int64)
        self.pair_code = np.asarray(pairs["flag_code"], dtype=np.int64)
        self.pair_from = np.asarray(pairs["valid_from_us"], dtype=np.int64)
        self.pair_to = np.asarray(pairs["valid_to_us"], dtype=np.int64)
        feats = db.execute(
            f"SELECT viewer_id, author_id, {', '.join(FEATURES)} FROM ring_features ORDER BY viewer_id, author_id"  # noqa: S608
        ).fetchnumpy()
        self.feature_viewer = np.asarray(feats["viewer_id"], dtype=np.int64)
        self.feature_author = np.asarray(feats["author_id"], dtype=np.int64)
        self.features = np.column_stack([np.asarray(feats[f], dtype=np.float64) for f in FEATURES])

    def pairs(self, viewer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(author_id, flag_code, valid_from_us, valid_to_us) of the viewer's intervals, valid_to_us OPEN_END_US when
        open, sorted by author."""
        a, b = _key_range(self.pair_viewer, viewer)
        return self.pair_author[a:b], self.pair_code[a:b], self.pair_from[a:b], self.pair_to[a:b]

    def ring_features(self, viewer: int) -> tuple[np.ndarray, np.ndarray]:
        """(author_id sorted, features[author, FEATURES]) of the viewer's ring_features rows."""
        a, b = _key_range(self.feature_viewer, viewer)
        return self.feature_author[a:b], self.features[a:b]


class CatalogIndex:
    """`segment_catalog` by segment_id: author, created_at, deletion, viewer-row count and whether its author blocks
    any of its viewers at some time (the blocks themselves stay in DuckDB: almost no segment has any)."""

    def __init__(self, snapshot: Snapshot) -> None:
        cols = snapshot.db().execute(
            "SELECT segment_id, author_id, epoch_us(created_at) AS created_us, coalesce(is_deleted, false) AS deleted, "
            "viewer_rows, blocked_viewers IS NOT NULL AS has_blocks FROM segment_catalog ORDER BY segment_id"
        ).fetchnumpy()
        self.segment_id = np.asarray(cols["segment_id"], dtype=np.int64)
        self.author_id = np.asarray(cols["author_id"], dtype=np.int64)
        self.created_us = np.asarray(cols["created_us"], dtype=np.int64)
        self.deleted = np.asarray(cols["deleted"], dtype=bool)
        self.viewer_rows = np.asarray(cols["viewer_rows"], dtype=np.int64)
        self.has_blocks = np.asarray(cols["has_blocks"], dtype=bool)

    def get(self, segment_id: int) -> tuple[int, int, bool, int, bool] | None:
        """(author_id, created_us, is_deleted, viewer_rows, has_blocks) of the segment, None when unknown."""
        i = int(np.searchsorted(self.segment_id, segment_id))
        if i >= self.segment_id.size or int(self.segment_id[i]) != segment_id:
            return None
        return (int(self.author_id[i]), int(self.created_us[i]), bool(self.deleted[i]), int(self.viewer_rows[i]),
                bool(self.has_blocks[i]))


class ProfileIndex:
    """`profiles` by user_id (username, profile picture media id; -1 when the user has no picture)."""

    def __init__(self, snapshot: Snapshot) -> None:
        if not table_exists(snapshot.db(), "profiles"):
            self.user_id, self.picture, self.username = _EMPTY, _EMPTY, np.empty(0, dtype=object)
            return
        cols = snapshot.db().execute(
            "SELECT user_id, username, coalesce(profile_picture_media_id, -1) AS picture FROM profiles ORDER BY user_id"
        ).fetchnumpy()
        self.user_id = np.asarray(cols["user_id"], dtype=np.int64)
        self.picture = np.asarray(cols["picture"], dtype=np.int64)
        self.username = np.asarray(cols["username"], dtype=object)

    def lookup(self, user_ids: list[int]) -> dict[int, tuple[str, int | None]]:
        """user id -> (username, picture media id or None) for the ids that have a profile."""
        ids = np.asarray(user_ids, dtype=np.int64)
        hit, pos = sorted_lookup(self.user_id, ids)
        hit = np.flatnonzero(hit)
        found = pos[hit]
        pictures = self.picture[found].tolist()
        return {
            u: (str(n), None if p < 0 else p)
            for u, n, p in zip(ids[hit].tolist(), self.username[found].tolist(), pictures, strict=True)
        }


# the changes' rows of others' views in the keyset order (their storage order), the view source as its enum code
CHANGES_ROWS_SQL = (
    f"SELECT segment_id, viewer_id, epoch_us(first_viewed_at) AS t_us, enum_code(first_view_source) AS source, "  # noqa: S608
    f"coalesce(max_completion_pct, 0) AS pct, {seen_bases.REPLACES} FROM {seen_bases.CHANGES} "
    f"WHERE {OTHERS_VIEW_SQL} ORDER BY {seen_bases.PAGE_ORDER}"
)
CHANGES_SOURCES_SQL = f"SELECT enum_range(NULL::{seen_bases.VIEW_SOURCE_TYPE})"  # noqa: S608


class SeenChangesIndex:
    """The snapshot's Seen By changes (others' views: the rows silver.segment_viewers appended since the base, each
    replacing the base's row of its key when it has one), in the keyset order, held in memory: a segment's rows are
    one contiguous slice."""

    def __init__(self, snapshot: Snapshot) -> None:
        db = snapshot.db()
        cols = db.execute(CHANGES_ROWS_SQL).fetchnumpy()
        self.segments = np.asarray(cols["segment_id"], dtype=np.int64)
        self.viewers = np.asarray(cols["viewer_id"], dtype=np.int64)
        self.t_us = np.asarray(cols["t_us"], dtype=np.int64)
        self.source = np.asarray(cols["source"], dtype=np.int64)
        self.pct = np.asarray(cols["pct"], dtype=np.float64)
        self.replaces = np.asarray(cols["replaces"], dtype=bool)
        self.sources = [str(v) for v in db.execute(CHANGES_SOURCES_SQL).fetchone()[0]]

    def _slice(self, segment_id: int) -> slice:
        lo, hi = np.searchsorted(self.segments, [segment_id, segment_id + 1])
        return slice(int(lo), int(hi))

    def added(self, segment_id: int) -> int:
        """The segment's new rows (those that replace no base row)."""
        return int(np.count_nonzero(~self.replaces[self._slice(segment_id)]))

    def page(self, params: dict[str, Any], hidden: list[int]) -> tuple[list[tuple[Any, ...]], list[int]]:
        """(the segment's first params['lim'] rows after the keyset position and not hidden, as a page statement's
        rows; the viewers whose base rows its changes replace)."""
        part = self._slice(params["seg"])
        viewers, t_us = self.viewers[part], self.t_us[part]
        replaced = [int(v) for v in viewers[self.replaces[part]]]
        keep = np.ones(viewers.size, dtype=bool)
        if "t" in params:
            t, v = cursors.micros(params["t"]), params["v"]
            keep &= (t_us < t) | ((t_us == t) & (viewers > v))
        if hidden:
            keep &= ~np.isin(viewers, hidden)
        rows = np.flatnonzero(keep)[: params["lim"]] + part.start
        return ([(int(self.viewers[i]), int(self.t_us[i]), self.sources[int(self.source[i])], float(self.pct[i]))
                 for i in rows], replaced)


T = TypeVar("T")
_lock = threading.RLock()  # re-entrant: an index may build the ones it depends on


def _cached(snapshot: Snapshot, name: str, build: Callable[[Snapshot], T]) -> T:
    idx: Any = snapshot.cache.get(name)
    if idx is None:
        with _lock:
            idx = snapshot.cache.get(name)
            if idx is None:
                idx = build(snapshot)
                snapshot.cache[name] = idx
    return idx  # type: ignore[no-any-return]


def segment_index(snapshot: Snapshot) -> SegmentIndex:
    return _cached(snapshot, "segment_index", SegmentIndex)


def seen_index(snapshot: Snapshot) -> SeenIndex:
    return _cached(snapshot, "seen_index", lambda snap: SeenIndex(snap, segment_index(snap)))


def viewer_index(snapshot: Snapshot) -> ViewerIndex:
    return _cached(snapshot, "viewer_index", ViewerIndex)


def catalog_index(snapshot: Snapshot) -> CatalogIndex:
    return _cached(snapshot, "catalog_index", CatalogIndex)


def profile_index(snapshot: Snapshot) -> ProfileIndex:
    return _cached(snapshot, "profile_index", ProfileIndex)


def seen_changes(snapshot: Snapshot) -> SeenChangesIndex | None:
    """The snapshot's Seen By changes (None: its segment_viewers is a table of its own, as published before
    serving/seen_bases.py)."""
    if not _cached(snapshot, "seen_changes_exist", lambda snap: table_exists(snap.db(), seen_bases.CHANGES)):
        return None
    return _cached(snapshot, "seen_changes", SeenChangesIndex)


def build_all(snapshot: Snapshot) -> None:
    """Every index of the snapshot (a server does this before it serves the snapshot)."""
    for build in (segment_index, seen_index, viewer_index, catalog_index, profile_index, seen_changes):
        build(snapshot)

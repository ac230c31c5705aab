"""Property: a snapshot whose Seen By tables are a shared base plus the rows silver.segment_viewers appended since
(serving/seen_bases.py) serves what a snapshot of the same rows written at once serves: every Seen By page (any page
size, blocked viewers hidden), the tray's seen state, viewer_seen, segment_viewers and the catalog's viewer rows."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.cursor import micros
from serving.publish import publish
from serving.seen_by import seen_by
from serving.snapshot import current_id, open_snapshot, snapshot_path
from serving.snapshot_indexes import seen_index, segment_index
from storylake.lake import write_table
from storylake.settings import Settings
from tests.lake_builder import HOUR, LakeBuilder

T = datetime(2026, 11, 2, 12, tzinfo=UTC)
AUTHOR = 1
SEGMENTS = (100, 101)
CREATED = T - 3 * HOUR
VIEWERS = st.integers(1, 9)  # 1 is the author: their own view is seen but not listed
MINUTE = st.integers(0, 170)  # minutes after CREATED


def row(seg: int, viewer: int, minute: int, pct: float, count: int) -> dict[str, Any]:
    at = CREATED + timedelta(minutes=minute)
    return {"segment_id": seg, "viewer_id": viewer, "author_id": AUTHOR, "first_viewed_at": at, "last_viewed_at": at,
            "view_count": count, "max_completion_pct": pct, "total_view_ms": 5000 * count,
            "first_view_source": "tray", "segment_created_at": CREATED}


def lake(root: Path, rows: list[dict[str, Any]], blocked: list[int]) -> Settings:
    s = Settings(lake=root / "lake", landing=root / "landing")
    builder = LakeBuilder(s)
    for seg in SEGMENTS:
        builder.segment(seg, AUTHOR, CREATED)
    for viewer in blocked:
        builder.rel("block", AUTHOR, viewer, T - HOUR)
    builder.rows["silver.segment_viewers"].extend(rows)
    builder.write()
    return s


def served(s: Settings, limit: int) -> dict[str, Any]:
    sid = current_id(s)
    assert sid is not None
    with open_snapshot(snapshot_path(s, sid)) as snap:
        db = snap.db()
        out: dict[str, Any] = {
            "segment_viewers": db.execute("SELECT * FROM segment_viewers ORDER BY ALL").fetchall(),
            "viewer_seen": db.execute("SELECT * FROM viewer_seen ORDER BY ALL").fetchall(),
            # a segment's block intervals are a set (their list's order is the rows' order)
            "catalog": [(seg, n, sorted(blocks or (), key=lambda b: (b["viewer_id"], b["valid_from"])))
                        for seg, n, blocks in db.execute("SELECT segment_id, viewer_rows, blocked_viewers "
                                                         "FROM segment_catalog ORDER BY segment_id").fetchall()],
        }
        # the tray's seen state (snapshot_indexes.SeenIndex: the base's pairs and the changes', merged by viewer)
        segments, seen = segment_index(snap), seen_index(snap)
        out["seen"] = {viewer: sorted(segments.segment_id[found].tolist()) if (found := seen.of(viewer, micros(T)))
                       is not None else None for viewer in range(1, 10)}
        for seg in SEGMENTS:
            pages, cursor = [], None
            while True:
                page = seen_by(snap, seg, AUTHOR, T, limit=limit, cursor=cursor)
                pages.append((page.total, [(v.viewer_id, v.viewed_at, v.view_source, v.completion_pct)
                                           for v in page.viewers]))
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            out[seg] = pages
    return out


keys = st.tuples(st.sampled_from(SEGMENTS), VIEWERS)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.dictionaries(keys, st.tuples(MINUTE, st.sampled_from([0.5, 1.0])), max_size=12),
    later=st.dictionaries(keys, st.tuples(MINUTE, st.sampled_from([0.5, 1.0])), min_size=1, max_size=10),
    blocked=st.lists(VIEWERS.filter(lambda v: v != AUTHOR), max_size=3, unique=True),
    limit=st.integers(1, 4),
)
def test_a_base_and_its_appended_rows_serve_what_the_rows_written_at_once_serve(
        first: dict[tuple[int, int], tuple[int, float]], later: dict[tuple[int, int], tuple[int, float]],
        blocked: list[int], limit: int) -> None:
    # a key of `later` that `first` holds grew (a second view: the earlier first view, the higher completion), as
    # the silver job appends a grown pair's row; the others are new pairs
    grown: dict[tuple[int, int], dict[str, Any]] = {}
    for (seg, viewer), (minute, pct) in later.items():
        if (seg, viewer) in first:
            was_minute, was_pct = first[(seg, viewer)]
            grown[(seg, viewer)] = row(seg, viewer, min(minute, was_minute), max(pct, was_pct), 2)
        else:
            grown[(seg, viewer)] = row(seg, viewer, minute, pct, 1)
    before = [row(seg, viewer, minute, pct, 1) for (seg, viewer), (minute, pct) in first.items()]
    final = [grown.get(key, r) for key, r in zip(first, before, strict=True)]
    final += [r for key, r in grown.items() if key not in first]
    with tempfile.TemporaryDirectory() as tmp:
        hourly = lake(Path(tmp) / "hourly", before, blocked)
        publish(hourly, T)
        write_table(hourly, "silver.segment_viewers", list(grown.values()), mode="append")
        report = publish(hourly, T)
        assert "seen_by" in report.history["bases_reused"]
        once = lake(Path(tmp) / "once", final, blocked)
        publish(once, T)
        got = served(hourly, limit)
        assert got == served(once, limit)
        # the rows publish reports (the viewer_seen count is arithmetic over the base and the changes)
        assert {name: report.tables[name] for name in ("segment_viewers", "viewer_seen")} == {
            "segment_viewers": len(got["segment_viewers"]), "viewer_seen": len(got["viewer_seen"])}

"""Cached access to the dashboard queries (serving/dashboard_queries.py, serving/ops_queries.py).

Every cached data function takes the requester as an explicit argument, so it is part of the cache key:
an entry computed for one creator can never be returned to another (the queries themselves read through
the serving API's permission checks with that requester). The lake and the snapshot id are arguments too,
so a new publish starts new entries; `now` is an argument because results depend on it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from serving import dashboard_queries as q
from serving import ops_queries as ops
from serving.snapshot import Snapshot, open_snapshot, snapshot_path
from storylake.settings import Settings

TTL_S = 600
MAX_ENTRIES = 2048


@st.cache_resource(max_entries=4, show_spinner=False)
def snapshot(lake: str, snapshot_id: str) -> Snapshot:
    """A read-only handle on one published snapshot (shared: it holds no per-user data)."""
    return open_snapshot(snapshot_path(Settings(lake=Path(lake)), snapshot_id))


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def overview(lake: str, snapshot_id: str, requester_id: int, now: datetime) -> q.Overview:
    return q.overview(snapshot(lake, snapshot_id), requester_id, now)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def stories(lake: str, snapshot_id: str, requester_id: int, now: datetime) -> pd.DataFrame:
    return q.stories(snapshot(lake, snapshot_id), requester_id, now)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def story_detail(lake: str, snapshot_id: str, requester_id: int, now: datetime, story_id: int) -> q.StoryDetail:
    return q.story_detail(snapshot(lake, snapshot_id), requester_id, now, story_id)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def seen_by_segments(lake: str, snapshot_id: str, requester_id: int, now: datetime) -> pd.DataFrame:
    return q.seen_by_segments(snapshot(lake, snapshot_id), requester_id, now)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def seen_by_page(
    lake: str, snapshot_id: str, requester_id: int, now: datetime, segment_id: int, limit: int, cursor: str | None
) -> q.SeenByView:
    return q.seen_by_page(snapshot(lake, snapshot_id), requester_id, now, segment_id, limit, cursor)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def sticker_board(
    lake: str, snapshot_id: str, requester_id: int, now: datetime, story_id: int | None
) -> q.StickerBoard:
    return q.sticker_board(snapshot(lake, snapshot_id), requester_id, now, story_id)


@st.cache_data(ttl=60, max_entries=64, show_spinner=False)
def ops_report(lake: str, requester: str, now: datetime) -> ops.OpsReport:
    """The ops page's panels (operators only: the page checks the role; `requester` keys the entry)."""
    return ops.ops_report(Settings(lake=Path(lake)), now)


CREATOR_FUNCTIONS = (overview, stories, story_detail, seen_by_segments, seen_by_page, sticker_board)

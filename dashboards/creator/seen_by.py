"""Seen By: who viewed one of the creator's segments, newest first, in cursor pages (48 h after posting)."""

from __future__ import annotations

import streamlit as st

from dashboards import cached, context
from dashboards.display import number, rows_height, when
from serving.api import SeenByExpiredError, StaleCursorError
from storylake.rules.lifetimes import SEEN_BY_LIFETIME, duration_text

PAGE_SIZES = (10, 25, 50, 100)

ctx = context.creator()
st.title("Seen By")

segments = cached.seen_by_segments(ctx.lake, ctx.snapshot_id, ctx.requester_id, ctx.now)
if segments.empty:
    st.info("You have no segments yet.")
    st.stop()
labels = dict(zip(segments["segment_id"], segments["label"], strict=True))
pick, size = st.columns([3, 1])
segment_id = int(pick.selectbox("Segment", list(labels), format_func=labels.get,
                                key=f"seen_by_segment_{ctx.requester_id}"))
limit = int(size.selectbox("Viewers per page", PAGE_SIZES, index=2, key=f"seen_by_limit_{ctx.requester_id}"))

# The cursors of the pages shown so far (None = first page), per creator, snapshot, segment and page size.
state_key = f"seen_by_cursors:{ctx.requester_id}:{ctx.snapshot_id}:{segment_id}:{limit}"
cursors: list[str | None] = st.session_state.setdefault(state_key, [None])


def _next(cursor: str) -> None:
    st.session_state[state_key].append(cursor)


def _previous() -> None:
    if len(st.session_state[state_key]) > 1:
        st.session_state[state_key].pop()


try:
    page = cached.seen_by_page(ctx.lake, ctx.snapshot_id, ctx.requester_id, ctx.now, segment_id, limit, cursors[-1])
except SeenByExpiredError as exc:
    st.warning(
        f"Seen By for segment {segment_id} is no longer available: viewer lists are kept for "
        f"{duration_text(SEEN_BY_LIFETIME)} after a "
        f"segment is posted ({exc}). Its insights stay on the Overview and Story detail pages.",
        icon=":material/history_toggle_off:",
    )
    st.stop()
except StaleCursorError:  # a cursor from another snapshot: start again from the first page
    st.session_state[state_key] = [None]
    st.rerun()

number_of_page = len(cursors)
first = (number_of_page - 1) * limit + 1
last = first + len(page.viewers) - 1
st.metric("Viewers", number(page.total), help="Distinct viewers (Seen By count = reach).")
if page.viewers.empty:
    st.info("Nobody has viewed this segment yet.")
else:
    st.caption(f"Page {number_of_page} · viewers {first:,}–{last:,} of {page.total:,} · newest first · "
               f"as of {when(page.now)}")
    st.dataframe(
        page.viewers,
        hide_index=True,
        key="seen_by_viewers",
        height=rows_height(len(page.viewers), max_rows=50),
        column_config={
            "viewer_id": st.column_config.NumberColumn("Viewer", format="%d"),
            "viewed_at": st.column_config.DatetimeColumn("Viewed (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "view_source": "Source",
            "completion_pct": st.column_config.ProgressColumn("Completion", format="percent", min_value=0,
                                                              max_value=1),
        },
    )
prev_col, next_col, _ = st.columns([1, 1, 4])
prev_col.button("Previous page", key="seen_by_previous", on_click=_previous, disabled=number_of_page == 1,
                icon=":material/chevron_left:")
next_col.button("Next page", key="seen_by_next", on_click=_next, args=(page.next_cursor,),
                disabled=not page.has_more, icon=":material/chevron_right:")

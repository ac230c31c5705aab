"""Story detail: per-frame funnel and drop-off, navigation breakdown, completion and view time, frame list."""

from __future__ import annotations

import streamlit as st

from dashboards import cached, charts, context
from dashboards.display import number, percent, rows_height, seconds, when

ctx = context.creator()
st.title("Story detail")

stories = cached.stories(ctx.lake, ctx.snapshot_id, ctx.requester_id, ctx.now)
if stories.empty:
    st.info("You have not posted a story yet.")
    st.stop()
labels = dict(zip(stories["story_id"], stories["label"], strict=True))
story_id = st.selectbox("Story", list(labels), format_func=labels.get, key=f"story_pick_{ctx.requester_id}")
detail = cached.story_detail(ctx.lake, ctx.snapshot_id, ctx.requester_id, ctx.now, int(story_id))

st.caption(f"Story {detail.story_id} · started {when(detail.story_start)}")
with st.container(key="story-kpis"):
    cols = st.columns(5)
    cols[0].metric("Reach", number(detail.reach), border=True)
    cols[1].metric("Impressions", number(detail.impressions), border=True)
    cols[2].metric("Completion rate", percent(detail.completion_rate, 1), border=True,
                   help="Viewers who watched a frame to the end / reach.")
    cols[3].metric("Avg view time", seconds(detail.avg_view_ms), border=True,
                   help="Total counted view time / impressions.")
    cols[4].metric("Frames", number(detail.segment_count), border=True)

funnel_col, nav_col = st.columns([3, 2])
funnel_col.altair_chart(charts.frame_funnel(detail.frames), width="stretch")
nav_col.altair_chart(charts.navigation(detail.navigation), width="stretch")
st.caption("Drop-off: of the frame's viewers who could go on to the next frame (it was live when they watched; "
           "close-friends frames lead to close-friends frames), the share who did not watch it. Exit rate: the share "
           "of the frame's viewers who exited on it (tap exit or swipe down). Next story = swipe forward.")

st.subheader("Frames")
frames = detail.frames.assign(avg_view_s=detail.frames["avg_view_ms"] / 1000)
st.dataframe(
    frames[["frame_index", "segment_id", "media_type", "audience", "created_at", "status", "expires_in", "reach",
            "impressions"]],
    hide_index=True,
    key="frames",
    placeholder="—",
    height=rows_height(len(frames)),
    column_config={
        "frame_index": st.column_config.NumberColumn("Frame", format="%d"),
        "segment_id": st.column_config.NumberColumn("Segment", format="%d"),
        "media_type": "Media",
        "audience": "Audience",
        "created_at": st.column_config.DatetimeColumn("Posted (UTC)", format="YYYY-MM-DD HH:mm"),
        "status": "Status",
        "expires_in": "Expiry",
        "reach": st.column_config.NumberColumn("Reach", format="localized"),
        "impressions": st.column_config.NumberColumn("Impressions", format="localized"),
    },
)
st.subheader("Viewing per frame")
st.dataframe(
    frames[["frame_index", "reach", "viewers_lost", "drop_off", "exit_rate", "completion_rate", "avg_view_s",
            "taps_forward", "taps_back", "exits", "swipe_forward"]],
    hide_index=True,
    key="frame_viewing",
    placeholder="—",
    height=rows_height(len(frames)),
    column_config={
        "frame_index": st.column_config.NumberColumn("Frame", format="%d"),
        "reach": st.column_config.NumberColumn("Reach", format="localized"),
        "viewers_lost": st.column_config.NumberColumn("Lost before next", format="%d",
                                                      help="Viewers who could go on to the next frame and did not."),
        "drop_off": st.column_config.NumberColumn("Drop-off", format="percent"),
        "exit_rate": st.column_config.NumberColumn("Exit rate", format="percent"),
        "completion_rate": st.column_config.NumberColumn("Completion", format="percent"),
        "avg_view_s": st.column_config.NumberColumn("Avg view time", format="%.1f s"),
        "taps_forward": st.column_config.NumberColumn("Taps forward", format="%d"),
        "taps_back": st.column_config.NumberColumn("Taps back", format="%d"),
        "exits": st.column_config.NumberColumn("Exits", format="%d"),
        "swipe_forward": st.column_config.NumberColumn("Next story", format="%d"),
    },
)

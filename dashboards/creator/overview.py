"""Overview: the creator's active stories and ring state, KPIs for today / 7 / 28 days, daily trends."""

from __future__ import annotations

import streamlit as st

from dashboards import cached, charts, context
from dashboards.display import RINGS, day_span, number, rows_height, signed, when
from serving.dashboard_queries import KPIS
from storylake.rules.lifetimes import SEGMENT_LIFETIME, duration_text

ctx = context.creator()
data = cached.overview(ctx.lake, ctx.snapshot_id, ctx.requester_id, ctx.now)

st.title("Overview")
st.caption(f"Creator {ctx.requester_id} · now {when(ctx.now)}")

colour, text = RINGS.get(data.ring.state, RINGS["unknown"])
st.subheader("Active stories")
ring_col, table_col = st.columns([1, 3])
with ring_col:
    st.badge(text, color=colour, icon=":material/circle:", width="content")
    st.metric("Live frames", number(data.ring.segment_count), border=True)
with table_col:
    if data.active_stories.empty:
        st.info(f"No active story: a story stays live for {duration_text(SEGMENT_LIFETIME)} after it is posted.")
    else:
        st.dataframe(
            data.active_stories[["story_id", "frames", "audience", "first_posted", "expires_in", "story_reach",
                                 "story_impressions"]],
            hide_index=True,
            key="active_stories",
            height=rows_height(len(data.active_stories)),
            column_config={
                "story_id": st.column_config.NumberColumn("Story", format="%d"),
                "frames": "Live frames",
                "audience": "Audience",
                "first_posted": st.column_config.DatetimeColumn("Posted (UTC)", format="YYYY-MM-DD HH:mm"),
                "expires_in": "Expires",
                "story_reach": st.column_config.NumberColumn("Reach", format="localized"),
                "story_impressions": st.column_config.NumberColumn("Impressions", format="localized"),
            },
        )

PREVIOUS = {"7d": "change vs the 7 days before", "28d": "change vs the 28 days before"}
for period in data.periods:
    with st.container(border=True, key=f"kpi-{period.key}"):
        if period.until is not None:  # today so far, against yesterday until the same time
            until = f"{period.until:%H:%M} UTC"
            st.markdown(f"**{period.title} so far** · {day_span(period.start, period.end)} until {until} · "
                        f":gray[change vs yesterday until {until}]")
        else:
            st.markdown(f"**{period.title}** · {day_span(period.start, period.end)} · :gray[{PREVIOUS[period.key]}]")
        cols = st.columns(len(KPIS))
        for col, (metric, label) in zip(cols, KPIS, strict=True):
            value, change = period.values[metric], period.values[metric] - period.previous[metric]
            note = None
            if metric == "reach" and period.until is not None:
                note = "Distinct viewers today until then (each viewer once, in the hour of their first view)."
            elif metric == "reach" and period.reach_day is not None and period.reach_day != period.end:
                note = (f"Distinct viewers over the {period.title.lower()} ending {period.reach_day:%b %d}, the last "
                        "day with activity (nobody viewed after it).")
            col.metric(label, number(value), delta=signed(change), help=note,
                       delta_color="normal" if change else "off", delta_arrow="auto" if change else "off")

st.subheader("Trends")
left, right = st.columns(2)
left.altair_chart(charts.reach_trend(data.daily, data.now), width="stretch")
right.altair_chart(charts.impressions_trend(data.daily, data.now), width="stretch")
st.altair_chart(charts.engagement_trend(data.daily, data.now), width="stretch")
st.caption("Reach is distinct viewers (7- and 28-day reach are exact distinct counts, not sums). UTC days.")

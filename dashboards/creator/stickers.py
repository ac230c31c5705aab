"""Stickers: poll and quiz results, slider histograms, the question inbox, countdown opt-ins, taps."""

from __future__ import annotations

import streamlit as st

from dashboards import cached, charts, context
from dashboards.display import count_of, number, percent, rows_height, when

ctx = context.creator()
st.title("Stickers")

stories = cached.stories(ctx.lake, ctx.snapshot_id, ctx.requester_id, ctx.now)
ALL = 0  # story ids are positive
labels = {ALL: "All stories"} | dict(zip(stories["story_id"], stories["label"], strict=True))
story_id = int(st.selectbox("Story", list(labels), format_func=labels.get, key=f"stickers_story_{ctx.requester_id}"))
board = cached.sticker_board(ctx.lake, ctx.snapshot_id, ctx.requester_id, ctx.now,
                             None if story_id == ALL else story_id)


def _where(sticker_id: int, segment_id: int, story: int | None) -> str:
    return f"sticker {sticker_id} · segment {segment_id}" + ("" if story is None else f" · story {story}")


question_stickers = board.questions["sticker_id"].nunique() if len(board.questions) else 0
tabs = st.tabs([  # each tab counts stickers (the Questions tab lists their answers)
    f"Polls ({len(board.polls)})", f"Quizzes ({len(board.quizzes)})", f"Sliders ({len(board.sliders)})",
    f"Questions ({question_stickers})", f"Countdowns ({len(board.countdowns)})", f"Other ({len(board.others)})",
])
with tabs[0]:
    if not board.polls:
        st.info("No poll stickers.")
    for poll in board.polls:
        with st.container(border=True, key=f"poll-{poll.sticker_id}"):
            st.markdown(f"**Poll** · {_where(poll.sticker_id, poll.segment_id, poll.story_id)}")
            st.caption(f"{count_of(poll.votes, 'vote')} · first vote per person counts")
            st.altair_chart(charts.choice_bars(poll.options), width="stretch")
with tabs[1]:
    if not board.quizzes:
        st.info("No quiz stickers.")
    for quiz in board.quizzes:
        with st.container(border=True, key=f"quiz-{quiz.sticker_id}"):
            st.markdown(f"**Quiz** · {_where(quiz.sticker_id, quiz.segment_id, quiz.story_id)}")
            left, right = st.columns([1, 3])
            left.metric("Correct rate", percent(quiz.correct_rate, 1), help="Share of answers on the right option.")
            left.caption(count_of(quiz.votes, "answer"))
            right.altair_chart(charts.choice_bars(quiz.options, highlight_correct=True), width="stretch")
with tabs[2]:
    if not board.sliders:
        st.info("No slider stickers.")
    for slider in board.sliders:
        with st.container(border=True, key=f"slider-{slider.sticker_id}"):
            st.markdown(f"**Slider** · {_where(slider.sticker_id, slider.segment_id, slider.story_id)}")
            left, right = st.columns([1, 3])
            left.metric("Mean", "—" if slider.mean is None else f"{slider.mean:.2f}",
                        help="Mean of the last value of each person (0 to 1).")
            left.caption(count_of(slider.responses, "answer"))
            right.altair_chart(charts.slider_histogram(slider.histogram, slider.mean), width="stretch")
with tabs[3]:
    st.caption("Answers to your question stickers, newest first (up to 300 characters each).")
    if board.questions.empty:
        st.info("No answers yet.")
    else:
        st.dataframe(
            board.questions[["responded_at", "text", "user_id", "sticker_id", "segment_id"]],
            hide_index=True,
            key="question_inbox",
            height=rows_height(len(board.questions)),
            column_config={
                "responded_at": st.column_config.DatetimeColumn("Answered (UTC)", format="YYYY-MM-DD HH:mm"),
                "text": st.column_config.TextColumn("Answer", width="large"),
                "user_id": st.column_config.NumberColumn("From user", format="%d"),
                "sticker_id": st.column_config.NumberColumn("Sticker", format="%d"),
                "segment_id": st.column_config.NumberColumn("Segment", format="%d"),
            },
        )
with tabs[4]:
    if board.countdowns.empty:
        st.info("No countdown stickers.")
    else:
        st.metric("Opt-ins", number(board.countdowns["opt_ins"].sum()), help="People who set a reminder.")
        st.dataframe(board.countdowns, hide_index=True, key="countdowns", height=rows_height(len(board.countdowns)),
                     column_config={
            "sticker_id": st.column_config.NumberColumn("Sticker", format="%d"),
            "segment_id": st.column_config.NumberColumn("Segment", format="%d"),
            "story_id": st.column_config.NumberColumn("Story", format="%d"),
            "opt_ins": "Opt-ins",
        })
with tabs[5]:
    if board.others.empty:
        st.info("No other stickers.")
    else:
        st.dataframe(board.others, hide_index=True, key="other_stickers", height=rows_height(len(board.others)),
                     column_config={
            "sticker_id": st.column_config.NumberColumn("Sticker", format="%d"),
            "segment_id": st.column_config.NumberColumn("Segment", format="%d"),
            "story_id": st.column_config.NumberColumn("Story", format="%d"),
            "sticker_type": "Type",
            "responses": "People",
            "add_yours_reshares": "Add Yours reshares",
            "taps": "Taps",
        })
st.caption(f"Results as of {when(ctx.as_of)}; sticker results are kept after the story expires.")

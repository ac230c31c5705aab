"""jobs/gold/insight_deltas.py: a story's insights updated from its last good rows by the silver rows a run added equal
its insights recomputed from all its rows (hand-computed values, and a hypothesis property over random splits)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.gold import story_insights as stories_job
from jobs.gold.insight_deltas import Added, split, updated
from jobs.gold.segment_insights import finished, segment_insights
from jobs.gold.touched import STORY
from tests.test_gold_builders import (
    T0,
    H,
    collect,
    engagement,
    frame,
    frames,
    nav,
    response,
    segment,
    segment_viewers,
    view,
)

AS_OF = T0 + 28 * H
POLL = {"sticker_id": 900, "type": "poll", "options": ["yes", "no"]}
F1 = segment(100, 1, T0, story_id=100, frame_index=1, stickers=[POLL])
F2 = segment(101, 1, T0 + H, story_id=100, frame_index=2, story_start=T0)
SEGMENTS = [F1, F2]
INPUTS = ("segments", "view_events", "navigation", "engagements", "sticker_responses")


def insights(spark: Any, segments: list[dict], views: list[dict], navigation: list[dict], engagements: list[dict],
             responses: list[dict]) -> tuple[Any, Any]:
    """(segment insights, story insights) recomputed from all the rows."""
    silver = frames(spark, segments=segments, view_events=views, navigation=navigation, engagements=engagements,
                    sticker_responses=responses)
    args = {k: silver[k] for k in INPUTS}
    return segment_insights(**args, as_of=AS_OF), stories_job.story_insights(**args, as_of=AS_OF)


def by_update(spark: Any, segments: list[dict], old: dict[str, list[dict]], new: dict[str, list[dict]],
              responses: list[dict], stories: tuple[int, ...] = (100,), old_segments: list[dict] | None = None
              ) -> tuple[Any, Any]:
    """(segment insights, story insights) of `stories` updated from those of the `old` rows (and `old_segments`:
    the segments then, by default `segments`) by the `new` ones (which may name other stories' segments too)."""
    from pyspark.sql import functions as F

    previous, previous_stories = insights(spark, segments if old_segments is None else old_segments, old["views"],
                                          old["navigation"], old["engagements"], responses)
    previous = previous.filter(F.col("story_id").isin(list(stories)))
    previous_stories = previous_stories.filter(F.col("story_id").isin(list(stories)))
    added = Added(
        views=frame(spark, "view_events", new["views"]),
        navigation=frame(spark, "navigation", new["navigation"]),
        engagements=frame(spark, "engagements", new["engagements"]),
        # stored as growing rows: an earlier run's rows of the pairs (its first views) beside their rows now
        old_viewers=frame(spark, "segment_viewers", segment_viewers(old["views"], segments)
                          + segment_viewers(old["views"][: len(old["views"]) // 2], segments)),
        old_navigation=frame(spark, "navigation", old["navigation"]),
    )
    now = frame(spark, "segments", segments).filter(F.col("story_id").isin(list(stories)))
    seg_counts, story_counts = updated(now, previous, previous_stories, added,
                                       frame(spark, "sticker_responses", responses), AS_OF)
    return finished(seg_counts, AS_OF), stories_job.finished(story_counts, AS_OF)


def test_a_story_updated_by_added_views_exits_and_a_late_earlier_view(spark):
    old = {
        "views": [
            view(F1, 10, T0 + 0.5 * H, ms=3000, completion=0.6),
            view(F1, 11, T0 + 1.5 * H),  # while frame 2 was live: could go on, and did (next view)
            view(F2, 11, T0 + 1.6 * H),
        ],
        "navigation": [nav(F1, 10, "tap_forward", T0 + 0.5 * H)],
        "engagements": [engagement("reply", 11, 1, T0 + 1.5 * H, F1)],
    }
    new = {
        "views": [
            view(F1, 10, T0 + 2 * H, ms=5000, completion=1.0),  # a rewatch that completes: reach unchanged
            view(F1, 12, T0 + 2.5 * H, ms=4000, completion=0.8),  # a new viewer, who could go on (did not)
            view(F2, 10, T0 + 3 * H),  # 10 first saw frame 1 before frame 2 existed: not a continuation
            view(F1, 11, T0 + 0.2 * H, completion=0.5),  # late and earlier: 11's first view is now before frame 2
            view(F1, 1, T0 + 3 * H),  # the author's own: never counted
        ],
        "navigation": [
            nav(F1, 12, "tap_exit", T0 + 2.6 * H),  # a new viewer's exit
            nav(F1, 13, "swipe_down", T0 + 2.7 * H),  # an exit gesture of no viewer: exits, not exit_viewers
            nav(F2, 11, "swipe_down", T0 + 3.5 * H),  # an earlier viewer's exit
        ],
        "engagements": [engagement("share", 12, 1, T0 + 2.6 * H, F1)],
    }
    responses = [response(F1, 900, 12, T0 + 2.6 * H, option_index=0, interactions=2)]
    segs, stories = by_update(spark, SEGMENTS, old, new, responses)
    rows = collect(segs, "segment_id")
    counts = ("impressions", "reach", "completed_viewers", "total_view_ms", "exits", "taps_forward", "exit_viewers",
              "continuation_viewers", "continued_viewers", "replies", "shares", "sticker_interactions",
              "retention_from_first", "continuation_rate")
    assert {k: rows[100][k] for k in counts} == {
        "impressions": 5, "reach": 3, "completed_viewers": 2, "total_view_ms": 18000, "exits": 2, "taps_forward": 1,
        "exit_viewers": 1, "continuation_viewers": 1, "continued_viewers": 0, "replies": 1, "shares": 1,
        "sticker_interactions": 2, "retention_from_first": 1.0, "continuation_rate": 0.0,
    }  # fmt: skip
    assert {k: rows[101][k] for k in counts} == {
        "impressions": 2, "reach": 2, "completed_viewers": 2, "total_view_ms": 6000, "exits": 1, "taps_forward": 0,
        "exit_viewers": 1, "continuation_viewers": 0, "continued_viewers": 0, "replies": 0, "shares": 0,
        "sticker_interactions": 0, "retention_from_first": 2 / 3, "continuation_rate": None,
    }  # fmt: skip
    story = collect(stories, "story_id")[100]
    assert {k: story[k] for k in ("impressions", "reach", "completed_viewers", "total_view_ms", "exits", "shares",
                                  "sticker_interactions", "segment_count")} == {
        "impressions": 7, "reach": 3, "completed_viewers": 2, "total_view_ms": 24000, "exits": 3, "shares": 1,
        "sticker_interactions": 2, "segment_count": 2,
    }  # fmt: skip
    _assert_equal(spark, (segs, stories), SEGMENTS, old, new, responses)


def _assert_equal(spark: Any, got: tuple[Any, Any], segments: list[dict], old: dict[str, list[dict]],
                  new: dict[str, list[dict]], responses: list[dict], stories: tuple[int, ...] = (100,)) -> None:
    from pyspark.sql import functions as F

    want = insights(spark, segments, *[old[k] + new[k] for k in ("views", "navigation", "engagements")], responses)
    of = F.col("story_id").isin(list(stories))
    assert collect(got[0], "segment_id") == collect(want[0].filter(of), "segment_id")
    assert collect(got[1], "story_id") == collect(want[1].filter(of), "story_id")


# Two stories of author 1 updated: four frames (the third close friends, so frames 2 and 4 chain), and one; a third
# story (author 2) whose rows are not updated, though the added rows name it; viewers 10-13 and the authors.
WORLD = [
    F1, F2,
    segment(102, 1, T0 + 2 * H, story_id=100, frame_index=3, story_start=T0, audience="close_friends"),
    segment(103, 1, T0 + 3 * H, story_id=100, frame_index=4, story_start=T0),
    segment(200, 1, T0 + 5 * H),
    segment(300, 2, T0 + 4 * H),
]  # fmt: skip
ACTIONS = ("tap_forward", "tap_back", "tap_exit", "swipe_forward", "swipe_down")
# views within their segment's lifetime (silver keeps no other), after as_of for the last segments; gestures and
# engagements up to 2 h after it
_event = st.tuples(st.sampled_from(WORLD), st.sampled_from([1, 2, 10, 11, 12, 13]), st.integers(0, 26 * 60 - 1),
                   st.booleans())
_kinds = st.sampled_from(["view", "view", "view", *ACTIONS, "reply", "share"])


def _split(events: list[tuple[str, tuple[dict, int, int, bool]]], since: Any = None
           ) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """The generated interactions as silver rows, each among the last good ones or the added ones (its flag; added
    when at or after `since`, the last good run's as_of)."""
    old: dict[str, list[dict]] = {"views": [], "navigation": [], "engagements": []}
    new: dict[str, list[dict]] = {"views": [], "navigation": [], "engagements": []}
    for kind, (seg, viewer, minute, is_new) in events:
        at = seg["created_at"] + minute * H / 60
        into = new if is_new or (since is not None and at >= since) else old
        if kind == "view":
            if minute >= 24 * 60:
                continue
            into["views"].append(view(seg, viewer, at, ms=1000 + 37 * minute, completion=1.0 if minute % 3 else 0.5))
        elif kind in ACTIONS:
            into["navigation"].append(nav(seg, viewer, kind, at))
        else:
            into["engagements"].append(engagement(kind, viewer, 1, at, seg))
    return old, new


@settings(max_examples=15, deadline=None)
@given(events=st.lists(st.tuples(_kinds, _event), max_size=25))
def test_property_any_split_updates_to_the_recomputed_insights(spark, events):
    """Each generated interaction goes to the last good rows or to the added ones (its flag): the update equals the
    recomputation from all rows, whatever the order of arrival (a late view earlier than a pair's first included)."""
    old, new = _split(events)
    segs, stories = by_update(spark, WORLD, old, new, [], (100, 200))
    _assert_equal(spark, (segs, stories), WORLD, old, new, [], (100, 200))


SINCE = T0 + 20 * H  # the last good run's as_of
# created since: story 100's fifth frame (public: it follows the fourth in its chain) and a new story
FRESH = [segment(104, 1, SINCE, story_id=100, frame_index=5, story_start=T0), segment(400, 3, SINCE + H)]


@settings(max_examples=12, deadline=None)
@given(events=st.lists(st.tuples(_kinds, st.tuples(st.sampled_from(WORLD + FRESH), st.sampled_from([1, 3, 10, 11, 12]),
                                                   st.integers(0, 8 * 60), st.booleans())), max_size=25))
def test_property_frames_created_since_update_to_the_recomputed_insights(spark, events):
    """Frames created since the last good run (at the end of their chain, or a new story's) start from nothing: the
    update still equals the recomputation."""
    old, new = _split(events, SINCE)
    stories = (100, 200, 400)
    segs, story_rows = by_update(spark, WORLD + FRESH, old, new, [], stories, old_segments=WORLD)
    _assert_equal(spark, (segs, story_rows), WORLD + FRESH, old, new, [], stories)


def test_split_recomputes_the_stories_whose_segments_changed_or_may_have_lost_pairs(spark):
    """Updated: 100 (unchanged), 600 (a frame created since, after the others), 800 (a new story). Recomputed: 200
    (a frame created before the last good run's as_of, arriving late), 300 (a frame deleted), 400 (no last good
    story row), 500 (a segment created before the latest retention cutoff of the pairs), 700 (a frame created since
    but inserted before another)."""
    from pyspark.sql import functions as F

    since = T0 + 3 * H
    before = [
        F1, F2,
        segment(200, 2, T0), segment(300, 3, T0), segment(301, 3, T0 + H, story_id=300, frame_index=2, story_start=T0),
        segment(400, 4, T0), segment(500, 5, T0 - 3 * H), segment(600, 6, T0),
        segment(700, 7, T0), segment(702, 7, T0 + H, story_id=700, frame_index=3, story_start=T0),
    ]  # fmt: skip
    later = [
        segment(201, 2, T0 + 2 * H, story_id=200, frame_index=2, story_start=T0),
        segment(601, 6, since, story_id=600, frame_index=2, story_start=T0),
        segment(701, 7, since, story_id=700, frame_index=2, story_start=T0),
        segment(800, 8, since + H),
    ]  # fmt: skip
    now = [dict(s, is_deleted=True) if s["segment_id"] == 301 else s for s in before] + later
    previous, previous_stories = insights(spark, before, [], [], [], [])
    touched = spark.createDataFrame([(i,) for i in (100, 200, 300, 400, 500, 600, 700, 800)], f"{STORY} bigint")
    got = split(frame(spark, "segments", now), previous, previous_stories.filter(F.col("story_id") != 400), touched,
                AS_OF, since, T0 - H)
    assert sorted(r[STORY] for r in got.collect()) == [200, 300, 400, 500, 700]
    unchanged = split(frame(spark, "segments", before), previous, previous_stories, touched, AS_OF, since)
    assert unchanged.collect() == []

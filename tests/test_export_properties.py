"""The ranking export never uses an event at or after a row's story_start in its features (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.export import training_examples
from jobs.gold.ring_features import FEATURES
from tests.test_gold_builders import T0, US, D, H, collect, engagement, frames, relation, segment, view
from tests.test_gold_properties import _known_before

AUTHOR, VIEWERS = 1, (2, 3, 4)
S1, S2 = T0 + 40 * D, T0 + 42 * D
AS_OF = T0 + 45 * D
SEGMENTS = [
    segment(5, AUTHOR, T0 + 20 * D),  # an older story, for past views
    segment(10, AUTHOR, S1, story_id=10),
    segment(11, AUTHOR, S1 + H, story_id=10, frame_index=2, story_start=S1, audience="close_friends"),
    segment(20, AUTHOR, S2, story_id=20),
]
INSTANTS = sorted({x for t in (S1, S2) for x in (t, t - US, t + US, t - 30 * D, t - 30 * D - US, t - H, t + H)})
instant = st.sampled_from(INSTANTS)
world = st.fixed_dictionaries(
    {
        "engagements": st.lists(
            st.tuples(
                st.sampled_from(["dm_sent", "like", "comment", "reply", "profile_visit"]),
                st.sampled_from(VIEWERS),
                instant,
            ),
            max_size=12,
        ),
        "views": st.lists(
            st.tuples(st.sampled_from(range(len(SEGMENTS))), st.sampled_from(VIEWERS), instant, st.booleans()),
            max_size=8,
        ),
        "relationships": st.lists(
            st.tuples(st.sampled_from(["follow", "close_friend"]), st.sampled_from(VIEWERS), instant, instant),
            max_size=6,
            unique_by=lambda r: r[:3],
        ),
    }
)


@settings(max_examples=10, deadline=None)
@given(generated=world)
def test_export_features_are_identical_when_computed_from_events_before_story_start(spark, generated):
    rows = {
        "engagements": [engagement(kind, v, AUTHOR, at) for kind, v, at in generated["engagements"]],
        "view_events": [
            view(SEGMENTS[i], v, at, completion=1.0 if done else 0.5) for i, v, at, done in generated["views"]
        ],
        "relationships": [
            # every viewer follows from long ago (so most rows exist); generated edges add / end relations
            *[relation("follow", v, AUTHOR, T0) for v in VIEWERS if v != 4],
            *[
                relation(rel, *((v, AUTHOR) if rel == "follow" else (AUTHOR, v)), start, end if end > start else None)
                for rel, v, start, end in generated["relationships"]
            ],
        ],
    }
    segments = frames(spark, segments=SEGMENTS)["segments"]
    everything = frames(spark, **rows)
    got = collect(
        training_examples(segments, everything["view_events"], everything["engagements"],
                          everything["relationships"], AS_OF),
        ["viewer_id", "story_id"],
    )  # fmt: skip
    assert got, "every story has eligible followers"
    for t, story_id in ((S1, 10), (S2, 20)):
        known = frames(spark, **_known_before(rows, t))
        before = collect(
            training_examples(segments, known["view_events"], known["engagements"], known["relationships"], AS_OF),
            ["viewer_id", "story_id"],
        )
        for key, row in got.items():
            if key[1] == story_id and key in before:
                assert {f: row[f] for f in FEATURES} == {f: before[key][f] for f in FEATURES}, key

"""silver.profiles: each user's latest profile; merging new events into held profiles equals a full rebuild."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.silver import profiles
from tests.bronze_builders import T0, H, bronze, rows


def prof(event_id, hours, user, name, picture=None):
    return {"event_id": event_id, "event_time": T0 + hours * H, "user_id": user, "username": name,
            "profile_picture_media_id": picture}


EVENTS = [
    prof("p1", 0, 1, "ann", 10),
    prof("p1", 0, 1, "ann", 10),  # redelivery
    prof("p3", 2, 1, "ann.b", None),  # the latest: picture removed
    prof("p2", 1, 1, "ann.a", 11),
    prof("q1", 0, 2, "bob", 20),
    prof("q3", 5, 2, "bob.y", 22),  # same instant as q2: the greater event_id wins
    prof("q2", 5, 2, "bob.x", 21),
    prof("r1", 3, 3, "cy", 30),  # a user whose only event may be held: merge copies their row as it is
]


def test_latest_profile_per_user(spark) -> None:
    out = profiles.latest(profiles.from_bronze(bronze(spark, "profile_updated", EVENTS)))
    assert rows(out) == [
        (1, "ann.b", None, T0 + 2 * H, "p3"),
        (2, "bob.y", 22, T0 + 5 * H, "q3"),
        (3, "cy", 30, T0 + 3 * H, "r1"),
    ]


@settings(max_examples=15, deadline=None)
@given(split=st.lists(st.booleans(), min_size=len(EVENTS), max_size=len(EVENTS)))
def test_merging_in_any_split_equals_one_pass(spark, split: list[bool]) -> None:
    """What an incremental run does (merge: the held profiles with the new events folded into the users they name)
    equals a full rebuild."""
    first = [e for e, later in zip(EVENTS, split, strict=True) if not later]
    later = [e for e, is_later in zip(EVENTS, split, strict=True) if is_later]
    held = profiles.latest(profiles.from_bronze(bronze(spark, "profile_updated", first)))
    merged = profiles.merge(held, profiles.from_bronze(bronze(spark, "profile_updated", later)))
    assert rows(merged) == rows(profiles.latest(profiles.from_bronze(bronze(spark, "profile_updated", EVENTS))))

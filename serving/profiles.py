"""Users' public profiles (username, profile picture) from the snapshot's `profiles` table, looked up in bulk for
the users of one answer (seed: `batch_get_profiles`). A user without a profile event yet has none (None)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from serving.snapshot import Snapshot
from serving.snapshot_indexes import profile_index


class Profile(NamedTuple):
    username: str
    picture_media_id: int | None


def profiles(snapshot: Snapshot, user_ids: Iterable[int]) -> dict[int, Profile]:
    """user id -> Profile for the ids that have one (snapshot_indexes.ProfileIndex: the snapshot's `profiles` table;
    a snapshot published before profiles existed has none)."""
    found = profile_index(snapshot).lookup([int(u) for u in user_ids])
    return {u: Profile(name, picture) for u, (name, picture) in found.items()}

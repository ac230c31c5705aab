"""Users' public profiles (username, profile picture) from the snapshot's `profiles` table, looked up in bulk for
the users of one answer (seed: `batch_get_profiles`). A user without a profile event yet has none (None)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from serving.snapshot import Snapshot

PROFILES_SQL = (
    "SELECT user_id, username, profile_picture_media_id FROM profiles "
    "WHERE user_id IN (SELECT unnest($ids)) "
)


class Profile(NamedTuple):
    username: str
    picture_media_id: int | None


def profiles(snapshot: Snapshot, user_ids: Iterable[int]) -> dict[int, Profile]:
    ids = sorted({int(u) for u in user_ids})
    if not ids or not _has_profiles(snapshot):
        return {}
    rows = snapshot.db().execute(PROFILES_SQL, {"ids": ids}).fetchall()
    return {int(r[0]): Profile(str(r[1]), None if r[2] is None else int(r[2])) for r in rows}


def _has_profiles(snapshot: Snapshot) -> bool:
    """Snapshots published before profiles existed have no `profiles` table: every user then has no profile."""
    known = snapshot.cache.get("has_profiles")
    if known is None:
        known = bool(snapshot.db().execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'profiles'").fetchone()[0])
        snapshot.cache["has_profiles"] = known
    return bool(known)

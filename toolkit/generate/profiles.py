"""Profile events: every user's profile when the window starts, then a trickle of changes (new username or
picture). Usernames are made of two words and the user id (unique, within the contract's `^[a-z0-9._]{1,30}$`);
a tenth of the users start without a picture."""

from __future__ import annotations

import numpy as np

from .schema import MS_HOUR, MS_MINUTE
from .table import I64, EventTable

ADJECTIVES = ("quiet", "sunny", "brave", "lucky", "misty", "rapid", "calm", "wild", "bold", "neat", "cozy", "keen")
NOUNS = ("otter", "fox", "heron", "maple", "comet", "river", "pixel", "tiger", "lynx", "cedar", "koala", "orbit")
PICTURE_BASE = 9_000_000_000
CHANGES_PER_USER_DAY = 0.02
NULL = -1


def _names(user_id: I64, version: I64) -> np.ndarray:
    h = (user_id * 2_654_435_761 + version * 40_503) % (len(ADJECTIVES) * len(NOUNS))
    return np.array([f'"{ADJECTIVES[a % len(ADJECTIVES)]}_{NOUNS[a // len(ADJECTIVES)]}.{u}"'.encode()
                     for a, u in zip(h.tolist(), user_id.tolist(), strict=True)], dtype=object)


def _table(user_id: I64, version: I64, time: I64) -> EventTable:
    picture = np.where((version == 0) & (user_id % 10 == 0), NULL, PICTURE_BASE + user_id * 100 + version)
    return EventTable("profile_updated", time.astype(np.int64), {
        "user_id": user_id.astype(np.int64), "username": _names(user_id, version), "picture": picture,
    })


def initial_profiles(n: int, start_ms: int, rng: np.random.Generator) -> EventTable:
    """One profile per user (ids 1..n) during the window's first minute, in time order."""
    users = np.arange(1, n + 1, dtype=np.int64)
    times = start_ms + rng.integers(0, MS_MINUTE, n)
    order = np.argsort(times, kind="stable")
    return _table(users[order], np.zeros(n, np.int64), times[order])


def profile_changes(n: int, lo_ms: int, hi_ms: int, rng: np.random.Generator) -> EventTable:
    """Profile changes in [lo_ms, hi_ms): a new username or picture (version >= 1)."""
    k = int(rng.poisson(CHANGES_PER_USER_DAY / 24 * n * max(hi_ms - lo_ms, 0) / MS_HOUR))
    users = rng.integers(1, n + 1, k).astype(np.int64)
    times = np.sort(lo_ms + rng.integers(0, max(hi_ms - lo_ms, 1), k)).astype(np.int64)
    return _table(users, rng.integers(1, 1_000, k).astype(np.int64), times)

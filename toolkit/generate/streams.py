"""Deterministic random streams: one independent PCG64 generator per (seed, purpose, index...).

Keying every stream by purpose and position (day, hour, emission number) keeps the output byte-identical for
the same arguments and keeps unrelated parts independent (drawing more stickers does not shift the views).
"""

from __future__ import annotations

import numpy as np

_PURPOSES = {
    "world": 1,
    "stories": 2,
    "stickers": 3,
    "content": 4,
    "viewing": 5,
    "social": 6,
    "faults": 7,
    "initial": 8,
    "profiles": 9,
    "profile_changes": 10,
    "profile_faults": 11,
}


def stream(seed: int, purpose: str, *index: int) -> np.random.Generator:
    """A fresh Generator(PCG64) for `purpose` at position `index` under `seed`."""
    key = (_PURPOSES[purpose], *index)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy=seed, spawn_key=key)))

"""The tray's ranking score (seed: stories-architecture "Tray Ranking"), with every weight named once.

    rank_score = (RECENCY_WEIGHT * exp(-age_h / RECENCY_TIME_CONSTANT_H)
                  + sum(FEATURE_WEIGHTS[f] * f for f in the ring features)) * (CLOSE_FRIENDS_BOOST if close friends)

The seed calls 12 h a half-life, but exp(-t/12) is a decay with *time constant* 12 h: it halves at
12 * ln 2 ~= 8.3 h. The formula is kept as specified; only the seed's comment is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

RECENCY_WEIGHT = 100.0
RECENCY_TIME_CONSTANT_H = 12.0
# gold.ring_features column (30-day count of the viewer's actions toward the author) -> weight
FEATURE_WEIGHTS: dict[str, float] = {
    "dm_count_30d": 50.0,
    "likes_given_30d": 30.0,
    "comments_given_30d": 20.0,
    "story_replies_30d": 10.0,
}
CLOSE_FRIENDS_BOOST = 1.5


def rank_score(age_h: np.ndarray, features: Mapping[str, np.ndarray], is_close_friends: np.ndarray) -> np.ndarray:
    """Scores of rings: age of each ring's latest visible segment in hours, its FEATURE_WEIGHTS counts (0 when the
    pair has none) and whether it is a close-friends ring; numpy arrays of one length (scalars broadcast)."""
    weighted = sum((w * np.asarray(features[f], dtype=np.float64) for f, w in FEATURE_WEIGHTS.items()),
                   np.zeros_like(np.asarray(age_h, dtype=np.float64)))
    recency = RECENCY_WEIGHT * np.exp(-np.asarray(age_h, dtype=np.float64) / RECENCY_TIME_CONSTANT_H)
    return (recency + weighted) * np.where(is_close_friends, CLOSE_FRIENDS_BOOST, 1.0)

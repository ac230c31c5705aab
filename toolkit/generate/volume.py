"""Volume calibration: how many stories to post and how far they reach to land near a view target.

The expected number of receipts of a story follows from the session model in closed form (see
`story_stats`), so the calibration is a cheap pass over the days' stories: if the natural posting rate
cannot reach the target with a plausible reach, posting is scaled up; then the reach multiplier `k` is
solved by bisection. A target beyond what the graph can carry (tiny or nearly empty worlds) is not met:
posting is scaled at most MAX_SCALE times and the reach is capped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .events import (
    CONTINUE_P,
    MAX_REACH,
    NON_FOLLOWER_BASE,
    NON_FOLLOWER_RATE,
    SECOND_SESSION_P,
    SESSION_CAP_MS,
    TAP_BACK_P,
    offset_cdf,
)
from .faults import FaultRates
from .schema import CLOSE_FRIENDS
from .stories import DayStories, make_day_stories
from .table import F64, Bool, group_offsets
from .world import World

NATURAL_VIEWS_PER_USER_DAY = 32  # views=None: receipts per user per day
MAX_NATURAL_K = 1.3  # beyond this reach multiplier, post more stories instead
MAX_SCALE = 50.0  # ... but never more than this many times the natural posting rate
SECOND_SESSION_YIELD = 0.8  # a second session shows about this share of a first session's receipts


@dataclass
class StoryStats:
    eligible: F64
    reach: F64
    public_author: Bool
    per_session: F64  # expected receipts per (viewer, story) pair

    @staticmethod
    def concat(parts: list[StoryStats]) -> StoryStats:
        return StoryStats(
            np.concatenate([p.eligible for p in parts]) if parts else np.zeros(0),
            np.concatenate([p.reach for p in parts]) if parts else np.zeros(0),
            np.concatenate([p.public_author for p in parts]) if parts else np.zeros(0, np.bool_),
            np.concatenate([p.per_session for p in parts]) if parts else np.zeros(0),
        )

    def expected_per_story(self, k: float) -> F64:
        """Expected segment_view receipts of each story (before faults) at reach multiplier k."""
        followers = self.eligible * np.minimum(MAX_REACH, self.reach * k)
        others = np.where(
            self.public_author, NON_FOLLOWER_RATE * followers + NON_FOLLOWER_BASE * min(k, 1.0), 0.0
        )
        return np.asarray((followers + others) * self.per_session)

    def expected_views(self, k: float) -> float:
        return float(self.expected_per_story(k).sum())


def story_stats(world: World, st: DayStories) -> StoryStats:
    cf = st.audience == CLOSE_FRIENDS
    eligible = world.eligible_count(st.author, cf).astype(np.float64)
    story_of, pos = group_offsets(st.story_segments())
    offset = (st.created - st.start[story_of]).astype(np.float64)
    window = np.minimum(SESSION_CAP_MS, world.end_ms - st.start).astype(np.float64)
    f_window = offset_cdf(window)
    # P(the session shows segment j) = P(it started after segment j existed, within the window) * q^j
    shown = CONTINUE_P**pos * np.maximum(f_window[story_of] - offset_cdf(offset), 0.0)
    receipts = np.bincount(story_of, shown, minlength=st.n_stories)
    per_session = receipts * (1.0 + SECOND_SESSION_P * SECOND_SESSION_YIELD) + TAP_BACK_P * (
        receipts - f_window
    )
    return StoryStats(eligible, st.reach, ~cf & ~world.private[st.author], np.maximum(per_session, 0.0))


@dataclass(frozen=True)
class VolumePlan:
    scale: float  # multiplier of the posting rate
    k: float  # multiplier of each story's reach
    target_views: int  # segment_view lines aimed at (faults included)
    expected_views: float


def _solve_k(stats: StoryStats, target: float) -> float:
    if target <= 0:
        return 0.0
    lo, hi = 0.0, 1.0
    while stats.expected_views(hi) < target and hi < 1e6:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if stats.expected_views(mid) < target:
            lo = mid
        else:
            hi = mid
    return hi


def calibrate(world: World, seed: int, days: int, target: int, rates: FaultRates) -> VolumePlan:
    extra = rates.client_retry + rates.duplicate_line + rates.unknown_segment + rates.audience_violation
    base_target = target / (1.0 + extra)

    def stats_for(scale: float) -> StoryStats:
        return StoryStats.concat(
            [story_stats(world, make_day_stories(world, seed, d, scale, 0, 0)) for d in range(days)]
        )

    scale = 1.0
    stats = stats_for(scale)
    natural = stats.expected_views(1.0)
    if base_target > 0 and stats.expected_views(MAX_NATURAL_K) < base_target and natural > 0:
        scale = min(base_target / natural, MAX_SCALE)
        stats = stats_for(scale)
    k = _solve_k(stats, base_target)
    return VolumePlan(scale, k, target, stats.expected_views(k) * (1.0 + extra))

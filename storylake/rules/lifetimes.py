"""How long things live (DESIGN §5), each defined once; SQL intervals and reason texts are generated from them.

    SEGMENT_LIFETIME   24 h  a segment is active in [created_at, created_at + 24 h) (expires_at)
    STORY_SPAN         24 h  a story is the segments its author posts in [story_start, story_start + 24 h); the
                             author's next segment starts the next story (so a story is live at most 48 h)
    CLEANUP_GRACE       1 h  the expiry cleanup removes an expired, non-archived segment 1 h after expires_at
    SEEN_BY_LIFETIME   48 h  a segment's Seen By list is served for 48 h after created_at
    PENDING_VIEW_WAIT  48 h  how long a segment's late segment_created may still arrive (the lateness window):
                             an interaction with a segment not known (yet) is quarantined as unknown_segment and
                             released from quarantine if its segment arrives

Every interaction attributed to a segment (view, gesture, sticker answer, story engagement) counts only within the
segment's lifetime (`in_lifetime_sql`); its *anchor* (`anchor_sql`) is the segment's created_at when it does,
else its own event time. Incremental runs recompute every silver/gold row anchored at or after their horizon
(jobs/horizon.py): in-lifetime interactions of one segment share an anchor, so a segment's retries, first votes
and Seen By are always recomputed together.

Table retention periods are the contracts' `retention` SLA (data_contracts/, storylake.contracts).
"""

from __future__ import annotations

from datetime import datetime, timedelta

SEGMENT_LIFETIME = timedelta(hours=24)
STORY_SPAN = timedelta(hours=24)  # a story collects the segments its author posts within 24 h of its first one
CLEANUP_GRACE = timedelta(hours=1)
SEEN_BY_LIFETIME = timedelta(hours=48)
PENDING_VIEW_WAIT = timedelta(hours=48)

# No DAYS: in Spark a day interval is a calendar day in the session time zone (23 or 25 h across DST).
_UNITS = (("HOURS", timedelta(hours=1)), ("MINUTES", timedelta(minutes=1)), ("SECONDS", timedelta(seconds=1)),
          ("MICROSECONDS", timedelta(microseconds=1)))


def interval_sql(d: timedelta) -> str:
    """An exact interval literal valid in Spark SQL and in DuckDB, in the largest whole unit up to hours:
    INTERVAL 24 HOURS."""
    if d <= timedelta(0):
        raise ValueError(f"interval must be positive, got {d}")
    for unit, size in _UNITS:
        if d % size == timedelta(0):
            return f"INTERVAL {d // size} {unit}"
    raise AssertionError("unreachable: every timedelta is a whole number of microseconds")


def duration_text(d: timedelta) -> str:
    """Reason and help texts: whole days from a week on (30 d), else hours (48 h, 1 h), minutes (90 min), seconds."""
    if d % timedelta(days=1) == timedelta(0) and d >= timedelta(days=7):
        return f"{d // timedelta(days=1)} d"
    if d % timedelta(hours=1) == timedelta(0):
        return f"{d // timedelta(hours=1)} h"
    if d % timedelta(minutes=1) == timedelta(0):
        return f"{d // timedelta(minutes=1)} min"
    return f"{d.total_seconds():g} s"


def expires_at(created_at: datetime) -> datetime:
    """End (exclusive) of a segment's life."""
    return created_at + SEGMENT_LIFETIME


def expires_at_sql(created_at: str) -> str:
    """SQL (Spark and DuckDB) for a segment's expires_at from its created_at expression."""
    return f"({created_at} + {interval_sql(SEGMENT_LIFETIME)})"


def seen_by_open(created_at: datetime, now: datetime) -> bool:
    """The segment's Seen By list is still served at `now`."""
    return now < created_at + SEEN_BY_LIFETIME


def seen_by_open_sql(created_at: str, now: str) -> str:
    """SQL (Spark and DuckDB) for seen_by_open."""
    return f"({now} < {created_at} + {interval_sql(SEEN_BY_LIFETIME)})"


def in_lifetime(at: datetime, created_at: datetime) -> bool:
    """`at` lies in the segment's lifetime [created_at, expires_at) (in_lifetime_sql in Python)."""
    return created_at <= at < expires_at(created_at)


def in_lifetime_sql(at: str, created_at: str) -> str:
    """SQL (Spark and DuckDB): `at` lies in the lifetime [created_at, expires_at) (null when either is null)."""
    return f"({at} >= {created_at} AND {at} < {expires_at_sql(created_at)})"


def anchor_sql(at: str, created_at: str) -> str:
    """SQL (Spark and DuckDB): the anchor of an interaction at `at` with a segment created at `created_at` (null
    when the segment is unknown): created_at when `at` lies in the segment's lifetime, else `at`."""
    return f"(CASE WHEN {in_lifetime_sql(at, created_at)} THEN {created_at} ELSE {at} END)"

"""When an event arrived and how late or early it may be (DESIGN §5), defined once.

Arrival: collectors write each event into the landing hour folder of its arrival (`dt=YYYY-MM-DD/hour=HH/`), so
the folder is the event's arrival hour, deterministic however often or late the files are ingested (a replay or a
backfill classifies every line the same way; the wall clock at ingestion would not).

    LATENESS_WINDOW  48 h   an event whose event_time is more than this before its arrival hour is quarantined
                            `late_beyond_window`: it would otherwise change aggregates that are final (the Seen By
                            list it belongs to has expired)
    MAX_CLOCK_SKEW   5 min  an event whose event_time is more than this after the end of its arrival hour is
                            quarantined `from_the_future` (a client clock far ahead)

A file outside any hour folder has no known arrival hour: its events are not checked. Both bounds are settings
(STORYLAKE_LATENESS_WINDOW_H, STORYLAKE_MAX_CLOCK_SKEW_S) with these defaults.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from storylake.rules.lifetimes import SEEN_BY_LIFETIME, duration_text

LATENESS_WINDOW = SEEN_BY_LIFETIME
MAX_CLOCK_SKEW = timedelta(minutes=5)
ARRIVAL_SLOT = timedelta(hours=1)
LATE, FUTURE = "late_beyond_window", "from_the_future"
_HOUR_FOLDER = re.compile(r"(?:^|/)dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/")


def arrival_hour(rel_path: str) -> datetime | None:
    """Start of the arrival hour of a landing file from its `dt=YYYY-MM-DD/hour=HH/` folders (None if absent)."""
    m = _HOUR_FOLDER.search(rel_path)
    if m is None:
        return None
    return datetime.fromisoformat(m.group(1)).replace(hour=int(m.group(2)), tzinfo=UTC)


def accepted_range(arrival: datetime, window: timedelta = LATENESS_WINDOW,
                   skew: timedelta = MAX_CLOCK_SKEW) -> tuple[datetime, datetime]:
    """[earliest, latest] event_time accepted for events that arrived in the hour starting at `arrival`."""
    return arrival - window, arrival + ARRIVAL_SLOT + skew


def sealed_day(as_of: datetime, window: timedelta = LATENESS_WINDOW) -> date:
    """The first UTC day a run as of `as_of` still expects events of: as_of's minus the lateness window. The
    aggregates of the days before it are final in practice (the day-keyed gold state tables are sealed before it:
    gold.author_viewer_latest, gold.ring_signal_sums); a run that still recomputes one rebuilds those states."""
    return (as_of - window).date()


def reason(rule: str, event_time: str, arrival: datetime, window: timedelta, skew: timedelta) -> str:
    """The quarantine reason of a line that broke an arrival rule."""
    hour = arrival.strftime("%Y-%m-%dT%H:%MZ")
    if rule == LATE:
        return (f"event_time {event_time} is more than {duration_text(window)} before its arrival hour {hour} "
                "(lateness window)")
    return (f"event_time {event_time} is more than {duration_text(skew)} after the end of its arrival hour {hour} "
            "(clock skew)")

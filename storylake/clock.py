"""Time helpers every part shares: aware UTC datetimes and their ISO-8601 texts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np


def utc(t: datetime | str) -> datetime:
    """An aware UTC datetime from a datetime (pendulum's too) or an ISO-8601 string; naive values are taken as UTC.
    Always a plain `datetime` (a pendulum DateTime is rebuilt)."""
    if type(t) is datetime and t.tzinfo is UTC:  # the common case, already a plain aware UTC datetime
        return t
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    if not isinstance(t, datetime):
        raise TypeError(f"expected a datetime or an ISO-8601 string, got {type(t).__name__}")
    plain = datetime(t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond, tzinfo=t.tzinfo or UTC)
    return plain.astimezone(UTC)


def iso(t: datetime | None) -> str | None:
    """ISO-8601 UTC with a Z suffix; microseconds only when non-zero (2026-11-02T10:00:00Z, ...10:00:00.001000Z)."""
    if t is None:
        return None
    if type(t) is datetime and t.tzinfo is UTC:  # fast path (trays render hundreds per answer)
        return t.isoformat()[:-6] + "Z"  # "+00:00" -> "Z"
    return utc(t).replace(tzinfo=None).isoformat(timespec="auto") + "Z"


def iso_us(us: Any) -> list[str]:
    """iso() of many instants at once: a numpy array of epoch microseconds -> texts, vectorised (a tray page renders
    hundreds of instants: ~0.1 ms here against ~3 ms through datetime objects)."""
    us = np.asarray(us, dtype=np.int64)
    texts = np.datetime_as_string(us.astype("datetime64[us]"), unit="us").tolist()  # YYYY-MM-DDTHH:MM:SS.ffffff
    whole = (us % 1_000_000 == 0).tolist()
    return [t[:19] + "Z" if w else t + "Z" for t, w in zip(texts, whole, strict=True)]


def iso_trimmed(t: datetime) -> str:
    """ISO-8601 UTC with the fraction's trailing zeros trimmed (2026-11-02T10:00:00.001Z): reason texts and ids."""
    t = utc(t)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{t.strftime('%f').rstrip('0')}Z" if t.microsecond else f"{base}Z"

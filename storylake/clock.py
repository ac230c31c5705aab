"""UTC helpers shared by the serving modules."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(t: datetime) -> datetime:
    """An aware UTC datetime (naive values are taken as UTC)."""
    if not isinstance(t, datetime):
        raise TypeError(f"expected a datetime, got {type(t).__name__}")
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def iso(t: datetime | None) -> str | None:
    """ISO-8601 UTC with a Z suffix; microseconds only when non-zero (2026-11-02T10:00:00Z)."""
    if t is None:
        return None
    return utc(t).replace(tzinfo=None).isoformat(timespec="auto") + "Z"

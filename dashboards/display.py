"""How values read on the pages: numbers, ratios, durations, UTC times, ring states."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from storylake.clock import utc

# ring state -> (badge colour, text)
RINGS: dict[str, tuple[str, str]] = {
    "gradient": ("violet", "Gradient ring: your story is live"),
    "green": ("green", "Green ring: close friends story live"),
    "grey": ("gray", "Grey ring: all seen"),
    "none": ("gray", "No ring: no active story"),
    "unknown": ("gray", "Ring unavailable at this time"),
}


# st.dataframe geometry: one header row and n rows of ROW_PX each, plus the border; a table shows all its rows up
# to MAX_ROWS (longer ones scroll inside).
ROW_PX = 35
MAX_ROWS = 25


def rows_height(rows: int, max_rows: int = MAX_ROWS) -> int:
    """The st.dataframe height that shows the header and `rows` rows without an inner scrollbar (at most
    max_rows rows; an empty table keeps one row for its placeholder)."""
    return (min(max(rows, 1), max_rows) + 1) * ROW_PX + 3


def number(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


def count_of(value: Any, noun: str) -> str:
    """'1 vote', '2 votes', '1,204 answers' (nouns taking a plain s)."""
    n = 0 if value is None else int(value)
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def signed(value: int) -> str:
    return f"{value:+,}"


def percent(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def seconds(ms: float | None) -> str:
    return "—" if ms is None else f"{ms / 1000:.1f} s"


def when(t: datetime | None) -> str:
    return "—" if t is None else f"{utc(t):%Y-%m-%d %H:%M} UTC"


def day_span(start: date, end: date) -> str:
    return f"{end:%b %d}" if start == end else f"{start:%b %d} – {end:%b %d}"

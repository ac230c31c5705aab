"""Columnar event rows: the generator never builds one Python object per event until it writes lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]
Array = npt.NDArray[Any]


@dataclass
class EventTable:
    """Rows of one event type: `time` (ms since the Unix epoch, UTC) plus named columns of equal length.

    Integer columns use -1 for JSON null. Columns whose name starts with "_" are context for fault
    injection (e.g. the segment's created_at) and are never written.
    """

    event_type: str
    time: I64
    cols: dict[str, Array] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.time.shape[0])

    def take(self, idx: Array) -> EventTable:
        return EventTable(self.event_type, self.time[idx], {k: v[idx] for k, v in self.cols.items()})

    def slice(self, lo: int, hi: int) -> EventTable:
        return EventTable(self.event_type, self.time[lo:hi], {k: v[lo:hi] for k, v in self.cols.items()})

    @staticmethod
    def concat(event_type: str, tables: Sequence[EventTable]) -> EventTable:
        parts = [t for t in tables if len(t)]
        if not parts:
            return tables[0] if tables else EventTable(event_type, np.zeros(0, np.int64))
        if len(parts) == 1:
            return parts[0]
        names = list(parts[0].cols)
        for t in parts[1:]:
            if list(t.cols) != names:
                raise ValueError(
                    f"{event_type}: cannot concatenate tables with columns {names} and {list(t.cols)}"
                )
        return EventTable(
            event_type,
            np.concatenate([t.time for t in parts]),
            {k: np.concatenate([t.cols[k] for t in parts]) for k in names},
        )


def unique_sorted(values: I64) -> I64:
    """Sorted distinct values (np.unique's hash path is slow on large int64 arrays in numpy 2.4)."""
    s = np.sort(values)
    if s.size == 0:
        return s
    keep = np.empty(s.size, dtype=np.bool_)
    keep[0] = True
    keep[1:] = s[1:] != s[:-1]
    return np.asarray(s[keep])


def first_occurrences(values: I64) -> I64:
    """Positions of the first occurrence of each distinct value, in increasing position order."""
    if values.size == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(values, kind="stable")
    s = values[order]
    keep = np.empty(s.size, dtype=np.bool_)
    keep[0] = True
    keep[1:] = s[1:] != s[:-1]
    return np.sort(order[keep]).astype(np.int64)


def isin_sorted(values: I64, sorted_codes: I64) -> Bool:
    """values[i] in sorted_codes, for a sorted unique int64 array (binary search, no hashing)."""
    if sorted_codes.size == 0 or values.size == 0:
        return np.zeros(values.shape, dtype=np.bool_)
    big = values.size > 65_536 and sorted_codes.size > 65_536
    order = np.argsort(values) if big else None  # searching in sorted order is far more cache-friendly
    queries = values[order] if order is not None else values
    pos = np.minimum(np.searchsorted(sorted_codes, queries), sorted_codes.size - 1)
    found = np.asarray(sorted_codes[pos] == queries)
    if order is None:
        return found
    out = np.empty(values.size, dtype=np.bool_)
    out[order] = found
    return out


def ranks_within(codes: I64, times: I64) -> I64:
    """1-based rank of each row among the rows with the same code, ordered by time (ties by position)."""
    n = codes.size
    out = np.empty(n, dtype=np.int64)
    if n == 0:
        return out
    order = np.lexsort((times, codes))
    sc = codes[order]
    new = np.empty(n, dtype=np.bool_)
    new[0] = True
    new[1:] = sc[1:] != sc[:-1]
    idx = np.arange(n, dtype=np.int64)
    group_start = np.maximum.accumulate(np.where(new, idx, 0))
    out[order] = idx - group_start + 1
    return out


def group_offsets(lengths: I64) -> tuple[I64, I64]:
    """For groups of the given lengths laid end to end: (group of each element, position within its group)."""
    total = int(lengths.sum())
    group = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    starts = np.cumsum(lengths) - lengths
    pos = np.arange(total, dtype=np.int64) - starts[group]
    return group, pos


def exclusive_cumsum_within(values: I64, lengths: I64) -> I64:
    """Cumulative sum of the earlier elements of the same group (groups laid end to end)."""
    if values.size == 0:
        return values.copy()
    excl = np.cumsum(values) - values
    starts = np.cumsum(lengths) - lengths
    base = np.repeat(excl[np.minimum(starts, values.size - 1)], lengths)
    return np.asarray(excl - base, dtype=np.int64)

"""Fault injection: the dirt real collectors deliver, at configurable rates, counted exactly.

Every clean row gets at most one of the exclusive faults (client_retry, duplicate_line, late, expired_view,
malformed_json, wrong_type, out_of_range), drawn once per row, so each fault is visible on its own in the
files and the report's counts equal what a reader finds:
  * client_retry    segment_view / sticker_interaction re-sent 1-8 s later: same idempotency_key,
                    new event_id;
  * duplicate_line  the exact same line written again, later in the same hour folder (same or later part);
  * late            written into an hour folder 1-5 hours after its event_time's hour;
  * expired_view    segment_view moved to created_at + 24 h or later (only where that is still in the
                    window, so never with days=1);
  * malformed_json  the line truncated or garbled (not parseable JSON), always after its event_id;
  * wrong_type      a typed field with the wrong JSON type ("segment_id": "abc", "view_duration_ms": "12");
  * out_of_range    a value outside its range (completion_pct 1.7, slider -0.2, 400-char text,
                    negative duration).
Two faults add rows (drawn per segment_view row): unknown_segment (a receipt for a segment id that never
exists) and audience_violation (a receipt by a viewer the audience rules exclude at every instant).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .schema import MS_HOUR, MS_SECOND, NULL, POLL, QUESTION, QUIZ, SEGMENT_TTL_MS, SLIDER
from .table import I64, EventTable, first_occurrences
from .world import World


@dataclass(frozen=True)
class FaultRates:
    """Fault rates as fractions of the rows they apply to (see the module docstring)."""

    client_retry: float = 0.02
    duplicate_line: float = 0.01
    late: float = 0.02
    unknown_segment: float = 0.002
    expired_view: float = 0.002
    malformed_json: float = 0.001
    wrong_type: float = 0.001
    out_of_range: float = 0.001
    audience_violation: float = 0.002

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"fault rate {f.name} must be a number in [0, 1], got {value!r}")
        exclusive = sum(getattr(self, name) for name in EXCLUSIVE_KINDS)
        if exclusive > 1.0:
            raise ValueError(f"the rates of {', '.join(EXCLUSIVE_KINDS)} must sum to <= 1, got {exclusive}")

    @classmethod
    def none(cls) -> FaultRates:
        """All rates zero: clean, rule-abiding data."""
        return cls(**{name: 0.0 for name in FAULT_KINDS})

    def with_overrides(self, overrides: Mapping[str, float] | Iterable[str]) -> FaultRates:
        """Copy with some rates replaced: a mapping, or "NAME=VALUE" strings (CLI --fault-rate)."""
        values: dict[str, float] = {}
        items = overrides.items() if isinstance(overrides, Mapping) else (_split(s) for s in overrides)
        for name, value in items:
            if name not in FAULT_KINDS:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULT_KINDS)}")
            values[name] = float(value)
        return dataclasses.replace(self, **values)

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def _split(item: str) -> tuple[str, float]:
    name, sep, value = item.partition("=")
    if not sep:
        raise ValueError(f"expected NAME=VALUE, got {item!r}")
    try:
        return name.strip(), float(value)
    except ValueError as exc:
        raise ValueError(f"fault rate {name.strip()!r}: {value!r} is not a number") from exc


FAULT_KINDS = (
    "client_retry",
    "duplicate_line",
    "late",
    "unknown_segment",
    "expired_view",
    "malformed_json",
    "wrong_type",
    "out_of_range",
    "audience_violation",
)
EXCLUSIVE_KINDS = (
    "client_retry",
    "duplicate_line",
    "late",
    "expired_view",
    "malformed_json",
    "wrong_type",
    "out_of_range",
)

# Per-row fault codes.
CLEAN, RETRY_SOURCE, DUPLICATE, LATE, EXPIRED, MALFORMED, WRONG_TYPE, OUT_OF_RANGE = range(8)
RETRY_COPY, UNKNOWN_SEGMENT, AUDIENCE_VIOLATION = 8, 9, 10
_CODE_OF = {
    "client_retry": RETRY_SOURCE,
    "duplicate_line": DUPLICATE,
    "late": LATE,
    "expired_view": EXPIRED,
    "malformed_json": MALFORMED,
    "wrong_type": WRONG_TYPE,
    "out_of_range": OUT_OF_RANGE,
}
RETRYABLE = ("segment_view", "sticker_interaction")  # also the types that get wrong_type / out_of_range
FAKE_SEGMENT_BASE = 900_000_000_000  # unknown_segment ids start here; real ids are far below
LATE_HOURS = (1, 5)


@dataclass
class Prepared:
    """Rows ready to write, sorted by (arrival hour, event time), with fault codes and arrival hours."""

    table: EventTable
    code: I64
    variant: I64  # random draw that picks how a faulty row is broken
    arrival_hour: I64  # absolute hour (ms // 1 h) of the folder it lands in


@dataclass
class FaultInjector:
    rates: FaultRates
    world: World
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0))
    next_fake: int = 0

    def prepare(self, table: EventTable, rng: np.random.Generator) -> Prepared:
        end = self.world.end_ms
        etype = table.event_type
        parts = [table]
        codes = [self._exclusive(table, rng)]
        if etype == "segment_view" and len(table):
            unknown = self._unknown_segments(table, rng)
            violations = self._audience_violations(table, rng)
            parts += [unknown, violations]
            codes += [
                np.full(len(unknown), UNKNOWN_SEGMENT, np.int64),
                np.full(len(violations), AUDIENCE_VIOLATION),
            ]
        base_code = codes[0]
        # Retries: a copy of the row 1-8 s later with a new event_id (assigned when written).
        src = np.flatnonzero(base_code == RETRY_SOURCE)
        copies = table.take(src)
        copies.time = copies.time + rng.integers(MS_SECOND, 8 * MS_SECOND + 1, src.size)
        keep = copies.time < end
        if etype == "segment_view":
            keep &= copies.time < copies.cols["_created"] + SEGMENT_TTL_MS
        copies = copies.take(np.flatnonzero(keep))
        self.counts["client_retry"] += len(copies)
        parts.append(copies)
        codes.append(np.full(len(copies), RETRY_COPY, np.int64))

        merged = EventTable.concat(etype, parts)
        code = np.concatenate(codes).astype(np.int64)
        variant = rng.integers(0, 1 << 30, len(merged)).astype(np.int64)
        shift = rng.integers(LATE_HOURS[0], LATE_HOURS[1] + 1, len(merged))
        arrival = merged.time // MS_HOUR + np.where(code == LATE, shift, 0)
        order = np.lexsort((merged.time, arrival))
        return Prepared(merged.take(order), code[order], variant[order], arrival[order].astype(np.int64))

    def _exclusive(self, table: EventTable, rng: np.random.Generator) -> I64:
        etype = table.event_type
        n = len(table)
        u = rng.random(n)
        code = np.zeros(n, np.int64)
        lo = 0.0
        for name in EXCLUSIVE_KINDS:
            rate = getattr(self.rates, name)
            if name in ("client_retry", "wrong_type", "out_of_range") and etype not in RETRYABLE:
                rate = 0.0
            if name == "expired_view" and etype != "segment_view":
                rate = 0.0
            code[(u >= lo) & (u < lo + rate)] = _CODE_OF[name]
            lo += rate
        if etype == "segment_view":
            # Expired: move the receipt to created_at + 24 h or later, where that is still in the window.
            created = table.cols["_created"]
            room = self.world.end_ms - (created + SEGMENT_TTL_MS)
            pick = rng.integers(0, np.maximum(room, 1))
            exp_rows = code == EXPIRED
            ok = exp_rows & (room > MS_SECOND)
            table.time = np.where(ok, created + SEGMENT_TTL_MS + pick, table.time)
            code[exp_rows & ~ok] = CLEAN
        if etype == "sticker_interaction":
            typ = table.cols["sticker_type"]
            ranged = (typ == POLL) | (typ == QUIZ) | (typ == SLIDER) | (typ == QUESTION)
            code[(code == OUT_OF_RANGE) & ~ranged] = CLEAN
        for name, c in _CODE_OF.items():
            if name != "client_retry":
                self.counts[name] += int((code == c).sum())
        return code

    def _unknown_segments(self, views: EventTable, rng: np.random.Generator) -> EventTable:
        k = int(rng.binomial(len(views), self.rates.unknown_segment))
        rows = views.take(rng.integers(0, len(views), k))
        rows.cols["segment_id"] = FAKE_SEGMENT_BASE + self.next_fake + np.arange(k, dtype=np.int64)
        rows.cols["rep"] = np.ones(k, np.int64)
        rows.cols["_created"] = np.full(k, NULL, np.int64)
        self.next_fake += k
        self.counts["unknown_segment"] += k
        return rows

    def _audience_violations(self, views: EventTable, rng: np.random.Generator) -> EventTable:
        w = self.world
        k = int(rng.binomial(len(views), self.rates.audience_violation))
        author = views.cols["_author"]
        cf = views.cols["_cf"] == 1
        pool = np.flatnonzero(cf | w.private_always[author])
        if k == 0 or pool.size == 0:
            return views.take(np.zeros(0, np.int64))
        picks = pool[rng.integers(0, pool.size, k)]
        tries = 4
        cand = rng.integers(0, w.n, (k, tries))
        bad = w.definitely_excluded(
            np.repeat(author[picks], tries), cand.ravel(), np.repeat(cf[picks], tries)
        ).reshape(k, tries)
        has = bad.any(axis=1)
        viewer = cand[np.arange(k), bad.argmax(axis=1)]
        rows = views.take(picks[has])
        viewer = viewer[has]
        rows.cols["viewer_id"] = viewer + 1
        rows.cols["rep"] = np.ones(len(rows), np.int64)
        rows.time = rows.time + rng.integers(0, 5 * MS_SECOND, len(rows))
        pair = rows.cols["segment_id"] * (w.n + 1) + viewer
        first = first_occurrences(pair)
        ok = np.zeros(len(rows), np.bool_)
        ok[first] = True
        ok &= (rows.time < w.end_ms) & (rows.time < rows.cols["_created"] + SEGMENT_TTL_MS)
        rows = rows.take(np.flatnonzero(ok))
        self.counts["audience_violation"] += len(rows)
        return rows

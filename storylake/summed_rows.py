"""Tables whose rows of a key add up, stored by appending each run's new contributions.

gold.ring_signal_days holds, per (viewer, author, UTC day), counts of the viewer's signals toward the author, and
gold.author_viewer_days, per (author, UTC day, viewer), the viewer's counted views of the author's segments, their
summed time and whether one completed: sums (and one "any") over silver rows. An hourly run whose silver inputs
only gained rows (the hour's receipts and actions appended, no earlier row decided again) changes a key's values by
exactly those of its new rows. So such a run appends one row per key with the values of its new rows alone, stamped
with its as_of, instead of rewriting every key of the days it touches (3.3M rows each at 10M views a day, of which
an hour changes ~5%); any other run rewrites the days from its horizon on, one row per key again
(jobs/gold/appended.py, jobs/gold/ring_features.py, jobs/gold/author_daily_insights.py).

A key may then have several stored rows, one per run that added to it (the stored key is the key and the stamp).
The table's rows, as every reader sees them, are one row per key with each count summed over its stored rows (a
flag: the largest), and without the stamp. That rule is held here once: Arrow (tests, tools) and, in
jobs/merged_tables.py, the Spark form are generated from the same SummedRows. Every stored row counts at least one
signal or view, so a key's sums are never all zero; retention removes whole days (the day is part of the key).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from storylake import contracts


@dataclass(frozen=True)
class SummedRows:
    """A table stored as summed rows: contract key, the key its readers see one row per, the stored stamp column."""

    table: str  # e.g. "gold.ring_signal_days"
    key: tuple[str, ...]
    stamp: str  # the as_of of the run that wrote the row: with the key, unique among the stored rows
    inputs: tuple[str, ...]  # the silver tables whose rows the counts add up
    flags: tuple[str, ...] = ()  # columns readers see the largest stored value of (1 when any row has 1), not the sum

    def value_columns(self) -> list[str]:
        """The columns readers see, in the contract's order: every stored column but the stamp."""
        return [c.name for c in contracts.get(self.table).columns if c.name != self.stamp]

    def aggregates(self) -> dict[str, str]:
        """{column: "sum" or "max"} of every column readers see but the key's."""
        return {c: "max" if c in self.flags else "sum" for c in self.value_columns() if c not in self.key}


RING_SIGNAL_DAYS = SummedRows("gold.ring_signal_days", ("viewer_id", "author_id", "day"), "as_of",
                              ("silver.engagements", "silver.view_events"))
AUTHOR_VIEWER_DAYS = SummedRows("gold.author_viewer_days", ("author_id", "day", "viewer_id"), "as_of",
                                ("silver.view_events",), flags=("completed",))
SUMMED: dict[str, SummedRows] = {t.table: t for t in (RING_SIGNAL_DAYS, AUTHOR_VIEWER_DAYS)}
# every silver table a summed table adds up: silver records their versions before it writes (ops.increments)
INPUTS = tuple(sorted({key for table in SUMMED.values() for key in table.inputs}))


def summed(table: str) -> SummedRows | None:
    """The SummedRows of a contract key stored as summed rows, else None."""
    return SUMMED.get(table)


def arrow(table: SummedRows, stored: pa.Table) -> pa.Table:
    """The table's rows from an Arrow table of its stored rows: one per key, in the readers' columns (row order is
    not defined)."""
    aggregates = table.aggregates()
    out = stored.group_by(list(table.key)).aggregate(list(aggregates.items()))  # columns named "<c>_sum", "<c>_max"
    columns = {name: out.column(f"{name}_{aggregates[name]}" if name in aggregates else name)
               for name in table.value_columns()}
    schema = pa.schema([stored.schema.field(name) for name in table.value_columns()])
    return pa.Table.from_arrays([columns[f.name].cast(f.type) for f in schema], schema=schema)

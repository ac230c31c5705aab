# ruff: noqa: S608  -- the SQL here is built from contract column names and the caller's relation names only.
"""Tables whose rows of a key only grow, stored by appending a key's row again when it grew.

silver.segment_viewers gives its readers one row per (segment, viewer): the aggregate of the pair's counted views.
An hourly run mostly adds views: new pairs, and a few pairs seen again (a rewatch, a second session hours later),
whose row then has more views than before. Rewriting the table's slice for them rewrote every pair of the live
segments (6.3M rows at 10M views a day) to change ~6% of them; instead such a run appends the grown pairs' new
rows (jobs/silver/segment_viewers.py) and leaves their earlier rows where they are.

So a key may have several stored rows, each with a different counter (view_count: every later row of a key has
more views). The table's rows, as every reader sees them, are each key's row with the largest counter. That rule is
held here once: DuckDB SQL (serving's publish), Arrow (tests, tools) and, in jobs/merged_tables.py, the Spark
form are generated from the same LatestRows. A rewrite of a slice (a full refresh, a run that changed a view's
decision) writes one row per key again; retention removes a key's rows together (they share the anchor).

Every superseded row's counter is below its key's largest, which exceeds the counter's floor (its contract
minimum, 1 view): only rows above the floor can supersede another, and they are few (the rewatched pairs). The
forms aggregate those few rows per key and stream the others past them, instead of ranking every row.

Gold's story-keyed insights (gold.segment_insights, gold.story_insights) are stored the same way, restated: an hourly
run appends the rows it changed (each stamped with the run's as_of, the counter) instead of rewriting its horizon's
slice, where 2.9M segment insights at 10M views a day held ~0.2M changed ones. Their counter has no floor (every row
has an as_of): a flag column (`restated`) marks the rows appended for a key that already had one, the only rows that
supersede another. A key that a run finds gone (a story folded into another by a late creation) gets a tombstone: its
last row again, as of the run, restated and `removed`; readers see no row of a key whose latest row is one. Readers
never see either column; a slice rewrite writes both false, and the daily maintenance folds the restated rows and
the tombstoned keys away (jobs/restated_fold.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from storylake import contracts

_TOP = "_latest_top"  # the key's largest counter, in the forms' aggregate


@dataclass(frozen=True)
class LatestRows:
    """A table stored as growing rows: contract key, the key its readers see one row per, the counter, and what
    marks the rows that can supersede another: a counter above `floor`, or a true `flag` column."""

    table: str  # e.g. "silver.segment_viewers"
    key: tuple[str, ...]
    counter: str  # grows with every row a key is appended again; readers see the key's row with the largest
    floor: int | None = None  # the counter's smallest value: a row that supersedes another has a larger one
    flag: str | None = None  # a boolean column, true on the rows that supersede another (readers do not see it)
    removed: str | None = None  # a boolean column, true on a tombstone (with a flag only; readers do not see it)

    def __post_init__(self) -> None:
        if (self.floor is None) == (self.flag is None):
            raise ValueError(f"{self.table}: a LatestRows has either a floor or a flag column")
        if self.removed is not None and self.flag is None:
            raise ValueError(f"{self.table}: tombstones supersede a row, so they need a flag column")

    @property
    def storage_columns(self) -> tuple[str, ...]:
        """The columns that record how rows are stored, which readers do not see (the flag, the tombstone mark)."""
        return tuple(c for c in (self.flag, self.removed) if c is not None)

    def value_columns(self) -> list[str]:
        """The table's columns as its readers see them (its contract's, in order, without the storage columns)."""
        return [c.name for c in contracts.get(self.table).columns if c.name not in self.storage_columns]

    def superseding_sql(self) -> str:
        """SQL condition of a stored row that may supersede another."""
        if self.flag is not None:
            return f"coalesce({self.flag}, false)"
        return f"{self.counter} > {int(self.floor or 0)}"


SEGMENT_VIEWERS = LatestRows("silver.segment_viewers", ("segment_id", "viewer_id"), "view_count", floor=1)
RESTATED = "restated"  # the flag column of gold's restated insights
REMOVED = "removed"  # their tombstone mark
SEGMENT_INSIGHTS = LatestRows("gold.segment_insights", ("segment_id",), "as_of", flag=RESTATED, removed=REMOVED)
STORY_INSIGHTS = LatestRows("gold.story_insights", ("story_id",), "as_of", flag=RESTATED, removed=REMOVED)
GROWING: dict[str, LatestRows] = {t.table: t for t in (SEGMENT_VIEWERS, SEGMENT_INSIGHTS, STORY_INSIGHTS)}
RESTATED_TABLES: tuple[LatestRows, ...] = tuple(t for t in GROWING.values() if t.flag is not None)
# the silver tables an hourly run updates the story insights of the stories it only added interactions to from
# (their rows it added, and the pairs and exits as the last good run left them: jobs/gold/insight_deltas.py); silver
# records their versions before it writes (ops.increments)
INSIGHT_INPUTS = ("silver.view_events", "silver.navigation", "silver.engagements", "silver.segment_viewers")


def restated(table: str) -> LatestRows | None:
    """The LatestRows of a contract key stored as restated rows (a flag marks the superseding rows), else None."""
    stored = GROWING.get(table)
    return stored if stored is not None and stored.flag is not None else None


def growing(table: str) -> LatestRows | None:
    """The LatestRows of a contract key stored as growing rows, else None."""
    return GROWING.get(table)


def duckdb_sql(table: LatestRows, relation: str, columns: list[str] | None = None, tops: str | None = None) -> str:
    """DuckDB SELECT of the table's rows (`columns`, default all) from the relation named `relation` (the stored
    rows; a caller's constant name). `tops`: a relation holding duckdb_tops_sql's rows (computed once for a reader
    that scans the rows several times), instead of aggregating them in the query."""
    cols = columns if columns is not None else table.value_columns()
    on = " AND ".join(f"r.{k} = t.{k}" for k in table.key)
    # an anti join against the few keys' largest counters: 0.36 s against 0.29 s for a plain read of 6M stored rows
    # at 10M views a day (a left join and a filter took 0.39-0.47 s, NOT EXISTS against every row above the
    # floor 0.85 s)
    live = "" if table.removed is None else f" WHERE NOT coalesce(r.{table.removed}, false)"
    return (f"SELECT {', '.join(f'r.{c}' for c in cols)} FROM {relation} r "
            f"ANTI JOIN {tops if tops is not None else f'({duckdb_tops_sql(table, relation)})'} t ON {on} "
            f"AND (r.{table.counter} IS NULL OR t.{_TOP} > r.{table.counter}){live}")


def duckdb_tops_sql(table: LatestRows, relation: str) -> str:
    """DuckDB SELECT of the largest counter of each key with a row that may supersede another (the rows duckdb_sql
    anti-joins) from the stored rows named `relation`."""
    keys = ", ".join(table.key)
    return (f"SELECT {keys}, max({table.counter}) AS {_TOP} FROM {relation} "
            f"WHERE {table.superseding_sql()} GROUP BY {keys}")


def arrow(table: LatestRows, stored: pa.Table) -> pa.Table:
    """The table's rows from an Arrow table of its stored rows (same order of the kept rows; the stored columns but
    the storage columns)."""
    keys = list(table.key)
    if table.flag is not None:
        above = stored.filter(pc.fill_null(stored.column(table.flag), False))
    else:
        above = stored.filter(pc.greater(stored.column(table.counter), table.floor))
    picked = stored
    if above.num_rows:
        top = above.group_by(keys).aggregate([(table.counter, "max")]).rename_columns([*keys, _TOP])
        index = "_latest_row"
        numbered = stored.append_column(index, pa.array(range(stored.num_rows), pa.int64()))
        joined = numbered.join(top, keys, join_type="left outer")
        kept = joined.filter(pc.or_kleene(pc.is_null(joined.column(_TOP)),
                                          pc.equal(joined.column(table.counter), joined.column(_TOP))))
        order = pc.sort_indices(kept.column(index))
        picked = stored.take(pc.take(kept.column(index), order))
    if table.removed is not None:  # a key whose latest row is a tombstone has no row
        picked = picked.filter(pc.invert(pc.fill_null(picked.column(table.removed), False)))
    return picked.drop_columns(list(table.storage_columns))

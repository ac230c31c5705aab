# ruff: noqa: S608  -- the SQL here is built from contract column names and the caller's relation names only.
"""Tables stored merge-on-read: a base rewritten now and then, plus the rows of the keys that changed since.

A table that an hourly run would otherwise rewrite whole although only a few of its keys change (gold.ring_features:
1.43M (viewer, author) pairs on a 7-day 1M views/day lake, ~20k of them changed by an hour, 13.2M at 10M views a
day; silver.relationships: 1.4M intervals, 15M at 10M views a day, of which an hour touches a few hundred keys) is
kept as two Delta tables:

    base     <table>           every row as of the base's run (its own contract, the table's columns);
    changes  <table>_changes   the rows of every key whose rows changed since the base (each as of the latest run),
                               and a tombstone (`removed` true) for each key that no longer has a row. A table with a
                               stamp column (ring features' as_of): every run rewrites its changes, so all their rows
                               carry the latest run's stamp, and an incremental run writes at least the stamp row (a
                               tombstone of a key no row can have, `stamp_key`), so that the stamp is known even when
                               nothing changed; the changes are empty right after the base is written (the base's
                               rows then carry the stamp).

The table's rows are the base's rows whose key has no changes row, then the changes rows that are not
tombstones; with a stamp column, every row carries the changes' stamp (the run's as_of: every row is as of it,
changed or not; the base's own when the changes are empty). This
module holds that rule once: DuckDB SQL (serving's publish), Arrow (tests, tools) and, in jobs/merged_tables.py, the
Spark builder are generated from the same MergedTable. A lake without the changes table (written before it
existed, or by a test's builder) reads the base as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from storylake import contracts, lake, latest_rows, summed_rows
from storylake.settings import Settings

REMOVED = "removed"  # the changes table's tombstone flag


@dataclass(frozen=True)
class MergedTable:
    """A table stored merge-on-read: contract key of its base, its key columns and its stamp column."""

    key: str  # e.g. "gold.ring_features"
    columns: tuple[str, ...]  # the key a changes row replaces the base's rows of (all of them)
    stamp: str | None = None  # the column every row carries the latest run's value of (as_of), if any
    stamp_key: tuple[int, ...] | None = None  # the stamp row's key: one no row of the table can have

    @property
    def changes(self) -> str:
        return f"{self.key}_changes"

    def path(self, settings: Settings, *, changes: bool = False) -> Path:
        return settings.table_path(*(self.changes if changes else self.key).split("."))

    def value_columns(self) -> list[str]:
        """The table's columns (its base contract's), in order."""
        return [c.name for c in contracts.get(self.key).columns]


# (0, 0) is a self pair: ring features leave self pairs out, so no row has that key
RING_FEATURES = MergedTable("gold.ring_features", ("viewer_id", "author_id"), "as_of", (0, 0))
# every interval of a (relation, user, other user) key: a changes key replaces all the base's intervals of the key
RELATIONSHIPS = MergedTable("silver.relationships", ("relation", "user_id", "other_user_id"))
MERGED: dict[str, MergedTable] = {t.key: t for t in (RING_FEATURES, RELATIONSHIPS)}
CHANGES_TABLES = frozenset(m.changes for m in MERGED.values())  # contract keys no reader reads alone


def merged(key: str) -> MergedTable | None:
    """The MergedTable of a contract key stored merge-on-read (its base's key), else None."""
    return MERGED.get(key)


def duckdb_sql(table: MergedTable, base: str, changes: str | None, columns: list[str] | None = None) -> str:
    """DuckDB SELECT of the table's rows (`columns`, default all) from the relations named `base` and `changes` (None:
    the lake has no changes table, the base is read as it is). Relation names are the caller's constants."""
    cols = columns if columns is not None else table.value_columns()
    if changes is None:
        return f"SELECT {', '.join(cols)} FROM {base}"
    stamp = f"coalesce((SELECT max({table.stamp}) FROM {changes}), {table.stamp})"
    picked = ", ".join(f"{stamp} AS {c}" if table.stamp is not None and c == table.stamp else c for c in cols)
    on = " AND ".join(f"c.{k} = b.{k}" for k in table.columns)
    return (f"SELECT {picked} FROM (SELECT * FROM {base} b WHERE NOT EXISTS "
            f"(SELECT 1 FROM {changes} c WHERE {on})) "
            f"UNION ALL SELECT {picked} FROM {changes} WHERE NOT {REMOVED}")


def read_table(settings: Settings, key: str, columns: list[str] | None = None) -> pa.Table | None:
    """Any silver or gold table (contract key) as its readers see it, at its current version(s), in Arrow: a table
    stored merge-on-read through read_arrow, one stored as growing rows through latest_rows.arrow, one stored as
    summed rows through summed_rows.arrow, any other as stored; None without the table."""
    stored = merged(key)
    if stored is not None:
        return read_arrow(settings, stored, columns)
    added_up = summed_rows.summed(key)
    if added_up is not None:
        stored_rows = lake.read_arrow(settings.table_path(*key.split(".")))
        if stored_rows is None:
            return None
        sums = summed_rows.arrow(added_up, stored_rows)
        return sums if columns is None else sums.select(columns)
    growing = latest_rows.growing(key)
    if growing is None:
        return lake.read_arrow(settings.table_path(*key.split(".")), columns)
    rows = lake.read_arrow(settings.table_path(*key.split(".")))
    if rows is None:
        return None
    latest = latest_rows.arrow(growing, rows)
    return latest if columns is None else latest.select(columns)


def readers_key(key: str) -> tuple[str, ...]:
    """The key readers see one row per of any silver or gold table (contract key): a table stored as growing or summed
    rows has a longer stored key (its contract's primary key)."""
    stored: summed_rows.SummedRows | latest_rows.LatestRows | None = summed_rows.summed(key) or latest_rows.growing(key)
    return stored.key if stored is not None else contracts.get(key).primary_key


def read_arrow(settings: Settings, table: MergedTable, columns: list[str] | None = None) -> pa.Table | None:
    """The table's rows at the current versions of its two Delta tables, in Arrow; None without the base."""
    base = lake.read_arrow(table.path(settings))
    if base is None:
        return None
    cols = columns if columns is not None else table.value_columns()
    changes = lake.read_arrow(table.path(settings, changes=True))
    if changes is None:
        return base.select(cols)
    return merge_arrow(table, base, changes).select(cols)


def merge_arrow(table: MergedTable, base: pa.Table, changes: pa.Table) -> pa.Table:
    """The table's rows from Arrow tables of its base's and its changes' rows."""
    keys = list(table.columns)
    kept = base.join(changes.select(keys), keys, join_type="left anti")
    live = changes.filter(pc.invert(changes.column(REMOVED))).drop_columns([REMOVED])
    out = pa.concat_tables([kept.select(live.column_names), live.cast(kept.select(live.column_names).schema)])
    if table.stamp is None:
        return out
    stamp = pc.max(changes.column(table.stamp)).as_py()
    if stamp is None:  # no changes since the base: its rows are as of its own run
        return out
    at = out.column_names.index(table.stamp)
    return out.set_column(at, table.stamp, pa.array([stamp] * out.num_rows, out.schema.field(at).type))

"""Spark reads of tables stored merge-on-read (storylake.merge_on_read: the rule, and its DuckDB and Arrow forms), of
tables stored as growing rows (storylake.latest_rows) and of tables stored as summed rows (storylake.summed_rows)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.engine_workarounds import lookup, without
from storylake.latest_rows import LatestRows
from storylake.merge_on_read import REMOVED, MergedTable
from storylake.summed_rows import SummedRows

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def same_keys(key: tuple[str, ...] | list[str], prefix: str) -> Column:
    """Join condition: every column of `key` equals its copy named `prefix` + column."""
    from functools import reduce

    from pyspark.sql import functions as F

    return reduce(lambda a, b: a & b, [F.col(k) == F.col(f"{prefix}{k}") for k in key])


def same_values(columns: list[str], prefix: str) -> Column:
    """Every column of `columns` equals its copy named `prefix` + column, nulls equal to nulls."""
    from functools import reduce

    from pyspark.sql import functions as F

    return reduce(lambda a, b: a & b, [F.col(c).eqNullSafe(F.col(f"{prefix}{c}")) for c in columns])


def merged_frame(table: MergedTable, base: DataFrame, changes: DataFrame, stamp: Column | None = None) -> DataFrame:
    """The table's rows (storylake.merge_on_read) from its base's and its changes' rows: the base's rows whose key has
    no changes row, then the changes rows that are not tombstones; with `stamp` (the changes' stamp, a literal: the
    run's as_of) as the stamp column of a table that has one. The changes' keys are the hash join's build side."""
    from pyspark.sql import functions as F

    cols = table.value_columns()
    marked = [f"_mk_{k}" for k in table.columns]
    keys = changes.select(*[F.col(k).alias(m) for k, m in zip(table.columns, marked, strict=True)]).distinct()
    kept = without(base, keys, same_keys(table.columns, "_mk_"), marked).select(*cols)
    live = changes.filter(~F.col(REMOVED)).select(*cols)
    out = kept.unionByName(live)
    if stamp is not None and table.stamp is not None:
        out = out.withColumn(table.stamp, stamp).select(*cols)
    return out


def latest_frame(table: LatestRows, stored: DataFrame) -> DataFrame:
    """The rows of a table stored as growing rows (storylake.latest_rows: each key's row with the largest counter,
    none when that is a tombstone) from its stored rows, or from any of them that hold every stored row of their
    keys; the stored columns but the storage columns (the flag, the tombstone mark). The aggregate of the rows that
    can supersede another (the few above the counter's floor, or flagged) is the hash join's build side."""
    from pyspark.sql import functions as F

    top = (stored.filter(F.expr(table.superseding_sql())).groupBy(*table.key)
           .agg(F.max(table.counter).alias("_lt_top"))
           .select(*[F.col(k).alias(f"_lt_{k}") for k in table.key], "_lt_top"))
    joined = lookup(stored, top, same_keys(table.key, "_lt_"))
    latest = F.col("_lt_top").isNull() | (F.col(table.counter) == F.col("_lt_top"))
    if table.removed is not None:  # a key whose latest row is a tombstone has no row
        latest = latest & ~F.coalesce(F.col(table.removed), F.lit(False))
    return joined.filter(latest).select(*[c for c in stored.columns if c not in table.storage_columns])


def summed_frame(table: SummedRows, stored: DataFrame) -> DataFrame:
    """The rows of a table stored as summed rows (storylake.summed_rows: per key, each count summed over its stored
    rows, each flag the largest; no stamp) from its stored rows, or from any of them that hold every stored row of
    their keys."""
    from pyspark.sql import functions as F

    types = dict(stored.dtypes)
    aggregate = {"sum": F.sum, "max": F.max}
    columns = [aggregate[how](c).cast(types[c]).alias(c) for c, how in table.aggregates().items()]
    return stored.groupBy(*table.key).agg(*columns).select(*table.value_columns())

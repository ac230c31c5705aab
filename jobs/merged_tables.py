"""Spark reads of tables stored merge-on-read (storylake.merge_on_read: the rule, and its DuckDB and Arrow forms)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storylake.merge_on_read import REMOVED, MergedTable

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def merged_frame(table: MergedTable, base: DataFrame, changes: DataFrame, stamp: Column) -> DataFrame:
    """The table's rows (storylake.merge_on_read) from its base's and its changes' rows: the base's rows whose key has
    no changes row, then the changes rows that are not tombstones, each with `stamp` (the changes' stamp, which the
    caller knows: the run's as_of) as the stamp column."""
    cols = table.value_columns()
    keys = list(table.columns)
    kept = base.join(changes.select(*keys), keys, "left_anti").select(*cols)
    live = changes.filter(~changes[REMOVED]).select(*cols)
    return kept.unionByName(live).withColumn(table.stamp, stamp).select(*cols)

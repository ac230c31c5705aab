"""Spark reads of tables stored merge-on-read (storylake.merge_on_read: the rule, and its DuckDB and Arrow forms)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.engine_workarounds import lookup
from storylake.merge_on_read import REMOVED, MergedTable

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def merged_frame(table: MergedTable, base: DataFrame, changes: DataFrame, stamp: Column | None = None) -> DataFrame:
    """The table's rows (storylake.merge_on_read) from its base's and its changes' rows: the base's rows whose key has
    no changes row, then the changes rows that are not tombstones; with `stamp` (the changes' stamp, a literal: the
    run's as_of) as the stamp column of a table that has one. The changes' keys are the hash join's build side."""
    from pyspark.sql import functions as F

    cols = table.value_columns()
    keys = changes.select(*[F.col(k).alias(f"_mk_{k}") for k in table.columns]).distinct().withColumn(
        "_mk_hit", F.lit(True))
    on = None
    for k in table.columns:
        cond = F.col(k) == F.col(f"_mk_{k}")
        on = cond if on is None else on & cond
    kept = lookup(base, keys, on).filter(F.col("_mk_hit").isNull()).select(*cols)
    live = changes.filter(~F.col(REMOVED)).select(*cols)
    out = kept.unionByName(live)
    if stamp is not None and table.stamp is not None:
        out = out.withColumn(table.stamp, stamp).select(*cols)
    return out

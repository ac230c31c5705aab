"""Gold layer: creator insights, sticker results and ranking features, rebuilt from silver as of an instant.

One module per table, each = pure transforms (DataFrames in, DataFrame out, `as_of` explicit) + a thin
`run(spark, settings, as_of) -> {table: rows}` that reads silver and overwrites the whole gold table (a rerun
with the same silver and as_of gives the same contents). Only rows strictly before as_of are used.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from jobs import spark_io
from storylake.settings import Settings
from storylake.writer_lock import holding_writer_lock

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

GOLD_TABLES = ("segment_insights", "story_insights", "author_daily_insights", "sticker_results", "ring_features")


@holding_writer_lock("gold")
def build_gold(spark: SparkSession, settings: Settings, as_of: datetime) -> dict[str, int]:
    """Rebuild every gold table (except the ranking export, see jobs.export) as of `as_of`; rows per table."""
    from jobs.gold import author_daily_insights, ring_features, segment_insights, sticker_results, story_insights

    spark_io.remove_stale_scratch(settings)
    rows: dict[str, int] = {}
    for module in (segment_insights, story_insights, author_daily_insights, sticker_results, ring_features):
        rows.update(module.run(spark, settings, as_of))
    return rows

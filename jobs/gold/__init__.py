"""Gold layer: creator insights, sticker results and ranking features, rebuilt from silver as of an instant.

One module per table, each = pure transforms (DataFrames in, DataFrame out, `as_of` explicit) + a thin
`run(spark, settings, as_of) -> {table: rows}` that reads silver and overwrites the whole gold table (a rerun
with the same silver and as_of gives the same contents). Only rows strictly before as_of are used.
"""

from __future__ import annotations

import logging
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING

from jobs import spark_io
from jobs.lanes import module_jobs, run_jobs
from storylake.settings import Settings
from storylake.writer_lock import holding_writer_lock

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)
GOLD_TABLES = (
    "segment_insights", "story_insights", "author_daily_insights", "author_viewer_days", "author_viewer_latest",
    "author_hourly_insights", "sticker_results", "ring_signal_days", "ring_signal_sums", "ring_features",
    "ring_features_changes",
)
# State a run rebuilds whole when it is missing: an upgrade that adds one needs no full refresh
# (jobs/schema_migration.py)
REBUILT_WHEN_MISSING = ("author_viewer_latest", "ring_signal_sums")


@holding_writer_lock("gold")
def build_gold(spark: SparkSession, settings: Settings, as_of: datetime) -> dict[str, int]:
    """Recompute every gold table (except the ranking export, see jobs.export) as of `as_of`, within the horizon
    silver planned for it (jobs.horizon; everything when silver planned none); rows written per table. On a lake
    without quality gates the run is then done (ops.increments); with gates, the gold gate marks it done."""
    from jobs.gold import (
        author_daily_insights,
        author_hourly_insights,
        ring_features,
        segment_insights,
        sticker_results,
        touched,
    )
    from jobs.horizon import from_increment, full
    from jobs.retention import reapply
    from storylake import audit, increments
    from storylake.clock import utc

    as_of = utc(as_of)
    spark_io.remove_stale_scratch(settings)
    plan = increments.planned(settings, as_of)
    horizon = from_increment(plan) if plan is not None else full(as_of)

    with spark_io.scratch(settings) as materialize:
        # the stories and authors this run can change (None: recompute the whole horizon)
        keys = touched.touched_keys(spark, settings, horizon, materialize)

        def run(module: ModuleType, _name: str) -> dict[str, int]:
            if module is segment_insights:  # it writes gold.story_insights too
                return module.run(spark, settings, horizon, touched=None if keys is None else keys.stories)
            if module in (author_daily_insights, author_hourly_insights):
                return module.run(spark, settings, horizon, authors=None if keys is None else keys.authors)
            if module is sticker_results:
                return module.run(spark, settings, horizon, segments=None if keys is None else keys.segments)
            return module.run(spark, settings, horizon)

        # every job reads silver and writes its own tables; longest first (jobs/lanes.py: alone on a 3-day 10M
        # views/day lake, an hour's segment_insights with story_insights ~11 s, author_daily_insights ~5,
        # ring_features ~2.5, author_hourly_insights ~2, sticker_results ~2)
        rows = run_jobs(
            module_jobs([segment_insights, author_daily_insights, ring_features, author_hourly_insights,
                         sticker_results], run),
            workers=settings.job_lanes, logger=log, layer="gold")
    if horizon.refresh:  # a full refresh: rows a shorter retention than their inputs' had removed stay removed
        reapply(settings, "gold")
    if not audit.enabled(settings):
        increments.complete(settings, as_of)
    return rows

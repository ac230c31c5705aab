"""The silver rows an incremental run added, when a gold table stored as summed rows (storylake.summed_rows) can take
their sums appended instead of rewriting its days."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NamedTuple

from jobs import spark_io
from jobs.horizon import Horizon
from storylake import increments, lake
from storylake.clock import utc
from storylake.settings import Settings
from storylake.summed_rows import SummedRows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


class Gained(NamedTuple):
    """The rows each silver input of a summed table gained since the last good run."""

    rows: dict[str, DataFrame]  # input table name (view_events, ...) -> its gained rows
    files: int  # the data files they are in: none, nothing to append


def gained_rows(spark: SparkSession, settings: Settings, horizon: Horizon, table: SummedRows) -> Gained | None:
    """The rows each of `table`'s silver inputs gained since the last good run, when appending the sums of those rows
    to `table` gives what a rewrite of the run's days would (a key's values are sums over its inputs' rows): each
    input only gained rows since the version the last good run left it at (recorded in the run's plan before silver
    wrote, storylake.increments; lake.appended_files: a receipt decided again, a retention delete or a failed run
    since makes it None), `table` holds its last good version's rows (compactions only since), and the run is as of
    a later instant than the last good run (its stamp is new). None otherwise: the run rewrites its days (a full
    refresh, a lake without Delta storage or without a last good run)."""
    from jobs.gold.touched import good_version

    name = table.table.split(".", 1)[1]
    plan = increments.planned(settings, horizon.as_of)
    last = increments.last(settings)
    version = good_version(settings, name)
    if (plan is None or last is None or version is None or horizon.refresh or horizon.lo is None
            or settings.storage != "delta" or utc(horizon.as_of) <= last.as_of
            or not lake.rows_unchanged_since(settings.table_path("gold", name), version)):
        return None
    gained: dict[str, DataFrame] = {}
    count = 0
    for key in table.inputs:
        layer, source = key.split(".")
        since = plan.silver_version(key)
        files = None if since is None else lake.appended_files(settings.table_path(layer, source), since)
        if files is None:
            log.info("%s: rewriting the days (%s changed other than by appended rows)", table.table, key)
            return None
        gained[source] = spark_io.read_files(spark, layer, source, files)
        count += len(files)
    log.info("%s: appending the sums of the silver rows the run added (%d files)", table.table, count)
    return Gained(gained, count)


def with_stamp(rows: DataFrame, table: SummedRows, horizon: Horizon) -> DataFrame:
    """Rows of `table`'s readers' columns as the table stores them: stamped with the run's as_of."""
    from jobs.gold.activity import instant

    return rows.withColumn(table.stamp, instant(horizon.as_of))

"""Silver layer: conform + dedupe bronze events into the silver tables (DESIGN §1, §5).

Each module holds pure transforms (DataFrames in, DataFrames out, as_of explicit) and a thin
`run(spark, settings, as_of)` that reads bronze (events strictly before as_of), transforms and overwrites its
silver table(s) and its own quarantine stage. Every table is recomputed from bronze, so a rerun with the same
inputs and as_of writes identical contents.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from jobs import spark_io
from storylake.settings import Settings
from storylake.writer_lock import holding_writer_lock

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

Step = Callable[["SparkSession", Settings, datetime], dict[str, int]]


def steps() -> tuple[tuple[str, Step], ...]:
    """(name, run) in dependency order: segments and relationships first, segment_viewers after view_events."""
    from jobs.silver import (
        engagements,
        navigation,
        relationships,
        segment_viewers,
        segments,
        sticker_responses,
        view_events,
    )

    return (
        ("segments", segments.run),
        ("relationships", relationships.run),
        ("view_events", view_events.run),
        ("segment_viewers", segment_viewers.run),
        ("navigation", navigation.run),
        ("sticker_responses", sticker_responses.run),
        ("engagements", engagements.run),
    )


@holding_writer_lock("silver")
def build_silver(spark: SparkSession, settings: Settings, as_of: datetime) -> dict[str, int]:
    """Run every silver job for `as_of`; returns rows per written table (quarantine counts as
    'quarantine.<table>': that stage's rows in ops.quarantine)."""
    from storylake.clock import utc

    as_of = utc(as_of)
    spark_io.remove_stale_scratch(settings)
    counts: dict[str, int] = {}
    for _, run in steps():
        counts.update(run(spark, settings, as_of))
    return counts

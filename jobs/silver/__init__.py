"""Silver layer: conform + dedupe bronze events into the silver tables (DESIGN §1, §5).

Each module holds pure transforms (DataFrames in, DataFrames out) and a thin `run` that reads bronze, transforms
and writes its silver table(s) and its own quarantine stage. The dimensions are rebuilt from their bronze events:
segments from their own horizon, relationships for the keys that new events touch. The interaction tables are
recomputed within the run's horizon (jobs/horizon.py): the rows anchored at or after it, from the bronze rows at or
after it. A rerun with the same inputs and as_of writes identical contents, and an incremental run the contents a
full refresh writes.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING

from jobs import spark_io
from jobs.lanes import job_name, module_jobs, run_jobs, timed
from storylake import increments, summed_rows
from storylake.settings import Settings
from storylake.writer_lock import holding_writer_lock

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


@holding_writer_lock("silver")
def build_silver(
    spark: SparkSession, settings: Settings, as_of: datetime, *, full_refresh: bool = False, run_id: str | None = None
) -> dict[str, int]:
    """Run every silver job for `as_of`; returns rows per written table (quarantine counts as
    'quarantine.<table>': that stage's rows written). Plans the run's horizon after the dimensions and records it
    in ops.increments for gold (`full_refresh`: recompute everything from bronze)."""
    from jobs import horizon as horizons
    from jobs.retention import reapply
    from jobs.schema_migration import conform_stored_schemas
    from jobs.silver import (
        audience_check,
        engagements,
        navigation,
        profiles,
        relationships,
        segment_viewers,
        segments,
        sticker_responses,
        touched,
        view_events,
    )
    from storylake import lake
    from storylake.clock import utc

    as_of = utc(as_of)
    spark_io.remove_stale_scratch(settings)
    drifted = conform_stored_schemas(settings)  # an upgrade changed a contract (jobs/schema_migration.py)
    if drifted and not full_refresh:
        log.warning("silver/gold tables not in their contract's schema (%s): this run is a full refresh",
                    ", ".join(f"{k}: {v}" for k, v in drifted.items()))
        full_refresh = True
    previous = _segments_version_of_last_run(settings)
    viewers_good = segment_viewers.good_versions(settings)  # before view_events writes
    summed_from = _summed_inputs(settings)  # before any of them writes
    workers = settings.job_lanes
    # a job whose slice is empty writes nothing, so it is skipped; unless a run planned for a later as_of since the
    # last good one may have written rows anchored after this as_of (rewriting the empty slice removes them), or the
    # tables are Parquet folders (each slice a folder of its own)
    skip_empty = settings.storage == "delta" and increments.attempt_after(settings, as_of) is None

    def build_segments() -> dict[str, int]:
        scope = horizons.segments_scope(spark, settings, as_of, full_refresh=full_refresh)
        # its slice [as_of, ...) empty: no segment event since the last good run, and (by the files' statistics) no
        # row a crashed run for a later as_of wrote there (segments run before the plan that would record it)
        if (skip_empty and scope.since is not None and scope.since >= as_of and not scope.patch
                and lake.nothing_from(settings.table_path("silver", "segments"), "created_at", as_of)
                and lake.nothing_from(settings.table_path("ops", "quarantine"), "anchor_at", as_of)):
            log.info("segments: nothing to recompute (no segment event since the last good run)")
            return {}
        return segments.run(spark, settings, as_of, scope.since, scope.patch)

    keyed = (view_events, sticker_responses, navigation, engagements)  # they re-decide touched keys only
    sliced = (*keyed, segment_viewers)  # they rewrite their horizon's slice

    with spark_io.scratch(settings) as materialize:
        # the relationships as the four keyed jobs' audience rules read them (once for the four): derived in the
        # relationships' lane right after them, beside the longer segments job, when a batch arrived since the last
        # run (the keyed jobs then nearly always run); else after the plan, only if a keyed job runs
        edges: list[audience_check.AudienceEdges] = []
        last = increments.last(settings)
        ahead = full_refresh or last is None or horizons.newest_batch(settings) != last.upto_batch

        def shared_edges() -> audience_check.AudienceEdges:
            with timed("audience edges", {}, log):
                return audience_check.shared_edges(
                    spark_io.read_table(spark, settings, "silver", "relationships"), materialize)

        def build_relationships() -> dict[str, int]:
            out = relationships.run(spark, settings, as_of, full_refresh=full_refresh)
            if ahead:
                edges.append(shared_edges())
            return out

        # the dimensions (segments and relationships are independent of each other), then the plan, which reads them
        counts = run_jobs([("segments", build_segments), ("relationships", build_relationships)], workers=workers,
                          logger=log, layer="silver")
        with timed("plan", counts, log):
            horizon = horizons.plan(spark, settings, as_of, full_refresh=full_refresh,
                                    previous_segments_version=previous)
            increments.record(settings, horizons.to_increment(horizon, run_id or f"silver@{as_of.isoformat()}",
                                                              summed_from), increments.PLANNED)

        def skipped(name: str) -> bool:
            return skip_empty and horizon.for_job(name).slice_is_empty

        changes, audience = None, None
        if not all(skipped(job_name(m)) for m in keyed):
            with timed("touched keys", counts, log):
                changes = touched.changes(spark, settings, horizon, materialize)  # once for the four keyed jobs
            audience = edges[0] if edges else shared_edges()

        def run(module: ModuleType, name: str) -> dict[str, int]:
            if module in sliced and skipped(name):
                log.info("%s: nothing to recompute (no change since the last good run reaches it)", name)
                return {}
            if module in keyed:
                return module.run(spark, settings, horizon.for_job(name), changes, audience)
            if module is segment_viewers:
                return module.run(spark, settings, horizon.for_job(name), changes, viewers_good)
            return module.run(spark, settings, horizon.for_job(name))

        # longest first (jobs/lanes.py); segment_viewers reads view_events; the other jobs read neither and write
        # their own tables
        counts.update(run_jobs(
            module_jobs([view_events, navigation, sticker_responses, segment_viewers, engagements, profiles], run),
            needs={job_name(segment_viewers): (job_name(view_events),)}, workers=workers, logger=log,
            layer="silver"))
    if full_refresh:  # rows a shorter retention than their inputs' had removed stay removed
        reapply(settings, "silver")
    return counts


def _summed_inputs(settings: Settings) -> str | None:
    """The versions of the silver tables gold's summed rows add up (storylake.summed_rows.INPUTS), of those the story
    insights are updated from (storylake.latest_rows.INSIGHT_INPUTS) and of gold's tables stored as restated rows
    (storylake.latest_rows) as the last good run left them, as JSON for the run's plan: gold appends the counts of
    the rows the inputs gained since (jobs/gold/ring_features.py), updates the story insights by them
    (jobs/gold/insight_deltas.py), and appends the restated rows to tables that still hold those versions' rows
    (jobs/gold/segment_insights.py). Read before any of them is written;
    None when a run since the last good one did not finish (its writes may be in them); a table without a version yet
    is recorded null."""
    from storylake import audit, latest_rows

    restated = [t.table for t in latest_rows.RESTATED_TABLES]
    keys = sorted({*summed_rows.INPUTS, *restated, *latest_rows.INSIGHT_INPUTS})
    versions = audit.versions_left(settings, keys)
    if versions is None:
        return None
    return json.dumps(versions, sort_keys=True)


def _segments_version_of_last_run(settings: Settings) -> int | None:
    """The silver.segments version the last good run left (its audited version; the current one without gates)."""
    from storylake import audit

    return audit.last_good_version(settings, "silver.segments")

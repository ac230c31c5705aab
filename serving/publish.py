# ruff: noqa: S608  -- every SQL string in this module is assembled from module constants only.
"""Publish: silver + gold Delta tables -> one read-only DuckDB serving snapshot, swapped in atomically.

Steps (DESIGN §1, §3):
  1. open every source table with delta-rs at its current version (missing table -> PublishError naming it);
  2. build the snapshot into a temp file in serving/snapshots/, reading each Delta version's data files (as
     delta-rs lists them) with DuckDB's Parquet reader (no Spark, no DuckDB delta extension; _register);
  3. lay every serving table out for its query (sort orders chosen so that DuckDB's zone maps turn each
     lookup into a scan of one row group; see LAYOUT below), record `snapshot_meta`, CHECKPOINT, close;
  4. rename the file to serving/snapshots/<id>.duckdb, then atomically replace serving/CURRENT
     (os.replace of a temp file). Anything failing before step 4 leaves CURRENT untouched;
  5. remove old snapshots beyond the newest `keep` (never the one CURRENT names).

LAYOUT (table: sort order -> query it serves)
  live_segments:     non-deleted segments still active at some instant >= as_of - TRAY_WINDOW,
                     (author_id, created_at)                            -> tray (snapshot_indexes.SegmentIndex)
  profiles:          (user_id) latest username and picture                -> names in trays and Seen By
  archived_segments: archived, non-deleted segments, (author_id, created_at DESC) -> highlights, archive
                     (history + warm + recent parts, serving/insights_history.py: the archive is kept for ever)
  viewer_pairs:      every relationship interval between a viewer and an author, as the audience flag it
                     sets (audience.RELATION_FLAGS), (viewer_id, author_id) -> tray candidates + audience flags
                     (a view over a base shared between snapshots and this snapshot's changes, like ring_features:
                     serving/shared_bases.py)
  private_intervals: (user_id)                                          -> author_private flag
  viewer_seen:       (viewer_id, segment_id)                            -> ring seen state
                     (like segment_viewers: a view over a base shared between snapshots, from
                     silver.segment_viewers, and the rows it appended since: serving/seen_bases.py)
  ring_features:     (viewer_id, author_id)                             -> tray score
  segment_catalog:   the segments created within SEEN_BY_LIFETIME of as_of or with viewer rows (silver ∪ gold ∪
                     viewers), (segment_id), with its viewer-row count, gold reach and the author's blocks of its
                     viewers                                           -> Seen By (older ones: segment_insights)
  segment_viewers:   (segment_id, first_viewed_at DESC, viewer_id)      -> Seen By keyset pages
  segment_insights, story_insights, author_daily_insights, author_hourly_insights (the last 2 days),
  sticker_results, question_inbox: (author_id, ...)                     -> insights()
                     (all but the hourly ones: history + warm + recent parts, serving/insights_history.py)
ART indexes were measured and not kept: with these sort orders DuckDB answers the point lookups from
zone maps faster than through an ART index (which it does not use under ORDER BY ... LIMIT anyway),
and building them on 20M rows costs publish time and memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import secrets
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from serving import insights_history, recent_part, seen_bases, shared_bases
from serving.snapshot import (
    FORMAT_VERSION,
    SNAPSHOT_SUFFIX,
    current_id,
    current_pointer,
    format_of,
    snapshot_path,
    snapshots_dir,
)
from storylake import audit, contracts, failpoints, lake, latest_rows, merge_on_read
from storylake.clock import iso, utc
from storylake.errors import StorylakeError
from storylake.rules import audience
from storylake.rules.lifetimes import SEEN_BY_LIFETIME, expires_at_sql
from storylake.rules.views import OTHERS_VIEW_SQL
from storylake.settings import Settings
from storylake.writer_lock import holding_writer_lock

log = logging.getLogger(__name__)
KEEP_SNAPSHOTS = 3


class PublishError(StorylakeError, RuntimeError):
    """Publishing cannot proceed (the message names the source table and the problem)."""


# Source tables and the columns the snapshot reads from each (checked before building).
SOURCES: dict[str, tuple[str, ...]] = {
    "silver.segments": (
        "segment_id", "author_id", "media_id", "media_type", "audience", "duration_ms", "created_at", "expires_at",
        "story_id", "frame_index", "is_deleted", "is_archived", "highlight_id",
    ),
    "silver.relationships": ("relation", "user_id", "other_user_id", "valid_from", "valid_to"),
    # the changes half of silver.relationships (storylake.merge_on_read); a lake written before it has none
    "silver.relationships_changes": ("relation", "user_id", "other_user_id", "valid_from", "valid_to", "removed"),
    "silver.segment_viewers": (
        "segment_id", "viewer_id", "author_id", "first_viewed_at", "max_completion_pct", "first_view_source",
        "segment_created_at", "view_count",
    ),
    "silver.profiles": ("user_id", "username", "profile_picture_media_id"),
    "silver.sticker_responses": (
        "sticker_id", "segment_id", "author_id", "user_id", "sticker_type", "text", "responded_at",
    ),
    "gold.segment_insights": ("segment_id", "author_id", "created_at", "expires_at", "is_deleted", "reach"),
    "gold.story_insights": ("story_id", "author_id", "story_start"),
    "gold.author_daily_insights": ("author_id", "day"),
    "gold.author_hourly_insights": ("author_id", "hour"),
    "gold.sticker_results": ("sticker_id", "segment_id", "author_id"),
    "gold.ring_features": (
        "viewer_id", "author_id", "dm_count_30d", "likes_given_30d", "comments_given_30d", "story_replies_30d",
        "as_of",
    ),
    # the changes half of gold.ring_features (storylake.merge_on_read); a lake written before it has none
    "gold.ring_features_changes": ("viewer_id", "author_id", "as_of", "removed"),
}
# Sources a lake may lack: read as empty (in their contract's schema) when missing or never audited
OPTIONAL_SOURCES = frozenset({"gold.ring_features_changes", "silver.relationships_changes"})


def _src(key: str) -> str:
    """DuckDB view name of a registered source dataset."""
    return "src_" + key.replace(".", "_")


# the author's blocks of a viewer (Seen By hides the viewer while one holds)
_BLOCKED = audience.relation_flag("blocked_by_author")
SEG = _src("silver.segments")
REL = shared_bases.REL  # the relationship rows private_intervals and the catalog read (serving/shared_bases.py)
PR = _src("silver.profiles")
SI = _src("gold.segment_insights")
STI = _src("gold.story_insights")
ADI = _src("gold.author_daily_insights")
AHI = _src("gold.author_hourly_insights")
STR = _src("gold.sticker_results")
VIEW_SOURCES = contracts.get("silver.segment_viewers").column("first_view_source").enum or ()
# live_segments keeps the non-deleted segments still active at some instant >= as_of - TRAY_WINDOW, so trays
# can be served for any `now` from as_of - TRAY_WINDOW on (archived history does not grow the tray index). The
# window is Seen By's lifetime, as the segment catalog's: a snapshot answers trays and Seen By lists for the same
# instants. (It was 7 days: at 10M views a day that copied 8 days of segments, ~11.6M, into every hourly snapshot and
# every API worker's tray index, against 3 days, ~4.3M, now, to serve instants days before the snapshot.)
TRAY_WINDOW = SEEN_BY_LIFETIME
HOURLY_WINDOW = timedelta(days=2)  # author_hourly_insights published: today's and yesterday's hours

# (serving table, SELECT producing it). Every statement is built from constants only (no user values);
# $window_start is a bound parameter. The long-lived tables (segment, story, author-day insights, sticker results and
# archived segments) are built by serving/insights_history.py: history and warm rows shared between snapshots + this
# publish's recent rows; viewer_pairs and ring_features by serving/shared_bases.py, viewer_seen and segment_viewers by
# serving/seen_bases.py. sv is a temp view of silver.segment_viewers' keys (seen_bases.ALL_ROWS), rel a temp table
# of the relationship rows these steps read (shared_bases.REL).
STEPS: tuple[tuple[str, str], ...] = (
    ("live_segments", f"""
        SELECT segment_id, author_id, story_id, media_id, media_type, audience, duration_ms, created_at, expires_at
        FROM {SEG} WHERE NOT coalesce(is_deleted, false) AND expires_at > $window_start
        ORDER BY author_id, created_at, segment_id"""),
    ("profiles", f"SELECT user_id, username, profile_picture_media_id FROM {PR} ORDER BY user_id"),
    ("private_intervals", f"""
        SELECT user_id, valid_from, valid_to FROM {REL} WHERE relation = '{audience.PRIVATE_RELATION}'
        ORDER BY user_id, valid_from"""),
    # The segments Seen By can list: those created at/after $catalog_start (as_of - SEEN_BY_LIFETIME) and those
    # with viewer rows, from silver, gold insights and the viewer rows themselves; with the block intervals of its
    # author toward its viewers (blocked_viewers, NULL for nearly every segment): Seen By hides a viewer the author
    # blocks at `now` without another lookup. Older segments without viewer rows (years of them: insights are kept
    # 2 years) are not copied every hour: Seen By answers them from segment_insights (seen_by.older_segment).
    # v (one row per segment with viewer rows) is computed once and is what s and g look their segments up in: a
    # lookup in sv itself (every viewer row, ~7.5M at 10M views a day) built its hash table twice (2.5-2.8 s
    # against 2.0-2.2 s for the step there).
    ("segment_catalog", f"""
        WITH v AS MATERIALIZED (
                   SELECT segment_id, any_value(author_id) AS author_id, min(segment_created_at) AS created_at,
                          count(*) FILTER (WHERE {OTHERS_VIEW_SQL}) AS viewer_rows
                   FROM sv GROUP BY segment_id),
             s AS (SELECT segment_id, author_id, created_at, expires_at, is_deleted FROM {SEG}
                   WHERE created_at >= $catalog_floor
                     AND (created_at >= $catalog_start OR segment_id IN (SELECT segment_id FROM v))),
             g AS (SELECT segment_id, author_id, created_at, expires_at, is_deleted, reach FROM {SI}
                   WHERE created_at >= $catalog_floor
                     AND (created_at >= $catalog_start OR segment_id IN (SELECT segment_id FROM v))),
             b AS (SELECT w.segment_id,
                          list(struct_pack(viewer_id := w.viewer_id, valid_from := k.valid_from,
                                           valid_to := k.valid_to)) AS blocked_viewers
                   FROM (SELECT * FROM sv WHERE {OTHERS_VIEW_SQL}) w JOIN {REL} k
                     ON k.relation = '{_BLOCKED.relation}' AND k.{_BLOCKED.author_column} = w.author_id
                    AND k.{_BLOCKED.viewer_column} = w.viewer_id
                   GROUP BY w.segment_id),
             c AS (
                SELECT coalesce(s.segment_id, g.segment_id, v.segment_id) AS segment_id,
                       coalesce(s.author_id, g.author_id, v.author_id) AS author_id,
                       coalesce(s.created_at, g.created_at, v.created_at) AS created_at,
                       coalesce(s.expires_at, g.expires_at, {expires_at_sql("v.created_at")}) AS expires_at,
                       coalesce(s.is_deleted, g.is_deleted, false) AS is_deleted,
                       coalesce(v.viewer_rows, 0) AS viewer_rows,
                       g.reach AS gold_reach
                FROM s FULL OUTER JOIN g ON s.segment_id = g.segment_id
                       FULL OUTER JOIN v ON coalesce(s.segment_id, g.segment_id) = v.segment_id)
        SELECT c.*, b.blocked_viewers FROM c LEFT JOIN b ON b.segment_id = c.segment_id
        ORDER BY segment_id"""),
    # today so far vs the same hours of yesterday (the dashboards' "Today"): the hours of the last two days
    ("author_hourly_insights", f"SELECT * FROM {AHI} WHERE hour >= $hours_start ORDER BY author_id, hour"),
)


@dataclass
class PublishReport:
    snapshot_id: str
    path: Path
    as_of: datetime
    built_at: datetime
    duration_s: float
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)  # table -> {version, rows}
    tables: dict[str, int] = field(default_factory=dict)  # serving table -> rows
    step_seconds: dict[str, float] = field(default_factory=dict)  # build step -> seconds
    removed: list[str] = field(default_factory=list)
    reach_mismatches: int = 0  # segments whose Seen By row count differs from gold reach
    cpu_s: float = 0.0  # process CPU time of the publish (all DuckDB threads)
    history: dict[str, Any] = field(default_factory=dict)  # insights_history.describe(): reused or written, rows

    def __str__(self) -> str:
        lines = [
            f"published snapshot {self.snapshot_id} (as of {self.as_of.isoformat()}) in {self.duration_s:.2f} s",
            *(f"  {t}: version {s['version']}, {s['rows']} rows" for t, s in sorted(self.sources.items())),
        ]
        if self.reach_mismatches:
            lines.append(f"  WARNING: {self.reach_mismatches} segments with Seen By rows != gold reach")
        if self.removed:
            lines.append(f"  removed old snapshots: {', '.join(self.removed)}")
        return "\n".join(lines)


def new_snapshot_id(built_at: datetime) -> str:
    """Sortable by build time: <built_at UTC, microseconds>-<random>."""
    return f"{built_at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"


class PublishWithheld(PublishError):
    """The gate a snapshot was built beside failed: the snapshot was discarded and CURRENT is unchanged."""


class _GateAuditedOtherVersions(Exception):
    """The gate beside which a snapshot was built passed other versions than the snapshot read."""


@holding_writer_lock("publish")
def publish(settings: Settings, as_of: datetime, *, keep: int = KEEP_SNAPSHOTS,
            beside_gate: Callable[[], None] | None = None) -> PublishReport:
    """Build a serving snapshot of the tables consumers may read (storylake.audit) and make it CURRENT.

    `beside_gate`: the gold tables' gate is still running (write-audit-publish's audit, in another thread). The
    snapshot is built meanwhile from gold's latest versions (silver's audited ones) and becomes CURRENT only when
    beside_gate() has returned (it waits for the gate and raises PublishWithheld when it failed: the snapshot is
    then discarded) and the gate recorded exactly the versions the snapshot read; if it recorded others, the
    snapshot is discarded and built again from the audited versions. So a consumer never sees a version that did
    not pass, and the hourly run's gold gate and publish overlap instead of following each other."""
    if beside_gate is not None:
        try:
            return _publish(settings, utc(as_of), keep, beside_gate)
        except _GateAuditedOtherVersions as exc:
            log.warning("publish: %s; building again from the audited versions", exc)
    return _publish(settings, utc(as_of), keep, None)


def _publish(settings: Settings, as_of: datetime, keep: int, beside_gate: Callable[[], None] | None
             ) -> PublishReport:
    t0, c0 = time.perf_counter(), time.process_time()
    sdir = snapshots_dir(settings)
    sdir.mkdir(parents=True, exist_ok=True)
    with _publish_lock(settings):
        _remove_temp_files(sdir)
        sources = _open_sources(settings, ahead=beside_gate is not None)
        _refuse_unfinished_run(settings)
        built_at = datetime.now(UTC)
        sid = new_snapshot_id(built_at)
        tmp = sdir / f".{sid}{SNAPSHOT_SUFFIX}.tmp"
        try:
            prior = _prior_history(settings)
            prepared = insights_history.read_prepared(settings)
            tables, mismatches, steps, history = _build(settings, tmp, sources, sid, as_of, built_at, prior,
                                                        [] if prepared is None else [prepared])
            if beside_gate is not None:
                t = time.perf_counter()
                beside_gate()
                steps["wait for the gate"] = round(time.perf_counter() - t, 3)
                _check_audited(settings, sources)
            final = snapshot_path(settings, sid)
            os.replace(tmp, final)
            _fsync_dir(sdir)
            failpoints.reach("publish.before_current")
            _point_current(settings, sid)
        except BaseException:
            for p in (tmp, Path(f"{tmp}.wal")):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            with contextlib.suppress(OSError):  # history files this attempt wrote (no kept snapshot reads them)
                _remove_unreferenced_history(settings)
            raise
        try:
            removed = _remove_old(settings, keep)
        except OSError as exc:  # the new snapshot is already serving; cleanup is retried by the next publish
            log.warning("publish %s: could not remove old snapshots: %s", sid, exc)
            removed = []
    report = PublishReport(
        snapshot_id=sid,
        path=final,
        as_of=as_of,
        built_at=built_at,
        duration_s=time.perf_counter() - t0,
        sources={k: {"version": v, "rows": n} for k, (_ds, v, n, _dt) in sources.items()},
        tables=tables,
        step_seconds=steps,
        removed=removed,
        reach_mismatches=mismatches,
        cpu_s=round(time.process_time() - c0, 2),
        history=history,
    )
    if mismatches:
        log.warning("publish %s: %d segments whose Seen By row count != gold reach", sid, mismatches)
    # where the publish's time went, longest first (an operator's first question when an hour runs long)
    log.info("publish %s: %.1fs (%s)", sid, report.duration_s,
             ", ".join(f"{name} {sec:.2f}s" for name, sec in sorted(steps.items(), key=lambda kv: -kv[1])[:8]))
    return report


@dataclass
class PrepareReport:
    """What prepare_ahead wrote: per grid (the as_of it prepared for) the history periods and the files written."""

    as_of: list[datetime]
    periods: int  # distinct periods recorded
    written: dict[str, int]  # serving table -> period files written (the others were reused)
    rows_written: dict[str, int]  # serving table -> rows in the files written
    removed: list[str]  # history files no snapshot and no longer the record refer to, removed
    duration_s: float
    seen_by_rows_written: int = 0  # rows of the Seen By tables' base written (0: an existing one holds the rows)

    def as_dict(self) -> dict[str, Any]:
        return {"as_of": [iso(t) for t in self.as_of], "periods": self.periods, "written": self.written,
                "rows_written": self.rows_written, "seen_by_rows_written": self.seen_by_rows_written,
                "removed": self.removed, "duration_s": round(self.duration_s, 2)}


def prepare_ahead(settings: Settings, now: datetime) -> PrepareReport:
    """Write ahead the history period files (serving/insights_history.py) that the publishes of today and tomorrow
    (UTC, as of `now` and `now` + 1 day) will attach, from the versions consumers may read, and record them
    (insights_history.write_prepared): the daily maintenance's share of publish. So the hourly publish does not
    copy a month of rows when a month leaves the cut's month (its days become one month file), nor rewrite the
    first period after retention trimmed it: a publish attaches a prepared file of the same bounds whose rows are
    still the ones it holds (checked as for the previous snapshot's: same Delta files, or none added or removed
    where it may hold rows, or the same fingerprint), and writes its own otherwise. The warm tier and the recent
    rows, which the hourly runs change, are left to publish. Holds the publish lock while it writes (the
    maintenance runs at 03:30 UTC, between the hourly runs): a publish waits for it."""
    now = utc(now)
    t0 = time.perf_counter()
    parts = insights_history.PARTS
    as_ofs = [now, now + timedelta(days=1)]
    with _publish_lock(settings):
        if current_id(settings) is None:  # nothing published yet: the first publish writes every file it needs
            log.info("prepared history: no serving snapshot yet, nothing to prepare")
            return PrepareReport(as_ofs, 0, dict.fromkeys(parts, 0), dict.fromkeys(parts, 0), [],
                                 time.perf_counter() - t0)
        sources = _open_sources(settings)
        wanted = {part.source for part in parts.values()}
        prior = _prior_history(settings)
        prepared = insights_history.read_prepared(settings)
        versions = {key: (dt.metadata().id, v) for key, (_ds, v, _n, dt) in sources.items() if key in wanted}
        grids: list[insights_history.Prior] = []
        written = dict.fromkeys(parts, 0)
        rows_written = dict.fromkeys(parts, 0)
        spill = settings.serving_dir / ".duckdb_tmp"
        seen_source = _seen_source(settings, sources)
        with duckdb.connect(config={"temp_directory": str(spill),
                                    "memory_limit": f"{settings.publish_memory_mb}MB"}) as con:
            con.execute("SET enable_progress_bar = false")
            con.execute("SET GLOBAL TimeZone = 'UTC'")
            # every source first: a relation registered after a statement whose result is still open is refused
            for key in wanted | {latest_rows.SEGMENT_VIEWERS.table}:
                ds, _v, _n, dt = sources[key]
                _register_source(con, key, ds, dt)
            _create_view_source_type(con)
            views = {name: _src(part.source) for name, part in parts.items()}
            dts = {name: sources[part.source][3] for name, part in parts.items()}
            cols = {name: insights_history.columns_of(part, list(sources[part.source][0].schema.names))
                    for name, part in parts.items()}
            for as_of in as_ofs:
                also = [*([] if prepared is None else [prepared]), *grids]
                history = insights_history.ensure(settings, con, views, dts, cols, as_of, prior, also, warm=False)
                for tier in history.tiers.values():
                    for name, kept in tier.reused.items():
                        if not kept:
                            written[name] += 1
                            rows_written[name] += tier.rows[name]
                grids.append(insights_history.as_prior(history, versions))
            # the Seen By tables' base of the version consumers read now (after the daily retention removed rows,
            # the hourly publishes would otherwise write it; serving/seen_bases.py)
            seen = seen_bases.ensure(settings, con, seen_source, [prior, prepared])
        recorded = insights_history.write_prepared(settings, grids, {seen_bases.NAME: seen.base})
        removed = _remove_unreferenced_history(settings)
    report = PrepareReport(as_ofs, len(recorded), written, rows_written, removed, time.perf_counter() - t0,
                           0 if seen.reused else seen.base.rows)
    log.info("prepared history ahead for %s: %d periods, files written %s (%s rows), Seen By base %s (%d rows), "
             "%d unreferenced removed, in %.1fs", ", ".join(iso(t) for t in as_ofs), report.periods, written,
             rows_written, "reused" if seen.reused else "written", seen.base.rows, len(removed), report.duration_s)
    return report


# --- internals ---------------------------------------------------------------------------------


def _open_sources(settings: Settings, *, ahead: bool = False) -> dict[str, tuple[Any, int, int, DeltaTable]]:
    """{table: (pyarrow dataset, delta version, row count, DeltaTable)} at the versions consumers may read
    (storylake.audit: the newest versions that passed their quality gates; `ahead`: gold's latest versions, which
    its gate is auditing); PublishError naming the first missing table/column."""
    out: dict[str, tuple[Any, int, int, DeltaTable]] = {}
    absent = {key for key in OPTIONAL_SOURCES if not lake.exists(settings.table_path(*key.split(".")))
              or (not (ahead and key.startswith("gold.")) and audit.last_good_version(settings, key) is None)}
    gated = [key for key in SOURCES if not (ahead and key.startswith("gold.")) and key not in absent]
    try:
        versions = audit.consumer_versions(settings, gated)
    except audit.NotAuditedError as exc:
        raise PublishError(str(exc)) from exc
    for key, needed in SOURCES.items():
        if key in absent:
            continue
        layer, name = key.split(".")
        path = settings.table_path(layer, name)
        if not (path / "_delta_log").is_dir():
            raise PublishError(f"source table {key} is missing (no Delta table at {path}); run the pipeline first")
        try:
            dt = DeltaTable(str(path), version=versions.get(key))
        except TableNotFoundError as exc:
            raise PublishError(f"source table {key} is missing (no Delta table at {path})") from exc
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dt.to_pyarrow_dataset()
        missing = [c for c in needed if c not in ds.schema.names]
        if missing:
            raise PublishError(f"source table {key} lacks column(s) {', '.join(missing)} (at {path})")
        out[key] = (ds, dt.version(), ds.count_rows(), dt)
    return out


def _check_audited(settings: Settings, sources: dict[str, tuple[Any, int, int, DeltaTable]]) -> None:
    """_GateAuditedOtherVersions unless every source's version is the one consumers may now read."""
    try:
        audited = audit.consumer_versions(settings, list(sources))
    except audit.NotAuditedError as exc:
        raise _GateAuditedOtherVersions(str(exc)) from exc
    other = {k: (v, audited[k]) for k, (_ds, v, _n, _dt) in sources.items() if audited[k] != v}
    if other:
        raise _GateAuditedOtherVersions("the gate passed other versions than the snapshot read: " + ", ".join(
            f"{k} read {read}, audited {good}" for k, (read, good) in sorted(other.items())))


def _refuse_unfinished_run(settings: Settings) -> None:
    """PublishError when the lake has no quality gates (so consumers read the latest versions) and a pipeline run
    planned silver/gold after the last finished one (ops.increments) without finishing: its tables may be half
    written. With gates, publish reads the audited versions, which a half-done run never changes."""
    from storylake import audit, increments

    if audit.enabled(settings):
        return
    pending = increments.unfinished(settings)
    if pending is not None:
        raise PublishError(f"silver/gold of run {pending.run_id} (as of {iso(pending.as_of)}) did not finish: rerun "
                           "the pipeline (storylake run) before publishing")


def _merged_source(settings: Settings, sources: dict[str, tuple[Any, int, int, DeltaTable]],
                   table: merge_on_read.MergedTable) -> shared_bases.Source:
    """A merge-on-read source as registered (serving/shared_bases.py); its changes without a row when the lake has
    none (they are registered empty then)."""
    changes = sources.get(table.changes)
    return shared_bases.Source(_src(table.key), _src(table.changes), table.path(settings), sources[table.key][3],
                               changes is not None and changes[2] > 0)


def _create_view_source_type(con: duckdb.DuckDBPyConnection) -> None:
    sources_sql = ", ".join(f"'{v}'" for v in VIEW_SOURCES)
    con.execute(f"CREATE TYPE {seen_bases.VIEW_SOURCE_TYPE} AS ENUM ({sources_sql})")


def _seen_source(settings: Settings, sources: dict[str, tuple[Any, int, int, DeltaTable]]) -> seen_bases.Source:
    """silver.segment_viewers as registered (the Seen By tables' source)."""
    key = latest_rows.SEGMENT_VIEWERS.table
    return seen_bases.Source(_src(key), settings.table_path(*key.split(".")), sources[key][3])


def _register_source(con: duckdb.DuckDBPyConnection, key: str, ds: Any, dt: DeltaTable) -> None:
    """The view _src(key) over a source table's version (_register). A table stored as restated rows
    (storylake.latest_rows: gold's segment and story insights) is registered as stored under <view>_stored, and the
    view holds the rows its readers see: each key's latest row, without the storage columns (flag, tombstone
    mark)."""
    growing = latest_rows.restated(key)
    if growing is None:
        _register(con, _src(key), ds, dt)
        return
    stored, tops = f"{_src(key)}_stored", f"{_src(key)}_tops"
    _register(con, stored, ds, dt)
    # the keys' latest counters once, not in every scan of the view (publish scans the insights four or five times)
    con.execute(f"CREATE TEMP TABLE {tops} AS {latest_rows.duckdb_tops_sql(growing, stored)}")
    con.execute(f"CREATE TEMP VIEW {_src(key)} AS {latest_rows.duckdb_sql(growing, stored, tops=tops)}")


def _unregister_source(con: duckdb.DuckDBPyConnection, key: str) -> None:
    if latest_rows.restated(key) is None:
        con.unregister(_src(key))
        return
    con.execute(f"DROP VIEW {_src(key)}")
    con.execute(f"DROP TABLE {_src(key)}_tops")
    con.unregister(f"{_src(key)}_stored")


def _register(con: duckdb.DuckDBPyConnection, name: str, ds: Any, dt: DeltaTable) -> None:
    """The view `name` over a source table's version: DuckDB's own Parquet reader on the data files delta-rs lists
    for it (multi-threaded, projections and zone-map filters pushed into the files: 0.4-0.5 s less per publish of a
    7-day 1M/day lake than scanning the pyarrow dataset); the pyarrow dataset when the version has no file, or when
    its protocol has a reader feature (deletion vectors, column mapping) that plain Parquet files do not carry."""
    files = dt.file_uris()
    if files and dt.protocol().min_reader_version < _READER_FEATURES_VERSION:
        con.read_parquet(files, union_by_name=True).to_view(name)
    else:
        con.register(name, ds)


# Delta's reader protocol version from which a table may carry reader features (deletion vectors, column mapping)
_READER_FEATURES_VERSION = 2


def _create_table(con: duckdb.DuckDBPyConnection, name: str, select_sql: str, params: dict[str, Any]) -> int:
    used = {k: v for k, v in params.items() if f"${k}" in select_sql}
    con.execute(f"CREATE TABLE {name} AS {select_sql}", used or None)
    return int(con.execute(f"SELECT count(*) FROM {name}").fetchone()[0])


def _prior_history(settings: Settings) -> insights_history.Prior | None:
    """The history the CURRENT snapshot attaches (what this publish may reuse). PublishError when that snapshot is of
    a newer format than this code writes: its history and warm files are not this code's to reuse or remove (upgrade
    the pipeline instead of rolling it back)."""
    sid = current_id(settings)
    if sid is None or not snapshot_path(settings, sid).exists():
        return None
    try:
        con = duckdb.connect(str(snapshot_path(settings, sid)), read_only=True)
    except (duckdb.Error, OSError):
        return None
    try:
        fmt = format_of(con)
        if fmt is not None and fmt > FORMAT_VERSION:
            raise PublishError(f"the serving snapshot CURRENT names ({sid}) has format {fmt}, newer than this "
                               f"publish's {FORMAT_VERSION}: publish with the code that wrote it or newer")
        return insights_history.previous(con)
    finally:
        con.close()


def _build(
    settings: Settings, tmp: Path, sources: dict[str, tuple[Any, int, int, DeltaTable]], sid: str, as_of: datetime,
    built_at: datetime, prior: insights_history.Prior | None, prepared: list[insights_history.Prior],
) -> tuple[dict[str, int], int, dict[str, float], dict[str, Any]]:
    steps: dict[str, float] = {}
    # the spill folder is a config value, never pasted into SQL (a lake path may hold any character)
    con = duckdb.connect(str(tmp), config={"preserve_insertion_order": True,
                                           "memory_limit": f"{settings.publish_memory_mb}MB",
                                           "temp_directory": str(tmp.parent / ".duckdb_tmp")})
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute("SET GLOBAL TimeZone = 'UTC'")
        for key, (ds, _v, _n, dt) in sources.items():
            _register_source(con, key, ds, dt)
        for key in OPTIONAL_SOURCES - sources.keys():  # a lake without it: empty, in its contract's schema
            con.register(_src(key), contracts.get(key).arrow_schema().empty_table())
        _create_view_source_type(con)
        t = time.perf_counter()
        # the Seen By tables' base: a previous snapshot's or the prepared one while silver.segment_viewers only
        # appended rows since (serving/seen_bases.py), else written now
        seen = seen_bases.ensure(settings, con, _seen_source(settings, sources), [prior, *prepared])
        steps["seen_by base"] = time.perf_counter() - t
        t = time.perf_counter()
        ring, relationships = _merged_source(settings, sources, merge_on_read.RING_FEATURES), _merged_source(
            settings, sources, merge_on_read.RELATIONSHIPS)
        bases, bases_kept = shared_bases.ensure(settings, con, ring, relationships, prior)
        bases[seen_bases.NAME], bases_kept[seen_bases.NAME] = seen.base, seen.reused
        steps["shared bases"] = time.perf_counter() - t
        t = time.perf_counter()
        parts = insights_history.PARTS
        views = {name: _src(part.source) for name, part in parts.items()}
        columns = {name: insights_history.columns_of(part, list(sources[part.source][0].schema.names))
                   for name, part in parts.items()}
        history = insights_history.ensure(
            settings, con, views, {name: sources[part.source][3] for name, part in parts.items()}, columns, as_of,
            prior, prepared)
        steps["insights history"] = time.perf_counter() - t
        t = time.perf_counter()
        recents, recent_report = recent_part.ensure(settings, con, history, views, columns, prior)
        history = dataclasses.replace(history, recent=recents)
        recent = insights_history.attach_and_union(con, settings, history, bases)
        steps["insights recent"] = time.perf_counter() - t
        tables: dict[str, int] = {name: history.stored_rows(name) + recent[name] for name in parts}
        merged_rows, merged_steps = shared_bases.create(con, insights_history.aliases(history, bases), bases, ring,
                                                        relationships)
        tables.update(merged_rows)
        steps.update(merged_steps)
        seen_rows, seen_steps = seen_bases.create(con, insights_history.aliases(history, bases)[seen.base.id], seen)
        tables.update(seen_rows)
        steps.update(seen_steps)
        params = {"window_start": as_of - TRAY_WINDOW, "hours_start": as_of - HOURLY_WINDOW,
                  "catalog_start": as_of - SEEN_BY_LIFETIME}
        # every segment with viewer rows was created at/after the earliest segment_created_at they hold: a bound the
        # Parquet scans of silver.segments and gold.segment_insights prune their files and row groups by, so the
        # catalog reads the last days, not years of insights (segment_viewers has a retention, insights have 2 years)
        earliest = con.execute("SELECT min(segment_created_at) FROM sv").fetchone()[0]
        params["catalog_floor"] = params["catalog_start"] if earliest is None else min(
            params["catalog_start"], earliest)
        for name, sql in STEPS:
            t = time.perf_counter()
            tables[name] = _create_table(con, name, sql, params)
            steps[name] = time.perf_counter() - t
        con.execute(f"DROP VIEW {seen_bases.ALL_ROWS}")
        con.execute(f"DROP TABLE {REL}")
        history_report = {**insights_history.describe(history, recent), "recent_made": recent_report,
                          "bases": {name: b.id for name, b in bases.items()},
                          "bases_reused": sorted(name for name, kept in bases_kept.items() if kept)}
        mismatches = int(
            con.execute(
                "SELECT count(*) FROM segment_catalog WHERE gold_reach IS NOT NULL AND gold_reach <> viewer_rows "
                "AND viewer_rows > 0"
            ).fetchone()[0]
        )
        con.execute(
            "CREATE TABLE snapshot_meta (snapshot_id VARCHAR, format_version INTEGER, as_of TIMESTAMPTZ, "
            "built_at TIMESTAMPTZ, source_table VARCHAR, delta_version BIGINT, row_count BIGINT, "
            "reach_mismatches BIGINT, tray_window_start TIMESTAMPTZ, table_id VARCHAR)"
        )
        con.executemany(
            "INSERT INTO snapshot_meta VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[sid, FORMAT_VERSION, as_of, built_at, key, v, n, mismatches, as_of - TRAY_WINDOW,
              dt.metadata().id]
             for key, (_ds, v, n, dt) in sources.items()],
        )
        # the key that signs this snapshot's pagination cursors (serving/cursor.py)
        con.execute("CREATE TABLE snapshot_keys (cursor_key BLOB)")
        con.execute("INSERT INTO snapshot_keys VALUES (?)", [secrets.token_bytes(32)])
        for key in SOURCES:
            _unregister_source(con, key)
        insights_history.detach(con, history, bases)
        t = time.perf_counter()
        con.execute("CHECKPOINT")
        steps["checkpoint"] = time.perf_counter() - t
    finally:
        con.close()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    return tables, mismatches, {k: round(v, 3) for k, v in steps.items()}, history_report


def _point_current(settings: Settings, sid: str) -> None:
    pointer = current_pointer(settings)
    tmp = pointer.with_name(f".{pointer.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(sid + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, pointer)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(pointer.parent)


def _remove_old(settings: Settings, keep: int) -> list[str]:
    """Delete snapshots beyond the newest `keep` (ids sort by build time), never the one CURRENT names, then the
    history files no remaining snapshot attaches."""
    removed = _remove_old_snapshots(settings, keep)
    _remove_unreferenced_history(settings)
    return removed


def _remove_unreferenced_history(settings: Settings) -> list[str]:
    """Delete the history files no kept snapshot attaches; none while a kept snapshot is of a newer format than this
    code writes (it may attach files this code cannot see it refer to). Each kept snapshot is opened once."""
    referenced: set[str] = set()
    for path in snapshots_dir(settings).glob(f"*{SNAPSHOT_SUFFIX}"):
        try:
            con = duckdb.connect(str(path), read_only=True)
        except (duckdb.Error, OSError):
            continue
        try:
            fmt = format_of(con)
            if fmt is not None and fmt > FORMAT_VERSION:
                log.warning("publish: not removing history files: snapshot %s has format %d, newer than %d",
                            path.name, fmt, FORMAT_VERSION)
                return []
            found = insights_history.previous(con)
        finally:
            con.close()
        if found is not None:
            referenced.update(found.aliases)
    prepared = insights_history.read_prepared(settings)  # the files written ahead for the next publishes
    if prepared is not None:
        referenced.update(prepared.aliases)
    return insights_history.remove_unreferenced(settings, referenced)


def _remove_old_snapshots(settings: Settings, keep: int) -> list[str]:
    current = current_id(settings)
    ids = sorted(p.name[: -len(SNAPSHOT_SUFFIX)] for p in snapshots_dir(settings).glob(f"*{SNAPSHOT_SUFFIX}"))
    removed = []
    for sid in ids[: max(0, len(ids) - keep)]:
        if sid == current:
            continue
        with contextlib.suppress(FileNotFoundError):
            snapshot_path(settings, sid).unlink()
            removed.append(sid)
    return removed


def _remove_temp_files(sdir: Path) -> None:
    """Leftovers of a publish that crashed (we hold the publish lock, so none is in progress)."""
    for p in sdir.glob(".*.tmp*"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


@contextlib.contextmanager
def _publish_lock(settings: Settings) -> Iterator[None]:
    lock_path = settings.serving_dir / ".publish.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""Write-audit-publish: which silver and gold table versions consumers may read.

Jobs write silver and gold tables in place (new Delta versions); a quality gate then validates each table at the
version it finds and, when it passes, records (table, version, as_of) in ops.audited_versions. Consumers never read
"the latest version": serving's publish and the ranking export read every table at its newest *audited* version,
and the lake watermark (what the hourly DAG and the export DAG wait for) is the newest as_of whose gold passed.
A failed gate records nothing, so a bad build stays invisible: consumers keep reading the versions that passed
before and the watermark does not move; the next good run supersedes the bad versions.

Why pinned versions rather than staging tables: Delta keeps every version anyway (time travel), so pinning costs one
small ops row per table and run, where staging would copy every table twice per run. Vacuum keeps 7 days of
versions, so a pin older than that (a week of failing gates) would lose its files: the operator is alerted long
before by the failed runs.

A lake where no gate ever ran (`storylake run --no-gate`, tests that build tables by hand) has no
ops.audited_versions table: there consumers read the latest versions and the watermark is the newest successful
gold build, as before write-audit-publish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from storylake import increments, lake
from storylake.errors import StorylakeError
from storylake.settings import Settings

TABLE = "ops.audited_versions"


class NotAuditedError(StorylakeError, LookupError):
    """A consumer asked for a table that no gate has passed yet (the message names it)."""


def _path(settings: Settings) -> Path:
    return settings.table_path(*TABLE.split("."))


def enabled(settings: Settings) -> bool:
    """The lake runs write-audit-publish: a gate has started on it at least once."""
    return lake.exists(_path(settings))


def start(settings: Settings) -> None:
    """Called when a gate starts: from then on consumers read audited versions only (creates the empty table)."""
    if not enabled(settings):
        lake.write_table(settings, TABLE, [], mode="append")


def record(settings: Settings, run_id: str, layer: str, as_of: datetime | None, versions: Mapping[str, int]) -> None:
    """The gate of `layer` passed over these table versions: consumers may read them."""
    now = datetime.now(UTC)
    rows = [{"run_id": run_id, "layer": layer, "table_key": key, "version": v, "as_of": as_of, "audited_at": now}
            for key, v in sorted(versions.items())]
    lake.write_table(settings, TABLE, rows, mode="append")


def carry_forward(settings: Settings, paths: Mapping[str, Path]) -> dict[str, int]:
    """Record as good the current version of each table (contract key -> Delta path) that holds exactly its last good
    version's rows: every commit since only rearranged files (a compaction, storylake.lake.rows_unchanged_since).
    Consumers then read the compacted files, and the next gate diffs only what a run changes after them (diffing
    against the version before a compaction reads every file it rewrote). The record repeats the good version's run,
    layer and as_of, so the watermark does not move. Returns the versions recorded."""

    def current(key: str, good: int) -> int | None:
        now = lake.version(paths[key])
        if now is None or now <= good or not lake.rows_unchanged_since(paths[key], good):
            return None
        return now

    return _carry(settings, paths, current)


def carry_over_retention(settings: Settings, deletes: Mapping[str, tuple[int, int]]) -> dict[str, int]:
    """Record as good the version a retention delete left (contract key -> (the version it deleted from, the version
    it wrote)) when it deleted from the table's last good version. That version holds the audited rows less the ones
    past the contract's retention by age (jobs/retention.py), nothing a run wrote: consumers may read it as they read
    a compaction's (carry_forward), and the next run's jobs and gate start from it (an hour after the daily retention
    appends its rows and diffs them, instead of rewriting and diffing a whole slice as after a table change). A table
    whose version before the delete was not its last good one (a failed gate since) keeps its record. The record
    repeats the good version's run, layer and as_of: the watermark does not move. Returns the versions recorded."""
    return _carry(settings, deletes, lambda key, good: deletes[key][1] if good == deletes[key][0] else None)


def carry_over_fold(settings: Settings, folds: Mapping[str, tuple[int, int]]) -> dict[str, int]:
    """Record as good the version a fold of restated rows left (contract key -> (the version it folded, the version it
    wrote); jobs/restated_fold.py) when it folded the table's last good version: its readers' rows are that
    version's (only superseded rows and flags changed), so consumers may read it as they read a compaction's, and the
    next run's jobs and gate start from it. The record repeats the good version's run, layer and as_of: the
    watermark does not move. Returns the versions recorded."""
    return _carry(settings, folds, lambda key, good: folds[key][1] if good == folds[key][0] else None)


def _carry(settings: Settings, keys: Iterable[str], successor: Callable[[str, int], int | None]) -> dict[str, int]:
    """For each table (contract key) of `keys` with a last good version: the version `successor(key, good version)`
    names as good in its stead (None: none), recorded with the good record's run, layer and as_of."""
    audits = _audits(settings)
    if audits is None:
        return {}
    now = datetime.now(UTC)
    rows: list[dict[str, object]] = []
    for key in sorted(keys):
        mine = audits.filter(pc.equal(audits.column("table_key"), key))
        if mine.num_rows == 0:
            continue
        good = mine.slice(int(pc.index(mine.column("version"), pc.max(mine.column("version"))).as_py()), 1)
        version = successor(key, int(good.column("version")[0].as_py()))
        if version is None:
            continue
        rows.append(good.to_pylist()[0] | {"version": version, "audited_at": now})
    if rows:
        lake.write_table(settings, TABLE, rows, mode="append")
    return {str(r["table_key"]): int(r["version"]) for r in rows}  # type: ignore[call-overload]


def _audits(settings: Settings) -> pa.Table | None:
    """The table's rows, read again only after a commit (a run asks a few dozen times: every job's and gate's
    last_good_version)."""
    return lake.read_arrow_cached(_path(settings))


def consumer_versions(settings: Settings, keys: Sequence[str]) -> dict[str, int | None]:
    """The version of each table (contract key) a consumer reads: its newest audited version on a lake with
    write-audit-publish (NotAuditedError when a table was never audited), else its latest version (None when the
    table does not exist)."""
    audits = _audits(settings)
    if audits is None:
        return {key: lake.version(settings.table_path(*key.split("."))) for key in keys}
    out: dict[str, int | None] = {}
    for key in keys:
        mine = audits.filter(pc.equal(audits.column("table_key"), key))
        if mine.num_rows == 0:
            raise NotAuditedError(f"{key} has no version that passed its quality gate yet; run the pipeline with "
                                  "its gates (storylake run) and check ops.quality_results")
        out[key] = int(pc.max(mine.column("version")).as_py())
    return out


def last_good_version(settings: Settings, key: str) -> int | None:
    """The version of one table a consumer reads (consumer_versions), None when the table was never audited or does
    not exist."""
    try:
        return consumer_versions(settings, [key])[key]
    except NotAuditedError:
        return None


def versions_left(settings: Settings, keys: Sequence[str]) -> dict[str, int | None] | None:
    """The version of each table (contract key) that the last good run left (last_good_version: its audited version,
    its current one on a lake without gates), for a run to read before it writes any of them; None when a run was
    planned since the last done one (it failed, its gate did, or it died: on a lake without gates its writes may be
    in the current versions)."""
    if increments.unfinished(settings) is not None:
        return None
    return {key: last_good_version(settings, key) for key in keys}


def watermark(settings: Settings) -> datetime | None:
    """The newest as_of whose gold passed its gate (None before the first); on a lake without gates, None too
    (callers fall back to their own notion: see pipeline.steps.lake_watermark)."""
    audits = _audits(settings)
    if audits is None:
        return None
    gold = audits.filter(pc.equal(audits.column("layer"), "gold"))
    if gold.num_rows == 0:
        return None
    mark = pc.max(gold.column("as_of")).as_py()
    return mark if mark is None else mark.astimezone(UTC)


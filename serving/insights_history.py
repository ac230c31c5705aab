# ruff: noqa: S608  -- every SQL string in this module is assembled from module constants, contract column names and
# history aliases checked against _ALIAS.
"""The long-lived serving tables, split at daily cuts so that a publish copies what changed.

Insights are kept for 2 years (segment, story and author-day insights, sticker results), archived segments for as
long as their authors keep them, and an hourly run changes only the rows anchored in its horizon, a few days at
most. Copying all of them into every hourly snapshot would make publish grow with the lake's age. So each of these
serving tables is parts, each in a DuckDB file of its own under serving/history/<file id>.duckdb, written once and
shared read-only by every snapshot that agrees with it:

    history   rows anchored before the cut (midnight UTC, HISTORY_LAG before as_of), in calendar periods
              (history_periods): one file per whole month, one per day of the cut's month, the first holding every
              row older than the earliest month with rows. When the cut moves (daily) only the new day's file is
              written; when a month completes its day files give way to one month file (once a month, a month of
              rows); so no publish copies what older months hold, whatever the lake's age;
    warm      rows anchored from the cut to the warm cut (midnight UTC, WARM_LAG before as_of), a file per day
              likewise (warm_days): rows an hourly run seldom changes, but that a late event can (see HISTORY_LAG).
              When the cuts move (daily) one day's file is written (the day that left the recent rows); the day
              that leaves the warm tier keeps its file as the history tier's day period;
    recent    rows anchored at/after the warm cut (or without an anchor), a file per table too (RecentFile,
              serving/recent_part.py): written sorted, then copied by each publish and patched with the rows that
              changed (a gold row's as_of is the run that last changed it, so an hour changes few), and written
              sorted again once its patched rows reach half of it;

and the snapshot's table is a view over the files (UNION ALL: DuckDB pushes the caller's filters into every part;
the snapshot attaches its files read-only when opened, serving/snapshot.py).

A publish reuses the previous snapshot's file of a period (or warm) of a table when the period's bounds are the same
and its rows are unchanged:
  1. cheap: the Delta files that may hold rows anchored within the period (file statistics) are the ones the
     previous snapshot saw;
  2. otherwise (a compaction or a slice rewrite moved those rows into new files, or a run's gold horizon reached
     into the period): the period's rows hash to the fingerprint recorded in its file.
Otherwise it writes a new file for that period of that table only (daily for the new warm day when the cuts move;
after a backfill, a retention run, or a late archive or delete of an old segment, for the periods whose old rows
changed; a warm day's file also when a run's gold horizon reached before the warm cut and changed a row there).
Files no kept snapshot refers to are removed with the snapshots. A snapshot published before the tables had a file
each attaches its one shared file as `hist`; its file is reused table by table as long as it agrees and its bounds
are the first period's; one published before the warm tier has none, and the next publish writes it; one published
before the warm days (format 5 and earlier: one warm file of two days) has its warm file rewritten as days once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from storylake import lake, latest_rows
from storylake.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
HISTORY_SUFFIX = ".duckdb"
# rows anchored this long before as_of (rounded down to midnight UTC) go to history: beyond the gold horizon of any
# run with in-window data. A late view (48 h lateness window) of a segment created 24 h before it moves the silver
# horizon 72 h back, and gold goes back to the start of every story live there (48 h more): 120 h. Only rarer
# changes reach further (a delete of an older segment, a backfill, retention); the fingerprint catches those.
HISTORY_LAG = timedelta(days=5)
# rows anchored from the cut to this long before as_of (rounded down to midnight UTC) are the warm tier: an hourly
# run's gold horizon reaches ~55 h back at 1M views a day (a story live in the last 24 h and its segments' views), so
# the warm tier (72-96 h back and older) is nearly always unchanged, and recent holds 3-4 days instead of 5-6.
WARM_LAG = timedelta(days=3)


@dataclass(frozen=True)
class Tier:
    """A part of each long-lived table kept in a file of its own: the rows anchored in [lo, hi) (lo None: from the
    first)."""

    name: str
    lo_lag: timedelta | None  # lo = midnight UTC of as_of - lo_lag
    hi_lag: timedelta  # hi = midnight UTC of as_of - hi_lag


HISTORY = Tier("history", None, HISTORY_LAG)
WARM = Tier("warm", HISTORY_LAG, WARM_LAG)


@dataclass(frozen=True)
class Part:
    source: str  # the silver or gold table it is read from
    anchor: str  # its anchor column (jobs/horizon.py ANCHORS / DAY_ANCHORED; a segment's created_at)
    order_by: str  # the serving sort order (zone maps: insights() and the archive read by author)
    columns: tuple[str, ...] | None = None  # the source's columns it holds (None: all)
    where: str | None = None  # the source's rows it holds (constant SQL; None: all)


# Seen By's lookup of a segment older than the snapshot's segment catalog (serving/seen_by.py older_segment): the
# segment_insights rows' identity columns, sorted by segment_id in the history file (zone maps find one row whatever
# its size; segment_insights itself is sorted by author for insights()), as the view `segment_lookup`.
LOOKUP = "segment_lookup"
LOOKUP_COLUMNS = "segment_id, author_id, created_at, is_deleted"

# serving table -> how it is split
PARTS: dict[str, Part] = {
    "segment_insights": Part("gold.segment_insights", "story_start", "author_id, created_at, segment_id"),
    "story_insights": Part("gold.story_insights", "story_start", "author_id, story_start, story_id"),
    "author_daily_insights": Part("gold.author_daily_insights", "day", "author_id, day"),
    "sticker_results": Part("gold.sticker_results", "segment_created_at", "author_id, segment_id, sticker_id"),
    # highlights and the archive (serving/highlights.py): archived, non-deleted segments, newest first per author
    "archived_segments": Part(
        "silver.segments", "created_at", "author_id, created_at DESC, segment_id",
        columns=("segment_id", "author_id", "story_id", "media_id", "media_type", "audience", "duration_ms",
                 "created_at", "expires_at", "highlight_id"),
        where="coalesce(is_archived, false) AND NOT coalesce(is_deleted, false)"),
    # the question sticker answers an author reads (serving/insights.py), kept 2 years like the insights
    "question_inbox": Part(
        "silver.sticker_responses", "responded_at", "author_id, responded_at DESC, sticker_id, user_id",
        columns=("author_id", "sticker_id", "segment_id", "user_id", "text", "responded_at"),
        where="sticker_type = 'question' AND text IS NOT NULL"),
}


def history_dir(settings: Settings) -> Path:
    return _dir(settings.serving_dir)


def history_path(settings: Settings, history_id: str) -> Path:
    return _path(settings.serving_dir, history_id)


def _dir(serving_dir: Path) -> Path:
    return serving_dir / "history"


def _path(serving_dir: Path, history_id: str) -> Path:
    return _dir(serving_dir) / f"{history_id}{HISTORY_SUFFIX}"


def cut_for(as_of: datetime, lag: timedelta = HISTORY_LAG) -> datetime:
    """Midnight UTC of as_of - lag (HISTORY_LAG: the history tier's cut)."""
    t = (as_of - lag).astimezone(UTC)
    return datetime(t.year, t.month, t.day, tzinfo=UTC)


Bounds = tuple[datetime | None, datetime]  # a tier's [lo, hi) as of a publish


def bounds_for(tier: Tier, as_of: datetime) -> Bounds:
    return (None if tier.lo_lag is None else cut_for(as_of, tier.lo_lag)), cut_for(as_of, tier.hi_lag)


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _next_month(d: date) -> date:
    """The first day of the month after d's."""
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


def history_periods(as_of: datetime, earliest: date | None, first: datetime | None = None) -> list[Bounds]:
    """The history tier's periods as of a publish, oldest first: contiguous, covering every instant before the cut
    (cut_for(as_of)), the first without a lower bound. Each whole month from the one after `earliest`'s (the day of
    the oldest anchor the tables hold; None: unknown) to the cut's is a period, each day of the cut's month a period,
    and the first period holds the rest (the oldest month's rows, which retention trims). So the periods of one
    publish are those of the previous day's plus the day that left the warm tier, except on the first day of a
    month (that month's days become one period) and when `earliest` moves to a later month (retention removed the
    oldest month's rows). `first`: the upper bound of a first period to keep (the previous snapshot's, whose files
    may be reused whatever their span), at most the cut; the grid's periods after it follow."""
    cut = cut_for(as_of)
    last = cut.date()
    month = last.replace(day=1)
    # unknown: as if the oldest rows were the previous month's (the first period holds every older row)
    start = month - timedelta(days=1) if earliest is None else min(earliest, last)
    points: list[date] = []
    m = _next_month(start.replace(day=1))
    while m <= month:
        points.append(m)
        m = _next_month(m)
    d = max(month, start) + timedelta(days=1)
    while d < last:
        points.append(d)
        d += timedelta(days=1)
    at = [_midnight(p) for p in points if p < last] + [cut]
    if first is not None and first <= cut:
        at = [first, *(t for t in at if t > first)]
    return [(None, at[0]), *zip(at, at[1:], strict=False)]


def warm_days(as_of: datetime) -> list[Bounds]:
    """The warm tier's days as of a publish, oldest first: each day from the history tier's cut to the warm cut
    (cut_for(as_of, WARM_LAG)). A day file is written when the day leaves the recent rows (daily: one day) and
    reused as the history tier's day period once the cut passes it."""
    lo, hi = bounds_for(WARM, as_of)
    assert lo is not None
    days = []
    while lo < hi:
        days.append((lo, lo + timedelta(days=1)))
        lo += timedelta(days=1)
    return days


def warm_name(bounds: Bounds) -> str:
    """The tier name a warm day is recorded under (snapshot_history.tier): `warm:<its day>`."""
    assert bounds[0] is not None
    return f"{WARM.name}:{bounds[0]:%Y-%m-%d}"


def is_warm(tier_name: str) -> bool:
    return tier_name.split(":", 1)[0] == WARM.name


def period_name(bounds: Bounds) -> str:
    """The tier name a history period is recorded under (snapshot_history.tier): the first `history`, every other
    `history:<its lower bound's day>`."""
    lo = bounds[0]
    return HISTORY.name if lo is None else f"{HISTORY.name}:{lo:%Y-%m-%d}"


def earliest_anchor(actions: Mapping[str, pa.Table]) -> date | None:
    """The UTC day of the oldest anchor the serving tables' sources hold (storylake.lake.add_actions per serving
    table: the files' statistics); None when a file has no statistics for its anchor (then the cut's month starts
    the grid: history_periods)."""
    found: list[date] = []
    for name, part in PARTS.items():
        files = actions[name]
        if files.num_rows == 0:
            continue
        col = f"min.{part.anchor}"
        values = files.column(col).to_pylist() if col in files.column_names else [None] * files.num_rows
        for value, some in zip(values, _anchored(files, part), strict=True):
            if value is None and some:  # no statistics to tell
                return None
            if value is not None:
                found.append(value.astimezone(UTC).date() if isinstance(value, datetime) else value)
    return min(found) if found else None


def _bound(part: Part, cut: datetime) -> datetime | date:
    return cut.date() if part.anchor == "day" else cut


def _rows_sql(part: Part, view: str, cond: str) -> str:
    picked = ", ".join(part.columns) if part.columns else "*"
    where = f"({part.where}) AND ({cond})" if part.where else cond
    return f"SELECT {picked} FROM {view} WHERE {where}"


def tier_sql(part: Part, view: str, bounds: Bounds) -> tuple[str, dict[str, Any]]:
    """(SELECT of the part's rows anchored within `bounds`, its parameters)."""
    lo, hi = bounds
    if lo is None:
        return _rows_sql(part, view, f"{part.anchor} < $hi"), {"hi": _bound(part, hi)}
    return (_rows_sql(part, view, f"{part.anchor} >= $lo AND {part.anchor} < $hi"),
            {"lo": _bound(part, lo), "hi": _bound(part, hi)})


def recent_sql(part: Part, view: str) -> str:
    """The part's rows anchored at/after $cut (the last tier's upper bound) or without an anchor."""
    return _rows_sql(part, view, f"{part.anchor} >= $cut OR {part.anchor} IS NULL")


def recent_params(part: Part, cut: datetime) -> dict[str, Any]:
    """recent_sql's parameters for the recent part from `cut` (a day for a day-anchored part)."""
    return {"cut": _bound(part, cut)}


def columns_of(part: Part, source_columns: list[str]) -> list[str]:
    """The serving table's columns (its fingerprint's): the part's, else the source's as its readers see them (a
    table stored as restated rows without its storage columns, storylake.latest_rows)."""
    if part.columns:
        return list(part.columns)
    growing = latest_rows.growing(part.source)
    return [c for c in source_columns if growing is None or c not in growing.storage_columns]


def files_within(actions: pa.Table, part: Part, bounds: Bounds) -> str:
    """A digest of the data files (storylake.lake.add_actions) that may hold rows anchored within `bounds` (by their
    statistics; a file without statistics may hold any)."""
    paths = actions.column("path").to_pylist()

    def stat(kind: str) -> list[Any]:
        col = f"{kind}.{part.anchor}"
        return actions.column(col).to_pylist() if col in actions.column_names else [None] * len(paths)

    lo, hi = bounds
    low, high = (None if lo is None else _bound(part, lo)), _bound(part, hi)
    anchored = _anchored(actions, part)
    held = sorted(p for p, mn, mx, some in zip(paths, stat("min"), stat("max"), anchored, strict=True)
                  if some and (mn is None or mn < high) and (low is None or mx is None or mx >= low))
    return hashlib.sha256("\n".join(held).encode()).hexdigest()


def _anchored(actions: pa.Table, part: Part) -> list[bool]:
    """Per data file: it may hold a row with an anchor (False when its statistics count every row's anchor null:
    such rows are recent's)."""
    n = actions.num_rows
    nulls = actions.column(f"null_count.{part.anchor}").to_pylist() \
        if f"null_count.{part.anchor}" in actions.column_names else [None] * n
    records = actions.column("num_records").to_pylist() if "num_records" in actions.column_names else [None] * n
    return [null is None or rows is None or null < rows for null, rows in zip(nulls, records, strict=True)]


# files_within of a tier no data file may hold a row of: the tier has no rows, and no file is written for it
NO_FILES = hashlib.sha256(b"").hexdigest()


def fingerprint(con: duckdb.DuckDBPyConnection, rows_sql: str, params: dict[str, Any] | None = None, *,
                columns: Iterable[str]) -> tuple[int, str]:
    """(row count, "<count>:<order-independent hash sum>") of the rows `rows_sql` selects."""
    cols = ", ".join(columns)
    n, total = con.execute(
        f"SELECT count(*), coalesce(sum(hash({cols})::HUGEINT), 0) FROM ({rows_sql})", params
    ).fetchone()
    return int(n), f"{n}:{total}"


@dataclass(frozen=True)
class TierFiles:
    """The files of one tier (Tier) a snapshot attaches, per serving table."""

    bounds: Bounds
    ids: dict[str, str]  # serving table -> the file it reads (none for a table without rows in the tier: NO_FILES)
    files: dict[str, str]  # serving table -> files_within digest at the versions this snapshot read
    rows: dict[str, int]  # serving table -> rows in the file
    reused: dict[str, bool]  # serving table -> its file is the previous snapshot's or a prepared one (or it has none)
    prepared: frozenset[str] = frozenset()  # serving tables whose file is a prepared one (prepare_ahead)


@dataclass(frozen=True)
class History:
    # tier name -> its files: the history periods oldest first (period_name), then the warm days (warm_name)
    tiers: dict[str, TierFiles]
    recent: dict[str, RecentFile] = field(default_factory=dict)  # serving table -> its recent part (recent_part)

    @property
    def cut(self) -> datetime:
        """The history tier's upper bound (its last period's)."""
        return self.periods()[-1].bounds[1]

    def periods(self) -> list[TierFiles]:
        """The history tier's periods, oldest first."""
        return [t for name, t in self.tiers.items() if not is_warm(name)]

    def warm(self) -> list[TierFiles]:
        """The warm tier's days, oldest first."""
        return [t for name, t in self.tiers.items() if is_warm(name)]

    @property
    def recent_from(self) -> datetime:
        """The last tier's upper bound: the recent part's rows are anchored at/after it."""
        return list(self.tiers.values())[-1].bounds[1]

    def ids(self) -> list[str]:
        return [*(hid for tier in self.tiers.values() for hid in tier.ids.values()),
                *(r.id for r in self.recent.values())]

    def stored_rows(self, name: str) -> int:
        """The serving table's rows in the tiers' files."""
        return sum(tier.rows[name] for tier in self.tiers.values())


@dataclass(frozen=True)
class PriorTier:
    """One tier's files as a snapshot recorded them (snapshot_history)."""

    bounds: Bounds
    ids: dict[str, str]  # serving table -> file id
    files: dict[str, str]  # serving table -> files_within digest
    rows: dict[str, int] | None  # serving table -> rows in the file (None: a snapshot before format 3, unchecked)


@dataclass(frozen=True)
class BaseFile:
    """A serving table's base shared between snapshots (serving/shared_bases.py), as snapshot_history records it."""

    id: str  # its file (history_path)
    identity: str  # the source version it holds the rows of ("<Delta table id>@<version>")
    rows: int

    def version_of(self, table: DeltaTable) -> int | None:
        """The version of `table`'s Delta table whose rows the file holds; None when it holds another table's."""
        table_id, _, version = self.identity.rpartition("@")
        return int(version) if table_id == table.metadata().id and version.isdigit() else None


BASE_TIER = "base"  # snapshot_history's tier of a BaseFile (no bounds: cut and lo NULL)
RECENT_TIER = "recent"  # snapshot_history's tier of a RecentFile (lo: its rows' lower bound; cut NULL)


@dataclass(frozen=True)
class RecentFile:
    """A serving table's recent part in a file of its own (serving/recent_part.py): the rows anchored at/after `lo`
    or without an anchor."""

    id: str  # its file (history_path)
    lo: datetime
    rows: int


@dataclass(frozen=True)
class Prior:
    """The tier files a snapshot attaches, as it recorded them (snapshot_history)."""

    tiers: dict[str, PriorTier]  # tier name -> its files
    aliases: dict[str, str]  # file id -> the name the snapshot's views read it by
    bases: dict[str, BaseFile] = field(default_factory=dict)  # serving table -> its shared base (since format 4)
    # source table (contract key) -> (its Delta table id, the version it read): since format 5
    versions: dict[str, tuple[str, int]] = field(default_factory=dict)
    recents: dict[str, RecentFile] = field(default_factory=dict)  # serving table -> its recent part (since format 6)

    def with_bounds(self, bounds: Bounds) -> PriorTier | None:
        """Its tier of exactly these bounds, if any."""
        return next((t for t in self.tiers.values() if t.bounds == bounds), None)


def previous(snapshot: duckdb.DuckDBPyConnection) -> Prior | None:
    """The tier files a snapshot attaches (None for a snapshot without history). A snapshot published before each
    table had a file of its own records no alias: its views read the one shared file as `hist`; one published before
    the warm tier records only history files (no tier, no lower bound)."""
    try:
        cols = {r[0] for r in snapshot.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'snapshot_history'").fetchall()}
        alias = "alias" if "alias" in cols else "'hist'"
        tier = "tier" if "tier" in cols else f"'{HISTORY.name}'"
        lo = "lo" if "lo" in cols else "NULL::TIMESTAMPTZ"
        # row counts written beside the file ids since format 3 (earlier ones are read from the files)
        counted = "history_rows" if "tier" in cols else "NULL::BIGINT"
        rows = snapshot.execute(f"SELECT history_id, cut, serving_table, files, {alias}, {tier}, {lo}, {counted} "
                                "FROM snapshot_history").fetchall()
    except duckdb.Error:
        return None
    if not rows:
        return None
    tiers: dict[str, PriorTier] = {}
    bases: dict[str, BaseFile] = {}
    recents: dict[str, RecentFile] = {}
    for hid, hi, name, files, _alias, tier_name, low, n in rows:
        if tier_name == BASE_TIER:
            bases[name] = BaseFile(hid, files, int(n))
            continue
        if tier_name == RECENT_TIER:
            recents[name] = RecentFile(hid, low.astimezone(UTC), int(n))
            continue
        bounds: Bounds = (None if low is None else low.astimezone(UTC), hi.astimezone(UTC))
        entry = tiers.setdefault(tier_name, PriorTier(bounds, {}, {}, None if n is None else {}))
        entry.ids[name], entry.files[name] = hid, files
        if entry.rows is not None and n is not None:
            entry.rows[name] = int(n)
    try:
        versions = {key: (str(tid), int(v)) for key, v, tid in snapshot.execute(
            "SELECT source_table, delta_version, table_id FROM snapshot_meta").fetchall()
            if v is not None and tid is not None}
    except duckdb.Error:  # a snapshot before format 5 has no table_id: its versions are not used
        versions = {}
    return Prior(tiers, {r[0]: r[4] for r in rows}, bases, versions, recents)


# The table a snapshot (and the prepared record) lists its tier files in (previous() reads it)
SNAPSHOT_HISTORY_DDL = ("CREATE TABLE snapshot_history (history_id VARCHAR, cut TIMESTAMPTZ, serving_table VARCHAR, "
                        "files VARCHAR, history_rows BIGINT, alias VARCHAR, tier VARCHAR, lo TIMESTAMPTZ)")


def as_prior(history: History, versions: Mapping[str, tuple[str, int]]) -> Prior:
    """The tier files `history` holds, as a snapshot that read the sources at `versions` would record them (what a
    later ensure() may reuse)."""
    return Prior({name: PriorTier(t.bounds, dict(t.ids), {n: t.files[n] for n in t.ids}, {n: t.rows[n] for n in t.ids})
                  for name, t in history.tiers.items()}, {hid: "" for hid in history.ids()}, {}, dict(versions))


# The history period files the daily maintenance wrote ahead (prepare_ahead in serving/publish.py), recorded as a
# snapshot records its tiers (snapshot_history, snapshot_meta's versions): beside the snapshots, not in the history
# folder (whose unreferenced files a publish removes).
PREPARED_NAME = "prepared_history.duckdb"


def prepared_path(settings: Settings) -> Path:
    return settings.serving_dir / PREPARED_NAME


def read_prepared(settings: Settings) -> Prior | None:
    """The prepared history files (None when there are none, or the record is unreadable: nothing is then reused
    from it, and the publishes write what they need)."""
    path = prepared_path(settings)
    if not path.exists():
        return None
    try:
        con = duckdb.connect(str(path), read_only=True)
    except (duckdb.Error, OSError) as exc:
        log.warning("prepared history %s unreadable (%s): not used", path, exc)
        return None
    try:
        return previous(con)
    finally:
        con.close()


def write_prepared(settings: Settings, grids: Iterable[Prior], bases: Mapping[str, BaseFile] | None = None
                   ) -> list[PriorTier]:
    """Record the tier files of `grids` (as_prior of each history prepared; the versions are the last grid's) and the
    shared `bases` prepared (serving table -> its base file) as the prepared history, replacing the previous record
    atomically; the distinct tiers recorded."""
    grids = list(grids)
    tiers: dict[Bounds, PriorTier] = {}
    for grid in grids:
        for t in grid.tiers.values():
            tiers.setdefault(t.bounds, t)
    versions = grids[-1].versions if grids else {}
    path = prepared_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp*"):  # a killed writer's (the caller holds the publish lock)
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")

    def record() -> None:
        with duckdb.connect(str(tmp)) as con:
            con.execute(SNAPSHOT_HISTORY_DDL)
            rows = [[t.ids[name], t.bounds[1], name, t.files[name], (t.rows or {}).get(name), "",
                     f"prepared:{'' if t.bounds[0] is None else t.bounds[0].isoformat()}:{t.bounds[1].isoformat()}",
                     t.bounds[0]] for t in tiers.values() for name in PARTS if name in t.ids]
            rows += [[b.id, None, name, b.identity, b.rows, "", BASE_TIER, None] for name, b in (bases or {}).items()]
            if rows:
                con.executemany("INSERT INTO snapshot_history VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            con.execute("CREATE TABLE snapshot_meta (source_table VARCHAR, delta_version BIGINT, table_id VARCHAR)")
            if versions:
                con.executemany("INSERT INTO snapshot_meta VALUES (?, ?, ?)",
                                [[key, version, tid] for key, (tid, version) in sorted(versions.items())])

    _written_then_renamed(tmp, path, record)
    return list(tiers.values())


def _recorded_fingerprint(path: Path, name: str) -> tuple[str, int] | None:
    """(fingerprint, row count) of the serving table `name` as its tier file recorded them when it was written."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except (duckdb.Error, OSError):
        return None
    try:
        rows = con.execute("SELECT fingerprint, row_count FROM history_meta WHERE serving_table = $t",
                           {"t": name}).fetchall()
        # a file written before the segment lookup existed is not reused: the next one has it
        if name == "segment_insights" and not con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = $t", {"t": LOOKUP}).fetchone()[0]:
            return None
    except duckdb.Error:
        return None
    finally:
        con.close()
    return (rows[0][0], int(rows[0][1])) if rows else None


def ensure(
    settings: Settings, con: duckdb.DuckDBPyConnection, views: Mapping[str, str], tables: Mapping[str, DeltaTable],
    columns: Mapping[str, list[str]], as_of: datetime, prior: Prior | None, also: Sequence[Prior] = (), *,
    warm: bool = True,
) -> History:
    """The tier files the new snapshot attaches: per history period (history_periods), then warm, and per serving
    table the previous snapshot's file when still valid, else a file of `also` (files written ahead: prepare_ahead)
    of the same bounds when still valid, else a new file. `con` has the sources registered under `views` (serving
    table -> view name); `tables` are the Delta tables read (serving table -> DeltaTable) and `columns` the serving
    tables' columns. The previous snapshot's first period is kept as it is while every table's file of it is still
    valid (a snapshot of an earlier layout: one history file up to its cut); otherwise the periods follow the
    calendar grid (so a file of the earlier layout is rewritten once, when one of its tables' rows change, e.g.
    after retention removed its oldest rows). `warm` False: the history periods only."""
    actions = {name: lake.add_actions(tables[name]) for name in PARTS}
    earliest = earliest_anchor(actions)

    def changes(since: Prior | None) -> dict[str, Callable[[], list[lake.Range] | None]]:
        # read from the Delta log only for a table whose files changed (most publishes find every digest equal)
        return {name: functools.cache(functools.partial(_changed_since, settings, part, since, tables[name]))
                for name, part in PARTS.items()}

    changed = changes(prior)
    # where a file may come from, in order: the previous snapshot's, then the files written ahead (prepared)
    sources = [(source, changed if source is prior else changes(source), source is not prior)
               for source in (prior, *also) if source is not None]
    kept_first: dict[str, tuple[str, int]] | None = None
    before = prior.tiers.get(HISTORY.name) if prior is not None else None
    if before is not None and before.bounds[0] is None and before.bounds[1] <= cut_for(as_of) \
            and before.bounds[1] != history_periods(as_of, earliest)[0][1]:
        found = {name: _reusable(settings, con, name, part, views[name], columns[name], before,
                                 files_within(actions[name], part, before.bounds), changed[name])
                 for name, part in PARTS.items() if name in before.ids}
        if found and all(f is not None for f in found.values()):
            kept_first = {name: f for name, f in found.items() if f is not None}
    first = before.bounds[1] if kept_first is not None and before is not None else None
    named: list[tuple[str, Tier, Bounds]] = [
        (period_name(b), HISTORY, b) for b in history_periods(as_of, earliest, first)]
    if warm:
        named += [(warm_name(b), WARM, b) for b in warm_days(as_of)]
    tiers: dict[str, TierFiles] = {}
    for tier_name, tier, bounds in named:
        # only a file of the same bounds can be reused (yesterday's warm day is today's history day)
        candidates = [(kept, source_changed, ahead) for source, source_changed, ahead in sources
                      if (kept := source.with_bounds(bounds)) is not None]
        ids: dict[str, str] = {}
        files: dict[str, str] = {}
        rows: dict[str, int] = {}
        reused: dict[str, bool] = {}
        prepared: set[str] = set()
        for name, part in PARTS.items():
            files[name] = files_within(actions[name], part, bounds)
            if files[name] == NO_FILES:  # no data file may hold a row of the period: no file (a young lake's days)
                rows[name], reused[name] = 0, True
                continue
            if kept_first is not None and tier_name == HISTORY.name:  # (a table it had no file of: written)
                found: tuple[str, int] | None = kept_first.get(name)
            else:
                found = None
                for same, source_changed, ahead in candidates:
                    found = _reusable(settings, con, name, part, views[name], columns[name], same, files[name],
                                      source_changed[name])
                    if found is not None:
                        if ahead:
                            prepared.add(name)
                        break
            if found is not None:
                (ids[name], rows[name]), reused[name] = found, True
                continue
            ids[name], rows[name] = _write(settings, con, name, part, views[name], columns[name], tier, bounds)
            reused[name] = False
        tiers[tier_name] = TierFiles(bounds, ids, files, rows, reused, frozenset(prepared))
    return History(tiers)


def _changed_since(settings: Settings, part: Part, prior: Prior | None, table: DeltaTable) -> list[lake.Range] | None:
    """Where the part's source changed since the version the previous snapshot read (lake.changed_ranges of its
    anchor, as _bound compares them); None when unknown (no previous version recorded, a table of another id at the
    path now, or the log cannot tell)."""
    before = None if prior is None else prior.versions.get(part.source)
    # a version of another table at the same path (removed and written again) tells nothing
    if before is None or before[0] != table.metadata().id:
        return None
    return lake.changed_ranges(settings.table_path(*part.source.split(".")), before[1], table.version(), part.anchor)


def _untouched(changed: Callable[[], list[lake.Range] | None], part: Part, bounds: Bounds) -> bool:
    """No data file added or removed since the previous snapshot's version (`changed`: gives _changed_since, read
    at most once) may hold a row anchored within `bounds`: the tier's rows are the ones its file holds, whatever
    compaction moved."""
    ranges = changed()
    if ranges is None:
        return False
    lo, hi = bounds
    low, high = (None if lo is None else _bound(part, lo)), _bound(part, hi)
    return all(mn is not None and mx is not None and (mn >= high or (low is not None and mx < low))
               for mn, mx in ranges)


def _reusable(settings: Settings, con: duckdb.DuckDBPyConnection, name: str, part: Part, view: str,
              columns: list[str], same: PriorTier, digest: str, changed: Callable[[], list[lake.Range] | None]
              ) -> tuple[str, int] | None:
    """(file id, rows) of the previous snapshot's file of this tier (same bounds) and serving table when it still holds
    the tier's rows: the same Delta files hold them (`digest`), or no file added or removed with data since the
    version the previous snapshot read may hold one of them (`changed`: a compaction moves rows, it does not change
    them), or they hash to the fingerprint the file recorded. Without opening the file when the snapshot recorded its
    rows (format 3) and the Delta files are the same or untouched."""
    hid = same.ids.get(name)
    if hid is None or not history_path(settings, hid).exists():
        return None
    if (same.files.get(name) == digest or _untouched(changed, part, same.bounds)) and same.rows is not None \
            and name in same.rows:
        return hid, same.rows[name]
    recorded = _recorded_fingerprint(history_path(settings, hid), name)
    if recorded is None:
        return None
    if same.files.get(name) == digest or fingerprint(
            con, *tier_sql(part, view, same.bounds), columns=columns)[1] == recorded[0]:
        return hid, recorded[1]
    return None


def _write(settings: Settings, con: duckdb.DuckDBPyConnection, name: str, part: Part, view: str,
           columns: list[str], tier: Tier, bounds: Bounds) -> tuple[str, int]:
    """Write the file of one tier of one serving table; (its id, its rows)."""
    kind = "" if bounds[0] is None else f"{bounds[0]:%Y%m%d}-"  # a warm day's file becomes a history day's
    hid = new_file_id(f"{name}-{kind}")

    def fill(alias: str) -> int:
        sql, params = tier_sql(part, view, bounds)
        con.execute(f"CREATE TABLE {alias}.{name} AS {sql} ORDER BY {part.order_by}", params)
        # hashed from the table just written, not by reading the source again
        rows, printed = fingerprint(con, f"SELECT * FROM {alias}.{name}", columns=columns)
        if name == "segment_insights":
            con.execute(f"CREATE TABLE {alias}.{LOOKUP} AS SELECT {LOOKUP_COLUMNS} FROM {alias}.{name} "
                        "ORDER BY segment_id")
        con.execute(f"CREATE TABLE {alias}.history_meta (cut TIMESTAMPTZ, serving_table VARCHAR, "
                    "fingerprint VARCHAR, row_count BIGINT)")
        con.execute(f"INSERT INTO {alias}.history_meta VALUES (?, ?, ?, ?)", [bounds[1], name, printed, rows])
        return rows

    rows = write_file(settings, con, hid, fill)
    lo, hi = bounds
    log.info("%s %s: %d %s rows anchored %sbefore %s", tier.name, hid, rows, name,
             "" if lo is None else f"at/after {lo.isoformat()} and ", hi.isoformat())
    return hid, rows


def new_file_id(prefix: str) -> str:
    """A new shared file's id: `prefix`, the time (sortable) and a random suffix."""
    return f"{prefix}{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"


def write_file(settings: Settings, con: duckdb.DuckDBPyConnection, hid: str, fill: Callable[[str], T],
               start_from: Path | None = None) -> T:
    """Write the shared file `hid` (history_path): `fill(alias)` creates its tables in it (or changes those of a
    copy of the file `start_from`), attached to `con` as `alias`; it then becomes visible under its name only once
    complete and on disk (a temp file renamed). Returns what fill returned."""
    hdir = history_dir(settings)
    hdir.mkdir(parents=True, exist_ok=True)
    final = history_path(settings, hid)
    tmp = hdir / f".{hid}{HISTORY_SUFFIX}.tmp"
    alias = f"h_{uuid.uuid4().hex[:8]}"

    def attached() -> T:
        if start_from is not None:
            shutil.copyfile(start_from, tmp)
        con.execute(f"ATTACH $path AS {alias}", {"path": str(tmp)})
        try:
            out = fill(alias)
            con.execute(f"CHECKPOINT {alias}")
        finally:
            con.execute(f"DETACH {alias}")
        return out

    return _written_then_renamed(tmp, final, attached)


def _written_then_renamed(tmp: Path, final: Path, write: Callable[[], T]) -> T:
    """`write()` fills the DuckDB file `tmp`, which is then synced and renamed to `final` (visible only once complete
    and on disk); on any failure `tmp` and its WAL are removed. Returns what write returned."""
    try:
        out = write()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        for p in (tmp, Path(f"{tmp}.wal")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        raise
    return out


_ALIAS = re.compile(r"hist(_\d+)?")


def _aliases(ids: Iterable[str]) -> dict[str, str]:
    """A name per distinct file (a file of an earlier layout serves several tables, and DuckDB attaches a file
    once)."""
    return {hid: f"hist_{i}" for i, hid in enumerate(sorted(set(ids)))}


def aliases(history: History, bases: Mapping[str, BaseFile]) -> dict[str, str]:
    """file id -> the name a snapshot attaches it by, for the tier files and the shared bases it reads."""
    return _aliases([*history.ids(), *(b.id for b in bases.values())])


def attach_and_union(con: duckdb.DuckDBPyConnection, settings: Settings, history: History,
                     bases: Mapping[str, BaseFile]) -> dict[str, int]:
    """In the snapshot being built: attach the tier files, the recent parts (history.recent: serving/recent_part.py)
    and the shared bases (`bases`: serving table -> its base file), under the names aliases() gives; the view
    `<name>` over each table's tiers and recent part, the view `segment_lookup` (LOOKUP) and `snapshot_history`;
    returns each table's recent rows. The files stay attached until detach()."""
    named = aliases(history, bases)
    for hid, alias in named.items():
        con.execute(f"ATTACH $path AS {alias} (READ_ONLY)", {"path": str(history_path(settings, hid))})
    for name in PARTS:
        stored = [f"SELECT * FROM {named[t.ids[name]]}.{name}" for t in history.tiers.values() if name in t.ids]
        stored.append(f"SELECT * FROM {named[history.recent[name].id]}.{name}")
        con.execute(f"CREATE VIEW {name} AS {' UNION ALL '.join(stored)}")
    lookups = [f"SELECT * FROM {named[t.ids['segment_insights']]}.{LOOKUP}"
               for t in history.tiers.values() if "segment_insights" in t.ids]
    lookups.append(f"SELECT {LOOKUP_COLUMNS} FROM {named[history.recent['segment_insights'].id]}.segment_insights")
    con.execute(f"CREATE VIEW {LOOKUP} AS {' UNION ALL '.join(lookups)}")
    con.execute(SNAPSHOT_HISTORY_DDL)
    con.executemany("INSERT INTO snapshot_history VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [[t.ids[name], t.bounds[1], name, t.files[name], t.rows[name], named[t.ids[name]], tier,
                      t.bounds[0]] for tier, t in history.tiers.items() for name in PARTS if name in t.ids]
                    + [[b.id, None, name, b.identity, b.rows, named[b.id], BASE_TIER, None]
                       for name, b in bases.items()]
                    + [[r.id, None, name, "", r.rows, named[r.id], RECENT_TIER, r.lo]
                       for name, r in history.recent.items()])
    return {name: r.rows for name, r in history.recent.items()}


def detach(con: duckdb.DuckDBPyConnection, history: History, bases: Mapping[str, BaseFile]) -> None:
    """Detach the files attach_and_union attached (before the snapshot is closed)."""
    for alias in aliases(history, bases).values():
        con.execute(f"DETACH {alias}")


def attach(con: duckdb.DuckDBPyConnection, serving_dir: Path) -> list[str]:
    """Attach (read-only, under the names its views read) the history and warm files a snapshot's views read; their
    ids."""
    found = previous(con)
    if found is None:
        return []
    attached = {r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
    for hid, alias in found.aliases.items():
        if not _ALIAS.fullmatch(alias):  # read from the file: never pasted into SQL unless it is one of ours
            raise ValueError(f"snapshot_history names history file {hid!r} by an unexpected alias {alias!r}")
        # a file opened twice in one process is one DuckDB instance: the first open attached it already
        if alias not in attached:
            con.execute(f"ATTACH $path AS {alias} (READ_ONLY)", {"path": str(_path(serving_dir, hid))})
    return sorted(found.aliases)


def remove_unreferenced(settings: Settings, referenced: set[str]) -> list[str]:
    """Delete history and warm files no kept snapshot refers to (and leftovers of a crashed write)."""
    removed = []
    hdir = history_dir(settings)
    if not hdir.is_dir():
        return removed
    for p in hdir.glob(".*.tmp*"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    for p in hdir.glob(f"*{HISTORY_SUFFIX}"):
        hid = p.name[: -len(HISTORY_SUFFIX)]
        if hid not in referenced:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(hid)
    return removed


def describe(history: History, recent: Mapping[str, int]) -> dict[str, Any]:
    """The publish report's account: the history tier's files per table (its periods', oldest first), bounds, rows
    and the tables one of whose period files was written (not reused), the same of the warm tier, and the recent
    rows and files."""
    periods, warm = history.periods(), history.warm()
    return {"history_ids": {name: [t.ids[name] for t in periods if name in t.ids] for name in PARTS},
            "cut": history.cut.isoformat(),
            "periods": [[None if t.bounds[0] is None else t.bounds[0].isoformat(), t.bounds[1].isoformat()]
                        for t in periods],
            "reused": all(kept for tier in history.tiers.values() for kept in tier.reused.values()),
            "rewritten": sorted(name for name in PARTS if not all(t.reused[name] for t in periods)),
            "history_written": {name: sum(not t.reused[name] for t in periods) for name in PARTS},
            "history_rows": {name: sum(t.rows[name] for t in periods) for name in PARTS},
            "warm_ids": {name: [t.ids[name] for t in warm if name in t.ids] for name in PARTS},
            "warm_cut": history.recent_from.isoformat(),
            "warm_rewritten": sorted(name for name in PARTS if not all(t.reused[name] for t in warm)),
            "warm_written": {name: sum(not t.reused[name] for t in warm) for name in PARTS},
            "warm_rows": {name: sum(t.rows[name] for t in warm) for name in PARTS}, "recent_rows": dict(recent),
            "recent_ids": {name: r.id for name, r in history.recent.items()},
            # the period files written ahead by the daily maintenance that this publish attached (prepare_ahead)
            "history_prepared": {name: sum(name in t.prepared for t in periods) for name in PARTS}}

# ruff: noqa: S608  -- every SQL string in this module is assembled from module constants, contract column names and
# history aliases checked against _ALIAS.
"""The long-lived serving tables, split at daily cuts so that a publish copies what changed.

Insights are kept for 2 years (segment, story and author-day insights, sticker results), archived segments for as
long as their authors keep them, and an hourly run changes only the rows anchored in its horizon, a few days at
most. Copying all of them into every hourly snapshot would make publish grow with the lake's age. So each of these
serving tables is three parts (TIERS):

    history   rows anchored before the cut (midnight UTC, HISTORY_LAG before as_of), in a DuckDB file of its own
              under serving/history/<history_id>.duckdb, written once and shared read-only by every snapshot that
              agrees with it;
    warm      rows anchored from the cut to the warm cut (midnight UTC, WARM_LAG before as_of), a file of its own
              likewise: rows an hourly run seldom changes, but that a late event can (see HISTORY_LAG);
    recent    rows anchored at/after the warm cut (or without an anchor), copied into each snapshot;

and the snapshot's table is a view `history UNION ALL warm UNION ALL recent` (DuckDB pushes the caller's filters
into every part; the snapshot attaches its history and warm files read-only when opened, serving/snapshot.py).

A publish reuses the previous snapshot's file of a tier of a table when the tier's bounds are the same and its rows
are unchanged:
  1. cheap: the Delta files that may hold rows anchored within the tier (file statistics) are the ones the previous
     snapshot saw;
  2. otherwise (a compaction or a slice rewrite moved those rows into new files, or a run's gold horizon reached
     into the tier): the tier's rows hash to the fingerprint recorded in its file.
Otherwise it writes a new file for that tier of that table only (daily for every table when the cuts move; after a
backfill, a retention run, or a late archive or delete of an old segment, for the tables whose old rows changed; the
warm file also when a run's gold horizon reached before the warm cut and changed a row there). Files no kept
snapshot refers to are removed with the snapshots. A snapshot published before the tables had a file each attaches
its one shared file as `hist`; its file is reused table by table as long as it agrees; one published before the warm
tier has none, and the next publish writes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from storylake import lake
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
TIERS = (HISTORY, WARM)


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


def columns_of(part: Part, source_columns: list[str]) -> list[str]:
    """The serving table's columns (its fingerprint's)."""
    return list(part.columns) if part.columns else list(source_columns)


def files_within(actions: pa.Table, part: Part, bounds: Bounds) -> str:
    """A digest of the data files (storylake.lake.add_actions) that may hold rows anchored within `bounds` (by their
    statistics; a file without statistics may hold any)."""
    paths = actions.column("path").to_pylist()

    def stat(kind: str) -> list[Any]:
        col = f"{kind}.{part.anchor}"
        return actions.column(col).to_pylist() if col in actions.column_names else [None] * len(paths)

    lo, hi = bounds
    low, high = (None if lo is None else _bound(part, lo)), _bound(part, hi)
    held = sorted(p for p, mn, mx in zip(paths, stat("min"), stat("max"), strict=True)
                  if (mn is None or mn < high) and (low is None or mx is None or mx >= low))
    return hashlib.sha256("\n".join(held).encode()).hexdigest()


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
    ids: dict[str, str]  # serving table -> the file it reads
    files: dict[str, str]  # serving table -> files_within digest at the versions this snapshot read
    rows: dict[str, int]  # serving table -> rows in the file
    reused: dict[str, bool]  # serving table -> its file is the previous snapshot's


@dataclass(frozen=True)
class History:
    tiers: dict[str, TierFiles]  # tier name -> its files, in TIERS order

    @property
    def cut(self) -> datetime:
        """The history tier's upper bound."""
        return self.tiers[HISTORY.name].bounds[1]

    @property
    def recent_from(self) -> datetime:
        """The last tier's upper bound: the recent part's rows are anchored at/after it."""
        return list(self.tiers.values())[-1].bounds[1]

    def ids(self) -> list[str]:
        return [hid for tier in self.tiers.values() for hid in tier.ids.values()]

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


BASE_TIER = "base"  # snapshot_history's tier of a BaseFile (no bounds: cut and lo NULL)


@dataclass(frozen=True)
class Prior:
    """The tier files a snapshot attaches, as it recorded them (snapshot_history)."""

    tiers: dict[str, PriorTier]  # tier name -> its files
    aliases: dict[str, str]  # file id -> the name the snapshot's views read it by
    bases: dict[str, BaseFile] = field(default_factory=dict)  # serving table -> its shared base (since format 4)

    @property
    def cut(self) -> datetime:
        return self.tiers[HISTORY.name].bounds[1]


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
    for hid, hi, name, files, _alias, tier_name, low, n in rows:
        if tier_name == BASE_TIER:
            bases[name] = BaseFile(hid, files, int(n))
            continue
        bounds: Bounds = (None if low is None else low.astimezone(UTC), hi.astimezone(UTC))
        entry = tiers.setdefault(tier_name, PriorTier(bounds, {}, {}, None if n is None else {}))
        entry.ids[name], entry.files[name] = hid, files
        if entry.rows is not None and n is not None:
            entry.rows[name] = int(n)
    if HISTORY.name not in tiers:
        return None
    return Prior(tiers, {r[0]: r[4] for r in rows}, bases)


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
    columns: Mapping[str, list[str]], as_of: datetime, prior: Prior | None,
) -> History:
    """The tier files the new snapshot attaches: per tier and serving table the previous one when still valid, else a
    new file. `con` has the sources registered under `views` (serving table -> view name); `tables` are the Delta
    tables read (serving table -> DeltaTable) and `columns` the serving tables' columns."""
    tiers: dict[str, TierFiles] = {}
    actions = {name: lake.add_actions(tables[name]) for name in PARTS}
    for tier in TIERS:
        bounds = bounds_for(tier, as_of)
        before = prior.tiers.get(tier.name) if prior is not None else None
        same = before if before is not None and before.bounds == bounds else None  # only its files can be reused
        ids: dict[str, str] = {}
        files: dict[str, str] = {}
        rows: dict[str, int] = {}
        reused: dict[str, bool] = {}
        for name, part in PARTS.items():
            files[name] = files_within(actions[name], part, bounds)
            found = None if same is None else _reusable(settings, con, name, part, views[name], columns[name], same,
                                                        files[name])
            if found is not None:
                (ids[name], rows[name]), reused[name] = found, True
                continue
            ids[name], rows[name] = _write(settings, con, name, part, views[name], columns[name], tier, bounds)
            reused[name] = False
        tiers[tier.name] = TierFiles(bounds, ids, files, rows, reused)
    return History(tiers)


def _reusable(settings: Settings, con: duckdb.DuckDBPyConnection, name: str, part: Part, view: str,
              columns: list[str], same: PriorTier, digest: str) -> tuple[str, int] | None:
    """(file id, rows) of the previous snapshot's file of this tier (same bounds) and serving table when it still holds
    the tier's rows: the same Delta files hold them (`digest`), or they hash to the fingerprint the file recorded.
    Without opening the file when the snapshot recorded its rows (format 3) and the Delta files are the same."""
    hid = same.ids.get(name)
    if hid is None or not history_path(settings, hid).exists():
        return None
    if same.files.get(name) == digest and same.rows is not None and name in same.rows:
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
    kind = "" if tier is HISTORY else f"{tier.name}-"
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


def write_file(settings: Settings, con: duckdb.DuckDBPyConnection, hid: str, fill: Callable[[str], T]) -> T:
    """Write the shared file `hid` (history_path): `fill(alias)` creates its tables in it, attached to `con` as
    `alias`; it then becomes visible under its name only once complete and on disk (a temp file renamed). Returns
    what fill returned."""
    hdir = history_dir(settings)
    hdir.mkdir(parents=True, exist_ok=True)
    final = history_path(settings, hid)
    tmp = hdir / f".{hid}{HISTORY_SUFFIX}.tmp"
    alias = f"h_{uuid.uuid4().hex[:8]}"
    try:
        con.execute(f"ATTACH $path AS {alias}", {"path": str(tmp)})
        try:
            out = fill(alias)
            con.execute(f"CHECKPOINT {alias}")
        finally:
            con.execute(f"DETACH {alias}")
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
                     views: Mapping[str, str], bases: Mapping[str, BaseFile]) -> dict[str, int]:
    """In the snapshot being built: attach the tier files and the shared bases (`bases`: serving table -> its base
    file, under the names aliases() gives); the recent part of each table (`<name>_recent`), the view `<name>` over
    its tiers and recent, the view `segment_lookup` (LOOKUP) and `snapshot_history`; returns each table's recent
    rows. The files stay attached until detach()."""
    recent: dict[str, int] = {}
    named = aliases(history, bases)
    for hid, alias in named.items():
        con.execute(f"ATTACH $path AS {alias} (READ_ONLY)", {"path": str(history_path(settings, hid))})
    for name, part in PARTS.items():
        con.execute(f"CREATE TABLE {name}_recent AS {recent_sql(part, views[name])} ORDER BY {part.order_by}",
                    {"cut": _bound(part, history.recent_from)})
        recent[name] = int(con.execute(f"SELECT count(*) FROM {name}_recent").fetchone()[0])
        stored = " UNION ALL ".join(f"SELECT * FROM {named[t.ids[name]]}.{name}" for t in history.tiers.values())
        con.execute(f"CREATE VIEW {name} AS {stored} UNION ALL SELECT * FROM {name}_recent")
    lookups = " UNION ALL ".join(f"SELECT * FROM {named[t.ids['segment_insights']]}.{LOOKUP}"
                                 for t in history.tiers.values())
    con.execute(f"CREATE VIEW {LOOKUP} AS {lookups} UNION ALL SELECT {LOOKUP_COLUMNS} FROM segment_insights_recent")
    con.execute("CREATE TABLE snapshot_history (history_id VARCHAR, cut TIMESTAMPTZ, serving_table VARCHAR, "
                "files VARCHAR, history_rows BIGINT, alias VARCHAR, tier VARCHAR, lo TIMESTAMPTZ)")
    con.executemany("INSERT INTO snapshot_history VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [[t.ids[name], t.bounds[1], name, t.files[name], t.rows[name], named[t.ids[name]], tier,
                      t.bounds[0]] for tier, t in history.tiers.items() for name in PARTS]
                    + [[b.id, None, name, b.identity, b.rows, named[b.id], BASE_TIER, None]
                       for name, b in bases.items()])
    return recent


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
    """The publish report's account: per tier (history, warm) its files, bounds, rows and the tables whose file was
    written (not reused), and the recent rows."""
    old, warm = history.tiers[HISTORY.name], history.tiers[WARM.name]
    return {"history_ids": dict(old.ids), "cut": history.cut.isoformat(),
            "reused": all(kept for tier in history.tiers.values() for kept in tier.reused.values()),
            "rewritten": sorted(name for name, kept in old.reused.items() if not kept),
            "history_rows": dict(old.rows),
            "warm_ids": dict(warm.ids), "warm_cut": warm.bounds[1].isoformat(),
            "warm_rewritten": sorted(name for name, kept in warm.reused.items() if not kept),
            "warm_rows": dict(warm.rows), "recent_rows": dict(recent)}

# ruff: noqa: S608  -- every SQL string in this module is assembled from module constants, contract column names and
# the aliases write_file makes.
"""The recent part of each long-lived serving table (serving/insights_history.py: the rows anchored at/after the
warm cut), in a file of its own that a publish patches instead of copying every recent row again.

At 10M views a day the recent segment insights are ~4.3M rows, and copying them (sorted) into every hourly snapshot
took ~4.5 s of the publish alone; an hour changes ~220k of them. Since a gold row's as_of is the as_of of the run
that last changed it (jobs/gold/touched.py stamped), the rows that differ between the previous snapshot's recent
part and the source's are the rows a run changed, the rows of a new story, and the rows that left for the warm tier.
So a publish:
  1. copies the previous snapshot's file of the table (a file copy: no decoding or compressing);
  2. deletes from the copy its rows equal to no row of the source's recent part, and inserts the source's rows
     equal to no row it held (compared by two 64-bit hashes of every column, in two orders, as the gold gate's diff
     does), sorted among themselves;
  3. checks the result: its fingerprint (insights_history.fingerprint: row count and order-independent hash sum)
     equals the source's, or the file is written again from the source;
and reuses the previous file as it is when nothing differs. In a gold table with a STAMP column the diff of step 2
is scoped: only the source's rows stamped after the newest stamp the file holds (the rows the runs since changed)
and the file's rows of their keys, or of keys the source's recent part no longer has, are hashed and compared; at
10M views a day ~0.2M of the 4.35M recent segment insights, so the patch no longer hashes, joins and rescans every
recent row of both sides (3.4 s -> ~1.6 s for that table). A row changed without a newer stamp (a rerun of the
file's last hour that changed rows under the same as_of, a full refresh as of an earlier instant) fails step 3's
check, and the file is written again; so it is when the rows stamped since are REWRITE_SHARE of the file.
The appended rows are outside the table's sort order
(their row groups' zone maps are wide), so the publish after the one whose appended rows reached REWRITE_SHARE of
the file's rows writes it again, sorted, as the first file of a table is; so it does with a file of other columns,
or of a lower bound after the cut (a publish as of an earlier instant). In a table with a STAMP column the appended
rows are counted as the file holds them: the rows stamped after the newest stamp of its sorted write (every row a
patch inserts is stamped after the file's newest, and every sorted row at or before it), so a patch that replaces
rows an earlier patch appended (a story restated hour after hour) does not count them twice. Counting every row
ever appended made the file at 10M views a day look half appended by each midnight (2.98M appended against 5.69M
rows), and the midnight's publish wrote it again; it is now patched there (deleting the day that leaves the part
costs about what writing the file did: docs/performance-log.md, session 47). Other tables count the rows their
patches added.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import duckdb

from serving.insights_history import (
    PARTS,
    History,
    Part,
    Prior,
    RecentFile,
    fingerprint,
    history_path,
    new_file_id,
    recent_params,
    recent_sql,
    write_file,
)
from storylake import contracts, merge_on_read
from storylake.settings import Settings

log = logging.getLogger(__name__)
REWRITE_SHARE = 0.5  # a file whose rows appended by patches reach this share of its rows is written again, sorted
# the file's record: its table, lower bound, rows, rows appended since written sorted, and (a table with a STAMP column)
# the newest stamp of its sorted write
META = "recent_meta"
STAMP = contracts.CHANGED_AT  # a gold row's as_of: the run that last changed it (jobs/gold/touched.py stamped)


class _Unchanged(Exception):  # noqa: N818 - a signal, not an error: the previous file holds the rows
    pass


class _Rewrite(Exception):  # noqa: N818 - a signal: write the file again, sorted
    pass


def ensure(settings: Settings, con: duckdb.DuckDBPyConnection, history: History, views: Mapping[str, str],
           columns: Mapping[str, list[str]], prior: Prior | None) -> tuple[dict[str, RecentFile], dict[str, Any]]:
    """The recent part of every serving table of PARTS: (serving table -> its file, serving table -> how it was made:
    {"made": "reused" | "patched" | "written", and for a patch the rows "removed" and "added"}). `con` has the
    sources registered under `views`; `columns`: the serving tables' columns; `prior`: the previous snapshot's."""
    cut = history.recent_from
    files: dict[str, RecentFile] = {}
    report: dict[str, Any] = {}
    for name, part in PARTS.items():
        before = None if prior is None else prior.recents.get(name)
        if before is not None and before.lo <= cut and history_path(settings, before.id).exists():
            try:
                files[name], report[name] = _patched(settings, con, name, part, views[name], columns[name], before,
                                                     cut)
                continue
            except _Unchanged:
                files[name], report[name] = before, {"made": "reused"}
                continue
            except _Rewrite as why:
                log.info("recent %s: written again (%s)", name, why)
        files[name] = _written(settings, con, name, part, views[name], columns[name], cut)
        report[name] = {"made": "written"}
    return files, report


def _hashes(columns: Sequence[str]) -> str:
    """Two 64-bit hashes of a row's `columns` (the second in the reverse order after a constant), as _h and _g; the
    first is the one insights_history.fingerprint sums."""
    return (f"hash({', '.join(columns)}) AS _h, "
            f"hash('storylake', {', '.join(reversed(columns))}) AS _g")


def _meta(con: duckdb.DuckDBPyConnection, alias: str, name: str, lo: datetime, rows: int, appended: int,
          sorted_newest: datetime | None) -> None:
    con.execute(f"CREATE OR REPLACE TABLE {alias}.{META} (serving_table VARCHAR, lo TIMESTAMPTZ, row_count BIGINT, "
                "appended BIGINT, sorted_newest TIMESTAMPTZ)")
    con.execute(f"INSERT INTO {alias}.{META} VALUES (?, ?, ?, ?, ?)", [name, lo, rows, appended, sorted_newest])


def _sorted_newest(con: duckdb.DuckDBPyConnection, alias: str) -> datetime | None:
    """The newest stamp of the file's sorted write (None: a table without a STAMP column, or a file written before
    the record held it)."""
    held = {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = $db AND table_name = $t",
        {"db": alias, "t": META}).fetchall()}
    if "sorted_newest" not in held:
        return None
    value = con.execute(f"SELECT sorted_newest FROM {alias}.{META}").fetchone()[0]
    return value if isinstance(value, datetime) else None


def _appended_held(con: duckdb.DuckDBPyConnection, alias: str, name: str, sorted_newest: datetime) -> int:
    """The rows of the file's table stamped after its sorted write's newest stamp: the patches' rows it holds."""
    return int(con.execute(f"SELECT count(*) FROM {alias}.{name} WHERE {STAMP} > $t",
                           {"t": sorted_newest}).fetchone()[0])


def _written(settings: Settings, con: duckdb.DuckDBPyConnection, name: str, part: Part, view: str,
             columns: list[str], cut: datetime) -> RecentFile:
    """A new file of the table's recent rows (anchored at/after `cut` or without an anchor), sorted."""
    hid = new_file_id(f"{name}-recent-")

    def fill(alias: str) -> int:
        con.execute(f"CREATE TABLE {alias}.{name} AS {recent_sql(part, view)} ORDER BY {part.order_by}",
                    recent_params(part, cut))
        rows = int(con.execute(f"SELECT count(*) FROM {alias}.{name}").fetchone()[0])
        newest = (con.execute(f"SELECT max({STAMP}) FROM {alias}.{name}").fetchone()[0]
                  if _scope(part, columns) is not None else None)
        _meta(con, alias, name, cut, rows, 0, newest)
        return rows

    rows = write_file(settings, con, hid, fill)
    log.info("recent %s: %d %s rows anchored at/after %s, written", hid, rows, name, cut.isoformat())
    return RecentFile(hid, cut, rows)


def _scope(part: Part, columns: list[str]) -> tuple[str, ...] | None:
    """The primary key of the part's source when the patch's diff can be scoped by its STAMP column (a gold table
    with one), else None (every recent row of both sides is compared)."""
    if not part.source.startswith("gold.") or STAMP not in columns:
        return None
    key = merge_on_read.readers_key(part.source)
    return key if key and set(key) <= set(columns) else None


def _patched(settings: Settings, con: duckdb.DuckDBPyConnection, name: str, part: Part, view: str,
             columns: list[str], before: RecentFile, cut: datetime) -> tuple[RecentFile, dict[str, Any]]:
    """A copy of the previous file `before` patched into the table's recent rows (module docstring, 1-3), and the
    rows it removed and added (with a scoped diff, also the source rows it "examined"). Raises _Unchanged when the
    previous file holds them already, _Rewrite when the file should be written again."""
    hid = new_file_id(f"{name}-recent-")
    source = recent_sql(part, view)
    params = recent_params(part, cut)
    hashed = _hashes(columns)
    on = "o._h = n._h AND o._g = n._g"
    key = _scope(part, columns)

    def fill(alias: str) -> tuple[int, int, int, int | None]:
        held = [r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = $db AND table_name = $t "
            "ORDER BY column_index", {"db": alias, "t": name}).fetchall()]
        if held != list(columns):
            raise _Rewrite(f"its columns {held} are not {list(columns)}")
        held_rows, appended = con.execute(f"SELECT row_count, appended FROM {alias}.{META}").fetchone()
        sorted_newest = None if key is None else _sorted_newest(con, alias)
        if sorted_newest is not None:  # the patches' rows the file holds (module docstring)
            appended = _appended_held(con, alias, name, sorted_newest)
        if appended and appended >= REWRITE_SHARE * held_rows:  # decided before the diff (it would be wasted)
            raise _Rewrite(f"{appended} of its {held_rows} rows were appended by patches")
        newest = None if key is None else con.execute(f"SELECT max({STAMP}) FROM {alias}.{name}").fetchone()[0]
        try:
            if newest is None:  # every row of both sides
                old_rows, new_rows, scoped = f"SELECT rowid AS _r, * FROM {alias}.{name}", f"({source})", params
            else:  # the source's rows stamped after the file's newest stamp; the file's rows of their keys or gone keys
                keys = ", ".join(key)
                scoped = {**params, "newest": newest}
                new_rows = f"(SELECT * FROM ({source}) WHERE {STAMP} > $newest)"
                con.execute(f"CREATE TEMP TABLE _rp_keys AS SELECT {keys} FROM {view} WHERE {STAMP} > $newest",
                            {"newest": newest})
                stamped = int(con.execute("SELECT count(*) FROM _rp_keys").fetchone()[0])
                if stamped >= REWRITE_SHARE * held_rows:  # changed rows a patch would append, then rewrite next time
                    raise _Rewrite(f"{stamped} source rows are stamped after its newest row's {newest}")
                old_rows = (f"SELECT o.rowid AS _r, o.* FROM {alias}.{name} o SEMI JOIN _rp_keys k ON "
                            + " AND ".join(f"o.{c} = k.{c}" for c in key))
                rows, printed = fingerprint(con, source, params, columns=columns)
            con.execute(f"CREATE TEMP TABLE _rp_old AS SELECT _r, {hashed} FROM ({old_rows})")
            con.execute(f"CREATE TEMP TABLE _rp_new AS SELECT {hashed} FROM {new_rows}", scoped)
            if newest is None:
                examined = None
                rows, total = con.execute("SELECT count(*), coalesce(sum(_h::HUGEINT), 0) FROM _rp_new").fetchone()
                printed = f"{rows}:{total}"
            else:
                examined = int(con.execute("SELECT count(*) FROM _rp_new").fetchone()[0])
                kept = held_rows - int(con.execute("SELECT count(*) FROM _rp_old").fetchone()[0])
                # the file's other rows are the source's unstamped ones unless the file holds keys the source's recent
                # part no longer has (the cut moved on, a story was folded into another): only then are those keys
                # looked for (a hash table of every recent key, ~0.4 s of segment insights at 10M views a day)
                if kept != rows - examined:
                    con.execute(f"INSERT INTO _rp_keys SELECT {keys} FROM {alias}.{name} "
                                f"EXCEPT SELECT {keys} FROM ({source})", params)
                    con.execute(f"CREATE OR REPLACE TEMP TABLE _rp_old AS SELECT _r, {hashed} FROM ({old_rows})")
            # one join for both sides: the held rows no source row equals (_r), the source rows no held row equals
            # (_r null, their hashes)
            con.execute(f"CREATE TEMP TABLE _rp_diff AS SELECT o._r, n._h, n._g FROM _rp_old o FULL JOIN _rp_new n "
                        f"ON {on} WHERE o._r IS NULL OR n._h IS NULL")
            removed, added = (int(v) for v in con.execute(
                "SELECT count(_r), count(*) - count(_r) FROM _rp_diff").fetchone())
            if held_rows - removed + added != rows:  # rows repeated in the source or the file: never patched
                raise _Rewrite(f"{held_rows} - {removed} + {added} rows are not the source's {rows}")
            if not removed and not added and newest is None:
                raise _Unchanged
            if removed:
                con.execute(f"DELETE FROM {alias}.{name} WHERE rowid IN (SELECT _r FROM _rp_diff WHERE _r IS NOT NULL)")
            if added:  # the source's rows again, only those of the added hashes kept (a small build side)
                con.execute(f"INSERT INTO {alias}.{name} SELECT {', '.join(columns)} FROM "
                            f"(SELECT *, {hashed} FROM {new_rows}) n SEMI JOIN "
                            f"(SELECT _h, _g FROM _rp_diff WHERE _r IS NULL) a "
                            f"ON n._h = a._h AND n._g = a._g ORDER BY {part.order_by}", scoped)
        finally:
            for temp in ("_rp_old", "_rp_new", "_rp_diff", "_rp_keys"):
                con.execute(f"DROP TABLE IF EXISTS {temp}")
        n, patched = fingerprint(con, f"SELECT * FROM {alias}.{name}", columns=columns)
        if patched != printed:  # e.g. rows repeated in the source or the file, or a row changed without a newer
            # stamp: never served patched
            raise _Rewrite(f"the patched file's {n} rows do not hash as the source's {rows} rows")
        if not removed and not added:  # the scoped diff found nothing, and the check shows the file holds them
            raise _Unchanged
        held_now = (int(appended) + added if sorted_newest is None
                    else _appended_held(con, alias, name, sorted_newest))
        _meta(con, alias, name, cut, int(rows), held_now, sorted_newest)
        return int(rows), removed, added, examined

    rows, removed, added, examined = write_file(settings, con, hid, fill,
                                                start_from=history_path(settings, before.id))
    log.info("recent %s: %d %s rows anchored at/after %s, patched from %s (%d removed, %d added%s)", hid, rows, name,
             cut.isoformat(), before.id, removed, added,
             "" if examined is None else f", {examined} source rows examined")
    made: dict[str, Any] = {"made": "patched", "removed": removed, "added": added}
    return RecentFile(hid, cut, rows), made if examined is None else {**made, "examined": examined}

"""Delta Lake I/O through delta-rs (no Spark): idempotent appends, reads, versions."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError
from deltalake.transaction import AddAction

from storylake import contracts, latest_rows
from storylake.settings import Settings


def exists(path: Path) -> bool:
    return (path / "_delta_log").is_dir()


def open_table(path: Path) -> DeltaTable | None:
    if not exists(path):
        return None
    try:
        return DeltaTable(str(path))
    except TableNotFoundError:
        return None


def add_actions(dt: DeltaTable) -> pa.Table:
    """The data files of a Delta table version with their flattened statistics (`min.<column>`, `num_records`...)."""
    return pa.table(dt.get_add_actions(flatten=True))


def nothing_from(path: Path, column: str, t: datetime) -> bool:
    """Every row of the Delta table at `path` has `column` before `t` or null, by its files' statistics (no data
    read): True without the table or without files; False when a file lacks the statistics to tell."""
    table = add_actions_cached(path)
    if table is None:
        return True
    adds = table[1].to_pydict()
    count = len(adds.get("path", []))
    highs = adds.get(f"max.{column}", [None] * count)
    nulls = adds.get(f"null_count.{column}", [None] * count)
    records = adds.get("num_records", [None] * count)
    for high, null, n in zip(highs, nulls, records, strict=True):
        if high is None:
            if null is None or n is None or null < n:  # no statistics, or values it does not describe
                return False
        elif high >= t:
            return False
    return True


def version(path: Path) -> int | None:
    dt = open_table(path)
    return None if dt is None else dt.version()


def rows_unchanged_since(path: Path, version: int, until: int | None = None) -> bool:
    """The Delta table at `path` holds the rows of its `version` at its latest version (`until`: at that version, not
    before `version`): no commit between added or removed data (a compaction's add and remove actions say dataChange
    false; a commit without them, e.g. a vacuum's, changes no rows) or changed the metadata. Read from the commits'
    JSON files (False when one is missing)."""
    newest = _newest_commit(path)
    if newest is None:
        return False
    latest = newest if until is None else until
    if not version <= latest <= newest:
        return False
    actions = _data_actions(path, version, latest)
    return actions is not None and not any(
        action[kind].get("dataChange", True) for action in actions for kind in ("add", "remove") if kind in action)


def _newest_commit(path: Path) -> int | None:
    """The version of the table's newest JSON commit (-1 when it has none), None without a log."""
    files = _log_files(path)
    if files is None:
        return None
    return max((int(name[:-5]) for name, _, _ in files if name.endswith(".json") and name[:-5].isdigit()), default=-1)


def _data_actions(path: Path, version: int, until: int) -> list[dict[str, Any]] | None:
    """The actions of the table's commits after `version` up to `until`, in order, from their JSON files; None when
    one is missing or changes the metadata or protocol (then any row may have changed)."""
    out: list[dict[str, Any]] = []
    for v in range(version + 1, until + 1):
        try:
            lines = (path / "_delta_log" / f"{v:020d}.json").read_text().splitlines()
        except FileNotFoundError:
            return None
        for line in lines:
            action = json.loads(line)
            if "metaData" in action or "protocol" in action:
                return None
            out.append(action)
    return out


Range = tuple[Any, Any]  # a data file's [min, max] of a column (None, None: it may hold any value)


def changed_ranges(path: Path, version: int, until: int, column: str) -> list[Range] | None:
    """Where the rows of the Delta table at `path` changed from `version` to `until`: the [min, max] of `column` of
    every data file a commit in between added or removed with dataChange (a compaction's actions say false: its rows
    are unchanged), from the commits' statistics or, for a removed file, the statistics `version` held for it (every
    row that changed lies within one of them; a file whose `column` is null in every row gives none). Values are
    dates for a date column and UTC datetimes otherwise; a file without statistics gives (None, None). None when a
    commit or `version`'s log is missing, or a commit changed the metadata (anything may have changed)."""
    if not version <= until:
        return None
    try:
        base = add_actions(DeltaTable(str(path), version=version)).to_pydict()
    except (DeltaError, OSError):  # that version's log is gone (log retention) or unreadable: anything may differ
        return None
    actions = _data_actions(path, version, until)
    if actions is None:
        return None
    files = base.get("path", [])

    def stat(name: str) -> list[Any]:
        return base.get(name, [None] * len(files))

    known: dict[str, Range | None] = {
        file: None if null is not None and rows is not None and null == rows else (low, high)
        for file, null, rows, low, high in zip(files, stat(f"null_count.{column}"), stat("num_records"),
                                               stat(f"min.{column}"), stat(f"max.{column}"), strict=True)}
    out: list[Range] = []
    for action in actions:
        kind = "add" if "add" in action else "remove" if "remove" in action else None
        if kind is None:
            continue
        file, changes = action[kind]["path"], action[kind].get("dataChange", True)
        if kind == "add":
            known[file] = _stats_range(action["add"].get("stats"), column)
        elif not changes:
            continue
        elif file not in known:  # a removed file whose statistics neither version nor commit held
            return None
        if changes and (found := known[file]) is not None:
            out.append(found)
    return out


def appended_files(path: Path, version: int, until: int | None = None) -> list[str] | None:
    """The data files (URIs) whose rows the Delta table at `path` gained since `version`, when it only gained rows:
    every commit after it added files (appends) or rewrote rows unchanged (a compaction's actions say dataChange
    false), and every file an append added is still in the latest version (not compacted with older rows since).
    None otherwise (a commit removed rows, changed the metadata or is missing). `until`: up to that version (read at
    it) instead of the latest."""
    newest = _newest_commit(path)
    latest = newest if until is None or newest is None else until
    if latest is None or newest is None or not version <= latest <= newest:
        return None
    actions = _data_actions(path, version, latest)
    if actions is None:
        return None
    added: list[str] = []
    for action in actions:
        if "remove" in action and action["remove"].get("dataChange", True):
            return None
        if "add" in action and action["add"].get("dataChange", True):
            added.append(action["add"]["path"])
    if not added:
        return []
    # a data file's name (a fresh uuid) is unique in the table; the log holds its path URL-encoded once more
    uris = {uri.rsplit("/", 1)[-1]: uri for uri in DeltaTable(str(path), version=until).file_uris()}
    names = [unquote(name).rsplit("/", 1)[-1] for name in added]
    if any(name not in uris for name in names):
        return None
    return [uris[name] for name in names]


def _stats_range(stats: str | None, column: str) -> Range | None:
    """The [min, max] of `column` in an add action's JSON statistics (None when every row's value is null; (None,
    None) without statistics). Timestamps there are cut to milliseconds: the max is moved up by 1 ms."""
    if not stats:
        return (None, None)
    parsed = json.loads(stats)
    rows, null = parsed.get("numRecords"), parsed.get("nullCount", {}).get(column)
    if rows is not None and null == rows:
        return None
    lo, hi = parsed.get("minValues", {}).get(column), parsed.get("maxValues", {}).get(column)
    if isinstance(lo, int | float) and isinstance(hi, int | float) and not isinstance(lo, bool):
        return lo, hi
    if not isinstance(lo, str) or not isinstance(hi, str):
        return (None, None)
    if len(lo) == 10 and len(hi) == 10:  # a date
        return date.fromisoformat(lo), date.fromisoformat(hi)
    low, high = datetime.fromisoformat(lo), datetime.fromisoformat(hi)
    return (low.replace(tzinfo=UTC) if low.tzinfo is None else low.astimezone(UTC),
            (high.replace(tzinfo=UTC) if high.tzinfo is None else high.astimezone(UTC)) + timedelta(milliseconds=1))


def version_files(path: Path, version: int) -> list[str] | None:
    """The data files (URIs) of the table's `version`, None when one of them is gone (a vacuum removes the files of
    versions compacted away more than its retention ago)."""
    uris = DeltaTable(str(path), version=version).file_uris()
    return uris if files_present(uris) else None


def version_stats(path: Path, version: int, column: str) -> tuple[int, Any] | None:
    """(rows, the largest value of `column`) of the table's `version`, from its files' statistics (no data read); None
    when a file lacks them. The largest value is None for a version without rows."""
    adds = add_actions(DeltaTable(str(path), version=version)).to_pydict()
    records = adds.get("num_records", [])
    highs = adds.get(f"max.{column}", [None] * len(records))
    if any(n is None for n in records) or any(h is None for h, n in zip(highs, records, strict=True) if n):
        return None
    values = [h for h, n in zip(highs, records, strict=True) if n]
    return int(sum(records)), max(values, default=None)


def files_present(uris: list[str]) -> bool:
    """Every one of a table version's data files (local URIs) is still there."""
    return all(Path(u.removeprefix("file://")).exists() for u in uris)


def read_arrow(path: Path, columns: list[str] | None = None) -> pa.Table | None:
    dt = open_table(path)
    return None if dt is None else dt.to_pyarrow_table(columns=columns)


# Small ops tables a run reads many times (ops.increments, ops.audited_versions: a few dozen reads a run, ~16 ms each
# and growing with the table), as last read, by path, with the name, size and modification time of each file in its
# _delta_log then (~0.2 ms to list): a Delta table's contents change only with its log's files (a table removed and
# written again at the same path has files of other times).
_read: dict[str, tuple[tuple[tuple[str, int, int], ...], Any]] = {}


def _log_files(path: Path) -> tuple[tuple[str, int, int], ...] | None:
    try:
        with os.scandir(path / "_delta_log") as entries:
            return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries))
    except FileNotFoundError:
        return None


def _cached(path: Path, kind: str, load: Callable[[], Any]) -> Any:
    """load()'s result for the Delta table at `path`, kept (per `kind`) while the table's _delta_log is unchanged."""
    files = _log_files(path)
    key = f"{kind}:{path}"
    held = _read.get(key)
    if files is not None and held is not None and held[0] == files:
        return held[1]
    got = load()
    if files is not None and _log_files(path) == files:  # no commit during the read
        _read[key] = (files, got)
    return got


def add_actions_cached(path: Path) -> tuple[str, pa.Table] | None:
    """(table URI, add_actions of its current version) of the Delta table at `path`, opened again only when its
    _delta_log changed since the last call in this process (a run plans its bronze reads from them a few dozen times;
    opening a bronze table, ~170 commits a week, costs ~10 ms); None without the table."""

    def load() -> tuple[str, pa.Table] | None:
        dt = open_table(path)
        return None if dt is None else (dt.table_uri, add_actions(dt))

    return _cached(path, "add-actions", load)


def read_arrow_cached(path: Path) -> pa.Table | None:
    """read_arrow(path) (every column), read again only when the table's _delta_log changed since the last read in
    this process. The table returned is shared between callers (Arrow tables are immutable)."""
    return _cached(path, "rows", lambda: read_arrow(path))


def committed_txn(path: Path, app_id: str) -> int:
    """Highest app-transaction version committed to the table for app_id (-1 if none)."""
    dt = open_table(path)
    if dt is None:
        return -1
    v = dt.transaction_version(app_id)
    return -1 if v is None else int(v)


def _once(app_id: str, txn_version: int) -> CommitProperties:
    """Commit properties recording the app transaction (app_id, txn_version) that makes a commit exactly-once."""
    return CommitProperties(
        app_transactions=[Transaction(app_id=app_id, version=txn_version)],
        custom_metadata={"storylake.app_id": app_id, "storylake.txn_version": str(txn_version)},
    )


def append_once(path: Path, data: pa.Table, *, app_id: str, txn_version: int, merge_schema: bool = False) -> bool:
    """Append `data` exactly once per (app_id, txn_version): a replay after a crash is a no-op.

    Returns True when a commit was written. Empty tables still commit (creating the table if needed)
    so the transaction version advances and the table exists for readers. `merge_schema`: columns `data` has and
    the table lacks are added (older rows read them as null).
    """
    if committed_txn(path, app_id) >= txn_version:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    write_deltalake(
        str(path),
        data,
        mode="append",
        commit_properties=_once(app_id, txn_version),
        **({"schema_mode": "merge"} if merge_schema else {}),
    )
    return True


@dataclass(frozen=True)
class DataFile:
    """A Parquet file written into a table's folder, not yet part of the table until committed."""

    name: str  # relative to the table folder
    size: int
    modified_ms: int
    rows: int
    stats: str  # Delta file statistics (JSON)


def new_data_file_name(prefix: str) -> str:
    """A data file name no other write attempt can produce: `<prefix>-<uuid4>.parquet`. Committed data files are
    immutable: a resumed or concurrent writer writes new names, never over a file the Delta log references."""
    return f"{prefix}-{uuid.uuid4().hex}.parquet"


def write_data_file(
    table_dir: Path, name: str, data: pa.Table, *, dictionary: list[str] | None = None,
    row_group_rows: int | None = None,
) -> DataFile:
    """Write `data` as one new Parquet file `name` in `table_dir` (refusing to replace an existing file) with its
    complete Delta statistics (file_stats).

    `dictionary`: the columns worth dictionary-encoding (few distinct values); None = Parquet's default (all).
    Encoding ids and counts as dictionaries first, to fall back later, doubles the write time for nothing.
    `row_group_rows`: rows per row group (None: pyarrow's default, 1Mi rows).
    """
    table_dir.mkdir(parents=True, exist_ok=True)
    path = table_dir / name
    if path.exists():
        raise FileExistsError(f"{path} exists: data files are never rewritten (use new_data_file_name)")
    pq.write_table(data, path, compression="snappy", use_dictionary=True if dictionary is None else dictionary,
                   row_group_size=row_group_rows)
    st = os.stat(path)
    return DataFile(name, st.st_size, int(st.st_mtime * 1000), data.num_rows, file_stats(data))


def file_stats(data: pa.Table) -> str:
    """Delta statistics of a data file, as delta-rs writes them: numRecords, nullCount of every column, and
    minValues/maxValues of every stats-eligible column (integers, floats, booleans, strings, dates, timestamps)
    that has a non-null value. Strings are exact (as delta-rs writes them; bronze strings are bounded by their
    contracts); timestamps are ISO-8601 UTC at millisecond precision, the minimum rounded down and the maximum
    rounded up, so both stay true bounds.

    Every eligible column gets its bounds: a reader that prunes files on a column without statistics (delta-rs
    issue #3173, when the table also has a nested column) would otherwise drop matching files.
    """
    mins: dict[str, object] = {}
    maxs: dict[str, object] = {}
    for field in data.schema:
        if not stats_eligible(field.type) or data.num_rows == 0:
            continue
        col = data.column(field.name)
        if col.null_count == len(col):
            continue
        mm = pc.min_max(col).as_py()
        lo, hi = mm["min"], mm["max"]
        if pa.types.is_floating(field.type) and (lo != lo or hi != hi):  # NaN: no usable bounds
            continue
        mins[field.name], maxs[field.name] = _stat_value(lo, up=False), _stat_value(hi, up=True)
    nulls = {f.name: data.column(f.name).null_count for f in data.schema}
    return json.dumps({"numRecords": data.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls})


def stats_eligible(t: pa.DataType) -> bool:
    """Columns of this type carry min/max Delta statistics (file_stats writes them; lake_health checks them)."""
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_string(t)
            or pa.types.is_large_string(t) or pa.types.is_date(t) or pa.types.is_timestamp(t))


def _stat_value(v: object, *, up: bool) -> object:
    if isinstance(v, datetime):
        v = v.astimezone(UTC) if v.tzinfo else v.replace(tzinfo=UTC)
        ms = v.replace(microsecond=v.microsecond // 1000 * 1000)
        if up and ms != v:
            ms += timedelta(milliseconds=1)
        return ms.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms.microsecond // 1000:03d}Z"
    if isinstance(v, date):
        return v.isoformat()
    return v


def commit_files_once(
    path: Path, files: list[DataFile], schema: pa.Schema, *, app_id: str, txn_version: int
) -> bool:
    """Add already written data files to the table in one commit, exactly once per (app_id, txn_version),
    creating the table (protocol 1/2) first if needed. True when a commit was written."""
    dt = open_table(path)  # once: reading the app transaction and committing
    committed = None if dt is None else dt.transaction_version(app_id)
    if committed is not None and committed >= txn_version:
        return False
    dt = dt or DeltaTable.create(str(path), schema=schema)
    dt.create_write_transaction(
        [AddAction(f.name, f.size, {}, f.modified_ms, True, f.stats) for f in files],
        mode="append",
        schema=schema,
        commit_properties=_once(app_id, txn_version),
    )
    return True


def arrow_table(key: str, rows: list[dict[str, Any]] | dict[str, Any]) -> pa.Table:
    """Rows (list of dicts) or columns (dict of arrays) -> a table with exactly the contract's schema (key:
    layer.name). A table stored as restated rows (storylake.latest_rows) gets its storage columns (flag, tombstone
    mark) false where not given: rows written whole restate and remove nothing."""
    schema = contracts.get(key).arrow_schema()
    if isinstance(rows, dict):
        n = len(next(iter(rows.values()))) if rows else 0
        arrays = [
            pa.array(rows[f.name], type=f.type) if f.name in rows else pa.nulls(n, type=f.type) for f in schema
        ]
        table = pa.Table.from_arrays(arrays, schema=schema)
    else:
        table = pa.Table.from_pylist(rows, schema=schema)
    growing = latest_rows.growing(key)
    for column in growing.storage_columns if growing is not None else ():
        at = table.schema.get_field_index(column)
        table = table.set_column(at, schema.field(at), pc.fill_null(table.column(at), False))
    return table


def write_table(settings: Settings, key: str, data: pa.Table | list[dict[str, Any]], mode: str = "overwrite",
                schema_mode: str | None = None) -> None:
    """Write rows or an Arrow table as the contract table `key` (layer.name) of the lake, through delta-rs (hand-built
    lakes: tests, the dashboards' sample lake, the serving benchmark). `schema_mode="merge"`: an append adds the
    contract's columns the stored table lacks."""
    layer, name = key.split(".")
    path = settings.table_path(layer, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = data if isinstance(data, pa.Table) else arrow_table(key, data)
    write_deltalake(str(path), table, mode=mode, schema_mode=schema_mode)  # type: ignore[arg-type]

"""Delta Lake I/O through delta-rs (no Spark): idempotent appends, reads, versions."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError
from deltalake.transaction import AddAction


def exists(path: Path) -> bool:
    return (path / "_delta_log").is_dir()


def open_table(path: Path) -> DeltaTable | None:
    if not exists(path):
        return None
    try:
        return DeltaTable(str(path))
    except TableNotFoundError:
        return None


def version(path: Path) -> int | None:
    dt = open_table(path)
    return None if dt is None else dt.version()


def read_arrow(path: Path, columns: list[str] | None = None) -> pa.Table | None:
    dt = open_table(path)
    return None if dt is None else dt.to_pyarrow_table(columns=columns)


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


def append_once(path: Path, data: pa.Table, *, app_id: str, txn_version: int) -> bool:
    """Append `data` exactly once per (app_id, txn_version): a replay after a crash is a no-op.

    Returns True when a commit was written. Empty tables still commit (creating the table if needed)
    so the transaction version advances and the table exists for readers.
    """
    if committed_txn(path, app_id) >= txn_version:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    write_deltalake(
        str(path),
        data,
        mode="append",
        commit_properties=_once(app_id, txn_version),
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


def write_data_file(
    table_dir: Path, name: str, data: pa.Table, *, dictionary: list[str] | None = None
) -> DataFile:
    """Write `data` as one Parquet file in `table_dir` (overwriting a file of the same name) with its Delta
    statistics: numRecords, nullCount of every column, min/max of the integer columns (exact; timestamp and
    string bounds are left out rather than written truncated).

    `dictionary`: the columns worth dictionary-encoding (few distinct values); None = Parquet's default (all).
    Encoding ids and counts as dictionaries first, to fall back later, doubles the write time for nothing.
    """
    table_dir.mkdir(parents=True, exist_ok=True)
    path = table_dir / name
    pq.write_table(data, path, compression="snappy", use_dictionary=True if dictionary is None else dictionary)
    st = os.stat(path)
    mins: dict[str, int] = {}
    maxs: dict[str, int] = {}
    for field in data.schema:
        if pa.types.is_integer(field.type) and data.num_rows:
            mm = pc.min_max(data.column(field.name)).as_py()
            if mm["min"] is not None:
                mins[field.name], maxs[field.name] = mm["min"], mm["max"]
    nulls = {f.name: data.column(f.name).null_count for f in data.schema}
    stats = json.dumps({"numRecords": data.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls})
    return DataFile(name, st.st_size, int(st.st_mtime * 1000), data.num_rows, stats)


def commit_files_once(
    path: Path, files: list[DataFile], schema: pa.Schema, *, app_id: str, txn_version: int
) -> bool:
    """Add already written data files to the table in one commit, exactly once per (app_id, txn_version),
    creating the table (protocol 1/2) first if needed. True when a commit was written."""
    if committed_txn(path, app_id) >= txn_version:
        return False
    dt = open_table(path) or DeltaTable.create(str(path), schema=schema)
    dt.create_write_transaction(
        [AddAction(f.name, f.size, {}, f.modified_ms, True, f.stats) for f in files],
        mode="append",
        schema=schema,
        commit_properties=_once(app_id, txn_version),
    )
    return True

"""Delta Lake I/O through delta-rs (no Spark): idempotent appends, reads, versions."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError


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
        commit_properties=CommitProperties(
            app_transactions=[Transaction(app_id=app_id, version=txn_version)],
            custom_metadata={"storylake.app_id": app_id, "storylake.txn_version": str(txn_version)},
        ),
    )
    return True

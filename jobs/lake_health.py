"""Lake health: every data file the Delta log references is there, whole and readable, with complete statistics;
and the repair of tables whose files lack statistics (delta-rs, no Spark).

`check_lake` is what `storylake check` prints; `maintain` runs `repair_stats` first on every table that needs it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from storylake import lake
from storylake.lake import stats_eligible

log = logging.getLogger(__name__)


@dataclass
class TableHealth:
    table: str  # path relative to the lake
    version: int | None = None
    files: int = 0
    unreadable: dict[str, str] = field(default_factory=dict)  # data file -> reason
    missing_stats: dict[str, list[str]] = field(default_factory=dict)  # data file -> columns without bounds
    error: str | None = None  # the table itself cannot be opened

    @property
    def ok(self) -> bool:
        return self.error is None and not self.unreadable

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "version": self.version, "files": self.files, "ok": self.ok,
                "unreadable": self.unreadable, "missing_stats": {k: v for k, v in self.missing_stats.items()},
                "error": self.error}


def table_health(path: Path, name: str | None = None) -> TableHealth:
    """Check every data file of the table's current version: present, of the size the log records, a readable
    Parquet footer, and min/max statistics for every stats-eligible column that is not entirely null."""
    from deltalake import DeltaTable

    out = TableHealth(table=name or path.name)
    try:
        dt = DeltaTable(str(path))
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the check must cover every table
        out.error = f"{type(exc).__name__}: {exc}"
        return out
    out.version = dt.version()
    schema = pa.schema(dt.schema().to_arrow())  # type: ignore[arg-type]
    partitions = set(dt.metadata().partition_columns)  # their values are in the log, not in statistics
    indexed = indexed_columns(schema, dt.metadata().configuration)
    eligible = [f.name for f in schema if stats_eligible(f.type) and f.name not in partitions and f.name in indexed]
    actions = pa.table(dt.get_add_actions(flatten=False)).to_pylist()
    out.files = len(actions)
    for a in actions:
        rel = a["path"]
        file = path / rel
        try:
            size = file.stat().st_size
        except FileNotFoundError:
            out.unreadable[rel] = "missing"
            continue
        if size != a["size_bytes"]:
            out.unreadable[rel] = f"size {size} bytes, the log records {a['size_bytes']}"
            continue
        try:
            pq.ParquetFile(file).metadata  # noqa: B018 - reads and checks the footer
        except Exception as exc:  # noqa: BLE001
            out.unreadable[rel] = f"{type(exc).__name__}: {exc}"
            continue
        missing = _missing_bounds(a, eligible)
        if missing:
            out.missing_stats[rel] = missing
    return out


def indexed_columns(schema: pa.Schema, configuration: dict[str, str]) -> set[str]:
    """The top-level columns Delta writers keep statistics for: those within the first
    `delta.dataSkippingNumIndexedCols` leaf columns (default 32, -1 all; a struct counts its leaves) of the schema.
    gold.segment_insights' 33rd column (its restated flag, storylake/latest_rows.py) has none."""
    limit = int(configuration.get("delta.dataSkippingNumIndexedCols", "32"))

    def leaves(t: pa.DataType) -> int:
        return sum(leaves(t.field(i).type) for i in range(t.num_fields)) if pa.types.is_struct(t) else 1

    out: set[str] = set()
    seen = 0
    for f in schema:
        if 0 <= limit <= seen:
            break
        out.add(f.name)
        seen += leaves(f.type)
    return out


def _missing_bounds(action: dict[str, Any], eligible: list[str]) -> list[str]:
    """Eligible columns of an add action (delta-rs get_add_actions(flatten=False) row) without a min bound while
    not entirely null."""
    rows = action.get("num_records")
    mins, nulls = action.get("min") or {}, action.get("null_count") or {}
    if rows is None:
        return list(eligible)
    return [c for c in eligible if mins.get(c) is None and nulls.get(c) != rows]


def repair_stats(path: Path) -> int:
    """Rewrite the data files of a table that lack statistics into files with complete ones (the same rows, with
    storylake.lake's statistics), in one commit that removes and adds them with dataChange false, as a compaction
    does: readers and the audit see a table whose rows did not change (storylake.lake.rows_unchanged_since), so the
    gates' last good version carries over and a merge-on-read table's base stays its base. App transactions (the
    ingest's exactly-once markers) are table state and survive. Returns the files rewritten (0 when none lacked
    statistics)."""
    import time

    from deltalake import DeltaTable
    from deltalake.transaction import AddAction, RemoveAction

    health = table_health(path)
    if not health.ok:
        raise RuntimeError(f"{path}: cannot repair statistics of an unhealthy table: "
                           f"{health.error or next(iter(health.unreadable.items()))}")
    if not health.missing_stats:
        return 0
    dt = DeltaTable(str(path))
    dataset = dt.to_pyarrow_dataset()  # the table's logical schema
    root = Path(dt.table_uri.removeprefix("file://"))
    sizes = {a["path"]: a["size_bytes"] for a in pa.table(dt.get_add_actions(flatten=False)).to_pylist()}
    now_ms = int(time.time() * 1000)
    actions: list[AddAction | RemoveAction] = []
    for fragment in dataset.get_fragments():
        rel = Path(fragment.path).relative_to(root).as_posix() if fragment.path.startswith("/") else fragment.path
        if rel not in health.missing_stats:
            continue
        added = lake.write_data_file(path, lake.new_data_file_name("part-repaired"), fragment.to_table())
        actions.append(RemoveAction(rel, False, now_ms, sizes[rel]))
        actions.append(AddAction(added.name, added.size, {}, added.modified_ms, False, added.stats))
    if len(actions) != 2 * len(health.missing_stats):
        raise RuntimeError(f"{path}: {len(health.missing_stats)} files lack statistics, but the table's dataset "
                           f"lists {len(actions) // 2} of them; nothing committed")
    dt.create_write_transaction(actions, mode="append", schema=dataset.schema)
    log.info("%s: rewrote %d data files without complete statistics", path, len(health.missing_stats))
    return len(health.missing_stats)

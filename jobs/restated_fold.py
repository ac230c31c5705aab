"""The daily fold of tables stored as restated rows (storylake.latest_rows: gold.segment_insights, gold.story_insights).

An hourly run appends the rows it changed, flagged `restated` when their key already had a row (at 10M views a day
~0.2M segment insights an hour, ~5M a day for ~1.4M segments). Readers take each key's latest row among them, which
costs them an aggregate of the flagged rows: left alone, those would pile up for as long as the table keeps rows
(2 years). The daily maintenance folds them away, before compaction (jobs/maintenance.py):
  1. the flagged rows' keys (a scan of the flag column: row groups without a flagged row are skipped by their
     statistics);
  2. the files that may hold a row of one of those keys, by their key column's statistics (a key's rows are written
     by runs hours apart, near each other in the key's order: story and segment ids grow with time);
  3. in those files, each key's superseded rows (below its latest counter) and its latest row when that is a
     tombstone (the key has no row then); every file holding such a row or a flagged one is written again without
     them and with the flag false, one new file per old one (same rows order, same row groups), in one commit.
The rows readers see are the same before and after. On a lake with write-audit-publish, a fold of a table's last good
version is recorded as good too (storylake.audit.carry_over_fold), so consumers read it at once and the next hourly
run appends to it; a table whose newest version is not its last good one (a failed gate since) is not folded (the
next run rewrites its slice from the good version, which folds it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from jobs.day_clustering import ROW_GROUP_ROWS, file_uri
from storylake import audit, lake
from storylake.latest_rows import RESTATED_TABLES, LatestRows
from storylake.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class FoldResult:
    table: str  # contract key
    flagged_rows: int = 0  # restated rows found
    rows_removed: int = 0  # superseded rows and tombstones dropped
    files_removed: int = 0
    files_added: int = 0
    version_before: int | None = None
    version_after: int | None = None  # None: nothing committed
    skipped: str | None = None  # why the table was not folded
    duration_s: float = 0.0
    error: str | None = None  # the fold failed (nothing committed)


def fold_all(settings: Settings) -> list[FoldResult]:
    """Fold every table stored as restated rows (module docstring); on a lake with write-audit-publish, the folds of
    last good versions are recorded as good. A table whose fold fails is recorded with its error (the others are
    still folded)."""
    results = []
    for table in RESTATED_TABLES:
        try:
            results.append(fold(settings, table))
        except Exception as exc:  # noqa: BLE001 - recorded; jobs/maintenance.py raises after the other tables
            log.warning("fold of %s failed: %s: %s", table.table, type(exc).__name__, exc)
            results.append(FoldResult(table.table, error=f"{type(exc).__name__}: {exc}"))
    folded = {r.table: (r.version_before, r.version_after) for r in results
              if r.version_after is not None and r.version_before is not None}
    if folded and audit.enabled(settings):
        audit.carry_over_fold(settings, folded)  # type: ignore[arg-type]
    return results


def fold(settings: Settings, table: LatestRows) -> FoldResult:
    """Fold one table (module docstring); what it did."""
    t0 = time.perf_counter()
    out = FoldResult(table.table)
    path = settings.table_path(*table.table.split("."))
    dt = lake.open_table(path)
    if dt is None:
        out.skipped = "no table"
        return out
    out.version_before = dt.version()
    if audit.enabled(settings) and audit.last_good_version(settings, table.table) != dt.version():
        out.skipped = "its newest version did not pass its gate"
        log.info("fold %s: skipped (%s)", table.table, out.skipped)
        return out
    assert table.flag is not None
    if len(table.key) != 1:
        raise ValueError(f"fold {table.table}: a restated table has one key column, not {table.key}")
    key = table.key[0]
    dataset = dt.to_pyarrow_dataset()
    flagged = dataset.to_table(columns=[key], filter=ds.field(table.flag) == pa.scalar(True))
    out.flagged_rows = flagged.num_rows
    if not flagged.num_rows:
        out.duration_s = time.perf_counter() - t0
        return out
    keys = np.unique(flagged.column(key).to_numpy())
    candidates = _holding(dt, key, keys)
    root = dt.table_uri.rstrip("/")
    by_uri = {file_uri(fr.path, root): fr for fr in dataset.get_fragments()}
    fragments = [by_uri[file_uri(f.path, root)] for f in candidates if file_uri(f.path, root) in by_uri]
    if len(fragments) != len(candidates):
        raise RuntimeError(f"fold {table.table}: {len(candidates)} files to read, the dataset lists {len(fragments)}")
    # each key's latest counter among its rows in those files (every row of a flagged key is in one of them)
    marks = table.storage_columns
    parts = [fr.to_table(columns=[key, table.counter, *marks], schema=dataset.schema) for fr in fragments]
    top = pa.concat_tables(parts).group_by([key]).aggregate([(table.counter, "max")])
    removes: list[_File] = []
    added: list[lake.DataFile] = []
    for file, fragment, part in zip(candidates, fragments, parts, strict=True):
        joined = part.append_column("_i", pa.array(np.arange(part.num_rows))).join(top, [key])
        # a superseded row, or a key's latest row that is a tombstone (the key has no row then)
        dropping = pc.less(joined.column(table.counter), joined.column(f"{table.counter}_max"))
        if table.removed is not None:
            dropping = pc.or_(dropping, pc.fill_null(joined.column(table.removed), False))
        dropping = pc.fill_null(dropping, False)
        dropped = int(pc.sum(pc.cast(dropping, pa.int64())).as_py() or 0)
        if not dropped and not pc.any(pc.fill_null(part.column(table.flag), False)).as_py():
            continue  # nothing to drop, no flag to clear: the file stays
        keep = np.ones(part.num_rows, dtype=bool)
        keep[joined.column("_i").filter(dropping).to_numpy()] = False
        whole = fragment.to_table(schema=dataset.schema).filter(pa.array(keep))
        for column in marks:  # what stays restates and removes nothing
            at = whole.schema.get_field_index(column)
            whole = whole.set_column(at, whole.schema.field(at), pa.array(np.zeros(whole.num_rows, dtype=bool)))
        out.rows_removed += dropped
        removes.append(file)
        if whole.num_rows:
            added.append(lake.write_data_file(Path(path), lake.new_data_file_name("part-folded"), whole,
                                              row_group_rows=ROW_GROUP_ROWS))
    if removes:
        from deltalake.transaction import AddAction, RemoveAction

        now_ms = int(time.time() * 1000)
        actions: list[AddAction | RemoveAction] = [RemoveAction(f.path, True, now_ms, f.size) for f in removes]
        actions += [AddAction(f.name, f.size, {}, f.modified_ms, True, f.stats) for f in added]
        dt.create_write_transaction(actions, mode="append", schema=dataset.schema)
        out.version_after = lake.open_table(path).version()  # type: ignore[union-attr]
        out.files_removed, out.files_added = len(removes), len(added)
    out.duration_s = time.perf_counter() - t0
    log.info("fold %s: %d restated rows, %d superseded rows removed, files %d -> %d in %.2fs", table.table,
             out.flagged_rows, out.rows_removed, out.files_removed, out.files_added, out.duration_s)
    return out


@dataclass(frozen=True)
class _File:
    path: str  # as in the add action (relative to the table root unless absolute)
    size: int


def _holding(dt: object, key: str, keys: np.ndarray) -> list[_File]:
    """The table version's files whose `key` statistics admit one of the sorted `keys` (every file without those
    statistics)."""
    adds = lake.add_actions(dt).to_pydict()  # type: ignore[arg-type]
    n = len(adds["path"])
    lows, highs = adds.get(f"min.{key}", [None] * n), adds.get(f"max.{key}", [None] * n)
    out = []
    for i in range(n):
        lo, hi = lows[i], highs[i]
        if lo is None or hi is None or np.searchsorted(keys, hi, side="right") > np.searchsorted(keys, lo):
            out.append(_File(adds["path"][i], int(adds["size_bytes"][i])))
    return out

"""The data-quality gate: validate a layer's Delta tables with Great Expectations before anything is published.

`run_gate(settings, layer, run_id)`:
  1. for every table of the layer that exists in the lake, generate its suite from the contract
     (jobs.quality.suites), read only the columns the suite needs from Delta (delta-rs -> Arrow -> pandas,
     strings as Arrow-backed pandas columns) and validate it in an ephemeral GX 1.x context;
  2. append one row per (run, table, expectation) to ops.quality_results (a rerun with the same run_id
     replaces that run's rows instead of duplicating them);
  3. render the layer's suites and results into the Data Docs page LAKE/quality/data_docs/index.html (one offline
     page with every layer's latest gate, jobs/quality/data_docs.py; ops.quality_results keeps every result for its
     contract's retention);
  4. raise QualityGateError, naming each failed critical expectation with sample primary keys of
     offending rows, when any critical expectation failed.

Speed (2M-row view_events, 12 expectations: 26 s -> 3.4 s): numeric columns stay numpy (a nullable Int64
column makes GX evaluate `between` row by row in Python), strings are pyarrow-backed (isna / isin / len /
duplicated vectorised, to_pandas zero-copy), and GX's per-batch MD5 fingerprint of the whole DataFrame is
skipped, and so are GX's repeated reads of each expectation's configuration (jobs/quality/gx_runtime.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from jobs.quality import data_docs, gx_runtime
from jobs.quality.suites import ExpectationSpec, Suite, suite_for
from storylake import audit, contracts, failpoints, increments, lake
from storylake.latest_rows import RESTATED
from storylake.settings import Settings
from storylake.writer_lock import holding_writer_lock

log = logging.getLogger(__name__)
SAMPLE_KEYS = 5


class QualityGateError(RuntimeError):
    """A critical expectation failed: the message lists each one with sample offending keys."""

    def __init__(self, message: str, report: GateReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Outcome:
    """Result of one expectation on one table."""

    table: str
    expectation: str  # ExpectationSpec.name, e.g. expect_column_values_to_be_between(completion_pct)
    critical: bool
    success: bool
    unexpected_count: int | None
    observed_value: Any
    sample_keys: list[Any]
    source: str = ""
    error: str | None = None

    def describe(self) -> str:
        what = f"{self.table}: {self.expectation} [{self.source}]"
        if self.error:
            return f"{what} could not be evaluated: {self.error}"
        if self.unexpected_count is not None:
            keys = json.dumps(self.sample_keys, default=str)
            return f"{what} failed on {self.unexpected_count} row(s); sample keys: {keys}"
        return f"{what} failed (observed {json.dumps(self.observed_value, default=str)})"


@dataclass
class GateReport:
    run_id: str
    layer: str
    validated_at: datetime
    outcomes: list[Outcome] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows validated
    missing: list[str] = field(default_factory=list)  # contracted tables not in the lake (not validated)
    not_expressible: dict[str, list[str]] = field(default_factory=dict)  # table -> contract rules skipped
    docs_index: Path | None = None
    duration_s: float = 0.0

    @property
    def failed(self) -> list[Outcome]:
        """Failed critical expectations (a non-empty list blocks publishing)."""
        return [o for o in self.outcomes if o.critical and not o.success]

    @property
    def warnings(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.critical and not o.success]

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        """Small JSON-able summary (Airflow XCom, CLI)."""
        return {
            "run_id": self.run_id,
            "layer": self.layer,
            "ok": self.ok,
            "tables": dict(self.rows),
            "expectations": len(self.outcomes),
            "failed": [o.describe() for o in self.failed],
            "warnings": [o.describe() for o in self.warnings],
            "missing": list(self.missing),
            "docs_index": str(self.docs_index) if self.docs_index else None,
            "duration_s": round(self.duration_s, 3),
        }


def layer_tables(layer: str) -> list[str]:
    """Contract keys '<layer>.<name>' of a layer, sorted."""
    return sorted(k for k, c in contracts.load_all().items() if c.layer == layer)


@holding_writer_lock("gate")
def run_gate(
    settings: Settings,
    layer: str,
    run_id: str,
    *,
    as_of: datetime | None = None,
    tables: list[str] | None = None,
    build_docs: bool = True,
    raise_on_failure: bool = True,
) -> GateReport:
    """Validate every existing table of `layer` (or just `tables`), record the results, raise on a critical failure.

    Write-audit-publish (storylake.audit): when nothing critical failed, the validated table versions are recorded
    in ops.audited_versions with `as_of`, and consumers read those; a failed gate records none. The gate holds the
    lake's writer lock, so the versions it validates are the versions it records."""
    t0 = time.perf_counter()
    keys = tables if tables is not None else layer_tables(layer)
    report = GateReport(run_id=run_id, layer=layer, validated_at=datetime.now(UTC))
    audit.start(settings)
    opened = {k: lake.open_table(settings.table_path(*k.split("."))) for k in keys}  # each table opened once
    versions = {k: None if dt is None else dt.version() for k, dt in opened.items()}
    present = [k for k in keys if versions[k] is not None]
    report.missing = [k for k in keys if k not in present]
    if present:
        suites: dict[str, Suite] = {}
        with gx_runtime.tuned(), _database() as db:
            batches = _batches(_context())
            slices = _run_slices(settings, as_of)
            baselines = _baselines(settings, present) if slices else {}
            for key in present:
                suite = suites[key] = suite_for(contracts.get(key))
                if suite.not_expressible:
                    report.not_expressible[key] = list(suite.not_expressible)
                    log.warning("%s: contract rules without an expectation: %s", key, suite.not_expressible)
                rows, outcomes = _validate(batches, settings, suite, run_id, slices.get(key),
                                           baselines.get(key), db, whole=None if slices else WHOLE_RUN,
                                           current=opened[key])
                report.rows[key] = rows
                report.outcomes.extend(outcomes)
        write_results(settings, report)
        if build_docs:
            report.docs_index = _publish_docs(settings, report, suites, as_of)
    report.duration_s = time.perf_counter() - t0
    log.info("quality gate %s (%s): %d tables, %d expectations, %d critical failures in %.1fs",
             layer, run_id, len(report.rows), len(report.outcomes), len(report.failed), report.duration_s)
    if report.failed:
        if raise_on_failure:
            raise QualityGateError(_message(report), report)
    elif present and layer in ("silver", "gold"):
        failpoints.reach(f"gate.before_audit_{layer}")
        audit.record(settings, run_id, layer, as_of, {k: v for k, v in versions.items() if v is not None})
        if layer == "gold" and as_of is not None:
            increments.complete(settings, as_of)  # the run's bronze rows are processed: the next run starts after
    return report


def _message(report: GateReport) -> str:
    lines = [f"quality gate failed for layer {report.layer} (run {report.run_id}): "
             f"{len(report.failed)} critical expectation(s) failed"]
    lines += [f"  - {o.describe()}" for o in report.failed]
    if report.docs_index:
        lines.append(f"  data docs: {report.docs_index}")
    return "\n".join(lines)


# --- Great Expectations ------------------------------------------------------------------------


def _context() -> Any:
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    return context


def _batches(context: Any) -> Any:
    """The one batch definition every validation of a gate reads its frame through (a pandas frame per run)."""
    return context.data_sources.add_pandas("lake").add_dataframe_asset("slice").add_batch_definition_whole_dataframe(
        "whole_frame")


def _gx_expectation(spec: ExpectationSpec) -> Any:
    import great_expectations.expectations as gxe

    cls_name = "".join(part.capitalize() for part in spec.type.split("_"))
    cls = getattr(gxe, cls_name)
    return cls(**spec.kwargs, meta={"critical": spec.critical, "source": spec.source})


Slice = tuple[tuple[str, ...], datetime]  # (columns, instant): rows where any column is at/after the instant


def _run_slices(settings: Settings, as_of: datetime | None) -> dict[str, Slice]:
    """The slice of each table the run of `as_of` rewrote (jobs/horizon.py): the gate validates those rows only
    (a table's key determines its anchor, so uniqueness holds across the slice boundary). Empty when the run
    recomputed everything or planned no horizon: whole tables. silver.segments is rebuilt from its own horizon,
    never before the run's; silver.relationships is rebuilt whole, but only intervals that open or close at or after
    the horizon can differ from the audited version (a relationship change at t moves the horizon to t - 24 h)."""
    from jobs.horizon import ANCHORS, DAY_ANCHORED, from_increment

    plan = increments.planned(settings, as_of) if as_of is not None else None
    if plan is None or plan.full or plan.horizon is None:
        return {}
    horizon = from_increment(plan)
    out: dict[str, Slice] = {
        "silver.segments": (("created_at",), plan.horizon),
        "silver.relationships": (("valid_from", "valid_to"), plan.horizon),
    }
    for key in [*ANCHORS, *DAY_ANCHORED]:
        start = horizon.slice_start(key)
        if start is not None:
            out[key] = (("day",) if key in DAY_ANCHORED else (ANCHORS[key][0],), start)
    return out


def _baselines(settings: Settings, keys: list[str]) -> dict[str, int]:
    """The version of each table that last passed its gate (what consumers read), for the tables that have one: an
    incremental run's gate validates the rows that differ from it (`_changed`)."""
    versions = {key: audit.last_good_version(settings, key) for key in keys}
    return {key: v for key, v in versions.items() if v is not None}


def _arrow(settings: Settings, suite: Suite, since: Slice | None, columns: list[str] | None = None) -> pa.Table:
    """The suite's columns (or `columns`) of the table, or of its rows anchored at/after `since`."""
    import pyarrow.dataset as ds

    dt = lake.open_table(settings.table_path(*suite.table.split(".")))
    assert dt is not None
    stored = {f.name for f in dt.schema().fields}
    # a missing column fails its expectations
    columns = [c for c in (columns if columns is not None else suite.input_columns()) if c in stored]
    if since is None:
        return dt.to_pyarrow_table(columns=columns)
    names, start = since
    keep = None
    for column in names:
        cond = ds.field(column) >= pa.scalar(*_slice_bound(column, start))
        keep = cond if keep is None else keep | cond
    return dt.to_pyarrow_dataset().to_table(columns=columns, filter=keep)


def _slice_bound(column: str, start: datetime) -> tuple[Any, pa.DataType]:
    """(value, Arrow type) of a slice's lower bound on `column`: the day of `start` for a table keyed by day
    (jobs.horizon DAY_ANCHORED), else `start`."""
    return (start.date(), pa.date32()) if column == "day" else (start, pa.timestamp("us", tz="UTC"))


def _versions_files(settings: Settings, suite: Suite, baseline: int, current: Any | None = None
                    ) -> tuple[list[str], list[str], list[str]] | None:
    """(the table's current files, its `baseline` version's files, the suite's stored columns); None (validate the
    slice whole) when that version lacks one of the suite's stored columns (an upgrade added it: every row is then
    new), its files are gone, or the table is empty."""
    from deltalake import DeltaTable

    path = settings.table_path(*suite.table.split("."))
    new = current if current is not None else DeltaTable(str(path))
    old = new if new.version() == baseline else DeltaTable(str(path), version=baseline)  # not written since
    stored = [f.name for f in new.schema().fields]
    columns = [c for c in suite.input_columns() if c in stored]
    old_files = old.file_uris()
    if not lake.files_present(old_files) or not set(columns) <= {f.name for f in old.schema().fields}:
        return None
    new_files = new.file_uris()
    if not new_files:  # an empty table: validated as it is
        return None
    return new_files, old_files, columns


# Columns a run stamps on every row it writes (the run's instant) or that record only how a row is stored (the flag of
# restated rows, storylake.latest_rows): a row differing from its audited self only there is unchanged for the gate.
RUN_STAMPS = frozenset({"as_of", RESTATED})


@contextlib.contextmanager
def _database() -> Iterator[Any]:
    """One in-memory DuckDB database for a gate's diffs and repeated-key scans (opening one costs ~12 ms of CPU, and a
    gate runs two queries per table); each query gets its own connection to it (_connection)."""
    import duckdb

    with duckdb.connect() as db:
        db.execute("SET threads TO 2")
        yield db


@contextlib.contextmanager
def _connection(db: Any | None) -> Iterator[Any]:
    """A connection of its own (its temporary tables dropped when it closes) to the database `db`, or to a new one."""
    with contextlib.ExitStack() as stack:
        if db is None:
            db = stack.enter_context(_database())
        yield stack.enter_context(db.cursor())


def _changed(new_files: list[str], old_files: list[str], columns: list[str], since: Slice | None,
             db: Any | None = None, ignored: Sequence[str] = ()) -> pa.Table:
    """The rows (`columns`) of the Parquet files `new_files` (a table version's, within the slice `since`) that have
    no equal row in `old_files` (the audited version's, same slice; every column but RUN_STAMPS compared, nulls
    equal to nulls): what a run changed since then.

    It costs what the run rewrote, not the table: a file both versions hold has the same rows in both, so only the
    new version's other files are read, and compared with the old version's other files (a row of a new file equal
    to one of a shared file counts as changed: validated again, never skipped). DuckDB anti-joins them on the files,
    so neither version is loaded whole; the old side is reduced to two 64-bit hashes of the compared columns (in
    two orders), so the join's table holds 16 bytes a row instead of every column and compares no strings (at 10M
    views a day the old silver.relationships is 15M rows; joining on its key columns too took twice as long). A
    changed row passes for unchanged only if both its hashes equal those of one old row. DuckDB hashes -0.0 as 0.0,
    as IS NOT DISTINCT FROM compares them. `db`: the gate's database (_database), None for a new one; `ignored`:
    columns left out of the comparison too (a state table's bounds, the same in every row: _distinct_frame)."""
    shared = set(new_files) & set(old_files)
    compared = [c for c in columns if c not in RUN_STAMPS and c not in ignored]
    if compared:
        first = "hash(" + ", ".join(f'"{c}"' for c in compared) + ")"
        # the same columns in reverse order after a constant: a second hash independent of the first
        second = "hash('storylake', " + ", ".join(f'"{c}"' for c in reversed(compared)) + ")"
    else:  # only run stamps: every row equals every old row
        first = second = "0"
    with _connection(db) as con:
        # a file written before a column was added lacks it: when the files to read lack one, read all of the
        # version's (union_by_name fills the gaps with nulls, as for the whole version)
        new_only = _holding(con, [f for f in new_files if f not in shared], columns, new_files)
        old_only = _holding(con, [f for f in old_files if f not in shared], compared or columns, old_files)
        if not new_only:  # the version holds no file the audited one lacks: nothing changed
            return con.sql(f"{_slice_sql(columns, None, 'new')} LIMIT 0", params={"new": new_files}).to_arrow_table()
        params: dict[str, Any] = {"new": new_only, **_slice_params(since)}
        if not old_only:
            return con.sql(_slice_sql(columns, since, "new"), params=params).to_arrow_table()
        params["old"] = old_only
        old = f"SELECT {first} AS _h, {second} AS _g FROM ({_slice_sql(compared or columns, since, 'old')})"  # noqa: S608
        sql = (f"SELECT n.* EXCLUDE (_h, _g) FROM (SELECT *, {first} AS _h, {second} AS _g FROM "  # noqa: S608
               f"({_slice_sql(columns, since, 'new')})) n ANTI JOIN ({old}) o ON n._h = o._h AND n._g = o._g")
        return con.sql(sql, params=params).to_arrow_table()


def _distinct_frame(files: list[str], columns: list[str], since: Slice | None, db: Any | None, suite: Suite, *,
                   fresh: bool) -> Any:
    """The distinct value combinations of `columns` over the Parquet files (within the slice `since`), as pandas: the
    frame of an expectation reading a column with one value in every row (a state table's bound, which _changed
    compares rows without). An expectation of one row at a time holds on every row when it holds on each distinct
    combination of the columns it reads, so the frame does not hold the table's millions of rows. Without `fresh`
    files (none the audited version lacks: no row changed) it is empty, as the changed rows are."""
    limit = "" if fresh else " LIMIT 0"
    with _connection(db) as con:
        table = con.sql(f"SELECT DISTINCT * FROM ({_slice_sql(columns, since, 'files')}){limit}",  # noqa: S608
                        params={"files": files, **_slice_params(since)}).to_arrow_table()
    return _pandas(table, suite)


def _holding(con: Any, files: list[str], columns: list[str], version_files: list[str]) -> list[str]:
    """`files` when together (by name) they hold every one of `columns`, else `version_files` (all the version's)."""
    if not files:
        return files
    held = {r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet($f, union_by_name = true)",
                                      {"f": files}).fetchall()}
    return files if set(columns) <= held else version_files


def _slice_params(since: Slice | None) -> dict[str, Any]:
    """The $start parameter of _slice_sql for the slice `since` (none for the whole table)."""
    return {} if since is None else {"start": _slice_bound(since[0][0], since[1])[0]}


def _slice_sql(columns: list[str], since: Slice | None, files: str) -> str:
    """SELECT `columns` of the Parquet files bound to $`files`, within the slice `since` (bound to $start,
    _slice_params)."""
    picked = ", ".join(f'"{c}"' for c in columns)
    where = " OR ".join(f'"{c}" >= $start' for c in since[0]) if since is not None else "TRUE"
    return f"SELECT {picked} FROM read_parquet(${files}, union_by_name = true) WHERE {where}"  # noqa: S608


def _repeated(files: list[str], columns: list[str], since: Slice | None, sets: list[list[str]],
              db: Any | None = None, fresh: list[str] | None = None) -> tuple[pa.Table, int]:
    """(the rows (`columns`) of the Parquet files `files` within the slice `since` that share the values of one of
    the column lists `sets` with another row of the slice, the slice's row count). A uniqueness expectation over
    the slice fails on exactly those rows, so it reads them instead of the whole slice: DuckDB groups the slice
    (multi-threaded, on the files) where pandas factorized every value (~3 s for 700k string keys). `db`: as for
    _changed.

    `fresh`: the files among `files` that the audited version lacks (None: all of them). Only the rows sharing a
    set's values with a row of those files are grouped: the audited version passed its gate, so two rows of the
    files it holds too do not repeat a value (its rows outside the slice are unchanged, and a value's rows share
    their anchor), and every repeat involves a fresh row. That is the same answer at a fraction of the cost when a
    run appended to the slice instead of rewriting it (silver.view_events at 10M views a day: 0.28 s instead of
    0.63 s over 6.2M rows)."""
    params: dict[str, Any] = {"files": files, **_slice_params(since)}
    needed = list(dict.fromkeys([*columns, *(c for cols in sets for c in cols)]))
    picked = ", ".join(f's."{c}"' for c in columns)
    ctes, hits = [], []
    for i, cols in enumerate(sets):
        names = ", ".join(f'"{c}"' for c in cols)
        ctes.append(f"r{i} AS (SELECT {names} FROM s GROUP BY ALL HAVING count(*) > 1)")  # noqa: S608 - names
        match = " AND ".join(f'r{i}."{c}" IS NOT DISTINCT FROM s."{c}"' for c in cols)
        hits.append(f"EXISTS (SELECT 1 FROM r{i} WHERE {match})")  # noqa: S608 - contract column names only
    with _connection(db) as con:
        if sets and fresh is not None:  # fresh files written before a column was added: group the whole slice
            fresh = _holding(con, fresh, [*(since[0] if since is not None else ()), *needed], files)
        restricted = bool(sets) and fresh is not None and set(fresh) != set(files)
        if not sets or restricted:  # the slice's row count, from its anchor columns alone
            counted = list(since[0]) if since is not None else needed[:1]
            count = con.execute(f"SELECT count(*) FROM ({_slice_sql(counted, since, 'files')})", params).fetchall()  # noqa: S608
        if not sets:  # nothing to group: no row
            empty = con.sql(f"{_slice_sql(columns, None, 'files')} LIMIT 0", params={"files": files})
            return empty.to_arrow_table(), int(count[0][0])
        if restricted:
            # each set's values in the fresh files, then the slice's rows holding one of them: the only rows a
            # repeat can involve (a row kept for one set's values is grouped for every set: any repeat it shows is
            # one the whole slice has)
            found = []
            for i, cols in enumerate(sets):
                names = ", ".join(f'"{c}"' for c in cols)
                con.execute(f"CREATE TEMP TABLE k{i} AS SELECT DISTINCT {names} FROM "  # noqa: S608
                            f"({_slice_sql(cols, since, 'fresh')})", {"fresh": fresh, **_slice_params(since)})
                match = " AND ".join(f'k{i}."{c}" IS NOT DISTINCT FROM f."{c}"' for c in cols)
                found.append(f"EXISTS (SELECT 1 FROM k{i} WHERE {match})")  # noqa: S608 - column names only
            con.execute(f"CREATE TEMP TABLE s AS SELECT * FROM ({_slice_sql(needed, since, 'files')}) f "  # noqa: S608
                        f"WHERE {' OR '.join(found)}", params)
        else:
            con.execute(f"CREATE TEMP TABLE s AS {_slice_sql(needed, since, 'files')}", params)  # one scan
            count = con.execute("SELECT count(*) FROM s").fetchall()
        with_sql = f"WITH {', '.join(ctes)} " if ctes else ""
        rows = con.sql(f"{with_sql}SELECT {picked} FROM s WHERE {' OR '.join(hits) or 'FALSE'}"  # noqa: S608
                       ).to_arrow_table()
    return rows, int(count[0][0])


def _pandas(table: pa.Table, suite: Suite) -> Any:
    """An Arrow table as pandas (numpy numerics, Arrow-backed strings) + the suite's derived columns."""
    import pandas as pd

    def mapper(t: pa.DataType) -> Any:
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return pd.ArrowDtype(t)
        return None

    df = table.to_pandas(types_mapper=mapper)
    for col, (inputs, fn) in suite.derived.items():
        if all(i in df.columns for i in inputs):
            df[col] = fn(df)
    return df


# Expectations over a set of rows (a duplicate may pair a changed row with an unchanged one): they read the whole
# slice; every other expectation reads one row at a time, so it reads the changed rows only.
SET_EXPECTATIONS = frozenset({"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"})


# Columns (besides the key) of one validation's frame. GX's pandas engine filters the whole batch frame by the
# non-null rows of the column for every column-map metric (a copy of every column), so a suite's expectations run
# on narrow frames of the columns they read: on a 300k-row slice of gold.segment_insights (52 expectations over
# ~40 columns) those copies were ~4 s of the gold gate's ~8 s.
GROUP_COLUMNS = 6


def expectation_groups(specs: list[ExpectationSpec], keys: list[str]) -> list[list[ExpectationSpec]]:
    """The suite's expectations in groups (suite order kept within each) whose columns beyond the key number at
    most GROUP_COLUMNS (or one expectation's own, when it reads more)."""
    groups: list[list[ExpectationSpec]] = []
    columns: list[set[str]] = []
    for spec in specs:
        need = set(spec.columns) - set(keys)
        for group, cols in zip(groups, columns, strict=True):
            if len(cols | need) <= GROUP_COLUMNS:
                group.append(spec)
                cols |= need
                break
        else:
            groups.append([spec])
            columns.append(set(need))
    return groups


# Why a gate validates whole tables when it has no slices (_run_slices): the run of its as_of planned none.
WHOLE_RUN = "no incremental plan for this as_of: a full refresh, no planned run, or one that already finished"


def _validate(
    batches: Any, settings: Settings, suite: Suite, run_id: str, since: Slice | None = None,
    baseline: int | None = None, db: Any | None = None, whole: str | None = None, current: Any | None = None,
) -> tuple[int, list[Outcome]]:
    """Run the suite on the table's slice (`since`; None: the whole table). With a `baseline` (the version that last
    passed), the row expectations read only the rows that differ from it: an unchanged row passed them then.

    Each group of expectations is an ExpectationSuite validated on a batch of `batches` (Batch.validate), not saved
    in the context: the gate records its results itself (ops.quality_results, Data Docs), and saving each suite,
    validation definition and result in the ephemeral context's stores only serialized them (a quarter of the
    gate's Great Expectations time). `db`: the gate's DuckDB database (_database), None for a new one; `whole`: why
    the whole table is validated when the gate compares nothing (logged); `current`: the table's DeltaTable at the
    version the gate validates (opened again without it)."""
    import great_expectations as gx

    sets = [s for s in suite.expectations if s.type in SET_EXPECTATIONS]
    per_row = [s for s in suite.expectations if s.type not in SET_EXPECTATIONS]
    files = None if baseline is None else _versions_files(settings, suite, baseline, current)
    span: list[str] = []  # columns with one value in every row, checked over the whole table (_distinct_frame)
    mixed: list[ExpectationSpec] = []  # the rules reading a bound with another column, and the columns they read
    inputs: list[str] = []
    if files is None:
        table = _arrow(settings, suite, since)
        df = df_changed = _pandas(table, suite)
        rows = table.num_rows
        keys = [k for k in suite.key_columns if k in table.column_names]
    else:  # the slice's rows sharing a set expectation's values with another, the changed rows of every column
        new_files, old_files, columns = files
        keys = [k for k in suite.key_columns if k in columns]
        span = [c for c in suite.same_in_every_row if c in columns]
        changed = _changed(new_files, old_files, columns, since, db, ignored=span)
        set_lists = [list(spec.columns) for spec in sets]
        set_columns = list(dict.fromkeys([*keys, *(c for cols in set_lists for c in cols)]))
        # a version holding no file its audited one lacks (no write since) repeats no value that did not pass then
        held = set(old_files)
        fresh = [f for f in new_files if f not in held]
        repeated, rows = _repeated(new_files, [c for c in set_columns if c in columns], since,
                                   [cols for cols in set_lists if set(cols) <= set(columns)] if fresh else [], db,
                                   fresh)
        df, df_changed = _pandas(repeated, suite), _pandas(changed, suite)
        del repeated, changed
        if span:  # a row changed only in the state's bounds is not changed: those are checked over the whole table
            only = [s for s in per_row if set(s.columns) <= set(span)]
            mixed = [s for s in per_row if s not in only and set(s.columns) & set(span)]
            per_row = [s for s in per_row if s not in only and s not in mixed]
            # derived columns by their inputs
            inputs = list(dict.fromkeys(c for spec in mixed for w in spec.columns
                                        for c in (suite.derived[w][0] if w in suite.derived else (w,))))
            df_span = _distinct_frame(new_files, span, since, db, suite, fresh=bool(fresh))
            df_mixed = _distinct_frame(new_files, inputs, since, db, suite, fresh=bool(fresh)) if mixed else None
    by_name = {s.name: s for s in suite.expectations}
    t0 = time.perf_counter()

    def validated(i: int, group: list[ExpectationSpec], source_frame: Any) -> list[Outcome]:
        # the key and the group's columns (one that is missing stays missing: its expectations fail)
        wanted = list(dict.fromkeys([*keys, *(c for spec in group for c in spec.columns)]))
        frame = source_frame[[c for c in wanted if c in source_frame.columns]]
        batch = batches.get_batch(batch_parameters={"dataframe": frame})
        # a frame of distinct values (_distinct_frame) has no key: its offending rows have none to report
        keyed = keys if set(keys) <= set(frame.columns) else []
        out = []
        for r in _gx_results(gx, batch, group, f"{suite.table}#{i}@{_safe_name(run_id)}", suite.table, keyed):
            spec = by_name[_result_name(r)]
            res = r.result or {}
            out.append(Outcome(
                table=suite.table,
                expectation=spec.name,
                critical=spec.critical,
                success=bool(r.success),
                unexpected_count=res.get("unexpected_count"),
                observed_value=_plain(res.get("observed_value")),
                sample_keys=_sample_keys(res.get("partial_unexpected_index_list"), keyed) if keyed else [],
                source=spec.source,
                error=_error(r.exception_info) if not r.success else None,
            ))
        return out

    groups = [(g, df) for g in expectation_groups(sets, keys)]
    groups += [(g, df_changed) for g in expectation_groups(per_row, keys)]
    if span:
        groups += [(g, df_span) for g in expectation_groups(only, [])]
    outcomes = [o for i, (group, frame) in enumerate(groups) for o in validated(i, group, frame)]
    if span and mixed:
        # a row's expectation holds on every row when it holds on each distinct combination of the columns it
        # reads; only when one fails are the rows read, for their count and keys
        mixed_groups = expectation_groups(mixed, keys)
        checked = [o for j, g in enumerate(mixed_groups) for o in validated(len(groups) + j, g, df_mixed)]
        if not all(o.success for o in checked):
            with _connection(db) as con:
                rows_frame = _pandas(con.sql(_slice_sql([*keys, *inputs], since, "files"),
                                             params={"files": new_files, **_slice_params(since)}).to_arrow_table(),
                                     suite)
            checked = [o for j, g in enumerate(mixed_groups) for o in validated(len(groups) + j, g, rows_frame)]
        outcomes += checked
    if files is None:  # no audited version, or one whose files cannot be compared: every row was validated
        why = whole or ("no audited version" if baseline is None else f"version {baseline} not comparable")
        log.info("%s: %d rows, all validated (%s), %d expectations in %.2fs",
                 suite.table, rows, why, len(suite.expectations), time.perf_counter() - t0)
    else:
        log.info("%s: %d rows (%d changed since version %s, %d with a repeated unique value), %d expectations in "
                 "%.2fs", suite.table, rows, len(df_changed), baseline, len(df), len(suite.expectations),
                 time.perf_counter() - t0)
    order = {s.name: i for i, s in enumerate(suite.expectations)}
    outcomes.sort(key=lambda o: order[o.expectation])
    return rows, outcomes


# Great Expectations' result formats: BASIC gives every figure the gate records (success, unexpected_count,
# observed_value, the exception) but not the offending rows' keys, which SUMMARY adds at ~1.6x the cost (51
# per-row expectations of gold.segment_insights on 17k rows: 0.33 s against 0.21 s).
_BASIC = {"result_format": "BASIC", "partial_unexpected_count": SAMPLE_KEYS}


def _gx_results(gx: Any, batch: Any, group: list[ExpectationSpec], name: str, table: str, keys: list[str]
                ) -> list[Any]:
    """The results of the expectations `group` on `batch`, each as the SUMMARY format gives it (with the sample
    keys of the offending rows, `keys` being the table's key columns): all validated in the BASIC format, then
    again in SUMMARY only those that found an offending row or raised (the rare case), so that a passing group
    costs the cheaper format only."""

    def validated(specs: list[ExpectationSpec], result_format: dict[str, Any]) -> list[Any]:
        gx_suite = gx.ExpectationSuite(name=name, expectations=[_gx_expectation(s) for s in specs],
                                       meta={"generated_from": f"data_contracts ({table})"})
        return list(batch.validate(gx_suite, result_format=result_format).results)

    first = validated(group, _BASIC)
    again = {_result_name(r) for r in first if _needs_rows(r)}
    if not again:
        return first
    summary: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_KEYS}
    if keys:
        summary["unexpected_index_column_names"] = keys
    detailed = {_result_name(r): r for r in validated([s for s in group if s.name in again], summary)}
    return [detailed.get(_result_name(r), r) for r in first]


def _needs_rows(result: Any) -> bool:
    """A BASIC result whose SUMMARY would carry more: it failed (or raised), or passed with offending rows (a
    `mostly` expectation)."""
    return not result.success or bool((result.result or {}).get("unexpected_count"))


def _result_name(result: Any) -> str:
    """The name (ExpectationSpec.name) of the expectation a GX validation result is of."""
    cfg = result.expectation_config
    return ExpectationSpec(cfg.type, dict(cfg.kwargs)).name


def _safe_name(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)


def _error(info: Any) -> str | None:
    """The first exception message of a GX result's exception_info (flat or keyed by metric)."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _sample_keys(index_list: Any, keys: list[str]) -> list[Any]:
    """Distinct primary-key values of offending rows (a dict per row for compound keys)."""
    out: list[Any] = []
    for item in index_list or ():
        if isinstance(item, dict) and keys:
            key = {k: _plain(item.get(k)) for k in keys}
            value: Any = key[keys[0]] if len(keys) == 1 else key
        else:
            value = _plain(item)
        if value not in out:
            out.append(value)
    return out


def _plain(v: Any) -> Any:
    """JSON-friendly Python value (numpy scalars, NaN/NA -> None, integral floats -> int, times -> ISO)."""
    if v is None:
        return None
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, str | bytes):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(v, float):
        if math.isnan(v):
            return None
        return int(v) if v.is_integer() else v
    if isinstance(v, datetime | date):
        return v.isoformat()
    if v.__class__.__name__ in ("NAType", "NaTType"):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def _publish_docs(settings: Settings, report: GateReport, suites: dict[str, Suite],
                  as_of: datetime | None) -> Path | None:
    """Render the layer's results into the Data Docs page; a rendering problem is logged, never fails the gate."""
    docs_dir = (settings.lake / "quality" / "data_docs").resolve()
    try:
        return data_docs.publish_layer(docs_dir, data_docs.layer_record(report, suites, as_of))
    except Exception:  # noqa: BLE001 - docs are a convenience, the results are in ops.quality_results
        log.warning("could not render Data Docs in %s", docs_dir, exc_info=True)
        return None


# --- ops.quality_results -----------------------------------------------------------------------


def write_results(settings: Settings, report: GateReport) -> int:
    """One row per (run, table, expectation) in ops.quality_results; rows of a previous attempt with the same
    run_id and tables are replaced (idempotent), otherwise a plain delta-rs append. Returns rows written."""
    from deltalake import write_deltalake

    schema = contracts.get("ops.quality_results").arrow_schema()
    rows = [
        {
            "run_id": report.run_id,
            "table_name": o.table,
            "expectation": o.expectation,
            "critical": o.critical,
            "success": o.success,
            "observed_value": _observed_json(o),
            "unexpected_count": o.unexpected_count,
            "sample_keys": json.dumps(o.sample_keys, default=str) if o.sample_keys else None,
            "validated_at": report.validated_at,
        }
        for o in report.outcomes
    ]
    if not rows:
        return 0
    data = pa.Table.from_pylist(rows, schema=schema)
    path = settings.table_path("ops", "quality_results")
    path.parent.mkdir(parents=True, exist_ok=True)
    tables = sorted({o.table for o in report.outcomes})
    if _has_rows(path, report.run_id, tables):
        names = ", ".join(_sql_str(t) for t in tables)
        predicate = f"run_id = {_sql_str(report.run_id)} AND table_name IN ({names})"
        write_deltalake(str(path), data, mode="overwrite", predicate=predicate)
    else:
        write_deltalake(str(path), data, mode="append")
    return len(rows)


def _observed_json(o: Outcome) -> str | None:
    if o.error is not None:
        return json.dumps({"error": o.error})
    return None if o.observed_value is None else json.dumps(o.observed_value, default=str)


def _has_rows(path: Path, run_id: str, tables: list[str]) -> bool:
    import pyarrow.compute as pc

    dt = lake.open_table(path)
    if dt is None:
        return False
    flt = (pc.field("run_id") == run_id) & pc.field("table_name").isin(tables)
    return dt.to_pyarrow_dataset().count_rows(filter=flt) > 0


def _sql_str(value: str) -> str:
    """A SQL string literal for the delta-rs predicate (values are our own run ids and table names)."""
    return "'" + value.replace("'", "''") + "'"

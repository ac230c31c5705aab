"""Incremental, exactly-once ingestion: landing JSONL -> bronze Delta tables + quarantine.

A batch is a set of landing files not in the ledger. Its commits, in order: ledger rows (the batch
plan, with checksums and counts), one append per bronze table, quarantine, then the ingest_runs row
that marks the batch complete. Every commit carries a Delta app transaction (app id, batch number),
so a batch interrupted by a crash is completed by the next run without writing anything twice.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import multiprocessing
import os
import re
import stat
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from jobs.ingest.validate import QUARANTINE_SCHEMA, FileResult, refused_file, validate_file
from storylake import contracts, failpoints, lake
from storylake.errors import StorylakeError
from storylake.progress import Progress
from storylake.settings import Settings
from storylake.writer_lock import holding_writer_lock

log = logging.getLogger(__name__)
APP_ID = "storylake-ingest"
DEFAULT_BATCH_BYTES = 256 * 1024 * 1024
INLINE_BYTES = 32 * 1024 * 1024

LEDGER_SCHEMA = contracts.get("ops.ingest_ledger").arrow_schema()
RUNS_SCHEMA = contracts.get("ops.ingest_runs").arrow_schema()


class IngestError(StorylakeError, RuntimeError):
    """Ingestion cannot proceed (the message says which file or table and why)."""


@dataclass
class BatchReport:
    batch_id: str
    files: int
    lines: int
    valid: int
    quarantined: int
    bytes_read: int
    duration_s: float
    resumed: bool = False


@dataclass
class IngestReport:
    batches: list[BatchReport] = field(default_factory=list)
    rows_by_table: dict[str, int] = field(default_factory=dict)
    quarantine_by_rule: dict[str, int] = field(default_factory=dict)

    @property
    def lines(self) -> int:
        return sum(b.lines for b in self.batches)

    @property
    def valid(self) -> int:
        return sum(b.valid for b in self.batches)

    @property
    def quarantined(self) -> int:
        return sum(b.quarantined for b in self.batches)

    @property
    def files(self) -> int:
        return sum(b.files for b in self.batches)


class _InlineExecutor(Executor):
    """Runs tasks in this process, at submit time (small batches)."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        fut: Future[object] = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future like a pool would
            fut.set_exception(exc)
        return fut


def ops_path(settings: Settings, name: str) -> Path:
    return settings.table_path("ops", name)


def discover(
    landing: Path, event_types: Iterable[str], refusals: dict[str, tuple[str, str]] | None = None
) -> list[tuple[str, str, int]]:
    """(relative path, event type, size) of every landing file, sorted by path. Only regular files inside the
    landing root are read: any other `*.jsonl` entry (a directory, FIFO, socket or device, a dangling symlink, a
    symlink leading out of the root, a name that is not UTF-8) is listed with size 0 and its refusal (rule, reason)
    goes into `refusals` (without `refusals`, such entries are left out)."""
    found: list[tuple[str, str, int]] = []
    root_real = landing.resolve()
    for et in event_types:
        root = landing / et
        if not root.is_dir():
            continue
        for p in root.rglob("*.jsonl"):
            rel = p.relative_to(landing).as_posix()
            refusal, size = _classify(p, rel, root_real)
            if refusal is None:
                found.append((rel, et, size))
            elif refusals is not None:
                safe = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                refusals[safe] = refusal
                found.append((safe, et, 0))
    unknown = sorted(
        d.name for d in landing.iterdir() if d.is_dir() and d.name not in set(event_types)
    ) if landing.is_dir() else []
    if unknown:
        log.warning("landing folders with no contract are ignored: %s", ", ".join(unknown))
    return sorted(found)


def _classify(p: Path, rel: str, root_real: Path) -> tuple[tuple[str, str] | None, int]:
    """(why the landing entry `p` is not read as a landing file (rule, reason), or None for a regular file inside the
    landing root; its size) from one stat."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return ("file_name_not_utf8", "the file name is not valid UTF-8"), 0
    try:
        st = p.stat()  # follows a symlink
    except OSError as exc:
        return (("dangling_symlink", "a symlink to nothing") if p.is_symlink() else (
            "unreadable_file", f"cannot stat the file: {exc.strerror}")), 0
    if p.is_symlink() and not p.resolve().is_relative_to(root_real):
        return ("symlink_outside_landing", "a symlink leading out of the landing root (not followed)"), 0
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else (
            "a socket" if stat.S_ISSOCK(st.st_mode) else "a device or special file")
        return ("not_a_regular_file", f"{kind}, not a regular file"), 0
    return None, st.st_size


def _plan_batches(files: list[tuple[str, str, int]], max_bytes: int) -> list[list[tuple[str, str, int]]]:
    batches: list[list[tuple[str, str, int]]] = []
    current: list[tuple[str, str, int]] = []
    size = 0
    for f in files:
        if current and size + f[2] > max_bytes:
            batches.append(current)
            current, size = [], 0
        current.append(f)
        size += f[2]
    if current:
        batches.append(current)
    return batches


@dataclass
class Processed:
    """A validated landing file, as a worker hands it back: its valid rows already written as one Parquet
    file in the bronze table's folder (not yet committed; not written at all when the table committed this batch
    before a crash), its quarantine rows in memory."""

    result: FileResult  # `valid` emptied: the rows are in data_file
    digest: str
    size: int
    rows_valid: int
    data_file: lake.DataFile | None


@functools.cache
def _dictionary_columns(event_type: str) -> list[str]:
    """Bronze columns with few distinct values: the contract's enums and the per-file/batch constants."""
    bronze = contracts.get(f"bronze.{event_type}")
    constants = ("event_type", "_source_file", "_batch_id")
    return [c.name for c in bronze.columns if c.enum is not None or c.name in constants]


def _process(
    args: tuple[str, str, str, str, datetime, str | None, timedelta, timedelta, tuple[str, str] | None],
) -> Processed:
    """Validate one landing file; write its valid rows as a new data file into `table_dir` (None: the table already
    holds this batch, nothing to write)."""
    landing, rel, event_type, batch_id, ingested_at, table_dir, window, skew, refusal = args
    if refusal is not None:
        refused = refused_file(event_type=event_type, source_file=rel, batch_id=batch_id, ingested_at=ingested_at,
                               rule=refusal[0], reason=refusal[1])
        return Processed(refused, "", 0, 0, None)
    try:
        data = (Path(landing) / rel).read_bytes()
    except OSError as exc:  # vanished or unreadable since it was listed
        refused = refused_file(event_type=event_type, source_file=rel, batch_id=batch_id, ingested_at=ingested_at,
                               rule="unreadable_file", reason=f"cannot read the file: {exc.strerror}")
        return Processed(refused, "", 0, 0, None)
    digest, size = hashlib.sha256(data).hexdigest(), len(data)
    res = validate_file(data, event_type=event_type, source_file=rel, batch_id=batch_id, ingested_at=ingested_at,
                        lateness_window=window, max_clock_skew=skew)
    del data
    # Parquet encoding happens here, in parallel, instead of in the committing process. The name is new for every
    # attempt: a resumed batch or a concurrent ingest never rewrites a file the Delta log already references.
    data_file = None
    if res.rows_valid and table_dir is not None:
        name = lake.new_data_file_name(f"part-{batch_id}")
        data_file = lake.write_data_file(Path(table_dir), name, res.valid, dictionary=_dictionary_columns(event_type))
    rows_valid = res.rows_valid
    res.valid = res.valid.schema.empty_table()
    return Processed(res, digest, size, rows_valid, data_file)


_DATA_FILE = re.compile(r"^part-b(\d{8})-[0-9a-f]{32}\.parquet$")


def remove_orphans(settings: Settings, event_types: Iterable[str]) -> int:
    """Delete the bronze data files of batches a table never committed (a crashed or killed attempt wrote them
    and died before its commit); returns how many. A file of batch n is an orphan when the table's ingest app
    transaction is below n: committing batch n sets it to n. Run under the writer lock only (no live writer)."""
    removed = 0
    for et in event_types:
        table = settings.table_path("bronze", et)
        if not table.is_dir():
            continue
        committed = lake.committed_txn(table, APP_ID)
        for f in table.iterdir():
            m = _DATA_FILE.match(f.name)
            if m and int(m.group(1)) > committed:
                f.unlink(missing_ok=True)
                removed += 1
    if removed:
        log.info("ingest: removed %d data files of uncommitted batches (an earlier attempt died)", removed)
    return removed


@holding_writer_lock("ingest")
def ingest(
    settings: Settings,
    *,
    landing: Path | None = None,
    workers: int | None = None,
    max_batch_bytes: int = DEFAULT_BATCH_BYTES,
    progress: bool = True,
    now: datetime | None = None,
    select: Callable[[str], bool] | None = None,
) -> IngestReport:
    """Ingest every landing file not yet in the ledger (only those `select(relative path)` accepts, when
    given); an interrupted batch is resumed first, whatever its files."""
    landing = landing or settings.landing
    if not landing.is_dir():
        raise IngestError(f"landing folder {landing} does not exist")
    event_types = contracts.event_types()
    remove_orphans(settings, event_types)
    ledger_path = ops_path(settings, "ingest_ledger")
    runs_path = ops_path(settings, "ingest_runs")
    ledger = lake.read_arrow(ledger_path, ["source_file", "batch_id", "batch_seq"])
    runs = lake.read_arrow(runs_path, ["batch_seq"])
    done_seqs = set(runs.column("batch_seq").to_pylist()) if runs is not None else set()
    known: dict[str, int] = {}
    if ledger is not None:
        for f, s in zip(ledger.column("source_file").to_pylist(), ledger.column("batch_seq").to_pylist(),
                        strict=True):
            known[f] = s
    refusals: dict[str, tuple[str, str]] = {}
    all_files = discover(landing, event_types, refusals)
    for rel, (rule, reason) in sorted(refusals.items()):
        if rel not in known:
            log.warning("landing entry %s is not read: %s (%s); recorded in ops.quarantine", rel, reason, rule)
    by_path = {f[0]: f for f in all_files}
    pending: dict[int, list[tuple[str, str, int]]] = {}
    for path, seq in known.items():
        if seq not in done_seqs:
            if path not in by_path:
                raise IngestError(f"interrupted batch {seq} needs {path}, which is no longer in {landing}")
            pending.setdefault(seq, []).append(by_path[path])
    fresh = [f for f in all_files if f[0] not in known and (select is None or select(f[0]))]
    next_seq = max([*known.values(), *done_seqs, 0]) + 1
    plan: list[tuple[int, list[tuple[str, str, int]], bool]] = [
        (seq, sorted(files), True) for seq, files in sorted(pending.items())
    ]
    for files in _plan_batches(fresh, max_batch_bytes):
        plan.append((next_seq, files, False))
        next_seq += 1

    report = IngestReport()
    if not plan:
        log.info("ingest: nothing new in %s (%d files already ingested)", landing, len(known))
        return report
    total_bytes = sum(f[2] for _, files, _ in plan for f in files)
    # Worker processes pay ~1 s of imports each: only worth it for large batches.
    n_workers = workers or (min(os.cpu_count() or 1, 4) if total_bytes > INLINE_BYTES else 1)
    pool: Executor = (
        ProcessPoolExecutor(max_workers=n_workers, mp_context=multiprocessing.get_context("spawn"))
        if n_workers > 1
        else _InlineExecutor()
    )
    with pool, Progress("ingest", total=total_bytes, unit="B", enabled=progress) as bar:
        # Workers validate batch k+1 while this process commits batch k.
        submitted = [_submit(settings, pool, landing, seq, files, now, refusals) for seq, files, _ in plan[:2]]
        for k, (seq, files, resumed) in enumerate(plan):
            started, t_submit, futures = submitted[k]
            if k + 2 < len(plan):
                submitted.append(_submit(settings, pool, landing, *plan[k + 2][:2], now, refusals))
            outputs = []
            for fut in futures:
                out = fut.result()
                bar.advance(out.size, lines=out.result.lines)
                outputs.append(out)
            br = _commit_batch(settings, seq, files, outputs, started, t_submit, resumed, report, now)
            submitted[k] = (started, t_submit, [])  # release the batch's tables
            report.batches.append(br)
            log.info(
                "ingest batch %s: %d files, %d lines (%d valid, %d quarantined) in %.1fs = %.0f lines/s",
                br.batch_id, br.files, br.lines, br.valid, br.quarantined, br.duration_s,
                br.lines / max(br.duration_s, 1e-9),
            )
    return report


def _submit(
    settings: Settings, pool: Executor, landing: Path, seq: int, files: list[tuple[str, str, int]],
    now: datetime | None, refusals: dict[str, tuple[str, str]],
) -> tuple[datetime, float, list[Future[Processed]]]:
    started = now or datetime.now(UTC)
    t_submit = time.perf_counter()
    batch_id = f"b{seq:08d}"
    # A table that already committed this batch (a resumed batch) gets no new files: nothing to commit, nothing to
    # leave behind if this attempt dies too.
    committed = {et: lake.committed_txn(settings.table_path("bronze", et), APP_ID) >= seq for _, et, _ in files}
    futures = [
        pool.submit(_process, (str(landing), rel, et, batch_id, started,
                               None if committed[et] else str(settings.table_path("bronze", et)),
                               settings.lateness_window, settings.max_clock_skew, refusals.get(rel)))
        for rel, et, _ in files
    ]
    return started, t_submit, futures


def _commit_batch(
    settings: Settings,
    seq: int,
    files: list[tuple[str, str, int]],
    outputs: list[Processed],
    started: datetime,
    t_submit: float,
    resumed: bool,
    report: IngestReport,
    now: datetime | None,
) -> BatchReport:
    batch_id = f"b{seq:08d}"
    results: list[FileResult] = []
    ledger_rows: list[dict[str, object]] = []
    for out in outputs:
        res, digest, size, rows_valid = out.result, out.digest, out.size, out.rows_valid
        if rows_valid + res.rows_quarantined != res.lines:
            raise IngestError(f"{res.source_file}: {res.lines} lines but {rows_valid} valid + "
                              f"{res.rows_quarantined} quarantined")
        results.append(res)
        ledger_rows.append(
            {
                "source_file": res.source_file,
                "event_type": res.event_type,
                "size_bytes": size,
                "sha256": digest,
                "lines": res.lines,
                "rows_valid": rows_valid,
                "rows_quarantined": res.rows_quarantined,
                "batch_id": batch_id,
                "batch_seq": seq,
                "planned_at": started,
            }
        )
    lake.append_once(
        ops_path(settings, "ingest_ledger"),
        pa.Table.from_pylist(ledger_rows, schema=LEDGER_SCHEMA),
        app_id=APP_ID,
        txn_version=seq,
    )
    failpoints.reach("ingest.after_ledger")
    by_type: dict[str, list[lake.DataFile]] = {}
    for out in outputs:
        files_of_type = by_type.setdefault(out.result.event_type, [])
        if out.data_file is not None:
            files_of_type.append(out.data_file)
    for et, data_files in sorted(by_type.items()):
        table = settings.table_path("bronze", et)
        if data_files and not lake.commit_files_once(
            table, data_files, contracts.get(f"bronze.{et}").arrow_schema(), app_id=APP_ID, txn_version=seq
        ):
            # This table's part of the batch was committed before a crash: the files of this attempt are not in
            # the log (the committed ones keep their own names) and go.
            for f in data_files:
                (table / f.name).unlink(missing_ok=True)
        failpoints.reach("ingest.after_bronze_table")
        report.rows_by_table[et] = report.rows_by_table.get(et, 0) + sum(
            out.rows_valid for out in outputs if out.result.event_type == et)
    quarantine = pa.concat_tables([r.quarantine for r in results]) if results else QUARANTINE_SCHEMA.empty_table()
    if quarantine.num_rows:
        lake.append_once(ops_path(settings, "quarantine"), quarantine, app_id=APP_ID, txn_version=seq)
        counts = pc.value_counts(quarantine.column("rule")).to_pylist()
        for item in counts:
            report.quarantine_by_rule[item["values"]] = report.quarantine_by_rule.get(item["values"], 0) + item[
                "counts"
            ]
    failpoints.reach("ingest.before_runs")
    lines = sum(r.lines for r in results)
    valid = sum(out.rows_valid for out in outputs)
    quarantined = sum(r.rows_quarantined for r in results)
    nbytes = sum(f[2] for f in files)
    duration = time.perf_counter() - t_submit
    run_row = {
        "batch_id": batch_id,
        "batch_seq": seq,
        "started_at": started,
        "finished_at": datetime.now(UTC) if now is None else now,
        "files": len(files),
        "lines_read": lines,
        "rows_valid": valid,
        "rows_quarantined": quarantined,
        "bytes_read": nbytes,
        "duration_s": duration,
    }
    lake.append_once(
        ops_path(settings, "ingest_runs"),
        pa.Table.from_pylist([run_row], schema=RUNS_SCHEMA),
        app_id=APP_ID,
        txn_version=seq,
    )
    return BatchReport(batch_id, len(files), lines, valid, quarantined, nbytes, duration, resumed)

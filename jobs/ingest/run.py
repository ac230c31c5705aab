"""Incremental, exactly-once ingestion: landing JSONL -> bronze Delta tables + quarantine.

A batch is a set of landing file parts the ledger has not decided on (ops.ingest_ledger keys a file by path and
content): a new file; the complete lines appended to an ingested file since (its next part, line numbers
continuing); an ingested file whose bytes changed (refused: `rewritten`); a copy of an ingested file under another
name (recorded as a `duplicate`, not ingested). Files modified within `landing_settle_s` (default 60 s) wait for the
next run: a collector may still be writing them. Its commits, in order: ledger rows (the batch plan, with content
hashes and counts), one append per bronze table, quarantine, then the ingest_runs row that marks the batch complete.
Every commit carries a Delta app transaction (app id, batch number), so a batch interrupted by a crash is completed
by the next run, from the parts its ledger rows name, without writing anything twice.
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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

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


class Entry(NamedTuple):
    """A landing entry as listed: path relative to the landing root, event type, size and modification time."""

    rel: str
    event_type: str
    size: int
    mtime_ns: int


def discover(
    landing: Path, event_types: Iterable[str], refusals: dict[str, tuple[str, str]] | None = None
) -> list[Entry]:
    """Every landing file, sorted by path. Only regular files inside the landing root are read: any other `*.jsonl`
    entry (a directory, FIFO, socket or device, a dangling symlink, a symlink leading out of the root, a name that is
    not UTF-8) is listed with size 0 and its refusal (rule, reason) goes into `refusals` (without `refusals`, such
    entries are left out)."""
    found: list[Entry] = []
    root_real = landing.resolve()
    for et in event_types:
        root = landing / et
        if not root.is_dir():
            continue
        for p in root.rglob("*.jsonl"):
            rel = p.relative_to(landing).as_posix()
            refusal, size, mtime_ns = _classify(p, rel, root_real)
            if refusal is None:
                found.append(Entry(rel, et, size, mtime_ns))
            elif refusals is not None:
                safe = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                refusals[safe] = refusal
                found.append(Entry(safe, et, 0, 0))
    unknown = sorted(
        d.name for d in landing.iterdir() if d.is_dir() and d.name not in set(event_types)
    ) if landing.is_dir() else []
    if unknown:
        log.warning("landing folders with no contract are ignored: %s", ", ".join(unknown))
    return sorted(found)


def _classify(p: Path, rel: str, root_real: Path) -> tuple[tuple[str, str] | None, int, int]:
    """(why the landing entry `p` is not read as a landing file (rule, reason), or None for a regular file inside the
    landing root; its size; its modification time in ns) from one stat."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return ("file_name_not_utf8", "the file name is not valid UTF-8"), 0, 0
    try:
        st = p.stat()  # follows a symlink
    except OSError as exc:
        return (("dangling_symlink", "a symlink to nothing") if p.is_symlink() else (
            "unreadable_file", f"cannot stat the file: {exc.strerror}")), 0, 0
    if p.is_symlink() and not p.resolve().is_relative_to(root_real):
        return ("symlink_outside_landing", "a symlink leading out of the landing root (not followed)"), 0, 0
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else (
            "a socket" if stat.S_ISSOCK(st.st_mode) else "a device or special file")
        return ("not_a_regular_file", f"{kind}, not a regular file"), 0, 0
    return None, st.st_size, st.st_mtime_ns


# What a ledger row records about a part of a landing entry.
INGESTED, DUPLICATE, REWRITTEN, REFUSED = "ingested", "duplicate", "rewritten", "refused"


@dataclass(frozen=True)
class Part:
    """A part of a landing entry a batch decides on: one ledger row. Bytes [offset, end) are read (the file's first
    `end` bytes are hashed); line numbers start at first_line. A part planned `rewritten` or `refused` (with its
    rule and reason) is not read: it becomes one quarantine row naming the file."""

    rel: str
    event_type: str
    offset: int
    end: int
    first_line: int
    mtime_ns: int | None
    disposition: str = INGESTED
    refusal: tuple[str, str] | None = None
    duplicate_of: str | None = None

    @property
    def nbytes(self) -> int:
        return self.end - self.offset


def rewritten_refusal(offset: int) -> tuple[str, str]:
    return ("rewritten_file", f"its first {offset} bytes changed after they were ingested; the file is not read again "
            "(land corrected events in a new file)")


def duplicate_refusal(original: str) -> tuple[str, str]:
    return ("duplicate_file", f"the same bytes as {original}, already ingested; not ingested again")


def _plan_batches(parts: list[Part], max_bytes: int) -> list[list[Part]]:
    batches: list[list[Part]] = []
    current: list[Part] = []
    size = 0
    for f in parts:
        if current and size + f.nbytes > max_bytes:
            batches.append(current)
            current, size = [], 0
        current.append(f)
        size += f.nbytes
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
    args: tuple[str, Part, str, datetime, str | None, timedelta, timedelta],
) -> Processed:
    """Validate one part of a landing file; write its valid rows as a new data file into `table_dir` (None: the table
    already holds this batch, nothing to write)."""
    landing, part, batch_id, ingested_at, table_dir, window, skew = args
    rel, event_type = part.rel, part.event_type
    if part.refusal is not None:
        refused = refused_file(event_type=event_type, source_file=rel, batch_id=batch_id, ingested_at=ingested_at,
                               rule=part.refusal[0], reason=part.refusal[1])
        return Processed(refused, "", 0, 0, None)
    try:
        with (Path(landing) / rel).open("rb") as fh:
            data = fh.read(part.end)  # bytes appended since the file was listed belong to a later part
    except OSError as exc:  # vanished or unreadable since it was listed
        refused = refused_file(event_type=event_type, source_file=rel, batch_id=batch_id, ingested_at=ingested_at,
                               rule="unreadable_file", reason=f"cannot read the file: {exc.strerror}")
        return Processed(refused, "", 0, 0, None)
    if len(data) < part.end:
        raise IngestError(f"{rel}: {part.end} bytes were listed but only {len(data)} can be read (the file shrank)")
    digest = hashlib.sha256(data).hexdigest()
    body = data[part.offset:] if part.offset else data
    del data
    res = validate_file(body, event_type=event_type, source_file=rel, batch_id=batch_id, ingested_at=ingested_at,
                        lateness_window=window, max_clock_skew=skew)
    del body
    if part.first_line > 1:  # an appended part: its lines continue the file's numbering
        res = _renumbered(res, part.first_line - 1)
    # Parquet encoding happens here, in parallel, instead of in the committing process. The name is new for every
    # attempt: a resumed batch or a concurrent ingest never rewrites a file the Delta log already references.
    data_file = None
    if res.rows_valid and table_dir is not None:
        name = lake.new_data_file_name(f"part-{batch_id}")
        data_file = lake.write_data_file(Path(table_dir), name, res.valid, dictionary=_dictionary_columns(event_type))
    rows_valid = res.rows_valid
    res.valid = res.valid.schema.empty_table()
    return Processed(res, digest, part.nbytes, rows_valid, data_file)


def _renumbered(res: FileResult, shift: int) -> FileResult:
    """The result with every line number (bronze `_line`, quarantine `line`) moved by `shift`."""
    def moved(t: pa.Table, column: str) -> pa.Table:
        i = t.schema.get_field_index(column)
        return t.set_column(i, t.schema.field(i), pc.add(t.column(i), pa.scalar(shift, t.schema.field(i).type)))

    return FileResult(res.source_file, res.event_type, res.lines, moved(res.valid, "_line"),
                      moved(res.quarantine, "line"))


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
    ledger = _Ledger.read(settings)
    runs = lake.read_arrow(ops_path(settings, "ingest_runs"), ["batch_seq"])
    done_seqs = set(runs.column("batch_seq").to_pylist()) if runs is not None else set()
    refusals: dict[str, tuple[str, str]] = {}
    all_files = discover(landing, event_types, refusals)
    for rel, (rule, reason) in sorted(refusals.items()):
        if rel not in ledger.latest:
            log.warning("landing entry %s is not read: %s (%s); recorded in ops.quarantine", rel, reason, rule)
    by_path = {f.rel: f for f in all_files}
    pending: dict[int, list[Part]] = {}
    for seq, parts in ledger.batches.items():
        if seq not in done_seqs:
            for k, part in enumerate(parts):
                if part.disposition == REFUSED:  # not read: refused again for the reason it has now
                    parts[k] = replace(part, refusal=refusals.get(part.rel, (
                        "unreadable_file", "no longer in the landing folder")))
                elif part.disposition == INGESTED and part.rel not in by_path:
                    raise IngestError(f"interrupted batch {seq} needs {part.rel}, which is no longer in {landing}")
            pending[seq] = parts
    settled_before = time.time_ns() - int(settings.landing_settle_s * 1e9)
    fresh, waiting = [], 0
    for f in all_files:
        if select is not None and not select(f.rel):
            continue
        if f.rel in refusals:
            if f.rel not in ledger.latest:
                fresh.append(Part(f.rel, f.event_type, 0, 0, 1, None, REFUSED, refusals[f.rel]))
            continue
        if f.mtime_ns > settled_before:
            waiting += 1  # still being written, perhaps: the next run reads it
            continue
        part = ledger.next_part(landing, f)
        if part is not None:
            fresh.append(part)
    if waiting:
        log.info("ingest: %d landing files modified in the last %.0f s wait for the next run", waiting,
                 settings.landing_settle_s)
    next_seq = max([*ledger.batches, *done_seqs, 0]) + 1
    plan: list[tuple[int, list[Part], bool]] = [
        (seq, sorted(parts, key=lambda p: (p.rel, p.offset)), True) for seq, parts in sorted(pending.items())
    ]
    for parts in _plan_batches(fresh, max_batch_bytes):
        plan.append((next_seq, parts, False))
        next_seq += 1

    report = IngestReport()
    if not plan:
        log.info("ingest: nothing new in %s (%d files already ingested)", landing, len(ledger.latest))
        return report
    total_bytes = sum(f.nbytes for _, parts, _ in plan for f in parts)
    # Worker processes pay ~1 s of imports each: only worth it for large batches.
    n_workers = workers or (min(os.cpu_count() or 1, 4) if total_bytes > INLINE_BYTES else 1)
    pool: Executor = (
        ProcessPoolExecutor(max_workers=n_workers, mp_context=multiprocessing.get_context("spawn"))
        if n_workers > 1
        else _InlineExecutor()
    )
    with pool, Progress("ingest", total=total_bytes, unit="B", enabled=progress) as bar:
        # Workers validate batch k+1 while this process commits batch k.
        submitted = [_submit(settings, pool, landing, seq, parts, now) for seq, parts, _ in plan[:2]]
        for k, (seq, files, resumed) in enumerate(plan):
            started, t_submit, futures = submitted[k]
            if k + 2 < len(plan):
                submitted.append(_submit(settings, pool, landing, *plan[k + 2][:2], now))
            outputs = []
            for fut in futures:
                out = fut.result()
                bar.advance(out.size, lines=out.result.lines)
                outputs.append(out)
            br = _commit_batch(settings, seq, files, outputs, started, t_submit, resumed, report, now, ledger)
            submitted[k] = (started, t_submit, [])  # release the batch's tables
            report.batches.append(br)
            log.info(
                "ingest batch %s: %d files, %d lines (%d valid, %d quarantined) in %.1fs = %.0f lines/s",
                br.batch_id, br.files, br.lines, br.valid, br.quarantined, br.duration_s,
                br.lines / max(br.duration_s, 1e-9),
            )
    return report


def _submit(
    settings: Settings, pool: Executor, landing: Path, seq: int, parts: list[Part], now: datetime | None,
) -> tuple[datetime, float, list[Future[Processed]]]:
    started = now or datetime.now(UTC)
    t_submit = time.perf_counter()
    batch_id = f"b{seq:08d}"
    # A table that already committed this batch (a resumed batch) gets no new files: nothing to commit, nothing to
    # leave behind if this attempt dies too.
    committed = {et: lake.committed_txn(settings.table_path("bronze", et), APP_ID) >= seq
                 for et in {p.event_type for p in parts}}
    def table_dir(et: str) -> str | None:
        return None if committed[et] else str(settings.table_path("bronze", et))

    futures = [
        pool.submit(_process, (str(landing), part, batch_id, started, table_dir(part.event_type),
                               settings.lateness_window, settings.max_clock_skew))
        for part in parts
    ]
    return started, t_submit, futures


def _refused(settings: Settings, out: Processed, part: Part, batch_id: str, started: datetime) -> Processed:
    """`out` turned into the refusal `part` plans: its data file (written, not committed) is removed."""
    if out.data_file is not None:
        (settings.table_path("bronze", part.event_type) / out.data_file.name).unlink(missing_ok=True)
    assert part.refusal is not None
    refused = refused_file(event_type=part.event_type, source_file=part.rel, batch_id=batch_id, ingested_at=started,
                           rule=part.refusal[0], reason=part.refusal[1])
    return Processed(refused, out.digest, part.nbytes, 0, None)


@dataclass
class _Ledger:
    """What ops.ingest_ledger holds, as ingest plans with it: each path's last part, each batch's parts (to resume an
    interrupted batch exactly), and the content hash of every ingested file (to recognise a copy)."""

    latest: dict[str, dict[str, object]]
    batches: dict[int, list[Part]]
    by_digest: dict[str, str]

    @classmethod
    def read(cls, settings: Settings) -> _Ledger:
        t = lake.read_arrow(ops_path(settings, "ingest_ledger"))
        latest: dict[str, dict[str, object]] = {}
        batches: dict[int, list[Part]] = {}
        by_digest: dict[str, str] = {}
        for row in (t.to_pylist() if t is not None else []):
            # a ledger written before parts were recorded (version 1): every row is a whole file
            row["offset_bytes"] = row.get("offset_bytes") or 0
            row["first_line"] = row.get("first_line") or 1
            row["disposition"] = row.get("disposition") or (INGESTED if row["sha256"] else REFUSED)
            rel = str(row["source_file"])
            if rel not in latest or int(row["offset_bytes"]) >= int(latest[rel]["offset_bytes"]):  # type: ignore[arg-type]
                latest[rel] = row
            if row["disposition"] == INGESTED and row["sha256"]:
                by_digest.setdefault(str(row["sha256"]), rel)
            batches.setdefault(int(row["batch_seq"]), []).append(_part_of(row))
        return cls(latest, batches, by_digest)

    def next_part(self, landing: Path, f: Entry) -> Part | None:
        """The part of the listed regular file `f` not decided on yet: the whole file when the ledger does not know
        it; the complete lines appended since its last part; a `rewritten` refusal when bytes already ingested
        changed; None when nothing is new (or the path's last part was a refusal or a duplicate: final)."""
        row = self.latest.get(f.rel)
        if row is None:
            return Part(f.rel, f.event_type, 0, f.size, 1, f.mtime_ns)
        if row["disposition"] != INGESTED:
            return None
        end = int(row["offset_bytes"]) + int(row["size_bytes"])  # type: ignore[arg-type]
        modified = row.get("modified_at")
        if f.size == end and (modified is None or _micros(modified) == f.mtime_ns // 1000):
            return None
        with (landing / f.rel).open("rb") as fh:
            data = fh.read(f.size)
        next_line = int(row["first_line"]) + int(row["lines"])  # type: ignore[arg-type]
        if len(data) < end or hashlib.sha256(data[:end]).hexdigest() != row["sha256"] or (
                end and data[end - 1:end] != b"\n"):
            return Part(f.rel, f.event_type, end, end, next_line, f.mtime_ns, REWRITTEN, rewritten_refusal(end))
        last_newline = data.rfind(b"\n", end)
        if last_newline < 0:
            return None  # no complete line appended yet
        return Part(f.rel, f.event_type, end, last_newline + 1, next_line, f.mtime_ns)


def _micros(t: object) -> int:
    assert isinstance(t, datetime)
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _part_of(row: dict[str, object]) -> Part:
    """The part a ledger row planned (to process it again when its batch is resumed)."""
    rel, offset, disposition = str(row["source_file"]), int(row["offset_bytes"]), str(row["disposition"])  # type: ignore[call-overload]
    size = int(row["size_bytes"])  # type: ignore[call-overload]
    refusal = {REWRITTEN: rewritten_refusal(offset),
               DUPLICATE: duplicate_refusal(str(row.get("duplicate_of")))}.get(disposition)
    modified = row.get("modified_at")
    return Part(rel, str(row["event_type"]), offset, offset + size, int(row["first_line"]),  # type: ignore[call-overload]
                _micros(modified) * 1000 if modified is not None else None, disposition, refusal,
                row.get("duplicate_of"))  # type: ignore[arg-type]


def _commit_batch(
    settings: Settings,
    seq: int,
    parts: list[Part],
    outputs: list[Processed],
    started: datetime,
    t_submit: float,
    resumed: bool,
    report: IngestReport,
    now: datetime | None,
    ledger: _Ledger,
) -> BatchReport:
    batch_id = f"b{seq:08d}"
    results: list[FileResult] = []
    ledger_rows: list[dict[str, object]] = []
    for k, (part, out) in enumerate(zip(parts, outputs, strict=True)):
        if not resumed and part.disposition == INGESTED and part.offset == 0 and part.end:
            original = ledger.by_digest.get(out.digest)
            if original is not None and original != part.rel:  # a copy under another name: recorded, not ingested
                part = replace(part, disposition=DUPLICATE, refusal=duplicate_refusal(original), duplicate_of=original)
                out = _refused(settings, out, part, batch_id, started)
                outputs[k] = out
                log.warning("landing file %s has the same bytes as %s: not ingested again (ops.quarantine)",
                            part.rel, original)
            else:
                ledger.by_digest.setdefault(out.digest, part.rel)
        res, rows_valid = out.result, out.rows_valid
        if rows_valid + res.rows_quarantined != res.lines:
            raise IngestError(f"{res.source_file}: {res.lines} lines but {rows_valid} valid + "
                              f"{res.rows_quarantined} quarantined")
        if part.disposition == REWRITTEN and not resumed:
            log.warning("landing file %s changed after it was ingested: %s (ops.quarantine)", part.rel,
                        rewritten_refusal(part.offset)[1])
        results.append(res)
        ledger_rows.append(
            {
                "source_file": res.source_file,
                "event_type": res.event_type,
                "offset_bytes": part.offset,
                "size_bytes": part.nbytes,
                "first_line": part.first_line,
                "sha256": out.digest,
                "modified_at": (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=part.mtime_ns // 1000)
                                if part.mtime_ns is not None else None),
                "disposition": part.disposition,
                "duplicate_of": part.duplicate_of,
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
        merge_schema=True,  # a ledger written before parts were recorded gains their columns
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
    nbytes = sum(p.nbytes for p in parts)
    duration = time.perf_counter() - t_submit
    run_row = {
        "batch_id": batch_id,
        "batch_seq": seq,
        "started_at": started,
        "finished_at": datetime.now(UTC) if now is None else now,
        "files": len(parts),
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
    return BatchReport(batch_id, len(parts), lines, valid, quarantined, nbytes, duration, resumed)

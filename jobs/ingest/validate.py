"""Line-level contract validation of landing files (pure: bytes in, Arrow tables out).

Each line is decoded by the msgspec decoder generated from the event's contract (storylake.event_decoders: strict
types, enums, ranges, lengths, formats). Valid lines are then parsed to typed columns by Arrow's JSON reader
in one vectorised pass; every rejected line becomes a quarantine row naming the rule and the field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from storylake import contracts
from storylake.event_decoders import Validator, classify, offending_value, validator_for
from storylake.rules.arrival import FUTURE, LATE, LATENESS_WINDOW, MAX_CLOCK_SKEW, accepted_range, arrival_hour
from storylake.rules.arrival import reason as arrival_reason

QUARANTINE_SCHEMA = contracts.get("ops.quarantine").arrow_schema()
_ZERO = timedelta(0)


@dataclass
class FileResult:
    source_file: str
    event_type: str
    lines: int
    valid: pa.Table
    quarantine: pa.Table

    @property
    def rows_valid(self) -> int:
        return self.valid.num_rows

    @property
    def rows_quarantined(self) -> int:
        return self.quarantine.num_rows


CHUNK_BYTES = 16 * 1024
RAW_CAP = 16 * 1024  # characters of a rejected line kept in ops.quarantine.raw (the reason records the full length)
GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"


def _quarantine_table(contract_name: str, source_file: str, batch_id: str, ingested_at: Any,
                      bad: dict[str, list[Any]]) -> pa.Table:
    n_bad = len(bad["line"])
    return pa.table(
        {
            "stage": pa.array(["ingest"] * n_bad, pa.string()),
            "contract": pa.array([contract_name] * n_bad, pa.string()),
            "source_file": pa.array([source_file] * n_bad, pa.string()),
            "line": pa.array(bad["line"], pa.int64()),
            "event_id": pa.array(bad["event_id"], pa.string()),
            "rule": pa.array(bad["rule"], pa.string()),
            "field": pa.array(bad["field"], pa.string()),
            "reason": pa.array(bad["reason"], pa.string()),
            "raw": pa.array(bad["raw"], pa.string()),
            "batch_id": pa.array([batch_id] * n_bad, pa.string()),
            "quarantined_at": pa.repeat(_ts_scalar(ingested_at), n_bad),
            "anchor_at": pa.nulls(n_bad, QUARANTINE_SCHEMA.field("anchor_at").type),
        },
        schema=QUARANTINE_SCHEMA,
    )


def refused_file(*, event_type: str, source_file: str, batch_id: str, ingested_at: Any, rule: str,
                 reason: str) -> FileResult:
    """A landing entry not read as JSON lines (not a regular file, a symlink out of the root, compressed, ...): it
    counts as one line read and quarantined, a row with no line number naming the file and why."""
    contract_name = f"landing.{event_type}"
    bad = {"line": [None], "start": [0], "event_id": [None], "rule": [rule], "field": ["$file"],
           "reason": [f"{contract_name}: {source_file}: {reason}"], "raw": [""]}
    return FileResult(source_file, event_type, 1, validator_for(event_type).bronze.arrow_schema().empty_table(),
                      _quarantine_table(contract_name, source_file, batch_id, ingested_at, bad))
_ELEMENT = re.compile(r" - at `\$\[(\d+)\]")
_BYTE = re.compile(r"\(byte (\d+)\)")


def validate_file(
    data: bytes,
    *,
    event_type: str,
    source_file: str,
    batch_id: str,
    ingested_at: Any,
    chunked: bool = True,
    chunk_bytes: int = CHUNK_BYTES,
    lateness_window: timedelta = LATENESS_WINDOW,
    max_clock_skew: timedelta = MAX_CLOCK_SKEW,
) -> FileResult:
    """Validate every line of one landing file; valid + quarantined == lines, always.

    Lines are decoded about `chunk_bytes` at a time as one JSON array (the chunk's newlines become `,\n`: a
    raw newline cannot occur inside a JSON string, so no line can run into the next), which moves the
    per-line loop into msgspec's C code and never splits the file into line objects. A chunk that fails is
    split into lines and says where it broke (element index or byte offset): the lines before are decoded
    as a chunk again, the culprit alone through the per-line path that names the rule, field and value, and
    the scan goes on after it. `chunked=False` checks every line on its own (the fallback, and the
    reference in the tests: both must give the same result).

    Valid events whose event_time lies outside the range storylake.rules.arrival accepts for the file's arrival
    hour (its landing hour folder) are quarantined too: `late_beyond_window` or `from_the_future`.
    """
    if data.startswith(GZIP_MAGIC):
        return refused_file(event_type=event_type, source_file=source_file, batch_id=batch_id,
                            ingested_at=ingested_at, rule="compressed_file",
                            reason="gzip-compressed; landing files are plain JSON lines (decompress it, new name)")
    if data.startswith(BOM):  # a UTF-8 byte order mark before the first line: not part of the JSON
        data = data[len(BOM):]
    v = validator_for(event_type)
    decode = v.decoder.decode
    decode_many = v.many.decode
    rules = v.rules
    checks = [rule for _, rule in rules]
    contract_name = f"landing.{event_type}"
    bad: dict[str, list[Any]] = {k: [] for k in ("line", "start", "event_id", "rule", "field", "reason", "raw")}

    def reject(no: int, start: int, line: bytes, rule: str, field: str, reason: str, event_id: str | None) -> None:
        bad["line"].append(no)
        bad["start"].append(start)
        bad["event_id"].append(event_id)
        bad["rule"].append(rule)
        bad["field"].append(field)
        raw = line.decode("utf-8", errors="replace")
        if len(raw) > RAW_CAP:
            reason += f" [raw line of {len(raw)} characters; the first {RAW_CAP} kept]"
            raw = raw[:RAW_CAP]
        bad["reason"].append(reason)
        bad["raw"].append(raw)

    def after_decode(no: int, start: int, line: bytes, ev: Any) -> None:
        """The checks msgspec cannot express: UTC offset, multi-field row rules."""
        if ev.event_time.utcoffset() != _ZERO:
            reject(no, start, line, "bad_format", "event_time",
                   f"{contract_name}.event_time: expected UTC (Z), got offset {ev.event_time.utcoffset()}", ev.event_id)
            return
        if rules:
            broken = next(((name, why) for name, rule in rules if (why := rule(ev)) is not None), None)
            if broken is not None:
                reject(no, start, line, broken[0], broken[0], f"{contract_name}: {broken[1]}", ev.event_id)

    def check_line(no: int, start: int, line: bytes) -> None:
        try:
            ev = decode(line)
        except msgspec.ValidationError as exc:
            msg = str(exc)
            rule, field = classify(msg)
            if field == "event_type" and rule == "invalid_enum":
                found = offending_value(line, field)
                reject(no, start, line, "event_type_mismatch", field,
                       f"{contract_name}.event_type: {found} does not match folder {event_type!r}", _event_id(line))
                return
            shown = offending_value(line, field) if rule != "missing_field" else ""
            head = msg.split(" - at ")[0]
            if rule == "bad_format":
                head = "expected an ISO-8601 UTC timestamp ending in Z" if field == "event_time" else (
                    "does not match the required format"
                )
            reason = f"{contract_name}.{field or '$'}: {head}" + (f" (got {shown})" if shown else "")
            reject(no, start, line, rule, field or "$", reason, _event_id(line))
            return
        except msgspec.DecodeError as exc:
            why = "empty line" if not line.strip() else str(exc)
            reject(no, start, line, "malformed_json", "$", f"{contract_name}: malformed JSON: {why}", None)
            return
        after_decode(no, start, line, ev)

    def decoded(
        events: Any, first_no: int, lines: list[bytes] | None, starts: list[int] | None, body: bytes, offset: int
    ) -> None:
        """Post-checks of a decoded chunk, only where they can fail: a non-UTC offset (msgspec gives UTC
        times the timezone.utc singleton), or a broken row rule. The events that fail one are checked again
        by after_decode, which names the reason; lines are split out of `body` only then."""
        if not checks:
            suspects = [i for i, ev in enumerate(events) if ev.event_time.tzinfo is not UTC]
        elif len(checks) == 1:
            check = checks[0]
            suspects = [i for i, ev in enumerate(events) if ev.event_time.tzinfo is not UTC or check(ev) is not None]
        else:
            suspects = [
                i for i, ev in enumerate(events)
                if ev.event_time.tzinfo is not UTC or any(check(ev) is not None for check in checks)
            ]
        if not suspects:
            return
        if lines is None or starts is None:
            lines, starts = _split(body, offset)
        for i in suspects:
            after_decode(first_no + i, starts[i], lines[i], events[i])

    def check_lines(lines: list[bytes], starts: list[int], first_no: int, lo: int, hi: int) -> None:
        """Lines [lo, hi) of `lines` (line numbers first_no + index, byte offsets `starts`)."""
        while lo < hi:
            if hi - lo == 1:
                check_line(first_no + lo, starts[lo], lines[lo])
                return
            chunk = lines[lo:hi]
            culprit: int | None = None
            try:
                evs = decode_many(b"[" + b",\n".join(chunk) + b"]")
            except msgspec.ValidationError as exc:
                m = _ELEMENT.search(str(exc))
                culprit = int(m.group(1)) if m else None
            except msgspec.DecodeError as exc:
                m = _BYTE.search(str(exc))
                culprit = _line_at(chunk, int(m.group(1))) if m else None
            else:
                if len(evs) == len(chunk):
                    decoded(evs, first_no + lo, chunk, starts[lo:hi], b"", 0)
                    return
            if culprit is None or culprit >= len(chunk):  # no usable position: every line on its own
                for i in range(lo, hi):
                    check_line(first_no + i, starts[i], lines[i])
                return
            if culprit:
                check_lines(lines, starts, first_no, lo, lo + culprit)
            check_line(first_no + lo + culprit, starts[lo + culprit], lines[lo + culprit])
            lo += culprit + 1

    n_lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    if chunked:
        pos, no = 0, 1
        while pos < len(data):
            end = data.find(b"\n", pos + chunk_bytes)
            end = len(data) if end < 0 else end + 1
            body = data[pos:end - 1] if data[end - 1:end] == b"\n" else data[pos:end]
            k = body.count(b"\n") + 1
            try:
                evs = decode_many(b"[" + body.replace(b"\n", b",\n") + b"]")
            except (msgspec.ValidationError, msgspec.DecodeError):
                evs = None
            if evs is not None and len(evs) == k:
                decoded(evs, no, None, None, body, pos)
            else:
                lines, starts = _split(body, pos)
                check_lines(lines, starts, no, 0, k)
            pos, no = end, no + k
    else:
        lines, starts = _split(data[:-1] if data.endswith(b"\n") else data, 0)
        for i in range(n_lines):
            check_line(i + 1, starts[i], lines[i])

    _sort_by_line(bad)  # chunks may report out of order
    try:
        valid = _typed(v, data, n_lines, bad["line"], bad["start"], source_file, batch_id, ingested_at)
    except (pa.ArrowInvalid, _ParseCountError):
        if not chunked:
            # Lines msgspec accepted that Arrow's typed parse refuses (a key given twice, ...): each valid line is
            # parsed on its own, the ones Arrow refuses are quarantined with its message, the rest typed again.
            rejected = set(bad["line"])
            for i in range(n_lines):
                if i + 1 not in rejected and (why := _arrow_refusal(v, lines[i])) is not None:
                    field = m.group(1) if (m := _ARROW_COLUMN.search(why)) else _field_holding(lines[i], why)
                    rule = "duplicate_key" if "specified twice" in why else (
                        "bad_format" if "couldn't parse" in why else "unparseable")
                    reject(i + 1, starts[i], lines[i], rule, field, f"{contract_name}.{field}: {why}",
                           _event_id(lines[i]))
            _sort_by_line(bad)
            valid = _typed(v, data, n_lines, bad["line"], bad["start"], source_file, batch_id, ingested_at)
            return _result(v, valid, data, source_file, event_type, n_lines, batch_id, ingested_at, lateness_window,
                           max_clock_skew, contract_name, bad)
        # a chunk decoded into as many events as lines although its lines do not parse one by one (crafted
        # input): validate this file line by line instead
        return validate_file(data, event_type=event_type, source_file=source_file, batch_id=batch_id,
                             ingested_at=ingested_at, chunked=False, lateness_window=lateness_window,
                             max_clock_skew=max_clock_skew)
    return _result(v, valid, data, source_file, event_type, n_lines, batch_id, ingested_at, lateness_window,
                   max_clock_skew, contract_name, bad)


def _sort_by_line(bad: dict[str, list[Any]]) -> None:
    """Reorder the rejected-line columns by line number, in place."""
    order = sorted(range(len(bad["line"])), key=bad["line"].__getitem__)
    for k in bad:
        bad[k] = [bad[k][i] for i in order]


_ARROW_COLUMN = re.compile(r"Column\(/([A-Za-z0-9_]+)")


def _field_holding(line: bytes, why: str) -> str:
    """The top-level field whose text Arrow could not convert ("... couldn't parse:<text>"), "$" when not found."""
    _, sep, text = why.partition("couldn't parse:")
    try:
        value = json.loads(line) if sep else None
    except (ValueError, RecursionError):
        value = None
    if isinstance(value, dict):
        return next((k for k, x in value.items() if isinstance(x, str) and x == text), "$")
    return "$"


def _arrow_refusal(v: Validator, line: bytes) -> str | None:
    """Arrow's message when its typed JSON parse refuses this one line, None when it parses it."""
    try:
        pajson.read_json(pa.BufferReader(pa.py_buffer(line)), parse_options=pajson.ParseOptions(
            explicit_schema=v.parse_schema, unexpected_field_behavior="ignore"))
    except pa.ArrowInvalid as exc:
        return str(exc).removeprefix("JSON parse error: ")
    return None


def _result(
    v: Validator, valid: pa.Table, data: bytes, source_file: str, event_type: str, n_lines: int, batch_id: str,
    ingested_at: Any, lateness_window: timedelta, max_clock_skew: timedelta, contract_name: str,
    bad: dict[str, list[Any]],
) -> FileResult:
    arrival = arrival_hour(source_file)
    if arrival is not None and valid.num_rows:
        valid = _check_arrival(valid, data, arrival, lateness_window, max_clock_skew, contract_name, bad)
    quarantine = _quarantine_table(contract_name, source_file, batch_id, ingested_at, bad)
    return FileResult(source_file, event_type, n_lines, valid, quarantine)


def _check_arrival(
    valid: pa.Table, data: bytes, arrival: datetime, window: timedelta, skew: timedelta, contract_name: str,
    bad: dict[str, list[Any]],
) -> pa.Table:
    """`valid` without the events outside the accepted range of their arrival hour; those go to `bad` (kept in line
    order) with their rule and reason."""
    earliest, latest = accepted_range(arrival, window, skew)
    times = valid.column("event_time")
    late = pc.less(times, _ts_scalar(earliest))
    future = pc.greater(times, _ts_scalar(latest))
    out = pc.or_(late, future)
    if not pc.any(out).as_py():
        return valid
    lines = data.split(b"\n")
    offsets = np.cumsum([0] + [len(x) + 1 for x in lines[:-1]])
    for i in np.flatnonzero(out.to_numpy(zero_copy_only=False)):
        row = valid.slice(int(i), 1).to_pylist()[0]
        rule = LATE if late[int(i)].as_py() else FUTURE
        shown = row["event_time"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        no = int(row["_line"])
        bad["line"].append(no)
        bad["start"].append(int(offsets[no - 1]))
        bad["event_id"].append(row["event_id"])
        bad["rule"].append(rule)
        bad["field"].append("event_time")
        bad["reason"].append(f"{contract_name}.event_time: {arrival_reason(rule, shown, arrival, window, skew)}")
        bad["raw"].append(lines[no - 1].decode("utf-8", errors="replace"))
    _sort_by_line(bad)
    return valid.filter(pc.invert(out))


def _split(body: bytes, offset: int) -> tuple[list[bytes], list[int]]:
    """The lines of `body` (no trailing newline) and their byte offsets in the file (`offset` = body's)."""
    lines = body.split(b"\n")
    starts = [offset]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    return lines, starts


class _ParseCountError(ValueError):
    """Arrow's row count differs from the count of validated lines."""


def _line_at(chunk: list[bytes], offset: int) -> int:
    """Index of the line of `chunk` holding byte `offset` of b"[" + b",\n".join(chunk) + b"]" (a separator
    or the closing bracket counts as the line before it, where the broken JSON began)."""
    pos = 1
    for i, line in enumerate(chunk):
        pos += len(line) + 2
        if offset < pos:
            return i
    return len(chunk) - 1


def _ts_scalar(t: datetime) -> pa.Scalar:
    """A UTC timestamp scalar built from epoch microseconds: converting an aware datetime makes pyarrow
    import pandas (hundreds of modules, seconds in a fresh worker process)."""
    us = (t - datetime(1970, 1, 1, tzinfo=t.tzinfo)) // timedelta(microseconds=1)
    return pa.scalar(us, pa.timestamp("us", tz="UTC"))


def _event_id(line: bytes) -> str | None:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        return None
    eid = value.get("event_id") if isinstance(value, dict) else None
    return eid if isinstance(eid, str) else None


def _typed(
    v: Validator, data: bytes, n_lines: int, bad_numbers: list[int], bad_starts: list[int], source_file: str,
    batch_id: str, ingested_at: Any,
) -> pa.Table:
    """Typed Arrow columns of the valid lines, parsed in one vectorised pass over the file's bytes with the
    rejected lines blanked out (Arrow's JSON reader skips whitespace-only lines)."""
    schema = v.bronze.arrow_schema()
    n = n_lines - len(bad_numbers)
    if n == 0:
        return schema.empty_table()
    numbers = np.arange(1, n_lines + 1, dtype=np.int64)
    buf: bytes | bytearray = data
    if bad_numbers:
        buf = bytearray(data)
        for start in bad_starts:
            end = data.find(b"\n", start)
            end = len(data) if end < 0 else end
            buf[start:end] = b" " * (end - start)
        numbers = np.delete(numbers, np.asarray(bad_numbers, dtype=np.int64) - 1)
    parsed = pajson.read_json(
        pa.BufferReader(pa.py_buffer(buf)),
        read_options=pajson.ReadOptions(block_size=1 << 24),
        parse_options=pajson.ParseOptions(explicit_schema=v.parse_schema, unexpected_field_behavior="ignore"),
    )
    if parsed.num_rows != n:
        raise _ParseCountError(f"Arrow parsed {parsed.num_rows} rows from {n} validated lines")
    columns = {name: parsed.column(name) for name in v.parse_schema.names}
    columns["_source_file"] = pa.repeat(pa.scalar(source_file, pa.string()), n)
    columns["_line"] = pa.array(numbers, pa.int64())
    columns["_ingested_at"] = pa.repeat(_ts_scalar(ingested_at), n)
    columns["_batch_id"] = pa.repeat(pa.scalar(batch_id, pa.string()), n)
    return pa.table([columns[f.name] for f in schema], schema=schema)

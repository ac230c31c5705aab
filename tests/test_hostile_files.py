"""Hostile landing entries never stop ingestion: every line of any bytes lands in bronze or in quarantine with a
reason naming file, line and field; an entry that cannot be read as a file (directory, FIFO, dangling symlink,
symlink out of the root, non-UTF-8 name, gzip) is one quarantine row naming it; nothing outside the landing root is
read, and nothing is reported twice."""

from __future__ import annotations

import gzip
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from jobs.ingest import ingest, validate
from storylake import lake
from storylake.settings import Settings
from tests.landing_builders import closed

HOUR = "segment_view/dt=2026-11-02/hour=00"
GOOD = {"event_id": "ok", "event_type": "segment_view", "event_time": "2026-11-02T00:10:00.000Z", "segment_id": 1,
        "viewer_id": 2, "view_duration_ms": 4000, "completion_pct": 1.0, "view_source": "tray",
        "idempotency_key": "2:1:1"}
SECRET = "TOP SECRET: outside the landing root"


def line(**kw: object) -> str:
    return json.dumps({**GOOD, **kw})


def hostile_landing(root: Path) -> Path:
    """The issue's corpus: one file (or entry) per case, in one hour folder."""
    h = root / HOUR
    h.mkdir(parents=True)
    texts = {
        "deep.jsonl": "[" * 10_000 + "]" * 10_000 + "\n" + line(event_id="deep-ok") + "\n",
        "nanos.jsonl": line(event_id="nanos", event_time="2026-11-02T00:10:00.123456789Z") + "\n",
        "lower.jsonl": line(event_id="lower", event_time="2026-11-02t00:10:00z") + "\n",
        "dupkey.jsonl": line(event_id="dup")[:-1] + ', "event_id": "dup2"}\n',
        "surrogate.jsonl": line(event_id="sur").replace('"sur"', '"s\\ud800r"') + "\n",
        "big.jsonl": line(event_id="big", view_source="x" * 5_000_000) + "\n",
        "crlf.jsonl": line(event_id="crlf1") + "\r\n" + line(event_id="crlf2") + "\r\n",
        "bom.jsonl": "\ufeff" + line(event_id="bom") + "\n",
    }
    for name, text in texts.items():
        (h / name).write_text(text, encoding="utf-8")
    (h / "binary.jsonl").write_bytes(b"\xff\xfe\x00garbage\n" + line(event_id="after-binary").encode() + b"\n")
    (h / "gz.jsonl").write_bytes(gzip.compress((line(event_id="gz") + "\n").encode()))
    (h / "adir.jsonl").mkdir()
    os.symlink("/nonexistent/file.jsonl", h / "dangling.jsonl")
    outside = root.parent / "outside.txt"
    outside.write_text(SECRET + "\n")
    os.symlink(outside, h / "escape.jsonl")
    os.mkfifo(h / "fifo.jsonl")  # a reader would block forever on it
    (h / os.fsdecode(b"bad-\xff-name.jsonl")).write_text(line(event_id="bad-name") + "\n")
    for p in h.iterdir():
        if p.is_file() and not p.is_symlink() and not stat.S_ISFIFO(p.stat().st_mode):
            closed(p)
    return h


def test_the_hostile_corpus_is_ingested_or_quarantined_never_blocking(tmp_path: Path) -> None:
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    hostile_landing(s.landing)
    report = ingest(s, progress=False, workers=1)
    bronze = lake.read_arrow(s.table_path("bronze", "segment_view"))
    assert bronze is not None
    assert sorted(bronze.column("event_id").to_pylist()) == ["after-binary", "bom", "crlf1", "crlf2", "deep-ok"]
    q = lake.read_arrow(s.table_path("ops", "quarantine"))
    assert q is not None
    got = {(r["source_file"].rsplit("/", 1)[-1], r["line"], r["rule"], r["field"]) for r in q.to_pylist()}
    assert got == {
        ("adir.jsonl", None, "not_a_regular_file", "$file"),
        ("fifo.jsonl", None, "not_a_regular_file", "$file"),
        ("dangling.jsonl", None, "dangling_symlink", "$file"),
        ("escape.jsonl", None, "symlink_outside_landing", "$file"),
        ("bad-\\xff-name.jsonl", None, "file_name_not_utf8", "$file"),
        ("gz.jsonl", None, "compressed_file", "$file"),
        ("binary.jsonl", 1, "malformed_json", "$"),
        ("deep.jsonl", 1, "wrong_type", "$"),
        ("surrogate.jsonl", 1, "malformed_json", "$"),
        ("big.jsonl", 1, "invalid_enum", "view_source"),
        ("dupkey.jsonl", 1, "duplicate_key", "event_id"),
        ("nanos.jsonl", 1, "bad_format", "event_time"),
        ("lower.jsonl", 1, "bad_format", "event_time"),
    }
    for r in q.to_pylist():
        assert r["source_file"].startswith(HOUR + "/") and r["reason"].startswith("landing.segment_view")
        assert SECRET not in r["raw"] and len(r["raw"]) <= validate.RAW_CAP
    big = next(r for r in q.to_pylist() if r["source_file"].endswith("big.jsonl"))
    assert "raw line of 5000" in big["reason"]
    # valid + quarantined == lines, per file and in all
    ledger = lake.read_arrow(s.table_path("ops", "ingest_ledger"))
    assert ledger is not None and ledger.num_rows == 15
    for r in ledger.to_pylist():
        assert r["rows_valid"] + r["rows_quarantined"] == r["lines"], r
    assert report.valid + report.quarantined == report.lines == 18
    # everything is in the ledger: the next ingest reads nothing and reports nothing again
    again = ingest(s, progress=False, workers=1)
    assert again.lines == 0
    assert lake.read_arrow(s.table_path("ops", "quarantine")).num_rows == q.num_rows  # type: ignore[union-attr]


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600), chunk=st.integers(1, 300))
def test_any_bytes_are_valid_or_quarantined_never_an_error(data: bytes, chunk: int) -> None:
    """The decoder over arbitrary bytes: no exception, valid + quarantined == lines, the chunked and the line-by-line
    paths agree."""
    kw = {"event_type": "segment_view", "source_file": f"{HOUR}/f.jsonl", "batch_id": "b1",
          "ingested_at": datetime(2026, 11, 2, 1, tzinfo=UTC)}
    fast = validate.validate_file(data, **kw, chunk_bytes=chunk)  # type: ignore[arg-type]
    slow = validate.validate_file(data, **kw, chunked=False)  # type: ignore[arg-type]
    assert fast.rows_valid + fast.rows_quarantined == fast.lines
    assert (fast.lines, fast.rows_valid, fast.rows_quarantined) == (slow.lines, slow.rows_valid, slow.rows_quarantined)


@hsettings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([
    line(event_id="a").encode(), line(event_id="b", event_time="2026-11-02T00:10:00.1234567Z").encode(),
    line(event_id="c")[:-1].encode() + b', "segment_id": 3}', b"\xef\xbb\xbf" + line(event_id="d").encode(),
    b"[" * 3000 + b"]" * 3000, line(event_id="e").replace("e", "\\ud834").encode(), b"\x00\x01\x02", b"",
]), min_size=1, max_size=12))
def test_mixes_of_hostile_lines_balance(lines: list[bytes]) -> None:
    data = b"\n".join(lines) + b"\n"
    res = validate.validate_file(data, event_type="segment_view", source_file=f"{HOUR}/m.jsonl", batch_id="b1",
                                 ingested_at=datetime(2026, 11, 2, 1, tzinfo=UTC))
    assert res.rows_valid + res.rows_quarantined == res.lines == len(lines)

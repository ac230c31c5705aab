"""Ingestion: contract validation, quarantine routing, exactly-once and crash recovery (real Delta tables)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from deltalake import DeltaTable
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from jobs.ingest import ingest, validate
from jobs.ingest.run import IngestError
from storylake import lake
from storylake.settings import Settings
from tests.landing_builders import created, view, write_landing

T = "2026-11-01T10:00:00.000Z"


def _landing(root: Path) -> None:
    write_landing(
        root,
        "segment_view",
        [
            view("e1", 1, 2, T),
            {**view("e2", 1, 3, T), "segment_id": "abc"},
            {**view("e3", 1, 3, T), "completion_pct": 1.7},
            {**view("e4", 1, 3, T), "view_source": "tv"},
            {k: v for k, v in view("e5", 1, 3, T).items() if k != "viewer_id"},
            '{"event_id": "e6", "event_ty',
            {**view("e7", 1, 3, T), "event_type": "navigation"},
            {**view("e8", 1, 3, T), "event_time": "2026-11-01 10:00:00"},
            view("e1", 1, 2, T),  # exact duplicate line: bronze keeps it, silver dedupes
        ],
    )
    write_landing(root, "segment_created", [created("c1", 1, 9, "2026-11-01T09:00:00.000Z")])
    write_landing(
        root,
        "sticker_interaction",
        [
            {"event_id": "s1", "event_type": "sticker_interaction", "event_time": T, "sticker_id": 5, "segment_id": 1,
             "user_id": 2, "sticker_type": "slider", "option_index": None, "value": -0.2, "text": None,
             "idempotency_key": "k"},
            {"event_id": "s2", "event_type": "sticker_interaction", "event_time": T, "sticker_id": 5, "segment_id": 1,
             "user_id": 2, "sticker_type": "question", "option_index": None, "value": None, "text": "x" * 301,
             "idempotency_key": "k2"},
            {"event_id": "s3", "event_type": "sticker_interaction", "event_time": T, "sticker_id": 5, "segment_id": 1,
             "user_id": 2, "sticker_type": "poll", "option_index": None, "value": None, "text": None,
             "idempotency_key": "k3"},
        ],
    )
    write_landing(
        root,
        "relationship",
        [{"event_id": "r1", "event_type": "relationship", "event_time": T, "kind": "follow", "user_id": 1,
          "other_user_id": None}],
    )


def _quarantine(settings: Settings) -> dict[str, tuple[str, str, str]]:
    rows = DeltaTable(str(settings.table_path("ops", "quarantine"))).to_pyarrow_table().to_pylist()
    return {f"{r['source_file'].split('/')[0]}:{r['line']}": (r["rule"], r["field"], r["reason"]) for r in rows}


def test_every_bad_line_is_quarantined_with_a_reason_naming_the_field(settings: Settings) -> None:
    _landing(settings.landing)
    report = ingest(settings, progress=False)
    assert (report.lines, report.valid, report.quarantined) == (14, 3, 11)
    q = _quarantine(settings)
    assert {k: v[:2] for k, v in q.items()} == {
        "segment_view:2": ("wrong_type", "segment_id"),
        "segment_view:3": ("out_of_range", "completion_pct"),
        "segment_view:4": ("invalid_enum", "view_source"),
        "segment_view:5": ("missing_field", "viewer_id"),
        "segment_view:6": ("malformed_json", "$"),
        "segment_view:7": ("event_type_mismatch", "event_type"),
        "segment_view:8": ("bad_format", "event_time"),
        "sticker_interaction:1": ("out_of_range", "value"),
        "sticker_interaction:2": ("too_long", "text"),
        "sticker_interaction:3": ("payload_matches_type", "payload_matches_type"),
        "relationship:1": ("other_user_required", "other_user_required"),
    }
    assert q["segment_view:2"][2] == 'landing.segment_view.segment_id: Expected `int`, got `str` (got "abc")'
    assert q["segment_view:3"][2] == "landing.segment_view.completion_pct: Expected `float` <= 1.0 (got 1.7)"
    assert q["segment_view:4"][2].startswith("landing.segment_view.view_source: Invalid enum value 'tv'")
    assert q["segment_view:5"][2] == "landing.segment_view.viewer_id: Object missing required field `viewer_id`"
    assert q["segment_view:8"][2] == (
        'landing.segment_view.event_time: expected an ISO-8601 UTC timestamp ending in Z (got "2026-11-01 10:00:00")'
    )
    assert q["relationship:1"][2] == "landing.relationship: other_user_id is required for kind 'follow'"


def test_valid_plus_quarantined_equals_lines_per_file_in_the_ledger(settings: Settings) -> None:
    _landing(settings.landing)
    ingest(settings, progress=False)
    ledger = DeltaTable(str(settings.table_path("ops", "ingest_ledger"))).to_pyarrow_table().to_pylist()
    assert {r["source_file"].split("/")[0]: (r["lines"], r["rows_valid"], r["rows_quarantined"]) for r in ledger} == {
        "segment_view": (9, 2, 7),
        "segment_created": (1, 1, 0),
        "sticker_interaction": (3, 0, 3),
        "relationship": (1, 0, 1),
    }
    assert all(len(r["sha256"]) == 64 for r in ledger)


def test_bronze_is_typed_and_readable_by_delta_rs_at_protocol_1_2(settings: Settings) -> None:
    _landing(settings.landing)
    ingest(settings, progress=False)
    dt = DeltaTable(str(settings.table_path("bronze", "segment_view")))
    proto = dt.protocol()
    assert (proto.min_reader_version, proto.min_writer_version) == (1, 2)
    assert "delta.enableChangeDataFeed" not in dt.metadata().configuration
    rows = sorted(dt.to_pyarrow_table().to_pylist(), key=lambda r: r["_line"])
    assert [(r["event_id"], r["_line"], r["segment_id"], r["completion_pct"]) for r in rows] == [
        ("e1", 1, 1, 1.0),
        ("e1", 9, 1, 1.0),
    ]
    assert rows[0]["event_time"].isoformat() == "2026-11-01T10:00:00+00:00"
    assert rows[0]["_source_file"] == "segment_view/dt=2026-11-01/hour=10/part-00000.jsonl"
    stickers = DeltaTable(str(settings.table_path("bronze", "segment_created"))).to_pyarrow_table()
    assert stickers.column("stickers").to_pylist() == [[]]


def test_second_ingest_writes_no_new_delta_version(settings: Settings) -> None:
    _landing(settings.landing)
    ingest(settings, progress=False)
    tables = ["bronze/segment_view", "bronze/segment_created", "ops/quarantine", "ops/ingest_ledger",
              "ops/ingest_runs"]
    before = {t: lake.version(settings.lake / t) for t in tables}
    report = ingest(settings, progress=False)
    assert report.batches == []
    assert {t: lake.version(settings.lake / t) for t in tables} == before


def test_new_file_is_ingested_in_a_new_batch_and_old_files_are_not_reread(settings: Settings) -> None:
    _landing(settings.landing)
    ingest(settings, progress=False)
    write_landing(settings.landing, "segment_view", [view("e9", 1, 4, T)], hour="11")
    report = ingest(settings, progress=False)
    assert [(b.batch_id, b.files, b.lines) for b in report.batches] == [("b00000002", 1, 1)]
    ids = DeltaTable(str(settings.table_path("bronze", "segment_view"))).to_pyarrow_table().column("event_id")
    assert sorted(ids.to_pylist()) == ["e1", "e1", "e9"]


def test_crash_mid_batch_is_completed_by_the_next_run_without_duplicates(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _landing(settings.landing)
    real_commit = lake.commit_files_once
    calls: list[str] = []

    def crash_after_first_bronze_commit(path: Path, files, schema, *, app_id: str, txn_version: int) -> bool:  # type: ignore[no-untyped-def]
        real_commit(path, files, schema, app_id=app_id, txn_version=txn_version)
        calls.append(path.name)
        raise OSError("simulated crash after a bronze commit")

    monkeypatch.setattr(lake, "commit_files_once", crash_after_first_bronze_commit)
    with pytest.raises(OSError, match="simulated crash"):
        ingest(settings, progress=False)
    assert calls == ["segment_created"]  # committed: one bronze table...
    assert lake.committed_txn(settings.table_path("ops", "ingest_ledger"), "storylake-ingest") == 1  # ...and the plan
    assert lake.committed_txn(settings.table_path("ops", "ingest_runs"), "storylake-ingest") == -1
    monkeypatch.setattr(lake, "commit_files_once", real_commit)
    # A file that arrived meanwhile goes into a later batch, not the interrupted one.
    write_landing(settings.landing, "segment_view", [view("e9", 1, 4, T)], hour="11")
    report = ingest(settings, progress=False)
    assert [(b.batch_id, b.resumed, b.files) for b in report.batches] == [
        ("b00000001", True, 4),
        ("b00000002", False, 1),
    ]
    created_rows = DeltaTable(str(settings.table_path("bronze", "segment_created"))).to_pyarrow_table()
    assert created_rows.num_rows == 1  # the table committed before the crash was not written twice
    views = DeltaTable(str(settings.table_path("bronze", "segment_view"))).to_pyarrow_table()
    assert sorted(views.column("event_id").to_pylist()) == ["e1", "e1", "e9"]
    runs = DeltaTable(str(settings.table_path("ops", "ingest_runs"))).to_pyarrow_table().to_pylist()
    assert sorted((r["batch_id"], r["lines_read"]) for r in runs) == [("b00000001", 14), ("b00000002", 1)]


def test_missing_landing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="landing folder .* does not exist"):
        ingest(Settings(lake=tmp_path / "lake", landing=tmp_path / "nope"), progress=False)


# --- chunked validation == line-by-line validation ----------------------------------------------

_GOOD = [json.dumps(view(f"g{i}", 1, i, T)).encode() for i in range(4)]
_BAD = [
    b'{"event_id": "b1", "event_ty',  # truncated
    b"",  # empty line
    json.dumps({**view("b2", 1, 3, T), "segment_id": "abc"}).encode(),  # wrong type
    json.dumps({**view("b3", 1, 3, T), "completion_pct": 1.7}).encode(),  # out of range
    json.dumps({**view("b4", 1, 3, T), "event_time": "2026-11-01T10:00:00+02:00"}).encode(),  # not UTC
    json.dumps({**view("b5", 1, 3, T), "event_type": "navigation"}).encode(),  # wrong folder
    b"[1, 2]",  # not an object
    b'{"event_id": "b6"',  # unterminated object (the chunk's error shows on the next line)
    b"{},{}",  # two objects on one line
    json.dumps(view("b7", 1, 3, T)).encode() + b", " + json.dumps(view("b8", 1, 3, T)).encode(),
]


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(_GOOD + _BAD), min_size=1, max_size=40), st.integers(1, 2000), st.booleans())
def test_property_chunked_validation_equals_line_by_line(lines, chunk, final_newline):
    """Decoding lines as JSON-array chunks and locating the culprits gives exactly the line-by-line result
    (same valid rows, same quarantine rows with the same reasons), whatever the mix and the chunk size."""
    data = b"\n".join(lines) + (b"\n" if final_newline else b"")
    kw = {"event_type": "segment_view", "source_file": "segment_view/f.jsonl", "batch_id": "b1",
          "ingested_at": datetime(2026, 11, 1, tzinfo=UTC)}
    fast = validate.validate_file(data, **kw, chunk_bytes=chunk)
    slow = validate.validate_file(data, **kw, chunked=False)
    expected_lines = len(lines) - (1 if not final_newline and lines[-1] == b"" else 0)
    assert fast.lines == slow.lines == expected_lines
    assert fast.valid.equals(slow.valid)
    assert fast.quarantine.to_pylist() == slow.quarantine.to_pylist()
    assert fast.rows_valid + fast.rows_quarantined == expected_lines


def _rel(eid: str, kind: str, other: int | None, t: str = T) -> bytes:
    event = {"event_id": eid, "event_type": "relationship", "event_time": t, "kind": kind, "user_id": 1}
    if other is not None:
        event["other_user_id"] = other
    return json.dumps(event).encode()


_REL_LINES = [
    _rel("r1", "follow", 2),
    _rel("r2", "set_private", None),  # valid without other_user_id
    _rel("r3", "follow", None),  # row rule other_user_required
    _rel("r4", "block", None),  # row rule other_user_required
    _rel("r5", "follow", 3, "2026-11-01T10:00:00+01:00"),  # not UTC
    b"{}",
]


@hsettings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(_REL_LINES), min_size=1, max_size=40), st.integers(1, 2000))
def test_property_chunked_row_rules_equal_line_by_line(lines, chunk):
    """Chunks of an event type with row rules (relationship: other_user_required) flag exactly the lines the
    line-by-line path rejects, with the same rules and reasons."""
    data = b"\n".join(lines) + b"\n"
    kw = {"event_type": "relationship", "source_file": "relationship/f.jsonl", "batch_id": "b1",
          "ingested_at": datetime(2026, 11, 1, tzinfo=UTC)}
    fast = validate.validate_file(data, **kw, chunk_bytes=chunk)
    slow = validate.validate_file(data, **kw, chunked=False)
    assert fast.valid.equals(slow.valid)
    assert fast.quarantine.to_pylist() == slow.quarantine.to_pylist()
    expected = {b'"r3"': "other_user_required", b'"r4"': "other_user_required", b'"r5"': "bad_format",
                b"{}": "missing_field"}
    assert [(r["line"], r["rule"]) for r in fast.quarantine.to_pylist()] == [
        (no, rule) for no, line in enumerate(lines, 1) for key, rule in expected.items() if key in line
    ]


def test_arrival_rules_quarantine_late_beyond_window_and_from_the_future(tmp_path: Path) -> None:
    """The landing hour folder is the arrival hour: an event more than 48 h before it is `late_beyond_window`,
    more than 5 min after its end `from_the_future`; the bounds themselves are accepted."""
    settings = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    write_landing(settings.landing, "segment_view", [
        view("ok-early", 1, 2, "2026-11-01T10:00:00.000Z"),  # exactly 48 h before hour=10 of 11-03: accepted
        view("late", 1, 2, "2026-11-01T09:59:59.999Z"),
        view("ok-skew", 1, 2, "2026-11-03T11:05:00.000Z"),  # end of the hour + 5 min: accepted
        view("future", 1, 2, "2026-11-03T11:05:00.001Z"),
    ], dt="2026-11-03", hour="10")
    report = ingest(settings, progress=False)
    assert (report.lines, report.valid, report.quarantined) == (4, 2, 2)
    bronze = DeltaTable(str(settings.table_path("bronze", "segment_view"))).to_pyarrow_table()
    assert sorted(bronze.column("event_id").to_pylist()) == ["ok-early", "ok-skew"]
    q = DeltaTable(str(settings.table_path("ops", "quarantine"))).to_pyarrow_table().sort_by("line").to_pylist()
    assert [(r["line"], r["event_id"], r["rule"], r["field"], r["reason"]) for r in q] == [
        (2, "late", "late_beyond_window", "event_time",
         "landing.segment_view.event_time: event_time 2026-11-01T09:59:59.999Z is more than 48 h before its arrival "
         "hour 2026-11-03T10:00Z (lateness window)"),
        (4, "future", "from_the_future", "event_time",
         "landing.segment_view.event_time: event_time 2026-11-03T11:05:00.001Z is more than 5 min after the end of "
         "its arrival hour 2026-11-03T10:00Z (clock skew)"),
    ]
    assert json.loads(q[1]["raw"])["event_id"] == "future"


def test_arrival_rules_follow_the_settings(tmp_path: Path) -> None:
    settings = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing", lateness_window_h=1.0,
                        max_clock_skew_s=0.0)
    write_landing(settings.landing, "segment_view", [
        view("late", 1, 2, "2026-11-01T08:59:59.000Z"), view("ok", 1, 2, "2026-11-01T11:00:00.000Z"),
        view("future", 1, 2, "2026-11-01T11:00:00.001Z"),
    ])
    report = ingest(settings, progress=False)
    assert report.quarantine_by_rule == {"late_beyond_window": 1, "from_the_future": 1}

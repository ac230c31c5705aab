"""The ingest ledger keys a landing file by path and content (issue "Reliability"): appended complete lines are
ingested exactly once with their line numbers; a rewritten file is refused loudly and recorded; a copy under another
name is a recorded duplicate, not ingested; a file modified within the settle time waits for the next run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from jobs.ingest import ingest
from storylake import lake
from storylake.settings import Settings
from tests.landing_builders import closed, view, write_landing

T = "2026-11-01T10:00:00.000Z"


def _bronze(settings: Settings) -> list[tuple[str, str, int]]:
    t = lake.read_arrow(settings.table_path("bronze", "segment_view"), ["event_id", "_source_file", "_line"])
    return sorted(zip(*(t.column(c).to_pylist() for c in ("event_id", "_source_file", "_line")), strict=True))


def _ledger(settings: Settings) -> list[dict[str, Any]]:
    t = lake.read_arrow(settings.table_path("ops", "ingest_ledger"))
    cols = ("source_file", "offset_bytes", "first_line", "lines", "rows_valid", "rows_quarantined", "disposition",
            "duplicate_of", "batch_id")
    return sorted(({c: r[c] for c in cols} for r in t.to_pylist()), key=lambda r: (r["batch_id"], r["source_file"]))


def _quarantine(settings: Settings) -> list[tuple[str, str, str]]:
    t = lake.read_arrow(settings.table_path("ops", "quarantine"), ["source_file", "rule", "field"])
    if t is None:
        return []
    return sorted(zip(*(t.column(c).to_pylist() for c in ("source_file", "rule", "field")), strict=True))


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)
    closed(path, 1800)


def _line(eid: str) -> str:
    return json.dumps(view(eid, 1, 2, T))


def test_appended_lines_are_ingested_once_with_their_line_numbers(settings: Settings) -> None:
    path = write_landing(settings.landing, "segment_view", [view("a1", 1, 2, T), view("a2", 1, 3, T)])
    rel = path.relative_to(settings.landing).as_posix()
    ingest(settings, progress=False)
    size = path.stat().st_size
    # two complete lines and one still being written (no newline yet): only the complete ones are read
    _append(path, _line("a3") + "\n" + _line("a4") + "\n" + _line("a5")[:20])
    report = ingest(settings, progress=False)
    assert [(b.files, b.lines, b.valid) for b in report.batches] == [(1, 2, 2)]
    assert _bronze(settings) == [("a1", rel, 1), ("a2", rel, 2), ("a3", rel, 3), ("a4", rel, 4)]
    assert ingest(settings, progress=False).batches == []  # the partial line waits; nothing is read twice
    _append(path, _line("a5")[20:] + "\n")
    ingest(settings, progress=False)
    assert _bronze(settings)[-1] == ("a5", rel, 5)
    assert [(r["offset_bytes"], r["first_line"], r["lines"], r["disposition"]) for r in _ledger(settings)] == [
        (0, 1, 2, "ingested"),
        (size, 3, 2, "ingested"),
        (size + 2 * (len(_line("a3")) + 1), 5, 1, "ingested"),
    ]
    assert _quarantine(settings) == []


def test_a_rewritten_file_is_refused_once_and_recorded(settings: Settings) -> None:
    path = write_landing(settings.landing, "segment_view", [view("r1", 1, 2, T), view("r2", 1, 3, T)])
    rel = path.relative_to(settings.landing).as_posix()
    ingest(settings, progress=False)
    path.write_text(_line("x1") + "\n" + _line("x2") + "\n" + _line("x3") + "\n")  # not an append: r1 is gone
    closed(path, 1800)
    report = ingest(settings, progress=False)
    assert [(b.files, b.lines, b.valid, b.quarantined) for b in report.batches] == [(1, 1, 0, 1)]
    assert [e for e, _, _ in _bronze(settings)] == ["r1", "r2"]  # what was ingested stays; nothing of the new text
    assert _quarantine(settings) == [(rel, "rewritten_file", "$file")]
    assert [r["disposition"] for r in _ledger(settings)] == ["ingested", "rewritten"]
    _append(path, _line("x4") + "\n")
    assert ingest(settings, progress=False).batches == []  # refused for good: reported once, not on every run


def test_a_copy_under_another_name_is_a_recorded_duplicate(settings: Settings) -> None:
    path = write_landing(settings.landing, "segment_view", [view("c1", 1, 2, T), view("c2", 1, 3, T)])
    rel = path.relative_to(settings.landing).as_posix()
    ingest(settings, progress=False)
    copy = path.with_name("part-00007.jsonl")
    shutil.copy2(path, copy)
    # two new identical files in one batch: the second is the first's duplicate
    fresh = write_landing(settings.landing, "segment_view", [view("n1", 1, 2, T)], hour="11")
    twin = fresh.with_name("part-00001.jsonl")
    shutil.copy2(fresh, twin)
    report = ingest(settings, progress=False)
    assert [(b.files, b.lines, b.valid, b.quarantined) for b in report.batches] == [(3, 3, 1, 2)]
    assert [e for e, _, _ in _bronze(settings)] == ["c1", "c2", "n1"]
    rel_copy, rel_fresh, rel_twin = (p.relative_to(settings.landing).as_posix() for p in (copy, fresh, twin))
    assert _quarantine(settings) == sorted([(rel_copy, "duplicate_file", "$file"),
                                            (rel_twin, "duplicate_file", "$file")])
    dups = {r["source_file"]: r["duplicate_of"] for r in _ledger(settings) if r["disposition"] == "duplicate"}
    assert dups == {rel_copy: rel, rel_twin: rel_fresh}


def test_a_file_modified_within_the_settle_time_waits_for_the_next_run(tmp_path: Path) -> None:
    settings = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing", landing_settle_s=60)
    old = write_landing(settings.landing, "segment_view", [view("o1", 1, 2, T)])
    young = write_landing(settings.landing, "segment_view", [view("y1", 1, 2, T)], hour="11")
    closed(young, 5)  # written 5 s ago: its collector may still be writing
    ingest(settings, progress=False)
    assert [e for e, _, _ in _bronze(settings)] == ["o1"]
    assert [r["source_file"] for r in _ledger(settings)] == [old.relative_to(settings.landing).as_posix()]
    closed(young, 61)
    ingest(settings, progress=False)
    assert [e for e, _, _ in _bronze(settings)] == ["o1", "y1"]


@pytest.mark.parametrize("resumes", [1, 2])
def test_an_interrupted_append_is_resumed_from_its_ledger_rows(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, resumes: int
) -> None:
    path = write_landing(settings.landing, "segment_view", [view("p1", 1, 2, T)])
    rel = path.relative_to(settings.landing).as_posix()
    ingest(settings, progress=False)
    _append(path, _line("p2") + "\n")
    real_commit = lake.commit_files_once

    def crash(*args: Any, **kwargs: Any) -> bool:
        raise OSError("simulated crash after the ledger commit")

    monkeypatch.setattr(lake, "commit_files_once", crash)
    for _ in range(resumes):
        with pytest.raises(OSError, match="simulated crash"):
            ingest(settings, progress=False)
    monkeypatch.setattr(lake, "commit_files_once", real_commit)
    _append(path, _line("p3") + "\n")  # grew again meanwhile: the resumed part reads only its own bytes
    report = ingest(settings, progress=False)
    assert [(b.resumed, b.lines) for b in report.batches] == [(True, 1), (False, 1)]
    assert _bronze(settings) == [("p1", rel, 1), ("p2", rel, 2), ("p3", rel, 3)]


def test_a_ledger_of_whole_files_gains_the_part_columns(settings: Settings) -> None:
    """A lake ingested before parts were recorded (ledger version 1: one row per whole file) keeps working: its rows
    count as whole ingested files, and appends to them are ingested as their next part."""
    from deltalake import write_deltalake

    path = write_landing(settings.landing, "segment_view", [view("v1", 1, 2, T)])
    ingest(settings, progress=False)
    ledger_path = settings.table_path("ops", "ingest_ledger")
    old = lake.read_arrow(ledger_path).drop_columns(["offset_bytes", "first_line", "modified_at", "disposition",
                                                     "duplicate_of"])
    shutil.rmtree(ledger_path)
    write_deltalake(str(ledger_path), old, mode="overwrite",
                    commit_properties=lake._once("storylake-ingest", 1))  # noqa: SLF001 - rebuild a v1 ledger
    assert "disposition" not in lake.read_arrow(ledger_path).schema.names
    _append(path, _line("v2") + "\n")
    ingest(settings, progress=False)
    assert [e for e, _, _ in _bronze(settings)] == ["v1", "v2"]
    rows = lake.read_arrow(ledger_path).to_pylist()
    assert [(r["offset_bytes"], r["disposition"]) for r in sorted(rows, key=lambda r: r["batch_seq"])] == [
        (None, None), (path.stat().st_size - len(_line("v2")) - 1, "ingested")]

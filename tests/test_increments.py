"""storylake.increments and storylake.audit: a run's reads of ops.increments and ops.audited_versions see every write
before them, although each table's rows are kept between reads while its Delta log is unchanged
(storylake.lake.read_arrow_cached)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storylake import increments
from storylake.settings import Settings

T0, T1, T2 = (datetime(2026, 11, 1, h, tzinfo=UTC) for h in (12, 13, 14))


def plan(run_id: str, as_of: datetime) -> increments.Increment:
    return increments.Increment(run_id=run_id, as_of=as_of, horizon=as_of, gold_horizon=as_of, upto_batch="b1")


def test_each_read_sees_the_writes_before_it(tmp_path: Path) -> None:
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    assert increments.last(s) is None and increments.latest_attempt_since_done(s) is None
    increments.record(s, plan("r1", T1), increments.PLANNED)
    assert increments.planned(s, T1) == plan("r1", T1) and increments.last(s) is None
    assert increments.latest_attempt_since_done(s) == T1
    # a run planned for a later instant than T0, not than T1 itself
    assert increments.attempt_after(s, T0) == T1 and increments.attempt_after(s, T1) is None
    assert increments.complete(s, T1) == plan("r1", T1)
    assert increments.last(s) == plan("r1", T1) and increments.latest_attempt_since_done(s) is None
    increments.record(s, plan("r2", T2), increments.PLANNED)
    assert increments.latest_attempt_since_done(s) == T2 and increments.last(s) == plan("r1", T1)


def test_a_table_written_again_at_the_same_path_is_read_again(tmp_path: Path) -> None:
    """The same number of log files under the same names (a lake removed and built again, as tests and the
    benchmark do): the kept rows are not returned."""
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    increments.record(s, plan("r1", T1), increments.PLANNED)
    assert increments.unfinished(s) == plan("r1", T1)
    shutil.rmtree(s.table_path("ops", "increments"))
    increments.record(s, plan("r2", T2), increments.PLANNED)
    assert increments.unfinished(s) == plan("r2", T2)


def test_the_rows_are_read_once_while_the_log_is_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads between two writes read the table once; a write makes the next read read it again."""
    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    increments.record(s, plan("r1", T1), increments.PLANNED)
    reads: list[Path] = []
    real = increments.lake.read_arrow

    def counted(path: Path, *args: object, **kwargs: object) -> object:
        reads.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(increments.lake, "read_arrow", counted)
    for _ in range(3):
        assert increments.unfinished(s) == plan("r1", T1) and increments.latest_attempt_since_done(s) == T1
    assert len(reads) == 1
    increments.record(s, plan("r2", T2), increments.PLANNED)
    before = len(reads)
    assert increments.latest_attempt_since_done(s) == T2 and len(reads) == before + 1


def test_audited_versions_are_read_once_while_the_log_is_unchanged(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """ops.audited_versions, which every job and gate asks a few dozen times a run (last_good_version), is read once
    between two gates' records, and each read sees every record before it."""
    from storylake import audit, lake

    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    audit.start(s)
    audit.record(s, "run-1", "silver", T1, {"silver.view_events": 3, "silver.segments": 2})
    reads: list[Path] = []
    real = lake.read_arrow

    def counted(path: Path, *args: object, **kwargs: object) -> object:
        reads.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(lake, "read_arrow", counted)
    for _ in range(3):
        assert audit.last_good_version(s, "silver.view_events") == 3
        assert audit.consumer_versions(s, ["silver.segments"]) == {"silver.segments": 2}
    assert len(reads) == 1
    audit.record(s, "run-2", "silver", T2, {"silver.view_events": 5})
    assert audit.last_good_version(s, "silver.view_events") == 5 and len(reads) == 2
    assert audit.last_good_version(s, "silver.relationships") is None and len(reads) == 2


def test_bronze_add_actions_are_read_once_while_the_log_is_unchanged(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The bronze files a run's reads are planned from (jobs.horizon) come from the table's add actions, opened once
    while its log is unchanged; a commit makes the next call see the new file."""
    import pyarrow as pa

    from storylake import lake

    path = tmp_path / "lake" / "bronze" / "t"
    write = lambda n: lake.write_deltalake(str(path), pa.table({"x": [n]}), mode="append")  # noqa: E731
    write(1)
    opens: list[Path] = []
    real = lake.open_table

    def counted(p: Path) -> object:
        opens.append(p)
        return real(p)

    monkeypatch.setattr(lake, "open_table", counted)
    first = [lake.add_actions_cached(path) for _ in range(3)]
    assert len(opens) == 1 and all(f is not None and f[1].num_rows == 1 for f in first)
    write(2)
    again = lake.add_actions_cached(path)
    assert len(opens) == 2 and again is not None and again[1].num_rows == 2
    assert lake.add_actions_cached(tmp_path / "none") is None


def test_the_newest_batch_comes_from_the_ingest_runs_files_statistics(tmp_path: Path) -> None:
    """jobs.horizon.newest_batch reads ops.ingest_runs' file statistics (a row per batch, for years): the newest
    batch id of its rows, None before the first batch."""
    from jobs.horizon import newest_batch
    from storylake import lake

    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    assert newest_batch(s) is None
    for seq in (1, 3, 2):  # batches committed in any order, one append each
        lake.write_table(s, "ops.ingest_runs", [{
            "batch_id": f"b{seq:08d}", "batch_seq": seq, "started_at": T0, "finished_at": T0, "files": 1,
            "lines_read": 1, "rows_valid": 1, "rows_quarantined": 0, "bytes_read": 1, "duration_s": 0.1}],
            mode="append")
        rows = lake.read_arrow(s.table_path("ops", "ingest_runs"), ["batch_id"])
        assert rows is not None and newest_batch(s) == max(rows.column("batch_id").to_pylist())
    assert newest_batch(s) == "b00000003"

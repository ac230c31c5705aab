"""storylake.lake.appended_files: the data files a Delta table gained since a version, when it only gained rows, up
to its latest version or the version a reader holds (`until`)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from storylake import lake


def rows(*ids: int) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64())})


def names(uris: list[str] | None) -> list[str] | None:
    return None if uris is None else [uri.rsplit("/", 1)[-1] for uri in uris]


def added_at(path: Path, version: int) -> list[str]:
    """The names of the files the commit of `version` added."""
    before = set(names(DeltaTable(str(path), version=version - 1).file_uris()) or [])
    return sorted(set(names(DeltaTable(str(path), version=version).file_uris()) or []) - before)


def test_the_files_appended_up_to_the_version_a_reader_holds(tmp_path: Path) -> None:
    path = tmp_path / "t"
    write_deltalake(str(path), rows(1, 2))  # version 0
    write_deltalake(str(path), rows(3), mode="append")  # 1
    write_deltalake(str(path), rows(4), mode="append")  # 2
    first, second = added_at(path, 1), added_at(path, 2)
    assert names(lake.appended_files(path, 0)) == first + second
    assert names(lake.appended_files(path, 1)) == second
    assert lake.appended_files(path, 2) == []
    DeltaTable(str(path)).delete("id = 1")  # version 3 removes rows
    assert lake.appended_files(path, 0) is None  # up to the latest: a commit removed rows
    assert names(lake.appended_files(path, 0, until=2)) == first + second  # a reader holding version 2
    assert names(lake.appended_files(path, 1, until=1)) == []
    assert lake.appended_files(path, 2, until=1) is None  # a version before the base's
    assert lake.appended_files(path, 0, until=9) is None  # a version the table does not have


def test_a_compaction_of_the_appended_files_loses_them(tmp_path: Path) -> None:
    path = tmp_path / "t"
    write_deltalake(str(path), rows(1, 2))
    write_deltalake(str(path), rows(3), mode="append")
    write_deltalake(str(path), rows(4), mode="append")
    DeltaTable(str(path)).optimize.compact()  # rows unchanged, but the appended files are gone from the version
    assert lake.appended_files(path, 0) is None

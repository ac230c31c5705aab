"""publish(): atomic snapshot swap, failure leaves CURRENT serving, old readers, retention, snapshot_meta."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pytest
from deltalake import write_deltalake

from serving import api, cli, insights_history
from serving import publish as publish_mod
from serving.publish import PublishError, publish
from serving.snapshot import current_id, snapshot_path, snapshots_dir
from storylake import increments
from storylake.errors import NotFoundError
from storylake.lake import arrow_table
from storylake.settings import Settings
from tests.lake_builder import DAY, HOUR, TABLES, LakeBuilder

T = datetime(2026, 11, 2, 12, tzinfo=UTC)
V = 1


def base_lake(settings: Settings) -> LakeBuilder:
    return LakeBuilder(settings).follow(V, 10, T - DAY).segment(100, 10, T - HOUR).write()


def tray_authors(snap: api.Snapshot) -> list[int]:
    return [r.author_id for r in api.tray(snap, V, T).rings]


def test_snapshot_meta_records_versions_and_counts(settings: Settings) -> None:
    lake = base_lake(settings)
    # one more commit to segments: version 1
    write_deltalake(
        str(settings.table_path("silver", "segments")),
        arrow_table("silver.segments", LakeBuilder(settings).segment(101, 11, T - HOUR).rows["silver.segments"]),
        mode="append",
    )
    report = publish(settings, T)
    assert report.sources["silver.segments"] == {"version": 1, "rows": 2}
    assert report.sources["silver.relationships"] == {"version": 0, "rows": 1}
    assert set(report.sources) == set(TABLES)
    assert report.tables["live_segments"] == 2 and report.reach_mismatches == 0
    snap = api.open_current(settings)
    assert snap.snapshot_id == report.snapshot_id == current_id(settings)
    assert snap.as_of == T and snap.built_at == report.built_at
    rows = snap.db().execute(
        "SELECT source_table, delta_version, row_count, as_of FROM snapshot_meta ORDER BY source_table"
    ).fetchall()
    assert {r[0]: (r[1], r[2]) for r in rows} == {k: (v["version"], v["rows"]) for k, v in report.sources.items()}
    assert all(r[3] == T for r in rows)
    assert report.path == snapshot_path(settings, report.snapshot_id) and report.path.exists()
    assert lake.settings is settings


def test_failed_publish_leaves_current_serving(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    base_lake(settings)
    good = publish(settings, T)
    reader = api.open_current(settings)
    LakeBuilder(settings).follow(V, 10, T - DAY).follow(V, 11, T - DAY).segment(100, 10, T - HOUR).segment(
        101, 11, T - HOUR
    ).write()

    real = publish_mod._create_table

    def failing(con, name, sql, params):  # type: ignore[no-untyped-def]
        if name == "segment_catalog":
            raise RuntimeError("injected failure while building segment_catalog")
        return real(con, name, sql, params)

    monkeypatch.setattr(publish_mod, "_create_table", failing)
    with pytest.raises(RuntimeError, match="injected failure"):
        publish(settings, T)
    assert current_id(settings) == good.snapshot_id
    leftovers = [p.name for p in snapshots_dir(settings).iterdir() if not p.name.startswith(".duckdb_tmp")]
    assert leftovers == [f"{good.snapshot_id}.duckdb"]  # no temp file, no half-built snapshot
    assert tray_authors(api.open_current(settings)) == [10]
    assert tray_authors(reader) == [10]

    monkeypatch.setattr(publish_mod, "_create_table", real)
    new = publish(settings, T)
    assert current_id(settings) == new.snapshot_id != good.snapshot_id
    assert tray_authors(api.open_current(settings)) == [10, 11]
    assert tray_authors(reader) == [10]  # a reader opened before the publish still reads its snapshot


def test_failure_after_build_before_swap(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    base_lake(settings)
    good = publish(settings, T)

    def boom(settings_: Settings, sid: str) -> None:
        raise OSError("disk full while writing CURRENT")

    monkeypatch.setattr(publish_mod, "_point_current", boom)
    with pytest.raises(OSError, match="disk full"):
        publish(settings, T)
    assert current_id(settings) == good.snapshot_id
    assert tray_authors(api.open_current(settings)) == [10]


def test_missing_source_table_is_named(settings: Settings) -> None:
    base_lake(settings)
    good = publish(settings, T)
    shutil.rmtree(settings.table_path("gold", "ring_features"))
    with pytest.raises(PublishError, match=r"source table gold\.ring_features is missing"):
        publish(settings, T)
    assert current_id(settings) == good.snapshot_id


def test_missing_column_is_named(settings: Settings) -> None:
    base_lake(settings)
    path = settings.table_path("silver", "relationships")
    shutil.rmtree(path)
    import pyarrow as pa

    write_deltalake(str(path), pa.table({"relation": pa.array(["follow"]), "user_id": pa.array([1])}))
    with pytest.raises(PublishError, match=r"silver\.relationships lacks column\(s\) other_user_id"):
        publish(settings, T)


def test_keeps_last_three_snapshots(settings: Settings) -> None:
    base_lake(settings)
    ids = [publish(settings, T).snapshot_id for _ in range(5)]
    assert ids == sorted(ids)  # ids sort by build time
    kept = sorted(p.name.removesuffix(".duckdb") for p in snapshots_dir(settings).glob("*.duckdb"))
    assert kept == ids[-3:] and current_id(settings) == ids[-1]


def test_never_removes_current(settings: Settings) -> None:
    base_lake(settings)
    ids = [publish(settings, T).snapshot_id for _ in range(3)]
    # an operator points CURRENT back at the oldest snapshot (a rollback); cleanup must not delete it
    (settings.serving_dir / "CURRENT").write_text(ids[0] + "\n")
    assert publish_mod._remove_old(settings, keep=1) == [ids[1]]
    assert [snapshot_path(settings, i).exists() for i in ids] == [True, False, True]
    assert tray_authors(api.open_current(settings)) == [10]


def test_cli_functions(settings: Settings) -> None:
    with pytest.raises(NotFoundError, match="storylake run"):
        cli.tray_json(settings, V, T, 50, None)
    base_lake(settings)
    report = cli.publish_report(settings, T)
    assert report.snapshot_id in str(report)
    assert cli.tray_json(settings, V, T, 50, None).startswith('{"users":[{"userId":10,')
    assert '"total":0' in cli.seen_by_json(settings, 100, 10, T, 50, None)
    assert cli.insights_json(settings, 10, 10, T).startswith('{"authorId":10,')
    out = cli.expire_report(settings, T + 3 * DAY)
    assert (out["listed"], out["pending"], out["missing"]) == (1, 1, [])


def test_refuses_tables_of_a_run_that_did_not_finish(settings: Settings) -> None:
    """On a lake without gates, a run that planned silver/gold and died before gold finished may have left tables
    half written: publish refuses (naming the run) and the previous snapshot keeps serving; once a run finishes,
    publish works again."""
    base_lake(settings)
    first = publish(settings, T)
    run = increments.Increment(run_id="run-x", as_of=T, horizon=None, gold_horizon=None, upto_batch=None)
    increments.record(settings, run, increments.PLANNED)
    with pytest.raises(PublishError, match=r"^silver/gold of run run-x \(as of 2026-11-02T12:00:00Z\) did not "
                                           r"finish: rerun the pipeline \(storylake run\) before publishing$"):
        publish(settings, T)
    assert current_id(settings) == first.snapshot_id
    increments.complete(settings, T)
    assert publish(settings, T).snapshot_id != first.snapshot_id


# --- a snapshot built beside the gold gate (write-audit-publish) ---------------------------------------------------


def _pass_gate(settings: Settings, layer: str) -> dict[str, int]:
    """What a passing gate records: every table of `layer` at its latest version (storylake.audit)."""
    from storylake import audit
    from storylake import lake as lake_io

    versions = {k: lake_io.version(settings.table_path(*k.split("."))) for k in TABLES if k.startswith(layer + ".")}
    audit.record(settings, f"gate-{layer}", layer, T, versions)  # type: ignore[arg-type]
    return versions  # type: ignore[return-value]


def _next_run(settings: Settings) -> str:
    """A good run served author 10's segment (its snapshot id is returned); the next run adds author 11's (every
    table gets a new version), and its silver gate passed."""
    base_lake(settings)
    _pass_gate(settings, "silver")
    _pass_gate(settings, "gold")
    good = publish(settings, T)
    assert tray_authors(api.open_current(settings)) == [10]
    LakeBuilder(settings).follow(V, 10, T - DAY).follow(V, 11, T - DAY).segment(100, 10, T - HOUR).segment(
        101, 11, T - HOUR).write()
    _pass_gate(settings, "silver")
    return good.snapshot_id


def _waiting_snapshots(settings: Settings) -> list[str]:
    return [p.name for p in snapshots_dir(settings).glob(".*.tmp")]


def test_a_snapshot_built_beside_the_gold_gate_serves_once_the_gate_passed_its_versions(settings: Settings) -> None:
    _next_run(settings)
    waited: list[list[str]] = []

    def gate() -> None:  # the gold gate finishes after the snapshot is built, and passes
        waited.append(_waiting_snapshots(settings))
        assert tray_authors(api.open_current(settings)) == [10]  # nothing served yet
        gold.update(_pass_gate(settings, "gold"))

    gold: dict[str, int] = {}
    report = publish(settings, T, beside_gate=gate)
    assert len(waited) == 1 and len(waited[0]) == 1  # built before the gate's end, not yet CURRENT
    assert current_id(settings) == report.snapshot_id
    assert tray_authors(api.open_current(settings)) == [10, 11]
    assert {k: v["version"] for k, v in report.sources.items() if k.startswith("gold.")} == gold
    assert "wait for the gate" in report.step_seconds


def test_a_failed_gold_gate_discards_the_snapshot_built_beside_it(settings: Settings) -> None:
    served = _next_run(settings)

    def gate() -> None:
        raise publish_mod.PublishWithheld("snapshot discarded: the gold gate failed (QualityGateError)")

    history = sorted(p.name for p in insights_history.history_dir(settings).iterdir())
    for as_of in (T, T + DAY):  # the same cut (its history reused), a day later (new history files written)
        with pytest.raises(publish_mod.PublishWithheld, match="gold gate failed"):
            publish(settings, as_of, beside_gate=gate)
        assert current_id(settings) == served
        leftovers = [p.name for p in snapshots_dir(settings).iterdir() if not p.name.startswith(".duckdb_tmp")]
        assert leftovers == [f"{served}.duckdb"]
        assert sorted(p.name for p in insights_history.history_dir(settings).iterdir()) == history
        assert tray_authors(api.open_current(settings)) == [10]


def test_a_gate_that_passed_other_versions_makes_publish_build_again_from_them(settings: Settings) -> None:
    _next_run(settings)
    before = {k: v["version"] for k, v in publish(settings, T).sources.items()}  # the audited versions
    assert before["gold.segment_insights"] < lake_version(settings, "gold.segment_insights")

    report = publish(settings, T, beside_gate=lambda: None)  # the gate recorded nothing new for gold
    assert {k: v["version"] for k, v in report.sources.items()} == before
    assert "wait for the gate" not in report.step_seconds  # the second build did not wait
    assert current_id(settings) == report.snapshot_id and not _waiting_snapshots(settings)


def lake_version(settings: Settings, key: str) -> int:
    from storylake import lake as lake_io

    v = lake_io.version(settings.table_path(*key.split(".")))
    assert v is not None
    return v


def test_a_source_view_reads_the_versions_files_as_the_delta_table_does(tmp_path) -> None:
    """_register: DuckDB's Parquet reader on the version's files gives the rows, types and NULLs of an added column
    that delta-rs gives; a version without files is read through its (empty) dataset."""
    import duckdb
    import pyarrow as pa
    from deltalake import DeltaTable

    path = str(tmp_path / "t")
    first = pa.table({"id": pa.array([1, 2], pa.int64()),
                      "ts": pa.array([T, None], pa.timestamp("us", tz="UTC"))})
    write_deltalake(path, first)
    write_deltalake(path, first.append_column("note", pa.array(["x", None])).slice(0, 1).set_column(
        0, "id", pa.array([3], pa.int64())), mode="append", schema_mode="merge")
    write_deltalake(path, first.slice(1, 1), mode="append", schema_mode="merge")  # a file without the new column
    dt = DeltaTable(path)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    publish_mod._register(con, "v", dt.to_pyarrow_dataset(), dt)
    con.register("d", dt.to_pyarrow_dataset())
    assert con.execute("DESCRIBE v").fetchall() == con.execute("DESCRIBE d").fetchall()
    got = con.execute("SELECT id, ts, note FROM v ORDER BY id, ts").fetchall()
    assert got == con.execute("SELECT id, ts, note FROM d ORDER BY id, ts").fetchall()
    assert got == [(1, T, None), (2, None, None), (2, None, None), (3, T, "x")]

    empty = str(tmp_path / "empty")
    write_deltalake(empty, first.slice(0, 0))
    dt = DeltaTable(empty)
    assert dt.file_uris() == []
    publish_mod._register(con, "e", dt.to_pyarrow_dataset(), dt)
    assert con.execute("SELECT count(*) FROM e").fetchone() == (0,)

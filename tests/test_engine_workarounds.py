"""Regression tests of jobs/engine_workarounds.py: each workaround does what it claims on the real engine (Sail)."""

from __future__ import annotations

import pytest

from jobs import spark_io
from jobs.engine_workarounds import WriteGuardError, any_true, lookup, nullable, without
from storylake import lake


def test_lookup_is_a_left_or_inner_join_with_the_small_side_first(spark):
    """lookup(big, small, on) keeps every big row (left) or the matched ones (inner); small's columns first."""
    big = spark.createDataFrame([(1, "a"), (2, "b"), (3, "c"), (3, "d")], "k bigint, v string")
    small = spark.createDataFrame([(3, "x"), (4, "y")], "sk bigint, w string")
    on = big["k"] == small["sk"]
    left = lookup(big, small, on)
    assert left.columns == ["sk", "w", "k", "v"]
    assert sorted((tuple(r) for r in left.collect()), key=str) == sorted(
        [(None, None, 1, "a"), (None, None, 2, "b"), (3, "x", 3, "c"), (3, "x", 3, "d")], key=str
    )
    inner = lookup(big, small, on, "inner")
    assert sorted(tuple(r) for r in inner.collect()) == [(3, "x", 3, "c"), (3, "x", 3, "d")]
    with pytest.raises(ValueError, match="how must be 'left' or 'inner', not 'full'"):
        lookup(big, small, on, "full")


def test_without_is_a_left_anti_join_in_the_big_frames_columns(spark):
    """without(big, small, on, small's columns) keeps the big rows no small row matches, once each whatever the
    small side repeats, a null key matching nothing: the same rows as Spark's left anti join, in big's columns."""
    from pyspark.sql import functions as F

    big = spark.createDataFrame([(1, "a"), (2, "b"), (3, "c"), (3, "d"), (None, "e")], "k bigint, v string")
    small = spark.createDataFrame([(3,), (3,), (4,), (None,)], "sk bigint")
    on = F.col("k") == F.col("sk")
    out = without(big, small, on, ["sk"])
    assert out.columns == ["k", "v"]
    assert sorted((tuple(r) for r in out.collect()), key=str) == [(1, "a"), (2, "b"), (None, "e")]
    anti = big.join(small, on, "left_anti")
    assert sorted((tuple(r) for r in out.collect()), key=str) == sorted((tuple(r) for r in anti.collect()), key=str)


def test_any_true_is_a_boolean_or_aggregate(spark):
    from pyspark.sql import functions as F

    df = spark.createDataFrame([(1, True), (1, False), (2, False), (2, None), (3, None)], "k bigint, b boolean")
    got = {r["k"]: r["any"] for r in df.groupBy("k").agg(any_true("b").alias("any")).collect()}
    assert got == {1: True, 2: False, 3: None}
    assert df.agg(any_true(F.col("b")).alias("any")).collect()[0]["any"] is True


def test_nullable_makes_every_column_nullable(spark):
    """Sail infers a literal or count as NOT NULL; after nullable() every column of the schema is nullable."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    df = spark.range(3).select(F.lit(1).cast("bigint").alias("one"), F.col("id"))
    schema = T.StructType([T.StructField("one", T.LongType(), True), T.StructField("id", T.LongType(), True)])
    out = nullable(df, schema)
    assert [f.nullable for f in out.schema.fields] == [True, True]
    assert sorted(tuple(r) for r in out.collect()) == [(1, 0), (1, 1), (1, 2)]


def test_replace_where_guard_rejects_rows_outside_the_predicate_and_commits_nothing(spark, settings):
    """Sail's replaceWhere would accept a row outside the predicate; the guarded write fails with WriteGuardError
    naming the table and predicate, and the table keeps its version and rows."""
    rows = [("silver.segments", None, 1, "r", "reason", "raw", "b1")]
    schema = "contract string, source_file string, line bigint, rule string, reason string, raw string, batch_id string"

    def quarantine(stage: str):
        from pyspark.sql import functions as F

        return spark.createDataFrame(rows, schema).select(
            F.lit(stage).alias("stage"), "*", F.lit(None).cast("string").alias("event_id"),
            F.lit(None).cast("string").alias("field"), F.current_timestamp().alias("quarantined_at"),
            F.lit(None).cast("timestamp").alias("anchor_at"),
        )

    assert spark_io.write_table(quarantine("a"), settings, "ops", "quarantine") == 1
    path = settings.table_path("ops", "quarantine")
    version = lake.version(path)
    outside = r"ops.quarantine: a row is outside the replaceWhere predicate \"stage = 'b'\""
    with pytest.raises(WriteGuardError, match=outside):
        spark_io.write_table(quarantine("a"), settings, "ops", "quarantine", replace_where="stage = 'b'")
    assert lake.version(path) == version
    assert spark_io.write_table(quarantine("b"), settings, "ops", "quarantine", replace_where="stage = 'b'") == 1
    assert sorted(lake.read_arrow(path, ["stage"]).column("stage").to_pylist()) == ["a", "b"]


def test_a_write_lacking_contract_columns_fails_naming_them_and_commits_nothing(spark, settings):
    """write_table never asks the frame for its columns before writing (that analyzes the job's whole plan); a
    frame without some contract columns still fails with a WriteGuardError naming exactly those, and the table
    keeps its version."""
    from pyspark.sql import functions as F

    full = spark.createDataFrame([("x", "c", None, 1, "r", "why", "raw", "b1", None, None)],
                                 "stage string, contract string, source_file string, line bigint, rule string, "
                                 "reason string, raw string, batch_id string, event_id string, field string")
    full = full.select("*", F.current_timestamp().alias("quarantined_at"),
                       F.lit(None).cast("timestamp").alias("anchor_at"))
    assert spark_io.write_table(full, settings, "ops", "quarantine") == 1
    path = settings.table_path("ops", "quarantine")
    version = lake.version(path)
    with pytest.raises(WriteGuardError, match=r"^ops.quarantine: transform output lacks contract columns "
                                              r"\['reason', 'anchor_at'\]$"):
        spark_io.write_table(full.drop("reason", "anchor_at"), settings, "ops", "quarantine",
                             replace_where="stage = 'x'")
    assert lake.version(path) == version


def test_a_materialized_frame_reads_back_the_same_rows_and_schema(spark, settings):
    """scratch's materialize reads the written files with their own schema (no second analysis of the plan), and an
    empty result (no file written) with the frame's."""
    from pyspark.sql import functions as F

    df = spark.range(3).select(F.col("id"), F.col("id").cast("string").alias("s"),
                               F.timestamp_seconds(F.col("id")).alias("t"), F.array(F.col("id")).alias("a"))
    with spark_io.scratch(settings) as materialize:
        got = materialize(df, "rows")
        assert [(f.name, f.dataType) for f in got.schema.fields] == [(f.name, f.dataType) for f in df.schema.fields]
        assert sorted(tuple(r) for r in got.collect()) == sorted(tuple(r) for r in df.collect())
        empty = materialize(df.filter(F.col("id") > 10), "empty")
        assert empty.schema == df.schema
        assert empty.count() == 0


def test_stale_scratch_folders_are_removed_at_the_next_build(spark, settings):
    """A killed job leaves LAKE/_staging/<id>; the next silver or gold build (under the writer lock) removes it."""
    from datetime import UTC, datetime

    from jobs.silver import build_silver

    stale = settings.lake / "_staging" / "deadbeef0000"
    (stale / "000-x").mkdir(parents=True)
    (stale / "000-x" / "part-0.parquet").write_bytes(b"half a file")
    assert spark_io.remove_stale_scratch(settings) == 1 and not stale.exists()
    (stale / "000-x").mkdir(parents=True)
    build_silver(spark, settings, datetime(2026, 11, 2, tzinfo=UTC))
    assert list((settings.lake / "_staging").iterdir()) == []


def test_slice_of_a_table_with_list_columns_is_replaced_through_delta_rs(spark, settings):
    """Sail's replaceWhere fails on a table with a list column (the kept rows come back with Parquet's list field
    name); write_table replaces such a slice through delta-rs: rows outside the slice kept, inside replaced."""
    from datetime import UTC, datetime

    from pyspark.sql import functions as F

    from jobs.engine_workarounds import has_nested
    from jobs.spark_schemas import spark_schema
    from storylake import contracts

    schema = spark_schema(contracts.get("gold.sticker_results"))
    assert has_nested(schema)
    old, new = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)

    def stickers(ids: list[int], at: datetime, responses: int):
        base = spark.createDataFrame([(i,) for i in ids], "sticker_id bigint")
        return base.select(
            "sticker_id", F.lit(1).cast("bigint").alias("segment_id"), F.lit(1).cast("bigint").alias("author_id"),
            F.lit("poll").alias("sticker_type"), F.lit(responses).cast("bigint").alias("responses"),
            F.array(F.lit("a"), F.lit("b")).alias("options"),
            F.array(F.lit(responses).cast("bigint"), F.lit(0).cast("bigint")).alias("option_counts"),
            *[F.lit(None).cast(f.dataType).alias(f.name) for f in schema.fields
              if f.name not in ("sticker_id", "segment_id", "author_id", "sticker_type", "responses", "options",
                                "option_counts", "segment_created_at")],
            F.lit(at).cast("timestamp").alias("segment_created_at"),
        )

    assert spark_io.write_table(stickers([1], old, 1).unionByName(stickers([2], new, 1)), settings, "gold",
                                "sticker_results") == 2
    where = f"segment_created_at >= {spark_io.ts_literal(new)}"
    assert spark_io.write_table(stickers([2, 3], new, 5), settings, "gold", "sticker_results", replace_where=where) == 2
    got = lake.read_arrow(settings.table_path("gold", "sticker_results"), ["sticker_id", "option_counts"])
    assert sorted(map(tuple, (r.values() for r in got.to_pylist()))) == [(1, [1, 0]), (2, [5, 0]), (3, [5, 0])]
    # the engine hands the slice over as Parquet files in a staging folder, removed after the write; an empty slice
    # (no file) only removes the predicate's rows
    assert list((settings.lake / "_staging").iterdir()) == []
    assert spark_io.write_table(stickers([], new, 5), settings, "gold", "sticker_results", replace_where=where) == 0
    got = lake.read_arrow(settings.table_path("gold", "sticker_results"), ["sticker_id", "option_counts"])
    assert [tuple(r.values()) for r in got.to_pylist()] == [(1, [1, 0])]
    assert list((settings.lake / "_staging").iterdir()) == []
    # a row outside the slice fails the write inside the engine: the table stays as it was, the staging goes
    with pytest.raises(WriteGuardError):
        spark_io.write_table(stickers([4], old, 9), settings, "gold", "sticker_results", replace_where=where)
    got = lake.read_arrow(settings.table_path("gold", "sticker_results"), ["sticker_id", "option_counts"])
    assert [tuple(r.values()) for r in got.to_pylist()] == [(1, [1, 0])]
    assert list((settings.lake / "_staging").iterdir()) == []


def test_an_empty_nested_slice_leaves_no_file_and_only_removes_rows(spark, settings, tmp_path):
    """The engine writes no Parquet file for an empty slice: replace_slice_with_delta_rs then hands delta-rs an
    empty table of the target's schema, which removes the predicate's rows and adds none (0 rows written)."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from jobs.engine_workarounds import replace_slice_with_delta_rs

    path = settings.table_path("gold", "tiny")
    write_deltalake(str(path), pa.table({"k": pa.array([1, 2], pa.int64()),
                                         "xs": pa.array([[1, 2], [3]], pa.list_(pa.int64()))}))
    staging = tmp_path / "staging"
    empty = spark.createDataFrame([], "k bigint, xs array<bigint>")
    assert replace_slice_with_delta_rs(empty, str(path), "k >= 2", staging) == 0
    assert list(staging.glob("*.parquet")) == []
    assert [r["k"] for r in lake.read_arrow(path).to_pylist()] == [1]


def test_read_version_reads_a_version_between_two_checkpoints(spark, settings):
    """Sail's versionAsOf fails for a version between two checkpoints (the daily maintenance writes one after the
    version the gates audited); spark_io.read_version reads that version's files as delta-rs lists them."""
    from datetime import date

    from deltalake import DeltaTable

    path = settings.table_path("gold", "author_viewer_days")

    def day_rows(i: int) -> list[dict[str, object]]:
        return [{"author_id": i, "day": date(2026, 11, 1 + i), "viewer_id": v, "views": 1, "view_ms": None,
                 "completed": 0} for v in (1, 2)]

    for i in range(4):
        lake.write_table(settings, "gold.author_viewer_days", day_rows(i), mode="append")
        if i == 1:
            DeltaTable(str(path)).create_checkpoint()
    DeltaTable(str(path)).optimize.compact()  # version 4
    DeltaTable(str(path)).create_checkpoint()
    with pytest.raises(Exception, match="Missing commit file"):  # the engine bug this works around
        spark.read.format("delta").option("versionAsOf", 3).load(str(path)).count()
    for version in range(5):
        got = spark_io.read_version(spark, settings, "gold", "author_viewer_days", version)
        expected = DeltaTable(str(path), version=version).to_pyarrow_table().to_pylist()
        assert sorted(tuple(r) for r in got.collect()) == sorted(tuple(r.values()) for r in expected)


def test_a_table_overwritten_from_its_pinned_read(spark, settings):
    """silver.relationships_changes and silver.profiles overwrite themselves from their own rows, read through
    spark_io.read_pinned while the write runs (no copy into scratch first): the overwrite leaves the files it reads
    on disk, so the new version holds exactly the rows computed from the old one, and the old version stays
    readable. Without a table, or with Parquet storage, there is nothing pinned."""
    from pyspark.sql import functions as F

    from storylake.settings import Settings

    assert spark_io.read_pinned(spark, settings, "silver", "profiles") is None
    rows = [{"user_id": u, "username": f"u{u}", "profile_picture_media_id": None, "updated_at": None,
             "event_id": f"e{u}"} for u in range(1, 2001)]
    lake.write_table(settings, "silver.profiles", rows)
    for version in (1, 2):  # each overwrite adds one to every user_id, reading the version it replaces
        pinned = spark_io.read_pinned(spark, settings, "silver", "profiles")
        assert pinned is not None
        assert spark_io.write_table(pinned.withColumn("user_id", F.col("user_id") + 1), settings, "silver",
                                    "profiles") == 2000
        got = lake.read_arrow(settings.table_path("silver", "profiles"), ["user_id"]).column("user_id").to_pylist()
        assert sorted(got) == list(range(1 + version, 2001 + version))
    first = spark_io.read_version(spark, settings, "silver", "profiles", 0)
    assert sorted(r["user_id"] for r in first.select("user_id").collect()) == list(range(1, 2001))
    parquet = Settings(lake=settings.lake, landing=settings.landing, storage="parquet")
    assert spark_io.read_pinned(spark, parquet, "silver", "profiles") is None


def _reattach_to_a_finished_operation(spark) -> None:
    """What pyspark does after a response stream broke once Sail had sent its last response: run a plan to its end
    (reattachable, not released), then reattach to it; raises the engine's error as pyspark raises it."""
    import uuid

    import pyspark.sql.connect.proto as pb2

    client = spark.client
    req = client._execute_plan_request_with_metadata()
    req.plan.CopyFrom(spark.range(3)._plan.to_proto(client))
    req.operation_id = str(uuid.uuid4())
    req.request_options.append(
        pb2.ExecutePlanRequest.RequestOption(reattach_options=pb2.ReattachOptions(reattachable=True)))
    responses = list(client._stub.ExecutePlan(req, metadata=client._builder.metadata()))
    assert responses[-1].HasField("result_complete")
    again = pb2.ReattachExecuteRequest(session_id=req.session_id, user_context=req.user_context,
                                       operation_id=req.operation_id)
    try:
        list(client._stub.ReattachExecute(again, metadata=client._builder.metadata()))
    except Exception as exc:  # the gRPC error, turned into pyspark's exception as the client does
        client._handle_error(exc)


def test_a_job_the_engine_fails_by_losing_a_finished_operation_runs_again_once(spark, caplog):
    import logging

    from pyspark.errors.exceptions.connect import SparkConnectGrpcException

    from jobs.engine_workarounds import lost_operation
    from jobs.lanes import run_jobs

    with pytest.raises(SparkConnectGrpcException) as raised:  # Sail 0.7.2 still refuses the reattachment
        _reattach_to_a_finished_operation(spark)
    assert lost_operation(raised.value)

    calls: list[str] = []

    def flaky() -> dict[str, int]:
        calls.append("flaky")
        if len(calls) == 1:
            _reattach_to_a_finished_operation(spark)
        return {"t": spark.range(4).count()}

    def broken() -> dict[str, int]:
        calls.append("broken")
        spark.sql("SELECT * FROM no_such_table").collect()
        return {}

    with caplog.at_level(logging.WARNING, logger="lanes-test"):
        rows = run_jobs([("flaky", flaky)], workers=1, logger=logging.getLogger("lanes-test"), layer="t")
    assert rows == {"t": 4} and calls == ["flaky", "flaky"]
    assert "flaky: the engine lost a finished operation" in caplog.text
    calls.clear()
    with pytest.raises(Exception, match="no_such_table"):  # any other failure is not retried
        run_jobs([("broken", broken)], workers=1, logger=logging.getLogger("lanes-test"), layer="t")
    assert calls == ["broken"]

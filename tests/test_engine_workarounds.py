"""Regression tests of jobs/engine_workarounds.py: each workaround does what it claims on the real engine (Sail)."""

from __future__ import annotations

import pytest

from jobs import spark_io
from jobs.engine_workarounds import WriteGuardError, any_true, lookup, nullable
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

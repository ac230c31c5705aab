"""Exactly-once from at-least-once input: keep one row per key (redeliveries, client retries), splitting off the
rare repeated keys so that only they go through windows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs import spark_io
from jobs.engine_workarounds import lookup
from jobs.spark_io import Materialize

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

# A dedupe step: (key columns, order within a key; the first row by the order is kept).
KeyOrder = tuple[list[str], list["Column | str"]]
EVENT_ID_DEDUPE: KeyOrder = (["event_id"], ["_source_file", "_line"])


def split_repeated(
    df: DataFrame, keys: list[list[str]], materialize: Materialize = spark_io.lazily
) -> tuple[DataFrame, DataFrame]:
    """(rows of `df` whose every key is unique in `df`, the other rows): same columns out.

    Made for keys that rarely repeat (redeliveries, retries, rewatches), so that only the second frame needs
    windows or aggregates. A key's repetition is found by a 64-bit hash of it (narrow aggregates); a
    collision only moves a few unique rows to the second frame, so every use stays exact: all rows of a
    repeated key are in the second frame. Keys compare null-safely (equal keys, nulls included, hash equal).

    Each row is marked by small-side joins against the repeated hashes of every key (built in memory, the big
    frame streams), then split: two streams of `df`, never a hash table of it. `materialize` computes the small
    sets of repeated hashes once for both streams (Sail would otherwise aggregate `df` again for each).
    """
    from pyspark.sql import functions as F

    hashes = [f"_dh{i}" for i in range(len(keys))]
    marked = df.select("*", *[F.xxhash64(*key).alias(h) for key, h in zip(keys, hashes, strict=True)])
    for i, h in enumerate(hashes):
        repeated = materialize(
            marked.groupBy(h).agg(F.count(F.lit(1)).alias("_n")).filter(F.col("_n") > 1)
            .select(F.col(h).alias(f"_r{h}"), F.lit(True).alias(f"_m{h}")),
            f"repeated_keys_{i}",
        )
        marked = lookup(marked, repeated, F.col(h) == F.col(f"_r{h}")).drop(f"_r{h}")
    any_repeated = F.lit(False)
    for h in hashes:
        any_repeated = any_repeated | F.col(f"_m{h}").isNotNull()
    # dropping the marks leaves df's columns in df's order (a lookup puts the small side's columns first), without
    # asking the engine for df's schema (an analysis of its whole plan per call)
    marks = [*hashes, *[f"_m{h}" for h in hashes]]
    return marked.filter(~any_repeated).drop(*marks), marked.filter(any_repeated).drop(*marks)


def first_per_keys(df: DataFrame, steps: list[KeyOrder], materialize: Materialize = spark_io.lazily) -> DataFrame:
    """Apply dedupe steps in order: each keeps one row per key, the first by its order (a total order within
    a key). Same columns out.

    Duplicates are rare, so only the rows of keys repeated in `df` (split_repeated) go through the windows,
    which partition by the real keys: every other row passes straight through. This is exact: a step only
    removes rows, so a key unique in `df` stays unique, and a row repeated under one step's key only is unique
    under every other step's key, which keeps it.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not steps:
        raise ValueError("first_per_keys: no dedupe steps")
    unique, rest = split_repeated(df, [keys for keys, _ in steps], materialize)
    for keys, order in steps:
        w = Window.partitionBy(*keys).orderBy(*order)
        rest = rest.withColumn("_rk", F.row_number().over(w)).filter(F.col("_rk") == 1).drop("_rk")
    return unique.unionByName(rest)


def first_per_key(
    df: DataFrame, keys: list[str], order: list[Column | str], materialize: Materialize = spark_io.lazily
) -> DataFrame:
    """Keep one row per key: the first by `order` (which must be a total order within a key)."""
    return first_per_keys(df, [(keys, order)], materialize)


def dedupe_event_id(df: DataFrame, materialize: Materialize = spark_io.lazily) -> DataFrame:
    """At-least-once delivery: the same event_id is one event; keep its first delivery by (_source_file, _line)."""
    return first_per_keys(df, [EVENT_ID_DEDUPE], materialize)


def dedupe_retries(df: DataFrame, actor: str, materialize: Materialize = spark_io.lazily) -> DataFrame:
    """Remove exact duplicates (event_id), then client retries: the same idempotency_key from the same `actor`
    (viewer_id, user_id) is one event, its earliest delivery by (event_time, event_id). Same columns out."""
    return first_per_keys(df, [EVENT_ID_DEDUPE, (["idempotency_key", actor], ["event_time", "event_id"])], materialize)

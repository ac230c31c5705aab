"""Writing a gold table: whole-table overwrite through spark_io, with every column nullable in storage."""

from __future__ import annotations

from pyspark.sql import DataFrame

from jobs import contracts, spark_io
from jobs.settings import Settings


def nullable(df: DataFrame, layer: str, name: str) -> DataFrame:
    """`df` conformed to the contract with every column nullable.

    Sail 0.7.2 writes columns it infers as non-null (literals, coalesce(..., 0), count) as NOT NULL Delta
    columns, although the contracts' storage schemas are all-nullable (spark_io.conform's cast keeps the
    inference; DataFrame.to(schema) and CASE WHEN do not change it either). A union with an empty frame of the
    contract's nullable schema does, portably (a union's nullability is the OR of its inputs').
    """
    contract = contracts.get(f"{layer}.{name}")
    empty = df.sparkSession.createDataFrame([], contract.spark_schema())
    return spark_io.conform(df, layer, name).unionByName(empty)


def write_gold(df: DataFrame, settings: Settings, name: str) -> dict[str, int]:
    """Overwrite gold.<name> with `df` (a rerun with the same inputs gives the same contents); {name: rows}."""
    return {name: spark_io.write_table(nullable(df, "gold", name), settings, "gold", name)}

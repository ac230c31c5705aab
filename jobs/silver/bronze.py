"""Reading bronze into the silver jobs: the events before a run's as_of, cast to a contract's columns.

Everything in jobs/silver is portable Spark (DataFrame API + Spark SQL expressions): no Python UDFs, no Sail-only
features, so the pure transforms give the same result on embedded Sail and on classic JVM Spark.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from jobs import spark_io
from jobs.spark_schemas import spark_ddl_type
from storylake import contracts
from storylake.clock import utc
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


def ts_lit(t: datetime) -> Column:
    from pyspark.sql import functions as F

    return F.lit(utc(t)).cast("timestamp")


def before(df: DataFrame, as_of: datetime, column: str = "event_time") -> DataFrame:
    """Rows strictly before as_of (a run sees only events that happened before its data time)."""
    from pyspark.sql import functions as F

    return df.filter(F.col(column) < ts_lit(as_of))


def project(df: DataFrame, key: str) -> DataFrame:
    """The contract's columns in order, cast to their types (like spark_io.conform, which write_table applies
    again with its missing-column check, but without an analysis round trip: transforms stay lazy)."""
    from pyspark.sql import functions as F

    contract = contracts.get(key)
    return df.select(*[F.col(col.name).cast(spark_ddl_type(col)).alias(col.name) for col in contract.columns])


def read_bronze(spark: SparkSession, settings: Settings, event: str, as_of: datetime) -> DataFrame:
    return before(spark_io.read_table(spark, settings, "bronze", event), as_of)

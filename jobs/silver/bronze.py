"""Silver helpers over bronze rows: timestamp literals and projection onto a contract's columns (reading bronze
within a run's horizon: jobs/horizon.py).

Everything in jobs/silver is portable Spark (DataFrame API + Spark SQL expressions): no Python UDFs, no Sail-only
features, so the pure transforms give the same result on embedded Sail and on classic JVM Spark.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from jobs.spark_schemas import spark_ddl_type
from storylake import contracts
from storylake.clock import utc

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def ts_lit(t: datetime) -> Column:
    from pyspark.sql import functions as F

    return F.lit(utc(t)).cast("timestamp")


def project(df: DataFrame, key: str) -> DataFrame:
    """The contract's columns in order, cast to their types (like spark_io.conform, which write_table applies
    again with its missing-column check, but without an analysis round trip: transforms stay lazy)."""
    from pyspark.sql import functions as F

    contract = contracts.get(key)
    return df.select(*[F.col(col.name).cast(spark_ddl_type(col)).alias(col.name) for col in contract.columns])

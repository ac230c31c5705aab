"""Writing a gold table: whole-table overwrite through spark_io (which keeps every column nullable)."""

from __future__ import annotations

from pyspark.sql import DataFrame

from jobs import spark_io
from storylake.settings import Settings


def write_gold(df: DataFrame, settings: Settings, name: str) -> dict[str, int]:
    """Overwrite gold.<name> with `df` (a rerun with the same inputs gives the same contents); {name: rows}."""
    return {name: spark_io.write_table(df, settings, "gold", name)}

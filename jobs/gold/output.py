"""Writing a gold table: whole-table or horizon-slice overwrite through spark_io (every column nullable)."""

from __future__ import annotations

from pyspark.sql import DataFrame

from jobs import spark_io
from storylake.settings import Settings


def write_gold(df: DataFrame, settings: Settings, name: str, replace_where: str | None = None) -> dict[str, int]:
    """Overwrite gold.<name> (or its slice `replace_where`: a run's horizon) with `df` (a rerun with the same inputs
    gives the same contents); {name: rows written}."""
    return {name: spark_io.write_table(df, settings, "gold", name, replace_where=replace_where)}

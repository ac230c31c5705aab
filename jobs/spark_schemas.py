"""Spark schemas of the data contracts (storylake.contracts holds the YAML loader and the Arrow schemas)."""

from __future__ import annotations

from pyspark.sql import types as T

from storylake.contracts import Column, Contract

_SCALARS: dict[str, T.DataType] = {
    "bigint": T.LongType(),
    "int": T.IntegerType(),
    "double": T.DoubleType(),
    "string": T.StringType(),
    "boolean": T.BooleanType(),
    "timestamp": T.TimestampType(),
    "date": T.DateType(),
}


def spark_type(c: Column) -> T.DataType:
    """The Spark type of a contract column (nullable everywhere: required-ness is checked by the gates)."""
    if c.physical_type == "array":
        assert c.items is not None
        return T.ArrayType(spark_type(c.items), True)
    if c.physical_type == "struct":
        return T.StructType([T.StructField(f.name, spark_type(f), True) for f in c.fields])
    return _SCALARS[c.physical_type]


def spark_ddl_type(c: Column) -> str:
    """The Spark SQL DDL type of a contract column: bigint, array<string>, struct<`a`: bigint>."""
    if c.physical_type == "array":
        assert c.items is not None
        return f"array<{spark_ddl_type(c.items)}>"
    if c.physical_type == "struct":
        return "struct<" + ", ".join(f"`{f.name}`: {spark_ddl_type(f)}" for f in c.fields) + ">"
    return c.physical_type


def spark_schema(contract: Contract) -> T.StructType:
    """The table's StructType, columns in contract order, all nullable."""
    return T.StructType([T.StructField(c.name, spark_type(c), True) for c in contract.columns])

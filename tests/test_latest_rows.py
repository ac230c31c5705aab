"""silver.segment_viewers stored as growing rows (storylake/latest_rows.py): readers see each (segment, viewer)'s row
with the most views; the DuckDB, Arrow and Spark forms of that rule agree on hand-built and generated rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.merged_tables import latest_frame
from storylake import contracts
from storylake.latest_rows import SEGMENT_VIEWERS, LatestRows, arrow, duckdb_sql

T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
SCHEMA = contracts.get("silver.segment_viewers").arrow_schema()


def row(segment: int, viewer: int, views: int, *, source: str = "tray") -> dict[str, Any]:
    """A stored row whose other columns follow from its view count (so a key's rows differ)."""
    return {"segment_id": segment, "viewer_id": viewer, "author_id": 1,
            "first_viewed_at": T0, "last_viewed_at": T0 + timedelta(minutes=views), "view_count": views,
            "max_completion_pct": 1.0, "total_view_ms": 4000 * views, "first_view_source": source,
            "segment_created_at": T0 - timedelta(hours=1)}


def table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, SCHEMA)


def keyed(rows: list[dict[str, Any]]) -> list[tuple[int, int, int, int]]:
    return sorted((r["segment_id"], r["viewer_id"], r["view_count"], r["total_view_ms"]) for r in rows)


def by_duckdb(stored: pa.Table, growing: LatestRows = SEGMENT_VIEWERS) -> list[dict[str, Any]]:
    """The rows readers see of `growing`'s table, by the DuckDB form (tests/test_restated_rows.py uses it too)."""
    con = duckdb.connect()
    try:
        con.register("stored", stored)
        return con.sql(duckdb_sql(growing, "stored")).to_arrow_table().to_pylist()
    finally:
        con.close()


def by_spark(spark: Any, stored: pa.Table, growing: LatestRows = SEGMENT_VIEWERS) -> list[dict[str, Any]]:
    """The rows readers see of `growing`'s table, by the Spark form."""
    from jobs.spark_schemas import spark_schema

    frame = spark.createDataFrame(stored.to_pylist(), spark_schema(contracts.get(growing.table)))
    return [r.asDict() for r in latest_frame(growing, frame).collect()]


# segment 1: viewer 2 seen once, then again twice (3 views), viewer 3 once; segment 4: viewer 2 with 2 views then
# 5, stored out of order; segment 6: viewer 7's only row has 2 views
STORED = [row(1, 2, 1), row(1, 3, 1), row(4, 2, 5), row(1, 2, 3), row(4, 2, 2), row(6, 7, 2)]
LATEST = [(1, 2, 3, 12000), (1, 3, 1, 4000), (4, 2, 5, 20000), (6, 7, 2, 8000)]


def test_each_key_keeps_its_row_with_the_most_views_in_every_form(spark: Any) -> None:
    stored = table(STORED)
    assert keyed(arrow(SEGMENT_VIEWERS, stored).to_pylist()) == LATEST
    assert keyed(by_duckdb(stored)) == LATEST
    assert keyed(by_spark(spark, stored)) == LATEST


def test_a_null_count_gives_way_to_a_larger_one_in_every_form(spark: Any) -> None:
    """The contract and the gate keep view_count required; should a null reach a reader, the forms still agree: it
    gives way to a row above the floor, and stays when its key has none."""
    stored = table([{**row(1, 2, 1), "view_count": None}, row(1, 2, 3), {**row(5, 2, 1), "view_count": None}])
    want = [(1, 2, 3, 12000), (5, 2, None, 4000)]

    def key(r: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(-1 if v is None else v for v in r)

    for got in (arrow(SEGMENT_VIEWERS, stored).to_pylist(), by_duckdb(stored), by_spark(spark, stored)):
        assert sorted(((r["segment_id"], r["viewer_id"], r["view_count"], r["total_view_ms"]) for r in got),
                      key=key) == want


def test_arrow_keeps_the_stored_order_and_columns() -> None:
    out = arrow(SEGMENT_VIEWERS, table(STORED))
    assert out.schema == SCHEMA
    assert [(r["segment_id"], r["viewer_id"]) for r in out.to_pylist()] == [(1, 3), (4, 2), (1, 2), (6, 7)]
    assert arrow(SEGMENT_VIEWERS, table([row(1, 2, 1)])).to_pylist() == [row(1, 2, 1)]
    assert arrow(SEGMENT_VIEWERS, table([])).num_rows == 0


# a key's rows: distinct view counts (a later row of a pair always has more views)
histories = st.dictionaries(
    st.tuples(st.integers(1, 4), st.integers(1, 4)),
    st.sets(st.integers(1, 6), min_size=1, max_size=4),
    max_size=10,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories=histories, order=st.randoms(use_true_random=False))
def test_the_forms_agree_with_the_largest_count_per_key(spark: Any, histories: dict[tuple[int, int], set[int]],
                                                        order: Any) -> None:
    stored = [row(s, v, n) for (s, v), counts in histories.items() for n in counts]
    order.shuffle(stored)
    want = sorted((s, v, max(c), 4000 * max(c)) for (s, v), c in histories.items())
    assert keyed(arrow(SEGMENT_VIEWERS, table(stored)).to_pylist()) == want
    assert keyed(by_duckdb(table(stored))) == want
    assert keyed(by_spark(spark, table(stored))) == want

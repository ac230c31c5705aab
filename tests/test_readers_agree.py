"""Every reader of the lake sees every row: for every table of a generated lake (bronze, silver, gold, ops),
single-column filtered reads through delta-rs/pyarrow, DuckDB and Polars return exactly the rows of the
unfiltered read filtered afterwards. Files without statistics (delta-rs issue #3173) used to make the filtered
reads drop whole files; ingest now writes complete statistics and `maintain` repairs older tables."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from jobs.lake_health import table_health
from jobs.maintenance import find_tables
from pipeline.run import run_pipeline
from storylake.lake import stats_eligible
from storylake.settings import Settings
from toolkit.generate import generate

START = datetime(2026, 11, 1, tzinfo=UTC)
OPS = ("<", "=", ">=")


def _probe_values(column: pa.ChunkedArray) -> list[object]:
    """A few values of the column that make selective filters: its min, median and max."""
    values = pc.drop_null(column)
    if len(values) == 0:
        return []
    ordered = pc.sort_indices(values)
    picks = {0, len(values) // 2, len(values) - 1}
    return sorted({values[int(ordered[i].as_py())].as_py() for i in picks}, key=repr)


def _expected(table: pa.Table, col: str, op: str, value: object) -> int:
    c = table.column(col)
    mask = {"<": pc.less, "=": pc.equal, ">=": pc.greater_equal}[op](c, pa.scalar(value, type=c.type))
    return int(pc.sum(pc.fill_null(mask, False).cast(pa.int64())).as_py() or 0)


def _arrow_filter(col: str, op: str, value: object) -> pc.Expression:
    f = pc.field(col)
    return {"<": f < value, "=": f == value, ">=": f >= value}[op]


def _polars_filter(col: str, op: str, value: object) -> pl.Expr:
    c = pl.col(col)
    return {"<": c < value, "=": c == value, ">=": c >= value}[op]


@pytest.fixture(scope="module")
def generated_lake(tmp_path_factory: pytest.TempPathFactory, spark: object) -> Path:
    root = tmp_path_factory.mktemp("readers")
    settings = Settings(lake=root / "lake", landing=root / "landing")
    generate(settings.landing, users=80, days=1, seed=5, start=START, progress=False)
    run_pipeline(settings, datetime(2026, 11, 2, 1, tzinfo=UTC), spark=spark, progress=False)  # type: ignore[arg-type]
    return settings.lake


def test_every_table_has_complete_statistics(generated_lake: Path) -> None:
    tables = find_tables(generated_lake)
    assert len(tables) >= 20
    for path in tables:
        health = table_health(path, path.relative_to(generated_lake).as_posix())
        assert health.ok and not health.missing_stats, health.as_dict()


def test_filtered_reads_agree_across_readers(generated_lake: Path) -> None:
    con = duckdb.connect()
    checked = 0
    wrong: list[str] = []
    for path in find_tables(generated_lake):
        name = path.relative_to(generated_lake).as_posix()
        dt = DeltaTable(str(path))
        full = dt.to_pyarrow_table()
        if full.num_rows == 0:
            continue
        dataset = dt.to_pyarrow_dataset()
        con.register("t", dataset)
        scan = pl.scan_delta(str(path))  # the table's log read once; each probe plans its own filtered scan
        for field in full.schema:
            if not stats_eligible(field.type):
                continue
            for value in _probe_values(full.column(field.name)):
                for op in OPS:
                    want = _expected(full, field.name, op, value)
                    got_arrow = dataset.count_rows(filter=_arrow_filter(field.name, op, value))
                    got_duckdb = con.execute(
                        f'SELECT count(*) FROM t WHERE "{field.name}" {op} $v', {"v": value}  # noqa: S608
                    ).fetchall()[0][0]
                    got_polars = scan.filter(_polars_filter(field.name, op, value)).select(
                        pl.len()).collect().item()
                    checked += 1
                    if not want == got_arrow == got_duckdb == got_polars:
                        wrong.append(f"{name}.{field.name} {op} {value!r}: want {want}, pyarrow {got_arrow}, "
                                     f"duckdb {got_duckdb}, polars {got_polars}")
        con.unregister("t")
    assert checked > 500
    assert wrong == []

"""An upgrade that changes a contract: a lake written under the old schema (a gold column renamed, a gold table not
there yet) takes the next `run`: the drifted table is rewritten in its contract's schema, the run becomes a full
refresh, and the lake ends equal to one clean run of the new code (slow)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake

from jobs.schema_migration import schema_drift
from pipeline.run import run_pipeline
from storylake import contracts, increments
from storylake.settings import Settings
from tests.test_incremental import assert_same, lake_state
from toolkit.generate import generate

pytestmark = pytest.mark.slow

T1 = datetime(2026, 11, 1, 12, tzinfo=UTC)
T2 = datetime(2026, 11, 1, 18, tzinfo=UTC)


def _old_schema(settings: Settings) -> None:
    """What an older storylake left: segment_insights with retention_from_previous and no exit_viewers, and no
    author_hourly_insights table."""
    path = settings.table_path("gold", "segment_insights")
    t = DeltaTable(str(path)).to_pyarrow_table()
    t = t.drop_columns(["exit_viewers"]).append_column(
        "retention_from_previous", pc.cast(pa.nulls(t.num_rows), pa.float64()))
    write_deltalake(str(path), t, mode="overwrite", schema_mode="overwrite")
    hourly = settings.table_path("gold", "author_hourly_insights")
    for f in sorted(hourly.rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    hourly.rmdir()


def test_a_lake_written_under_an_older_contract_is_conformed_and_refreshed(spark: Any, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    generate(landing, users=30, days=1, seed=3, progress=False)
    s = Settings(lake=tmp_path / "lake", landing=landing)
    run_pipeline(s, T1, spark=spark, publish=False, progress=False)
    _old_schema(s)
    assert schema_drift(s) == {"gold.author_hourly_insights": "missing", "gold.segment_insights": "schema"}

    run_pipeline(s, T2, spark=spark, publish=False, progress=False)
    assert schema_drift(s) == {}
    stored = [f.name for f in DeltaTable(str(s.table_path("gold", "segment_insights"))).schema().fields]
    assert stored == [c.name for c in contracts.get("gold.segment_insights").columns]
    assert increments.last(s).full  # type: ignore[union-attr]

    clean = Settings(lake=tmp_path / "clean", landing=landing)
    run_pipeline(clean, T2, spark=spark, publish=False, progress=False)
    want = lake_state(clean)
    assert sum(len(v) for v in want.values()) > 500
    assert_same(lake_state(s), want)
    # the next run is incremental again
    run_pipeline(s, T2.replace(hour=19), spark=spark, publish=False, progress=False)
    assert not increments.last(s).full  # type: ignore[union-attr]
    # a missing table that a run rebuilds whole (an upgrade that adds gold.author_viewer_latest): no drift, the next
    # run stays incremental and builds it
    latest = s.table_path("gold", "author_viewer_latest")
    for f in sorted(latest.rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    latest.rmdir()
    assert schema_drift(s) == {}
    run_pipeline(s, T2.replace(hour=20), spark=spark, publish=False, progress=False)
    assert not increments.last(s).full and DeltaTable(str(latest)).version() == 0  # type: ignore[union-attr]

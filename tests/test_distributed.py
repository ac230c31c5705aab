"""The distributed path: the pipeline on a separately started Sail server in local-cluster mode (a driver and
several workers exchanging shuffles, through `--engine remote`) gives the tables the embedded engine gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobs.engine import spark_session
from pipeline.run import run_pipeline
from storylake.settings import Settings
from tests.sail_server import sail_server
from tests.test_incremental import assert_same, lake_state
from toolkit.generate import generate

pytestmark = pytest.mark.slow
CLUSTER = {"SAIL_MODE": "local-cluster", "SAIL_CLUSTER__WORKER_INITIAL_COUNT": "3",
           "SAIL_CLUSTER__WORKER_TASK_SLOTS": "2"}


def test_local_cluster_sail_server_gives_the_embedded_tables(spark: Any, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    landing = tmp_path / "landing"
    generate(landing, users=30, days=1, seed=9, progress=False)
    as_of = datetime(2026, 11, 2, 1, tzinfo=UTC)
    embedded = Settings(lake=tmp_path / "embedded", landing=landing)
    run_pipeline(embedded, as_of, spark=spark, publish=False, progress=False)
    with sail_server(env=CLUSTER) as url:
        remote = Settings(lake=tmp_path / "cluster", landing=landing, engine="remote", spark_remote=url)
        with spark_session(remote) as cluster:
            mode = cluster.conf.get("spark.sql.session.timeZone")
            assert mode == "UTC"
            run_pipeline(remote, as_of, spark=cluster, publish=False, progress=False)
    got, want = lake_state(remote), lake_state(embedded)
    assert sum(len(v) for v in want.values()) > 1000
    assert_same(got, want)

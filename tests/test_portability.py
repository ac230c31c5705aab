"""The jobs are portable: the same silver+gold code on classic JVM Spark (local mode) and on Sail gives the
same tables. Both run with Parquet storage (the delta-spark jars cannot be fetched for the JVM here) over the
same bronze Delta tables."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads
import pytest

from jobs.ingest import ingest
from storylake import contracts
from storylake.settings import Settings
from toolkit.generate import generate

pytestmark = pytest.mark.slow
AS_OF = datetime(2026, 11, 2, 1, tzinfo=UTC)


def _run(engine: str, lake: Path) -> dict[str, Any]:
    env = {**os.environ, "STORYLAKE_ENGINE": engine, "STORYLAKE_STORAGE": "parquet", "STORYLAKE_LAKE": str(lake),
           "SPARK_MASTER": "local[2]", "RUST_LOG": "error", "STORYLAKE_SHUFFLE_PARTITIONS": "2"}
    out = subprocess.run([sys.executable, "-m", "toolkit.bench.jvm_run", AS_OF.isoformat()], env=env,
                         capture_output=True, text=True, check=False, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _norm(v: Any) -> Any:
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 9)
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in sorted(v.items())}
    return v


def _table(lake: Path, layer: str, name: str) -> list[str]:
    path = lake / layer / name
    files = sorted(str(p) for p in path.glob("*.parquet")) if path.is_dir() else []
    if not files:
        return []
    rows = pads.dataset(files, format="parquet").to_table().to_pylist()
    return sorted(json.dumps(_norm(r), default=str, sort_keys=True) for r in rows)


def test_silver_and_gold_are_identical_on_jvm_spark_and_sail(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    generate(landing, users=60, days=1, seed=5, progress=False)
    bronze_lake = tmp_path / "delta"
    ingest(Settings(lake=bronze_lake, landing=landing), progress=False)
    lakes = {}
    for engine in ("embedded", "classic"):
        lakes[engine] = tmp_path / engine
        lakes[engine].mkdir()
        (lakes[engine] / "bronze").symlink_to(bronze_lake / "bronze")
        _run(engine, lakes[engine])
    compared = 0
    for key, c in contracts.load_all().items():
        if c.layer not in ("silver", "gold") or c.name == "tray_training_set":
            continue
        sail, jvm = _table(lakes["embedded"], c.layer, c.name), _table(lakes["classic"], c.layer, c.name)
        assert sail == jvm, f"{key}: Sail and JVM Spark differ"
        compared += len(sail)
    assert compared > 1000

"""Pipeline benchmark: full `run` (ingest, silver, gold, publish) vs a hand-written DuckDB reference that
computes segment_insights from the same landing files (and must agree), plus the same silver+gold jobs on
classic JVM Spark local mode (smaller input, Parquet storage since delta-spark jars cannot be fetched)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from storylake import lake, merge_on_read
from storylake.settings import Settings
from toolkit.bench.ingest import ensure_landing
from toolkit.bench.measure import measure
from toolkit.bench.reference import COMPARED, reference_segment_insights

log = logging.getLogger(__name__)
GEN_START = datetime(2026, 11, 1, tzinfo=UTC)
AS_OF = GEN_START + timedelta(days=1, hours=1)


def mismatches(reference: Any, settings: Settings) -> int:
    """Rows that differ (either direction) between the reference and gold.segment_insights (as its readers see it:
    each segment's latest restated row, storylake/latest_rows.py)."""
    gold = merge_on_read.read_table(settings, "gold.segment_insights", ["segment_id", *COMPARED])
    cols = ", ".join(["segment_id", *COMPARED])
    con = duckdb.connect()
    con.register("ref", reference)
    con.register("gold", gold)
    row = con.execute(
        f"SELECT (SELECT count(*) FROM (SELECT {cols} FROM ref EXCEPT SELECT {cols} FROM gold)) + "  # noqa: S608
        f"(SELECT count(*) FROM (SELECT {cols} FROM gold EXCEPT SELECT {cols} FROM ref))"  # constant columns
    ).fetchone()
    return int(row[0]) if row else -1


# Poll and quiz option counts recomputed by DuckDB from silver (responses before as_of, votes outside the
# options not counted); a consistency check of gold.sticker_results at scale, where a Sail map-lookup bug
# once gave some stickers another sticker's counts.
_OPTION_COUNTS_SQL = """
WITH votes AS (
    SELECT sticker_id, option_index, count(*) AS n FROM responses
    WHERE option_index IS NOT NULL AND responded_at < $1 GROUP BY ALL),
cells AS (
    SELECT g.sticker_id, unnest(range(len(g.options))) AS pos, unnest(g.option_counts) AS got
    FROM gold g WHERE g.sticker_type IN ('poll', 'quiz'))
SELECT count(*) FROM (
    SELECT c.sticker_id FROM cells c LEFT JOIN votes v ON v.sticker_id = c.sticker_id AND v.option_index = c.pos
    GROUP BY c.sticker_id HAVING bool_or(coalesce(v.n, 0) <> c.got))
"""


def option_count_mismatches(settings: Settings, as_of: datetime) -> int:
    """Choice stickers whose gold option_counts differ from the votes in silver.sticker_responses."""
    con = duckdb.connect()
    con.register("gold", lake.read_arrow(settings.table_path("gold", "sticker_results"),
                                          ["sticker_id", "sticker_type", "options", "option_counts"]))
    con.register("responses", lake.read_arrow(settings.table_path("silver", "sticker_responses"),
                                               ["sticker_id", "option_index", "responded_at"]))
    row = con.execute(_OPTION_COUNTS_SQL, [as_of]).fetchone()
    return int(row[0]) if row else -1


def bench_pipeline(work: Path, *, views: int, users: int, jvm_views: int, seed: int = 7) -> dict[str, Any]:
    from pipeline.run import run_pipeline

    landing = work / f"landing-{views}"
    ensure_landing(landing, views=views, users=users, seed=seed)
    settings = Settings(lake=work / "lake", landing=landing)
    if settings.lake.exists():
        shutil.rmtree(settings.lake)
    with measure() as full:
        report = run_pipeline(settings, AS_OF)
    with measure() as ref_m:
        ref = reference_segment_insights(landing, AS_OF, threads=os.cpu_count())
    diff = mismatches(ref, settings)
    result: dict[str, Any] = {
        "views_requested": views,
        "landing_lines": report.ingest.lines if report.ingest else None,
        "segments": ref.num_rows,
        "storylake_seconds": round(full.seconds, 1),
        "storylake_peak_rss_mb": round(full.peak_rss_mb),
        "steps_seconds": {s.step: round(s.seconds, 1) for s in report.steps},
        "steps_peak_rss_mb": {
            s.step: round(full.peak_between_mb(s.started, s.started + s.seconds)) for s in report.steps
        },
        "duckdb_reference_seconds": round(ref_m.seconds, 1),
        "duckdb_reference_peak_rss_mb": round(ref_m.peak_rss_mb),
        "ratio_vs_duckdb": round(full.seconds / ref_m.seconds, 2),
        "segment_insights_mismatched_rows": diff,
        "sticker_option_counts_mismatched_rows": option_count_mismatches(settings, AS_OF),
    }
    if jvm_views:
        result["jvm_comparison"] = _jvm_comparison(work, views=jvm_views, users=min(users, 50_000), seed=seed)
    return result


def _jvm_comparison(work: Path, *, views: int, users: int, seed: int) -> dict[str, Any]:
    """Silver+gold on Sail vs classic JVM Spark local[2] over the same bronze tables."""
    from jobs.engine import spark_session
    from jobs.gold import build_gold
    from jobs.ingest import ingest
    from jobs.silver import build_silver

    landing = work / f"landing-{views}"
    ensure_landing(landing, views=views, users=users, seed=seed)
    sail = Settings(lake=work / "lake-small", landing=landing)
    if sail.lake.exists():
        shutil.rmtree(sail.lake)
    ingest(sail, progress=False)
    with spark_session(sail) as spark:
        t0 = time.perf_counter()
        build_silver(spark, sail, AS_OF)
        build_gold(spark, sail, AS_OF)
        sail_s = time.perf_counter() - t0
    jvm_lake = work / "lake-small-jvm"
    if jvm_lake.exists():
        shutil.rmtree(jvm_lake)
    jvm_lake.mkdir(parents=True)
    (jvm_lake / "bronze").symlink_to((sail.lake / "bronze").resolve())
    env = {**os.environ, "STORYLAKE_ENGINE": "classic", "STORYLAKE_STORAGE": "parquet",
           "STORYLAKE_LAKE": str(jvm_lake), "SPARK_MASTER": "local[2]"}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "toolkit.bench.jvm_run", AS_OF.isoformat()],
        env=env, capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"JVM run failed: {out.stderr[-2000:]}")
    jvm = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "views_requested": views,
        "sail_silver_gold_seconds": round(sail_s, 1),
        "jvm_silver_gold_seconds": round(jvm["seconds"], 1),
        "jvm_process_seconds_incl_startup": round(time.perf_counter() - t0, 1),
        "jvm_over_sail": round(jvm["seconds"] / sail_s, 1),
    }

"""Ingest benchmark: storylake ingest vs DuckDB's plain read_json -> Parquet on the same files."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import duckdb

from jobs.ingest import ingest
from jobs.ingest.run import discover
from storylake import contracts
from storylake.settings import Settings
from toolkit.bench.measure import measure

log = logging.getLogger(__name__)


def ensure_landing(landing: Path, *, views: int, users: int, seed: int) -> None:
    """Generate the benchmark's landing files once (deterministic for the arguments)."""
    marker = landing / f".generated-views{views}-users{users}-seed{seed}"
    if marker.exists():
        return
    if landing.exists():
        shutil.rmtree(landing)
    generate_apart(landing, users=users, days=1, seed=seed, views=views)
    marker.touch()


def generate_apart(root: Path, **options: Any) -> None:
    """toolkit.generate.generate(root, **options) in a child process: the generator's arrays leave with it, so the
    benchmark process, which then runs and measures the pipeline, does not carry them. The 10M views pipeline
    benchmark's peak RSS read 4.79 GB when it generated its landing files in its own process, 3.14 GB otherwise.

    The child writes into a folder of its own beside `root`, renamed to `root` once complete, and exits when its
    parent is gone: a benchmark stopped while it generated (a SIGTERM does not stop a pool's worker) once left its
    child writing, and that child's files mixed into the world the next benchmark generated at the same place."""
    partial = root.with_name(f".{root.name}.partial-{os.getpid()}")
    if partial.exists():
        shutil.rmtree(partial)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(_generate, partial, options, os.getpid()).result()
    if root.exists():
        shutil.rmtree(root)
    partial.rename(root)


def _generate(root: Path, options: dict[str, Any], parent: int) -> None:
    from toolkit.generate import generate

    threading.Thread(target=exit_without, args=(parent,), daemon=True, name="parent-watch").start()
    generate(root, **options)


def exit_without(parent: int, interval_s: float = 0.5) -> None:
    """Exit this process (at once, status 1) when process `parent` is no longer its parent (it exited: the child was
    handed to another)."""
    while os.getppid() == parent:
        time.sleep(interval_s)
    os._exit(1)


def duckdb_reference(landing: Path, out: Path) -> dict[str, Any]:
    """DuckDB reads every event type's JSON lines (errors ignored) and writes Parquet: the reference."""
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    rows = 0
    for et in contracts.event_types():
        pattern = landing / et / "**" / "*.jsonl"
        if not (landing / et).exists():
            continue
        target = out / f"{et}.parquet"
        con.sql(
            "SELECT * FROM read_json($p, format = 'newline_delimited', ignore_errors = true)",
            params={"p": str(pattern)},
        ).write_parquet(str(target))
        rows += int(con.execute("SELECT count(*) FROM read_parquet(?)", [str(target)]).fetchall()[0][0])
    return {"rows": rows}


def bench_ingest(
    work: Path, *, views: int, users: int = 200_000, seed: int = 7, workers: int | None = None
) -> dict[str, Any]:
    landing = work / f"landing-{views}"
    ensure_landing(landing, views=views, users=users, seed=seed)
    files = discover(landing, contracts.event_types())
    lines = 0
    for rel, *_ in files:
        with (landing / rel).open("rb") as fh:
            lines += sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 24), b""))
    nbytes = sum(f[2] for f in files)
    lake_dir = work / "lake-ingest"
    if lake_dir.exists():
        shutil.rmtree(lake_dir)
    settings = Settings(lake=lake_dir, landing=landing)
    with measure() as ours:
        report = ingest(settings, workers=workers, progress=True)
    assert report.lines == lines, f"ingest read {report.lines} lines, files hold {lines}"
    ref_dir = work / "duckdb_ref"
    if ref_dir.exists():
        shutil.rmtree(ref_dir)
    with measure() as ref:
        ref_out = duckdb_reference(landing, ref_dir)
    return {
        "files": len(files),
        "lines": lines,
        "bytes": nbytes,
        "views_requested": views,
        "storylake_seconds": round(ours.seconds, 2),
        "storylake_lines_per_s": round(lines / ours.seconds),
        "storylake_peak_rss_mb": round(ours.peak_rss_mb),
        "valid": report.valid,
        "quarantined": report.quarantined,
        "duckdb_seconds": round(ref.seconds, 2),
        "duckdb_lines_per_s": round(lines / ref.seconds),
        "duckdb_rows": ref_out["rows"],
        "ratio_vs_duckdb": round(ours.seconds / ref.seconds, 2),
    }

"""Incremental benchmark: the cost of one hourly run after 1, 3 and 7 days of history.

A world of `days + 1` days at `views_per_day` is generated once. One lake is then built up as the hourly DAG
builds it: each hour's landing files are ingested as their own batch (so bronze files hold one arrival hour, as
in production), and for each checkpoint N (1, 3, 7 days) a catch-up run processes silver/gold up to day N; then
the measured hourly run: the next hour's files land and `storylake run` (ingest, silver, gates, gold, publish)
runs as of that hour's end in a fresh process, as the hourly DAG's tasks do, timed per step with the peak RSS of
that process's tree (the engine's included); with `repeat`, the measured run is repeated on a copy of the lake from
before it and the median run reported. The ingest step of that run is
the time to ingest the hour's files alone. Between the catch-up and the measured run the daily maintenance DAG's
steps run as in production: retention by age as of the catch-up's end, then `maintain` (the restated insights'
fold, compaction, vacuum). By default the measured run is the first hour after it; `hours_since_maintenance` H
measures the H-th, the H - 1 before it run unmeasured (the lake then holds what a day's runs append until the next
maintenance folds or compacts it).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from storylake import increments
from storylake.clock import iso
from storylake.rules.arrival import arrival_hour
from storylake.settings import Settings
from toolkit.bench.ingest import generate_apart
from toolkit.bench.measure import measure

log = logging.getLogger(__name__)
GEN_START = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def ensure_world(root: Path, *, views_per_day: int, users: int, days: int, seed: int) -> Path:
    """Generate the world once (deterministic for the arguments)."""
    marker = root / f".generated-vpd{views_per_day}-users{users}-days{days}-seed{seed}"
    if marker.exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    generate_apart(root, users=users, days=days, seed=seed, views=views_per_day * days, start=GEN_START)
    marker.touch()
    return root


def _land(world: Path, landing: Path, start: datetime, end: datetime) -> int:
    """Copy the landing files whose hour folder lies in [start, end) (hard links when possible); returns how many."""
    n = 0
    for p in world.rglob("*.jsonl"):
        rel = p.relative_to(world)
        hour = arrival_hour(rel.as_posix())
        if hour is None or not start <= hour < end:
            continue
        dst = landing / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            try:
                dst.hardlink_to(p)
            except OSError:
                shutil.copy2(p, dst)
        n += 1
    return n


def hourly_run(settings: Settings, as_of: datetime, gate: bool) -> dict[str, Any]:
    """`storylake run` as of `as_of` (in a child process): wall time, steps (time.perf_counter() is the system's
    monotonic clock, so the parent attributes its RSS samples to them), and the publish's parts."""
    import time

    from jobs.quality import gate_hook
    from pipeline.run import run_pipeline
    from toolkit.cli import configure_logging

    configure_logging(settings.log_level)  # this process's job timings in the same log file
    t0 = time.perf_counter()
    report = run_pipeline(settings, as_of, progress=False, gate=gate_hook() if gate else None)
    return {
        "seconds": time.perf_counter() - t0,
        "started": t0,
        "steps": [{"step": s.step, "seconds": s.seconds, "started": s.started} for s in report.steps],
        "ingest_lines": report.ingest.lines if report.ingest else None,
        "publish_steps_seconds": _publish_steps_seconds(report),
        "publish_history": report.publish.history if report.publish else None,
    }


def _publish_steps_seconds(report: Any) -> dict[str, float] | None:
    """A pipeline report's publish steps' seconds (rounded), None without a publish."""
    return {k: round(v, 2) for k, v in report.publish.step_seconds.items()} if report.publish else None


def _measured_runs(settings: Settings, as_of: datetime, gate: bool, repeat: int) -> list[tuple[dict[str, Any], Any]]:
    """The measured hourly run `repeat` times on the same lake (a copy of the lake from before the first run is put
    back before each further run; the landing files stay: the ledger in the lake decides what ingest reads), each
    in a fresh process, as the hourly DAG's tasks or `storylake run` are: its peak RSS is its own process tree's,
    not this process's, which holds what the catch-up runs left. Each starts after os.sync(), so the kernel does not
    write back gigabytes of the catch-up's (or the copy's) pages during it. (report, measurement) per run, fastest
    first."""
    before = settings.lake.with_name(settings.lake.name + ".before-hour")
    if repeat > 1:
        if before.exists():
            shutil.rmtree(before)
        shutil.copytree(settings.lake, before)
    runs: list[tuple[dict[str, Any], Any]] = []
    try:
        for i in range(repeat):
            if i:
                shutil.rmtree(settings.lake)
                shutil.copytree(before, settings.lake)
            # what the catch-up, maintenance and the copies wrote reaches the disk now, not during the measured run
            os.sync()
            with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool, \
                    measure(include_self=False) as m:
                report = pool.submit(hourly_run, settings, as_of, gate).result()
            log.info("hourly run as of %s (%d of %d): %.1f s", iso(as_of), i + 1, repeat, report["seconds"])
            runs.append((report, m))
    finally:
        if before.exists():
            shutil.rmtree(before)
    return sorted(runs, key=lambda run: run[0]["seconds"])


def _unmeasured(report: Any, as_of: datetime, seconds: float) -> dict[str, Any]:
    """An unmeasured hourly run's figures: its as_of, seconds, landing lines, steps' and publish steps' seconds."""
    return {
        "as_of": iso(as_of),
        "seconds": round(seconds, 1),
        "landing_lines": report.ingest.lines if report.ingest else None,
        "steps_seconds": {s.step: round(s.seconds, 1) for s in report.steps},
        "publish_steps_seconds": _publish_steps_seconds(report),
    }


def _cpu_figures(m: Any, report: dict[str, Any]) -> dict[str, Any]:
    """cpu_busy_core_seconds and cpu_busy_pct over the hourly run, steps_cpu_busy_pct over each step."""
    run = m.cpu_between(report["started"], report["started"] + report["seconds"])
    steps = {s["step"]: m.cpu_between(s["started"], s["started"] + s["seconds"]) for s in report["steps"]}
    return {
        "cpu_busy_core_seconds": round(run[0], 1) if run else None,
        "cpu_busy_pct": round(run[1]) if run else None,
        "steps_cpu_busy_pct": {step: round(busy[1]) if busy else None for step, busy in steps.items()},
    }


def bench_incremental(
    work: Path, *, views_per_day: int, users: int, checkpoints: tuple[int, ...] = (1, 3, 7), seed: int = 7,
    gate: bool = True, repeat: int = 1, hours_since_maintenance: int = 1,
) -> dict[str, Any]:
    """See the module docstring. `repeat`: the measured run of each checkpoint runs that many times on the same lake,
    and the median run (the faster of two) is reported with every run's time (this machine's speed varies by up to
    +-15% from run to run). `hours_since_maintenance`: the measured run is the hourly run that many hours after the
    daily maintenance (1: the first; the ones before it run unmeasured, one per hour, as the hourly DAG runs them):
    what the runs append between two maintenances (restated insights, grown Seen By pairs) is then in the lake."""
    if not 1 <= hours_since_maintenance <= 24:
        raise ValueError(f"hours_since_maintenance must be 1-24 (the world has one day after the last checkpoint), "
                         f"got {hours_since_maintenance}")
    from jobs.quality import gate_hook
    from pipeline import steps
    from pipeline.run import run_pipeline

    days = max(checkpoints) + 1
    world = ensure_world(work / f"world-{views_per_day}-{days}d", views_per_day=views_per_day, users=users,
                         days=days, seed=seed)
    settings = Settings(lake=work / "lake-incremental", landing=work / "landing-incremental")
    for p in (settings.lake, settings.landing):
        if p.exists():
            shutil.rmtree(p)
    hook = gate_hook() if gate else None
    landed_until = GEN_START
    results: list[dict[str, Any]] = []
    from jobs.ingest import ingest

    for n in sorted(checkpoints):
        history_end = GEN_START + n * DAY
        files, hour = 0, landed_until
        while hour < history_end:  # one ingest batch per arrival hour, as the hourly DAG commits them
            files += _land(world, settings.landing, hour, hour + HOUR)
            ingest(settings, progress=False)
            hour += HOUR
        log.info("history: %d landing files up to %s, catch-up run", files, iso(history_end))
        with measure() as catch_up:
            run_pipeline(settings, history_end, publish=True, progress=False, gate=hook)
        # the daily maintenance DAG: retention by age (silver.segment_viewers keeps 2 days, ...), then compaction,
        # then the serving history files of today's and tomorrow's publishes written ahead
        retention = steps.retention(settings, history_end)
        steps.maintain(settings)
        steps.prepare_history(settings, history_end)
        hour = history_end
        before: list[dict[str, Any]] = []
        for _ in range(hours_since_maintenance - 1):  # the hourly runs before the measured one
            _land(world, settings.landing, hour, hour + HOUR)
            hour += HOUR
            with measure() as unmeasured:
                done = run_pipeline(settings, hour, publish=True, progress=False, gate=hook)
            log.info("hourly run as of %s (not measured): %.1f s", iso(hour), unmeasured.seconds)
            before.append(_unmeasured(done, hour, unmeasured.seconds))
        hour_files = _land(world, settings.landing, hour, hour + HOUR)
        runs = _measured_runs(settings, hour + HOUR, gate, repeat)
        report, m = runs[(len(runs) - 1) // 2]  # the (lower) median run: its steps and peak are the figures
        landed_until = hour + HOUR
        inc = increments.last(settings)
        run_steps = report["steps"]
        results.append({
            "history_days": n,
            "hours_since_maintenance": hours_since_maintenance,
            "catch_up_seconds": round(catch_up.seconds, 1),
            "hour_landing_files": hour_files,
            "hour_landing_lines": report["ingest_lines"],
            "hourly_run_seconds": round(report["seconds"], 1),
            "hourly_run_seconds_runs": [round(r["seconds"], 1) for r, _ in runs],
            "peak_rss_mb_runs": [round(run_m.peak_rss_mb) for _, run_m in runs],
            "hour_landing_lines_runs": [r["ingest_lines"] for r, _ in runs],
            "steps_seconds": {s["step"]: round(s["seconds"], 1) for s in run_steps},
            "peak_rss_mb": round(m.peak_rss_mb),
            "steps_peak_rss_mb": {s["step"]: round(m.peak_between_mb(s["started"], s["started"] + s["seconds"]))
                                  for s in run_steps},
            # how busy the machine's cores were over the run (its own start to end) and each step: near 100% the run
            # is bound by the work it does, not by waiting (then lanes or overlapping steps cannot make it shorter,
            # only less work can); None for a span shorter than the sampling interval
            **_cpu_figures(m, report),
            "publish_steps_seconds": report["publish_steps_seconds"],
            "publish_history": report["publish_history"],
            "retention_rows_removed": {t.table: t.rows_removed for t in retention.tables if t.rows_removed},
            "new_bronze_rows": inc.new_rows if inc else None,
            "silver_horizon": iso(inc.horizon) if inc and inc.horizon else None,
            "gold_horizon": iso(inc.gold_horizon) if inc and inc.gold_horizon else None,
            # the hourly runs between the maintenance and the measured one (in this process: their seconds include
            # no engine start; their peak is not measured), each with its steps: what the day's hours cost
            "hours_before": before,
        })
        log.info("after %d days: hourly run %.1f s", n, m.seconds)
    first, last = results[0]["hourly_run_seconds"], results[-1]["hourly_run_seconds"]
    # the generated world ramps up from an empty first day, so the checkpoints' hours do not carry the same number of
    # landing lines: the cost per line tells history's effect from the hour's volume (the bar is the raw ratio)
    per_line = [r["hourly_run_seconds"] / r["hour_landing_lines"] * 1000 if r["hour_landing_lines"] else None
                for r in results]
    return {
        "views_per_day": views_per_day,
        "users": users,
        "checkpoints": results,
        "ratio_last_vs_first": round(last / first, 2) if first else None,
        "ms_per_landing_line": [round(x, 3) if x is not None else None for x in per_line],
        "ratio_per_line_last_vs_first": round(per_line[-1] / per_line[0], 2)
        if per_line[0] and per_line[-1] else None,
    }

"""`storylake demo`: one command from nothing to a published snapshot, with a printed summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from storylake.settings import Settings

DEMO_START = datetime(2026, 11, 1, tzinfo=UTC)


def run_demo(settings: Settings, *, users: int, seed: int, console: Console) -> dict[str, Any]:
    """Generate a day of events, run ingest -> silver -> gold -> publish, print what came out."""
    from pipeline.run import run_pipeline
    from toolkit.generate import generate

    console.rule("[bold]storylake demo")
    console.print(f"landing: {settings.landing}   lake: {settings.lake}   engine: {settings.engine}")
    marker = settings.landing / f".demo-users{users}-seed{seed}"
    if marker.exists():
        console.print(f"reusing the landing files generated earlier ({marker.name}); ingest skips known files")
    else:
        gen = generate(settings.landing, users=users, days=1, seed=seed, start=DEMO_START)
        marker.touch()
        console.print(f"generated {sum(gen.lines_per_type.values()):,} landing lines for {users:,} users "
                      f"(seed {seed})")
    as_of = DEMO_START + timedelta(days=1, hours=1)
    report = run_pipeline(settings, as_of)
    _print_steps(console, report)
    _print_tables(console, settings)
    _print_quarantine(console, settings)
    summary: dict[str, Any] = {"as_of": as_of, "run_id": report.run_id}
    summary.update(_print_serving(console, settings, as_of))
    return summary


def _print_steps(console: Console, report: Any) -> None:
    t = Table(title=f"pipeline {report.run_id} (as of {report.as_of:%Y-%m-%d %H:%M}Z)")
    t.add_column("step")
    t.add_column("seconds", justify="right")
    t.add_column("rows", justify="right")
    for s in report.steps:
        t.add_row(s.step, f"{s.seconds:.1f}", f"{sum(s.rows.values()):,}")
    console.print(t)


def _print_tables(console: Console, settings: Settings) -> None:
    from jobs.spark_io import lake_rows
    from storylake import contracts

    t = Table(title="tables")
    t.add_column("table")
    t.add_column("rows", justify="right")
    for key in sorted(contracts.load_all()):
        layer, name = key.split(".")
        if layer == "landing":
            continue
        if (settings.table_path(layer, name) / "_delta_log").exists():
            t.add_row(key, f"{lake_rows(settings, layer, name):,}")
    console.print(t)


def _print_quarantine(console: Console, settings: Settings) -> None:
    import duckdb

    from storylake import lake

    q = lake.read_arrow(settings.table_path("ops", "quarantine"), ["stage", "rule"])
    if q is None:
        return
    rows = duckdb.sql("SELECT stage, rule, count(*) AS n FROM q GROUP BY ALL ORDER BY n DESC").fetchall()
    t = Table(title="quarantine by reason")
    for col in ("stage", "rule", "rows"):
        t.add_column(col)
    for stage, rule, n in rows:
        t.add_row(stage, rule, f"{n:,}")
    console.print(t)


def _print_serving(console: Console, settings: Settings, now: datetime) -> dict[str, Any]:
    import json

    from serving import cli as serving_cli
    from serving import summary

    top = summary.top_creators(settings, limit=5)
    t = Table(title="top creators (gold.story_insights)")
    for col in ("author", "stories", "reach", "impressions", "exits", "replies"):
        t.add_column(col, justify="right")
    for r in top:
        t.add_row(*(f"{r[k]:,}" for k in ("author_id", "stories", "reach", "impressions", "exits", "replies")))
    console.print(t)
    out: dict[str, Any] = {"top_creators": top}
    if top:
        viewer = summary.sample_viewer(settings, now)
        if viewer is not None:
            tray = json.loads(serving_cli.tray_json(settings, viewer, now, 5, None))
            console.print(f"[bold]tray of viewer {viewer} at {now:%Y-%m-%dT%H:%MZ}[/bold] (first 5 rings)")
            console.print_json(data=tray)
            out["tray"] = tray
        seg = summary.sample_segment(settings, now)
        if seg is not None:
            segment_id, author_id = seg
            page = json.loads(serving_cli.seen_by_json(settings, segment_id, author_id, now, 5, None))
            console.print(f"[bold]Seen By of segment {segment_id} (as its author {author_id})[/bold]")
            console.print_json(data=page)
            out["seen_by"] = page
    return out

"""The `storylake` command line: one entry point for every user-facing action."""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from storylake.clock import utc
from storylake.errors import NotFoundError
from storylake.settings import Settings, SettingsError
from toolkit.exits import EXIT_FAILURE

app = typer.Typer(
    help="storylake: Stories events -> Delta bronze/silver/gold -> serving snapshot, dashboards.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
contracts_app = typer.Typer(help="Data contracts (data_contracts/*.yaml).", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks (figures for the README's performance table).", no_args_is_help=True)
app.add_typer(contracts_app, name="contracts")
app.add_typer(bench_app, name="bench")
console = Console()
err = Console(stderr=True)


Lake = Annotated[Path | None, typer.Option("--lake", help="Lake root folder (env STORYLAKE_LAKE).")]
Landing = Annotated[Path | None, typer.Option("--landing", help="Landing folder (env STORYLAKE_LANDING).")]
Engine = Annotated[
    str | None, typer.Option("--engine", help="embedded | remote | classic (env STORYLAKE_ENGINE).")
]
Remote = Annotated[
    str | None, typer.Option("--spark-remote", help="Spark Connect URL sc://host:port (env STORYLAKE_SPARK_REMOTE).")
]


def settings_of(
    lake: Path | None, landing: Path | None, engine: str | None, remote: str | None, **overrides: object
) -> Settings:
    """The command's settings: the environment (STORYLAKE_*) with the options given on the command line over it
    (Settings.resolve; None = option not given)."""
    return Settings.resolve(overrides={"lake": lake, "landing": landing, "engine": engine, "spark_remote": remote,
                                       **overrides})


def existing_lake(settings: Settings) -> Settings:
    """`settings` when its lake holds storylake tables; NotFoundError (exit 4, one line) otherwise, before anything
    is created there (a mistyped --lake must not become a new empty lake)."""
    if not any(p.is_dir() for p in settings.lake.glob("*/*/_delta_log")):
        raise NotFoundError(f"no storylake tables under {settings.lake}: check --lake (or STORYLAKE_LAKE), or run "
                            "`storylake run` first")
    return settings


def parse_time(value: str | None, name: str) -> datetime | None:
    """ISO-8601 -> aware UTC datetime (naive values are taken as UTC)."""
    if value is None:
        return None
    try:
        return utc(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"{name}: {value!r} is not an ISO-8601 time (e.g. 2026-11-02T00:00:00Z)") from exc


# --- contracts ---------------------------------------------------------------------------------


@contracts_app.command("lint")
def contracts_lint() -> None:
    """Validate every contract in data_contracts/ (types, keys, SLAs, descriptions)."""
    from storylake import contracts

    problems = contracts.lint()
    if problems:
        for p in problems:
            err.print(f"[red]x[/red] {p}")
        raise typer.Exit(EXIT_FAILURE)
    n = len(contracts.load_all())
    console.print(f"[green]ok[/green] {n} contracts valid ({contracts.CONTRACTS_DIR})")


# --- generate / ingest -------------------------------------------------------------------------


@app.command()
def generate(
    out: Annotated[Path | None, typer.Option("--out", help="Landing folder to write (default: --landing).")] = None,
    users: Annotated[int, typer.Option(min=2, help="Number of users.")] = 2000,
    days: Annotated[int, typer.Option(min=1, help="Days of activity.")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed (same seed -> same files).")] = 7,
    views: Annotated[int | None, typer.Option(help="Approximate total segment_view lines.")] = None,
    start: Annotated[str, typer.Option(help="Start of the window (UTC).")] = "2026-11-01T00:00:00Z",
    fault_rate: Annotated[
        list[str] | None, typer.Option("--fault-rate", help="NAME=VALUE, e.g. malformed_json=0.01 (repeatable).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace landing folders already in --out.")] = False,
    lake: Lake = None,
    landing: Landing = None,
    engine: Engine = None,
    spark_remote: Remote = None,
) -> None:
    """Write deterministic synthetic landing events (with realistic faults)."""
    import json

    from toolkit.generate import FaultRates
    from toolkit.generate import generate as run_generate

    s = settings_of(lake, landing, engine, spark_remote)
    try:
        rates = FaultRates().with_overrides(fault_rate or [])
    except ValueError as exc:
        raise typer.BadParameter(f"--fault-rate: {exc}") from exc
    start_t = parse_time(start, "--start")
    assert start_t is not None
    report = run_generate(
        out or s.landing, users=users, days=days, seed=seed, start=start_t, views=views, faults=rates,
        overwrite=overwrite,
    )
    summary = {k: v for k, v in report.to_dict().items() if k != "files"}
    console.print_json(json.dumps(summary, default=str))


@app.command()
def ingest(
    lake: Lake = None,
    landing: Landing = None,
    engine: Engine = None,
    spark_remote: Remote = None,
    workers: Annotated[int | None, typer.Option(help="Validation worker processes (default: cores).")] = None,
) -> None:
    """Ingest new landing files into bronze Delta tables; bad lines go to quarantine with a reason."""
    from jobs.ingest import ingest as run_ingest

    s = settings_of(lake, landing, engine, spark_remote)
    report = run_ingest(s, workers=workers)
    print_ingest(report)


def print_ingest(report: object) -> None:
    from jobs.ingest import IngestReport

    assert isinstance(report, IngestReport)
    if not report.batches:
        console.print("ingest: no new landing files")
        return
    t = Table(title="ingest batches")
    for col in ("batch", "files", "lines", "valid", "quarantined", "seconds", "lines/s"):
        t.add_column(col, justify="right")
    for b in report.batches:
        t.add_row(
            b.batch_id + (" (resumed)" if b.resumed else ""), f"{b.files:,}", f"{b.lines:,}", f"{b.valid:,}",
            f"{b.quarantined:,}", f"{b.duration_s:.1f}", f"{b.lines / max(b.duration_s, 1e-9):,.0f}",
        )
    console.print(t)
    q = Table(title="quarantined lines by rule")
    q.add_column("rule")
    q.add_column("lines", justify="right")
    for rule, n in sorted(report.quarantine_by_rule.items(), key=lambda kv: -kv[1]):
        q.add_row(rule, f"{n:,}")
    if report.quarantine_by_rule:
        console.print(q)


# --- pipeline ----------------------------------------------------------------------------------

AsOf = Annotated[str | None, typer.Option("--as-of", help="Use events with event_time < T (ISO-8601, default now).")]
PublishAsOf = Annotated[str | None, typer.Option(
    "--as-of", help="The snapshot's instant (ISO-8601; default and minimum: the newest finished run's as-of).")]


@app.command()
def run(
    as_of: AsOf = None,
    lake: Lake = None,
    landing: Landing = None,
    engine: Engine = None,
    spark_remote: Remote = None,
    no_publish: Annotated[bool, typer.Option("--no-publish", help="Stop after gold.")] = False,
    gate: Annotated[
        bool, typer.Option("--gate/--no-gate", help="Great Expectations gate after silver and gold.")
    ] = True,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Recompute silver and gold from all of bronze (a backfill after "
                           "a rule change); without it a run processes what arrived since the last good run.")
    ] = False,
) -> None:
    """Ingest, then silver and gold jobs on every event before --as-of, then publish the serving snapshot."""
    from jobs.quality import gate_hook
    from pipeline.run import run_pipeline

    s = settings_of(lake, landing, engine, spark_remote)
    t = parse_time(as_of, "--as-of") or datetime.now(UTC)
    report = run_pipeline(s, t, publish=not no_publish, gate=gate_hook() if gate else None, full_refresh=full_refresh)
    if report.ingest is not None:
        print_ingest(report.ingest)
    table = Table(title=f"run {report.run_id} as of {t.isoformat()}")
    for col in ("step", "seconds", "rows"):
        table.add_column(col, justify="right")
    for st in report.steps:
        table.add_row(st.step, f"{st.seconds:.1f}", f"{sum(st.rows.values()):,}")
    console.print(table)


@bench_app.command("ingest")
def bench_ingest(
    views: Annotated[int, typer.Option(help="Approximate segment_view lines to generate.")] = 10_000_000,
    users: Annotated[int, typer.Option(help="Users in the generated world.")] = 200_000,
    work: Annotated[Path, typer.Option(help="Scratch folder (landing is generated once and reused).")] = Path(
        ".storylake/bench"
    ),
    workers: Annotated[int | None, typer.Option(help="Validation worker processes.")] = None,
) -> None:
    """Ingest throughput and peak RSS, against DuckDB read_json -> Parquet on the same files."""
    import json

    from toolkit.bench.ingest import bench_ingest as run_bench

    result = run_bench(work, views=views, users=users, workers=workers)
    console.print_json(json.dumps(result))


@bench_app.command("pipeline")
def bench_pipeline(
    views: Annotated[int, typer.Option(help="Approximate segment_view lines to generate.")] = 10_000_000,
    users: Annotated[int, typer.Option(help="Users in the generated world.")] = 200_000,
    jvm_views: Annotated[int, typer.Option(help="Views for the JVM Spark comparison (0 = skip).")] = 1_000_000,
    work: Annotated[Path, typer.Option(help="Scratch folder (landing shared with bench ingest).")] = Path(
        ".storylake/bench"
    ),
) -> None:
    """Full run time and peak RSS vs a DuckDB reference (must agree), and Sail vs JVM Spark local mode."""
    import json

    from toolkit.bench.pipeline import bench_pipeline as run_bench

    console.print_json(json.dumps(run_bench(work, views=views, users=users, jvm_views=jvm_views)))


@bench_app.command("incremental")
def bench_incremental(
    views_per_day: Annotated[int, typer.Option(help="Approximate segment_view lines per day.")] = 1_000_000,
    users: Annotated[int, typer.Option(help="Users in the generated world.")] = 50_000,
    checkpoints: Annotated[str, typer.Option(help="Days of history before each measured hourly run.")] = "1,3,7",
    gate: Annotated[bool, typer.Option("--gate/--no-gate", help="Quality gates in every run.")] = True,
    work: Annotated[Path, typer.Option(help="Scratch folder (the world is generated once and reused).")] = Path(
        ".storylake/bench"
    ),
    repeat: Annotated[int, typer.Option(min=1, help="Runs of each measured hour, on copies of the same lake: the "
                                                    "median is reported, with every run's time.")] = 1,
    hours_since_maintenance: Annotated[int, typer.Option(
        min=1, max=24, help="The measured run is the hourly run this many hours after the daily maintenance (the "
                            "ones before it run unmeasured).")] = 1,
) -> None:
    """Time and peak RSS of one hourly run after N days of history (per step), for each N."""
    import json

    from toolkit.bench.incremental import bench_incremental as run_bench

    try:
        days = tuple(int(x) for x in checkpoints.split(","))
    except ValueError:
        raise typer.BadParameter(f"--checkpoints must be comma-separated whole days, got {checkpoints!r}") from None
    result = run_bench(work, views_per_day=views_per_day, users=users, checkpoints=days, gate=gate, repeat=repeat,
                       hours_since_maintenance=hours_since_maintenance)
    console.print_json(json.dumps(result))


# --- serving -----------------------------------------------------------------------------------

Now = Annotated[str | None, typer.Option("--now", help="Evaluation time (ISO-8601; default: the snapshot's as-of).")]
Limit = Annotated[int, typer.Option("--limit", min=1, max=500, help="Page size.")]
Cursor = Annotated[str | None, typer.Option("--cursor", help="Opaque cursor from the previous page.")]
As = Annotated[int, typer.Option("--as", help="Requesting user id (permission checks).")]


def _now_or_snapshot(settings: Settings, now: str | None) -> datetime:
    from serving.summary import snapshot_as_of

    return parse_time(now, "--now") or snapshot_as_of(settings)


@app.command()
def publish(as_of: PublishAsOf = None, lake: Lake = None, landing: Landing = None, engine: Engine = None,
            spark_remote: Remote = None) -> None:
    """Build a serving snapshot from silver/gold and swap it in atomically (as of the newest finished run by
    default)."""
    from serving.cli import publish_report

    s = existing_lake(settings_of(lake, landing, engine, spark_remote))
    console.print(str(publish_report(s, parse_time(as_of, "--as-of"))))


@app.command()
def tray(
    viewer: Annotated[int, typer.Argument(help="Viewer user id.")],
    now: Now = None, limit: Limit = 50, cursor: Cursor = None,
    lake: Lake = None, landing: Landing = None, engine: Engine = None, spark_remote: Remote = None,
) -> None:
    """The viewer's ranked story tray (JSON): own ring first, unseen first, then by score."""
    from serving.cli import tray_json

    s = settings_of(lake, landing, engine, spark_remote)
    print(tray_json(s, viewer, _now_or_snapshot(s, now), limit, cursor))


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Worker processes.")] = 1,
    now: Now = None, lake: Lake = None, landing: Landing = None,
) -> None:
    """The HTTP API (trays, Seen By, insights, seen receipts) over the published snapshot; see README "HTTP API"."""
    from serving.web.server import serve as run_server

    s = settings_of(lake, landing, None, None, now=parse_time(now, "--now"))
    err.print(f"storylake API on http://{host}:{port} ({workers} worker(s)); lake {s.lake}, landing {s.landing}"
              + (f", clock pinned at {s.now.isoformat()}" if s.now else ""))
    run_server(s, host=host, port=port, workers=workers)


@app.command()
def token(
    user: Annotated[int, typer.Argument(help="Storylake user id (the token's subject).")],
    ttl: Annotated[int, typer.Option("--ttl", min=1, help="Validity in seconds.")] = 3600,
    lake: Lake = None,
) -> None:
    """Mint a development bearer token (HS256, STORYLAKE_API_SECRET or the lake's development secret)."""
    from serving.web.auth import mint

    s = settings_of(lake, None, None, None)
    try:
        print(mint(s, user, ttl))
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


@app.command("seen-by")
def seen_by(
    segment: Annotated[int, typer.Argument(help="Segment id.")],
    as_user: As, now: Now = None, limit: Limit = 50, cursor: Cursor = None,
    lake: Lake = None, landing: Landing = None, engine: Engine = None, spark_remote: Remote = None,
) -> None:
    """Who saw a segment (JSON), newest first; only its author may ask (exit 3 otherwise, 4 if unknown)."""
    from serving.cli import seen_by_json

    s = settings_of(lake, landing, engine, spark_remote)
    print(seen_by_json(s, segment, as_user, _now_or_snapshot(s, now), limit, cursor))


@app.command()
def insights(
    author: Annotated[int, typer.Argument(help="Author user id.")],
    as_user: As, now: Now = None,
    lake: Lake = None, landing: Landing = None, engine: Engine = None, spark_remote: Remote = None,
) -> None:
    """An author's segment, story and daily insights and sticker results (JSON); the author only."""
    from serving.cli import insights_json

    s = settings_of(lake, landing, engine, spark_remote)
    print(insights_json(s, author, as_user, _now_or_snapshot(s, now)))


@app.command()
def expire(
    now: Annotated[str | None, typer.Option("--now", help="Cleanup time (ISO-8601; default now).")] = None,
    lake: Lake = None, landing: Landing = None, engine: Engine = None, spark_remote: Remote = None,
) -> None:
    """List the media of expired, non-archived segments (past the cleanup grace) in ops.media_deletions; deletes
    nothing from the lake (serving hides expired segments and old Seen By lists at read time)."""
    import json

    from serving.cli import expire_report

    s = existing_lake(settings_of(lake, landing, engine, spark_remote))
    console.print_json(json.dumps(expire_report(s, parse_time(now, "--now") or datetime.now(UTC)), default=str))


@app.command()
def retention(
    now: Annotated[str | None, typer.Option("--now", help="Retention time (ISO-8601; default now).")] = None,
    lake: Lake = None, landing: Landing = None, engine: Engine = None, spark_remote: Remote = None,
) -> None:
    """Remove the rows older than each contract's retention (counted back from the lake's newest finished run when
    that is earlier than --now); bronze only once aggregated and past the lateness window. Recorded in
    ops.retention_runs; `storylake maintain` then vacuums the removed files."""
    import json

    from jobs.retention import enforce_retention

    s = existing_lake(settings_of(lake, landing, engine, spark_remote))
    report = enforce_retention(s, parse_time(now, "--now") or datetime.now(UTC))
    console.print_json(json.dumps(report.as_dict(), default=str))


@app.command("export-features")
def export_features(
    out: Annotated[Path, typer.Option("--out", help="Output folder (Parquet + manifest.json).")],
    as_of: AsOf = None,
    lake: Lake = None, landing: Landing = None, engine: Engine = None, spark_remote: Remote = None,
) -> None:
    """Point-in-time tray training set for ranking teams: one row per (viewer, ended story)."""
    import json
    from dataclasses import asdict, is_dataclass

    from jobs.engine import spark_session
    from jobs.export import export_features as run_export

    s = existing_lake(settings_of(lake, landing, engine, spark_remote))
    t = parse_time(as_of, "--as-of") or datetime.now(UTC)
    with spark_session(s) as spark:
        manifest = run_export(spark, s, t, out)
    data = asdict(manifest) if is_dataclass(manifest) else manifest
    console.print_json(json.dumps(data, default=str))


@app.command()
def maintain(
    retention_hours: Annotated[int, typer.Option(help="Vacuum retention (>= 24).")] = 168,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would change.")] = False,
    lake: Lake = None, landing: Landing = None, engine: Engine = None, spark_remote: Remote = None,
) -> None:
    """Compact, checkpoint and vacuum every Delta table (delta-rs)."""
    import json

    from jobs.maintenance import maintain as maintain_lake

    s = existing_lake(settings_of(lake, landing, engine, spark_remote))
    report = maintain_lake(s, retention_hours=retention_hours, dry_run=dry_run)
    console.print_json(json.dumps(report.as_dict(), default=str))


@app.command("prepare-history")
def prepare_history(
    now: Annotated[str | None, typer.Option("--now", help="As of (ISO-8601; default now).")] = None,
    lake: Lake = None, landing: Landing = None, engine: Engine = None, spark_remote: Remote = None,
) -> None:
    """Write ahead the serving history files today's and tomorrow's publishes attach (the month file when a month
    leaves the cut's month, the first period after retention), so that no hourly publish copies them."""
    import json

    from serving.publish import prepare_ahead

    s = existing_lake(settings_of(lake, landing, engine, spark_remote))
    report = prepare_ahead(s, parse_time(now, "--now") or datetime.now(UTC))
    console.print_json(json.dumps(report.as_dict(), default=str))


@app.command()
def check(lake: Lake = None, landing: Landing = None, engine: Engine = None, spark_remote: Remote = None) -> None:
    """Check every Delta table: each data file present, whole and readable, with complete statistics (exit 1 when a
    table is unreadable; `storylake maintain` repairs missing statistics)."""
    import json

    from jobs.lake_health import table_health
    from jobs.maintenance import find_tables

    s = existing_lake(settings_of(lake, landing, engine, spark_remote))
    tables = [table_health(p, p.relative_to(s.lake).as_posix()) for p in find_tables(s.lake)]
    console.print_json(json.dumps([t.as_dict() for t in tables], default=str))
    bad = [t for t in tables if not t.ok]
    if bad:
        names = ", ".join(f"{t.table} ({t.error or f'{len(t.unreadable)} unreadable files'})" for t in bad)
        err.print(f"{len(bad)} of {len(tables)} tables unreadable: {names}")
        raise typer.Exit(EXIT_FAILURE)


quality_app = typer.Typer(help="Data-quality gate (Great Expectations suites generated from the contracts).",
                          no_args_is_help=True)
app.add_typer(quality_app, name="quality")


@quality_app.command("check")
def quality_check(
    layer: Annotated[str, typer.Option("--layer", help="silver or gold.")],
    run_id: Annotated[str | None, typer.Option("--run-id", help="Run id recorded in ops.quality_results.")] = None,
    no_docs: Annotated[bool, typer.Option("--no-docs", help="Skip building GX Data Docs.")] = False,
    lake: Lake = None, landing: Landing = None, engine: Engine = None, spark_remote: Remote = None,
) -> None:
    """Validate every table of a layer; exit 1 listing failed expectations and sample keys."""
    import json

    from jobs.quality import run_gate

    if layer not in ("silver", "gold"):
        raise typer.BadParameter(f"--layer must be silver or gold, got {layer!r}")
    s = settings_of(lake, landing, engine, spark_remote)
    rid = run_id or f"cli-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    report = run_gate(s, layer, rid, build_docs=not no_docs)
    console.print_json(json.dumps(report.as_dict(), default=str))


@app.command()
def dashboard(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    address: Annotated[str, typer.Option(help="Address to bind.")] = "localhost",
    headless: Annotated[bool, typer.Option(help="Do not open a browser.")] = False,
    now: Annotated[str | None, typer.Option("--now", help="The app's 'now' (default: the snapshot's as-of).")] = None,
    lake: Lake = None, landing: Landing = None, engine: Engine = None, spark_remote: Remote = None,
) -> None:
    """Streamlit dashboards over the published serving snapshot (creators and operators)."""
    from dashboards.launch import run_dashboard

    s = settings_of(lake, landing, engine, spark_remote, now=parse_time(now, "--now"))
    raise typer.Exit(run_dashboard(s, port=port, address=address, headless=headless))


@bench_app.command("serving")
def bench_serving(
    segments: Annotated[int, typer.Option(help="Segments in the synthetic snapshot.")] = 1_000_000,
    users: Annotated[int, typer.Option(help="Users.")] = 100_000,
    follows: Annotated[int, typer.Option(help="Authors followed by the benchmark viewer.")] = 1000,
    big_segment_viewers: Annotated[int, typer.Option(help="Viewers of the Seen By benchmark segment.")] = 100_000,
    queries: Annotated[int, typer.Option(help="Queries per measurement.")] = 500,
    work: Annotated[Path, typer.Option(help="Scratch folder.")] = Path(".storylake/bench/serving"),
    reuse: Annotated[bool, typer.Option("--reuse", help="Reuse a lake built by an earlier run.")] = False,
) -> None:
    """Publish time, tray and Seen By p50/p99 latency and queries/s on a >= 1M-segment snapshot."""
    import json

    from toolkit.bench.serving import bench_serving as run_bench

    result = run_bench(str(work), segments=segments, users=users, follows_per_viewer=follows,
                       big_segment_viewers=big_segment_viewers, queries=queries, reuse_lake=reuse)
    console.print_json(json.dumps(result, default=str))


@bench_app.command("history")
def bench_history(
    days: Annotated[int, typer.Option(help="Days of history in the synthetic lake (>= 36: a whole month).")] = 40,
    segments_per_day: Annotated[int, typer.Option(help="Segments (and segment insights) a day.")] = 165_000,
    authors_per_day: Annotated[int, typer.Option(help="Author-days of daily insights a day.")] = 29_000,
    users: Annotated[int, typer.Option(help="Users.")] = 50_000,
    work: Annotated[Path, typer.Option(help="Scratch folder.")] = Path(".storylake/bench/history"),
) -> None:
    """The hourly publish of the day a month leaves the cut's month, with and without the maintenance's
    prepare-history (the month's file written ahead)."""
    import json

    from toolkit.bench.history import bench_history as run_bench

    if days < 36:
        raise typer.BadParameter(f"--days {days}: at least 36, so that a whole month leaves the cut's month")
    result = run_bench(work, days=days, segments_per_day=segments_per_day, authors_per_day=authors_per_day,
                       users=users)
    console.print_json(json.dumps(result, default=str))


@bench_app.command("api")
def bench_api(
    segments: Annotated[int, typer.Option(help="Segments in the synthetic snapshot.")] = 1_250_000,
    workers: Annotated[int, typer.Option(help="Server worker processes.")] = 2,
    seconds: Annotated[int, typer.Option(help="Load time per route.")] = 20,
    work: Annotated[Path, typer.Option(help="Scratch folder.")] = Path(".storylake/bench/api"),
    reuse: Annotated[bool, typer.Option("--reuse", help="Reuse a lake built by an earlier run.")] = False,
) -> None:
    """The HTTP API under load (`hey`): tray, Seen By and seen receipts p50/p99 at fixed offered rates."""
    import json

    from toolkit.bench.api import bench_api as run_bench

    result = run_bench(work, segments=segments, workers=workers, seconds=seconds, reuse=reuse)
    console.print_json(json.dumps(result, default=str))


# --- demo --------------------------------------------------------------------------------------


@app.command()
def demo(
    lake: Lake = None,
    landing: Landing = None,
    engine: Engine = None,
    spark_remote: Remote = None,
    users: Annotated[int, typer.Option(min=2, help="Users in the generated world.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """End to end on the embedded default: generate a day of events, run the pipeline, print a summary."""
    from toolkit.demo import run_demo

    s = settings_of(lake, landing, engine, spark_remote)
    run_demo(s, users=users, seed=seed, console=console)


# --- entry point -------------------------------------------------------------------------------


OWN_LOGGERS = ("storylake", "jobs", "pipeline", "serving", "dashboards", "toolkit", "dags")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _LazyFileHandler(logging.FileHandler):
    """A FileHandler that creates its folder and file at the first record (a command that logs nothing to the file
    leaves nothing behind)."""

    def _open(self):  # type: ignore[no-untyped-def]
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


def configure_logging(level: str) -> None:
    """The console gets storylake's own records at `level` and anyone's warnings; every record at `level` (third-party
    INFO included: Great Expectations, Spark Connect, httpx, ...) also goes to the log file, STORYLAKE_LOG_FILE or
    .storylake/storylake.log."""
    root = logging.getLogger()
    root.setLevel(level)
    fmt = logging.Formatter(LOG_FORMAT)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(fmt)
    console.addFilter(lambda r: r.name.split(".")[0] in OWN_LOGGERS or r.levelno >= logging.WARNING)
    log_file = _LazyFileHandler(os.environ.get("STORYLAKE_LOG_FILE", ".storylake/storylake.log"), delay=True)
    log_file.setFormatter(fmt)
    root.handlers[:] = [console, log_file]


def main() -> None:
    """Console-script entry: known errors print one line and exit non-zero, never a traceback (unless
    STORYLAKE_DEBUG is set). The process ends through `_end` (see there)."""
    try:
        settings = Settings.from_env()
    except SettingsError:
        # Logging and debug then use their defaults; every command that needs settings resolves them again
        # (settings_of) and reports the bad value as its one-line error, the others (--help, contracts) still run.
        settings = Settings()
    configure_logging(settings.log_level)
    from toolkit.exits import exit_code_for

    try:
        app(standalone_mode=False)
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    except typer.Exit as exc:
        code = exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the CLI's single error boundary
        if settings.debug:
            raise
        code, message = exit_code_for(exc)
        err.print(f"error: {message}", highlight=False, soft_wrap=True)
    _end(code)


def _end(code: int | str | None) -> NoReturn:
    """Exit with `code` after the Python-level exit work (atexit handlers: logging's flush, multiprocessing's
    joins) but without the interpreter's native teardown: Arrow's dataset scanner threads (a Delta table read
    through deltalake's `to_pyarrow_table`) still alive when the C++ runtime is torn down abort the process
    ("terminate called without an active exception", SIGABRT) after the command has already printed its result
    (apache/arrow#34314, #45214; with deltalake 1.6 / pyarrow 26 a three-line read of a Delta table exits 134 in
    most tries here, and CI saw it once after a correct one-line error)."""
    import atexit

    if isinstance(code, str):
        err.print(code, highlight=False, soft_wrap=True)
        code = EXIT_FAILURE
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)

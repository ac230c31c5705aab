"""`storylake run`: ingest -> silver -> gold -> publish, each step timed and logged to ops.pipeline_runs."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from deltalake import write_deltalake

from storylake import contracts
from storylake.errors import StorylakeError
from storylake.settings import Settings
from storylake.writer_lock import holding_writer_lock

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)
STEPS = ("ingest", "silver", "gold", "publish")


class PipelineError(StorylakeError, RuntimeError):
    """A pipeline step failed; the message names the step."""


@dataclass
class StepResult:
    step: str
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)
    started: float = 0.0  # time.perf_counter() at the start (benchmarks attribute samples to steps)


@dataclass
class PipelineReport:
    run_id: str
    as_of: datetime
    steps: list[StepResult] = field(default_factory=list)
    ingest: Any = None
    publish: Any = None

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)


def record_step(
    settings: Settings, run_id: str, step: str, as_of: datetime | None, started: datetime, seconds: float,
    status: str, rows: int | None, detail: dict[str, Any],
) -> None:
    """Append one row to ops.pipeline_runs (the ops dashboard's run history)."""
    schema = contracts.get("ops.pipeline_runs").arrow_schema()
    row = {
        "run_id": run_id, "step": step, "as_of": as_of, "started_at": started,
        "finished_at": datetime.now(UTC), "duration_s": seconds, "status": status, "rows_written": rows,
        "detail": json.dumps(detail, default=str, sort_keys=True),
    }
    path = settings.table_path("ops", "pipeline_runs")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_deltalake(str(path), pa.Table.from_pylist([row], schema=schema), mode="append")


@contextmanager
def recorded(settings: Settings, run_id: str, name: str, as_of: datetime | None) -> Iterator[dict[str, int]]:
    """Record a step in ops.pipeline_runs: success with the rows the body puts in the yielded dict, or
    failure with the error, which is re-raised unchanged (a bookkeeping error never hides it)."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    rows: dict[str, int] = {}
    try:
        yield rows
    except BaseException as exc:
        try:
            record_step(settings, run_id, name, as_of, started, time.perf_counter() - t0, "failed", None,
                        {"error": f"{type(exc).__name__}: {exc}"[:4000]})
        except Exception:  # noqa: BLE001 - never hide the step's own error behind a bookkeeping one
            log.warning("could not record the failure of step %s in ops.pipeline_runs", name, exc_info=True)
        raise
    seconds = time.perf_counter() - t0
    log.info("step %s (%s): done in %.1fs (%d rows: %s)", name, run_id, seconds, sum(rows.values()),
             json.dumps(rows, sort_keys=True))
    record_step(settings, run_id, name, as_of, started, seconds, "success", sum(rows.values()), rows)


@contextmanager
def step(settings: Settings, report: PipelineReport, name: str) -> Iterator[StepResult]:
    """A recorded, timed pipeline step whose failure is wrapped in PipelineError naming the step."""
    t0 = time.perf_counter()
    result = StepResult(name, 0.0, started=t0)
    log.info("step %s: start (as_of %s)", name, report.as_of.isoformat())
    try:
        with recorded(settings, report.run_id, name, report.as_of) as rows:
            yield result
            rows.update(result.rows)
    except Exception as exc:
        raise PipelineError(f"step {name} failed: {type(exc).__name__}: {exc}") from exc
    result.seconds = time.perf_counter() - t0
    report.steps.append(result)


@holding_writer_lock("run")
def run_pipeline(
    settings: Settings,
    as_of: datetime,
    *,
    spark: SparkSession | None = None,
    publish: bool = True,
    progress: bool = True,
    gate: Callable[[SparkSession, Settings, str, datetime], object] | None = None,
    full_refresh: bool = False,
) -> PipelineReport:
    """Run every step for events with event_time < as_of. A session may be injected (tests, DAGs). Silver and
    gold are incremental after the first good run (jobs/horizon.py); `full_refresh` recomputes them from all of
    bronze (same tables)."""
    from jobs.ingest import ingest

    report = PipelineReport(run_id=f"run-{as_of:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}", as_of=as_of)

    def ingest_step() -> None:
        with step(settings, report, "ingest") as s:
            report.ingest = ingest(settings, progress=progress)
            s.rows = dict(report.ingest.rows_by_table)

    if spark is None:
        # the engine in its own process: what it keeps after silver+gold is freed before the gold gate and publish
        with _engine_started_beside(settings) as session:
            ingest_step()
            spark = session()
            _spark_steps(spark, settings, report, gate, full_refresh)
        # `spark` is stopped now: the gate hook reads Delta through delta-rs and ignores it
    else:
        ingest_step()
        _spark_steps(spark, settings, report, gate, full_refresh)
    if gate is not None and publish and settings.job_lanes > 1:
        _gold_gate_beside_publish(gate, spark, settings, report)
        return report
    if gate is not None:
        _gate(gate, spark, settings, report, "gold")
    if publish:
        _publish(settings, report, None)
    return report


@contextmanager
def _engine_started_beside(settings: Settings) -> Iterator[Callable[[], SparkSession]]:
    """The embedded engine (its own process, and the session connected to it) started in a thread while the block
    runs (ingest: ~0.5-1 s of process start, imports and session set-up off the run's path); yields the call that
    waits for the session (raising the engine's start error, if any). The engine is stopped when the block ends,
    also when it ends before asking for the session. A classic (JVM) engine starts when asked for, in the caller's
    thread."""
    from concurrent.futures import ThreadPoolExecutor, wait

    from jobs.engine import spark_session

    if settings.engine == "classic":  # JVM Spark binds state to the thread that starts it: started in this one
        with ExitStack() as engine:
            yield lambda: engine.enter_context(spark_session(settings))
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-start")
    try:
        with ExitStack() as engine:
            started = pool.submit(engine.enter_context, spark_session(settings, own_process=True))
            try:
                yield started.result
            finally:
                wait([started])  # started (or failed) before the stack stops it
    finally:
        # only now: the engine process dies with the thread that started it (storylake.processes.die_with_parent)
        pool.shutdown()


def _publish(settings: Settings, report: PipelineReport, beside_gate: Callable[[], None] | None) -> None:
    from serving.publish import publish as publish_snapshot

    with step(settings, report, "publish") as s:
        report.publish = publish_snapshot(settings, report.as_of, beside_gate=beside_gate)
        s.rows = dict(report.publish.tables)


def _gold_gate_beside_publish(
    gate: Callable[[SparkSession, Settings, str, datetime], object], spark: SparkSession, settings: Settings,
    report: PipelineReport,
) -> None:
    """The gold gate (in a thread) while publish builds the snapshot from gold's new versions: the snapshot becomes
    CURRENT only once the gate passed those very versions (serving.publish `beside_gate`). A gate failure discards
    it and is raised (after publish ended) unchanged, as when publish ran after the gate; without one, publish's own
    error is."""
    from concurrent.futures import ThreadPoolExecutor

    from serving.publish import PublishWithheld

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gate-gold") as pool:
        checking = pool.submit(_gate, gate, spark, settings, report, "gold")

        def gate_passed() -> None:
            failure = checking.exception()
            if failure is not None:
                raise PublishWithheld(f"snapshot discarded: the gold gate failed ({type(failure).__name__})")

        try:
            _publish(settings, report, gate_passed)
        except BaseException:
            failure = checking.exception()  # waits for the gate: its failure, if any, is the run's
            if failure is not None:
                raise failure  # noqa: B904 - publish's error stays attached as the context
            raise


def _spark_steps(
    spark: SparkSession, settings: Settings, report: PipelineReport,
    gate: Callable[[SparkSession, Settings, str, datetime], object] | None,
    full_refresh: bool,
) -> None:
    from jobs.gold import build_gold
    from jobs.silver import build_silver

    if gate is not None:
        from jobs.quality import gx_runtime

        gx_runtime.preload()
    with step(settings, report, "silver") as s:
        s.rows = build_silver(spark, settings, report.as_of, full_refresh=full_refresh, run_id=report.run_id)

    def gold() -> None:
        with step(settings, report, "gold") as s:
            s.rows = build_gold(spark, settings, report.as_of)

    if gate is None:
        gold()
        return
    if settings.job_lanes < 2:
        _gate(gate, spark, settings, report, "silver")
        gold()
    else:
        _silver_gate_beside_gold(gate, spark, settings, report, gold)


def _silver_gate_beside_gold(
    gate: Callable[[SparkSession, Settings, str, datetime], object], spark: SparkSession, settings: Settings,
    report: PipelineReport, gold: Callable[[], None],
) -> None:
    """The silver gate (Great Expectations, in this process) while gold runs (in the engine): write-audit-publish
    holds, since gold's new versions reach no consumer until the gold gate, which runs only after the silver gate
    passed. A silver gate failure is raised (after gold ended) even when gold succeeded: nothing is audited, the
    watermark stays, the next run recomputes the same horizon. Without a silver failure, gold's own error is."""
    from concurrent.futures import ThreadPoolExecutor

    from storylake import audit

    audit.start(settings)  # before gold looks: with audits on, only the gold gate completes the run
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gate-silver") as pool:
        checking = pool.submit(_gate, gate, spark, settings, report, "silver")
        try:
            gold()
        except BaseException:
            failure = checking.exception()  # waits for the gate: its failure, if any, explains gold's
            if failure is not None:
                raise failure  # noqa: B904 - gold's error stays attached as the context
            raise
        checking.result()


def _gate(
    gate: Callable[[SparkSession, Settings, str, datetime], object], spark: SparkSession, settings: Settings,
    report: PipelineReport, layer: str,
) -> None:
    """Run the quality gate of a layer (which records the versions consumers may read when it passes), recorded in
    ops.pipeline_runs; its error propagates unchanged."""
    t0 = time.perf_counter()
    with recorded(settings, report.run_id, f"gate_{layer}", report.as_of):
        gate(spark, settings, layer, report.as_of)
    report.steps.append(StepResult(f"gate_{layer}", time.perf_counter() - t0, started=t0))

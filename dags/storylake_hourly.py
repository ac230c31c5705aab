"""storylake_hourly: ingest -> silver -> gate(silver) -> gold -> gate(gold) -> publish, once per hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import storylake_airflow as af  # the task's settings and run id, read from Airflow
from airflow.sdk import CronTriggerTimetable, dag, task

DEFAULT_ARGS = af.default_args(timedelta(minutes=2), timedelta(minutes=20))  # 2 min, 4 min, capped at 20 min


@dag(
    dag_id="storylake_hourly",
    # "@hourly" alone is a CronTriggerTimetable with an EMPTY data interval in Airflow 3 (start == end); the
    # interval gives each run the hour [data_interval_start, data_interval_end), which is all the tasks use.
    # Scheduled/backfill runs: logical date = hour start. Manual runs (`dags test X`, `dags trigger -l X`):
    # Airflow infers [X - 1 h, X) (apache/airflow#41014), i.e. X = hour end.
    schedule=CronTriggerTimetable("@hourly", timezone="UTC", interval=timedelta(hours=1)),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,  # history is replayed with `airflow backfill create`
    max_active_runs=1,  # silver/gold are whole-lake rebuilds: one run at a time
    dagrun_timeout=timedelta(hours=2),
    default_args=DEFAULT_ARGS,
    tags=["storylake", "pipeline", "hourly"],
)
def storylake_hourly() -> None:
    """
    ### storylake_hourly
    Processes the landing hour `[data_interval_start, data_interval_end)`:

    1. **ingest**: landing files in `landing/<event_type>/dt=YYYY-MM-DD/hour=HH/` for the interval's hours that are
       not in the ingest ledger -> bronze + quarantine (exactly-once; other hours stay for their own runs);
    2. **silver**: rebuild silver as of `T = max(data_interval_end, lake watermark)` (watermark = newest as_of of a
       successful gold step in `ops.pipeline_runs`), so reruns, backfills and hours run out of order converge
       to the tables of one clean run and serving never goes back in time; returns T;
    3. **gate_silver**: Great Expectations suites generated from the contracts; results in `ops.quality_results`,
       Data Docs page `LAKE/quality/data_docs/index.html`. A critical failure fails the task without retries;
    4. **gold** as of T, then **gate_gold**;
    5. **publish**: new serving snapshot as of T, switched atomically.

    A failed step stops everything downstream: the previous serving snapshot keeps serving.

    **Configuration** (read inside tasks): Airflow Variables `storylake_lake`, `storylake_landing`,
    `storylake_engine` (embedded | remote | classic), `storylake_spark_remote` (`sc://host:port`); each unset
    Variable falls back to the worker's `STORYLAKE_*` environment variable, then to the defaults.

    Tasks read only `data_interval_start/end`, never the wall clock. **Rerun** an hour: clear its run (UI or
    `airflow tasks clear storylake_hourly -s <logical date> -e <logical date> -y`). **Backfill** the hours whose
    END lies in [A, B]: `airflow backfill create --dag-id storylake_hourly --from-date A --to-date B`.
    Reruns and backfills are safe in any order (ledger + watermark, see `pipeline/steps.py`).
    """

    @task
    def ingest(data_interval_start: datetime | None = None, data_interval_end: datetime | None = None) -> dict:
        from pipeline import steps

        report = steps.ingest_interval(af.task_settings(), data_interval_start, data_interval_end,
                                       run_id=af.task_run_id())
        return {"files": report.files, "lines": report.lines, "rows": dict(report.rows_by_table)}

    @task
    def silver(data_interval_start: datetime | None = None, data_interval_end: datetime | None = None) -> str:
        from pipeline import steps

        settings = af.task_settings()
        _, end = steps.require_interval(data_interval_start, data_interval_end)
        as_of = steps.effective_as_of(settings, end)
        steps.silver(settings, as_of, run_id=af.task_run_id())
        return as_of.isoformat()

    @task
    def quality_gate(layer: str, as_of: str) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from jobs.quality import QualityGateError
        from pipeline import steps

        try:
            report = steps.gate(af.task_settings(), layer, af.task_run_id(), as_of=as_of)
        except QualityGateError as exc:
            raise AirflowFailException(str(exc)) from exc  # bad data: a retry would fail the same way
        return report.as_dict()

    @task
    def gold(as_of: str) -> dict:
        from pipeline import steps

        return steps.gold(af.task_settings(), as_of, run_id=af.task_run_id())

    @task
    def publish(as_of: str) -> str:
        from pipeline import steps

        report = steps.publish(af.task_settings(), as_of, run_id=af.task_run_id())
        return str(report.snapshot_id)

    ingested = ingest()
    as_of = silver()
    silver_checked = quality_gate.override(task_id="gate_silver")("silver", as_of)
    built = gold(as_of)
    gold_checked = quality_gate.override(task_id="gate_gold")("gold", as_of)
    published = publish(as_of)
    ingested >> as_of >> silver_checked >> built >> gold_checked >> published


storylake_hourly()

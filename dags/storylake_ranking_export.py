"""storylake_ranking_export: the daily point-in-time tray training set for the ranking teams."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import storylake_airflow as af  # the task's settings and run id, read from Airflow
from airflow.sdk import CronTriggerTimetable, dag, task

DEFAULT_ARGS = af.default_args(timedelta(minutes=5), timedelta(minutes=30))


@dag(
    dag_id="storylake_ranking_export",
    # interval: data_interval = [previous midnight, midnight) = the exported day (runs just after midnight).
    schedule=CronTriggerTimetable("@daily", timezone="UTC", interval=timedelta(days=1)),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,  # past days: `airflow backfill create --dag-id storylake_ranking_export ...`
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    default_args=DEFAULT_ARGS,
    tags=["storylake", "export", "ranking", "daily"],
)
def storylake_ranking_export() -> None:
    """
    ### storylake_ranking_export
    Exports the tray training set of the day `[data_interval_start, data_interval_end)`:
    `jobs.export.export_features(as_of=data_interval_end)` writes
    `LAKE/exports/tray_training_set/dt=<data_interval_start date>/tray_training_set.parquet` and its
    `manifest.json` (as_of, feature version, the silver Delta versions read) and `gold.tray_training_set`.
    Features use only events strictly before each story's start (no leakage).

    **wait_for_lake** (a rescheduling sensor) first waits until the hourly pipeline has built gold as of at
    least `data_interval_end`, so the export never reads a lake that is missing the day's last hour.

    Configuration: Airflow Variables `storylake_lake`, `storylake_landing`, `storylake_engine`,
    `storylake_spark_remote`, falling back to the `STORYLAKE_*` environment.
    """

    @task.sensor(poke_interval=300, timeout=6 * 3600, mode="reschedule")
    def wait_for_lake(data_interval_start: datetime | None = None, data_interval_end: datetime | None = None) -> bool:
        from pipeline import steps

        _, end = steps.require_interval(data_interval_start, data_interval_end)
        return steps.lake_is_at(af.task_settings(), end)

    @task
    def export(data_interval_start: datetime | None = None, data_interval_end: datetime | None = None) -> dict:
        from pipeline import steps

        settings = af.task_settings()
        day, as_of = steps.require_interval(data_interval_start, data_interval_end)
        out_dir = steps.export_dir(settings, day)
        manifest = steps.export(settings, as_of, out_dir, run_id=af.task_run_id())
        return {"out_dir": str(out_dir), "rows": manifest.rows, "snapshot_id": manifest.snapshot_id}

    wait_for_lake() >> export()


storylake_ranking_export()

"""storylake_expiry: the 5-minute expiry cleanup of expired segments and old Seen By rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import storylake_airflow as af  # the task's settings and run id, read from Airflow
from airflow.sdk import CronTriggerTimetable, dag, task

DEFAULT_ARGS = af.default_args(timedelta(seconds=30), timedelta(minutes=2))  # 30 s, 60 s: inside the 5-minute cadence


@dag(
    dag_id="storylake_expiry",
    schedule=CronTriggerTimetable("*/5 * * * *", timezone="UTC", interval=timedelta(minutes=5)),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,  # a missed run is covered by the next one (it deletes everything expired by its time)
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=10),
    default_args=DEFAULT_ARGS,
    tags=["storylake", "expiry", "serving"],
)
def storylake_expiry() -> None:
    """
    ### storylake_expiry
    Every 5 minutes, `serving.expire.expire(settings, now=data_interval_end)` appends the media of segments
    expired (and not archived) more than the cleanup grace (1 h) before `now` to `ops.media_deletions`, the list
    a media service consumes. It deletes nothing from the lake: serving hides expired segments and Seen By lists
    past 48 h at read time, and silver/gold keep what insights and exports need, so this DAG can run before,
    between or after any pipeline step without changing a table they build. Idempotent (nothing new = no commit).

    Configuration: Airflow Variables `storylake_lake`, `storylake_landing`, `storylake_engine`,
    `storylake_spark_remote`, falling back to the `STORYLAKE_*` environment.
    """

    @task
    def expire(data_interval_start: datetime | None = None, data_interval_end: datetime | None = None) -> dict:
        from pipeline import steps

        _, now = steps.require_interval(data_interval_start, data_interval_end)
        report = steps.expire(af.task_settings(), now, run_id=af.task_run_id())
        return report.as_dict()

    expire()


storylake_expiry()

"""storylake_maintenance: daily retention by age, then Delta table maintenance (compact, checkpoint, vacuum, log
cleanup), then the serving history files of the next publishes written ahead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import storylake_airflow as af  # the task's settings and run id, read from Airflow
from airflow.sdk import CronTriggerTimetable, Param, dag, task

DEFAULT_ARGS = af.default_args(timedelta(minutes=10), timedelta(hours=1))


@dag(
    dag_id="storylake_maintenance",
    schedule=CronTriggerTimetable("30 3 * * *", timezone="UTC"),  # 03:30 UTC, off the hour boundary
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,  # maintenance of the current lake only; nothing to replay
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=3),
    default_args=DEFAULT_ARGS,
    params={"retention_hours": Param(168, type="integer", minimum=24,
                                     description="Vacuum retention in hours (>= 24; default 7 days).")},
    tags=["storylake", "maintenance", "daily"],
)
def storylake_maintenance() -> None:
    """
    ### storylake_maintenance
    First `retention`: every table loses the rows older than its contract's retention (`jobs.retention`; counted
    back from min(the run's logical end, the lake's newest finished run); bronze only once aggregated and past
    the lateness window), recorded in `ops.retention_runs`. Then `maintain`, so the vacuum removes their files.

    For every Delta table under the lake (`jobs.maintenance`, delta-rs): `optimize.compact()`,
    `create_checkpoint()`, `vacuum(retention_hours, enforce_retention_duration, dry_run=False, full=True)`,
    `cleanup_metadata()`; the task's return value (XCom) and log report per table the versions, files before and
    after, files compacted and files vacuumed.

    Retention defaults to 168 h (7 days) so readers that opened an older version (exports, backfills,
    dashboards) keep their files; the `retention_hours` param may lower it to 24 h, never below (refused).
    A table that fails (e.g. a commit conflict with the hourly run) does not stop the others; the task then
    fails and is retried.

    Last `prepare_history` (`serving.publish.prepare_ahead`): the serving history period files that today's and
    tomorrow's publishes attach are written ahead (the month's file on the day a month leaves the cut's month, the
    first period after retention trimmed it), so that no hourly publish copies a month of rows.
    """

    @task
    def retention(data_interval_end: datetime | None = None) -> dict:
        from pipeline import steps

        now = data_interval_end or datetime.now(UTC)
        return steps.retention(af.task_settings(), now, run_id=af.task_run_id()).as_dict()

    @task
    def maintain(params: dict | None = None) -> dict:
        from pipeline import steps

        hours = int((params or {}).get("retention_hours", 168))
        report = steps.maintain(af.task_settings(), retention_hours=hours, run_id=af.task_run_id())
        return report.as_dict()

    @task
    def prepare_history(data_interval_end: datetime | None = None) -> dict:
        from pipeline import steps

        now = data_interval_end or datetime.now(UTC)
        return steps.prepare_history(af.task_settings(), now, run_id=af.task_run_id()).as_dict()

    retention() >> maintain() >> prepare_history()


storylake_maintenance()

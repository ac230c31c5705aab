"""Airflow side of the storylake DAGs: the task's settings and run id, read from Airflow inside a task.

Not a DAG file (listed in .airflowignore): the DAG files import it by name, since Airflow puts the DAG bundle
folder on sys.path. Nothing outside dags/ imports Airflow; pipeline.steps takes plain values. Keep this module
light at import time (no jobs/serving/pyspark): it is imported when the DAG files are parsed, and its functions
may only be called inside a running task (never at parse time).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Variable, get_current_context

from storylake.settings import AIRFLOW_VARIABLES, Settings


def task_settings() -> Settings:
    """Settings of the running task: the worker's STORYLAKE_* environment, overridden by the non-empty Airflow
    Variables storylake_lake, storylake_landing, storylake_engine, storylake_spark_remote (Settings.resolve)."""
    return Settings.resolve(variables={name: Variable.get(name, default=None) for name in AIRFLOW_VARIABLES})


def task_run_id() -> str:
    """Run id of the running task for ops.pipeline_runs: `<dag_id>/<run_id>`, plus `/try<n>` after a retry."""
    from pipeline.steps import attempt_run_id

    ctx = get_current_context()
    return attempt_run_id(ctx["dag"].dag_id, ctx["run_id"], ctx["ti"].try_number)


def default_args(first_retry: timedelta, max_retry_delay: timedelta) -> dict[str, Any]:
    """Task defaults of every storylake DAG: 2 retries, exponential backoff from `first_retry` capped at
    `max_retry_delay` (each DAG fits the delays to its schedule)."""
    return {
        "owner": "storylake",
        "retries": 2,
        "retry_delay": first_retry,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": max_retry_delay,
    }

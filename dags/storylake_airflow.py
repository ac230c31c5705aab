"""Airflow side of the storylake DAGs: the task's settings and run id, read from Airflow inside a task.

Not a DAG file (listed in .airflowignore): the DAG files import it by name, since Airflow puts the DAG bundle
folder on sys.path. Nothing outside dags/ imports Airflow; pipeline.steps takes plain values. Keep this module
light at import time (no jobs/serving/pyspark): it is imported when the DAG files are parsed, and its functions
may only be called inside a running task (never at parse time).
"""

from __future__ import annotations

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

"""DAG integrity: import errors, policy (tags, retries, catchup, schedules, docs), task graphs, parse time,
no heavy imports at parse time, ruff AIR rules, the gate task's no-retry failure, and Airflow at the edge: the
helper dags/storylake_airflow.py is not parsed as a DAG file and nothing outside dags/ imports airflow."""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

# Airflow reads AIRFLOW_HOME on import: keep tests away from ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", str(Path(tempfile.gettempdir()) / "storylake-test-airflow-home"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

REPO = Path(__file__).resolve().parent.parent
DAGS_DIR = REPO / "dags"
HELPER = DAGS_DIR / "storylake_airflow.py"
IGNORED = [line.split("#")[0].strip() for line in (DAGS_DIR / ".airflowignore").read_text().splitlines()]
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not any(fnmatch.fnmatch(p.name, g) for g in IGNORED if g))
# dag_id -> (cron expression, data interval)
SCHEDULES = {
    "storylake_hourly": ("0 * * * *", timedelta(hours=1)),
    "storylake_expiry": ("*/5 * * * *", timedelta(minutes=5)),
    "storylake_ranking_export": ("0 0 * * *", timedelta(days=1)),
    "storylake_maintenance": ("30 3 * * *", timedelta(0)),
}
HEAVY_MODULES = ("jobs", "serving", "pyspark", "pysail", "great_expectations", "deltalake", "pandas", "duckdb")


@pytest.fixture(scope="module")
def dagbag() -> Any:
    # Airflow 3.3: DagBag lives in airflow.dag_processing and has no include_examples (examples are a bundle).
    # BundleDagBag, as the DAG processor and the task runner parse: it puts the bundle folder on sys.path, from
    # which the DAG files import their helper (storylake_airflow).
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(DAGS_DIR), bundle_path=DAGS_DIR)


def test_no_import_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert sorted(dagbag.dags) == sorted(SCHEDULES)


@pytest.mark.parametrize("dag_id", sorted(SCHEDULES))
def test_dag_policy(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert "storylake" in dag.tags and len(dag.tags) >= 2
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.doc_md and f"### {dag_id}" in dag.doc_md
    assert dag.dagrun_timeout is not None
    for task in dag.tasks:
        assert task.retries >= 2, task.task_id
        assert task.retry_exponential_backoff >= 2.0, task.task_id
        assert task.max_retry_delay is not None, task.task_id
        assert task.trigger_rule == "all_success", task.task_id


@pytest.mark.parametrize("dag_id", sorted(SCHEDULES))
def test_schedule(dagbag: Any, dag_id: str) -> None:
    timetable = dagbag.dags[dag_id].timetable
    expression, interval = SCHEDULES[dag_id]
    assert type(timetable).__name__ == "CronTriggerTimetable"
    assert (timetable.expression, timetable.interval, str(timetable.timezone)) == (expression, interval, "UTC")


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_catchup_and_schedule_are_explicit_in_the_source(path: Path) -> None:
    decorators = [
        d for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) for d in node.decorator_list
        if isinstance(d, ast.Call) and getattr(d.func, "id", None) == "dag"
    ]
    assert len(decorators) == 1
    kwargs = {k.arg: k.value for k in decorators[0].keywords}
    assert isinstance(kwargs["catchup"], ast.Constant) and kwargs["catchup"].value is False
    assert "schedule" in kwargs and "default_args" in kwargs and "tags" in kwargs


def test_hourly_task_graph(dagbag: Any) -> None:
    dag = dagbag.dags["storylake_hourly"]
    upstream = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
    assert upstream == {
        "ingest": [],
        "silver": ["ingest"],
        "gate_silver": ["silver"],
        "gold": ["gate_silver", "silver"],  # silver also hands over as_of (XCom)
        "gate_gold": ["gold", "silver"],
        "publish": ["gate_gold", "silver"],
    }
    order = [t.task_id for t in dag.topological_sort()]
    assert order == ["ingest", "silver", "gate_silver", "gold", "gate_gold", "publish"]


def test_other_task_graphs(dagbag: Any) -> None:
    export = dagbag.dags["storylake_ranking_export"]
    assert {t.task_id: sorted(t.upstream_task_ids) for t in export.tasks} == {
        "wait_for_lake": [], "export": ["wait_for_lake"]}
    sensor = export.get_task("wait_for_lake")
    assert sensor.mode == "reschedule" and sensor.timeout == 6 * 3600
    assert [t.task_id for t in dagbag.dags["storylake_expiry"].tasks] == ["expire"]
    maintenance = dagbag.dags["storylake_maintenance"]
    assert {t.task_id: sorted(t.upstream_task_ids) for t in maintenance.tasks} == {
        "retention": [], "maintain": ["retention"], "prepare_history": ["maintain"]}
    assert maintenance.params["retention_hours"] == 168


def test_parse_time_and_no_heavy_imports_at_parse_time() -> None:
    """Measured in a fresh interpreter: parsing the folder must be fast and import nothing of the platform."""
    script = f"""
import json, sys, time
from pathlib import Path
from airflow.dag_processing.dagbag import BundleDagBag
before = set(sys.modules)
t0 = time.perf_counter()
bag = BundleDagBag(dag_folder={str(DAGS_DIR)!r}, bundle_path=Path({str(DAGS_DIR)!r}))
seconds = time.perf_counter() - t0
new = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in {HEAVY_MODULES!r})
print(json.dumps({{"seconds": seconds, "errors": bag.import_errors, "dags": len(bag.dags), "heavy": new}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ}, timeout=120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == {} and result["dags"] == 4
    assert result["heavy"] == []
    assert result["seconds"] < 2.0, result


def test_ruff_airflow_rules_are_clean() -> None:
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "AIR", "--no-cache", "dags/"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_gate_task_fails_without_retry_on_bad_data(dagbag: Any, tmp_path: Path, monkeypatch: Any) -> None:
    """A QualityGateError becomes AirflowFailException: the task fails at once (no retries) and publish never runs."""
    from airflow.sdk.exceptions import AirflowFailException
    from deltalake import write_deltalake

    from storylake import contracts
    from storylake.settings import Settings
    from tests.test_quality import _view

    settings = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    schema = contracts.get("silver.view_events").arrow_schema()
    row = {c: None for c in schema.names} | _view("e1", completion_pct=3.0, author_id=1, story_id=1, frame_index=1)
    path = settings.table_path("silver", "view_events")
    path.parent.mkdir(parents=True)
    write_deltalake(str(path), pa.Table.from_pylist([row], schema=schema))
    monkeypatch.setattr("storylake_airflow.task_settings", lambda: settings)
    monkeypatch.setattr("storylake_airflow.task_run_id", lambda: "storylake_hourly/manual__x")
    gate = dagbag.dags["storylake_hourly"].get_task("gate_silver")
    with pytest.raises(AirflowFailException, match=r"completion_pct.*\"e1\""):
        gate.python_callable("silver", "2026-11-01T11:00:00+00:00")


# --- Airflow stays at the edge ------------------------------------------------------------------------------


def test_the_helper_is_not_a_dag_file(dagbag: Any) -> None:
    """.airflowignore keeps the helper out of DAG discovery (Airflow's own file listing, default syntax)."""
    from airflow.utils.file import list_py_file_paths

    assert HELPER.name in IGNORED
    listed = sorted(Path(p).name for p in list_py_file_paths(DAGS_DIR, safe_mode=False))
    assert listed == sorted(p.name for p in DAG_FILES) == sorted(f"{d}.py" for d in SCHEDULES)
    assert HELPER.name not in {Path(p).name for p in dagbag.file_last_changed}


def test_task_settings_read_the_airflow_variables(dagbag: Any, monkeypatch: Any) -> None:
    """Variables over the STORYLAKE_* environment; an unset Variable (None) falls back to it."""
    import storylake_airflow

    from storylake.settings import AIRFLOW_VARIABLES, Settings

    variables = {"storylake_lake": "/var/lake", "storylake_landing": None, "storylake_engine": "remote",
                 "storylake_spark_remote": "sc://spark:15002"}
    asked: list[str] = []

    class FakeVariable:
        @staticmethod
        def get(name: str, default: Any = None) -> Any:
            asked.append(name)
            return variables.get(name, default)

    monkeypatch.setattr(storylake_airflow, "Variable", FakeVariable)
    monkeypatch.setenv("STORYLAKE_LAKE", "/env/lake")
    monkeypatch.setenv("STORYLAKE_LANDING", "/env/landing")
    monkeypatch.setenv("STORYLAKE_ENGINE", "embedded")
    monkeypatch.delenv("STORYLAKE_SPARK_REMOTE", raising=False)
    s = storylake_airflow.task_settings()
    assert asked == list(AIRFLOW_VARIABLES)
    assert (s.lake, s.landing, s.engine, s.spark_remote) == (
        Path("/var/lake"), Path("/env/landing"), "remote", "sc://spark:15002")
    assert isinstance(s, Settings)


def test_task_run_id_names_the_dag_run_and_the_retry(dagbag: Any, monkeypatch: Any) -> None:
    import storylake_airflow

    class Dag:
        dag_id = "storylake_hourly"

    class TI:
        try_number = 1

    ctx = {"dag": Dag(), "run_id": "scheduled__2026-11-01T11:00:00+00:00", "ti": TI()}
    monkeypatch.setattr(storylake_airflow, "get_current_context", lambda: ctx)
    assert storylake_airflow.task_run_id() == "storylake_hourly/scheduled__2026-11-01T11:00:00+00:00"
    TI.try_number = 3
    assert storylake_airflow.task_run_id() == "storylake_hourly/scheduled__2026-11-01T11:00:00+00:00/try3"


def _airflow_imports(path: Path) -> list[str]:
    """`import airflow...` / `from airflow... import` anywhere in the file (also inside functions)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        found += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names if n.split(".")[0] == "airflow"]
    return found


def test_nothing_outside_dags_imports_airflow() -> None:
    packages = ("storylake", "jobs", "serving", "pipeline", "toolkit", "dashboards")
    files = [p for pkg in packages for p in sorted((REPO / pkg).rglob("*.py"))]
    assert len(files) > 20
    assert [hit for p in files for hit in _airflow_imports(p)] == []
    # the scanner sees imports: the helper's one import of airflow.sdk
    assert [(hit.split(":")[0], hit.split(" ")[1]) for hit in _airflow_imports(HELPER)] == [
        ("dags/storylake_airflow.py", "airflow.sdk")
    ]


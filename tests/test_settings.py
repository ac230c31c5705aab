"""One settings object, one resolution: defaults < env vars < Airflow Variables < CLI overrides, validated with
messages naming the value."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storylake.settings import AIRFLOW_VARIABLES, ENV_VARS, Settings, SettingsError

EVERY_ENV = {
    "STORYLAKE_LAKE": "/env/lake",
    "STORYLAKE_LANDING": "/env/landing",
    "STORYLAKE_ENGINE": "remote",
    "STORYLAKE_SPARK_REMOTE": "sc://env:1",
    "STORYLAKE_STORAGE": "parquet",
    "STORYLAKE_NOW": "2026-11-03T01:02:03Z",
    "STORYLAKE_REQUIRE_AUTH": "1",
    "STORYLAKE_LOG_LEVEL": "WARNING",
    "STORYLAKE_DEBUG": "1",
    "SPARK_MASTER": "local[8]",
    "STORYLAKE_SHUFFLE_PARTITIONS": "16",
    "STORYLAKE_JOB_LANES": "1",
    "STORYLAKE_INSIGHT_UPDATE_MIN_STORIES": "0",
    "STORYLAKE_PUBLISH_MEMORY_MB": "512",
}


def test_defaults_live_under_dot_storylake() -> None:
    s = Settings.from_env({})
    assert (s.lake, s.landing, s.engine, s.spark_remote) == (
        Path(".storylake/lake"), Path(".storylake/landing"), "embedded", None
    )
    assert s == Settings()
    assert (s.storage, s.now, s.require_auth, s.log_level, s.debug, s.spark_master, s.shuffle_partitions) == (
        "delta", None, False, "INFO", False, "local[2]", 4
    )


def test_every_setting_has_one_variable_and_the_variables_name_settings() -> None:
    assert list(ENV_VARS) == [f.name for f in fields(Settings)]
    assert AIRFLOW_VARIABLES == {"storylake_lake": "lake", "storylake_landing": "landing",
                                 "storylake_engine": "engine", "storylake_spark_remote": "spark_remote"}


def test_every_setting_from_the_environment() -> None:
    assert Settings.from_env(EVERY_ENV) == Settings(
        lake=Path("/env/lake"), landing=Path("/env/landing"), engine="remote", spark_remote="sc://env:1",
        storage="parquet", now=datetime(2026, 11, 3, 1, 2, 3, tzinfo=UTC), require_auth=True, log_level="WARNING",
        debug=True, spark_master="local[8]", shuffle_partitions=16, job_lanes=1, insight_update_min_stories=0,
        publish_memory_mb=512,
    )
    assert Settings.from_env(EVERY_ENV) == Settings.resolve(EVERY_ENV)


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STORYLAKE_LAKE", "/os/lake")
    monkeypatch.setenv("STORYLAKE_SHUFFLE_PARTITIONS", "2")
    assert Settings.from_env() == Settings.resolve() == Settings(lake=Path("/os/lake"), shuffle_partitions=2)


def test_env_then_cli_override() -> None:
    s = Settings.from_env({"STORYLAKE_LAKE": "/l", "STORYLAKE_LANDING": "/in", "STORYLAKE_ENGINE": "remote",
                           "STORYLAKE_SPARK_REMOTE": "sc://h:1"})
    assert (s.lake, s.landing, s.engine, s.spark_remote) == (Path("/l"), Path("/in"), "remote", "sc://h:1")
    o = s.override(lake=Path("/x"), engine="embedded")
    assert (o.lake, o.landing, o.engine) == (Path("/x"), Path("/in"), "embedded")
    assert s.override(lake=None, landing="", now="2026-11-02T00:00:00Z") == Settings(
        lake=Path("/l"), landing=Path("/in"), engine="remote", spark_remote="sc://h:1",
        now=datetime(2026, 11, 2, tzinfo=UTC))
    with pytest.raises(TypeError, match="unknown setting"):
        s.override(lakes=Path("/x"))


def test_precedence_env_then_airflow_variables_then_cli_overrides() -> None:
    env = {"STORYLAKE_LAKE": "/env/lake", "STORYLAKE_LANDING": "/env/landing", "STORYLAKE_ENGINE": "remote",
           "STORYLAKE_SPARK_REMOTE": "sc://env:1", "STORYLAKE_LOG_LEVEL": "DEBUG"}
    variables = {"storylake_lake": "/var/lake", "storylake_landing": "/var/landing", "storylake_engine": "",
                 "storylake_spark_remote": None, "not_ours": "ignored"}
    overrides = {"lake": Path("/cli/lake"), "landing": None, "engine": None, "spark_remote": None}
    s = Settings.resolve(env, variables, overrides)
    assert s == Settings(lake=Path("/cli/lake"), landing=Path("/var/landing"), engine="remote",
                         spark_remote="sc://env:1", log_level="DEBUG")
    # each layer alone over the defaults
    assert Settings.resolve({}, {"storylake_lake": "/var/lake"}).lake == Path("/var/lake")
    assert Settings.resolve({}, None, {"lake": "/cli/lake"}).lake == Path("/cli/lake")
    assert Settings.resolve({"STORYLAKE_LAKE": "/env/lake"}, {"storylake_lake": ""}, {"lake": None}).lake == Path(
        "/env/lake")
    # engine and its URL from different layers, validated once at the end
    assert Settings.resolve({"STORYLAKE_ENGINE": "remote"}, {"storylake_spark_remote": "sc://var:2"}) == Settings(
        engine="remote", spark_remote="sc://var:2")
    assert Settings.resolve({"STORYLAKE_ENGINE": "remote"}, None, {"spark_remote": "sc://cli:3"}).spark_remote == (
        "sc://cli:3")
    # a value is parsed only from the layer that wins
    assert Settings.resolve({"STORYLAKE_ENGINE": "spark"}, None, {"engine": "embedded"}).engine == "embedded"
    with pytest.raises(TypeError, match="unknown setting"):
        Settings.resolve({}, None, {"storylake_lake": "/x"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-03T01:02:03Z", datetime(2026, 11, 3, 1, 2, 3, tzinfo=UTC)),
        ("2026-11-03T01:02:03z", datetime(2026, 11, 3, 1, 2, 3, tzinfo=UTC)),
        (" 2026-11-03T03:02:03+02:00 ", datetime(2026, 11, 3, 1, 2, 3, tzinfo=UTC)),
        ("2026-11-03T01:02:03", datetime(2026, 11, 3, 1, 2, 3, tzinfo=UTC)),  # naive: UTC
        ("2026-11-03", datetime(2026, 11, 3, tzinfo=UTC)),
        ("   ", None),
        ("", None),
    ],
)
def test_now_is_a_pinned_utc_clock(value: str, expected: datetime | None) -> None:
    now = Settings.from_env({"STORYLAKE_NOW": value}).now
    assert now == expected
    assert now is None or now.tzinfo is UTC


def test_invalid_now_names_the_variable_and_the_value() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"STORYLAKE_NOW": "yesterday"})
    assert str(info.value) == "STORYLAKE_NOW='yesterday' is not an ISO-8601 time (e.g. 2026-11-02T12:00:00Z)"


def test_now_override_takes_a_datetime() -> None:
    env = {"STORYLAKE_NOW": "2026-01-01T00:00:00Z"}
    plus2 = datetime.fromisoformat("2026-11-03T03:00:00+02:00")
    assert Settings.resolve(env, None, {"now": plus2}).now == datetime(2026, 11, 3, 1, tzinfo=UTC)
    assert Settings.resolve(env, None, {"now": datetime(2026, 11, 3, 1)}).now == datetime(2026, 11, 3, 1, tzinfo=UTC)
    assert Settings.resolve(env, None, {"now": None}).now == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True), ("true", True), ("yes", True), ("on", True), ("False", True),  # anything else: fails closed
        ("0", False), ("false", False), (" 0 ", False), (" ", False), ("", False),
    ],
)
def test_require_auth_and_debug_flags(value: str, expected: bool) -> None:
    s = Settings.from_env({"STORYLAKE_REQUIRE_AUTH": value, "STORYLAKE_DEBUG": value})
    assert (s.require_auth, s.debug) == (expected, expected)
    assert Settings.resolve({"STORYLAKE_REQUIRE_AUTH": value}, None, {"require_auth": False}).require_auth is False


def test_log_level_spark_master_and_shuffle_partitions() -> None:
    s = Settings.from_env({"STORYLAKE_LOG_LEVEL": " warning ", "SPARK_MASTER": "spark://m:7077",
                           "STORYLAKE_SHUFFLE_PARTITIONS": "200"})
    assert (s.log_level, s.spark_master, s.shuffle_partitions) == ("WARNING", "spark://m:7077", 200)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STORYLAKE_ENGINE": "spark"}, "engine must be one of embedded, remote, classic; got 'spark'"),
        ({"STORYLAKE_ENGINE": "remote"}, "engine 'remote' needs --spark-remote"),
        ({"STORYLAKE_SPARK_REMOTE": "http://x"}, "spark_remote must look like sc://host:port, got 'http://x'"),
        ({"STORYLAKE_STORAGE": "orc"}, "storage must be delta or parquet; got 'orc'"),
        ({"STORYLAKE_LOG_LEVEL": "loud"},
         "STORYLAKE_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL; got 'loud'"),
        ({"STORYLAKE_SHUFFLE_PARTITIONS": "0"}, "STORYLAKE_SHUFFLE_PARTITIONS must be a positive integer; got '0'"),
        ({"STORYLAKE_SHUFFLE_PARTITIONS": "4.5"},
         "STORYLAKE_SHUFFLE_PARTITIONS must be a positive integer; got '4.5'"),
        ({"STORYLAKE_PUBLISH_MEMORY_MB": "100"},
         "STORYLAKE_PUBLISH_MEMORY_MB must be a number of megabytes >= 256; got '100'"),
    ],
)
def test_bad_settings_name_the_value(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        Settings.from_env(env)


def test_table_paths() -> None:
    s = Settings(lake=Path("/lake"))
    assert s.table_path("silver", "segments") == Path("/lake/silver/segments")
    assert s.serving_dir == Path("/lake/serving")


def test_writer_wait_and_arrival_windows_resolve_and_refuse_bad_values() -> None:
    from datetime import timedelta

    s = Settings.resolve({"STORYLAKE_WRITER_WAIT_S": "2.5", "STORYLAKE_LATENESS_WINDOW_H": "24",
                          "STORYLAKE_MAX_CLOCK_SKEW_S": "0"})
    assert (s.writer_wait_s, s.lateness_window, s.max_clock_skew) == (2.5, timedelta(hours=24), timedelta(0))
    assert (Settings().lateness_window, Settings().max_clock_skew) == (timedelta(hours=48), timedelta(minutes=5))
    with pytest.raises(SettingsError, match=r"^STORYLAKE_WRITER_WAIT_S must be a number of seconds >= 0; got '-1'$"):
        Settings.resolve({"STORYLAKE_WRITER_WAIT_S": "-1"})
    with pytest.raises(SettingsError, match=r"^STORYLAKE_LATENESS_WINDOW_H must be a number of hours >= 0; got 'x'$"):
        Settings.resolve({"STORYLAKE_LATENESS_WINDOW_H": "x"})

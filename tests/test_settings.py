"""One settings object: env vars with CLI overrides, validated with messages naming the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from storylake.settings import Settings, SettingsError


def test_defaults_live_under_dot_storylake() -> None:
    s = Settings.from_env({})
    assert (s.lake, s.landing, s.engine, s.spark_remote) == (
        Path(".storylake/lake"), Path(".storylake/landing"), "embedded", None
    )


def test_env_then_cli_override() -> None:
    s = Settings.from_env({"STORYLAKE_LAKE": "/l", "STORYLAKE_LANDING": "/in", "STORYLAKE_ENGINE": "remote",
                           "STORYLAKE_SPARK_REMOTE": "sc://h:1"})
    assert (s.lake, s.landing, s.engine, s.spark_remote) == (Path("/l"), Path("/in"), "remote", "sc://h:1")
    o = s.override(lake=Path("/x"), engine="embedded")
    assert (o.lake, o.landing, o.engine) == (Path("/x"), Path("/in"), "embedded")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STORYLAKE_ENGINE": "spark"}, "engine must be one of embedded, remote, classic; got 'spark'"),
        ({"STORYLAKE_ENGINE": "remote"}, "engine 'remote' needs --spark-remote"),
        ({"STORYLAKE_SPARK_REMOTE": "http://x"}, "spark_remote must look like sc://host:port, got 'http://x'"),
    ],
)
def test_bad_settings_name_the_value(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        Settings.from_env(env)


def test_table_paths() -> None:
    s = Settings(lake=Path("/lake"))
    assert s.table_path("silver", "segments") == Path("/lake/silver/segments")
    assert s.serving_dir == Path("/lake/serving")

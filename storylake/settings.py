"""One settings object for every part, resolved in one place.

`Settings.resolve(env, variables, overrides)` is the only resolution; each layer wins over the previous one:

  1. defaults (the dataclass fields below);
  2. the environment: ENV_VARS (os.environ unless `env` is given);
  3. Airflow Variables: AIRFLOW_VARIABLES, given as a plain mapping name -> value (dags/storylake_airflow.py
     reads them inside tasks; this module never imports Airflow);
  4. explicit overrides (the CLI's options), field name -> value.

An unset value (missing, None or "") falls through to the layer below. Each setting is parsed once, from the
layer that won, then the whole object is validated; a bad value raises SettingsError, whose one-line message
names the setting (or its variable) and the value. Every part receives the resulting object as a parameter and
reads nothing else (no os.environ reads outside this module for these settings).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from storylake.errors import StorylakeError

EngineMode = Literal["embedded", "remote", "classic"]
StorageMode = Literal["delta", "parquet"]
ENGINE_MODES: tuple[EngineMode, ...] = ("embedded", "remote", "classic")
DEFAULT_HOME = Path(".storylake")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Setting -> the environment variable it is read from.
ENV_VARS: dict[str, str] = {
    "lake": "STORYLAKE_LAKE",
    "landing": "STORYLAKE_LANDING",
    "engine": "STORYLAKE_ENGINE",
    "spark_remote": "STORYLAKE_SPARK_REMOTE",
    "storage": "STORYLAKE_STORAGE",
    "now": "STORYLAKE_NOW",
    "require_auth": "STORYLAKE_REQUIRE_AUTH",
    "log_level": "STORYLAKE_LOG_LEVEL",
    "debug": "STORYLAKE_DEBUG",
    "spark_master": "SPARK_MASTER",
    "shuffle_partitions": "STORYLAKE_SHUFFLE_PARTITIONS",
    "writer_wait_s": "STORYLAKE_WRITER_WAIT_S",
    "lateness_window_h": "STORYLAKE_LATENESS_WINDOW_H",
    "max_clock_skew_s": "STORYLAKE_MAX_CLOCK_SKEW_S",
    "landing_settle_s": "STORYLAKE_LANDING_SETTLE_S",
    "api_secret": "STORYLAKE_API_SECRET",
    "api_jwks_url": "STORYLAKE_API_JWKS_URL",
    "api_users": "STORYLAKE_API_USERS",
    "api_max_body_bytes": "STORYLAKE_API_MAX_BODY_BYTES",
    "job_lanes": "STORYLAKE_JOB_LANES",
    "insight_update_min_stories": "STORYLAKE_INSIGHT_UPDATE_MIN_STORIES",
    "publish_memory_mb": "STORYLAKE_PUBLISH_MEMORY_MB",
    "api_tray_cache_entries": "STORYLAKE_API_TRAY_CACHE_ENTRIES",
    "media_url_template": "STORYLAKE_MEDIA_URL_TEMPLATE",
    "media_signing_key": "STORYLAKE_MEDIA_SIGNING_KEY",
    "media_url_ttl_s": "STORYLAKE_MEDIA_URL_TTL_S",
}

# Airflow Variable -> the setting it overrides (over the environment; read inside tasks, never at parse time).
AIRFLOW_VARIABLES: dict[str, str] = {
    "storylake_lake": "lake",
    "storylake_landing": "landing",
    "storylake_engine": "engine",
    "storylake_spark_remote": "spark_remote",
}


class SettingsError(StorylakeError, ValueError):
    """A configuration value is invalid (the message names the setting and the value)."""


@dataclass(frozen=True)
class Settings:
    lake: Path = DEFAULT_HOME / "lake"
    landing: Path = DEFAULT_HOME / "landing"
    engine: EngineMode = "embedded"
    spark_remote: str | None = None
    # "parquet" only for engines without Delta support (JVM Spark without the delta-spark jars, which cannot
    # be downloaded here): jobs then read Delta tables' active files as Parquet and write Parquet.
    storage: StorageMode = "delta"
    # Dashboards: a pinned "now" (aware UTC; None = the serving snapshot's as_of) and whether the development
    # sign-in is refused when no OIDC [auth] is configured.
    now: datetime | None = None
    require_auth: bool = False
    # CLI: logging level of the `storylake` command and whether errors show their traceback.
    log_level: str = "INFO"
    debug: bool = False
    # Classic JVM Spark (engine "classic"): master URL and spark.sql.shuffle.partitions.
    spark_master: str = "local[2]"
    shuffle_partitions: int = 4
    # Writers (ingest, run, publish, expire, maintain) take the lake's writer lock; a second writer waits this long
    # for it, then exits naming the holder (storylake.writer_lock).
    writer_wait_s: float = 60.0
    # Ingest: events more than this before their landing hour (late_beyond_window) or after it (from_the_future)
    # are quarantined (storylake.rules.arrival holds the rule and these defaults).
    lateness_window_h: float = 48.0
    max_clock_skew_s: float = 300.0
    # Ingest: a landing file modified less than this long ago may still be being written; it waits for the next run.
    landing_settle_s: float = 60.0
    # HTTP API (`storylake serve`, serving/web): bearer tokens are HS256 JWTs signed with api_secret, or tokens of
    # an OIDC issuer verified with its JWKS (api_jwks_url); api_users is a TOML file mapping OIDC subjects or emails
    # to storylake user ids (the dashboards' [storylake.users] format). Secrets never appear in repr().
    api_secret: str | None = field(default=None, repr=False)
    api_jwks_url: str | None = None
    api_users: Path | None = None
    api_max_body_bytes: int = 1_048_576
    # Silver and gold: jobs one run submits to the engine at once (jobs/lanes.py: workers taking the next ready job;
    # 1 = in turn).
    job_lanes: int = 2
    # Gold: an hourly run updates the story insights of the stories it only added interactions to from their last
    # good rows (jobs/gold/insight_deltas.py) when it touches at least this many stories; with fewer, recomputing
    # them from all their silver rows costs less than the update's own engine steps (0: always update).
    insight_update_min_stories: int = 20_000
    # Publish's DuckDB memory limit (serving/publish.py): beyond it its sorts, joins and aggregates spill to disk.
    # Unlimited (80% of RAM) it held 2.6 GB building a 10M views/day lake's snapshot after 3 days of history.
    publish_memory_mb: int = 1536
    # Per worker: tray segments kept rendered as JSON (serving/web/tray_fragments.py, ~250 bytes each; 0 = none).
    api_tray_cache_entries: int = 400_000
    # Media URLs in trays: the CDN template ({media_id}, {segment_id}, {media_type}), signed with an expiry
    # (HMAC-SHA256 of the path and the expiry) when a signing key is set.
    media_url_template: str = "https://media.storylake.invalid/m/{media_id}"
    media_signing_key: str | None = field(default=None, repr=False)
    media_url_ttl_s: float = 3600.0

    @classmethod
    def resolve(
        cls,
        env: Mapping[str, str] | None = None,
        variables: Mapping[str, str | None] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Defaults < environment (ENV_VARS; os.environ when env is None) < Airflow Variables (AIRFLOW_VARIABLES,
        name -> value; unknown names are ignored) < overrides (setting -> value). Unset values (None, "") fall
        through; the result is validated."""
        env = os.environ if env is None else env
        raw: dict[str, Any] = {name: env[var] for name, var in ENV_VARS.items() if _is_set(env.get(var))}
        for name, value in (variables or {}).items():
            if name in AIRFLOW_VARIABLES and _is_set(value):
                raw[AIRFLOW_VARIABLES[name]] = value
        raw.update(_given(overrides or {}))
        return cls(**_parsed(raw)).validated()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from the environment only (resolve() without Variables or overrides)."""
        return cls.resolve(env)

    def override(self, **values: Any) -> Settings:
        """A copy with explicit values (setting=value; None or "" = not given) applied over these, validated."""
        return replace(self, **_parsed(_given(values))).validated()

    def validated(self) -> Settings:
        if self.engine == "remote" and not self.spark_remote:
            raise SettingsError("engine 'remote' needs --spark-remote sc://host:port (or STORYLAKE_SPARK_REMOTE)")
        if self.spark_remote and not self.spark_remote.startswith("sc://"):
            raise SettingsError(f"spark_remote must look like sc://host:port, got {self.spark_remote!r}")
        if self.api_secret is not None and len(self.api_secret) < 32:
            raise SettingsError(f"{ENV_VARS['api_secret']} must be at least 32 characters (an HS256 key); "
                                f"got {len(self.api_secret)}")
        if self.api_jwks_url and not self.api_jwks_url.startswith(("https://", "http://127.", "http://localhost")):
            raise SettingsError(f"{ENV_VARS['api_jwks_url']} must be an https:// URL; got {self.api_jwks_url!r}")
        if "{media_id}" not in self.media_url_template:
            raise SettingsError(f"{ENV_VARS['media_url_template']} must contain {{media_id}}; "
                                f"got {self.media_url_template!r}")
        return self

    # Lake layout -----------------------------------------------------------------------------
    def table_path(self, layer: str, name: str) -> Path:
        """Path of a Delta table: LAKE/<layer>/<name> (layers: bronze, silver, gold, ops)."""
        return self.lake / layer / name

    @property
    def lateness_window(self) -> timedelta:
        return timedelta(hours=self.lateness_window_h)

    @property
    def max_clock_skew(self) -> timedelta:
        return timedelta(seconds=self.max_clock_skew_s)

    @property
    def serving_dir(self) -> Path:
        return self.lake / "serving"


# --- parsing (one parser per setting, for values from any layer) ---------------------------------


def _is_set(value: object) -> bool:
    return value is not None and value != ""


def _given(values: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(values) - set(_PARSERS))
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(unknown)}")
    return {name: value for name, value in values.items() if _is_set(value)}


def _parsed(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _PARSERS[name](value) for name, value in raw.items()}


def _storage(value: str) -> StorageMode:
    if value not in ("delta", "parquet"):
        raise SettingsError(f"storage must be delta or parquet; got {value!r}")
    return value  # type: ignore[return-value]


def _engine(value: str) -> EngineMode:
    if value not in ENGINE_MODES:
        raise SettingsError(f"engine must be one of {', '.join(ENGINE_MODES)}; got {value!r}")
    return value  # type: ignore[return-value]


def _now(value: datetime | str) -> datetime | None:
    """Aware UTC datetime from a datetime or an ISO-8601 string (Z suffix allowed; naive = UTC; blank = None)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = str(value).strip()
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise SettingsError(
            f"{ENV_VARS['now']}={value!r} is not an ISO-8601 time (e.g. 2026-11-02T12:00:00Z)"
        ) from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _flag(value: bool | str) -> bool:
    """A boolean: anything but "", "0" and "false" (after stripping) is true, so that an unexpected value of
    STORYLAKE_REQUIRE_AUTH fails closed."""
    if isinstance(value, bool):
        return value
    return str(value).strip() not in ("", "0", "false")


def _log_level(value: str) -> str:
    level = str(value).strip().upper()
    if level not in logging.getLevelNamesMapping():
        raise SettingsError(f"{ENV_VARS['log_level']} must be one of {', '.join(LOG_LEVELS)}; got {value!r}")
    return level


def _number(name: str, cast: Callable[[Any], float], minimum: float, what: str) -> Callable[[Any], Any]:
    """A parser of a finite number >= minimum (cast: int or float); SettingsError naming the variable and value."""

    def parse(value: Any) -> Any:
        try:
            n = cast(value)
        except (TypeError, ValueError, OverflowError):
            n = None
        if n is None or not minimum <= n < float("inf"):
            raise SettingsError(f"{ENV_VARS[name]} must be {what}; got {value!r}")
        return n

    return parse


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "lake": Path,
    "landing": Path,
    "engine": _engine,
    "spark_remote": str,
    "storage": _storage,
    "now": _now,
    "require_auth": _flag,
    "log_level": _log_level,
    "debug": _flag,
    "spark_master": str,
    "shuffle_partitions": _number("shuffle_partitions", int, 1, "a positive integer"),
    "writer_wait_s": _number("writer_wait_s", float, 0, "a number of seconds >= 0"),
    "lateness_window_h": _number("lateness_window_h", float, 0, "a number of hours >= 0"),
    "max_clock_skew_s": _number("max_clock_skew_s", float, 0, "a number of seconds >= 0"),
    "landing_settle_s": _number("landing_settle_s", float, 0, "a number of seconds >= 0"),
    "api_secret": str,
    "api_jwks_url": str,
    "api_users": Path,
    "api_max_body_bytes": _number("api_max_body_bytes", int, 1024, "a number of bytes >= 1024"),
    "api_tray_cache_entries": _number("api_tray_cache_entries", int, 0, "a number of entries >= 0"),
    "job_lanes": _number("job_lanes", int, 1, "a number of lanes >= 1"),
    "insight_update_min_stories": _number("insight_update_min_stories", int, 0, "a number of stories >= 0"),
    "publish_memory_mb": _number("publish_memory_mb", int, 256, "a number of megabytes >= 256"),
    "media_url_template": str,
    "media_signing_key": str,
    "media_url_ttl_s": _number("media_url_ttl_s", float, 1, "a number of seconds >= 1"),
}

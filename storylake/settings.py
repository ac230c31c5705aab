"""One settings object for every command: env vars (STORYLAKE_*) with CLI overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from storylake.errors import StorylakeError

EngineMode = Literal["embedded", "remote", "classic"]
StorageMode = Literal["delta", "parquet"]
ENGINE_MODES: tuple[EngineMode, ...] = ("embedded", "remote", "classic")
DEFAULT_HOME = Path(".storylake")


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

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Settings from STORYLAKE_LAKE, STORYLAKE_LANDING, STORYLAKE_ENGINE, STORYLAKE_SPARK_REMOTE."""
        env = dict(os.environ) if env is None else env
        base = cls()
        return cls(
            lake=Path(env.get("STORYLAKE_LAKE") or base.lake),
            landing=Path(env.get("STORYLAKE_LANDING") or base.landing),
            engine=_engine(env.get("STORYLAKE_ENGINE") or base.engine),
            spark_remote=env.get("STORYLAKE_SPARK_REMOTE") or None,
            storage=_storage(env.get("STORYLAKE_STORAGE") or base.storage),
        ).validated()

    def override(
        self,
        *,
        lake: Path | None = None,
        landing: Path | None = None,
        engine: str | None = None,
        spark_remote: str | None = None,
    ) -> Settings:
        """A copy with the CLI's explicit values applied over the environment's."""
        return replace(
            self,
            lake=lake or self.lake,
            landing=landing or self.landing,
            engine=_engine(engine) if engine else self.engine,
            spark_remote=spark_remote or self.spark_remote,
        ).validated()

    def validated(self) -> Settings:
        if self.engine == "remote" and not self.spark_remote:
            raise SettingsError("engine 'remote' needs --spark-remote sc://host:port (or STORYLAKE_SPARK_REMOTE)")
        if self.spark_remote and not self.spark_remote.startswith("sc://"):
            raise SettingsError(f"spark_remote must look like sc://host:port, got {self.spark_remote!r}")
        return self

    # Lake layout -----------------------------------------------------------------------------
    def table_path(self, layer: str, name: str) -> Path:
        """Path of a Delta table: LAKE/<layer>/<name> (layers: bronze, silver, gold, ops)."""
        return self.lake / layer / name

    @property
    def serving_dir(self) -> Path:
        return self.lake / "serving"


def _storage(value: str) -> StorageMode:
    if value not in ("delta", "parquet"):
        raise SettingsError(f"storage must be delta or parquet; got {value!r}")
    return value  # type: ignore[return-value]


def _engine(value: str) -> EngineMode:
    if value not in ENGINE_MODES:
        raise SettingsError(f"engine must be one of {', '.join(ENGINE_MODES)}; got {value!r}")
    return value  # type: ignore[return-value]

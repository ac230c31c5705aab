"""Shared fixtures: one embedded Sail session for the whole run, temp lakes, tiny event builders."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from storylake.settings import Settings

os.environ.setdefault("RUST_LOG", "warn")
# Commands started by the tests (CLI, Airflow, the API server) ingest files the tests wrote a moment before: no settle
# time there (tests/test_ingest.py checks the settle time itself).
os.environ.setdefault("STORYLAKE_LANDING_SETTLE_S", "0")


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """Embedded Sail Spark Connect session (the real engine, in-process)."""
    from jobs.engine import spark_session

    with spark_session(Settings()) as session:
        yield session


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")

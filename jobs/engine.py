"""Spark session factory: embedded Sail (default), a remote Spark Connect URL, or classic JVM Spark."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from storylake.processes import die_with_parent, stop
from storylake.settings import Settings, SettingsError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# Sail settings applied to the embedded server unless the caller set them.
_SAIL_DEFAULTS = {
    "SAIL_RUNTIME__STACK_SIZE": str(8 * 1024 * 1024),
    # The left input of every hash join is its build side (held in memory), as the jobs write it: see
    # jobs.engine_workarounds.lookup. Swapping by statistics cannot see that an aggregate or a filter is small, and
    # built hash tables over the large side (10 GB peak at 10M views instead of 2 GB).
    "SAIL_OPTIMIZER__ENABLE_JOIN_SWAP": "false",
    # Keep Sail's own logging quiet; its INFO lines would drown the job's progress output.
    "RUST_LOG": "warn",
}


@contextmanager
def spark_session(settings: Settings, *, own_process: bool = False) -> Iterator[SparkSession]:
    """Yield a SparkSession for the configured engine and shut everything down afterwards.

    own_process (embedded engine only): run the Sail server as a child process instead of in this one, so
    the memory it keeps after a job (allocator pools, caches: ~2 GB after silver+gold at 10M views) goes
    back to the OS when the session ends; `storylake run` uses it before publishing in the same process.
    """
    if settings.engine == "embedded" and own_process:
        with sail_server_process() as url:
            yield from _remote(url)
    elif settings.engine == "embedded":
        with _embedded() as spark:
            yield spark
    elif settings.engine == "remote":
        yield from _remote(settings.spark_remote or "")
    elif settings.engine == "classic":
        yield from _classic(settings)
    else:  # pragma: no cover - Settings validates the value
        raise SettingsError(f"unknown engine {settings.engine!r}")


@contextmanager
def _embedded() -> Iterator[SparkSession]:
    for key, value in _SAIL_DEFAULTS.items():
        os.environ.setdefault(key, value)
    from pysail.spark import SparkConnectServer
    from pyspark.sql import SparkSession

    server = SparkConnectServer("127.0.0.1", 0)
    server.start(background=True)
    host, port = server.listening_address
    log.info("embedded Sail Spark Connect server on %s:%s", host, port)
    # create(), not getOrCreate(): in a process that already holds a session (tests, an Airflow worker),
    # getOrCreate() returns that session whatever the URL, and stopping ours would stop it.
    spark = SparkSession.builder.remote(f"sc://{host}:{port}").create()
    try:
        _configure(spark)
        yield spark
    finally:
        try:
            spark.stop()
        finally:
            server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sail_server_process(start_timeout_s: float = 60.0, env: dict[str, str] | None = None) -> Iterator[str]:
    """`sail spark server` (pysail's CLI) as a child process on a free loopback port, with the embedded
    defaults (_SAIL_DEFAULTS) unless set, and `env` on top (e.g. SAIL_MODE=local-cluster); yields its sc:// URL
    and stops it afterwards."""
    port = free_port()
    sail = Path(sys.executable).with_name("sail")
    env = {**_SAIL_DEFAULTS, **os.environ, **(env or {})}
    proc = subprocess.Popen(
        [str(sail), "spark", "server", "--ip", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=die_with_parent,
    )
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise SettingsError(f"the Sail server did not start on port {port}: {err[-500:]}") from None
                time.sleep(0.1)
        log.info("Sail Spark Connect server process %s on 127.0.0.1:%s", proc.pid, port)
        yield f"sc://127.0.0.1:{port}"
    finally:
        stop(proc)


def _remote(url: str) -> Iterator[SparkSession]:
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(url).create()
    try:
        _configure(spark)
        yield spark
    finally:
        spark.stop()


def _classic(settings: Settings) -> Iterator[SparkSession]:
    """JVM Spark with delta-spark, for spark-submit on clusters whose Delta jars are available (master and
    shuffle partitions from the settings: SPARK_MASTER, STORYLAKE_SHUFFLE_PARTITIONS)."""
    from pyspark.sql import SparkSession

    # A parent process that used Spark Connect leaves these set; they would turn the builder into a
    # Connect client.
    for var in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE", "SPARK_CONNECT_MODE"):
        os.environ.pop(var, None)

    builder = (
        SparkSession.builder.master(settings.spark_master)
        .appName("storylake")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.ui.enabled", "false")
        # UTC-adjusted microsecond timestamps (not legacy INT96) so Parquet readers see the same instants.
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    )
    try:
        from delta import configure_spark_with_delta_pip

        builder = configure_spark_with_delta_pip(
            builder.config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension").config(
                "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
            )
        )
    except ImportError:
        log.warning("delta-spark is not installed: classic mode runs pure transforms only (no Delta I/O)")
    spark = builder.getOrCreate()
    try:
        yield spark
    finally:
        spark.stop()


def _configure(spark: SparkSession) -> None:
    spark.conf.set("spark.sql.session.timeZone", "UTC")

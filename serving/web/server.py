"""`storylake serve`: the API on uvicorn (uvloop + httptools), one or several worker processes.

Workers are separate processes (uvicorn's supervisor restarts one that dies); each builds the app from the
environment (app.app_from_env), so the command exports its resolved settings as STORYLAKE_* variables first.
They share the landing folder (file names carry host, pid and a random tag), the seen overlay (SQLite, WAL) and,
with several workers, the Prometheus multiprocess folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import uvicorn

from storylake.settings import ENV_VARS, Settings


def _export(settings: Settings) -> None:
    for name, var in ENV_VARS.items():
        value = getattr(settings, name)
        if value is None:
            os.environ.pop(var, None)
        elif isinstance(value, bool):
            os.environ[var] = "1" if value else "0"
        elif name == "now":
            os.environ[var] = value.isoformat()
        else:
            os.environ[var] = str(value)


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          log_level: str = "warning") -> None:
    settings.serving_dir.mkdir(parents=True, exist_ok=True)
    _export(settings)
    metrics_dir: Path | None = None
    if workers > 1:
        metrics_dir = Path(tempfile.mkdtemp(prefix="storylake-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    try:
        uvicorn.run(
            "serving.web.app:app_from_env", factory=True, host=host, port=port, workers=workers,
            loop="uvloop", http="httptools", log_level=log_level, access_log=False, timeout_graceful_shutdown=10,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)

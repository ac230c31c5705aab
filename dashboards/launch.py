"""`storylake dashboard`: start `streamlit run dashboards/app.py` on the lake of the settings.

The lake reaches the app through STORYLAKE_LAKE (absolute path), the optional `now` through STORYLAKE_NOW.
Streamlit runs in the caller's working directory, so `.streamlit/config.toml` and `.streamlit/secrets.toml`
there apply (OIDC sign-in: dashboards/signin.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from storylake.clock import iso
from storylake.settings import Settings

APP = Path(__file__).resolve().parent / "app.py"


def streamlit_command(*, port: int = 8501, address: str = "localhost", headless: bool = False) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port),
        "--server.address", address,
        "--server.headless", "true" if headless else "false",
        "--browser.gatherUsageStats", "false",
    ]


def dashboard_env(
    settings: Settings, now: datetime | None = None, base: dict[str, str] | None = None
) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["STORYLAKE_LAKE"] = str(Path(settings.lake).resolve())
    if now is not None:
        env["STORYLAKE_NOW"] = iso(now) or ""
    return env


def run_dashboard(
    settings: Settings, *, port: int = 8501, address: str = "localhost", headless: bool = False,
    now: datetime | None = None,
) -> int:
    """Run the dashboards until Ctrl-C; returns Streamlit's exit code."""
    proc = subprocess.Popen(streamlit_command(port=port, address=address, headless=headless),
                            env=dashboard_env(settings, now))
    try:
        return proc.wait()
    except KeyboardInterrupt:  # Streamlit got the same SIGINT: let it shut down
        return proc.wait()

"""`storylake dashboard`: start `streamlit run dashboards/app.py` on the lake of the settings.

The settings reach the app through its environment, which it resolves into the same Settings: the lake as
STORYLAKE_LAKE (absolute path), the optional pinned `now` as STORYLAKE_NOW, require_auth as STORYLAKE_REQUIRE_AUTH.
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
from storylake.processes import die_with_parent, forwarding_signals
from storylake.settings import ENV_VARS, Settings

APP = Path(__file__).resolve().parent / "app.py"


def streamlit_command(*, port: int = 8501, address: str = "localhost", headless: bool = False) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port),
        "--server.address", address,
        "--server.headless", "true" if headless else "false",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",  # no "Deploy" button, whatever the working directory
        "--theme.primaryColor", "#c13584",
    ]


def dashboard_env(
    settings: Settings, now: datetime | None = None, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The app's environment: `base` (default os.environ) plus the settings the app reads; `now` (default
    settings.now) pins its clock."""
    env = dict(os.environ if base is None else base)
    env[ENV_VARS["lake"]] = str(Path(settings.lake).resolve())
    now = settings.now if now is None else now
    if now is not None:
        env[ENV_VARS["now"]] = iso(now) or ""
    if settings.require_auth:
        env[ENV_VARS["require_auth"]] = "1"
    return env


def run_dashboard(
    settings: Settings, *, port: int = 8501, address: str = "localhost", headless: bool = False,
    now: datetime | None = None,
) -> int:
    """Run the dashboards until Ctrl-C or SIGTERM; returns Streamlit's exit code (`now` defaults to settings.now).
    SIGTERM and SIGHUP are passed on to Streamlit, which shuts down; if this process is killed outright, the kernel
    stops Streamlit too (processes.die_with_parent)."""
    proc = subprocess.Popen(streamlit_command(port=port, address=address, headless=headless),
                            env=dashboard_env(settings, now), preexec_fn=die_with_parent)
    with forwarding_signals(proc):
        try:
            return proc.wait()
        except KeyboardInterrupt:  # Streamlit got the same SIGINT: let it shut down
            return proc.wait()

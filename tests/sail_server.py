"""Start a Sail Spark Connect server as a separate process (for the remote-engine tests)."""

from __future__ import annotations

from jobs.engine import free_port
from jobs.engine import sail_server_process as sail_server

__all__ = ["free_port", "sail_server"]

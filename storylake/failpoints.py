"""Named crash points for the fault-injection tests (tests/test_faults.py).

A writer calls `reach("ingest.before_runs")` at the points where a crash matters (between the commits of a batch).
When the process was started with STORYLAKE_FAILPOINT set to that name, it kills itself there with SIGKILL, as an
OOM kill or a power cut would: no cleanup, no exception handler, no flushed buffers. Unset (always, outside the
tests), reach() is one environment lookup. This is a test hook read from the environment on purpose, not a setting.
"""

from __future__ import annotations

import os
import signal

ENV = "STORYLAKE_FAILPOINT"


def reach(name: str) -> None:
    """SIGKILL this process when STORYLAKE_FAILPOINT names this point."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)

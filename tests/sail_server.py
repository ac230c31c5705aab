"""Start a Sail Spark Connect server as a separate process (for the remote-engine tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sail_server() -> Iterator[str]:
    """`sail spark server` on a free loopback port; yields its sc:// URL and stops it afterwards."""
    port = free_port()
    sail = Path(sys.executable).with_name("sail")
    proc = subprocess.Popen(
        [str(sail), "spark", "server", "--ip", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "RUST_LOG": "warn"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"sail server did not start on port {port}: {err[-500:]}") from None
                time.sleep(0.1)
        yield f"sc://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

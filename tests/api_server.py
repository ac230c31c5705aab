"""A live `storylake serve` for the HTTP API tests: the real console script in its own process, on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CLI = str(Path(sys.executable).with_name("storylake"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(env: dict[str, str], log: Path, *args: str, wait_ready: bool = True) -> LiveServer:
    port = free_port()
    out = log.open("ab")
    proc = subprocess.Popen([CLI, "serve", "--port", str(port), *args], env=env, stdout=out, stderr=out,
                            start_new_session=True)
    server = LiveServer(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"storylake serve exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            r = httpx.get(f"{server.url}/readyz" if wait_ready else f"{server.url}/healthz", timeout=2)
            if r.status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"storylake serve did not get ready: {log.read_text()[-2000:]}")


def wait_for(predicate: Any, timeout_s: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def environment(root: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "STORYLAKE_LAKE": str(root / "lake"), "STORYLAKE_LANDING": str(root / "landing"),
            "STORYLAKE_LOG_LEVEL": "WARNING", "RUST_LOG": "error", **extra}

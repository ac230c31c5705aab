"""One writer at a time per lake: every writer (ingest, run, publish, expire, maintain) holds LAKE/_locks/writer.lock.

The lock is an exclusive `flock` on that file, so the kernel releases it when its holder dies, even by kill -9:
there is no stale lock to recover by hand. The holder writes who it is (command, pid, host, since) into the file;
a second writer waits up to `Settings.writer_wait_s` for the lock, then fails with a one-line WriterBusyError
naming the holder. The lock is reentrant within a process (`storylake run` holds it and calls ingest, publish...,
which take it again). Readers (serving, dashboards, exports) never take it.

flock is local to one machine: on a lake shared by several machines (object storage) the scheduler must keep
writers apart (one Airflow pool slot), as the README says.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, ParamSpec, TypeVar

from storylake.errors import StorylakeError

POLL_S = 0.2
HOLDER_WRITE_S = 1.0  # how long holder() waits for a new holder to write who it is
P = ParamSpec("P")
R = TypeVar("R")
_held: dict[Path, tuple[IO[str], int]] = {}
_guard = threading.Lock()


class WriterBusyError(StorylakeError, RuntimeError):
    """Another writer holds the lake (the message names it)."""


def lock_path(lake: Path) -> Path:
    return lake / "_locks" / "writer.lock"


def holder(lake: Path) -> dict[str, object] | None:
    """Who holds the lake's writer lock (as the holder wrote it), None when nobody does."""
    path = lock_path(lake)
    try:
        with path.open("r") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                # the holder writes who it is just after taking the lock: a reader in between waits for it
                deadline = time.monotonic() + HOLDER_WRITE_S
                while True:
                    fh.seek(0)
                    text = fh.read().strip()
                    try:
                        if text:
                            return dict(json.loads(text))
                    except ValueError:  # partly written
                        pass
                    if time.monotonic() >= deadline:
                        return {"command": "unknown"}
                    time.sleep(0.02)
            fcntl.flock(fh, fcntl.LOCK_UN)
            return None
    except FileNotFoundError:
        return None


@contextmanager
def writer_lock(lake: Path, command: str, wait_s: float) -> Iterator[None]:
    """Hold the lake's writer lock for the block (waiting up to wait_s for it; WriterBusyError after that)."""
    path = lock_path(Path(lake)).absolute()
    with _guard:
        if path in _held:
            fh, depth = _held[path]
            _held[path] = (fh, depth + 1)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            _release(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = path.open("a+")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                fh.close()
                raise WriterBusyError(_busy_message(Path(lake), command, wait_s)) from None
            time.sleep(POLL_S)
    fh.seek(0)
    fh.truncate()
    fh.write(json.dumps({"command": command, "pid": os.getpid(), "host": socket.gethostname(),
                         "since": datetime.now(UTC).isoformat(timespec="seconds")}))
    fh.flush()
    with _guard:
        _held[path] = (fh, 1)
    try:
        yield
    finally:
        _release(path)


def _release(path: Path) -> None:
    with _guard:
        fh, depth = _held[path]
        if depth > 1:
            _held[path] = (fh, depth - 1)
            return
        del _held[path]
    fh.seek(0)
    fh.truncate()
    fh.flush()
    fcntl.flock(fh, fcntl.LOCK_UN)
    fh.close()


def _busy_message(lake: Path, command: str, wait_s: float) -> str:
    who = holder(lake) or {"command": "another writer"}
    return (f"{command}: lake {lake} is being written by `{who.get('command')}` (pid {who.get('pid', '?')} on "
            f"{who.get('host', '?')} since {who.get('since', '?')}); waited {wait_s:g} s "
            "(STORYLAKE_WRITER_WAIT_S): retry when it has finished")


def holding_writer_lock(command: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: the function runs holding the writer lock of the lake of its Settings argument."""
    from storylake.settings import Settings

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def locked(*args: P.args, **kwargs: P.kwargs) -> R:
            settings = kwargs.get("settings")
            if not isinstance(settings, Settings):
                settings = next((a for a in args if isinstance(a, Settings)), None)
            if settings is None:
                raise TypeError(f"{fn.__name__}: holding_writer_lock needs a Settings argument")
            with writer_lock(settings.lake, command, settings.writer_wait_s):
                return fn(*args, **kwargs)

        return locked

    return decorate

"""Durable landing files for accepted seen receipts, with group commit.

A receipt is acknowledged (202) only once its line is in a complete landing file:
    LANDING/segment_view/dt=YYYY-MM-DD/hour=HH/.api-<tag>-<seq>.jsonl.tmp   written, fsynced
    LANDING/segment_view/dt=YYYY-MM-DD/hour=HH/api-<tag>-<seq>.jsonl        renamed, folder fsynced
Ingest only reads `*.jsonl`, so a crash before the rename leaves an invisible temporary file and nothing partial
(stale temporaries are removed when a server starts). The hour folder is the arrival hour (storylake.rules.arrival).

Group commit: requests queue their lines; one writer task takes everything queued, writes one file per hour
folder in a worker thread and then answers all of them. Under load the queue fills while a file is being synced,
so one fsync covers many requests and the number of files stays small; an idle server writes a request's file
at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from storylake import failpoints

log = logging.getLogger(__name__)
EVENT_TYPE = "segment_view"
STALE_TEMP_S = 600
MAX_LINES_PER_FILE = 100_000


@dataclass
class _Pending:
    hour: datetime
    lines: list[bytes]
    done: asyncio.Future[str]


@dataclass
class LandingWriter:
    landing: Path
    tag: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    files_written: int = 0
    _seq: int = 0
    _queue: asyncio.Queue[_Pending] | None = None
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="landing-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def write(self, hour: datetime, lines: list[bytes]) -> str:
        """Append `lines` to a landing file of `hour`; returns the file's path relative to LANDING once durable."""
        if self._queue is None:
            raise RuntimeError("landing writer is not started")
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(hour, lines, done))
        return await done

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0].lines)
            while not self._queue.empty() and size < MAX_LINES_PER_FILE:
                item = self._queue.get_nowait()
                batch.append(item)
                size += len(item.lines)
            try:
                paths = await asyncio.to_thread(self._flush, batch)
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure (a 500, logged)
                log.exception("landing write failed")
                for p in batch:
                    if not p.done.done():
                        p.done.set_exception(exc)
                continue
            for p in batch:
                if not p.done.done():
                    p.done.set_result(paths[p.hour])

    def _flush(self, batch: list[_Pending]) -> dict[datetime, str]:
        by_hour: dict[datetime, list[bytes]] = {}
        for p in batch:
            by_hour.setdefault(p.hour, []).extend(p.lines)
        return {hour: self._write_file(hour, lines) for hour, lines in by_hour.items()}

    def _write_file(self, hour: datetime, lines: list[bytes]) -> str:
        folder = self.landing / EVENT_TYPE / f"dt={hour:%Y-%m-%d}" / f"hour={hour:%H}"
        folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        name = f"api-{self.tag}-{self._seq:08d}.jsonl"
        tmp = folder / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, b"\n".join(lines) + b"\n")
            failpoints.reach("api.landing.before_fsync")
            os.fsync(fd)
        finally:
            os.close(fd)
        failpoints.reach("api.landing.before_rename")
        os.rename(tmp, folder / name)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        self.files_written += 1
        return (folder / name).relative_to(self.landing).as_posix()


def remove_stale_temporaries(landing: Path, older_than_s: float = STALE_TEMP_S) -> int:
    """Remove temporary files a killed server left (never a complete landing file)."""
    root = landing / EVENT_TYPE
    if not root.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for p in root.glob("dt=*/hour=*/.api-*.jsonl.tmp"):
        try:
            if p.stat().st_mtime < cutoff:
                p.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed

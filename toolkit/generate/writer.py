"""Landing files writer: OUT/<event_type>/dt=YYYY-MM-DD/hour=HH/part-NNNNN.jsonl.

Lines are appended to per-file buffers and flushed with large writes. An hour folder gets lines from many
batches (views arrive up to a day after their story was posted), so a file is created on its first flush
and appended to afterwards. Parts roll over before they would exceed `max_part_lines`.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from .schema import EVENT_TYPES

MAX_PART_LINES = 500_000
FLUSH_BYTES = 32 << 20


def hour_folder(hour: int) -> str:
    """'dt=YYYY-MM-DD/hour=HH' of an absolute hour index (ms // 1 h since the Unix epoch)."""
    t = datetime.fromtimestamp(hour * 3600, tz=UTC)
    return f"dt={t:%Y-%m-%d}/hour={t:%H}"


class LandingWriter:
    def __init__(
        self, out: Path, *, max_part_lines: int = MAX_PART_LINES, flush_bytes: int = FLUSH_BYTES
    ) -> None:
        self.out = out
        self.max_part_lines = max_part_lines
        self.flush_bytes = flush_bytes
        self._parts: dict[tuple[str, int], tuple[int, int]] = {}  # (type, hour) -> (part, lines in it)
        self._buffers: dict[tuple[str, int, int], list[bytes]] = {}
        self._buffered = 0
        self._created: dict[Path, int] = {}  # file -> its hour index
        self.lines_per_type: dict[str, int] = dict.fromkeys(EVENT_TYPES, 0)
        self.bytes_written = 0

    def add(self, event_type: str, hour: int, blob: bytes, lines: int) -> None:
        """Queue `lines` newline-terminated lines (`blob`) for the hour folder `hour` of `event_type`."""
        if not lines:
            return
        part, count = self._parts.get((event_type, hour), (0, 0))
        if count and count + lines > self.max_part_lines:
            part, count = part + 1, 0
        self._parts[(event_type, hour)] = (part, count + lines)
        self._buffers.setdefault((event_type, hour, part), []).append(blob)
        self._buffered += len(blob)
        self.lines_per_type[event_type] += lines
        if self._buffered >= self.flush_bytes:
            self.flush()

    def path(self, event_type: str, hour: int, part: int) -> Path:
        return self.out / event_type / hour_folder(hour) / f"part-{part:05d}.jsonl"

    def flush(self) -> None:
        for (etype, hour, part), chunks in sorted(self._buffers.items()):
            path = self.path(etype, hour, part)
            if path not in self._created:
                path.parent.mkdir(parents=True, exist_ok=True)
                mode = "wb"
                self._created[path] = hour
            else:
                mode = "ab"
            data = b"".join(chunks)
            with path.open(mode) as fh:
                fh.write(data)
            self.bytes_written += len(data)
        self._buffers.clear()
        self._buffered = 0

    def close(self) -> list[str]:
        """Flush everything; the files written, relative to `out`, sorted. A generated world is complete: each file's
        modification time is set to the end of its hour (at most an hour before now), as a collector that closed it
        then would leave it, so ingest's settle time (jobs/ingest/run.py) does not hold it back."""
        self.flush()
        latest = time.time() - 3600
        for path, hour in self._created.items():
            closed = min((hour + 1) * 3600, latest)
            os.utime(path, (closed, closed))
        return sorted(p.relative_to(self.out).as_posix() for p in self._created)

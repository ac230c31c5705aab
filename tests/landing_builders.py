"""Tiny hand-built landing files for tests."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def view(eid: str, seg: int, viewer: int, t: str, *, dur: int = 5000, pct: float = 1.0, src: str = "tray",
         key: str | None = None) -> dict[str, Any]:
    return {"event_id": eid, "event_type": "segment_view", "event_time": t, "segment_id": seg, "viewer_id": viewer,
            "view_duration_ms": dur, "completion_pct": pct, "view_source": src, "idempotency_key": key or eid}


def created(eid: str, seg: int, author: int, t: str, *, audience: str = "public", media: str = "photo",
            stickers: list[dict[str, Any]] | None = None, duration_ms: int = 5000) -> dict[str, Any]:
    return {"event_id": eid, "event_type": "segment_created", "event_time": t, "segment_id": seg, "author_id": author,
            "media_id": seg * 10, "media_type": media, "audience": audience, "duration_ms": duration_ms,
            "stickers": stickers or []}


def write_landing(root: Path, event_type: str, lines: list[dict[str, Any] | str], *, dt: str = "2026-11-01",
                  hour: str = "10", part: int = 0) -> Path:
    """Write one landing file; str items are written verbatim (for malformed lines)."""
    folder = root / event_type / f"dt={dt}" / f"hour={hour}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{part:05d}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for item in lines:
            fh.write((item if isinstance(item, str) else json.dumps(item)) + "\n")
    return closed(path)


def closed(path: Path, seconds_ago: float = 3600) -> Path:
    """Give a landing file the modification time of one its collector closed `seconds_ago` (ingest lets files
    modified within its settle time wait for the next run)."""
    t = time.time() - seconds_ago
    os.utime(path, (t, t))
    return path

"""The segment objects of tray answers, each rendered to JSON once per worker and reused (orjson.Fragment).

A segment's object in a tray (`segmentId`, `storyId`, `mediaType`, `durationMs`, `expiresAt`, `seen`, `mediaUrl`)
depends only on the segment, on whether this viewer has seen it, and on the media URL's signing period: the same
bytes for every viewer who follows its author. A heavy tray holds ~500 segments, and building their dicts, ISO times
and media URLs was ~1.5 ms of the ~4 ms a tray costs; a cached fragment costs a dict lookup. Entries are keyed by
(SegmentIndex row, seen) for one snapshot's index and one signing period, and the cache starts over when either
changes or when it outgrows `max_entries` (a worker's memory stays bounded: ~250 bytes an entry; 0 caches nothing,
every answer renders its segments afresh)."""

from __future__ import annotations

from datetime import datetime
from threading import Lock

import numpy as np
import orjson

from serving.render import segment_dicts
from serving.snapshot_indexes import SegmentIndex
from serving.tray import segment_columns
from serving.web.media_urls import MediaUrls

DEFAULT_MAX_ENTRIES = 400_000


class SegmentFragments:
    def __init__(self, media: MediaUrls, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.media, self.max_entries = media, max_entries
        self._index: SegmentIndex | None = None
        self._epoch: int | None = None
        self._cache: dict[int, orjson.Fragment] = {}
        self._lock = Lock()

    def __len__(self) -> int:
        return len(self._cache)

    def of(self, index: SegmentIndex, rows: np.ndarray, seen: np.ndarray, now: datetime) -> list[orjson.Fragment]:
        """The JSON objects of SegmentIndex `rows` (seen flags `seen`) at `now`, in order."""
        epoch = self.media.epoch(now)
        with self._lock:
            if index is not self._index or epoch != self._epoch or len(self._cache) >= max(self.max_entries, 1):
                self._index, self._epoch, self._cache = index, epoch, {}
            cache = self._cache
        keys = (rows * 2 + seen).tolist()
        get = cache.get
        out = [get(k) for k in keys]
        missing = [i for i, f in enumerate(out) if f is None]
        if missing:
            at = np.asarray(missing, dtype=np.int64)
            c = segment_columns(index, rows.take(at), seen.take(at))
            url = self.media.url
            urls = [url(m, s, t, now) for m, s, t in zip(c.media_id, c.segment_id, c.media_type, strict=True)]
            for i, doc in zip(missing, segment_dicts(c, {"mediaUrl": urls}), strict=True):
                cache[keys[i]] = out[i] = orjson.Fragment(orjson.dumps(doc))
        return out  # type: ignore[return-value]

"""The snapshot the server answers from, switched without a restart when a new one is published.

A background thread polls CURRENT (every `poll_s`); when it names another snapshot, the thread opens it, builds
its in-process indexes (snapshot_indexes.py, so no request pays for that) and only then swaps it in. A request
takes the current handle once and keeps it to the end, so in-flight requests finish on the snapshot they started
with (its file stays readable after publish unlinks it, POSIX semantics). `on_switch` runs after each swap (the
overlay's clean-up).
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable

from serving.snapshot import Snapshot, current_id, open_snapshot, snapshot_path
from serving.snapshot_indexes import build_all
from storylake.settings import Settings

log = logging.getLogger(__name__)
QUERY_THREADS = 1


class SnapshotHolder:
    def __init__(self, settings: Settings, on_switch: Callable[[Snapshot], None] | None = None,
                 poll_s: float = 1.0) -> None:
        self.settings = settings
        self.on_switch = on_switch
        self.poll_s = poll_s
        self.current: Snapshot | None = None
        self.switches = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Load the snapshot CURRENT names if it is not the one served; True when it switched."""
        with self._lock:
            sid = current_id(self.settings)
            if sid is None or (self.current is not None and self.current.snapshot_id == sid):
                return False
            snap = open_snapshot(snapshot_path(self.settings, sid))
            # Requests run concurrently on the server's threads: one DuckDB thread per query, not one per core
            # per query (measured: the per-core default oversubscribes 2 cores and multiplies p99).
            snap.con.execute(f"SET threads = {QUERY_THREADS}")
            build_all(snap)
            self.current = snap
            self.switches += 1
            # The indexes and everything loaded so far live as long as the snapshot: move them out of the cyclic
            # collector's generations, so its full collections (which pause every request) stay short.
            gc.collect()
            gc.freeze()
        log.info("serving snapshot %s (as_of %s)", snap.snapshot_id, snap.as_of.isoformat())
        if self.on_switch is not None:
            try:
                self.on_switch(snap)
            except Exception:  # noqa: BLE001 - a failed clean-up must not stop the switch
                log.exception("after switching to snapshot %s", snap.snapshot_id)
        return True

    def start(self) -> None:
        try:
            self.refresh()
        except Exception:  # noqa: BLE001 - /readyz reports not ready until a snapshot opens
            log.exception("cannot open the serving snapshot yet")
        self._thread = threading.Thread(target=self._loop, name="snapshot-holder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - keep serving the previous snapshot, try again next poll
                log.exception("cannot switch to the published snapshot; still serving the previous one")

"""Wall time and peak RSS of a block of work (this process and its finished children)."""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    samples: list[tuple[float, int]] = field(default_factory=list)  # (time.perf_counter(), RSS bytes)

    def peak_between_mb(self, start: float, end: float) -> float:
        """Peak sampled RSS (MB) between two time.perf_counter() instants."""
        return max((rss for t, rss in self.samples if start <= t <= end), default=0) / 1e6


@contextmanager
def measure(*, include_self: bool = True) -> Iterator[Measurement]:
    """Samples the RSS of this process plus its live children every 50 ms; reports the peak (`include_self`
    false: the children's only, for work done in a child process while this one waits)."""
    m = Measurement()
    me = psutil.Process()
    stop = threading.Event()
    peak = [0]

    def sample() -> None:
        while not stop.is_set():
            try:
                rss = (me.memory_info().rss if include_self else 0) + sum(
                    c.memory_info().rss for c in me.children(recursive=True) if c.is_running()
                )
            except psutil.Error:
                rss = 0
            peak[0] = max(peak[0], rss)
            m.samples.append((time.perf_counter(), rss))
            stop.wait(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    try:
        yield m
    finally:
        m.seconds = time.perf_counter() - t0
        stop.set()
        thread.join()
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 if include_self else 0
        m.peak_rss_mb = max(peak[0], children) / 1e6

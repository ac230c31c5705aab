"""Wall time and peak RSS of a block of work (this process and its finished children), and how busy the machine's
CPUs were meanwhile."""

from __future__ import annotations

import contextlib
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
    # (time.perf_counter(), the machine's busy CPU seconds, its CPU seconds: both summed over its cores since boot)
    cpu: list[tuple[float, float, float]] = field(default_factory=list)

    def peak_between_mb(self, start: float, end: float) -> float:
        """Peak sampled RSS (MB) between two time.perf_counter() instants."""
        return max((rss for t, rss in self.samples if start <= t <= end), default=0) / 1e6

    def cpu_between(self, start: float, end: float) -> tuple[float, float] | None:
        """(busy CPU seconds of the whole machine, the share of its cores' time they are, in %) between two
        time.perf_counter() instants, from the samples nearest inside them: what the work measured plus anything
        else running kept the cores busy (on an otherwise idle machine, the work's own). None without two samples
        inside (a span shorter than the sampling interval)."""
        inside = [c for c in self.cpu if start <= c[0] <= end]
        if len(inside) < 2:
            return None
        (_t0, busy0, all0), (_t1, busy1, all1) = inside[0], inside[-1]
        busy, total = busy1 - busy0, all1 - all0
        return busy, (100 * busy / total if total > 0 else 0.0)


RESCAN = 10  # samples between two listings of the process tree (0.5 s)
# A child is not counted in its first 0.1 s after the sampler first lists it: between fork and exec it reports its
# parent's RSS (a pytest or benchmark process of several GB would count twice; CI saw a 300 MB child measured at
# 650 MB). Measured from the listing, not from the child's create_time, which psutil derives from the whole-second
# boot time (up to 1 s off).
EXEC_GRACE_S = 0.1


def _started_during(listed: list[psutil.Process], before: set[int]) -> list[psutil.Process]:
    """The processes of `listed` (this process's descendants) that are neither one of `before` (its children when
    the block began) nor a descendant of one."""
    excluded = set(before)
    parents: dict[int, int | None] = {}
    for c in listed:
        with contextlib.suppress(psutil.Error):
            parents[c.pid] = c.ppid()
    changed = True
    while changed:  # the listing's order is not the tree's: repeat until no more descendants are found
        changed = False
        for pid, ppid in parents.items():
            if pid not in excluded and ppid in excluded:
                excluded.add(pid)
                changed = True
    return [c for c in listed if c.pid not in excluded]


CPU_EVERY = 5  # RSS samples between two samples of the machine's CPU times (0.25 s)


def _cpu_sample() -> tuple[float, float, float]:
    """(now, the machine's busy CPU seconds, its CPU seconds), summed over its cores: busy is all but idle and
    I/O wait."""
    times = psutil.cpu_times()
    # Linux counts guest time in user time too (psutil's own percentages subtract it the same way)
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return time.perf_counter(), total - idle, total


@contextmanager
def measure(*, include_self: bool = True) -> Iterator[Measurement]:
    """Samples the RSS of this process plus the children it starts during the block every 50 ms (the children listed
    every 0.5 s); reports the peak (`include_self` false: the children's only, for work done in a child process while
    this one waits). A process that was already a child when the block began is not the block's work (a test's or an
    earlier block's process still ending): it does not count. The machine's CPU times are sampled every 0.25 s
    (Measurement.cpu_between)."""
    m = Measurement()
    me = psutil.Process()
    stop = threading.Event()
    peak = [0]
    try:
        before = {c.pid for c in me.children(recursive=True)}
    except psutil.Error:
        before = set()

    def sample() -> None:
        # Listing the children walks every process of the machine (/proc/*/stat): only every RESCAN-th sample,
        # the tree's known processes are read in between (/proc/<pid>/statm), so the sampling does not take CPU
        # from the run it measures (it took ~3% of a 2-core hour, listing the children 20 times a second).
        children: list[psutil.Process] = []
        first_seen: dict[int, float] = {}
        tick = 0
        while not stop.is_set():
            try:
                now = time.perf_counter()
                if tick % RESCAN == 0:
                    children = _started_during(me.children(recursive=True), before)
                    for c in children:
                        first_seen.setdefault(c.pid, now)
                rss = me.memory_info().rss if include_self else 0
                for c in children:
                    with contextlib.suppress(psutil.Error):  # a child that has ended since the last listing
                        if now - first_seen[c.pid] >= EXEC_GRACE_S:
                            rss += c.memory_info().rss
            except psutil.Error:
                rss = 0
            if tick % CPU_EVERY == 0:
                m.cpu.append(_cpu_sample())
            tick += 1
            peak[0] = max(peak[0], rss)
            m.samples.append((time.perf_counter(), rss))
            stop.wait(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    earlier = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    try:
        yield m
    finally:
        m.seconds = time.perf_counter() - t0
        stop.set()
        thread.join()
        m.cpu.append(_cpu_sample())
        # the largest finished child's peak, if one that ended during the block set it (the counter spans the
        # process's life: a child of an earlier block, e.g. a bigger engine, must not count here)
        finished = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        children = finished * 1024 if include_self and finished > earlier else 0
        m.peak_rss_mb = max(peak[0], children) / 1e6

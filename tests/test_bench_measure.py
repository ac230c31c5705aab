"""toolkit.bench.measure: the peak RSS of a block of work, its children included."""

from __future__ import annotations

import subprocess
import sys

from toolkit.bench.measure import measure


def test_the_peak_counts_a_child_started_during_the_block() -> None:
    hold = "b = bytearray(300 * 2**20); import time; time.sleep(1.5)"  # 300 MB held for 1.5 s
    with measure(include_self=False) as m:
        subprocess.run([sys.executable, "-c", hold], check=True)
    assert 300 <= m.peak_rss_mb < 600
    sampled = max(rss for _t, rss in m.samples) / 1e6  # seen while it ran, not only from the finished child's rusage
    assert sampled >= 300


def test_a_bigger_child_of_an_earlier_block_does_not_count() -> None:
    import psutil

    big = "b = bytearray(2**30); b[::4096] = b'x' * len(b[::4096])"  # a 1 GB child, finished before the block
    subprocess.run([sys.executable, "-c", big], check=True)
    own = psutil.Process().memory_info().rss / 1e6
    with measure() as m:
        subprocess.run([sys.executable, "-c", "b = bytearray(50 * 2**20)"], check=True)
    assert m.peak_rss_mb < own + 500  # this process and its 50 MB child, not the 1 GB one


def test_a_child_alive_before_the_block_does_not_count() -> None:
    """A process still running from before the block (e.g. an earlier test's server ending) is not the block's work:
    only the children the block starts count."""
    import time

    import psutil

    hold = "b = bytearray(400 * 2**20); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(30)"
    earlier = subprocess.Popen([sys.executable, "-c", hold])
    try:
        proc = psutil.Process(earlier.pid)
        deadline = time.monotonic() + 20
        while proc.memory_info().rss < 400 * 2**20 and time.monotonic() < deadline:  # it holds its 400 MB
            time.sleep(0.05)
        assert proc.memory_info().rss >= 400 * 2**20
        with measure(include_self=False) as m:
            subprocess.run([sys.executable, "-c", "b = bytearray(50 * 2**20); import time; time.sleep(1.2)"],
                           check=True)
        assert 50 <= m.peak_rss_mb < 300  # the 50 MB child, not the 400 MB one alive since before
    finally:
        earlier.kill()
        earlier.wait()


def test_a_child_started_by_a_process_alive_before_the_block_does_not_count() -> None:
    """A process from before the block that starts its own child during it (a leftover server forking a worker): that
    grandchild is not the block's work either."""
    import time

    spawn_later = ("import subprocess, sys, time; time.sleep(0.3); subprocess.run([sys.executable, '-c', "
                   "\"b = bytearray(400 * 2**20); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(2)\"])")
    earlier = subprocess.Popen([sys.executable, "-c", spawn_later])
    try:
        time.sleep(0.1)  # it is this process's child when the block begins
        with measure(include_self=False) as m:
            subprocess.run([sys.executable, "-c", "b = bytearray(50 * 2**20); import time; time.sleep(2)"],
                           check=True)
        assert 50 <= m.peak_rss_mb < 300  # the 50 MB child, not the 400 MB grandchild of the earlier process
    finally:
        earlier.kill()
        earlier.wait()


def test_the_cpu_a_child_keeps_busy_is_measured() -> None:
    """A child spinning one core for 1.5 s: the machine's busy CPU seconds over the block count it (anything else
    running only adds), and never exceed the block's wall time on every core."""
    import os
    import time

    spin = "import time\nt = time.perf_counter()\nwhile time.perf_counter() - t < 1.5:\n    pass"
    with measure(include_self=False) as m:
        subprocess.run([sys.executable, "-c", spin], check=True)
    cores = os.cpu_count() or 1
    measured = m.cpu_between(m.cpu[0][0], m.cpu[-1][0])
    assert measured is not None
    busy, pct = measured
    assert 1.2 <= busy <= m.seconds * cores + 0.5
    assert 80 / cores <= pct <= 100
    assert m.cpu_between(time.perf_counter() + 10, time.perf_counter() + 20) is None  # no sample inside

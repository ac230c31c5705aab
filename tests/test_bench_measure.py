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

"""jobs/lanes.py run_jobs: workers take the first ready job in the given order; needs are respected, every job runs
once, a failure stops further starts and raises the first failed job's error once every worker has ended."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.lanes import Job, run_jobs

LOG = logging.getLogger("lanes-test")


class Recorder:
    """Jobs that record when they start and end (a global sequence), and how many run at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []
        self.running = 0
        self.most = 0

    def job(self, name: str, seconds: float = 0.0, fail: bool = False) -> Job:
        def run() -> dict[str, int]:
            with self.lock:
                self.events.append(("start", name))
                self.running += 1
                self.most = max(self.most, self.running)
            time.sleep(seconds)
            with self.lock:
                self.running -= 1
                self.events.append(("end", name))
            if fail:
                raise RuntimeError(f"{name} failed")
            return {name: len(name)}

        return name, run

    def at(self, kind: str, name: str) -> int:
        return self.events.index((kind, name))


def run(jobs: list[Job], workers: int, needs: dict[str, tuple[str, ...]] | None = None) -> dict[str, int]:
    return run_jobs(jobs, workers=workers, logger=LOG, layer="test", needs=needs)


def test_one_worker_runs_the_jobs_in_order() -> None:
    r = Recorder()
    assert run([r.job("a"), r.job("bb"), r.job("ccc")], 1) == {"a": 1, "bb": 2, "ccc": 3}
    assert r.events == [("start", "a"), ("end", "a"), ("start", "bb"), ("end", "bb"), ("start", "ccc"),
                        ("end", "ccc")]


def test_two_workers_take_the_next_ready_job_and_wait_for_what_a_job_needs() -> None:
    r = Recorder()
    # long first; "after" needs "long", so the second worker takes "short" and then "other" while "long" runs
    jobs = [r.job("long", 0.3), r.job("after", 0.0), r.job("short", 0.05), r.job("other", 0.05)]
    rows = run(jobs, 2, needs={"after": ("long",)})
    assert rows == {"long": 4, "after": 5, "short": 5, "other": 5}
    assert r.most == 2
    assert r.at("end", "long") < r.at("start", "after")
    assert r.at("end", "other") < r.at("end", "long")  # both short jobs ran beside the long one
    assert [e for e in r.events if e[0] == "start"][:2] == [("start", "long"), ("start", "short")]


def test_a_failure_starts_no_further_job_and_raises_the_first_failed_in_order_once_all_ended() -> None:
    r = Recorder()
    jobs = [r.job("slow", 0.2), r.job("bad", 0.0, fail=True), r.job("never", 0.0)]
    with pytest.raises(RuntimeError, match="bad failed"):
        run(jobs, 2)
    assert ("start", "never") not in r.events
    assert ("end", "slow") in r.events  # the running job ended before the error was raised
    r = Recorder()
    with pytest.raises(RuntimeError, match="first failed"):  # both fail: the earlier one's error
        run([r.job("first", 0.1, fail=True), r.job("second", 0.0, fail=True)], 2)


def test_needs_must_come_before_the_job() -> None:
    r = Recorder()
    with pytest.raises(ValueError, match=r"job a needs \['b'\], which do not come before it"):
        run([r.job("a"), r.job("b")], 2, needs={"a": ("b",)})
    assert r.events == []


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_property_every_job_runs_once_after_what_it_needs(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 7))
    workers = data.draw(st.integers(1, 3))
    names = [f"j{i}" for i in range(n)]
    needs = {name: tuple(data.draw(st.sets(st.sampled_from(names[:i]), max_size=2))) if i else ()
             for i, name in enumerate(names)}
    r = Recorder()
    sleeps: Callable[[int], float] = lambda i: data.draw(st.sampled_from([0.0, 0.002, 0.01]))  # noqa: E731
    rows = run([r.job(name, sleeps(i)) for i, name in enumerate(names)], workers, needs)
    assert rows == {name: len(name) for name in names}
    assert sorted(name for kind, name in r.events if kind == "start") == sorted(names)
    assert r.most <= workers
    for name, required in needs.items():
        for other in required:
            assert r.at("end", other) < r.at("start", name)

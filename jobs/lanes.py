"""Independent jobs of one layer, run side by side: workers (threads of the calling process) each take the next job
that is ready, in the order given, until none is left.

A job mostly waits on the engine (Spark Connect) or on Delta commits, so two jobs at once keep the engine's cores
busy where one job alone leaves them idle between its stages; the engine runs their queries concurrently. Jobs are
given longest first, and a worker takes the first one whose `needs` (jobs whose tables it reads) have finished, so
the workers end close together whatever the jobs' lengths (fixed lanes of jobs left one lane idle for 1-2 s at the
end of each layer on the 1M views/day benchmark's hour). With one worker (Settings.job_lanes 1) the jobs run one
after the other, in order. The results do not depend on it: a job reads no table another job of the same call
writes unless it needs that job (jobs writing a shared table, ops.quarantine, take turns: jobs.silver.quarantine).
"""

from __future__ import annotations

import graphlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from types import ModuleType

from jobs.engine_workarounds import lost_operation
from storylake import failpoints

Job = tuple[str, Callable[[], dict[str, int]]]  # (name, run -> rows written per table)


@contextmanager
def timed(name: str, counts: dict[str, int], logger: logging.Logger) -> Iterator[None]:
    """Log a job's time and the rows it wrote (its keys added to `counts` meanwhile)."""
    before, t0 = set(counts), time.perf_counter()
    yield
    wrote = {k: v for k, v in counts.items() if k not in before}
    logger.info("%s: %.2f s %s", name, time.perf_counter() - t0, wrote or "")


def job_name(module: ModuleType) -> str:
    """A job module's name: its module's last part (`jobs.silver.view_events` -> view_events)."""
    return module.__name__.rsplit(".", 1)[-1]


def module_jobs(modules: Sequence[ModuleType], run: Callable[[ModuleType, str], dict[str, int]]) -> list[Job]:
    """A lane of job modules, each named after its module (job_name) and run as run(module, name)."""
    names = [job_name(m) for m in modules]
    return [(name, partial(run, m, name)) for m, name in zip(modules, names, strict=True)]


def run_job(name: str, job: Callable[[], dict[str, int]], logger: logging.Logger) -> dict[str, int]:
    """job(); run once more from its start if the engine lost the operation it had finished
    (engine_workarounds.lost_operation): jobs replace their slices, so a second run writes the same tables."""
    try:
        return job()
    except Exception as exc:
        if not lost_operation(exc):
            raise
        logger.warning("%s: the engine lost a finished operation (%s); running the job again", name,
                       str(exc).splitlines()[0][:200])
        return job()


def run_jobs(jobs: Sequence[Job], *, workers: int, logger: logging.Logger, layer: str,
             needs: Mapping[str, Collection[str]] | None = None) -> dict[str, int]:
    """Run the jobs (timed and logged; failpoint `<layer>.after_<job>` after each; a job the engine failed by losing a
    finished operation is run again once: run_job) on `workers` threads, each taking the first job in `jobs`' order
    whose `needs` (job name -> names of the jobs it reads the tables of, each earlier in `jobs`) have finished; rows
    written per table. After a failure no further job starts, the running ones end before the error is raised (no job
    outlives the call), and the first failed job's error (in `jobs`' order) is raised."""
    needed = {name: set((needs or {}).get(name, ())) for name, _ in jobs}
    seen: set[str] = set()
    for name, _ in jobs:
        if not needed[name] <= seen:
            raise ValueError(f"job {name} needs {sorted(needed[name] - seen)}, which do not come before it")
        seen.add(name)

    def timed_run(name: str, job: Callable[[], dict[str, int]]) -> dict[str, int]:
        out: dict[str, int] = {}
        with timed(name, out, logger):
            out.update(run_job(name, job, logger))
        failpoints.reach(f"{layer}.after_{name}")
        return out

    rows: dict[str, int] = {}
    if workers < 2 or len(jobs) < 2:
        for name, job in jobs:
            rows.update(timed_run(name, job))
        return rows
    # the standard library's scheduler of a dependency graph's nodes as they become ready (graphlib); among the
    # ready jobs a worker takes the first in `jobs`' order (longest first)
    graph = graphlib.TopologicalSorter(needed)
    graph.prepare()
    order = {name: i for i, (name, _) in enumerate(jobs)}
    by_name = dict(jobs)
    ready: list[str] = []
    errors: dict[str, BaseException] = {}
    turn = threading.Condition()

    def worker() -> None:
        while True:
            with turn:
                while True:
                    if errors or not graph.is_active():
                        return
                    ready.extend(graph.get_ready())
                    if ready:
                        name = min(ready, key=order.__getitem__)
                        ready.remove(name)
                        break
                    turn.wait()
            try:
                out = timed_run(name, by_name[name])
            except BaseException as exc:  # noqa: BLE001 - raised by run_jobs once every worker has ended
                with turn:
                    errors[name] = exc
                    turn.notify_all()
                return
            with turn:
                rows.update(out)
                graph.done(name)
                turn.notify_all()

    with ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix=f"{layer}-lane") as pool:
        for future in [pool.submit(worker) for _ in range(min(workers, len(jobs)))]:
            future.result()
    if errors:
        raise errors[next(name for name, _ in jobs if name in errors)]
    return rows

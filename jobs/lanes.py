"""Independent jobs of one layer, run in lanes: each lane runs its jobs in turn, the lanes side by side.

A job mostly waits on the engine (Spark Connect) or on Delta commits, so two lanes of jobs that share no table keep
the engine's cores busy where one job alone leaves them idle between its stages. Lanes are threads of the
calling process; the engine runs their queries concurrently. With `parallel` false (Settings.job_lanes 1) the
lanes run one after the other, in order. The results do not depend on it: no job of a layer reads a table another
job of the same call writes (jobs writing a shared table, ops.quarantine, take turns: jobs.silver.quarantine).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
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


def run_lanes(lanes: Sequence[Sequence[Job]], *, parallel: bool, logger: logging.Logger, layer: str
              ) -> dict[str, int]:
    """Run every lane's jobs (timed and logged; failpoint `<layer>.after_<job>` after each; a job the engine
    failed by losing a finished operation is run again once: run_job); rows written per
    table. Every lane ends before an error of one is raised (no job outlives the call); the first lane's error
    wins."""

    def lane(jobs: Sequence[Job]) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, job in jobs:
            with timed(name, out, logger):
                out.update(run_job(name, job, logger))
            failpoints.reach(f"{layer}.after_{name}")
        return out

    rows: dict[str, int] = {}
    if not parallel or len(lanes) < 2:
        for jobs in lanes:
            rows.update(lane(jobs))
        return rows
    with ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix=f"{layer}-lane") as pool:
        futures = [pool.submit(lane, jobs) for jobs in lanes]
        wait(futures)
        for future in futures:
            rows.update(future.result())
    return rows

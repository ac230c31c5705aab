"""Progress reporting for long-running commands: a rich bar on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType

from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

log = logging.getLogger("storylake.progress")


class Progress:
    """Counts work done (bytes or items) and lines; shows rate. Logs every ~5 s when not a TTY."""

    def __init__(self, label: str, *, total: int, unit: str = "", enabled: bool = True) -> None:
        self.label, self.total, self.unit, self.enabled = label, total, unit, enabled
        self.done = 0
        self.lines = 0
        self._t0 = time.perf_counter()
        self._last_log = self._t0
        self._rich: RichProgress | None = None
        self._task: int | None = None

    def __enter__(self) -> Progress:
        if self.enabled and sys.stderr.isatty():
            size_col = DownloadColumn() if self.unit == "B" else MofNCompleteColumn()
            self._rich = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), size_col,
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                transient=False,
            )
            self._rich.start()
            self._task = self._rich.add_task(self.label, total=self.total, rate="")
        return self

    def advance(self, amount: int, *, lines: int = 0) -> None:
        self.done += amount
        self.lines += lines
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        rate = f"{self.lines / elapsed:,.0f} lines/s" if self.lines else ""
        if self._rich is not None and self._task is not None:
            self._rich.update(self._task, advance=amount, rate=rate)
        elif self.enabled and (time.perf_counter() - self._last_log > 5 or self.done >= self.total):
            self._last_log = time.perf_counter()
            log.info("%s: %d/%d%s %s %s", self.label, self.done, self.total, self.unit, self.lines and
                     f"({self.lines:,} lines)" or "", rate)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._rich is not None:
            self._rich.stop()

"""generate(): the synthetic landing-event generator, hour by hour.

Order of work (all deterministic, no wall-clock time in the output):
  1. build the world (users, graph, trickle of relationship changes) and emit the initial graph;
  2. calibrate the volume (posting rate, reach) to the view target;
  3. for each day, draw the day's stories; for each hour: emit the hour's posting events
     (segment_created / deleted / archived), simulate the viewing of the stories that started in that hour
     (their receipts spread over the next 24 h and are appended to the later hour folders), the relationship
     trickle and the DMs/likes/comments.
Each emitted table goes through fault injection, is sorted by (arrival hour, event time), gets event ids
and is appended to its hour folders. Memory holds the world, one day's stories and one batch of events
(about VIEW_BATCH receipts), never a Python object per event.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from storylake.clock import utc

from .events import hourly_social, simulate_viewing
from .faults import DUPLICATE, MALFORMED, OUT_OF_RANGE, WRONG_TYPE, FaultInjector, FaultRates, Prepared
from .profiles import initial_profiles, profile_changes
from .render import event_time, faulty_line, render_block
from .schema import EVENT_TYPES, MS_DAY, MS_HOUR
from .stories import content_tables, make_day_stories
from .streams import stream
from .table import EventTable
from .volume import NATURAL_VIEWS_PER_USER_DAY, calibrate, story_stats
from .world import build_world, initial_graph
from .writer import LandingWriter

DEFAULT_START = datetime(2026, 11, 1, tzinfo=UTC)
RENDER_CHUNK = 32_768  # rows formatted at once
EMIT_CHUNK = 500_000  # rows fault-injected and sorted at once
VIEW_BATCH = 200_000  # expected receipts simulated at once
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class GenerateReport:
    out: Path
    users: int
    days: int
    seed: int
    start: datetime
    end: datetime  # exclusive; every event_time is in [start, end)
    views_target: int
    stories: int
    segments: int
    files: list[str] = field(default_factory=list)  # relative to `out`, sorted
    lines_per_event_type: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)  # injected fault counts by kind
    first_event_time: datetime | None = None
    last_event_time: datetime | None = None
    bytes_written: int = 0

    @property
    def files_written(self) -> int:
        return len(self.files)

    @property
    def lines_per_type(self) -> dict[str, int]:
        """Alias of lines_per_event_type."""
        return self.lines_per_event_type

    @property
    def total_lines(self) -> int:
        return sum(self.lines_per_event_type.values())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        for key in ("start", "end", "first_event_time", "last_event_time"):
            d[key] = _iso(d[key])
        d["files_written"] = self.files_written
        d["total_lines"] = self.total_lines
        return d


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(milliseconds=1)


def _from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _prepare_out(out: Path, overwrite: bool) -> None:
    existing = [out / t for t in EVENT_TYPES if (out / t).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{out} already holds landing folders ({existing[0].name}, ...); pass overwrite=True"
        )
    for folder in existing:
        shutil.rmtree(folder)
    out.mkdir(parents=True, exist_ok=True)


class _Run:
    """State of one generate() call: ids, counters, the writer and the progress bar."""

    def __init__(self, out: Path, seed: int, injector: FaultInjector, progress: Progress | None) -> None:
        self.seed = seed
        self.injector = injector
        self.writer = LandingWriter(out)
        self.next_id = dict.fromkeys(EVENT_TYPES, 1)
        self.emissions = 0
        self.first: int | None = None
        self.last: int | None = None
        self.progress = progress
        self.task: Any = None
        self.t0 = time.perf_counter()

    def emit(self, table: EventTable, faults_key: tuple[int, ...] | None = None) -> None:
        """Inject faults, sort, number and write one table (big tables in time-ordered chunks). `faults_key`: the
        table's own fault stream (profile events), so that adding them leaves every other table's faults as
        they were; by default the stream of the emission's number."""
        if faults_key is None:
            purpose, key = "faults", (self.emissions,)
            self.emissions += 1
        else:
            purpose, key = "profile_faults", faults_key
        if len(table) > EMIT_CHUNK:
            table = table.take(np.argsort(table.time, kind="stable"))
        for i, lo in enumerate(range(0, len(table), EMIT_CHUNK)):
            chunk = table if len(table) <= EMIT_CHUNK else table.slice(lo, lo + EMIT_CHUNK)
            self.write(self.injector.prepare(chunk, stream(self.seed, purpose, *key, i)))

    def write(self, prep: Prepared) -> None:
        t = prep.table
        etype, n = t.event_type, len(t)
        if n == 0:
            return
        eids = self.next_id[etype] + np.arange(n, dtype=np.int64)
        self.next_id[etype] += n
        lo, hi = int(t.time.min()), int(t.time.max())
        self.first = lo if self.first is None else min(self.first, lo)
        self.last = hi if self.last is None else max(self.last, hi)
        special_codes = np.array([MALFORMED, WRONG_TYPE, OUT_OF_RANGE])
        for s in range(0, n, RENDER_CHUNK):
            e = min(n, s + RENDER_CHUNK)
            sub = t.slice(s, e)
            code = prep.code[s:e]
            blob, off = render_block(sub, eids[s:e])
            special = np.flatnonzero(np.isin(code, special_codes)).tolist()
            broken = {
                i: faulty_line(sub, i, int(eids[s + i]), event_time(int(sub.time[i])), int(code[i]),
                               int(prep.variant[s + i])).encode("utf-8") + b"\n"
                for i in special
            }  # fmt: skip
            arrival = prep.arrival_hour[s:e]
            dup = np.flatnonzero(code == DUPLICATE)
            # Rows are sorted by (arrival hour, event time), so each hour is one contiguous run.
            cuts = np.flatnonzero(np.diff(arrival)) + 1
            starts = [0, *cuts.tolist()]
            stops = [*cuts.tolist(), e - s]
            for a, b in zip(starts, stops, strict=True):
                pieces: list[bytes] = []
                cur = a
                for i in special:
                    if a <= i < b:
                        pieces += [blob[off[cur] : off[i]], broken[i]]
                        cur = i + 1
                pieces.append(blob[off[cur] : off[b]])
                dups = dup[(dup >= a) & (dup < b)].tolist()
                pieces += [blob[off[i] : off[i + 1]] for i in dups]
                self.writer.add(etype, int(arrival[a]), b"".join(pieces), b - a + len(dups))

    def tick(self) -> None:
        if self.progress is None:
            return
        lines = sum(self.writer.lines_per_type.values())
        rate = lines / max(time.perf_counter() - self.t0, 1e-9)
        self.progress.update(self.task, advance=1, lines=f"{lines:,}", rate=f"{rate:,.0f}")


def generate(
    out: Path,
    *,
    users: int,
    days: int,
    seed: int,
    start: datetime = DEFAULT_START,
    views: int | None = None,
    faults: FaultRates = FaultRates(),  # noqa: B008 - frozen dataclass, safe default
    progress: bool = True,
    overwrite: bool = False,
) -> GenerateReport:
    """Write a deterministic synthetic landing dataset under `out` and report what was written.

    users: number of users (ids 1..users); days: length of the window [start, start + days);
    seed: any non-negative int (same arguments -> byte-identical files);
    views: approximate total segment_view lines (None: about 32 per user per day);
    faults: fault rates (FaultRates.none() for clean data); progress: show a rich progress bar;
    overwrite: replace existing landing folders in `out` (otherwise they are an error).
    """
    if users < 2:
        raise ValueError("users must be >= 2")
    if days < 1:
        raise ValueError("days must be >= 1")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    if views is not None and views < 0:
        raise ValueError("views must be >= 0")
    out = Path(out)
    start = utc(start)
    start_ms = _ms(start)
    end_ms = start_ms + days * MS_DAY
    _prepare_out(out, overwrite)

    world = build_world(users, seed, start_ms, end_ms)
    target = views if views is not None else NATURAL_VIEWS_PER_USER_DAY * users * days
    plan = calibrate(world, seed, days, target, faults)
    injector = FaultInjector(faults, world)

    bar: Progress | None = None
    if progress:
        bar = Progress(
            TextColumn("[bold]generate[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("hours  {task.fields[lines]} lines  {task.fields[rate]} lines/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
    run = _Run(out, seed, injector, bar)
    stories = segments = 0
    followed: set[int] = set()
    try:
        if bar is not None:
            bar.start()
            run.task = bar.add_task("generate", total=days * 24, lines="0", rate="0")
        run.emit(initial_profiles(world.n, world.start_ms, stream(seed, "profiles")), faults_key=(0,))
        for table in initial_graph(world, seed):
            run.emit(table)
        world.initial_first, world.initial_last = [], []
        trickle_hour = (world.trickle.time - start_ms) // MS_HOUR
        trickle_bounds = np.searchsorted(trickle_hour, np.arange(days * 24 + 1))
        next_segment = next_sticker = 1
        for d in range(days):
            day_start = start_ms + d * MS_DAY
            st = make_day_stories(world, seed, d, plan.scale, next_segment, next_sticker)
            next_segment += st.n_segments
            next_sticker += st.n_stickers
            stories += st.n_stories
            segments += st.n_segments
            expected = story_stats(world, st).expected_per_story(plan.k)
            story_hour = (st.start - day_start) // MS_HOUR
            bounds = np.searchsorted(story_hour, np.arange(25))
            for hh in range(24):
                h = d * 24 + hh
                # Posting events of the hour (the day's first slice also takes anything earlier).
                slice_lo = day_start + hh * MS_HOUR if hh else 0
                for table in content_tables(world, st, slice_lo, day_start + (hh + 1) * MS_HOUR):
                    run.emit(table)
                lo_ms = max(day_start + hh * MS_HOUR, world.active_ms)
                hi_ms = day_start + (hh + 1) * MS_HOUR
                # The hour's stories, in parts of about VIEW_BATCH expected receipts (bounded memory).
                lo, hi = int(bounds[hh]), int(bounds[hh + 1])
                part = (np.cumsum(expected[lo:hi]) // VIEW_BATCH).astype(np.int64)
                cuts = [lo, *(lo + np.flatnonzero(np.diff(part)) + 1).tolist(), hi]
                follows: list[EventTable] = []
                for i in range(len(cuts) - 1):
                    sidx = np.arange(cuts[i], cuts[i + 1], dtype=np.int64)
                    rng = stream(seed, "viewing", d, hh, i)
                    viewing = simulate_viewing(world, st, sidx, plan.k, rng, followed)
                    for table in (viewing.views, viewing.navigation, viewing.stickers, viewing.engagement):
                        run.emit(table)
                    follows.append(viewing.relationship)
                trickle = world.trickle.take(np.arange(trickle_bounds[h], trickle_bounds[h + 1]))
                run.emit(EventTable.concat("relationship", [trickle, *follows]))
                run.emit(hourly_social(world, stream(seed, "social", d, hh), lo_ms, hi_ms))
                run.emit(profile_changes(world.n, lo_ms, hi_ms, stream(seed, "profile_changes", d, hh)),
                         faults_key=(1, d, hh))
                run.tick()
            # Segments of the day's last stories created after midnight, and late deletions/archives.
            for table in content_tables(world, st, day_start + MS_DAY, world.end_ms):
                run.emit(table)
    finally:
        if bar is not None:
            bar.stop()
    files = run.writer.close()
    return GenerateReport(
        out=out,
        users=users,
        days=days,
        seed=seed,
        start=start,
        end=_from_ms(end_ms),
        views_target=int(target),
        stories=stories,
        segments=segments,
        files=files,
        lines_per_event_type=dict(run.writer.lines_per_type),
        faults=dict(injector.counts),
        first_event_time=None if run.first is None else _from_ms(run.first),
        last_event_time=None if run.last is None else _from_ms(run.last),
        bytes_written=run.writer.bytes_written,
    )

"""The incremental pipeline equals a full run: a generated world's landing files arrive in batches (late files,
redeliveries of whole files and of lines, client retries days apart), each batch is ingested and processed by an
incremental run, and every silver and gold table (and the silver quarantine) ends identical to one full run over
all files, and to `--full-refresh` on the same lake."""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.gold import GOLD_TABLES
from pipeline.run import run_pipeline
from storylake import increments, merge_on_read
from storylake.clock import utc
from storylake.rules.arrival import arrival_hour
from storylake.settings import Settings
from tests.landing_builders import closed
from toolkit.generate import generate

pytestmark = pytest.mark.slow

SILVER = ("segments", "relationships", "view_events", "segment_viewers", "navigation", "sticker_responses",
          "engagements")
HOUR = timedelta(hours=1)
# run-bookkeeping columns: which run computed or quarantined a row, not what the row says
BOOKKEEPING = {"as_of", "batch_id", "quarantined_at"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of a small world with the generator's default faults (late files, duplicates, retries, ...)."""
    out = tmp_path_factory.mktemp("world") / "landing"
    generate(out, users=40, days=2, seed=5, progress=False)
    return out


def landing_files(root: Path) -> list[tuple[datetime, str]]:
    """(arrival hour, path relative to the landing root) of every landing file, oldest hour first."""
    out = []
    for p in root.rglob("*.jsonl"):
        rel = p.relative_to(root).as_posix()
        hour = arrival_hour(rel)
        assert hour is not None, rel
        out.append((hour, rel))
    return sorted(out)


def table_rows(settings: Settings, layer: str, name: str) -> list[str]:
    """The table's rows as sorted JSON (a table stored merge-on-read: as its readers see it)."""
    t = merge_on_read.read_table(settings, f"{layer}.{name}")
    if t is None:
        return []
    rows = [{k: v for k, v in r.items() if k not in BOOKKEEPING} for r in t.to_pylist()]
    if name == "quarantine":  # ingest's own rows name ingest batches, which depend on the arrival order
        rows = [r for r in rows if r["stage"] != "ingest"]
        for r in rows:  # so do the bronze row's own ingest columns in `raw`
            raw = json.loads(r["raw"])
            r["raw"] = {k: v for k, v in raw.items() if k not in ("_batch_id", "_ingested_at")}
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)


def lake_state(settings: Settings) -> dict[str, list[str]]:
    state = {f"silver.{n}": table_rows(settings, "silver", n) for n in SILVER}
    # how a merge-on-read table is split between its base and its changes depends on the runs: not compared
    state |= {f"gold.{n}": table_rows(settings, "gold", n) for n in GOLD_TABLES
              if f"gold.{n}" not in merge_on_read.CHANGES_TABLES}
    state["ops.quarantine"] = table_rows(settings, "ops", "quarantine")
    return state


def place(src_root: Path, files: Iterable[str], dst_root: Path) -> None:
    for rel in files:
        dst = dst_root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src_root / rel, dst)  # keeps the closed file's modification time (ingest's settle time)


def run(spark: Any, settings: Settings, as_of: datetime, **kw: Any) -> None:
    run_pipeline(settings, as_of, spark=spark, publish=False, progress=False, **kw)


def assert_same(got: dict[str, list[str]], want: dict[str, list[str]]) -> None:
    for key in want:
        assert got[key] == want[key], f"{key}: {len(got[key])} rows vs {len(want[key])} in the full run"


def full_run(spark: Any, root: Path, files: list[str], as_of: datetime, work: Path, **options: Any
             ) -> dict[str, list[str]]:
    s = Settings(lake=work / "full_lake", landing=work / "full_landing", **options)
    place(root, files, s.landing)
    run(spark, s, as_of)
    return lake_state(s)


def incremental_runs(
    spark: Any, root: Path, batches: list[tuple[datetime, list[str]]], work: Path, **options: Any
) -> Settings:
    s = Settings(lake=work / "lake", landing=work / "landing", **options)
    for as_of, files in batches:
        place(root, files, s.landing)
        run(spark, s, as_of)
    return s


def test_hourly_incremental_runs_equal_one_full_run(spark: Any, world: Path, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Batches of six arrival hours, each run as of its last hour's end: the first run is a full refresh, every
    later one incremental over the rows its batch brought; the tables end as one full run leaves them. A 10-hour
    lateness window (the generator's late files are 1-5 hours late) seals the pairs' latest view days before the
    second day from the run as of its 10:00 on (gold.author_viewer_latest, gold.ring_signal_sums), which the
    2-day world would not reach with the default 48 hours. Every run updates the story insights of the stories it
    only added interactions to from their last good rows, however few (insight_update_min_stories 0)."""
    options: dict[str, Any] = {"lateness_window_h": 10.0, "insight_update_min_stories": 0}
    files = landing_files(world)
    hours = sorted({h for h, _ in files})
    batches = []
    for i in range(0, len(hours), 6):
        chunk = set(hours[i:i + 6])
        batches.append((max(chunk) + HOUR, [rel for h, rel in files if h in chunk]))
    with caplog.at_level(logging.INFO, logger="jobs.gold.segment_insights"):
        s = incremental_runs(spark, world, batches, tmp_path, **options)
    updated = [int(m.group(1)) for r in caplog.records
               if (m := re.match(r"segment and story insights: (\d+) touched stories updated", r.getMessage()))]
    assert updated and max(updated) > 0  # the update from the added rows ran
    last = increments.last(s)
    assert last is not None and not last.full and last.new_rows and last.horizon is not None
    assert last.horizon > min(hours) + 24 * HOUR  # the late runs recompute the recent past only
    as_of = batches[-1][0]
    want = full_run(spark, world, [rel for _, rel in files], as_of, tmp_path, **options)
    assert_same(lake_state(s), want)
    assert len(want["gold.author_viewer_latest"]) > 100 and len(want["gold.ring_signal_sums"]) > 100  # day 1's pairs
    # the same lake with --full-refresh: same tables again
    run(spark, s, as_of, full_refresh=True)
    assert_same(lake_state(s), want)
    assert increments.last(s).full  # type: ignore[union-attr]


def _redelivery(src: Path, rel: str, dst_root: Path, name: str, hour: datetime, keep: list[int] | None,
                retry_shift: timedelta | None) -> str:
    """Write (some of) the lines of landing file `rel` as a new file in the hour folder `hour`; with retry_shift,
    segment_view lines become client retries: new event_id, same idempotency_key, event_time later by the shift."""
    lines = (src / rel).read_text().splitlines()
    if keep is not None:  # every line whose number modulo 3 is in `keep`
        lines = [ln for i, ln in enumerate(lines) if i % 3 in keep]
    if retry_shift is not None:
        out = []
        for ln in lines:
            try:
                ev = json.loads(ln)
            except ValueError:
                continue
            if not isinstance(ev, dict) or not isinstance(ev.get("event_time"), str):
                continue
            t = utc(ev["event_time"].replace("Z", "+00:00")) + retry_shift
            ev["event_id"] = f"retry-{ev.get('event_id')}"
            ev["event_time"] = t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            out.append(json.dumps(ev))
        lines = out
    event = rel.split("/")[0]
    new_rel = f"{event}/dt={hour:%Y-%m-%d}/hour={hour:%H}/{name}.jsonl"
    dst = dst_root / new_rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("".join(ln + "\n" for ln in lines))
    closed(dst)
    return new_rel


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_property_any_arrival_split_equals_one_full_run(spark: Any, world: Path, data: st.DataObject) -> None:
    """Random arrival batches plus redeliveries (whole files, some lines) and client retries (hours to days
    later), all landing in later hour folders: run by run, the tables equal one full run over the same files,
    whichever way the runs take to the story insights (updated from the added rows or recomputed)."""
    least = data.draw(st.sampled_from([0, 20_000]), label="insight_update_min_stories")
    files = landing_files(world)
    hours = sorted({h for h, _ in files})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        extra_root = work / "extra"
        extras: list[tuple[datetime, str]] = []
        shutil.copytree(world, extra_root)
        n_extra = data.draw(st.integers(1, 4), label="redeliveries")
        for i in range(n_extra):
            h, rel = data.draw(st.sampled_from(files), label=f"file {i}")
            later = [x for x in hours if x >= h]
            at = data.draw(st.sampled_from(later), label=f"lands at {i}")
            kind = data.draw(st.sampled_from(["file", "lines", "retries"]), label=f"kind {i}")
            keep = data.draw(st.lists(st.integers(0, 2), min_size=1, max_size=2, unique=True)) if kind == "lines" \
                else None
            shift = timedelta(hours=data.draw(st.integers(0, 60), label=f"retry shift {i}")) \
                if kind == "retries" else None
            extras.append((at, _redelivery(world, rel, extra_root, f"redelivered-{i}", at, keep, shift)))
        every = sorted(files + extras)
        cuts = sorted(data.draw(st.sets(st.sampled_from(hours[1:]), min_size=1, max_size=3), label="cuts"))
        batches, start = [], hours[0]
        for cut in [*cuts, hours[-1] + HOUR]:
            chunk = [rel for h, rel in every if start <= h < cut]
            batches.append((cut, chunk))
            start = cut
        s = incremental_runs(spark, extra_root, batches, work, insight_update_min_stories=least)
        want = full_run(spark, extra_root, [rel for _, rel in every], batches[-1][0], work)
        assert_same(lake_state(s), want)

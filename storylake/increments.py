"""The pipeline's progress through bronze (ops.increments): what each run planned and what the last good run did.

Silver plans a run's horizon (jobs/horizon.py) and records it `planned`; gold reads that plan; the gold gate (or
gold itself on a lake without gates) records it `done`. The next run processes the bronze rows of ingest batches
after the newest `done` row's `upto_batch` (and the rows whose event time its later as_of newly admits) and
recomputes only the silver/gold rows anchored at or after its horizon. A run whose gate fails is never `done`, so
the next run simply processes the same rows again (write-audit-publish).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from storylake import lake
from storylake.clock import utc
from storylake.settings import Settings

TABLE = "ops.increments"
PLANNED, DONE = "planned", "done"


@dataclass(frozen=True)
class Increment:
    run_id: str
    as_of: datetime
    horizon: datetime | None  # None: a full refresh
    gold_horizon: datetime | None
    upto_batch: str | None
    new_rows: int | None = None
    event_horizon: datetime | None = None  # day-keyed gold tables from its day (None: the horizon's)
    # JSON {table: version}: the inputs of gold's summed rows and gold's restated tables as the last good run left
    # them, recorded before the run wrote (None: not known, e.g. a run since the last good one did not finish)
    silver_versions: str | None = None

    @property
    def full(self) -> bool:
        return self.horizon is None

    def silver_version(self, key: str) -> int | None:
        """The version of table `key` (silver_versions' tables) the last good run left, as this run recorded it before
        it wrote (None: not known)."""
        if self.silver_versions is None:
            return None
        version = json.loads(self.silver_versions).get(key)
        return None if version is None else int(version)


def _rows(settings: Settings) -> pa.Table | None:
    """The table's rows (None without any), read again only after a commit (a run asks a few dozen times: each
    new_bronze call)."""
    t = lake.read_arrow_cached(settings.table_path(*TABLE.split(".")))
    return None if t is None or t.num_rows == 0 else t


def _newest(t: pa.Table) -> Increment | None:
    if t.num_rows == 0:
        return None
    order = pc.sort_indices(t, sort_keys=[("recorded_at", "descending")])
    row = t.take(order.slice(0, 1)).to_pylist()[0]

    def ts(v: datetime | None) -> datetime | None:
        return utc(v) if v is not None else None

    return Increment(run_id=row["run_id"], as_of=utc(row["as_of"]), horizon=ts(row["horizon"]),
                     gold_horizon=ts(row["gold_horizon"]), upto_batch=row["upto_batch"], new_rows=row["new_rows"],
                     event_horizon=ts(row.get("event_horizon")), silver_versions=row.get("silver_versions"))


def last(settings: Settings) -> Increment | None:
    """The newest run whose gold passed (None on a lake where none has)."""
    t = _rows(settings)
    return None if t is None else _newest(t.filter(pc.equal(t.column("state"), DONE)))


def newest_as_of(settings: Settings) -> datetime | None:
    """The latest `as_of` any run brought gold to (its data's instant; a backfill of an older hour does not move it
    back). None on a lake where no run has passed."""
    t = _rows(settings)
    if t is None:
        return None
    done = t.filter(pc.equal(t.column("state"), DONE))
    newest = pc.max(done.column("as_of")).as_py() if done.num_rows else None
    return utc(newest) if newest is not None else None


def planned(settings: Settings, as_of: datetime) -> Increment | None:
    """The newest plan for `as_of` made after the last done run (None: silver has not planned one)."""
    t = _rows(settings)
    if t is None:
        return None
    mine = t.filter(pc.equal(t.column("as_of"), pa.scalar(utc(as_of), t.schema.field("as_of").type)))
    plan = _newest(mine.filter(pc.equal(mine.column("state"), PLANNED)))
    done = _newest(t.filter(pc.equal(t.column("state"), DONE)))
    if plan is None:
        return None
    newest_done_at = pc.max(t.filter(pc.equal(t.column("state"), DONE)).column("recorded_at")).as_py() if done else None
    plan_at = pc.max(mine.filter(pc.equal(mine.column("state"), PLANNED)).column("recorded_at")).as_py()
    return plan if newest_done_at is None or plan_at > newest_done_at else None


def record(settings: Settings, inc: Increment, state: str) -> None:
    # a lake from before event_horizon or silver_versions gains the column (its older rows read null)
    lake.write_table(settings, TABLE, [{**asdict(inc), "state": state, "recorded_at": datetime.now(UTC)}],
                     mode="append", schema_mode="merge")


def complete(settings: Settings, as_of: datetime) -> Increment | None:
    """Gold passed for `as_of`: its plan becomes the last good run (no-op when none is pending)."""
    plan = planned(settings, as_of)
    if plan is not None:
        record(settings, plan, DONE)
    return plan


def _plans_since_done(t: pa.Table) -> pa.Table:
    """The `planned` rows recorded after the newest `done` row (all of them on a lake where none is done)."""
    plans = t.filter(pc.equal(t.column("state"), PLANNED))
    dones = t.filter(pc.equal(t.column("state"), DONE))
    if dones.num_rows:
        plans = plans.filter(pc.greater(plans.column("recorded_at"), pc.max(dones.column("recorded_at"))))
    return plans


def unfinished(settings: Settings) -> Increment | None:
    """The newest plan recorded after the last done run (a run in progress, or one that died or failed its gate)."""
    t = _rows(settings)
    return None if t is None else _newest(_plans_since_done(t))


def attempt_after(settings: Settings, as_of: datetime) -> datetime | None:
    """The as_of of a run planned after the last `done` run for an instant later than `as_of` (it failed, its gate
    did, or it is running), None when none was: its tables may hold rows of events after `as_of`."""
    later = latest_attempt_since_done(settings)
    return later if later is not None and later > utc(as_of) else None


def latest_attempt_since_done(settings: Settings) -> datetime | None:
    """The latest as_of planned after the last `done` run (a run that failed or is running), None when none was."""
    t = _rows(settings)
    since = None if t is None else _plans_since_done(t)
    newest = pc.max(since.column("as_of")).as_py() if since is not None and since.num_rows else None
    return utc(newest) if newest is not None else None

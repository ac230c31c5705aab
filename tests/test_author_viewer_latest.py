"""gold.author_viewer_latest: each (author, viewer) pair's latest view day before the sealed day, kept as state so
that the trailing reach does not regroup 27 days of partials every hour; advanced, kept or rebuilt as the runs'
horizons require, and always equal to what the partials give (a full refresh's contents)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pyspark.sql import types as T

from jobs.gold.author_daily_insights import (
    LATEST,
    PARTIAL,
    TRAILING_DAYS,
    advance_latest,
    as_reach_days,
    latest_days,
    sealed_before,
    trailing_reach,
)
from jobs.horizon import Horizon
from storylake import lake
from storylake.rules.arrival import sealed_day

LATENESS = timedelta(hours=48)
DAY1 = date(2024, 5, 1)
SCHEMA = T.StructType([T.StructField("author_id", T.LongType()), T.StructField("viewer_id", T.LongType()),
                       T.StructField("day", T.DateType())])


def d(n: int) -> date:
    return DAY1 + timedelta(days=n - 1)


def at(n: int, hour: int = 0) -> datetime:
    return datetime(DAY1.year, DAY1.month, DAY1.day, tzinfo=UTC) + timedelta(days=n - 1, hours=hour)


def partial(author: int, viewer: int, n: int) -> dict[str, object]:
    return {"author_id": author, "day": d(n), "viewer_id": viewer, "views": 1, "view_ms": None, "completed": 0}


def incremental(as_of: datetime, first_day: int) -> Horizon:
    """An incremental run as of as_of whose day tables start at first_day."""
    lo = at(first_day)
    return Horizon(as_of=as_of, lo=lo, gold_lo=lo, new_rows=1, event_lo=lo)


def state(settings) -> list[tuple[int, int, date, date]]:
    t = lake.read_arrow(settings.table_path("gold", LATEST))
    assert t is not None
    return sorted((r["author_id"], r["viewer_id"], r["latest_day"], r["before_day"]) for r in t.to_pylist())


def canonical(rows: list[dict[str, object]], before: date) -> list[tuple[int, int, date, date]]:
    """Brute force: per pair the latest day before `before` among the 27 days before it."""
    latest: dict[tuple[int, int], date] = {}
    for r in rows:
        day, key = r["day"], (r["author_id"], r["viewer_id"])
        assert isinstance(day, date)
        if before - timedelta(days=27) <= day < before:
            latest[key] = max(day, latest.get(key, day))  # type: ignore[arg-type]
    return sorted((a, v, day, before) for (a, v), day in latest.items())


def test_latest_days_keeps_each_pairs_latest_day_before_the_sealed_day_within_27_days(spark):
    rows = [(1, 10, d(1)), (1, 10, d(20)), (1, 10, d(30)),  # d(30) is the sealed day itself: not before it
            (1, 11, d(3)),  # 27 days before d(30): the oldest day kept
            (1, 12, d(2)),  # 28 days before: no 28-day window ending on d(30) or later reaches it
            (2, 10, d(29))]
    got = sorted(tuple(r) for r in latest_days(spark.createDataFrame(rows, SCHEMA), d(30)).collect())
    assert got == [(1, 10, d(20), d(30)), (1, 11, d(3), d(30)), (2, 10, d(29), d(30))]


def test_sealed_day_is_as_ofs_minus_the_lateness_window():
    assert sealed_day(at(10, 1), LATENESS) == d(8)
    assert sealed_day(at(10, 0), LATENESS) == d(8)
    assert sealed_day(at(10, 0), timedelta(hours=49)) == d(7)


def test_state_is_built_kept_advanced_and_rebuilt_as_the_runs_require(spark, settings):
    rows = [partial(1, 10, 1), partial(1, 10, 3), partial(1, 11, 2), partial(2, 10, 4), partial(1, 12, 5)]
    lake.write_table(settings, f"gold.{PARTIAL}", rows)
    read = lambda: spark.read.format("delta").load(str(settings.table_path("gold", PARTIAL)))  # noqa: E731
    path = settings.table_path("gold", LATEST)

    # no table yet: built from the partials before the sealed day (as_of d(6) 01:00 - 48 h -> d(4))
    written, seal = advance_latest(spark, settings, incremental(at(6, 1), 5), read())
    assert (written, seal) == ({LATEST: 2}, d(4))
    assert state(settings) == canonical(rows, d(4)) == [(1, 10, d(3), d(4)), (1, 11, d(2), d(4))]
    assert sealed_before(spark, settings) == d(4)
    version = lake.version(path)

    # the same sealed day, a run from a later day: kept as it is (no new version)
    assert advance_latest(spark, settings, incremental(at(6, 5), 5), read()) == ({}, d(4))
    assert lake.version(path) == version

    # the sealed day moves to d(5): advanced from the state and d(4)'s partials (now sealed)
    written, seal = advance_latest(spark, settings, incremental(at(7, 1), 6), read())
    assert (written, seal) == ({LATEST: 3}, d(5))
    assert state(settings) == canonical(rows, d(5)) == [(1, 10, d(3), d(5)), (1, 11, d(2), d(5)), (2, 10, d(4), d(5))]

    # a run that recomputes d(3), before the sealed day (a relationship change, a late delete): its partials
    # changed, so the state is rebuilt from them
    rows = [r for r in rows if r["day"] != d(3)] + [partial(3, 10, 3)]
    lake.write_table(settings, f"gold.{PARTIAL}", rows)
    advance_latest(spark, settings, incremental(at(7, 2), 3), read())
    assert state(settings) == canonical(rows, d(5))
    assert [r for r in state(settings) if r[1] == 10] == [(1, 10, d(1), d(5)), (2, 10, d(4), d(5)), (3, 10, d(3), d(5))]

    # a full refresh rebuilds it too (even with the same sealed day)
    rows = [*rows, partial(4, 10, 2)]
    lake.write_table(settings, f"gold.{PARTIAL}", rows)
    advance_latest(spark, settings, Horizon(as_of=at(7, 3)), read())
    assert state(settings) == canonical(rows, d(5))


@hsettings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seen=st.sets(st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 40)), max_size=25),
    seal=st.integers(2, 38),
    since=st.integers(0, 2),
)
def test_the_state_and_the_partials_from_the_sealed_day_give_the_partials_trailing_reach(spark, seen, seal, since):
    """What the run feeds the trailing reach (the state's rows, then the partials from the sealed day on) gives the
    windows from its first day (the sealed day or later) that all the partials give."""
    first = d(seal + since)
    as_of = at(40, 12)
    rows = spark.createDataFrame([(a, v, d(n)) for a, v, n in seen], SCHEMA)
    window_start = first - timedelta(days=max(TRAILING_DAYS.values()) - 1)
    from pyspark.sql import functions as F

    fed = as_reach_days(latest_days(rows, d(seal))).unionByName(rows.filter(F.col("day") >= F.lit(d(seal))))
    fed = fed.filter(F.col("day") >= F.lit(window_start))
    want = trailing_reach(rows.filter(F.col("day") >= F.lit(window_start)), as_of, first)
    got = trailing_reach(fed, as_of, first)
    assert sorted(tuple(r) for r in got.collect()) == sorted(tuple(r) for r in want.collect())


@pytest.mark.parametrize("storage", ["parquet"])
def test_parquet_storage_advances_the_state_without_reading_the_table_it_overwrites(spark, tmp_path, storage):
    from storylake.settings import Settings

    s = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing", storage=storage)
    rows = [partial(1, 10, 1), partial(1, 11, 4)]
    lake.write_table(s, f"gold.{PARTIAL}", rows)
    from jobs import spark_io

    read = lambda: spark_io.read_table(spark, s, "gold", PARTIAL)  # noqa: E731
    advance_latest(spark, s, incremental(at(6, 1), 5), read())
    assert sealed_before(spark, s) == d(4)
    written, seal = advance_latest(spark, s, incremental(at(7, 1), 6), read())
    assert seal == d(5) and written == {LATEST: 2}
    got = sorted(tuple(r) for r in spark_io.read_table(spark, s, "gold", LATEST).collect())
    assert got == canonical(rows, d(5))

"""gold.ring_signal_sums: per (viewer, author) the signal counts summed over the sealed whole days of the 30-day
window, kept as state so that ring_features does not sum up to 29 days of partials every hour; added to and
subtracted from once a day, rebuilt when a run recomputes sealed days, and always equal to what the partials give."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from jobs import spark_io
from jobs.gold.ring_features import PARTIAL, PARTIAL_COLUMNS, SUMS, advance_sums, ring_features, signal_sums, sums_span
from jobs.horizon import Horizon
from jobs.spark_schemas import spark_schema
from storylake import contracts, lake
from tests.test_gold_builders import frames

DAY1 = date(2024, 5, 1)
COUNTS = list(PARTIAL_COLUMNS.values())
LATENESS = timedelta(hours=48)


def d(n: int) -> date:
    return DAY1 + timedelta(days=n - 1)


def at(n: int, hour: int = 0) -> datetime:
    return datetime(DAY1.year, DAY1.month, DAY1.day, tzinfo=UTC) + timedelta(days=n - 1, hours=hour)


def partial(viewer: int, author: int, n: int, views: int = 1, dms: int = 0) -> dict[str, object]:
    row: dict[str, object] = {"viewer_id": viewer, "author_id": author, "day": d(n), **dict.fromkeys(COUNTS, 0)}
    row.update(story_views=views, completed_views=views, dm_count=dms, as_of=at(n + 1))  # the run that wrote it
    return row


def partials_frame(spark, rows: list[dict[str, object]]):
    """gold.ring_signal_days rows as a DataFrame of its contract's schema."""
    schema = spark_schema(contracts.get(f"gold.{PARTIAL}"))
    return spark.createDataFrame([tuple(r[f.name] for f in schema.fields) for r in rows], schema)


def incremental(as_of: datetime, first_day: int) -> Horizon:
    lo = at(first_day)
    return Horizon(as_of=as_of, lo=lo, gold_lo=lo, new_rows=1, event_lo=lo)


def canonical(rows: list[dict[str, object]], span: tuple[date, date]) -> list[tuple[object, ...]]:
    """Brute force: per pair the counts summed over the span's days."""
    sums: dict[tuple[object, object], list[int]] = {}
    for r in rows:
        day = r["day"]
        assert isinstance(day, date)
        if span[0] <= day < span[1]:
            acc = sums.setdefault((r["viewer_id"], r["author_id"]), [0] * len(COUNTS))
            for i, c in enumerate(COUNTS):
                acc[i] += int(r[c])  # type: ignore[call-overload]
    return sorted((v, a, *acc, *span) for (v, a), acc in sums.items())


def stored(settings) -> list[tuple[object, ...]]:
    t = lake.read_arrow(settings.table_path("gold", SUMS))
    assert t is not None
    return sorted(tuple(r.values()) for r in t.to_pylist())


def test_the_span_runs_from_the_windows_first_whole_day_to_the_lateness_windows_day():
    # window [d(10) 12:00, d(40) 12:00): its first whole day is d(11); as_of - 48 h is on d(38)
    assert sums_span(at(40, 12), LATENESS) == (d(11), d(38))
    assert sums_span(at(40, 0), LATENESS) == (d(11), d(38))  # [d(10) 00:00, ...): d(10) is read from the events
    assert sums_span(at(40, 12), timedelta(days=40)) == (d(11), d(11))  # a window past the whole days: empty


def test_signal_sums_add_the_spans_days_and_leave_out_pairs_summed_to_nothing(spark):
    rows = [partial(1, 2, 10, views=2), partial(1, 2, 11, views=1, dms=3), partial(1, 2, 12, views=5),  # d(12): out
            partial(2, 1, 9), partial(3, 1, 10)]  # d(9): before the span
    taken_out = {**partial(3, 1, 10), "story_views": -1, "completed_views": -1}
    days = partials_frame(spark, [*rows, taken_out])
    got = sorted(tuple(r) for r in signal_sums(days, d(10), d(12)).collect())
    # (viewer, author, dm, likes, comments, replies, visits, views, completed, from, before)
    assert got == [(1, 2, 3, 0, 0, 0, 0, 3, 3, d(10), d(12))]


def test_state_is_built_kept_advanced_and_rebuilt_as_the_runs_require(spark, settings):
    rows = [partial(1, 2, n, views=n) for n in (5, 8, 10, 36, 37, 38, 39)] + [partial(2, 1, 9, dms=1),
                                                                              partial(3, 1, 38)]
    lake.write_table(settings, f"gold.{PARTIAL}", rows)
    read = lambda: spark_io.read_table(spark, settings, "gold", PARTIAL)  # noqa: E731
    path = settings.table_path("gold", SUMS)

    # no table: built from the span's partials (as_of d(38) 01:00: window's whole days from d(9), sealed d(36))
    written, span = advance_sums(spark, settings, incremental(at(38, 1), 37), read())
    assert span == (d(9), d(36)) and written == {SUMS: 2}
    assert stored(settings) == canonical(rows, span) == [
        (1, 2, 0, 0, 0, 0, 0, 10, 10, d(9), d(36)), (2, 1, 1, 0, 0, 0, 0, 1, 1, d(9), d(36))]
    version = lake.version(path)

    # the same span, a run from a later day: kept (no new version)
    assert advance_sums(spark, settings, incremental(at(38, 9), 37), read()) == ({}, span)
    assert lake.version(path) == version

    # the next day: d(36) added, d(9) subtracted (pair (2, 1) sums to nothing and leaves)
    written, span = advance_sums(spark, settings, incremental(at(39, 1), 38), read())
    assert span == (d(10), d(37)) and written == {SUMS: 1}
    assert stored(settings) == canonical(rows, span) == [(1, 2, 0, 0, 0, 0, 0, 46, 46, d(10), d(37))]

    # two days on at once: still added and subtracted
    written, span = advance_sums(spark, settings, incremental(at(41, 1), 40), read())
    assert span == (d(12), d(39)) and stored(settings) == canonical(rows, span)
    assert stored(settings) == [(1, 2, 0, 0, 0, 0, 0, 111, 111, d(12), d(39)),
                                (3, 1, 0, 0, 0, 0, 0, 1, 1, d(12), d(39))]

    # a run that recomputes d(37), a sealed day (a late relationship change): rebuilt from the partials
    rows = [r for r in rows if r["day"] != d(37)] + [partial(4, 1, 37, dms=2)]
    lake.write_table(settings, f"gold.{PARTIAL}", rows)
    advance_sums(spark, settings, incremental(at(41, 2), 37), read())
    assert stored(settings) == canonical(rows, (d(12), d(39)))
    assert (4, 1, 2, 0, 0, 0, 0, 1, 1, d(12), d(39)) in stored(settings)

    # a full refresh rebuilds it too
    rows = [*rows, partial(5, 1, 20)]
    lake.write_table(settings, f"gold.{PARTIAL}", rows)
    advance_sums(spark, settings, Horizon(as_of=at(41, 3)), read())
    assert stored(settings) == canonical(rows, (d(12), d(39)))


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seen=st.lists(st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 45), st.integers(1, 3),
                            st.integers(0, 2)), max_size=25),
    hour=st.integers(0, 23),
    lateness_h=st.sampled_from([0, 10, 48, 100]),
)
def test_the_sums_and_the_partials_from_the_sealed_day_give_the_partials_features(spark, seen, hour, lateness_h):
    """ring_features over the state's sums and the partials from its sealed day on equals ring_features over the
    partials of the window's whole days."""
    as_of = at(45, hour)
    rows = [partial(v, a, n, views=k, dms=m) for v, a, n, k, m in seen]
    silver = frames(spark)
    days = partials_frame(spark, rows)
    from_day, before_day = sums_span(as_of, timedelta(hours=lateness_h))
    from pyspark.sql import functions as F

    counts = ["viewer_id", "author_id", *COUNTS]
    whole = signal_sums(days, from_day, before_day).select(*counts).unionByName(
        days.filter((F.col("day") >= F.lit(before_day)) & (F.col("day") <= F.lit(as_of.date()))).select(*counts))
    args = (silver["engagements"], silver["view_events"], silver["relationships"], as_of)
    want = sorted(tuple(r) for r in ring_features(*args, days=days).collect())
    assert sorted(tuple(r) for r in ring_features(*args, whole_days=whole).collect()) == want

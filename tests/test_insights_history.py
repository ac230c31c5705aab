"""The long-lived insights' history and warm parts (serving/insights_history.py): every snapshot answers exactly
what the gold tables hold; a publish reuses a part's file while its rows are unchanged (even when their files were
rewritten), writes a new one when they change or the cuts move, and old readers keep theirs."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from dateutil.relativedelta import relativedelta
from deltalake import DeltaTable
from hypothesis import given
from hypothesis import strategies as st

from serving import api, insights_history
from serving.publish import publish
from storylake import merge_on_read
from storylake.lake import write_table
from storylake.settings import Settings
from tests import sample_lake

AS_OF = sample_lake.AS_OF


ARCHIVE_COLUMNS = ("segment_id", "author_id", "story_id", "media_id", "media_type", "audience", "duration_ms",
                   "created_at", "expires_at", "highlight_id")
QUESTION_COLUMNS = ("author_id", "sticker_id", "segment_id", "user_id", "text", "responded_at")


def _gold(settings: Settings, name: str) -> list[dict[str, Any]]:
    """The rows a serving table must hold, from its source table: the gold rows, or the archived segments that are
    not deleted."""
    part = insights_history.PARTS[name]
    rows = merge_on_read.read_table(settings, part.source).to_pylist()  # as readers see it (restated insights)
    if name == "archived_segments":
        rows = [{k: r[k] for k in ARCHIVE_COLUMNS} for r in rows if r["is_archived"] and not r["is_deleted"]]
    if name == "question_inbox":
        rows = [{k: r[k] for k in QUESTION_COLUMNS} for r in rows
                if r["sticker_type"] == "question" and r["text"] is not None]
    return sorted(rows, key=repr)


def _served(snap: api.Snapshot, name: str) -> list[dict[str, Any]]:
    cur = snap.db().execute(f"SELECT * FROM {name}")  # noqa: S608 - constant table names
    names = [d[0] for d in cur.description]
    return sorted((dict(zip(names, row, strict=True)) for row in cur.fetchall()), key=repr)


def _assert_serves_gold(settings: Settings, snap: api.Snapshot) -> None:
    for name in insights_history.PARTS:
        assert _served(snap, name) == _gold(settings, name), name
    # Seen By's lookup of older segments: every segment_insights row's identity
    keys = ("segment_id", "author_id", "created_at", "is_deleted")
    assert _served(snap, "segment_lookup") == sorted(
        ({k: r[k] for k in keys} for r in _gold(settings, "segment_insights")), key=repr)


def _history_files(settings: Settings) -> list[str]:
    return sorted(p.name for p in insights_history.history_dir(settings).glob("*.duckdb"))


def _files_of(report: Any) -> list[str]:
    """The files a snapshot attaches: its history and warm tiers', its recent parts' (serving/recent_part.py) and its
    shared bases' (serving/shared_bases.py)."""
    ids = set(report.history["bases"].values()) | set(report.history["recent_ids"].values())
    ids |= {hid for key in ("history_ids", "warm_ids") for period_ids in report.history[key].values()
            for hid in period_ids}
    return sorted(f"{hid}.duckdb" for hid in ids)


def test_history_is_shared_until_old_rows_change(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[str] = []  # the rows a publish fingerprinted (the check behind an unchanged file list)
    fingerprint = insights_history.fingerprint

    def counted(con: Any, rows_sql: str, params: Any = None, *, columns: Any) -> tuple[int, str]:
        hashed.append(rows_sql)
        return fingerprint(con, rows_sql, params, columns=columns)

    monkeypatch.setattr(insights_history, "fingerprint", counted)
    opened: list[str] = []  # the tier files a publish opened to read what they recorded
    recorded = insights_history._recorded_fingerprint

    def reading(path: Any, name: str) -> Any:
        opened.append(name)
        return recorded(path, name)

    monkeypatch.setattr(insights_history, "_recorded_fingerprint", reading)
    first = sample_lake.build(settings)
    h = first.history
    assert not h["reused"] and (h["cut"], h["warm_cut"]) == ("2026-10-28T00:00:00+00:00", "2026-10-30T00:00:00+00:00")
    # a file per long-lived table, history period and tier that may hold rows (only the daily insights reach back
    # here): the periods are the first (the oldest month, September, whose rows retention trims) and then a period
    # per day of the cut's month
    assert h["rewritten"] == h["warm_rewritten"] == ["author_daily_insights"]
    assert h["periods"] == [[None, "2026-10-01T00:00:00+00:00"], *(
        [f"2026-10-{d:02d}T00:00:00+00:00", f"2026-10-{d + 1:02d}T00:00:00+00:00"] for d in range(1, 28))]
    assert h["history_written"]["author_daily_insights"] == len(h["periods"]) == 28
    # 35 days of daily insights: the days before the cut are history, the next two warm, the last ones recent
    assert h["warm_rows"]["author_daily_insights"] > 0
    assert h["history_rows"]["author_daily_insights"] > 0 and h["recent_rows"]["author_daily_insights"] > 0
    assert first.tables["author_daily_insights"] == sum(h[k]["author_daily_insights"]
                                                        for k in ("history_rows", "warm_rows", "recent_rows"))
    assert _history_files(settings) == _files_of(first)
    old_reader = api.open_current(settings)
    _assert_serves_gold(settings, old_reader)
    before = _served(old_reader, "author_daily_insights")

    # nothing changed: the next publish attaches the same files, found unchanged by their Delta files alone, without
    # opening them (the previous snapshot recorded their rows)
    hashed.clear()
    again = publish(settings, AS_OF)
    assert hashed == [] and opened == []
    assert again.history["reused"] and again.history["history_ids"] == h["history_ids"]
    assert again.history["warm_ids"] == h["warm_ids"]
    assert _history_files(settings) == _files_of(first)

    # the same rows in new files (a compaction, a slice rewrite): still the same history, found by its fingerprint
    daily = settings.table_path("gold", "author_daily_insights")
    write_table(settings, "gold.author_daily_insights", DeltaTable(str(daily)).to_pyarrow_table())
    hashed.clear()
    rewritten = publish(settings, AS_OF)
    assert len(hashed) == len(h["periods"]) + 2  # each history period's and warm day's rows, hashed once (no file)
    assert rewritten.history["reused"] and rewritten.history["history_ids"] == h["history_ids"]
    assert rewritten.history["warm_ids"] == h["warm_ids"]

    # an old row changes (a backfill after a rule change): a new history file for that table only, and the snapshot
    # serves the new rows
    t = DeltaTable(str(daily)).to_pyarrow_table()
    oldest = pc.equal(t["day"], pc.min(t["day"]))
    t = t.set_column(t.schema.get_field_index("impressions"), "impressions",
                     pc.if_else(oldest, pc.add(t["impressions"], pa.scalar(1, pa.int64())), t["impressions"]))
    write_table(settings, "gold.author_daily_insights", t)
    changed = publish(settings, AS_OF, keep=1)
    assert (changed.history["rewritten"], changed.history["warm_rewritten"]) == (["author_daily_insights"], [])
    ids = changed.history["history_ids"]
    # the oldest day is in the first period: its file only
    assert changed.history["history_written"]["author_daily_insights"] == 1
    assert ids["author_daily_insights"][0] != h["history_ids"]["author_daily_insights"][0]
    assert ids["author_daily_insights"][1:] == h["history_ids"]["author_daily_insights"][1:]
    assert {k: v for k, v in ids.items() if k != "author_daily_insights"} == {
        k: v for k, v in h["history_ids"].items() if k != "author_daily_insights"}
    snap = api.open_current(settings)
    _assert_serves_gold(settings, snap)
    assert _served(snap, "author_daily_insights") != before
    # only what the kept snapshot attaches remains on disk; the reader opened first still reads its own
    assert _history_files(settings) == _files_of(changed)
    assert _served(old_reader, "author_daily_insights") == before

    # a warm row changes (a late event reaching before the warm cut): a new warm file for that table only
    t = DeltaTable(str(daily)).to_pyarrow_table()
    warm_day = pc.equal(t["day"], pa.scalar(date(2026, 10, 28)))
    assert pc.any(warm_day).as_py()
    t = t.set_column(t.schema.get_field_index("impressions"), "impressions",
                     pc.if_else(warm_day, pc.add(t["impressions"], pa.scalar(1, pa.int64())), t["impressions"]))
    write_table(settings, "gold.author_daily_insights", t)
    late = publish(settings, AS_OF, keep=1)
    assert (late.history["rewritten"], late.history["warm_rewritten"]) == ([], ["author_daily_insights"])
    assert late.history["history_ids"] == ids
    assert late.history["warm_ids"]["author_daily_insights"] != h["warm_ids"]["author_daily_insights"]
    _assert_serves_gold(settings, api.open_current(settings))
    assert _history_files(settings) == _files_of(late)

    # the cuts move with as_of (daily): the day that left the warm tier keeps its file as the history's day period,
    # every older period's file is kept, and only the day that left the recent rows gets a file (a warm day): a
    # publish copies one day, whatever the lake's age
    later = publish(settings, AS_OF + timedelta(days=1))
    daily = "author_daily_insights"
    assert later.history["rewritten"] == [] and later.history["history_written"] == dict.fromkeys(
        insights_history.PARTS, 0)
    assert later.history["periods"] == [*late.history["periods"], [h["cut"], "2026-10-29T00:00:00+00:00"]]
    assert later.history["history_ids"][daily] == [*ids[daily], late.history["warm_ids"][daily][0]]
    # Oct 30 has rows of the daily insights, the stories and the archive: a file each; Oct 29's are kept
    assert later.history["warm_written"] == {n: int(n in ("archived_segments", daily, "story_insights"))
                                             for n in insights_history.PARTS}
    assert later.history["warm_ids"][daily][0] == late.history["warm_ids"][daily][1]
    assert (later.history["cut"], later.history["warm_cut"]) == ("2026-10-29T00:00:00+00:00",
                                                                 "2026-10-31T00:00:00+00:00")
    _assert_serves_gold(settings, api.open_current(settings))


def test_the_archive_is_history_plus_recent_and_a_late_delete_rewrites_only_its_file(settings: Settings) -> None:
    """Archived segments are kept for ever: those created before the cut are history, shared between snapshots; a
    delete of an old archived segment (it leaves the archive) writes new history files only for the tables whose old
    rows it changed."""
    from serving import highlights as hl
    from tests.lake_builder import DAY, HOUR, LakeBuilder

    def lake(deleted: bool) -> None:
        (LakeBuilder(settings)
         .segment(10, 1, AS_OF - 10 * DAY, is_archived=True, highlight_id=100)
         .segment(11, 1, AS_OF - 9 * DAY, is_archived=True, highlight_id=100, is_deleted=deleted)
         .segment(12, 1, AS_OF - 8 * DAY, is_archived=True, is_deleted=True)  # deleted: never in the archive
         .segment(13, 1, AS_OF - 8 * DAY)  # not archived
         .segment(14, 1, AS_OF - HOUR, is_archived=True, highlight_id=200)
         .write())

    lake(deleted=False)
    first = publish(settings, AS_OF)
    assert (first.history["history_rows"]["archived_segments"], first.history["recent_rows"]["archived_segments"]) \
        == (2, 1)
    snap = api.open_current(settings)
    _assert_serves_gold(settings, snap)
    assert [s.segment_id for s in hl.archive(snap, 1).segments] == [14, 11, 10]
    assert {h.highlight_id: [s.segment_id for s in h.segments] for h in hl.highlights(snap, 1, 1, AS_OF)} == {
        100: [10, 11], 200: [14]}

    lake(deleted=True)  # every table gets a new version; the archive's old rows changed, and the segment's insights
    after = publish(settings, AS_OF)  # (is_deleted): the other tables' history files are kept
    assert after.history["rewritten"] == ["archived_segments", "segment_insights"]
    assert all(after.history["history_ids"][k] == first.history["history_ids"][k]
               for k in ("story_insights", "author_daily_insights", "sticker_results"))
    snap = api.open_current(settings)
    _assert_serves_gold(settings, snap)
    assert [s.segment_id for s in hl.archive(snap, 1).segments] == [14, 10]


def test_question_answers_are_split_like_the_insights(settings: Settings) -> None:
    """The question inbox (2 years of answers) is history, warm and recent parts too: each answer in exactly one, and
    an author's inbox lists them all, newest first."""
    from tests.lake_builder import DAY, HOUR, LakeBuilder

    (LakeBuilder(settings)
     .segment(10, 1, AS_OF - 10 * DAY).question(1, 10, 7, "history", AS_OF - 10 * DAY + HOUR)
     .segment(11, 1, AS_OF - 4 * DAY).question(2, 11, 8, "warm", AS_OF - 4 * DAY + HOUR)
     .segment(12, 1, AS_OF - 2 * HOUR).question(3, 12, 9, "recent", AS_OF - HOUR)
     .question(4, 12, 7, None, AS_OF - HOUR)  # type: ignore[arg-type]  # no text: not in the inbox
     .write())
    report = publish(settings, AS_OF)
    h = report.history
    assert [h[k]["question_inbox"] for k in ("history_rows", "warm_rows", "recent_rows")] == [1, 1, 1]
    snap = api.open_current(settings)
    _assert_serves_gold(settings, snap)
    inbox = api.insights(snap, 1, 1, AS_OF)["question_responses"]
    assert [(r["sticker_id"], r["text"]) for r in inbox] == [(3, "recent"), (2, "warm"), (1, "history")]


def test_insights_answers_are_the_same_with_or_without_history(settings: Settings) -> None:
    """An author's insights through the views equal the gold rows of that author (every part: history, recent)."""
    sample_lake.build(settings)
    snap = api.open_current(settings)
    got = api.insights(snap, sample_lake.AUTHOR_A, sample_lake.AUTHOR_A, AS_OF)
    days = [r["day"] for r in got["daily"]]
    gold_days = sorted(r["day"] for r in _gold(settings, "author_daily_insights")
                       if r["author_id"] == sample_lake.AUTHOR_A)
    assert days == gold_days and len(days) > 20


def _recent_in_the_snapshot(settings: Settings, report: Any) -> None:
    """Rewrite a snapshot's recent parts as format 5 held them: tables `<name>_recent` in the snapshot, read by its
    views, instead of files of their own (format 6, serving/recent_part.py); the first step of the converters to
    the older layouts below."""
    import duckdb

    from serving.snapshot import snapshot_path

    lookup, lookup_columns = insights_history.LOOKUP, insights_history.LOOKUP_COLUMNS
    with duckdb.connect(str(snapshot_path(settings, report.snapshot_id))) as con:
        tiers = con.execute("SELECT serving_table, alias, history_id, tier FROM snapshot_history "
                            "WHERE tier <> 'base'").fetchall()
        for alias, path in {a: insights_history.history_path(settings, h) for _, a, h, _ in tiers}.items():
            con.execute(f"ATTACH $p AS {alias} (READ_ONLY)", {"p": str(path)})
        for name, alias, _, tier in tiers:
            if tier != insights_history.RECENT_TIER:
                continue
            con.execute(f"CREATE TABLE {name}_recent AS SELECT * FROM {alias}.{name}")  # noqa: S608 - constants
            stored = [f"SELECT * FROM {a}.{name}" for n, a, _, t in tiers  # noqa: S608 - constant names
                      if n == name and t != insights_history.RECENT_TIER]
            view = " UNION ALL ".join([*stored, f"SELECT * FROM {name}_recent"])  # noqa: S608 - constant names
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {view}")
            if name == "segment_insights":
                stored = [f"SELECT * FROM {a}.{lookup}" for n, a, _, t in tiers  # noqa: S608 - constant names
                          if n == name and t != insights_history.RECENT_TIER]
                view = " UNION ALL ".join([*stored, f"SELECT {lookup_columns} FROM {name}_recent"])  # noqa: S608
                con.execute(f"CREATE OR REPLACE VIEW {lookup} AS {view}")
        con.execute("DELETE FROM snapshot_history WHERE tier = $t", {"t": insights_history.RECENT_TIER})
        con.execute("UPDATE snapshot_meta SET format_version = 5")
        con.execute("CHECKPOINT")


def _to_shared_file_layout(settings: Settings, report: Any) -> None:
    """Rewrite a snapshot into format 1: one history file holding the four insights tables (and the segment lookup),
    attached as `hist`; no warm part (recent holds the rows from the cut on); snapshot_history without aliases, tiers
    and lower bounds; the archive a plain table."""
    from datetime import datetime

    import duckdb

    from serving.snapshot import snapshot_path

    _recent_in_the_snapshot(settings, report)
    ids = report.history["history_ids"]
    cut = datetime.fromisoformat(report.history["cut"])
    shared = insights_history.history_path(settings, "shared-format-1")
    insights = [n for n in insights_history.PARTS if n != "archived_segments"]
    with duckdb.connect(str(shared)) as con:
        con.execute("CREATE TABLE history_meta (cut TIMESTAMPTZ, serving_table VARCHAR, fingerprint VARCHAR, "
                    "row_count BIGINT)")
        con.execute("ATTACH $p AS snap (READ_ONLY)", {"p": str(snapshot_path(settings, report.snapshot_id))})
        for name in insights:  # the table's history periods in one table (none: the snapshot's columns, no row)
            parts = [f"SELECT * FROM snap.{name}_recent WHERE false"]  # noqa: S608 - constant names
            for i, hid in enumerate(ids[name]):
                con.execute(f"ATTACH $p AS src{i} (READ_ONLY)",
                            {"p": str(insights_history.history_path(settings, hid))})
                parts.append(f"SELECT * FROM src{i}.{name}")  # noqa: S608 - constant names
            con.execute(f"CREATE TABLE {name} AS {' UNION ALL '.join(parts)}")  # noqa: S608 - constant names
            written = f"SELECT * FROM {name}"  # noqa: S608 - constant names
            n, printed = insights_history.fingerprint(
                con, written, columns=[d[0] for d in con.execute(f"{written} LIMIT 0").description])
            con.execute("INSERT INTO history_meta VALUES (?, ?, ?, ?)", [cut, name, printed, n])
            if name == "segment_insights":
                con.execute("CREATE TABLE segment_lookup AS SELECT segment_id, author_id, created_at, is_deleted "
                            "FROM segment_insights ORDER BY segment_id")
            for i in range(len(ids[name])):
                con.execute(f"DETACH src{i}")
        con.execute("DETACH snap")
    with duckdb.connect(str(snapshot_path(settings, report.snapshot_id))) as con:
        for hid, alias in con.execute("SELECT DISTINCT history_id, alias FROM snapshot_history").fetchall():
            con.execute(f"ATTACH $p AS {alias} (READ_ONLY)", {"p": str(insights_history.history_path(settings, hid))})
        con.execute("ATTACH $p AS hist (READ_ONLY)", {"p": str(shared)})
        con.register("archive_rows", con.sql("SELECT * FROM archived_segments").to_arrow_table())
        for name in [*insights, "archived_segments", "segment_lookup"]:
            con.execute(f"DROP VIEW {name}")
        # format 1 had no warm part: its recent part held the rows from the cut on
        warm: dict[str, list[str]] = {}
        for name, alias in con.execute("SELECT serving_table, alias FROM snapshot_history WHERE tier LIKE 'warm:%' "
                                       "ORDER BY tier").fetchall():
            warm.setdefault(name, []).append(alias)
        for name in insights:
            warm_rows = "".join(f"SELECT * FROM {alias}.{name} UNION ALL " for alias in warm.get(name, []))  # noqa: S608
            con.execute(f"CREATE TABLE {name}_all_recent AS {warm_rows}SELECT * FROM {name}_recent")  # noqa: S608
            con.execute(f"DROP TABLE {name}_recent")
            con.execute(f"ALTER TABLE {name}_all_recent RENAME TO {name}_recent")
        for name in insights:
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM hist.{name} "  # noqa: S608 - constant names
                        f"UNION ALL SELECT * FROM {name}_recent")
        con.execute("CREATE VIEW segment_lookup AS SELECT * FROM hist.segment_lookup UNION ALL "
                    "SELECT segment_id, author_id, created_at, is_deleted FROM segment_insights_recent")
        con.execute("DROP TABLE archived_segments_recent")
        con.execute("CREATE TABLE archived_segments AS SELECT * FROM archive_rows")
        for name in ("ring_features", "viewer_pairs"):  # tables of their own before format 4 (shared bases)
            con.register(f"{name}_rows", con.sql(f"SELECT * FROM {name}").to_arrow_table())  # noqa: S608
            con.execute(f"DROP VIEW {name}")
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_rows")  # noqa: S608
            con.execute(f"DROP TABLE {name}_changes")
        con.execute("DELETE FROM snapshot_history")  # format 1: one row per insights table, its shared file
        for column in ("alias", "tier", "lo"):
            con.execute(f"ALTER TABLE snapshot_history DROP COLUMN {column}")
        con.executemany("INSERT INTO snapshot_history VALUES ('shared-format-1', ?, ?, '', NULL)",
                        [[cut, name] for name in insights])
        con.execute("UPDATE snapshot_meta SET format_version = 1")
        con.execute("CHECKPOINT")


def test_a_snapshot_of_the_shared_file_layout_opens_and_its_file_is_reused_table_by_table(settings: Settings) -> None:
    """Snapshots published before each table had a history file (format 1) still serve, and the next publish reuses
    their shared file for every table it agrees on (writing the archive's, which format 1 copied whole)."""
    first = sample_lake.build(settings)
    _to_shared_file_layout(settings, first)
    old = api.open_current(settings)
    assert old.db().execute("SELECT DISTINCT alias FROM duckdb_databases() d JOIN (SELECT 'hist' AS alias) a "
                            "ON d.database_name = a.alias").fetchall() == [("hist",)]
    _assert_serves_gold(settings, old)

    after = publish(settings, AS_OF)
    # format 1 had no warm part: it is written, while the shared file, kept as the first history period (up to its
    # cut: no later period), serves the history of the daily insights, the only table with rows before the cut here
    # (the others need no file)
    assert after.history["rewritten"] == []
    assert after.history["periods"] == [[None, after.history["cut"]]]
    assert after.history["warm_rewritten"] == ["author_daily_insights"]
    assert after.history["history_ids"] == {
        n: ["shared-format-1"] if n == "author_daily_insights" else [] for n in insights_history.PARTS}
    _assert_serves_gold(settings, api.open_current(settings))


def test_a_snapshot_of_a_newer_format_is_refused_by_name(settings: Settings) -> None:
    import duckdb
    import pytest

    from serving.snapshot import FORMAT_VERSION, SnapshotFormatError, snapshot_path

    report = sample_lake.build(settings)
    with duckdb.connect(str(snapshot_path(settings, report.snapshot_id))) as con:
        con.execute("UPDATE snapshot_meta SET format_version = $v", {"v": FORMAT_VERSION + 1})
    with pytest.raises(SnapshotFormatError, match=f"has format {FORMAT_VERSION + 1}, newer than this reader's"):
        api.open_current(settings)


def test_an_alias_that_is_not_ours_is_refused(settings: Settings) -> None:
    import duckdb
    import pytest

    from serving.snapshot import snapshot_path

    report = sample_lake.build(settings)
    with duckdb.connect(str(snapshot_path(settings, report.snapshot_id))) as con:
        con.execute("UPDATE snapshot_history SET alias = 'x; DROP TABLE profiles' "
                    "WHERE serving_table = 'author_daily_insights'")
    with pytest.raises(ValueError, match="unexpected alias 'x; DROP TABLE profiles'"):
        api.open_current(settings)


def test_a_publish_after_a_newer_format_refuses_and_removes_nothing(settings: Settings) -> None:
    """A pipeline rolled back past a snapshot format (CURRENT written by newer code) does not publish over it nor
    remove the files it attaches: its history and warm bookkeeping is not this code's."""
    import duckdb

    from serving.publish import PublishError
    from serving.snapshot import FORMAT_VERSION, snapshot_path

    report = sample_lake.build(settings)
    files = _history_files(settings)
    with duckdb.connect(str(snapshot_path(settings, report.snapshot_id))) as con:
        con.execute("UPDATE snapshot_meta SET format_version = $v", {"v": FORMAT_VERSION + 1})
    with pytest.raises(PublishError, match=rf"has format {FORMAT_VERSION + 1}, newer than this publish's"):
        publish(settings, AS_OF + timedelta(days=1))
    assert _history_files(settings) == files


@given(as_of=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
       age=st.one_of(st.none(), st.integers(min_value=-40, max_value=900)))
def test_history_periods_cover_the_history_by_month_then_day_and_a_day_adds_one_period(
        as_of: datetime, age: int | None) -> None:
    """The history periods are contiguous and cover every instant before the cut; after the first, each is a whole
    month before the cut's month or a day of it; a day later (the cut in the same month) they are the same periods
    plus the day that left the warm tier; and there are at most a period per month of the lake's age plus 31."""
    cut = insights_history.cut_for(as_of)
    earliest = None if age is None else (cut - timedelta(days=age)).date()
    periods = insights_history.history_periods(as_of, earliest)
    assert periods[0][0] is None and periods[-1][1] == cut
    assert all(hi == lo for (_, hi), (lo, _) in itertools.pairwise(periods))
    for lo, hi in periods[1:]:
        assert lo is not None and lo < hi
        whole_month = lo.day == 1 and hi == lo + relativedelta(months=1) and hi <= cut.replace(day=1)
        a_day = hi == lo + timedelta(days=1) and (lo.year, lo.month) == (cut.year, cut.month)
        assert whole_month or a_day, (lo, hi)
    months = 0 if age is None else max(age, 0) // 28 + 1
    assert len(periods) <= months + 32
    later = insights_history.history_periods(as_of + timedelta(days=1), earliest)
    if insights_history.cut_for(as_of + timedelta(days=1)).day != 1 and (earliest is None or earliest < cut.date()):
        assert later == [*periods, (cut, cut + timedelta(days=1))]


def test_rows_a_compaction_moved_are_not_hashed_and_an_append_rewrites_its_day_only(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Delta log tells which periods can have changed since the version the previous snapshot read: a compaction
    (its actions say dataChange false) moves rows without changing them, so its new files are not hashed; a commit
    adding a row of one history day makes that day's period the only one hashed and written again."""
    from deltalake import write_deltalake

    hashed: list[dict[str, Any] | None] = []
    fingerprint = insights_history.fingerprint

    def counted(con: Any, rows_sql: str, params: Any = None, *, columns: Any) -> tuple[int, str]:
        hashed.append(params)
        return fingerprint(con, rows_sql, params, columns=columns)

    monkeypatch.setattr(insights_history, "fingerprint", counted)
    first = sample_lake.build(settings).history
    daily = settings.table_path("gold", "author_daily_insights")
    write_deltalake(str(daily), DeltaTable(str(daily)).to_pyarrow_table().slice(0, 3), mode="append")
    DeltaTable(str(daily)).optimize.compact()  # the appended file and the table's file into one: dataChange false
    publish(settings, AS_OF)  # the append changes every period the table's rows span: hashed, or written again
    hashed.clear()
    DeltaTable(str(daily)).optimize.z_order(["author_id"])  # every row moved to a new file, none changed
    again = publish(settings, AS_OF).history
    assert hashed == [] and again["reused"]

    t = DeltaTable(str(daily)).to_pyarrow_table()
    day = date(2026, 10, 21)  # a day with rows (the sample lake leaves a day without activity every 9 days)
    one = t.filter(pc.equal(t["day"], pa.scalar(day))).slice(0, 1)
    one = one.set_column(one.schema.get_field_index("author_id"), "author_id", pa.array([999_999], pa.int64()))
    write_deltalake(str(daily), one, mode="append")  # a new author's row of one history day
    after = publish(settings, AS_OF).history
    period = first["periods"].index([f"{day}T00:00:00+00:00", f"{day + timedelta(days=1)}T00:00:00+00:00"])
    # that day's rows hashed (they differ), then its new file's (recorded in it)
    assert hashed == [{"lo": day, "hi": day + timedelta(days=1)}, None]
    assert after["history_written"] == {n: int(n == "author_daily_insights") for n in insights_history.PARTS}
    assert [i for i, (a, b) in enumerate(zip(after["history_ids"]["author_daily_insights"],
                                             again["history_ids"]["author_daily_insights"], strict=True))
            if a != b] == [period]
    assert after["history_rows"]["author_daily_insights"] == again["history_rows"]["author_daily_insights"] + 1
    _assert_serves_gold(settings, api.open_current(settings))


def test_after_the_daily_maintenance_every_file_is_reused_without_hashing(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The maintenance DAG's compaction clusters the gold tables' files by day (new files, the same rows): the next
    publish reuses every history and warm file from the Delta log alone, hashing no row."""
    from jobs.maintenance import maintain

    hashed: list[str] = []
    fingerprint = insights_history.fingerprint

    def counted(con: Any, rows_sql: str, params: Any = None, *, columns: Any) -> tuple[int, str]:
        hashed.append(rows_sql)
        return fingerprint(con, rows_sql, params, columns=columns)

    first = sample_lake.build(settings).history
    daily = settings.table_path("gold", "author_daily_insights")
    files_before = DeltaTable(str(daily)).file_uris()
    maintain(settings)
    assert DeltaTable(str(daily)).file_uris() != files_before  # the rows moved into new files
    monkeypatch.setattr(insights_history, "fingerprint", counted)
    after = publish(settings, AS_OF).history
    assert hashed == [] and after["reused"]
    assert after["history_written"] == dict.fromkeys(insights_history.PARTS, 0)
    # the same files, but those of the days without rows: their day files now say so by their statistics (no file)
    kept = after["history_ids"]["author_daily_insights"]
    assert kept == [hid for hid in first["history_ids"]["author_daily_insights"] if hid in kept]
    assert len(kept) < len(first["history_ids"]["author_daily_insights"])
    for name, ids in after["warm_ids"].items():
        assert ids == [hid for hid in first["warm_ids"][name] if hid in ids], name
    _assert_serves_gold(settings, api.open_current(settings))


def test_a_table_written_again_at_its_path_is_not_taken_for_its_predecessor(settings: Settings) -> None:
    """The Delta log is only trusted for the table the previous snapshot read (its id, beside the version): a table
    removed and written again at the same path, at the same version number, with an old row changed, gets that row
    hashed and its period written again."""
    import shutil

    from deltalake import write_deltalake

    sample_lake.build(settings)
    daily = settings.table_path("gold", "author_daily_insights")
    t = DeltaTable(str(daily)).to_pyarrow_table()
    assert DeltaTable(str(daily)).version() == 0
    oldest = pc.equal(t["day"], pc.min(t["day"]))
    t = t.set_column(t.schema.get_field_index("impressions"), "impressions",
                     pc.if_else(oldest, pc.add(t["impressions"], pa.scalar(1, pa.int64())), t["impressions"]))
    shutil.rmtree(daily)
    write_deltalake(str(daily), t)  # version 0 again, of another table
    after = publish(settings, AS_OF).history
    assert after["rewritten"] == ["author_daily_insights"] and after["history_written"]["author_daily_insights"] == 1
    _assert_serves_gold(settings, api.open_current(settings))


def _bump_october(settings: Settings) -> None:
    """A backfill of October's daily insights (one more impression each)."""
    daily = settings.table_path("gold", "author_daily_insights")
    t = DeltaTable(str(daily)).to_pyarrow_table()
    october = pc.equal(pc.month(t["day"]), 10)
    t = t.set_column(t.schema.get_field_index("impressions"), "impressions",
                     pc.if_else(october, pc.add(t["impressions"], pa.scalar(1, pa.int64())), t["impressions"]))
    write_table(settings, "gold.author_daily_insights", t)


def test_the_maintenance_writes_the_month_file_ahead_and_no_publish_copies_it(tmp_path: Any) -> None:
    """On the day October leaves the cut's month (its 31 day files become one month file), the daily maintenance's
    prepare_ahead writes that file the day before, and today's day files: the publishes of both days write no
    history file and serve the same rows. Without it, the first publish of the day writes the month file; after a
    backfill of October the prepared file is not used (the publish writes its own); the prepared files stay on disk
    while the record names them, and go once neither it nor a kept snapshot does."""
    from serving.publish import prepare_ahead

    today, tomorrow = AS_OF + timedelta(days=3), AS_OF + timedelta(days=4)  # cuts Oct 31 and Nov 1
    names = list(insights_history.PARTS)
    nothing = dict.fromkeys(names, 0)

    control = Settings(lake=tmp_path / "control" / "lake", landing=tmp_path / "control" / "landing")
    sample_lake.build(control)
    publish(control, today)
    unprepared = publish(control, tomorrow).history
    assert unprepared["periods"] == [[None, "2026-10-01T00:00:00+00:00"],
                                     ["2026-10-01T00:00:00+00:00", "2026-11-01T00:00:00+00:00"]]
    # the month file: October's rows of the daily insights, stories and the archive, copied by the hourly publish
    assert unprepared["history_written"] == {n: int(n in ("author_daily_insights", "story_insights",
                                                          "archived_segments")) for n in names}

    settings = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing")
    assert prepare_ahead(settings, today).periods == 0  # nothing published yet: nothing to prepare
    assert not insights_history.prepared_path(settings).exists()
    sample_lake.build(settings)
    dead = settings.serving_dir / f".{insights_history.PREPARED_NAME}.killed.tmp"  # a killed maintenance's record
    dead.write_bytes(b"partial")
    prepared = prepare_ahead(settings, today)
    assert not dead.exists()
    # today's new history day file (Oct 30; Oct 28-29 are the current snapshot's warm days' files) and tomorrow's
    # month file, of the daily insights, the stories and the archive
    assert prepared.written == {**nothing, "author_daily_insights": 2, "story_insights": 2, "archived_segments": 2}
    assert insights_history.prepared_path(settings).exists()
    record = insights_history.read_prepared(settings)
    assert record is not None
    month = record.with_bounds((datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)))
    assert month is not None and set(month.ids) == {"author_daily_insights", "story_insights", "archived_segments"}

    first = publish(settings, today, keep=1).history  # keep=1: only the record keeps the month file on disk
    assert first["history_written"] == nothing
    assert first["history_prepared"] == {**nothing, "author_daily_insights": 1, "story_insights": 1,
                                         "archived_segments": 1}
    _assert_serves_gold(settings, api.open_current(settings))
    assert set(month.ids.values()) <= {p[: -len(".duckdb")] for p in _history_files(settings)}
    second = publish(settings, tomorrow, keep=1).history
    assert second["periods"] == unprepared["periods"] and second["history_written"] == nothing
    assert {n: ids[-1] for n, ids in second["history_ids"].items() if n in month.ids} == month.ids
    _assert_serves_gold(settings, api.open_current(settings))

    # a backfill changes October's daily insights after the maintenance: that table's prepared month file no longer
    # holds its rows, so the publish writes its own (and serves the new rows); the other tables' are still used
    sample_lake.build(settings)
    prepare_ahead(settings, today)
    _bump_october(settings)
    publish(settings, today, keep=1)
    backfilled = publish(settings, tomorrow, keep=1).history
    assert backfilled["history_written"] == {**nothing, "author_daily_insights": 1}
    assert backfilled["history_prepared"] == {**nothing, "story_insights": 1, "archived_segments": 1}
    _assert_serves_gold(settings, api.open_current(settings))
    # the same backfill before the maintenance ran (as retention's trimming of the first period): it writes the
    # changed files ahead, and the publishes after it write none
    sample_lake.build(settings)
    publish(settings, today, keep=1)
    _bump_october(settings)
    # today's 26 day files of October with rows (Oct 1-30 but 2, 11, 20, 29), and tomorrow's month file
    assert prepare_ahead(settings, today).written == {**nothing, "author_daily_insights": 27}
    assert publish(settings, today, keep=1).history["history_written"] == nothing
    assert publish(settings, tomorrow, keep=1).history["history_written"] == nothing
    _assert_serves_gold(settings, api.open_current(settings))

    # the next day's maintenance finds every file in the current snapshot (the next day's history period, Nov 1, is
    # its warm day's file); it no longer names October's day files: the next publish removes them
    later = prepare_ahead(settings, tomorrow)
    assert later.written == nothing
    kept = publish(settings, tomorrow, keep=1)
    referenced = set(_files_of(kept))
    record = insights_history.read_prepared(settings)
    assert record is not None
    assert _history_files(settings) == sorted(referenced | {f"{hid}.duckdb" for hid in record.aliases})
    assert not any("-20261028-" in name for name in _history_files(settings))


def _to_two_day_warm_layout(settings: Settings, report: Any) -> str:
    """Rewrite a snapshot into session 31's layout: one warm file per table holding both warm days (tier `warm`,
    attached as `hist_99`), the snapshot's views reading it instead of the day files; returns the file's id."""
    import duckdb

    from serving.snapshot import snapshot_path

    _recent_in_the_snapshot(settings, report)
    hid, lookup, lookup_columns = "warm-two-days", insights_history.LOOKUP, insights_history.LOOKUP_COLUMNS
    lo, hi = datetime.fromisoformat(report.history["cut"]), datetime.fromisoformat(report.history["warm_cut"])
    with duckdb.connect(str(snapshot_path(settings, report.snapshot_id))) as con:
        tiers = con.execute("SELECT serving_table, alias, history_id, tier, files FROM snapshot_history "
                            "WHERE tier <> 'base' ORDER BY tier").fetchall()
        for alias, path in {a: insights_history.history_path(settings, h) for _, a, h, _, _ in tiers}.items():
            con.execute(f"ATTACH $p AS {alias} (READ_ONLY)", {"p": str(path)})
        con.execute("ATTACH $p AS hist_99", {"p": str(insights_history.history_path(settings, hid))})
        con.execute("CREATE TABLE hist_99.history_meta (cut TIMESTAMPTZ, serving_table VARCHAR, "
                    "fingerprint VARCHAR, row_count BIGINT)")
        for name in sorted({n for n, _, _, tier, _ in tiers if tier.startswith("warm:")}):
            days = [a for n, a, _, tier, _ in tiers if n == name and tier.startswith("warm:")]
            older = [a for n, a, _, tier, _ in tiers if n == name and not tier.startswith("warm:")]
            files = next(f for n, _, _, tier, f in tiers if n == name and tier.startswith("warm:"))
            both = " UNION ALL ".join(f"SELECT * FROM {a}.{name}" for a in days)  # noqa: S608 - constant names
            con.execute(f"CREATE TABLE hist_99.{name} AS {both}")  # noqa: S608 - constant names
            n, printed = insights_history.fingerprint(
                con, f"SELECT * FROM hist_99.{name}",  # noqa: S608 - constant names
                columns=[d[0] for d in con.execute(f"SELECT * FROM hist_99.{name} LIMIT 0").description])  # noqa: S608
            con.execute("INSERT INTO hist_99.history_meta VALUES (?, ?, ?, ?)", [hi, name, printed, n])
            con.execute("DELETE FROM snapshot_history WHERE serving_table = $n AND tier LIKE 'warm:%'", {"n": name})
            con.execute("INSERT INTO snapshot_history VALUES (?, ?, ?, ?, ?, 'hist_99', 'warm', ?)",
                        [hid, hi, name, files, n, lo])
            parts = [f"SELECT * FROM {a}.{name}" for a in [*older, "hist_99"]]  # noqa: S608 - constant names
            view = " UNION ALL ".join([*parts, f"SELECT * FROM {name}_recent"])  # noqa: S608 - constant names
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {view}")
            if name == "segment_insights":
                con.execute(f"CREATE TABLE hist_99.{lookup} AS SELECT {lookup_columns} "  # noqa: S608
                            "FROM hist_99.segment_insights ORDER BY segment_id")
                parts = [f"SELECT * FROM {a}.{lookup}" for a in [*older, "hist_99"]]  # noqa: S608 - constants
                view = " UNION ALL ".join([*parts, f"SELECT {lookup_columns} FROM {name}_recent"])  # noqa: S608
                con.execute(f"CREATE OR REPLACE VIEW {lookup} AS {view}")
        con.execute("CHECKPOINT")
    return hid


def test_a_snapshot_with_a_two_day_warm_file_is_followed_by_day_files(settings: Settings) -> None:
    """A snapshot of session 31's layout (one warm file of both days per table) still serves; the next publish
    writes the two days' files (no file of a two-day tier is reused as a day), reuses every history file, and the
    two-day file goes with the snapshot."""
    first = sample_lake.build(settings)
    hid = _to_two_day_warm_layout(settings, first)
    _assert_serves_gold(settings, api.open_current(settings))
    after = publish(settings, AS_OF, keep=1).history
    assert after["warm_written"] == {n: len(ids) for n, ids in first.history["warm_ids"].items()}
    assert after["history_written"] == dict.fromkeys(insights_history.PARTS, 0)
    assert after["history_ids"] == first.history["history_ids"]
    _assert_serves_gold(settings, api.open_current(settings))
    assert f"{hid}.duckdb" not in _history_files(settings)

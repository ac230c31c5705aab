"""The recent part of the long-lived serving tables in files of their own (serving/recent_part.py): a publish reuses
the previous file when no row changed, patches a copy of it with exactly the rows that changed, and writes it again
sorted once patches would make up too much of it; every snapshot answers what the sources hold."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from serving import api, insights_history, recent_part
from serving.publish import publish
from storylake.settings import Settings
from tests import sample_lake
from tests.test_insights_history import _assert_serves_gold

AS_OF = sample_lake.AS_OF
REUSED = {"made": "reused"}


def _recent(t: pa.Table, anchor: str, cut: datetime) -> pa.Table:
    """The rows of `t` in the recent part: anchored at/after `cut`, or without an anchor."""
    at = pa.scalar(cut, t.schema.field(anchor).type)
    return t.filter(pc.or_kleene(pc.is_null(t[anchor]), pc.greater_equal(t[anchor], at)))


def _change_recent_insights(settings: Settings, cut: datetime) -> tuple[int, int]:
    """Rewrite gold.segment_insights as a run would: one recent row's reach + 1 (stamped a second after the newest
    as_of), another recent row removed; their ids."""
    path = str(settings.table_path("gold", "segment_insights"))
    t = DeltaTable(path).to_pyarrow_table()
    recent = _recent(t, "story_start", cut)
    changed, removed = recent["segment_id"][0].as_py(), recent["segment_id"][1].as_py()
    stamp = pc.max(t["as_of"]).as_py() + timedelta(seconds=1)
    rows = [{**row, "reach": row["reach"] + 1, "as_of": stamp} if row["segment_id"] == changed else row
            for row in t.to_pylist() if row["segment_id"] != removed]
    write_deltalake(path, pa.Table.from_pylist(rows, t.schema), mode="overwrite")
    return changed, removed


def test_a_publish_reuses_then_patches_the_recent_files(settings: Settings) -> None:
    first = sample_lake.build(settings).history
    assert first["recent_made"] == dict.fromkeys(insights_history.PARTS, {"made": "written"})
    again = publish(settings, AS_OF).history
    assert again["recent_made"] == dict.fromkeys(insights_history.PARTS, REUSED)
    assert again["recent_ids"] == first["recent_ids"]

    changed, removed = _change_recent_insights(settings, datetime.fromisoformat(first["warm_cut"]))
    after = publish(settings, AS_OF).history
    # the changed row's old version and the removed row out, the changed row's new version in
    # the changed row is the one source row stamped after the file's rows
    assert after["recent_made"] == {**dict.fromkeys(insights_history.PARTS, REUSED),
                                    "segment_insights": {"made": "patched", "removed": 2, "added": 1, "examined": 1}}
    assert after["recent_rows"]["segment_insights"] == first["recent_rows"]["segment_insights"] - 1
    assert after["recent_ids"]["segment_insights"] != first["recent_ids"]["segment_insights"]
    snap = api.open_current(settings)
    _assert_serves_gold(settings, snap)
    served = dict(snap.db().execute("SELECT segment_id, reach FROM segment_insights WHERE segment_id IN ($a, $b)",
                                    {"a": changed, "b": removed}).fetchall())
    assert list(served) == [changed]


def test_a_recent_file_mostly_patched_is_written_again_sorted(settings: Settings,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The publish after a patch that appended REWRITE_SHARE of the file's rows writes it again, sorted."""
    first = sample_lake.build(settings).history
    _change_recent_insights(settings, datetime.fromisoformat(first["warm_cut"]))
    patched = publish(settings, AS_OF).history
    assert patched["recent_made"]["segment_insights"] == {"made": "patched", "removed": 2, "added": 1, "examined": 1}
    monkeypatch.setattr(recent_part, "REWRITE_SHARE", 0.0)  # any appended row is too many
    after = publish(settings, AS_OF).history
    assert after["recent_made"]["segment_insights"] == {"made": "written"}
    _assert_serves_gold(settings, api.open_current(settings))


def test_a_source_with_repeated_rows_is_never_patched(settings: Settings) -> None:
    """The same row twice in the source: the patch would hold it once, so the file is written again (and serves
    both)."""
    first = sample_lake.build(settings).history
    path = str(settings.table_path("gold", "story_insights"))
    t = DeltaTable(path).to_pyarrow_table()
    cut = datetime.fromisoformat(first["warm_cut"])
    recent = _recent(t, "story_start", cut)
    write_deltalake(path, recent.slice(0, 1), mode="append")
    after = publish(settings, AS_OF).history
    assert after["recent_made"]["story_insights"] == {"made": "written"}
    assert after["recent_rows"]["story_insights"] == first["recent_rows"]["story_insights"] + 1
    _assert_serves_gold(settings, api.open_current(settings))


def _restamp(settings: Settings, stamps: dict[int, datetime], default: datetime | None = None,
             bumped: int | None = None, dropped: int | None = None) -> None:
    """Rewrite gold.segment_insights with each row's as_of `stamps[segment_id]` (else `default`, else as it was),
    the row `bumped`'s reach + 1 and the row `dropped` left out."""
    path = str(settings.table_path("gold", "segment_insights"))
    t = DeltaTable(path).to_pyarrow_table()
    rows = []
    for row in t.to_pylist():
        if row["segment_id"] == dropped:
            continue
        row["as_of"] = stamps.get(row["segment_id"], default or row["as_of"])
        row["reach"] += row["segment_id"] == bumped
        rows.append(row)
    write_deltalake(path, pa.Table.from_pylist(rows, t.schema), mode="overwrite")


def test_a_stamped_table_s_patch_examines_the_rows_stamped_since_the_file(settings: Settings) -> None:
    """gold.segment_insights' patch compares only the source rows stamped after the newest stamp the file holds
    (and the file's rows of their keys or of keys gone from the source); a row changed without a newer stamp is
    caught by the patched file's check, and the file is written again from the source."""
    first = sample_lake.build(settings).history
    t = DeltaTable(str(settings.table_path("gold", "segment_insights"))).to_pyarrow_table()
    x, y, z = _recent(t, "story_start", datetime.fromisoformat(first["warm_cut"]))["segment_id"].to_pylist()[:3]
    old, older, new = AS_OF - timedelta(hours=2), AS_OF - timedelta(hours=3), AS_OF - timedelta(hours=1)

    # every row's stamp changed to older ones, none to one at/after the file's newest (AS_OF): the scoped diff finds
    # nothing, the check does, and the file is written again
    _restamp(settings, {x: old}, default=older)
    restamped = publish(settings, AS_OF).history
    assert restamped["recent_made"]["segment_insights"] == {"made": "written"}
    _assert_serves_gold(settings, api.open_current(settings))

    # y changed by a run as of `new`, z gone: y alone is stamped after the file's newest row (x, `old`)
    _restamp(settings, {y: new}, bumped=y, dropped=z)
    after = publish(settings, AS_OF).history
    assert after["recent_made"]["segment_insights"] == {"made": "patched", "removed": 2, "added": 1, "examined": 1}
    snap = api.open_current(settings)
    _assert_serves_gold(settings, snap)
    assert snap.db().execute("SELECT segment_id, as_of FROM segment_insights WHERE segment_id IN ($x, $y, $z) "
                             "ORDER BY segment_id", {"x": x, "y": y, "z": z}).fetchall() == sorted(
        [(x, old), (y, new)])

    # nothing changed since: no row is stamped after y, and the file is reused
    again = publish(settings, AS_OF).history
    assert again["recent_made"]["segment_insights"] == REUSED
    assert again["recent_ids"]["segment_insights"] == after["recent_ids"]["segment_insights"]

    # every row stamped after the file's rows (a full refresh as of a later instant): written again, not diffed
    _restamp(settings, {}, default=AS_OF + timedelta(hours=1))
    refreshed = publish(settings, AS_OF).history
    assert refreshed["recent_made"]["segment_insights"] == {"made": "written"}
    _assert_serves_gold(settings, api.open_current(settings))


def _recent_meta(settings: Settings, history: dict) -> tuple[int, int]:
    """(row_count, appended) of the recent segment insights file a publish made."""
    path = insights_history.history_path(settings, history["recent_ids"]["segment_insights"])
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT row_count, appended FROM {recent_part.META}").fetchone()  # noqa: S608


def test_a_row_appended_then_replaced_by_a_later_patch_counts_once(settings: Settings,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A stamped table's file counts the patches' rows it holds (those stamped after its sorted write), not every row
    ever appended: a story restated hour after hour is one appended row, and the file is written again only when the
    rows it holds out of order reach REWRITE_SHARE."""
    first = sample_lake.build(settings).history
    t = DeltaTable(str(settings.table_path("gold", "segment_insights"))).to_pyarrow_table()
    x, y = _recent(t, "story_start", datetime.fromisoformat(first["warm_cut"]))["segment_id"].to_pylist()[:2]
    rows, _ = _recent_meta(settings, first)
    # 2 appended rows would be too many, 1 is not
    monkeypatch.setattr(recent_part, "REWRITE_SHARE", 1.5 / rows)
    patched = {"made": "patched", "removed": 1, "added": 1, "examined": 1}
    for hour in (1, 2, 3):  # x restated by three runs: each patch replaces the row the one before appended
        _restamp(settings, {x: AS_OF + timedelta(hours=hour)}, bumped=x)
        after = publish(settings, AS_OF).history
        assert after["recent_made"]["segment_insights"] == patched, hour
        assert _recent_meta(settings, after) == (rows, 1)
    _assert_serves_gold(settings, api.open_current(settings))
    # another row restated: two rows out of order, the share reached; the next publish writes the file sorted
    _restamp(settings, {y: AS_OF + timedelta(hours=4)}, bumped=y)
    after = publish(settings, AS_OF).history
    assert after["recent_made"]["segment_insights"] == patched
    assert _recent_meta(settings, after) == (rows, 2)
    again = publish(settings, AS_OF).history
    assert again["recent_made"]["segment_insights"] == {"made": "written"}
    assert _recent_meta(settings, again) == (rows, 0)
    _assert_serves_gold(settings, api.open_current(settings))


EDITS = st.lists(st.tuples(st.sampled_from(["bump", "quiet bump", "drop", "copy"]), st.integers(0, 20)), min_size=1,
                 max_size=4)


@hsettings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EDITS, min_size=1, max_size=3))
def test_every_publish_after_random_edits_serves_the_source(rounds: list[list[tuple[str, int]]]) -> None:
    """Rounds of edits to gold.segment_insights (a row's reach bumped, a row dropped, a new row copied from one; the
    bumped and new rows stamped by the round, as a run stamps the rows it changes, except that "quiet" bumps keep
    their stamp), each followed by a publish: whether a recent file is reused, patched or written, the snapshot
    serves exactly the source's rows."""
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(lake=Path(tmp) / "lake", landing=Path(tmp) / "landing")
        sample_lake.build(s)
        path = str(s.table_path("gold", "segment_insights"))
        for n, edits in enumerate(rounds, start=1):
            t = DeltaTable(path).to_pyarrow_table()
            rows = t.to_pylist()
            stamp = AS_OF + timedelta(minutes=n)
            for op, i in edits:
                if not rows:
                    break
                row = rows[i % len(rows)]
                if op in ("bump", "quiet bump"):
                    row["reach"] += 1
                    row["as_of"] = stamp if op == "bump" else row["as_of"]
                elif op == "drop":
                    rows.remove(row)
                else:
                    rows.append({**row, "segment_id": max(r["segment_id"] for r in rows) + 1, "as_of": stamp})
            write_deltalake(path, pa.Table.from_pylist(rows, t.schema), mode="overwrite")
            publish(s, AS_OF)
            _assert_serves_gold(s, api.open_current(s))

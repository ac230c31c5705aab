"""Quality gate: suites generated from the contracts, GX validation of hand-written Delta tables,
ops.quality_results, and the gate stopping run_pipeline before publish."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from jobs.quality import QualityGateError, gate_hook, run_gate, suite_for
from pipeline import steps
from serving import api
from serving.publish import publish
from storylake import audit, contracts, increments, lake
from storylake.settings import Settings

T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)

SMALL_CONTRACT = """\
apiVersion: v3.0.2
kind: DataContract
id: urn:storylake:silver:tiny
name: tiny
version: 1.0.0
dataProduct: silver
description: {purpose: A tiny table.}
schema:
  - name: tiny
    primaryKey: [a_id, b_id]
    properties:
      - {name: a_id, physicalType: bigint, required: true, description: A.}
      - {name: b_id, physicalType: bigint, required: true, description: B.}
      - {name: code, physicalType: string, unique: true, description: C., logicalTypeOptions: {maxLength: 8}}
      - {name: kind, physicalType: string, description: K., logicalTypeOptions: {enum: [x, y]}}
      - {name: pct, physicalType: double, required: true, description: P., logicalTypeOptions: {minimum: 0, maximum: 1}}
      - {name: n, physicalType: bigint, description: N., logicalTypeOptions: {minimum: 1}}
      - {name: impressions, physicalType: bigint, description: I.}
      - {name: reach, physicalType: bigint, description: R.}
      - name: tags
        physicalType: array
        required: true
        description: T.
        items: {physicalType: string, description: E.}
    quality:
      - {rule: reach_le_impressions, description: reach <= impressions.}
      - {rule: made_up_rule, description: nobody can express this.}
"""


def test_suite_is_generated_from_the_contract(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(SMALL_CONTRACT)
    suite = suite_for(contracts.parse_contract(path))
    got = [(s.type, s.kwargs) for s in suite.expectations]
    assert got == [
        ("expect_column_values_to_not_be_null", {"column": "a_id"}),
        ("expect_column_values_to_not_be_null", {"column": "b_id"}),
        ("expect_column_values_to_be_unique", {"column": "code"}),
        ("expect_column_value_lengths_to_be_between", {"column": "code", "min_value": None, "max_value": 8}),
        ("expect_column_values_to_be_in_set", {"column": "kind", "value_set": ["x", "y"]}),
        ("expect_column_values_to_not_be_null", {"column": "pct"}),
        ("expect_column_values_to_be_between", {"column": "pct", "min_value": 0, "max_value": 1}),
        ("expect_column_values_to_be_between", {"column": "n", "min_value": 1, "max_value": None}),
        ("expect_column_values_to_not_be_null", {"column": "tags"}),
        ("expect_compound_columns_to_be_unique", {"column_list": ["a_id", "b_id"]}),
        ("expect_column_pair_values_a_to_be_greater_than_b",
         {"column_A": "impressions", "column_B": "reach", "or_equal": True}),
    ]
    assert all(s.critical for s in suite.expectations)
    assert suite.not_expressible == ("made_up_rule",)
    assert suite.key_columns == ("a_id", "b_id")
    assert suite.input_columns() == ["a_id", "b_id", "code", "kind", "pct", "n", "tags", "impressions", "reach"]


def test_primary_key_and_unique_column_give_one_expectation() -> None:
    names = [s.name for s in suite_for(contracts.get("silver.view_events")).expectations]
    assert names.count("expect_column_values_to_be_unique(event_id)") == 1
    assert "expect_column_values_to_be_between(completion_pct)" in names
    assert "expect_column_values_to_be_in_set(view_source)" in names


@pytest.mark.parametrize("key", [k for k, c in sorted(contracts.load_all().items()) if c.layer in ("silver", "gold")])
def test_every_silver_and_gold_rule_is_expressible(key: str) -> None:
    suite = suite_for(contracts.get(key))
    assert suite.not_expressible == ()
    assert suite.expectations


# --- hand-written Delta tables -----------------------------------------------------------------


def _default(c: contracts.Column) -> Any:
    """A value every generated expectation accepts."""
    if c.physical_type == "array":
        return []
    if c.enum:
        return c.enum[0]
    return {
        "bigint": int(c.minimum or 1), "int": int(c.minimum or 1), "double": float(c.minimum or 0),
        "string": "s", "boolean": False, "timestamp": T0, "date": date(2026, 11, 1),
    }.get(c.physical_type)


def _write(settings: Settings, key: str, rows: list[dict[str, Any]]) -> None:
    """Rows of the contract's table (missing columns get valid defaults), written with delta-rs."""
    contract = contracts.get(key)
    full = [{c.name: r.get(c.name, _default(c)) for c in contract.columns} for r in rows]
    path = settings.table_path(*key.split("."))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_deltalake(str(path), pa.Table.from_pylist(full, schema=contract.arrow_schema()), mode="overwrite")


def _view(eid: str, **kw: Any) -> dict[str, Any]:
    return {"event_id": eid, "idempotency_key": f"k-{eid}", "segment_id": 1, "viewer_id": 7,
            "viewed_at": T0, "completion_pct": 1.0, "view_duration_ms": 5000, "view_source": "tray", **kw}


def _results(settings: Settings, run_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    rows = DeltaTable(str(settings.table_path("ops", "quality_results"))).to_pyarrow_table().to_pylist()
    return {(r["table_name"], r["expectation"]): r for r in rows if r["run_id"] == run_id}


def test_clean_table_passes_and_is_recorded(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    from jobs.quality.gate import WHOLE_RUN

    _write(settings, "silver.view_events", [_view("e1"), _view("e2", completion_pct=0.2, view_duration_ms=3000)])
    with caplog.at_level(logging.INFO, logger="jobs.quality.gate"):
        report = run_gate(settings, "silver", "run-clean")
    assert report.ok
    # no run planned slices for this gate: the table is validated whole, and the log says why
    assert f"silver.view_events: 2 rows, all validated ({WHOLE_RUN})" in caplog.text
    assert report.rows == {"silver.view_events": 2}
    assert "silver.segments" in report.missing
    n = len(suite_for(contracts.get("silver.view_events")).expectations)
    results = _results(settings, "run-clean")
    assert len(results) == n
    assert all(r["success"] and r["critical"] and r["unexpected_count"] == 0 for r in results.values())
    assert report.docs_index is not None and report.docs_index.exists()
    assert report.docs_index == settings.lake / "quality" / "data_docs" / "index.html"


def test_data_docs_hold_every_layer_and_need_no_network(settings: Settings) -> None:
    """One page with both layers' latest gates (the gold gate keeps silver's results), suites and sample keys of
    failures, with no external resource; an older GX site's folders are removed; a relative lake path works."""
    docs = settings.lake / "quality" / "data_docs"
    (docs / "validations" / "silver").mkdir(parents=True)  # what GX's site builder left behind
    _write(settings, "silver.view_events", [_view("e1"), _view("e2", completion_pct=1.5)])
    run_gate(settings, "silver", "run-s", raise_on_failure=False)
    _write(settings, "gold.author_viewer_days", [{"author_id": 1, "viewer_id": 2, "views": 3}])
    report = run_gate(settings, "gold", "run-g")
    assert report.docs_index == docs.resolve() / "index.html"
    html = report.docs_index.read_text()
    assert sorted(p.name for p in docs.iterdir()) == ["gold.json", "index.html", "silver.json"]
    for text in ('id="silver"', 'id="gold"', "run-s", "run-g", 'id="silver.view_events"',
                 'id="gold.author_viewer_days"', "FAILED (1 critical)", "expect_column_values_to_be_between",
                 "column completion_pct: minimum/maximum", "&#34;e2&#34;"):
        assert text in html, text
    assert not re.search(r"(src|href)=\"(?!#)", html)  # nothing to fetch: in-page anchors only
    assert "<script" not in html and "http://" not in html and "https://" not in html
    # the gold gate of the next run replaces gold's record only
    run_gate(settings, "gold", "run-g2")
    html = report.docs_index.read_text()
    assert "run-s" in html and "run-g2" in html and "run-g<" not in html


def test_data_docs_with_a_relative_lake(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(settings.lake.parent)
    relative = settings.override(lake=Path(settings.lake.name))
    _write(relative, "silver.view_events", [_view("e1")])
    report = run_gate(relative, "silver", "run-rel")
    assert report.docs_index == settings.lake.resolve() / "quality" / "data_docs" / "index.html"
    assert report.docs_index.exists()


def test_critical_violations_fail_the_gate_with_sample_keys(settings: Settings) -> None:
    _write(settings, "silver.view_events", [
        _view("e1"),
        _view("e2", completion_pct=1.5),
        _view("e3"), _view("e3", idempotency_key="k-other"),  # duplicate primary key
        _view("e4", segment_id=None),
        _view("e5", view_source="tv"),
    ])
    with pytest.raises(QualityGateError) as err:
        run_gate(settings, "silver", "run-bad")
    msg = str(err.value)
    assert "expect_column_values_to_be_between(completion_pct) [column completion_pct: minimum/maximum] " \
           'failed on 1 row(s); sample keys: ["e2"]' in msg
    assert 'expect_column_values_to_be_unique(event_id) [column event_id: unique] failed on 2 row(s); ' \
           'sample keys: ["e3"]' in msg
    assert 'expect_column_values_to_not_be_null(segment_id) [column segment_id: required] failed on 1 row(s); ' \
           'sample keys: ["e4"]' in msg
    assert 'expect_column_values_to_be_in_set(view_source)' in msg and '["e5"]' in msg
    assert len(err.value.report.failed) == 4

    results = _results(settings, "run-bad")
    between = results[("silver.view_events", "expect_column_values_to_be_between(completion_pct)")]
    assert (between["success"], between["critical"], between["unexpected_count"]) == (False, True, 1)
    assert json.loads(between["sample_keys"]) == ["e2"]
    assert results[("silver.view_events", "expect_column_values_to_not_be_null(viewer_id)")]["success"] is True


def test_table_rules_from_the_contract_quality_section(settings: Settings) -> None:
    _write(settings, "gold.segment_insights", [
        {"segment_id": 1, "impressions": 5, "reach": 3},
        {"segment_id": 2, "impressions": 2, "reach": 4},  # reach > impressions
    ])
    _write(settings, "silver.segments", [
        {"segment_id": 10, "created_at": T0, "expires_at": T0 + timedelta(hours=24)},
        {"segment_id": 11, "created_at": T0, "expires_at": T0 + timedelta(hours=23)},  # not created + 24 h
    ])
    gold = run_gate(settings, "gold", "run-rules", raise_on_failure=False)
    # gold.segment_insights' stored key is (segment_id, as_of): restated rows, storylake/latest_rows.py
    assert [(o.expectation, o.sample_keys) for o in gold.failed] == [
        ("expect_column_pair_values_a_to_be_greater_than_b(impressions,reach)",
         [{"segment_id": 2, "as_of": "2026-11-01T10:00:00+00:00"}]),
    ]
    silver = run_gate(settings, "silver", "run-rules", raise_on_failure=False)
    assert [(o.expectation, o.sample_keys) for o in silver.failed] == [
        ("expect_column_pair_values_to_be_equal(expires_at,_created_at_plus_24h)", [11]),
    ]


def test_compound_primary_key_duplicates_report_both_key_columns(settings: Settings) -> None:
    """silver.segment_viewers' stored key is (segment, viewer, view count) (growing rows, storylake/latest_rows.py):
    a pair's rows with 1 and 2 views are valid, two rows with 1 view are not."""
    row = {"segment_id": 1, "viewer_id": 2, "first_viewed_at": T0, "last_viewed_at": T0, "view_count": 1}
    _write(settings, "silver.segment_viewers", [row, row, {**row, "view_count": 2}, {**row, "viewer_id": 3}])
    report = run_gate(settings, "silver", "run-pk", raise_on_failure=False)
    assert [(o.expectation, o.unexpected_count, o.sample_keys) for o in report.failed] == [
        ("expect_compound_columns_to_be_unique(segment_id,viewer_id,view_count)", 2,
         [{"segment_id": 1, "viewer_id": 2, "view_count": 1}]),
    ]


def test_missing_column_fails_instead_of_passing(settings: Settings) -> None:
    _write(settings, "silver.view_events", [_view("e1")])
    path = settings.table_path("silver", "view_events")
    table = DeltaTable(str(path)).to_pyarrow_table().drop_columns(["view_source"])
    write_deltalake(str(path), table, mode="overwrite", schema_mode="overwrite")
    report = run_gate(settings, "silver", "run-drift", raise_on_failure=False)
    failed = {o.expectation: o for o in report.failed}
    assert set(failed) == {"expect_column_values_to_not_be_null(view_source)",
                           "expect_column_values_to_be_in_set(view_source)"}
    assert all(o.error for o in failed.values())


def test_rerun_with_the_same_run_id_replaces_its_rows(settings: Settings) -> None:
    _write(settings, "silver.view_events", [_view("e1")])
    run_gate(settings, "silver", "run-twice", build_docs=False)
    _write(settings, "silver.view_events", [_view("e1", completion_pct=2.0)])
    run_gate(settings, "silver", "run-twice", build_docs=False, raise_on_failure=False)
    results = _results(settings, "run-twice")
    assert len(results) == len(suite_for(contracts.get("silver.view_events")).expectations)
    assert results[("silver.view_events", "expect_column_values_to_be_between(completion_pct)")]["success"] is False
    rows = DeltaTable(str(settings.table_path("ops", "quality_results"))).to_pyarrow_table()
    assert rows.num_rows == len(results)


def test_step_gate_records_the_failure_and_raises_it_unchanged(settings: Settings) -> None:
    from pipeline import steps

    _write(settings, "silver.view_events", [_view("e1", completion_pct=-1.0)])
    with pytest.raises(QualityGateError):
        steps.gate(settings, "silver", "dag/run-1", as_of=T0)
    runs = DeltaTable(str(settings.table_path("ops", "pipeline_runs"))).to_pyarrow_table().to_pylist()
    assert [(r["run_id"], r["step"], r["status"]) for r in runs] == [("dag/run-1", "gate_silver", "failed")]
    assert "completion_pct" in json.loads(runs[0]["detail"])["error"]


# --- through the pipeline ----------------------------------------------------------------------


@pytest.mark.parametrize("lanes", [2, 1])
def test_failed_gate_in_run_pipeline_publishes_nothing(spark: Any, tmp_path: Path, lanes: int) -> None:
    from pipeline.run import run_pipeline
    from serving.snapshot import current_id
    from tests.landing_builders import created, view, write_landing

    settings = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing", job_lanes=lanes)
    write_landing(settings.landing, "segment_created", [created("c1", 1, 9, "2026-11-01T09:00:00.000Z")], hour="09")
    write_landing(settings.landing, "segment_view", [view("v1", 1, 2, "2026-11-01T09:30:00.000Z")], hour="09")
    first = run_pipeline(settings, datetime(2026, 11, 1, 10, tzinfo=UTC), spark=spark, progress=False,
                         gate=gate_hook("gate-run-1"))
    served = current_id(settings)
    assert served is not None and first.publish is not None

    write_landing(settings.landing, "segment_view", [view("v2", 1, 3, "2026-11-01T10:30:00.000Z")], hour="10")
    hook = gate_hook("gate-run-2")

    def corrupting_gate(spark_: Any, s: Settings, layer: str, as_of: datetime) -> Any:
        if layer == "silver":  # a silver job bug: a receipt with completion_pct 1.5 slips through
            path = s.table_path("silver", "view_events")
            bad = DeltaTable(str(path)).to_pyarrow_table().slice(0, 1).to_pylist()
            bad[0].update(event_id="v-bad", completion_pct=1.5)
            write_deltalake(str(path), pa.Table.from_pylist(bad, schema=contracts.get("silver.view_events")
                                                            .arrow_schema()), mode="append")
        return hook(spark_, s, layer, as_of)

    audited_before = audit.consumer_versions(settings, ["silver.view_events", "gold.segment_insights"])
    assert steps.lake_watermark(settings) == datetime(2026, 11, 1, 10, tzinfo=UTC)
    with pytest.raises(QualityGateError, match=r"completion_pct.*\"v-bad\""):
        run_pipeline(settings, datetime(2026, 11, 1, 11, tzinfo=UTC), spark=spark, progress=False,
                     gate=corrupting_gate)
    assert current_id(settings) == served
    runs = DeltaTable(str(settings.table_path("ops", "pipeline_runs"))).to_pyarrow_table().to_pylist()
    # with lanes, `storylake run` validates silver while gold builds (write-audit-publish: gold's new versions wait
    # for their own gate, which never runs); in turn, gold does not start
    assert sorted((r["step"], r["status"]) for r in runs if r["as_of"] == datetime(2026, 11, 1, 11, tzinfo=UTC)) == [
        ("gate_silver", "failed"), *([("gold", "success")] if lanes > 1 else []), ("ingest", "success"),
        ("silver", "success")]
    # write-audit-publish: the failed build is in silver's newest version, but nothing a consumer reads moved
    latest = lake.version(settings.table_path("silver", "view_events"))
    assert latest is not None and latest > audited_before["silver.view_events"]
    assert audit.consumer_versions(settings, ["silver.view_events", "gold.segment_insights"]) == audited_before
    assert steps.lake_watermark(settings) == datetime(2026, 11, 1, 10, tzinfo=UTC)  # the watermark did not move
    assert not steps.lake_is_at(settings, datetime(2026, 11, 1, 11, tzinfo=UTC))  # the export DAG keeps waiting
    again = publish(settings, datetime(2026, 11, 1, 11, tzinfo=UTC))  # a publish now serves the audited versions
    assert again.sources == first.publish.sources
    assert api.seen_by(api.open_current(settings), 1, 9, datetime(2026, 11, 1, 11, tzinfo=UTC)).total == 1
    # the run is not done: the next run processes the same new rows again, and its horizon rewrites the bad slice
    assert increments.last(settings).as_of == datetime(2026, 11, 1, 10, tzinfo=UTC)  # type: ignore[union-attr]
    run_pipeline(settings, datetime(2026, 11, 1, 11, tzinfo=UTC), spark=spark, progress=False,
                 gate=gate_hook("gate-run-3"))
    assert increments.last(settings).as_of == datetime(2026, 11, 1, 11, tzinfo=UTC)  # type: ignore[union-attr]
    views = DeltaTable(str(settings.table_path("silver", "view_events"))).to_pyarrow_table().column("event_id")
    assert sorted(views.to_pylist()) == ["v1", "v2"]
    assert api.seen_by(api.open_current(settings), 1, 9, datetime(2026, 11, 1, 11, tzinfo=UTC)).total == 2


def test_a_failed_gold_gate_discards_the_snapshot_built_beside_it(spark: Any, tmp_path: Path) -> None:
    """`storylake run` publishes while the gold gate runs; the snapshot waits for the gate's verdict, so a gold
    failure serves nothing, leaves no snapshot behind and is raised as the gate's own error."""
    from pipeline.run import run_pipeline
    from serving.snapshot import current_id, snapshots_dir
    from tests.landing_builders import created, view, write_landing

    settings = Settings(lake=tmp_path / "lake", landing=tmp_path / "landing", job_lanes=2)
    write_landing(settings.landing, "segment_created", [created("c1", 1, 9, "2026-11-01T09:00:00.000Z")], hour="09")
    write_landing(settings.landing, "segment_view", [view("v1", 1, 2, "2026-11-01T09:30:00.000Z")], hour="09")
    run_pipeline(settings, T0, spark=spark, progress=False, gate=gate_hook("gate-run-1"))
    served = current_id(settings)
    write_landing(settings.landing, "segment_view", [view("v2", 1, 3, "2026-11-01T10:30:00.000Z")], hour="10")
    hook = gate_hook("gate-run-2")

    def corrupting_gate(spark_: Any, s: Settings, layer: str, as_of: datetime) -> Any:
        if layer == "gold":  # a gold job bug: a segment's insights row written twice
            path = s.table_path("gold", "segment_insights")
            write_deltalake(str(path), DeltaTable(str(path)).to_pyarrow_table().slice(0, 1), mode="append")
        return hook(spark_, s, layer, as_of)

    with pytest.raises(QualityGateError, match="segment_id"):
        run_pipeline(settings, T0 + timedelta(hours=1), spark=spark, progress=False, gate=corrupting_gate)
    assert current_id(settings) == served
    assert sorted(p.name for p in snapshots_dir(settings).iterdir() if not p.name.startswith(".duckdb_tmp")) == [
        f"{served}.duckdb"]
    runs = DeltaTable(str(settings.table_path("ops", "pipeline_runs"))).to_pyarrow_table().to_pylist()
    hour = {r["step"]: r for r in runs if r["as_of"] == T0 + timedelta(hours=1)}
    assert {k: r["status"] for k, r in hour.items()} == {
        "ingest": "success", "silver": "success", "gate_silver": "success", "gold": "success",
        "gate_gold": "failed", "publish": "failed"}
    assert "snapshot discarded: the gold gate failed" in json.loads(hour["publish"]["detail"])["error"]
    assert steps.lake_watermark(settings) == T0  # the watermark did not move
    assert api.seen_by(api.open_current(settings), 1, 9, T0 + timedelta(hours=1)).total == 1


def test_expectations_run_in_groups_of_narrow_frames() -> None:
    """GX's pandas engine copies the whole batch frame per column-map metric: a suite runs as groups whose
    columns beyond the key number at most GROUP_COLUMNS, in suite order, every expectation exactly once."""
    from jobs.quality.gate import GROUP_COLUMNS, expectation_groups
    from jobs.quality.suites import ExpectationSpec

    assert GROUP_COLUMNS == 6

    def one(c: str) -> ExpectationSpec:
        return ExpectationSpec("expect_column_values_to_not_be_null", {"column": c})

    pair = ExpectationSpec("expect_column_pair_values_to_be_equal", {"column_A": "c2", "column_B": "c9"})
    compound = ExpectationSpec("expect_compound_columns_to_be_unique", {"column_list": ["k", "c1"]})
    specs = [one("k"), *[one(f"c{i}") for i in range(1, 9)], pair, compound]
    groups = expectation_groups(specs, ["k"])
    assert [[s.name for s in g] for g in groups] == [
        [s.name for s in [one("k"), *[one(f"c{i}") for i in range(1, 7)], compound]],
        [s.name for s in [one("c7"), one("c8"), pair]],
    ]
    real = list(suite_for(contracts.get("gold.segment_insights")).expectations)  # a real suite: nothing lost
    grouped = [s.name for g in expectation_groups(real, ["segment_id"]) for s in g]
    assert sorted(grouped) == sorted(s.name for s in real) and len(grouped) == len(set(grouped))


def test_changed_rows_compare_every_column_but_the_run_stamp(tmp_path: Path) -> None:
    """What a run changed since the audited version: rows of the slice with no equal row in the old files (nulls equal
    nulls); `as_of`, which every run stamps anew, is not compared; without old files every row of the slice is new."""
    import pyarrow.parquet as pq

    from jobs.quality.gate import _changed

    later = T0 + timedelta(hours=1)
    old = pa.table({"k": [1, 2, 3, 4, 0], "v": ["a", None, "c", "d", "z"], "t": [T0] * 5, "as_of": [T0] * 5})
    new = pa.table({"k": [1, 2, 3, 5, 6], "v": ["a", None, "C", "e", "f"], "t": [T0] * 4 + [T0 - timedelta(days=1)],
                    "as_of": [later] * 5})
    pq.write_table(old, tmp_path / "old.parquet")
    pq.write_table(new, tmp_path / "new.parquet")
    files = [str(tmp_path / "new.parquet")], [str(tmp_path / "old.parquet")]
    columns = ["k", "v", "as_of"]
    since = (("t",), T0)  # row 6 lies before the slice
    assert _changed(*files, columns, since).sort_by("k").to_pylist() == [
        {"k": 3, "v": "C", "as_of": later}, {"k": 5, "v": "e", "as_of": later},
    ]
    assert _changed(files[0], [], columns, since).num_rows == 4
    same = _changed(files[0], files[0], columns, None)
    assert same.num_rows == 0 and same.column_names == columns


def test_changed_rows_read_only_the_files_one_version_holds(tmp_path: Path) -> None:
    """A file both versions hold has the same rows in both: _changed compares the new version's other files with the
    old version's other files and never opens a shared one (here a path with no file behind it). A row of a new file
    equal to a row of a shared file is reported (validated again: conservative); one equal to a row of an old file
    is not."""
    import pyarrow.parquet as pq

    from jobs.quality.gate import _changed

    def write(name: str, keys: list[int], values: list[str]) -> str:
        pq.write_table(pa.table({"k": keys, "v": values}), tmp_path / name)
        return str(tmp_path / name)

    shared = str(tmp_path / "shared-gone.parquet")  # k=1 'a' and k=2 'b' in both versions, say
    old = write("old.parquet", [3, 4], ["c", "d"])
    new = write("new.parquet", [1, 3, 4, 5], ["a", "c", "D", "e"])
    got = _changed([shared, new], [shared, old], ["k", "v"], None)
    assert got.sort_by("k").to_pylist() == [{"k": 1, "v": "a"}, {"k": 4, "v": "D"}, {"k": 5, "v": "e"}]
    assert _changed([shared, new], [shared], ["k", "v"], None).num_rows == 4  # rows appended to the shared file's
    assert _changed([new], [new, old], ["k", "v"], None).num_rows == 0  # rows removed only


def test_changed_rows_of_files_written_before_a_column_was_added(tmp_path: Path) -> None:
    """When the files one version alone holds lack a column the version has (written before it was added), the
    version's files are read together (the missing column is null in the old files' rows), as for the whole
    version."""
    import pyarrow.parquet as pq

    from jobs.quality.gate import _changed

    pq.write_table(pa.table({"k": [1, 2]}), tmp_path / "old-before.parquet")
    pq.write_table(pa.table({"k": [9], "v": ["z"]}), tmp_path / "kept.parquet")
    pq.write_table(pa.table({"k": [1, 2], "v": [None, "b"]}), tmp_path / "new.parquet")
    old = [str(tmp_path / "old-before.parquet"), str(tmp_path / "kept.parquet")]
    new = [str(tmp_path / "new.parquet"), str(tmp_path / "kept.parquet")]
    assert _changed(new, old, ["k", "v"], None).to_pylist() == [{"k": 2, "v": "b"}]


_cell = st.tuples(st.integers(0, 5), st.sampled_from(["a", "b", None]), st.sampled_from([0.5, 1.0, None]),
                  st.integers(0, 2))


@hyp_settings(max_examples=60, deadline=None)
@given(old=st.lists(_cell, max_size=12), new=st.lists(_cell, max_size=12))
def test_changed_rows_are_the_new_rows_without_an_equal_old_row(tmp_path_factory: Any, old: list[Any],
                                                                new: list[Any]) -> None:
    """_changed against a plain set difference: the slice's new rows (day >= 1) whose values (the run stamp aside)
    equal no old row's in the slice, with repeated keys and nulls."""
    import pyarrow.parquet as pq

    from jobs.quality.gate import _changed

    d = tmp_path_factory.mktemp("changed")

    def table(rows: list[Any]) -> pa.Table:
        return pa.table({"k": pa.array([r[0] for r in rows], pa.int64()),
                         "v": pa.array([r[1] for r in rows], pa.string()),
                         "x": pa.array([r[2] for r in rows], pa.float64()),
                         "day": pa.array([date(2026, 11, 1) + timedelta(days=r[3]) for r in rows], pa.date32()),
                         "as_of": pa.array([T0] * len(rows), pa.timestamp("us", tz="UTC"))})

    pq.write_table(table(old), d / "old.parquet")
    pq.write_table(table(new), d / "new.parquet")
    since = (("day",), datetime(2026, 11, 2, tzinfo=UTC))
    in_slice = [r for r in new if r[3] >= 1]
    olds = {(k, v, x) for k, v, x, day in old if day >= 1}
    expected = sorted(((k, v, x) for k, v, x, _ in in_slice if (k, v, x) not in olds), key=repr)
    got = _changed([str(d / "new.parquet")], [str(d / "old.parquet")], ["k", "v", "x", "as_of"], since)
    assert sorted(((r["k"], r["v"], r["x"]) for r in got.to_pylist()), key=repr) == expected


def test_incremental_gate_reads_changed_rows_and_repeated_keys_for_uniqueness(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """After a good gate, an incremental run's gate validates the row expectations on the rows that differ from the
    audited version, and uniqueness on the slice's rows whose key another row of the slice repeats (DuckDB finds
    them over the whole slice): a new row duplicating an unchanged row's key fails it, with both rows counted."""
    older = _view("old", segment_created_at=T0 - timedelta(days=3))
    _write(settings, "silver.view_events", [_view("e1"), _view("e2"), older])
    assert run_gate(settings, "silver", "run-1", tables=["silver.view_events"]).ok
    _write(settings, "silver.view_events", [
        _view("e1"), _view("e2"), older,
        _view("e1", idempotency_key="k-again"),  # duplicates the unchanged e1's key
        _view("e4", completion_pct=1.5),
    ])
    as_of = T0 + timedelta(hours=1)
    increments.record(settings, increments.Increment(run_id="r", as_of=as_of, horizon=T0 - timedelta(hours=1),
                                                     gold_horizon=T0 - timedelta(hours=1), upto_batch=None,
                                                     new_rows=2), increments.PLANNED)
    caplog.set_level("INFO", logger="jobs.quality.gate")
    report = run_gate(settings, "silver", "run-2", as_of=as_of, tables=["silver.view_events"],
                      raise_on_failure=False)
    # the slice: not the old row; the two rows of e1 for uniqueness
    assert "silver.view_events: 4 rows (2 changed since version 0, 2 with a repeated unique value)" in caplog.text
    failed = {o.expectation: (o.unexpected_count, o.sample_keys) for o in report.failed}
    assert failed == {
        "expect_column_values_to_be_unique(event_id)": (2, ["e1"]),
        "expect_column_values_to_be_between(completion_pct)": (1, ["e4"]),
    }


def test_an_exact_copy_of_an_unchanged_row_fails_uniqueness(settings: Settings) -> None:
    """A row written twice is equal to its audited self, so neither copy is 'changed'; the uniqueness expectation
    still sees both (they repeat a key within the slice) and fails on them."""
    _write(settings, "silver.view_events", [_view("e1"), _view("e2")])
    assert run_gate(settings, "silver", "run-1", tables=["silver.view_events"]).ok
    _write(settings, "silver.view_events", [_view("e1"), _view("e2"), _view("e2")])
    as_of = T0 + timedelta(hours=1)
    increments.record(settings, increments.Increment(run_id="r", as_of=as_of, horizon=T0 - timedelta(hours=1),
                                                     gold_horizon=T0 - timedelta(hours=1), upto_batch=None,
                                                     new_rows=1), increments.PLANNED)
    report = run_gate(settings, "silver", "run-2", as_of=as_of, tables=["silver.view_events"],
                      raise_on_failure=False)
    assert report.rows == {"silver.view_events": 3}
    assert {o.expectation: (o.unexpected_count, o.sample_keys) for o in report.failed} == {
        "expect_column_values_to_be_unique(event_id)": (2, ["e2"]),
    }


def test_a_table_not_written_since_its_audited_version_has_no_row_to_validate(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A table a run did not write (gold.author_viewer_latest between the days its sealed day moves) holds only
    files its audited version held: no changed row and no new repeated value, so no row is read for either, while
    the slice's rows are still counted and every expectation is reported."""
    older = _view("old", segment_created_at=T0 - timedelta(days=3))
    _write(settings, "silver.view_events", [_view("e1"), _view("e2"), older])
    assert run_gate(settings, "silver", "run-1", tables=["silver.view_events"]).ok
    as_of = T0 + timedelta(hours=1)
    increments.record(settings, increments.Increment(run_id="r", as_of=as_of, horizon=T0 - timedelta(hours=1),
                                                     gold_horizon=T0 - timedelta(hours=1), upto_batch=None,
                                                     new_rows=0), increments.PLANNED)
    caplog.set_level("INFO", logger="jobs.quality.gate")
    report = run_gate(settings, "silver", "run-2", as_of=as_of, tables=["silver.view_events"])
    assert "silver.view_events: 2 rows (0 changed since version 0, 0 with a repeated unique value)" in caplog.text
    assert report.ok and report.rows == {"silver.view_events": 2}
    assert len(report.outcomes) == len(suite_for(contracts.get("silver.view_events")).expectations)


def _latest(author: int, viewer: int, latest: int, before: int | None) -> dict[str, Any]:
    """A gold.author_viewer_latest row; days of November 2026."""
    return {"author_id": author, "viewer_id": viewer, "latest_day": date(2026, 11, latest),
            "before_day": None if before is None else date(2026, 11, before)}


@pytest.mark.parametrize(("advanced", "failed"), [
    # the day's advance: every row's before_day moves, one pair's latest day too
    ([_latest(1, 1, 1, 4), _latest(1, 2, 3, 4), _latest(2, 1, 2, 4)], {}),
    # a row left at the old bound: two values
    ([_latest(1, 1, 1, 4), _latest(1, 2, 3, 4), _latest(2, 1, 2, 3)],
     {"expect_column_unique_value_count_to_be_between(before_day)": (None, [])}),
    # a null bound (the one value counted is the other rows')
    ([_latest(1, 1, 1, 4), _latest(1, 2, 3, 4), _latest(2, 1, 2, None)],
     {"expect_column_values_to_not_be_null(before_day)": (1, []),
      "expect_column_pair_values_a_to_be_greater_than_b(before_day,latest_day)": (
          1, [{"author_id": 2, "viewer_id": 1}])}),
    # the bound moved back under an unchanged row's latest day: the pair rule reads every row
    ([_latest(1, 1, 1, 2), _latest(1, 2, 2, 2), _latest(2, 1, 2, 2)],
     {"expect_column_pair_values_a_to_be_greater_than_b(before_day,latest_day)": (
         2, [{"author_id": 1, "viewer_id": 2}, {"author_id": 2, "viewer_id": 1}])}),
])
def test_a_state_table_s_bounds_are_checked_over_the_whole_table_and_left_out_of_the_diff(
    settings: Settings, caplog: pytest.LogCaptureFixture, advanced: list[dict[str, Any]],
    failed: dict[str, Any],
) -> None:
    """A state table advanced once a day (gold.author_viewer_latest) is written again whole with a new before_day in
    every row. The gate compares its rows without that bound (sameInEveryRow), so only the pairs whose latest day
    moved are validated row by row; the bound's own checks (not null, one value) read its distinct values over the
    whole table, and a rule reading it with another column (latest_day < before_day) reads every row."""
    key = "gold.author_viewer_latest"
    _write(settings, key, [_latest(1, 1, 1, 3), _latest(1, 2, 2, 3), _latest(2, 1, 2, 3)])
    assert run_gate(settings, "gold", "run-1", tables=[key]).ok
    _write(settings, key, advanced)
    as_of = T0 + timedelta(days=1)
    increments.record(settings, increments.Increment(run_id="r", as_of=as_of, horizon=T0, gold_horizon=T0,
                                                     upto_batch=None, new_rows=1), increments.PLANNED)
    caplog.set_level("INFO", logger="jobs.quality.gate")
    report = run_gate(settings, "gold", "run-2", as_of=as_of, tables=[key], raise_on_failure=False)
    changed = sum(1 for old, new in zip([1, 2, 2], advanced, strict=True) if new["latest_day"].day != old)
    assert f"{key}: 3 rows ({changed} changed since version 0, 0 with a repeated unique value)" in caplog.text
    assert {o.expectation: (o.unexpected_count, o.sample_keys) for o in report.failed} == failed
    assert len(report.outcomes) == len(suite_for(contracts.get(key)).expectations)


@given(
    rows=st.lists(st.tuples(st.sampled_from(["a", "b", "c", None]), st.integers(0, 3), st.integers(0, 2)),
                  max_size=30),
    start=st.integers(0, 3),
)
@hyp_settings(max_examples=60, deadline=None)
def test_repeated_rows_are_exactly_those_a_full_uniqueness_check_flags(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str | None, int, int]], start: int
) -> None:
    """gate._repeated returns, within the slice, exactly the rows pandas' duplicated(keep=False) flags for any of the
    column lists (nulls equal to nulls, as GX groups them), and the slice's row count; the same twice over on one
    database, as a gate runs it for every table (each call's temporary table is its own)."""
    import pyarrow.parquet as pq

    from jobs.quality.gate import _database, _repeated

    path = tmp_path_factory.mktemp("repeated") / "part.parquet"
    table = pa.table({"k": [r[0] for r in rows], "n": [r[1] for r in rows], "day": [date(2026, 11, 1 + r[2])
                                                                                   for r in rows]},
                     schema=pa.schema([("k", pa.string()), ("n", pa.int64()), ("day", pa.date32())]))
    pq.write_table(table, path)
    since = (("day",), datetime(2026, 11, 1 + start, tzinfo=UTC))
    with _database() as db:
        runs = [_repeated([str(path)], ["k", "n", "day"], since, [["k"], ["n", "day"]], db) for _ in range(2)]
    got, count = runs[0]
    order = [(c, "ascending") for c in ("k", "n", "day")]
    assert runs[1][1] == count and runs[1][0].sort_by(order).equals(got.sort_by(order))
    frame = table.to_pandas()
    frame = frame[frame["day"] >= date(2026, 11, 1 + start)]
    flagged = frame[frame.duplicated(["k"], keep=False) | frame.duplicated(["n", "day"], keep=False)]
    assert count == len(frame)
    key = lambda r: (str(r[0]), r[1], r[2])  # noqa: E731
    assert sorted(map(tuple, got.to_pandas().itertuples(index=False)), key=key) == sorted(
        map(tuple, flagged.itertuples(index=False)), key=key)


@given(
    held=st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", None]), st.integers(0, 5), st.integers(0, 2)),
                  max_size=12),
    rows=st.lists(st.tuples(st.sampled_from(["a", "b", "c", "e", None]), st.integers(0, 5), st.integers(0, 2)),
                  max_size=12),
    copies=st.lists(st.integers(0, 11), max_size=3),
    start=st.integers(0, 3),
)
@hyp_settings(max_examples=80, deadline=None)
def test_repeated_rows_of_an_appended_slice_group_only_the_fresh_values(
    tmp_path_factory: pytest.TempPathFactory, held: list[tuple[str | None, int, int]],
    rows: list[tuple[str | None, int, int]], copies: list[int], start: int,
) -> None:
    """Given the files the audited version held (which passed: no value of a set repeats among their rows), the
    rows gate._repeated returns when told which files are fresh (it groups only the slice's rows sharing a value
    with a fresh row) are exactly those of the whole check over all files: every repeat involves a fresh row, exact
    copies of held rows included; and the slice's row count is the same."""
    import pyarrow.parquet as pq

    from jobs.quality.gate import _database, _repeated

    # what the audited version held: no repeated k, no repeated (n, day)
    seen_k: set[Any] = set()
    seen_nd: set[Any] = set()
    old = []
    for k, n, d in held:
        if k in seen_k or (n, d) in seen_nd:
            continue
        seen_k.add(k)
        seen_nd.add((n, d))
        old.append((k, n, d))
    new = rows + [old[i] for i in copies if i < len(old)]
    schema = pa.schema([("k", pa.string()), ("n", pa.int64()), ("day", pa.date32())])
    folder = tmp_path_factory.mktemp("repeated-fresh")

    def written(name: str, part: list[tuple[str | None, int, int]]) -> str:
        table = pa.table({"k": [r[0] for r in part], "n": [r[1] for r in part],
                          "day": [date(2026, 11, 1 + r[2]) for r in part]}, schema=schema)
        pq.write_table(table, folder / name)
        return str(folder / name)

    files = [written("held.parquet", old), written("fresh.parquet", new)]
    since = (("day",), datetime(2026, 11, 1 + start, tzinfo=UTC))
    sets = [["k"], ["n", "day"]]
    with _database() as db:
        whole, whole_count = _repeated(files, ["k", "n", "day"], since, sets, db)
        fresh, fresh_count = _repeated(files, ["k", "n", "day"], since, sets, db, fresh=files[1:])
        again = _repeated(files, ["k", "n", "day"], since, sets, db, fresh=files[1:])
    order = [(c, "ascending") for c in ("k", "n", "day")]
    assert fresh_count == whole_count and again[1] == whole_count
    assert fresh.sort_by(order).equals(whole.sort_by(order)) and again[0].sort_by(order).equals(whole.sort_by(order))
    if any(i < len(old) and date(2026, 11, 1 + old[i][2]) >= date(2026, 11, 1 + start) for i in copies):
        assert fresh.num_rows >= 2  # an exact copy of a held row in the slice repeats its values


def test_repeated_rows_when_the_fresh_files_lack_a_column(tmp_path: Path) -> None:
    """Fresh files written before a column was added (which the set's values need) make the scan group the whole
    slice, as when every file is fresh: the same rows, no error."""
    import pyarrow.parquet as pq

    from jobs.quality.gate import _database, _repeated

    pq.write_table(pa.table({"k": ["a", "b"], "n": [1, 2], "day": [date(2026, 11, 2)] * 2}), tmp_path / "held.parquet")
    pq.write_table(pa.table({"k": ["b", "c", "c"], "day": [date(2026, 11, 2)] * 3}), tmp_path / "fresh.parquet")
    files = [str(tmp_path / "held.parquet"), str(tmp_path / "fresh.parquet")]
    since = (("day",), datetime(2026, 11, 1, tzinfo=UTC))
    with _database() as db:
        whole, count = _repeated(files, ["k", "n"], since, [["k"], ["n", "day"]], db)
        fresh, fresh_count = _repeated(files, ["k", "n"], since, [["k"], ["n", "day"]], db, fresh=files[1:])
    assert count == fresh_count == 5
    assert sorted(whole.to_pylist(), key=str) == sorted(fresh.to_pylist(), key=str) == sorted([
        {"k": "b", "n": 2}, {"k": "b", "n": None}, {"k": "c", "n": None}, {"k": "c", "n": None}], key=str)


def test_the_gate_waits_for_the_great_expectations_preload(tmp_path: Path) -> None:
    """The pipeline imports Great Expectations in a background thread while silver runs; a gate that starts before
    that import ends must wait for it, not meet a half-imported package (it did, as an ImportError 'most likely due
    to a circular import', when a small run's gate began half a second into the preload). A fresh interpreter, so
    the package is not imported yet."""
    assert _fresh_interpreter(tmp_path / "race.py", (
        "import time\n"
        "from jobs.quality import gx_runtime\n"
        "gx_runtime.preload()\n"
        "time.sleep(0.5)\n"
        "with gx_runtime.tuned():\n"
        "    pass\n"
        "print('imported')\n"
    )) == "imported"


def test_the_preload_defers_scipy_stats_and_altair_until_their_first_use(tmp_path: Path) -> None:
    """Great Expectations imports scipy.stats (~0.7 CPU-second) and altair (~0.2) for the KL-divergence expectation
    only, which no contract uses: after the preload both are still lazy modules (nothing of them executed), the gate's
    validations run, and their first real use loads them: the KL-divergence expectation itself computes through
    scipy.stats, and altair's charts are there. A fresh interpreter, so nothing imported them yet."""
    assert _fresh_interpreter(tmp_path / "lazy.py", (
        "import sys, importlib.util\n"
        "from jobs.quality import gx_runtime\n"
        "gx_runtime.preload()\n"
        "with gx_runtime.tuned():\n"
        "    import great_expectations as gx\n"
        "    import pandas as pd\n"
        "    def lazy_now():\n"
        "        return [isinstance(sys.modules[m], importlib.util._LazyModule) for m in ('scipy.stats', 'altair')]\n"
        "    lazy = lazy_now()\n"
        "    ctx = gx.get_context(mode='ephemeral')\n"
        "    frame = pd.DataFrame({'x': [1, 2, 2, 3]})\n"
        "    batch = ctx.data_sources.add_pandas('p').add_dataframe_asset('a').add_batch_definition_whole_dataframe("
        "'b').get_batch(batch_parameters={'dataframe': frame})\n"
        "    unique = batch.validate(gx.expectations.ExpectColumnValuesToBeUnique(column='x')).success\n"
        "    still_lazy = lazy_now()\n"
        "    kl = batch.validate(gx.expectations.ExpectColumnKLDivergenceToBeLessThan(column='x', partition_object={"
        "'values': [1, 2, 3], 'weights': [0.25, 0.5, 0.25]}, threshold=0.1)).success\n"
        "    from scipy import stats\n"
        "    import altair\n"
        "print(lazy, unique, still_lazy, kl, stats.entropy([0.5, 0.5], [0.5, 0.5]), altair.Chart.__name__, "
        "lazy_now())\n"
    )) == "[True, True] False [True, True] True 0.0 Chart [False, False]"


def _fresh_interpreter(script: Path, code: str) -> str:
    """What `code` prints, run as `script` in a new interpreter from the repository root (it must exit 0)."""
    import os
    import subprocess
    import sys

    script.write_text(code)
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(script)], cwd=root, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.parametrize("key", sorted(k for k, c in contracts.load_all().items() if c.layer in ("silver", "gold")))
def test_the_tuned_kwargs_lookups_answer_as_great_expectations_own(key: str) -> None:
    """gx_runtime replaces Expectation's kwargs lookups (each read the whole configuration once per key) with ones
    that read it once per call: for every expectation the gate generates, as the gate builds it and as GX's validator
    rebuilds it from its configuration, they return what GX's own methods return. GX's methods are back after the
    block."""
    from great_expectations.expectations.expectation import Expectation

    from jobs.quality import gx_runtime
    from jobs.quality.gate import _gx_expectation

    runtime = {"result_format": {"result_format": "SUMMARY", "partial_unexpected_count": 5,
                                 "unexpected_index_column_names": ["segment_id"]}}
    names = ("_get_domain_kwargs", "_get_success_kwargs", "_get_runtime_kwargs")

    def answers(expectation: Any) -> list[Any]:
        out = [getattr(expectation, name)() for name in names]
        out.append(expectation._get_runtime_kwargs(runtime_configuration=runtime))
        out += [expectation._get_success_kwarg(k) for k in (*expectation.success_keys, *expectation.runtime_keys)]
        return out

    originals = {name: Expectation.__dict__[name] for name in (*names, "_get_success_kwarg")}
    for spec in suite_for(contracts.get(key)).expectations:
        built = _gx_expectation(spec)
        rebuilt = built.configuration.to_domain_obj()
        expected = [answers(built), answers(rebuilt)]
        with gx_runtime.tuned():
            assert all(Expectation.__dict__[n] is not originals[n] for n in originals)
            assert [answers(built), answers(rebuilt)] == expected, spec.name
        assert all(Expectation.__dict__[n] is originals[n] for n in originals)


_JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=3),
    max_leaves=12,
)


@given(value=_JSON_LIKE)
@hyp_settings(max_examples=300, deadline=None)
def test_plain_json_conversion_is_great_expectations_own(value: Any) -> None:
    """gx_runtime._plain converts plain JSON values (NaN, int dict keys and tuples included) exactly as GX's
    convert_to_json_serializable does."""
    from great_expectations.util import convert_to_json_serializable

    from jobs.quality import gx_runtime

    expected = json.dumps(convert_to_json_serializable(value), sort_keys=True)
    assert json.dumps(gx_runtime._plain(value), sort_keys=True) == expected


def test_plain_metric_ids_are_great_expectations_own(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every metric id the gate's validations make through gx_runtime's IDDict.to_id equals GX's own, and most of
    them take the plain path (a gate over a table of every silver column type)."""
    from jobs.quality import gx_runtime

    made = gx_runtime._to_id
    calls = {"plain": 0, "all": 0}

    def checking(original: Any) -> Any:
        fast = made(original)

        def to_id(self: Any, id_keys: Any = None, id_ignore_keys: Any = None) -> Any:
            mine = fast(self, id_keys, id_ignore_keys)
            assert mine == original(self, id_keys, id_ignore_keys), dict(self)
            calls["all"] += 1
            try:
                gx_runtime._plain(dict(self))
                calls["plain"] += 1
            except gx_runtime._NotPlain:
                pass
            return mine

        return to_id

    monkeypatch.setattr(gx_runtime, "_to_id", checking)
    _write(settings, "silver.view_events", [_view("e1"), _view("e2", completion_pct=0.2, view_duration_ms=3000)])
    assert run_gate(settings, "silver", "run-ids", build_docs=False).ok
    assert calls["all"] > 500 and calls["plain"] > calls["all"] // 2, calls


def test_overlapping_tuned_blocks_restore_great_expectations_when_the_last_ends() -> None:
    """Two gates' blocks may overlap in threads and end in any order: the changes hold until the last block ends,
    then GX's own methods and fingerprint threshold are back (with a save/restore per block, the first block to end
    would restore GX's methods under the second, and the second would leave its replacements in place)."""
    from great_expectations.core.id_dict import IDDict
    from great_expectations.execution_engine import pandas_execution_engine as engine
    from great_expectations.expectations.expectation import Expectation

    from jobs.quality import gx_runtime

    def state() -> tuple[Any, ...]:
        return (Expectation.__dict__["_get_runtime_kwargs"], IDDict.__dict__["to_id"], engine.HASH_THRESHOLD)

    gx_own = state()
    first, second = gx_runtime.tuned(), gx_runtime.tuned()
    first.__enter__()
    tuned = state()
    assert all(a is not b for a, b in zip(tuned[:2], gx_own[:2], strict=True)) and tuned[2] == 0
    second.__enter__()
    first.__exit__(None, None, None)
    assert state() == tuned
    second.__exit__(None, None, None)
    assert state() == gx_own


def test_basic_then_summary_results_record_what_summary_alone_does() -> None:
    """The gate validates each group in GX's BASIC result format and only the expectations that found an offending
    row (or raised) again in SUMMARY: every figure it records (success, unexpected count, observed value, sample
    keys, error) equals a SUMMARY validation of the whole group, on passing, failing, `mostly` and raising
    expectations, and only those are validated twice."""
    import great_expectations as gx
    import pandas as pd

    from jobs.quality import gate, gx_runtime
    from jobs.quality.suites import ExpectationSpec

    frame = pd.DataFrame({"k": [1, 2, 3, 4, 5], "a": [1.0, None, 3.0, 4.0, 5.0], "b": ["x", "y", "x", "z", "x"],
                          "n": [1, 2, 3, 40, 50]})
    specs = [
        ExpectationSpec("expect_column_values_to_not_be_null", {"column": "k"}),  # passes
        ExpectationSpec("expect_column_values_to_not_be_null", {"column": "a"}),  # fails: row 2
        ExpectationSpec("expect_column_values_to_be_in_set", {"column": "b", "value_set": ["x", "y"],
                                                              "mostly": 0.5}),  # passes with row 4 offending
        ExpectationSpec("expect_column_values_to_be_between", {"column": "n", "min_value": 0, "max_value": 10}),
        ExpectationSpec("expect_column_max_to_be_between", {"column": "n", "min_value": 0, "max_value": 100}),
        ExpectationSpec("expect_column_values_to_not_be_null", {"column": "missing"}),  # raises
    ]

    def recorded(results: list[Any]) -> dict[str, tuple[Any, ...]]:
        out = {}
        for r in results:
            res = r.result or {}
            out[gate._result_name(r)] = (
                bool(r.success), res.get("unexpected_count"), gate._plain(res.get("observed_value")),
                gate._sample_keys(res.get("partial_unexpected_index_list"), ["k"]), gate._error(r.exception_info))
        return out

    with gx_runtime.tuned():
        batch = gate._batches(gate._context()).get_batch(batch_parameters={"dataframe": frame})
        summary = batch.validate(
            gx.ExpectationSuite(name="whole", expectations=[gate._gx_expectation(s) for s in specs]),
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": gate.SAMPLE_KEYS,
                           "unexpected_index_column_names": ["k"]}).results
        basic = batch.validate(
            gx.ExpectationSuite(name="basic", expectations=[gate._gx_expectation(s) for s in specs]),
            result_format=gate._BASIC).results
        two_pass = gate._gx_results(gx, batch, specs, "two", "silver.tiny", ["k"])
    assert recorded(two_pass) == recorded(summary)
    expected = recorded(summary)
    assert expected[specs[1].name][:4] == (False, 1, None, [2])
    assert expected[specs[2].name][:4] == (True, 1, None, [4])
    assert expected[specs[3].name][:4] == (False, 2, None, [4, 5])
    assert expected[specs[4].name][:4] == (True, None, 50, [])
    assert expected[specs[5].name][0] is False and expected[specs[5].name][4]
    # validated again: exactly the failing, the offending and the raising ones
    assert sorted(gate._result_name(r) for r in basic if gate._needs_rows(r)) == sorted(
        s.name for s in (specs[1], specs[2], specs[3], specs[5]))

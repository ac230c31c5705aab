"""Contracts are the single source of truth: lint, and schemas generated for Arrow, Spark and msgspec."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from jobs.spark_schemas import spark_ddl_type
from storylake import contracts
from storylake.contracts import ContractError, parse_contract


def test_repository_contracts_lint_clean() -> None:
    assert contracts.lint() == []


def test_every_event_type_has_a_landing_and_a_derived_bronze_contract() -> None:
    assert contracts.event_types() == (
        "engagement", "navigation", "profile_updated", "relationship", "segment_archived", "segment_created",
        "segment_deleted",
        "segment_view", "sticker_interaction",
    )
    bronze = contracts.get("bronze.segment_view")
    assert bronze.column_names == (
        "event_id", "event_type", "event_time", "segment_id", "viewer_id", "view_duration_ms", "completion_pct",
        "view_source", "idempotency_key", "_source_file", "_line", "_ingested_at", "_batch_id",
    )
    assert bronze.arrow_schema().field("event_time").type == pa.timestamp("us", tz="UTC")


def test_nested_types_map_to_arrow_and_spark_ddl() -> None:
    c = contracts.get("landing.segment_created")
    assert spark_ddl_type(c.column("stickers")) == (
        "array<struct<`sticker_id`: bigint, `type`: string, `options`: array<string>, `correct_index`: bigint>>"
    )
    assert c.arrow_schema().field("stickers").type == pa.list_(
        pa.field("element", pa.struct([("sticker_id", pa.int64()), ("type", pa.string()),
                                      ("options", pa.list_(pa.field("element", pa.string()))),
                                      ("correct_index", pa.int64())]))
    )


def test_pii_flags_and_units_are_read() -> None:
    c = contracts.get("landing.segment_view")
    assert c.column("viewer_id").is_pii and not c.column("segment_id").is_pii
    assert c.column("view_duration_ms").unit == "ms"
    assert (c.freshness_hours, c.retention_days) == (1.0, 30.0)
    sums = contracts.get("gold.ring_signal_sums")
    assert [col.name for col in sums.columns if col.same_in_every_row] == ["from_day", "before_day"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("kind: DataContract\n", "missing required key 'apiVersion'"),
        ("apiVersion: v3\nkind: DataContract\nid: x\nname: t\ndataProduct: gold\nschema:\n  - name: t\n"
         "    properties:\n      - {name: a, physicalType: varchar}\n",
         "bad.yaml.a: physicalType 'varchar' is not one of"),
        ("apiVersion: v3\nkind: DataContract\nid: x\nname: t\ndataProduct: gold\nschema:\n  - name: t\n"
         "    primaryKey: [b]\n    properties:\n      - {name: a, physicalType: bigint}\n",
         "key column 'b' is not a property"),
        ("apiVersion: v3\nkind: DataContract\nid: x\nname: t\ndataProduct: attic\nschema: []\n",
         "dataProduct \\(layer\\) 'attic' not in"),
        ("apiVersion: v3\nkind: DataContract\nid: x\nname: t\ndataProduct: gold\nschema:\n  - name: t\n"
         "    properties:\n      - {name: a, physicalType: date, customProperties: [{property: sameInEveryDay, "
         "value: true}]}\n",
         "bad.yaml.a: customProperties property 'sameInEveryDay' is not one of sameInEveryRow"),
        ("apiVersion: v3\nkind: DataContract\nid: x\nname: t\ndataProduct: gold\nschema:\n  - name: t\n"
         "    properties:\n      - {name: a, physicalType: date, customProperties: [{property: sameInEveryRow, "
         "value: 'yes'}]}\n",
         "bad.yaml.a: customProperties sameInEveryRow must be true or false, got 'yes'"),
    ],
)
def test_invalid_contracts_are_rejected_naming_the_key(tmp_path: Path, body: str, message: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(body)
    with pytest.raises(ContractError, match=message):
        parse_contract(p)

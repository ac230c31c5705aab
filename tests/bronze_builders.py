"""Builders shared by the silver tests (no tests here): tiny bronze DataFrames with explicit contract schemas."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from jobs.spark_schemas import spark_schema
from storylake import contracts

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)
MS = timedelta(milliseconds=1)

_DEFAULTS: dict[str, dict[str, Any]] = {
    "segment_created": {
        "media_id": 1, "media_type": "photo", "audience": "public", "duration_ms": 5000, "stickers": [],
    },
    "segment_deleted": {},
    "segment_archived": {"highlight_id": None},
    "segment_view": {"view_duration_ms": 5000, "completion_pct": 1.0, "view_source": "tray"},
    "relationship": {"other_user_id": None},
    "navigation": {"action": "tap_forward"},
    "sticker_interaction": {"option_index": None, "value": None, "text": None},
    "engagement": {"segment_id": None},
    "profile_updated": {"profile_picture_media_id": None},
}
_seq = itertools.count(1)


def sticker(sticker_id: int, type_: str, options: list[str] | None = None, correct_index: int | None = None) -> tuple:
    return (sticker_id, type_, options, correct_index)


def bronze_rows(event: str, rows: list[dict[str, Any]]) -> list[tuple]:
    """Complete rows (envelope, defaults, bronze metadata) in the bronze contract's column order."""
    contract = contracts.get(f"bronze.{event}")
    out = []
    for row in rows:
        n = next(_seq)
        full = {
            "event_id": f"{event[:3]}-{n}",
            "event_type": event,
            "_source_file": f"{event}/dt=2026-11-01/hour=10/part-0.jsonl",
            "_line": n,
            "_ingested_at": T0,
            "_batch_id": "batch-1",
            **_DEFAULTS[event],
            **row,
        }
        if "idempotency_key" in contract.column_names:
            full.setdefault("idempotency_key", f"key-{full['event_id']}")
        unknown = set(full) - set(contract.column_names)
        assert not unknown, f"{event}: unknown columns {unknown}"
        out.append(tuple(full.get(c) for c in contract.column_names))
    return out


def bronze(spark: Any, event: str, rows: list[dict[str, Any]]) -> Any:
    """A bronze DataFrame (explicit schema from the contract)."""
    return spark.createDataFrame(bronze_rows(event, rows), spark_schema(contracts.get(f"bronze.{event}")))


def as_utc(value: Any) -> Any:
    """Collected timestamps come back as naive local time: make them aware UTC so tests are TZ-independent."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)  # a naive value is read as local time, which is what pyspark returns
    return value


def rows(df: Any, *cols: str) -> list[tuple]:
    """Sorted tuples of `cols` (all columns when none given), timestamps as aware UTC."""
    sel = df.select(*cols) if cols else df
    return sorted(
        (tuple(as_utc(v) for v in r) for r in sel.collect()),
        key=lambda t: tuple((v is None, str(v)) for v in t),
    )


def by(df: Any, key: str, *cols: str) -> dict[Any, dict[str, Any]]:
    """{key value: {col: value}} for one row per key."""
    out: dict[Any, dict[str, Any]] = {}
    for r in df.select(key, *cols).collect():
        d = {k: as_utc(v) for k, v in r.asDict().items()}
        assert d[key] not in out, f"duplicate {key} {d[key]}"
        out[d[key]] = d
    return out


def local(spark: Any, df: Any, key: str) -> Any:
    """`df` materialised as a literal DataFrame of contract `key` (keeps plans of later tests small: Sail's
    cache() is a no-op, so a derived input would otherwise be recomputed inside every action)."""
    return spark.createDataFrame(df.collect(), spark_schema(contracts.get(key)))

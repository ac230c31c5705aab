"""Decoders of landing events generated from their contracts (pure: no engine, no I/O).

One definition serves ingest (jobs/ingest/validate.py decodes landing files with it) and the HTTP API's seen
receipts (serving/web/receipts.py validates each receipt as the `segment_view` event it becomes): a msgspec
Struct per event type with strict types, enums, ranges, lengths and formats from the contract, the contract's
multi-field row rules, and `classify`, which turns a msgspec message into the (rule, field) of a quarantine row.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import pyarrow as pa

from storylake import contracts
from storylake.contracts import Column, Contract

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1



# --- validators generated from contracts -------------------------------------------------------


def _py_type(col: Column, owner: str) -> Any:
    meta: dict[str, Any] = {}
    if col.physical_type == "timestamp" or col.name == "event_time":
        # RFC 3339 with a timezone, parsed in C by msgspec (much faster than a regex); UTC checked per row.
        return Annotated[datetime, msgspec.Meta(tz=True)]
    if col.enum is not None:
        base: Any = Literal[tuple(col.enum)]  # type: ignore[valid-type]
    elif col.physical_type in ("bigint", "int"):
        base = int
        meta = {"ge": INT64_MIN, "le": INT64_MAX}
    elif col.physical_type == "double":
        base = float
    elif col.physical_type == "boolean":
        base = bool
    elif col.physical_type == "string":
        base = str
    elif col.physical_type == "array":
        assert col.items is not None
        base = list[_py_type(col.items, owner)]  # type: ignore[misc]
    elif col.physical_type == "struct":
        base = _struct(f"{owner}_{col.name}", col.fields)
    else:
        base = str
    if col.minimum is not None:
        meta["ge"] = col.minimum
    if col.maximum is not None:
        meta["le"] = col.maximum
    if col.exclusive_maximum is not None:
        meta["lt"] = col.exclusive_maximum
    if col.max_length is not None:
        meta["max_length"] = col.max_length
    if col.pattern is not None and col.name != "event_time":
        meta["pattern"] = col.pattern
    return Annotated[base, msgspec.Meta(**meta)] if meta else base


def _struct(name: str, columns: tuple[Column, ...], event_type: str | None = None) -> type[msgspec.Struct]:
    fields: list[tuple[Any, ...]] = []
    for col in sorted(columns, key=lambda c: not c.required):  # required fields first
        # The envelope's event_type must equal the folder: checked by the decoder itself.
        t = Literal[event_type] if (event_type and col.name == "event_type") else _py_type(col, name)
        fields.append((col.name, t) if col.required else (col.name, t | None, None))
    return msgspec.defstruct(name, fields, gc=False, forbid_unknown_fields=False)


# Row rules named in contracts' `quality` sections that need more than one field.
RowRule = Callable[[Any], str | None]


def _other_user_required(ev: Any) -> str | None:
    if ev.other_user_id is None and ev.kind not in ("set_private", "set_public"):
        return f"other_user_id is required for kind {ev.kind!r}"
    return None


def _payload_matches_type(ev: Any) -> str | None:
    needs = {"poll": "option_index", "quiz": "option_index", "slider": "value", "question": "text"}
    field = needs.get(ev.sticker_type)
    if field is not None and getattr(ev, field) is None:
        return f"{field} is required for sticker_type {ev.sticker_type!r}"
    return None


ROW_RULES: dict[str, RowRule] = {
    "other_user_required": _other_user_required,
    "payload_matches_type": _payload_matches_type,
}


@functools.cache
def validator_for(event_type: str) -> Validator:
    return _validator(event_type)


@dataclass(frozen=True)
class Validator:
    contract: Contract
    bronze: Contract
    decoder: msgspec.json.Decoder[Any]
    rules: tuple[tuple[str, RowRule], ...]
    parse_schema: pa.Schema
    many: msgspec.json.Decoder[Any]  # a JSON array of events (a chunk of lines decoded in one C call)


def _validator(event_type: str) -> Validator:
    contract = contracts.get(f"landing.{event_type}")
    bronze = contracts.get(f"bronze.{event_type}")
    struct = _struct(f"{event_type}_event", contract.columns, event_type)
    rules = tuple((r["rule"], ROW_RULES[r["rule"]]) for r in contract.critical_rules if r["rule"] in ROW_RULES)
    landing_cols = [c for c in bronze.columns if c.name in contract.column_names]
    parse_schema = pa.schema([pa.field(c.name, contracts.arrow_type(c)) for c in landing_cols])
    return Validator(
        contract, bronze, msgspec.json.Decoder(struct), rules, parse_schema, msgspec.json.Decoder(list[struct])
    )


# --- per-line classification ------------------------------------------------------------------

_AT = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"missing required field `([^`]+)`")


def classify(message: str) -> tuple[str, str]:
    """(rule, field) for a msgspec validation message."""
    at = _AT.search(message)
    path = at.group(1) if at else ""
    missing = _MISSING.search(message)
    if missing:
        return "missing_field", f"{path}.{missing.group(1)}" if path else missing.group(1)
    if "Invalid enum value" in message:
        return "invalid_enum", path
    if "got `null`" in message:
        return "null_value", path
    if "of length" in message:
        return "too_long", path
    if "matching regex" in message or "datetime" in message:
        return "bad_format", path
    if re.search(r"Expected `(int|float)` (>=|<=|>|<)", message):
        return "out_of_range", path
    return "wrong_type", path


def offending_value(line: bytes, field: str) -> str:
    try:
        value: Any = json.loads(line)
        for part in re.findall(r"[^.\[\]]+", field):
            value = value[int(part)] if isinstance(value, list) else value[part]
        return json.dumps(value)[:80]
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        return ""

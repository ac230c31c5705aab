"""Seen receipts (seed: stories-viewer-design, `POST /v1/stories/seen-receipts`) -> `segment_view` landing events.

Pure: no I/O. Each receipt becomes the landing line the pipeline would receive from any collector, and is checked
by the same definitions ingest applies, so the API accepts exactly what the pipeline would not quarantine at ingest:
  - the `segment_view` contract's decoder (storylake.event_decoders: types, ranges, enums, lengths, UTC time);
  - the arrival rules (storylake.rules.arrival) for the landing hour the line is written into;
  - the segment's lifetime (storylake.rules.lifetimes), when the serving snapshot knows the segment.
Fields: `viewDurationMs` defaults to 0 (such a receipt counts as a view only at completionPct 1, storylake.rules.views)
and `viewSource` to "tray". `viewerId` is the caller (checked by the route). Every line gets a fresh event_id; a
client retry repeats the idempotencyKey, which makes it one receipt downstream.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
import orjson

from storylake.event_decoders import classify, offending_value, validator_for
from storylake.rules.arrival import FUTURE, LATE, accepted_range
from storylake.rules.lifetimes import in_lifetime
from storylake.rules.views import counts_as_view

EVENT_TYPE = "segment_view"
DEFAULT_VIEW_SOURCE = "tray"
# landing field -> the receipt's field, for reasons a client can act on
RECEIPT_FIELDS = {
    "event_time": "viewedAt", "segment_id": "segmentId", "view_duration_ms": "viewDurationMs",
    "completion_pct": "completionPct", "view_source": "viewSource", "idempotency_key": "idempotencyKey",
    "viewer_id": "viewerId",
}
_ZERO = timedelta(0)


@dataclass(frozen=True)
class Verdict:
    """What became of one receipt: accepted (with its landing line) or rejected (with a reason naming the field)."""

    index: int
    segment_id: Any
    accepted: bool
    reason: str | None = None
    field: str | None = None
    line: bytes | None = None
    viewed_at: datetime | None = None
    counts_as_view: bool = False


def event_of(viewer_id: int, receipt: dict[str, Any]) -> dict[str, Any]:
    """The landing `segment_view` event of a receipt (camelCase API fields -> contract fields)."""
    duration = receipt.get("viewDurationMs")
    source = receipt.get("viewSource")
    return {
        "event_id": uuid.uuid4().hex,
        "event_type": EVENT_TYPE,
        "event_time": receipt.get("viewedAt"),
        "segment_id": receipt.get("segmentId"),
        "viewer_id": viewer_id,
        "view_duration_ms": 0 if duration is None else duration,
        "completion_pct": receipt.get("completionPct"),
        "view_source": DEFAULT_VIEW_SOURCE if source is None else source,
        "idempotency_key": receipt.get("idempotencyKey"),
    }


def json_bytes(doc: Any) -> bytes:
    """`doc` as compact JSON (a landing line, an answer). A client's integers beyond 64 bits and lone surrogates,
    which orjson refuses, are written by the standard library, so that the contract's decoder can name them and an
    answer can echo them."""
    try:
        return orjson.dumps(doc)
    except TypeError:
        return json.dumps(doc, separators=(",", ":")).encode()


def check(
    viewer_id: int,
    receipts: list[dict[str, Any]],
    arrival_hour: datetime,
    window: timedelta,
    skew: timedelta,
    created_at_of: Callable[[int], datetime | None],
) -> list[Verdict]:
    """A verdict per receipt, in order. `created_at_of(segment_id)`: the segment's created_at in the serving
    snapshot (None when it does not know the segment: the pipeline then decides)."""
    v = validator_for(EVENT_TYPE)
    earliest, latest = accepted_range(arrival_hour, window, skew)
    out: list[Verdict] = []
    for i, receipt in enumerate(receipts):
        seg = receipt.get("segmentId")
        line = json_bytes(event_of(viewer_id, receipt))
        try:
            ev = v.decoder.decode(line)
        except msgspec.DecodeError as exc:
            if not isinstance(exc, msgspec.ValidationError):  # e.g. a lone surrogate in a string
                out.append(Verdict(i, seg, False, f"malformed_json: {exc}"))
                continue
            rule, field = classify(str(exc))
            shown = offending_value(line, field) if rule != "missing_field" else ""
            name = RECEIPT_FIELDS.get(field, field)
            head = str(exc).split(" - at ")[0]
            if rule == "bad_format" and field == "event_time":
                head = "expected an ISO-8601 UTC timestamp ending in Z"
            out.append(Verdict(i, seg, False, f"{rule}: {name}: {head}" + (f" (got {shown})" if shown else ""), name))
            continue
        t = ev.event_time
        if t.utcoffset() != _ZERO:
            out.append(Verdict(i, seg, False, f"bad_format: viewedAt: expected UTC (Z), got offset {t.utcoffset()}",
                               "viewedAt"))
            continue
        broken = next(((name, why) for name, rule in v.rules if (why := rule(ev)) is not None), None)
        if broken is not None:
            out.append(Verdict(i, seg, False, f"{broken[0]}: {broken[1]}"))
            continue
        if t < earliest:
            out.append(Verdict(i, seg, False, f"{LATE}: viewedAt {receipt.get('viewedAt')} is before "
                               f"{earliest:%Y-%m-%dT%H:%MZ} (lateness window)", "viewedAt"))
            continue
        if t > latest:
            out.append(Verdict(i, seg, False, f"{FUTURE}: viewedAt {receipt.get('viewedAt')} is after "
                               f"{latest:%Y-%m-%dT%H:%MZ} (clock skew)", "viewedAt"))
            continue
        created = created_at_of(ev.segment_id)
        if created is not None and not in_lifetime(t, created):
            out.append(Verdict(i, seg, False, f"outside_lifetime: viewedAt {receipt.get('viewedAt')} is outside the "
                               f"segment's lifetime from {created:%Y-%m-%dT%H:%M:%SZ}", "viewedAt"))
            continue
        out.append(Verdict(i, seg, True, line=line, viewed_at=t,
                           counts_as_view=counts_as_view(ev.completion_pct, ev.view_duration_ms)))
    return out

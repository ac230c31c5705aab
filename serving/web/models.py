"""The API's request and response shapes (seed: stories-viewer-design), camelCase on the wire; FastAPI generates
the OpenAPI document from them. Ids are int64 JSON numbers; times are ISO-8601 UTC with a Z suffix."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

INT64_MAX = 2**63 - 1
Id = int


class Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class TraySegment(Camel):
    segment_id: Id
    story_id: Id | None
    media_type: str
    duration_ms: int
    media_url: str | None
    expires_at: datetime
    seen: bool


class TrayUser(Camel):
    user_id: Id
    username: str | None
    profile_picture_url: str | None
    has_unseen: bool
    ring_state: Literal["green", "gradient", "grey"]
    is_close_friends: bool
    is_own: bool
    rank_score: float
    latest_segment_at: datetime
    segment_count: int
    segments: list[TraySegment]


class Tray(Camel):
    users: list[TrayUser]
    next_cursor: str | None
    snapshot_id: str
    now: datetime


class UserRef(Camel):
    user_id: Id
    username: str | None
    profile_picture_url: str | None


class SeenByEntry(Camel):
    user: UserRef
    viewed_at: datetime
    view_source: str
    completion_pct: float


class SeenBy(Camel):
    segment_id: Id
    viewers: list[SeenByEntry]
    view_count: int
    has_more: bool
    next_cursor: str | None
    snapshot_id: str


class Insights(Camel):
    author_id: Id
    now: datetime
    snapshot_id: str
    as_of: datetime
    segments: list[dict[str, Any]]
    stories: list[dict[str, Any]]
    daily: list[dict[str, Any]]
    hourly: list[dict[str, Any]]
    stickers: list[dict[str, Any]]
    question_responses: list[dict[str, Any]]


class ArchivedSegment(Camel):
    segment_id: Id
    story_id: Id | None
    media_type: str
    duration_ms: int
    media_url: str | None
    created_at: datetime
    highlight_id: Id | None


class Highlight(Camel):
    highlight_id: Id
    segments: list[ArchivedSegment]


class Highlights(Camel):
    user_id: Id
    highlights: list[Highlight]
    snapshot_id: str


class Archive(Camel):
    segments: list[ArchivedSegment]
    has_more: bool
    next_cursor: str | None
    snapshot_id: str


class ReceiptIn(Camel):
    """One seen receipt. Types are checked here; values (ranges, enums, lengths, UTC) by the segment_view
    contract, per receipt."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, strict=True)
    segment_id: int
    viewed_at: str = Field(json_schema_extra={"format": "date-time"}, max_length=64)
    completion_pct: float
    idempotency_key: str = Field(max_length=1000)
    view_duration_ms: int | None = None
    view_source: str | None = Field(default=None, max_length=64)


MAX_RECEIPTS = 500


class ReceiptsIn(Camel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, strict=True)
    viewer_id: int
    receipts: list[ReceiptIn] = Field(min_length=1, max_length=MAX_RECEIPTS)


class ReceiptStatus(Camel):
    index: int
    segment_id: int
    status: Literal["accepted", "rejected"]
    reason: str | None = None
    field: str | None = None


class ReceiptsResult(Camel):
    accepted: int
    rejected: int
    receipts: list[ReceiptStatus]


class ProblemDoc(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    field: str | None = None
    value: str | None = None


class Health(BaseModel):
    status: Literal["ok"]


class Ready(Camel):
    status: Literal["ready"]
    snapshot_id: str
    as_of: datetime
    snapshot_age_s: float

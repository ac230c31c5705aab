"""The HTTP API (FastAPI): trays, Seen By, insights and seen receipts over the published snapshot.

    GET  /v1/stories/tray                  the caller's tray (read-your-writes: receipts accepted since the
                                           snapshot are applied from the seen overlay)
    GET  /v1/segments/{segmentId}/seen-by  author only; 410 once the 48 h Seen By lifetime is over
    GET  /v1/authors/{authorId}/insights   author only
    GET  /v1/users/{userId}/highlights     the segments of each highlight the audience rules let the caller see
    GET  /v1/me/archive                    the caller's own archived segments, newest first
    POST /v1/stories/seen-receipts         202 with a status per receipt; accepted ones are durable landing lines
    GET  /healthz, /readyz, /metrics, /openapi.json, /docs

Every route but the operational ones needs `Authorization: Bearer <JWT>` (auth.py); user ids come from the token
only. Errors are RFC 9457 problems (problems.py). The clock is the wall clock unless settings.now pins it.

Handlers are coroutines that run on the event loop: a tray or a Seen By page is a few milliseconds of CPU over the
snapshot's in-process indexes plus at most a DuckDB point lookup, and concurrency comes from worker processes (one
per core). Measured on the API benchmark: handing each request to the thread pool (FastAPI's treatment of `def`
routes) halved the requests a worker answers per second. Longer DuckDB work (insights, highlights, the archive) and
blocking I/O (the landing file's fsync, the overlay's SQLite writes, an OIDC key fetch) run in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving import cursor as cursors
from serving.highlights import MAX_LIMIT as ARCHIVE_MAX
from serving.highlights import ArchivedSegment
from serving.highlights import archive as archive_of
from serving.highlights import highlights as highlights_of
from serving.insights import insights as insights_of
from serving.profiles import profiles as profiles_of
from serving.render import insights_dict, tray_dict
from serving.seen_by import MAX_LIMIT as SEEN_BY_MAX
from serving.seen_by import seen_by as seen_by_of
from serving.snapshot import Snapshot
from serving.snapshot_indexes import segment_index
from serving.tray import MAX_LIMIT as TRAY_MAX
from serving.tray import tray as tray_of
from serving.web import metrics, models, problems, receipts
from serving.web.auth import Authenticator
from serving.web.keys import token_secret
from serving.web.landing_writer import LandingWriter, remove_stale_temporaries
from serving.web.media_urls import MediaUrls
from serving.web.problems import Problem
from serving.web.seen_overlay import SeenOverlay
from serving.web.snapshot_holder import SnapshotHolder
from serving.web.tray_fragments import SegmentFragments
from storylake.clock import iso
from storylake.settings import Settings

log = logging.getLogger(__name__)
INT64_MAX = models.INT64_MAX
OVERLAY_FILE = "seen-overlay.sqlite"
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$"  # serving/cursor.py: <body>.<tag>
JSON = "application/json"
PICTURE_MEDIA_TYPE = "photo"  # {media_type} of profile pictures in the media URL template
CursorParam = Annotated[str | None, Query(min_length=24, max_length=4096, pattern=CURSOR_PATTERN)]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": models.ProblemDoc, "content": {problems.MEDIA_TYPE: {}}}
    for code in (400, 401, 403, 404, 410, 413, 503)
}


@dataclass
class ApiState:
    settings: Settings
    auth: Authenticator
    holder: SnapshotHolder
    overlay: SeenOverlay
    writer: LandingWriter
    media: MediaUrls
    fragments: SegmentFragments

    def now(self) -> datetime:
        return self.settings.now or datetime.now(UTC)

    def people(self, snap: Snapshot, user_ids: list[int], now: datetime) -> Callable[[int], dict[str, Any]]:
        """user id -> {"username", "profilePictureUrl"} for the users of one answer (one lookup)."""
        found = profiles_of(snap, user_ids)

        def of(user_id: int) -> dict[str, Any]:
            p = found.get(user_id)
            if p is None:
                return {"username": None, "profilePictureUrl": None}
            return {"username": p.username,
                    "profilePictureUrl": self.media.url(p.picture_media_id, 0, PICTURE_MEDIA_TYPE, now)}

        return of

    def snapshot(self) -> Snapshot:
        snap = self.holder.current
        if snap is None:
            raise Problem(503, "no-snapshot", "no serving snapshot is published yet: run `storylake run` first")
        return snap


def _json(doc: Any, status: int = 200) -> Response:
    return Response(receipts.json_bytes(doc), status_code=status, media_type=JSON)


class BodyTooLarge(Problem):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "payload-too-large", f"request body is larger than {limit} bytes", "body")


class LimitBody:
    """Refuses request bodies over the configured maximum (Content-Length or counted while streaming)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await problems.problem_response(BodyTooLarge(self.max_bytes))(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


class Measure:
    """Request count and latency per route template (Prometheus), and a `Server-Timing: app;dur=<ms>` header (the
    time spent in the application, to tell it from the network and the client)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                took = (time.perf_counter() - start) * 1000
                message["headers"] = [*message.get("headers", []), (b"server-timing", f"app;dur={took:.2f}".encode())]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics.REQUESTS.labels(route, scope["method"], str(status)).inc()
            metrics.LATENCY.labels(route).observe(time.perf_counter() - start)


BEARER = HTTPBearer(auto_error=False, bearerFormat="JWT", description="Authorization: Bearer <JWT> (see auth.py)")


async def caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
) -> int:
    """The authenticated user (the only source of the caller's id). `credentials` declares the bearer scheme in the
    OpenAPI document; the header itself is parsed by auth.py, whose messages say what is wrong with it. An OIDC
    issuer's keys may have to be fetched (JWKS, cached 5 min): that check runs off the event loop."""
    header = request.headers.get("authorization")
    auth: Authenticator = request.app.state.api.auth
    if auth.jwks is not None:
        return await asyncio.to_thread(auth.user_of, header)
    return auth.user_of(header)


Caller = Annotated[int, Depends(caller)]


def create_app(settings: Settings, *, poll_s: float = 1.0) -> FastAPI:
    """The API over `settings`' lake and landing folder."""
    _, dev = token_secret(settings)
    if dev:
        log.warning("no STORYLAKE_API_SECRET: using the development secret in %s", settings.serving_dir)
    overlay = SeenOverlay(settings.serving_dir / OVERLAY_FILE)

    def on_switch(snap: Snapshot) -> None:
        metrics.SNAPSHOT_SWITCHES.inc()
        dropped = overlay.drop_published(snap.db())
        expired = overlay.drop_expired(cursors.micros(state.now()))
        log.info("seen overlay: %d receipts now in snapshot %s, %d expired", dropped, snap.snapshot_id, expired)

    media = MediaUrls(settings)
    state = ApiState(
        settings=settings, auth=Authenticator.from_settings(settings),
        holder=SnapshotHolder(settings, on_switch=on_switch, poll_s=poll_s), overlay=overlay,
        writer=LandingWriter(settings.landing), media=media,
        fragments=SegmentFragments(media, settings.api_tray_cache_entries),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        removed = await asyncio.to_thread(remove_stale_temporaries, settings.landing)
        if removed:
            log.warning("removed %d temporary landing files a killed server left", removed)
        await asyncio.to_thread(state.holder.start)
        state.writer.start()
        try:
            yield
        finally:
            await state.writer.stop()
            state.holder.stop()

    app = FastAPI(
        title="storylake API", version="1.0.0", lifespan=lifespan,
        description="Story trays, Seen By lists, creator insights and seen receipts over the published snapshot.",
    )
    app.state.api = state
    problems.install(app)
    app.add_middleware(LimitBody, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(Measure)

    @app.get("/healthz", response_model=models.Health, tags=["operations"])
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz", response_model=models.Ready, responses={503: ERRORS[503]}, tags=["operations"])
    async def readyz() -> Response:
        snap = state.snapshot()
        age = (state.now() - snap.as_of).total_seconds()
        return _json({"status": "ready", "snapshotId": snap.snapshot_id, "asOf": iso(snap.as_of),
                      "snapshotAgeS": age})

    @app.get("/metrics", tags=["operations"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}}})
    async def get_metrics() -> Response:
        snap = state.holder.current
        if snap is not None:
            metrics.SNAPSHOT_AGE.set((state.now() - snap.as_of).total_seconds())
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.get("/v1/stories/tray", response_model=models.Tray, responses={k: ERRORS[k] for k in (400, 401, 503)},
             tags=["stories"])
    async def get_tray(
        user: Caller,
        limit: Annotated[int, Query(ge=1, le=TRAY_MAX)] = 50,
        cursor: CursorParam = None,
    ) -> Response:
        snap, now = state.snapshot(), state.now()
        extra = state.overlay.seen(user, cursors.micros(now))
        page = tray_of(snap, user, now, limit, cursor, extra_seen=extra if extra.size else None)
        names = state.people(snap, page.ring_columns.author_id, page.now)
        segments = ([] if page.index is None else
                    state.fragments.of(page.index, page.segment_rows, page.segment_seen, page.now))
        # the library's JSON shape (the CLI's too), with what only the API adds (names, pictures, media URLs)
        doc = tray_dict(page, names, segments=segments)
        doc.update(snapshotId=page.snapshot_id, now=iso(page.now))  # nextCursor: tray_dict's
        return Response(orjson.dumps(doc), media_type=JSON)

    @app.get("/v1/segments/{segmentId}/seen-by", response_model=models.SeenBy,
             responses={k: ERRORS[k] for k in (400, 401, 403, 404, 410, 503)}, tags=["stories"])
    async def get_seen_by(
        user: Caller,
        segment_id: Annotated[int, Path(alias="segmentId", ge=0, le=INT64_MAX)],
        limit: Annotated[int, Query(ge=1, le=SEEN_BY_MAX)] = 50,
        cursor: CursorParam = None,
    ) -> Response:
        snap = state.snapshot()
        page = seen_by_of(snap, segment_id, user, state.now(), limit, cursor)
        names = state.people(snap, [v.viewer_id for v in page.viewers], page.now)
        return _json({
            "segmentId": page.segment_id,
            "viewers": [
                {"user": {"userId": v.viewer_id, **names(v.viewer_id)},
                 "viewedAt": v.viewed_iso, "viewSource": v.view_source, "completionPct": v.completion_pct}
                for v in page.viewers
            ],
            "viewCount": page.total, "hasMore": page.has_more,
            "nextCursor": page.next_cursor, "snapshotId": page.snapshot_id,
        })

    @app.get("/v1/authors/{authorId}/insights", response_model=models.Insights,
             responses={k: ERRORS[k] for k in (400, 401, 403, 404, 503)}, tags=["creators"])
    async def get_insights(
        user: Caller, author_id: Annotated[int, Path(alias="authorId", ge=0, le=INT64_MAX)]
    ) -> Response:
        # several DuckDB statements (~30 ms on the benchmark snapshot): in a thread, which DuckDB lets run without
        # the GIL, so trays and Seen By lists on this worker are not held up behind it
        doc = insights_dict(await asyncio.to_thread(insights_of, state.snapshot(), author_id, user, state.now()))
        return _json(doc)

    def archived(s: ArchivedSegment, now: datetime) -> dict[str, Any]:
        return {"segmentId": s.segment_id, "storyId": s.story_id, "mediaType": s.media_type,
                "durationMs": s.duration_ms, "mediaUrl": state.media.url(s.media_id, s.segment_id, s.media_type, now),
                "createdAt": iso(s.created_at), "highlightId": s.highlight_id}

    @app.get("/v1/users/{userId}/highlights", response_model=models.Highlights,
             responses={k: ERRORS[k] for k in (400, 401, 503)}, tags=["profiles"])
    async def get_highlights(
        user: Caller, user_id: Annotated[int, Path(alias="userId", ge=0, le=INT64_MAX)]
    ) -> Response:
        snap, now = state.snapshot(), state.now()
        found = await asyncio.to_thread(highlights_of, snap, user_id, user, now)  # DuckDB statements: in a thread
        return _json({"userId": user_id, "snapshotId": snap.snapshot_id, "highlights": [
            {"highlightId": h.highlight_id, "segments": [archived(s, now) for s in h.segments]} for h in found]})

    @app.get("/v1/me/archive", response_model=models.Archive, responses={k: ERRORS[k] for k in (400, 401, 503)},
             tags=["profiles"])
    async def get_archive(
        user: Caller,
        limit: Annotated[int, Query(ge=1, le=ARCHIVE_MAX)] = 50,
        cursor: CursorParam = None,
    ) -> Response:
        snap, now = state.snapshot(), state.now()
        page = await asyncio.to_thread(archive_of, snap, user, limit, cursor)  # a DuckDB statement: in a thread
        return _json({"segments": [archived(s, now) for s in page.segments], "hasMore": page.has_more,
                      "nextCursor": page.next_cursor,
                      "snapshotId": page.snapshot_id})

    @app.post("/v1/stories/seen-receipts", status_code=202, response_model=models.ReceiptsResult,
              responses={k: ERRORS[k] for k in (400, 401, 403, 413)}, tags=["stories"])
    async def post_receipts(user: Caller, body: models.ReceiptsIn) -> Response:
        if body.viewer_id != user:
            raise Problem(403, "forbidden", f"viewerId {body.viewer_id} is not the authenticated user {user}",
                          "viewerId", body.viewer_id)
        now = state.now()
        hour = now.replace(minute=0, second=0, microsecond=0)
        items = [r.model_dump(by_alias=True) for r in body.receipts]
        created = _created_lookup(state.holder.current, items)
        verdicts = receipts.check(user, items, hour, state.settings.lateness_window, state.settings.max_clock_skew,
                                  created)
        lines = [v.line for v in verdicts if v.accepted and v.line is not None]
        if lines:
            await state.writer.write(hour, lines)
            seen = [(user, int(r["segmentId"]), cursors.micros(v.viewed_at))
                    for r, v in zip(items, verdicts, strict=True) if v.accepted and v.counts_as_view and v.viewed_at]
            if seen:
                await asyncio.to_thread(state.overlay.add, seen)
        accepted = len(lines)
        metrics.RECEIPTS.labels("accepted").inc(accepted)
        metrics.RECEIPTS.labels("rejected").inc(len(verdicts) - accepted)
        return _json({
            "accepted": accepted, "rejected": len(verdicts) - accepted,
            "receipts": [
                {"index": v.index, "segmentId": v.segment_id, "status": "accepted" if v.accepted else "rejected",
                 "reason": v.reason, "field": v.field}
                for v in verdicts
            ],
        }, status=202)

    def openapi() -> dict[str, Any]:
        """FastAPI's document without its 422 answers: validation errors are 400 problems here."""
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for path in doc.get("paths", {}).values():
                for op in path.values():
                    op.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                doc.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _created_lookup(snap: Snapshot | None, items: list[dict[str, Any]]) -> Any:
    """segment_id -> created_at for the batch's segments the snapshot's live index holds (one vectorised lookup)."""
    if snap is None:
        return lambda _seg: None
    ids = [r["segmentId"] for r in items if isinstance(r.get("segmentId"), int) and 0 <= r["segmentId"] <= INT64_MAX]
    if not ids:
        return lambda _seg: None
    arr = np.asarray(ids, dtype=np.int64)
    created = segment_index(snap).created_us_of(arr)
    known = {int(s): cursors.from_micros(int(c)) for s, c in zip(arr.tolist(), created.tolist(), strict=True) if c >= 0}
    return known.get


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: settings from the environment (server.py exports the command's options)."""
    return create_app(Settings.from_env())

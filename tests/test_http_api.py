"""The HTTP API through a live `storylake serve` on a generated world: seen receipts end to end (landing file,
read-your-writes, the next pipeline run), authentication and authorization, bad input, operations, and
Schemathesis over the OpenAPI document."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from storylake import lake
from tests.api_server import LiveServer, environment, start, wait_for
from tests.test_cli import sl

pytestmark = pytest.mark.slow
AS_OF = "2026-11-02T06:00:00Z"
NOW = "2026-11-02T06:30:00Z"
NEXT_AS_OF = "2026-11-02T07:00:00Z"
SECRET = "test-secret-0123456789-abcdefghijklmnop"


def token(user: int | str, secret: str = SECRET, ttl: int = 3600, **claims: Any) -> str:
    now = int(time.time())
    return jwt.encode({"sub": str(user), "iat": now, "exp": now + ttl, **claims}, secret, algorithm="HS256")


class _Jwks:
    """An OIDC issuer's JWKS endpoint on loopback, with one RSA key."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        return jwt.encode({"iat": now, "exp": now + 600, **claims}, self.key, algorithm="RS256",
                          headers={"kid": "k1"})


@pytest.fixture(scope="module")
def jwks() -> Iterator[_Jwks]:
    issuer = _Jwks()
    yield issuer
    issuer.server.shutdown()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, jwks: _Jwks) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("api")
    users = root / "users.toml"
    users.write_text('"alice@example.com" = 7\n')
    env = environment(root, STORYLAKE_API_SECRET=SECRET, STORYLAKE_API_JWKS_URL=jwks.url,
                      STORYLAKE_API_USERS=str(users), STORYLAKE_API_MAX_BODY_BYTES="65536",
                      STORYLAKE_MEDIA_SIGNING_KEY="media-key")
    sl("generate", "--users", "150", "--seed", "11", env=env)
    sl("run", "--as-of", AS_OF, env=env)
    return {"env": env, "root": root}


@pytest.fixture(scope="module")
def server(world: dict[str, Any]) -> Iterator[LiveServer]:
    live = start(world["env"], world["root"] / "serve.log", "--now", NOW, "--workers", "2")
    yield live
    live.stop()


def _unseen_ring(server: LiveServer) -> tuple[int, int, dict[str, Any]]:
    """(viewer, author, an unseen segment) from some viewer's tray."""
    for viewer in range(1, 151):
        with server.client(token(viewer)) as c:
            doc = c.get("/v1/stories/tray", params={"limit": 50}).json()
        for ring in doc["users"]:
            unseen = [s for s in ring["segments"] if not s["seen"]]
            if not ring["isOwn"] and unseen:
                return viewer, ring["userId"], unseen[0]
    raise AssertionError("no viewer has an unseen ring")


def _from(snapshot: str | None, ask: Any) -> dict[str, Any]:
    """ask()'s answer, from `snapshot` (None: any). Each worker of the server switches to a published snapshot on its
    own poll, so right after one worker reports a new snapshot another may still answer from the previous one."""
    def answered() -> dict[str, Any] | None:
        doc = ask()
        return doc if snapshot is None or doc["snapshotId"] == snapshot else None

    return wait_for(answered, what=f"an answer from snapshot {snapshot}")


def _published_after(server: LiveServer, old: str) -> str:
    """The id of the snapshot a worker reports once it no longer serves `old`."""
    with server.client() as c:
        def switched() -> str | None:
            sid = c.get("/readyz").json()["snapshotId"]
            return sid if sid != old else None

        return wait_for(switched, what=f"a snapshot after {old}")


def _seen_by(server: LiveServer, author: int, segment: int, snapshot: str | None = None) -> dict[str, Any]:
    def ask() -> dict[str, Any]:
        with server.client(token(author)) as c:
            r = c.get(f"/v1/segments/{segment}/seen-by", params={"limit": 1000})
        assert r.status_code == 200, r.text
        return r.json()

    return _from(snapshot, ask)


def _reach(server: LiveServer, author: int, segment: int, snapshot: str | None = None) -> int:
    def ask() -> dict[str, Any]:
        with server.client(token(author)) as c:
            return c.get(f"/v1/authors/{author}/insights").json()

    doc = _from(snapshot, ask)
    return next(s["reach"] for s in doc["segments"] if s["segment_id"] == segment)


def test_authentication_and_authorization(server: LiveServer, jwks: _Jwks) -> None:
    viewer, author, seg = _unseen_ring(server)
    with server.client() as anon:
        r = anon.get("/v1/stories/tray")
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"] == "Bearer" and r.json()["detail"].startswith("missing bearer token")
        for bad in ("Bearer not-a-jwt", f"Bearer {token(viewer, secret='x' * 40)}", f"Bearer {token(viewer, ttl=-120)}",
                    f"Basic {token(viewer)}", f"Bearer {token('alice')}"):
            assert anon.get("/v1/stories/tray", headers={"Authorization": bad}).status_code == 401, bad
    # an OIDC issuer's token: the verified email maps to user 7; an unverified one maps to nobody
    with server.client(jwks.token(sub="oidc|1", email="alice@example.com")) as c:
        assert c.get("/v1/stories/tray").status_code == 200
    with server.client(jwks.token(sub="oidc|1", email="alice@example.com", email_verified=False)) as c:
        assert c.get("/v1/stories/tray").status_code == 401
    # Seen By and insights are the author's only
    with server.client(token(viewer)) as c:
        r = c.get(f"/v1/segments/{seg['segmentId']}/seen-by")
        assert r.status_code == 403 and "only its author" in r.json()["detail"]
        assert c.get(f"/v1/authors/{author}/insights").status_code == 403
        r = c.post("/v1/stories/seen-receipts", json={"viewerId": author, "receipts": [
            {"segmentId": seg["segmentId"], "viewedAt": NOW, "completionPct": 1, "idempotencyKey": "a"}]})
        assert r.status_code == 403 and r.json()["field"] == "viewerId"
    # cursors are bound to the caller and signed
    with server.client(token(author)) as c:
        page = c.get(f"/v1/segments/{seg['segmentId']}/seen-by", params={"limit": 1}).json()
    if page["nextCursor"]:
        with server.client(token(author)) as c:
            assert c.get(f"/v1/segments/{seg['segmentId']}/seen-by",
                         params={"limit": 1, "cursor": page["nextCursor"]}).status_code == 200
            tampered = page["nextCursor"][:-3] + ("AAA" if not page["nextCursor"].endswith("AAA") else "BBB")
            r = c.get(f"/v1/segments/{seg['segmentId']}/seen-by", params={"limit": 1, "cursor": tampered})
            assert r.status_code == 400 and r.json()["field"] == "cursor"
    with server.client(token(viewer)) as c:
        tray = c.get("/v1/stories/tray", params={"limit": 1}).json()
    assert tray["nextCursor"], "the viewer's tray has more than one ring"
    with server.client(token(author)) as c:
        r = c.get("/v1/stories/tray", params={"limit": 1, "cursor": tray["nextCursor"]})
        assert r.status_code == 400 and "issued for" in r.json()["detail"]


def test_bad_input_never_gives_a_server_error(server: LiveServer) -> None:
    with server.client(token(5)) as c:
        cases = [
            ("GET", "/v1/segments/9223372036854775808/seen-by", None, "segmentId"),
            ("GET", "/v1/segments/abc/seen-by", None, "segmentId"),
            ("GET", "/v1/segments/-1/seen-by", None, "segmentId"),
            ("GET", "/v1/stories/tray?limit=-1", None, "limit"),
            ("GET", "/v1/stories/tray?limit=100000000000000000000000", None, "limit"),
            ("GET", "/v1/stories/tray?cursor=%7B%7D", None, "cursor"),
            ("GET", "/v1/authors/1e3/insights", None, "authorId"),
        ]
        for method, url, body, field in cases:
            r = c.request(method, url, json=body)
            assert r.status_code == 400 and r.json()["field"] == field, (url, r.text)
        r = c.post("/v1/stories/seen-receipts", content=b'{"viewerId": 5, "receipts": [', headers={
            "content-type": "application/json"})
        assert r.status_code == 400 and r.json()["type"].endswith("/malformed-json")
        r = c.post("/v1/stories/seen-receipts", content=b"x" * 70_000, headers={"content-type": "application/json"})
        assert r.status_code == 413
        r = c.post("/v1/stories/seen-receipts", json={"viewerId": 5, "receipts": [
            {"segmentId": 1, "viewedAt": NOW, "completionPct": "1", "idempotencyKey": "k"}]})
        assert r.status_code == 400 and r.json()["field"] == "receipts[0].completionPct"
        r = c.post("/v1/stories/seen-receipts", json={"viewerId": 2**70, "receipts": [
            {"segmentId": 2**70, "viewedAt": NOW, "completionPct": 1, "idempotencyKey": "k"}]})
        assert r.status_code == 403 and r.json()["value"] == str(2**70)
        r = c.post("/v1/stories/seen-receipts", headers={"content-type": "application/json"}, content=json.dumps(
            {"viewerId": 5, "receipts": [
                {"segmentId": 1, "viewedAt": NOW, "completionPct": 1, "idempotencyKey": "\ud800"}]}).encode())
        assert r.status_code == 400, r.text  # a lone surrogate is not valid JSON text for the parser
        assert c.get("/v1/nowhere").status_code == 404
        assert c.get("/v1/segments/424242424242/seen-by").status_code == 404


def test_receipts_are_checked_one_by_one(server: LiveServer, world: dict[str, Any]) -> None:
    with server.client(token(9)) as c:
        r = c.post("/v1/stories/seen-receipts", json={"viewerId": 9, "receipts": [
            {"segmentId": 1, "viewedAt": "2026-11-02T06:29:00Z", "completionPct": 1.5, "idempotencyKey": "a"},
            {"segmentId": 1, "viewedAt": "2026-11-02T06:29:00+02:00", "completionPct": 1, "idempotencyKey": "b"},
            {"segmentId": 1, "viewedAt": "2026-10-30T00:00:00Z", "completionPct": 1, "idempotencyKey": "c"},
            {"segmentId": 1, "viewedAt": "2026-11-02T08:00:00Z", "completionPct": 1, "idempotencyKey": "d"},
            {"segmentId": 1, "viewedAt": "2026-11-02T06:29:00Z", "completionPct": 1, "idempotencyKey": "e",
             "viewSource": "billboard"},
            {"segmentId": 1, "viewedAt": "2026-11-02T06:29:00Z", "completionPct": 1, "idempotencyKey": "f" * 201},
        ]})
    assert r.status_code == 202
    doc = r.json()
    assert doc["accepted"] == 0 and doc["rejected"] == 6
    assert [(s["status"], s["field"], s["reason"].split(":")[0]) for s in doc["receipts"]] == [
        ("rejected", "completionPct", "out_of_range"),
        ("rejected", "viewedAt", "bad_format"),
        ("rejected", "viewedAt", "late_beyond_window"),
        ("rejected", "viewedAt", "from_the_future"),
        ("rejected", "viewSource", "invalid_enum"),
        ("rejected", "idempotencyKey", "too_long"),
    ]
    assert not list((Path(world["env"]["STORYLAKE_LANDING"]) / "segment_view").rglob("api-*.jsonl"))


def test_operations(server: LiveServer) -> None:
    with server.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz").json()
        assert ready["status"] == "ready" and ready["asOf"] == AS_OF and ready["snapshotAgeS"] == 1800.0
        c.get("/v1/stories/tray")  # a 401, counted
        body = c.get("/metrics").text
    assert 'storylake_api_requests_total{method="GET",route="/v1/stories/tray",status="401"}' in body
    assert "storylake_api_request_seconds_bucket" in body and "storylake_api_snapshot_age_seconds" in body
    with server.client(token(5)) as c:
        doc = c.get("/v1/stories/tray").json()
    assert all(u["username"] and u["username"].endswith(f".{u['userId']}") for u in doc["users"])
    urls = [s["mediaUrl"] for u in doc["users"] for s in u["segments"]]
    assert urls and all("expires=" in u and "&sig=" in u for u in urls)


def test_highlights_and_archive(server: LiveServer, world: dict[str, Any]) -> None:
    segs = lake.read_arrow(world["root"] / "lake" / "silver" / "segments")
    assert segs is not None
    archived = [r for r in segs.to_pylist() if r["is_archived"] and not r["is_deleted"]]
    with_highlight = [r for r in archived if r["highlight_id"] is not None]
    assert with_highlight, "the generated world archives segments into highlights"
    author = with_highlight[0]["author_id"]
    mine = sorted(r["segment_id"] for r in archived if r["author_id"] == author)
    with server.client(token(author)) as c:
        got, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = c.get("/v1/me/archive", params=params).json()
            got += [seg["segmentId"] for seg in page["segments"]]
            cursor = page["nextCursor"]
            if not page["hasMore"]:
                break
        own = c.get(f"/v1/users/{author}/highlights").json()
    assert sorted(got) == mine
    now = datetime.fromisoformat(NOW)
    expected = sorted(r["segment_id"] for r in with_highlight if r["author_id"] == author and r["created_at"] <= now)
    assert sorted(seg["segmentId"] for h in own["highlights"] for seg in h["segments"]) == expected
    with server.client(token(author + 1)) as c:
        other = c.get(f"/v1/users/{author}/highlights").json()
        theirs = c.get("/v1/me/archive", params={"limit": 500}).json()["segments"]
    assert sorted(seg["segmentId"] for seg in theirs) == sorted(
        r["segment_id"] for r in archived if r["author_id"] == author + 1)
    assert {seg["segmentId"] for h in other["highlights"] for seg in h["segments"]} <= set(expected)


def test_receipts_end_to_end(server: LiveServer, world: dict[str, Any]) -> None:
    """POST -> 202 -> a landing file -> the tray shows the segment seen at once -> `storylake run` -> the new
    snapshot is served without a restart, reach +1 and Seen By lists the viewer; the same batch again changes
    nothing after the next run."""
    viewer, author, seg = _unseen_ring(server)
    sid = seg["segmentId"]
    before = _seen_by(server, author, sid)
    assert viewer not in [v["user"]["userId"] for v in before["viewers"]]
    reach_before = _reach(server, author, sid)
    batch = {"viewerId": viewer, "receipts": [
        {"segmentId": sid, "viewedAt": NOW, "completionPct": 1, "idempotencyKey": f"{viewer}:{sid}:1"}]}
    with server.client(token(viewer)) as c:
        r = c.post("/v1/stories/seen-receipts", json=batch)
        assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
        files = sorted((Path(world["env"]["STORYLAKE_LANDING"]) / "segment_view").rglob("api-*.jsonl"))
        assert len(files) == 1 and "dt=2026-11-02/hour=06/" in files[0].as_posix()
        line = json.loads(files[0].read_text())
        assert (line["segment_id"], line["viewer_id"], line["event_time"], line["completion_pct"]) == (
            sid, viewer, NOW, 1.0)
        ring = next(u for u in c.get("/v1/stories/tray", params={"limit": 500}).json()["users"]
                    if u["userId"] == author)
        assert next(s for s in ring["segments"] if s["segmentId"] == sid)["seen"] is True
    old_snapshot = before["snapshotId"]
    sl("run", "--as-of", NEXT_AS_OF, env=world["env"])
    new = _published_after(server, old_snapshot)
    after = _seen_by(server, author, sid, new)
    assert after["viewCount"] == before["viewCount"] + 1
    assert all(v["user"]["username"].endswith(f".{v['user']['userId']}") for v in after["viewers"])
    assert viewer in [v["user"]["userId"] for v in after["viewers"]]
    assert _reach(server, author, sid, new) == reach_before + 1
    # a client retry of the same batch: accepted again, one receipt downstream
    with server.client(token(viewer)) as c:
        assert c.post("/v1/stories/seen-receipts", json=batch).json()["accepted"] == 1
    sl("run", "--as-of", "2026-11-02T08:00:00Z", env=world["env"])
    third = _published_after(server, after["snapshotId"])
    assert _seen_by(server, author, sid, third)["viewCount"] == after["viewCount"]
    assert _reach(server, author, sid, third) == reach_before + 1


def test_a_crash_mid_request_leaves_no_partial_file(server: LiveServer, world: dict[str, Any]) -> None:
    """The server is SIGKILLed after writing a receipt's temporary file and before renaming it: the client gets no
    202, no landing file appears (ingest reads only complete `*.jsonl` files), and the next server start removes
    the stale temporary file."""
    viewer, _author, seg = _unseen_ring(server)
    landing = Path(world["env"]["STORYLAKE_LANDING"]) / "segment_view"
    before = sorted(landing.rglob("api-*.jsonl"))
    env = {**world["env"], "STORYLAKE_FAILPOINT": "api.landing.before_rename"}
    doomed = start(env, world["root"] / "doomed.log", "--now", NOW)
    with doomed.client(token(viewer)) as c, pytest.raises(httpx.TransportError):
        c.post("/v1/stories/seen-receipts", json={"viewerId": viewer, "receipts": [
            {"segmentId": seg["segmentId"], "viewedAt": NOW, "completionPct": 1, "idempotencyKey": "crash"}]})
    assert doomed.proc.wait(timeout=30) == -9
    assert sorted(landing.rglob("api-*.jsonl")) == before
    [tmp] = landing.rglob(".api-*.jsonl.tmp")
    os.utime(tmp, (time.time() - 3600, time.time() - 3600))
    restarted = start(world["env"], world["root"] / "restarted.log", "--now", NOW)
    try:
        assert not tmp.exists()
    finally:
        restarted.stop()


def test_schema_conformance(server: LiveServer) -> None:
    """Schemathesis over the served OpenAPI document, every operation: no 5xx and every answer conforms to the
    document (status codes, content types, schemas, headers; generated bad input must be rejected)."""
    api = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/stories/tray", "/v1/segments/{segmentId}/seen-by",
                                              "/v1/authors/{authorId}/insights", "/v1/stories/seen-receipts"}
    headers = {"Authorization": f"Bearer {token(5)}"}
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            # a well-formed cursor this server did not issue is refused (400): that is the point of signing them
            excluded = [positive_data_acceptance] if (case.query or {}).get("cursor") else []
            case.call_and_validate(headers=headers, excluded_checks=excluded)

        check()

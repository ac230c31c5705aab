"""The HTTP API's parts on hand-built inputs: receipt checks, signed cursors, media URLs, the seen overlay,
identities and tokens."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.web import receipts
from serving.web.auth import Authenticator, AuthError, mint
from serving.web.media_urls import MediaUrls
from serving.web.seen_overlay import SeenOverlay
from storylake import identities
from storylake.settings import Settings

HOUR = datetime(2026, 11, 2, 6, tzinfo=UTC)
CREATED = datetime(2026, 11, 2, 5, 30, tzinfo=UTC)
W, SKEW = timedelta(hours=48), timedelta(minutes=5)


def _check(*items: dict[str, object], created: datetime | None = CREATED) -> list[receipts.Verdict]:
    return receipts.check(42, list(items), HOUR, W, SKEW, lambda seg: created if seg == 7 else None)


def test_an_accepted_receipt_is_the_segment_view_line_ingest_expects() -> None:
    [v] = _check({"segmentId": 7, "viewedAt": "2026-11-02T06:10:00Z", "completionPct": 0.5,
                  "idempotencyKey": "k1", "viewDurationMs": 3200, "viewSource": "profile"})
    assert v.accepted and v.reason is None and v.counts_as_view
    line = json.loads(v.line or b"")
    assert len(line.pop("event_id")) == 32
    assert line == {"event_type": "segment_view", "event_time": "2026-11-02T06:10:00Z", "segment_id": 7,
                    "viewer_id": 42, "view_duration_ms": 3200, "completion_pct": 0.5, "view_source": "profile",
                    "idempotency_key": "k1"}
    [d] = _check({"segmentId": 7, "viewedAt": "2026-11-02T06:10:00Z", "completionPct": 0.5, "idempotencyKey": "k"})
    assert d.accepted and not d.counts_as_view  # 0 ms and not complete: durable, but no view (rules.views)
    assert json.loads(d.line or b"")["view_source"] == "tray"


def test_rejections_name_the_receipt_field() -> None:
    base = {"segmentId": 7, "viewedAt": "2026-11-02T06:10:00Z", "completionPct": 1.0, "idempotencyKey": "k"}
    got = [(v.accepted, v.field, v.reason) for v in _check(
        {**base, "completionPct": -0.1},
        {**base, "viewedAt": "2026-11-02T05:00:00Z"},  # before the segment was created
        {**base, "viewedAt": "2026-11-02T06:10:00+01:00"},
        {**base, "viewedAt": "yesterday"},
        {**base, "viewDurationMs": -1},
        {**base, "segmentId": 2**63},
        {**base, "segmentId": 8, "viewedAt": "2026-11-02T05:00:00Z"},  # unknown segment: the pipeline decides
    )]
    assert got == [
        (False, "completionPct", "out_of_range: completionPct: Expected `float` >= 0.0 (got -0.1)"),
        (False, "viewedAt", "outside_lifetime: viewedAt 2026-11-02T05:00:00Z is outside the segment's lifetime "
                            "from 2026-11-02T05:30:00Z"),
        (False, "viewedAt", "bad_format: viewedAt: expected UTC (Z), got offset 1:00:00"),
        (False, "viewedAt", "bad_format: viewedAt: expected an ISO-8601 UTC timestamp ending in Z (got \"yesterday\")"),
        (False, "viewDurationMs", "out_of_range: viewDurationMs: Expected `int` >= 0 (got -1)"),
        (False, "segmentId", "out_of_range: segmentId: Expected `int` <= 9223372036854775807 "
                             "(got 9223372036854775808)"),
        (True, None, None),
    ]


def test_receipts_beyond_json_limits_are_rejected_not_crashed() -> None:
    base = {"segmentId": 7, "viewedAt": "2026-11-02T06:10:00Z", "completionPct": 1.0, "idempotencyKey": "k"}
    got = [(v.accepted, v.field, (v.reason or "").split(":")[0]) for v in _check(
        {**base, "segmentId": 2**70}, {**base, "viewDurationMs": -(2**100)}, {**base, "idempotencyKey": "\ud800"},
    )]
    assert got == [(False, "segmentId", "out_of_range"), (False, "viewDurationMs", "out_of_range"),
                   (False, None, "malformed_json")]


# the first text draw of a process builds Hypothesis' character tables (~1 s on a fresh machine): not slow generation
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(receipt=st.dictionaries(st.sampled_from(["segmentId", "viewedAt", "completionPct", "idempotencyKey",
                                                "viewDurationMs", "viewSource"]),
                               st.one_of(st.integers(), st.floats(), st.text(), st.none(), st.booleans())))
def test_any_receipt_gets_a_verdict(receipt: dict[str, object]) -> None:
    """Whatever the values, check() answers (accepted with a line, or rejected with a reason), never raises."""
    [v] = _check(receipt)
    assert (v.accepted and v.line is not None) or (not v.accepted and v.reason)


def test_media_urls(tmp_path: Path) -> None:
    now = datetime(2026, 11, 2, 6, 0, 30, tzinfo=UTC)
    plain = MediaUrls(Settings(lake=tmp_path, media_url_template="https://cdn.test/s/{segment_id}/{media_id}.{media_type}"))
    assert plain.url(99, 7, "video", now) == "https://cdn.test/s/7/99.video"
    assert plain.url(None, 7, "video", now) is None
    signed = MediaUrls(Settings(lake=tmp_path, media_signing_key="m" * 16, media_url_ttl_s=600))
    url = signed.url(99, 7, "photo", now)
    assert url is not None and url.startswith("https://media.storylake.invalid/m/99?expires=1793600400&sig=")
    assert signed.verify(url, now) and signed.verify(url, now + timedelta(minutes=10))
    assert not signed.verify(url, datetime(2026, 11, 2, 6, 20, tzinfo=UTC))  # expired
    assert not signed.verify(url.replace("/m/99", "/m/98"), now)


def test_seen_overlay(tmp_path: Path) -> None:
    ov = SeenOverlay(tmp_path / "o.sqlite")
    us = 1_793_944_800_000_000
    ov.add([(1, 10, us + 5), (1, 10, us + 2), (1, 11, us + 9), (2, 10, us)])
    assert ov.seen(1, us + 5).tolist() == [10] and sorted(ov.seen(1, us + 9).tolist()) == [10, 11]
    db = duckdb.connect()
    db.execute("CREATE TABLE viewer_seen AS SELECT 1::BIGINT AS viewer_id, 11::BIGINT AS segment_id")
    assert ov.drop_published(db) == 1 and ov.count() == 2
    assert ov.drop_expired(us + 24 * 3600 * 1_000_000 + 1) == 1  # (2, 10) seen at us: its segment has expired
    assert ov.seen(1, us + 10).tolist() == [10] and ov.seen(2, us + 10).size == 0
    assert isinstance(ov.seen(3, us), np.ndarray)


def test_identities(tmp_path: Path) -> None:
    users = {"oidc|1": 5, "a@x.test": 6}
    assert identities.mapped_user({"sub": "oidc|1", "email": "a@x.test"}, users) == 5
    assert identities.mapped_user({"sub": "oidc|2", "email": "a@x.test"}, users) == 6
    assert identities.mapped_user({"sub": "oidc|2", "email": "a@x.test", "email_verified": False}, users) is None
    assert [identities.numeric_subject({"sub": s}) for s in ("42", "0", "9223372036854775808", "4x", "٣", 42)] == [
        42, None, None, None, None, None]
    good = tmp_path / "u.toml"
    good.write_text('[users]\n"a@x.test" = 6\n')
    assert identities.load_users(good) == {"a@x.test": 6}
    bad = tmp_path / "bad.toml"
    bad.write_text('"a@x.test" = "six"\n')
    with pytest.raises(identities.IdentityMapError, match="'a@x.test' must map to a user id"):
        identities.load_users(bad)


def test_tokens(tmp_path: Path) -> None:
    s = Settings(lake=tmp_path, api_secret="s" * 40)
    auth = Authenticator.from_settings(s)
    token = mint(s, 77)
    assert auth.user_of(f"Bearer {token}") == 77
    assert auth.verified[token][0] == 77 and auth.user_of(f"Bearer {token}") == 77  # verified once, then remembered
    with pytest.raises(AuthError, match="expired"):
        auth.user_of(f"Bearer {mint(s, 77, ttl_s=1, now=1_000_000)}")
    auth.verified[token] = (77, time.time() - 60, float("-inf"))  # a remembered token's time checks still run
    with pytest.raises(AuthError, match="expired"):
        auth.user_of(f"Bearer {token}")
    dev = Settings(lake=tmp_path / "dev")  # no secret: the lake's development secret, created once
    assert Authenticator.from_settings(dev).user_of(f"Bearer {mint(dev, 5)}") == 5
    assert (tmp_path / "dev" / "serving" / "api-dev.secret").stat().st_mode & 0o777 == 0o600
    with pytest.raises(AuthError, match="invalid"):
        Authenticator.from_settings(dev).user_of(f"Bearer {mint(s, 5)}")
    with pytest.raises(ValueError, match="user id"):
        mint(s, 0)


def test_cached_segment_fragments_render_what_the_library_renders(settings: Settings) -> None:
    """The HTTP tray's per-segment JSON cache gives the bytes of the library's rendering with media URLs, for seen
    and unseen segments, signed or not; it is reused, and starts over with a new signing period or snapshot."""
    import orjson

    from serving import api
    from serving.publish import publish
    from serving.render import tray_dict
    from serving.web.tray_fragments import SegmentFragments
    from tests.lake_builder import DAY, LakeBuilder
    from tests.lake_builder import HOUR as H

    t = datetime(2026, 11, 2, 12, tzinfo=UTC)
    lake = LakeBuilder(settings)
    lake.segment(110, 10, t - 3 * H).segment(111, 10, t - H, media_type="video").segment(120, 12, t - 2 * H)
    lake.view(110, 1, t - 2 * H)
    for a in (10, 12):
        lake.follow(1, a, t - DAY)
    lake.write()
    publish(settings, t)
    snap = api.open_current(settings)
    for key in (None, "k"):
        media = MediaUrls(Settings(lake=settings.lake, media_signing_key=key, media_url_ttl_s=600))
        frags = SegmentFragments(media)
        page = api.tray(snap, 1, t)
        s = page.segments
        urls = [media.url(m, i, ty, t) for m, i, ty in zip(s.media_id, s.segment_id, s.media_type, strict=True)]
        want = orjson.dumps(tray_dict(page, segment_extra={"mediaUrl": urls}))
        assert page.index is not None
        got = frags.of(page.index, page.segment_rows, page.segment_seen, t)
        assert orjson.dumps(tray_dict(page, segments=got)) == want
        assert [json.loads(bytes(orjson.dumps(f)))["seen"] for f in got] == [True, False, False]
        assert len(frags) == 3
        again = frags.of(page.index, page.segment_rows, page.segment_seen, t + timedelta(seconds=1))
        assert [a is b for a, b in zip(again, got, strict=True)] == [True, True, True]  # reused
        later = frags.of(page.index, page.segment_rows, ~page.segment_seen, t + timedelta(hours=1))
        assert len(frags) == (3 if key else 6)  # a new signing period starts over; unsigned URLs never change
        assert [json.loads(orjson.dumps(f))["seen"] for f in later] == [False, True, True]
    small = SegmentFragments(MediaUrls(settings), max_entries=2)
    small.of(page.index, page.segment_rows, page.segment_seen, t)
    small.of(page.index, page.segment_rows[:1], page.segment_seen[:1], t)
    assert len(small) == 1  # over its bound: started over

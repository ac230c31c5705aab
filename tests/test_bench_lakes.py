"""The benchmarks' synthetic lakes stay publishable as the contracts change (a benchmark that breaks is found here,
not on the day its figures are needed)."""

from __future__ import annotations

import logging

import pytest

from serving import api
from serving.publish import publish
from storylake.settings import Settings
from toolkit.bench.serving import DEFAULT_NOW, build_lake


def test_the_serving_benchmark_lake_publishes_and_serves(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    info = build_lake(settings, segments=2_000, users=300, follows_per_viewer=40, big_segment_viewers=200)
    with caplog.at_level(logging.WARNING, logger="serving.publish"):
        publish(settings, DEFAULT_NOW)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    snap = api.open_current(settings)
    page = api.tray(snap, info["viewer_id"], DEFAULT_NOW, limit=50)
    assert page.rings and all(r.segments for r in page.rings)
    seen_by = api.seen_by(snap, info["big_segment_id"], info["big_segment_author"], DEFAULT_NOW, limit=50)
    assert seen_by.total == info["big_segment_viewers"]

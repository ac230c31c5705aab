"""Prometheus metrics: request counts and latency per route, receipts, snapshot age.

With several server processes (`storylake serve --workers N`), prometheus_client's multiprocess mode aggregates
them: server.py points PROMETHEUS_MULTIPROC_DIR at a fresh folder before the workers start, and /metrics
collects every process's files.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("storylake_api_requests_total", "HTTP requests", ["route", "method", "status"])
LATENCY = Histogram(
    "storylake_api_request_seconds", "HTTP request latency", ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
RECEIPTS = Counter("storylake_api_receipts_total", "Seen receipts", ["status"])
SNAPSHOT_AGE = Gauge("storylake_api_snapshot_age_seconds", "Now minus the served snapshot's as_of",
                     multiprocess_mode="max")
SNAPSHOT_SWITCHES = Counter("storylake_api_snapshot_switches_total", "Snapshots switched to without a restart")


def exposition() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST

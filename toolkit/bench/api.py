"""`storylake bench api`: the HTTP API under load, with a real load generator (Debian's `wrk`).

Builds (or reuses) the serving benchmark's synthetic lake (toolkit/bench/serving.py: >= 1M active segments,
100k users, a viewer following 1,000 authors, a segment with 100k viewers), publishes it, starts
`storylake serve --workers N` with the clock pinned at the lake's "now", and drives each route for a fixed time with
many clients whose requests arrive as a Poisson stream at the offered rate (think_time.lua: each connection waits an
exponential think time before each request, so the achieved rate is a little under the offered one):
  - tray of the 1,000-follow viewer (the worst case of the lake: 50 rings, ~530 segments, ~115 KB), first page,
    with the per-segment JSON cache (serving/web/tray_fragments.py) and again on a server without it;
  - Seen By of the 100k-viewer segment, first page of 50, as its author (after the first request, from the
    snapshot's page cache: an author refreshing a live segment's list);
  - seen receipts in batches of 50 (segments of the viewer's tray), every one accepted durably; the landing
    lines written are counted afterwards and must cover 50 x the 202 answers.
Reports wrk's achieved rate and p50/p90/p99 per route.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from storylake.clock import iso
from storylake.settings import Settings
from toolkit.bench.serving import DEFAULT_NOW, build_lake

CLI = str(Path(sys.executable).with_name("storylake"))
BATCH = 50


THINK_TIME = Path(__file__).with_name("think_time.lua")
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNIT_MS[unit]


def _wrk(url: str, *, seconds: int, connections: int, rate: float, token: str,
         body: Path | None = None) -> dict[str, Any]:
    """Drive `url` with wrk: `connections` clients with exponential think times (think_time.lua), offering `rate`
    requests per second in all; wrk's latency percentiles and achieved rate."""
    if shutil.which("wrk") is None:
        raise RuntimeError("the load generator `wrk` is missing: apt-get install -y wrk")
    mean_ms = connections / rate * 1000
    cmd = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", str(THINK_TIME),
           "-H", f"Authorization: Bearer {token}", url, "--", f"{mean_ms:.3f}"]
    if body is not None:
        cmd.append(str(body))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 120).stdout
    pct = {int(p): _ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)$", out, re.MULTILINE)}
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    rate_done = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"offered_rps": rate, "connections": connections, "achieved_rps": round(rate_done, 1),
            "p50_ms": round(pct.get(50, float("nan")), 2), "p90_ms": round(pct.get(90, float("nan")), 2),
            "p99_ms": round(pct.get(99, float("nan")), 2), "requests": done,
            "non_2xx": int(bad.group(1)) if bad else 0, "socket_errors": errors.group(1) if errors else None}


@contextmanager
def _serving(work: Path, env: dict[str, str], port: int, workers: int) -> Iterator[None]:
    """`storylake serve` with the clock pinned at the lake's now, ready, stopped on exit."""
    log = (work / "serve.log").open("ab")
    proc = subprocess.Popen([CLI, "serve", "--port", str(port), "--workers", str(workers), "--now", iso(DEFAULT_NOW)],
                            env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"storylake serve did not get ready (see {work / 'serve.log'})")
            time.sleep(0.5)
        _settled(proc.pid)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _settled(pid: int, quiet_s: float = 2.0, timeout_s: float = 180.0) -> None:
    """Wait until every process of the server (each worker loads the snapshot's indexes on its own, and /readyz may
    answer from the first one ready) has used no CPU for `quiet_s`: load starts on a fully started server."""
    import psutil

    deadline, last, quiet_since = time.monotonic() + timeout_s, -1.0, time.monotonic()
    root = psutil.Process(pid)
    while time.monotonic() < deadline:
        procs = [root, *root.children(recursive=True)]
        cpu = sum(p.cpu_times().user + p.cpu_times().system for p in procs if p.is_running())
        now = time.monotonic()
        if cpu - last > 0.05:
            last, quiet_since = cpu, now
        elif now - quiet_since >= quiet_s:
            return
        time.sleep(0.25)
    raise RuntimeError(f"storylake serve (pid {pid}) kept using CPU for {timeout_s:.0f} s after /readyz")


def bench_api(work: Path, *, segments: int = 1_250_000, workers: int = 2, seconds: int = 20,
              tray_rps: int = 170, seen_by_rps: int = 560, receipt_rps: int = 120, reuse: bool = False,
              port: int = 18_765) -> dict[str, Any]:
    import logging

    from serving.publish import publish
    from serving.web.auth import mint

    logging.getLogger("httpx").setLevel(logging.WARNING)

    settings = Settings(lake=work / "lake", landing=work / "landing")
    info_path = settings.lake / "bench_info.json"
    t0 = time.perf_counter()
    if reuse and info_path.exists():
        info = json.loads(info_path.read_text())
    else:
        shutil.rmtree(work, ignore_errors=True)
        info = build_lake(settings, segments=segments, now=DEFAULT_NOW)
        info_path.write_text(json.dumps(info))
        publish(settings, DEFAULT_NOW)
    shutil.rmtree(settings.landing / "segment_view", ignore_errors=True)
    setup_s = time.perf_counter() - t0
    env = {**os.environ, "STORYLAKE_LAKE": str(settings.lake), "STORYLAKE_LANDING": str(settings.landing),
           "STORYLAKE_LOG_LEVEL": "WARNING"}
    viewer, author, seg = info["viewer_id"], info["big_segment_author"], info["big_segment_id"]
    vt, at = mint(settings, viewer, 7200), mint(settings, author, 7200)
    base = f"http://127.0.0.1:{port}"
    with _serving(work, env, port, workers):
        tray = httpx.get(f"{base}/v1/stories/tray", params={"limit": 500},
                         headers={"Authorization": f"Bearer {vt}"}, timeout=30).json()
        segs = [s for u in tray["users"] for s in u["segments"]][:BATCH]
        if len(segs) < BATCH:
            raise RuntimeError(f"the viewer's tray has only {len(segs)} segments")
        viewed = iso(DEFAULT_NOW - timedelta(seconds=1))
        body = work / "receipts.json"
        body.write_text(json.dumps({"viewerId": viewer, "receipts": [
            {"segmentId": s["segmentId"], "viewedAt": viewed, "completionPct": 1, "idempotencyKey": f"b:{i}"}
            for i, s in enumerate(segs)]}))
        for _ in range(20):  # warm every worker
            httpx.get(f"{base}/v1/stories/tray", headers={"Authorization": f"Bearer {vt}"}, timeout=30)
        results = {
            "tray": _wrk(f"{base}/v1/stories/tray?limit=50", seconds=seconds, connections=32, rate=tray_rps,
                         token=vt),
            "seen_by": _wrk(f"{base}/v1/segments/{seg}/seen-by?limit=50", seconds=seconds, connections=64,
                            rate=seen_by_rps, token=at),
            "receipts": _wrk(f"{base}/v1/stories/seen-receipts", seconds=seconds, connections=32, rate=receipt_rps,
                             token=vt, body=body),
        }
    # the same tray with the per-segment JSON cache off (STORYLAKE_API_TRAY_CACHE_ENTRIES=0): every answer renders
    # its ~530 segments afresh, the cost of a viewer whose authors' segments no other request has rendered yet
    with _serving(work, {**env, "STORYLAKE_API_TRAY_CACHE_ENTRIES": "0"}, port, workers):
        for _ in range(20):
            httpx.get(f"{base}/v1/stories/tray", headers={"Authorization": f"Bearer {vt}"}, timeout=30)
        results["tray_uncached"] = _wrk(f"{base}/v1/stories/tray?limit=50", seconds=seconds, connections=32,
                                        rate=tray_rps, token=vt)
    files = list((settings.landing / "segment_view").rglob("api-*.jsonl"))
    lines = sum(f.read_bytes().count(b"\n") for f in files)
    r = results["receipts"]
    accepted = r["requests"] - r["non_2xx"]  # answered 202 within the run
    # every 202 is durable: its 50 lines are in the landing folder; requests still in flight when wrk stopped (at
    # most one per connection) may have landed too, unanswered
    r.update(receipts_per_s=round(r["achieved_rps"] * BATCH, 0), landing_files=len(files), landing_lines=lines,
             lines_cover_202s=accepted * BATCH <= lines <= (accepted + r["connections"]) * BATCH)
    return {"setup_s": round(setup_s, 1), "workers": workers, "seconds_per_route": seconds, "cores": os.cpu_count(),
            "segments": info["sizes"], "load": "wrk, Poisson arrivals (think_time.lua)", **results,
            "targets": {"tray": "p99 <= 30 ms at >= 150 req/s (cached and uncached)",
                        "seen_by": "p99 <= 10 ms at >= 500 req/s",
                        "receipts": ">= 5000 receipts/s in batches of 50, p99 <= 50 ms"}}

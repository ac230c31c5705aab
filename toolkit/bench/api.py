"""`storylake bench api`: the HTTP API under load, with a real load generator (Debian's `hey`).

Builds (or reuses) the serving benchmark's synthetic lake (toolkit/bench/serving.py: >= 1M active segments,
100k users, a viewer following 1,000 authors, a segment with 100k viewers), publishes it, starts
`storylake serve --workers N` with the clock pinned at the lake's "now", and drives each route at a fixed offered
rate for a fixed time:
  - tray of the 1,000-follow viewer, first page of 50;
  - Seen By of the 100k-viewer segment, first page of 50, as its author;
  - seen receipts in batches of 50 (segments of the viewer's tray), every one accepted durably; the landing
    lines written are counted afterwards and must equal 50 x the 202 answers.
Reports hey's achieved rate, p50/p90/p99 and status codes per route.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from storylake.clock import iso
from storylake.settings import Settings
from toolkit.bench.serving import DEFAULT_NOW, build_lake

CLI = str(Path(sys.executable).with_name("storylake"))
BATCH = 50


def _hey(url: str, *, seconds: int, concurrency: int, qps_per_worker: float, token: str,
         body: Path | None = None) -> dict[str, Any]:
    if shutil.which("hey") is None:
        raise RuntimeError("the load generator `hey` is missing: apt-get install -y hey")
    cmd = ["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-q", str(qps_per_worker),
           "-H", f"Authorization: Bearer {token}"]
    if body is not None:
        cmd += ["-m", "POST", "-T", "application/json", "-D", str(body)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True, timeout=seconds + 120).stdout
    pct = {int(p): float(s) * 1000 for p, s in re.findall(r"(\d+)%% in ([\d.]+) secs".replace("%%", "%"), out)}
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"offered_rps": concurrency * qps_per_worker, "achieved_rps": round(rate, 1),
            "p50_ms": round(pct.get(50, float("nan")), 2), "p90_ms": round(pct.get(90, float("nan")), 2),
            "p99_ms": round(pct.get(99, float("nan")), 2), "status": codes}


def bench_api(work: Path, *, segments: int = 1_250_000, workers: int = 2, seconds: int = 20,
              tray_rps: int = 160, seen_by_rps: int = 550, receipt_rps: int = 110, reuse: bool = False,
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
    log = (work / "serve.log").open("wb")
    proc = subprocess.Popen([CLI, "serve", "--port", str(port), "--workers", str(workers), "--now", iso(DEFAULT_NOW)],
                            env=env, stdout=log, stderr=log, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"storylake serve did not get ready (see {work / 'serve.log'})")
            time.sleep(0.5)
        vt, at = mint(settings, viewer, 7200), mint(settings, author, 7200)
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
        c = 8
        results = {
            "tray": _hey(f"{base}/v1/stories/tray?limit=50", seconds=seconds, concurrency=c,
                         qps_per_worker=tray_rps / c, token=vt),
            "seen_by": _hey(f"{base}/v1/segments/{seg}/seen-by?limit=50", seconds=seconds, concurrency=c * 2,
                            qps_per_worker=seen_by_rps / (c * 2), token=at),
            "receipts": _hey(f"{base}/v1/stories/seen-receipts", seconds=seconds, concurrency=c,
                             qps_per_worker=receipt_rps / c, token=vt, body=body),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    files = list((settings.landing / "segment_view").rglob("api-*.jsonl"))
    lines = sum(f.read_bytes().count(b"\n") for f in files)
    accepted_requests = results["receipts"]["status"].get(202, 0)
    results["receipts"].update(
        receipts_per_s=round(results["receipts"]["achieved_rps"] * BATCH, 0), landing_files=len(files),
        landing_lines=lines, lines_match_202s=lines == accepted_requests * BATCH,
    )
    return {"setup_s": round(setup_s, 1), "workers": workers, "seconds_per_route": seconds, "cores": os.cpu_count(),
            "segments": info["sizes"], **results,
            "targets": {"tray": "p99 <= 30 ms at >= 150 req/s", "seen_by": "p99 <= 10 ms at >= 500 req/s",
                        "receipts": ">= 5000 receipts/s in batches of 50, p99 <= 50 ms"}}

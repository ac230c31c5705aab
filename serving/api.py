"""The serving query API: plain functions over a published snapshot, each taking `now` explicitly.

    from serving import api
    snap = api.open_current(settings)
    page = api.tray(snap, viewer_id=42, now=now)           # TrayPage; api.tray_json(page) for the JSON shape
    page = api.seen_by(snap, segment_id=7, requester_id=42, now=now)
    data = api.insights(snap, author_id=42, requester_id=42, now=now)

Every query binds its values as parameters; the SQL text is constant (serving/tray.py, seen_by.py,
insights.py). Errors: storylake.errors.NotFoundError (unknown id), PermissionError (not the author),
SeenByExpiredError (Seen By older than 48 h), ValueError (bad limit / invalid cursor), StaleCursorError
(a ValueError: cursor from another snapshot, list or subject).
"""

from __future__ import annotations

from serving.cursor import StaleCursorError
from serving.insights import insights
from serving.render import (
    insights_dict,
    insights_json,
    seen_by_dict,
    seen_by_json,
    tray_dict,
    tray_json,
)
from serving.seen_by import SeenByExpiredError, SeenByPage, SeenByViewer, seen_by
from serving.snapshot import Snapshot, open_current, open_snapshot
from serving.tray import Ring, TrayPage, TraySegment, tray

__all__ = [
    "Ring",
    "SeenByExpiredError",
    "SeenByPage",
    "SeenByViewer",
    "Snapshot",
    "StaleCursorError",
    "TrayPage",
    "TraySegment",
    "insights",
    "insights_dict",
    "insights_json",
    "open_current",
    "open_snapshot",
    "seen_by",
    "seen_by_dict",
    "seen_by_json",
    "tray",
    "tray_dict",
    "tray_json",
]
